//! The Flight SQL front end on the scheduler, driven by a client written
//! elsewhere (the Python ADBC driver) against a 1 + 2 cluster on an S3 lake
//! with a PostgreSQL operational DB: the same rows as `sentio sql`, the
//! catalogs a BI tool browses, authentication and roles, separate sessions,
//! prepared statements, cancelling; and the five analyst workflows —
//! `examples/*.sql`, unchanged — run by a workstation that holds no data
//! credentials, their writes checked with `psql`; and the front end fuzzed.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::opdb::{Db, Kind};
use crate::support::{Cluster, Relay, Running, S3Server, bin, cpus_used, repo_root, run_ok, sentio};

const STATS: &str = "SELECT LOWER(g.outcome) AS outcome, f.split, COUNT(*) AS frames, \
     COUNT(DISTINCT f.session_id) AS sessions \
     FROM training.frames f JOIN adhoc.media_ground_truth g ON f.media_id = g.media_id \
     WHERE g.outcome IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2";

const TRAIN: &str = "CREATE MODEL fe_rf OPTIONS (model_type = 'random_forest_classifier', \
     input_label_cols = ['emotion'], num_parallel_tree = 5, max_tree_depth = 6, seed = 7) \
     AS SELECT f00, f01, f02, f03, f04, f05, f06, f07, emotion FROM training.frames WHERE split = 'train'";

const PREDICT: &str = "SELECT session_id, frame_no, predicted_emotion FROM ML.PREDICT(MODEL fe_rf, \
     (SELECT session_id, frame_no, f00, f01, f02, f03, f04, f05, f06, f07 FROM training.frames \
      WHERE split = 'test' ORDER BY session_id, frame_no LIMIT 300)) ORDER BY session_id, frame_no";

/// A forest of 100 trees: a model payload of megabytes.
const FOREST: &str = "CREATE MODEL fe_forest OPTIONS (model_type = 'random_forest_classifier', \
     input_label_cols = ['emotion'], num_parallel_tree = 100, max_tree_depth = 10, seed = 3) \
     AS SELECT f00, f01, f02, f03, f04, f05, f06, f07, emotion FROM training.frames WHERE split = 'train'";

/// Reads the ad hoc CSV file only.
const CSV_ONLY: &str = "SELECT COUNT(*) AS n FROM adhoc.media_ground_truth";

/// Days of work for one executor.
const ENDLESS_SERIES: &str = "SELECT COUNT(*) FROM generate_series(1, 100000000000) WHERE value % 7 = 3";

const TEN_MIN: Duration = Duration::from_secs(600);

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

/// Runs `steps` on one ADBC connection to `uri` with `auth` (a JSON object
/// with `token`, or `user` and `password`, or nothing); one result per step.
fn adbc(uri: &str, auth: Value, steps: &[Value]) -> Vec<Value> {
    let mut spec = auth;
    spec["uri"] = uri.into();
    spec["steps"] = steps.to_vec().into();
    let python = repo_root().join(".venv/bin/python");
    let script = repo_root().join("tests/adbc_client.py");
    let out = run_ok(Command::new(python).arg(script).arg(spec.to_string()), Duration::from_secs(600));
    out.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn sql(s: &str) -> Value {
    serde_json::json!({ "sql": s })
}

fn rows(v: &Value) -> &Vec<Value> {
    v["rows"].as_array().unwrap_or_else(|| panic!("expected rows, got {v}"))
}

fn error(v: &Value) -> &str {
    v["error"].as_str().unwrap_or_else(|| panic!("expected an error, got {v}"))
}

/// A `[[user]]` or `[[token]]` entry made by `sentio auth` (stdout), and
/// what it said on stderr (a new token).
fn entry(args: &[&str], password: Option<&str>) -> (String, String) {
    let mut c = sentio();
    c.arg("auth").args(args);
    if let Some(p) = password {
        c.env("SENTIO_PASSWORD", p);
    }
    let made = run_ok(&mut c, Duration::from_secs(60));
    (made.stdout, made.stderr)
}

/// The token `sentio auth new-token` showed; the entry does not hold it.
fn token_of((entry, said): &(String, String)) -> String {
    let token = said.split_whitespace().last().unwrap().to_string();
    assert!(token.starts_with("sentio_") && !entry.contains(&token), "{entry}\n{said}");
    token
}

#[test]
fn adbc_clients_query_the_cluster_through_the_front_end() {
    let s3 = S3Server::start("sentio-fe");
    let lake = "s3://sentio-fe/lake";
    let db = Db::fresh(Kind::Pg, "sentio_frontend");
    run_ok(
        sentio().envs(s3.env()).args(["datagen", "--scale", "0.3", "--seed", "5", "--lake", lake, "--opdb", &db.url()]),
        Duration::from_secs(300),
    );
    db.client("CREATE TABLE fe_notes (id BIGINT PRIMARY KEY, note TEXT NOT NULL)");
    let reader_entry = entry(&["new-token", "--name", "dashboards", "--role", "reader"], None);
    let (ana, _) = entry(&["hash-password", "--name", "ana", "--role", "analyst"], Some("ana's secret"));
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("more-users.toml");
    std::fs::write(&users, format!("{}\n{ana}", reader_entry.0)).unwrap();
    let analyst_token = "sentio-test-analyst-token-0123456789";
    let mut env = s3.env();
    env.push(("SENTIO_LAKE", lake.into()));
    env.push(("SENTIO_OPDB_URL", db.url()));
    let users = users.to_str().unwrap();
    let cluster = Cluster::start_front_end(&dir.path().join("cluster"), 2, env, analyst_token, &["--users", users]);
    let uri = cluster.flight_sql_uri();
    let analyst = serde_json::json!({ "token": analyst_token });

    // The same rows as `sentio sql`, and a model trained and applied on the
    // cluster side.
    let via_cli = |statement: &str| -> Vec<Value> {
        let out = run_ok(
            sentio()
                .envs(s3.env())
                .args(["sql", "--scheduler", &cluster.url(), "--lake", lake, "--opdb", &db.url()])
                .args(["--format", "json", "-c", statement]),
            Duration::from_secs(300),
        );
        serde_json::from_str(&out.stdout).unwrap()
    };
    let r = adbc(
        &uri,
        analyst.clone(),
        &[
            sql(STATS),
            sql(TRAIN),
            sql(PREDICT),
            sql("DESCRIBE training.frames"),
            sql("SHOW TABLES"),
            sql("SHOW COLUMNS FROM adhoc.media_ground_truth"),
            sql("EXPLAIN SELECT COUNT(*) FROM training.frames"),
            sql(CSV_ONLY),
            sql(
                "SELECT value FROM information_schema.df_settings WHERE name = 'datafusion.execution.target_partitions'",
            ),
        ],
    );
    // Its sessions plan with two partitions per task slot of the executors
    // (2 x 2 vcores; the CLI's df:// session keeps Ballista's 16), and answer
    // as the CLI does (above and below).
    assert_eq!(rows(&r[8]), &[serde_json::json!({ "value": "8" })], "{:?}", r[8]);
    assert_eq!(rows(&r[0]), &via_cli(STATS), "statistics through ADBC and through sentio sql");
    assert_eq!(rows(&r[0]).len(), 4, "2 outcomes x 2 splits: {:?}", r[0]);
    assert_eq!(rows(&r[1]).len(), 1, "CREATE MODEL answers one row: {:?}", r[1]);
    assert_eq!(rows(&r[2]).len(), 300);
    assert_eq!(rows(&r[2]), &via_cli(PREDICT), "ML.PREDICT through ADBC and through sentio sql");
    // DESCRIBE needs no cluster job (Ballista cannot send its plan).
    let described = rows(&r[3]);
    assert!(described.iter().any(|c| c["column_name"] == "emotion" && c["data_type"] == "Utf8View"), "{described:?}");
    // Every statement an analyst types works the same way through it.
    assert!(rows(&r[4]).iter().any(|t| t["table_schema"] == "opdb" && t["table_name"] == "sessions"), "{:?}", r[4]);
    assert!(rows(&r[5]).iter().any(|c| c["column_name"] == "outcome"), "{:?}", r[5]);
    assert!(rows(&r[6]).iter().any(|p| p["plan_type"] == "physical_plan"), "{:?}", r[6]);

    // What a BI tool browses: every catalog's tables.
    let objects = &adbc(&uri, analyst.clone(), &[serde_json::json!({ "objects": true })])[0]["objects"];
    // The zones are schemas of the default catalog, as in SQL (`training.frames`).
    let zones = &objects["datafusion"];
    for (schema, table) in
        [("training", "frames"), ("adhoc", "media_ground_truth"), ("opdb", "sessions"), ("ml", "models")]
    {
        let tables = zones[schema].as_array().unwrap_or_else(|| panic!("{schema}: {objects}"));
        assert!(tables.iter().any(|t| t == table), "{schema} lacks {table}: {objects}");
    }
    assert!(zones.get("extracts").is_some(), "{objects}");

    // Authentication: nothing, a wrong token, a wrong password are refused;
    // the password user gets in.
    let none = adbc(&uri, serde_json::json!({}), &[sql("SELECT 1 AS one")]);
    assert!(error(&none[0]).contains("no credentials"), "{none:?}");
    let wrong = adbc(&uri, serde_json::json!({ "token": "sentio_not-a-token" }), &[sql("SELECT 1 AS one")]);
    assert!(error(&wrong[0]).contains("unknown or revoked token"), "{wrong:?}");
    let bad = adbc(&uri, serde_json::json!({ "user": "ana", "password": "guess" }), &[sql("SELECT 1 AS one")]);
    assert!(error(&bad[0]).contains("wrong password"), "{bad:?}");
    let good = adbc(&uri, serde_json::json!({ "user": "ana", "password": "ana's secret" }), &[sql("SELECT 2 AS two")]);
    assert_eq!(rows(&good[0]), &vec![serde_json::json!({ "two": 2 })]);

    // 200 failed logins of one user (another process, 4 at a time) do not
    // slow a good client's statements: after the first few, the rest are
    // refused without a password check.
    let statement = "SELECT COUNT(*) AS n FROM ml.models";
    let timed = |flood: bool| -> Value {
        let mut step = serde_json::json!({ "timed": statement, "n": 30 });
        if flood {
            step["flood"] = serde_json::json!({ "user": "ana", "password": "guess", "logins": 200 });
        }
        adbc(&uri, analyst.clone(), &[step]).remove(0)
    };
    let median = |v: &Value| {
        let mut s: Vec<f64> = v["seconds"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        s.sort_by(f64::total_cmp);
        s[s.len() / 2]
    };
    let (quiet, flooded) = (timed(false), timed(true));
    let refusals = &flooded["refusals"];
    println!(
        "200 failed logins: {refusals}; statement median {:.3} s quiet, {:.3} s meanwhile",
        median(&quiet),
        median(&flooded)
    );
    assert_eq!(refusals["logged in"], Value::Null, "{refusals}");
    let unchecked = refusals["too many failed logins"].as_u64().unwrap_or(0);
    assert!(unchecked >= 150 && unchecked + refusals["wrong password"].as_u64().unwrap_or(0) == 200, "{refusals}");
    // The flooding client shares the machine's two cores: with statements
    // of ~40 ms quiet (no fixed waits left in them since 2026-12-06), it
    // took them to 70–75 ms. A password check per login (argon2, tens of
    // milliseconds of CPU each, 200 of them) would hold the cores for seconds
    // and take the statements far past this.
    assert!(median(&flooded) <= median(&quiet) * 2.0 + 0.03, "quiet {quiet}, during the logins {flooded}");

    // A reader queries, and is refused everything that changes something —
    // before any work is done.
    let reader_token = token_of(&reader_entry);
    let reader = serde_json::json!({ "token": reader_token });
    let r = adbc(
        &uri,
        reader,
        &[
            sql("SELECT COUNT(*) AS n FROM opdb.sessions"),
            sql(&TRAIN.replace("fe_rf", "fe_reader")),
            sql("DROP MODEL fe_rf"),
            sql("INSERT INTO opdb.sessions SELECT * FROM opdb.sessions LIMIT 1"),
            sql("CREATE TABLE extracts.reader_copy AS SELECT * FROM opdb.sessions"),
            sql("SELECT COUNT(*) AS n FROM ml.models WHERE name IN ('fe_reader', 'fe_rf')"),
        ],
    );
    let sessions = rows(&r[0])[0]["n"].as_i64().unwrap();
    for (i, what) in [(1, "CREATE MODEL"), (2, "DROP MODEL"), (3, "a write"), (4, "an extract")] {
        let e = error(&r[i]);
        assert!(e.contains("PERMISSION_DENIED") || e.contains("ermission"), "{what}: {e}");
        assert!(e.contains(what) && e.contains("reader"), "{what}: {e}");
    }
    assert_eq!(rows(&r[5]), &vec![serde_json::json!({ "n": 1 })], "only fe_rf exists");
    assert_eq!(db.client("SELECT COUNT(*) FROM sessions").parse::<i64>().unwrap(), sessions, "no row written");

    // Who ran what: every statement with its user and how it ended.
    let log = adbc(
        &uri,
        analyst.clone(),
        &[sql("SELECT user_name, status, statement, rows_returned, bytes_returned, bytes_scanned, error \
               FROM system.statements ORDER BY statement_id")],
    );
    let log = rows(&log[0]);
    let stats = log.iter().find(|r| r["statement"] == STATS).unwrap_or_else(|| panic!("{log:?}"));
    assert_eq!(
        (&stats["user_name"], &stats["status"], &stats["rows_returned"]),
        (&"cluster-sh".into(), &"ok".into(), &4.into())
    );
    assert!(stats["bytes_returned"].as_u64().unwrap() > 0 && stats["bytes_scanned"].as_u64().unwrap() > 0, "{stats}");
    let refused = log.iter().find(|r| r["statement"] == "DROP MODEL fe_rf").unwrap_or_else(|| panic!("{log:?}"));
    assert_eq!((&refused["user_name"], &refused["status"]), (&"dashboards".into(), &"refused".into()));
    assert!(refused["error"].as_str().unwrap().contains("reader role"), "{refused}");
    assert!(log.iter().any(|r| r["user_name"] == "ana"), "{log:?}");
    // A scan of a CSV file counts its bytes too.
    let csv = log.iter().find(|r| r["statement"] == CSV_ONLY).unwrap_or_else(|| panic!("{log:?}"));
    assert!(csv["bytes_scanned"].as_u64().unwrap() > 1000, "{csv}");

    // Prepared statements: parameters bound to a query, a write run once per
    // row of parameters (its rows read back with psql), and a query's
    // parameters that do not fit it refused.
    let counted = "SELECT COUNT(*) AS n FROM training.frames WHERE split = 'test' AND frame_no < 5";
    let r = adbc(
        &uri,
        analyst.clone(),
        &[
            serde_json::json!({ "sql": counted.replace("'test'", "$1").replace("< 5", "< $2"), "params": ["test", 5] }),
            sql(counted),
            serde_json::json!({ "executemany": "INSERT INTO opdb.fe_notes VALUES ($1, $2)",
                                "rows": [[1, "one"], [2, "two"], [3, "three"]] }),
            serde_json::json!({ "sql": "SELECT $1 + 1 AS next", "params": ["not a number"] }),
        ],
    );
    assert_eq!(rows(&r[0]), rows(&r[1]), "bound parameters and literals: {r:?}");
    assert!(rows(&r[1])[0]["n"].as_i64().unwrap() > 0, "{r:?}");
    assert_eq!(r[2]["rowcount"], 3, "{r:?}");
    assert_eq!(db.client("SELECT string_agg(note, ',' ORDER BY id) FROM fe_notes"), "one,two,three");
    error(&r[3]);

    // What BI tools ask about the server: its SQL and its types.
    let r =
        adbc(&uri, analyst.clone(), &[serde_json::json!({ "info": true }), serde_json::json!({ "type_info": true })]);
    assert_eq!(r[0]["info"]["vendor_name"], "Sentio", "{r:?}");
    let types: Vec<&str> = rows(&r[1]).iter().filter_map(|t| t["type_name"].as_str()).collect();
    for t in ["BIGINT", "DOUBLE", "VARCHAR", "DATE", "TIMESTAMP", "BOOLEAN"] {
        assert!(types.contains(&t), "{t} is not in the type info: {types:?}");
    }

    // Flight's CancelFlightInfo: a result not yet fetched is dropped; a
    // statement being fetched has its job cancelled (the endless count
    // would otherwise never answer) and the executors go idle.
    let r = adbc(
        &uri,
        analyst.clone(),
        &[
            serde_json::json!({ "cancel": "SELECT 1 AS one", "fetch": false }),
            serde_json::json!({ "cancel": ENDLESS_SERIES, "fetch": true, "wait_s": 3 }),
        ],
    );
    assert_eq!(r[0]["status"], 1, "CANCEL_STATUS_CANCELLED: {r:?}");
    assert!(r[0]["fetch"].as_str().unwrap().contains("no such result"), "{r:?}");
    assert_eq!(r[1]["status"], 1, "CANCEL_STATUS_CANCELLED: {r:?}");
    assert!(r[1]["fetch"].as_str().is_some_and(|f| f != "rows"), "the fetch should fail: {r:?}");
    let pids: Vec<u32> = (0..2).map(|i| cluster.executor_pid(i)).collect();
    let cancelled_at = Instant::now();
    while cpus_used(&pids, Duration::from_secs(1)) >= 0.2 {
        assert!(cancelled_at.elapsed() < Duration::from_secs(20), "executors still busy after CancelFlightInfo");
    }

    // Sessions are separate: one connection's SET is not another's.
    let setting = "SELECT value FROM information_schema.df_settings WHERE name = 'datafusion.execution.batch_size'";
    let one = adbc(&uri, analyst.clone(), &[sql("SET datafusion.execution.batch_size = 1234"), sql(setting)]);
    let other = adbc(&uri, analyst.clone(), &[sql(setting)]);
    assert_eq!(rows(&one[1]), &vec![serde_json::json!({ "value": "1234" })]);
    assert_ne!(rows(&other[0]), rows(&one[1]), "a SET leaked into another session");

    // A result is fetched once, by the session that ran the statement: its
    // ticket taken to another connection (another session) is refused.
    let answer = "SELECT 42 AS answer";
    let planned = adbc(&uri, analyst.clone(), &[serde_json::json!({ "partitions": answer })]);
    let ticket = planned[0]["partitions"][0].as_str().unwrap_or_else(|| panic!("{planned:?}"));
    let stolen = adbc(&uri, analyst.clone(), &[serde_json::json!({ "read_partition": ticket })]);
    assert!(error(&stolen[0]).contains("no such result in this session"), "{stolen:?}");
    let own = adbc(
        &uri,
        analyst.clone(),
        &[
            serde_json::json!({ "partitions": answer }),
            serde_json::json!({ "read_partition": "last" }),
            serde_json::json!({ "read_partition": "last" }),
        ],
    );
    assert_eq!(rows(&own[1]), &vec![serde_json::json!({ "answer": 42 })], "{own:?}");
    assert!(error(&own[2]).contains("fetched once"), "{own:?}");

    // A revoked token stops working at once: the scheduler reads the users
    // file again when it changes.
    let file = cluster.dir.join("users.toml");
    let digest_line = reader_entry.0.lines().find(|l| l.starts_with("sha256")).unwrap().to_string();
    let text = std::fs::read_to_string(&file).unwrap();
    std::thread::sleep(Duration::from_millis(1100)); // a new modification time, even on coarse clocks
    std::fs::write(&file, text.replace(&digest_line, &format!("{digest_line}\nrevoked = true"))).unwrap();
    let revoked = adbc(&uri, serde_json::json!({ "token": reader_token }), &[sql("SELECT 1 AS one")]);
    assert!(error(&revoked[0]).contains("unknown or revoked token"), "{revoked:?}");

    // A workstation with no AWS credentials, no lake and no database URL
    // runs the five example scripts, unchanged, through the front end: the
    // heavy data stays in the cluster, and what they wrote into the
    // operational DB is read with psql, not through Sentio.
    let mut out = String::new();
    for script in
        ["01_train_emotion", "02_validate_emotion", "03_train_media", "04_cross_validate_media", "05_statistics"]
    {
        let mut workstation = sentio();
        for v in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "SENTIO_S3_ENDPOINT"]
        {
            workstation.env_remove(v);
        }
        workstation.args(["sql", "--no-progress", "--format", "csv", "--scheduler", &uri, "--token", analyst_token]);
        let ran = run_ok(workstation.arg("-f").arg(repo_root().join(format!("examples/{script}.sql"))), TEN_MIN);
        let statements = ran.stderr.lines().filter(|l| l.starts_with("-- ") && l.contains(".sql:")).count();
        assert_eq!(ran.stderr.matches("received from the cluster").count(), statements, "{}", ran.stderr);
        let (received, scanned) = bytes_received_and_scanned(&ran.stderr);
        println!(
            "{script}: {:.1} s, {received} bytes sent to the workstation, {scanned} bytes scanned in the cluster",
            ran.elapsed.as_secs_f64()
        );
        if script.starts_with("01") || script.starts_with("02") {
            assert!(scanned > 0, "{script}: nothing scanned?\n{}", ran.stderr);
            assert!(received * 100 < scanned, "{script}: {received} bytes sent of {scanned} scanned");
        }
        out.push_str(&ran.stdout);
    }
    assert!(out.contains("emotion_rf,1,created") && out.contains("media_hit,1,created"), "{out}");
    assert!(out.contains("expected_label,angry,happy,sad"), "{out}");
    assert!(out.contains("name,num_rows,num_nulls,unique,min,max,top_values"), "{out}");
    let test_frames =
        rows(&adbc(&uri, analyst.clone(), &[sql("SELECT COUNT(*) AS n FROM training.frames WHERE split = 'test'")])[0])
            [0]["n"]
            .as_i64()
            .unwrap();
    let outputs = db.client(
        "SELECT COUNT(*), COUNT(DISTINCT (session_id, frame_no)), MIN(confidence) >= 1.0 / 3, \
         string_agg(DISTINCT label, ',' ORDER BY label), string_agg(DISTINCT run_id, ',') \
         FROM emotion_outputs WHERE model = 'emotion_rf' AND version = 1",
    );
    assert_eq!(outputs, format!("{test_frames}|{test_frames}|t|angry,happy,sad|emotion_rf@1/test"), "emotion_outputs");
    let cv = db.client(
        "SELECT COUNT(*), COUNT(DISTINCT run_id), string_agg(DISTINCT fold, ',' ORDER BY fold), \
         COUNT(DISTINCT metric), bool_and(value >= 0) FROM media_cv_results WHERE model = 'media_hit'",
    );
    assert_eq!(cv, "42|1|1,2,3,4,5,mean,stddev|6|t", "media_cv_results");
    for i in 0..2 {
        let tasks = cluster.executor_log(i).matches("Finished task").count();
        assert!(tasks > 0, "executor {i} ran no task");
    }

    // A workstation's traffic while a 100-tree forest trains, counted on
    // the wire by a relay in front of the front end: within 2x of the bytes
    // `sentio` reports received (the model's parts are merged and stored on
    // the cluster side), and its only connection is to the front end.
    let relay = Relay::start(uri.trim_start_matches("grpc://"));
    let connects = dir.path().join("connects.txt");
    let mut traced = Command::new("strace");
    traced.args(["-f", "-qq", "-e", "trace=connect", "-e", "signal=none", "-o"]).arg(&connects).arg(bin("sentio"));
    for v in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "SENTIO_S3_ENDPOINT", "SENTIO_LAKE"] {
        traced.env_remove(v);
    }
    let via_relay = format!("grpc://127.0.0.1:{}", relay.port);
    traced.args(["sql", "--no-progress", "--scheduler", &via_relay, "--token", analyst_token, "-c", FOREST]);
    let trained = run_ok(&mut traced, Duration::from_secs(900));
    let reported: u64 = trained
        .stderr
        .split(" bytes) received from the cluster")
        .next()
        .and_then(|head| head.rsplit('(').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no bytes received in the summary: {}", trained.stderr));
    // The summary says what the cluster read and which job did it.
    let scanned = trained.stderr.contains(" bytes) scanned in the cluster · job ");
    assert!(scanned && !trained.stderr.contains("(0 bytes) scanned"), "{}", trained.stderr);
    let on_wire = relay.to_clients();
    println!("CREATE MODEL of 100 trees: {reported} bytes reported received, {on_wire} bytes on the wire");
    assert!(reported <= on_wire && on_wire <= 2 * reported, "reported {reported}, on the wire {on_wire}");
    let trace = std::fs::read_to_string(&connects).unwrap();
    let inet: Vec<&str> = trace.lines().filter(|l| l.contains("connect(") && l.contains("AF_INET")).collect();
    assert!(!inet.is_empty(), "strace saw no connection: {trace}");
    for line in &inet {
        let to_relay = line.contains(&format!("htons({})", relay.port)) && line.contains("\"127.0.0.1\"");
        assert!(to_relay, "a connection other than to the front end: {line}");
    }

    // Ctrl-C of a statement sent through the front end cancels its job:
    // the executors go idle.
    let mut cmd = sentio();
    cmd.args(["sql", "--scheduler", &uri, "--token", analyst_token, "-c", ENDLESS_SERIES]);
    let command = Running::start(&mut cmd, false);
    let pids: Vec<u32> = (0..2).map(|i| cluster.executor_pid(i)).collect();
    let used = |window: Duration| cpus_used(&pids, window);
    let started = Instant::now();
    while used(Duration::from_millis(500)) < 0.5 {
        assert!(started.elapsed() < Duration::from_secs(60), "the executors never got busy");
    }
    command.signal("INT");
    let f = command.finish(Duration::from_secs(60));
    assert_eq!(f.code, Some(130), "{}", f.stderr);
    let cancelled_at = Instant::now();
    while used(Duration::from_secs(1)) >= 0.2 {
        assert!(cancelled_at.elapsed() < Duration::from_secs(20), "executors still busy after the cancel");
    }
    assert!(cluster.scheduler_log().contains("cancelled: true"), "the front end did not cancel the job");

    // An API token's session ends with its connection (a BI tool that
    // reconnects leaves no session behind).
    assert!(cluster.scheduler_log().contains("session of cluster-sh ended: its connection from"), "no session ended");

    // No secret in the scheduler's log.
    let log = cluster.scheduler_log();
    for secret in [analyst_token, "ana's secret", reader_token.as_str()] {
        assert!(!log.contains(secret), "a secret is in the scheduler's log");
    }
}

#[test]
fn the_front_end_speaks_tls_when_given_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    // A test CA and a server certificate it signed, for 127.0.0.1.
    let path = |name: &str| dir.path().join(name).display().to_string();
    let (ca, cert, key) = (path("ca.pem"), path("cert.pem"), path("key.pem"));
    std::fs::write(path("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n").unwrap();
    let openssl = |args: &[&str]| run_ok(Command::new("openssl").args(args), Duration::from_secs(60));
    let ca_key = path("ca.key");
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=sentio-test-ca",
        "-keyout",
        &ca_key,
        "-out",
        &ca,
    ]);
    let csr = path("server.csr");
    openssl(&["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", &key, "-out", &csr]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        &path("ext.cnf"),
        "-out",
        &cert,
    ]);
    let token = "sentio-test-tls-token-0123456789";
    let cluster = Cluster::start_front_end(
        &dir.path().join("cluster"),
        1,
        vec![],
        token,
        &["--tls-cert", &cert, "--tls-key", &key],
    );
    let uri = cluster.flight_sql_uri();
    assert!(uri.starts_with("grpc+tls://"), "{uri}");
    let pem = std::fs::read_to_string(&ca).unwrap();

    let over_tls =
        adbc(&uri, serde_json::json!({ "token": token, "tls_root_certs": pem }), &[sql("SELECT 42 AS answer")]);
    assert_eq!(rows(&over_tls[0]), &vec![serde_json::json!({ "answer": 42 })]);
    let plain = adbc(&uri.replace("grpc+tls://", "grpc://"), serde_json::json!({ "token": token }), &[sql("SELECT 1")]);
    error(&plain[0]);

    let sentio_sql = |extra: &[&str]| {
        let mut c = sentio();
        c.args(["sql", "--scheduler", &uri, "--token", token, "--format", "json", "-c", "SELECT 42 AS answer"]);
        crate::support::run(c.args(extra), Duration::from_secs(60))
    };
    let trusted = sentio_sql(&["--tls-ca", &ca]);
    assert!(trusted.success, "{}", trusted.stderr);
    assert_eq!(serde_json::from_str::<Value>(&trusted.stdout).unwrap(), serde_json::json!([{ "answer": 42 }]));
    // Without the test CA, the certificate is not trusted.
    let untrusted = sentio_sql(&[]);
    assert!(!untrusted.success && untrusted.stderr.contains("cannot reach"), "{}", untrusted.stderr);
}

/// Statements a fuzzer starts from: every kind the front end plans —
/// queries over each catalog, the ML functions, model and extract
/// statements, opdb writes, SET, SHOW and EXPLAIN.
const FUZZ_CORPUS: &[&str] = &[
    "SELECT split, COUNT(*) AS n, AVG(f00) AS f FROM training.frames GROUP BY split ORDER BY split",
    "SELECT emotion, COUNT(*) OVER (PARTITION BY split) AS n FROM training.frames WHERE f01 > 0.5 LIMIT 10",
    "SELECT * FROM adhoc.media_ground_truth WHERE media_id IN (1, 2, 3) LIMIT 5",
    "SELECT m.title, COUNT(*) AS n FROM training.frames f JOIN opdb.media m ON f.media_id = m.media_id \
     GROUP BY m.title ORDER BY n DESC LIMIT 3",
    "SELECT * FROM ML.PREDICT(MODEL fm, (SELECT * FROM training.frames LIMIT 20))",
    "SELECT * FROM ML.EVALUATE(MODEL fm, (SELECT * FROM training.frames WHERE split = 'test'))",
    "SELECT * FROM ML.CONFUSION_MATRIX(MODEL fm)",
    "SELECT * FROM ML.ROC_CURVE(MODEL fm, (SELECT * FROM training.frames LIMIT 50), GENERATE_ARRAY(0, 1, 0.25))",
    "SELECT * FROM ML.EXPLAIN_PREDICT(MODEL fm, (SELECT * FROM training.frames LIMIT 5), STRUCT(3 AS top_k_features))",
    "SELECT * FROM ML.FEATURE_IMPORTANCE(MODEL fm@1)",
    "SELECT * FROM ML.TRAINING_INFO(MODEL fm)",
    "SELECT * FROM ML.FEATURE_INFO(MODEL fm)",
    "SELECT * FROM ML.DESCRIBE_DATA((SELECT f00, emotion FROM training.frames), STRUCT(5 AS top_k))",
    "SELECT name, version, model_type FROM ml.models",
    "CREATE OR REPLACE MODEL fz OPTIONS (model_type = 'logistic_reg', input_label_cols = ['emotion'], \
     max_iterations = 2) AS SELECT f00, f01, emotion FROM training.frames LIMIT 300",
    "DROP MODEL IF EXISTS fz",
    "CREATE OR REPLACE TABLE extracts.fz_media AS SELECT media_id, title FROM opdb.media",
    "REFRESH EXTRACT extracts.fz_media FULL",
    "INSERT INTO opdb.fz_out (run_id, n) SELECT 'r1', COUNT(*) FROM training.frames",
    "SET datafusion.execution.batch_size = 1024",
    "SHOW TABLES",
    "EXPLAIN SELECT COUNT(*) FROM training.frames WHERE f00 > 0",
    "SELECT CAST('2024-01-01' AS DATE) + INTERVAL '1' DAY AS d, make_array(1, 2, 3)[2] AS e, 'x' || NULL AS s",
    "SELECT hash_fraction(session_id, 7) AS h FROM training.frames ORDER BY h LIMIT 3",
];

/// The front end fuzzed: statements mutated from every kind it plans
/// (tokens deleted, repeated, swapped, replaced by hostile ones; text cut;
/// queries nested), sent through the ADBC driver for up to 60 s. Each gets
/// its answer or an error, the connection answers `SELECT 1` after every
/// one, no process of the cluster panics, and the data reads as before.
#[test]
fn the_front_end_survives_fuzzed_statements() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let db = Db::fresh(Kind::Lite, "unused");
    run_ok(
        sentio()
            .args(["datagen", "--scale", "0.02", "--seed", "3", "--lake", lake.to_str().unwrap()])
            .args(["--opdb", &db.url()]),
        Duration::from_secs(300),
    );
    db.client("CREATE TABLE fz_out (run_id TEXT NOT NULL, n INTEGER)");
    let env = vec![("SENTIO_LAKE", lake.to_str().unwrap().to_string()), ("SENTIO_OPDB_URL", db.url())];
    let token = "sentio-test-fuzz-token-0123456789abcdef";
    let cluster = Cluster::start_front_end(&dir.path().join("cluster"), 1, env, token, &[]);
    let auth = serde_json::json!({ "token": token });
    let count = "SELECT COUNT(*) AS n FROM training.frames";
    let setup = adbc(
        &cluster.flight_sql_uri(),
        auth.clone(),
        &[
            sql(count),
            sql("CREATE MODEL fm OPTIONS (model_type = 'random_forest_classifier', input_label_cols = ['emotion'], \
                 num_parallel_tree = 3) AS SELECT * EXCEPT (session_id, frame_no, subject_id, media_id, recorded_on, \
                 split) FROM training.frames WHERE split = 'train'"),
        ],
    );
    let frames = rows(&setup[0]).clone();
    rows(&setup[1]);

    let fuzzed = adbc(
        &cluster.flight_sql_uri(),
        auth.clone(),
        &[serde_json::json!({ "fuzz": FUZZ_CORPUS, "seed": 11, "n": 3000, "seconds": 60 }), sql(count)],
    );
    let report = &fuzzed[0]["fuzz"];
    let ran = report["ran"].as_u64().unwrap_or(0);
    assert!(ran >= 200, "too few statements ran to say anything: {report}");
    assert!(report["ok"].as_u64() > Some(0) && report["errors"].as_u64() > Some(0), "{report}");
    assert_eq!(report["broken"], serde_json::json!([]), "statements after which the connection was gone");
    assert_eq!(rows(&fuzzed[1]), &frames, "the data reads as before");
    let logs = [("scheduler", cluster.scheduler_log()), ("executor 0", cluster.executor_log(0))];
    for (who, log) in logs {
        assert!(!log.contains("panicked"), "the {who} panicked on a fuzzed statement:\n{log}");
    }
    eprintln!("fuzz: {report}");
}
