//! The cluster jobs that statements run: which job a plan is, and asking
//! the scheduler about it — its state, what it scanned — or to cancel it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ballista_core::serde::protobuf::operator_metric::Metric;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use ballista_core::serde::protobuf::{CancelJobParams, GetJobMetricsParams, GetJobStatusParams, job_status};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use tonic::transport::Channel;

use crate::job_exec::JobExec;

/// How long the client waits for a remote scheduler to accept a connection.
pub const SCHEDULER_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The cluster job a planned statement runs as (its id is known once it is
/// submitted); `None` for a plan that is not a distributed query.
pub fn job_of(plan: &Arc<dyn ExecutionPlan>) -> Option<String> {
    plan.downcast_ref::<JobExec>().and_then(JobExec::job_id)
}

/// What a statement's jobs read and spilled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobBytes {
    /// Read from their sources, summed over every operator of every stage
    /// as the scheduler's job metrics report it: the `bytes_scanned` of
    /// Parquet scans (bytes read from the files), of CSV and JSON scans
    /// ([`crate::scanned`]) and of operational-DB scans (the Arrow size of
    /// the rows read).
    pub scanned: u64,
    /// Written to the executors' disks by operators whose memory pool was
    /// full (sorts, joins, aggregations; [`crate::memory`]).
    pub spilled: u64,
}

/// What `jobs` read and spilled, from the job metrics of the scheduler on
/// the other end of `scheduler` (a session's connection,
/// [`Client::scheduler`](crate::client::Client::scheduler)); `None` if it
/// cannot say.
pub async fn job_bytes(scheduler: &Channel, jobs: &[String]) -> Option<JobBytes> {
    let mut total = JobBytes::default();
    if jobs.is_empty() {
        return Some(total);
    }
    let mut client = SchedulerGrpcClient::new(scheduler.clone());
    for job in jobs {
        let metrics = client.get_job_metrics(GetJobMetricsParams { job_id: job.clone() }).await.ok()?.into_inner();
        for op in metrics.stages.iter().flat_map(|s| &s.operators) {
            for m in &op.metrics {
                match &m.metric {
                    Some(Metric::Count(c)) if c.name == "bytes_scanned" => total.scanned += c.value,
                    Some(Metric::SpilledBytes(b)) => total.spilled += b,
                    _ => {}
                }
            }
        }
    }
    Some(total)
}

/// How long a statement that is being cancelled waits for the scheduler to
/// name the job it has just submitted.
const JOB_ID_WAIT: Duration = Duration::from_secs(3);

/// The plan `plan()` names, once it knows its cluster job: a job submitted a
/// moment ago is named when the scheduler's answer arrives, which `work`
/// (still polled meanwhile) receives — without the wait, a statement
/// cancelled right after it was submitted would leave its job running.
/// Gives up after `JOB_ID_WAIT`, or when `work` ends.
pub async fn job_named_soon<T>(
    mut work: Pin<&mut impl Future<Output = T>>,
    plan: &impl Fn() -> Option<Arc<dyn ExecutionPlan>>,
) -> Option<Arc<dyn ExecutionPlan>> {
    let deadline = Instant::now() + JOB_ID_WAIT;
    loop {
        let current = plan();
        let named = current.as_ref().is_some_and(|p| job_of(p).is_some());
        let distributed = current.as_ref().is_some_and(|p| p.downcast_ref::<JobExec>().is_some());
        if named || !distributed || Instant::now() >= deadline {
            return current;
        }
        tokio::select! {
            _ = work.as_mut() => return plan(),
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
}

/// A scheduler asked again and again about a job's state (for a progress
/// line): connected at the first question.
#[derive(Default)]
pub struct JobStates {
    client: Option<SchedulerGrpcClient<tonic::transport::Channel>>,
}

/// Whether a scheduler runs a job ([`JobStates::known`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// Queued or running.
    Running,
    /// Ended (its results may still be fetched).
    Ended,
    /// The scheduler answered and does not know the job.
    Unknown,
    /// The scheduler did not answer.
    NoAnswer,
}

impl JobStates {
    async fn status(&mut self, url: &str, job: &str) -> Result<Option<job_status::Status>, String> {
        if self.client.is_none() {
            self.client = SchedulerGrpcClient::connect(url.to_string()).await.ok();
        }
        let Some(c) = self.client.as_mut() else { return Err("scheduler not answering".into()) };
        match c.get_job_status(GetJobStatusParams { job_id: job.to_string() }).await {
            Ok(r) => Ok(r.into_inner().status.and_then(|s| s.status)),
            Err(e) => Err(format!("status unavailable ({})", e.message())),
        }
    }

    /// Whether the scheduler at `url` runs `job`: a client that saw its job
    /// run and then finds it [`Known::Unknown`] has lost it to a scheduler
    /// restart.
    pub async fn known(&mut self, url: &str, job: &str) -> Known {
        match self.status(url, job).await {
            Ok(None) => Known::Unknown,
            Ok(Some(job_status::Status::Queued(_) | job_status::Status::Running(_))) => Known::Running,
            Ok(Some(_)) => Known::Ended,
            Err(_) => Known::NoAnswer,
        }
    }

    /// The state of `job` on the scheduler at `url`, in a few words:
    /// `queued`, `running`, `fetching 4 result partitions`, `failed: …`.
    pub async fn state(&mut self, url: &str, job: &str) -> String {
        match self.status(url, job).await {
            Ok(status) => match status {
                None => "initialising".into(),
                Some(job_status::Status::Queued(_)) => "queued".into(),
                Some(job_status::Status::Running(_)) => "running".into(),
                Some(job_status::Status::Successful(s)) => {
                    format!("fetching {} result partitions", s.partition_location.len())
                }
                Some(job_status::Status::Failed(f)) => format!("failed: {}", f.error),
            },
            Err(e) => e,
        }
    }
}

/// Asks the scheduler at `url` to cancel `job`; whether it did. A scheduler
/// that does not answer within [`SCHEDULER_CONNECT_TIMEOUT`] has not.
pub async fn cancel_job(url: &str, job: &str) -> bool {
    let request = async {
        let mut c = SchedulerGrpcClient::connect(url.to_string()).await.ok()?;
        c.cancel_job(CancelJobParams { job_id: job.to_string() }).await.ok()
    };
    matches!(tokio::time::timeout(SCHEDULER_CONNECT_TIMEOUT, request).await, Ok(Some(_)))
}

/// Cancels the cluster job of `plan` on the scheduler at `url`, if it has
/// one, and says what became of it: `job … cancelled` (or `could not be
/// cancelled` when the scheduler does not answer, [`cancel_job`]), followed
/// for an `INSERT INTO opdb.…` (its `logical` plan given) by whether its
/// rows had landed ([`write_settlement`]).
pub async fn cancel_statement(
    url: &str,
    plan: Option<&Arc<dyn ExecutionPlan>>,
    logical: Option<&LogicalPlan>,
) -> Option<String> {
    let plan = plan?;
    let job = job_of(plan)?;
    let cancelled = cancel_job(url, &job).await;
    let said = if cancelled { format!("job {job} cancelled") } else { format!("job {job} could not be cancelled") };
    let write = match logical {
        Some(logical) => write_settlement(logical, plan).await,
        None => None,
    };
    Some(match write {
        Some(write) => format!("{said}; {write}"),
        None => said,
    })
}

/// For a cancelled `INSERT INTO opdb.…` (`logical`, run as `plan`): whether
/// its rows had landed, settled for good and said in words
/// ([`sentio_opdb::settle`]); `None` for any other statement.
pub async fn write_settlement(logical: &LogicalPlan, plan: &Arc<dyn ExecutionPlan>) -> Option<String> {
    let (Some((opdb, meta)), Some(job)) = (sentio_opdb::settle::write_target(logical), job_of(plan)) else {
        return None;
    };
    let outcome = sentio_opdb::settle::settle(&opdb, &meta, &job).await;
    Some(sentio_opdb::settle::describe(&meta.table, &job, &outcome))
}
