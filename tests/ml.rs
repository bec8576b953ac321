//! Machine learning in SQL, end to end through the real binaries: every
//! algorithm trained, evaluated, applied and cross-validated on the sample
//! lake; bad input refused with nothing stored; the same results standalone
//! and on a 1-scheduler + 2-executor cluster; accuracy next to scikit-learn.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::{Cluster, Running, SPREAD, cpu_seconds, repo_root, run, run_ok, sentio};

const MIN: Duration = Duration::from_secs(60);

/// The training-split features (no identifiers), as analysts write them.
const FEATURES: &str =
    "SELECT * EXCEPT (session_id, frame_no, subject_id, media_id, recorded_on, split) FROM training.frames";

struct Lake {
    _dir: tempfile::TempDir,
    root: PathBuf,
    scheduler: Option<String>,
    opdb: Option<String>,
    /// Statements spread over the task slots however small the sample
    /// lake (`SPREAD`): for tests of merges across partitions.
    spread: bool,
}

impl Lake {
    fn new(scale: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("lake");
        // Generous: scale 13 (1.3M frames) on two loaded cores takes minutes.
        run_ok(sentio().args(["datagen", "--scale", scale, "--seed", "42", "--lake"]).arg(&root), 10 * MIN);
        Self { _dir: dir, root, scheduler: None, opdb: None, spread: false }
    }

    /// A lake plus a SQLite operational DB (media, sessions) from datagen.
    fn with_opdb(scale: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("lake");
        let opdb = format!("sqlite:{}", dir.path().join("opdb.sqlite").display());
        run_ok(sentio().args(["datagen", "--scale", scale, "--seed", "42", "--opdb", &opdb, "--lake"]).arg(&root), MIN);
        Self { _dir: dir, root, scheduler: None, opdb: Some(opdb), spread: false }
    }

    fn cmd(&self) -> Command {
        let mut c = sentio();
        c.arg("sql").arg("--lake").arg(&self.root);
        if let Some(s) = &self.scheduler {
            c.args(["--scheduler", s]);
        }
        if let Some(o) = &self.opdb {
            c.args(["--opdb", o]);
        }
        if self.spread {
            c.args(["-c", SPREAD]);
        }
        c
    }

    /// Runs one statement; its rows as JSON objects.
    fn rows(&self, sql: &str) -> Vec<Value> {
        let f = run_ok(self.cmd().args(["--format", "json", "-c", sql]), Duration::from_secs(600));
        let text = f.stdout.trim();
        if text.is_empty() {
            return Vec::new();
        }
        serde_json::from_str::<Vec<Value>>(text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    /// Runs one statement that must fail; its stderr.
    fn fails(&self, sql: &str) -> String {
        let f = run(self.cmd().args(["-c", sql]), Duration::from_secs(300));
        assert!(!f.success, "{sql} should fail; stdout:\n{}", f.stdout);
        assert!(!f.stderr.contains("panicked"), "{}", f.stderr);
        f.stderr
    }

    fn models_dir(&self) -> PathBuf {
        self.root.join("models")
    }
}

fn num(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or_else(|| panic!("{k} in {v}"))
}

fn model_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                out.extend(model_files(&e.path()));
            } else {
                out.push(e.path().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// The stored parameters of `name@version`: the fingerprint its model.json
/// records (equal fingerprints: equal bytes) and the bytes of the file it
/// names, checked against it.
fn payload(lake: &Lake, name: &str, version: i64) -> (String, Vec<u8>) {
    let meta: Value =
        serde_json::from_slice(&std::fs::read(lake.models_dir().join(format!("{name}/{version}/model.json"))).unwrap())
            .unwrap();
    let file = meta["payload_file"].as_str().unwrap_or_else(|| panic!("{meta}"));
    let bytes = std::fs::read(lake.root.join(file)).unwrap();
    assert_eq!(meta["payload_bytes"].as_u64(), Some(bytes.len() as u64));
    (meta["payload_fingerprint"].as_str().unwrap().to_string(), bytes)
}

fn create(lake: &Lake, name: &str, model_type: &str, extra: &str, query: &str) -> Value {
    let rows = lake.rows(&format!(
        "CREATE OR REPLACE MODEL {name} OPTIONS (model_type = '{model_type}', input_label_cols = ['emotion'], \
         seed = 42{extra}) AS {query}"
    ));
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows[0].clone()
}

#[test]
fn every_algorithm_trains_evaluates_predicts_and_cross_validates() {
    let lake = Lake::new("0.2");
    let test = "(SELECT * FROM training.frames WHERE split = 'test')";
    let test_rows =
        lake.rows("SELECT COUNT(*) AS n FROM training.frames WHERE split = 'test'")[0]["n"].as_i64().unwrap();
    for (name, model_type, extra) in [
        ("m_logistic", "logistic_reg", ", max_iterations = 100"),
        ("m_forest", "random_forest_classifier", ", num_parallel_tree = 10, max_tree_depth = 8"),
        ("m_tree", "decision_tree_classifier", ", max_tree_depth = 8"),
        ("m_bayes", "naive_bayes_classifier", ""),
        ("m_knn", "knn_classifier", ", num_neighbors = 15, max_stored_rows = 3000"),
    ] {
        let created = create(&lake, name, model_type, extra, &format!("{FEATURES} WHERE split = 'train'"));
        assert_eq!(created["status"], "created", "{created}");
        assert_eq!(created["model_type"], model_type);
        assert!(num(&created, "eval_rows") > 0.0, "AUTO_SPLIT holds rows out: {created}");

        let eval = lake.rows(&format!("SELECT * FROM ML.EVALUATE(MODEL {name}, {test})"));
        let acc = num(&eval[0], "accuracy");
        // Three classes, the largest about half: learnable, not trivial.
        assert!(acc > 0.6 && acc < 0.999, "{name}: accuracy {acc}");
        for m in ["precision", "recall", "f1_score", "log_loss", "roc_auc"] {
            assert!(eval[0][m].is_number(), "{name}: {m} in {eval:?}");
        }

        // ML.PREDICT: one row per input row, inputs unchanged.
        let direct = lake
            .rows(&format!("SELECT session_id, frame_no, emotion, f00 FROM {test} t ORDER BY session_id, frame_no"));
        let predicted = lake.rows(&format!(
            "SELECT session_id, frame_no, emotion, f00, predicted_emotion, predicted_emotion_probs \
             FROM ML.PREDICT(MODEL {name}, {test}) ORDER BY session_id, frame_no"
        ));
        assert_eq!(predicted.len() as i64, test_rows);
        let mut right = 0;
        for (d, p) in direct.iter().zip(&predicted) {
            for k in ["session_id", "frame_no", "emotion", "f00"] {
                assert_eq!(d[k], p[k], "{name}: input column {k} changed");
            }
            let probs = p["predicted_emotion_probs"].as_array().unwrap();
            assert_eq!(probs.len(), 3);
            let total: f64 = probs.iter().map(|e| e["prob"].as_f64().unwrap()).sum();
            assert!((total - 1.0).abs() < 1e-6, "{name}: probabilities sum to {total}");
            right += usize::from(p["predicted_emotion"] == p["emotion"]);
        }
        let predict_acc = right as f64 / predicted.len() as f64;
        assert!((predict_acc - acc).abs() < 1e-9, "{name}: ML.PREDICT accuracy {predict_acc} vs ML.EVALUATE {acc}");

        let cm = lake.rows(&format!("SELECT * FROM ML.CONFUSION_MATRIX(MODEL {name}, {test})"));
        let cells: i64 =
            cm.iter().map(|r| ["angry", "happy", "sad"].iter().map(|l| r[*l].as_i64().unwrap()).sum::<i64>()).sum();
        assert_eq!(cells, test_rows, "{name}: confusion matrix {cm:?}");

        let info = lake.rows(&format!("SELECT * FROM ML.FEATURE_INFO(MODEL {name})"));
        assert_eq!(info.len(), 32, "32 feature columns f00…f31: {info:?}");
        let training = lake.rows(&format!("SELECT * FROM ML.TRAINING_INFO(MODEL {name})"));
        assert!(!training.is_empty());
        // L-BFGS reports each iteration's step length and time; the other
        // algorithms fit in one pass: one row, the training's time, no rate.
        if name == "m_logistic" {
            assert!(training.len() > 1, "{training:?}");
            assert!(training.iter().all(|r| num(r, "learning_rate") > 0.0 && num(r, "duration_ms") >= 0.0));
        } else {
            assert_eq!(training.len(), 1, "{training:?}");
            assert!(training[0]["learning_rate"].is_null() && num(&training[0], "duration_ms") > 0.0, "{training:?}");
        }
    }
    // Tree models explain themselves; the others say they cannot.
    let imp = lake.rows("SELECT * FROM ML.FEATURE_IMPORTANCE(MODEL m_forest) ORDER BY importance_gain DESC");
    assert_eq!(imp.len(), 32);
    assert!(num(&imp[0], "importance_gain") > num(&imp[31], "importance_gain"));
    // Gain and cover are averages per split, as BigQuery ML defines them: a
    // split divides at most every training row.
    let trained_rows =
        lake.rows("SELECT training_rows FROM ml.models WHERE name = 'm_forest'")[0]["training_rows"].as_f64().unwrap();
    for f in &imp {
        assert!(num(f, "importance_cover") <= trained_rows, "{f} (of {trained_rows} rows)");
        assert!(num(f, "importance_weight") > 0.0 || num(f, "importance_gain") == 0.0, "{f}");
    }
    assert!(lake.fails("SELECT * FROM ML.FEATURE_IMPORTANCE(MODEL m_logistic)").contains("tree models"));

    // Results are data.
    let evals = lake.rows("SELECT model, COUNT(*) AS n FROM ml.evaluations GROUP BY model ORDER BY model");
    assert_eq!(evals.len(), 5, "{evals:?}");
    let models = lake.rows("SELECT name, version, model_type, training_rows FROM ml.models ORDER BY name");
    assert_eq!(models.len(), 5, "{models:?}");

    // Cross-validation: stratified folds, one row per fold and metric plus
    // mean and standard deviation; stored.
    let cv = lake.rows(&format!(
        "SELECT * FROM ML.CROSS_VALIDATE(MODEL m_bayes, ({FEATURES} WHERE split = 'train'), STRUCT(3 AS num_folds))"
    ));
    assert_eq!(cv.len(), 3 * 6 + 2 * 6, "{cv:?}");
    let accs: Vec<f64> = cv
        .iter()
        .filter(|r| r["metric"] == "accuracy" && r["fold"] != "mean" && r["fold"] != "stddev")
        .map(|r| num(r, "value"))
        .collect();
    assert_eq!(accs.len(), 3);
    let mean = cv.iter().find(|r| r["metric"] == "accuracy" && r["fold"] == "mean").unwrap();
    assert!((num(mean, "value") - accs.iter().sum::<f64>() / 3.0).abs() < 1e-9);
    let stored = lake.rows("SELECT COUNT(*) AS n FROM ml.cross_validations WHERE model = 'm_bayes'");
    assert_eq!(stored[0]["n"], 30);
    // The folds read one stored copy of the input, removed at the end —
    // also when a fold fails (here: its training rows have one class).
    let scratch = || {
        let payloads = lake.models_dir().join("m_bayes/payloads");
        std::fs::read_dir(&payloads).unwrap().flatten().filter(|e| e.path().is_dir()).count()
    };
    assert_eq!(scratch(), 0, "{:?}", model_files(&lake.models_dir()));
    let one_class = lake.fails(&format!(
        "SELECT * FROM ML.CROSS_VALIDATE(MODEL m_bayes, ({FEATURES} WHERE split = 'train' AND emotion = 'happy'), \
         STRUCT(2 AS num_folds))"
    ));
    assert!(one_class.contains("only one class"), "{one_class}");
    assert_eq!(scratch(), 0, "{:?}", model_files(&lake.models_dir()));
    // …and usable like any table (here, joined back to the registry).
    let joined = lake.rows(
        "SELECT c.fold, c.value, m.model_type FROM ml.cross_validations c JOIN ml.models m \
         ON c.model = m.name AND c.version = m.version WHERE c.metric = 'accuracy' AND c.fold = 'mean'",
    );
    assert_eq!(joined.len(), 1);
}

#[test]
fn versions_are_immutable_reproducible_and_pinnable() {
    let lake = Lake::new("0.1");
    let q = format!("{FEATURES} WHERE split = 'train'");
    let v1 = create(&lake, "rf", "random_forest_classifier", ", num_parallel_tree = 8, max_tree_depth = 6", &q);
    let v2 = create(&lake, "rf", "random_forest_classifier", ", num_parallel_tree = 8, max_tree_depth = 6", &q);
    assert_eq!((v1["version"].as_i64(), v2["version"].as_i64()), (Some(1), Some(2)));
    for m in ["accuracy", "log_loss", "roc_auc"] {
        assert_eq!(v1[m], v2[m], "same seed and data, same {m}");
    }
    assert_eq!(payload(&lake, "rf", 1), payload(&lake, "rf", 2), "same seed and data, the same model bytes");

    // CREATE without OR REPLACE refuses; IF NOT EXISTS leaves it be.
    let e = lake.fails(&format!(
        "CREATE MODEL rf OPTIONS (model_type = 'logistic_reg', input_label_cols = ['emotion']) AS {q}"
    ));
    assert!(e.contains("already exists"), "{e}");
    let kept = lake.rows(&format!(
        "CREATE MODEL IF NOT EXISTS rf OPTIONS (model_type = 'logistic_reg', input_label_cols = ['emotion']) AS {q}"
    ));
    assert_eq!(kept[0]["status"], "exists");

    // A third version with other options; name@1 still answers as version 1.
    create(&lake, "rf", "logistic_reg", "", &q);
    let test = "(SELECT * FROM training.frames WHERE split = 'test' AND frame_no % 10 = 0)";
    let pinned = lake.rows(&format!("SELECT * FROM ML.EVALUATE(MODEL rf@1, {test})"));
    let latest = lake.rows(&format!("SELECT * FROM ML.EVALUATE(MODEL rf, {test})"));
    let v2e = lake.rows(&format!("SELECT * FROM ML.EVALUATE(MODEL rf@2, {test})"));
    assert_eq!(pinned[0], v2e[0], "versions 1 and 2 are the same model");
    assert_ne!(pinned[0], latest[0], "the latest is the logistic regression");
    let registry = lake.rows("SELECT version, model_type FROM ml.models WHERE name = 'rf' ORDER BY version");
    assert_eq!(registry.len(), 3);
    assert_eq!(registry[2]["model_type"], "logistic_reg");

    // DROP MODEL removes every version and its registry rows.
    let dropped = lake.rows("DROP MODEL rf");
    assert_eq!(dropped[0]["versions_dropped"], 3);
    assert!(lake.rows("SELECT * FROM ml.models").is_empty());
    assert!(lake.fails("SELECT * FROM ML.EVALUATE(MODEL rf)").contains("unknown model rf"));
    assert!(lake.fails("DROP MODEL rf").contains("unknown model"));
    lake.rows("DROP MODEL IF EXISTS rf");

    // Names as BigQuery writes them: a dataset is a namespace of the store
    // (sales.churn is not churn), backquotes are read, and a project part is
    // this cluster's project (SENTIO_PROJECT) or refused.
    let small = "OPTIONS (model_type = 'naive_bayes_classifier', input_label_cols = ['emotion'])";
    lake.rows(&format!("CREATE MODEL `sales.churn` {small} AS {q}"));
    lake.rows(&format!("CREATE MODEL churn {small} AS {q} AND frame_no < 10"));
    let in_sales = lake.rows(&format!("SELECT * FROM ML.EVALUATE(MODEL sales.churn, {test})"));
    let backquoted = lake.rows(&format!("SELECT * FROM ML.EVALUATE(MODEL `sales`.`churn`@1, {test})"));
    let plain = lake.rows(&format!("SELECT * FROM ML.EVALUATE(MODEL churn, {test})"));
    assert_eq!(in_sales, backquoted);
    assert_ne!(in_sales, plain, "sales.churn and churn are two models");
    let names = lake.rows("SELECT name FROM ml.models ORDER BY name");
    assert_eq!(names, vec![serde_json::json!({ "name": "churn" }), serde_json::json!({ "name": "sales.churn" })]);
    let e = lake.fails(&format!("SELECT * FROM ML.EVALUATE(MODEL `acme.sales.churn`, {test})"));
    assert!(e.contains("this cluster has no project name; write sales.churn"), "{e}");
    let mut with_project = lake.cmd();
    with_project.env("SENTIO_PROJECT", "acme");
    let f = run_ok(
        with_project.args([
            "--format",
            "json",
            "-c",
            &format!("SELECT * FROM ML.EVALUATE(MODEL `acme.sales.churn`, {test})"),
        ]),
        MIN,
    );
    assert_eq!(serde_json::from_str::<Vec<Value>>(&f.stdout).unwrap(), in_sales);
    let e = lake.fails("DROP MODEL `other.sales.churn`");
    assert!(e.contains("no project name"), "{e}");
    assert_eq!(lake.rows("DROP MODEL sales.churn")[0]["versions_dropped"], 1);
    assert_eq!(lake.rows("SELECT name FROM ml.models"), vec![serde_json::json!({ "name": "churn" })]);
}

/// `CREATE OR REPLACE MODEL` of one name by three processes at once: three
/// distinct versions, each intact (its parameters the ones it trained: the
/// payload's fingerprint is checked when it is loaded) — racing writers
/// once picked the same version and overwrote each other's parameters.
#[test]
fn concurrent_creates_of_one_model_make_distinct_intact_versions() {
    let lake = Lake::new("0.05");
    let q = format!("{FEATURES} WHERE split = 'train'");
    let created: Vec<Value> = std::thread::scope(|s| {
        let runs: Vec<_> = (1..=3)
            .map(|i| {
                let (lake, q) = (&lake, &q);
                s.spawn(move || {
                    create(lake, "race", "random_forest_classifier", &format!(", num_parallel_tree = {}", 3 + i), q)
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let mut versions: Vec<i64> = created.iter().map(|c| c["version"].as_i64().unwrap()).collect();
    versions.sort_unstable();
    assert_eq!(versions, vec![1, 2, 3], "{created:?}");
    let mut fingerprints: Vec<String> = versions.iter().map(|v| payload(&lake, "race", *v).0).collect();
    fingerprints.dedup();
    assert_eq!(fingerprints.len(), 3, "three forest sizes, three models");
    let test = "(SELECT * FROM training.frames WHERE split = 'test')";
    for c in &created {
        let v = c["version"].as_i64().unwrap();
        let evaluated = lake.rows(&format!("SELECT accuracy FROM ML.EVALUATE(MODEL race@{v}, {test})"));
        assert!(num(&evaluated[0], "accuracy") > 0.4, "race@{v}: {evaluated:?}");
    }
    assert_eq!(lake.rows("SELECT COUNT(*) AS n FROM ml.models WHERE name = 'race'")[0]["n"], 3);
    let files = std::fs::read_dir(lake.models_dir().join("race/payloads")).unwrap().count();
    assert_eq!(files, 3, "one parameters file per version, none left over");
}

#[test]
fn training_past_max_training_rows_fits_a_bounded_seeded_sample() {
    let lake = Lake::new("0.05");
    let q = format!("{FEATURES} WHERE split = 'train'");
    let test = "(SELECT * FROM training.frames WHERE split = 'test')";
    let all = create(&lake, "all_rows", "logistic_reg", "", &q);
    let rows = all["training_rows"].as_i64().unwrap();
    assert_eq!(all["fit_rows"], rows, "under the cap every training row is used: {all}");
    let cap = rows / 3;
    for (name, model_type, extra) in [
        ("lr_sample", "logistic_reg", String::new()),
        ("tree_sample", "decision_tree_classifier", String::new()),
        ("rf_sample", "random_forest_classifier", ", num_parallel_tree = 6, max_tree_depth = 6".to_string()),
        ("knn_sample", "knn_classifier", ", max_stored_rows = 100000".to_string()),
    ] {
        let created = create(&lake, name, model_type, &format!(", max_training_rows = {cap}{extra}"), &q);
        assert_eq!(created["training_rows"], rows, "{name}: {created}");
        assert_eq!(created["fit_rows"], cap, "{name}: {created}");
        let meta: Value =
            serde_json::from_slice(&std::fs::read(lake.models_dir().join(format!("{name}/1/model.json"))).unwrap())
                .unwrap();
        assert_eq!(meta["fit_rows"], cap, "{name}");
        let parts = meta["training_parts"].as_array().unwrap();
        let expected_parts = if model_type == "random_forest_classifier" { 6 } else { 1 };
        assert_eq!(parts.len(), expected_parts, "{name}: {parts:?}");
        for p in parts {
            assert_eq!(p["rows"], cap, "{name}: every part fits the sample: {p}");
        }
        let eval = lake.rows(&format!("SELECT accuracy FROM ML.EVALUATE(MODEL {name}, {test})"));
        assert!(num(&eval[0], "accuracy") > 0.5, "{name}: a third of the rows still learns: {eval:?}");
    }
    // Naive Bayes keeps statistics, not rows: no cap applies, so the option
    // is refused rather than ignored, and every row is used.
    let e = lake.fails(&format!(
        "CREATE MODEL bayes_capped OPTIONS (model_type = 'naive_bayes_classifier', input_label_cols = ['emotion'], \
         max_training_rows = {cap}) AS {q}"
    ));
    assert!(e.contains("max_training_rows does not apply to naive_bayes_classifier"), "{e}");
    let bayes = create(&lake, "bayes_all", "naive_bayes_classifier", "", &q);
    assert_eq!(bayes["fit_rows"], rows, "{bayes}");
}

#[test]
fn feature_info_describes_each_feature_over_the_training_rows() {
    let lake = Lake::new("0.05");
    lake.rows(
        "CREATE MODEL described OPTIONS (model_type = 'naive_bayes_classifier', data_split_method = 'NO_SPLIT') AS \
         SELECT * FROM (VALUES ('a', 1.0, 'x'), ('b', 2.0, 'y'), ('a', 3.0, NULL), ('b', 10.0, 'y'), ('a', 4.0, 'x'), \
         ('b', CAST(NULL AS DOUBLE), 'z')) t(label, v, c)",
    );
    let info = lake.rows("SELECT * FROM ML.FEATURE_INFO(MODEL described) ORDER BY input");
    let [c, v] = info.as_slice() else { panic!("{info:?}") };
    assert_eq!(
        (num(v, "min"), num(v, "max"), num(v, "mean"), num(v, "median"), v["null_count"].as_i64()),
        (1.0, 10.0, 4.0, 3.0, Some(1)),
        "{v}"
    );
    assert!((num(v, "stddev") - 3.162_277_660_168_379_5).abs() < 1e-6, "population stddev: {v}");
    assert_eq!(
        (c["category_count"].as_i64(), c["null_count"].as_i64(), c["dimension"].as_i64()),
        (Some(3), Some(1), Some(3)),
        "{c}"
    );
    assert!(c["median"].is_null() && c["mean"].is_null(), "{c}");
}

/// Features that are aggregates (per-session means of values that binary
/// floating point cannot hold exactly) come out of the cluster with different
/// last bits from run to run: Ballista reads shuffle partitions in a random
/// order, so partial sums merge in a different order. The same data must
/// still give the same model and the same cross-validation.
#[test]
fn aggregated_features_give_the_same_model_and_cross_validation_every_run() {
    let mut lake = Lake::new("0.1");
    // Partial sums merged across partitions, as on a big lake.
    lake.spread = true;
    let q = "SELECT AVG(CAST(f00 AS DOUBLE) * 0.1) AS a, AVG(CAST(f01 AS DOUBLE) * 0.3) AS b, \
             AVG(CAST(f02 AS DOUBLE) / 7) AS c, \
             CASE WHEN AVG(f03) > 0 THEN 'up' ELSE 'down' END AS emotion \
             FROM training.frames GROUP BY media_id, frame_no % 5";
    // The premise: the aggregates themselves do vary in their last bits.
    let sums: std::collections::BTreeSet<String> = (0..3)
        .map(|_| {
            let f = run_ok(
                lake.cmd().args([
                    "--format",
                    "csv",
                    "-c",
                    "SELECT media_id, frame_no % 5 AS k, AVG(CAST(f00 AS DOUBLE) * 0.1) AS a \
                     FROM training.frames GROUP BY 1, 2 ORDER BY 1, 2",
                ]),
                MIN,
            );
            f.stdout
        })
        .collect();
    eprintln!("distinct results of the same AVG in 3 runs: {}", sums.len());
    let mut models = Vec::new();
    let mut cvs = Vec::new();
    for _ in 0..2 {
        let m = create(&lake, "agg", "logistic_reg", "", q);
        let v = m["version"].as_i64().unwrap();
        models.push(payload(&lake, "agg", v));
        let cv = lake.rows(&format!(
            "SELECT fold, metric, value FROM ML.CROSS_VALIDATE(MODEL agg@1, ({q}), STRUCT(4 AS num_folds)) \
             ORDER BY fold, metric"
        ));
        assert_eq!(cv.len(), 6 * 6, "{cv:?}");
        cvs.push(cv);
    }
    assert!(models[0] == models[1], "same data and seed, the same logistic regression, byte for byte");
    assert_eq!(cvs[0], cvs[1], "same data and seed, the same folds and metrics");
}

#[test]
fn bad_input_gets_a_clear_error_and_stores_nothing() {
    let lake = Lake::new("0.05");
    let q = format!("{FEATURES} WHERE split = 'train'");
    create(&lake, "good", "logistic_reg", "", &q);
    let before = model_files(&lake.models_dir());
    let registry_before = lake.rows("SELECT COUNT(*) AS n FROM ml.models")[0]["n"].clone();
    let cases: Vec<(String, &str)> = vec![
        ("SELECT * FROM ML.PREDICT(MODEL nosuch, (SELECT 1 AS x))".into(), "unknown model nosuch"),
        ("SELECT * FROM ML.EVALUATE(MODEL good@7)".into(), "good@7"),
        (
            format!("CREATE MODEL b1 OPTIONS (model_type = 'logistic_reg', input_label_cols = ['mood']) AS {q}"),
            "no label column \"mood\"",
        ),
        (
            format!(
                "CREATE MODEL b2 OPTIONS (model_type = 'logistic_reg', input_label_cols = ['emotion']) AS {FEATURES} WHERE emotion = 'happy'"
            ),
            "only one class",
        ),
        (
            format!(
                "CREATE MODEL b3 OPTIONS (model_type = 'logistic_reg', input_label_cols = ['emotion']) AS {FEATURES} WHERE false"
            ),
            "training set is empty",
        ),
        (
            "CREATE MODEL b4 OPTIONS (model_type = 'logistic_reg', input_label_cols = ['emotion']) AS \
             SELECT emotion, f00, CAST(NULL AS DOUBLE) AS nothing FROM training.frames"
                .into(),
            "\"nothing\" is NULL (or NaN) in every training row",
        ),
        (
            format!(
                "CREATE MODEL b5 OPTIONS (model_type = 'logistic_reg', input_label_cols = ['emotion'], colour = 'red') AS {q}"
            ),
            "unknown option colour",
        ),
        (format!("CREATE MODEL b6 OPTIONS (model_type = 'deep_magic') AS {q}"), "unknown model_type"),
        (
            format!("CREATE MODEL b7 OPTIONS (model_type = 'logistic_reg', max_iterations = 'many') AS {q}"),
            "max_iterations must be a number",
        ),
        (
            format!("CREATE MODEL b9 OPTIONS (model_type = 'logistic_reg', max_training_rows = 0) AS {q}"),
            "max_training_rows must be between 1 and 1000000000",
        ),
        (
            format!("CREATE MODEL b8 OPTIONS (model_type = 'logistic_reg' input_label_cols = ['emotion']) AS {q}"),
            "ML syntax",
        ),
        (
            "SELECT * FROM ML.PREDICT(MODEL good, (SELECT f00 FROM training.frames))".into(),
            "needs the feature column \"f01\"",
        ),
        (
            "SELECT * FROM ML.PREDICT(MODEL good, (SELECT * REPLACE ('x' AS f03) FROM training.frames))".into(),
            "feature \"f03\" was Float",
        ),
        ("SELECT * FROM ML.PREDICT(MODEL good, (SELECT * FROM training.frames)".into(), "not closed"),
        ("SELECT * FROM ML.PREDICTT(MODEL good, (SELECT 1))".into(), "unknown function ML.PREDICTT"),
        // Nothing is accepted and ignored: another model type's option, a
        // setting a function does not take, BigQuery settings Sentio lacks.
        (
            format!("CREATE MODEL b10 OPTIONS (model_type = 'random_forest_classifier', l2_reg = 1.0) AS {q}"),
            "l2_reg does not apply to random_forest_classifier",
        ),
        (
            format!("CREATE MODEL b11 OPTIONS (model_type = 'naive_bayes_classifier', max_tree_depth = 3) AS {q}"),
            "max_tree_depth does not apply to naive_bayes_classifier",
        ),
        (
            "SELECT * FROM ML.PREDICT(MODEL good, TABLE training.frames, STRUCT(0.5 AS colour))".into(),
            "ML.PREDICT: colour: no such setting (ML.PREDICT takes threshold, trial_id)",
        ),
        (
            "SELECT * FROM ML.PREDICT(MODEL good, TABLE training.frames, STRUCT(1 AS trial_id))".into(),
            "trial_id: good@1 has no trials (it was created without num_trials)",
        ),
        (
            "SELECT * FROM ML.PREDICT(MODEL good, TABLE training.frames, STRUCT(TRUE AS keep_original_columns))".into(),
            "keep_original_columns: Sentio does not implement it",
        ),
        (
            "SELECT * FROM ML.FEATURE_INFO(MODEL good, STRUCT(1 AS trial_id))".into(),
            "trial_id: it picks a trial of a tuned model, which ML.PREDICT, ML.EVALUATE",
        ),
        (
            "SELECT * FROM ML.FEATURE_INFO(MODEL good, STRUCT(3 AS top_k))".into(),
            "ML.FEATURE_INFO: top_k: no such setting (ML.FEATURE_INFO takes no settings)",
        ),
        (
            "SELECT * FROM ML.PREDICT(MODEL good, TABLE training.frames, STRUCT(0.6 AS threshold))".into(),
            "threshold is for binary models; good has 3 labels",
        ),
        (
            "SELECT * FROM ML.ROC_CURVE(MODEL good, TABLE training.frames, GENERATE_ARRAY(0, 1, -0.1))".into(),
            "the step must be positive",
        ),
    ];
    for (sql, want) in &cases {
        let e = lake.fails(sql);
        assert!(e.contains(want), "{sql}\nexpected {want:?} in:\n{e}");
    }
    assert_eq!(model_files(&lake.models_dir()), before, "failed statements store nothing");
    assert_eq!(lake.rows("SELECT COUNT(*) AS n FROM ml.models")[0]["n"], registry_before);

    // NULL and NaN features at predict time are imputed, not errors.
    let rows = lake.rows(
        "SELECT predicted_emotion FROM ML.PREDICT(MODEL good, \
         (SELECT * REPLACE (CAST(NULL AS REAL) AS f00, CAST('NaN' AS REAL) AS f01) FROM training.frames LIMIT 5))",
    );
    assert_eq!(rows.len(), 5);

    // A corrupt model file is refused clearly.
    let meta: Value =
        serde_json::from_slice(&std::fs::read(lake.models_dir().join("good/1/model.json")).unwrap()).unwrap();
    let pb = lake.root.join(meta["payload_file"].as_str().unwrap());
    let mut bytes = std::fs::read(&pb).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x5a;
    std::fs::write(&pb, &bytes).unwrap();
    let e = lake.fails("SELECT * FROM ML.PREDICT(MODEL good, (SELECT * FROM training.frames LIMIT 5))");
    assert!(e.contains("corrupt or replaced"), "{e}");
    std::fs::write(lake.models_dir().join("good/1/model.json"), "{ not json").unwrap();
    let e = lake.fails("SELECT * FROM ML.EVALUATE(MODEL good)");
    assert!(e.contains("model.json is not valid"), "{e}");
}

/// The positive label's probability in a `predicted_<label>_probs` array.
fn probability_of(probs: &Value, label: &str) -> f64 {
    let entry = probs.as_array().unwrap().iter().find(|p| p["label"] == label);
    entry.and_then(|p| p["prob"].as_f64()).unwrap_or_else(|| panic!("no {label} in {probs}"))
}

/// BigQuery ML's `threshold` on a binary model: `ML.PREDICT`,
/// `ML.CONFUSION_MATRIX` and `ML.EVALUATE` decide by it exactly as computed
/// here from the predicted probabilities, and `ML.ROC_CURVE` takes the
/// thresholds of `GENERATE_ARRAY`.
#[test]
fn a_threshold_decides_a_binary_models_predictions() {
    let lake = Lake::new("0.1");
    let features = "f00, f01, f02, f03, f04, f05, f06, f07";
    lake.rows(&format!(
        "CREATE MODEL happy OPTIONS (model_type = 'logistic_reg', input_label_cols = ['is_happy']) AS \
         SELECT {features}, emotion = 'happy' AS is_happy FROM training.frames WHERE split = 'train'"
    ));
    let test = format!(
        "(SELECT session_id, frame_no, {features}, emotion = 'happy' AS is_happy FROM training.frames \
         WHERE split = 'test')"
    );
    let t = 0.7;
    let predicted = lake.rows(&format!(
        "SELECT is_happy, predicted_is_happy, predicted_is_happy_probs FROM \
         ML.PREDICT(MODEL happy, {test}, STRUCT({t} AS threshold)) ORDER BY session_id, frame_no"
    ));
    let plain = lake
        .rows(&format!("SELECT predicted_is_happy FROM ML.PREDICT(MODEL happy, {test}) ORDER BY session_id, frame_no"));
    assert_eq!(predicted.len(), plain.len());
    let (mut moved, mut cells) = (0, [[0i64; 2]; 2]);
    for (row, before) in predicted.iter().zip(&plain) {
        let p = probability_of(&row["predicted_is_happy_probs"], "true");
        assert_eq!(row["predicted_is_happy"], p >= t, "{row}");
        moved += usize::from(row["predicted_is_happy"] != before["predicted_is_happy"]);
        let actual = row["is_happy"].as_bool().unwrap();
        cells[usize::from(actual)][usize::from(p >= t)] += 1;
    }
    assert!(moved > 0, "a threshold of {t} changed no prediction of {} rows", plain.len());

    let matrix =
        lake.rows(&format!("SELECT * FROM ML.CONFUSION_MATRIX(MODEL happy, {test}, STRUCT({t} AS threshold))"));
    assert_eq!(matrix.len(), 2, "{matrix:?}");
    for expected in ["false", "true"] {
        let a = usize::from(expected == "true");
        let row = matrix.iter().find(|r| r["expected_label"] == expected).unwrap_or_else(|| panic!("{matrix:?}"));
        assert_eq!((row["false"].as_i64(), row["true"].as_i64()), (Some(cells[a][0]), Some(cells[a][1])), "{matrix:?}");
    }
    let metrics = &lake.rows(&format!("SELECT * FROM ML.EVALUATE(MODEL happy, {test}, STRUCT({t} AS threshold))"))[0];
    let [[tn, fp], [fn_, tp]] = cells.map(|r| r.map(|c| c as f64));
    assert!((num(metrics, "precision") - tp / (tp + fp)).abs() < 1e-9, "{metrics}");
    assert!((num(metrics, "recall") - tp / (tp + fn_)).abs() < 1e-9, "{metrics}");
    assert!((num(metrics, "accuracy") - (tp + tn) / (tp + tn + fp + fn_)).abs() < 1e-9, "{metrics}");

    let curve = lake.rows(&format!(
        "SELECT threshold, true_positives, false_positives FROM \
         ML.ROC_CURVE(MODEL happy, {test}, GENERATE_ARRAY(0.4, 0.6, 0.1)) ORDER BY threshold"
    ));
    assert_eq!(curve.iter().map(|r| num(r, "threshold")).collect::<Vec<_>>(), vec![0.4, 0.5, 0.6]);
    for point in &curve {
        let cut = num(point, "threshold");
        let (tp, fp) = predicted.iter().fold((0, 0), |(tp, fp), row| {
            let positive = probability_of(&row["predicted_is_happy_probs"], "true") >= cut;
            let actual = row["is_happy"].as_bool().unwrap();
            (tp + i64::from(positive && actual), fp + i64::from(positive && !actual))
        });
        assert_eq!((point["true_positives"].as_i64(), point["false_positives"].as_i64()), (Some(tp), Some(fp)));
    }

    // A threshold out of range is refused.
    let e = lake.fails(&format!("SELECT * FROM ML.PREDICT(MODEL happy, {test}, STRUCT(1.5 AS threshold))"));
    assert!(e.contains("threshold must be a number from 0 to 1"), "{e}");

    // Without rows, the model's own evaluation rows, as BigQuery ML reads
    // them: rebuilt from the training query and split, while that data is
    // unchanged.
    let eval_rows = lake.rows("SELECT eval_rows FROM ml.models WHERE name = 'happy'")[0]["eval_rows"].as_i64().unwrap();
    assert!(eval_rows > 0);
    let own = lake.rows("SELECT * FROM ML.CONFUSION_MATRIX(MODEL happy, STRUCT(0.6 AS threshold))");
    let counted: i64 = own.iter().map(|r| r["false"].as_i64().unwrap() + r["true"].as_i64().unwrap()).sum();
    assert_eq!(counted, eval_rows, "{own:?}");
    let correct: i64 = own.iter().map(|r| r[r["expected_label"].as_str().unwrap()].as_i64().unwrap()).sum();
    let accuracy = num(&lake.rows("SELECT * FROM ML.EVALUATE(MODEL happy, STRUCT(0.6 AS threshold))")[0], "accuracy");
    assert!((accuracy - correct as f64 / eval_rows as f64).abs() < 1e-9, "{accuracy} vs {own:?}");
    let roc = lake.rows("SELECT * FROM ML.ROC_CURVE(MODEL happy, [0.5])");
    assert_eq!(
        num(&roc[0], "true_positives")
            + num(&roc[0], "false_negatives")
            + num(&roc[0], "true_negatives")
            + num(&roc[0], "false_positives"),
        eval_rows as f64,
        "{roc:?}"
    );
    lake.rows(&format!(
        "CREATE MODEL happy_all OPTIONS (model_type = 'logistic_reg', input_label_cols = ['is_happy'], \
         data_split_method = 'NO_SPLIT') AS SELECT {features}, emotion = 'happy' AS is_happy FROM training.frames \
         WHERE split = 'train'"
    ));
    let e = lake.fails("SELECT * FROM ML.CONFUSION_MATRIX(MODEL happy_all)");
    assert!(e.contains("has none (data_split_method = 'NO_SPLIT'"), "{e}");
    // New training data: the evaluation rows are not those of training.
    let frames = lake.root.join("training/frames");
    let part = std::fs::read_dir(&frames)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "parquet"))
        .unwrap();
    std::fs::copy(&part, frames.join("more-frames.parquet")).unwrap();
    let e = lake.fails("SELECT * FROM ML.ROC_CURVE(MODEL happy)");
    assert!(e.contains("the training rows have changed since it was trained"), "{e}");
}

/// ML.EXPLAIN_PREDICT's attributions are exact: for every row they add up
/// to the prediction minus the baseline, the prediction is the model's (the
/// predicted class's probability for a forest, its score for logistic
/// regression); ML.GLOBAL_EXPLAIN answers for models created with
/// enable_global_explain. (That Tree SHAP is the Shapley value itself is
/// checked against enumeration in sentio-udfs' unit tests.)
#[test]
fn explanations_add_up_to_the_prediction() {
    let lake = Lake::new("0.1");
    let features = "f00, f01, f02, f03, f04, f05, f06, f07";
    let train = format!("SELECT {features}, emotion FROM training.frames WHERE split = 'train'");
    lake.rows(&format!(
        "CREATE MODEL ex_rf OPTIONS (model_type = 'random_forest_classifier', input_label_cols = ['emotion'], \
         num_parallel_tree = 8, max_tree_depth = 6, seed = 3, enable_global_explain = TRUE) AS {train}"
    ));
    lake.rows(&format!(
        "CREATE MODEL ex_lr OPTIONS (model_type = 'logistic_reg', input_label_cols = ['emotion']) AS {train}"
    ));
    let rows = format!(
        "(SELECT session_id, frame_no, {features} FROM training.frames WHERE split = 'test' \
         ORDER BY session_id, frame_no LIMIT 150)"
    );
    for model in ["ex_rf", "ex_lr"] {
        let explained = lake.rows(&format!(
            "SELECT * FROM ML.EXPLAIN_PREDICT(MODEL {model}, {rows}, STRUCT(8 AS top_k_features)) \
             ORDER BY session_id, frame_no"
        ));
        let predicted = lake.rows(&format!(
            "SELECT predicted_emotion, predicted_emotion_probs FROM ML.PREDICT(MODEL {model}, {rows}) \
             ORDER BY session_id, frame_no"
        ));
        assert_eq!(explained.len(), 150);
        for (e, p) in explained.iter().zip(&predicted) {
            assert_eq!(e["predicted_emotion"], p["predicted_emotion"], "{e}");
            let attributions = e["top_feature_attributions"].as_array().unwrap();
            assert_eq!(attributions.len(), 8, "every feature, as asked: {e}");
            let total: f64 = attributions.iter().map(|a| num(a, "attribution")).sum();
            let (base, value) = (num(e, "baseline_prediction_value"), num(e, "prediction_value"));
            assert!((base + total - value).abs() < 1e-6, "{model}: {base} + {total} != {value}");
            assert!(num(e, "approximation_error") < 1e-6, "{e}");
            let magnitudes: Vec<f64> = attributions.iter().map(|a| num(a, "attribution").abs()).collect();
            assert!(magnitudes.windows(2).all(|w| w[0] >= w[1]), "largest first: {magnitudes:?}");
            if model == "ex_rf" {
                let label = p["predicted_emotion"].as_str().unwrap();
                assert!((probability_of(&p["predicted_emotion_probs"], label) - value).abs() < 1e-9, "{e}");
            }
        }
    }
    let top = lake.rows(&format!("SELECT top_feature_attributions AS t FROM ML.EXPLAIN_PREDICT(MODEL ex_rf, {rows})"));
    assert!(top.iter().all(|r| r["t"].as_array().unwrap().len() == 5), "five by default");

    let global = lake.rows("SELECT * FROM ML.GLOBAL_EXPLAIN(MODEL ex_rf)");
    let mut named: Vec<&str> = global.iter().map(|g| g["feature"].as_str().unwrap()).collect();
    named.sort_unstable();
    assert_eq!(named, features.split(", ").collect::<Vec<_>>(), "{global:?}");
    assert!(global.iter().all(|g| num(g, "attribution") >= 0.0) && global.iter().any(|g| num(g, "attribution") > 0.0));
    let per_class = lake.rows("SELECT * FROM ML.GLOBAL_EXPLAIN(MODEL ex_rf, STRUCT(TRUE AS class_level_explain))");
    assert_eq!(per_class.len(), 3 * 8, "{per_class:?}");
    assert!(per_class.iter().all(|g| ["angry", "happy", "sad"].contains(&g["class_label"].as_str().unwrap())));

    let e = lake.fails("SELECT * FROM ML.GLOBAL_EXPLAIN(MODEL ex_lr)");
    assert!(e.contains("without enable_global_explain = TRUE"), "{e}");
    lake.rows(&format!(
        "CREATE MODEL ex_nb OPTIONS (model_type = 'naive_bayes_classifier', input_label_cols = ['emotion']) AS {train}"
    ));
    let e = lake.fails(&format!("SELECT * FROM ML.EXPLAIN_PREDICT(MODEL ex_nb, {rows})"));
    assert!(e.contains("Sentio explains random_forest_*, boosted_tree_*"), "{e}");
    let e = lake.fails(&format!("SELECT * FROM ML.EXPLAIN_PREDICT(MODEL ex_rf, {rows}, STRUCT(0 AS top_k_features))"));
    assert!(e.contains("top_k_features must be a whole number"), "{e}");
    let e = lake.fails(&format!(
        "CREATE MODEL ex_knn OPTIONS (model_type = 'knn_classifier', input_label_cols = ['emotion'], \
         enable_global_explain = TRUE) AS {train}"
    ));
    assert!(e.contains("enable_global_explain does not apply to knn_classifier"), "{e}");
}

/// `TRANSFORM`: the preprocessing is learned over the training rows, kept
/// in the model and applied to raw rows by every function. A model trained
/// on the same features preprocessed by hand in its query (the window forms
/// of the same functions) predicts the same; a row predicted alone gets the
/// prediction it gets among others (training statistics, not the rows');
/// `ML.TRANSFORM` gives the standardised values an independent query
/// computes from the training rows.
#[test]
fn transform_learns_preprocessing_and_applies_it_to_raw_rows() {
    let lake = Lake::new("0.1");
    let exprs = "ML.STANDARD_SCALER(f00) OVER () AS f00_s, ML.MIN_MAX_SCALER(f01) OVER () AS f01_m, \
                 ML.BUCKETIZE(f02, [-1, 0, 1]) AS f02_b, ML.IMPUTER(f03, 'mean') OVER () AS f03_i, \
                 ML.MAX_ABS_SCALER(f04) OVER () AS f04_a";
    let from = "FROM training.frames WHERE split = 'train'";
    // Both models train on the same rows: a split hashes the (transformed)
    // values, which differ in their last digits between the two.
    let split = "data_split_method = 'CUSTOM', data_split_col = 'is_eval'";
    let options = format!("OPTIONS (model_type = 'logistic_reg', input_label_cols = ['emotion'], {split})");
    let created = lake.rows(&format!(
        "CREATE MODEL tf TRANSFORM ({exprs}, emotion) {options} \
         AS SELECT f00, f01, f02, f03, f04, emotion, frame_no % 5 = 0 AS is_eval {from}"
    ));
    assert_eq!(created[0]["status"], "created", "{created:?}");
    lake.rows(&format!(
        "CREATE MODEL by_hand {options} AS SELECT {exprs}, emotion, frame_no % 5 = 0 AS is_eval {from}"
    ));
    let info = lake.rows("SELECT input, mean, stddev FROM ML.FEATURE_INFO(MODEL tf)");
    let inputs: Vec<&str> = info.iter().map(|i| i["input"].as_str().unwrap()).collect();
    assert_eq!(inputs, ["f00_s", "f01_m", "f02_b", "f03_i", "f04_a"], "the transformed features: {info:?}");
    // Standardised over every row of the training query; FEATURE_INFO
    // describes the rows left after the evaluation split.
    assert!(num(&info[0], "mean").abs() < 0.05 && (num(&info[0], "stddev") - 1.0).abs() < 0.05, "{info:?}");

    let test = "(SELECT session_id, frame_no, f00, f01, f02, f03, f04 FROM training.frames WHERE split = 'test' \
                ORDER BY session_id, frame_no LIMIT 50)";
    let probs = |sql: &str| -> Vec<Value> {
        lake.rows(&format!("SELECT predicted_emotion_probs AS p FROM {sql} ORDER BY session_id, frame_no"))
            .into_iter()
            .map(|r| r["p"].clone())
            .collect()
    };
    let raw = probs(&format!("ML.PREDICT(MODEL tf, {test})"));
    // The test rows preprocessed by hand with the training rows' statistics.
    let stats = lake.rows(&format!(
        "SELECT AVG(f00) AS m0, STDDEV(f00) AS s0, MIN(f01) AS lo1, MAX(f01) AS hi1, AVG(f03) AS m3, \
         MAX(ABS(f04)) AS a4 {from}"
    ));
    let st = |k: &str| num(&stats[0], k);
    let by_hand = probs(&format!(
        "ML.PREDICT(MODEL by_hand, (SELECT session_id, frame_no, (f00 - {m0:?}) / {s0:?} AS f00_s, \
         LEAST(GREATEST((f01 - {lo1:?}) / ({hi1:?} - {lo1:?}), 0), 1) AS f01_m, \
         CASE WHEN f02 < -1 THEN 'bin_1' WHEN f02 < 0 THEN 'bin_2' WHEN f02 < 1 THEN 'bin_3' ELSE 'bin_4' END AS f02_b, \
         COALESCE(f03, {m3:?}) AS f03_i, f04 / {a4:?} AS f04_a FROM {test} t))",
        m0 = st("m0"),
        s0 = st("s0"),
        lo1 = st("lo1"),
        hi1 = st("hi1"),
        m3 = st("m3"),
        a4 = st("a4"),
    ));
    assert_eq!(raw.len(), 50);
    for (a, b) in raw.iter().zip(&by_hand) {
        for label in ["angry", "happy", "sad"] {
            let (pa, pb) = (probability_of(a, label), probability_of(b, label));
            assert!((pa - pb).abs() < 1e-5, "{label}: TRANSFORM {pa} vs by hand {pb}");
        }
    }
    // One row alone: the statistics are the training rows', not the rows'.
    let alone = probs(&format!("ML.PREDICT(MODEL tf, (SELECT * FROM {test} t ORDER BY session_id, frame_no LIMIT 1))"));
    assert_eq!(alone[0], raw[0]);

    let (mean, std) = (st("m0"), st("s0"));
    let transformed = lake.rows(&format!("SELECT * FROM ML.TRANSFORM(MODEL tf, {test})"));
    let columns: Vec<&String> = transformed[0].as_object().unwrap().keys().collect();
    assert_eq!(columns.len(), 5, "the TRANSFORM's features (no label in the rows): {columns:?}");
    let originals = lake.rows(&format!("SELECT f00 FROM {test} t"));
    let mut got: Vec<f64> = transformed.iter().map(|r| num(r, "f00_s")).collect();
    let mut want: Vec<f64> = originals.iter().map(|r| (num(r, "f00") - mean) / std).collect();
    got.sort_by(f64::total_cmp);
    want.sort_by(f64::total_cmp);
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() < 1e-5, "standardised with the training mean and deviation: {g} vs {w}");
    }
    assert!(transformed.iter().all(|r| r["f02_b"].as_str().unwrap().starts_with("bin_")), "{transformed:?}");
    assert!(transformed.iter().all(|r| (0.0..=1.0).contains(&num(r, "f01_m"))), "{transformed:?}");

    // Quantiles: each of four buckets holds a quarter of the training rows,
    // and the robust scaler puts the median at 0 and the quartiles 1 apart.
    lake.rows(&format!(
        "CREATE MODEL tq TRANSFORM (ML.QUANTILE_BUCKETIZE(f05, 4) OVER () AS f05_q, \
         ML.ROBUST_SCALER(f06) OVER () AS f06_r, emotion) {options} \
         AS SELECT f05, f06, emotion, frame_no % 5 = 0 AS is_eval {from}"
    ));
    let buckets = lake.rows(&format!(
        "SELECT f05_q, COUNT(*) AS n FROM ML.TRANSFORM(MODEL tq, (SELECT f05, f06 {from})) GROUP BY f05_q"
    ));
    assert_eq!(buckets.len(), 4, "{buckets:?}");
    let total: f64 = buckets.iter().map(|b| num(b, "n")).sum();
    for b in &buckets {
        assert!((num(b, "n") / total - 0.25).abs() < 0.02, "{buckets:?}");
    }
    let robust = lake.rows(&format!(
        "SELECT approx_percentile_cont(f06_r, 0.25) AS q1, approx_percentile_cont(f06_r, 0.5) AS q2, \
         approx_percentile_cont(f06_r, 0.75) AS q3 FROM ML.TRANSFORM(MODEL tq, (SELECT f05, f06 {from}))"
    ));
    let (q1, q2, q3) = (num(&robust[0], "q1"), num(&robust[0], "q2"), num(&robust[0], "q3"));
    assert!(q2.abs() < 0.02 && (q3 - q1 - 1.0).abs() < 0.02, "quartiles of the scaled values: {robust:?}");

    // The model's own evaluation rows, through the TRANSFORM they were made by.
    let matrix = lake.rows("SELECT * FROM ML.CONFUSION_MATRIX(MODEL tf)");
    let counted: f64 = matrix.iter().map(|r| num(r, "angry") + num(r, "happy") + num(r, "sad")).sum();
    assert_eq!(counted, num(&created[0], "eval_rows"), "{matrix:?}");
    let explained =
        lake.rows(&format!("SELECT top_feature_attributions AS t FROM ML.EXPLAIN_PREDICT(MODEL tf, {test})"));
    assert!(
        explained[0]["t"].as_array().unwrap().iter().all(|a| a["feature"].as_str().unwrap().contains('_')),
        "{explained:?}"
    );

    let e = lake.fails(&format!(
        "CREATE MODEL bad TRANSFORM (ML.STANDARD_SCALER(nope) OVER () AS n, emotion) {options} \
         AS SELECT f00, emotion {from}"
    ));
    assert!(e.contains("TRANSFORM") && e.contains("nope"), "{e}");
    let e = lake.fails(&format!(
        "CREATE MODEL bad TRANSFORM (ML.STANDARD_SCALER(f00) OVER (PARTITION BY emotion) AS n, emotion) {options} \
         AS SELECT f00, emotion {from}"
    ));
    assert!(e.contains("in TRANSFORM, write OVER ()"), "{e}");
    let e =
        lake.fails(&format!("CREATE MODEL bad TRANSFORM (f00 + 1, emotion) {options} AS SELECT f00, emotion {from}"));
    assert!(e.contains("write f00 + 1 AS name"), "{e}");
    assert!(!lake.models_dir().join("bad").exists(), "nothing stored");
    // Skew through the TRANSFORM: the transformed features, the serving
    // rows' scaled with the training statistics; f00 shifted moves f00_s.
    let skew = lake.rows(
        "SELECT input, is_anomaly FROM ML.VALIDATE_DATA_SKEW(MODEL tf, \
         (SELECT f00 + 6 AS f00, f01, f02, f03, f04 FROM training.frames WHERE split = 'test')) ORDER BY input",
    );
    let flagged: Vec<&str> =
        skew.iter().filter(|r| r["is_anomaly"] == true).map(|r| r["input"].as_str().unwrap()).collect();
    assert_eq!(skew.len(), 5, "{skew:?}");
    assert_eq!(flagged, ["f00_s"], "{skew:?}");

    let e = lake.fails(&format!("SELECT * FROM ML.TRANSFORM(MODEL by_hand, {test})"));
    assert!(e.contains("was created without a TRANSFORM clause"), "{e}");
    // Cross-validation learns the TRANSFORM's statistics again on each
    // fold's training rows.
    let cv = lake.rows(&format!(
        "SELECT fold, value FROM ML.CROSS_VALIDATE(MODEL tf, (SELECT f00, f01, f02, f03, f04, emotion {from}), \
         STRUCT(3 AS num_folds)) WHERE metric = 'accuracy' ORDER BY fold"
    ));
    assert_eq!(cv.len(), 5, "three folds, mean and stddev: {cv:?}");
    let mean = cv.iter().find(|r| r["fold"] == "mean").unwrap();
    assert!(num(mean, "value") > 0.6, "{cv:?}");
}

/// A `CREATE MODEL` killed after writing its parameters leaves a file no
/// version names; the next `CREATE MODEL` of that name removes such files
/// once they are a day old, and keeps younger ones (a statement may still
/// be running) and every file a version names.
#[test]
fn leftover_parameter_files_are_removed_after_a_day() {
    let lake = Lake::new("0.1");
    let create = "CREATE OR REPLACE MODEL sw OPTIONS (model_type = 'logistic_reg', input_label_cols = ['emotion']) \
                  AS SELECT f00, f01, emotion FROM training.frames WHERE split = 'train'";
    lake.rows(create);
    let payloads = lake.models_dir().join("sw/payloads");
    let committed: Vec<PathBuf> = std::fs::read_dir(&payloads).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(committed.len(), 1, "{committed:?}");
    let (old, young) = (payloads.join("0000-killed-long-ago.pb"), payloads.join("0000-still-running.pb"));
    std::fs::write(&old, b"parameters of a statement that died").unwrap();
    std::fs::write(&young, b"parameters of a statement still running").unwrap();
    for aged in [&old, &committed[0]] {
        let touched = Command::new("touch").args(["-d", "2 days ago"]).arg(aged).status().unwrap();
        assert!(touched.success());
    }
    lake.rows(create);
    assert!(!old.exists(), "a day-old file no version names is removed");
    assert!(young.exists(), "a young one may be a running statement's");
    assert!(committed[0].exists(), "version 1's parameters stay, however old");
    let predicted = lake.rows("SELECT * FROM ML.PREDICT(MODEL sw@1, (SELECT f00, f01 FROM training.frames LIMIT 3))");
    assert_eq!(predicted.len(), 3);
}

/// Skew and drift: serving frames whose `f03` and `f07` the test shifted
/// are flagged on exactly those two columns, unshifted ones on none;
/// `ML.VALIDATE_DATA_DRIFT` compares two queries, text columns by the
/// largest change in a value's share.
#[test]
fn skew_and_drift_flag_exactly_the_shifted_columns() {
    let lake = Lake::new("0.1");
    let features = "f00, f01, f02, f03, f04, f05, f06, f07";
    lake.rows(&format!(
        "CREATE MODEL sk OPTIONS (model_type = 'logistic_reg', input_label_cols = ['emotion']) \
         AS SELECT {features}, emotion FROM training.frames WHERE split = 'train'"
    ));
    let serving = "SELECT * FROM training.frames WHERE split = 'test'";
    let flagged = |rows: &[Value]| -> Vec<String> {
        let mut f: Vec<String> =
            rows.iter().filter(|r| r["is_anomaly"] == true).map(|r| r["input"].as_str().unwrap().to_string()).collect();
        f.sort();
        f
    };
    let skew = |q: &str| lake.rows(&format!("SELECT * FROM ML.VALIDATE_DATA_SKEW(MODEL sk, ({q}))"));
    let plain = skew(serving);
    assert_eq!(plain.len(), 8, "the model's features: {plain:?}");
    assert!(
        plain.iter().all(|r| r["metric"] == "JENSEN_SHANNON_DIVERGENCE" && num(r, "threshold") == 0.3),
        "{plain:?}"
    );
    assert_eq!(flagged(&plain), Vec::<String>::new(), "{plain:?}");
    let shifted = skew(&format!("SELECT * REPLACE (f03 + 6 AS f03, f07 - 6 AS f07) FROM ({serving}) t"));
    assert_eq!(flagged(&shifted), ["f03", "f07"], "{shifted:?}");
    // A column's own threshold.
    let lenient = lake.rows(&format!(
        "SELECT * FROM ML.VALIDATE_DATA_SKEW(MODEL sk, (SELECT * REPLACE (f03 + 6 AS f03) FROM ({serving}) t), \
         STRUCT([STRUCT('f03', 1.0)] AS thresholds))"
    ));
    assert_eq!(flagged(&lenient), Vec::<String>::new(), "{lenient:?}");

    let drift = lake.rows(
        "SELECT * FROM ML.VALIDATE_DATA_DRIFT((SELECT f00, emotion FROM training.frames WHERE split = 'train'), \
         (SELECT f00, 'happy' AS emotion FROM training.frames WHERE split = 'test'), STRUCT(0.2 AS numerical_default_threshold))",
    );
    assert_eq!(drift.len(), 2, "{drift:?}");
    let emotion = drift.iter().find(|r| r["input"] == "emotion").unwrap();
    assert_eq!(emotion["metric"], "L_INFTY");
    // Every row 'happy': the largest change of a share is 1 − happy's share in training.
    let share = lake.rows(
        "SELECT AVG(CASE WHEN emotion = 'happy' THEN 1.0 ELSE 0.0 END) AS s FROM training.frames WHERE split = 'train'",
    );
    assert!((num(emotion, "value") - (1.0 - num(&share[0], "s"))).abs() < 1e-9, "{drift:?} {share:?}");
    assert_eq!(flagged(&drift), ["emotion"], "{drift:?}");
    assert_eq!(num(drift.iter().find(|r| r["input"] == "f00").unwrap(), "threshold"), 0.2);

    let e = lake.fails("SELECT * FROM ML.VALIDATE_DATA_SKEW(MODEL sk, (SELECT f00 FROM training.frames))");
    assert!(e.contains("have no column \"f01\""), "{e}");
    let e = lake.fails("SELECT * FROM ML.VALIDATE_DATA_DRIFT((SELECT f00 FROM training.frames))");
    assert!(e.contains("write ML.VALIDATE_DATA_DRIFT((base rows)"), "{e}");
    let e = lake.fails(&format!(
        "SELECT * FROM ML.VALIDATE_DATA_SKEW(MODEL sk, ({serving}), STRUCT(5 AS num_rank_histogram_buckets))"
    ));
    assert!(e.contains("num_rank_histogram_buckets"), "{e}");
    let e = lake.fails("SELECT * FROM ML.PREDICT(MODEL sk, (SELECT 1), (SELECT 2))");
    assert!(e.contains("ML.PREDICT takes one query or table, not two"), "{e}");
}

/// The score `weights` (`ML.WEIGHTS` rows of one label) give `row`: the
/// intercept, each numeric column's weight times its value, and each text
/// column's weight for the row's category.
fn linear_score(weights: &[&Value], row: &Value) -> f64 {
    weights
        .iter()
        .map(|w| {
            let input = w["processed_input"].as_str().unwrap();
            match (input, w["weight"].as_f64()) {
                ("__INTERCEPT__", Some(b)) => b,
                (_, Some(weight)) => weight * num(row, input),
                (_, None) => {
                    let categories = w["category_weights"].as_array().unwrap();
                    let entry = categories.iter().find(|c| c["category"] == row[input]);
                    entry.map_or(0.0, |c| num(c, "weight"))
                }
            }
        })
        .sum()
}

/// `ML.WEIGHTS` of a logistic regression, checked against its predictions:
/// on raw rows, the weights give the log-odds of a binary model's positive
/// label, and each label's score of a multiclass model up to the softmax's
/// shared constant (so differences of scores are log-ratios of
/// probabilities). Standardised weights are the raw ones times each
/// column's standard deviation.
#[test]
fn weights_give_the_models_scores_of_raw_rows() {
    let lake = Lake::new("0.1");
    let cols = "f00, f01, f02, CASE WHEN f03 > 0 THEN 'up' ELSE 'down' END AS f03_sign";
    let from = "FROM training.frames WHERE split = 'train'";
    lake.rows(&format!(
        "CREATE MODEL w_bin OPTIONS (model_type = 'logistic_reg', input_label_cols = ['happy']) \
         AS SELECT {cols}, CASE WHEN emotion = 'happy' THEN 'yes' ELSE 'no' END AS happy {from}"
    ));
    lake.rows(&format!(
        "CREATE MODEL w_multi OPTIONS (model_type = 'logistic_reg', input_label_cols = ['emotion']) \
         AS SELECT {cols}, emotion {from}"
    ));
    let rows = format!(
        "(SELECT session_id, frame_no, {cols} FROM training.frames WHERE split = 'test' \
         ORDER BY session_id, frame_no LIMIT 100)"
    );
    let predicted = |model: &str, label: &str| {
        lake.rows(&format!(
            "SELECT f00, f01, f02, f03_sign, predicted_{label}_probs AS probs FROM ML.PREDICT(MODEL {model}, {rows}) \
             ORDER BY session_id, frame_no"
        ))
    };

    let binary = lake.rows("SELECT * FROM ML.WEIGHTS(MODEL w_bin)");
    let inputs: Vec<&str> = binary.iter().map(|w| w["processed_input"].as_str().unwrap()).collect();
    assert_eq!(inputs, ["f00", "f01", "f02", "f03_sign", "__INTERCEPT__"], "{binary:?}");
    assert!(binary.iter().all(|w| w.get("class_label").is_none()), "binary: one score");
    let sign = &binary[3]["category_weights"];
    let mut categories: Vec<&str> = sign.as_array().unwrap().iter().map(|c| c["category"].as_str().unwrap()).collect();
    categories.sort_unstable();
    assert_eq!(categories, ["down", "up"], "{sign}");
    let all: Vec<&Value> = binary.iter().collect();
    for row in predicted("w_bin", "happy") {
        let log_odds = (probability_of(&row["probs"], "yes") / probability_of(&row["probs"], "no")).ln();
        let score = linear_score(&all, &row);
        assert!((score - log_odds).abs() < 1e-5, "{score} vs {log_odds}: {row}");
    }

    let multi = lake.rows("SELECT * FROM ML.WEIGHTS(MODEL w_multi)");
    assert_eq!(multi.len(), 3 * 5, "{multi:?}");
    let of = |label: &str| multi.iter().filter(|w| w["class_label"] == label).collect::<Vec<_>>();
    for row in predicted("w_multi", "emotion") {
        let angry = linear_score(&of("angry"), &row);
        for label in ["happy", "sad"] {
            let ratio = (probability_of(&row["probs"], label) / probability_of(&row["probs"], "angry")).ln();
            let difference = linear_score(&of(label), &row) - angry;
            assert!((difference - ratio).abs() < 1e-5, "{label}: {difference} vs {ratio}: {row}");
        }
    }

    let standardized = lake.rows("SELECT * FROM ML.WEIGHTS(MODEL w_bin, STRUCT(TRUE AS standardize))");
    let info = lake.rows("SELECT input, stddev FROM ML.FEATURE_INFO(MODEL w_bin)");
    for (raw, scaled) in binary.iter().zip(&standardized).take(3) {
        let input = &raw["processed_input"];
        let stddev = num(info.iter().find(|i| &i["input"] == input).unwrap(), "stddev");
        let (raw, scaled) = (num(raw, "weight"), num(scaled, "weight"));
        assert!((scaled - raw * stddev).abs() <= 1e-3 * scaled.abs(), "{input}: {scaled} vs {raw} × {stddev}");
    }
    assert_eq!(binary[3], standardized[3], "category weights are not scaled");

    let e = lake.fails("SELECT * FROM ML.WEIGHTS(MODEL w_bin, STRUCT(1 AS standardize))");
    assert!(e.contains("standardize must be TRUE or FALSE"), "{e}");
    let e = lake.fails("SELECT * FROM ML.WEIGHTS(MODEL w_bin, STRUCT(TRUE AS normalize))");
    assert!(e.contains("normalize: no such setting (ML.WEIGHTS takes standardize, trial_id)"), "{e}");
    let e = lake.fails(&format!("SELECT * FROM ML.WEIGHTS(MODEL w_bin, {rows})"));
    assert!(e.contains("ML.WEIGHTS takes a model, not rows"), "{e}");
    lake.rows(&format!(
        "CREATE MODEL w_tree OPTIONS (model_type = 'decision_tree_classifier', input_label_cols = ['emotion']) \
         AS SELECT {cols}, emotion {from}"
    ));
    let e = lake.fails("SELECT * FROM ML.WEIGHTS(MODEL w_tree)");
    assert!(
        e.contains("ML.WEIGHTS is for linear models (linear_reg, logistic_reg); w_tree is a decision_tree_classifier"),
        "{e}"
    );
}

/// Hyperparameter tuning on a cluster of two executors: 8 forest trials,
/// four at a time (their times overlap, and both executors train), each
/// scored on the evaluation rows; the optimal one is the best by the
/// objective and is the model; `trial_id` picks another. The same statement
/// run two trials at a time draws and scores the same trials.
#[test]
fn tuning_runs_trials_at_once_and_keeps_the_best() {
    let mut lake = Lake::new("0.2");
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), 2, vec![]);
    lake.scheduler = Some(cluster.url());
    let create = |name: &str, parallel: u32| {
        lake.rows(&format!(
            "CREATE MODEL {name} OPTIONS (model_type = 'random_forest_classifier', input_label_cols = ['emotion'], \
             num_trials = 8, max_parallel_trials = {parallel}, max_tree_depth = HPARAM_RANGE(2, 8), \
             num_parallel_tree = HPARAM_CANDIDATES([4, 8, 12]), subsample = HPARAM_RANGE(0.5, 1.0), \
             hparam_tuning_objectives = ['ACCURACY'], data_split_method = 'RANDOM', seed = 5) \
             AS SELECT f00, f01, f02, f03, f04, f05, emotion FROM training.frames WHERE split = 'train'"
        ))
    };
    let created = create("tuned", 4);
    let trials = lake.rows("SELECT * FROM ML.TRIAL_INFO(MODEL tuned) ORDER BY trial_id");
    assert_eq!(trials.len(), 8, "{trials:?}");
    let accuracy = |t: &Value| num(&t["hparam_tuning_evaluation_metrics"], "accuracy");
    let best = trials.iter().map(accuracy).fold(f64::MIN, f64::max);
    let optimal: Vec<&Value> = trials.iter().filter(|t| t["is_optimal"] == true).collect();
    assert_eq!(optimal.len(), 1, "{trials:?}");
    let optimal = optimal[0];
    assert_eq!(accuracy(optimal), best, "the optimal trial has the best accuracy: {trials:?}");
    assert_eq!(num(&created[0], "accuracy"), best, "the model is the optimal trial's: {created:?}");
    for (i, t) in trials.iter().enumerate() {
        assert_eq!(t["trial_id"], i as u64 + 1);
        assert_eq!(t["status"], "SUCCEEDED", "{t}");
        let h = &t["hyperparameters"];
        let depth = h["max_tree_depth"].as_u64().unwrap_or_else(|| panic!("a whole number: {h}"));
        assert!((2..=8).contains(&depth) && [4, 8, 12].contains(&h["num_parallel_tree"].as_u64().unwrap()), "{h}");
        assert!((0.5..=1.0).contains(&num(h, "subsample")), "{h}");
        assert!(num(t, "eval_loss") > 0.0, "{t}");
    }
    let depths: std::collections::BTreeSet<u64> =
        trials.iter().map(|t| t["hyperparameters"]["max_tree_depth"].as_u64().unwrap()).collect();
    assert!(depths.len() >= 3, "drawn over the range: {depths:?}");
    // ML.TRAINING_INFO: every trial's row (a forest is one fit), with its
    // trial_id and the evaluation loss ML.TRIAL_INFO shows.
    let info = lake.rows("SELECT * FROM ML.TRAINING_INFO(MODEL tuned) ORDER BY trial_id");
    assert_eq!(info.len(), 8, "{info:?}");
    for (row, t) in info.iter().zip(&trials) {
        assert_eq!((row["trial_id"].clone(), num(row, "eval_loss")), (t["trial_id"].clone(), num(t, "eval_loss")));
    }

    // Each trial's score is its own model's on the evaluation rows.
    let other = trials.iter().find(|t| t["is_optimal"] == false).unwrap();
    for t in [optimal, other] {
        let id = t["trial_id"].as_u64().unwrap();
        let evaluated = lake.rows(&format!("SELECT accuracy FROM ML.EVALUATE(MODEL tuned, STRUCT({id} AS trial_id))"));
        assert_eq!(num(&evaluated[0], "accuracy"), accuracy(t), "trial {id}");
    }
    let rows = "(SELECT * FROM training.frames WHERE split = 'test' ORDER BY session_id, frame_no LIMIT 200)";
    let predict = |settings: &str| {
        lake.rows(&format!("SELECT predicted_emotion_probs AS p FROM ML.PREDICT(MODEL tuned, {rows}{settings})"))
    };
    let by_model = predict("");
    assert_eq!(by_model, predict(&format!(", STRUCT({} AS trial_id)", optimal["trial_id"])));
    assert_ne!(by_model, predict(&format!(", STRUCT({} AS trial_id)", other["trial_id"])), "another trial's model");

    // Four at a time: trials overlapped, and both executors trained.
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(lake.models_dir().join("tuned/1/model.json")).unwrap()).unwrap();
    let spans: Vec<(u64, u64)> = meta["trials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["started_ms"].as_u64().unwrap(), t["ended_ms"].as_u64().unwrap()))
        .collect();
    let overlapping = spans.iter().enumerate().any(|(i, a)| spans[i + 1..].iter().any(|b| a.0 < b.1 && b.0 < a.1));
    assert!(overlapping, "trials ran one after another: {spans:?}");
    let workers: std::collections::BTreeSet<&str> = meta["trials"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["training_parts"].as_array().unwrap())
        .map(|p| p["worker"].as_str().unwrap())
        .collect();
    assert_eq!(workers.len(), 2, "both executors trained: {workers:?}");

    create("tuned_again", 2);
    let again = lake.rows("SELECT * FROM ML.TRIAL_INFO(MODEL tuned_again) ORDER BY trial_id");
    assert_eq!(again, trials, "the same seed draws and scores the same trials");

    // Bad tuning is refused, and stores nothing.
    let q = "AS SELECT f00, f01, emotion FROM training.frames";
    let e = lake.fails(&format!(
        "CREATE MODEL bad OPTIONS (model_type = 'random_forest_classifier', input_label_cols = ['emotion'], \
         num_trials = 2, data_split_method = HPARAM_CANDIDATES(['RANDOM', 'AUTO_SPLIT'])) {q}"
    ));
    assert!(e.contains("data_split_method cannot be tuned"), "{e}");
    let e = lake.fails(&format!(
        "CREATE MODEL bad OPTIONS (model_type = 'logistic_reg', input_label_cols = ['emotion'], \
         l2_reg = HPARAM_RANGE(0, 1)) {q}"
    ));
    assert!(e.contains("needs num_trials"), "{e}");
    assert!(!lake.models_dir().join("bad").exists());
    lake.rows(&format!(
        "CREATE MODEL untuned OPTIONS (model_type = 'logistic_reg', input_label_cols = ['emotion']) {q}"
    ));
    let e = lake.fails(&format!("SELECT * FROM ML.PREDICT(MODEL untuned, {rows}, STRUCT(1 AS trial_id))"));
    assert!(e.contains("trial_id: untuned@1 has no trials (it was created without num_trials)"), "{e}");
    let e = lake.fails("SELECT * FROM ML.TRIAL_INFO(MODEL untuned)");
    assert!(e.contains("has no trials"), "{e}");
    let e = lake.fails(&format!("SELECT * FROM ML.PREDICT(MODEL tuned, {rows}, STRUCT(9 AS trial_id))"));
    assert!(e.contains("tuned@1 has no trial 9 (its trials: 1, 2, 3, 4, 5, 6, 7, 8)"), "{e}");
    cluster.stop();
}

#[test]
fn cluster_of_two_executors_gives_the_standalone_results() {
    let mut lake = Lake::new("0.2");
    let q = format!("{FEATURES} WHERE split = 'train'");
    let test = "(SELECT * FROM training.frames WHERE split = 'test')";
    let algorithms = [
        ("c_forest", "random_forest_classifier", ", num_parallel_tree = 12, max_tree_depth = 8"),
        ("c_logistic", "logistic_reg", ""),
        // A sample (max_training_rows below the training rows) is the same
        // however the cluster partitions the rows.
        ("c_tree", "decision_tree_classifier", ", max_training_rows = 1000"),
        ("c_bayes", "naive_bayes_classifier", ""),
        ("c_knn", "knn_classifier", ", max_stored_rows = 2000"),
        // Early stopping watches the evaluation rows, flagged among the
        // training rows on the cluster too.
        ("c_boosted", "boosted_tree_classifier", ", max_iterations = 10, data_split_method = 'RANDOM'"),
    ];
    let cv = |lake: &Lake| {
        lake.rows(&format!(
            "SELECT fold, metric, value FROM ML.CROSS_VALIDATE(MODEL c_bayes, ({q}), STRUCT(3 AS num_folds)) ORDER BY fold, metric"
        ))
    };
    let mut standalone = Vec::new();
    for (name, t, extra) in algorithms {
        let created = create(&lake, name, t, extra, &q);
        if name == "c_tree" {
            assert!(num(&created, "training_rows") > 1000.0, "{created}");
            assert_eq!(created["fit_rows"], 1000, "{created}");
        }
        standalone.push(lake.rows(&format!("SELECT * FROM ML.EVALUATE(MODEL {name}, {test})")));
    }
    let cv_standalone = cv(&lake);
    // The exact statistics (approximate quantiles may merge differently).
    let describe = |lake: &Lake| {
        lake.rows(
            "SELECT name, num_rows, num_nulls, num_zeros, min, max, \"unique\", num_values, top_values \
             FROM ML.DESCRIBE_DATA(TABLE training.frames, STRUCT(3 AS top_k)) ORDER BY name",
        )
    };
    let described_standalone = describe(&lake);
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), 2, vec![]);
    lake.scheduler = Some(cluster.url());
    // Standalone, each job over the small lake ran as one task; the cluster
    // spreads them over its executors: the two paths agree.
    lake.spread = true;
    assert_eq!(cv(&lake), cv_standalone, "cross-validation differs on the cluster");
    assert_eq!(describe(&lake), described_standalone, "ML.DESCRIBE_DATA differs on the cluster");
    for (i, (name, t, extra)) in algorithms.into_iter().enumerate() {
        let v2 = create(&lake, name, t, extra, &q);
        assert_eq!(v2["version"], 2);
        // The scheduler lives on between statements: it sees every new version.
        let listed = lake.rows("SELECT COUNT(*) AS n FROM ml.models");
        assert_eq!(listed[0]["n"], algorithms.len() + i + 1, "ml.models on the cluster after {name} v2");
        let on_cluster = lake.rows(&format!("SELECT * FROM ML.EVALUATE(MODEL {name}, {test})"));
        assert_eq!(on_cluster, standalone[i], "{name}: cluster and standalone results differ");
        assert_eq!(payload(&lake, name, 1), payload(&lake, name, 2), "{name}: the cluster trained other bytes");
    }
    let n = lake.rows(&format!("SELECT COUNT(*) AS n FROM ML.PREDICT(MODEL c_forest, {test})"));
    let direct = lake.rows(&format!("SELECT COUNT(*) AS n FROM {test} t"));
    assert_eq!(n, direct);

    // Ctrl-C while a forest (or boosting) is fitted: the executors stop
    // growing trees at once (before, the fit ran to its end after the
    // cancel), and nothing is stored.
    let pids: Vec<u32> = (0..2).map(|i| cluster.executor_pid(i)).collect();
    let busy = || pids.iter().map(|&p| cpu_seconds(p)).sum::<f64>();
    for options in [
        "model_type = 'random_forest_classifier', num_parallel_tree = 3000, max_tree_depth = 20",
        "model_type = 'boosted_tree_classifier', max_iterations = 5000, max_tree_depth = 10, early_stop = FALSE",
    ] {
        let sql = format!(
            "CREATE MODEL c_slow OPTIONS ({options}, input_label_cols = ['emotion'], data_split_method = 'NO_SPLIT') \
             AS {q}"
        );
        let mut cmd = lake.cmd();
        cmd.args(["-c", &sql]);
        let before = busy();
        let mut training = Running::start(&mut cmd, false);
        // Well into the fit: the statistics jobs before it take a second or two.
        while busy() - before < 10.0 {
            assert!(training.running(), "the training ended before it was interrupted");
            std::thread::sleep(Duration::from_millis(200));
        }
        training.signal("INT");
        let f = training.finish(MIN);
        assert_eq!(f.code, Some(130), "{}", f.stderr);
        assert!(f.stderr.contains("cancelled)"), "{}", f.stderr);
        let cancelled_at = std::time::Instant::now();
        loop {
            let start = busy();
            std::thread::sleep(Duration::from_secs(1));
            let cpus = busy() - start;
            if cpus < 0.2 {
                println!("{options}: executors idle {:?} after the training was cancelled", cancelled_at.elapsed());
                break;
            }
            assert!(cancelled_at.elapsed() < Duration::from_secs(20), "executors still fitting ({cpus:.1} CPUs)");
        }
    }
    assert!(lake.rows("SELECT * FROM ml.models WHERE name = 'c_slow'").is_empty());
    cluster.stop();
}

/// scikit-learn in the test environment's Python (installed by
/// scripts/test.sh); the test fails, not skips, without it.
fn python() -> PathBuf {
    let venv = repo_root().join(".venv/bin/python");
    if venv.exists() { venv } else { PathBuf::from("python3") }
}

#[test]
fn accuracy_is_within_two_points_of_scikit_learn() {
    let lake = Lake::new("0.5");
    let cols = (0..32).map(|i| format!("f{i:02}")).collect::<Vec<_>>().join(", ");
    let dir = tempfile::tempdir().unwrap();
    for split in ["train", "test"] {
        let f = run_ok(
            lake.cmd().args([
                "--format",
                "csv",
                "-c",
                &format!(
                    "SELECT emotion, {cols} FROM training.frames WHERE split = '{split}' ORDER BY session_id, frame_no"
                ),
            ]),
            MIN,
        );
        std::fs::write(dir.path().join(format!("{split}.csv")), f.stdout).unwrap();
    }
    let q = format!("SELECT emotion, {cols} FROM training.frames WHERE split = 'train'");
    let test = format!("(SELECT emotion, {cols} FROM training.frames WHERE split = 'test')");
    let ours_rf = {
        create(
            &lake,
            "sk_rf",
            "random_forest_classifier",
            ", num_parallel_tree = 50, max_tree_depth = 10, data_split_method = 'NO_SPLIT'",
            &q,
        );
        num(&lake.rows(&format!("SELECT * FROM ML.EVALUATE(MODEL sk_rf, {test})"))[0], "accuracy")
    };
    let ours_lr = {
        create(&lake, "sk_lr", "logistic_reg", ", max_iterations = 200, data_split_method = 'NO_SPLIT'", &q);
        num(&lake.rows(&format!("SELECT * FROM ML.EVALUATE(MODEL sk_lr, {test})"))[0], "accuracy")
    };
    let script = r#"
import csv, sys
import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
def load(p):
    rows = list(csv.reader(open(p)))[1:]
    return np.array([[float(v) for v in r[1:]] for r in rows]), np.array([r[0] for r in rows])
xtr, ytr = load(sys.argv[1]); xte, yte = load(sys.argv[2])
rf = RandomForestClassifier(n_estimators=50, max_depth=10, max_features='sqrt', max_samples=0.8, random_state=42, n_jobs=-1).fit(xtr, ytr)
sc = StandardScaler().fit(xtr)
lr = LogisticRegression(penalty=None, max_iter=1000).fit(sc.transform(xtr), ytr)
print((rf.predict(xte) == yte).mean(), (lr.predict(sc.transform(xte)) == yte).mean())
"#;
    let f = run_ok(
        Command::new(python()).args(["-c", script]).arg(dir.path().join("train.csv")).arg(dir.path().join("test.csv")),
        Duration::from_secs(600),
    );
    let theirs: Vec<f64> = f.stdout.split_whitespace().map(|v| v.parse().unwrap()).collect();
    eprintln!(
        "random forest: sentio {ours_rf:.4} scikit-learn {:.4}; logistic regression: sentio {ours_lr:.4} scikit-learn {:.4}",
        theirs[0], theirs[1]
    );
    assert!((ours_rf - theirs[0]).abs() <= 0.02, "random forest {ours_rf} vs scikit-learn {}", theirs[0]);
    assert!((ours_lr - theirs[1]).abs() <= 0.02, "logistic regression {ours_lr} vs scikit-learn {}", theirs[1]);
}

/// The SQL blocks of docs/sql.md's "Machine learning" section, in order.
fn doc_examples() -> String {
    let doc = std::fs::read_to_string(repo_root().join("docs/sql.md")).unwrap();
    let start = doc.find("\n## Machine learning").expect("docs/sql.md has a Machine learning section");
    let end = start + doc[start..].find("\n## Functions").expect("…followed by Functions");
    let mut out = String::new();
    let mut in_sql = false;
    for line in doc[start..end].lines() {
        match (in_sql, line.trim()) {
            (false, "```sql") => in_sql = true,
            (true, "```") => in_sql = false,
            (true, l) => {
                out.push_str(l);
                out.push('\n');
            }
            _ => {}
        }
    }
    out
}

#[test]
fn docs_examples_run() {
    let lake = Lake::new("0.1");
    // The recommender's examples read the ratings sample, in the same lake.
    run_ok(
        sentio().args(["datagen", "--dataset", "ratings", "--scale", "0.1", "--seed", "42", "--lake"]).arg(&lake.root),
        MIN,
    );
    let script = doc_examples();
    assert!(script.matches(';').count() >= 12, "the examples were found:\n{script}");
    let file = lake.root.parent().unwrap().join("ml_docs.sql");
    std::fs::write(&file, &script).unwrap();
    let f = run_ok(lake.cmd().args(["--format", "csv", "-f"]).arg(&file), Duration::from_secs(900));
    for want in [
        "emotion_rf,1,created",
        "predicted_emotion_probs",
        "expected_label,angry,happy,sad",
        "importance_gain",
        "accuracy",
        "__INTERCEPT__,",
        "f02_sign,,",
        "trial_id,hyperparameters,hparam_tuning_evaluation_metrics,eval_loss,is_optimal",
        "f00_s,f01_q,f02_b,f03",
        "scaled_lr,1,created",
        "movie_mf,1,created,matrix_factorization,explicit",
        "user_id,movie_id,predicted_rating",
        "mean_absolute_error,mean_squared_error,mean_squared_log_error,median_absolute_error,r2_score",
        "__INTERCEPT__,1",
        "media_score,1,created,linear_reg",
        "happy_share,",
        // The encoders' example: c is the most frequent value (dummy-encoded 0.0).
        "c,2,\"[{index: 2, value: 0.0}]\",1,{f_g: c_x}",
    ] {
        assert!(f.stdout.contains(want), "{want:?} missing from the examples' output:\n{}", f.stdout);
    }
    // The ROC example printed its three thresholds, the CV example mean and stddev.
    assert!(f.stdout.contains("0.25,") && f.stdout.contains("0.5,") && f.stdout.contains("0.75,"), "{}", f.stdout);
    assert!(f.stdout.contains("mean,accuracy,") && f.stdout.contains("stddev,accuracy,"), "{}", f.stdout);
    let trials = f.stdout.lines().filter(|l| l.contains(",\"{max_tree_depth: ")).count();
    assert_eq!(trials, 4, "four trials: {}", f.stdout);
}

#[test]
fn forest_training_on_a_million_rows_is_spread_over_two_executors() {
    let mut lake = Lake::new("13");
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), 2, vec![]);
    lake.scheduler = Some(cluster.url());
    let created = create(
        &lake,
        "big_rf",
        "random_forest_classifier",
        ", num_parallel_tree = 8, max_tree_depth = 8, data_split_method = 'NO_SPLIT'",
        &format!("{FEATURES} WHERE split = 'train'"),
    );
    let rows = num(&created, "training_rows");
    assert!(rows >= 1_000_000.0, "trained on {rows} rows");
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(lake.models_dir().join("big_rf/1/model.json")).unwrap()).unwrap();
    let parts = meta["training_parts"].as_array().unwrap();
    let mut per_worker: std::collections::BTreeMap<String, (usize, u64)> = Default::default();
    for p in parts {
        let e = per_worker.entry(p["worker"].as_str().unwrap().to_string()).or_default();
        e.0 += 1;
        e.1 += p["millis"].as_u64().unwrap();
    }
    for (w, (tasks, ms)) in &per_worker {
        eprintln!("executor process {w}: {tasks} training tasks, {ms} ms");
    }
    let executors: Vec<u32> = (0..2).map(|i| cluster.executor_pid(i)).collect();
    let used: Vec<&String> = per_worker.keys().collect();
    assert_eq!(used.len(), 2, "training ran in {used:?}, executors are {executors:?}");
    for w in used {
        let pid: u32 = w.rsplit(':').next().unwrap().parse().unwrap();
        assert!(executors.contains(&pid), "{w} is not one of the executors {executors:?}");
    }
    // FEATURE_INFO's medians (a 32,768-row sample of the training rows,
    // merged across the cluster) are close to the exact ones.
    let info = lake.rows("SELECT input, median, stddev FROM ML.FEATURE_INFO(MODEL big_rf) WHERE input IN ('f00', 'f07', 'f31') ORDER BY input");
    let exact = lake.rows(
        "SELECT median(f00) AS f00, median(f07) AS f07, median(f31) AS f31 FROM training.frames WHERE split = 'train'",
    );
    assert_eq!(info.len(), 3, "{info:?}");
    for f in &info {
        let name = f["input"].as_str().unwrap();
        let (median, exact) = (num(f, "median"), num(&exact[0], name));
        assert!((median - exact).abs() < 0.03 * num(f, "stddev"), "{name}: median {median}, exact {exact}: {f}");
    }
    cluster.stop();
}

#[test]
fn timeout_cancels_training_and_stores_nothing() {
    let lake = Lake::new("3");
    // Far more trees than fit in 2 s on any machine.
    let sql = format!(
        "CREATE MODEL slow OPTIONS (model_type = 'random_forest_classifier', input_label_cols = ['emotion'], \
         num_parallel_tree = 400, max_tree_depth = 20, data_split_method = 'NO_SPLIT') AS {FEATURES}"
    );
    // And a thousand boosting rounds.
    let boosted = format!(
        "CREATE MODEL slow OPTIONS (model_type = 'boosted_tree_classifier', input_label_cols = ['emotion'], \
         max_iterations = 1000, early_stop = FALSE, data_split_method = 'NO_SPLIT') AS {FEATURES}"
    );
    for sql in [sql, boosted] {
        let f = run(lake.cmd().args(["--timeout", "2", "-c", &sql]), 2 * MIN);
        assert!(!f.success, "{}", f.stdout);
        assert!(f.stderr.contains("statement timed out after 2 s"), "{}", f.stderr);
        assert!(f.stderr.contains("cancelled"), "the running training job is cancelled: {}", f.stderr);
        assert!(f.elapsed < Duration::from_secs(30), "{:?}", f.elapsed);
        assert!(model_files(&lake.models_dir()).is_empty(), "nothing stored: {:?}", model_files(&lake.models_dir()));
        assert!(lake.rows("SELECT * FROM ml.models").is_empty());
    }
}

/// Runs Python's own sqlite3 client on the test's operational DB.
fn sqlite(lake: &Lake, sql: &str) -> String {
    let path = lake.opdb.as_deref().unwrap().trim_start_matches("sqlite:").to_string();
    let script = "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nfor r in c.execute(sys.argv[2]): print(*r, sep='|')\nc.commit()\n";
    run_ok(Command::new("python3").args(["-c", script, &path, sql]), MIN).stdout
}

#[test]
fn predictions_join_nest_and_land_in_the_operational_db() {
    let lake = Lake::with_opdb("0.1");
    // Features from the lake and the operational DB (a text feature: device).
    let created = create(
        &lake,
        "joined",
        "random_forest_classifier",
        ", num_parallel_tree = 10, max_tree_depth = 8",
        "SELECT f.* EXCEPT (session_id, frame_no, subject_id, media_id, recorded_on, split), s.device \
         FROM training.frames f JOIN opdb.sessions s USING (session_id) WHERE f.split = 'train'",
    );
    assert_eq!(created["status"], "created");
    let info =
        lake.rows("SELECT input, category_count, dimension FROM ML.FEATURE_INFO(MODEL joined) WHERE input = 'device'");
    assert!(info[0]["category_count"].as_i64().unwrap() >= 2, "{info:?}");

    let test =
        "(SELECT f.*, s.device FROM training.frames f JOIN opdb.sessions s USING (session_id) WHERE f.split = 'test')";
    let n_test = lake.rows("SELECT COUNT(*) AS n FROM training.frames WHERE split = 'test'")[0]["n"].as_i64().unwrap();
    // In a CTE, joined with another table.
    let by_country = lake.rows(&format!(
        "WITH p AS (SELECT * FROM ML.PREDICT(MODEL joined, {test})) \
         SELECT s.country, COUNT(*) AS n FROM p JOIN opdb.sessions s USING (session_id) GROUP BY s.country"
    ));
    assert_eq!(by_country.iter().map(|r| r["n"].as_i64().unwrap()).sum::<i64>(), n_test);

    // Into the operational DB (its emotion_outputs table made by datagen),
    // checked with the database's own client.
    let f = run_ok(
        lake.cmd().args([
            "-c",
            &format!(
                "INSERT INTO opdb.emotion_outputs \
                 SELECT 'run-1', session_id, frame_no, 'joined', 1, predicted_emotion, \
                        greatest(get_field(array_element(predicted_emotion_probs, 1), 'prob'), \
                                 get_field(array_element(predicted_emotion_probs, 2), 'prob'), \
                                 get_field(array_element(predicted_emotion_probs, 3), 'prob')) \
                 FROM ML.PREDICT(MODEL joined, {test})"
            ),
        ]),
        Duration::from_secs(300),
    );
    assert!(f.success);
    let stored = sqlite(
        &lake,
        "SELECT COUNT(*), COUNT(DISTINCT session_id || '-' || frame_no), MIN(confidence) > 0.33 FROM emotion_outputs",
    );
    assert_eq!(stored.trim(), format!("{n_test}|{n_test}|1"), "one row per test frame");
    let labels = sqlite(&lake, "SELECT DISTINCT label FROM emotion_outputs ORDER BY label");
    assert_eq!(labels.split_whitespace().collect::<Vec<_>>(), ["angry", "happy", "sad"]);
}

/// The row of `rows` that describes column `name`.
fn described<'a>(rows: &'a [Value], name: &str) -> &'a Value {
    rows.iter().find(|r| r["name"] == name).unwrap_or_else(|| panic!("no row for {name} in {rows:?}"))
}

#[test]
fn describe_data_describes_every_column_of_any_catalog() {
    let lake = Lake::with_opdb("0.1");

    // Exact figures over a dataset small enough to check by hand.
    let rows = lake.rows(
        "SELECT * FROM ML.DESCRIBE_DATA((SELECT * FROM (VALUES (1, 'a', 0.0), (2, 'bb', 1.5), (2, NULL, NULL), \
         (0, 'bb', 3.0), (NULL, 'a', 1.5)) AS t(n, s, x)), STRUCT(4 AS num_quantiles, 2 AS top_k)) ORDER BY name",
    );
    assert_eq!(rows.iter().map(|r| r["name"].as_str().unwrap()).collect::<Vec<_>>(), ["n", "s", "x"]);
    let (n, s, x) = (&rows[0], &rows[1], &rows[2]);
    for r in &rows {
        assert_eq!(
            (r["num_rows"].as_i64(), r["num_nulls"].as_i64(), r["num_values"].as_i64()),
            (Some(5), Some(1), Some(4)),
            "{r}"
        );
    }
    assert_eq!((n["num_zeros"].as_i64(), n["unique"].as_i64()), (Some(1), Some(3)), "{n}");
    assert_eq!((num(n, "min"), num(n, "max"), num(n, "mean")), (0.0, 2.0, 1.25), "{n}");
    // Sample standard deviation of 1, 2, 2, 0.
    assert!((num(n, "stddev") - (2.75f64 / 3.0).sqrt()).abs() < 1e-9, "{n}");
    assert_eq!(n["top_values"], serde_json::json!([{"value": "2", "count": 2}, {"value": "0", "count": 1}]), "{n}");
    let q = n["quantiles"].as_array().unwrap();
    assert_eq!(q.len(), 5, "num_quantiles + 1 boundaries: {n}");
    assert_eq!((q[0].as_f64(), q[4].as_f64()), (Some(0.0), Some(2.0)), "{n}");
    assert!(q.windows(2).all(|w| w[0].as_f64() <= w[1].as_f64()), "quantiles rise: {n}");
    // Text: lengths and the most frequent values (ties by value); no number statistics.
    assert_eq!((num(s, "avg_string_length"), s["unique"].as_i64()), (1.5, Some(2)), "{s}");
    assert_eq!(s["top_values"], serde_json::json!([{"value": "a", "count": 2}, {"value": "bb", "count": 2}]), "{s}");
    assert!(s["mean"].is_null() && s["num_zeros"].is_null() && s["quantiles"].is_null(), "{s}");
    // Floating point: numbers, median; no top values (as in BigQuery ML).
    assert_eq!((num(x, "min"), num(x, "max"), num(x, "mean"), num(x, "median")), (0.0, 3.0, 1.5, 1.5), "{x}");
    assert_eq!((x["num_zeros"].as_i64(), x["unique"].as_i64()), (Some(1), Some(3)), "{x}");
    assert!(x["top_values"].is_null() && x["avg_string_length"].is_null(), "{x}");

    // The operational DB, as a table, checked against the database's own client.
    let rows = lake.rows("SELECT * FROM ML.DESCRIBE_DATA(TABLE opdb.sessions, STRUCT(3 AS top_k))");
    let mine = |r: &Value, k: &str| r[k].to_string().trim_matches('"').to_string();
    let theirs = sqlite(
        &lake,
        "SELECT COUNT(*), COUNT(DISTINCT country), MIN(viewer_id), MAX(viewer_id), AVG(viewer_id), \
         AVG(LENGTH(device)), COUNT(device) FROM sessions",
    );
    let t: Vec<&str> = theirs.trim().split('|').collect();
    let (viewer, country, device) =
        (described(&rows, "viewer_id"), described(&rows, "country"), described(&rows, "device"));
    assert_eq!(mine(viewer, "num_rows"), t[0], "{viewer}");
    assert_eq!(mine(country, "unique"), t[1], "{country}");
    assert_eq!((num(viewer, "min"), num(viewer, "max")), (t[2].parse().unwrap(), t[3].parse().unwrap()), "{viewer}");
    assert!((num(viewer, "mean") - t[4].parse::<f64>().unwrap()).abs() < 1e-6, "{viewer} vs {t:?}");
    assert!((num(device, "avg_string_length") - t[5].parse::<f64>().unwrap()).abs() < 1e-9, "{device} vs {t:?}");
    assert_eq!(mine(device, "num_values"), t[6], "{device}");
    let top =
        sqlite(&lake, "SELECT country, COUNT(*) AS c FROM sessions GROUP BY country ORDER BY c DESC, country LIMIT 3");
    let want: Vec<Value> = top
        .lines()
        .map(|l| {
            let (v, c) = l.split_once('|').unwrap();
            serde_json::json!({"value": v, "count": c.parse::<i64>().unwrap()})
        })
        .collect();
    assert_eq!(country["top_values"], Value::Array(want), "{country}");

    // The lake, and the lake joined with the operational DB.
    let frames = lake.rows("SELECT COUNT(*) AS n, COUNT(DISTINCT emotion) AS e FROM training.frames")[0].clone();
    let rows = lake.rows("SELECT * FROM ML.DESCRIBE_DATA(TABLE training.frames)");
    assert_eq!(rows.len(), 39, "one row per column of training.frames");
    let emotion = described(&rows, "emotion");
    assert_eq!((&emotion["num_rows"], &emotion["unique"]), (&frames["n"], &frames["e"]), "{emotion}");
    let joined = lake.rows(
        "SELECT name, num_rows, \"unique\" FROM ML.DESCRIBE_DATA((SELECT f.emotion, s.device FROM training.frames f \
         JOIN opdb.sessions s USING (session_id))) ORDER BY name",
    );
    assert_eq!(joined.len(), 2, "{joined:?}");
    assert_eq!(joined[0]["num_rows"], frames["n"], "every frame has its session: {joined:?}");

    // Bad input: a clear error.
    for (sql, want) in [
        ("SELECT * FROM ML.DESCRIBE_DATA((SELECT 1 AS x), STRUCT(3 AS colour))", "no setting colour"),
        (
            "SELECT * FROM ML.DESCRIBE_DATA((SELECT 1 AS x), STRUCT(0 AS num_quantiles))",
            "num_quantiles must be a whole number from 1 to 1000",
        ),
        ("SELECT * FROM ML.DESCRIBE_DATA((SELECT 1 AS x), STRUCT(2.5 AS top_k))", "top_k must be a whole number"),
        ("SELECT * FROM ML.DESCRIBE_DATA(MODEL m, (SELECT 1 AS x))", "describes data, not a model"),
        ("SELECT * FROM ML.DESCRIBE_DATA(STRUCT(2 AS top_k))", "needs the data to describe"),
        ("SELECT * FROM ML.DESCRIBE_DATA((SELECT make_array(1, 2) AS tags))", "column \"tags\" has type"),
        ("SELECT * FROM ML.DESCRIBE_DATA(TABLE training.nosuch)", "nosuch"),
    ] {
        let e = lake.fails(sql);
        assert!(e.contains(want), "{sql}\nexpected {want:?} in:\n{e}");
    }
}

/// The statements of BigQuery ML's reference examples for the encoders,
/// crosses and hashing (only the table syntax adapted: DataFusion's
/// `UNNEST(…) AS t(f)`, `f[1]` for `f[OFFSET(0)]`), with the outputs the
/// reference pages show.
const REFERENCE_EXAMPLES: [(&str, &str); 5] = [
    (
        "SELECT f, ML.LABEL_ENCODER(f, 2, 2) OVER () AS output \
         FROM UNNEST([NULL, 'a', 'b', 'b', 'c', 'c', 'c', 'd', 'd']) AS t(f) ORDER BY f NULLS FIRST",
        r#"[{"output":0},{"f":"a","output":0},{"f":"b","output":1},{"f":"b","output":1},{"f":"c","output":2},
            {"f":"c","output":2},{"f":"c","output":2},{"f":"d","output":0},{"f":"d","output":0}]"#,
    ),
    (
        "SELECT f, ML.HASH_BUCKETIZE(f, 3) AS bucket FROM UNNEST(['a', 'b', 'c', 'd']) AS t(f) ORDER BY f",
        r#"[{"f":"a","bucket":0},{"f":"b","bucket":1},{"f":"c","bucket":1},{"f":"d","bucket":2}]"#,
    ),
    (
        "SELECT ML.POLYNOMIAL_EXPAND(STRUCT(2 AS f1, 3 AS f2)) AS output",
        r#"[{"output":{"f1":2.0,"f1_f1":4.0,"f1_f2":6.0,"f2":3.0,"f2_f2":9.0}}]"#,
    ),
    (
        "SELECT ML.FEATURE_CROSS(STRUCT('a' AS f1, 'b' AS f2, 'c' AS f3)) AS output",
        r#"[{"output":{"f1_f2":"a_b","f1_f3":"a_c","f2_f3":"b_c"}}]"#,
    ),
    (
        "SELECT f[1] AS f0, ML.MULTI_HOT_ENCODER(f, 3, 1) OVER () AS output \
         FROM (SELECT ['a', 'b', 'b', 'c', NULL] AS f UNION ALL SELECT ['c', 'c', 'd', 'd', NULL] AS f) ORDER BY f[1]",
        r#"[{"f0":"a","output":[{"index":1,"value":1.0},{"index":2,"value":1.0},{"index":3,"value":1.0},{"index":0,"value":1.0}]},
            {"f0":"c","output":[{"index":3,"value":1.0},{"index":0,"value":1.0}]}]"#,
    ),
];

/// The rows of the encoders test: a text column `grp` of seven values
/// (NULL in every tenth frame), `sign`, and the features.
const ENCODED: &str = "SELECT session_id, frame_no, \
     CASE WHEN frame_no % 10 = 0 THEN NULL ELSE 'g' || CAST(subject_id % 7 AS VARCHAR) END AS grp, \
     CASE WHEN f03 > 0 THEN 'up' ELSE 'down' END AS sign, f00, f01, emotion, frame_no % 5 = 0 AS is_eval \
     FROM training.frames WHERE split = 'train'";

/// Encoders, hashing, crosses and expansions: BigQuery ML's reference
/// examples give its outputs; over a table each equals an independent
/// computation of the vocabulary, standalone and on a two-executor cluster
/// (window aggregates merged across partitions); in a `TRANSFORM` a model
/// learns the vocabulary and mode once, gives the predictions of a model
/// trained on the same features written by hand, and applies its training
/// vocabulary to any rows.
#[test]
fn encoders_and_crosses_give_bigquerys_answers_in_queries_and_transforms() {
    let mut lake = Lake::new("0.1");
    for (sql, want) in REFERENCE_EXAMPLES {
        let want: Vec<Value> = serde_json::from_str(want).unwrap();
        assert_eq!(lake.rows(sql), want, "{sql}");
    }
    let imputed =
        lake.rows("SELECT ML.IMPUTER(f, 'most_frequent') OVER () AS f FROM UNNEST([NULL, 'b', 'a', 'b', 'a']) AS t(f)");
    assert!(
        imputed.iter().all(|r| r["f"] == "a" || r["f"] == "b") && imputed.iter().filter(|r| r["f"] == "a").count() == 3
    );
    // ML.BUCKETIZE's reference example: without its boundaries [1, 2, 3]
    // is one split point, 2, so 2.5 falls in the second of two buckets.
    let buckets = lake.rows(
        "SELECT ML.BUCKETIZE(2.5, [1, 2, 3]) AS bucket, ML.BUCKETIZE(2.5, [1, 2, 3], TRUE) AS bucket_no_boundaries",
    );
    assert_eq!(buckets, [serde_json::json!({"bucket": "bin_3", "bucket_no_boundaries": "bin_2"})]);
    // The other output formats, in the reference's interval notation and JSON.
    let ranges = lake.rows(
        "SELECT ML.BUCKETIZE(2.5, [1, 2, 3], FALSE, 'bucket_ranges') AS mid, \
         ML.BUCKETIZE(0.5, [1, 2.5], FALSE, 'bucket_ranges') AS low, \
         ML.BUCKETIZE(7, [2.5, 4.6], FALSE, 'bucket_ranges') AS high, \
         ML.BUCKETIZE(3, [2.5, 4.6], FALSE, 'bucket_ranges_json') AS json_mid, \
         ML.BUCKETIZE(1, [2.5, 4.6], FALSE, 'bucket_ranges_json') AS json_low",
    );
    assert_eq!(
        ranges,
        [serde_json::json!({"mid": "[2, 3)", "low": "(-inf, 1)", "high": "[4.6, +inf)",
            "json_mid": r#"{"start": "2.5", "end": "4.6"}"#, "json_low": r#"{"start": "-Infinity", "end": "2.5"}"#})]
    );
    let quantiles = lake.rows(
        "SELECT f, ML.QUANTILE_BUCKETIZE(f, 2) OVER () AS name, ML.QUANTILE_BUCKETIZE(f, 2, 'bucket_ranges') OVER () \
         AS range FROM UNNEST([1.0, 2.0, 3.0, 4.0, 5.0]) AS t(f) ORDER BY f",
    );
    for r in &quantiles {
        let (name, range) = (r["name"].as_str().unwrap(), r["range"].as_str().unwrap());
        let median = if name == "bin_1" { range.strip_prefix("(-inf, ") } else { range.strip_prefix('[') };
        let median: f64 = median.unwrap().split([',', ')']).next().unwrap().parse().unwrap();
        assert!((2.5..=3.5).contains(&median), "the split is the median: {quantiles:?}");
        assert_eq!(name == "bin_1", num(r, "f") < median, "{quantiles:?}");
        assert!(range.ends_with(if name == "bin_1" { ")" } else { ", +inf)" }), "{quantiles:?}");
    }
    // ML.ROBUST_SCALER's options each change the answer: centring only, or
    // neither (the quantile range's own effect is in the TRANSFORM test).
    let robust = lake.rows(
        "SELECT f, ML.ROBUST_SCALER(f, [10, 90], TRUE, FALSE) OVER () AS centred, \
         ML.ROBUST_SCALER(f, [25, 75], FALSE, FALSE) OVER () AS neither, \
         ML.ROBUST_SCALER(f) OVER () AS by_default, ML.ROBUST_SCALER(f, [25, 75]) OVER () AS quartiles \
         FROM UNNEST([1.0, 2.0, 3.0, 4.0, 5.0]) AS t(f) ORDER BY f",
    );
    for r in &robust {
        assert_eq!((num(r, "centred"), num(r, "neither")), (num(r, "f") - 3.0, num(r, "f")), "{r}");
        assert_eq!(r["by_default"], r["quartiles"], "{r}");
    }

    // Over a table: the vocabulary as counted by GROUP BY, in a query with
    // every kind of window statistic.
    let counts = lake.rows(&format!("SELECT grp, COUNT(*) AS n FROM ({ENCODED}) WHERE grp IS NOT NULL GROUP BY grp"));
    let mut ranked: Vec<(String, f64)> =
        counts.iter().map(|r| (r["grp"].as_str().unwrap().to_string(), num(r, "n"))).collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut vocabulary: Vec<String> = ranked.iter().take(4).map(|(g, _)| g.clone()).collect();
    vocabulary.sort();
    let query = format!(
        "SELECT session_id, frame_no, grp, ML.LABEL_ENCODER(grp, 4, 1) OVER () AS label, \
         ML.ONE_HOT_ENCODER(grp, 'most_frequent', 4, 1) OVER () AS one_hot, \
         ML.IMPUTER(grp, 'most_frequent') OVER () AS imputed, ML.HASH_BUCKETIZE(grp, 5) AS bucket, \
         ML.FEATURE_CROSS(STRUCT(grp, sign)) AS cross FROM ({ENCODED}) ORDER BY session_id, frame_no"
    );
    let standalone = lake.rows(&query);
    let most = &ranked[0].0;
    for r in &standalone {
        let index = r["grp"].as_str().and_then(|g| vocabulary.iter().position(|v| v == g)).map_or(0, |i| i + 1);
        assert_eq!(r["label"], index, "{r}");
        let dropped = r["grp"].as_str() == Some(most.as_str());
        assert_eq!(
            r["one_hot"],
            serde_json::json!([{"index": index, "value": if dropped { 0.0 } else { 1.0 }}]),
            "{r}"
        );
        assert_eq!(r["imputed"].as_str().unwrap(), r["grp"].as_str().unwrap_or(most), "{r}");
        assert!((0..5).contains(&r["bucket"].as_i64().unwrap_or(-1)) || r["grp"].is_null(), "{r}");
    }

    // A TRANSFORM model and the same features by hand.
    let options = "OPTIONS (model_type = 'logistic_reg', input_label_cols = ['emotion'], \
                   data_split_method = 'CUSTOM', data_split_col = 'is_eval')";
    lake.rows(&format!(
        "CREATE MODEL enc TRANSFORM (ML.LABEL_ENCODER(grp, 4, 1) OVER () AS grp_l, \
         ML.IMPUTER(grp, 'most_frequent') OVER () AS grp_i, ML.HASH_BUCKETIZE(grp, 5) AS grp_h, \
         ML.POLYNOMIAL_EXPAND(STRUCT(f00, f01)) AS p, ML.FEATURE_CROSS(STRUCT(grp, sign)) AS x, \
         ML.ONE_HOT_ENCODER(grp, 'most_frequent', 4, 1) OVER () AS g_oh, emotion, is_eval) \
         {options} AS {ENCODED}"
    ));
    let cases: Vec<String> =
        vocabulary.iter().enumerate().map(|(i, g)| format!("WHEN grp = '{g}' THEN {}", i + 1)).collect();
    let by_hand = format!(
        "SELECT session_id, frame_no, CASE {cases} ELSE 0 END AS grp_l, COALESCE(grp, '{most}') AS grp_i, \
         ML.HASH_BUCKETIZE(grp, 5) AS grp_h, f00 AS p_f00, f00 * f00 AS p_f00_f00, f00 * f01 AS p_f00_f01, \
         f01 AS p_f01, f01 * f01 AS p_f01_f01, grp || '_' || sign AS x_grp_sign, \
         CASE WHEN grp = '{most}' THEN NULL ELSE CAST(CASE {cases} ELSE 0 END AS VARCHAR) END AS g_oh, \
         emotion, is_eval FROM ({ENCODED})",
        cases = cases.join(" ")
    );
    lake.rows(&format!(
        "CREATE MODEL enc_by_hand {options} AS SELECT * EXCEPT (session_id, frame_no) FROM ({by_hand})"
    ));
    let probs = |lake: &Lake, sql: &str| {
        lake.rows(&format!(
            "SELECT session_id, frame_no, predicted_emotion_probs AS p FROM {sql} ORDER BY session_id, frame_no"
        ))
    };
    // The same probabilities, row by row, from two models.
    let same_probs = |what: &str, a: &[Value], b: &[Value]| {
        assert!(!a.is_empty() && a.len() == b.len(), "{what}: {} rows vs {}", a.len(), b.len());
        for (a, b) in a.iter().zip(b) {
            for label in ["angry", "happy", "sad"] {
                let (pa, pb) = (probability_of(&a["p"], label), probability_of(&b["p"], label));
                assert!((pa - pb).abs() < 1e-5, "{what} {label}: {pa} vs by hand {pb}");
            }
        }
    };
    let raw = probs(&lake, &format!("ML.PREDICT(MODEL enc, ({ENCODED}))"));
    let hand = probs(&lake, &format!("ML.PREDICT(MODEL enc_by_hand, ({by_hand}))"));
    same_probs("TRANSFORM", &raw, &hand);
    // Rows of one group (whose own vocabulary and mode would differ) are
    // encoded with the training vocabulary and mode.
    let one = format!("(SELECT * FROM ({ENCODED}) WHERE grp = '{}' OR grp IS NULL)", vocabulary[1]);
    let alone = lake
        .rows(&format!("SELECT grp_l, grp_i FROM ML.TRANSFORM(MODEL enc, {one}) GROUP BY grp_l, grp_i ORDER BY grp_l"));
    assert_eq!(
        alone,
        [serde_json::json!({"grp_l": 0, "grp_i": most}), serde_json::json!({"grp_l": 2, "grp_i": vocabulary[1]})],
    );
    // (A row without NULLs — no NULL group, not the dropped one: JSON output
    // leaves NULL columns out.)
    let columns = lake.rows(&format!(
        "SELECT * FROM ML.TRANSFORM(MODEL enc, (SELECT * FROM ({ENCODED}) WHERE grp IS NOT NULL AND grp <> '{most}')) \
         LIMIT 1"
    ));
    let mut names: Vec<&String> = columns[0].as_object().unwrap().keys().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "emotion",
            "g_oh",
            "grp_h",
            "grp_i",
            "grp_l",
            "is_eval",
            "p_f00",
            "p_f00_f00",
            "p_f00_f01",
            "p_f01",
            "p_f01_f01",
            "x_grp_sign"
        ]
    );
    // Arrays: a multi-hot column is one feature per index of its training
    // vocabulary (0: a value not in it, here NULL), a normalised array one
    // per element — the same model as those numbers written by hand.
    lake.rows(&format!(
        "CREATE MODEL arrays TRANSFORM (ML.MULTI_HOT_ENCODER([grp, sign]) OVER () AS g, \
         ML.NORMALIZER([f00, f01]) AS n, emotion, is_eval) {options} AS {ENCODED}"
    ));
    let mut words: Vec<String> = counts
        .iter()
        .filter(|r| num(r, "n") >= 5.0)
        .map(|r| r["grp"].as_str().unwrap().to_string())
        .chain(["up".to_string(), "down".to_string()])
        .collect();
    words.sort();
    let hot: Vec<String> = words
        .iter()
        .enumerate()
        .map(|(i, w)| format!("CASE WHEN grp = '{w}' OR sign = '{w}' THEN 1.0 ELSE 0.0 END AS g_{}", i + 1))
        .collect();
    let norm = "sqrt(f00 * f00 + f01 * f01)";
    let arrays_by_hand = format!(
        "SELECT session_id, frame_no, CASE WHEN grp IS NULL THEN 1.0 ELSE 0.0 END AS g_0, {}, \
         f00 / {norm} AS n_0, f01 / {norm} AS n_1, emotion, is_eval FROM ({ENCODED})",
        hot.join(", ")
    );
    lake.rows(&format!(
        "CREATE MODEL arrays_by_hand {options} AS SELECT * EXCEPT (session_id, frame_no) FROM ({arrays_by_hand})"
    ));
    let from_arrays = probs(&lake, &format!("ML.PREDICT(MODEL arrays, ({ENCODED}))"));
    let arrays_hand = probs(&lake, &format!("ML.PREDICT(MODEL arrays_by_hand, ({arrays_by_hand}))"));
    same_probs("array TRANSFORM", &from_arrays, &arrays_hand);
    let columns = lake.rows(&format!("SELECT * FROM ML.TRANSFORM(MODEL arrays, ({ENCODED})) LIMIT 1"));
    let mut names: Vec<&String> = columns[0].as_object().unwrap().keys().filter(|k| k.starts_with("g_")).collect();
    names.sort_by_key(|k| k[2..].parse::<usize>().unwrap());
    let want: Vec<String> = (0..=words.len()).map(|i| format!("g_{i}")).collect();
    assert_eq!(names, want.iter().collect::<Vec<_>>(), "{columns:?}");

    // Arrays a model cannot take are refused, and store nothing.
    for (column, want) in [
        ("make_array(grp, sign) AS g", "\"g\" is an ARRAY"),
        ("CASE WHEN f00 > 0 THEN [f00] ELSE [f00, f01] END AS v", "has from 1 to 2 elements"),
    ] {
        let e = lake.fails(&format!("CREATE MODEL bad_enc TRANSFORM ({column}, emotion) {options} AS {ENCODED}"));
        assert!(e.contains(want), "{column}: {e}");
        assert!(!lake.models_dir().join("bad_enc").exists(), "nothing stored");
    }

    // The same answers from a cluster of two executors, spreading what ran
    // as one task standalone.
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), 2, vec![]);
    lake.scheduler = Some(cluster.url());
    lake.spread = true;
    assert_eq!(lake.rows(&query), standalone, "the window statistics differ on the cluster");
    assert_eq!(probs(&lake, &format!("ML.PREDICT(MODEL enc, ({ENCODED}))")), raw, "predictions differ on the cluster");
    cluster.stop();
}

/// scikit-learn's answers for the diabetes rows in `csv` (label `target`):
/// `LinearRegression`, `Ridge(alpha = 10)` and `Lasso(alpha = 300 / n)` on
/// standardised columns (Sentio's `l1_reg` and `l2_reg` penalise the sum of
/// squares, scikit-learn's Lasso the mean), the plain model's predictions
/// and metrics, and a `LinearRegression` whose `sex` is one-hot text.
const DIABETES_SKLEARN: &str = r#"
import csv, json, sys
import numpy as np
from sklearn.linear_model import Lasso, LinearRegression, Ridge
from sklearn.metrics import (explained_variance_score, mean_absolute_error, mean_squared_error,
                             median_absolute_error, r2_score)
from sklearn.preprocessing import StandardScaler
rows = list(csv.DictReader(open(sys.argv[1])))
cols = [c for c in rows[0] if c not in ('target', 'sex')]
x = np.array([[float(r[c]) for c in cols] for r in rows])
y = np.array([float(r['target']) for r in rows])
plain = LinearRegression().fit(x, y)
p = plain.predict(x)
z = StandardScaler().fit_transform(x)
ridge = Ridge(alpha=10.0).fit(z, y)
lasso = Lasso(alpha=300.0 / len(y), tol=1e-14, max_iter=1000000).fit(z, y)
sex = np.array([[1.0 if r['sex'] == s else 0.0 for s in ('f', 'm')] for r in rows])
onehot = LinearRegression().fit(np.hstack([x, sex]), y)
print(json.dumps({
    'columns': cols,
    'plain': list(plain.coef_) + [plain.intercept_],
    'ridge': list(ridge.coef_) + [ridge.intercept_],
    'lasso': list(lasso.coef_) + [lasso.intercept_],
    'predictions': list(p),
    'onehot_predictions': list(onehot.predict(np.hstack([x, sex]))),
    'metrics': {
        'mean_absolute_error': mean_absolute_error(y, p),
        'mean_squared_error': mean_squared_error(y, p),
        'mean_squared_log_error': float(np.mean((np.log1p(np.maximum(p, 0)) - np.log1p(y)) ** 2)),
        'median_absolute_error': median_absolute_error(y, p),
        'r2_score': r2_score(y, p),
        'explained_variance': explained_variance_score(y, p),
    },
}))
"#;

/// Writes scikit-learn's diabetes rows (442, ten features, `sex` as text
/// `f`/`m`) as `<lake>/adhoc/diabetes.csv`, with a row id.
fn diabetes_csv(lake: &Lake) -> PathBuf {
    let script = r#"
import csv, sys
from sklearn.datasets import load_diabetes
d = load_diabetes()
w = csv.writer(open(sys.argv[1], 'w', newline=''))
w.writerow(['id'] + list(d.feature_names) + ['target'])
for i, (row, t) in enumerate(zip(d.data, d.target)):
    values = [repr(float(v)) for v in row]
    values[1] = 'm' if row[1] > 0 else 'f'
    w.writerow([i] + values + [repr(float(t))])
"#;
    let dir = lake.root.join("adhoc");
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("diabetes.csv");
    run_ok(Command::new(python()).args(["-c", script]).arg(&csv), MIN);
    csv
}

fn close(ours: f64, theirs: f64, relative: f64) -> bool {
    (ours - theirs).abs() <= relative * theirs.abs().max(1.0)
}

/// `linear_reg` against scikit-learn on its diabetes rows: the weights of
/// plain least squares, ridge (`l2_reg`) and lasso (`l1_reg`) to 1e-6, the
/// predictions and every regression metric; ML.CROSS_VALIDATE, ml.models
/// and ML.TRAINING_INFO say a regressor's metrics; what a regressor cannot
/// do is refused by name; and a 1 + 2 cluster trains the same bytes.
#[test]
fn linear_regression_gives_scikit_learns_weights_predictions_and_metrics() {
    let mut lake = Lake::new("0.1");
    let csv = diabetes_csv(&lake);
    let f = run_ok(Command::new(python()).args(["-c", DIABETES_SKLEARN]).arg(&csv), MIN);
    let sk: Value = serde_json::from_str(f.stdout.trim()).unwrap();
    let columns: Vec<String> = sk["columns"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().into()).collect();
    let numeric = format!("SELECT {}, target FROM adhoc.diabetes", columns.join(", "));
    let linear = |name: &str, extra: &str, query: &str| {
        lake.rows(&format!(
            "CREATE OR REPLACE MODEL {name} OPTIONS (model_type = 'linear_reg', input_label_cols = ['target'], \
             data_split_method = 'NO_SPLIT'{extra}) AS {query}"
        ))
    };
    let weights = |name: &str, standardize: bool| -> Vec<f64> {
        let rows = lake.rows(&format!("SELECT * FROM ML.WEIGHTS(MODEL {name}, STRUCT({standardize} AS standardize))"));
        let names: Vec<&str> = rows.iter().map(|r| r["processed_input"].as_str().unwrap()).collect();
        let mut want: Vec<&str> = columns.iter().map(String::as_str).collect();
        want.push("__INTERCEPT__");
        assert_eq!(names, want, "{rows:?}");
        rows.iter().map(|r| num(r, "weight")).collect()
    };
    let expect = |what: &str, ours: &[f64], theirs: &Value, relative: f64| {
        let theirs: Vec<f64> = theirs.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(ours.len(), theirs.len(), "{what}");
        for (o, t) in ours.iter().zip(&theirs) {
            assert!(close(*o, *t, relative), "{what}: {ours:?}\nscikit-learn: {theirs:?}");
        }
    };

    let created = linear("lin", "", &numeric);
    assert_eq!(created[0]["model_type"], "linear_reg", "{created:?}");
    assert!(created[0].get("accuracy").is_none() && created[0].get("r2_score").is_some(), "{created:?}");
    expect("least squares", &weights("lin", false), &sk["plain"], 1e-6);
    linear("ridge", ", l2_reg = 10", &numeric);
    expect("ridge", &weights("ridge", true), &sk["ridge"], 1e-6);
    linear("lasso", ", l1_reg = 300", &numeric);
    let lasso = weights("lasso", true);
    expect("lasso", &lasso, &sk["lasso"], 1e-5);
    let zeros = |w: &[f64]| w.iter().map(|v| *v == 0.0).collect::<Vec<_>>();
    let sk_lasso: Vec<f64> = sk["lasso"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(zeros(&lasso), zeros(&sk_lasso), "the same weights are exactly zero: {lasso:?}");
    assert!(zeros(&lasso).contains(&true), "l1_reg = 300 zeroes a weight: {lasso:?}");

    // Tuning: each trial scored by R² (the default objective) on the
    // evaluation rows, the best one the model.
    lake.rows(&format!(
        "CREATE MODEL lin_tuned OPTIONS (model_type = 'linear_reg', input_label_cols = ['target'], \
         data_split_method = 'RANDOM', data_split_eval_fraction = 0.3, num_trials = 4, \
         l2_reg = HPARAM_CANDIDATES([0.0, 30.0, 300.0, 100000.0])) AS {numeric}"
    ));
    let trials = lake.rows("SELECT * FROM ML.TRIAL_INFO(MODEL lin_tuned) ORDER BY trial_id");
    assert_eq!(trials.len(), 4, "{trials:?}");
    let r2 = |t: &Value| num(&t["hparam_tuning_evaluation_metrics"], "r2_score");
    let best = trials.iter().map(r2).fold(f64::NEG_INFINITY, f64::max);
    let optimal: Vec<&Value> = trials.iter().filter(|t| t["is_optimal"] == true).collect();
    assert_eq!(optimal.len(), 1, "{trials:?}");
    assert_eq!(r2(optimal[0]), best, "the optimal trial has the best R²: {trials:?}");
    let evaluated = lake.rows("SELECT * FROM ML.EVALUATE(MODEL lin_tuned)");
    assert!(close(num(&evaluated[0], "r2_score"), best, 1e-12), "{evaluated:?} vs {trials:?}");
    assert!(close(num(optimal[0], "eval_loss"), num(&evaluated[0], "mean_squared_error"), 1e-12), "{trials:?}");
    // num_trials alone tunes linear_reg's default space (l1_reg and l2_reg,
    // log-uniform over 1e-4 … 10); a hyperparameter the statement sets is
    // left out of it.
    lake.rows(&format!(
        "CREATE MODEL lin_default OPTIONS (model_type = 'linear_reg', input_label_cols = ['target'], \
         data_split_method = 'RANDOM', data_split_eval_fraction = 0.3, num_trials = 3) AS {numeric}"
    ));
    let trials = lake.rows("SELECT * FROM ML.TRIAL_INFO(MODEL lin_default) ORDER BY trial_id");
    assert_eq!(trials.len(), 3, "{trials:?}");
    for name in ["l1_reg", "l2_reg"] {
        let values: Vec<f64> = trials.iter().map(|t| num(&t["hyperparameters"], name)).collect();
        assert!(values.iter().all(|v| (1e-4..=10.0).contains(v)), "{name}: {values:?}");
        assert!(values[0] != values[1] && values[1] != values[2], "{name} drawn per trial: {values:?}");
    }
    lake.rows(&format!(
        "CREATE MODEL lin_l2 OPTIONS (model_type = 'linear_reg', input_label_cols = ['target'], \
         data_split_method = 'RANDOM', data_split_eval_fraction = 0.3, num_trials = 2, l1_reg = 0.5) AS {numeric}"
    ));
    let trials = lake.rows("SELECT hyperparameters FROM ML.TRIAL_INFO(MODEL lin_l2)");
    assert!(
        trials.iter().all(|t| t["hyperparameters"].get("l1_reg").is_none() && t["hyperparameters"]["l2_reg"].is_f64()),
        "l1_reg is set, so only l2_reg is tuned: {trials:?}"
    );

    // Predictions and metrics of the plain model.
    let predicted =
        lake.rows("SELECT id, predicted_target FROM ML.PREDICT(MODEL lin, TABLE adhoc.diabetes) ORDER BY id");
    let predicted: Vec<f64> = predicted.iter().map(|r| num(r, "predicted_target")).collect();
    expect("predictions", &predicted, &sk["predictions"], 1e-9);
    let evaluated = lake.rows("SELECT * FROM ML.EVALUATE(MODEL lin, TABLE adhoc.diabetes)");
    let stored = lake.rows("SELECT * FROM ML.EVALUATE(MODEL lin)");
    let registry = lake.rows("SELECT * FROM ml.models WHERE name = 'lin'");
    for (metric, theirs) in sk["metrics"].as_object().unwrap() {
        let theirs = theirs.as_f64().unwrap();
        for (what, rows) in [("ML.EVALUATE", &evaluated), ("stored", &stored), ("ml.models", &registry)] {
            let ours = num(&rows[0], metric);
            assert!(close(ours, theirs, 1e-9), "{what} {metric}: {ours} vs scikit-learn {theirs}");
        }
    }
    assert!(evaluated[0].get("accuracy").is_none(), "a regressor's metrics only: {evaluated:?}");
    assert!(registry[0]["accuracy"].is_null(), "{registry:?}");
    let info = lake.rows("SELECT * FROM ML.TRAINING_INFO(MODEL lin)");
    assert_eq!(info.len(), 1, "{info:?}");
    assert!(close(num(&info[0], "loss"), num(&evaluated[0], "mean_squared_error"), 1e-12), "{info:?}");
    let folds = lake.rows(&format!(
        "SELECT fold, metric, value FROM ML.CROSS_VALIDATE(MODEL lin, ({numeric}), STRUCT(3 AS num_folds)) \
         WHERE fold IN ('1', '2', '3') AND metric = 'r2_score' ORDER BY fold"
    ));
    assert_eq!(folds.len(), 3, "{folds:?}");
    for fold in &folds {
        let r2 = num(fold, "value");
        assert!(r2 > 0.3 && r2 < 0.7, "a held-out fold's R² is near the training one: {folds:?}");
    }

    regression_explanations_add_up(&lake, "lin", &format!("({numeric})"), columns.len());

    // Text features are one-hot encoded; the predictions are least squares'.
    linear("lin_sex", "", &format!("SELECT {}, sex, target FROM adhoc.diabetes", columns.join(", ")));
    let predicted =
        lake.rows("SELECT predicted_target FROM ML.PREDICT(MODEL lin_sex, TABLE adhoc.diabetes) ORDER BY id");
    let predicted: Vec<f64> = predicted.iter().map(|r| num(r, "predicted_target")).collect();
    expect("one-hot predictions", &predicted, &sk["onehot_predictions"], 1e-6);

    // What a regressor cannot take is refused by name, and nothing is stored.
    let before = model_files(&lake.models_dir());
    let text_label = "SELECT age, bmi, sex AS target FROM adhoc.diabetes";
    let nan_label =
        "SELECT age, bmi, CASE WHEN id = 7 THEN 'NaN'::DOUBLE ELSE target END AS target FROM adhoc.diabetes";
    let refusals: Vec<(String, &str)> = vec![
        (
            format!(
                "CREATE MODEL bad OPTIONS (model_type = 'linear_reg', input_label_cols = ['target']) AS {text_label}"
            ),
            "its label must be numeric",
        ),
        (
            format!(
                "CREATE MODEL bad OPTIONS (model_type = 'linear_reg', input_label_cols = ['target']) AS {nan_label}"
            ),
            "is NaN or infinite in 1 training rows",
        ),
        (
            format!(
                "CREATE MODEL bad OPTIONS (model_type = 'linear_reg', input_label_cols = ['target'], \
                  max_iterations = 5) AS {numeric}"
            ),
            "max_iterations does not apply to linear_reg",
        ),
        (
            format!(
                "CREATE MODEL bad OPTIONS (model_type = 'linear_reg', input_label_cols = ['target'], \
                  optimize_strategy = 'BATCH_GRADIENT_DESCENT') AS {numeric}"
            ),
            "'BATCH_GRADIENT_DESCENT' is not implemented",
        ),
        (
            format!(
                "CREATE MODEL bad OPTIONS (model_type = 'linear_reg', input_label_cols = ['target'], \
                  optimize_strategy = 'NORMAL_EQUATION', l1_reg = 1) AS {numeric}"
            ),
            "has no L1 penalty",
        ),
        (
            format!(
                "CREATE MODEL bad OPTIONS (model_type = 'linear_reg', input_label_cols = ['target'], \
                  auto_class_weights = TRUE) AS {numeric}"
            ),
            "linear_reg is a regressor",
        ),
        (
            format!(
                "CREATE MODEL bad OPTIONS (model_type = 'linear_reg', input_label_cols = ['target'], \
                  num_trials = 4, l2_reg = HPARAM_RANGE(0, 10), hparam_tuning_objectives = ['ROC_AUC']) \
                  AS {numeric}"
            ),
            "unknown hparam_tuning_objectives 'roc_auc'; a regressor's are 'R2_SCORE'",
        ),
        (
            format!(
                "CREATE MODEL bad OPTIONS (model_type = 'logistic_reg', input_label_cols = ['target'], \
                  l1_reg = 1) AS {numeric}"
            ),
            "l1_reg does not apply to logistic_reg",
        ),
        (
            "SELECT * FROM ML.CONFUSION_MATRIX(MODEL lin, TABLE adhoc.diabetes)".into(),
            "ML.CONFUSION_MATRIX is for classifiers",
        ),
        ("SELECT * FROM ML.ROC_CURVE(MODEL lin, TABLE adhoc.diabetes)".into(), "ML.ROC_CURVE is for classifiers"),
        (
            "SELECT * FROM ML.PREDICT(MODEL lin, TABLE adhoc.diabetes, STRUCT(0.5 AS threshold))".into(),
            "threshold is for binary models",
        ),
        (
            "SELECT * FROM ML.GLOBAL_EXPLAIN(MODEL lin, STRUCT(TRUE AS class_level_explain))".into(),
            "class_level_explain is for classifiers; lin is a linear_reg",
        ),
        ("SELECT * FROM ML.FEATURE_IMPORTANCE(MODEL lin)".into(), "ML.FEATURE_IMPORTANCE is for tree models"),
    ];
    for (sql, want) in &refusals {
        let e = lake.fails(sql);
        assert!(e.contains(want), "{sql}\nwants {want:?}, said:\n{e}");
    }
    assert_eq!(model_files(&lake.models_dir()), before, "a refused statement stored something");

    // Many partitions of the training frames: the cluster's merged sums (and
    // a regression forest's trees) are the standalone ones, to the byte.
    let frames = "SELECT f00, f01, f02, f03, CASE WHEN f04 > 0 THEN 'up' ELSE 'down' END AS f04_sign, f05 AS y \
                  FROM training.frames";
    let frames_models = |lake: &Lake| {
        for (name, extra) in [
            ("lin_frames", "model_type = 'linear_reg', l2_reg = 1"),
            ("rf_frames", "model_type = 'random_forest_regressor', num_parallel_tree = 8, max_tree_depth = 6"),
            (
                "bt_frames",
                "model_type = 'boosted_tree_regressor', max_iterations = 10, subsample = 0.8, early_stop = FALSE",
            ),
        ] {
            let created = lake.rows(&format!(
                "CREATE OR REPLACE MODEL {name} OPTIONS ({extra}, input_label_cols = ['y']) AS {frames}"
            ));
            assert_eq!(created[0]["model_type"], extra[14..extra.find("',").unwrap()], "{created:?}");
        }
    };
    frames_models(&lake);
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), 2, vec![]);
    lake.scheduler = Some(cluster.url());
    // Standalone, the small lake's jobs ran as one task each; spread over
    // the cluster, they train the same bytes.
    lake.spread = true;
    frames_models(&lake);
    for name in ["lin_frames", "rf_frames", "bt_frames"] {
        assert_eq!(payload(&lake, name, 1), payload(&lake, name, 2), "{name}: the cluster trained other bytes");
    }
    cluster.stop();
}

/// `random_forest_regressor` on three quarters of scikit-learn's diabetes
/// rows, scored on the rest: its R² within 0.03 of scikit-learn's
/// `RandomForestRegressor` with the same trees, depth, feature share and
/// row share (averaged over five seeds, as one forest's R² varies by about
/// that much with its seed); its feature importances name the features
/// scikit-learn's does first.
#[test]
fn random_forest_regressor_scores_as_scikit_learns_does() {
    let lake = Lake::new("0.05");
    let csv = diabetes_csv(&lake);
    let script = r#"
import csv, json, sys
import numpy as np
from sklearn.ensemble import RandomForestRegressor
from sklearn.metrics import r2_score
rows = list(csv.DictReader(open(sys.argv[1])))
cols = [c for c in rows[0] if c not in ('id', 'target', 'sex')]
test = np.array([int(r['id']) % 4 == 0 for r in rows])
x = np.array([[float(r[c]) for c in cols] for r in rows])
y = np.array([float(r['target']) for r in rows])
r2, top = [], {}
for seed in range(5):
    rf = RandomForestRegressor(n_estimators=100, max_depth=8, max_features=0.8, max_samples=0.8,
                               random_state=seed).fit(x[~test], y[~test])
    r2.append(r2_score(y[test], rf.predict(x[test])))
    for c, v in zip(cols, rf.feature_importances_):
        top[c] = top.get(c, 0.0) + v
print(json.dumps({'columns': cols, 'r2': float(np.mean(r2)), 'top': sorted(top, key=top.get)[::-1][:2]}))
"#;
    let f = run_ok(Command::new(python()).args(["-c", script]).arg(&csv), MIN);
    let sk: Value = serde_json::from_str(f.stdout.trim()).unwrap();
    let columns: Vec<&str> = sk["columns"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    let cols = columns.join(", ");
    let created = lake.rows(&format!(
        "CREATE MODEL rf OPTIONS (model_type = 'random_forest_regressor', input_label_cols = ['target'], \
         num_parallel_tree = 100, max_tree_depth = 8, subsample = 0.8, data_split_method = 'NO_SPLIT', seed = 3) \
         AS SELECT {cols}, target FROM adhoc.diabetes WHERE id % 4 <> 0"
    ));
    assert_eq!(created[0]["model_type"], "random_forest_regressor", "{created:?}");
    let test = format!("(SELECT {cols}, target FROM adhoc.diabetes WHERE id % 4 = 0)");
    let ours = num(&lake.rows(&format!("SELECT r2_score FROM ML.EVALUATE(MODEL rf, {test})"))[0], "r2_score");
    let theirs = num(&sk, "r2");
    println!("random_forest_regressor R² {ours:.4}, scikit-learn's {theirs:.4}");
    assert!((ours - theirs).abs() <= 0.03, "R² {ours} vs scikit-learn's {theirs}");
    // Predictions are the forest's mean, between the labels' extremes.
    let range = lake.rows(&format!(
        "SELECT MIN(predicted_target) AS lo, MAX(predicted_target) AS hi FROM ML.PREDICT(MODEL rf, {test})"
    ));
    assert!(num(&range[0], "lo") >= 25.0 && num(&range[0], "hi") <= 346.0, "{range:?}");
    let importance = lake.rows(
        "SELECT feature FROM ML.FEATURE_IMPORTANCE(MODEL rf) ORDER BY importance_gain * importance_weight DESC LIMIT 2",
    );
    let ours: Vec<&str> = importance.iter().map(|r| r["feature"].as_str().unwrap()).collect();
    let theirs: Vec<&str> = sk["top"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    let (mut a, mut b) = (ours.clone(), theirs.clone());
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a, b, "the two most important features: ours {ours:?}, scikit-learn's {theirs:?}");
    regression_explanations_add_up(&lake, "rf", &test, columns.len());
}

/// `ML.EXPLAIN_PREDICT` of the regressor `model` over `rows` (with all
/// `features`): each row's attributions add up from the baseline to its
/// prediction, which is `ML.PREDICT`'s; `ML.GLOBAL_EXPLAIN` of a model
/// created with `enable_global_explain` ranks every feature.
fn regression_explanations_add_up(lake: &Lake, model: &str, rows: &str, features: usize) {
    let explained = lake.rows(&format!(
        "SELECT predicted_target, top_feature_attributions AS a, baseline_prediction_value AS b, prediction_value AS p \
         FROM ML.EXPLAIN_PREDICT(MODEL {model}, {rows}, STRUCT({features} AS top_k_features)) ORDER BY p LIMIT 20"
    ));
    assert_eq!(explained.len(), 20, "{explained:?}");
    let predicted =
        lake.rows(&format!("SELECT predicted_target AS p FROM ML.PREDICT(MODEL {model}, {rows}) ORDER BY p LIMIT 20"));
    for (e, p) in explained.iter().zip(&predicted) {
        let attributions = e["a"].as_array().unwrap();
        assert_eq!(attributions.len(), features, "{e}");
        let total: f64 = attributions.iter().map(|a| num(a, "attribution")).sum();
        let (baseline, prediction) = (num(e, "b"), num(e, "p"));
        assert!(close(baseline + total, prediction, 1e-6), "{model}: {baseline} + {total} vs {prediction}");
        assert!(close(prediction, num(p, "p"), 1e-5), "{model}: explained {prediction}, predicted {}", num(p, "p"));
        assert_eq!(num(e, "predicted_target"), prediction, "{e}");
    }
    lake.rows(&format!(
        "CREATE OR REPLACE MODEL {model}_global OPTIONS (model_type = '{}', input_label_cols = ['target'], \
         enable_global_explain = TRUE) AS SELECT * FROM {rows}",
        lake.rows(&format!("SELECT model_type FROM ml.models WHERE name = '{model}'"))[0]["model_type"]
            .as_str()
            .unwrap()
    ));
    let global = lake.rows(&format!("SELECT * FROM ML.GLOBAL_EXPLAIN(MODEL {model}_global)"));
    assert_eq!(global.len(), features, "{global:?}");
    assert!(global.windows(2).all(|w| num(&w[0], "attribution") >= num(&w[1], "attribution")), "{global:?}");
}

/// Writes scikit-learn's bundled dataset `name` (`load_<name>`) as
/// `<lake>/adhoc/<name>.csv`: an `id`, the features `f0`, `f1`, … and
/// `label` (the class number, or the target).
fn sklearn_csv(lake: &Lake, name: &str) {
    let script = r#"
import csv, sys
from sklearn import datasets
d = getattr(datasets, 'load_' + sys.argv[1])()
w = csv.writer(open(sys.argv[2], 'w', newline=''))
w.writerow(['id'] + ['f%d' % i for i in range(d.data.shape[1])] + ['label'])
for i, (row, t) in enumerate(zip(d.data, d.target)):
    w.writerow([i] + [repr(float(v)) for v in row] + [repr(float(t)) if sys.argv[1] == 'diabetes' else int(t)])
"#;
    let dir = lake.root.join("adhoc");
    std::fs::create_dir_all(&dir).unwrap();
    run_ok(Command::new(python()).args(["-c", script, name]).arg(dir.join(format!("{name}.csv"))), MIN);
}

/// Boosted trees on half of scikit-learn's breast_cancer (two classes),
/// wine (three), digits (ten) and diabetes (regression) rows, scored on the
/// other half:
/// accuracy within 2 points and R² within 0.03 of scikit-learn's
/// `HistGradientBoosting*` with the same rounds, rate, depth, L2 penalty and
/// hessian floor; the training loss falls every round in ML.TRAINING_INFO;
/// what Sentio's boosting does not do is refused by name.
/// Asserts that `created`, the row `CREATE MODEL` returned for `model`
/// without evaluation rows, holds the classification metrics `ML.EVALUATE`
/// gives over `train`, its training rows — to the last bit.
fn same_metrics_as_evaluation(lake: &Lake, model: &str, created: &Value, train: &str) {
    let evaluated = lake.rows(&format!("SELECT * FROM ML.EVALUATE(MODEL {model}, {train})"));
    for m in ["precision", "recall", "accuracy", "f1_score", "log_loss", "roc_auc"] {
        assert_eq!(created[m], evaluated[0][m], "{model}: {m} at CREATE MODEL: {created}; ML.EVALUATE: {evaluated:?}");
    }
    assert!(created["accuracy"].is_number(), "{created}");
}

#[test]
fn boosted_trees_score_as_scikit_learns_histogram_boosting_does() {
    let lake = Lake::new("0.05");
    for name in ["breast_cancer", "wine", "digits", "diabetes"] {
        sklearn_csv(&lake, name);
    }
    let script = r#"
import csv, json, sys
import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
out = {}
for name in ('breast_cancer', 'wine', 'digits', 'diabetes'):
    rows = list(csv.DictReader(open(sys.argv[1] + '/' + name + '.csv')))
    cols = [c for c in rows[0] if c.startswith('f')]
    x = np.array([[float(r[c]) for c in cols] for r in rows])
    y = np.array([float(r['label']) for r in rows])
    test = np.array([int(r['id']) % 2 == 0 for r in rows])
    kind = HistGradientBoostingRegressor if name == 'diabetes' else HistGradientBoostingClassifier
    m = kind(max_iter=50, learning_rate=0.1, max_depth=4, max_leaf_nodes=None, l2_regularization=1.0,
             min_samples_leaf=1, early_stopping=False, random_state=0)
    out[name] = m.fit(x[~test], y[~test]).score(x[test], y[test])
print(json.dumps(out))
"#;
    let f = run_ok(Command::new(python()).args(["-c", script]).arg(lake.root.join("adhoc")), MIN);
    let sk: Value = serde_json::from_str(f.stdout.trim()).unwrap();
    for (name, model_type, metric) in [
        ("breast_cancer", "boosted_tree_classifier", "accuracy"),
        ("wine", "boosted_tree_classifier", "accuracy"),
        ("digits", "boosted_tree_classifier", "accuracy"),
        ("diabetes", "boosted_tree_regressor", "r2_score"),
    ] {
        let created = lake.rows(&format!(
            "CREATE MODEL bt_{name} OPTIONS (model_type = '{model_type}', input_label_cols = ['label'], \
             max_iterations = 50, learn_rate = 0.1, max_tree_depth = 4, l2_reg = 1, min_tree_child_weight = 0.001, \
             early_stop = FALSE, data_split_method = 'NO_SPLIT') \
             AS SELECT * EXCEPT (id) FROM adhoc.{name} WHERE id % 2 = 1"
        ));
        if metric == "accuracy" {
            // Measured by the training task from its scores: the numbers
            // an evaluation over the same rows gives.
            let train = format!("(SELECT * EXCEPT (id) FROM adhoc.{name} WHERE id % 2 = 1)");
            same_metrics_as_evaluation(&lake, &format!("bt_{name}"), &created[0], &train);
        }
        let test = format!("(SELECT * EXCEPT (id) FROM adhoc.{name} WHERE id % 2 = 0)");
        let ours = num(&lake.rows(&format!("SELECT {metric} FROM ML.EVALUATE(MODEL bt_{name}, {test})"))[0], metric);
        let theirs = num(&sk, name);
        println!("{name}: {model_type} {metric} {ours:.4}, scikit-learn's {theirs:.4}");
        let tolerance = if metric == "accuracy" { 0.02 } else { 0.03 };
        assert!((ours - theirs).abs() <= tolerance, "{name}: {metric} {ours} vs scikit-learn's {theirs}");
        let info =
            lake.rows(&format!("SELECT loss, learning_rate FROM ML.TRAINING_INFO(MODEL bt_{name}) ORDER BY iteration"));
        assert_eq!(info.len(), 50, "{info:?}");
        assert!(info.windows(2).all(|w| num(&w[1], "loss") <= num(&w[0], "loss") + 1e-12), "{name}: {info:?}");
        assert!(info.iter().all(|i| num(i, "learning_rate") == 0.1), "{info:?}");
    }
    // Logistic regression's task measures itself too; past max_training_rows
    // it holds a sample, and the metrics come from a pass over every row.
    let train = "(SELECT * EXCEPT (id) FROM adhoc.breast_cancer WHERE id % 2 = 1)";
    for (model, cap) in [("lr_cancer", 100_000), ("lr_cancer_sample", 100)] {
        let created = lake.rows(&format!(
            "CREATE MODEL {model} OPTIONS (model_type = 'logistic_reg', input_label_cols = ['label'], \
             max_training_rows = {cap}, data_split_method = 'NO_SPLIT') AS SELECT * FROM {train}"
        ));
        same_metrics_as_evaluation(&lake, model, &created[0], train);
    }
    // Early stopping (BigQuery ML's default): after the first round that
    // improves the evaluation rows' loss by less than min_rel_progress.
    lake.rows(
        "CREATE MODEL bt_stop OPTIONS (model_type = 'boosted_tree_regressor', input_label_cols = ['label'], \
         max_iterations = 300, min_rel_progress = 0.005, data_split_method = 'RANDOM') \
         AS SELECT * EXCEPT (id) FROM adhoc.diabetes",
    );
    let info = lake.rows("SELECT loss, eval_loss FROM ML.TRAINING_INFO(MODEL bt_stop) ORDER BY iteration");
    let eval: Vec<f64> = info.iter().map(|i| num(i, "eval_loss")).collect();
    let n = eval.len();
    assert!((2..300).contains(&n), "early stopping ran {n} rounds: {info:?}");
    assert!(eval[n - 2] - eval[n - 1] < 0.005 * eval[n - 2], "{eval:?}");
    assert!(eval[..n - 1].windows(2).all(|w| w[0] - w[1] >= 0.005 * w[0]), "not the first such round: {eval:?}");

    // A boosted forest (XGBoost's num_parallel_tree): four trees a round on
    // their own rows and features, each at a quarter of the rate; it
    // scores as well as the single-tree rounds above.
    lake.rows(
        "CREATE MODEL bt_forest OPTIONS (model_type = 'boosted_tree_regressor', input_label_cols = ['label'], \
         max_iterations = 50, learn_rate = 0.1, max_tree_depth = 4, l2_reg = 1, min_tree_child_weight = 0.001, \
         num_parallel_tree = 4, subsample = 0.8, colsample_bylevel = 0.8, colsample_bynode = 0.8, \
         early_stop = FALSE, data_split_method = 'NO_SPLIT') AS SELECT * EXCEPT (id) FROM adhoc.diabetes WHERE id % 2 = 1",
    );
    let test = "(SELECT * EXCEPT (id) FROM adhoc.diabetes WHERE id % 2 = 0)";
    let forest = num(&lake.rows(&format!("SELECT r2_score FROM ML.EVALUATE(MODEL bt_forest, {test})"))[0], "r2_score");
    let single =
        num(&lake.rows(&format!("SELECT r2_score FROM ML.EVALUATE(MODEL bt_diabetes, {test})"))[0], "r2_score");
    println!("diabetes: boosted forest r2_score {forest:.4}, one tree a round {single:.4}");
    assert!(forest > single - 0.03, "a boosted forest scores {forest}, one tree a round {single}");
    assert_eq!(lake.rows("SELECT iteration FROM ML.TRAINING_INFO(MODEL bt_forest)").len(), 50);

    let importance = lake.rows("SELECT * FROM ML.FEATURE_IMPORTANCE(MODEL bt_diabetes)");
    assert_eq!(importance.len(), 10, "{importance:?}");
    let q = "SELECT * EXCEPT (id) FROM adhoc.diabetes";
    for (options, want) in [
        ("early_stop = FALSE, min_rel_progress = 0.1", "min_rel_progress goes with early_stop = TRUE"),
        ("booster_type = 'DART'", "booster_type 'DART' is not implemented"),
        ("tree_method = 'EXACT'", "tree_method 'EXACT' is not Sentio's"),
        ("learn_rate = 0", "learn_rate must be between"),
        ("max_tree_depth = 0", "max_tree_depth must be between 1"),
        ("num_parallel_tree = 0", "num_parallel_tree must be between 1"),
        ("colsample_bylevel = 0", "colsample_bylevel must be between"),
        ("num_neighbors = 2", "num_neighbors does not apply to boosted_tree_regressor"),
    ] {
        let e = lake.fails(&format!(
            "CREATE MODEL bad OPTIONS (model_type = 'boosted_tree_regressor', input_label_cols = ['label'], {options}) AS {q}"
        ));
        assert!(e.contains(want), "{options}: {e}");
    }
    let e = lake.fails(
        "CREATE MODEL bad OPTIONS (model_type = 'boosted_tree_regressor', input_label_cols = ['text_label'], \
         early_stop = FALSE) AS SELECT *, CAST(label AS VARCHAR) AS text_label FROM adhoc.diabetes",
    );
    assert!(e.contains("its label must be numeric"), "{e}");

    // Explanations: Tree SHAP of the score the trees add up — a regressor's
    // prediction, a class's logit — whose attributions add up to it from
    // the baseline; for two classes the score is the log-odds of the
    // explained label's probability.
    for (name, features) in [("diabetes", 10), ("breast_cancer", 30), ("digits", 64)] {
        let rows = format!("(SELECT * FROM adhoc.{name} WHERE id % 2 = 0 ORDER BY id LIMIT 40)");
        let explained = lake.rows(&format!(
            "SELECT id, top_feature_attributions AS a, baseline_prediction_value AS b, prediction_value AS p \
             FROM ML.EXPLAIN_PREDICT(MODEL bt_{name}, {rows}, STRUCT({features} AS top_k_features)) ORDER BY id"
        ));
        let predicted = lake.rows(&format!("SELECT * FROM ML.PREDICT(MODEL bt_{name}, {rows}) ORDER BY id"));
        assert_eq!((explained.len(), predicted.len()), (40, 40));
        for (e, p) in explained.iter().zip(&predicted) {
            let attributions = e["a"].as_array().unwrap();
            assert_eq!(attributions.len(), features, "{e}");
            let total: f64 = attributions.iter().map(|a| num(a, "attribution")).sum();
            let (baseline, score) = (num(e, "b"), num(e, "p"));
            assert!(close(baseline + total, score, 1e-6), "{name}: {baseline} + {total} vs {score}");
            match name {
                "diabetes" => assert!(close(score, num(p, "predicted_label"), 1e-5), "{e} vs {p}"),
                "breast_cancer" => {
                    // The label is a number; the probabilities name it in text.
                    let prob = probability_of(&p["predicted_label_probs"], &p["predicted_label"].to_string());
                    let logit = (prob / (1.0 - prob)).ln();
                    assert!(close(score, logit, 1e-6), "{name}: score {score} vs log-odds {logit} of {prob}");
                }
                _ => assert!(score.is_finite(), "{e}"),
            }
        }
    }
    lake.rows(
        "CREATE MODEL bt_global OPTIONS (model_type = 'boosted_tree_classifier', input_label_cols = ['label'], \
         max_iterations = 10, enable_global_explain = TRUE, data_split_method = 'NO_SPLIT') \
         AS SELECT * EXCEPT (id) FROM adhoc.breast_cancer",
    );
    let global = lake.rows("SELECT * FROM ML.GLOBAL_EXPLAIN(MODEL bt_global)");
    assert_eq!(global.len(), 30, "{global:?}");
    assert!(global.windows(2).all(|w| num(&w[0], "attribution") >= num(&w[1], "attribution")), "{global:?}");
    assert!(num(&global[0], "attribution") > 0.0, "{global:?}");
}
