//! `sentio_normalize(xs, p)`: an array of numbers divided by its p-norm
//! (BigQuery ML's `ML.NORMALIZER`).
//!
//! `p` is 1 or more, or infinity (the largest magnitude). NULL elements
//! stay NULL and do not count in the norm; an all-zero array stays zero.
//!
//! ```sql
//! SELECT sentio_normalize([3.0, 4.0], 2.0);  -- [0.6, 0.8]
//! ```

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Builder, ListBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

/// The p-norm of the present values of `xs`.
pub fn p_norm(xs: &[Option<f64>], p: f64) -> f64 {
    let present = xs.iter().flatten().map(|v| v.abs());
    if p.is_infinite() { present.fold(0.0, f64::max) } else { present.map(|v| v.powf(p)).sum::<f64>().powf(1.0 / p) }
}

/// The `sentio_normalize(xs, p)` scalar function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Normalize {
    signature: Signature,
}

impl Default for Normalize {
    fn default() -> Self {
        Self::new()
    }
}

impl Normalize {
    /// Creates the function.
    pub fn new() -> Self {
        Self { signature: Signature::any(2, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for Normalize {
    fn name(&self) -> &str {
        "sentio_normalize"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::new_list(DataType::Float64, true))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let xs = match arrays[0].data_type() {
            DataType::Null => cast(&arrays[0], &DataType::new_list(DataType::Float64, true))?,
            DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(_, _) => {
                cast(&arrays[0], &DataType::new_list(DataType::Float64, true))?
            }
            other => return exec_err!("ML.NORMALIZER normalizes an ARRAY of numbers, not {other}"),
        };
        let xs = xs.as_list::<i32>();
        let p = cast(&arrays[1], &DataType::Float64)?;
        let p = p.as_primitive::<Float64Type>();
        let mut out = ListBuilder::new(Float64Builder::new());
        for i in 0..xs.len() {
            if xs.is_null(i) || p.is_null(i) {
                out.append(false);
                continue;
            }
            let p = p.value(i);
            if p.is_nan() || p < 1.0 {
                return exec_err!("ML.NORMALIZER: p must be 1 or more (or '+inf'), not {p}");
            }
            let row = xs.value(i);
            let row = row.as_primitive::<Float64Type>();
            let values: Vec<Option<f64>> = (0..row.len()).map(|j| row.is_valid(j).then(|| row.value(j))).collect();
            let norm = p_norm(&values, p);
            for v in values {
                out.values().append_option(v.map(|v| if norm > 0.0 { v / norm } else { v }));
            }
            out.append(true);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn norms() {
        let xs = [Some(3.0), Some(-4.0), None];
        assert_eq!(p_norm(&xs, 2.0), 5.0);
        assert_eq!(p_norm(&xs, 1.0), 7.0);
        assert_eq!(p_norm(&xs, f64::INFINITY), 4.0);
    }
}
