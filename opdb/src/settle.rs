//! Settling a cancelled write: after a client cancels the cluster job of an
//! `INSERT INTO opdb.…` (Ctrl-C, a timeout), the write was either published
//! already or never will be, and the client can say which.
//!
//! Cancelling a job is a request: the executor that publishes the write
//! stops at its next unit of work, unless it is already committing — or the
//! request never reaches it. So the publishing transaction records its job
//! in [`WRITE_LOG`] ([`write::job_key`]) just before it commits, and the
//! client inserts the same key with `row_count` [`write::CANCELLED_ROWS`]:
//!
//! * the publish committed first: the client's insert fails on the key, and
//!   the publish's row tells how many rows landed;
//! * the publish is inside its transaction with the key inserted: the
//!   client's insert waits for it to commit or roll back, then as above or
//!   below;
//! * otherwise the client's insert commits first, and the publish — even on
//!   an executor the cancellation never reached — fails on the key at its
//!   end and rolls back.

use std::sync::Arc;
use std::time::Duration;

use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::{DmlStatement, LogicalPlan, WriteOp};

use super::backend::{Backend, Conn};
use super::meta::TableMeta;
use super::scan::OpdbTable;
use super::write::{self, CANCELLED_ROWS, WRITE_LOG};
use super::{Opdb, OpdbError};

/// How long settling waits for a publishing transaction that is committing.
pub const SETTLE_WAIT: Duration = Duration::from_secs(60);

/// What became of a cancelled write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// It had been published (committed) before the cancellation: this many
    /// rows landed.
    Published(u64),
    /// Nothing of it landed, and nothing will.
    Unchanged,
}

/// The operational DB and table that `plan` (a statement's logical plan)
/// inserts into, if it is an `INSERT INTO opdb.…`.
pub fn write_target(plan: &LogicalPlan) -> Option<(Arc<Opdb>, TableMeta)> {
    let LogicalPlan::Dml(DmlStatement { target, op: WriteOp::Insert(_), .. }) = plan else {
        return None;
    };
    let provider = source_as_provider(target).ok()?;
    let table = (provider.as_ref() as &dyn std::any::Any).downcast_ref::<OpdbTable>()?;
    Some((Arc::clone(table.opdb()), table.meta().clone()))
}

/// Settles the write that cluster job `job` makes into `meta`'s table,
/// once the job was cancelled (see the module docs).
pub async fn settle(opdb: &Opdb, meta: &TableMeta, job: &str) -> Result<Settled, OpdbError> {
    let mut conn = opdb.connect_write(Some(meta.backend)).await?;
    let settled = settle_on(&mut conn, meta, job).await;
    conn.close().await;
    settled
}

async fn settle_on(conn: &mut Conn, meta: &TableMeta, job: &str) -> Result<Settled, OpdbError> {
    write::create_write_log(conn).await?;
    // Wait as long as a commit may take, not the bulk work's lock timeout.
    let secs = SETTLE_WAIT.as_secs();
    match conn.backend() {
        Backend::Postgres => conn.execute(&format!("SET lock_timeout = '{secs}s'")).await?,
        Backend::MySql => conn.execute(&format!("SET SESSION innodb_lock_wait_timeout = {secs}")).await?,
        // busy_timeout, set at connect.
        Backend::Sqlite => 0,
    };
    let key = write::job_key(job);
    let now = chrono::Utc::now().to_rfc3339();
    let fence = write::record_sql(conn.backend(), CANCELLED_ROWS);
    match write::execute_with_text(conn, &fence, &[&key, &meta.table, &now]).await {
        Ok(_) => Ok(Settled::Unchanged),
        Err(OpdbError::Database(e)) if write::is_unique_violation(&e) => {
            match write::logged_rows(conn, &key).await? {
                Some(rows) if rows >= 0 => Ok(Settled::Published(rows as u64)),
                // Settled before (a second cancellation of the same job).
                _ => Ok(Settled::Unchanged),
            }
        }
        Err(e) => Err(e),
    }
}

/// What a message about the cancelled write of job `job` into `table` says.
///
/// ```
/// use sentio_opdb::settle::{describe, Settled};
/// assert_eq!(describe("t", "j1", &Ok(Settled::Unchanged)), "opdb.t is unchanged");
/// assert_eq!(
///     describe("t", "j1", &Ok(Settled::Published(3))),
///     "opdb.t had already received its 3 rows"
/// );
/// ```
pub fn describe(table: &str, job: &str, settled: &Result<Settled, OpdbError>) -> String {
    match settled {
        Ok(Settled::Unchanged) => format!("opdb.{table} is unchanged"),
        Ok(Settled::Published(rows)) => format!("opdb.{table} had already received its {rows} rows"),
        Err(e) => format!(
            "whether opdb.{table} received its rows could not be told ({e}); if it did, {WRITE_LOG} has a row \
             whose write_id is '{}'",
            write::job_key(job)
        ),
    }
}
