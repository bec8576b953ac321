//! Publishing turns: writes into one table publish one at a time.
//!
//! A publish deletes the earlier rows of its run ids (or keys) and inserts
//! its staged rows in one READ COMMITTED transaction. Two publishes of the
//! same run id at once would each delete only what was committed when they
//! looked — neither sees the other's uncommitted rows — and both commit: two
//! copies. So each publish first takes the table's *turn*, a lock of its own
//! that no application takes: PostgreSQL's transaction advisory lock, MySQL's
//! named lock (`GET_LOCK`), and on SQLite the database's write lock that
//! `BEGIN IMMEDIATE` already holds. The second publish waits for the first
//! to commit, and its `DELETE` then sees (and replaces) the first's rows.
//! Applications never wait for a turn: only publishes take it.
//!
//! The wait polls without blocking (`pg_try_advisory_xact_lock`,
//! `GET_LOCK(…, 0)`), so the connection's short lock timeout does not end
//! it and a cancelled write stops waiting at once.

use std::time::Duration;

use sqlx::AssertSqlSafe;

use super::OpdbError;
use super::backend::{Backend, Conn};

/// How long a publish waits between two looks at a turn held by another.
const POLL: Duration = Duration::from_millis(50);

/// Waits until this connection holds the publishing turn of `table` — on
/// PostgreSQL until its transaction ends, on MySQL until [`give_back`] or
/// the connection closes — for at most `wait`. `check` is called between
/// looks and ends the wait with its error (a cancelled task).
pub async fn take(
    conn: &mut Conn,
    table: &str,
    wait: Duration,
    mut check: impl FnMut() -> Result<(), OpdbError>,
) -> Result<(), OpdbError> {
    let started = tokio::time::Instant::now();
    while !try_take(conn, table).await? {
        check()?;
        if started.elapsed() >= wait {
            return Err(OpdbError::Plan(format!(
                "opdb.{table}: another write into this table kept publishing for {} s; nothing of this write \
                 was published — run it again",
                wait.as_secs()
            )));
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(())
}

/// Gives the turn of `table` back where it outlives the transaction
/// (MySQL's named locks); errors are ignored, closing the connection gives
/// it back too.
pub async fn give_back(conn: &mut Conn, table: &str) {
    if conn.backend() == Backend::MySql {
        let sql = AssertSqlSafe(format!("SELECT RELEASE_LOCK({})", mysql_lock_name()));
        if let Conn::My(c) = conn {
            let _ = sqlx::query(sql).bind(table).execute(c).await;
        }
    }
}

async fn try_take(conn: &mut Conn, table: &str) -> Result<bool, OpdbError> {
    Ok(match conn {
        Conn::Pg(c) => {
            sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtextextended('sentio publish ' || $1, 0))")
                .bind(table)
                .fetch_one(c)
                .await?
        }
        Conn::My(c) => {
            let sql = AssertSqlSafe(format!("SELECT CAST(GET_LOCK({}, 0) AS SIGNED)", mysql_lock_name()));
            let got: Option<i64> = sqlx::query_scalar(sql).bind(table).fetch_one(c).await?;
            got == Some(1)
        }
        // BEGIN IMMEDIATE holds the database's write lock.
        Conn::Lite(_) => true,
    })
}

/// The named lock of a table (bound as the one parameter): server-wide in
/// MySQL, so it names the database too; at most 64 characters.
fn mysql_lock_name() -> &'static str {
    "CONCAT('sentio publish ', SHA1(CONCAT(DATABASE(), '.', ?)))"
}
