//! Recommendations end to end: `matrix_factorization` models (explicit and
//! implicit feedback) trained by alternating least squares in a
//! 1-scheduler + 2-executor cluster through its front end, the same bytes
//! as standalone; `ML.RECOMMEND`'s top-n against brute force over
//! `ML.PREDICT`; `ML.EVALUATE` against a baseline computed in SQL; bad
//! input refused; and `examples/06_recommend.sql`, whose rows in the
//! operational DB are read back with Python's own sqlite3.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::{Cluster, repo_root, run, run_ok, sentio};

const TEN_MIN: Duration = Duration::from_secs(600);

/// Held-out ratings: a seeded fifth of the (user, movie) pairs.
const HELD_OUT: &str = "hash_fraction(user_id * 100003 + movie_id, 11) < 0.2";

fn explicit_model(name: &str) -> String {
    format!(
        "CREATE OR REPLACE MODEL {name} OPTIONS (model_type = 'matrix_factorization', user_col = 'user_id', \
         item_col = 'movie_id', rating_col = 'rating', num_factors = 6, max_iterations = 6, early_stop = FALSE, \
         data_split_method = 'NO_SPLIT', seed = 3) \
         AS SELECT user_id, movie_id, rating FROM training.ratings WHERE NOT ({HELD_OUT})"
    )
}

/// How statements reach Sentio: standalone on the lake, or through the
/// cluster's front end with a token only.
enum Via<'a> {
    Standalone { lake: &'a Path, opdb: &'a str },
    FrontEnd { uri: String, token: &'a str },
}

impl Via<'_> {
    fn cmd(&self) -> Command {
        let mut c = sentio();
        c.args(["sql", "--no-progress"]);
        match self {
            Via::Standalone { lake, opdb } => {
                c.arg("--lake").arg(lake).args(["--opdb", opdb]);
            }
            Via::FrontEnd { uri, token } => {
                c.args(["--scheduler", uri, "--token", token]);
            }
        }
        c
    }

    fn rows(&self, sql: &str) -> Vec<Value> {
        let f = run_ok(self.cmd().args(["--format", "json", "-c", sql]), TEN_MIN);
        let text = f.stdout.trim();
        if text.is_empty() {
            return Vec::new();
        }
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    fn fails(&self, sql: &str) -> String {
        let f = run(self.cmd().args(["-c", sql]), TEN_MIN);
        assert!(!f.success, "{sql} should fail; stdout:\n{}", f.stdout);
        assert!(!f.stderr.contains("panicked"), "{}", f.stderr);
        f.stderr
    }
}

fn num(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or_else(|| panic!("{k} is not a number in {v}"))
}

/// The bytes of a version's stored factors.
fn payload(lake: &Path, name: &str, version: u32) -> Vec<u8> {
    let meta: Value =
        serde_json::from_slice(&std::fs::read(lake.join(format!("models/{name}/{version}/model.json"))).unwrap())
            .unwrap();
    std::fs::read(lake.join(meta["payload_file"].as_str().unwrap())).unwrap()
}

#[test]
fn matrix_factorization_recommends_on_a_cluster_as_standalone() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let opdb = format!("sqlite:{}", dir.path().join("opdb.sqlite").display());
    run_ok(
        sentio()
            .args(["datagen", "--dataset", "ratings", "--scale", "0.3", "--seed", "5", "--opdb", &opdb, "--lake"])
            .arg(&lake),
        TEN_MIN,
    );
    let standalone = Via::Standalone { lake: &lake, opdb: &opdb };
    let created = standalone.rows(&explicit_model("mf"));
    assert_eq!(created[0]["version"], 1, "{created:?}");
    assert_eq!(created[0]["iterations"], 6, "{created:?}");
    refuses_bad_input(&standalone);
    custom_split_holds_out_the_marked_ratings(&standalone);
    let top = |via: &Via, version: u32| {
        via.rows(&format!(
            "SELECT user_id, movie_id, predicted_rating FROM ML.RECOMMEND(MODEL mf@{version}, STRUCT(4 AS top_n)) \
             ORDER BY user_id, predicted_rating DESC, movie_id"
        ))
    };
    let top_standalone = top(&standalone, 1);

    let env = vec![("SENTIO_OPDB_URL", opdb.clone()), ("SENTIO_LAKE", lake.display().to_string())];
    let token = "sentio-test-recommend";
    let cluster = Cluster::start_front_end(&dir.path().join("cluster"), 2, env, token, &[]);
    let remote = Via::FrontEnd { uri: cluster.flight_sql_uri(), token };
    let created = remote.rows(&explicit_model("mf"));
    assert_eq!(created[0]["version"], 2, "{created:?}");
    assert_eq!(payload(&lake, "mf", 1), payload(&lake, "mf", 2), "the cluster trained other factors");
    // The copy of the training ratings and each half's factor file are
    // removed: only the versions' payload files are left.
    let left: Vec<_> =
        std::fs::read_dir(lake.join("models/mf/payloads")).unwrap().flatten().map(|e| e.path()).collect();
    assert!(left.iter().all(|p| p.is_file()) && left.len() >= 2, "{left:?}");
    assert_eq!(top(&remote, 2), top_standalone, "ML.RECOMMEND's top 4 differ on the cluster");

    learns_more_than_biases(&remote);
    top_n_is_the_best_by_predict(&remote);
    implicit_feedback_ranks_held_out_movies_high(&remote);
    example_writes_each_users_unseen_top_ten(&remote, &dir.path().join("opdb.sqlite"), &lake);
    cluster.stop();
}

/// On the held-out ratings the model's error is well below that of the
/// best bias-only predictor (mean + user offset + movie offset, learnt in
/// SQL from the training ratings); training loss falls.
fn learns_more_than_biases(via: &Via) {
    let eval =
        via.rows(&format!("SELECT * FROM ML.EVALUATE(MODEL mf, (SELECT * FROM training.ratings WHERE {HELD_OUT}))"));
    let mse = num(&eval[0], "mean_squared_error");
    let baseline = via.rows(&format!(
        "WITH t AS (SELECT * FROM training.ratings WHERE NOT ({HELD_OUT})), m AS (SELECT AVG(rating) AS mu FROM t), \
         u AS (SELECT t.user_id, AVG(t.rating) - MAX(m.mu) AS bu FROM t CROSS JOIN m GROUP BY t.user_id), \
         i AS (SELECT t.movie_id, AVG(t.rating - m.mu - u.bu) AS bi FROM t CROSS JOIN m JOIN u ON u.user_id = t.user_id \
               GROUP BY t.movie_id) \
         SELECT AVG(POWER(m.mu + u.bu + i.bi - r.rating, 2)) AS mse \
         FROM (SELECT * FROM training.ratings WHERE {HELD_OUT}) r CROSS JOIN m JOIN u ON u.user_id = r.user_id \
         JOIN i ON i.movie_id = r.movie_id"
    ));
    let by_biases = num(&baseline[0], "mse");
    println!("held-out MSE: matrix factorization {mse:.4}, biases alone {by_biases:.4}");
    assert!(mse < 0.95 * by_biases, "factors add nothing: MSE {mse} vs {by_biases} by biases");
    assert!(num(&eval[0], "r2_score") > 0.3, "{eval:?}");
    let info = via.rows("SELECT iteration, loss FROM ML.TRAINING_INFO(MODEL mf) ORDER BY iteration");
    assert_eq!(info.len(), 6, "{info:?}");
    assert!(num(&info[5], "loss") < 0.8 * num(&info[0], "loss"), "{info:?}");
}

/// `ML.RECOMMEND`'s `top_n` per user (and per movie) are the best of
/// `ML.PREDICT` over every pair, in order.
fn top_n_is_the_best_by_predict(via: &Via) {
    let all = via
        .rows("SELECT COUNT(*) AS n, COUNT(DISTINCT user_id) AS users FROM ML.RECOMMEND(MODEL mf, STRUCT(4 AS top_n))");
    assert_eq!(num(&all[0], "n"), 4.0 * num(&all[0], "users"), "{all:?}");
    let known = format!("SELECT DISTINCT movie_id FROM training.ratings WHERE NOT ({HELD_OUT})");
    let by_predict = via.rows(&format!(
        "SELECT movie_id, predicted_rating FROM ML.PREDICT(MODEL mf, (SELECT 7 AS user_id, movie_id FROM ({known}))) \
         ORDER BY predicted_rating DESC, movie_id LIMIT 4"
    ));
    let recommended = via.rows(
        "SELECT movie_id, predicted_rating FROM ML.RECOMMEND(MODEL mf, (SELECT 7 AS user_id), STRUCT(4 AS top_n)) \
         ORDER BY predicted_rating DESC, movie_id",
    );
    assert_eq!(recommended, by_predict, "user 7's top 4");
    assert_eq!(recommended.len(), 4);
    let movie = via.rows(&format!("SELECT MIN(movie_id) AS m FROM ({known})"))[0]["m"].clone();
    let users = "SELECT DISTINCT user_id FROM training.ratings";
    let by_predict = via.rows(&format!(
        "SELECT user_id, predicted_rating FROM ML.PREDICT(MODEL mf, (SELECT user_id, {movie} AS movie_id FROM ({users}))) \
         ORDER BY predicted_rating DESC, user_id LIMIT 3"
    ));
    let recommended = via.rows(&format!(
        "SELECT user_id, predicted_rating FROM ML.RECOMMEND(MODEL mf, (SELECT {movie} AS movie_id), STRUCT(3 AS top_n)) \
         ORDER BY predicted_rating DESC, user_id"
    ));
    assert_eq!(recommended, by_predict, "movie {movie}'s top 3 users");
    assert_eq!(recommended.len(), 3);
    // An unknown user gets nothing; an unknown pair predicts NULL.
    assert!(via.rows("SELECT * FROM ML.RECOMMEND(MODEL mf, (SELECT -1 AS user_id), STRUCT(3 AS top_n))").is_empty());
    let unknown = via.rows(&format!("SELECT * FROM ML.PREDICT(MODEL mf, (SELECT -1 AS user_id, {movie} AS movie_id))"));
    weights_reproduce_a_prediction(via, &movie);
    assert!(unknown[0]["predicted_rating"].is_null(), "{unknown:?}");
}

/// `ML.WEIGHTS`' factors, biases and mean rating give `ML.PREDICT`'s
/// prediction: mean + user · movie + user bias + movie bias.
fn weights_reproduce_a_prediction(via: &Via, movie: &Value) {
    let rows = via.rows(&format!(
        "SELECT processed_input, feature, factor_weights, intercept FROM ML.WEIGHTS(MODEL mf) \
         WHERE (processed_input = 'user_id' AND feature = '7') OR (processed_input = 'movie_id' AND feature = '{movie}') \
         OR processed_input = '__INTERCEPT__' ORDER BY processed_input"
    ));
    assert_eq!(rows.len(), 3, "{rows:?}");
    let factors = |row: &Value| -> Vec<f64> {
        let mut w: Vec<(i64, f64)> = row["factor_weights"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["factor"].as_i64().unwrap(), e["weight"].as_f64().unwrap()))
            .collect();
        w.sort_by_key(|(f, _)| *f);
        w.into_iter().map(|(_, v)| v).collect()
    };
    let (mean, movie_row, user_row) = (&rows[0], &rows[1], &rows[2]);
    let (x, y) = (factors(user_row), factors(movie_row));
    assert_eq!((x.len(), y.len()), (6, 6), "{rows:?}");
    let by_weights = num(mean, "intercept")
        + x.iter().zip(&y).map(|(a, b)| a * b).sum::<f64>()
        + num(user_row, "intercept")
        + num(movie_row, "intercept");
    let predicted = via.rows(&format!(
        "SELECT predicted_rating FROM ML.PREDICT(MODEL mf, (SELECT 7 AS user_id, {movie} AS movie_id))"
    ));
    let predicted = num(&predicted[0], "predicted_rating");
    assert!((by_weights - predicted).abs() < 1e-9, "weights give {by_weights}, ML.PREDICT {predicted}");
}

/// Watched-or-not feedback: held-out movies rank in the top part of each
/// user's ranking of every movie (a random ranking averages 0.5).
fn implicit_feedback_ranks_held_out_movies_high(via: &Via) {
    let created = via.rows(&format!(
        "CREATE MODEL watched OPTIONS (model_type = 'matrix_factorization', feedback_type = 'implicit', \
         user_col = 'user_id', item_col = 'movie_id', rating_col = 'watched', num_factors = 6, max_iterations = 4, \
         data_split_method = 'NO_SPLIT', seed = 3) \
         AS SELECT user_id, movie_id, 1.0 AS watched FROM training.ratings WHERE NOT ({HELD_OUT})"
    ));
    assert_eq!(created[0]["feedback_type"], "implicit", "{created:?}");
    let eval = via.rows(&format!(
        "SELECT * FROM ML.EVALUATE(MODEL watched, (SELECT user_id, movie_id, 1.0 AS watched FROM training.ratings \
         WHERE {HELD_OUT}))"
    ));
    let rank = num(&eval[0], "average_rank");
    println!("implicit feedback: held-out average rank {rank:.3}, MAP {}", eval[0]["mean_average_precision"]);
    assert!(rank < 0.35, "held-out movies rank no better than chance: {eval:?}");
    // The same average rank from the model's own predictions of every
    // (user, movie) pair, counted here in SQL: the movies scored above each
    // held-out one, over the places below the first (a quarter of the users,
    // to keep the pairs few).
    let some = format!("{HELD_OUT} AND user_id % 4 = 0");
    let eval = via.rows(&format!(
        "SELECT average_rank FROM ML.EVALUATE(MODEL watched, (SELECT user_id, movie_id, 1.0 AS watched \
         FROM training.ratings WHERE {some}))"
    ));
    let rank = num(&eval[0], "average_rank");
    let scores = format!(
        "SELECT user_id, movie_id, predicted_watched_confidence AS s FROM ML.PREDICT(MODEL watched, \
         (SELECT u.user_id, m.movie_id FROM (SELECT DISTINCT user_id FROM training.ratings WHERE {some}) u \
         CROSS JOIN (SELECT DISTINCT movie_id FROM training.ratings WHERE NOT ({HELD_OUT})) m))"
    );
    let counted = via.rows(&format!(
        "SELECT SUM(above) / (COUNT(*) * (MAX(items) - 1.0)) AS average_rank FROM ( \
         SELECT h.user_id, h.movie_id, SUM(CASE WHEN a.s > o.s THEN 1 ELSE 0 END) AS above, COUNT(*) AS items \
         FROM (SELECT user_id, movie_id FROM training.ratings WHERE {some}) h \
         JOIN ({scores}) o ON o.user_id = h.user_id AND o.movie_id = h.movie_id AND o.s IS NOT NULL \
         JOIN ({scores}) a ON a.user_id = h.user_id GROUP BY h.user_id, h.movie_id) c"
    ));
    let by_hand = num(&counted[0], "average_rank");
    assert!((rank - by_hand).abs() < 1e-9, "ML.EVALUATE's average_rank {rank} vs counted {by_hand}");
    let top = via.rows("SELECT * FROM ML.RECOMMEND(MODEL watched, (SELECT 7 AS user_id), STRUCT(2 AS top_n))");
    assert_eq!(top.len(), 2);
    assert!(top[0].get("predicted_watched_confidence").is_some(), "{top:?}");
}

/// `data_split_method = 'CUSTOM'`: the rows whose `data_split_col` is TRUE
/// are the evaluation rows (those whose user and movie the model knows).
fn custom_split_holds_out_the_marked_ratings(via: &Via) {
    let created = via.rows(&format!(
        "CREATE MODEL custom OPTIONS (model_type = 'matrix_factorization', user_col = 'user_id', item_col = 'movie_id', \
         rating_col = 'rating', num_factors = 3, max_iterations = 2, data_split_method = 'CUSTOM', \
         data_split_col = 'held') AS SELECT user_id, movie_id, rating, {HELD_OUT} AS held FROM training.ratings"
    ));
    let held = via.rows(&format!("SELECT COUNT(*) AS n FROM training.ratings WHERE {HELD_OUT}"));
    let (eval, held) = (num(&created[0], "eval_rows"), num(&held[0], "n"));
    assert!(eval > 0.95 * held && eval <= held, "{eval} evaluation rows of {held} held out: {created:?}");
    let all = via.rows("SELECT COUNT(*) AS n FROM training.ratings");
    assert_eq!(num(&created[0], "training_rows") + held, num(&all[0], "n"), "{created:?}");
    let err = via.fails(
        "CREATE MODEL custom2 OPTIONS (model_type = 'matrix_factorization', user_col = 'user_id', item_col = 'movie_id', \
         rating_col = 'rating', data_split_method = 'CUSTOM', data_split_col = 'rating') AS SELECT * FROM training.ratings",
    );
    assert!(err.contains("must be BOOLEAN"), "{err}");
}

/// Bad input: a clear error and nothing stored.
fn refuses_bad_input(via: &Via) {
    let base =
        "model_type = 'matrix_factorization', user_col = 'user_id', item_col = 'movie_id', rating_col = 'rating'";
    let cases = [
        (
            format!("CREATE MODEL bad OPTIONS ({base}) AS SELECT user_id, rating FROM training.ratings"),
            "no item_col column",
        ),
        (
            format!(
                "CREATE MODEL bad OPTIONS ({base}) AS SELECT user_id, movie_id, 'five' AS rating FROM training.ratings"
            ),
            "ratings must be numbers",
        ),
        (
            format!(
                "CREATE MODEL bad OPTIONS ({base}, feedback_type = 'implicit') AS SELECT user_id, movie_id, rating - 3 AS rating \
                 FROM training.ratings"
            ),
            "at least 0",
        ),
        (
            format!("CREATE MODEL bad OPTIONS ({base}, num_trials = 4) AS SELECT * FROM training.ratings"),
            "not implemented",
        ),
        (
            format!("CREATE MODEL bad OPTIONS ({base}, max_tree_depth = 4) AS SELECT * FROM training.ratings"),
            "does not apply",
        ),
        (
            format!(
                "CREATE MODEL bad OPTIONS ({base}) AS SELECT user_id, movie_id, rating FROM training.ratings WHERE false"
            ),
            "training set is empty",
        ),
        ("SELECT * FROM ML.CONFUSION_MATRIX(MODEL mf)".to_string(), "does not apply to matrix_factorization"),
        ("SELECT * FROM ML.RECOMMEND(MODEL mf, STRUCT(0 AS top_n))".to_string(), "top_n must be"),
        ("SELECT * FROM ML.RECOMMEND(MODEL mf, (SELECT 1 AS x))".to_string(), "neither the user column"),
        (
            "SELECT * FROM ML.RECOMMEND(MODEL mf, (SELECT 1 AS user_id, 2 AS movie_id), STRUCT(3 AS top_n))"
                .to_string(),
            "scored as they are",
        ),
        ("SELECT * FROM ML.PREDICT(MODEL mf, (SELECT 1 AS user_id))".to_string(), "needs the columns"),
    ];
    for (sql, expected) in cases {
        let err = via.fails(&sql);
        assert!(err.contains(expected), "{sql}: expected {expected:?} in\n{err}");
    }
    let stored = via.rows("SELECT name FROM ml.models WHERE name = 'bad'");
    assert!(stored.is_empty(), "{stored:?}");
}

/// `examples/06_recommend.sql` through the front end: ten recommendations
/// per user in the operational DB, none of a movie the user rated, best
/// first — read with Python's sqlite3, not Sentio.
fn example_writes_each_users_unseen_top_ten(via: &Via, sqlite: &Path, lake: &Path) {
    let script = repo_root().join("examples/06_recommend.sql");
    let f = run_ok(via.cmd().args(["--format", "csv", "-f"]).arg(&script), TEN_MIN);
    assert!(f.stdout.contains("movie_mf@1,"), "{}", f.stdout);
    let check = r#"
import csv, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rows = db.execute("SELECT user_id, movie_id, predicted_rating FROM recommendations WHERE run_id = 'movie_mf@1'").fetchall()
rated = {(int(r["userId"]), int(r["movieId"])) for r in csv.DictReader(open(sys.argv[2]))}
users = {u for u, _ in rated}
per_user = {}
for u, m, p in rows:
    assert (u, m) not in rated, f"user {u} already rated movie {m}"
    per_user.setdefault(u, []).append(p)
assert set(per_user) == users, f"{len(per_user)} users recommended of {len(users)}"
assert all(len(v) == 10 for v in per_user.values()), "not ten each"
print(len(rows), "recommendations for", len(per_user), "users")
"#;
    let out = run_ok(
        Command::new("python3").args(["-c", check]).arg(sqlite).arg(lake.join("adhoc/ratings.csv")),
        Duration::from_secs(60),
    );
    assert!(out.stdout.contains("recommendations for"), "{}", out.stdout);
}

/// The generator's noise (standard deviation 0.5, then half stars): the RMSE
/// no model can beat (`cli/src/datagen/ratings.rs`).
const NOISE_FLOOR: f64 = 0.52;

/// On a dense sample (`--ratings-per-user`: every user and movie with a few
/// hundred ratings) explicit feedback comes close to the generator's noise
/// floor. At this test's size (about 130k ratings, ~250 a user and a movie)
/// the factors are pinned to within a few percent; the benchmark's 1M
/// ratings with 400 a user show the 2 % of issue 31 (docs/benchmarks.md).
/// On MovieLens's sparsity (75 a user) the same model stays 15–20 % above
/// the floor — asserted too, so the dense sample is what makes the
/// difference.
#[test]
fn explicit_feedback_nears_the_noise_floor_on_dense_ratings() {
    let dir = tempfile::tempdir().unwrap();
    let (dense, sparse) = (dir.path().join("dense"), dir.path().join("sparse"));
    let datagen = |lake: &Path, extra: &[&str]| {
        let mut c = sentio();
        c.args(["datagen", "--scale", "1.5", "--seed", "9", "--lake"]).arg(lake).args(extra);
        c
    };
    for (extra, expected) in [
        (
            &["--dataset", "ratings", "--ratings-per-user", "3"][..],
            "--ratings-per-user must be between 5 and 100000, got 3",
        ),
        (&["--ratings-per-user", "100"][..], "applies to --dataset ratings only"),
    ] {
        let f = run(&mut datagen(&dir.path().join("bad"), extra), TEN_MIN);
        assert!(!f.success && f.stderr.contains(expected), "{extra:?}: {}", f.stderr);
        assert!(!dir.path().join("bad").exists(), "nothing written for {extra:?}");
    }
    let made = run_ok(&mut datagen(&dense, &["--dataset", "ratings", "--ratings-per-user", "200"]), TEN_MIN);
    assert!(made.stderr.contains("of 545 movies by 545 users"), "{}", made.stderr);
    run_ok(&mut datagen(&sparse, &["--dataset", "ratings"]), TEN_MIN);
    let opdb = format!("sqlite:{}", dir.path().join("opdb.sqlite").display());
    let rmse = |lake: &Path| {
        let via = Via::Standalone { lake, opdb: &opdb };
        via.rows(&format!(
            "CREATE MODEL mf OPTIONS (model_type = 'matrix_factorization', user_col = 'user_id', \
             item_col = 'movie_id', rating_col = 'rating', num_factors = 10, max_iterations = 10, l2_reg = 0.02, \
             early_stop = FALSE, data_split_method = 'NO_SPLIT', seed = 3) \
             AS SELECT user_id, movie_id, rating FROM training.ratings WHERE NOT ({HELD_OUT})"
        ));
        let eval = via
            .rows(&format!("SELECT * FROM ML.EVALUATE(MODEL mf, (SELECT * FROM training.ratings WHERE {HELD_OUT}))"));
        num(&eval[0], "mean_squared_error").sqrt()
    };
    let (on_dense, on_sparse) = (rmse(&dense), rmse(&sparse));
    println!("held-out RMSE: dense {on_dense:.4} ({:.3}x the floor), sparse {on_sparse:.4}", on_dense / NOISE_FLOOR);
    assert!(on_dense <= 1.06 * NOISE_FLOOR, "dense ratings: RMSE {on_dense} vs the floor {NOISE_FLOOR}");
    assert!(on_dense >= 0.97 * NOISE_FLOOR, "below the noise floor: the held-out ratings leaked? {on_dense}");
    assert!(on_sparse >= 1.1 * NOISE_FLOOR, "sparse ratings: RMSE {on_sparse}");
}
