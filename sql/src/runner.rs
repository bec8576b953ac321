//! Running statements and scripts: results to the output, and for each
//! statement a live progress line on long jobs and a summary of what crossed
//! the network.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ballista_core::execution_plans::DistributedQueryExec;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use ballista_core::serde::protobuf::operator_metric::Metric;
use ballista_core::serde::protobuf::{CancelJobParams, GetJobMetricsParams, GetJobStatusParams, job_status};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::protobuf::LogicalPlanNode;

use crate::codec::plan_size;
use crate::opdb;
use crate::error::{Result, SentioError};
use crate::output::{OutputFormat, human_bytes, ipc_size, write_batches};
use crate::script::{absolute_error_line, split_statements};
use crate::session::{Client, job_of};

/// Jobs shorter than this get no live progress line.
const PROGRESS_AFTER: Duration = Duration::from_millis(800);

/// What one statement did.
#[derive(Debug, Clone, PartialEq)]
pub struct StatementOutcome {
    /// Rows returned to the client.
    pub rows: usize,
    /// Bytes of result data received from the cluster (Arrow IPC size).
    pub bytes_received: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// The cluster job, if one ran.
    pub job_id: Option<String>,
    /// Bytes the statement's jobs read from their sources inside the
    /// cluster (see [`bytes_scanned`]); `None` when the scheduler could not
    /// tell.
    pub bytes_scanned: Option<u64>,
}

/// Runs SQL on a connected client.
pub struct Runner {
    client: Client,
    format: OutputFormat,
    progress: bool,
    timeout: Option<Duration>,
}

/// What `jobs` read from their sources, summed over every operator of every
/// stage as the scheduler's job metrics report it: the `bytes_scanned` of
/// Parquet scans (bytes read from the files) and of operational-DB scans
/// (the Arrow size of the rows read). `None` if the scheduler cannot say.
pub async fn bytes_scanned(url: &str, jobs: &[String]) -> Option<u64> {
    if jobs.is_empty() {
        return Some(0);
    }
    let mut client = SchedulerGrpcClient::connect(url.to_string()).await.ok()?;
    let mut total = 0;
    for job in jobs {
        let metrics = client.get_job_metrics(GetJobMetricsParams { job_id: job.clone() }).await.ok()?.into_inner();
        for op in metrics.stages.iter().flat_map(|s| &s.operators) {
            for m in &op.metrics {
                if let Some(Metric::Count(c)) = &m.metric
                    && c.name == "bytes_scanned"
                {
                    total += c.value;
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
/// Gives up after [`JOB_ID_WAIT`], or when `work` ends.
async fn job_named_soon<T>(
    mut work: std::pin::Pin<&mut impl std::future::Future<Output = T>>,
    plan: &impl Fn() -> Option<Arc<dyn ExecutionPlan>>,
) -> Option<Arc<dyn ExecutionPlan>> {
    let deadline = Instant::now() + JOB_ID_WAIT;
    loop {
        let current = plan();
        let named = current.as_ref().is_some_and(|p| job_of(p).is_some());
        let distributed =
            current.as_ref().is_some_and(|p| p.downcast_ref::<DistributedQueryExec<LogicalPlanNode>>().is_some());
        if named || !distributed || Instant::now() >= deadline {
            return current;
        }
        tokio::select! {
            _ = work.as_mut() => return plan(),
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
}

async fn job_state(client: &mut Option<SchedulerGrpcClient<tonic::transport::Channel>>, url: &str, job: &str) -> String {
    if client.is_none() {
        *client = SchedulerGrpcClient::connect(url.to_string()).await.ok();
    }
    let Some(c) = client.as_mut() else { return "scheduler not answering".into() };
    match c.get_job_status(GetJobStatusParams { job_id: job.to_string() }).await {
        Ok(r) => match r.into_inner().status.and_then(|s| s.status) {
            None => "initialising".into(),
            Some(job_status::Status::Queued(_)) => "queued".into(),
            Some(job_status::Status::Running(_)) => "running".into(),
            Some(job_status::Status::Successful(s)) => {
                format!("fetching {} result partitions", s.partition_location.len())
            }
            Some(job_status::Status::Failed(f)) => format!("failed: {}", f.error),
        },
        Err(e) => format!("status unavailable ({})", e.message()),
    }
}

impl Runner {
    /// A runner printing in `format`; `progress` enables the live line (only
    /// ever drawn on a terminal).
    pub fn new(client: Client, format: OutputFormat, progress: bool) -> Self {
        Self {
            client,
            format,
            progress: progress && std::io::stderr().is_terminal(),
            timeout: None,
        }
    }

    /// Cancels any statement that runs longer than `timeout` (none by
    /// default: training jobs can take hours).
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// The connected client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Runs one statement and returns its result batches.
    pub async fn query(&self, sql: &str) -> Result<(Vec<RecordBatch>, StatementOutcome)> {
        let started = Instant::now();
        // ML statements run their jobs (statistics, training, evaluation)
        // here; the progress line and the timeout cover them too.
        let ml = &self.client.ml;
        ml.take_jobs();
        let prepared = match crate::extract::parse_extract_statement(sql)? {
            // Extract statements (CREATE TABLE extracts.… AS, REFRESH
            // EXTRACT, DROP TABLE extracts.…) run their copy jobs here.
            Some(stmt) => {
                let extracts = self.client.extracts.as_ref().ok_or(crate::extract::ExtractError::NoLake)?;
                let batches = self.watch(extracts.run(ml, stmt), started, || ml.running_plan()).await??;
                crate::ml::Prepared::Done(batches)
            }
            None => self.watch(crate::ml::prepare(ml, sql), started, || ml.running_plan()).await??,
        };
        let sql = match prepared {
            crate::ml::Prepared::Sql(sql) => sql,
            crate::ml::Prepared::Done(batches) => {
                let elapsed = started.elapsed();
                let outcome = StatementOutcome {
                    rows: batches.iter().map(RecordBatch::num_rows).sum(),
                    bytes_received: ipc_size(&batches),
                    elapsed,
                    job_id: None,
                    bytes_scanned: bytes_scanned(&self.client.scheduler_grpc_url, &ml.take_jobs()).await,
                };
                return Ok((batches, outcome));
            }
        };
        let df = self.client.ctx.sql(&sql).await?;
        let logical = df.logical_plan().clone();
        let plan = df.create_physical_plan().await?;
        let task_ctx = self.client.ctx.task_ctx();
        let work = datafusion::physical_plan::collect(Arc::clone(&plan), task_ctx);
        let watched = match self.watch(work, started, || Some(Arc::clone(&plan))).await {
            Ok(done) => done,
            Err(e) => return Err(settled(e, &logical, &plan).await),
        };
        let batches = match watched {
            Ok(batches) => batches,
            // A bare transport error may mean the plan was too big to send.
            Err(e) if plan_size::is_transport_failure(&e.to_string()) => {
                return Err(match plan_size::oversized(&self.client.ctx.state(), &logical) {
                    Some(why) => SentioError::DataFusion(DataFusionError::Plan(why)),
                    None => e.into(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let elapsed = started.elapsed();
        let job_id = job_of(&plan);
        let mut jobs = ml.take_jobs();
        jobs.extend(job_id.clone());
        let outcome = StatementOutcome {
            rows: batches.iter().map(RecordBatch::num_rows).sum(),
            bytes_received: ipc_size(&batches),
            elapsed,
            job_id,
            bytes_scanned: bytes_scanned(&self.client.scheduler_grpc_url, &jobs).await,
        };
        Ok((batches, outcome))
    }

    /// Awaits `work`, drawing a live progress line for the job that
    /// `plan()` names (on a terminal, after [`PROGRESS_AFTER`]) and
    /// cancelling that job when the statement outlives the timeout or a
    /// signal interrupts it ([`crate::interrupt`]).
    async fn watch<T>(
        &self,
        work: impl std::future::Future<Output = T>,
        started: Instant,
        plan: impl Fn() -> Option<Arc<dyn ExecutionPlan>>,
    ) -> Result<T> {
        tokio::pin!(work);
        let mut statement = crate::interrupt::Statement::start();
        let mut ticker = tokio::time::interval(Duration::from_millis(250));
        let mut grpc = None;
        let mut drew = false;
        let clear = |drew: bool| {
            if drew {
                eprint!("\r\x1b[2K");
            }
        };
        let done = loop {
            tokio::select! {
                res = &mut work => break res,
                signal = statement.interrupted() => {
                    clear(drew);
                    let job = self.cancel(job_named_soon(work.as_mut(), &plan).await.as_ref()).await;
                    return Err(SentioError::Interrupted { signal, job });
                }
                _ = ticker.tick() => {
                    if let Some(limit) = self.timeout.filter(|l| started.elapsed() >= *l) {
                        clear(drew);
                        let job = self.cancel(job_named_soon(work.as_mut(), &plan).await.as_ref()).await;
                        return Err(SentioError::Timeout { seconds: limit.as_secs_f64(), job });
                    }
                    if !self.progress || started.elapsed() < PROGRESS_AFTER { continue; }
                    let Some(job) = plan().as_ref().and_then(job_of) else { continue };
                    let state = job_state(&mut grpc, &self.client.scheduler_grpc_url, &job).await;
                    eprint!("\r\x1b[2K  job {job}: {state} · {:.1} s", started.elapsed().as_secs_f64());
                    let _ = std::io::stderr().flush();
                    drew = true;
                }
            }
        };
        clear(drew);
        Ok(done)
    }

    /// Cancels the cluster job of `plan`, if it has one; says what became of
    /// it ("job … cancelled").
    /// A scheduler that does not answer within
    /// [`SCHEDULER_CONNECT_TIMEOUT`](crate::session::SCHEDULER_CONNECT_TIMEOUT)
    /// leaves the job "could not be cancelled".
    async fn cancel(&self, plan: Option<&Arc<dyn ExecutionPlan>>) -> Option<String> {
        let job = plan.and_then(job_of)?;
        let request = async {
            let mut c = SchedulerGrpcClient::connect(self.client.scheduler_grpc_url.clone()).await.ok()?;
            c.cancel_job(CancelJobParams { job_id: job.clone() }).await.ok()
        };
        let cancelled = matches!(
            tokio::time::timeout(crate::session::SCHEDULER_CONNECT_TIMEOUT, request).await,
            Ok(Some(_))
        );
        Some(if cancelled { format!("job {job} cancelled") } else { format!("job {job} could not be cancelled") })
    }

    /// Runs one statement, prints its rows to `out` and a summary to stderr.
    pub async fn run_statement(&self, sql: &str, out: &mut dyn Write) -> Result<StatementOutcome> {
        let (batches, outcome) = self.query(sql).await?;
        if !batches.is_empty() && outcome.rows > 0 {
            write_batches(out, self.format, &batches)?;
        } else if self.format == OutputFormat::Json && outcome.job_id.is_some() {
            writeln!(out, "[]")?;
        }
        out.flush()?;
        eprintln!("{}", summary(&outcome));
        Ok(outcome)
    }

    /// Runs every statement of a script; stops at the first failing one and
    /// names the line where it starts (or where the parser found the error).
    pub async fn run_script(
        &self,
        source_name: &str,
        src: &str,
        out: &mut dyn Write,
    ) -> Result<Vec<StatementOutcome>> {
        let statements = split_statements(src).map_err(|e| SentioError::Statement {
            source_name: source_name.to_string(),
            line: e.line,
            message: e.message,
        })?;
        let mut outcomes = Vec::with_capacity(statements.len());
        for stmt in statements {
            let first_line = stmt.text.lines().next().unwrap_or("");
            eprintln!("-- {source_name}:{}: {}", stmt.line, ellipsize(first_line, 70));
            match self.run_statement(&stmt.text, out).await {
                Ok(o) => outcomes.push(o),
                // Not the statement's fault: passed on as it is, so that the
                // command ends with the signal's exit status.
                Err(e @ SentioError::Interrupted { .. }) => return Err(e),
                Err(e) => {
                    let message = e.to_string();
                    return Err(SentioError::Statement {
                        source_name: source_name.to_string(),
                        line: absolute_error_line(stmt.line, &message),
                        message,
                    });
                }
            }
        }
        Ok(outcomes)
    }
}

/// `e`, the error of a statement that was interrupted or timed out, saying
/// also, when the statement was an `INSERT INTO opdb.…`, whether its rows
/// had landed ([`crate::opdb::settle`]).
async fn settled(mut e: SentioError, logical: &LogicalPlan, plan: &Arc<dyn ExecutionPlan>) -> SentioError {
    let (SentioError::Interrupted { job: said, .. } | SentioError::Timeout { job: said, .. }) = &mut e else {
        return e;
    };
    let (Some((opdb, meta)), Some(job)) = (opdb::settle::write_target(logical), job_of(plan)) else {
        return e;
    };
    let outcome = opdb::settle::settle(&opdb, &meta, &job).await;
    let write = opdb::settle::describe(&meta.table, &job, &outcome);
    *said = Some(match said.take() {
        Some(cancel) => format!("{cancel}; {write}"),
        None => write,
    });
    e
}

fn ellipsize(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

/// The per-statement summary line, e.g.
/// `-- 5 rows in 0.42 s · 1.2 KiB (1234 bytes) received from the cluster ·
/// 3.1 MiB (3250000 bytes) scanned in the cluster · job 3Xq…`.
pub fn summary(o: &StatementOutcome) -> String {
    let rows = if o.rows == 1 { "1 row".to_string() } else { format!("{} rows", o.rows) };
    let scanned = o
        .bytes_scanned
        .map(|b| format!(" · {} ({b} bytes) scanned in the cluster", human_bytes(b)))
        .unwrap_or_default();
    let job = o.job_id.as_deref().map(|j| format!(" · job {j}")).unwrap_or_default();
    format!(
        "-- {rows} in {:.2} s · {} ({} bytes) received from the cluster{scanned}{job}",
        o.elapsed.as_secs_f64(),
        human_bytes(o.bytes_received),
        o.bytes_received
    )
}
