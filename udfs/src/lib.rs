//! Sentio's DataFusion functions.
//!
//! Every function here is registered identically on the CLI client, the
//! scheduler and every executor (through `sentio_sql::session`): Ballista
//! sends functions by name, so a function known to one side and not the others
//! fails at run time. [`scalar_functions`] is the one list all three use.
//!
//! ```
//! let names: Vec<String> = sentio_udfs::scalar_functions()
//!     .iter()
//!     .map(|f| f.name().to_string())
//!     .collect();
//! assert!(names.contains(&"hash_fraction".to_string()));
//! ```

mod hash_fraction;

use std::sync::Arc;

use datafusion::logical_expr::ScalarUDF;

pub use hash_fraction::{HashFraction, hash_fraction_u64, hash_fraction_str};

/// All of Sentio's scalar functions.
pub fn scalar_functions() -> Vec<Arc<ScalarUDF>> {
    vec![Arc::new(ScalarUDF::new_from_impl(HashFraction::new()))]
}
