//! The five analyst workflows — `examples/*.sql`, unchanged — on a
//! 1-scheduler + 2-executor cluster with a PostgreSQL operational DB and the
//! lake on a local S3-compatible server; what they write into the database
//! is checked with `psql`, not through Sentio. And ~15 workstations on one
//! cluster at once, through its front end.

use std::time::Duration;

use crate::opdb::{Db, Kind};
use crate::support::{Cluster, S3Server, repo_root, run_ok, sentio};

const SCRIPTS: [&str; 5] =
    ["01_train_emotion", "02_validate_emotion", "03_train_media", "04_cross_validate_media", "05_statistics"];

/// The bytes a script's statements received from the cluster and scanned in
/// it (the runner reports both per statement on stderr:
/// `… (1234 bytes) received from the cluster · … (56789 bytes) scanned in the cluster …`).
fn bytes_received_and_scanned(stderr: &str) -> (u64, u64) {
    let figure = |l: &str, what: &str| -> u64 {
        l.split(" bytes) ")
            .zip(l.split(" bytes) ").skip(1))
            .find(|(_, after)| after.starts_with(what))
            .and_then(|(before, _)| before.rsplit('(').next()?.parse().ok())
            .unwrap_or(0)
    };
    stderr
        .lines()
        .filter(|l| l.contains("received from the cluster"))
        .fold((0, 0), |(r, s), l| (r + figure(l, "received"), s + figure(l, "scanned")))
}

#[test]
fn the_five_scripts_run_on_a_cluster_with_postgres_and_s3() {
    let s3 = S3Server::start("sentio-workflows");
    let lake = "s3://sentio-workflows/lake";
    let db = Db::fresh(Kind::Pg, "sentio_workflows");
    run_ok(
        sentio().envs(s3.env()).args([
            "datagen",
            "--scale",
            "0.3",
            "--seed",
            "42",
            "--opdb",
            &db.url(),
            "--lake",
            lake,
        ]),
        Duration::from_secs(300),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut env = s3.env();
    env.push(("SENTIO_OPDB_URL", db.url()));
    let cluster = Cluster::start(dir.path(), 2, env);
    let sql = || {
        let mut c = sentio();
        c.envs(s3.env()).args(["sql", "--scheduler", &cluster.url(), "--lake", lake, "--opdb", &db.url()]);
        c
    };

    let mut out = String::new();
    for script in SCRIPTS {
        let f = run_ok(
            sql().args(["--format", "csv", "-f"]).arg(repo_root().join(format!("examples/{script}.sql"))),
            Duration::from_secs(1200),
        );
        let (received, scanned) = bytes_received_and_scanned(&f.stderr);
        eprintln!(
            "{script}: {:.1} s, {received} bytes sent to the client, {scanned} bytes scanned in the cluster ({:.4} %)",
            f.elapsed.as_secs_f64(),
            100.0 * received as f64 / scanned.max(1) as f64
        );
        // Training and validation: the heavy data stays in the cluster.
        if script.starts_with("01") || script.starts_with("02") {
            assert!(scanned > 0, "{script}: nothing scanned?\n{}", f.stderr);
            assert!(received * 100 < scanned, "{script}: {received} bytes sent of {scanned} scanned");
        }
        out.push_str(&f.stdout);
    }
    assert!(out.contains("emotion_rf,1,created") && out.contains("media_hit,1,created"), "{out}");
    assert!(out.contains("expected_label,angry,happy,sad"), "{out}");
    assert!(out.contains("name,num_rows,num_nulls,unique,min,max,top_values"), "{out}");

    // What the scripts wrote, as PostgreSQL's own client sees it.
    let n_test = run_ok(
        sql().args(["--format", "csv", "-c", "SELECT COUNT(*) AS n FROM training.frames WHERE split = 'test'"]),
        Duration::from_secs(120),
    );
    let n_test = n_test.stdout.lines().nth(1).unwrap().to_string();
    let outputs = db.client(
        "SELECT COUNT(*), COUNT(DISTINCT (session_id, frame_no)), MIN(confidence) >= 1.0 / 3, \
         string_agg(DISTINCT label, ',' ORDER BY label), string_agg(DISTINCT run_id, ',') \
         FROM emotion_outputs WHERE model = 'emotion_rf' AND version = 1",
    );
    assert_eq!(outputs, format!("{n_test}|{n_test}|t|angry,happy,sad|emotion_rf@1/test"), "emotion_outputs");
    let cv = db.client(
        "SELECT COUNT(*), COUNT(DISTINCT run_id), string_agg(DISTINCT fold, ',' ORDER BY fold), \
         COUNT(DISTINCT metric), bool_and(value >= 0) FROM media_cv_results WHERE model = 'media_hit'",
    );
    assert_eq!(cv, "42|1|1,2,3,4,5,mean,stddev|6|t", "media_cv_results");

    for i in 0..2 {
        let tasks = cluster.executor_log(i).matches("Finished task").count();
        eprintln!("executor {i} ran {tasks} tasks");
        assert!(tasks > 0, "executor {i} ran no task");
    }
    cluster.stop();
}

/// Each statement's latency as the runner reports it on stderr
/// (`-- 7 rows in 1.23 s · …`).
fn statement_seconds(stderr: &str) -> Vec<f64> {
    stderr
        .lines()
        .filter(|l| l.contains("received from the cluster"))
        .filter_map(|l| l.split(" in ").nth(1)?.split(" s").next()?.parse().ok())
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// ~15 workstations on one cluster: 15 clients run the statistics script at
/// once through the front end while another trains a model there; every
/// client gets the rows the statements give when planned by the client
/// itself (`df://`, the older path).
#[test]
fn fifteen_workstations_share_a_cluster_while_a_model_trains() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let opdb = format!("sqlite:{}", dir.path().join("opdb.sqlite").display());
    run_ok(
        sentio().args(["datagen", "--scale", "0.5", "--seed", "42", "--opdb", &opdb, "--lake"]).arg(&lake),
        Duration::from_secs(300),
    );
    let env = vec![("SENTIO_OPDB_URL", opdb.clone()), ("SENTIO_LAKE", lake.display().to_string())];
    let token = "sentio-test-fifteen-workstations";
    let cluster = Cluster::start_front_end(&dir.path().join("cluster"), 2, env, token, &[]);
    let uri = cluster.flight_sql_uri();
    let sql = || {
        let mut c = sentio();
        c.args(["sql", "--scheduler", &uri, "--token", token, "--format", "csv"]);
        c
    };
    let stats = repo_root().join("examples/05_statistics.sql");
    let planned_here = run_ok(
        sentio()
            .args(["sql", "--scheduler", &cluster.url(), "--opdb", &opdb, "--format", "csv", "--lake"])
            .arg(&lake)
            .arg("-f")
            .arg(&stats),
        Duration::from_secs(600),
    );
    let reference = planned_here.stdout;

    let (results, training) = std::thread::scope(|s| {
        let training = s.spawn(|| {
            run_ok(
                sql().args([
                    "-c",
                    "CREATE MODEL busy OPTIONS (model_type = 'random_forest_classifier', input_label_cols = ['emotion'], \
                     num_parallel_tree = 20, max_tree_depth = 8, seed = 1) AS \
                     SELECT * EXCEPT (session_id, frame_no, subject_id, media_id, recorded_on, split) FROM training.frames",
                ]),
                Duration::from_secs(1800),
            )
        });
        let clients: Vec<_> =
            (0..15).map(|_| s.spawn(|| run_ok(sql().arg("-f").arg(&stats), Duration::from_secs(1800)))).collect();
        (clients.into_iter().map(|c| c.join().unwrap()).collect::<Vec<_>>(), training.join().unwrap())
    });
    assert!(training.stdout.contains("busy,1,created"), "{}", training.stdout);
    let mut seconds = Vec::new();
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.stdout, reference, "client {i} got other results");
        let s = statement_seconds(&r.stderr);
        assert_eq!(s.len(), 9, "client {i}: {}", r.stderr);
        seconds.extend(s);
    }
    seconds.sort_by(f64::total_cmp);
    eprintln!(
        "15 clients x 9 statements while training ({:.1} s): statement latency p50 {:.2} s, p95 {:.2} s, max {:.2} s",
        training.elapsed.as_secs_f64(),
        percentile(&seconds, 0.5),
        percentile(&seconds, 0.95),
        seconds[seconds.len() - 1]
    );
    cluster.stop();
}
