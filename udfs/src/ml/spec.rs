//! What a model knows about its input: the features (with their encodings)
//! and the labels, plus the algorithm and its hyperparameters. The client
//! computes a [`TrainSpec`] from statistics of the training query and sends it
//! as a JSON literal to the training aggregate; the same spec is stored in the
//! model's metadata and drives the encoding at prediction time, so a model
//! encodes its inputs identically wherever it runs.

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::common::{Result, exec_err};
use serde::{Deserialize, Serialize};

/// The learning algorithms Sentio trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Multinomial logistic regression (`logistic_reg`).
    LogisticReg,
    /// Random forest (`random_forest_classifier`).
    RandomForest,
    /// Random forest of regression trees (`random_forest_regressor`).
    RandomForestRegressor,
    /// Gradient-boosted trees (`boosted_tree_classifier`).
    BoostedTreeClassifier,
    /// Gradient-boosted regression trees (`boosted_tree_regressor`).
    BoostedTreeRegressor,
    /// One CART tree (`decision_tree_classifier`).
    DecisionTree,
    /// Gaussian naive Bayes (`naive_bayes_classifier`).
    NaiveBayes,
    /// k-nearest neighbours (`knn_classifier`).
    Knn,
    /// Least-squares linear regression (`linear_reg`), solved exactly from
    /// the Gram matrix of the rows ([`crate::ml::linear`]).
    LinearReg,
    /// Matrix factorization by alternating least squares
    /// (`matrix_factorization`): trained by `sentio_als`, applied by the
    /// `sentio_mf_*` functions ([`crate::ml::factors`]), never by
    /// `sentio_train` or `sentio_predict`.
    MatrixFactorization,
}

impl Algorithm {
    /// The `model_type` option value, as BigQuery ML spells it where it has one.
    pub fn model_type(self) -> &'static str {
        match self {
            Self::LogisticReg => "logistic_reg",
            Self::RandomForest => "random_forest_classifier",
            Self::RandomForestRegressor => "random_forest_regressor",
            Self::BoostedTreeClassifier => "boosted_tree_classifier",
            Self::BoostedTreeRegressor => "boosted_tree_regressor",
            Self::DecisionTree => "decision_tree_classifier",
            Self::NaiveBayes => "naive_bayes_classifier",
            Self::Knn => "knn_classifier",
            Self::LinearReg => "linear_reg",
            Self::MatrixFactorization => "matrix_factorization",
        }
    }

    /// Parses a `model_type` option value (case-insensitive).
    pub fn from_model_type(s: &str) -> Option<Self> {
        [
            Self::LogisticReg,
            Self::RandomForest,
            Self::RandomForestRegressor,
            Self::BoostedTreeClassifier,
            Self::BoostedTreeRegressor,
            Self::DecisionTree,
            Self::NaiveBayes,
            Self::Knn,
            Self::LinearReg,
            Self::MatrixFactorization,
        ]
        .into_iter()
        .find(|a| a.model_type().eq_ignore_ascii_case(s))
    }

    /// Whether the model predicts a number (a regressor) rather than a class.
    pub fn is_regressor(self) -> bool {
        matches!(self, Self::LinearReg | Self::RandomForestRegressor | Self::BoostedTreeRegressor)
    }

    /// Whether the model is gradient-boosted trees.
    pub fn is_boosted(self) -> bool {
        matches!(self, Self::BoostedTreeClassifier | Self::BoostedTreeRegressor)
    }

    /// Whether the model is made of trees grown on binned features (forests,
    /// a decision tree, boosted trees): its training rows can come binned.
    pub fn grows_trees(self) -> bool {
        self.is_forest() || self.is_boosted() || self == Self::DecisionTree
    }

    /// Whether its training task can measure the model's metrics over the
    /// training rows itself ([`TrainSpec::evaluate_training_rows`]): one
    /// task fits the whole classifier on every row.
    pub fn evaluates_in_training(self) -> bool {
        matches!(self, Self::BoostedTreeClassifier | Self::LogisticReg)
    }

    /// Whether the model is a forest of trees (dealt out to buckets).
    pub fn is_forest(self) -> bool {
        matches!(self, Self::RandomForest | Self::RandomForestRegressor)
    }
}

/// The mean and population standard deviation of a regressor's label over
/// the training rows: the label is fitted standardised (so the fixed-point
/// sums of [`crate::ml::linear::Gram`] keep their precision whatever its
/// units) and the fitted weights are turned back into its units.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// Mean of the label.
    pub mean: f64,
    /// Its standard deviation (1 when the label is constant).
    pub std: f64,
}

/// How a feature column becomes numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Encoding {
    /// A number, standardised: `(x - mean) / std`; NULL and NaN become the
    /// mean (0 after standardising).
    Numeric {
        /// Mean over the training rows (the imputed value).
        mean: f64,
        /// Population standard deviation (1 when the column is constant).
        std: f64,
    },
    /// Text, one-hot encoded over the categories seen in training; NULL and
    /// unseen categories encode as all zeros.
    Categorical {
        /// The categories, in a fixed order.
        categories: Vec<String>,
    },
}

/// One input column of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    /// Column name, as the training query produced it.
    pub name: String,
    /// Arrow type of the column at training time (for messages).
    pub sql_type: String,
    /// How it is encoded.
    pub encoding: Encoding,
}

impl FeatureSpec {
    /// Number of encoded values this feature contributes.
    pub fn width(&self) -> usize {
        match &self.encoding {
            Encoding::Numeric { .. } => 1,
            Encoding::Categorical { categories } => categories.len(),
        }
    }

    /// Whether the feature is numeric (else categorical).
    pub fn is_numeric(&self) -> bool {
        matches!(self.encoding, Encoding::Numeric { .. })
    }
}

/// Hyperparameters; each algorithm reads the ones it has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Params {
    /// Trees in a forest; a boosted model's trees per output and round
    /// (`num_parallel_tree`).
    pub num_trees: u32,
    /// Maximum tree depth (`max_tree_depth`).
    pub max_depth: u32,
    /// Fraction of rows each tree is grown on, drawn without replacement
    /// (`subsample`).
    pub subsample: f64,
    /// Fraction of features considered at each split (`colsample_bynode`;
    /// a boosted tree's: of its depth's features); 0 means √(number of
    /// features).
    pub colsample_bynode: f64,
    /// Minimum rows in a child (`min_tree_child_weight`).
    pub min_child_rows: u32,
    /// L2 penalty (`l2_reg`).
    pub l2_reg: f64,
    /// L1 penalty (`l1_reg`; linear regression, boosted trees).
    #[serde(default)]
    pub l1_reg: f64,
    /// Shrinkage of each boosted tree (`learn_rate`).
    #[serde(default)]
    pub learn_rate: f64,
    /// Share of features each boosted tree considers (`colsample_bytree`).
    #[serde(default)]
    pub colsample_bytree: f64,
    /// Share of a boosted tree's features each depth considers
    /// (`colsample_bylevel`).
    #[serde(default = "one")]
    pub colsample_bylevel: f64,
    /// Least loss reduction of a boosted tree's split (`min_split_loss`).
    #[serde(default)]
    pub min_split_loss: f64,
    /// Least hessian sum in a boosted tree's child (`min_tree_child_weight`).
    #[serde(default)]
    pub min_child_weight: f64,
    /// Stop boosting once a round improves the loss by less than
    /// `min_rel_progress` of it (`early_stop`).
    #[serde(default)]
    pub early_stop: bool,
    /// Iterations of the optimiser (`max_iterations`).
    pub max_iterations: u32,
    /// Stop when the loss improves by less than this fraction (`min_rel_progress`).
    pub min_rel_progress: f64,
    /// Neighbours (`num_neighbors`).
    pub num_neighbors: u32,
    /// Rows a k-NN model keeps (a deterministic sample beyond that).
    pub max_stored_rows: u64,
    /// Most rows that logistic regression, a decision tree or one group of a
    /// forest's trees is fit on (`max_training_rows`): beyond that, a seeded,
    /// deterministic sample, so that the final step of training needs bounded
    /// memory however large the training set is.
    #[serde(default = "default_max_training_rows")]
    pub max_training_rows: u64,
}

/// The default of [`Params::max_training_rows`]: about 0.7 GB for 32 numeric
/// features (4 bytes per encoded value and 12 per row).
pub const DEFAULT_MAX_TRAINING_ROWS: u64 = 5_000_000;

fn one() -> f64 {
    1.0
}

fn default_max_training_rows() -> u64 {
    DEFAULT_MAX_TRAINING_ROWS
}

impl Default for Params {
    fn default() -> Self {
        Self {
            num_trees: 100,
            max_depth: 15,
            subsample: 0.8,
            colsample_bynode: 0.0,
            min_child_rows: 1,
            l2_reg: 0.0,
            l1_reg: 0.0,
            learn_rate: 0.3,
            colsample_bytree: 1.0,
            colsample_bylevel: 1.0,
            min_split_loss: 0.0,
            min_child_weight: 1.0,
            early_stop: false,
            max_iterations: 50,
            min_rel_progress: 1e-4,
            num_neighbors: 5,
            max_stored_rows: 50_000,
            max_training_rows: DEFAULT_MAX_TRAINING_ROWS,
        }
    }
}

/// Everything the training aggregate needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSpec {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// The features, in argument order.
    pub features: Vec<FeatureSpec>,
    /// Class labels (as text), sorted; class `i` is `labels[i]`. Empty for
    /// a regressor.
    pub labels: Vec<String>,
    /// Weight of each class's rows (1 unless class weights were asked for).
    pub class_weights: Vec<f64>,
    /// Seed of every random choice.
    pub seed: u64,
    /// Groups the work is split into (forests: trees are dealt out to them).
    pub buckets: u32,
    /// How many training tasks share the buckets (0: one per bucket): task
    /// `g` trains buckets `g`, `g + groups`, … from one copy of the rows.
    /// Only the training query sets it — it decides where buckets train,
    /// never what they train, so a stored spec leaves it out.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub groups: u32,
    /// Hyperparameters.
    pub params: Params,
    /// A regressor's label statistics (None for classifiers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// Whether the training aggregate's last argument flags evaluation rows
    /// (BOOLEAN), which boosting holds out to stop early.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub eval_flag: bool,
    /// Each encoded feature's cut points (`sentio_cuts`, [`crate::ml::cuts`]):
    /// with them a tree model's partial aggregates bin rows where they are
    /// read. Like `groups`, only the training query sets it — the model's
    /// thresholds keep what it decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuts: Option<Vec<Vec<f32>>>,
    /// Whether the training task also reports the model's metrics over the
    /// rows it trained on (`CREATE MODEL` without evaluation rows, when the
    /// task holds every row and the whole model: boosted classifiers, from
    /// their training scores; logistic regression). Only the training query
    /// sets it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub evaluate_training_rows: bool,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl TrainSpec {
    /// The buckets training task `group` trains: every bucket when the spec
    /// has one group (or none), else `group`, `group + groups`, ….
    pub fn buckets_of(&self, group: u32) -> Vec<u32> {
        let buckets = self.buckets.max(1);
        let groups = if self.groups == 0 { buckets } else { self.groups.min(buckets) };
        (group..buckets).step_by(groups as usize).collect()
    }

    /// Parses a spec from its JSON text.
    pub fn from_json(s: &str) -> Result<Self> {
        serde_json::from_str(s)
            .map_err(|e| datafusion::error::DataFusionError::Execution(format!("bad model spec: {e}")))
    }

    /// The spec as JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a spec always serialises")
    }

    /// Most rows the training aggregate keeps for one part of the model
    /// (None: naive Bayes, which keeps statistics, not rows).
    pub fn row_cap(&self) -> Option<usize> {
        let cap = match self.algorithm {
            Algorithm::NaiveBayes | Algorithm::LinearReg => return None,
            Algorithm::Knn => self.params.max_stored_rows.min(self.params.max_training_rows),
            _ => self.params.max_training_rows,
        };
        Some(usize::try_from(cap).unwrap_or(usize::MAX).max(1))
    }

    /// Number of encoded feature values per row.
    pub fn width(&self) -> usize {
        self.features.iter().map(FeatureSpec::width).sum()
    }

    /// Which feature each encoded value belongs to.
    pub fn encoded_owner(&self) -> Vec<usize> {
        self.features.iter().enumerate().flat_map(|(i, f)| std::iter::repeat_n(i, f.width())).collect()
    }

    /// Encodes feature columns (numeric ones as Float64, categorical ones as
    /// Utf8) into a row-major matrix of `rows × width()` values.
    pub fn encode(&self, columns: &[ArrayRef]) -> Result<Vec<f32>> {
        Ok(self.encode_f64(columns)?.into_iter().map(|v| v as f32).collect())
    }

    /// [`Self::encode`] at full precision: what linear regression fits and
    /// predicts with (the other models keep rows as `f32`).
    pub fn encode_f64(&self, columns: &[ArrayRef]) -> Result<Vec<f64>> {
        if columns.len() != self.features.len() {
            return exec_err!("the model has {} features, {} values were given", self.features.len(), columns.len());
        }
        let rows = columns.first().map_or(0, |c| c.len());
        let width = self.width();
        let mut out = vec![0f64; rows * width];
        let mut offset = 0;
        for (spec, col) in self.features.iter().zip(columns) {
            match &spec.encoding {
                Encoding::Numeric { mean, std } => {
                    if col.data_type() != &DataType::Float64 {
                        return exec_err!("feature {} must be passed as DOUBLE", spec.name);
                    }
                    let values = col.as_primitive::<Float64Type>();
                    for r in 0..rows {
                        let v = if values.is_null(r) || values.value(r).is_nan() {
                            0.0
                        } else {
                            (values.value(r) - mean) / std
                        };
                        out[r * width + offset] = v;
                    }
                }
                Encoding::Categorical { categories } => {
                    let strings = crate::ml::text::strings(col, &spec.name)?;
                    for (r, v) in strings.iter().enumerate() {
                        if let Some(v) = v
                            && let Ok(k) = categories.binary_search_by(|c| c.as_str().cmp(v))
                        {
                            out[r * width + offset + k] = 1.0;
                        }
                    }
                }
            }
            offset += spec.width();
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float64Array, StringArray};
    use std::sync::Arc;

    #[test]
    fn encodes_numbers_categories_nulls_and_unseen() {
        let spec = TrainSpec {
            algorithm: Algorithm::LogisticReg,
            features: vec![
                FeatureSpec {
                    name: "x".into(),
                    sql_type: "Float64".into(),
                    encoding: Encoding::Numeric { mean: 2.0, std: 2.0 },
                },
                FeatureSpec {
                    name: "c".into(),
                    sql_type: "Utf8".into(),
                    encoding: Encoding::Categorical { categories: vec!["a".into(), "b".into()] },
                },
            ],
            labels: vec!["n".into(), "y".into()],
            class_weights: vec![1.0, 1.0],
            seed: 1,
            buckets: 1,
            groups: 0,
            params: Params::default(),
            target: None,
            eval_flag: false,
            cuts: None,
            evaluate_training_rows: false,
        };
        let x: ArrayRef = Arc::new(Float64Array::from(vec![Some(4.0), None, Some(f64::NAN)]));
        let c: ArrayRef = Arc::new(StringArray::from(vec![Some("b"), Some("zzz"), None]));
        let m = spec.encode(&[x, c]).unwrap();
        assert_eq!(m, vec![1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(spec.encoded_owner(), vec![0, 1, 1]);
        assert_eq!(TrainSpec::from_json(&spec.to_json()).unwrap(), spec);
    }
}
