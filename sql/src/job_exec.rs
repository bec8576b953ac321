//! A statement as a cluster job: the plan node a client runs it with
//! ([`JobExec`]), and the query planner that puts that node where
//! Ballista's planner put its own ([`JobPlanner`]).
//!
//! Ballista's `DistributedQueryExec` submits the statement's logical plan to
//! the scheduler, then asks for the job's state every 50 ms: a job done in
//! 10 ms answered after 50, a fixed cost on every statement and on every job
//! of an ML statement (a `CREATE MODEL` runs a dozen). [`JobExec`] submits the
//! same way — the job's id is known at once, for progress and cancelling —
//! then asks after 1 ms and 1.5 times longer each time up to 50 ms, so a
//! short job is noticed within half its own time again, and a long one
//! costs the scheduler no more questions than before. It asks over one
//! connection kept for the session instead of a new one per statement.
//! Results are fetched from the executors that hold them, as Ballista does.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ballista::prelude::SessionConfigExt;
use ballista_core::BALLISTA_VERSION;
use ballista_core::client::BallistaClient;
use ballista_core::error::BallistaError;
use ballista_core::execution_plans::DistributedQueryExec;
use ballista_core::extension::{BallistaConfigGrpcEndpoint, BallistaGrpcMetadataInterceptor};
use ballista_core::serde::protobuf::execute_query_params::Query;
use ballista_core::serde::protobuf::get_job_status_result::FlightProxy;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use ballista_core::serde::protobuf::{
    CancelJobParams, ExecuteQueryParams, ExecutorMetadata, GetJobStatusParams, KeyValuePair, PartitionLocation,
    execute_query_result, job_status,
};
use ballista_core::utils::{GrpcClientConfig, create_grpc_client_endpoint};
use ballista_core::version;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::Session;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties};
use datafusion::prelude::SessionConfig;
use datafusion_proto::logical_plan::AsLogicalPlan;
use datafusion_proto::protobuf::LogicalPlanNode;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// The first wait before asking again about a submitted job.
const FIRST_WAIT: Duration = Duration::from_millis(1);

/// The longest wait between two questions (Ballista's fixed one).
const LONGEST_WAIT: Duration = Duration::from_millis(50);

/// The setting the scheduler plans a job's partitions by.
const TARGET_PARTITIONS: &str = "datafusion.execution.target_partitions";

/// The query planner of a client's session: Ballista's, with each
/// statement it would send to the cluster run by a [`JobExec`] instead.
/// Plans Ballista runs in the client (`information_schema`, an empty
/// relation) and `EXPLAIN ANALYZE` stay as Ballista plans them.
pub struct JobPlanner {
    ballista: Arc<dyn QueryPlanner + Send + Sync>,
    scheduler: Scheduler,
}

impl JobPlanner {
    /// Wraps `ballista` (the planner of a session made by
    /// `SessionContext::remote_with_state`) for the scheduler at `url`
    /// (`http://host:port`), configured by `config` (the session's).
    pub fn new(ballista: Arc<dyn QueryPlanner + Send + Sync>, url: &str, config: &SessionConfig) -> Result<Self> {
        Ok(Self { ballista, scheduler: Scheduler::new(url, config)? })
    }

    /// The session's connection to the scheduler, for its other questions
    /// about jobs ([`crate::jobs::job_bytes`]).
    pub fn channel(&self) -> Channel {
        self.scheduler.channel.clone()
    }
}

impl fmt::Debug for JobPlanner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobPlanner").field("scheduler", &self.scheduler.url).finish()
    }
}

#[async_trait]
impl QueryPlanner for JobPlanner {
    async fn create_physical_plan(&self, plan: &LogicalPlan, session: &dyn Session) -> Result<Arc<dyn ExecutionPlan>> {
        let planned = self.ballista.create_physical_plan(plan, session).await?;
        if planned.downcast_ref::<DistributedQueryExec<LogicalPlanNode>>().is_none() {
            return Ok(planned);
        }
        let partitions = crate::one_task::fits_one_task(plan, session).await.then_some(crate::one_task::ONE_TASK);
        Ok(Arc::new(JobExec::new(self.scheduler.clone(), plan.clone(), session.session_id().to_string(), partitions)))
    }
}

/// Where a session's jobs go: the scheduler's URL, one connection to it
/// (opened at the first question, opened again if it breaks), and the
/// client settings of Ballista's that the questions and fetches follow.
#[derive(Clone)]
struct Scheduler {
    url: String,
    channel: Channel,
    grpc: GrpcClientConfig,
    customize: Option<Arc<BallistaConfigGrpcEndpoint>>,
}

impl Scheduler {
    fn new(url: &str, config: &SessionConfig) -> Result<Self> {
        let grpc = GrpcClientConfig::from(&config.ballista_config());
        let customize = config.ballista_override_create_grpc_client_endpoint();
        let mut endpoint = create_grpc_client_endpoint(url.to_string(), Some(&grpc))
            .map_err(|e| DataFusionError::Configuration(format!("the scheduler's address {url}: {e}")))?;
        if let Some(customize) = &customize {
            endpoint = customize
                .configure_endpoint(endpoint)
                .map_err(|e| DataFusionError::Configuration(format!("the scheduler's address {url}: {e}")))?;
        }
        Ok(Self { url: url.to_string(), channel: endpoint.connect_lazy(), grpc, customize })
    }

    /// A client on the session's connection, with the session's metadata
    /// (Ballista's interceptor).
    fn client(
        &self,
        config: &SessionConfig,
    ) -> SchedulerGrpcClient<InterceptedService<Channel, BallistaGrpcMetadataInterceptor>> {
        SchedulerGrpcClient::with_interceptor(self.channel.clone(), config.ballista_grpc_interceptor().as_ref().clone())
            .max_encoding_message_size(self.grpc.max_message_size)
            .max_decoding_message_size(self.grpc.max_message_size)
    }
}

/// Runs a statement's logical plan as one job of the cluster and streams
/// its result rows from the executors that hold them. Its id is known as
/// soon as the scheduler has accepted the job ([`JobExec::job_id`]).
pub struct JobExec {
    scheduler: Scheduler,
    plan: LogicalPlan,
    session_id: String,
    /// The target partitions the job is planned with, when not the
    /// session's (`crate::one_task`).
    partitions: Option<usize>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
    job: Arc<Mutex<Option<String>>>,
}

impl JobExec {
    fn new(scheduler: Scheduler, plan: LogicalPlan, session_id: String, partitions: Option<usize>) -> Self {
        let schema: SchemaRef = Arc::clone(plan.schema().inner());
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Self {
            scheduler,
            plan,
            session_id,
            partitions,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
            job: Arc::new(Mutex::new(None)),
        }
    }

    /// The cluster job, once the scheduler has accepted it.
    pub fn job_id(&self) -> Option<String> {
        self.job.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The job's submission: the plan encoded with the session's codec, and
    /// the session's settings (with this node's target partitions).
    fn submission(&self, config: &SessionConfig) -> Result<ExecuteQueryParams> {
        let codec = config.ballista_logical_extension_codec();
        let node = LogicalPlanNode::try_from_logical_plan(&self.plan, codec.as_ref())?;
        let settings = config
            .options()
            .entries()
            .into_iter()
            .map(|entry| match (entry.key.as_str(), self.partitions) {
                (TARGET_PARTITIONS, Some(partitions)) => {
                    KeyValuePair { key: entry.key, value: Some(partitions.to_string()) }
                }
                _ => KeyValuePair { key: entry.key, value: entry.value },
            })
            .collect();
        Ok(ExecuteQueryParams {
            query: Some(Query::LogicalPlan(node.encode_to_vec())),
            settings,
            session_id: self.session_id.clone(),
            // Names the submission in the scheduler's log.
            operation_id: crate::ids::unique_name(),
        })
    }
}

impl fmt::Debug for JobExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobExec").field("scheduler", &self.scheduler.url).field("job", &self.job_id()).finish()
    }
}

impl DisplayAs for JobExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                write!(f, "JobExec: scheduler_url={}", self.scheduler.url)?;
                match self.partitions {
                    Some(partitions) => writeln!(f, ", target_partitions={partitions} (small inputs)")?,
                    None => writeln!(f)?,
                }
                write!(f, "logical_plan:\n{}", self.plan.display_indent())
            }
            DisplayFormatType::TreeRender => writeln!(f, "scheduler_url={}", self.scheduler.url),
        }
    }
}

impl ExecutionPlan for JobExec {
    fn name(&self) -> &str {
        "JobExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    /// None: the node carries a logical plan, which the scheduler plans.
    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            return Ok(self);
        }
        Err(DataFusionError::Internal("JobExec has no children".into()))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!("JobExec has one partition, not {partition}")));
        }
        let config = context.session_config().clone();
        let submission = self.submission(&config)?;
        let run = Run {
            scheduler: self.scheduler.clone(),
            config,
            session_id: self.session_id.clone(),
            job: Arc::clone(&self.job),
        };
        let rows = MetricBuilder::new(&self.metrics).output_rows(partition);
        let batches = futures::stream::once(run.results(submission)).try_flatten().inspect(move |batch| {
            if let Ok(batch) = batch {
                rows.add(batch.num_rows());
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema(), batches)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// One execution of a [`JobExec`].
struct Run {
    scheduler: Scheduler,
    config: SessionConfig,
    session_id: String,
    job: Arc<Mutex<Option<String>>>,
}

impl Run {
    /// Submits the job, waits for it to end, and streams what it produced.
    async fn results(self, submission: ExecuteQueryParams) -> Result<impl Stream<Item = Result<RecordBatch>>> {
        let job = self.submit(submission).await?;
        *self.job.lock().unwrap_or_else(|e| e.into_inner()) = Some(job.clone());
        let (locations, proxy) = self.wait(&job).await?;
        let fetches = locations.into_iter().map(move |location| {
            futures::stream::once(fetch(self.scheduler.clone(), location, proxy.clone())).try_flatten()
        });
        Ok(futures::stream::iter(fetches).flatten())
    }

    /// Hands the job to the scheduler; its id.
    async fn submit(&self, submission: ExecuteQueryParams) -> Result<String> {
        let mut client = self.scheduler.client(&self.config);
        let mut request = tonic::Request::new(submission);
        version::insert_version_header(request.metadata_mut());
        let response = client.execute_query(request).await.map_err(grpc_error)?;
        let compatible =
            version::check_compatibility(Some(BALLISTA_VERSION), version::version_from_metadata(response.metadata()));
        match response.into_inner().result {
            Some(execute_query_result::Result::Success(accepted)) => {
                if let Err(e) = compatible {
                    // A scheduler that sends no version queued the job anyway.
                    let _ = client.cancel_job(CancelJobParams { job_id: accepted.job_id }).await;
                    return Err(DataFusionError::Execution(e));
                }
                if accepted.session_id != self.session_id {
                    return Err(DataFusionError::Internal(format!(
                        "the scheduler ran job {} in session {}, not this client's {}",
                        accepted.job_id, accepted.session_id, self.session_id
                    )));
                }
                Ok(accepted.job_id)
            }
            Some(execute_query_result::Result::Failure(failure)) => {
                compatible.map_err(DataFusionError::Execution)?;
                Err(DataFusionError::Execution(format!("Fail to execute query due to {failure:?}")))
            }
            None => Err(DataFusionError::Execution("the scheduler's answer to a submission was empty".into())),
        }
    }

    /// Asks about `job` until it ends (soon at first, less often as it runs
    /// on); where its result partitions are.
    async fn wait(&self, job: &str) -> Result<(Vec<PartitionLocation>, Option<FlightProxy>)> {
        let mut client = self.scheduler.client(&self.config);
        let mut pause = FIRST_WAIT;
        loop {
            let answer = client
                .get_job_status(GetJobStatusParams { job_id: job.to_string() })
                .await
                .map_err(grpc_error)?
                .into_inner();
            match answer.status.and_then(|s| s.status) {
                Some(job_status::Status::Successful(done)) => {
                    return Ok((last_location_of_each(done.partition_location), answer.flight_proxy));
                }
                Some(job_status::Status::Failed(failed)) => {
                    return Err(DataFusionError::Execution(format!("Job {job} failed: {}", failed.error)));
                }
                // Queued, running, or not yet known (a client that loses its
                // job to a restarted scheduler says so: `jobs::JobStates`).
                _ => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 3 / 2).min(LONGEST_WAIT);
                }
            }
        }
    }
}

/// The job's result partitions, each at the last location the scheduler
/// lists for it. Ballista lists a final stage's output as its tasks finish;
/// when an executor loss rolls that stage back while it runs, its next
/// attempt runs every task again and lists each partition again, after the
/// first attempt's locations. Reading them all failed on the locations on
/// the lost executor (`cluster::executor_killed_in_the_final_stage_…`), or
/// would give the rows of the others twice.
fn last_location_of_each(locations: Vec<PartitionLocation>) -> Vec<PartitionLocation> {
    let mut kept: Vec<PartitionLocation> = Vec::with_capacity(locations.len());
    let mut index: HashMap<(u32, u32), usize> = HashMap::new();
    for location in locations {
        match location.partition_id.as_ref().map(|p| index.entry((p.stage_id, p.partition_id))) {
            Some(Entry::Occupied(at)) => kept[*at.get()] = location,
            Some(Entry::Vacant(at)) => {
                at.insert(kept.len());
                kept.push(location);
            }
            None => kept.push(location),
        }
    }
    kept
}

/// The rows of one result partition, from the executor that holds it (or
/// the proxy the scheduler names).
async fn fetch(
    scheduler: Scheduler,
    location: PartitionLocation,
    proxy: Option<FlightProxy>,
) -> Result<SendableRecordBatchStream> {
    let layout = location.layout();
    let holder = location
        .executor_meta
        .ok_or_else(|| DataFusionError::Internal("a result partition without its executor".into()))?;
    let partition =
        location.partition_id.ok_or_else(|| DataFusionError::Internal("a result partition without its id".into()))?;
    let (host, port) = fetch_from(&holder, &scheduler.url, proxy.as_ref())?;
    log::debug!(
        "fetching result partition {} from {} at {host}:{port}",
        location.map_partition_id,
        match &proxy {
            Some(FlightProxy::External(_)) => "the flight proxy",
            Some(FlightProxy::Local(true)) => "the scheduler",
            Some(FlightProxy::Local(false)) | None => "its executor",
        }
    );
    let grpc = &scheduler.grpc;
    let mut client = BallistaClient::try_new(
        &host,
        port,
        grpc.max_message_size,
        grpc.use_tls,
        scheduler.customize.clone(),
        grpc.io_retries_times,
        grpc.io_retry_wait_time_ms,
        grpc.initial_connection_window_size,
        grpc.initial_stream_window_size,
    )
    .await
    .map_err(|e| DataFusionError::Execution(format!("{e:?}")))?;
    client
        .fetch_partition_proxied(
            &holder.id,
            &partition.into(),
            location.file_id,
            layout,
            &holder.host,
            holder.port as u16,
            true,
        )
        .await
        .map_err(BallistaError::into_datafusion)
}

/// Where a result partition held by `holder` is fetched from: the holder
/// itself, or the proxy the scheduler names (`External`), or the scheduler
/// (`Local(true)`).
fn fetch_from(holder: &ExecutorMetadata, scheduler_url: &str, proxy: Option<&FlightProxy>) -> Result<(String, u16)> {
    match proxy {
        Some(FlightProxy::External(address)) => host_port(&format!("http://{address}")),
        Some(FlightProxy::Local(true)) => host_port(scheduler_url),
        Some(FlightProxy::Local(false)) | None => Ok((holder.host.clone(), holder.port as u16)),
    }
}

/// The host and port of `url`.
fn host_port(url: &str) -> Result<(String, u16)> {
    let parsed = url::Url::parse(url).map_err(|e| DataFusionError::Execution(format!("{url}: {e}")))?;
    match (parsed.host_str(), parsed.port()) {
        (Some(host), Some(port)) => Ok((host.to_string(), port)),
        _ => Err(DataFusionError::Execution(format!("{url} names no host and port"))),
    }
}

/// A gRPC failure as DataFusion's error, worded as Ballista's client words it.
fn grpc_error(status: tonic::Status) -> DataFusionError {
    DataFusionError::Execution(format!("{status:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_from_a_millisecond_to_fifty() {
        let mut pause = FIRST_WAIT;
        let mut waited = Duration::ZERO;
        let mut questions = 0;
        while waited < Duration::from_secs(1) {
            waited += pause;
            pause = (pause * 3 / 2).min(LONGEST_WAIT);
            questions += 1;
        }
        assert_eq!(pause, LONGEST_WAIT);
        // A job of a second is asked about ~30 times (Ballista: 20).
        assert!(questions < 35, "{questions} questions in the first second");
    }

    #[test]
    fn results_are_fetched_from_the_holder_or_the_named_proxy() {
        let holder = ExecutorMetadata { host: "10.0.0.7".into(), port: 50051, ..Default::default() };
        let url = "http://10.0.0.1:50050";
        assert_eq!(fetch_from(&holder, url, None).unwrap(), ("10.0.0.7".to_string(), 50051));
        assert_eq!(fetch_from(&holder, url, Some(&FlightProxy::Local(false))).unwrap(), ("10.0.0.7".into(), 50051));
        assert_eq!(fetch_from(&holder, url, Some(&FlightProxy::Local(true))).unwrap(), ("10.0.0.1".into(), 50050));
        let external = FlightProxy::External("proxy.internal:8815".into());
        assert_eq!(fetch_from(&holder, url, Some(&external)).unwrap(), ("proxy.internal".into(), 8815));
        assert!(fetch_from(&holder, url, Some(&FlightProxy::External("no port".into()))).is_err());
    }

    #[test]
    fn a_partition_listed_twice_is_read_once_from_its_last_location() {
        use ballista_core::serde::protobuf::PartitionId;
        let at = |partition: u32, executor: &str| PartitionLocation {
            partition_id: Some(PartitionId { job_id: "j".into(), stage_id: 3, partition_id: partition }),
            executor_meta: Some(ExecutorMetadata { id: executor.into(), ..Default::default() }),
            ..Default::default()
        };
        // Attempt 1 listed partitions 0 and 1 (1 on the executor since lost);
        // attempt 2 listed both again, and partition 2 once.
        let listed = vec![at(0, "a"), at(1, "lost"), at(1, "b"), at(0, "b"), at(2, "a")];
        let read: Vec<(u32, String)> = last_location_of_each(listed)
            .into_iter()
            .map(|l| (l.partition_id.unwrap().partition_id, l.executor_meta.unwrap().id))
            .collect();
        assert_eq!(read, [(0, "b".to_string()), (1, "b".to_string()), (2, "a".to_string())]);
    }
}
