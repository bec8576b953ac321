//! The `opdb` catalog against real PostgreSQL, MariaDB and SQLite: type
//! round trips (checked with each database's own client), pushdown as the
//! database received it, a 1M-row read and write on a two-executor cluster,
//! interrupted writes, concurrency with an application's workload, hostile
//! names and read-replica routing.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{Cluster, Finished, Guard, Running, bin, run, run_ok, sentio};

const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[derive(Clone, Copy, PartialEq, Debug)]
pub(crate) enum Kind {
    Pg,
    My,
    Lite,
}

/// A scratch database, driven through its own command-line client
/// (`psql`, `mariadb`, Python's `sqlite3`).
pub(crate) struct Db {
    kind: Kind,
    name: String,
    dir: tempfile::TempDir,
}

impl Db {
    /// Creates (or recreates) database `name`.
    pub(crate) fn fresh(kind: Kind, name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = Self { kind, name: name.to_string(), dir };
        match kind {
            Kind::Pg => {
                let admin = |sql: &str| {
                    run_ok(Command::new("psql").args(["-X", "-q", PG_ADMIN, "-c", sql]), Duration::from_secs(60))
                };
                admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
                admin(&format!("CREATE DATABASE {name}"));
            }
            Kind::My => {
                db.client_raw("mysql", &format!("DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name}"));
            }
            Kind::Lite => {}
        }
        db
    }

    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    pub(crate) fn url(&self) -> String {
        match self.kind {
            Kind::Pg => format!("postgres://postgres@127.0.0.1:5432/{}", self.name),
            Kind::My => format!("mysql://root@127.0.0.1:3306/{}", self.name),
            Kind::Lite => format!("sqlite:{}", self.dir.path().join("opdb.sqlite").display()),
        }
    }

    fn client_raw(&self, database: &str, sql: &str) -> String {
        let mut cmd = match self.kind {
            Kind::Pg => {
                let mut c = Command::new("psql");
                c.args(["-X", "-q", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=1"]);
                c.arg(format!("postgres://postgres@127.0.0.1:5432/{database}")).args(["-c", sql]);
                c
            }
            Kind::My => {
                let mut c = Command::new("mariadb");
                c.args(["-h", "127.0.0.1", "-P", "3306", "-u", "root", "-N", "-B", database, "-e"]);
                c.arg(format!("SET time_zone = '+00:00'; {sql}"));
                c
            }
            Kind::Lite => {
                let mut c = Command::new("python3");
                c.args([
                    "-c",
                    "import sqlite3, sys\n\
                     c = sqlite3.connect(sys.argv[1])\n\
                     rows = []\n\
                     for stmt in sys.argv[2].split(';\\n'):\n\
                     \x20   if stmt.strip(): rows = c.execute(stmt).fetchall()\n\
                     c.commit()\n\
                     print('\\n'.join('|'.join('' if v is None else str(v) for v in r) for r in rows))",
                ]);
                c.arg(self.dir.path().join("opdb.sqlite")).arg(sql);
                c
            }
        };
        run_ok(&mut cmd, Duration::from_secs(300)).stdout.trim().replace('\t', "|")
    }

    /// Runs `sql` with the database's own client; returns its rows as text
    /// (`|` between columns). SQLite statements are separated by `;\n`.
    pub(crate) fn client(&self, sql: &str) -> String {
        self.client_raw(&self.name, sql)
    }

    fn count(&self, table: &str) -> u64 {
        self.client(&format!("SELECT COUNT(*) FROM {table}")).parse().unwrap()
    }
}

/// `sentio sql` against `db`, standalone, with `format` output.
fn sql(db_url: &str, format: &str, statement: &str) -> crate::support::Finished {
    let mut c = sentio();
    c.env("SENTIO_OPDB_URL", db_url).args(["sql", "--no-progress", "--format", format, "-c", statement]);
    run(&mut c, Duration::from_secs(600))
}

fn sql_ok(db_url: &str, statement: &str) -> String {
    let f = sql(db_url, "csv", statement);
    assert!(f.success, "{statement}\nstdout:\n{}\nstderr:\n{}", f.stdout, f.stderr);
    f.stdout
}

fn json(db_url: &str, statement: &str) -> Vec<serde_json::Value> {
    let f = sql(db_url, "json", statement);
    assert!(f.success, "{statement}\nstderr:\n{}", f.stderr);
    serde_json::from_str(f.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", f.stdout))
}

/// DDL and rows for a table of every mapped type, in each dialect.
fn typed_table(kind: Kind) -> (&'static str, &'static str) {
    match kind {
        Kind::Pg => (
            "id int PRIMARY KEY, b bool, i2 int2, i4 int4, i8 int8, f4 float4, f8 float8, d numeric(12,3), \
             n numeric, t text, vc varchar(20), u uuid, j jsonb, bn bytea, dt date, tm time, ts timestamp, \
             tz timestamptz",
            "(1, true, -32768, 2147483647, -9223372036854775808, 1.5, -2.25, -123456789.123, 3.5, \
             'zoë''s \"q\"', 'v', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"k\": [1, 2]}', '\\x00ff10', \
             '2024-02-29', '23:59:59.999999', '2024-05-06 07:08:09.123456', '2024-05-06 07:08:09.5+02'), \
             (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
        ),
        Kind::My => (
            "id int PRIMARY KEY, b tinyint(1), i2 smallint, i4 int, i8 bigint, f4 float, f8 double, \
             d decimal(12,3), n int unsigned, t text, vc varchar(20), u char(36), j json, bn varbinary(10), \
             dt date, tm time(6), ts datetime(6), tz timestamp(6) NULL DEFAULT NULL",
            "(1, 1, -32768, 2147483647, -9223372036854775808, 1.5, -2.25, -123456789.123, 4294967295, \
             'zoë''s \"q\"', 'v', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"k\": [1, 2]}', x'00ff10', \
             '2024-02-29', '23:59:59.999999', '2024-05-06 07:08:09.123456', '2024-05-06 05:08:09.5'), \
             (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
        ),
        Kind::Lite => (
            "id INTEGER PRIMARY KEY, b BOOLEAN, i2 SMALLINT, i4 INT, i8 BIGINT, f4 REAL, f8 DOUBLE, \
             d DECIMAL(12,3), n NUMERIC, t TEXT, vc VARCHAR(20), u UUID, j JSON, bn BLOB, dt DATE, tm TIME, \
             ts DATETIME, tz TIMESTAMPTZ",
            "(1, 1, -32768, 2147483647, -9223372036854775808, 1.5, -2.25, -123456789.123, 3.5, \
             'zoë''s \"q\"', 'v', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"k\": [1, 2]}', x'00ff10', \
             '2024-02-29', '23:59:59.999999', '2024-05-06 07:08:09.123456', '2024-05-06 05:08:09.500+00:00'), \
             (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
        ),
    }
}

/// Every mapped type read by Sentio as the database's client wrote it, and
/// written by Sentio as the database's client reads it back.
#[test]
fn every_mapped_type_round_trips_on_postgres_mariadb_and_sqlite() {
    for kind in [Kind::Pg, Kind::My, Kind::Lite] {
        let db = Db::fresh(kind, "sentio_it_opdb_types");
        let (ddl, rows) = typed_table(kind);
        let sep = if kind == Kind::Lite { ";\n" } else { "; " };
        db.client(&format!(
            "CREATE TABLE typed ({ddl}){sep}CREATE TABLE typed_copy ({ddl}){sep}INSERT INTO typed VALUES {rows}"
        ));
        let url = db.url();

        // Database's client -> Sentio.
        let got = json(&url, "SELECT * FROM opdb.typed ORDER BY id");
        assert_eq!(got.len(), 2, "{kind:?}: {got:?}");
        let r = &got[0];
        let ctx = format!("{kind:?}: {r}");
        assert_eq!(r["b"], true, "{ctx}");
        assert_eq!(r["i2"], -32768, "{ctx}");
        assert_eq!(r["i4"], 2147483647, "{ctx}");
        assert_eq!(r["i8"], i64::MIN, "{ctx}");
        assert_eq!(r["f4"], 1.5, "{ctx}");
        assert_eq!(r["f8"], -2.25, "{ctx}");
        assert_eq!(r["d"].to_string(), "-123456789.123", "{ctx}");
        assert_eq!(r["t"], "zoë's \"q\"", "{ctx}");
        assert_eq!(r["vc"], "v", "{ctx}");
        assert_eq!(r["u"], "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "{ctx}");
        let j: serde_json::Value = serde_json::from_str(r["j"].as_str().unwrap()).unwrap();
        assert_eq!(j, serde_json::json!({"k": [1, 2]}), "{ctx}");
        assert_eq!(r["bn"], "00ff10", "{ctx}");
        assert_eq!(r["dt"], "2024-02-29", "{ctx}");
        assert_eq!(r["tm"], "23:59:59.999999", "{ctx}");
        assert_eq!(r["ts"], "2024-05-06T07:08:09.123456", "{ctx}");
        assert_eq!(r["tz"], "2024-05-06T05:08:09.500Z", "{ctx}");
        match kind {
            Kind::My => assert_eq!(r["n"], 4294967295u64, "{ctx}"),
            _ => assert_eq!(r["n"], 3.5, "{ctx}"),
        }
        // The all-NULL row comes back as NULLs (absent in JSON).
        assert_eq!(got[1].as_object().unwrap().len(), 1, "{kind:?}: {}", got[1]);

        // Sentio -> database's client: the copy equals the original.
        let out = sql_ok(&url, "INSERT INTO opdb.typed_copy SELECT * FROM opdb.typed");
        assert_eq!(out.lines().nth(1), Some("2"), "{out}");
        assert_eq!(db.count("typed_copy"), 2);
        let diff = db.client(
            "SELECT COUNT(*) FROM (SELECT * FROM typed EXCEPT SELECT * FROM typed_copy \
             UNION ALL SELECT * FROM typed_copy EXCEPT SELECT * FROM typed) d",
        );
        assert_eq!(diff, "0", "{kind:?}: typed and typed_copy differ");
        let bytes = match kind {
            Kind::Pg => db.client("SELECT encode(bn, 'hex') FROM typed_copy WHERE id = 1"),
            Kind::My => db.client("SELECT HEX(`bn`) FROM typed_copy WHERE id = 1").to_lowercase(),
            Kind::Lite => db.client("SELECT hex(bn) FROM typed_copy WHERE id = 1").to_lowercase(),
        };
        assert_eq!(bytes, "00ff10", "{kind:?}");
    }
}

/// A column Sentio cannot map fails with the table, column and type named.
#[test]
fn unsupported_types_are_named() {
    let db = Db::fresh(Kind::Pg, "sentio_it_opdb_odd");
    db.client("CREATE TABLE odd (id int PRIMARY KEY, span interval)");
    let f = sql(&db.url(), "csv", "SELECT * FROM opdb.odd");
    assert!(!f.success);
    assert!(
        f.stderr.contains("opdb.odd") && f.stderr.contains("\"span\"") && f.stderr.contains("interval"),
        "{}",
        f.stderr
    );
}

/// Forwards TCP connections from a local port to `target`, recording what
/// clients send: the database's view of Sentio's SQL.
pub(crate) struct WireTap {
    pub(crate) port: u16,
    sent: Arc<Mutex<Vec<u8>>>,
}

impl WireTap {
    pub(crate) fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&sent);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else { continue };
                let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (mut s_read, mut c_write) = (server, client);
                let log = Arc::clone(&log);
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = c_read.read(&mut buf) {
                        if n == 0 || s_write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        log.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                    let _ = s_write.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s_read, &mut c_write);
                    let _ = c_write.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        Self { port, sent }
    }

    pub(crate) fn take(&self) -> String {
        String::from_utf8_lossy(&std::mem::take(&mut *self.sent.lock().unwrap())).into_owned()
    }
}

fn datagen(url: &str, lake: &Path) {
    let mut c = sentio();
    c.env("SENTIO_OPDB_URL", url).env("SENTIO_LAKE", lake).args(["datagen", "--scale", "0.05"]);
    run_ok(&mut c, Duration::from_secs(120));
}

/// The SQL the database receives carries the columns, the filters and the
/// limit; what cannot be pushed is applied by DataFusion, and the answer is
/// the database's own.
#[test]
fn pushdown_reaches_the_database() {
    let lake = tempfile::tempdir().unwrap();
    for kind in [Kind::Pg, Kind::My] {
        let db = Db::fresh(kind, "sentio_it_opdb_pushdown");
        datagen(&db.url(), lake.path());
        let (port, tapped) = match kind {
            Kind::Pg => (5432, "postgres://postgres@127.0.0.1:{port}/sentio_it_opdb_pushdown?sslmode=disable"),
            _ => (3306, "mysql://root@127.0.0.1:{port}/sentio_it_opdb_pushdown?ssl-mode=disabled"),
        };
        let tap = WireTap::start(port);
        let url = tapped.replace("{port}", &tap.port.to_string());

        // Integer range and limit: exact everywhere, so the limit goes too.
        let q = "SELECT session_id, device FROM opdb.sessions WHERE session_id BETWEEN 100005 AND 100030 \
                 LIMIT 4";
        let out = sql_ok(&url, q);
        assert_eq!(out.lines().count(), 5, "{out}");
        let wire = tap.take();
        let (s, d, sid, t) = match kind {
            Kind::Pg => ("\"session_id\"", "\"device\"", "\"session_id\"", "\"sessions\""),
            _ => ("`session_id`", "`device`", "`session_id`", "`sessions`"),
        };
        let expected = format!("SELECT {s}, {d} FROM {t} WHERE {sid} >= 100005 AND {sid} <= 100030 LIMIT 4");
        assert!(wire.contains(&expected), "{kind:?}: {expected} not in what the database received:\n{wire}");
        if kind == Kind::Pg {
            // Paced (the default duty), PostgreSQL's rows come through a
            // cursor, a bounded number per FETCH.
            assert!(
                wire.contains(&format!("DECLARE sentio_read NO SCROLL CURSOR FOR {expected}"))
                    && wire.contains("FETCH 1000 FROM sentio_read"),
                "the read did not go through a cursor:\n{wire}"
            );
        }

        // Text equality: exact on PostgreSQL, a superset on MariaDB (whose
        // collation ignores case) that DataFusion filters again.
        let q = "SELECT session_id, country FROM opdb.sessions WHERE country = 'DE' ORDER BY session_id";
        let out = sql_ok(&url, q);
        let wire = tap.take();
        let cond = match kind {
            Kind::Pg => "WHERE \"country\" = $1",
            _ => "WHERE `country` = ?",
        };
        assert!(wire.contains(cond), "{kind:?}: {cond} not in:\n{wire}");
        let direct = db.client("SELECT COUNT(*) FROM sessions WHERE country = 'DE'");
        assert_eq!(out.lines().count() - 1, direct.parse::<usize>().unwrap(), "{kind:?}");
        assert!(out.lines().skip(1).all(|l| l.ends_with(",DE")), "{out}");
        // Lower-case 'de' exists nowhere: MariaDB's answer to the pushed
        // filter included the 'DE' rows, DataFusion dropped none wrongly.
        let out = sql_ok(&url, "SELECT COUNT(*) AS n FROM opdb.sessions WHERE country = 'de'");
        assert_eq!(out.lines().nth(1), Some("0"), "{kind:?}: {out}");

        // Floating point stays in DataFusion: not in the SQL, still right.
        let db_sum = db.client("SELECT COUNT(*) FROM media WHERE duration_s * 1.0 > 20.5");
        let out = sql_ok(&url, "SELECT COUNT(*) AS n FROM opdb.media WHERE CAST(duration_s AS DOUBLE) > 20.5");
        assert_eq!(out.lines().nth(1), Some(db_sum.as_str()), "{kind:?}");
        let wire = tap.take();
        assert!(!wire.contains("20.5"), "{kind:?}: a float filter was pushed:\n{wire}");
    }
}

/// Statement text of a 1M-row table for PostgreSQL.
const BIG_PG: &str = "CREATE TABLE big (id bigint PRIMARY KEY, k int, label text, amount numeric(12,2), \
     at timestamp); INSERT INTO big SELECT g, g % 1000, 'label-' || (g % 7), (g % 10000) / 100.0, \
     timestamp '2024-01-01' + g * interval '1 second' FROM generate_series(1, 1000000) g; ANALYZE big; \
     CREATE TABLE big_copy (LIKE big INCLUDING ALL)";

const COPY_BIG: &str = "INSERT INTO opdb.big_copy SELECT * FROM opdb.big";

/// A 1M-row table is read as several partitions by both executors of a
/// cluster, and written back as 1M rows; a write cancelled (Ctrl-C) while it
/// publishes lands nothing.
#[test]
fn million_rows_read_and_written_by_a_two_executor_cluster() {
    let db = Db::fresh(Kind::Pg, "sentio_it_opdb_million");
    db.client(BIG_PG);
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), 2, vec![("SENTIO_OPDB_URL", db.url())]);
    let on_cluster = |statement: &str| {
        let mut c = sentio();
        c.env("SENTIO_OPDB_URL", db.url()).args([
            "--scheduler",
            &cluster.url(),
            "sql",
            "--no-progress",
            "--format",
            "csv",
            "-c",
            statement,
        ]);
        run_ok(&mut c, Duration::from_secs(900)).stdout
    };
    let plan = on_cluster("EXPLAIN SELECT COUNT(*) FROM opdb.big");
    assert!(plan.contains("OpdbScanExec: table=big, partitions=4"), "{plan}");

    let got = on_cluster("SELECT COUNT(*) AS n, SUM(k) AS k, SUM(amount) AS amount FROM opdb.big");
    let direct = db.client("SELECT COUNT(*), SUM(k), SUM(amount) FROM big").replace('|', ",");
    assert_eq!(got.lines().nth(1), Some(direct.as_str()), "{got}");
    for i in 0..2 {
        let reads = cluster.executor_log(i).matches("reading opdb.big:").count();
        assert!(reads >= 1, "executor {i} read no partition of opdb.big:\n{}", cluster.executor_log(i));
    }

    // Ctrl-C while the write publishes: the executor rolls the publishing
    // transaction back at its next slice, so nothing lands, and the client
    // says so.
    let mut cmd = sentio();
    cmd.env("SENTIO_OPDB_URL", db.url()).args(["--scheduler", &cluster.url(), "sql", "--no-progress", "-c", COPY_BIG]);
    let sessions = |filter: &str| {
        format!(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'sentio' AND {filter}"
        )
    };
    let f = interrupted_once(&db, &mut cmd, &sessions("query LIKE 'INSERT INTO \"big_copy\"%'"), "published");
    assert!(f.stderr.contains(" cancelled; opdb.big_copy is unchanged)"), "{}", f.stderr);
    until_none(&db, &sessions("state <> 'idle'"));
    assert_eq!(db.count("big_copy"), 0, "a cancelled write landed");
    let settled = db.client("SELECT row_count FROM _sentio_writes WHERE write_id LIKE 'job:%'");
    assert_eq!(settled, "-1", "the cancelling client recorded no settlement");

    let out = on_cluster(COPY_BIG);
    assert_eq!(out.lines().nth(1), Some("1000000"), "{out}");
    assert_eq!(db.count("big_copy"), 1_000_000);
    let diff = db.client(
        "SELECT COUNT(*) FROM (SELECT * FROM big EXCEPT SELECT * FROM big_copy \
         UNION ALL SELECT * FROM big_copy EXCEPT SELECT * FROM big) d",
    );
    assert_eq!(diff, "0");
    cluster.stop();
}

/// Ctrl-C while a write commits: the client cannot stop it any more, and
/// says that the rows landed, where a plain "cancelled" would say they did
/// not. (A deferred trigger on `_sentio_writes` makes the commit last
/// seconds.) A `--timeout` that cancels a write says the table is
/// unchanged. On MariaDB, Ctrl-C while the write stages: the table is
/// unchanged, and the client's record of the cancellation keeps it so.
#[test]
fn a_cancelled_write_says_whether_its_rows_landed() {
    let pg = Db::fresh(Kind::Pg, "sentio_it_opdb_settle");
    pg.client(
        "CREATE TABLE src (id bigint PRIMARY KEY, label text); \
         INSERT INTO src SELECT g, 'label-' || (g % 3) FROM generate_series(1, 50000) g; \
         CREATE TABLE outputs (run_id text NOT NULL, src_id bigint, label text); \
         CREATE TABLE _sentio_writes (write_id VARCHAR(64) PRIMARY KEY, target_table VARCHAR(255) NOT NULL, \
         row_count BIGINT NOT NULL, published_at VARCHAR(40) NOT NULL); \
         CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN PERFORM pg_sleep(1.5); RETURN NULL; END $$; \
         CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON _sentio_writes DEFERRABLE INITIALLY DEFERRED \
         FOR EACH ROW WHEN (NEW.row_count >= 0) EXECUTE FUNCTION slow_commit()",
    );
    let statement = "INSERT INTO opdb.outputs SELECT 'r1', id, label FROM opdb.src";
    let mut cmd = sentio();
    cmd.env("SENTIO_OPDB_URL", pg.url()).args(["sql", "--no-progress", "-c", statement]);
    let committing = "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() \
                      AND application_name = 'sentio' AND query = 'COMMIT' AND wait_event = 'PgSleep'";
    let f = interrupted_once(&pg, &mut cmd, committing, "committed");
    assert!(f.stderr.contains(" cancelled; opdb.outputs had already received its 50000 rows)"), "{}", f.stderr);
    assert_eq!(pg.count("outputs"), 50_000);

    // A timeout cancels the same way, and settles the same way: 2M rows
    // cannot be written in a second.
    let slow = "INSERT INTO opdb.outputs SELECT 'r2', id, label FROM opdb.src CROSS JOIN generate_series(1, 40)";
    let f = run(
        sentio().env("SENTIO_OPDB_URL", pg.url()).args(["sql", "--no-progress", "--timeout", "1", "-c", slow]),
        Duration::from_secs(300),
    );
    assert!(!f.success, "{}", f.stderr);
    assert!(f.stderr.contains("statement timed out after 1 s (job "), "{}", f.stderr);
    assert!(f.stderr.contains(" cancelled; opdb.outputs is unchanged)"), "{}", f.stderr);
    let settled = pg.client("SELECT row_count FROM _sentio_writes WHERE write_id LIKE 'job:%' ORDER BY row_count");
    assert_eq!(settled, "-1\n50000");
    assert_eq!(pg.count("outputs"), 50_000);

    let my = Db::fresh(Kind::My, "sentio_it_opdb_settle");
    my.client(
        "CREATE TABLE src (id bigint PRIMARY KEY, label varchar(20)); \
         INSERT INTO src SELECT seq, CONCAT('label-', seq % 3) FROM seq_1_to_200000; \
         CREATE TABLE outputs (run_id varchar(20) NOT NULL, src_id bigint, label varchar(20))",
    );
    let mut cmd = sentio();
    cmd.env("SENTIO_OPDB_URL", my.url()).args(["sql", "--no-progress", "-c", statement]);
    let staging = "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = DATABASE() \
                   AND INFO LIKE 'INSERT INTO `_sentio_stage_%'";
    let f = interrupted_once(&my, &mut cmd, staging, "staged");
    assert!(f.stderr.contains(" cancelled; opdb.outputs is unchanged)"), "{}", f.stderr);
    assert_eq!(my.client("SELECT row_count FROM _sentio_writes WHERE write_id LIKE 'job:%'"), "-1");
    // Whatever the executor was doing when the job was cancelled has ended,
    // and left nothing.
    until_none(
        &my,
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND COMMAND <> 'Sleep' \
         AND ID <> CONNECTION_ID()",
    );
    assert_eq!(my.count("outputs"), 0, "a cancelled write landed");
}

/// Starts `cmd` (sentio writing into `db`) and sends it Ctrl-C as soon as
/// `seen` (a `SELECT COUNT(*)` on `db`) counts something — once the write
/// has `what` ("staged", …); it must exit as Ctrl-C makes it (130).
///
/// One connection looks every few milliseconds: MariaDB stages with paced
/// `INSERT`s of a few milliseconds each, which a poll through a new client
/// process every 20 ms could miss for the whole write (it did, in CI).
fn interrupted_once(db: &Db, cmd: &mut Command, seen: &str, what: &str) -> Finished {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut looker = rt.block_on(Looker::connect(db));
    let mut write = Running::start(cmd, false);
    let started = Instant::now();
    while rt.block_on(looker.count(seen)) == 0 {
        assert!(write.running(), "the write ended before it {what}");
        assert!(started.elapsed() < Duration::from_secs(600), "the write never {what}");
        std::thread::sleep(Duration::from_millis(3));
    }
    write.signal("INT");
    let f = write.finish(Duration::from_secs(660));
    assert_eq!(f.code, Some(130), "{}", f.stderr);
    f
}

/// One open connection to a test database, for polls too quick for a
/// client process per look.
enum Looker {
    Pg(sqlx::PgConnection),
    My(sqlx::MySqlConnection),
}

impl Looker {
    async fn connect(db: &Db) -> Self {
        use sqlx::Connection;
        match db.kind {
            Kind::Pg => Looker::Pg(sqlx::PgConnection::connect(&db.url()).await.unwrap()),
            Kind::My => Looker::My(sqlx::MySqlConnection::connect(&db.url()).await.unwrap()),
            Kind::Lite => unreachable!("SQLite has no sessions to watch"),
        }
    }

    /// The value of `sql`, a `SELECT COUNT(*) …`.
    async fn count(&mut self, sql: &str) -> i64 {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        match self {
            Looker::Pg(c) => sqlx::query_scalar(sql).fetch_one(c).await.unwrap(),
            Looker::My(c) => sqlx::query_scalar(sql).fetch_one(c).await.unwrap(),
        }
    }
}

/// Waits (a minute at most) until `working` — a `SELECT COUNT(*)` of a
/// cancelled write's sessions still at work in `db` — counts none.
fn until_none(db: &Db, working: &str) {
    let stopped = Instant::now();
    while db.client(working) != "0" {
        assert!(stopped.elapsed() < Duration::from_secs(60), "the cancelled write is still at work");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Kills the database sessions that fill staging tables in `db` until
/// `child` exits (only `db`'s: tests running beside this one stage their
/// writes in databases of their own).
///
/// PostgreSQL stages with one long `COPY` per table, seen by any poll;
/// MariaDB stages with paced multi-row `INSERT`s of a few milliseconds each,
/// which a poll every 100 ms through a new client process can miss for a
/// whole write, so there one connection looks every few milliseconds.
fn kill_staging_sessions(db: &Db, child: &mut std::process::Child) -> (bool, u32) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut my = match db.kind {
        Kind::My => {
            use sqlx::Connection;
            Some(rt.block_on(sqlx::MySqlConnection::connect(&db.url())).unwrap())
        }
        _ => None,
    };
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut kills = 0;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status.success(), kills);
        }
        assert!(Instant::now() < deadline, "the interrupted write never ended");
        kills += match my.as_mut() {
            Some(c) => rt.block_on(kill_mysql_stagers(c)),
            None => db
                .client(
                    "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = current_database() AND application_name = 'sentio' \
                     AND query LIKE 'COPY \"_sentio_stage_%') t",
                )
                .parse::<u32>()
                .unwrap_or(0),
        };
        std::thread::sleep(Duration::from_millis(if my.is_some() { 3 } else { 100 }));
    }
}

/// Kills the sessions of `c`'s database that are inserting into a staging
/// table; returns how many.
async fn kill_mysql_stagers(c: &mut sqlx::MySqlConnection) -> u32 {
    let ids: Vec<(i64,)> = sqlx::query_as(
        "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = DATABASE() \
         AND INFO LIKE 'INSERT INTO `\\_sentio\\_stage\\_%'",
    )
    .fetch_all(&mut *c)
    .await
    .unwrap();
    for (id,) in &ids {
        // The session may have finished its statement or ended meanwhile.
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("KILL {id}"))).execute(&mut *c).await;
    }
    ids.len() as u32
}

/// A write whose database sessions are killed part-way leaves no rows; the
/// rerun with the same run id leaves exactly one copy, and so does the next.
/// 300k rows: each engine writes them three times (a 1M-row write is
/// `million_rows_read_and_written_by_a_two_executor_cluster`'s).
#[test]
fn interrupted_write_leaves_nothing_and_reruns_leave_one_copy() {
    for kind in [Kind::Pg, Kind::My] {
        let db = Db::fresh(kind, "sentio_it_opdb_interrupt");
        match kind {
            Kind::Pg => db.client(
                "CREATE TABLE src (id bigint PRIMARY KEY, label text); \
                 INSERT INTO src SELECT g, 'label-' || (g % 3) FROM generate_series(1, 300000) g; \
                 CREATE TABLE outputs (id bigserial PRIMARY KEY, run_id text NOT NULL, src_id bigint, label text)",
            ),
            _ => db.client(
                "CREATE TABLE src (id bigint PRIMARY KEY, label varchar(20)); \
                 INSERT INTO src SELECT seq, CONCAT('label-', seq % 3) FROM seq_1_to_300000; \
                 CREATE TABLE outputs (id bigint AUTO_INCREMENT PRIMARY KEY, run_id varchar(20) NOT NULL, \
                 src_id bigint, label varchar(20))",
            ),
        };
        let statement = "INSERT INTO opdb.outputs (run_id, src_id, label) SELECT 'run-7', id, label FROM opdb.src";
        let stderr = tempfile::NamedTempFile::new().unwrap();
        let mut child = sentio()
            .env("SENTIO_OPDB_URL", db.url())
            .args(["sql", "--no-progress", "-c", statement])
            .stdout(Stdio::null())
            .stderr(stderr.reopen().unwrap())
            .spawn()
            .unwrap();
        let (succeeded, kills) = kill_staging_sessions(&db, &mut child);
        let said = std::fs::read_to_string(stderr.path()).unwrap_or_default();
        assert!(kills > 0, "{kind:?}: no staging session was seen to kill; sentio said:\n{said}");
        assert!(
            !succeeded,
            "{kind:?}: the write succeeded although {kills} sessions were killed; sentio said:\n{said}"
        );
        assert_eq!(db.count("outputs"), 0, "{kind:?}: an interrupted write left rows; sentio said:\n{said}");

        for _ in 0..2 {
            let out = sql_ok(&db.url(), statement);
            assert_eq!(out.lines().nth(1), Some("300000"), "{out}");
            assert_eq!(db.count("outputs"), 300_000, "{kind:?}");
        }
        let runs = db.client("SELECT COUNT(DISTINCT run_id), COUNT(DISTINCT src_id) FROM outputs");
        assert_eq!(runs, "1|300000", "{kind:?}");
    }
}

/// Two writes of one run id at once leave exactly one copy: publishes into
/// one table take turns, and the second replaces the first's rows. Each
/// publish's commit is held open for two seconds (a trigger on Sentio's
/// write log, the publish's last insert), so the two publishes overlap
/// whenever they start within two seconds of each other — without turns,
/// neither would see the other's rows and both would land.
#[test]
fn two_writes_of_one_run_id_at_once_leave_one_copy() {
    for kind in [Kind::Pg, Kind::My, Kind::Lite] {
        let db = Db::fresh(kind, "sentio_it_opdb_same_run");
        let log = "_sentio_writes (write_id VARCHAR(64) PRIMARY KEY, target_table VARCHAR(255) NOT NULL, \
                   row_count BIGINT NOT NULL, published_at VARCHAR(40) NOT NULL)";
        match kind {
            Kind::Pg => db.client(&format!(
                "CREATE TABLE src (id bigint PRIMARY KEY, label text); \
                 INSERT INTO src SELECT g, 'label-' || (g % 3) FROM generate_series(1, 20000) g; \
                 CREATE TABLE outputs (run_id text NOT NULL, src_id bigint, label text); \
                 CREATE TABLE {log}; \
                 CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN PERFORM pg_sleep(2); RETURN NULL; END $$; \
                 CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON _sentio_writes DEFERRABLE INITIALLY DEFERRED \
                 FOR EACH ROW EXECUTE FUNCTION slow_commit()"
            )),
            Kind::My => db.client(&format!(
                "CREATE TABLE src (id bigint PRIMARY KEY, label varchar(20)); \
                 INSERT INTO src SELECT seq, CONCAT('label-', seq % 3) FROM seq_1_to_20000; \
                 CREATE TABLE outputs (run_id varchar(20) NOT NULL, src_id bigint, label varchar(20)); \
                 CREATE TABLE {log}; \
                 CREATE TRIGGER slow_commit AFTER INSERT ON _sentio_writes FOR EACH ROW SET @slept = SLEEP(2)"
            )),
            Kind::Lite => db.client(
                "CREATE TABLE src (id INTEGER PRIMARY KEY, label TEXT);\n\
                 INSERT INTO src WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < 20000) \
                 SELECT x, 'label-' || (x % 3) FROM g;\n\
                 CREATE TABLE outputs (run_id TEXT NOT NULL, src_id INTEGER, label TEXT)",
            ),
        };
        let statement = "INSERT INTO opdb.outputs SELECT 'run-9', id, label FROM opdb.src";
        let writes: Vec<_> = (0..2)
            .map(|_| {
                let mut c = sentio();
                c.env("SENTIO_OPDB_URL", db.url()).args(["sql", "--no-progress", "--format", "csv", "-c", statement]);
                Running::start(&mut c, false)
            })
            .collect();
        for w in writes {
            let f = w.finish(Duration::from_secs(300));
            assert!(f.success, "{kind:?}: {}", f.stderr);
            assert_eq!(f.stdout.lines().nth(1), Some("20000"), "{kind:?}: {}", f.stdout);
        }
        assert_eq!(db.count("outputs"), 20_000, "{kind:?}: two copies of run-9");
        assert_eq!(db.client("SELECT COUNT(DISTINCT src_id) FROM outputs"), "20000", "{kind:?}");
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// An application's point reads and small inserts, timed; every statement
/// runs with `lock_timeout = 100ms`, so a lock wait over 100 ms fails it.
async fn app_workload(url: &str, stop: Arc<AtomicBool>, min_ops: usize) -> Vec<Duration> {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql("SET lock_timeout = '100ms'").execute(&mut c).await.unwrap();
    let mut times = Vec::new();
    let mut i: i64 = 0;
    while times.len() < min_ops || !stop.load(Ordering::Relaxed) {
        i += 1;
        let t = Instant::now();
        let _: (i64,) = sqlx::query_as("SELECT k::bigint FROM big WHERE id = $1")
            .bind(1 + (i * 7919) % 1_000_000)
            .fetch_one(&mut c)
            .await
            .expect("point read failed (a lock wait over 100 ms?)");
        sqlx::query("INSERT INTO app_log (note) VALUES ($1)")
            .bind(format!("op {i}"))
            .execute(&mut c)
            .await
            .expect("small insert failed (a lock wait over 100 ms?)");
        times.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    times
}

/// Where the never-blocks test runs the processes that stand for a cluster
/// on machines of its own (and the client of the database's own `COPY`): on
/// the last CPU, leaving the database at least one, at `nice 19`, and —
/// where the machine lets the test make one (root, the cgroup v1 `cpu`
/// hierarchy, Linux 5.15+) — in a CPU cgroup with `cpu.idle = 1`, which runs
/// them only when nothing else wants the CPU. Niceness alone does not
/// isolate them: with autogroups, `nice` counts only within a session, and
/// a woken database backend waited behind them for up to a scheduler tick
/// (docs/benchmarks.md). The cgroup is removed when this is dropped.
struct IdleGroup(Option<std::path::PathBuf>);

impl IdleGroup {
    fn new() -> Self {
        let dir = std::path::PathBuf::from(format!("/sys/fs/cgroup/cpu/sentio-test-idle-{}", std::process::id()));
        let made = std::fs::create_dir(&dir).is_ok() && std::fs::write(dir.join("cpu.idle"), "1").is_ok();
        if !made {
            let _ = std::fs::remove_dir(&dir);
        }
        Self(made.then_some(dir))
    }

    /// `program` to run placed as above: a shell joins the cgroup, then
    /// becomes `taskset -c <cpu> nice -n 19 <program>`.
    fn command(&self, cpu: usize, program: &str) -> Command {
        let mut c = Command::new("sh");
        let join = match &self.0 {
            Some(dir) => format!("echo 0 > '{}/cgroup.procs' && ", dir.display()),
            None => String::new(),
        };
        c.args(["-c", &format!("{join}exec taskset -c {cpu} nice -n 19 \"$@\""), "sh", program]);
        c
    }

    fn placement(&self) -> &'static str {
        if self.0.is_some() {
            "last CPU, nice 19, cgroup cpu.idle = 1"
        } else {
            "last CPU, nice 19 (no idle cgroup on this machine)"
        }
    }
}

impl Drop for IdleGroup {
    fn drop(&mut self) {
        if let Some(dir) = &self.0 {
            // Its processes have exited (their guards drop first); an
            // empty cgroup is removed with rmdir.
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// While a 1M-row extract and a 1M-row write run, an application doing
/// point reads and small inserts on the same database waits on no lock for
/// more than 100 ms, and its p99 latency stays within 2x of idle. Default
/// bulk duty; the cluster stands aside on the CPUs it shares with the
/// database here ([`IdleGroup`]), as if on its own machines next to RDS.
///
/// The load runs in [`TRIALS`] trials, each right after an idle baseline of
/// its own taken after a `CHECKPOINT`, and the median of the trials' ratios
/// is held to 2x: the machine's own noise (a slow disk flush, a neighbour
/// on the host) moves a single p99 by more than 2x between minutes
/// (docs/benchmarks.md), and one baseline taken minutes before the load
/// compared the load with another machine. Prints the latencies of each
/// trial, and under the database's own `COPY` of the same rows (the
/// physical reference).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operational_db_is_never_blocked() {
    let db = Db::fresh(Kind::Pg, "sentio_it_opdb_noblock");
    db.client(BIG_PG);
    db.client(
        "CREATE TABLE app_log (id bigserial PRIMARY KEY, note text, at timestamptz DEFAULT now()); \
               CREATE TABLE big_out (LIKE big INCLUDING ALL)",
    );
    // The application's database in its steady state: the table just loaded
    // vacuumed (hint bits and visibility map set) and checkpointed, so
    // neither baseline nor load pays for the load of the fixture.
    db.client("VACUUM ANALYZE big");
    db.client("CHECKPOINT");
    let url = db.url();
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let idle_group = IdleGroup::new();
    println!("bulk clients placed: {}", idle_group.placement());

    let copy = copy_reference(&db, &idle_group, cpus).await;
    let niced = |args: &[&str]| {
        let mut c = idle_group.command(cpus - 1, &bin("sentio").to_string_lossy());
        c.env("SENTIO_OPDB_URL", &url).args(args);
        c.stdout(Stdio::null()).stderr(Stdio::null());
        Guard(c.spawn().unwrap())
    };
    let mut ratios = Vec::new();
    for trial in 1..=TRIALS {
        // The write before (the reference's or the last trial's) is flushed
        // and its rows gone, so this trial pays for its own WAL only.
        db.client("TRUNCATE big_out");
        db.client("CHECKPOINT");
        let before = cpu_ticks();
        let idle = timed_while(&url, 2000, || async {}).await;
        // A machine busy while the application runs alone has a neighbour
        // (a process left behind, another job): say so beside the numbers.
        let machine = cpu_ticks().busy_since(&before);
        let busy = timed_while(&url, 500, || async {
            let mut extract =
                niced(&["sql", "--no-progress", "-c", "SELECT COUNT(*), SUM(k), MAX(label) FROM opdb.big"]);
            let mut write = niced(&["sql", "--no-progress", "-c", "INSERT INTO opdb.big_out SELECT * FROM opdb.big"]);
            for g in [&mut extract, &mut write] {
                let status = tokio::task::block_in_place(|| g.0.wait()).unwrap();
                assert!(status.success(), "the extract or the write failed");
            }
        })
        .await;
        assert_eq!(db.count("big_out"), 1_000_000);
        let ratio = percentile(&busy, 0.99).as_secs_f64() / percentile(&idle, 0.99).as_secs_f64();
        println!(
            "trial {trial}: idle {} (machine {:.0} % busy); during Sentio's 1M extract + 1M write {}: p99 \
             {ratio:.1}x idle",
            summary(&idle),
            machine * 100.0,
            summary(&busy)
        );
        ratios.push(ratio);
    }
    println!("during the database's own COPY of 1M rows out + 1M in (three times): {}", summary(&copy));
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    println!("median p99 under Sentio: {median:.1}x idle (issue 3's target: 2x); trials {ratios:.1?}");
    assert!(
        median <= 2.0,
        "the median trial's p99 under Sentio's load is {median:.1}x its idle p99 (trials {ratios:.1?})"
    );
}

/// Trials of the never-blocks test: the median of five is held to 2x. With
/// three, one noisy idle baseline (a neighbour on the VM) decided the run:
/// trials of 2.2x, 3.0x and 5.6x in one run, 0.8x, 1.9x and 2.0x in the
/// next, minutes apart, with the same code.
const TRIALS: usize = 5;

/// The application's latencies, sorted, while `load` runs (and until at
/// least `min_ops` were taken).
async fn timed_while<F, Fut>(url: &str, min_ops: usize, load: F) -> Vec<Duration>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let stop = Arc::new(AtomicBool::new(false));
    let app = {
        let (url, stop) = (url.to_string(), Arc::clone(&stop));
        tokio::spawn(async move { app_workload(&url, stop, min_ops).await })
    };
    load().await;
    stop.store(true, Ordering::Relaxed);
    let mut t = app.await.unwrap();
    t.sort();
    t
}

/// The machine's CPU time so far, from `/proc/stat`: (busy, all) ticks.
struct CpuTicks(u64, u64);

fn cpu_ticks() -> CpuTicks {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> =
        stat.lines().next().unwrap_or_default().split_whitespace().skip(1).filter_map(|t| t.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal: idle and iowait are not busy.
    let all: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    CpuTicks(all - idle, all)
}

impl CpuTicks {
    /// The busy share of all CPUs between `before` and now.
    fn busy_since(&self, before: &CpuTicks) -> f64 {
        (self.0 - before.0) as f64 / (self.1 - before.1).max(1) as f64
    }
}

/// p50, p99, max and count of sorted latencies.
fn summary(sorted: &[Duration]) -> String {
    format!(
        "p50 {:?} p99 {:?} max {:?} ({} ops)",
        percentile(sorted, 0.5),
        percentile(sorted, 0.99),
        sorted.last().unwrap(),
        sorted.len()
    )
}

/// The physical reference: the database's own COPY moving the same rows
/// out and in at once (its client placed like the cluster), three times
/// over so that the application's latencies under it, all taken while the
/// rows move, number several hundred.
async fn copy_reference(db: &Db, idle_group: &IdleGroup, cpus: usize) -> Vec<Duration> {
    let url = db.url();
    let rows_file = db.dir.path().join("big.bin");
    db.client(&format!("\\copy big TO '{}' (FORMAT binary)", rows_file.display()));
    db.client("CREATE TABLE big_ref (LIKE big INCLUDING ALL)");
    let psql = |sql: String| {
        let mut c = idle_group.command(cpus - 1, "psql");
        c.args(["-X", "-q", &url, "-c", &sql]);
        c.stdout(Stdio::null()).stderr(Stdio::null());
        Guard(c.spawn().unwrap())
    };
    let copy = timed_while(&url, 0, || async {
        for round in 0..3 {
            if round > 0 {
                db.client("TRUNCATE big_ref");
            }
            let mut out = psql("COPY big TO STDOUT (FORMAT binary)".into());
            let mut into = psql(format!("\\copy big_ref FROM '{}' (FORMAT binary)", rows_file.display()));
            for g in [&mut out, &mut into] {
                assert!(tokio::task::block_in_place(|| g.0.wait()).unwrap().success(), "COPY failed");
            }
        }
    })
    .await;
    assert_eq!(db.count("big_ref"), 1_000_000);
    db.client("DROP TABLE big_ref");
    copy
}

/// On MariaDB, an application inserting into the very table that a 1M-row
/// write (keyed by a `run_id`) publishes into waits on no lock for a second
/// (`innodb_lock_wait_timeout = 1`, the least MariaDB allows). Two locks
/// would hold it up: InnoDB holds the table's AUTO_INCREMENT lock for a
/// whole `INSERT … SELECT` in its default mode, so the publish goes 1,024
/// rows per statement (each staging table in one statement held it for
/// about 1.5 s); and under REPEATABLE READ the rerun's `DELETE` of earlier
/// rows of the run id, scanning a table with no index on `run_id`, keeps
/// every row and gap locked until COMMIT, so the publish runs READ
/// COMMITTED. The same holds for the application's updates of the rows the
/// written rows reference by a foreign key (InnoDB share-locks each one
/// until COMMIT when it checks the key, so the publish checks them all at
/// its end), and a row referencing nothing still fails the write. Prints
/// the application's latencies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mariadb_write_never_holds_up_inserts_into_its_table() {
    use sqlx::Connection;
    let db = Db::fresh(Kind::My, "sentio_it_opdb_autoinc");
    db.client(
        "CREATE TABLE big (id bigint PRIMARY KEY, k bigint, label varchar(20)); \
         INSERT INTO big SELECT seq, seq % 1000, CONCAT('label-', seq % 7) FROM seq_1_to_1000000; \
         CREATE TABLE ks (k bigint PRIMARY KEY, touched int NOT NULL DEFAULT 0); \
         INSERT INTO ks (k) SELECT seq FROM seq_0_to_999; \
         CREATE TABLE outputs (id bigint AUTO_INCREMENT PRIMARY KEY, run_id varchar(20), k bigint, \
         label varchar(20), CONSTRAINT outputs_k FOREIGN KEY (k) REFERENCES ks (k)); \
         INSERT INTO outputs (run_id, k, label) VALUES ('app', 0, 'app')",
    );
    let url = db.url();
    let mut write = sentio();
    write.env("SENTIO_OPDB_URL", &url).args([
        "sql",
        "--no-progress",
        "-c",
        "INSERT INTO opdb.outputs (run_id, k, label) SELECT 'r1', k, label FROM opdb.big",
    ]);
    let write = Running::start(&mut write, false);

    let mut app = sqlx::MySqlConnection::connect(&url).await.unwrap();
    sqlx::raw_sql("SET SESSION innodb_lock_wait_timeout = 1").execute(&mut app).await.unwrap();
    let mut write = write;
    let mut times = Vec::new();
    while write.running() {
        let t = Instant::now();
        let k = (times.len() % 1000) as i64;
        sqlx::query("INSERT INTO outputs (run_id, k, label) VALUES ('app', ?, 'app')")
            .bind(k)
            .execute(&mut app)
            .await
            .expect("the application's insert waited a second for a lock");
        sqlx::query("UPDATE ks SET touched = touched + 1 WHERE k = ?")
            .bind(k)
            .execute(&mut app)
            .await
            .expect("the application's update of a referenced row waited a second for a lock");
        times.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let f = tokio::task::block_in_place(|| write.finish(Duration::from_secs(900)));
    assert!(f.success, "{}", f.stderr);
    assert_eq!(db.count("outputs"), 1 + 1_000_000 + times.len() as u64);
    let orphans = "SELECT COUNT(*) FROM outputs o WHERE NOT EXISTS (SELECT 1 FROM ks WHERE ks.k = o.k)";
    assert_eq!(db.client(orphans), "0");

    // A row whose key has no row in ks still fails the write, and nothing
    // lands; nothing was even inserted and rolled back (a trigger logging
    // into a table outside transactions sees no insert): the check before
    // the publish caught it.
    db.client(
        "CREATE TABLE seen (n int) ENGINE = MyISAM; \
         CREATE TRIGGER outputs_seen BEFORE INSERT ON outputs FOR EACH ROW INSERT INTO seen VALUES (1)",
    );
    let bad = sql(
        &url,
        "csv",
        "INSERT INTO opdb.outputs (run_id, k, label) SELECT 'r2', k, label FROM opdb.big WHERE id <= 10 UNION ALL SELECT 'r2', 5000, 'x'",
    );
    assert!(!bad.success, "{}", bad.stdout);
    assert!(bad.stderr.contains("foreign key outputs_k") && bad.stderr.contains("(5000)"), "{}", bad.stderr);
    assert_eq!(db.client("SELECT COUNT(*) FROM outputs WHERE run_id = 'r2'"), "0");
    assert_eq!(db.count("seen"), 0, "the write inserted rows before it found the missing key");
    times.sort();
    println!(
        "application inserts into the table and updates of the rows it references, during a 1M-row MariaDB \
         write: {} ops, p50 {:?} p99 {:?} max {:?}",
        times.len(),
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times.last().unwrap()
    );
}

/// A MariaDB table whose text columns have a collation other than the
/// database's default is written by run id, reruns replace, and its foreign
/// key is checked as the engine compares (case-insensitively here): the
/// staging tables take the target's collations (MySQL refuses to compare
/// columns of two collations — "Illegal mix of collations" — so before, a
/// keyed write into such a table failed every time).
#[test]
fn a_mariadb_table_in_a_collation_of_its_own_is_written_by_run_id() {
    let db = Db::fresh(Kind::My, "sentio_it_opdb_collation");
    db.client(
        "ALTER DATABASE sentio_it_opdb_collation COLLATE utf8mb4_general_ci; \
         CREATE TABLE codes (code varchar(10) COLLATE utf8mb4_unicode_ci PRIMARY KEY); \
         INSERT INTO codes VALUES ('a'), ('b'); \
         CREATE TABLE outputs (id bigint AUTO_INCREMENT PRIMARY KEY, run_id varchar(10) COLLATE utf8mb4_unicode_ci, \
         code varchar(10) COLLATE utf8mb4_unicode_ci, CONSTRAINT outputs_code FOREIGN KEY (code) REFERENCES codes (code))",
    );
    let write = "INSERT INTO opdb.outputs (run_id, code) VALUES ('r1', 'a'), ('r1', 'B')";
    for _ in 0..2 {
        sql_ok(&db.url(), write);
        assert_eq!(db.client("SELECT run_id, code FROM outputs ORDER BY code"), "r1|a\nr1|B");
    }
    let bad = sql(&db.url(), "csv", "INSERT INTO opdb.outputs (run_id, code) VALUES ('r2', 'zz')");
    assert!(!bad.success && bad.stderr.contains("foreign key outputs_code"), "{}", bad.stderr);
    assert_eq!(db.count("outputs"), 2);
}

/// On a MariaDB server that is not strict (`sql_mode = ''`, as MySQL 5.7's
/// RDS default), a value too long for its column fails the write instead of
/// being cut to fit, and nothing lands: Sentio's sessions are strict
/// whatever the server's default. (The server's global mode is changed for
/// the second this takes and put back, also if the test fails.)
#[test]
fn a_lenient_mariadb_server_still_gets_whole_values_or_an_error() {
    struct GlobalSqlMode(String);
    impl Drop for GlobalSqlMode {
        fn drop(&mut self) {
            let set = format!("SET GLOBAL sql_mode = '{}'", self.0.replace('\'', "''"));
            let _ = Command::new("mariadb").args(["-h", "127.0.0.1", "-u", "root", "-e", &set]).output();
        }
    }
    let db = Db::fresh(Kind::My, "sentio_it_opdb_strict");
    db.client("CREATE TABLE o (id bigint AUTO_INCREMENT PRIMARY KEY, label varchar(5))");
    let lenient = GlobalSqlMode(db.client("SELECT @@GLOBAL.sql_mode"));
    db.client("SET GLOBAL sql_mode = ''");
    let f = sql(&db.url(), "csv", "INSERT INTO opdb.o (label) VALUES ('abcde'), ('abcdefghij')");
    drop(lenient);
    assert!(!f.success, "{}", f.stdout);
    assert!(f.stderr.contains("Data too long for column 'label'"), "{}", f.stderr);
    assert_eq!(db.count("o"), 0);
}

/// Column names full of quotes, semicolons and SQL stay names on every
/// engine, in reads, filters and writes; a table name that DataFusion's plan
/// encoding cannot carry is refused with a clear error, and nothing runs.
#[test]
fn hostile_names_stay_names() {
    let columns = ["x\"; DELETE FROM victim; --", "y`); DROP TABLE victim; --"];
    let bad_table = "w'eird; DROP TABLE victim; --";
    for kind in [Kind::Pg, Kind::My, Kind::Lite] {
        let db = Db::fresh(kind, "sentio_it_opdb_hostile");
        let quote = |name: &str| match kind {
            Kind::My => format!("`{}`", name.replace('`', "``")),
            _ => format!("\"{}\"", name.replace('"', "\"\"")),
        };
        let sep = if kind == Kind::Lite { ";\n" } else { "; " };
        let (c0, c1) = (quote(columns[0]), quote(columns[1]));
        db.client(&format!(
            "CREATE TABLE victim (id int){sep}INSERT INTO victim VALUES (1){sep}\
             CREATE TABLE hostile (id int PRIMARY KEY, {c0} varchar(40), {c1} int){sep}\
             INSERT INTO hostile VALUES (1, 'a''; DROP TABLE victim; --', 7){sep}\
             CREATE TABLE {} (id int)",
            quote(bad_table)
        ));
        // DataFusion SQL quotes identifiers with double quotes, doubled inside.
        let df = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
        let (d0, d1) = (df(columns[0]), df(columns[1]));
        let out = sql_ok(
            &db.url(),
            &format!("SELECT {d0}, {d1} FROM opdb.hostile WHERE {d0} = 'a''; DROP TABLE victim; --' AND {d1} = 7"),
        );
        assert!(out.contains("a'; DROP TABLE victim; --,7"), "{kind:?}: {out}");
        sql_ok(&db.url(), "INSERT INTO opdb.hostile SELECT 2, 'b\"; DELETE FROM victim; --', 8");
        assert_eq!(db.count("victim"), 1, "{kind:?}");
        assert_eq!(db.count("hostile"), 2, "{kind:?}");
        let stored = db.client(&format!("SELECT {c0} FROM hostile WHERE id = 2"));
        assert_eq!(stored, "b\"; DELETE FROM victim; --", "{kind:?}");

        let refused = sql(&db.url(), "csv", &format!("SELECT * FROM opdb.{}", df(bad_table)));
        assert!(!refused.success && refused.stderr.contains("cannot be used"), "{kind:?}: {}", refused.stderr);
        let missing = sql(&db.url(), "csv", "SELECT * FROM opdb.\"victim; DROP TABLE victim\"");
        assert!(!missing.success, "{kind:?}");
        assert_eq!(db.count("victim"), 1, "{kind:?}");
    }
}

/// With a read URL, reads go to the replica and writes to the primary.
#[test]
fn reads_go_to_the_replica_and_writes_to_the_primary() {
    let primary = Db::fresh(Kind::Pg, "sentio_it_opdb_primary");
    let replica = Db::fresh(Kind::Pg, "sentio_it_opdb_replica");
    primary.client("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'primary')");
    replica.client("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'replica')");
    let run_with = |statement: &str| {
        let mut c = sentio();
        c.env("SENTIO_OPDB_URL", primary.url()).env("SENTIO_OPDB_READ_URL", replica.url()).args([
            "sql",
            "--no-progress",
            "--format",
            "csv",
            "-c",
            statement,
        ]);
        run_ok(&mut c, Duration::from_secs(120)).stdout
    };
    assert!(run_with("SELECT v FROM opdb.t").contains("replica"));
    run_with("INSERT INTO opdb.t SELECT 2, 'written'");
    assert_eq!(primary.client("SELECT v FROM t WHERE id = 2"), "written");
    assert_eq!(replica.count("t"), 1);
    // Without a primary, writes are refused with a clear error.
    let mut c = sentio();
    c.env("SENTIO_OPDB_READ_URL", replica.url()).args([
        "sql",
        "--no-progress",
        "-c",
        "INSERT INTO opdb.t SELECT 3, 'x'",
    ]);
    let f = run(&mut c, Duration::from_secs(120));
    assert!(!f.success && f.stderr.contains("SENTIO_OPDB_URL"), "{}", f.stderr);
    assert_eq!(replica.count("t"), 1);
}

/// An operational DB that cannot be reached is a warning, not a dead
/// session: other catalogs stay usable, and `opdb` queries fail clearly.
#[test]
fn an_unreachable_opdb_leaves_the_rest_usable() {
    let url = "postgres://postgres@127.0.0.1:1/nowhere";
    let f = sql(url, "csv", "SELECT 41 + 1 AS answer");
    assert!(f.success && f.stdout.contains("42"), "{}", f.stderr);
    assert!(f.stderr.contains("opdb catalog is not available"), "{}", f.stderr);
    let f = sql(url, "csv", "SELECT * FROM opdb.sessions");
    assert!(!f.success && f.stderr.contains("opdb.sessions"), "{}", f.stderr);
}

/// A PostgreSQL server of the test's own (initdb in a temporary folder, a
/// free port, trust auth), so that it can be restarted without disturbing
/// the tests that use the machine's server; stopped when dropped.
struct PrivatePg {
    dir: tempfile::TempDir,
    port: u16,
}

impl PrivatePg {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = crate::support::free_port();
        if Self::as_root() {
            run_ok(Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()), Duration::from_secs(10));
        }
        let pg = Self { dir, port };
        run_ok(&mut pg.tool("initdb", &["-A", "trust", "-U", "postgres"]), Duration::from_secs(120));
        pg.ctl("start");
        pg
    }

    fn as_root() -> bool {
        run_ok(Command::new("id").arg("-u"), Duration::from_secs(5)).stdout.trim() == "0"
    }

    /// `bin` (a PostgreSQL server tool) with `args` and `-D` the data
    /// folder, as the `postgres` user when the test runs as root (the server
    /// refuses to run as root).
    fn tool(&self, bin: &str, args: &[&str]) -> Command {
        let versions = std::fs::read_dir("/usr/lib/postgresql").expect("PostgreSQL's server tools");
        let mut versions: Vec<_> = versions.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        versions.sort();
        let path = versions.last().unwrap().join("bin").join(bin);
        let mut c = if Self::as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        c.args(args).arg("-D").arg(self.dir.path().join("data"));
        c
    }

    /// `pg_ctl <action>` (start, restart), waiting until it is done.
    fn ctl(&self, action: &str) {
        let mut c = self.tool("pg_ctl", &[action, "-w", "-m", "fast"]);
        c.arg("-o").arg(format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, self.dir.path().display()));
        c.arg("-l").arg(self.dir.path().join("server.log"));
        run_ok(&mut c, Duration::from_secs(120));
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn psql(&self, sql: &str) -> String {
        let mut c = Command::new("psql");
        c.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", &self.url(), "-c", sql]);
        run_ok(&mut c, Duration::from_secs(300)).stdout.trim().to_string()
    }

    /// A fast restart: every session is ended, the server comes back.
    fn restart(&self) {
        self.ctl("restart");
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let _ = self.tool("pg_ctl", &["stop", "-m", "immediate"]).output();
    }
}

/// PostgreSQL restarted while Sentio reads and while it writes: the read
/// ends with the right answer (Ballista retries a task whose I/O failed,
/// and the server is back) or a clear error, never a partial one; the
/// write lands whole or not at all, and its rerun leaves one copy.
#[test]
fn postgres_restarted_mid_read_or_write_gives_whole_results_or_clear_errors() {
    let pg = PrivatePg::start();
    pg.psql(
        "CREATE TABLE big (id bigint PRIMARY KEY, k int); \
         INSERT INTO big SELECT g, g % 1000 FROM generate_series(1, 600000) g; \
         CREATE TABLE outputs (run_id text NOT NULL, src_id bigint, k int)",
    );
    let expected = pg.psql("SELECT COUNT(*) || ',' || SUM(k) FROM big");
    let restart_when = |cmd: &mut Command, seen: &str| {
        let mut running = Running::start(cmd, false);
        let started = Instant::now();
        while pg.psql(seen) == "0" {
            assert!(running.running(), "the statement ended before the restart");
            assert!(started.elapsed() < Duration::from_secs(120), "the statement never reached the database");
            std::thread::sleep(Duration::from_millis(30));
        }
        pg.restart();
        running.finish(Duration::from_secs(300))
    };

    let read = "SELECT COUNT(*) AS n, SUM(k) AS k FROM opdb.big";
    let mut cmd = sentio();
    cmd.env("SENTIO_OPDB_URL", pg.url()).args(["sql", "--no-progress", "--format", "csv", "-c", read]);
    let reading = "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = 'sentio' \
                   AND (query LIKE '%FROM \"big\"%' OR query LIKE 'FETCH % FROM sentio_read')";
    let f = restart_when(&mut cmd, reading);
    eprintln!("read across a restart: {}", if f.success { "answered" } else { f.stderr.trim() });
    if f.success {
        assert_eq!(f.stdout.lines().nth(1), Some(expected.as_str()), "a wrong answer after the restart");
    } else {
        assert!(f.stderr.contains("error:"), "unclear error:\n{}", f.stderr);
        assert_eq!(f.stdout.trim(), "", "a failed read printed rows");
    }

    let write = "INSERT INTO opdb.outputs SELECT 'run-1', id, k FROM opdb.big";
    let mut cmd = sentio();
    cmd.env("SENTIO_OPDB_URL", pg.url()).args(["sql", "--no-progress", "--format", "csv", "-c", write]);
    let staging = "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = 'sentio' \
                   AND query LIKE 'COPY \"_sentio_stage_%'";
    let f = restart_when(&mut cmd, staging);
    let landed = pg.psql("SELECT COUNT(*) FROM outputs");
    eprintln!(
        "write across a restart: {landed} rows landed; {}",
        if f.success { "succeeded" } else { f.stderr.trim() }
    );
    if f.success {
        assert_eq!(landed, "600000", "the write said it succeeded: {}", f.stderr);
    } else {
        assert!(f.stderr.contains("error:"), "unclear error:\n{}", f.stderr);
        assert!(landed == "0" || landed == "600000", "a partial write: {landed} rows\n{}", f.stderr);
    }
    let mut rerun = sentio();
    rerun.env("SENTIO_OPDB_URL", pg.url()).args(["sql", "--no-progress", "--format", "csv", "-c", write]);
    run_ok(&mut rerun, Duration::from_secs(300));
    assert_eq!(pg.psql("SELECT COUNT(*) || ',' || COUNT(DISTINCT src_id) FROM outputs"), "600000,600000");
}
