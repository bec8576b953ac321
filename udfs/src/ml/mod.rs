//! Machine learning inside the cluster: the algorithms, and the functions
//! through which SQL trains and applies them.
//!
//! * [`als`] — `sentio_als`, one half-iteration of matrix factorization;
//! * [`factors`] — a factorization model and the `sentio_mf_*` functions
//!   that apply it;
//! * [`spec`] — what a model knows of its inputs and how it encodes them;
//! * [`tree`], [`boost`], [`logistic`], [`linear`], [`bayes`], [`knn`] — the
//!   algorithms;
//! * [`cholesky`] — symmetric positive definite systems (normal equations);
//! * [`cuts`] — tree models' quantile bins, found before training so that
//!   rows are binned where they are read, from a sample of the rows;
//! * [`model`] — training dispatch, merging parts, prediction, explanation;
//! * [`shap`] — exact feature attributions (Tree SHAP, linear terms);
//! * [`train_udaf`] — `sentio_train`, the aggregate that trains;
//! * [`sample_udaf`] — `sentio_feature_sample`, the training rows' sample
//!   (medians, and the cut points `sentio_train` bins with);
//! * [`predict_udf`] — `sentio_predict`, with a per-process model cache;
//! * [`explain_udf`] — `sentio_explain`, each prediction's attributions;
//! * [`weights`] — `sentio_weights`, a linear model's weights;
//! * [`metrics_udaf`] — `sentio_metrics`, classification metrics;
//! * [`row_fraction`] — `row_fraction`, a deterministic hash of whole rows;
//! * [`significant`] — doubles at seven significant digits, for answers that
//!   must not depend on the last bits of distributed aggregates.
//!
//! The statements that analysts write (`CREATE MODEL`, `ML.PREDICT`, …) are
//! rewritten into plans over these functions by `sentio-sql`.

pub mod als;
pub mod bayes;
pub mod boost;
pub mod cholesky;
pub mod cuts;
pub mod explain_udf;
pub mod factors;
pub mod knn;
pub mod linear;
pub mod logistic;
pub mod metrics_udaf;
pub mod model;
pub mod predict_udf;
pub mod row_fraction;
pub mod sample_udaf;
pub mod shap;
pub mod significant;
pub mod spec;
pub mod text;
pub mod train_udaf;
pub mod tree;
pub mod weights;

/// Encoded training rows: `x` row-major (`rows × width`), class indices and
/// per-row weights; a regressor's labels in `target` (its `y` all 0).
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    /// Features, row-major.
    pub x: Vec<f32>,
    /// Class index of each row.
    pub y: Vec<u32>,
    /// Weight of each row (its class weight).
    pub w: Vec<f64>,
    /// Encoded features per row.
    pub width: usize,
    /// A regressor's label of each row (empty for classifiers).
    pub target: Vec<f64>,
    /// Which rows are held out to stop boosting early (empty: none).
    pub eval: Vec<bool>,
}

impl Dataset {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.y.len()
    }
}
