//! The client's side of a session: a standalone in-process cluster or a
//! remote scheduler, with the lake, operational-DB, `ml` and `extracts`
//! catalogs registered ([`connect`]).

use std::sync::Arc;

use ballista::prelude::{SessionConfigExt, SessionContextExt};
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::SessionContext;

use crate::config::SentioConfig;
use crate::error::{Result, SentioError};
use crate::job_exec::JobPlanner;
use crate::jobs;
use crate::lake;
use crate::serve::TaskSlots;
use crate::session::{register_functions, runtime_env, session_config, session_state};
use crate::standalone::Standalone;

/// Parses `df://host:port` (the port defaults to 50050) into the gRPC URL.
pub fn scheduler_grpc_url(url: &str) -> Result<String> {
    let parsed = url::Url::parse(url)
        .map_err(|e| SentioError::Config(format!("scheduler URL {url:?}: {e} (expected df://HOST:PORT)")))?;
    if parsed.scheme() != "df" {
        return Err(SentioError::Config(format!(
            "scheduler URL {url:?} must start with df:// (e.g. df://127.0.0.1:50050)"
        )));
    }
    let host = parsed.host_str().ok_or_else(|| SentioError::Config(format!("scheduler URL {url:?} has no host")))?;
    Ok(format!("http://{host}:{}", parsed.port().unwrap_or(50050)))
}

async fn check_reachable(url: &str, grpc_url: &str) -> Result<()> {
    let unreachable = |message: String| SentioError::SchedulerUnreachable { url: url.to_string(), message };
    let endpoint = tonic::transport::Endpoint::from_shared(grpc_url.to_string())
        .map_err(|e| unreachable(e.to_string()))?
        .connect_timeout(jobs::SCHEDULER_CONNECT_TIMEOUT);
    match tokio::time::timeout(jobs::SCHEDULER_CONNECT_TIMEOUT, endpoint.connect()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(unreachable(error_chain(&e))),
        Err(_) => Err(unreachable(format!("no answer within {} s", jobs::SCHEDULER_CONNECT_TIMEOUT.as_secs()))),
    }
}

/// `e` and every error under it, as `outer: inner: …` (a transport error
/// says why only in its sources).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    msg
}

/// Where a session's statements run.
#[derive(Clone)]
pub enum Cluster {
    /// A scheduler's Ballista port, `df://HOST:PORT`. Its sessions plan with
    /// Ballista's 16 partitions: a client cannot ask a scheduler how many
    /// task slots it has (Ballista's REST API, which lists them, is not
    /// built in).
    Remote(String),
    /// The scheduler of this process at its Ballista port, `df://HOST:PORT`
    /// (the front end's sessions): as `Remote`, planned with two partitions
    /// per task slot its executors have registered.
    Hosted {
        /// `df://HOST:PORT`.
        url: String,
        /// Its executors' task slots.
        slots: TaskSlots,
    },
    /// A cluster inside this process, shared by the sessions that run on it.
    InProcess(Arc<Standalone>),
}

impl Cluster {
    /// Its executors' task slots, where this process can know them; 0 where
    /// it cannot (a remote scheduler) or none has registered yet.
    async fn slots(&self) -> usize {
        match self {
            Cluster::Remote(_) => 0,
            Cluster::Hosted { slots, .. } => slots.count().await,
            Cluster::InProcess(cluster) => cluster.slots(),
        }
    }

    /// The scheduler `sentio.scheduler` names, or else a new in-process
    /// cluster ([`Standalone`]) with `ballista.standalone.parallelism` task
    /// slots.
    pub async fn from_config(sentio: &SentioConfig) -> Result<Cluster> {
        match &sentio.scheduler {
            Some(url) => Ok(Cluster::Remote(url.clone())),
            None => {
                let slots = session_config(&Arc::new(sentio.opdb())).ballista_standalone_parallelism();
                Ok(Cluster::InProcess(Arc::new(Standalone::start(sentio, slots).await?)))
            }
        }
    }
}

/// A connected client: the context plus where its scheduler listens.
pub struct Client {
    /// The session; SQL run on it executes in the cluster.
    pub ctx: SessionContext,
    /// gRPC URL of the scheduler (the in-process one when standalone).
    pub scheduler_grpc_url: String,
    /// The session's connection to the scheduler (the one its jobs are
    /// submitted on, opened when first used), for questions about its jobs
    /// ([`crate::jobs::job_bytes`]).
    pub scheduler: tonic::transport::Channel,
    /// The machine-learning layer (model store under the lake).
    pub ml: crate::ml::MlContext,
    /// The lake's extracts (`extracts.*`), when a lake is configured.
    pub extracts: Option<crate::extract::Extracts>,
    /// What the session works without: an empty lake, an operational DB
    /// that did not answer, extracts that could not be registered.
    pub warnings: Vec<String>,
    /// The in-process scheduler and executor, when standalone.
    _standalone: Option<Arc<Standalone>>,
}

/// Connects to `sentio.scheduler`, or starts a standalone in-process cluster
/// (scheduler and executor over the same gRPC/protobuf paths), then registers
/// the lake catalogs when a lake is configured.
pub async fn connect(sentio: &SentioConfig) -> Result<Client> {
    connect_to(sentio, &Cluster::from_config(sentio).await?).await
}

/// Starts a session on `cluster` with the catalogs `sentio` configures: the
/// lake's (when a lake is configured), the operational DB's, `ml` and
/// `extracts`. `sentio.scheduler` is not looked at.
pub async fn connect_to(sentio: &SentioConfig, cluster: &Cluster) -> Result<Client> {
    let opdb = Arc::new(sentio.opdb());
    let mut state = session_state(session_config(&opdb), runtime_env(&sentio.s3)?, &sentio.s3);
    if let Some(partitions) = target_partitions(cluster.slots().await) {
        state.config_mut().options_mut().execution.target_partitions = partitions;
    }
    let (ctx, grpc_url, standalone) = match cluster {
        Cluster::Remote(url) | Cluster::Hosted { url, .. } => {
            let grpc = scheduler_grpc_url(url)?;
            check_reachable(url, &grpc).await?;
            (SessionContext::remote_with_state(url, state).await?, grpc, None)
        }
        Cluster::InProcess(cluster) => {
            let grpc = cluster.grpc_url.clone();
            let ctx = SessionContext::remote_with_state(&grpc.replace("http://", "df://"), state).await?;
            (ctx, grpc, Some(Arc::clone(cluster)))
        }
    };
    let (ctx, scheduler) = with_job_planner(ctx, &grpc_url)?;
    register_functions(&ctx, &sentio.s3);
    let mut warnings = Vec::new();
    if let Some(lake_url) = &sentio.lake {
        let (registered, problems) = lake::register_lake(&ctx, lake_url).await?;
        if registered.is_empty() && problems.is_empty() {
            warnings.push(format!(
                "no tables found in the lake {lake_url} (expected training/<table>/*.parquet and \
                 adhoc/<name>.csv)"
            ));
        }
        warnings.extend(problems);
    }
    // The lake stays usable when the operational DB is down: warn, go on.
    if opdb.is_configured()
        && let Err(e) = sentio_opdb::register_opdb(&ctx, Arc::clone(&opdb)).await
    {
        warnings.push(format!("{e}; the opdb catalog is not available in this session"));
    }
    let root = sentio.lake.as_deref().map(lake::lake_root_url).transpose()?;
    let ml = crate::ml::register_ml(&ctx, root.as_deref())?.with_project(sentio.project.clone());
    let extracts = match &root {
        Some(root) => {
            let extracts = crate::extract::Extracts::new(&ctx, root)?;
            warnings.extend(extracts.register(&ctx).await?.into_iter().map(|p| p.to_string()));
            Some(extracts)
        }
        None => None,
    };
    Ok(Client { ctx, scheduler_grpc_url: grpc_url, scheduler, ml, extracts, warnings, _standalone: standalone })
}

/// Partitions a session plans with on a cluster of `slots` task slots: two
/// per slot. Ballista plans 16 for any cluster, which on a small one means
/// many small tasks, each with its launch, report and shuffle files: on 2
/// cores, 4 partitions made the statistics queries 17–20 % faster
/// (docs/benchmarks.md). `None` (Ballista's 16) when the slots are unknown.
/// Models do not depend on it.
fn target_partitions(slots: usize) -> Option<usize> {
    (slots > 0).then(|| 2 * slots)
}

/// `ctx` (a Ballista remote session) with its statements run as
/// [`JobExec`](crate::job_exec::JobExec)s on the scheduler at `grpc_url`,
/// and the session's one connection to that scheduler.
fn with_job_planner(ctx: SessionContext, grpc_url: &str) -> Result<(SessionContext, tonic::transport::Channel)> {
    let state = ctx.state();
    let planner = JobPlanner::new(Arc::clone(state.query_planner()), grpc_url, state.config())?;
    let channel = planner.channel();
    let state = SessionStateBuilder::new_from_existing(state).with_query_planner(Arc::new(planner)).build();
    Ok((SessionContext::new_with_state(state), channel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_partitions_per_known_slot() {
        assert_eq!(target_partitions(4), Some(8));
        assert_eq!(target_partitions(1), Some(2));
        assert_eq!(target_partitions(0), None);
    }

    #[test]
    fn scheduler_urls() {
        assert_eq!(scheduler_grpc_url("df://10.0.0.1:5000").unwrap(), "http://10.0.0.1:5000");
        assert_eq!(scheduler_grpc_url("df://h").unwrap(), "http://h:50050");
        assert!(scheduler_grpc_url("http://h:1").is_err());
        assert!(scheduler_grpc_url("nonsense").is_err());
    }
}
