//! A statement's result on its way to the client: rows and bytes counted,
//! the statement log told how it ended, and its cluster job cancelled if the
//! client leaves before the last row.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow_flight::FlightData;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use datafusion::arrow::record_batch::RecordBatch;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use sentio_sql::jobs;
use tonic::Status;

use crate::cancel::CancelOnDrop;
use crate::sessions::{Output, Pending, Session};
use crate::statements::{Ending, Entry, Status as LogStatus};

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
    fn end(&self, status: LogStatus, bytes_scanned: Option<u64>, error: Option<String>, jobs: Vec<String>) {
        let ending = Ending {
            rows: Some(self.rows.load(Ordering::Relaxed)),
            bytes_returned: Some(self.bytes.load(Ordering::Relaxed)),
            bytes_scanned,
            error,
            jobs,
        };
        self.entry.end(status, ending);
    }
}

/// Streams `pending`'s rows to the client: a plan runs now, on the cluster,
/// as the client reads.
pub fn deliver(pending: Pending, session: &Session) -> Result<FlightStream, Status> {
    let schema = pending.schema();
    let Pending { statement, mut jobs, output } = pending;
    let sent = Arc::new(Sent { entry: statement, rows: AtomicU64::new(0), bytes: AtomicU64::new(0) });
    let scheduler = session.client.scheduler_grpc_url.clone();
    let (batches, plan) = match output {
        Output::Rows(_, batches) => (futures::stream::iter(batches.into_iter().map(Ok)).boxed(), None),
        Output::Plan(plan) => {
            let rows = datafusion::physical_plan::execute_stream(Arc::clone(&plan), session.client.ctx.task_ctx())
                .map_err(|e| Status::invalid_argument(e.to_string()))?
                .map_err(|e| FlightError::ExternalError(Box::new(e)));
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
        cancel.finished();
        jobs.extend(plan.as_ref().and_then(jobs::job_of));
        let scanned = jobs::bytes_scanned(&scheduler, &jobs).await;
        finishing.end(LogStatus::Ok, scanned, None, jobs);
    })
    .filter_map(|()| async { None });
    let counting = Arc::clone(&sent);
    let data = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(batches.chain(end))
        .inspect_ok(move |d| {
            counting.bytes.fetch_add(d.encoded_len() as u64, Ordering::Relaxed);
        })
        .map_err(Status::from);
    Ok(Box::pin(data))
}
