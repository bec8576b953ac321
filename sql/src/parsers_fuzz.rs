//! Fuzz tests of the parsers of what a user types: the ML statements and
//! `ML.*` calls (with their `OPTIONS` and `STRUCT` settings, and the
//! training options and tuning built from them, `TRANSFORM` and the
//! preprocessing functions), model names and the extract statements. Each mutated statement ([`crate::mutate`]) must give a
//! result or an error — never a panic — and soon.

use std::time::{Duration, Instant};

use crate::extract::parse_extract_statement;
use crate::ml::options::TrainOptions;
use crate::ml::parse::{MlStatement, find_ml_calls, model_name, parse_ml_statement};
use crate::ml::preprocess::rewrite_windows;
use crate::ml::tuning::split_tuning;
use crate::mutate::Mutator;

const CORPUS: &[&str] = &[
    "CREATE OR REPLACE MODEL ds.m OPTIONS (model_type = 'random_forest_classifier', input_label_cols = ['emotion'], \
     num_parallel_tree = 5, max_tree_depth = 8, data_split_method = 'random', data_split_eval_fraction = 0.2, \
     class_weights = [('joy', 2.0)], seed = 3) AS SELECT * FROM training.frames",
    "CREATE MODEL IF NOT EXISTS `proj.ds.m` OPTIONS (model_type = 'logistic_reg', l2_reg = 0.5, \
     max_iterations = 20, early_stop = TRUE, enable_global_explain = TRUE) AS SELECT f00, emotion FROM t",
    "DROP MODEL IF EXISTS ds.m",
    "SELECT * FROM ML.PREDICT(MODEL m@2, (SELECT * FROM t), STRUCT(0.7 AS threshold))",
    "SELECT * FROM ML.ROC_CURVE(MODEL m, (SELECT * FROM t), GENERATE_ARRAY(0, 1, 0.01))",
    "SELECT * FROM ML.ROC_CURVE(MODEL m, (SELECT * FROM t), [0.1, 0.5, 0.9])",
    "SELECT * FROM ML.EXPLAIN_PREDICT(MODEL m, (SELECT * FROM t), STRUCT(3 AS top_k_features, 0.5 AS threshold))",
    "SELECT a.x, p.* FROM ML.CROSS_VALIDATE(MODEL m, (SELECT * FROM t), STRUCT(4 AS num_folds)) p JOIN a ON TRUE",
    "SELECT * FROM ML.DESCRIBE_DATA((SELECT * FROM t), STRUCT(5 AS top_k, 10 AS num_quantiles))",
    "SELECT * FROM ML.CONFUSION_MATRIX(MODEL m)",
    "CREATE OR REPLACE TABLE extracts.s OPTIONS (watermark = 'updated_at') AS SELECT * FROM opdb.sessions",
    "REFRESH EXTRACT extracts.s FULL",
    "DROP TABLE IF EXISTS extracts.s",
    "CREATE MODEL m TRANSFORM (* EXCEPT (f01), ML.STANDARD_SCALER(f01) OVER () AS f01, ML.BUCKETIZE(f02, [0, 1]) AS b) \
     OPTIONS (model_type = 'logistic_reg', num_trials = 4, l2_reg = HPARAM_RANGE(0, 2), \
     hparam_tuning_objectives = ['LOG_LOSS']) AS SELECT * FROM t",
    "SELECT ML.QUANTILE_BUCKETIZE(a, 4) OVER (PARTITION BY g), ML.IMPUTER(b, 'median') OVER () FROM t",
    "SELECT * FROM ML.TRANSFORM(MODEL m, (SELECT * FROM t)) JOIN ML.WEIGHTS(MODEL m, STRUCT(TRUE AS standardize)) ON TRUE",
    "SELECT * FROM ML.VALIDATE_DATA_DRIFT((SELECT a FROM t), TABLE u, STRUCT([STRUCT('a', 0.1)] AS thresholds))",
];

/// Every parser on `sql`; whatever they return is fine, a panic is not.
/// Whether the ML statement parser accepted it.
fn parse_all(sql: &str) -> bool {
    let statement = parse_ml_statement(sql);
    if let Ok(Some(MlStatement::CreateModel { options, .. })) = &statement
        && let Ok((_, base)) = split_tuning(options)
    {
        let _ = TrainOptions::from_options(&base);
    }
    let _ = rewrite_windows(sql);
    let _ = find_ml_calls(sql);
    let _ = parse_extract_statement(sql);
    let _ = model_name(sql);
    statement.is_ok()
}

#[test]
fn mutated_statements_give_results_or_errors_never_panics() {
    let started = Instant::now();
    let mut m = Mutator::new(20261204);
    let (mut accepted, mut refused) = (0, 0);
    for i in 0..40_000 {
        let sql = m.mutate(CORPUS[i % CORPUS.len()]);
        let took = Instant::now();
        match std::panic::catch_unwind(|| parse_all(&sql)) {
            Ok(true) => accepted += 1,
            Ok(false) => refused += 1,
            Err(_) => panic!("a parser panicked on (mutation {i}): {sql:?}"),
        }
        assert!(took.elapsed() < Duration::from_secs(2), "parsing took {:?}: {sql:?}", took.elapsed());
    }
    // Both ways are exercised: mutations that still parse, and ones refused.
    assert!(accepted > 1_000 && refused > 1_000, "{accepted} accepted, {refused} refused");
    assert!(started.elapsed() < Duration::from_secs(120));
}
