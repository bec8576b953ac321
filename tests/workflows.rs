//! ~15 workstations on one cluster at once, through its front end, and the
//! retrain-on-drift script. (The five analyst workflows on a cluster with
//! PostgreSQL and S3 run in `frontend.rs`, through the front end.)

use std::time::{Duration, Instant};

use crate::support::{Cluster, repo_root, run_ok, sentio};

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

/// ~15 workstations on one cluster, for two minutes: 15 clients run the
/// statistics script in a loop through the front end while another trains
/// a model there. Every run of every client gets the rows the statements
/// give when planned by the client itself (`df://`, the older path); no
/// client starves (each completes at least half the median client's runs);
/// the statement latencies under load and alone are printed.
#[test]
fn fifteen_workstations_share_a_cluster_while_a_model_trains() {
    const LOAD: Duration = Duration::from_secs(120);
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
    let mut alone = statement_seconds(&run_ok(sql().arg("-f").arg(&stats), Duration::from_secs(600)).stderr);
    alone.sort_by(f64::total_cmp);

    let started = Instant::now();
    let (clients, training) = std::thread::scope(|s| {
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
        let clients: Vec<_> = (0..15)
            .map(|_| {
                s.spawn(|| {
                    let mut runs = Vec::new();
                    while runs.is_empty() || started.elapsed() < LOAD {
                        runs.push(run_ok(sql().arg("-f").arg(&stats), Duration::from_secs(1800)));
                    }
                    runs
                })
            })
            .collect();
        (clients.into_iter().map(|c| c.join().unwrap()).collect::<Vec<_>>(), training.join().unwrap())
    });
    assert!(training.stdout.contains("busy,1,created"), "{}", training.stdout);
    let mut seconds = Vec::new();
    for (i, runs) in clients.iter().enumerate() {
        for r in runs {
            assert_eq!(r.stdout, reference, "client {i} got other results");
            let s = statement_seconds(&r.stderr);
            assert_eq!(s.len(), 9, "client {i}: {}", r.stderr);
            seconds.extend(s);
        }
    }
    let mut counts: Vec<usize> = clients.iter().map(Vec::len).collect();
    counts.sort_unstable();
    let median = counts[counts.len() / 2];
    assert!(2 * counts[0] >= median, "a client starved: runs per client {counts:?}");
    seconds.sort_by(f64::total_cmp);
    let (p50, p95) = (percentile(&seconds, 0.5), percentile(&seconds, 0.95));
    let (alone50, alone95) = (percentile(&alone, 0.5), percentile(&alone, 0.95));
    eprintln!(
        "15 clients x the statistics script for {:.0} s while training ({:.1} s): {} runs (per client {counts:?}); \
         statement latency p50 {p50:.2} s, p95 {p95:.2} s (alone: p50 {alone50:.2} s, p95 {alone95:.2} s; \
         p95 ratio {:.1}x)",
        started.elapsed().as_secs_f64(),
        training.elapsed.as_secs_f64(),
        counts.iter().sum::<usize>(),
        p95 / alone95
    );
    cluster.stop();
}

/// `examples/07_retrain_on_drift.sql`, run as a nightly job would: after a
/// day of frames like the training ones it keeps the model; after a day
/// whose `f03` moved it trains a new version, and lists both versions'
/// metrics.
#[test]
fn retraining_on_drift_makes_a_version_only_when_the_newest_frames_moved() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let opdb = format!("sqlite:{}", dir.path().join("opdb.sqlite").display());
    run_ok(
        sentio().args(["datagen", "--scale", "0.1", "--seed", "42", "--opdb", &opdb, "--lake"]).arg(&lake),
        Duration::from_secs(300),
    );
    let sql = |args: &[&str]| {
        let mut c = sentio();
        c.args(["sql", "--no-progress", "--format", "csv", "--opdb", &opdb, "--lake"]).arg(&lake).args(args);
        run_ok(&mut c, Duration::from_secs(600))
    };
    let example = |name: &str| repo_root().join("examples").join(name).display().to_string();
    sql(&["-f", &example("01_train_emotion.sql")]);
    // A new day of frames: a sample of training sessions' frames, as they
    // were (day 1) or with f03 moved by six of its deviations (day 2).
    let new_day = |day: u32, f03: &str| {
        let file = lake.join(format!("training/frames/live-{day}.parquet"));
        sql(&[
            "-c",
            &format!(
                "COPY (SELECT * REPLACE (DATE '2030-01-0{day}' AS recorded_on, 'live' AS split, {f03} AS f03) \
                 FROM training.frames WHERE split = 'train' AND hash_fraction(session_id, {day}) < 0.3) \
                 TO '{}' STORED AS PARQUET",
                file.display()
            ),
        ]);
    };
    let versions = |stdout: &str| stdout.lines().skip_while(|l| !l.starts_with("version,")).skip(1).count();
    new_day(1, "f03");
    let kept = sql(&["-f", &example("07_retrain_on_drift.sql")]);
    assert_eq!(versions(&kept.stdout), 1, "no drift, no new version:\n{}", kept.stdout);
    assert!(kept.stdout.trim_end().ends_with(",0"), "no feature drifted:\n{}", kept.stdout);
    new_day(2, "f03 + 6");
    let retrained = sql(&["-f", &example("07_retrain_on_drift.sql")]);
    assert!(retrained.stdout.contains("emotion_rf,2,created"), "{}", retrained.stdout);
    assert_eq!(versions(&retrained.stdout), 2, "{}", retrained.stdout);
    assert!(retrained.stdout.trim_end().ends_with(",1"), "one feature (f03) drifted:\n{}", retrained.stdout);
}
