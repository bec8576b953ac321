//! `sentio_feature_sample(hash, value, …)`: a seeded sample of the training
//! rows' numeric features and what it says of each ([`crate::ml::cuts`]): a
//! JSON list of [`Summary`] — its median and the values its bins are cut at.
//!
//! `CREATE MODEL`'s statistics pass computes it beside the means and
//! deviations, over the training rows: `hash` is a hash of the whole row (the
//! rows of smallest hash, then values, are the sample), each value a numeric
//! feature as DOUBLE (NULL and NaN are seen as such). The medians are
//! `ML.FEATURE_INFO`'s; a tree model's cut points come from the summaries once
//! the features' encodings are known ([`crate::ml::cuts::encoded_cuts`]).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type, Int64Type};
use datafusion::common::{Result, ScalarValue, exec_datafusion_err, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Signature, Volatility};

use crate::ml::cuts::{FeatureSample, Summary};

/// The `sentio_feature_sample` aggregate function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FeatureSampleUdaf {
    signature: Signature,
}

impl Default for FeatureSampleUdaf {
    fn default() -> Self {
        Self::new()
    }
}

impl FeatureSampleUdaf {
    /// Creates the function.
    pub fn new() -> Self {
        Self { signature: Signature::variadic_any(Volatility::Immutable) }
    }
}

impl AggregateUDFImpl for FeatureSampleUdaf {
    fn name(&self) -> &str {
        "sentio_feature_sample"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let width = args.exprs.len().saturating_sub(1);
        if width == 0 {
            return exec_err!("sentio_feature_sample needs a row hash and at least one value");
        }
        Ok(Box::new(SampleAccumulator { sample: FeatureSample::new(width), width }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(format!("{}[sample]", args.name), DataType::LargeBinary, true))])
    }
}

/// Samples rows; summarises at `evaluate`.
#[derive(Debug)]
struct SampleAccumulator {
    sample: FeatureSample,
    width: usize,
}

impl Accumulator for SampleAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let [hash, columns @ ..] = values else {
            return exec_err!("sentio_feature_sample: too few arguments");
        };
        if hash.data_type() != &DataType::Int64 || columns.iter().any(|c| c.data_type() != &DataType::Float64) {
            return exec_err!("sentio_feature_sample takes a BIGINT row hash and DOUBLE values");
        }
        let hash = hash.as_primitive::<Int64Type>();
        let columns: Vec<_> = columns.iter().map(|c| c.as_primitive::<Float64Type>()).collect();
        let mut row = vec![0.0; self.width];
        for r in 0..hash.len() {
            for (v, c) in row.iter_mut().zip(&columns) {
                *v = if c.is_null(r) { f64::NAN } else { c.value(r) };
            }
            self.sample.add(hash.value(r) as u64, &row);
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        if self.sample.rows() == 0 {
            return Ok(ScalarValue::Utf8(None));
        }
        let summaries: Vec<Summary> = std::mem::take(&mut self.sample).summaries();
        let json = serde_json::to_string(&summaries).map_err(|e| exec_datafusion_err!("sentio_feature_sample: {e}"))?;
        Ok(ScalarValue::Utf8(Some(json)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.sample.rows() * 8 * (1 + self.width)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::LargeBinary(Some(encode(&std::mem::take(&mut self.sample))))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let [samples] = states else {
            return exec_err!("sentio_feature_sample: bad state");
        };
        let samples = samples.as_binary::<i64>();
        for i in (0..samples.len()).filter(|&i| samples.is_valid(i)) {
            let other = decode(samples.value(i), self.width)
                .ok_or_else(|| exec_datafusion_err!("sentio_feature_sample: corrupt partial state"))?;
            self.sample.merge(&other);
        }
        Ok(())
    }
}

/// A sample as bytes: the row count, the hashes, then the values, little-endian.
fn encode(sample: &FeatureSample) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + sample.rows() * 8 + sample.values().len() * 8);
    out.extend_from_slice(&(sample.rows() as u64).to_le_bytes());
    sample.hashes().iter().for_each(|h| out.extend_from_slice(&h.to_le_bytes()));
    sample.values().iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
    out
}

/// The sample [`encode`] wrote, or `None` for bytes of another shape.
fn decode(bytes: &[u8], width: usize) -> Option<FeatureSample> {
    let rows = usize::try_from(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?)).ok()?;
    let (hashes, values) = bytes[8..].split_at_checked(rows.checked_mul(8)?)?;
    if values.len() != rows.checked_mul(width)?.checked_mul(8)? {
        return None;
    }
    let hash = hashes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
    let x = values.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
    FeatureSample::from_parts(width, hash, x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_survives_its_encoding_and_bad_bytes_are_refused() {
        let mut s = FeatureSample::new(2);
        s.add(5, &[1.0, f64::NAN]);
        s.add(3, &[0.25, 7.0]);
        let back = decode(&encode(&s), 2).expect("decodes");
        assert_eq!(back.hashes(), s.hashes());
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(back.values()), bits(s.values()));
        let bytes = encode(&s);
        assert!(decode(&bytes[..bytes.len() - 1], 2).is_none());
        assert!(decode(&bytes, 3).is_none());
        assert!(decode(&[1, 2], 2).is_none());
    }
}
