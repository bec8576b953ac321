//! Reading text columns whatever their Arrow string type.

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};

/// The values of a Utf8, LargeUtf8 or Utf8View column (`name` is for errors).
pub fn strings<'a>(col: &'a ArrayRef, name: &str) -> Result<Vec<Option<&'a str>>> {
    Ok(match col.data_type() {
        DataType::Utf8 => col.as_string::<i32>().iter().collect(),
        DataType::LargeUtf8 => col.as_string::<i64>().iter().collect(),
        DataType::Utf8View => col.as_string_view().iter().collect(),
        DataType::Null => vec![None; col.len()],
        other => return exec_err!("{name} must be text, not {other}"),
    })
}
