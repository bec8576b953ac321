//! `hash_fraction(value, seed)`: a deterministic pseudo-random number in
//! `[0, 1)` derived from a value, for reproducible sampling and splits.
//!
//! ```sql
//! -- a stable 10 % sample of sessions: the same rows on every run and machine
//! SELECT * FROM training.frames WHERE hash_fraction(session_id, 42) < 0.1;
//! ```

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};

/// SplitMix64 finaliser: a fast, well-mixed 64-bit bijection.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn to_unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// `hash_fraction` of an integer value.
///
/// ```
/// let a = sentio_udfs::hash_fraction_u64(7, 42);
/// assert!((0.0..1.0).contains(&a));
/// assert_eq!(a, sentio_udfs::hash_fraction_u64(7, 42));
/// assert_ne!(a, sentio_udfs::hash_fraction_u64(7, 43));
/// ```
pub fn hash_fraction_u64(value: u64, seed: u64) -> f64 {
    to_unit(mix64(mix64(value ^ 0x9e37_79b9_7f4a_7c15) ^ mix64(seed)))
}

/// `hash_fraction` of a string value (FNV-1a, then mixed with the seed).
pub fn hash_fraction_str(value: &str, seed: u64) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in value.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash_fraction_u64(h, seed)
}

/// The `hash_fraction(value, seed)` scalar function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct HashFraction {
    signature: Signature,
}

impl Default for HashFraction {
    fn default() -> Self {
        Self::new()
    }
}

impl HashFraction {
    /// Creates the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::one_of(
                vec![
                    TypeSignature::Exact(vec![DataType::Int64, DataType::Int64]),
                    TypeSignature::Exact(vec![DataType::Utf8, DataType::Int64]),
                ],
                Volatility::Immutable,
            ),
        }
    }
}

impl ScalarUDFImpl for HashFraction {
    fn name(&self) -> &str {
        "hash_fraction"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [values, seeds] = arrays.as_slice() else {
            return exec_err!("hash_fraction takes 2 arguments (value, seed)");
        };
        let seeds = seeds.as_primitive::<Int64Type>();
        let out: Float64Array = match values.data_type() {
            DataType::Int64 => {
                let v = values.as_primitive::<Int64Type>();
                (0..v.len())
                    .map(|i| {
                        (v.is_valid(i) && seeds.is_valid(i))
                            .then(|| hash_fraction_u64(v.value(i) as u64, seeds.value(i) as u64))
                    })
                    .collect()
            }
            DataType::Utf8 => {
                let v = values.as_string::<i32>();
                (0..v.len())
                    .map(|i| {
                        (v.is_valid(i) && seeds.is_valid(i))
                            .then(|| hash_fraction_str(v.value(i), seeds.value(i) as u64))
                    })
                    .collect()
            }
            other => return exec_err!("hash_fraction: unsupported value type {other}"),
        };
        Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roughly_uniform() {
        let n = 100_000u64;
        let below = (0..n).filter(|i| hash_fraction_u64(*i, 1) < 0.25).count() as f64;
        let share = below / n as f64;
        assert!((share - 0.25).abs() < 0.01, "share {share}");
    }

    #[test]
    fn strings_and_seeds() {
        assert_eq!(hash_fraction_str("abc", 1), hash_fraction_str("abc", 1));
        assert_ne!(hash_fraction_str("abc", 1), hash_fraction_str("abd", 1));
        assert_ne!(hash_fraction_str("abc", 1), hash_fraction_str("abc", 2));
    }
}
