//! `sentio_sparse_value(entries, index)`: the value a sparse vector — an
//! array of `STRUCT<index, value>`, as `ML.MULTI_HOT_ENCODER` and
//! `ML.ONE_HOT_ENCODER` give — holds at one index: 0.0 where it has no
//! entry, NULL for a NULL vector. A model's `TRANSFORM` reads a multi-hot
//! column through it as one numeric feature per vocabulary index.
//!
//! ```sql
//! SELECT sentio_sparse_value(sentio_multi_hot(['b'], '["a","b"]'), 2);  -- 1.0
//! SELECT sentio_sparse_value(sentio_multi_hot(['b'], '["a","b"]'), 1);  -- 0.0
//! ```

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Builder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

use super::list_rows;

/// The `sentio_sparse_value(entries, index)` scalar function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SparseValue {
    signature: Signature,
}

impl Default for SparseValue {
    fn default() -> Self {
        Self::new()
    }
}

impl SparseValue {
    /// Creates the function.
    pub fn new() -> Self {
        Self { signature: Signature::any(2, Volatility::Immutable) }
    }
}

/// The sum of the values of `entries` (a struct array with `index` and
/// `value` fields) at `index`.
fn value_at(entries: &ArrayRef, index: i64) -> Result<f64> {
    let Some(entries) = entries.as_struct_opt() else {
        return exec_err!("sentio_sparse_value reads an ARRAY of STRUCT<index, value>, not {}", entries.data_type());
    };
    let (Some(indexes), Some(values)) = (entries.column_by_name("index"), entries.column_by_name("value")) else {
        return exec_err!("sentio_sparse_value reads STRUCT<index, value> entries, not {}", entries.data_type());
    };
    let indexes = cast(indexes, &DataType::Int64)?;
    let values = cast(values, &DataType::Float64)?;
    let (indexes, values) = (indexes.as_primitive::<Int64Type>(), values.as_primitive::<Float64Type>());
    Ok((0..entries.len())
        .filter(|&j| entries.is_valid(j) && indexes.is_valid(j) && indexes.value(j) == index && values.is_valid(j))
        .map(|j| values.value(j))
        .sum())
}

impl ScalarUDFImpl for SparseValue {
    fn name(&self) -> &str {
        "sentio_sparse_value"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let rows = list_rows(&arrays[0], "sentio_sparse_value's entries")?;
        let index = cast(&arrays[1], &DataType::Int64)?;
        let index = index.as_primitive::<Int64Type>();
        let mut out = Float64Builder::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            match row {
                Some(entries) if index.is_valid(i) => out.append_value(value_at(entries, index.value(i))?),
                _ => out.append_null(),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
    }
}
