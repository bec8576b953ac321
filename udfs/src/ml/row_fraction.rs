//! `row_fraction(seed, value, …)`: a deterministic number in `[0, 1)` from a
//! whole row's values — the same for the same values on every process, run
//! and machine. Sentio splits training and evaluation rows and deals
//! cross-validation folds with it; analysts can sample with it.
//!
//! ```sql
//! -- a stable 20 % of the frames, whatever their order or partitioning
//! SELECT * FROM training.frames WHERE row_fraction(7, session_id, frame_no) < 0.2;
//! ```
//!
//! Floating-point values are hashed at seven significant decimal digits
//! (see [`significant`](super::significant)): a value computed by a
//! distributed aggregate (`AVG(confidence)` per media item) can differ in
//! its last bits from run to run, because partial sums are merged in the
//! order the partitions arrive. Hashing every bit would move such a row to
//! another split or fold; at seven digits the same row stays put.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, Float64Array, Int64Array};
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type, Int64Type};
use datafusion::common::hash_utils::create_hashes_with_hasher;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

use super::significant::significant_key;
use crate::hash_fraction::hash_fraction_u64;

/// FNV-1a over the bytes written, mixed with a seed: stable across builds
/// (unlike the hashers of the standard library).
#[derive(Debug, Clone, Copy)]
pub struct StableHasher(u64);

impl Hasher for StableHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// Builds [`StableHasher`]s.
#[derive(Debug, Clone, Copy)]
pub struct StableState(pub u64);

impl BuildHasher for StableState {
    type Hasher = StableHasher;
    fn build_hasher(&self) -> StableHasher {
        StableHasher(0xcbf2_9ce4_8422_2325 ^ self.0)
    }
}

/// Floating-point arrays as [`significant_key`]s (`Int64`); other arrays
/// as they are. See the module docs. A NULL stays NULL (its slot's value is
/// never hashed).
pub fn canonical_floats(a: &ArrayRef) -> Result<ArrayRef> {
    let keys: Int64Array = match a.data_type() {
        DataType::Float64 => a.as_primitive::<Float64Type>().unary(significant_key),
        DataType::Float32 => a.as_primitive::<Float32Type>().unary(|v| significant_key(f64::from(v))),
        DataType::Float16 => {
            let doubles = datafusion::arrow::compute::cast(a, &DataType::Float64)?;
            doubles.as_primitive::<Float64Type>().unary(significant_key)
        }
        _ => return Ok(Arc::clone(a)),
    };
    Ok(Arc::new(keys))
}

/// The `row_fraction` scalar function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RowFraction {
    signature: Signature,
}

impl Default for RowFraction {
    fn default() -> Self {
        Self::new()
    }
}

impl RowFraction {
    /// Creates the function.
    pub fn new() -> Self {
        Self { signature: Signature::variadic_any(Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for RowFraction {
    fn name(&self) -> &str {
        "row_fraction"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        if arg_types.len() < 2 {
            return exec_err!("row_fraction takes a seed and at least one value");
        }
        if !arg_types[0].is_integer() {
            return exec_err!("row_fraction: the seed must be an integer, not {}", arg_types[0]);
        }
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let seed = match &args.args[0] {
            ColumnarValue::Scalar(s) => match s.cast_to(&DataType::Int64)? {
                datafusion::common::ScalarValue::Int64(Some(v)) => v as u64,
                _ => return exec_err!("row_fraction: the seed must not be NULL"),
            },
            ColumnarValue::Array(a) => {
                let a = datafusion::arrow::compute::cast(a, &DataType::Int64)?;
                let a = a.as_primitive::<Int64Type>();
                if a.is_empty() { 0 } else { a.value(0) as u64 }
            }
        };
        let values: Vec<ArrayRef> = args.args[1..].iter().map(|v| v.to_array(rows)).collect::<Result<_>>()?;
        Ok(ColumnarValue::Array(Arc::new(row_fractions(seed, &values)?)))
    }
}

/// `row_fraction(seed, values…)` of every row of `values` (equal lengths).
pub fn row_fractions(seed: u64, values: &[ArrayRef]) -> Result<Float64Array> {
    let rows = values.first().map_or(0, |a| a.len());
    let values: Vec<ArrayRef> = values.iter().map(canonical_floats).collect::<Result<_>>()?;
    let mut hashes = vec![0u64; rows];
    create_hashes_with_hasher(&values, &StableState(seed), &mut hashes)?;
    Ok(hashes.iter().map(|h| Some(hash_fraction_u64(*h, seed))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::StringArray;

    fn fraction(seed: u64, values: Vec<ArrayRef>) -> f64 {
        row_fractions(seed, &values).unwrap().value(0)
    }

    #[test]
    fn last_bit_differences_of_a_double_do_not_move_a_row() {
        let sum = 0.1f64 + 0.2;
        assert_ne!(sum.to_bits(), 0.3f64.to_bits(), "the two doubles differ in their last bit");
        let row = |x: f64| -> Vec<ArrayRef> {
            vec![Arc::new(StringArray::from(vec!["m1"])), Arc::new(Float64Array::from(vec![x]))]
        };
        assert_eq!(fraction(42, row(sum)), fraction(42, row(0.3)));
        assert_eq!(fraction(42, row(-0.0)), fraction(42, row(0.0)));
        assert_eq!(fraction(42, row(f64::NAN)), fraction(42, row(-f64::NAN)));
    }

    #[test]
    fn different_rows_and_seeds_get_different_fractions() {
        let row = |id: i64, x: f64| -> Vec<ArrayRef> {
            vec![Arc::new(Int64Array::from(vec![id])), Arc::new(Float64Array::from(vec![x]))]
        };
        let a = fraction(7, row(1, 0.25));
        assert!((0.0..1.0).contains(&a));
        assert_ne!(a, fraction(7, row(2, 0.25)));
        assert_ne!(a, fraction(7, row(1, 0.2501)));
        assert_ne!(a, fraction(8, row(1, 0.25)));
        assert_eq!(a, fraction(7, row(1, 0.25)));
    }
}
