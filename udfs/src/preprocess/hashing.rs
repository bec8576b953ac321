//! `farm_fingerprint(x)` and `sentio_hash_bucketize(x, n)`.
//!
//! `farm_fingerprint` is FarmHash's Fingerprint64 of a string's UTF-8
//! bytes as a signed 64-bit integer, the value BigQuery's
//! `FARM_FINGERPRINT` gives; `sentio_hash_bucketize(x, n)` is that
//! fingerprint read as unsigned, modulo `n` (the fingerprint itself when
//! `n` is 0), which is what BigQuery ML's `ML.HASH_BUCKETIZE` gives.
//!
//! ```sql
//! SELECT farm_fingerprint('alphabet');   -- -2427165924636348523
//! SELECT sentio_hash_bucketize('d', 3);  -- 2
//! ```

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

/// BigQuery's `FARM_FINGERPRINT` of `bytes`.
///
/// ```
/// assert_eq!(sentio_udfs::preprocess::hashing::fingerprint(b"foo"), 6150913649986995171);
/// ```
pub fn fingerprint(bytes: &[u8]) -> i64 {
    farmhash::fingerprint64(bytes) as i64
}

/// `ML.HASH_BUCKETIZE`'s bucket of `bytes` among `buckets` (0: the
/// fingerprint itself).
pub fn bucket(bytes: &[u8], buckets: u64) -> i64 {
    let h = farmhash::fingerprint64(bytes);
    if buckets == 0 { h as i64 } else { (h % buckets) as i64 }
}

/// Whether the function is `farm_fingerprint` or `sentio_hash_bucketize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashFn {
    /// `farm_fingerprint(x)`.
    Fingerprint,
    /// `sentio_hash_bucketize(x, n)`.
    Bucketize,
}

/// The `farm_fingerprint` and `sentio_hash_bucketize` scalar functions.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct HashUdf {
    which: HashFn,
    signature: Signature,
}

impl HashUdf {
    /// Creates the function.
    pub fn new(which: HashFn) -> Self {
        let n = match which {
            HashFn::Fingerprint => 1,
            HashFn::Bucketize => 2,
        };
        Self { which, signature: Signature::any(n, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for HashUdf {
    fn name(&self) -> &str {
        match self.which {
            HashFn::Fingerprint => "farm_fingerprint",
            HashFn::Bucketize => "sentio_hash_bucketize",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let bytes = match arrays[0].data_type() {
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => cast(&arrays[0], &DataType::Binary)?,
            _ => cast(&cast(&arrays[0], &DataType::Utf8)?, &DataType::Binary)?,
        };
        let bytes = bytes.as_binary::<i32>();
        let out: Int64Array = match self.which {
            HashFn::Fingerprint => {
                (0..bytes.len()).map(|i| bytes.is_valid(i).then(|| fingerprint(bytes.value(i)))).collect()
            }
            HashFn::Bucketize => {
                let n = cast(&arrays[1], &DataType::Int64)?;
                let n = n.as_primitive::<Int64Type>();
                let mut out = Vec::with_capacity(bytes.len());
                for i in 0..bytes.len() {
                    if bytes.is_null(i) || n.is_null(i) {
                        out.push(None);
                        continue;
                    }
                    let Ok(buckets) = u64::try_from(n.value(i)) else {
                        return exec_err!("ML.HASH_BUCKETIZE: hash_bucket_size must be 0 or more, not {}", n.value(i));
                    };
                    out.push(Some(bucket(bytes.value(i), buckets)));
                }
                out.into_iter().collect()
            }
        };
        Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_bigquerys() {
        // Values BigQuery's FARM_FINGERPRINT documents and prints.
        assert_eq!(fingerprint(b"alphabet"), -2427165924636348523);
        assert_eq!(fingerprint(b"1footrue"), -1541654101129638711);
        assert_eq!(fingerprint(b"2applefalse"), 2794438866806483259);
        assert_eq!(fingerprint(b"3true"), -4880158226897771312);
        // ML.HASH_BUCKETIZE's example: a, b, c, d into three buckets.
        let buckets: Vec<i64> = ["a", "b", "c", "d"].iter().map(|s| bucket(s.as_bytes(), 3)).collect();
        assert_eq!(buckets, [0, 1, 1, 2]);
        assert_eq!(bucket(b"a", 0), fingerprint(b"a"));
    }
}
