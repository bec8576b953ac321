//! Running statements and scripts: results to the output, and for each
//! statement a live progress line on long jobs and a summary of what crossed
//! the network.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use sentio_sql::client::Client;
use sentio_sql::jobs::{self, job_bytes, job_named_soon, job_of};
use sentio_sql::size::human_bytes;
use sentio_sql::statement::{self, Access, Planned};

use crate::error::{CliError, Result};
use crate::output::{OutputFormat, ipc_size, write_batches};
use crate::procedural;
use crate::remote::FrontEnd;
use crate::script::{Statement, absolute_error_line, split_statements};

/// How often a statement planned here checks that the scheduler still
/// knows its job ([`Watched::lost`]).
const LOST_JOB_CHECK: Duration = Duration::from_secs(2);

/// What [`Watched::lost`] last learnt of a statement's job.
enum Seen {
    /// Nothing yet.
    Nothing,
    /// The job, running.
    Running(String),
    /// The job, unknown to the scheduler since then.
    Unknown(String, Instant),
    /// The job, ended (its results may be fetched after the scheduler
    /// forgot it).
    Ended(String),
}

/// Jobs shorter than this get no live progress line.
const PROGRESS_AFTER: Duration = Duration::from_millis(800);

/// What one statement did.
#[derive(Debug, Clone, PartialEq)]
pub struct StatementOutcome {
    /// Rows returned to the client.
    pub rows: usize,
    /// Bytes received from the cluster: through the front end every byte
    /// read from the socket; from the engine in this process or a `df://`
    /// scheduler, the Arrow IPC size of the rows.
    pub bytes_received: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// The cluster job, if one ran.
    pub job_id: Option<String>,
    /// Bytes the statement's jobs read from their sources inside the
    /// cluster (see [`jobs::bytes_scanned`]); `None` when the scheduler could
    /// not tell.
    pub bytes_scanned: Option<u64>,
    /// Bytes its jobs spilled to the executors' disks (their memory pools
    /// were full); `None` when the scheduler could not tell.
    pub bytes_spilled: Option<u64>,
}

/// Where statements run.
pub enum Target {
    /// Sentio's engine in this process, on a scheduler's Ballista port
    /// (`df://…`): statements are planned here.
    Engine(Client),
    /// A Flight SQL front end: the scheduler's (`grpc://…`), or that of the
    /// cluster this process started (the embedded default). Statements are
    /// planned and run there.
    FrontEnd(FrontEnd),
}

/// The plan of a statement that is not planned here.
type NoPlan = fn() -> Option<Arc<dyn ExecutionPlan>>;

/// A statement being watched: how to ask its job's state, and to cancel it.
enum Watched<'a, P> {
    /// Planned here; its job is that of the plan `plan()` names, on the
    /// scheduler whose gRPC URL is `scheduler`.
    Engine { scheduler: &'a str, plan: P },
    /// Sent to a front end, which knows what its session runs.
    FrontEnd(&'a FrontEnd),
}

impl<P: Fn() -> Option<Arc<dyn ExecutionPlan>>> Watched<'_, P> {
    /// The job running now and its state, if there is one.
    async fn progress(&self, states: &mut jobs::JobStates) -> Option<(String, String)> {
        match self {
            Watched::Engine { scheduler, plan } => {
                let job = plan().as_ref().and_then(job_of)?;
                let state = states.state(scheduler, &job).await;
                Some((job, state))
            }
            Watched::FrontEnd(front_end) => front_end.progress().await,
        }
    }

    /// For a statement planned here: whether its job, once seen running,
    /// is now unknown to the scheduler — which restarted and lost it; the
    /// job then. (A front end runs on the scheduler: its connection breaks
    /// instead.)
    async fn lost(&self, states: &mut jobs::JobStates, seen: &mut Seen) -> Option<String> {
        let Watched::Engine { scheduler, plan } = self else { return None };
        let job = plan().as_ref().and_then(job_of)?;
        match states.known(scheduler, &job).await {
            jobs::Known::Running => *seen = Seen::Running(job),
            // Its results may be fetched after the scheduler forgot it.
            jobs::Known::Ended => *seen = Seen::Ended(job),
            jobs::Known::Unknown => match seen {
                Seen::Running(j) if *j == job => return Some(job),
                // A job is queued a moment after it is named: unknown for
                // longer, it is lost.
                Seen::Unknown(j, since) if *j == job => {
                    if since.elapsed() >= LOST_JOB_CHECK {
                        return Some(job);
                    }
                }
                Seen::Ended(j) if *j == job => {}
                _ => *seen = Seen::Unknown(job, Instant::now()),
            },
            jobs::Known::NoAnswer => {}
        }
        None
    }

    /// Cancels the statement's job (the `work` that runs it is polled
    /// meanwhile, [`job_named_soon`]); says what became of it.
    async fn cancel<T>(&self, work: std::pin::Pin<&mut impl std::future::Future<Output = T>>) -> Option<String> {
        match self {
            Watched::Engine { scheduler, plan } => {
                let plan = job_named_soon(work, plan).await;
                jobs::cancel_statement(scheduler, plan.as_ref(), None).await
            }
            Watched::FrontEnd(front_end) => front_end.cancel().await,
        }
    }
}

impl From<Client> for Target {
    fn from(client: Client) -> Self {
        Target::Engine(client)
    }
}

impl From<FrontEnd> for Target {
    fn from(front_end: FrontEnd) -> Self {
        Target::FrontEnd(front_end)
    }
}

/// Runs SQL on a connected client.
pub struct Runner {
    target: Target,
    format: OutputFormat,
    progress: bool,
    timeout: Option<Duration>,
}

impl Runner {
    /// A runner printing in `format`; `progress` enables the live line (only
    /// ever drawn on a terminal).
    pub fn new(target: impl Into<Target>, format: OutputFormat, progress: bool) -> Self {
        let progress = progress && std::io::stderr().is_terminal();
        Self { target: target.into(), format, progress, timeout: None }
    }

    /// Cancels any statement that runs longer than `timeout` (none by
    /// default: training jobs can take hours).
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs one statement and returns its result batches.
    pub async fn query(&self, sql: &str) -> Result<(Vec<RecordBatch>, StatementOutcome)> {
        match &self.target {
            Target::Engine(client) => self.query_engine(client, sql).await,
            Target::FrontEnd(front_end) => self.query_front_end(front_end, sql).await,
        }
    }

    /// Runs one statement through the front end. A timeout or a signal ends
    /// the call, and the front end cancels the statement's job when its call
    /// ends.
    async fn query_front_end(&self, front_end: &FrontEnd, sql: &str) -> Result<(Vec<RecordBatch>, StatementOutcome)> {
        let started = Instant::now();
        let watched: Watched<'_, NoPlan> = Watched::FrontEnd(front_end);
        let answer = self.watch(&watched, front_end.query(sql), started).await??;
        let outcome = answer.outcome.as_ref();
        let outcome = StatementOutcome {
            rows: answer.batches.iter().map(RecordBatch::num_rows).sum(),
            bytes_received: answer.received,
            elapsed: started.elapsed(),
            job_id: outcome.and_then(|o| o.jobs.last().cloned()),
            bytes_scanned: outcome.and_then(|o| o.bytes_scanned),
            bytes_spilled: outcome.and_then(|o| o.bytes_spilled),
        };
        Ok((answer.batches, outcome))
    }

    /// Runs one statement on the engine in this process.
    async fn query_engine(&self, client: &Client, sql: &str) -> Result<(Vec<RecordBatch>, StatementOutcome)> {
        let started = Instant::now();
        let scheduler = client.scheduler_grpc_url.as_str();
        let ml = &client.ml;
        ml.take_jobs();
        // ML and extract statements run their jobs (statistics, training,
        // evaluation, copies) while being planned: the progress line and the
        // timeout cover them too.
        let planned = statement::plan(client, sql, Access::Everything);
        let watched = Watched::Engine { scheduler, plan: || ml.running_plan() };
        let (logical, plan) = match self.watch(&watched, planned, started).await?? {
            Planned::Query { logical, physical } => (logical, physical),
            Planned::Done(batches) => {
                let elapsed = started.elapsed();
                let job_bytes = job_bytes(&client.scheduler, &ml.take_jobs()).await;
                let outcome = StatementOutcome {
                    rows: batches.iter().map(RecordBatch::num_rows).sum(),
                    bytes_received: ipc_size(&batches),
                    elapsed,
                    job_id: None,
                    bytes_scanned: job_bytes.map(|b| b.scanned),
                    bytes_spilled: job_bytes.map(|b| b.spilled),
                };
                return Ok((batches, outcome));
            }
        };
        let task_ctx = client.ctx.task_ctx();
        let work = datafusion::physical_plan::collect(Arc::clone(&plan), task_ctx);
        let running = Watched::Engine { scheduler, plan: || Some(Arc::clone(&plan)) };
        let watched = match self.watch(&running, work, started).await {
            Ok(done) => done,
            Err(e) => return Err(settled(e, &logical, &plan).await),
        };
        let batches = match watched {
            Ok(batches) => batches,
            // A plan too big to send, an unreadable Parquet file: named.
            Err(e) => return Err(sentio_sql::failure::explain(e, &client.ctx, &logical).await.into()),
        };
        let elapsed = started.elapsed();
        let job_id = job_of(&plan);
        let mut jobs = ml.take_jobs();
        jobs.extend(job_id.clone());
        let job_bytes = job_bytes(&client.scheduler, &jobs).await;
        let outcome = StatementOutcome {
            rows: batches.iter().map(RecordBatch::num_rows).sum(),
            bytes_received: ipc_size(&batches),
            elapsed,
            job_id,
            bytes_scanned: job_bytes.map(|b| b.scanned),
            bytes_spilled: job_bytes.map(|b| b.spilled),
        };
        Ok((batches, outcome))
    }

    /// Awaits `work`, drawing a live progress line for the job of the
    /// `watched` statement (on a terminal, after [`PROGRESS_AFTER`]) and
    /// cancelling that job when the statement outlives the timeout or a
    /// signal interrupts it ([`crate::interrupt`]).
    async fn watch<T, P: Fn() -> Option<Arc<dyn ExecutionPlan>>>(
        &self,
        watched: &Watched<'_, P>,
        work: impl std::future::Future<Output = T>,
        started: Instant,
    ) -> Result<T> {
        tokio::pin!(work);
        let mut statement = crate::interrupt::Statement::start();
        let mut ticker = tokio::time::interval(Duration::from_millis(250));
        let mut states = jobs::JobStates::default();
        let mut lost_check = tokio::time::interval(LOST_JOB_CHECK);
        let mut seen = Seen::Nothing;
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
                    let job = watched.cancel(work.as_mut()).await;
                    return Err(CliError::Interrupted { signal, job });
                }
                _ = lost_check.tick() => {
                    if let Some(job) = watched.lost(&mut states, &mut seen).await {
                        clear(drew);
                        return Err(CliError::JobLost { job });
                    }
                }
                _ = ticker.tick() => {
                    if let Some(limit) = self.timeout.filter(|l| started.elapsed() >= *l) {
                        clear(drew);
                        let job = watched.cancel(work.as_mut()).await;
                        return Err(CliError::Timeout { seconds: limit.as_secs_f64(), job });
                    }
                    if !self.progress || started.elapsed() < PROGRESS_AFTER { continue; }
                    let Some((job, state)) = watched.progress(&mut states).await else { continue };
                    eprint!("\r\x1b[2K  job {job}: {state} · {:.1} s", started.elapsed().as_secs_f64());
                    let _ = std::io::stderr().flush();
                    drew = true;
                }
            }
        };
        clear(drew);
        Ok(done)
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

    /// Runs every statement of a script, its procedural ones (`DECLARE`,
    /// `SET`, `IF`, `ASSERT`, [`procedural`]) too; stops at the first
    /// failing one and names the line where it starts (or where the parser
    /// found the error).
    pub async fn run_script(&self, source_name: &str, src: &str, out: &mut dyn Write) -> Result<Vec<StatementOutcome>> {
        let at_line =
            |line: usize, message: String| CliError::Statement { source_name: source_name.to_string(), line, message };
        let statements = split_statements(src).map_err(|e| at_line(e.line, e.message))?;
        let steps = procedural::parse(&statements).map_err(|e| at_line(e.line, e.message))?;
        let mut script = ScriptRun { runner: self, source_name, out, outcomes: Vec::new() };
        procedural::execute(&steps, source_name, &mut script).await?;
        Ok(script.outcomes)
    }
}

/// A script being run: its statements' results go to `out`.
struct ScriptRun<'a> {
    runner: &'a Runner,
    source_name: &'a str,
    out: &'a mut dyn Write,
    outcomes: Vec<StatementOutcome>,
}

impl procedural::Engine for ScriptRun<'_> {
    async fn run(&mut self, stmt: &Statement) -> Result<()> {
        let first_line = stmt.text.lines().next().unwrap_or("");
        eprintln!("-- {}:{}: {}", self.source_name, stmt.line, ellipsize(first_line, 70));
        match self.runner.run_statement(&stmt.text, self.out).await {
            Ok(o) => {
                self.outcomes.push(o);
                Ok(())
            }
            // Not the statement's fault: passed on as it is, so that the
            // command ends with the signal's exit status.
            Err(e @ CliError::Interrupted { .. }) => Err(e),
            Err(e) => {
                let message = e.to_string();
                Err(CliError::Statement {
                    source_name: self.source_name.to_string(),
                    line: absolute_error_line(stmt.line, &message),
                    message,
                })
            }
        }
    }

    async fn value(&mut self, query: &str) -> Result<ArrayRef> {
        let (batches, _) = self.runner.query(query).await?;
        batches
            .iter()
            .find(|b| b.num_rows() > 0)
            .map(|b| Arc::clone(b.column(0)))
            .ok_or_else(|| CliError::Usage(format!("{query} gave no row")))
    }
}

fn ellipsize(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_string() } else { format!("{}…", s.chars().take(n).collect::<String>()) }
}

/// The per-statement summary line, e.g.
/// `-- 5 rows in 0.423 s · 1.2 KiB (1234 bytes) received from the cluster ·
/// 3.1 MiB (3250000 bytes) scanned in the cluster · job 3Xq…`, with
/// `· 52.0 MiB (54525952 bytes) spilled to disk` before the job when its
/// operators spilled.
pub fn summary(o: &StatementOutcome) -> String {
    let rows = if o.rows == 1 { "1 row".to_string() } else { format!("{} rows", o.rows) };
    let scanned = o
        .bytes_scanned
        .map(|b| format!(" · {} ({b} bytes) scanned in the cluster", human_bytes(b)))
        .unwrap_or_default();
    let spilled = o
        .bytes_spilled
        .filter(|b| *b > 0)
        .map(|b| format!(" · {} ({b} bytes) spilled to disk", human_bytes(b)))
        .unwrap_or_default();
    let job = o.job_id.as_deref().map(|j| format!(" · job {j}")).unwrap_or_default();
    format!(
        "-- {rows} in {:.3} s · {} ({} bytes) received from the cluster{scanned}{spilled}{job}",
        o.elapsed.as_secs_f64(),
        human_bytes(o.bytes_received),
        o.bytes_received
    )
}

/// `e`, the error of a statement that was interrupted or timed out, saying
/// also, when the statement was an `INSERT INTO opdb.…`, whether its rows
/// had landed ([`jobs::write_settlement`]).
async fn settled(mut e: CliError, logical: &LogicalPlan, plan: &Arc<dyn ExecutionPlan>) -> CliError {
    let (CliError::Interrupted { job: said, .. } | CliError::Timeout { job: said, .. }) = &mut e else {
        return e;
    };
    let Some(write) = jobs::write_settlement(logical, plan).await else {
        return e;
    };
    *said = Some(match said.take() {
        Some(cancel) => format!("{cancel}; {write}"),
        None => write,
    });
    e
}
