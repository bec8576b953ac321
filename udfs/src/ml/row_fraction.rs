//! `row_fraction(seed, value, …)`: a deterministic number in `[0, 1)` from a
//! whole row's values — the same for the same values on every process, run
//! and machine. Sentio splits training and evaluation rows and deals
//! cross-validation folds with it; analysts can sample with it.
//!
//! ```sql
//! -- a stable 20 % of the frames, whatever their order or partitioning
//! SELECT * FROM training.frames WHERE row_fraction(7, session_id, frame_no) < 0.2;
//! ```

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, Float64Array};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::hash_utils::create_hashes_with_hasher;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

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
        Self {
            signature: Signature::variadic_any(Volatility::Immutable),
        }
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
        let values: Vec<ArrayRef> = args.args[1..]
            .iter()
            .map(|v| v.to_array(rows))
            .collect::<Result<_>>()?;
        let mut hashes = vec![0u64; rows];
        create_hashes_with_hasher(&values, &StableState(seed), &mut hashes)?;
        let out: Float64Array = hashes.iter().map(|h| Some(hash_fraction_u64(*h, seed))).collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}
