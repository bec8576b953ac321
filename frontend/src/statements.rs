//! Who ran what: every statement sent to the front end, with its user,
//! text, times, status and what it read and returned, queryable as
//! `system.statements` in every session.
//!
//! The log lives in the scheduler's memory and keeps the newest
//! [`KEPT`] statements; it starts empty when the scheduler restarts.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result;
use sentio_sql::ids::now_micros;
use sentio_sql::local::ProcessRows;

use crate::auth::Principal;

/// How many statements the log keeps.
pub const KEPT: usize = 10_000;

/// How a statement ended (or that it has not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Planned or running, or its rows not yet fetched.
    Running,
    /// Ran to its end and its rows were sent.
    Ok,
    /// Failed with an error.
    Failed,
    /// Refused: the user's role does not allow it.
    Refused,
    /// The client left before it ended (its job was cancelled).
    Cancelled,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Ok => "ok",
            Status::Failed => "failed",
            Status::Refused => "refused",
            Status::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone)]
struct Record {
    id: i64,
    user: String,
    text: String,
    started_at: i64,
    ended_at: Option<i64>,
    status: Status,
    error: Option<String>,
    rows: Option<u64>,
    bytes_returned: Option<u64>,
    bytes_scanned: Option<u64>,
    bytes_spilled: Option<u64>,
    jobs: Vec<String>,
}

/// How a statement ended, for `StatementLog::end`.
#[derive(Debug, Clone, Default)]
pub struct Ending {
    /// Rows sent to the client.
    pub rows: Option<u64>,
    /// Bytes of Flight messages sent to the client.
    pub bytes_returned: Option<u64>,
    /// What its cluster jobs read from their sources.
    pub bytes_scanned: Option<u64>,
    /// What its cluster jobs spilled to the executors' disks.
    pub bytes_spilled: Option<u64>,
    /// The error, when it failed or was refused.
    pub error: Option<String>,
    /// The cluster jobs it ran.
    pub jobs: Vec<String>,
}

/// The `DoAction` type that answers a statement's [`Outcome`]; its body is
/// the statement's id, which the statement's `FlightInfo` carries in its
/// `app_metadata` as decimal text.
pub const OUTCOME_ACTION: &str = "sentio.statement_outcome";

/// The trailing metadata of a statement's `DoGet` stream that says how it
/// ended ([`Outcome`] as JSON), sent after the last row: Sentio's client
/// reads it there instead of asking with [`OUTCOME_ACTION`], one round trip
/// less per statement. Other Flight clients ignore it.
pub const OUTCOME_TRAILER: &str = "sentio-outcome-bin";

/// How a statement ended, as the front end tells its client after the last
/// row (JSON in the [`OUTCOME_TRAILER`] and in the body of the
/// [`OUTCOME_ACTION`]'s result).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Outcome {
    /// `running`, `ok`, `failed`, `refused` or `cancelled`.
    pub status: String,
    /// Rows sent to the client.
    pub rows_returned: Option<u64>,
    /// What its cluster jobs read from their sources.
    pub bytes_scanned: Option<u64>,
    /// What its cluster jobs spilled to the executors' disks.
    #[serde(default)]
    pub bytes_spilled: Option<u64>,
    /// The cluster jobs it ran, in order.
    pub jobs: Vec<String>,
}

/// The log, shared by every session of the front end.
#[derive(Debug, Default)]
pub struct StatementLog {
    records: Mutex<VecDeque<Record>>,
    next_id: Mutex<i64>,
}

impl StatementLog {
    /// Records that `who` started `text`; returns the statement's id.
    fn begin(&self, who: &Principal, text: &str) -> i64 {
        let id = {
            let mut next = self.next_id.lock().unwrap_or_else(|e| e.into_inner());
            *next += 1;
            *next
        };
        let mut records = self.lock();
        if records.len() == KEPT {
            records.pop_front();
        }
        records.push_back(Record {
            id,
            user: who.name.clone(),
            text: text.to_string(),
            started_at: now_micros(),
            ended_at: None,
            status: Status::Running,
            error: None,
            rows: None,
            bytes_returned: None,
            bytes_scanned: None,
            bytes_spilled: None,
            jobs: Vec::new(),
        });
        id
    }

    /// Records that `who` started `text`, as an [`Entry`] that records how
    /// it ended — as cancelled if it is dropped first (the client hung up
    /// while the statement was planned, trained or streamed, or never
    /// fetched its rows).
    pub fn open(self: &Arc<Self>, who: &Principal, text: &str) -> Entry {
        let id = self.begin(who, text);
        Entry { log: Arc::clone(self), id, open: AtomicBool::new(true) }
    }

    /// Records how statement `id` ended ([`Entry::end`]).
    fn end(&self, id: i64, status: Status, ending: Ending) {
        let mut records = self.lock();
        if let Some(r) = records.iter_mut().rev().find(|r| r.id == id) {
            r.ended_at = Some(now_micros());
            r.status = status;
            r.error = ending.error;
            r.rows = ending.rows;
            r.bytes_returned = ending.bytes_returned;
            r.bytes_scanned = ending.bytes_scanned;
            r.bytes_spilled = ending.bytes_spilled;
            r.jobs = ending.jobs;
        }
    }

    /// The outcome of statement `id`, if `user` ran it and the log still
    /// has it.
    pub fn outcome(&self, id: i64, user: &str) -> Option<Outcome> {
        let records = self.lock();
        let r = records.iter().rev().find(|r| r.id == id && r.user == user)?;
        Some(Outcome {
            status: r.status.as_str().to_string(),
            rows_returned: r.rows,
            bytes_scanned: r.bytes_scanned,
            bytes_spilled: r.bytes_spilled,
            jobs: r.jobs.clone(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Record>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A statement in the log that has not ended yet.
#[derive(Debug)]
pub struct Entry {
    log: Arc<StatementLog>,
    id: i64,
    open: AtomicBool,
}

impl Entry {
    /// The statement's id in the log.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// How the statement ended, as its user `user` is told.
    pub fn outcome(&self, user: &str) -> Option<Outcome> {
        self.log.outcome(self.id, user)
    }

    /// Records how the statement ended; only the first ending counts.
    pub fn end(&self, status: Status, ending: Ending) {
        if self.open.swap(false, Ordering::SeqCst) {
            self.log.end(self.id, status, ending);
        }
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let error = Some("the client left before the statement ended".to_string());
        self.end(Status::Cancelled, Ending { error, ..Ending::default() });
    }
}

impl ProcessRows for StatementLog {
    fn schema(&self) -> SchemaRef {
        let time = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        Arc::new(Schema::new(vec![
            Field::new("statement_id", DataType::Int64, false),
            Field::new("user_name", DataType::Utf8, false),
            Field::new("statement", DataType::Utf8, false),
            Field::new("started_at", time.clone(), false),
            Field::new("ended_at", time, true),
            Field::new("status", DataType::Utf8, false),
            Field::new("error", DataType::Utf8, true),
            Field::new("rows_returned", DataType::UInt64, true),
            Field::new("bytes_returned", DataType::UInt64, true),
            Field::new("bytes_scanned", DataType::UInt64, true),
            Field::new("bytes_spilled", DataType::UInt64, true),
            Field::new("jobs", DataType::Utf8, true),
        ]))
    }

    fn rows(&self) -> Result<RecordBatch> {
        let records: Vec<Record> = self.lock().iter().cloned().collect();
        let utc = |v: Vec<Option<i64>>| TimestampMicrosecondArray::from(v).with_timezone("UTC");
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(records.iter().map(|r| r.id))),
            Arc::new(StringArray::from_iter_values(records.iter().map(|r| &r.user))),
            Arc::new(StringArray::from_iter_values(records.iter().map(|r| &r.text))),
            Arc::new(utc(records.iter().map(|r| Some(r.started_at)).collect())),
            Arc::new(utc(records.iter().map(|r| r.ended_at).collect())),
            Arc::new(StringArray::from_iter_values(records.iter().map(|r| r.status.as_str()))),
            Arc::new(StringArray::from(records.iter().map(|r| r.error.clone()).collect::<Vec<_>>())),
            Arc::new(UInt64Array::from(records.iter().map(|r| r.rows).collect::<Vec<_>>())),
            Arc::new(UInt64Array::from(records.iter().map(|r| r.bytes_returned).collect::<Vec<_>>())),
            Arc::new(UInt64Array::from(records.iter().map(|r| r.bytes_scanned).collect::<Vec<_>>())),
            Arc::new(UInt64Array::from(records.iter().map(|r| r.bytes_spilled).collect::<Vec<_>>())),
            Arc::new(StringArray::from(
                records.iter().map(|r| (!r.jobs.is_empty()).then(|| r.jobs.join(","))).collect::<Vec<_>>(),
            )),
        ];
        Ok(RecordBatch::try_new(self.schema(), columns)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, AsArray};

    fn who() -> Principal {
        Principal::for_tests("ana")
    }

    #[test]
    fn statements_are_logged_with_how_they_ended() {
        let log = StatementLog::default();
        let a = log.begin(&who(), "SELECT 1");
        let b = log.begin(&who(), "DROP MODEL m");
        let jobs = vec!["j1".to_string()];
        log.end(a, Status::Ok, Ending { rows: Some(1), bytes_returned: Some(300), jobs, ..Ending::default() });
        log.end(b, Status::Refused, Ending { error: Some("reader".into()), ..Ending::default() });
        let rows = log.rows().unwrap();
        assert_eq!(rows.num_rows(), 2);
        let status = rows.column_by_name("status").unwrap().as_string::<i32>();
        assert_eq!((status.value(0), status.value(1)), ("ok", "refused"));
        let returned =
            rows.column_by_name("rows_returned").unwrap().as_primitive::<datafusion::arrow::datatypes::UInt64Type>();
        assert_eq!((returned.value(0), returned.is_null(1)), (1, true));
        let outcome = log.outcome(a, "ana").unwrap();
        assert_eq!((outcome.status.as_str(), outcome.jobs), ("ok", vec!["j1".to_string()]));
        assert_eq!(log.outcome(a, "someone else"), None, "only its user is told");
    }

    #[test]
    fn a_statement_dropped_before_its_end_is_cancelled() {
        let log = Arc::new(StatementLog::default());
        let ended = log.open(&who(), "SELECT 1");
        ended.end(Status::Ok, Ending::default());
        drop(ended);
        drop(log.open(&who(), "CREATE MODEL m"));
        let rows = log.rows().unwrap();
        let status = rows.column_by_name("status").unwrap().as_string::<i32>();
        assert_eq!((status.value(0), status.value(1)), ("ok", "cancelled"));
        let error = rows.column_by_name("error").unwrap().as_string::<i32>();
        assert!(error.is_null(0) && error.value(1).contains("client left"), "{error:?}");
        assert!(!rows.column_by_name("ended_at").unwrap().is_null(1));
    }

    #[test]
    fn the_log_keeps_the_newest_statements() {
        let log = StatementLog::default();
        for i in 0..KEPT + 5 {
            log.begin(&who(), &format!("SELECT {i}"));
        }
        let rows = log.rows().unwrap();
        assert_eq!(rows.num_rows(), KEPT);
        let text = rows.column_by_name("statement").unwrap().as_string::<i32>();
        assert_eq!(text.value(0), "SELECT 5");
    }
}
