//! A statement's result on its way to the client: rows and bytes counted,
//! the statement log told how it ended, and its cluster job cancelled if the
//! client leaves before the last row. A failed task's error reaches the
//! client as its message ([`SentioError`]'s), and a plan too large to send to
//! the scheduler is explained ([`sentio_sql::codec::plan_size::oversized`]), not reported as a
//! bare transport error.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow_flight::FlightData;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::logical_expr::LogicalPlan;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use sentio_sql::SentioError;
use sentio_sql::jobs;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};

use crate::cancel::CancelOnDrop;
use crate::sessions::{Output, Pending, Session};
use crate::statements::{Ending, Entry, OUTCOME_TRAILER, Status as LogStatus};

/// The stream of Flight messages a `DoGet` answers with.
pub type FlightStream = Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send + 'static>>;

/// What was sent so far. Dropped before the end (the client left), its
/// entry records the statement as cancelled.
struct Sent {
    entry: Entry,
    rows: AtomicU64,
    bytes: AtomicU64,
}

impl Sent {
    fn end(&self, status: LogStatus, job_bytes: Option<jobs::JobBytes>, error: Option<String>, jobs: Vec<String>) {
        let ending = Ending {
            rows: Some(self.rows.load(Ordering::Relaxed)),
            bytes_returned: Some(self.bytes.load(Ordering::Relaxed)),
            bytes_scanned: job_bytes.map(|b| b.scanned),
            bytes_spilled: job_bytes.map(|b| b.spilled),
            error,
            jobs,
        };
        self.entry.end(status, ending);
    }
}

/// Streams `pending`'s rows to the client: a plan runs now, on the cluster,
/// as the client reads. After the last row, the stream's trailers say how
/// the statement ended ([`OUTCOME_TRAILER`]).
pub fn deliver(pending: Pending, session: &Session) -> Result<FlightStream, Status> {
    let schema = pending.schema();
    let (sent, rows) = rows(pending, session)?;
    let counting = Arc::clone(&sent);
    let data = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(rows)
        .inspect_ok(move |d| {
            counting.bytes.fetch_add(d.encoded_len() as u64, Ordering::Relaxed);
        })
        .map_err(Status::from);
    // Polled only once every row went out (the rows' stream ended the log
    // entry by then); a stream that failed has ended with its error instead.
    let user = session.principal.name.clone();
    let trailers = futures::stream::once(async move { Err(outcome_trailers(&sent, &user)) });
    Ok(Box::pin(data.chain(trailers)))
}

/// The end of a `DoGet` stream that went well: status OK, with the
/// statement's [`Outcome`](crate::statements::Outcome) in its trailers (a
/// successful status ends the stream normally, tonic sending it as trailers).
fn outcome_trailers(sent: &Sent, user: &str) -> Status {
    let mut metadata = MetadataMap::new();
    if let Some(json) = sent.entry.outcome(user).and_then(|o| serde_json::to_vec(&o).ok()) {
        metadata.insert_bin(OUTCOME_TRAILER, MetadataValue::from_bytes(&json));
    }
    Status::with_metadata(Code::Ok, "", metadata)
}

/// Runs `pending` to its end and returns its rows (the count of a write,
/// for `DoPut`), logged as [`deliver`] logs them.
pub async fn collect(pending: Pending, session: &Session) -> Result<Vec<RecordBatch>, Status> {
    let (_sent, rows) = rows(pending, session)?;
    rows.try_collect().await.map_err(Status::from)
}

type Rows = futures::stream::BoxStream<'static, Result<RecordBatch, FlightError>>;

/// `pending`'s rows as they come (a plan runs on the cluster as they are
/// read), counted into the log entry; past the last one the entry gets what
/// the jobs scanned. Dropped early, the statement's job is cancelled.
fn rows(pending: Pending, session: &Session) -> Result<(Arc<Sent>, Rows), Status> {
    let Pending { statement, mut jobs, output, underway } = pending;
    let sent = Arc::new(Sent { entry: statement, rows: AtomicU64::new(0), bytes: AtomicU64::new(0) });
    let scheduler = session.client.scheduler_grpc_url.clone();
    let channel = session.client.scheduler.clone();
    let (batches, plan) = match output {
        Output::Rows(_, batches) => (futures::stream::iter(batches.into_iter().map(Ok)).boxed(), None),
        Output::Plan { logical, physical: plan } => {
            underway.streaming(logical.as_ref().clone(), Arc::clone(&plan));
            let ctx = session.client.ctx.clone();
            let logical: Arc<LogicalPlan> = Arc::from(logical);
            let rows = datafusion::physical_plan::execute_stream(Arc::clone(&plan), ctx.task_ctx())
                .map_err(|e| Status::invalid_argument(e.to_string()))?
                .or_else(move |e| {
                    let (ctx, logical) = (ctx.clone(), Arc::clone(&logical));
                    async move {
                        let e = sentio_sql::failure::explain(e, &ctx, &logical).await;
                        Err(FlightError::ExternalError(Box::new(SentioError::from(e))))
                    }
                });
            (rows.boxed(), Some(plan))
        }
    };
    let running = plan.clone();
    let cancel = CancelOnDrop::new(&scheduler, Box::new(move || running.clone()));
    let (counting, failing) = (Arc::clone(&sent), Arc::clone(&sent));
    let batches = batches
        .inspect_ok(move |b: &RecordBatch| {
            counting.rows.fetch_add(b.num_rows() as u64, Ordering::Relaxed);
        })
        .inspect_err(move |e| failing.end(LogStatus::Failed, None, Some(e.to_string()), Vec::new()));
    let finishing = Arc::clone(&sent);
    // Past the last batch: the job ended; the log gets what it read.
    let end = futures::stream::once(async move {
        let _underway = underway;
        cancel.finished();
        jobs.extend(plan.as_ref().and_then(jobs::job_of));
        let job_bytes = jobs::job_bytes(&channel, &jobs).await;
        finishing.end(LogStatus::Ok, job_bytes, None, jobs);
    })
    .filter_map(|()| async { None });
    Ok((sent, batches.chain(end).boxed()))
}
