//! `sentio_vocab_index(x, vocabulary)` and `sentio_multi_hot(xs,
//! vocabulary)`: where values stand in an encoding vocabulary (see
//! [`super::counts::Vocabulary`]).
//!
//! Indices count from 1 in the vocabulary's order; 0 is NULL or a value
//! the vocabulary does not have (BigQuery ML's `ML.LABEL_ENCODER` and
//! `ML.MULTI_HOT_ENCODER`).
//!
//! ```sql
//! SELECT sentio_vocab_index('b', '["a","b"]');            -- 2
//! SELECT sentio_multi_hot(['b', 'z', 'b'], '["a","b"]');  -- [{index: 2, value: 1.0}, {index: 0, value: 1.0}]
//! ```

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Builder, Int64Array, Int64Builder, ListBuilder};
use datafusion::arrow::array::{StringArray, StructBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::{Result, exec_datafusion_err, exec_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

use super::parse_vocabulary;

/// Parsed vocabularies of a batch: the vocabulary column is usually one
/// value repeated (a constant, or a window aggregate), so it is parsed again
/// only when its text changes.
#[derive(Default)]
struct Vocabularies {
    text: Option<String>,
    words: Vec<String>,
}

impl Vocabularies {
    fn get(&mut self, text: &str) -> Result<&[String]> {
        if self.text.as_deref() != Some(text) {
            self.words = parse_vocabulary(text).map_err(|e| exec_datafusion_err!("{e}"))?;
            self.text = Some(text.to_string());
        }
        Ok(&self.words)
    }
}

/// `value`'s index in the sorted `words`: 1-based, 0 when absent.
fn index_of(words: &[String], value: &str) -> i64 {
    words.binary_search_by(|w| w.as_str().cmp(value)).map(|i| i as i64 + 1).unwrap_or(0)
}

/// A column as text.
fn texts(a: &ArrayRef) -> Result<StringArray> {
    Ok(cast(a, &DataType::Utf8)?.as_string::<i32>().clone())
}

/// The arguments as arrays of `rows` rows.
fn arrays(args: &ScalarFunctionArgs, what: &str) -> Result<(ArrayRef, StringArray)> {
    let arrays = ColumnarValue::values_to_arrays(&args.args)?;
    let [x, vocabulary] = arrays.as_slice() else {
        return exec_err!("{what} takes 2 arguments (value, vocabulary)");
    };
    Ok((Arc::clone(x), texts(vocabulary)?))
}

/// The `sentio_vocab_index(x, vocabulary)` scalar function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct VocabIndex {
    signature: Signature,
}

impl Default for VocabIndex {
    fn default() -> Self {
        Self::new()
    }
}

impl VocabIndex {
    /// Creates the function.
    pub fn new() -> Self {
        Self { signature: Signature::any(2, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for VocabIndex {
    fn name(&self) -> &str {
        "sentio_vocab_index"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (x, vocabulary) = arrays(&args, "sentio_vocab_index")?;
        let x = texts(&x)?;
        let mut parsed = Vocabularies::default();
        let mut out = Int64Builder::with_capacity(x.len());
        for i in 0..x.len() {
            if vocabulary.is_null(i) {
                out.append_null();
            } else if x.is_null(i) {
                out.append_value(0);
            } else {
                out.append_value(index_of(parsed.get(vocabulary.value(i))?, x.value(i)));
            }
        }
        let out: Int64Array = out.finish();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// `STRUCT<index INT64, value FLOAT64>`, an encoded category.
pub fn encoded_fields() -> Fields {
    Fields::from(vec![Field::new("index", DataType::Int64, true), Field::new("value", DataType::Float64, true)])
}

/// The `sentio_multi_hot(xs, vocabulary)` scalar function: each distinct
/// index of an array's values, in the order they first occur, with value 1.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MultiHot {
    signature: Signature,
}

impl Default for MultiHot {
    fn default() -> Self {
        Self::new()
    }
}

impl MultiHot {
    /// Creates the function.
    pub fn new() -> Self {
        Self { signature: Signature::any(2, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for MultiHot {
    fn name(&self) -> &str {
        "sentio_multi_hot"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::new_list(DataType::Struct(encoded_fields()), true))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (xs, vocabulary) = arrays(&args, "sentio_multi_hot")?;
        let rows: Vec<Option<ArrayRef>> = match xs.data_type() {
            DataType::List(_) => {
                let l = xs.as_list::<i32>();
                (0..l.len()).map(|i| l.is_valid(i).then(|| l.value(i))).collect()
            }
            DataType::LargeList(_) => {
                let l = xs.as_list::<i64>();
                (0..l.len()).map(|i| l.is_valid(i).then(|| l.value(i))).collect()
            }
            DataType::Null => vec![None; xs.len()],
            other => return exec_err!("ML.MULTI_HOT_ENCODER encodes an ARRAY<STRING>, not {other}"),
        };
        let fields = encoded_fields();
        let item =
            StructBuilder::new(fields.clone(), vec![Box::new(Int64Builder::new()), Box::new(Float64Builder::new())]);
        let mut out = ListBuilder::new(item).with_field(Arc::new(Field::new_struct("item", fields, true)));
        let mut parsed = Vocabularies::default();
        for (i, row) in rows.iter().enumerate() {
            let (Some(row), false) = (row, vocabulary.is_null(i)) else {
                out.append(false);
                continue;
            };
            let words = parsed.get(vocabulary.value(i))?;
            let row = texts(row)?;
            let mut seen: Vec<i64> = Vec::new();
            for j in 0..row.len() {
                let index = if row.is_null(j) { 0 } else { index_of(words, row.value(j)) };
                if !seen.contains(&index) {
                    seen.push(index);
                }
            }
            let values = out.values();
            for index in seen {
                values.field_builder::<Int64Builder>(0).expect("index").append_value(index);
                values.field_builder::<Float64Builder>(1).expect("value").append_value(1.0);
                values.append(true);
            }
            out.append(true);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_count_from_one_and_zero_is_unknown() {
        let words: Vec<String> = ["b", "c"].iter().map(|s| s.to_string()).collect();
        assert_eq!(index_of(&words, "b"), 1);
        assert_eq!(index_of(&words, "c"), 2);
        assert_eq!(index_of(&words, "a"), 0);
        assert_eq!(index_of(&words, "d"), 0);
        let mut v = Vocabularies::default();
        assert_eq!(v.get(r#"["x"]"#).unwrap(), ["x"]);
        assert!(v.get("not json").is_err());
    }
}
