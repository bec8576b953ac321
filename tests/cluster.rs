//! A real cluster — `sentio-scheduler` and two `sentio-executor` processes
//! started by `deploy/local/cluster.sh` — against a lake on a local
//! S3-compatible server, cancelled by Ctrl-C, and surviving (or clearly failing
//! on) the loss of an executor.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::cli::{job_folders, wait_for_job};
use crate::faulty_link::{Fault, FaultyLink};
use crate::support::{
    Cluster, Guard, Running, S3Server, SPREAD, cpus_used, process_alive, repo_root, run, run_ok, sentio,
};

/// Join + group-by with exact (integer) results, so cluster and standalone
/// answers can be compared for equality.
const JOIN_GROUP_BY: &str = "\
    SELECT LOWER(g.outcome) AS outcome, f.split, f.emotion, \
           COUNT(*) AS frames, SUM(f.frame_no) AS frame_sum, COUNT(DISTINCT f.session_id) AS sessions \
    FROM training.frames f JOIN adhoc.media_ground_truth g ON f.media_id = g.media_id \
    WHERE g.outcome IS NOT NULL \
    GROUP BY LOWER(g.outcome), f.split, f.emotion ORDER BY 1, 2, 3";

/// Days of work for one executor, in batches of generated rows.
const ENDLESS_SERIES: &str = "SELECT COUNT(*) FROM generate_series(1, 100000000000) WHERE value % 7 = 3";

/// A moto server with bucket `bucket` and sample data of `scale` at
/// `s3://<bucket>/lake`: the server, its environment and the lake's URL.
fn s3_lake(bucket: &str, scale: &str, seed: &str) -> (S3Server, Vec<(&'static str, String)>, String) {
    let s3 = S3Server::start(bucket);
    let env = s3.env();
    let lake = format!("s3://{bucket}/lake");
    run_ok(
        sentio().envs(env.clone()).args(["datagen", "--scale", scale, "--seed", seed, "--lake", &lake]),
        Duration::from_secs(300),
    );
    (s3, env, lake)
}

const TEN_MIN: Duration = Duration::from_secs(600);

fn json_rows(stdout: &str) -> Vec<serde_json::Value> {
    let v: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"));
    v.as_array().expect("a JSON array").clone()
}

#[test]
fn s3_lake_on_two_executors_matches_standalone() {
    let s3 = S3Server::start("sentio-test");
    let lake = "s3://sentio-test/lake";
    run_ok(
        sentio().envs(s3.env()).args(["datagen", "--scale", "0.5", "--seed", "11", "--lake", lake]),
        Duration::from_secs(300),
    );

    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), 2, s3.env());
    // Runs `sql` on the cluster, spread over the executors however small
    // its input, and standalone as it comes (one task when small); the
    // answers must agree.
    let on_both = |sql: &str, timeout: Duration| {
        let remote = run_ok(
            sentio().envs(s3.env()).args([
                "sql",
                "--scheduler",
                &cluster.url(),
                "--lake",
                lake,
                "--format",
                "json",
                "-c",
                SPREAD,
                "-c",
                sql,
            ]),
            timeout,
        );
        assert!(remote.stderr.contains("received from the cluster"), "{}", remote.stderr);
        let standalone =
            run_ok(sentio().envs(s3.env()).args(["sql", "--lake", lake, "--format", "json", "-c", sql]), timeout);
        let (r, s) = (json_rows(&remote.stdout), json_rows(&standalone.stdout));
        assert_eq!(r, s, "cluster and standalone answers differ for {sql}");
        r
    };
    let r = on_both(JOIN_GROUP_BY, Duration::from_secs(180));
    assert_eq!(r.len(), 12, "2 outcomes x 2 splits x 3 emotions: {r:?}");
    let frames: i64 = r.iter().map(|row| row["frames"].as_i64().unwrap()).sum();
    assert!(frames > 40_000, "{frames}");

    // Sentio's functions are known to the executors (they run there: the
    // argument is a column).
    let c = on_both(
        "SELECT COUNT(*) AS n, SUM(CASE WHEN hash_fraction(session_id, 7) < 0.5 THEN 1 ELSE 0 END) AS half \
         FROM training.frames",
        Duration::from_secs(180),
    );
    let (n, half) = (c[0]["n"].as_i64().unwrap(), c[0]["half"].as_i64().unwrap());
    assert!(half > n / 4 && half < n * 3 / 4, "{half} of {n}");

    // A report of one-row branches in order: Ballista 55's adaptive planner
    // left this job running forever (docs/architecture.md).
    let c = on_both(
        "SELECT 'all' AS k, COUNT(*) AS n FROM training.frames \
         UNION ALL SELECT 'late', COUNT(*) FROM training.frames WHERE frame_no > 3 ORDER BY k",
        Duration::from_secs(60),
    );
    let (all, late) = (c[0]["n"].as_i64().unwrap(), c[1]["n"].as_i64().unwrap());
    assert!((c[0]["k"].as_str(), c[1]["k"].as_str()) == (Some("all"), Some("late")) && late < all, "{c:?}");
    assert_eq!(all, frames);

    // Generated rows in three or more branches: Ballista 55 gave the tasks
    // of such a stage different numbers of metrics sets, refused one task's
    // status and waited forever (sql/src/leaves.rs).
    let c = on_both(
        "SELECT k FROM (SELECT 1 AS k UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5 \
         WHERE 1 = 0) ORDER BY k",
        Duration::from_secs(60),
    );
    let keys: Vec<i64> = c.iter().map(|row| row["k"].as_i64().unwrap()).collect();
    assert_eq!(keys, [1, 2, 3, 4], "the fifth branch is empty: {c:?}");

    // Cross-validation on the cluster: the executors write the folds' one
    // copy of the input into the model store on S3; the metrics are
    // standalone's, and the copy is gone afterwards.
    let features = "SELECT f00, f01, f02, f03, emotion FROM training.frames WHERE frame_no < 10";
    let sql = |remote: bool, statement: &str| {
        let mut c = sentio();
        c.envs(s3.env()).args(["sql", "--lake", lake, "--format", "json", "-c", statement]);
        if remote {
            c.args(["--scheduler", &cluster.url()]);
        }
        json_rows(&run_ok(&mut c, TEN_MIN).stdout)
    };
    sql(
        true,
        &format!(
            "CREATE MODEL cv OPTIONS (model_type = 'logistic_reg', input_label_cols = ['emotion'], \
             max_iterations = 10) AS {features}"
        ),
    );
    let cv = format!(
        "SELECT fold, metric, value FROM ML.CROSS_VALIDATE(MODEL cv, ({features}), STRUCT(3 AS num_folds)) \
         ORDER BY fold, metric"
    );
    let (remote, standalone) = (sql(true, &cv), sql(false, &cv));
    assert_eq!(remote.len(), 5 * 6, "{remote:?}");
    for (r, s) in remote.iter().zip(&standalone) {
        assert_eq!((&r["fold"], &r["metric"]), (&s["fold"], &s["metric"]));
        let (r, s) = (r["value"].as_f64().unwrap(), s["value"].as_f64().unwrap());
        assert!((r - s).abs() <= 1e-9 * s.abs().max(1.0), "cluster {r} vs standalone {s}");
    }
    let stored = s3.keys("lake/models/cv/");
    assert!(stored.iter().any(|k| k.ends_with("model.json")), "{stored:?}");
    assert!(stored.iter().all(|k| !k.contains("scratch")), "the folds' copy was left: {stored:?}");

    // DataFusion's table functions go to the scheduler too (Sentio's logical
    // codec writes their tables).
    let c = on_both(
        "SELECT 'days' AS k, COUNT(*) AS n, NULL AS s \
         FROM generate_series(DATE '2024-01-01', DATE '2024-03-01', INTERVAL '1 week') \
         UNION ALL SELECT 'int', COUNT(*), SUM(value) FROM generate_series(1, 100000) \
         UNION ALL SELECT 'range', COUNT(*), SUM(value) FROM range(0, 1000, 7) ORDER BY k",
        Duration::from_secs(60),
    );
    let got: Vec<(String, i64, Option<i64>)> = c
        .iter()
        .map(|row| (row["k"].as_str().unwrap().to_string(), row["n"].as_i64().unwrap(), row["s"].as_i64()))
        .collect();
    assert_eq!(
        got,
        [("days".into(), 9, None), ("int".into(), 100_000, Some(5_000_050_000)), ("range".into(), 143, Some(71_071))]
    );

    // Ctrl-C cancels the statement's job on the cluster: the executors are
    // told, and stop working on it at the next batch (before Sentio's
    // engine, Ballista's shuffle writer went on with this one for hours).
    let work_dirs = || (0..2).map(|i| cluster.dir.join(format!("executor-{i}"))).collect::<Vec<_>>();
    let earlier = job_folders(&work_dirs());
    let mut cmd = sentio();
    cmd.envs(s3.env()).args(["sql", "--scheduler", &cluster.url(), "--lake", lake, "-c", ENDLESS_SERIES]);
    let mut command = Running::start(&mut cmd, false);
    let job = wait_for_job(&mut command, work_dirs, &earlier);
    let pids: Vec<u32> = (0..2).map(|i| cluster.executor_pid(i)).collect();
    // CPU the executors use in the next `window`.
    let used = |window: Duration| cpus_used(&pids, window);
    // The job is under way (an executor computes) before the signal.
    let started = Instant::now();
    while used(Duration::from_millis(500)) < 0.5 {
        assert!(started.elapsed() < Duration::from_secs(60), "the executors never got busy with job {job}");
    }
    command.signal("INT");
    let f = command.finish(Duration::from_secs(60));
    assert_eq!(f.code, Some(130), "{}", f.stderr);
    assert!(f.stderr.contains(&format!("(job {job} cancelled)")), "{}", f.stderr);
    let cancelled_at = Instant::now();
    loop {
        let cpus = used(Duration::from_secs(1));
        if cpus < 0.2 {
            println!("executors idle {:?} after the cancel", cancelled_at.elapsed());
            break;
        }
        assert!(cancelled_at.elapsed() < Duration::from_secs(20), "executors still busy ({cpus:.1} CPUs)");
    }
    let told = (0..2).filter(|&i| cluster.executor_log(i).contains(&format!("job_id: \"{job}\""))).count();
    assert!(told > 0, "no executor was told to cancel job {job}");

    for i in 0..2 {
        let log = cluster.executor_log(i);
        let tasks = log.matches("Finished task").count();
        println!("executor {i} ran {tasks} tasks");
        assert!(tasks > 0, "executor {i} ran no task; its log:\n{log}");
    }

    let pids = cluster.stop();
    assert_eq!(pids.len(), 3);
    std::thread::sleep(Duration::from_millis(200));
    for pid in pids {
        assert!(!process_alive(pid), "process {pid} outlived `cluster.sh stop`");
    }
}

/// Statements over small inputs run as one task (sql/src/one_task.rs) and
/// give the distributed path's answers — the statistics script and the ML
/// functions, standalone and on a 1 + 2 cluster; a statement with a one-row
/// answer that reads a table above the size is still spread over both
/// executors.
#[test]
fn small_inputs_run_as_one_task_with_the_answers_of_the_distributed_path() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let opdb = format!("sqlite:{}", dir.path().join("opdb.sqlite").display());
    // Scale 1: training.frames is ~17 MiB of Parquet, above the default
    // 10 MiB; the ad hoc CSV a few KiB.
    run_ok(sentio().args(["datagen", "--scale", "1", "--seed", "42", "--opdb", &opdb, "--lake"]).arg(&lake), TEN_MIN);
    let cluster = Cluster::start(&dir.path().join("cluster"), 2, vec![("SENTIO_OPDB_URL", opdb.clone())]);
    // Every file input fits in one task below 1 TiB; none below 0.
    let (one_task, spread) = ("SET datafusion.optimizer.repartition_file_min_size = 1099511627776", SPREAD);
    let sql = |on_cluster: bool, setting: Option<&str>, args: &[&str]| {
        let mut c = sentio();
        c.args(["sql", "--no-progress", "--opdb", &opdb, "--format", "csv", "--lake"]).arg(&lake);
        if on_cluster {
            c.args(["--scheduler", &cluster.url()]);
        }
        if let Some(setting) = setting {
            c.args(["-c", setting]);
        }
        run_ok(c.args(args), TEN_MIN)
    };

    // The decision, as the scheduler plans it: the CSV's GROUP BY is one
    // stage (one task); the frames' is a scan stage and a final one.
    let stages = |query: &str| sql(true, None, &["-c", &format!("EXPLAIN {query}")]).stdout.matches("Stage[").count();
    assert_eq!(stages("SELECT outcome, COUNT(*) FROM adhoc.media_ground_truth GROUP BY outcome"), 1);
    assert!(stages("SELECT split, COUNT(*) FROM training.frames GROUP BY split") >= 2);
    // The frames joined with the CSV: the CSV's hash table built in every
    // task that scans the frames (sql/src/small_joins.rs), in the frames'
    // stage — no shuffle or sort of the frames, and no broadcast stage of
    // the CSV for an executor loss to roll the join back over
    // (executor_killed_mid_query_… below).
    let joined = sql(
        true,
        None,
        &[
            "-c",
            "EXPLAIN SELECT f.emotion, COUNT(*) FROM training.frames f JOIN adhoc.media_ground_truth g \
                 ON f.media_id = g.media_id GROUP BY f.emotion",
        ],
    )
    .stdout;
    assert!(joined.contains("SmallSideJoinExec") && !joined.contains("SortMergeJoin"), "{joined}");
    assert_eq!(joined.matches("Stage[").count(), 2, "a scan-and-join stage and a final one: {joined}");
    // A small side that aggregates (the CSV grouped) is not collected: its
    // own shuffle would make it a stage again. When such sides were
    // broadcast, Ballista shuffled one again with sixteen partitions under a
    // writer planned for the one partition of the CSV it probes with, and
    // the COPY (spread: a write) kept one sixteenth of the rows — and
    // CREATE MODEL's copy of its input with it.
    let semi = "SELECT * FROM adhoc.media_ground_truth WHERE media_id IN \
                (SELECT media_id FROM adhoc.media_ground_truth GROUP BY media_id HAVING COUNT(*) >= 1)";
    let copied = dir.path().join("copied");
    let copy = format!("COPY ({semi}) TO '{}/' STORED AS PARQUET", copied.display());
    let counted = format!(
        "CREATE EXTERNAL TABLE copied STORED AS PARQUET LOCATION '{}/'; SELECT COUNT(*) AS n FROM copied",
        copied.display()
    );
    let expected = sql(false, Some(one_task), &["-c", &format!("SELECT COUNT(*) AS n FROM ({semi})")]).stdout;
    assert!(expected.lines().nth(1).is_some_and(|n| n.parse::<u64>().unwrap_or(0) > 100), "{expected}");
    sql(true, None, &["-c", &copy]);
    assert_eq!(sql(false, None, &["-c", &counted]).stdout, expected, "rows the cluster's COPY wrote");

    // A one-row answer over the big table: tasks on both executors. The
    // small CSV's statement: one task.
    let tasks_of = |query: &str| {
        let f = sql(true, None, &["-c", query]);
        let job = f.stderr.split(" · job ").nth(1).and_then(|j| j.split_whitespace().next()).map(str::to_string);
        let job = job.unwrap_or_else(|| panic!("no job in the summary:\n{}", f.stderr));
        let finished = format!("Finished task : [TID {job}/");
        (0..2).map(|i| cluster.executor_log(i).matches(&finished).count()).collect::<Vec<_>>()
    };
    let big = tasks_of("SELECT COUNT(*) AS n FROM training.frames WHERE f00 > 0");
    assert!(big.iter().all(|&n| n > 0), "tasks per executor of a statement over 17 MiB: {big:?}");
    let small = tasks_of("SELECT outcome, COUNT(*) AS n FROM adhoc.media_ground_truth GROUP BY outcome");
    assert_eq!(small.iter().sum::<usize>(), 1, "tasks per executor of a statement over the CSV: {small:?}");

    // The same answers both ways, to the last digit, standalone and on the
    // cluster: the statistics script (its opdb statements are spread either
    // way: their size is not known), and ML functions over the CSV and the
    // frames, trained and applied both ways. Only a model's stored feature
    // statistics are not to the bit: the standard deviation's partial sums
    // merge in floating point (compared to 9 decimals), and the median is an
    // approximate quantile whose digests merge by partition (left out).
    let stats = repo_root().join("examples/05_statistics.sql");
    let stats = stats.to_str().unwrap();
    let columns = "f00, f01, f02, f03, f04, f05, f06, f07";
    for on_cluster in [false, true] {
        let by_path: Vec<String> = [(one_task, "one"), (spread, "spread")]
            .into_iter()
            .map(|(setting, tag)| {
                let created = sql(
                    on_cluster,
                    Some(setting),
                    &[
                        "-c",
                        &format!(
                            "CREATE OR REPLACE MODEL media_{tag} OPTIONS (model_type = 'logistic_reg', \
                             input_label_cols = ['outcome']) AS SELECT LOWER(outcome) AS outcome, survey_score \
                             FROM adhoc.media_ground_truth WHERE outcome IS NOT NULL AND survey_score IS NOT NULL; \
                             CREATE OR REPLACE MODEL frames_{tag} OPTIONS (model_type = 'random_forest_classifier', \
                             input_label_cols = ['emotion'], num_parallel_tree = 4, max_tree_depth = 5) AS \
                             SELECT {columns}, emotion FROM training.frames WHERE split = 'train'"
                        ),
                    ],
                );
                assert!(created.stdout.contains(&format!("frames_{tag},")), "{}", created.stdout);
                let applied = sql(
                    on_cluster,
                    Some(setting),
                    &[
                        "-c",
                        &format!(
                            "SELECT * FROM ML.EVALUATE(MODEL media_{tag}, (SELECT LOWER(outcome) AS outcome, \
                             survey_score FROM adhoc.media_ground_truth WHERE outcome IS NOT NULL)); \
                             SELECT * FROM ML.EVALUATE(MODEL frames_{tag}, (SELECT {columns}, emotion \
                             FROM training.frames WHERE split = 'test')); \
                             SELECT session_id, frame_no, predicted_emotion, predicted_emotion_probs \
                             FROM ML.PREDICT(MODEL frames_{tag}, (SELECT session_id, frame_no, {columns} \
                             FROM training.frames WHERE split = 'test' AND frame_no = 0)) ORDER BY 1, 2; \
                             SELECT input, min, max, mean, ROUND(stddev, 9) AS stddev, null_count \
                             FROM ML.FEATURE_INFO(MODEL frames_{tag}) ORDER BY input"
                        ),
                        "-f",
                        stats,
                    ],
                );
                applied.stdout
            })
            .collect();
        let (one, spread) = (&by_path[0], &by_path[1]);
        assert!(one.lines().count() > 60, "{one}");
        assert!(one.contains("split,emotion,frames,pct") && one.contains("precision,recall"), "{one}");
        let differ: Vec<_> = one.lines().zip(spread.lines()).filter(|(a, b)| a != b).take(5).collect();
        assert!(
            differ.is_empty() && one.lines().count() == spread.lines().count(),
            "one task and spread answer differently (cluster: {on_cluster}); (one task, spread): {differ:#?}"
        );
    }
    cluster.stop();
}

/// Documented behaviour (docs/architecture.md): Ballista re-runs the lost
/// executor's tasks — and the map stages whose shuffle output died with it —
/// on the surviving executor, so the job finishes with the right answer,
/// within 60 s of the kill.
#[test]
fn executor_killed_mid_query_finishes_with_the_right_answer() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    run_ok(sentio().args(["datagen", "--scale", "4", "--seed", "3", "--lake"]).arg(&lake), Duration::from_secs(300));
    let expected = run_ok(
        sentio().args(["sql", "--format", "json", "-c", JOIN_GROUP_BY, "--lake"]).arg(&lake),
        Duration::from_secs(180),
    );

    let cluster = Cluster::start(&dir.path().join("cluster"), 2, vec![]);
    let client = json_client(&cluster, JOIN_GROUP_BY, &lake);

    // Kill executor 1 as soon as it has finished a task: its shuffle output
    // is then part of the job and is lost with it.
    let victim = cluster.executor_pid(1);
    let started = Instant::now();
    while !cluster.executor_log(1).contains("Finished task") {
        assert!(started.elapsed() < Duration::from_secs(60), "executor 1 never ran a task");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut client = client;
    assert!(client.0.try_wait().unwrap().is_none(), "the query finished before the kill: make it heavier");
    let (killed_at, status) = kill_and_wait(victim, &mut client, Duration::from_secs(60));
    let took = killed_at.elapsed();
    let out = std::io::read_to_string(client.0.stdout.take().unwrap()).unwrap();
    let err = std::io::read_to_string(client.0.stderr.take().unwrap()).unwrap();
    assert!(status.success(), "the job did not recover from the lost executor ({took:?} after the kill): {err}");
    println!("executor killed: job recovered and finished {took:?} after the kill");
    assert_eq!(json_rows(&out), json_rows(&expected.stdout), "wrong answer after recovery");

    // The cluster still works with the executor that is left.
    let again = run(
        sentio()
            .args(["sql", "--scheduler", &cluster.url(), "--format", "csv", "--lake"])
            .arg(&lake)
            .args(["-c", "SELECT COUNT(*) AS n FROM training.frames"]),
        Duration::from_secs(120),
    );
    assert!(again.success, "{}", again.stderr);
}

/// A client running `sql` on `cluster` over `lake`, JSON on its piped stdout.
fn json_client(cluster: &Cluster, sql: &str, lake: &std::path::Path) -> Guard {
    let mut cmd = sentio();
    cmd.args(["sql", "--scheduler", &cluster.url(), "--format", "json", "-c", sql, "--lake"])
        .arg(lake)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Guard(cmd.spawn().unwrap())
}

/// Kills `victim` (SIGKILL) and waits for `client` to end, for at most
/// `limit`: when the kill was, and how the client ended.
fn kill_and_wait(victim: u32, client: &mut Guard, limit: Duration) -> (Instant, std::process::ExitStatus) {
    Command::new("kill").args(["-KILL", &victim.to_string()]).status().unwrap();
    let killed_at = Instant::now();
    loop {
        if let Some(status) = client.0.try_wait().unwrap() {
            return (killed_at, status);
        }
        assert!(killed_at.elapsed() < limit, "query hangs more than {limit:?} after the kill");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An executor killed while the final stage runs, after some of its tasks
/// have finished: Ballista 55 runs the whole stage again and lists each
/// result partition a second time after the first attempt's locations (some
/// on the dead executor). The client reads each partition once, from its
/// last location (`job_exec::last_location_of_each`): the right rows, each
/// once (reading every location, it failed fetching from the dead
/// executor). The final stage is made slow (a string of some 300 KB per
/// group, computed after the groups are merged) so that the kill lands
/// inside it.
#[test]
fn executor_killed_in_the_final_stage_gives_each_row_once() {
    const SLOW_FINAL: &str = "SELECT session_id, COUNT(*) AS n, SUM(frame_no) AS s, \
         length(repeat(CAST(COUNT(*) AS VARCHAR), 150000)) AS work FROM training.frames GROUP BY session_id";
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    run_ok(sentio().args(["datagen", "--scale", "4", "--seed", "3", "--lake"]).arg(&lake), Duration::from_secs(300));
    let sorted = |stdout: &str| {
        let mut rows = json_rows(stdout);
        rows.sort_by_key(|r| r["session_id"].as_i64());
        rows
    };
    let cluster = Cluster::start(&dir.path().join("cluster"), 2, vec![]);
    let mut client = json_client(&cluster, SLOW_FINAL, &lake);
    // Read as it comes: 8,000 rows are more than a pipe holds.
    fn reader(pipe: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<String> {
        std::thread::spawn(move || std::io::read_to_string(pipe).unwrap())
    }
    let (out, err) = (reader(client.0.stdout.take().unwrap()), reader(client.0.stderr.take().unwrap()));

    // A task of stage 2 (the final one), first attempt, finished on executor 0.
    let final_task_done = |log: &str, attempt: &str| {
        log.lines()
            .filter_map(|l| l.split("Finished task : [TID ").nth(1))
            .any(|tid| tid.split('/').nth(1) == Some(attempt))
    };
    let started = Instant::now();
    while !final_task_done(&cluster.executor_log(0), "2.0") {
        assert!(client.0.try_wait().unwrap().is_none(), "the query finished before the kill: make it heavier");
        assert!(started.elapsed() < Duration::from_secs(240), "executor 0 never finished a task of the final stage");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(client.0.try_wait().unwrap().is_none(), "the query finished before the kill: make it heavier");
    let (killed_at, status) = kill_and_wait(cluster.executor_pid(1), &mut client, Duration::from_secs(240));
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    assert!(status.success(), "the job did not recover from the lost executor: {err}");
    println!("executor killed in the final stage: finished {:?} after the kill", killed_at.elapsed());
    // The case under test: the final stage ran again (its second attempt).
    assert!(final_task_done(&cluster.executor_log(0), "2.1"), "the final stage was not run again");
    cluster.stop();

    let expected = run_ok(
        sentio().args(["sql", "--format", "json", "-c", SLOW_FINAL, "--lake"]).arg(&lake),
        Duration::from_secs(300),
    );
    let (got, want) = (sorted(&out), sorted(&expected.stdout));
    assert!(want.len() > 1000, "{} groups", want.len());
    assert_eq!(got.len(), want.len(), "groups after recovery: each exactly once");
    assert_eq!(got, want, "wrong answer after recovery");
}

/// An S3 that goes away gives a clear error, soon, and no hang.
#[test]
fn s3_gone_fails_clearly() {
    let (s3, env, lake) = s3_lake("sentio-gone", "0.1", "2");
    let lake = lake.as_str();
    drop(s3); // the server is killed
    let f = run(
        sentio().envs(env).args(["sql", "--lake", lake, "-c", "SELECT COUNT(*) FROM training.frames"]),
        Duration::from_secs(90),
    );
    assert!(!f.success);
    assert!(f.elapsed < Duration::from_secs(60), "took {:?}", f.elapsed);
    assert!(f.stderr.contains("error: lake s3://sentio-gone/lake/"), "{}", f.stderr);
}

/// S3 stopped while a query reads the lake: the client fails with an error
/// that names the lake, within a minute, and prints no rows — never a
/// partial result.
#[test]
fn s3_stopped_mid_query_fails_clearly_with_no_partial_result() {
    let (s3, env, lake) = s3_lake("sentio-mid", "4", "2");
    let lake = lake.as_str();
    // A scan slowed by work on every row (~10 s): its files are fetched as
    // it goes, so S3 stops while it still reads.
    let slow_scan = "SELECT COUNT(*) FROM training.frames WHERE length(repeat(CAST(f00 AS VARCHAR), 2000)) > 10";
    let mut cmd = sentio();
    cmd.envs(env).args(["sql", "--no-progress", "--format", "csv", "--lake", lake, "-c", slow_scan]);
    let mut query = Running::start(&mut cmd, false);
    std::thread::sleep(Duration::from_secs(3));
    assert!(query.running(), "the query ended before S3 stopped");
    drop(s3);
    let f = query.finish(Duration::from_secs(120));
    assert!(!f.success, "the query answered without S3 (it finished before S3 stopped: make it heavier)");
    assert!(f.elapsed < Duration::from_secs(90), "took {:?} to fail", f.elapsed);
    assert!(f.stderr.contains("error:") && f.stderr.contains("sentio-mid"), "unclear error:\n{}", f.stderr);
    assert_eq!(f.stdout.trim(), "", "a failed query printed rows");
    println!("S3 stopped mid-query: {}", f.stderr.trim());
}

/// S3 stopped while a model trains on a lake there: whichever step of the
/// statement next needs S3 (observed: planning its next job, which lists the
/// training table) fails it with an error naming the lake, within S3's
/// retry budget — no hang, no success.
#[test]
fn s3_stopped_while_a_model_trains_fails_clearly() {
    let (s3, env, lake) = s3_lake("sentio-model-gone", "0.5", "2");
    let lake = lake.as_str();
    let create = "CREATE MODEL gone OPTIONS (model_type = 'random_forest_classifier', input_label_cols = ['emotion'], \
                  num_parallel_tree = 160, max_tree_depth = 12) AS SELECT * EXCEPT (session_id, frame_no, subject_id, \
                  media_id, recorded_on, split) FROM training.frames";
    let mut cmd = sentio();
    cmd.envs(env).args(["sql", "--no-progress", "--lake", lake, "-c", create]);
    let mut training = Running::start(&mut cmd, false);
    std::thread::sleep(Duration::from_secs(4));
    assert!(training.running(), "the model was trained before S3 stopped: make it heavier");
    drop(s3);
    let stopped = Instant::now();
    let f = training.finish(Duration::from_secs(300));
    assert!(!f.success, "CREATE MODEL succeeded without S3:\n{}", f.stderr);
    assert!(stopped.elapsed() < Duration::from_secs(120), "took {:?} after S3 stopped", stopped.elapsed());
    assert!(f.stderr.contains("error:") && f.stderr.contains("sentio-model-gone"), "unclear error:\n{}", f.stderr);
    assert!(!f.stderr.contains("DataFusionError("), "said in Rust's Debug form:\n{}", f.stderr);
    println!("S3 stopped mid-training: failed {:?} after: {}", stopped.elapsed(), f.stderr.trim());
}

/// The write that commits a version (`model.json`) hit by S3 faults, through
/// a relay in front of the server. Its answer lost (S3 wrote it; object_store
/// retries the PUT, which finds the version taken — by itself): the
/// statement reads the version back, sees its own and succeeds with exactly
/// one version. S3 stopped as the write arrives: a clear error within the
/// retry budgets, no version (S3's own listing); once S3 is back, the next
/// `CREATE MODEL` of the name makes version 1. S3 stopped as the version's
/// row of `ml.models` is written: the version stands, the error says its
/// row is missing, and the next `CREATE MODEL` of the name writes it.
#[test]
fn s3_faults_at_the_version_commit_leave_one_version_or_none() {
    let (s3, env, lake) = s3_lake("sentio-commit", "0.05", "4");
    let link = FaultyLink::start(&s3.endpoint);
    let env: Vec<_> =
        env.into_iter().map(|(k, v)| if k == "SENTIO_S3_ENDPOINT" { (k, link.endpoint()) } else { (k, v) }).collect();
    let sql = |statement: &str| {
        let mut cmd = sentio();
        cmd.envs(env.clone()).args(["sql", "--no-progress", "--format", "csv", "--lake", &lake, "-c", statement]);
        run(&mut cmd, TEN_MIN)
    };
    let create_as = |create: &str, name: &str| {
        sql(&format!(
            "{create} {name} OPTIONS (model_type = 'logistic_reg', input_label_cols = ['emotion'], \
             max_iterations = 5) AS SELECT f00, f01, f02, emotion FROM training.frames WHERE frame_no < 5"
        ))
    };
    let create = |name: &str| create_as("CREATE MODEL", name);
    let commits = |name: &str| -> Vec<String> {
        let mut v: Vec<String> =
            s3.keys(&format!("lake/models/{name}/")).into_iter().filter(|k| k.ends_with("/model.json")).collect();
        v.sort();
        v
    };

    link.set(Fault::LoseAnswerTo("PUT /sentio-commit/lake/models/acked/1/model.json".into()));
    let f = create("acked");
    assert_eq!(link.fault(), Fault::None, "the commit's answer was never cut off");
    assert!(f.success && f.stdout.contains("acked,1,created"), "{}\n{}", f.stdout, f.stderr);
    assert_eq!(commits("acked"), ["lake/models/acked/1/model.json"], "one statement, one version");

    link.set(Fault::StopAt("PUT /sentio-commit/lake/models/gone/1/model.json".into()));
    let f = create("gone");
    assert_eq!(link.fault(), Fault::Stopped, "S3 was never stopped at the commit");
    assert!(!f.success, "CREATE MODEL succeeded without S3:\n{}", f.stdout);
    assert!(f.elapsed < Duration::from_secs(90), "took {:?}", f.elapsed);
    assert!(f.stderr.contains("error:") && f.stderr.contains("model.json"), "unclear error:\n{}", f.stderr);
    println!("S3 stopped at the commit: failed after {:?}: {}", f.elapsed, f.stderr.trim());
    link.set(Fault::None);
    assert!(commits("gone").is_empty(), "a failed commit left a version: {:?}", commits("gone"));
    let f = create("gone");
    assert!(f.success && f.stdout.contains("gone,1,created"), "{}\n{}", f.stdout, f.stderr);

    // S3 stopped as the committed version's row of ml.models is written: the
    // error says the version is committed but not listed; the next
    // `CREATE MODEL` of the name lists it beside its own.
    link.set(Fault::StopAt("PUT /sentio-commit/lake/ml/models/listed.v1.parquet".into()));
    let f = create("listed");
    assert_eq!(link.fault(), Fault::Stopped, "S3 was never stopped at the ml.models row");
    assert!(!f.success && f.stderr.contains("version 1 of listed is committed"), "unclear error:\n{}", f.stderr);
    link.set(Fault::None);
    assert_eq!(commits("listed"), ["lake/models/listed/1/model.json"]);
    let listed = || sql("SELECT version FROM ml.models WHERE name = 'listed' ORDER BY version").stdout;
    assert_eq!(listed(), "", "no row yet");
    let f = create_as("CREATE OR REPLACE MODEL", "listed");
    assert!(f.success && f.stdout.contains("listed,2,created"), "{}\n{}", f.stdout, f.stderr);
    assert_eq!(listed(), "version\n1\n2\n");
}

/// An executor killed while a model trains on the cluster: Ballista re-runs
/// the lost executor's tasks on the other one, so the statement normally
/// finishes with the very model a standalone run trains (the same parameter
/// bytes: training is seeded and independent of the partitioning); when the
/// scheduler gives the job up instead, the statement fails with its error
/// and stores nothing — no version, no parameters. Either way no partial
/// model is ever stored.
#[test]
fn executor_killed_mid_training_stores_the_right_model_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    run_ok(sentio().args(["datagen", "--scale", "0.5", "--seed", "3", "--lake"]).arg(&lake), Duration::from_secs(300));
    let create = |name: &str| {
        format!(
            "CREATE MODEL {name} OPTIONS (model_type = 'logistic_reg', input_label_cols = ['emotion'], \
             max_iterations = 30) AS SELECT * EXCEPT (session_id, frame_no, subject_id, media_id, recorded_on, split) \
             FROM training.frames WHERE split = 'train'"
        )
    };
    run_ok(sentio().args(["sql", "--no-progress", "-c", &create("alone"), "--lake"]).arg(&lake), TEN_MIN);
    let fingerprint = |name: &str| -> Option<String> {
        let meta = std::fs::read(lake.join(format!("models/{name}/1/model.json"))).ok()?;
        let meta: serde_json::Value = serde_json::from_slice(&meta).unwrap();
        Some(meta["payload_fingerprint"].as_str().unwrap().to_string())
    };

    let cluster = Cluster::start(&dir.path().join("cluster"), 2, vec![]);
    let mut cmd = sentio();
    cmd.args(["sql", "--no-progress", "--scheduler", &cluster.url(), "-c", &create("clustered"), "--lake"]).arg(&lake);
    let mut training = Running::start(&mut cmd, false);
    let started = Instant::now();
    while !cluster.executor_log(1).contains("Finished task") {
        assert!(started.elapsed() < Duration::from_secs(120), "executor 1 never ran a task");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(training.running(), "the training ended before the kill: make it heavier");
    Command::new("kill").args(["-KILL", &cluster.executor_pid(1).to_string()]).status().unwrap();
    let f = training.finish(TEN_MIN);
    if f.success {
        println!("executor killed mid-training: the statement recovered in {:?}", f.elapsed);
        assert_eq!(fingerprint("clustered"), fingerprint("alone"), "another model than standalone trains");
    } else {
        println!("executor killed mid-training: the statement failed: {}", f.stderr);
        assert!(f.stderr.contains("error:"), "unclear error:\n{}", f.stderr);
        assert_eq!(fingerprint("clustered"), None, "a failed statement stored a version");
        let left = std::fs::read_dir(lake.join("models/clustered/payloads")).map_or(0, |d| d.count());
        assert_eq!(left, 0, "a failed statement left its parameters behind");
    }
}

/// The scheduler killed and restarted while a model trains: the statement
/// fails within seconds saying so, stores no version and no parameters,
/// and the restarted cluster trains the next model.
#[test]
fn a_restarted_scheduler_fails_a_training_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    run_ok(sentio().args(["datagen", "--scale", "0.5", "--seed", "3", "--lake"]).arg(&lake), Duration::from_secs(300));
    let cluster = Cluster::start(&dir.path().join("cluster"), 1, vec![]);
    let create = |name: &str, trees: u32| {
        format!(
            "CREATE MODEL {name} OPTIONS (model_type = 'random_forest_classifier', input_label_cols = ['emotion'], \
             num_parallel_tree = {trees}, max_tree_depth = 12) AS SELECT * EXCEPT (session_id, frame_no, subject_id, \
             media_id, recorded_on, split) FROM training.frames"
        )
    };
    let sql = |statement: &str| {
        let mut c = sentio();
        c.args(["sql", "--no-progress", "--scheduler", &cluster.url(), "-c", statement, "--lake"]).arg(&lake);
        c
    };
    let mut training = Running::start(&mut sql(&create("lost", 2000)), false);
    // Past the statistics jobs, into the fit.
    let started = Instant::now();
    while cluster.executor_log(0).matches("Execute task").count() < 6 {
        assert!(training.running(), "the training ended before the restart: make it heavier");
        assert!(started.elapsed() < Duration::from_secs(120), "the executor ran no tasks");
        std::thread::sleep(Duration::from_millis(50));
    }
    cluster.restart_scheduler();
    let restarted = Instant::now();
    let f = training.finish(Duration::from_secs(60));
    assert!(!f.success, "the training succeeded across a restart it cannot survive");
    assert!(f.stderr.contains("the cluster's scheduler "), "{}", f.stderr);
    assert!(restarted.elapsed() < Duration::from_secs(15), "the client took {:?} to give up", restarted.elapsed());
    assert!(!lake.join("models/lost/1/model.json").exists(), "a version was stored");
    let left = std::fs::read_dir(lake.join("models/lost/payloads")).map_or(0, |d| d.count());
    assert_eq!(left, 0, "parameters were left behind");
    let next = run(&mut sql(&create("next", 4)), TEN_MIN);
    assert!(next.success, "{}\nthe restarted scheduler's log:\n{}", next.stderr, cluster.restarted_scheduler_log());
    assert!(lake.join("models/next/1/model.json").exists());
}

/// The scheduler killed mid-query and restarted: the client fails within
/// seconds and says so in words (Ballista's own client asked the restarted
/// scheduler about the lost job for ever). The executor goes on with the task (the scheduler kept the job in
/// memory, and nothing cancels it) until the restarted scheduler answers
/// that it does not know the job; then the executor stops it — within the
/// job watch's period — and the restarted cluster answers again.
#[test]
fn a_killed_scheduler_fails_its_clients_and_its_restart_stops_orphaned_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(&dir.path().join("cluster"), 1, vec![]);
    let mut cmd = sentio();
    cmd.args(["sql", "--no-progress", "--scheduler", &cluster.url(), "-c", ENDLESS_SERIES]);
    let query = Running::start(&mut cmd, false);
    let started = Instant::now();
    while !cluster.executor_log(0).contains("Execute task") {
        assert!(started.elapsed() < Duration::from_secs(60), "the executor never ran a task");
        std::thread::sleep(Duration::from_millis(20));
    }
    let executor = cluster.executor_pid(0);
    cluster.restart_scheduler();
    let restarted = Instant::now();
    let f = query.finish(Duration::from_secs(60));
    assert!(!f.success);
    // "stopped answering" when it asked while the scheduler was down, "no
    // longer knows job …" when it asked the restarted one.
    assert!(f.stderr.contains("error:") && f.stderr.contains("the cluster's scheduler "), "{}", f.stderr);
    assert!(restarted.elapsed() < Duration::from_secs(15), "the client took {:?} to give up", restarted.elapsed());

    // The executor stops the lost job's task (it says so), and then its
    // work ends. (Waiting on the CPU alone raced: another test's load can
    // starve the task for a moment and look like the end of its work.)
    while !cluster.executor_log(0).contains("is no longer run by the scheduler") {
        assert!(
            restarted.elapsed() < Duration::from_secs(45),
            "the executor never stopped the lost job's task:\n{}",
            cluster.executor_log(0)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let stopped = Instant::now();
    while cpus_used(&[executor], Duration::from_millis(500)) > 0.3 {
        assert!(
            stopped.elapsed() < Duration::from_secs(15),
            "the executor still works for the lost job:\n{}",
            cluster.executor_log(0)
        );
    }
    let again = run(
        sentio().args([
            "sql",
            "--scheduler",
            &cluster.url(),
            "--format",
            "csv",
            "-c",
            "SELECT COUNT(*) AS n FROM generate_series(1, 1000)",
        ]),
        Duration::from_secs(120),
    );
    assert!(again.success && again.stdout.contains("\n1000"), "{}", again.stderr);
}

/// A small filesystem (tmpfs) mounted for a test; unmounted when dropped.
struct TmpFs(std::path::PathBuf);

impl TmpFs {
    fn mount(at: &std::path::Path, size: &str) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let mut c = Command::new("mount");
        c.args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(at);
        run_ok(&mut c, Duration::from_secs(10));
        Self(at.to_path_buf())
    }
}

impl Drop for TmpFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// The executor's shuffle disk full (its work folder on an 8 MiB tmpfs): a
/// query whose shuffle does not fit fails with `No space left on device`,
/// naming its job and stage, and prints no rows; the failed job's files are
/// removed, and the next query that fits answers.
#[test]
fn a_full_shuffle_disk_fails_the_query_clearly_and_frees_its_space() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    run_ok(sentio().args(["datagen", "--scale", "1", "--seed", "2", "--lake"]).arg(&lake), Duration::from_secs(300));
    let shuffle_disk = TmpFs::mount(&dir.path().join("cluster/executor-0"), "8m");
    let cluster = Cluster::start(&dir.path().join("cluster"), 1, vec![]);
    let sql = |statement: &str| {
        run(
            sentio()
                .args(["sql", "--no-progress", "--format", "csv", "--scheduler", &cluster.url(), "-c", statement])
                .arg("--lake")
                .arg(&lake),
            Duration::from_secs(300),
        )
    };
    // Distinct 16-feature strings: tens of MiB of shuffle.
    let text = (0..16).map(|i| format!("CAST(f{i:02} AS VARCHAR)")).collect::<Vec<_>>().join(" || ");
    let f = sql(&format!("SELECT COUNT(DISTINCT {text}) AS n FROM training.frames"));
    assert!(!f.success, "the shuffle fitted in 8 MiB: make it bigger");
    assert!(f.stderr.contains("No space left on device") && f.stderr.contains("(job "), "{}", f.stderr);
    assert_eq!(f.stdout.trim(), "", "a failed query printed rows");
    let used = run_ok(Command::new("df").arg("--output=used").arg(&shuffle_disk.0), Duration::from_secs(10));
    let used_kib: u64 = used.stdout.lines().nth(1).unwrap().trim().parse().unwrap();
    assert!(used_kib < 1024, "the failed job left {used_kib} KiB on the shuffle disk");
    let f = sql("SELECT COUNT(*) AS n FROM training.frames WHERE f00 > 0");
    assert!(f.success && f.stdout.starts_with("n\n"), "{}", f.stderr);
}

/// Executors bounded by `SENTIO_MEMORY_LIMIT` spill: an aggregation whose
/// state is over four times the limit answers as an unbounded run does, and
/// says what it spilled; a training that cannot fit says so and by how much,
/// and stores nothing.
#[test]
fn beyond_the_memory_limit_queries_spill_and_training_says_what_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    run_ok(sentio().args(["datagen", "--scale", "3", "--seed", "4", "--lake"]).arg(&lake), Duration::from_secs(300));
    let limit: u64 = 2 << 20;
    let cluster = Cluster::start(&dir.path().join("cluster"), 2, vec![("SENTIO_MEMORY_LIMIT", "2MiB".into())]);
    // One group per frame: ~300k groups of five aggregates.
    let query = "SELECT COUNT(*) AS groups, SUM(n) AS frames, CAST(SUM(m) AS DECIMAL(20, 3)) AS total FROM \
                 (SELECT session_id, frame_no, COUNT(*) AS n, MAX(f00) + MIN(f01) + AVG(f02) + MAX(f03) AS m, \
                 MAX(emotion) AS e FROM training.frames GROUP BY session_id, frame_no) g";
    let sql = |scheduler: Option<&str>, statement: &str| {
        let mut c = sentio();
        c.env_remove("SENTIO_MEMORY_LIMIT").args(["sql", "--format", "csv", "--lake"]).arg(&lake);
        if let Some(s) = scheduler {
            c.args(["--scheduler", s]);
        }
        run(c.args(["-c", statement]), Duration::from_secs(300))
    };
    let unbounded = sql(None, query);
    let bounded = sql(Some(&cluster.url()), query);
    assert!(unbounded.success && bounded.success, "{}\n{}", unbounded.stderr, bounded.stderr);
    assert_eq!(bounded.stdout, unbounded.stdout, "the same answer within the limit");
    let spilled: u64 = bounded
        .stderr
        .split(" bytes) spilled to disk")
        .next()
        .and_then(|head| head.rsplit('(').next()?.parse().ok())
        .unwrap_or_else(|| panic!("nothing spilled: {}", bounded.stderr));
    assert!(spilled >= 4 * limit, "{spilled} bytes spilled under a {limit}-byte limit");
    assert!(!unbounded.stderr.contains("spilled to disk"), "{}", unbounded.stderr);

    let train = "CREATE MODEL too_big OPTIONS (model_type = 'random_forest_classifier', input_label_cols = \
                 ['emotion'], num_parallel_tree = 4, max_tree_depth = 5) AS SELECT * EXCEPT (session_id, frame_no, \
                 subject_id, media_id, recorded_on, split) FROM training.frames";
    let refused = sql(Some(&cluster.url()), train);
    assert!(!refused.success);
    for said in ["CREATE MODEL too_big: training needs more memory", "Failed to allocate additional", "memory_limit"] {
        assert!(refused.stderr.contains(said), "{said:?} missing: {}", refused.stderr);
    }
    assert!(!lake.join("models/too_big").exists(), "nothing stored");
    cluster.stop();
}

/// `cluster.sh` refuses ports it would bind twice (the front end's on an
/// executor's) or that another process holds, before starting anything.
#[test]
fn cluster_sh_refuses_overlapping_or_busy_ports_before_starting() {
    let dir = tempfile::tempdir().unwrap();
    let base = crate::support::free_port_range(8);
    let start = |extra: &[&str]| {
        let mut c = Command::new("bash");
        c.arg(crate::support::repo_root().join("deploy/local/cluster.sh"))
            .args(["start", "--dir"])
            .arg(dir.path())
            .arg("--bin")
            .arg(crate::support::bin("sentio-scheduler").parent().unwrap())
            .args(["--executors", "2", "--scheduler-port", &base.to_string()])
            .args(["--executor-port", &(base + 1).to_string()])
            .args(extra);
        run(&mut c, Duration::from_secs(60))
    };
    let front_end = (base + 2).to_string();
    let twice = start(&["--token", "0123456789abcdef", "--flight-sql-port", &front_end]);
    assert!(!twice.success && twice.stderr.contains(&format!("port {front_end} is given twice")), "{twice:?}");
    let held = std::net::TcpListener::bind(("127.0.0.1", base + 4)).unwrap();
    let busy = start(&[]);
    assert!(!busy.success && busy.stderr.contains(&format!("port {} is already in use", base + 4)), "{busy:?}");
    drop(held);
    assert!(!dir.path().join("scheduler.log").exists(), "nothing was started");
}
