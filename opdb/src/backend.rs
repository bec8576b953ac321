//! The three database engines behind `opdb`: URLs, quoting, connections with
//! timeouts, and read-only snapshot transactions.

use std::str::FromStr;
use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};

use super::OpdbError;

/// Which engine a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL (`postgres://…`, `postgresql://…`).
    Postgres,
    /// MySQL or MariaDB (`mysql://…`, `mariadb://…`).
    MySql,
    /// SQLite (`sqlite:path`).
    Sqlite,
}

impl Backend {
    /// The engine of a connection URL.
    ///
    /// ```
    /// use sentio_opdb::Backend;
    /// assert_eq!(Backend::of_url("postgres://db/app").unwrap(), Backend::Postgres);
    /// assert_eq!(Backend::of_url("sqlite:opdb.sqlite").unwrap(), Backend::Sqlite);
    /// assert!(Backend::of_url("oracle://db").is_err());
    /// ```
    pub fn of_url(url: &str) -> Result<Self, OpdbError> {
        let scheme = url.split(':').next().unwrap_or("").to_ascii_lowercase();
        match scheme.as_str() {
            "postgres" | "postgresql" => Ok(Self::Postgres),
            "mysql" | "mariadb" => Ok(Self::MySql),
            "sqlite" => Ok(Self::Sqlite),
            _ => Err(OpdbError::Config(format!(
                "unsupported operational DB URL scheme {scheme:?} (use postgres://, mysql:// or sqlite:)"
            ))),
        }
    }

    /// The name stored in plans.
    pub fn name(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::MySql => "mysql",
            Self::Sqlite => "sqlite",
        }
    }

    /// Parses [`Backend::name`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "postgres" => Some(Self::Postgres),
            "mysql" => Some(Self::MySql),
            "sqlite" => Some(Self::Sqlite),
            _ => None,
        }
    }

    /// Quotes an identifier for this engine. Every table and column name
    /// Sentio sends is quoted, so names with quotes, semicolons or SQL in them
    /// stay names.
    ///
    /// ```
    /// use sentio_opdb::Backend;
    /// assert_eq!(Backend::Postgres.quote(r#"a"; DROP TABLE x; --"#), r#""a""; DROP TABLE x; --""#);
    /// assert_eq!(Backend::MySql.quote("a`b"), "`a``b`");
    /// ```
    pub fn quote(self, ident: &str) -> String {
        let q = if self == Self::MySql { '`' } else { '"' };
        let mut s = String::with_capacity(ident.len() + 2);
        s.push(q);
        for c in ident.chars() {
            if c == q {
                s.push(q);
            }
            s.push(c);
        }
        s.push(q);
        s
    }

    /// The placeholder for the `n`th (1-based) bound parameter.
    pub fn placeholder(self, n: usize) -> String {
        match self {
            Self::Postgres => format!("${n}"),
            _ => "?".to_string(),
        }
    }
}

/// Timeouts applied to every connection Sentio opens to the operational DB.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timeouts {
    /// Longest a single statement may run.
    pub statement: Duration,
    /// Longest a statement waits for a lock before it gives up.
    pub lock: Duration,
    /// Longest a connection attempt may take.
    pub connect: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self { statement: Duration::from_secs(600), lock: Duration::from_secs(2), connect: Duration::from_secs(10) }
    }
}

/// What a connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Reads (catalog, scans): read-only where the engine allows it.
    Read,
    /// Staging and publishing writes.
    Write,
    /// Loading tables whole (`sentio datagen`): a write connection that
    /// creates a SQLite file when it is missing.
    Load,
}

/// An open connection to one of the engines.
pub enum Conn {
    /// PostgreSQL.
    Pg(PgConnection),
    /// MySQL / MariaDB.
    My(MySqlConnection),
    /// SQLite.
    Lite(SqliteConnection),
}

/// The name Sentio's connections carry (`application_name` in PostgreSQL).
pub const APPLICATION_NAME: &str = "sentio";

/// Opens a connection with Sentio's session settings and timeouts.
pub async fn connect(url: &str, purpose: Purpose, timeouts: Timeouts) -> Result<Conn, OpdbError> {
    let backend = Backend::of_url(url)?;
    let fut = async {
        Ok::<Conn, OpdbError>(match backend {
            Backend::Postgres => {
                let ms = |d: Duration| format!("{}", d.as_millis());
                let opts = PgConnectOptions::from_str(url)
                    .map_err(|e| OpdbError::Config(format!("operational DB URL: {e}")))?
                    .application_name(APPLICATION_NAME)
                    .options([
                        ("statement_timeout", ms(timeouts.statement)),
                        ("lock_timeout", ms(timeouts.lock)),
                        ("idle_in_transaction_session_timeout", ms(timeouts.statement)),
                    ])
                    .disable_statement_logging();
                Conn::Pg(opts.connect().await?)
            }
            Backend::MySql => {
                let opts = MySqlConnectOptions::from_str(url)
                    .map_err(|e| OpdbError::Config(format!("operational DB URL: {e}")))?
                    .disable_statement_logging();
                let mut c = opts.connect().await?;
                let (version, log_bin, binlog_format): (String, i64, String) = sqlx::query_as(
                    "SELECT VERSION(), CAST(@@GLOBAL.log_bin AS SIGNED), CAST(@@SESSION.binlog_format AS CHAR)",
                )
                .fetch_one(&mut c)
                .await?;
                let statement_limit = if version.to_ascii_lowercase().contains("mariadb") {
                    format!("max_statement_time = {}", timeouts.statement.as_secs_f64())
                } else {
                    format!("max_execution_time = {}", timeouts.statement.as_millis())
                };
                let lock_secs = timeouts.lock.as_secs().max(1);
                // Strict mode whatever the server's default: without it
                // (MySQL 5.7's RDS default, `sql_mode = ''`) a value too
                // long for its column is cut to fit, with a warning nobody
                // reads, instead of failing the write.
                let set = format!(
                    "SET SESSION {statement_limit}, SESSION innodb_lock_wait_timeout = {lock_secs}, \
                     SESSION lock_wait_timeout = {lock_secs}, \
                     SESSION sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), 'STRICT_ALL_TABLES')"
                );
                sqlx::raw_sql(AssertSqlSafe(set)).execute(&mut c).await?;
                // Writes run READ COMMITTED (PostgreSQL's default), not the
                // server's REPEATABLE READ: there a `DELETE` that scans the
                // table — a rerun's `DELETE … WHERE EXISTS` on a `run_id`
                // without an index — keeps a next-key lock on every row it
                // looked at until COMMIT, so every insert the application
                // makes into the table waits for the whole publish. READ
                // COMMITTED keeps only the rows it deletes locked. Where the
                // binary log is written statement by statement, InnoDB
                // refuses to write under READ COMMITTED, so there the
                // server's default stays.
                let statement_binlog = log_bin != 0 && binlog_format.eq_ignore_ascii_case("STATEMENT");
                if purpose != Purpose::Read && !statement_binlog {
                    sqlx::raw_sql("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED").execute(&mut c).await?;
                }
                Conn::My(c)
            }
            Backend::Sqlite => {
                let opts = SqliteConnectOptions::from_str(url)
                    .map_err(|e| OpdbError::Config(format!("operational DB URL: {e}")))?
                    .busy_timeout(timeouts.statement.min(Duration::from_secs(60)))
                    .read_only(purpose == Purpose::Read)
                    .create_if_missing(purpose == Purpose::Load)
                    .disable_statement_logging();
                Conn::Lite(opts.connect().await?)
            }
        })
    };
    tokio::time::timeout(timeouts.connect, fut)
        .await
        .map_err(|_| OpdbError::Unavailable(format!("no connection within {} s", timeouts.connect.as_secs())))?
}

impl Conn {
    /// The engine of this connection.
    pub fn backend(&self) -> Backend {
        match self {
            Self::Pg(_) => Backend::Postgres,
            Self::My(_) => Backend::MySql,
            Self::Lite(_) => Backend::Sqlite,
        }
    }

    /// Runs statements without results (no parameters).
    pub async fn execute(&mut self, sql: &str) -> Result<u64, OpdbError> {
        let sql = AssertSqlSafe(sql.to_string());
        Ok(match self {
            Self::Pg(c) => sqlx::raw_sql(sql).execute(c).await?.rows_affected(),
            Self::My(c) => sqlx::raw_sql(sql).execute(c).await?.rows_affected(),
            Self::Lite(c) => sqlx::raw_sql(sql).execute(c).await?.rows_affected(),
        })
    }

    /// Starts the read-only snapshot transaction every scan runs in.
    pub async fn begin_snapshot(&mut self) -> Result<(), OpdbError> {
        match self.backend() {
            Backend::Postgres => {
                self.execute("BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
            }
            Backend::MySql => {
                self.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").await?;
                self.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY").await?;
            }
            Backend::Sqlite => {
                self.execute("BEGIN DEFERRED").await?;
            }
        }
        Ok(())
    }

    /// Starts a read-write transaction (on MySQL READ COMMITTED, as
    /// [`connect`] set it for [`Purpose::Write`]).
    pub async fn begin(&mut self) -> Result<(), OpdbError> {
        let sql = match self.backend() {
            Backend::Postgres => "BEGIN",
            Backend::MySql => "START TRANSACTION",
            Backend::Sqlite => "BEGIN IMMEDIATE",
        };
        self.execute(sql).await.map(|_| ())
    }

    /// Commits the open transaction.
    pub async fn commit(&mut self) -> Result<(), OpdbError> {
        self.execute("COMMIT").await.map(|_| ())
    }

    /// Rolls back the open transaction, ignoring errors (the connection may
    /// already be gone).
    pub async fn rollback(&mut self) {
        let _ = self.execute("ROLLBACK").await;
    }

    /// Closes the connection politely.
    pub async fn close(self) {
        let _ = match self {
            Self::Pg(c) => c.close().await,
            Self::My(c) => c.close().await,
            Self::Lite(c) => c.close().await,
        };
    }
}
