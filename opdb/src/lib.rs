//! The operational DB in SQL: the `opdb` catalog.
//!
//! Every table of the configured database (PostgreSQL, MySQL/MariaDB or
//! SQLite, through sqlx) appears as `opdb.<table>`:
//!
//! * **reads** push projections, filters ([`filter`]) and limits into the
//!   database, split large tables into integer key ranges read in parallel
//!   by the executors ([`scan`]), and run in read-only snapshot transactions
//!   with statement and lock timeouts ([`backend`]); with a read URL
//!   (`SENTIO_OPDB_READ_URL`, a replica) every read goes there;
//! * **writes** (`INSERT INTO opdb.t SELECT …`) stage each partition in its
//!   own table (PostgreSQL: binary `COPY`; MySQL and SQLite: multi-row
//!   inserts), then publish all of them in one transaction, replacing
//!   the earlier rows of the same run id or primary key ([`write`](mod@write)),
//!   one publish into a table at a time (`turn`); a
//!   client that cancels a write learns whether it had landed ([`settle`]);
//! * **bulk work is paced** ([`pace`]): reads, staging and publishing keep
//!   the database busy for at most a configured share of the time, so the
//!   applications on it keep their latency.
//!
//! Plans carry table and column names only ([`sentio_proto::OpdbTableNode`]);
//! each process connects with its own configuration, so no credentials ever
//! travel in a plan.

pub mod backend;
pub mod catalog;
pub mod filter;
pub mod introspect;
pub mod meta;
pub mod nodes;
pub mod pace;
pub mod scan;
pub mod settle;
pub mod types;
pub mod values;
pub mod write;

mod copy;
mod foreign;
mod stage;
mod turn;

use std::fmt;

use datafusion::error::DataFusionError;

pub use backend::{Backend, Timeouts};
pub use catalog::register_opdb;

use backend::{Conn, Purpose};
use pace::{Budget, Duty, Pacer};

/// What can go wrong with the operational DB.
#[derive(Debug, thiserror::Error)]
pub enum OpdbError {
    /// The configuration (URL) is wrong.
    #[error("operational DB configuration: {0}")]
    Config(String),

    /// This process has no operational DB configured.
    #[error(
        "no operational DB is configured on this process ({0}); set SENTIO_OPDB_URL (and \
         SENTIO_OPDB_READ_URL for a read replica) or opdb_url in sentio.toml"
    )]
    NotConfigured(&'static str),

    /// The database could not be reached in time.
    #[error("operational DB unavailable: {0}")]
    Unavailable(String),

    /// An error reported by the database or its driver.
    #[error("operational DB: {0}")]
    Database(#[from] sqlx::Error),

    /// A column whose type Sentio does not map.
    #[error(
        "opdb.{table}: column {column:?} has type {db_type}, which Sentio cannot read \
         (supported: integers, floats, numeric/decimal, text, boolean, date, time, \
         timestamp, uuid, json, bytea/blob); select the other columns or cast it in a view"
    )]
    UnsupportedType {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// The database's name for its type.
        db_type: String,
    },

    /// A value that does not fit its column.
    #[error("opdb.{table}: column {column:?}: {message}")]
    Value {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// What is wrong with the value.
        message: String,
    },

    /// A plan node that does not make sense here.
    #[error("{0}")]
    Plan(String),

    /// The task was cancelled before the write was published; nothing was.
    #[error("the write was cancelled before it was published")]
    Cancelled,
}

impl From<OpdbError> for DataFusionError {
    fn from(e: OpdbError) -> Self {
        DataFusionError::External(Box::new(e))
    }
}

/// Where this process finds the operational DB: its own configuration,
/// never anything from a plan.
#[derive(Clone, Default)]
pub struct Opdb {
    write_url: Option<String>,
    read_url: Option<String>,
    timeouts: Timeouts,
    budget: Budget,
}

impl fmt::Debug for Opdb {
    // URLs may hold passwords: show only the engines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let engine = |u: &Option<String>| u.as_deref().map(|u| Backend::of_url(u).map(Backend::name).unwrap_or("?"));
        f.debug_struct("Opdb").field("write", &engine(&self.write_url)).field("read", &engine(&self.read_url)).finish()
    }
}

impl Opdb {
    /// An operational DB at `write_url`, read from `read_url` when given.
    pub fn new(write_url: Option<String>, read_url: Option<String>) -> Self {
        Self { write_url, read_url, timeouts: Timeouts::default(), budget: Budget::default() }
    }

    /// The same database with bulk work paced to `duty` ([`pace`]): one
    /// budget for all the sessions of this `Opdb` and its clones.
    pub fn with_duty(mut self, duty: Duty) -> Self {
        self.budget = Budget::new(duty);
        self
    }

    /// The timeouts of this process's connections.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// A pacer for one session's bulk work, drawing on the process's budget.
    pub fn pacer(&self) -> Pacer {
        self.budget.pacer()
    }

    /// Whether any URL is configured.
    pub fn is_configured(&self) -> bool {
        self.write_url.is_some() || self.read_url.is_some()
    }

    /// The URL reads go to: the read replica if configured, else the primary.
    pub fn read_url(&self) -> Result<&str, OpdbError> {
        self.read_url.as_deref().or(self.write_url.as_deref()).ok_or(OpdbError::NotConfigured("reading"))
    }

    /// The URL writes go to.
    pub fn write_url(&self) -> Result<&str, OpdbError> {
        self.write_url.as_deref().ok_or(OpdbError::NotConfigured(
            "writing needs SENTIO_OPDB_URL, the primary; SENTIO_OPDB_READ_URL is only read",
        ))
    }

    /// Connects to the read endpoint, checking it is the engine a plan expects.
    pub async fn connect_read(&self, expected: Option<Backend>) -> Result<Conn, OpdbError> {
        let url = self.read_url()?;
        check_backend(url, expected)?;
        backend::connect(url, Purpose::Read, self.timeouts).await
    }

    /// Connects to the primary, checking it is the engine a plan expects.
    pub async fn connect_write(&self, expected: Option<Backend>) -> Result<Conn, OpdbError> {
        let url = self.write_url()?;
        check_backend(url, expected)?;
        backend::connect(url, Purpose::Write, self.timeouts).await
    }
}

fn check_backend(url: &str, expected: Option<Backend>) -> Result<(), OpdbError> {
    let actual = Backend::of_url(url)?;
    match expected {
        Some(e) if e != actual => Err(OpdbError::Plan(format!(
            "this plan reads a {} operational DB but this process is configured for {}; \
             the client, scheduler and executors must share one SENTIO_OPDB_URL",
            e.name(),
            actual.name()
        ))),
        _ => Ok(()),
    }
}
