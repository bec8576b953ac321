//! The standalone mode: a scheduler and one executor inside the client's
//! process, configured and scheduled as a cluster is.
//!
//! Both are the cluster's parts — [`configure_scheduler`] and
//! [`configure_executor`] give them Sentio's codecs, functions and object
//! stores — and tasks are **pushed** to the executor as `sentio-scheduler`
//! does by default. (Ballista's own standalone executor polls for work and
//! takes one task per poll, 50 ms apart: a 16-partition shuffle cost about a
//! second whatever the data.) Everything listens on loopback ports the
//! system picks; the executor's shuffle files live in a temporary folder that
//! is removed when the [`Standalone`] is dropped.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arrow_flight::flight_service_server::FlightServiceServer;
use ballista_core::serde::BallistaCodec;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use ballista_core::utils::{GrpcServerConfig, create_grpc_server};
use ballista_executor::executor::Executor;
use ballista_executor::executor_process::{ExecutorProcessConfig, structure_executor_metadata};
use ballista_executor::flight_service::BallistaFlightService;
use ballista_executor::health::ExecutorHealth;
use ballista_executor::metrics::LoggingMetricsCollector;
use ballista_executor::shutdown::ShutdownNotifier;
use ballista_scheduler::config::SchedulerConfig;
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
use tokio::net::TcpListener;

use crate::config::SentioConfig;
use crate::error::{Result, SentioError};
use crate::memory;
use crate::serve;
use crate::session::configure_executor;
use ballista_executor::runtime_cache::{DefaultSessionRuntimeCache, SessionRuntimeCache};

/// Loopback: the in-process cluster is reachable from this machine only.
const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// How often a free port is sought again when another process took the one
/// picked for the executor's task service before it was bound.
const PORT_ATTEMPTS: usize = 5;

/// A running in-process scheduler and executor; they stop with the process.
pub struct Standalone {
    /// gRPC URL of the scheduler, `http://127.0.0.1:<port>`.
    pub grpc_url: String,
    /// Task slots of the executor.
    vcores: usize,
    /// The executor's shuffle files; removed on drop.
    _work_dir: tempfile::TempDir,
    /// Keeps the executor's services running (they stop when it is dropped).
    _shutdown: ShutdownNotifier,
    _stop: tokio::sync::mpsc::Receiver<bool>,
}

impl Standalone {
    /// Starts the scheduler, then an executor with `vcores` task slots that
    /// registers with it.
    pub async fn start(sentio: &SentioConfig, vcores: usize) -> Result<Standalone> {
        let grpc_url = start_scheduler(sentio).await?;
        let scheduler = SchedulerGrpcClient::connect(grpc_url.clone()).await.map_err(fail)?;
        let work_dir = tempfile::Builder::new()
            .prefix("sentio-standalone-")
            .tempdir()
            .map_err(|e| fail(format!("temporary folder in {}: {e}", std::env::temp_dir().display())))?;
        let work_dir_str = work_dir.path().to_string_lossy().into_owned();
        WORK_DIRS.lock().unwrap_or_else(|e| e.into_inner()).push(work_dir.path().to_path_buf());
        let shutdown = ShutdownNotifier::new();
        let (stop_send, stop) = tokio::sync::mpsc::channel(1);

        let flight = serve::bind(loopback(0)).await.map_err(fail)?;
        let flight_port = flight.local_addr().map_err(fail)?.port();
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            let mut config = ExecutorProcessConfig {
                bind_host: LOOPBACK.to_string(),
                external_host: Some(LOOPBACK.to_string()),
                port: flight_port,
                grpc_port: free_port().await?,
                vcores,
                work_dir: Some(work_dir_str.clone()),
                ..Default::default()
            };
            configure_executor(&mut config, sentio)?;
            let config = Arc::new(config);
            let executor = executor(&config, &work_dir_str, vcores, sentio.memory_limit_bytes()?);
            let codec: BallistaCodec<LogicalPlanNode, PhysicalPlanNode> = BallistaCodec::new(
                config.override_logical_codec.clone().expect("set by configure_executor"),
                config.override_physical_codec.clone().expect("set by configure_executor"),
            );
            match ballista_executor::executor_server::startup(
                scheduler.clone(),
                Arc::clone(&config),
                executor,
                codec,
                stop_send.clone(),
                &shutdown,
                ExecutorHealth::new(),
            )
            .await
            {
                Ok(_) => {
                    let service = FlightServiceServer::new(BallistaFlightService::new(work_dir_str.clone()))
                        .max_decoding_message_size(config.grpc_max_decoding_message_size as usize)
                        .max_encoding_message_size(config.grpc_max_encoding_message_size as usize);
                    tokio::spawn(
                        create_grpc_server(&GrpcServerConfig::default())
                            .add_service(service)
                            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(flight)),
                    );
                    return Ok(Standalone { grpc_url, vcores, _work_dir: work_dir, _shutdown: shutdown, _stop: stop });
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(fail(last_error.expect("at least one attempt")))
    }

    /// Task slots of its executor.
    pub fn slots(&self) -> usize {
        self.vcores
    }
}

/// Starts the scheduler on a port the system picks; returns its gRPC URL.
/// The port is bound before this returns, so the first connection succeeds.
async fn start_scheduler(sentio: &SentioConfig) -> Result<String> {
    let listener = serve::bind(loopback(0)).await.map_err(fail)?;
    let port = listener.local_addr().map_err(fail)?.port();
    let config = SchedulerConfig {
        bind_host: LOOPBACK.to_string(),
        external_host: LOOPBACK.to_string(),
        bind_port: port,
        ..Default::default()
    };
    let (scheduler, _) = serve::scheduler(listener, config, sentio).await.map_err(fail)?;
    tokio::spawn(scheduler);
    Ok(format!("http://{LOOPBACK}:{port}"))
}

/// The executor itself, from the producers and registry that
/// [`configure_executor`] put into `config`; its tasks' memory is bounded as
/// a `sentio-executor`'s is ([`crate::memory`]: `memory_limit`, else a share
/// of the machine's memory).
fn executor(config: &Arc<ExecutorProcessConfig>, work_dir: &str, vcores: usize, limit: Option<u64>) -> Arc<Executor> {
    let runtime = config.override_runtime_producer.clone().expect("set by configure_executor");
    let cache = memory::executor_limit(limit).map(|limit| {
        let cache = DefaultSessionRuntimeCache::new(Arc::clone(&runtime), memory::pool_policy(limit, vcores), 16);
        Arc::new(cache) as Arc<dyn SessionRuntimeCache>
    });
    let executor = Executor::new(
        structure_executor_metadata(config, vcores as u32),
        work_dir,
        runtime,
        config.override_config_producer.clone().expect("set by configure_executor"),
        config.override_function_registry.clone().expect("set by configure_executor"),
        Arc::new(LoggingMetricsCollector::default()),
        vcores,
        config.override_execution_engine.clone().expect("set by configure_executor"),
    );
    Arc::new(executor.with_session_runtime_cache(cache))
}

/// `port` on [`LOOPBACK`].
fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((LOOPBACK, port))
}

/// A loopback port that was free a moment ago (the executor's task service
/// must announce its port before it binds it).
async fn free_port() -> Result<u16> {
    let listener = TcpListener::bind(loopback(0)).await.map_err(fail)?;
    Ok(listener.local_addr().map_err(fail)?.port())
}

/// The shuffle folders of the in-process clusters this process started.
static WORK_DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Removes the shuffle folders of every in-process cluster this process
/// started, for the end of `main`, once the runtime has stopped: a
/// cancelled statement's tasks wind down (at their next batch,
/// [`crate::stop`]) and may write into the folder after the [`Standalone`]
/// that removed it was dropped. A folder found again is removed again, 50 ms
/// apart, for up to 2 s. With `settle` (the process ends on an error, such as
/// a statement interrupted by a signal) the folders must also stay gone for
/// three looks in a row: a task still winding down could make its folder
/// again after a single clean look (a loaded test machine left one behind).
pub fn remove_work_dirs(settle: bool) {
    let dirs = std::mem::take(&mut *WORK_DIRS.lock().unwrap_or_else(|e| e.into_inner()));
    let mut clean_looks = 0;
    for _ in 0..40 {
        let left: Vec<&PathBuf> = dirs.iter().filter(|d| d.exists()).collect();
        if left.is_empty() {
            clean_looks += 1;
            if !settle || clean_looks == 3 {
                return;
            }
        } else {
            clean_looks = 0;
            for dir in left {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn fail(e: impl std::fmt::Display) -> SentioError {
    SentioError::Standalone(e.to_string())
}
