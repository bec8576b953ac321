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
use datafusion::common::{Result, ScalarValue, exec_datafusion_err, exec_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

use super::{list_rows, parse_vocabulary};

/// The vocabulary of each row of a batch, each distinct one parsed once.
///
/// The vocabulary argument is one value for many rows: a constant (a
/// model's `TRANSFORM`), or a window aggregate, which `sentio_vocabulary`
/// returns dictionary-encoded so that its rows share one copy. Neither is
/// expanded to a copy per row here.
struct Vocabularies {
    parsed: Vec<Vec<String>>,
    /// Each row's index into `parsed` (None: a NULL vocabulary).
    rows: Vec<Option<usize>>,
}

impl Vocabularies {
    fn of(arg: &ColumnarValue, rows: usize) -> Result<Self> {
        let parse = |text: &str| parse_vocabulary(text).map_err(|e| exec_datafusion_err!("{e}"));
        match arg {
            ColumnarValue::Scalar(v) => {
                let text = match v {
                    ScalarValue::Dictionary(_, inner) => inner.as_ref(),
                    v => v,
                };
                let text = cast(&text.to_array_of_size(1)?, &DataType::Utf8)?;
                let text = text.as_string::<i32>();
                Ok(if text.is_null(0) {
                    Self { parsed: Vec::new(), rows: vec![None; rows] }
                } else {
                    Self { parsed: vec![parse(text.value(0))?], rows: vec![Some(0); rows] }
                })
            }
            ColumnarValue::Array(a) => match a.as_any_dictionary_opt() {
                Some(d) => {
                    let values = cast(d.values(), &DataType::Utf8)?;
                    let values = values.as_string::<i32>();
                    let keys = d.normalized_keys();
                    let mut parsed = Vec::new();
                    let mut slot: Vec<Option<usize>> = vec![None; values.len()];
                    let mut out = Vec::with_capacity(a.len());
                    for (i, key) in keys.into_iter().enumerate() {
                        if a.is_null(i) || values.is_null(key) {
                            out.push(None);
                            continue;
                        }
                        if slot[key].is_none() {
                            parsed.push(parse(values.value(key))?);
                            slot[key] = Some(parsed.len() - 1);
                        }
                        out.push(slot[key]);
                    }
                    Ok(Self { parsed, rows: out })
                }
                None => {
                    let texts = texts(a)?;
                    let mut parsed = Vec::new();
                    let mut last: Option<&str> = None;
                    let mut out = Vec::with_capacity(texts.len());
                    for i in 0..texts.len() {
                        if texts.is_null(i) {
                            out.push(None);
                            continue;
                        }
                        if last != Some(texts.value(i)) {
                            parsed.push(parse(texts.value(i))?);
                            last = Some(texts.value(i));
                        }
                        out.push(Some(parsed.len() - 1));
                    }
                    Ok(Self { parsed, rows: out })
                }
            },
        }
    }

    /// Row `i`'s vocabulary (None: NULL).
    fn get(&self, i: usize) -> Option<&[String]> {
        self.rows[i].map(|k| self.parsed[k].as_slice())
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

/// The values argument as an array, and the vocabularies.
fn arguments(args: &ScalarFunctionArgs, what: &str) -> Result<(ArrayRef, Vocabularies)> {
    let [x, vocabulary] = args.args.as_slice() else {
        return exec_err!("{what} takes 2 arguments (value, vocabulary)");
    };
    Ok((x.to_array(args.number_rows)?, Vocabularies::of(vocabulary, args.number_rows)?))
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
        let (x, vocabularies) = arguments(&args, "sentio_vocab_index")?;
        let x = texts(&x)?;
        let mut out = Int64Builder::with_capacity(x.len());
        for i in 0..x.len() {
            match vocabularies.get(i) {
                None => out.append_null(),
                Some(_) if x.is_null(i) => out.append_value(0),
                Some(words) => out.append_value(index_of(words, x.value(i))),
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
        let (xs, vocabularies) = arguments(&args, "sentio_multi_hot")?;
        let rows = list_rows(&xs, "ML.MULTI_HOT_ENCODER's input (an ARRAY<STRING>)")?;
        let fields = encoded_fields();
        let item =
            StructBuilder::new(fields.clone(), vec![Box::new(Int64Builder::new()), Box::new(Float64Builder::new())]);
        let mut out = ListBuilder::new(item).with_field(Arc::new(Field::new_struct("item", fields, true)));
        for (i, row) in rows.iter().enumerate() {
            let (Some(row), Some(words)) = (row, vocabularies.get(i)) else {
                out.append(false);
                continue;
            };
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
    use datafusion::arrow::array::{DictionaryArray, Int32Array};

    #[test]
    fn indices_count_from_one_and_zero_is_unknown() {
        let words: Vec<String> = ["b", "c"].iter().map(|s| s.to_string()).collect();
        assert_eq!(index_of(&words, "b"), 1);
        assert_eq!(index_of(&words, "c"), 2);
        assert_eq!(index_of(&words, "a"), 0);
        assert_eq!(index_of(&words, "d"), 0);
        let text = |t: &str| ColumnarValue::Scalar(ScalarValue::Utf8(Some(t.to_string())));
        let v = Vocabularies::of(&text(r#"["x"]"#), 3).unwrap();
        assert_eq!((v.get(0), v.get(2)), (Some(&["x".to_string()][..]), Some(&["x".to_string()][..])));
        assert!(Vocabularies::of(&text("not json"), 1).is_err());
        // A window aggregate's vocabulary: dictionary-encoded, parsed once per distinct value.
        let keys = Int32Array::from(vec![Some(0), None, Some(1), Some(0)]);
        let values = StringArray::from(vec![r#"["a"]"#, r#"["b","c"]"#]);
        let dict = ColumnarValue::Array(Arc::new(DictionaryArray::new(keys, Arc::new(values))));
        let v = Vocabularies::of(&dict, 4).unwrap();
        assert_eq!(v.parsed.len(), 2);
        assert_eq!((v.get(0).map(<[String]>::len), v.get(1), v.get(2).map(<[String]>::len)), (Some(1), None, Some(2)));
    }
}
