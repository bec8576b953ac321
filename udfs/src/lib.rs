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

/// Whether Sentio's function `name` does work out of proportion to the
/// bytes its statement reads: training a model's parts, solving users' or
/// items' factors, explaining a prediction, scoring a catalogue of items for
/// a user. A statement that calls one is spread over the cluster's task
/// slots however small its input (`sentio_sql::one_task`).
///
/// ```
/// assert!(sentio_udfs::compute_bound("sentio_train"));
/// assert!(!sentio_udfs::compute_bound("sentio_predict"));
/// ```
pub fn compute_bound(name: &str) -> bool {
    matches!(name, "sentio_train" | "sentio_als" | "sentio_explain" | "sentio_mf_recommend" | "sentio_mf_ranks")
}

/// All of Sentio's aggregate functions; `sentio_als` reads a
/// factorization's fixed side through `models`.
pub fn aggregate_functions(models: Arc<dyn ModelSource>) -> Vec<Arc<AggregateUDF>> {
    vec![
        Arc::new(AggregateUDF::new_from_impl(ml::train_udaf::TrainUdaf::new())),
        Arc::new(AggregateUDF::new_from_impl(ml::sample_udaf::FeatureSampleUdaf::new())),
        Arc::new(AggregateUDF::new_from_impl(ml::metrics_udaf::MetricsUdaf::new())),
        Arc::new(AggregateUDF::new_from_impl(ml::als::AlsUdaf::new(models))),
        Arc::new(AggregateUDF::new_from_impl(preprocess::counts::MostFrequent::new())),
        Arc::new(AggregateUDF::new_from_impl(preprocess::counts::Vocabulary::new())),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct NoModels;

    impl ModelSource for NoModels {
        fn fetch(&self, url: &str) -> Result<Vec<u8>, String> {
            Err(format!("no {url}"))
        }
    }

    #[test]
    fn compute_bound_functions_are_registered_ones() {
        let mut names: Vec<String> =
            scalar_functions(Arc::new(NoModels)).iter().map(|f| f.name().to_string()).collect();
        names.extend(aggregate_functions(Arc::new(NoModels)).iter().map(|f| f.name().to_string()));
        let bound: Vec<&String> = names.iter().filter(|n| compute_bound(n)).collect();
        assert_eq!(bound.len(), 5, "{bound:?}");
    }
}
