//! Extracts against real PostgreSQL and MariaDB: a 1M-row extract made by a
//! two-executor cluster and refreshed with only the new rows (as the
//! database received them), joins with an extract equal to joins with the
//! live table, a timestamp watermark through `sentio extract`, and a refresh
//! killed part-way that leaves the extract as it was.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::opdb::{Db, Kind, WireTap};
use crate::support::{Cluster, Running, S3Server, run, run_ok, sentio};

const TEN_MIN: Duration = Duration::from_secs(600);

/// `rows` rows of `big` (id bigint primary key, k, label, amount, at) in
/// either dialect.
fn make_big(db: &Db, rows: u64) {
    match db.kind() {
        Kind::Pg => db.client(&format!(
            "CREATE TABLE big (id bigint PRIMARY KEY, k int, label text, amount numeric(12,2), at timestamp); \
             INSERT INTO big SELECT g, g % 1000, 'label-' || (g % 7), (g % 10000) / 100.0, \
             timestamp '2024-01-01' + g * interval '1 second' FROM generate_series(1, {rows}) g; ANALYZE big"
        )),
        _ => db.client(&format!(
            "CREATE TABLE big (id bigint PRIMARY KEY, k int, label varchar(20), amount decimal(12,2), at datetime(6)); \
             INSERT INTO big SELECT seq, seq % 1000, CONCAT('label-', seq % 7), (seq % 10000) / 100.0, \
             TIMESTAMP '2024-01-01 00:00:00' + INTERVAL seq SECOND FROM seq_1_to_{rows}; ANALYZE TABLE big"
        )),
    };
}

/// Adds the rows `from..=to` to `big`.
fn add_big(db: &Db, from: u64, to: u64) {
    match db.kind() {
        Kind::Pg => db.client(&format!(
            "INSERT INTO big SELECT g, g % 1000, 'label-' || (g % 7), (g % 10000) / 100.0, \
             timestamp '2024-01-01' + g * interval '1 second' FROM generate_series({from}, {to}) g"
        )),
        _ => db.client(&format!(
            "INSERT INTO big SELECT seq, seq % 1000, CONCAT('label-', seq % 7), (seq % 10000) / 100.0, \
             TIMESTAMP '2024-01-01 00:00:00' + INTERVAL seq SECOND FROM seq_{from}_to_{to}"
        )),
    };
}

/// Sentio's and the database's own count and sums of `big`.
fn sums(sentio_csv: &str) -> Option<String> {
    sentio_csv.lines().nth(1).map(str::to_string)
}

const SUMS: &str = "SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS ids, SUM(id) AS id, SUM(k) AS k, SUM(amount) AS amount";

fn db_sums(db: &Db) -> String {
    db.client("SELECT COUNT(*), COUNT(DISTINCT id), SUM(id), SUM(k), SUM(amount) FROM big").replace('|', ",")
}

/// The one-row JSON result of an extract statement.
fn one(out: &str) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(rows.len(), 1, "{out}");
    rows.into_iter().next().unwrap()
}

/// Parquet files under `dir`, recursively.
fn parquet_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(parquet_files(&p));
        } else if p.extension().is_some_and(|x| x == "parquet") {
            out.push(p);
        }
    }
    out
}

/// The SQL statements in what a client sent that read from `table`.
fn reads_of<'a>(wire: &'a str, table: &str) -> Vec<&'a str> {
    wire.split("SELECT ")
        .map(|s| s.split('\0').next().unwrap_or(s))
        .filter(|s| s.contains(&format!("FROM {table}")))
        .collect()
}

/// A 1M-row extract made by a two-executor cluster; 1,000 new source rows;
/// a refresh that reads only those (what the database received says so);
/// the extract then equals the table, on PostgreSQL and on MariaDB.
#[test]
fn a_million_row_extract_refreshes_only_the_new_rows() {
    for kind in [Kind::Pg, Kind::My] {
        let db = Db::fresh(kind, "sentio_it_extract_million");
        make_big(&db, 1_000_000);
        let (port, tapped, table, after) = match kind {
            Kind::Pg => (
                5432,
                "postgres://postgres@127.0.0.1:{port}/sentio_it_extract_million?sslmode=disable",
                "\"big\"",
                "\"id\" > 1000000",
            ),
            _ => (
                3306,
                "mysql://root@127.0.0.1:{port}/sentio_it_extract_million?ssl-mode=disabled",
                "`big`",
                "`id` > 1000000",
            ),
        };
        let tap = WireTap::start(port);
        let url = tapped.replace("{port}", &tap.port.to_string());
        let dir = tempfile::tempdir().unwrap();
        let lake = dir.path().join("lake");
        std::fs::create_dir_all(&lake).unwrap();
        let cluster = Cluster::start(&dir.path().join("cluster"), 2, vec![("SENTIO_OPDB_URL", url.clone())]);
        let on_cluster = |format: &str, statement: &str| {
            let mut c = sentio();
            c.env("SENTIO_OPDB_URL", &url).env("SENTIO_LAKE", &lake).args([
                "--scheduler",
                &cluster.url(),
                "sql",
                "--no-progress",
                "--format",
                format,
                "-c",
                statement,
            ]);
            run_ok(&mut c, TEN_MIN).stdout
        };

        let created = one(&on_cluster("json", "CREATE TABLE extracts.big AS SELECT * FROM opdb.big"));
        assert_eq!(created["action"], "create", "{kind:?}: {created}");
        assert_eq!(created["rows_read"], 1_000_000, "{kind:?}: {created}");
        assert_eq!(created["rows"], 1_000_000, "{kind:?}: {created}");
        assert_eq!(created["watermark_column"], "id", "{kind:?}: the integer primary key is the watermark");
        assert_eq!(created["watermark"], "1000000", "{kind:?}: {created}");
        let files = parquet_files(&lake.join("extracts/big"));
        assert_eq!(created["files"], files.len(), "{kind:?}: {files:?}");
        for i in 0..2 {
            let reads = cluster.executor_log(i).matches("reading opdb.big:").count();
            assert!(reads >= 1, "{kind:?}: executor {i} read no partition of opdb.big:\n{}", cluster.executor_log(i));
        }
        let first = tap.take();
        assert!(reads_of(&first, table).iter().any(|s| !s.contains(after)), "{kind:?}: the first read was not whole");

        add_big(&db, 1_000_001, 1_001_000);
        let refreshed = one(&on_cluster("json", "REFRESH EXTRACT extracts.big"));
        assert_eq!(refreshed["action"], "incremental", "{kind:?}: {refreshed}");
        assert_eq!(refreshed["rows_read"], 1_000, "{kind:?}: {refreshed}");
        assert_eq!(refreshed["rows"], 1_001_000, "{kind:?}: {refreshed}");
        assert_eq!(refreshed["watermark"], "1001000", "{kind:?}: {refreshed}");
        // What the database received: every read of the table asked only
        // for the rows past the watermark.
        let wire = tap.take();
        let reads = reads_of(&wire, table);
        assert!(!reads.is_empty(), "{kind:?}: the refresh read nothing:\n{wire}");
        assert!(
            reads.iter().all(|s| s.contains(after)),
            "{kind:?}: a refresh read more than the new rows:\n{reads:#?}"
        );

        // The extract equals the source: the database's own sums, and row
        // for row (EXCEPT both ways).
        let extract = sums(&on_cluster("csv", &format!("{SUMS} FROM extracts.big")));
        assert_eq!(extract.as_deref(), Some(db_sums(&db).as_str()), "{kind:?}");
        let diff = on_cluster(
            "csv",
            "SELECT COUNT(*) AS n FROM (SELECT * FROM (SELECT * FROM extracts.big EXCEPT SELECT * FROM opdb.big) a \
             UNION ALL SELECT * FROM (SELECT * FROM opdb.big EXCEPT SELECT * FROM extracts.big) b) d",
        );
        assert_eq!(diff.lines().nth(1), Some("0"), "{kind:?}: {diff}");

        // A refresh with nothing new reads nothing and adds no files.
        let again = one(&on_cluster("json", "REFRESH EXTRACT extracts.big"));
        assert_eq!((again["rows_read"].as_i64(), again["rows"].as_i64()), (Some(0), Some(1_001_000)), "{again}");
        assert_eq!(again["files"], parquet_files(&lake.join("extracts/big")).len(), "{kind:?}: {again}");

        let manifest = on_cluster(
            "csv",
            "SELECT extract, source_query, watermark_column, watermark, rows, files, last_refresh, refreshes \
             FROM extracts.manifest",
        );
        let row = manifest.lines().nth(1).unwrap_or_default();
        assert!(
            row.starts_with("big,SELECT * FROM opdb.big,id,1001000,1001000,") && row.ends_with(",incremental,2"),
            "{kind:?}: {manifest}"
        );
        cluster.stop();
    }
}

/// A training-style join of the frames with an extract returns the same rows
/// as the join with the live table; a timestamp watermark set through
/// `sentio extract` picks up a new row and a changed one (which replaces its
/// earlier version); a source whose columns changed needs a FULL refresh.
#[test]
fn joins_with_an_extract_equal_joins_with_the_live_table() {
    let db = Db::fresh(Kind::My, "sentio_it_extract_join");
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let cmd = || {
        let mut c = sentio();
        c.env("SENTIO_OPDB_URL", db.url()).env("SENTIO_LAKE", &lake);
        c
    };
    run_ok(cmd().args(["datagen", "--scale", "0.05"]), TEN_MIN);
    let sql = |statement: &str| {
        run_ok(cmd().args(["sql", "--no-progress", "--format", "csv", "-c", statement]), TEN_MIN).stdout
    };

    sql("CREATE TABLE extracts.sessions AS SELECT * FROM opdb.sessions");
    let join = |sessions: &str| {
        sql(&format!(
            "SELECT f.session_id, f.frame_no, s.device, s.country, s.age_group, s.started_at, \
             AVG(f.f00) OVER (PARTITION BY s.device) AS device_mean \
             FROM training.frames f JOIN {sessions} s ON f.session_id = s.session_id \
             WHERE s.country IN ('DE', 'FR', 'US') ORDER BY f.session_id, f.frame_no"
        ))
    };
    let (live, extract) = (join("opdb.sessions"), join("extracts.sessions"));
    assert!(live.lines().count() > 1000, "{}", live.lines().count());
    assert!(live == extract, "the join with the extract differs from the join with the live table");

    // `sentio extract` with a timestamp watermark: create, then a refresh
    // that reads the one newer row.
    let extract_cli = |extra: &[&str]| {
        let mut c = cmd();
        c.args(["extract", "--table", "sessions", "--name", "recent_sessions", "--format", "json"]).args(extra);
        one(&run_ok(&mut c, TEN_MIN).stdout)
    };
    let created = extract_cli(&["--watermark", "started_at"]);
    assert_eq!(created["watermark_column"], "started_at", "{created}");
    let n: i64 = db.client("SELECT COUNT(*) FROM sessions").parse().unwrap();
    assert_eq!(created["rows"], n, "{created}");
    // One new session, and one earlier session that changed (its update
    // time moves past the watermark).
    db.client(
        "SET @m = (SELECT MAX(started_at) FROM sessions); SET @k = (SELECT MIN(session_id) FROM sessions); \
         INSERT INTO sessions (session_id, media_id, viewer_id, country, device, age_group, started_at) \
         SELECT MAX(session_id) + 1, MIN(media_id), 7, 'DE', 'tv', '25-34', @m + INTERVAL 1 SECOND FROM sessions; \
         UPDATE sessions SET device = 'changed', started_at = @m + INTERVAL 2 SECOND WHERE session_id = @k",
    );
    let refreshed = extract_cli(&[]);
    assert_eq!(
        (refreshed["action"].as_str(), refreshed["rows_read"].as_i64(), refreshed["rows_replaced"].as_i64()),
        (Some("incremental"), Some(2), Some(1)),
        "{refreshed}"
    );
    assert_eq!(refreshed["rows"], n + 1, "{refreshed}");
    let newest = db.client("SELECT DATE_FORMAT(MAX(started_at), '%Y-%m-%dT%H:%i:%s') FROM sessions");
    assert!(refreshed["watermark"].as_str().is_some_and(|w| w.starts_with(&newest)), "{refreshed} vs {newest}");
    // Each session once, as it is now.
    let all = |table: &str| sql(&format!("SELECT * FROM {table} ORDER BY session_id"));
    let (live, extract) = (all("opdb.sessions"), all("extracts.recent_sessions"));
    assert_eq!(live.lines().count() as i64, n + 2, "header and n + 1 sessions");
    assert!(live == extract, "the refreshed extract differs from the table");
    assert!(extract.contains(",changed,"), "the changed session is missing");

    // The table gains a column: an incremental refresh would mix two
    // layouts, so it is refused; FULL rebuilds the extract with it.
    db.client("ALTER TABLE sessions ADD COLUMN note varchar(10)");
    let mut c = cmd();
    c.args(["extract", "--table", "sessions", "--name", "recent_sessions"]);
    let f = run(&mut c, TEN_MIN);
    assert!(
        !f.success && f.stderr.contains("REFRESH EXTRACT extracts.recent_sessions FULL rebuilds it"),
        "{}",
        f.stderr
    );
    let rebuilt = extract_cli(&["--full"]);
    assert_eq!((rebuilt["action"].as_str(), rebuilt["rows_read"].as_i64()), (Some("full"), Some(n + 1)), "{rebuilt}");
    assert!(sql("SELECT note FROM extracts.recent_sessions LIMIT 1").starts_with("note"));
    // A changed watermark is refused rather than silently ignored.
    let mut c = cmd();
    c.args(["extract", "--table", "sessions", "--name", "recent_sessions", "--watermark", "session_id"]);
    let f = run(&mut c, TEN_MIN);
    assert!(!f.success && f.stderr.contains("watermark"), "{}", f.stderr);
}

/// A refresh whose client is killed while the database is sending the new
/// rows leaves the extract readable and unchanged; the next refresh
/// completes it and removes the killed refresh's files.
#[test]
fn a_killed_refresh_leaves_the_extract_unchanged() {
    for kind in [Kind::Pg, Kind::My] {
        let db = Db::fresh(kind, "sentio_it_extract_kill");
        make_big(&db, 100_000);
        let dir = tempfile::tempdir().unwrap();
        let lake = dir.path().join("lake");
        std::fs::create_dir_all(&lake).unwrap();
        let cmd = || {
            let mut c = sentio();
            c.env("SENTIO_OPDB_URL", db.url()).env("SENTIO_LAKE", &lake);
            c
        };
        let sql = |statement: &str| {
            run_ok(cmd().args(["sql", "--no-progress", "--format", "csv", "-c", statement]), TEN_MIN).stdout
        };
        sql("CREATE TABLE extracts.big AS SELECT * FROM opdb.big");
        let before = sums(&sql(&format!("{SUMS} FROM extracts.big")));
        let manifest_q = "SELECT rows, files, watermark, refreshes FROM extracts.manifest";
        let manifest = sql(manifest_q);
        add_big(&db, 100_001, 1_600_000);

        // Killed, it cannot remove its in-process cluster's folder: that
        // goes under the test's own.
        let mut child = cmd()
            .env("TMPDIR", dir.path())
            .args(["sql", "--no-progress", "-c", "REFRESH EXTRACT extracts.big"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + TEN_MIN;
        let reading = match kind {
            // A paced read fetches from a cursor: between FETCHes its session
            // is idle in its transaction.
            Kind::Pg => {
                "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() \
                         AND application_name = 'sentio' AND state IN ('active', 'idle in transaction') \
                         AND (query LIKE '%FROM \"big\"%' OR query LIKE 'FETCH % FROM sentio_read')"
            }
            _ => {
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = DATABASE() \
                  AND INFO LIKE '%FROM `big`%' AND INFO NOT LIKE '%PROCESSLIST%'"
            }
        };
        loop {
            assert!(child.try_wait().unwrap().is_none(), "{kind:?}: the refresh ended before it could be killed");
            assert!(Instant::now() < deadline, "{kind:?}: the refresh never read");
            if db.client(reading) != "0" {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.kill().unwrap();
        child.wait().unwrap();

        assert_eq!(
            sums(&sql(&format!("{SUMS} FROM extracts.big"))),
            before,
            "{kind:?}: a killed refresh changed the extract"
        );
        assert_eq!(sql(manifest_q), manifest, "{kind:?}");

        let done = sql("REFRESH EXTRACT extracts.big");
        assert!(done.contains(",incremental,1500000,0,1600000,"), "{kind:?}: {done}");
        assert_eq!(
            sums(&sql(&format!("{SUMS} FROM extracts.big"))).as_deref(),
            Some(db_sums(&db).as_str()),
            "{kind:?}"
        );
        let files: i64 = sql("SELECT files FROM extracts.manifest").lines().nth(1).unwrap().parse().unwrap();
        let on_disk = parquet_files(&lake.join("extracts/big"));
        assert_eq!(on_disk.len() as i64, files, "{kind:?}: files no manifest lists were left: {on_disk:#?}");
    }
}

/// Refreshes of one extract at once — two incremental, then two and a
/// FULL, in a local lake and on S3 — commit one at a time: each succeeds
/// (one overtaken by another's commit starts again from the new manifest),
/// new rows are read by one committed refresh, the extract ends up equal to
/// the table with each row once, and no part a manifest lists is deleted.
#[test]
fn concurrent_refreshes_commit_one_at_a_time_and_lose_no_part() {
    let s3 = S3Server::start("sentio-extract-race");
    let db = Db::fresh(Kind::Pg, "sentio_it_extract_race");
    make_big(&db, 20_000);
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("lake");
    std::fs::create_dir_all(&local).unwrap();
    let mut next = 20_001;
    for lake in [local.to_str().unwrap(), "s3://sentio-extract-race/lake"] {
        let cmd = || {
            let mut c = sentio();
            c.envs(s3.env()).env("SENTIO_OPDB_URL", db.url()).env("SENTIO_LAKE", lake);
            c.args(["sql", "--no-progress", "--format", "csv", "-c"]);
            c
        };
        let sql = |statement: &str| run_ok(cmd().arg(statement), TEN_MIN).stdout;
        sql("CREATE OR REPLACE TABLE extracts.big AS SELECT * FROM opdb.big");
        // Round 0: two incremental refreshes. Each new row is read into
        // the extract by one committed refresh: the one overtaken starts
        // again past the new watermark and reads none (without the check it
        // committed its own copy over the other's). Round 1 adds a FULL.
        let rounds: [&[&str]; 2] = [&["", ""], &["", " FULL", ""]];
        for (round, kinds) in rounds.iter().enumerate() {
            add_big(&db, next, next + 9_999);
            next += 10_000;
            let refreshes: Vec<_> = kinds
                .iter()
                .map(|k| Running::start(cmd().arg(format!("REFRESH EXTRACT extracts.big{k}")), false))
                .collect();
            let mut read = 0;
            for r in refreshes {
                let f = r.finish(TEN_MIN);
                assert!(f.success, "{lake}, round {round}: {}", f.stderr);
                let row = f.stdout.lines().nth(1).unwrap_or_default().to_string();
                read += row.split(',').nth(2).and_then(|n| n.parse::<i64>().ok()).unwrap_or(-1);
            }
            if round == 0 {
                assert_eq!(read, 10_000, "{lake}: the new rows were read by more than one committed refresh");
            }
            assert_eq!(
                sums(&sql(&format!("{SUMS} FROM extracts.big"))).as_deref(),
                Some(db_sums(&db).as_str()),
                "{lake}, round {round}"
            );
        }
        if !lake.starts_with("s3://") {
            // The parts of refreshes that were overtaken (those not removed
            // by their own statement) go with the next commit that starts
            // after them, past the clean-up's two-second margin.
            std::thread::sleep(Duration::from_millis(2_500));
            sql("REFRESH EXTRACT extracts.big");
            let files: i64 = sql("SELECT files FROM extracts.manifest").lines().nth(1).unwrap().parse().unwrap();
            let on_disk = parquet_files(&local.join("extracts/big"));
            assert_eq!(on_disk.len() as i64, files, "files no manifest lists were left: {on_disk:#?}");
            assert!(!local.join("extracts/_locks/big").exists(), "the commit lock was left behind");
        }
    }
}

/// Extracts in a lake on S3, and what bad input gets: clear errors, nothing
/// half-made, and a corrupt manifest that keeps the other extracts usable.
#[test]
fn extracts_on_s3_and_bad_input() {
    let s3 = S3Server::start("sentio-extracts");
    let db = Db::fresh(Kind::Lite, "unused");
    let cmd = |lake: &str| {
        let mut c = sentio();
        c.envs(s3.env()).env("SENTIO_OPDB_URL", db.url()).env("SENTIO_LAKE", lake);
        c
    };
    let on_s3 = "s3://sentio-extracts/lake";
    run_ok(cmd(on_s3).args(["datagen", "--scale", "0.05"]), TEN_MIN);
    let sql_in = |lake: &str, statement: &str| {
        run(cmd(lake).args(["sql", "--no-progress", "--format", "csv", "-c", statement]), TEN_MIN)
    };
    let ok_in = |lake: &str, statement: &str| {
        let f = sql_in(lake, statement);
        assert!(f.success, "{statement}\n{}", f.stderr);
        f.stdout
    };
    let fails_in = |lake: &str, statement: &str, message: &str| {
        let f = sql_in(lake, statement);
        assert!(
            !f.success && f.stderr.contains(message),
            "{statement}: expected an error with {message:?}:\n{}",
            f.stderr
        );
    };

    // On S3: create, compare, add a row, refresh, compare.
    let media_sums = "SELECT COUNT(*) AS n, SUM(duration_s) AS d, MAX(media_id) AS m FROM";
    let created = ok_in(on_s3, "CREATE TABLE extracts.media AS SELECT media_id, title, duration_s FROM opdb.media");
    assert!(created.contains("extracts.media,create,"), "{created}");
    let live = ok_in(on_s3, &format!("{media_sums} opdb.media"));
    assert_eq!(ok_in(on_s3, &format!("{media_sums} extracts.media")), live);
    db.client(
        "INSERT INTO media (media_id, title, brand, category, duration_s, published_on) \
         SELECT MAX(media_id) + 1, 'new', 'b', 'c', 30, '2024-01-01' FROM media",
    );
    let refreshed = ok_in(on_s3, "REFRESH EXTRACT extracts.media");
    assert!(refreshed.contains("extracts.media,incremental,1,"), "{refreshed}");
    let live = ok_in(on_s3, &format!("{media_sums} opdb.media"));
    assert_eq!(ok_in(on_s3, &format!("{media_sums} extracts.media")), live);

    // Bad input: clear errors, and nothing made.
    fails_in(on_s3, "CREATE TABLE extracts.media AS SELECT * FROM opdb.media", "extracts.media already exists");
    fails_in(on_s3, "REFRESH EXTRACT extracts.nope", "unknown extract extracts.nope");
    fails_in(on_s3, "REFRESH EXTRACT", "REFRESH EXTRACT extracts.<name> [FULL]");
    fails_in(
        on_s3,
        "CREATE TABLE extracts.bad OPTIONS (watermark = 'title') AS SELECT * FROM opdb.media",
        "a watermark is an increasing integer key, a date or a timestamp",
    );
    fails_in(
        on_s3,
        "CREATE TABLE extracts.bad OPTIONS (watermark = 'nope') AS SELECT * FROM opdb.media",
        "is not a column of the query",
    );
    fails_in(on_s3, "CREATE TABLE extracts.bad AS SELECT * FROM opdb.no_such_table", "no_such_table");
    fails_in(on_s3, "CREATE TABLE extracts.manifest AS SELECT * FROM opdb.media", "choose another name");
    let listed = ok_in(on_s3, "SELECT extract FROM extracts.manifest ORDER BY extract");
    assert_eq!(listed.lines().skip(1).collect::<Vec<_>>(), ["media"], "{listed}");
    // No key in the result: no watermark, so only FULL refreshes.
    ok_in(on_s3, "CREATE TABLE extracts.brands AS SELECT brand, COUNT(*) AS n FROM opdb.media GROUP BY brand");
    fails_in(on_s3, "REFRESH EXTRACT extracts.brands", "REFRESH EXTRACT extracts.brands FULL rebuilds it");
    assert!(ok_in(on_s3, "REFRESH EXTRACT extracts.brands FULL").contains("extracts.brands,full,"));
    ok_in(on_s3, "DROP TABLE extracts.brands");
    fails_in(on_s3, "SELECT * FROM extracts.brands", "brands");
    assert_eq!(ok_in(on_s3, "DROP TABLE IF EXISTS extracts.brands"), "");

    // A corrupt manifest (in a local lake, to corrupt it by hand): the other
    // extracts still work, its own statements say what is wrong, and
    // OR REPLACE or DROP clear it.
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("lake");
    std::fs::create_dir_all(&local).unwrap();
    let local = local.to_str().unwrap();
    ok_in(local, "CREATE TABLE extracts.media AS SELECT * FROM opdb.media");
    ok_in(local, "CREATE TABLE extracts.sessions AS SELECT * FROM opdb.sessions");
    let manifest = dir.path().join("lake/extracts/_manifest/media.parquet");
    std::fs::write(&manifest, b"not a parquet file").unwrap();
    let f = sql_in(local, "SELECT COUNT(*) AS n FROM extracts.sessions");
    assert!(f.success && f.stderr.contains("corrupt extract manifest"), "{}", f.stderr);
    fails_in(local, "REFRESH EXTRACT extracts.media", "corrupt extract manifest");
    ok_in(local, "CREATE OR REPLACE TABLE extracts.media AS SELECT * FROM opdb.media");
    let live = ok_in(local, &format!("{media_sums} opdb.media"));
    assert_eq!(ok_in(local, &format!("{media_sums} extracts.media")), live);
    std::fs::write(&manifest, b"corrupt again").unwrap();
    ok_in(local, "DROP TABLE extracts.media");
    assert!(parquet_files(&dir.path().join("lake/extracts/media")).is_empty());
    assert!(!manifest.exists());
}

/// Kills (SIGKILL) the executor of a 1 + 2 cluster that first runs a task
/// of `statement`; returns how the statement ended.
fn killed_mid(dir: &Path, name: &str, env: Vec<(&'static str, String)>, statement: &str) -> crate::support::Finished {
    let cluster = Cluster::start(&dir.join(name), 2, env.clone());
    let mut cmd = sentio();
    cmd.envs(env).args(["sql", "--no-progress", "--format", "csv", "--scheduler", &cluster.url(), "-c", statement]);
    let mut running = Running::start(&mut cmd, false);
    let started = Instant::now();
    let victim = loop {
        if let Some(i) = (0..2).find(|&i| cluster.executor_log(i).contains("Execute task")) {
            break i;
        }
        assert!(running.running(), "{statement}: ended before an executor ran a task");
        assert!(started.elapsed() < Duration::from_secs(120), "{statement}: no executor ever ran a task");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(running.running(), "{statement}: ended before the kill");
    Command::new("kill").args(["-KILL", &cluster.executor_pid(victim).to_string()]).status().unwrap();
    running.finish(TEN_MIN)
}

/// An executor killed (SIGKILL) while its cluster writes into the
/// operational DB, and while it refreshes an extract: the table gets all of
/// the rows or none (Ballista re-runs the lost tasks, the publish is one
/// transaction), the extract stays as it was or is refreshed — never
/// anything between — and a rerun ends with the right rows once.
#[test]
fn an_executor_killed_mid_write_or_refresh_leaves_all_or_nothing() {
    let db = Db::fresh(Kind::Pg, "sentio_it_extract_exec_kill");
    make_big(&db, 300_000);
    db.client("CREATE TABLE outputs (run_id text NOT NULL, id bigint, k int)");
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    std::fs::create_dir_all(&lake).unwrap();
    let env = vec![("SENTIO_OPDB_URL", db.url()), ("SENTIO_LAKE", lake.to_str().unwrap().to_string())];

    let write = "INSERT INTO opdb.outputs SELECT 'run-1', id, k FROM opdb.big";
    let f = killed_mid(dir.path(), "write", env.clone(), write);
    let landed = db.client("SELECT COUNT(*) FROM outputs");
    println!("executor killed mid-write: {landed} rows landed; {}", if f.success { "succeeded" } else { &f.stderr });
    if f.success {
        assert_eq!(landed, "300000", "the write said it succeeded");
    } else {
        assert!(f.stderr.contains("error:"), "{}", f.stderr);
        assert!(landed == "0" || landed == "300000", "a partial write: {landed} rows");
    }

    let sql = |statement: &str| {
        let mut c = sentio();
        c.envs(env.clone()).args(["sql", "--no-progress", "--format", "csv", "-c", statement]);
        run_ok(&mut c, TEN_MIN).stdout
    };
    sql(write);
    assert_eq!(db.client("SELECT COUNT(*), COUNT(DISTINCT id) FROM outputs"), "300000|300000");

    sql("CREATE TABLE extracts.big AS SELECT * FROM opdb.big");
    let before = sums(&sql(&format!("{SUMS} FROM extracts.big")));
    add_big(&db, 300_001, 600_000);
    let f = killed_mid(dir.path(), "refresh", env.clone(), "REFRESH EXTRACT extracts.big");
    let now = sums(&sql(&format!("{SUMS} FROM extracts.big")));
    println!("executor killed mid-refresh: {}", if f.success { "succeeded" } else { &f.stderr });
    if f.success {
        assert_eq!(now.as_deref(), Some(db_sums(&db).as_str()), "the refresh said it succeeded");
    } else {
        assert!(f.stderr.contains("error:"), "{}", f.stderr);
        assert!(now == before || now.as_deref() == Some(db_sums(&db).as_str()), "a half refresh: {now:?}");
    }
    sql("REFRESH EXTRACT extracts.big");
    assert_eq!(sums(&sql(&format!("{SUMS} FROM extracts.big"))).as_deref(), Some(db_sums(&db).as_str()));
}
