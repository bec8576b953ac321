//! `sentio_cuts(spec, label, feature, …)`: each encoded feature's cut points
//! over a seeded sample of the training rows ([`crate::ml::cuts`]), as a JSON
//! list of lists of numbers.
//!
//! `CREATE MODEL` runs it before training a tree model and writes the answer
//! into the spec it gives `sentio_train`, whose partial aggregates then bin
//! rows where they are read. Its arguments are `sentio_train`'s without the
//! group: rows with a NULL label are left out, and so are the evaluation rows
//! when the spec says the last argument flags them (boosting cuts on the rows
//! it grows trees on).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, ScalarValue, exec_datafusion_err, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Signature, Volatility};

use crate::ml::cuts::CutSample;
use crate::ml::spec::TrainSpec;
use crate::ml::train_udaf::{literal_text, row_hash};

/// The `sentio_cuts` aggregate function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CutsUdaf {
    signature: Signature,
}

impl Default for CutsUdaf {
    fn default() -> Self {
        Self::new()
    }
}

impl CutsUdaf {
    /// Creates the function.
    pub fn new() -> Self {
        Self { signature: Signature::variadic_any(Volatility::Immutable) }
    }
}

impl AggregateUDFImpl for CutsUdaf {
    fn name(&self) -> &str {
        "sentio_cuts"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let spec_expr = args.exprs.first().ok_or_else(|| exec_datafusion_err!("sentio_cuts needs a spec"))?;
        let spec = TrainSpec::from_json(&literal_text(spec_expr, "sentio_cuts")?)?;
        let flags = usize::from(spec.eval_flag);
        if args.exprs.len() != 2 + spec.features.len() + flags {
            return exec_err!(
                "sentio_cuts: the spec has {} features, {} were given",
                spec.features.len(),
                args.exprs.len().saturating_sub(2 + flags)
            );
        }
        Ok(Box::new(CutsAccumulator { sample: CutSample::new(spec.width()), spec: Arc::new(spec) }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(format!("{}[sample]", args.name), DataType::LargeBinary, true))])
    }
}

/// Samples encoded rows; cuts at `evaluate`.
#[derive(Debug)]
struct CutsAccumulator {
    spec: Arc<TrainSpec>,
    sample: CutSample,
}

impl Accumulator for CutsAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let [_, label, rest @ ..] = values else {
            return exec_err!("sentio_cuts: too few arguments");
        };
        let (features, flags) = match rest.split_last() {
            Some((flag, features)) if self.spec.eval_flag => (features, Some(flag.as_boolean())),
            _ => (rest, None),
        };
        let x = self.spec.encode(features)?;
        let w = self.spec.width();
        for r in 0..label.len() {
            let held_out = flags.is_some_and(|f| f.is_valid(r) && f.value(r));
            if label.is_null(r) || held_out {
                continue;
            }
            let row = &x[r * w..(r + 1) * w];
            self.sample.add(row_hash(self.spec.seed, row, 0), row);
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        if self.sample.rows() == 0 {
            return Ok(ScalarValue::Utf8(None));
        }
        let cuts = std::mem::take(&mut self.sample).cuts();
        let json = serde_json::to_string(&cuts).map_err(|e| exec_datafusion_err!("sentio_cuts: {e}"))?;
        Ok(ScalarValue::Utf8(Some(json)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.sample.rows() * (8 + 4 * self.spec.width())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::LargeBinary(Some(encode(&std::mem::take(&mut self.sample))))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let [samples] = states else {
            return exec_err!("sentio_cuts: bad state");
        };
        let samples = samples.as_binary::<i64>();
        for i in (0..samples.len()).filter(|&i| samples.is_valid(i)) {
            let other = decode(samples.value(i), self.spec.width())
                .ok_or_else(|| exec_datafusion_err!("sentio_cuts: corrupt partial state"))?;
            self.sample.merge(&other);
        }
        Ok(())
    }
}

/// A sample as bytes: the row count, the hashes, then the values, little-endian.
fn encode(sample: &CutSample) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + sample.rows() * 8 + sample.values().len() * 4);
    out.extend_from_slice(&(sample.rows() as u64).to_le_bytes());
    sample.hashes().iter().for_each(|h| out.extend_from_slice(&h.to_le_bytes()));
    sample.values().iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
    out
}

/// The sample [`encode`] wrote, or `None` for bytes of another shape.
fn decode(bytes: &[u8], width: usize) -> Option<CutSample> {
    let rows = usize::try_from(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?)).ok()?;
    let (hashes, values) = bytes[8..].split_at_checked(rows.checked_mul(8)?)?;
    if values.len() != rows.checked_mul(width)?.checked_mul(4)? {
        return None;
    }
    let hash = hashes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
    let x = values.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect();
    CutSample::from_parts(width, hash, x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_survives_its_encoding_and_bad_bytes_are_refused() {
        let mut s = CutSample::new(2);
        s.add(5, &[1.0, -2.5]);
        s.add(3, &[0.25, 7.0]);
        let back = decode(&encode(&s), 2).expect("decodes");
        assert_eq!((back.hashes(), back.values()), (s.hashes(), s.values()));
        let bytes = encode(&s);
        assert!(decode(&bytes[..bytes.len() - 1], 2).is_none());
        assert!(decode(&bytes, 3).is_none());
        assert!(decode(&[1, 2], 2).is_none());
    }
}
