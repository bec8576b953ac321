//! Hyperparameter tuning as BigQuery ML spells it: `num_trials`,
//! `max_parallel_trials`, `hparam_tuning_algorithm`,
//! `hparam_tuning_objectives`, and hyperparameters given as
//! `HPARAM_RANGE(min, max)` or `HPARAM_CANDIDATES([…])`.
//!
//! Sentio searches at random, seeded: trial `i` draws each tuned
//! hyperparameter from its own stream of (`seed`, name, `i`), so the same
//! statement gives the same trials. Every trial trains on the same rows and
//! is scored on the same evaluation rows; the best by the objective is the
//! model's (see `create::create_model`).
//!
//! `num_trials` without any `HPARAM_…` option tunes the model type's
//! default search space ([`default_spaces`]): each of its hyperparameters
//! the statement does not set.

use sentio_udfs::ml::spec::Algorithm;
use sentio_udfs::rng::Rng;

use crate::ml::MlError;
use crate::ml::options::{TUNING_OPTIONS, TrainOptions};
use crate::ml::parse::OptValue;

/// Hyperparameters that can be tuned, and whether each is a whole number.
const TUNABLE: [(&str, bool); 12] = [
    ("num_parallel_tree", true),
    ("max_tree_depth", true),
    ("min_tree_child_weight", true),
    ("num_neighbors", true),
    ("subsample", false),
    ("colsample_bynode", false),
    ("l2_reg", false),
    ("l1_reg", false),
    ("learn_rate", false),
    ("colsample_bytree", false),
    ("colsample_bylevel", false),
    ("min_split_loss", false),
];

/// Most trials a statement may ask for (BigQuery ML's limit).
pub const MAX_TRIALS: u32 = 100;

/// A classifier's objectives: the metric (an `ML.EVALUATE` column) and
/// whether more is better; the first is the default.
const OBJECTIVES: [(&str, bool); 6] = [
    ("roc_auc", true),
    ("accuracy", true),
    ("f1_score", true),
    ("precision", true),
    ("recall", true),
    ("log_loss", false),
];

/// A regressor's objectives, likewise.
const REGRESSION_OBJECTIVES: [(&str, bool); 6] = [
    ("r2_score", true),
    ("explained_variance", true),
    ("mean_absolute_error", false),
    ("mean_squared_error", false),
    ("mean_squared_log_error", false),
    ("median_absolute_error", false),
];

/// Where a tuned hyperparameter's values come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Space {
    /// Uniform over `[lo, hi]` (whole numbers for whole-number options).
    Range { lo: f64, hi: f64, whole: bool },
    /// One of these values, each as likely.
    Candidates(Vec<f64>),
    /// Log-uniform over `[lo, hi]` (`0 < lo`): as likely in `[0.001, 0.01]`
    /// as in `[1, 10]`, for penalties and rates that matter by their order
    /// of magnitude. Only the default spaces use it.
    LogRange { lo: f64, hi: f64 },
}

/// The default search space of each model type: the hyperparameters
/// `num_trials` tunes when the statement gives no `HPARAM_…` option (those
/// the statement sets are left out). These ranges are Sentio's own choice,
/// within what each option takes; docs/sql.md lists them.
pub fn default_spaces(algorithm: Algorithm) -> Vec<(&'static str, Space)> {
    let whole = |lo: f64, hi: f64| Space::Range { lo, hi, whole: true };
    let uniform = |lo: f64, hi: f64| Space::Range { lo, hi, whole: false };
    let penalty = || Space::LogRange { lo: 1e-4, hi: 10.0 };
    match algorithm {
        Algorithm::LogisticReg => vec![("l2_reg", penalty())],
        Algorithm::LinearReg => vec![("l1_reg", penalty()), ("l2_reg", penalty())],
        Algorithm::RandomForest | Algorithm::RandomForestRegressor => vec![
            ("num_parallel_tree", whole(10.0, 100.0)),
            ("max_tree_depth", whole(4.0, 20.0)),
            ("subsample", uniform(0.5, 1.0)),
            ("colsample_bynode", uniform(0.3, 1.0)),
        ],
        Algorithm::BoostedTreeClassifier | Algorithm::BoostedTreeRegressor => vec![
            ("learn_rate", Space::LogRange { lo: 0.01, hi: 1.0 }),
            ("max_tree_depth", whole(2.0, 10.0)),
            ("subsample", uniform(0.5, 1.0)),
            ("colsample_bytree", uniform(0.5, 1.0)),
            ("l2_reg", penalty()),
        ],
        Algorithm::DecisionTree => {
            vec![("max_tree_depth", whole(2.0, 20.0)), ("min_tree_child_weight", whole(1.0, 20.0))]
        }
        Algorithm::Knn => vec![("num_neighbors", whole(1.0, 30.0))],
        Algorithm::NaiveBayes | Algorithm::MatrixFactorization => Vec::new(),
    }
}

/// A statement's tuning: what to tune and how.
#[derive(Debug, Clone, PartialEq)]
pub struct Tuning {
    /// `num_trials`.
    pub num_trials: u32,
    /// `max_parallel_trials` (default 1, as BigQuery ML).
    pub max_parallel_trials: u32,
    /// The objective's metric (an `ML.EVALUATE` column, lower case).
    pub objective: String,
    /// Whether a larger objective is better.
    pub maximize: bool,
    /// The tuned hyperparameters, in the order written.
    pub spaces: Vec<(String, Space)>,
}

impl Tuning {
    /// Whether trial `a`'s objective value beats trial `b`'s (a value beats
    /// none; ties keep the earlier trial).
    pub fn better(&self, a: Option<f64>, b: Option<f64>) -> bool {
        match (a, b) {
            (Some(a), Some(b)) => {
                if self.maximize {
                    a > b
                } else {
                    a < b
                }
            }
            (Some(_), None) => true,
            _ => false,
        }
    }
}

/// `CREATE MODEL` options as written.
pub type Options = Vec<(String, OptValue)>;

/// One trial's hyperparameters: each tuned option and its value.
pub type TrialValues = Vec<(String, f64)>;

fn option_err(m: impl Into<String>) -> MlError {
    MlError::Option(m.into())
}

/// Takes the tuning out of a `CREATE MODEL`'s options: `None` and the
/// options unchanged without `num_trials`; else the tuning and the options
/// with the tuning options and tuned hyperparameters taken out. Each tuned
/// hyperparameter's whole space is checked against the model type (its
/// ends, or every candidate, must be values the option takes).
pub fn split_tuning(options: &[(String, OptValue)]) -> Result<(Option<Tuning>, Options), MlError> {
    let tuned = |v: &OptValue| matches!(v, OptValue::Range(..) | OptValue::Candidates(_));
    let get = |k: &str| options.iter().find(|(n, _)| n == k).map(|(_, v)| v);
    let base: Vec<(String, OptValue)> =
        options.iter().filter(|(k, v)| !TUNING_OPTIONS.contains(&k.as_str()) && !tuned(v)).cloned().collect();
    let Some(trials) = get("num_trials") else {
        if let Some((k, v)) = options.iter().find(|(_, v)| tuned(v)) {
            return Err(option_err(format!(
                "{k} = {v} tunes a hyperparameter: it needs num_trials (e.g. num_trials = 8)"
            )));
        }
        if let Some((k, _)) = options.iter().find(|(k, _)| TUNING_OPTIONS.contains(&k.as_str())) {
            return Err(option_err(format!("{k} is an option of hyperparameter tuning: it needs num_trials")));
        }
        return Ok((None, base));
    };
    let num_trials = match trials {
        OptValue::Num(n) if n.fract() == 0.0 && (1.0..=f64::from(MAX_TRIALS)).contains(n) => *n as u32,
        other => {
            return Err(option_err(format!("num_trials must be a whole number from 1 to {MAX_TRIALS}, not {other}")));
        }
    };
    let max_parallel_trials = match get("max_parallel_trials") {
        None => 1,
        Some(OptValue::Num(n)) if n.fract() == 0.0 && *n >= 1.0 && *n <= f64::from(num_trials) => *n as u32,
        Some(other) => {
            return Err(option_err(format!(
                "max_parallel_trials must be a whole number from 1 to num_trials ({num_trials}), not {other}"
            )));
        }
    };
    match get("hparam_tuning_algorithm") {
        None => {}
        Some(OptValue::Str(a)) if a.eq_ignore_ascii_case("random_search") => {}
        Some(other) => {
            return Err(option_err(format!(
                "hparam_tuning_algorithm {other} is not Sentio's: it tunes by 'RANDOM_SEARCH' (seeded), also when \
                 the option is left out (BigQuery ML's default is 'VIZIER_DEFAULT')"
            )));
        }
    }
    let algorithm = match get("model_type") {
        Some(OptValue::Str(t)) => Algorithm::from_model_type(t),
        _ => None,
    };
    let regressor = algorithm.is_some_and(Algorithm::is_regressor);
    let (objective, maximize) = objective(get("hparam_tuning_objectives"), regressor)?;
    let mut spaces = Vec::new();
    for (k, v) in options.iter().filter(|(_, v)| tuned(v)) {
        spaces.push((k.clone(), space(k, v, &base)?));
    }
    if spaces.is_empty() {
        spaces = defaults(algorithm, &base)?;
    }
    Ok((Some(Tuning { num_trials, max_parallel_trials, objective, maximize, spaces }), base))
}

/// The objective metric and whether to maximise it: by default ROC AUC for
/// a classifier, R² for a `regressor`.
fn objective(v: Option<&OptValue>, regressor: bool) -> Result<(String, bool), MlError> {
    let objectives: &[(&str, bool)] = if regressor { &REGRESSION_OBJECTIVES } else { &OBJECTIVES };
    let name = match v {
        None => return Ok((objectives[0].0.into(), objectives[0].1)),
        Some(OptValue::Array(items)) if items.len() == 1 => match &items[0] {
            OptValue::Str(s) => s.to_ascii_lowercase(),
            other => return Err(option_err(format!("hparam_tuning_objectives: {other} is not an objective's name"))),
        },
        Some(OptValue::Str(s)) => s.to_ascii_lowercase(),
        Some(other) => {
            return Err(option_err(format!(
                "hparam_tuning_objectives must name one objective, e.g. ['ROC_AUC'], not {other} (Sentio tunes one \
                 objective at a time)"
            )));
        }
    };
    objectives.iter().find(|(m, _)| *m == name).map(|(m, max)| (m.to_string(), *max)).ok_or_else(|| {
        let known: Vec<String> = objectives.iter().map(|(m, _)| format!("'{}'", m.to_ascii_uppercase())).collect();
        let kind = if regressor { "a regressor's" } else { "a classifier's" };
        option_err(format!("unknown hparam_tuning_objectives '{name}'; {kind} are {}", known.join(", ")))
    })
}

/// The default spaces of `algorithm` (see [`default_spaces`]) but for the
/// hyperparameters `base` sets; an error when none is left.
fn defaults(algorithm: Option<Algorithm>, base: &[(String, OptValue)]) -> Result<Vec<(String, Space)>, MlError> {
    let all = algorithm.map(default_spaces).unwrap_or_default();
    let spaces: Vec<(String, Space)> = all
        .iter()
        .filter(|(name, _)| !base.iter().any(|(k, _)| k == name))
        .map(|(name, space)| (name.to_string(), space.clone()))
        .collect();
    if spaces.is_empty() {
        let model_type = algorithm.map_or("this model type", Algorithm::model_type);
        let why = if all.is_empty() {
            format!("{model_type} has no hyperparameters to tune")
        } else {
            let names: Vec<&str> = all.iter().map(|(n, _)| *n).collect();
            format!(
                "the statement sets each hyperparameter of {model_type}'s default search space ({})",
                names.join(", ")
            )
        };
        return Err(option_err(format!(
            "num_trials has nothing to tune: {why}; give one as HPARAM_RANGE(min, max) or HPARAM_CANDIDATES([a, b, …])"
        )));
    }
    Ok(spaces)
}

/// The space of tuned option `k` written `v`, each end or candidate checked
/// as the option's value for the model type of `base`.
fn space(k: &str, v: &OptValue, base: &[(String, OptValue)]) -> Result<Space, MlError> {
    let Some((_, whole)) = TUNABLE.iter().find(|(n, _)| *n == k) else {
        let tunable: Vec<&str> = TUNABLE.iter().map(|(n, _)| *n).collect();
        return Err(option_err(format!(
            "{k} cannot be tuned ({v}): HPARAM_RANGE and HPARAM_CANDIDATES are for the numeric hyperparameters {}",
            tunable.join(", ")
        )));
    };
    let check = |value: f64| -> Result<(), MlError> {
        let mut o = base.to_vec();
        o.push((k.to_string(), OptValue::Num(value)));
        TrainOptions::from_options(&o).map(|_| ()).map_err(|e| option_err(format!("{k} = {v}: {e}")))
    };
    match v {
        OptValue::Range(lo, hi) => {
            let (lo, hi) = if *whole { (lo.ceil(), hi.floor()) } else { (*lo, *hi) };
            if lo > hi {
                return Err(option_err(format!("{k} = {v} holds no whole number")));
            }
            check(lo)?;
            check(hi)?;
            Ok(Space::Range { lo, hi, whole: *whole })
        }
        OptValue::Candidates(items) => {
            let mut values = Vec::with_capacity(items.len());
            for item in items {
                let OptValue::Num(n) = item else {
                    return Err(option_err(format!("{k} = {v}: {item} is not a number")));
                };
                check(*n)?;
                values.push(*n);
            }
            Ok(Space::Candidates(values))
        }
        other => Err(MlError::Internal(format!("not a search space: {other}"))),
    }
}

/// The hyperparameters of each trial (1 … `num_trials`), drawn at random
/// from `seed`: trial `i`'s value of an option depends only on (`seed`, the
/// option, `i`).
pub fn draw_trials(tuning: &Tuning, seed: u64) -> Vec<TrialValues> {
    (1..=u64::from(tuning.num_trials))
        .map(|trial| {
            tuning
                .spaces
                .iter()
                .map(|(name, space)| {
                    let mut rng = Rng::stream(seed, &format!("hparam:{name}"), trial);
                    let value = match space {
                        Space::Range { lo, hi, whole: true } => rng.range(*lo as u64, *hi as u64) as f64,
                        Space::Range { lo, hi, whole: false } => lo + rng.f64() * (hi - lo),
                        Space::Candidates(values) => values[rng.range(0, values.len() as u64 - 1) as usize],
                        Space::LogRange { lo, hi } => (lo.ln() + rng.f64() * (hi.ln() - lo.ln())).exp(),
                    };
                    (name.clone(), value)
                })
                .collect()
        })
        .collect()
}

/// The options of one trial: `base` with its drawn `values`.
pub fn trial_options(base: &[(String, OptValue)], values: &TrialValues) -> Vec<(String, OptValue)> {
    let mut o = base.to_vec();
    o.extend(values.iter().map(|(k, v)| (k.clone(), OptValue::Num(*v))));
    o
}

/// Whether tuned option `name` takes whole numbers.
pub fn is_whole(name: &str) -> bool {
    TUNABLE.iter().any(|(n, whole)| *n == name && *whole)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(pairs: &[(&str, OptValue)]) -> Vec<(String, OptValue)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    fn forest(extra: &[(&str, OptValue)]) -> Vec<(String, OptValue)> {
        let mut v = o(&[("model_type", OptValue::Str("random_forest_classifier".into()))]);
        v.extend(o(extra));
        v
    }

    #[test]
    fn trials_are_drawn_from_their_spaces_the_same_way_each_time() {
        let options = forest(&[
            ("num_trials", OptValue::Num(20.0)),
            ("max_tree_depth", OptValue::Range(2.0, 6.0)),
            ("subsample", OptValue::Range(0.5, 0.9)),
            ("num_parallel_tree", OptValue::Candidates(vec![OptValue::Num(5.0), OptValue::Num(10.0)])),
        ]);
        let (tuning, base) = split_tuning(&options).unwrap();
        let tuning = tuning.unwrap();
        assert_eq!(base.len(), 1, "{base:?}");
        assert_eq!((tuning.objective.as_str(), tuning.maximize, tuning.max_parallel_trials), ("roc_auc", true, 1));
        let trials = draw_trials(&tuning, 7);
        assert_eq!(trials.len(), 20);
        assert_eq!(trials, draw_trials(&tuning, 7), "seeded");
        assert_ne!(trials, draw_trials(&tuning, 8));
        for t in &trials {
            assert!((2.0..=6.0).contains(&t[0].1) && t[0].1.fract() == 0.0, "{t:?}");
            assert!((0.5..=0.9).contains(&t[1].1), "{t:?}");
            assert!([5.0, 10.0].contains(&t[2].1), "{t:?}");
        }
        let depths: std::collections::BTreeSet<u64> = trials.iter().map(|t| t[0].1 as u64).collect();
        assert!(depths.len() >= 3, "spread over the range: {depths:?}");
    }

    #[test]
    fn num_trials_alone_tunes_the_default_space_but_for_what_is_set() {
        for algorithm in [
            Algorithm::LogisticReg,
            Algorithm::LinearReg,
            Algorithm::RandomForest,
            Algorithm::RandomForestRegressor,
            Algorithm::BoostedTreeClassifier,
            Algorithm::BoostedTreeRegressor,
            Algorithm::DecisionTree,
            Algorithm::Knn,
        ] {
            let options =
                o(&[("model_type", OptValue::Str(algorithm.model_type().into())), ("num_trials", OptValue::Num(30.0))]);
            // Every default space's ends are values its model type takes.
            let (tuning, _) = split_tuning(&options).unwrap_or_else(|e| panic!("{algorithm:?}: {e}"));
            let tuning = tuning.unwrap();
            let names: Vec<&str> = tuning.spaces.iter().map(|(n, _)| n.as_str()).collect();
            let defaults: Vec<&str> = default_spaces(algorithm).iter().map(|(n, _)| *n).collect();
            assert_eq!(names, defaults, "{algorithm:?}");
            for trial in draw_trials(&tuning, 3) {
                for ((name, value), (_, space)) in trial.iter().zip(&tuning.spaces) {
                    let inside = match space {
                        Space::Range { lo, hi, whole } => {
                            (lo..=hi).contains(&value) && (!whole || value.fract() == 0.0)
                        }
                        Space::LogRange { lo, hi } => (lo..=hi).contains(&value),
                        Space::Candidates(v) => v.contains(value),
                    };
                    assert!(inside, "{algorithm:?} {name} = {value} outside {space:?}");
                }
            }
        }
        // A set hyperparameter is not tuned; the penalty spreads over its decades.
        let options = o(&[
            ("model_type", OptValue::Str("linear_reg".into())),
            ("num_trials", OptValue::Num(40.0)),
            ("l1_reg", OptValue::Num(0.5)),
        ]);
        let (tuning, base) = split_tuning(&options).unwrap();
        let tuning = tuning.unwrap();
        assert_eq!(tuning.spaces, vec![("l2_reg".to_string(), Space::LogRange { lo: 1e-4, hi: 10.0 })]);
        assert!(base.iter().any(|(k, v)| k == "l1_reg" && *v == OptValue::Num(0.5)), "{base:?}");
        let decades: std::collections::BTreeSet<i32> =
            draw_trials(&tuning, 1).iter().map(|t| t[0].1.log10().floor() as i32).collect();
        assert!(decades.len() >= 4, "log-uniform over 1e-4 … 10: {decades:?}");
    }

    #[test]
    fn bad_tuning_is_refused_with_the_option_named() {
        let err = |extra: &[(&str, OptValue)]| split_tuning(&forest(extra)).unwrap_err().to_string();
        let trials = ("num_trials", OptValue::Num(4.0));
        let depth = ("max_tree_depth", OptValue::Range(2.0, 6.0));
        assert!(err(std::slice::from_ref(&depth)).contains("needs num_trials"));
        let naive = o(&[("model_type", OptValue::Str("naive_bayes_classifier".into())), trials.clone()]);
        let e = split_tuning(&naive).unwrap_err().to_string();
        assert!(e.contains("naive_bayes_classifier has no hyperparameters to tune"), "{e}");
        let knn = o(&[
            ("model_type", OptValue::Str("knn_classifier".into())),
            trials.clone(),
            ("num_neighbors", OptValue::Num(3.0)),
        ]);
        let e = split_tuning(&knn).unwrap_err().to_string();
        assert!(e.contains("sets each hyperparameter of knn_classifier's default search space"), "{e}");
        let e =
            err(&[trials.clone(), ("data_split_method", OptValue::Candidates(vec![OptValue::Str("RANDOM".into())]))]);
        assert!(e.contains("data_split_method cannot be tuned"), "{e}");
        let e = err(&[trials.clone(), ("l2_reg", OptValue::Range(0.0, 1.0))]);
        assert!(e.contains("l2_reg does not apply to random_forest_classifier"), "{e}");
        let e = err(&[trials.clone(), ("max_tree_depth", OptValue::Range(2.0, 100.0))]);
        assert!(e.contains("max_tree_depth must be between 1 and 64"), "{e}");
        let e =
            err(&[trials.clone(), depth.clone(), ("hparam_tuning_algorithm", OptValue::Str("VIZIER_DEFAULT".into()))]);
        assert!(e.contains("RANDOM_SEARCH"), "{e}");
        let e = err(&[
            trials.clone(),
            depth.clone(),
            ("hparam_tuning_objectives", OptValue::Str("mean_squared_error".into())),
        ]);
        assert!(e.contains("unknown hparam_tuning_objectives"), "{e}");
        let e = err(&[trials, depth, ("max_parallel_trials", OptValue::Num(5.0))]);
        assert!(e.contains("max_parallel_trials must be a whole number from 1 to num_trials (4)"), "{e}");
    }
}
