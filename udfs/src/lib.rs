//! Sentio's DataFusion functions.
//!
//! Every function here is registered identically on the CLI client, the
//! scheduler and every executor (through `sentio_sql::session`): Ballista
//! sends functions by name, so a function known to one side and not the others
//! fails at run time. [`scalar_functions`] is the one list all three use.
//!
//! ```
//! # #[derive(Debug)] struct NoModels;
//! # impl sentio_udfs::ModelSource for NoModels {
//! #     fn fetch(&self, url: &str) -> Result<Vec<u8>, String> { Err(format!("no {url}")) }
//! # }
//! let names: Vec<String> = sentio_udfs::scalar_functions(std::sync::Arc::new(NoModels))
//!     .iter()
//!     .map(|f| f.name().to_string())
//!     .collect();
//! assert!(names.contains(&"hash_fraction".to_string()));
//! ```

pub mod cancel;
mod hash_fraction;
pub mod ml;
pub mod preprocess;
pub mod rng;

use std::sync::Arc;

use datafusion::logical_expr::{AggregateUDF, ScalarUDF};

use ml::factors::{FactorFn, FactorUdf};
use preprocess::hashing::{HashFn, HashUdf};

pub use hash_fraction::{HashFraction, hash_fraction_str, hash_fraction_u64};
pub use ml::predict_udf::ModelSource;

/// All of Sentio's scalar functions (the preprocessing ones and BigQuery's
/// `farm_fingerprint` among them); `sentio_predict`, `sentio_predict_value`,
/// `sentio_explain`, `sentio_weights` and the `sentio_mf_*` functions read
/// models through `models`.
pub fn scalar_functions(models: Arc<dyn ModelSource>) -> Vec<Arc<ScalarUDF>> {
    vec![
        Arc::new(ScalarUDF::new_from_impl(HashFraction::new())),
        Arc::new(ScalarUDF::new_from_impl(ml::row_fraction::RowFraction::new())),
        Arc::new(ScalarUDF::new_from_impl(ml::predict_udf::PredictUdf::new(Arc::clone(&models)))),
        Arc::new(ScalarUDF::new_from_impl(ml::predict_udf::PredictValueUdf::new(Arc::clone(&models)))),
        Arc::new(ScalarUDF::new_from_impl(ml::explain_udf::ExplainUdf::new(Arc::clone(&models)))),
        Arc::new(ScalarUDF::new_from_impl(ml::weights::WeightsUdf::new(Arc::clone(&models)))),
        Arc::new(ScalarUDF::new_from_impl(FactorUdf::new(FactorFn::Predict, Arc::clone(&models)))),
        Arc::new(ScalarUDF::new_from_impl(FactorUdf::new(FactorFn::Recommend, Arc::clone(&models)))),
        Arc::new(ScalarUDF::new_from_impl(FactorUdf::new(FactorFn::Ids, Arc::clone(&models)))),
        Arc::new(ScalarUDF::new_from_impl(FactorUdf::new(FactorFn::Ranks, Arc::clone(&models)))),
        Arc::new(ScalarUDF::new_from_impl(FactorUdf::new(FactorFn::Weights, models))),
        Arc::new(ScalarUDF::new_from_impl(preprocess::encode::VocabIndex::new())),
        Arc::new(ScalarUDF::new_from_impl(preprocess::encode::MultiHot::new())),
        Arc::new(ScalarUDF::new_from_impl(preprocess::normalize::Normalize::new())),
        Arc::new(ScalarUDF::new_from_impl(preprocess::sparse::SparseValue::new())),
        Arc::new(ScalarUDF::new_from_impl(HashUdf::new(HashFn::Fingerprint))),
        Arc::new(ScalarUDF::new_from_impl(HashUdf::new(HashFn::Bucketize))),
    ]
}

/// All of Sentio's aggregate functions.
pub fn aggregate_functions() -> Vec<Arc<AggregateUDF>> {
    vec![
        Arc::new(AggregateUDF::new_from_impl(ml::train_udaf::TrainUdaf::new())),
        Arc::new(AggregateUDF::new_from_impl(ml::metrics_udaf::MetricsUdaf::new())),
        Arc::new(AggregateUDF::new_from_impl(ml::als::AlsUdaf::new())),
        Arc::new(AggregateUDF::new_from_impl(preprocess::counts::MostFrequent::new())),
        Arc::new(AggregateUDF::new_from_impl(preprocess::counts::Vocabulary::new())),
    ]
}
