//! The functions behind BigQuery ML's preprocessing functions
//! (`ML.LABEL_ENCODER`, `ML.ONE_HOT_ENCODER`, `ML.HASH_BUCKETIZE`, …),
//! which `sentio-sql` rewrites into SQL over them.
//!
//! * [`counts`] — `sentio_most_frequent(x)` and
//!   `sentio_vocabulary(x, top_k, frequency_threshold)`, the aggregates
//!   that learn a mode and an encoding vocabulary (also as window
//!   aggregates, `… OVER ()`);
//! * [`encode`] — `sentio_vocab_index(x, vocabulary)` and
//!   `sentio_multi_hot(xs, vocabulary)`, a value's place in a vocabulary;
//! * [`hashing`] — `farm_fingerprint(x)` (FarmHash Fingerprint64, as
//!   BigQuery's `FARM_FINGERPRINT`) and `sentio_hash_bucketize(x, n)`;
//! * [`normalize`] — `sentio_normalize(xs, p)`, an array scaled to unit
//!   p-norm;
//! * [`sparse`] — `sentio_sparse_value(entries, index)`, one index of a
//!   multi-hot or one-hot array.
//!
//! A vocabulary travels as a JSON array of strings, sorted by code point
//! (BigQuery ML's alphabetical order): the same text whether an aggregate
//! computed it in a query (dictionary-encoded, so that a window's rows share
//! it) or a model keeps it as a constant.

pub mod counts;
pub mod encode;
pub mod hashing;
pub mod normalize;
pub mod sparse;

/// Each row of a list column (`None` for a NULL row; a NULL column is all
/// NULL rows); `what` names the column in the error for any other type.
pub(crate) fn list_rows(
    values: &datafusion::arrow::array::ArrayRef,
    what: &str,
) -> datafusion::common::Result<Vec<Option<datafusion::arrow::array::ArrayRef>>> {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::DataType;
    Ok(match values.data_type() {
        DataType::List(_) => {
            let l = values.as_list::<i32>();
            (0..l.len()).map(|i| l.is_valid(i).then(|| l.value(i))).collect()
        }
        DataType::LargeList(_) => {
            let l = values.as_list::<i64>();
            (0..l.len()).map(|i| l.is_valid(i).then(|| l.value(i))).collect()
        }
        DataType::Null => vec![None; values.len()],
        other => return datafusion::common::exec_err!("{what} must be an ARRAY, not {other}"),
    })
}

/// Parses a vocabulary (a JSON array of strings, sorted).
pub fn parse_vocabulary(text: &str) -> Result<Vec<String>, String> {
    serde_json::from_str(text).map_err(|e| format!("a vocabulary must be a JSON array of strings: {e}"))
}
