//! The `sentio sql` command line: scripts, errors with line numbers, an
//! unreachable scheduler, timeouts and signals.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{Cluster, Running, free_port, run, run_ok, sentio};

/// ~900M joined rows: far longer than any test waits on any machine.
pub(crate) const ENDLESS: &str =
    "SELECT COUNT(*) FROM training.frames a CROSS JOIN training.frames b WHERE a.f00 + b.f01 > 9";

/// The jobs that have a folder under one of `work_dirs` (an executor makes
/// one for each job it runs tasks of, named by the job id).
pub(crate) fn job_folders(work_dirs: &[std::path::PathBuf]) -> Vec<String> {
    work_dirs
        .iter()
        .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Waits until a job not in `known` has a folder under one of `work_dirs`
/// and returns its id; fails if `command` ends first or nothing comes
/// within a minute.
pub(crate) fn wait_for_job(
    command: &mut Running,
    work_dirs: impl Fn() -> Vec<std::path::PathBuf>,
    known: &[String],
) -> String {
    let started = Instant::now();
    loop {
        if let Some(job) = job_folders(&work_dirs()).into_iter().find(|j| !known.contains(j)) {
            return job;
        }
        assert!(command.running(), "the command ended before its job started");
        assert!(started.elapsed() < Duration::from_secs(60), "no job started within a minute");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The folders of in-process clusters under `tmp`.
fn standalone_dirs(tmp: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("sentio-standalone-"))
        .map(|e| e.path())
        .collect()
}

#[test]
fn script_stops_at_malformed_statement_and_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("broken.sql");
    std::fs::write(
        &script,
        "-- a script with comments\nSELECT 1 AS first;\n\n/* multi-line\n   comment */\nSELECT 2 AS second;\nSELEC 3 AS broken;\nSELECT 4 AS never_run;\n",
    )
    .unwrap();
    let f = run(sentio().args(["sql", "--format", "csv", "-f"]).arg(&script), Duration::from_secs(60));
    assert!(!f.success, "a malformed statement must fail the script");
    assert!(f.stderr.contains("broken.sql:7:"), "error must name line 7:\n{}", f.stderr);
    assert!(f.stdout.contains("first\n1\n") && f.stdout.contains("second\n2\n"), "{}", f.stdout);
    assert!(!f.stdout.contains("never_run"), "statements after the failure must not run");
}

/// Procedural statements in a script — `DECLARE`, `SET`, `IF … ELSEIF …
/// ELSE … END IF`, `ASSERT` — run the same in-process and through a
/// cluster's front end: values and conditions are queries, variables are
/// written into later statements; a failed `ASSERT` stops the script with
/// its message at its line, and nothing after it runs.
#[test]
fn scripts_declare_branch_and_assert() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("procedural.sql");
    std::fs::write(
        &script,
        "DECLARE n INT64 DEFAULT (SELECT COUNT(*) FROM (VALUES (1), (2), (3)) t(x));\n\
         DECLARE word STRING;\n\
         IF n > 2 THEN\n  SET word = 'many';\nELSEIF n > 0 THEN\n  SET word = 'few';\nELSE\n  SET word = 'none';\nEND IF;\n\
         SET n = n * 10;\n\
         SELECT word AS word, n AS n;\n\
         ASSERT (word = 'many') AS 'three rows are many';\n\
         IF word <> 'many' THEN SELECT 'wrong branch' AS oops; END IF;\n\
         ASSERT n < 0 AS 'n is negative';\n\
         SELECT 'never' AS after_the_assert;\n",
    )
    .unwrap();
    let token = "sentio-test-script-token-0123456789abcdef";
    let cluster = Cluster::start_front_end(&dir.path().join("cluster"), 1, vec![], token, &[]);
    for remote in [false, true] {
        let mut cmd = sentio();
        cmd.args(["sql", "--no-progress", "--format", "csv"]);
        if remote {
            cmd.args(["--scheduler", &cluster.flight_sql_uri(), "--token", token]);
        }
        let f = run(cmd.arg("-f").arg(&script), Duration::from_secs(120));
        assert!(!f.success, "remote {remote}: the failed ASSERT fails the script");
        assert!(f.stdout.contains("word,n\nmany,30\n"), "remote {remote}:\n{}\n{}", f.stdout, f.stderr);
        assert!(!f.stdout.contains("oops") && !f.stdout.contains("never"), "remote {remote}:\n{}", f.stdout);
        assert!(
            f.stderr.contains("procedural.sql:14: Assertion failed: n is negative"),
            "remote {remote}:\n{}",
            f.stderr
        );
    }
    cluster.stop();
    for (script, want) in [
        ("DECLARE x INT64 DEFAULT 1; ASSERT x AS 'x'", "ASSERT: the condition must be BOOLEAN, not Int64"),
        ("IF TRUE THEN SELECT 1;", "IF without END IF"),
        ("SELECT 1; DECLARE y INT64;", "DECLARE must come before"),
        ("DECLARE z INT64 DEFAULT 'many';", "<command line>:1:"),
    ] {
        let f = run(sentio().args(["sql", "--no-progress", "-c", script]), Duration::from_secs(60));
        assert!(!f.success && f.stderr.contains(want), "{script}: expected {want:?} in\n{}", f.stderr);
    }
}

#[test]
fn unknown_table_names_the_line_of_its_statement() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("unknown.sql");
    std::fs::write(&script, "SELECT 1;\n\nSELECT *\nFROM no_such_table;\n").unwrap();
    let f = run(sentio().args(["sql", "-f"]).arg(&script), Duration::from_secs(60));
    assert!(!f.success);
    assert!(f.stderr.contains("unknown.sql:3:"), "{}", f.stderr);
    assert!(f.stderr.contains("no_such_table"), "{}", f.stderr);
}

/// An error raised in a cluster task — a value that does not cast — reaches
/// the analyst as its message with the job and stage it came from, once,
/// not as Ballista's debug dump of nested error wrappers, and not repeated
/// by the in-process scheduler's log.
#[test]
fn a_failing_task_says_its_error_plainly() {
    let f = run(
        sentio().args(["sql", "-c", "SELECT CAST(CAST(value AS VARCHAR) || 'x' AS INT) FROM generate_series(1, 10)"]),
        Duration::from_secs(60),
    );
    assert!(!f.success);
    let said = "error: <command line>:1: Arrow error: Cast error: Cannot cast string '1x' to value of Int32 type (job ";
    assert!(f.stderr.contains(said), "{}", f.stderr);
    assert!(f.stderr.contains(", stage 1)"), "{}", f.stderr);
    assert_eq!(f.stderr.matches("Cannot cast").count(), 1, "{}", f.stderr);
    assert!(!f.stderr.contains("DataFusionError(") && !f.stderr.contains("Shared("), "{}", f.stderr);
}

/// A plan over the scheduler's 16 MiB message limit (a function of constants
/// folded into a 2.2M-element list) is named as such, with the table function
/// that does the same; that one runs.
#[test]
fn a_plan_too_large_to_send_is_explained() {
    let f = run(
        sentio().args(["sql", "-c", "SELECT COUNT(*) FROM (SELECT unnest(range(1, 2200000)))"]),
        Duration::from_secs(120),
    );
    assert!(!f.success);
    assert!(
        f.stderr.contains("MiB once encoded, more than the 16.0 MiB the scheduler accepts in one message"),
        "{}",
        f.stderr
    );
    assert!(f.stderr.contains("SELECT value FROM range("), "{}", f.stderr);
    let f = run_ok(
        sentio().args(["sql", "--format", "csv", "-c", "SELECT COUNT(*) AS n FROM range(1, 2200000)"]),
        Duration::from_secs(60),
    );
    assert_eq!(f.stdout, "n\n2199999\n");
}

#[test]
fn formats_and_network_summary() {
    let f = run_ok(
        sentio().args([
            "sql",
            "--format",
            "json",
            "-c",
            "SELECT * FROM (VALUES (1, 'x'), (2, 'y')) AS t(a, b) ORDER BY a",
        ]),
        Duration::from_secs(60),
    );
    let rows: serde_json::Value = serde_json::from_str(f.stdout.trim()).unwrap();
    assert_eq!(rows, serde_json::json!([{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]));
    assert!(f.stderr.contains("2 rows in"), "{}", f.stderr);
    assert!(f.stderr.contains("received from the cluster"), "{}", f.stderr);
}

#[test]
fn unreachable_scheduler_fails_clearly_within_10_s() {
    let port = free_port(); // nothing listens here
    let f = run(
        sentio().args(["sql", "--scheduler", &format!("df://127.0.0.1:{port}"), "-c", "SELECT 1"]),
        Duration::from_secs(30),
    );
    assert!(!f.success);
    assert!(f.elapsed < Duration::from_secs(10), "took {:?}", f.elapsed);
    assert!(f.stderr.contains("cannot reach the Sentio scheduler"), "{}", f.stderr);
}

#[test]
fn bad_scheduler_url_and_missing_lake_are_explained() {
    let f = run(sentio().args(["sql", "--scheduler", "http://x:1", "-c", "SELECT 1"]), Duration::from_secs(30));
    assert!(!f.success && f.stderr.contains("must start with df://"), "{}", f.stderr);
    let f = run(sentio().args(["datagen"]), Duration::from_secs(30));
    assert!(!f.success && f.stderr.contains("no lake configured"), "{}", f.stderr);
    for duty in ["0", "1.5", "half"] {
        let f =
            run(sentio().env("SENTIO_OPDB_BULK_DUTY", duty).args(["sql", "-c", "SELECT 1"]), Duration::from_secs(30));
        assert!(!f.success && f.stderr.contains("SENTIO_OPDB_BULK_DUTY"), "{duty}: {}", f.stderr);
        assert!(f.stderr.contains("(0, 1]"), "{duty}: {}", f.stderr);
    }
}

#[test]
fn prompt_runs_multi_line_statements_until_quit() {
    let home = tempfile::tempdir().unwrap();
    let f = crate::support::run_input(
        sentio().env("HOME", home.path()).args(["sql", "--format", "csv"]),
        Some("SELECT\n  40 + 2\n  AS answer;\nSELECT 'second' AS s;\n\\q\nSELECT 'after quit';\n"),
        Duration::from_secs(60),
    );
    assert!(f.success, "{}", f.stderr);
    assert!(f.stdout.contains("answer\n42\n"), "{}", f.stdout);
    assert!(f.stdout.contains("s\nsecond\n"), "{}", f.stdout);
    assert!(!f.stdout.contains("after quit"), "{}", f.stdout);
    let history = std::fs::read_to_string(home.path().join(".sentio_history")).unwrap_or_default();
    assert!(history.contains("40 + 2"), "history not saved: {history:?}");
}

#[test]
fn create_external_table_still_works() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("people.csv");
    std::fs::write(&csv, "name,age\nada,36\nalan,41\n").unwrap();
    let sql = format!(
        "CREATE EXTERNAL TABLE people STORED AS CSV LOCATION '{}' OPTIONS ('format.has_header' 'true');\n\
         SELECT SUM(age) AS total FROM people;",
        csv.display()
    );
    let f = run_ok(sentio().args(["sql", "--format", "csv", "-c", &sql]), Duration::from_secs(60));
    assert!(f.stdout.contains("total\n77\n"), "{}\n{}", f.stdout, f.stderr);
}

#[test]
fn config_file_then_environment_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    let (lake_a, lake_b) = (dir.path().join("a"), dir.path().join("b"));
    for (lake, n) in [(&lake_a, "1"), (&lake_b, "2")] {
        std::fs::create_dir_all(lake.join("adhoc")).unwrap();
        std::fs::write(lake.join("adhoc/marker.csv"), format!("which\n{n}\n")).unwrap();
    }
    let cwd = dir.path().join("work");
    std::fs::create_dir_all(&cwd).unwrap();
    std::fs::write(cwd.join("sentio.toml"), format!("lake = {:?}\n", lake_a.display().to_string())).unwrap();
    let q = ["sql", "--format", "csv", "-c", "SELECT which FROM adhoc.marker"];

    let from_file = run_ok(sentio().current_dir(&cwd).args(q), Duration::from_secs(60));
    assert_eq!(from_file.stdout.trim(), "which\n1");
    let from_env = run_ok(sentio().current_dir(&cwd).env("SENTIO_LAKE", &lake_b).args(q), Duration::from_secs(60));
    assert_eq!(from_env.stdout.trim(), "which\n2");
    let from_flag = run_ok(
        sentio().current_dir(&cwd).env("SENTIO_LAKE", &lake_b).arg("--lake").arg(&lake_a).args(q),
        Duration::from_secs(60),
    );
    assert_eq!(from_flag.stdout.trim(), "which\n1");

    std::fs::write(cwd.join("sentio.toml"), "lake = 3\n").unwrap();
    let bad = run(sentio().current_dir(&cwd).args(q), Duration::from_secs(60));
    assert!(!bad.success && bad.stderr.contains("sentio.toml"), "{}", bad.stderr);
}

/// Python's own sqlite3 client on `db`: rows as `a|b|…` lines.
fn sqlite(db: &std::path::Path, sql: &str) -> String {
    let script =
        "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nfor r in c.execute(sys.argv[2]): print(*r, sep='|')\n";
    run_ok(Command::new("python3").args(["-c", script]).arg(db).arg(sql), Duration::from_secs(60)).stdout
}

#[test]
fn demo_runs_the_five_workflows_on_the_embedded_default() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sentio-data");
    let f = run_ok(
        sentio().arg("demo").arg("--dir").arg(&data).args(["--scale", "0.3", "--format", "csv"]),
        Duration::from_secs(900),
    );
    assert!(f.stderr.contains("demo: creating sample data"), "{}", f.stderr);
    let db = data.join("opdb.sqlite");
    assert!(data.join("lake/training/frames").is_dir() && db.is_file());
    for script in
        ["01_train_emotion", "02_validate_emotion", "03_train_media", "04_cross_validate_media", "05_statistics"]
    {
        assert!(f.stdout.contains(&format!("=== examples/{script}.sql ===")), "{script} did not run:\n{}", f.stdout);
    }
    // 1-3: two models trained, the emotion model validated on the test split.
    assert!(f.stdout.contains("emotion_rf,1,created,random_forest_classifier"), "{}", f.stdout);
    assert!(f.stdout.contains("media_hit,1,created,random_forest_classifier"), "{}", f.stdout);
    assert!(f.stdout.contains("expected_label,angry,happy,sad"), "{}", f.stdout);
    // 5: class balance per split, the hit/miss emotion shares of the join,
    // the operational DB described.
    assert!(f.stdout.contains("split,emotion,frames,pct"), "{}", f.stdout);
    assert!(f.stdout.contains("outcome,emotion,frames,pct"), "{}", f.stdout);
    for needle in
        ["train,happy,", "test,sad,", "hit,angry,", "miss,happy,", "name,num_rows,num_nulls,unique,min,max,top_values"]
    {
        assert!(f.stdout.contains(needle), "missing {needle}:\n{}", f.stdout);
    }

    // 2: one row per test frame in emotion_outputs, read with SQLite's own client.
    let lake = data.join("lake");
    let frames = run_ok(
        sentio()
            .args(["sql", "--format", "csv", "--lake"])
            .arg(&lake)
            .args(["-c", "SELECT COUNT(*) AS n FROM training.frames WHERE split = 'test'"]),
        Duration::from_secs(60),
    );
    let n_test: u64 = frames.stdout.lines().nth(1).unwrap().parse().unwrap();
    let outputs = |where_: &str| {
        sqlite(
            &db,
            &format!(
                "SELECT COUNT(*), COUNT(DISTINCT session_id || '-' || frame_no), MIN(confidence) >= 1.0 / 3, \
                 MAX(confidence) <= 1, group_concat(DISTINCT label) FROM emotion_outputs WHERE {where_}"
            ),
        )
    };
    let v1 = outputs("run_id = 'emotion_rf@1/test' AND model = 'emotion_rf' AND version = 1");
    let cols: Vec<&str> = v1.trim().split('|').collect();
    assert_eq!(&cols[..4], [n_test.to_string().as_str(), &n_test.to_string(), "1", "1"], "{v1}");
    let mut labels: Vec<&str> = cols[4].split(',').collect();
    labels.sort();
    assert_eq!(labels, ["angry", "happy", "sad"], "{v1}");
    assert_eq!(sqlite(&db, "SELECT COUNT(*) FROM emotion_outputs").trim(), n_test.to_string());

    // 4: five folds and their mean and standard deviation, six metrics each.
    let cv = |extra: &str| {
        sqlite(
            &db,
            &format!(
                "SELECT COUNT(*), COUNT(DISTINCT run_id), group_concat(DISTINCT fold) {extra} FROM media_cv_results WHERE model = 'media_hit'"
            ),
        )
    };
    let first = cv(", MIN(value) >= 0, MAX(CASE WHEN fold = 'mean' AND metric = 'accuracy' THEN value END)");
    let c: Vec<&str> = first.trim().split('|').collect();
    assert_eq!(&c[..4], ["42", "1", "1,2,3,4,5,mean,stddev", "1"], "{first}");
    let accuracy: f64 = c[4].parse().unwrap();
    // At scale 0.3 there are ~43 media items, folds of ~9: the mean accuracy
    // is 0.50 on this seed (0.66 at the demo's default scale, 143 items).
    // It is the same every run (ml::aggregated_features_give_the_same_model_
    // and_cross_validation_every_run checks that exactly); how good the
    // algorithms are is checked against scikit-learn in ml.rs.
    assert!((0.0..=1.0).contains(&accuracy), "mean cross-validated accuracy {accuracy}");
    eprintln!("mean cross-validated accuracy of media_hit: {accuracy}");

    // The report: every chart present, rendered by headless Chromium.
    let report = data.join("report.html");
    assert!(
        f.stdout.contains(&format!(
            "report (class balance, confusion matrices, cross-validation, feature importance): {}",
            report.display()
        )),
        "{}",
        f.stdout
    );
    let shot = dir.path().join("report.png");
    let chromium = |args: &[&str]| {
        run_ok(
            Command::new("chromium")
                .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1200,3000"])
                .args(args)
                .arg(format!("file://{}", report.display())),
            Duration::from_secs(120),
        )
    };
    let dom = chromium(&["--dump-dom"]).stdout;
    for id in [
        "class-balance-emotion_rf",
        "confusion-matrix-emotion_rf",
        "feature-importance-emotion_rf",
        "class-balance-media_hit",
        "confusion-matrix-media_hit",
        "cross-validation-media_hit",
        "feature-importance-media_hit",
    ] {
        let at = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no chart {id} in the rendered page"));
        let figure = &dom[at..at + dom[at..].find("</figure>").unwrap()];
        assert!(figure.contains("<svg") && figure.contains("<rect"), "chart {id} has no drawing: {figure}");
    }
    chromium(&[&format!("--screenshot={}", shot.display())]);
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "screenshot of {} bytes", png.len());
    eprintln!("report rendered: {} ({} bytes)", shot.display(), png.len());
    // One model, a pinned version; an unknown one is a clear error.
    let sql_args = |extra: &[&str]| {
        let mut c = sentio();
        c.arg("report").args(extra).arg("--lake").arg(&lake).arg("--opdb").arg(format!("sqlite:{}", db.display()));
        c
    };
    let one = dir.path().join("one.html");
    run_ok(&mut sql_args(&["emotion_rf@1", "--out", one.to_str().unwrap()]), Duration::from_secs(300));
    assert!(std::fs::read_to_string(&one).unwrap().contains("emotion_rf <small>version 1"));
    let bad = run(&mut sql_args(&["nosuch"]), Duration::from_secs(120));
    assert!(!bad.success && bad.stderr.contains("unknown model nosuch"), "{}", bad.stderr);

    // A second run reuses the data, trains version 2 of each model and adds
    // its outputs and cross-validation beside the first run's (one copy each).
    let again =
        run_ok(sentio().arg("demo").arg("--dir").arg(&data).args(["--format", "csv"]), Duration::from_secs(900));
    assert!(again.stderr.contains("demo: using the sample data"), "{}", again.stderr);
    assert!(again.stdout.contains("emotion_rf,2,created"), "{}", again.stdout);
    assert_eq!(
        outputs("version = 2 AND run_id = 'emotion_rf@2/test'").trim().split('|').next(),
        Some(n_test.to_string().as_str())
    );
    assert_eq!(sqlite(&db, "SELECT COUNT(*) FROM emotion_outputs").trim(), (2 * n_test).to_string());
    assert!(cv("").starts_with("84|2|"), "{}", cv(""));
}

#[test]
fn timeout_cancels_a_long_statement() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    run_ok(sentio().args(["datagen", "--scale", "0.3", "--seed", "1", "--lake"]).arg(&lake), Duration::from_secs(120));
    let f = run(
        sentio().args(["sql", "--timeout", "3", "--lake"]).arg(&lake).args(["-c", ENDLESS]),
        Duration::from_secs(60),
    );
    assert!(!f.success);
    assert!(f.stderr.contains("statement timed out after 3 s"), "{}", f.stderr);
    assert!(f.stderr.contains("cancelled"), "{}", f.stderr);
    assert!(f.elapsed < Duration::from_secs(30), "{:?}", f.elapsed);
    assert!(!f.stderr.contains("running ·"), "no progress line without a terminal");

    // On a terminal (script(1) provides one) a live progress line shows the
    // job's state and the elapsed time while it runs.
    let command = format!(
        "{} sql --timeout 3 --lake '{}' -c '{}'",
        crate::support::bin("sentio").display(),
        lake.display(),
        ENDLESS
    );
    let tty = run(Command::new("script").args(["-qec", &command, "/dev/null"]), Duration::from_secs(60));
    assert!(tty.stdout.contains(": running · "), "{}", tty.stdout);
    assert!(tty.stdout.contains("\x1b[2K  job "), "{}", tty.stdout);
    assert!(tty.stdout.contains("statement timed out"), "{}", tty.stdout);
}

/// Ctrl-C (SIGINT), SIGTERM or SIGHUP during a statement cancels its job and
/// ends `sentio sql -c` with 130, 143 or 129, removing the in-process cluster's
/// folder; at the prompt, Ctrl-C cancels the statement and the prompt takes
/// the next one.
#[test]
fn a_signal_cancels_the_running_statement() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    run_ok(sentio().args(["datagen", "--scale", "0.3", "--seed", "1", "--lake"]).arg(&lake), Duration::from_secs(120));
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let jobs = || standalone_dirs(&tmp);

    for (signal, code, name) in [("INT", 130, "Ctrl-C (SIGINT)"), ("TERM", 143, "SIGTERM"), ("HUP", 129, "SIGHUP")] {
        let mut cmd = sentio();
        cmd.env("TMPDIR", &tmp).args(["sql", "--lake"]).arg(&lake).args(["-c", ENDLESS]);
        let mut command = Running::start(&mut cmd, false);
        let job = wait_for_job(&mut command, jobs, &[]);
        command.signal(signal);
        let f = command.finish(Duration::from_secs(60));
        assert_eq!(f.code, Some(code), "{signal}: {}", f.stderr);
        assert!(f.stderr.contains(&format!("error: interrupted by {name} (job {job} cancelled)")), "{}", f.stderr);
        assert!(f.elapsed < Duration::from_secs(30), "{:?}", f.elapsed);
        assert!(standalone_dirs(&tmp).is_empty(), "left behind: {:?}", standalone_dirs(&tmp));
    }

    let mut cmd = sentio();
    cmd.env("TMPDIR", &tmp).args(["sql", "--format", "csv", "--lake"]).arg(&lake);
    let mut prompt = Running::start(&mut cmd, true);
    prompt.write(&format!("{ENDLESS};\n"));
    let job = wait_for_job(&mut prompt, jobs, &[]);
    prompt.signal("INT");
    prompt.write("SELECT 40 + 2 AS answer;\n");
    let f = prompt.finish(Duration::from_secs(120));
    assert!(f.success, "{}", f.stderr);
    assert!(f.stderr.contains(&format!("error: interrupted by Ctrl-C (SIGINT) (job {job} cancelled)")), "{}", f.stderr);
    assert!(f.stdout.contains("answer\n42\n"), "{}", f.stdout);
    assert!(standalone_dirs(&tmp).is_empty(), "left behind: {:?}", standalone_dirs(&tmp));
}

/// Corrupt files in the lake: each error names the file, and one bad table
/// does not take the others with it. A Parquet file that is not the first
/// of its table (the one its schema comes from) fails the queries that read
/// it, naming it; a CSV with a malformed row leaves its table out, with a
/// warning naming the file and line, while the Parquet tables answer.
#[test]
fn corrupt_lake_files_are_named_and_leave_the_other_tables_usable() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    run_ok(sentio().args(["datagen", "--scale", "0.05", "--seed", "2", "--lake"]).arg(&lake), Duration::from_secs(300));
    let sql = |statement: &str| {
        run(
            sentio().args(["sql", "--no-progress", "--format", "csv", "--lake"]).arg(&lake).args(["-c", statement]),
            Duration::from_secs(120),
        )
    };
    let frames = sql("SELECT COUNT(*) AS n FROM training.frames WHERE f00 > 0");
    assert!(frames.success, "{}", frames.stderr);

    std::fs::write(lake.join("training/frames/part-00001.parquet"), b"not a parquet file at all").unwrap();
    let f = sql("SELECT COUNT(*) AS n FROM training.frames WHERE f00 > 0");
    assert!(!f.success && f.stderr.contains("training/frames/part-00001.parquet"), "{}", f.stderr);
    assert_eq!(f.stdout.trim(), "");

    let csv = lake.join("adhoc/media_ground_truth.csv");
    let mut text = std::fs::read_to_string(&csv).unwrap();
    text.push_str("1,2,3,4,5,6\n");
    std::fs::write(&csv, text).unwrap();
    std::fs::remove_file(lake.join("training/frames/part-00001.parquet")).unwrap();
    let f = sql("SELECT COUNT(*) AS n FROM training.frames WHERE f00 > 0");
    assert!(f.success, "{}", f.stderr);
    assert!(
        f.stderr.contains("warning: adhoc.media_ground_truth is not available")
            && f.stderr.contains("media_ground_truth.csv"),
        "{}",
        f.stderr
    );
    let f = sql("SELECT COUNT(*) AS n FROM adhoc.media_ground_truth");
    assert!(!f.success && f.stderr.contains("media_ground_truth.csv"), "{}", f.stderr);
}
