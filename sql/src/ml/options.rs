//! `CREATE MODEL … OPTIONS (…)`: the options Sentio knows, checked and typed.
//! Names follow BigQuery ML; an unknown option or a value of the wrong kind is
//! an error naming it.

use sentio_udfs::ml::spec::{Algorithm, Params};

use serde::{Deserialize, Serialize};

use crate::ml::MlError;
use crate::ml::parse::OptValue;

/// How training rows are split off for evaluation (`data_split_method`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SplitMethod {
    /// Below 500 rows no split; up to 50,000 rows 20 %; above, 10,000 rows.
    Auto,
    /// A seeded random share (`data_split_eval_fraction`, default 0.2).
    Random(f64),
    /// Rows where the boolean `data_split_col` is TRUE are for evaluation.
    Custom(String),
    /// All rows train.
    NoSplit,
}

/// Class weights (`auto_class_weights` / `class_weights`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ClassWeights {
    /// All 1.
    None,
    /// Inverse to class frequency.
    Auto,
    /// Given per label.
    Given(Vec<(String, f64)>),
}

/// The checked options of a CREATE MODEL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    /// `model_type`.
    pub algorithm: Algorithm,
    /// `input_label_cols` (one label).
    pub label: String,
    /// `data_split_method` and its companions.
    pub split: SplitMethod,
    /// Class weights.
    pub class_weights: ClassWeights,
    /// `seed` (default 0).
    pub seed: u64,
    /// Hyperparameters.
    pub params: Params,
    /// `enable_global_explain`: compute the global explanation at training.
    #[serde(default)]
    pub global_explain: bool,
}

/// Every option CREATE MODEL accepts.
pub const KNOWN_OPTIONS: [&str; 29] = [
    "model_type",
    "input_label_cols",
    "data_split_method",
    "data_split_eval_fraction",
    "data_split_col",
    "auto_class_weights",
    "class_weights",
    "seed",
    "num_parallel_tree",
    "max_tree_depth",
    "subsample",
    "colsample_bynode",
    "min_tree_child_weight",
    "l2_reg",
    "l1_reg",
    "optimize_strategy",
    "learn_rate",
    "colsample_bytree",
    "colsample_bylevel",
    "min_split_loss",
    "booster_type",
    "tree_method",
    "early_stop",
    "max_iterations",
    "min_rel_progress",
    "num_neighbors",
    "max_stored_rows",
    "max_training_rows",
    "enable_global_explain",
];

/// The options that steer hyperparameter tuning ([`crate::ml::tuning`],
/// which takes them out before the others are checked here).
pub const TUNING_OPTIONS: [&str; 4] =
    ["num_trials", "max_parallel_trials", "hparam_tuning_algorithm", "hparam_tuning_objectives"];

/// The hyperparameters each model type takes: the others are refused for
/// it, not accepted and ignored (BigQuery ML has `l2_reg` for forests, for
/// one; Sentio's forests have no such penalty).
fn hyperparameters(algorithm: Algorithm) -> &'static [&'static str] {
    match algorithm {
        // A regressor's forest takes the classifier's options.
        Algorithm::RandomForest | Algorithm::RandomForestRegressor => &[
            "num_parallel_tree",
            "max_tree_depth",
            "subsample",
            "colsample_bynode",
            "min_tree_child_weight",
            "max_training_rows",
            "enable_global_explain",
        ],
        // Gradient-boosted trees, trained in one task (see docs/sql.md).
        Algorithm::BoostedTreeClassifier | Algorithm::BoostedTreeRegressor => &[
            "max_iterations",
            "learn_rate",
            "max_tree_depth",
            "subsample",
            "num_parallel_tree",
            "colsample_bytree",
            "colsample_bylevel",
            "colsample_bynode",
            "l1_reg",
            "l2_reg",
            "min_split_loss",
            "min_tree_child_weight",
            "booster_type",
            "tree_method",
            "early_stop",
            "min_rel_progress",
            "max_training_rows",
            "enable_global_explain",
        ],
        Algorithm::DecisionTree => {
            &["max_tree_depth", "min_tree_child_weight", "max_training_rows", "enable_global_explain"]
        }
        Algorithm::LogisticReg => {
            &["l2_reg", "max_iterations", "min_rel_progress", "max_training_rows", "enable_global_explain"]
        }
        // Per-class statistics over every row: nothing to tune or bound.
        Algorithm::NaiveBayes => &[],
        // Solved exactly from sums over every row: no iterations, no sample.
        Algorithm::LinearReg => &["l1_reg", "l2_reg", "optimize_strategy", "enable_global_explain"],
        Algorithm::Knn => &["num_neighbors", "max_stored_rows", "max_training_rows"],
        // Its own options (FactorOptions), checked there.
        Algorithm::MatrixFactorization => &[],
    }
}

/// Options every model type takes.
const COMMON_OPTIONS: [&str; 8] = [
    "model_type",
    "input_label_cols",
    "data_split_method",
    "data_split_eval_fraction",
    "data_split_col",
    "auto_class_weights",
    "class_weights",
    "seed",
];

/// Refuses an option that `algorithm` does not take, naming those it does.
fn check_applies(algorithm: Algorithm, options: &[(String, OptValue)]) -> Result<(), MlError> {
    let takes = hyperparameters(algorithm);
    for (k, _) in options {
        if !COMMON_OPTIONS.contains(&k.as_str()) && !takes.contains(&k.as_str()) {
            let model_type = algorithm.model_type();
            let its = if takes.is_empty() { "none".to_string() } else { takes.join(", ") };
            return Err(MlError::Option(format!(
                "{k} does not apply to {model_type} in Sentio (its hyperparameters: {its})"
            )));
        }
    }
    Ok(())
}

fn bad(option: &str, want: &str, got: &OptValue) -> MlError {
    MlError::Option(format!("{option} must be {want}, not {got}"))
}

fn string(option: &str, v: &OptValue) -> Result<String, MlError> {
    match v {
        OptValue::Str(s) => Ok(s.clone()),
        other => Err(bad(option, "a string", other)),
    }
}

fn number(option: &str, v: &OptValue, lo: f64, hi: f64) -> Result<f64, MlError> {
    match v {
        OptValue::Num(n) if (lo..=hi).contains(n) => Ok(*n),
        OptValue::Num(n) => Err(MlError::Option(format!("{option} must be between {lo} and {hi}, not {n}"))),
        other => Err(bad(option, "a number", other)),
    }
}

fn integer(option: &str, v: &OptValue, lo: u64, hi: u64) -> Result<u64, MlError> {
    let n = number(option, v, lo as f64, hi as f64)?;
    if n.fract() != 0.0 {
        return Err(bad(option, "a whole number", v));
    }
    Ok(n as u64)
}

fn boolean(option: &str, v: &OptValue) -> Result<bool, MlError> {
    match v {
        OptValue::Bool(b) => Ok(*b),
        other => Err(bad(option, "TRUE or FALSE", other)),
    }
}

/// The `data_split_method` of `options` with its companions
/// (`data_split_eval_fraction`, `data_split_col`), checked.
fn split_method(options: &[(String, OptValue)]) -> Result<SplitMethod, MlError> {
    let get = |k: &str| options.iter().find(|(n, _)| n == k).map(|(_, v)| v);
    let method = get("data_split_method")
        .map(|v| string("data_split_method", v))
        .transpose()?
        .unwrap_or_else(|| "AUTO_SPLIT".into())
        .to_ascii_uppercase();
    let fraction =
        get("data_split_eval_fraction").map(|v| number("data_split_eval_fraction", v, 0.0, 0.9)).transpose()?;
    let split_col = get("data_split_col").map(|v| string("data_split_col", v)).transpose()?;
    let split = match method.as_str() {
        "AUTO_SPLIT" => SplitMethod::Auto,
        "RANDOM" => SplitMethod::Random(fraction.unwrap_or(0.2)),
        "CUSTOM" => SplitMethod::Custom(
            split_col
                .clone()
                .ok_or_else(|| MlError::Option("data_split_method = 'CUSTOM' needs data_split_col".into()))?,
        ),
        "NO_SPLIT" => SplitMethod::NoSplit,
        other => {
            return Err(MlError::Option(format!(
                "unknown data_split_method '{other}' (AUTO_SPLIT, RANDOM, CUSTOM or NO_SPLIT)"
            )));
        }
    };
    if fraction.is_some() && !matches!(split, SplitMethod::Random(_)) {
        return Err(MlError::Option("data_split_eval_fraction goes with data_split_method = 'RANDOM'".into()));
    }
    if split_col.is_some() && !matches!(split, SplitMethod::Custom(_)) {
        return Err(MlError::Option("data_split_col goes with data_split_method = 'CUSTOM'".into()));
    }
    Ok(split)
}

/// Checks the choices of a boosted model Sentio has one of: `booster_type =
/// 'GBTREE'`, `tree_method` `'HIST'` or `'AUTO'` (histograms of quantile
/// bins).
fn check_boosting_choices(booster: Option<&OptValue>, method: Option<&OptValue>) -> Result<(), MlError> {
    if let Some(v) = booster
        && !string("booster_type", v)?.eq_ignore_ascii_case("gbtree")
    {
        return Err(MlError::Option(format!("booster_type {v} is not implemented in Sentio (only 'GBTREE')")));
    }
    if let Some(v) = method {
        let m = string("tree_method", v)?.to_ascii_uppercase();
        if m != "HIST" && m != "AUTO" {
            return Err(MlError::Option(format!(
                "tree_method '{m}' is not Sentio's: it grows trees from histograms ('HIST', also for 'AUTO')"
            )));
        }
    }
    Ok(())
}

/// Checks `optimize_strategy` of a `linear_reg`: Sentio always solves
/// exactly (the normal equations, or coordinate descent with `l1_reg`), which
/// is what `AUTO_STRATEGY` and `NORMAL_EQUATION` ask for; gradient descent's
/// approximate answer and its learning-rate options are not implemented.
fn check_optimize_strategy(strategy: &str, l1_reg: f64) -> Result<(), MlError> {
    match strategy.to_ascii_uppercase().as_str() {
        "AUTO_STRATEGY" => Ok(()),
        "NORMAL_EQUATION" if l1_reg > 0.0 => Err(MlError::Option(
            "optimize_strategy = 'NORMAL_EQUATION' has no L1 penalty; with l1_reg leave optimize_strategy out \
             (Sentio then solves by coordinate descent)"
                .into(),
        )),
        "NORMAL_EQUATION" => Ok(()),
        "BATCH_GRADIENT_DESCENT" => Err(MlError::Option(
            "optimize_strategy = 'BATCH_GRADIENT_DESCENT' is not implemented in Sentio: linear_reg is solved \
             exactly from the rows' sums (leave optimize_strategy out, or 'NORMAL_EQUATION')"
                .into(),
        )),
        other => Err(MlError::Option(format!(
            "unknown optimize_strategy '{other}' (AUTO_STRATEGY, NORMAL_EQUATION or BATCH_GRADIENT_DESCENT)"
        ))),
    }
}

impl TrainOptions {
    /// Checks and types the options of a CREATE MODEL.
    pub fn from_options(options: &[(String, OptValue)]) -> Result<Self, MlError> {
        for (k, _) in options {
            if !KNOWN_OPTIONS.contains(&k.as_str()) {
                return Err(MlError::Option(format!(
                    "unknown option {k}; CREATE MODEL knows {}, and for tuning {}",
                    KNOWN_OPTIONS.join(", "),
                    TUNING_OPTIONS.join(", ")
                )));
            }
        }
        let get = |k: &str| options.iter().find(|(n, _)| n == k).map(|(_, v)| v);
        let model_type = get("model_type")
            .ok_or_else(|| MlError::Option("model_type is required, e.g. model_type = 'logistic_reg'".into()))?;
        let model_type = string("model_type", model_type)?;
        let algorithm = Algorithm::from_model_type(&model_type).ok_or_else(|| {
            MlError::Option(format!(
                "unknown model_type '{model_type}'; Sentio trains logistic_reg, linear_reg, \
                 random_forest_classifier, random_forest_regressor, boosted_tree_classifier, \
                 boosted_tree_regressor, decision_tree_classifier, naive_bayes_classifier, knn_classifier, \
                 matrix_factorization"
            ))
        })?;
        check_applies(algorithm, options)?;
        let label = match get("input_label_cols") {
            None => "label".to_string(),
            Some(OptValue::Array(v)) if v.len() == 1 => string("input_label_cols", &v[0])?,
            Some(OptValue::Str(s)) => s.clone(),
            Some(other) => return Err(bad("input_label_cols", "an array of one column name, e.g. ['emotion']", other)),
        };
        let split = split_method(options)?;
        let auto = get("auto_class_weights").map(|v| boolean("auto_class_weights", v)).transpose()?;
        let class_weights = match (auto, get("class_weights")) {
            (Some(true), Some(_)) => {
                return Err(MlError::Option("auto_class_weights and class_weights exclude each other".into()));
            }
            (Some(true), None) => ClassWeights::Auto,
            (_, Some(OptValue::Array(items))) => ClassWeights::Given(
                items
                    .iter()
                    .map(|i| match i {
                        OptValue::Struct(v) if v.len() == 2 => Ok((
                            match &v[0] {
                                OptValue::Str(s) => s.clone(),
                                OptValue::Num(n) => n.to_string(),
                                OptValue::Bool(b) => b.to_string(),
                                other => return Err(bad("class_weights", "[STRUCT('label', weight), …]", other)),
                            },
                            number("class_weights", &v[1], 0.0, f64::MAX)?,
                        )),
                        other => Err(bad("class_weights", "[STRUCT('label', weight), …]", other)),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            (_, Some(other)) => return Err(bad("class_weights", "[STRUCT('label', weight), …]", other)),
            _ => ClassWeights::None,
        };
        if algorithm.is_regressor() && (auto == Some(true) || class_weights != ClassWeights::None) {
            return Err(MlError::Option(format!(
                "auto_class_weights and class_weights weight a classifier's classes; {} is a regressor",
                algorithm.model_type()
            )));
        }
        let seed = get("seed").map(|v| integer("seed", v, 0, u64::from(u32::MAX))).transpose()?.unwrap_or(0);
        let mut params = Params::default();
        if algorithm == Algorithm::DecisionTree {
            params.max_depth = 10;
        }
        if algorithm.is_boosted() {
            // BigQuery ML's defaults for boosted trees.
            params.max_depth = 6;
            params.subsample = 1.0;
            params.l2_reg = 1.0;
            params.max_iterations = 20;
            params.early_stop = true;
            params.min_rel_progress = 0.01;
            params.num_trees = 1;
            params.colsample_bynode = 1.0;
        }
        if algorithm == Algorithm::RandomForestRegressor {
            // BigQuery ML's default; √features (the classifier's) starves
            // regression trees of the features that carry the signal.
            params.colsample_bynode = 0.8;
        }
        if let Some(v) = get("num_parallel_tree") {
            params.num_trees = integer("num_parallel_tree", v, 1, 10_000)? as u32;
        }
        if let Some(v) = get("max_tree_depth") {
            params.max_depth = integer("max_tree_depth", v, 1, 64)? as u32;
        }
        if let Some(v) = get("subsample") {
            params.subsample = number("subsample", v, 0.01, 1.0)?;
        }
        if let Some(v) = get("colsample_bynode") {
            params.colsample_bynode = number("colsample_bynode", v, 0.01, 1.0)?;
        }
        if let Some(v) = get("min_tree_child_weight") {
            if algorithm.is_boosted() {
                // Boosting counts the loss's hessian, as XGBoost does.
                params.min_child_weight = number("min_tree_child_weight", v, 0.0, 1e12)?;
            } else {
                params.min_child_rows = integer("min_tree_child_weight", v, 1, 1_000_000)? as u32;
            }
        }
        if let Some(v) = get("learn_rate") {
            params.learn_rate = number("learn_rate", v, 1e-6, 1.0)?;
        }
        if let Some(v) = get("colsample_bytree") {
            params.colsample_bytree = number("colsample_bytree", v, 0.01, 1.0)?;
        }
        if let Some(v) = get("colsample_bylevel") {
            params.colsample_bylevel = number("colsample_bylevel", v, 0.01, 1.0)?;
        }
        if let Some(v) = get("min_split_loss") {
            params.min_split_loss = number("min_split_loss", v, 0.0, 1e12)?;
        }
        check_boosting_choices(get("booster_type"), get("tree_method"))?;
        if let Some(v) = get("early_stop") {
            params.early_stop = boolean("early_stop", v)?;
            if !params.early_stop && get("min_rel_progress").is_some() {
                return Err(MlError::Option("min_rel_progress goes with early_stop = TRUE".into()));
            }
        }
        if let Some(v) = get("l2_reg") {
            params.l2_reg = number("l2_reg", v, 0.0, 1e12)?;
        }
        if let Some(v) = get("l1_reg") {
            params.l1_reg = number("l1_reg", v, 0.0, 1e12)?;
        }
        if let Some(v) = get("optimize_strategy") {
            check_optimize_strategy(&string("optimize_strategy", v)?, params.l1_reg)?;
        }
        if let Some(v) = get("max_iterations") {
            params.max_iterations = integer("max_iterations", v, 1, 100_000)? as u32;
        }
        if let Some(v) = get("min_rel_progress") {
            params.min_rel_progress = number("min_rel_progress", v, 0.0, 1.0)?;
        }
        if let Some(v) = get("num_neighbors") {
            params.num_neighbors = integer("num_neighbors", v, 1, 10_000)? as u32;
        }
        if let Some(v) = get("max_stored_rows") {
            params.max_stored_rows = integer("max_stored_rows", v, 1, 10_000_000)?;
        }
        if let Some(v) = get("max_training_rows") {
            params.max_training_rows = integer("max_training_rows", v, 1, 1_000_000_000)?;
        }
        let global_explain =
            get("enable_global_explain").map(|v| boolean("enable_global_explain", v)).transpose()?.unwrap_or(false);
        Ok(Self { algorithm, label, split, class_weights, seed, params, global_explain })
    }
}

/// Every option of a `matrix_factorization` model.
pub const FACTOR_OPTIONS: [&str; 15] = [
    "model_type",
    "feedback_type",
    "user_col",
    "item_col",
    "rating_col",
    "num_factors",
    "l2_reg",
    "wals_alpha",
    "max_iterations",
    "early_stop",
    "min_rel_progress",
    "data_split_method",
    "data_split_eval_fraction",
    "data_split_col",
    "seed",
];

/// The checked options of a `matrix_factorization` model, with BigQuery
/// ML's names and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FactorOptions {
    /// `feedback_type = 'implicit'` (default `'explicit'`).
    pub implicit: bool,
    /// `user_col` (default `user`).
    pub user_col: String,
    /// `item_col` (default `item`).
    pub item_col: String,
    /// `rating_col` (default `rating`).
    pub rating_col: String,
    /// `num_factors`; None: log2 of the training rows, as BigQuery ML.
    pub num_factors: Option<u32>,
    /// `l2_reg` (default 0.1, not BigQuery ML's 1.0: it is per rating of the
    /// solved user or item, as Spark's ALS), see [`sentio_udfs::ml::als`].
    pub l2_reg: f64,
    /// `wals_alpha` (default 40; implicit feedback only).
    pub wals_alpha: f64,
    /// `max_iterations` (default 20): each solves users, then items.
    pub max_iterations: u32,
    /// `early_stop` (default TRUE).
    pub early_stop: bool,
    /// `min_rel_progress` (default 0.01).
    pub min_rel_progress: f64,
    /// `data_split_method` and its companions.
    pub split: SplitMethod,
    /// `seed` of the initial factors and of the split (default 0).
    pub seed: u64,
}

/// Most latent factors per user or item.
pub const MAX_FACTORS: u64 = 256;

impl FactorOptions {
    /// The options of a `matrix_factorization` model, checked; None when
    /// `model_type` names another model type (or none).
    pub fn from_options(options: &[(String, OptValue)]) -> Result<Option<Self>, MlError> {
        let get = |k: &str| options.iter().find(|(n, _)| n == k).map(|(_, v)| v);
        match get("model_type") {
            Some(OptValue::Str(t)) if t.eq_ignore_ascii_case("matrix_factorization") => {}
            _ => return Ok(None),
        }
        for (k, _) in options {
            if TUNING_OPTIONS.contains(&k.as_str()) {
                return Err(MlError::Option(format!(
                    "{k}: hyperparameter tuning of matrix_factorization models is not implemented in Sentio"
                )));
            }
            if !FACTOR_OPTIONS.contains(&k.as_str()) {
                return Err(MlError::Option(format!(
                    "{k} does not apply to matrix_factorization in Sentio (its options: {})",
                    FACTOR_OPTIONS[1..].join(", ")
                )));
            }
        }
        let text =
            |k: &str, default: &str| get(k).map(|v| string(k, v)).transpose().map(|v| v.unwrap_or(default.into()));
        let implicit = match text("feedback_type", "explicit")?.to_ascii_lowercase().as_str() {
            "explicit" => false,
            "implicit" => true,
            other => {
                return Err(MlError::Option(format!("feedback_type must be 'explicit' or 'implicit', not '{other}'")));
            }
        };
        if !implicit && get("wals_alpha").is_some() {
            return Err(MlError::Option("wals_alpha applies to feedback_type = 'implicit' only".into()));
        }
        let (user_col, item_col, rating_col) =
            (text("user_col", "user")?, text("item_col", "item")?, text("rating_col", "rating")?);
        if user_col == item_col || user_col == rating_col || item_col == rating_col {
            return Err(MlError::Option(format!(
                "user_col, item_col and rating_col must be three columns, not {user_col}, {item_col}, {rating_col}"
            )));
        }
        Ok(Some(Self {
            implicit,
            user_col,
            item_col,
            rating_col,
            num_factors: get("num_factors")
                .map(|v| integer("num_factors", v, 1, MAX_FACTORS))
                .transpose()?
                .map(|n| n as u32),
            l2_reg: get("l2_reg").map(|v| number("l2_reg", v, 0.0, 1e12)).transpose()?.unwrap_or(0.1),
            wals_alpha: get("wals_alpha").map(|v| number("wals_alpha", v, 0.0, 1e9)).transpose()?.unwrap_or(40.0),
            max_iterations: get("max_iterations")
                .map(|v| integer("max_iterations", v, 1, 1000))
                .transpose()?
                .unwrap_or(20) as u32,
            early_stop: get("early_stop").map(|v| boolean("early_stop", v)).transpose()?.unwrap_or(true),
            min_rel_progress: get("min_rel_progress")
                .map(|v| number("min_rel_progress", v, 0.0, 1.0))
                .transpose()?
                .unwrap_or(0.01),
            split: split_method(options)?,
            seed: get("seed").map(|v| integer("seed", v, 0, u64::from(u32::MAX))).transpose()?.unwrap_or(0),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(pairs: &[(&str, OptValue)]) -> Vec<(String, OptValue)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn checks() {
        let s = |v: &str| OptValue::Str(v.into());
        let ok = TrainOptions::from_options(&o(&[
            ("model_type", s("RANDOM_FOREST_CLASSIFIER")),
            ("input_label_cols", OptValue::Array(vec![s("emotion")])),
            ("num_parallel_tree", OptValue::Num(10.0)),
            ("data_split_method", s("random")),
            ("data_split_eval_fraction", OptValue::Num(0.3)),
        ]))
        .unwrap();
        assert_eq!(ok.algorithm, Algorithm::RandomForest);
        assert_eq!(ok.params.num_trees, 10);
        assert_eq!(ok.split, SplitMethod::Random(0.3));
        let err = |opts: Vec<(String, OptValue)>| TrainOptions::from_options(&opts).unwrap_err().to_string();
        assert!(err(o(&[("model_type", s("x"))])).contains("unknown model_type"));
        assert!(err(o(&[("model_type", s("logistic_reg")), ("colour", s("red"))])).contains("unknown option colour"));
        assert!(err(o(&[("model_type", s("logistic_reg")), ("max_iterations", s("many"))])).contains("a number"));
        assert!(err(o(&[("model_type", s("logistic_reg")), ("max_iterations", OptValue::Num(1.5))])).contains("whole"));
        assert!(err(o(&[("input_label_cols", OptValue::Array(vec![s("y")]))])).contains("model_type is required"));
        // An option of another model type is refused, not ignored.
        let forest_l2 = err(o(&[("model_type", s("random_forest_classifier")), ("l2_reg", OptValue::Num(1.0))]));
        assert!(forest_l2.contains("l2_reg does not apply to random_forest_classifier"), "{forest_l2}");
        let bayes = err(o(&[("model_type", s("naive_bayes_classifier")), ("max_iterations", OptValue::Num(3.0))]));
        assert!(bayes.contains("(its hyperparameters: none)"), "{bayes}");
        for (model_type, option) in [
            ("logistic_reg", "num_parallel_tree"),
            ("decision_tree_classifier", "subsample"),
            ("knn_classifier", "max_tree_depth"),
            ("random_forest_classifier", "num_neighbors"),
        ] {
            let e = err(o(&[("model_type", s(model_type)), (option, OptValue::Num(2.0))]));
            assert!(e.contains(&format!("{option} does not apply to {model_type}")), "{e}");
        }
    }

    #[test]
    fn factorization_options() {
        let s = |v: &str| OptValue::Str(v.into());
        assert_eq!(FactorOptions::from_options(&o(&[("model_type", s("logistic_reg"))])).unwrap(), None);
        let f = FactorOptions::from_options(&o(&[
            ("model_type", s("MATRIX_FACTORIZATION")),
            ("feedback_type", s("IMPLICIT")),
            ("user_col", s("userid")),
            ("num_factors", OptValue::Num(8.0)),
        ]))
        .unwrap()
        .unwrap();
        assert!(f.implicit);
        assert_eq!((f.user_col.as_str(), f.item_col.as_str(), f.num_factors), ("userid", "item", Some(8)));
        assert_eq!((f.l2_reg, f.wals_alpha, f.max_iterations, f.early_stop), (0.1, 40.0, 20, true));
        let err = |opts: Vec<(String, OptValue)>| FactorOptions::from_options(&opts).unwrap_err().to_string();
        let mf = ("model_type", s("matrix_factorization"));
        assert!(err(o(&[mf.clone(), ("num_parallel_tree", OptValue::Num(3.0))])).contains("does not apply"));
        assert!(
            err(o(&[mf.clone(), ("wals_alpha", OptValue::Num(3.0))]))
                .contains("applies to feedback_type = 'implicit' only")
        );
        assert!(err(o(&[mf.clone(), ("num_trials", OptValue::Num(3.0))])).contains("not implemented"));
        assert!(err(o(&[mf.clone(), ("num_factors", OptValue::Num(1000.0))])).contains("between"));
        assert!(err(o(&[mf, ("user_col", s("item"))])).contains("three columns"));
    }
}
