//! The one place where a Sentio session is put together.
//!
//! The CLI client, the scheduler and every executor call these functions, so
//! a function, object store or codec known to one of them is known to all:
//!
//! * [`session_config`] — DataFusion + Ballista settings;
//! * [`runtime_env`] — object stores resolved from the process's own
//!   configuration ([`SentioObjectStoreRegistry`]);
//! * [`session_state`] — DataFusion's and Ballista's functions plus Sentio's
//!   ([`sentio_udfs::scalar_functions`], [`sentio_udfs::aggregate_functions`]);
//! * Sentio's codecs ([`crate::codec`]), set in the session config;
//! * [`configure_scheduler`] / [`configure_executor`] — the same, applied to
//!   Ballista's scheduler and executor process configurations.
//!
//! The client's side ([`crate::client::connect`]) builds its session from
//! the same functions.

use std::sync::Arc;

use ballista::prelude::SessionConfigExt;
use ballista_core::extension::{ballista_aggregate_functions, ballista_scalar_functions, ballista_window_functions};
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_executor::execution_engine::DefaultExecutionEngine;
use ballista_executor::executor_process::ExecutorProcessConfig;
use ballista_scheduler::config::SchedulerConfig;
use datafusion::execution::SessionState;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::codec::{SentioLogicalCodec, SentioPhysicalCodec};
use crate::config::{S3Config, SentioConfig};
use crate::error::{Result, SentioError};
use crate::job_watch::JobWatch;
use crate::ml::source::LakeModels;
use crate::object_store::SentioObjectStoreRegistry;
use crate::stop::StoppingEngine;
use sentio_opdb::Opdb;

/// DataFusion + Ballista settings shared by every Sentio process.
///
/// The client polls job status (`ballista.client.pull`): it then knows the
/// job id as soon as the job is submitted, for progress and cancellation.
///
/// Ballista's adaptive planner (`ballista.planner.adaptive.enabled`) is off:
/// in Ballista 55, re-planning after a stage ends can lose an ordering that a
/// sort-preserving merge needs (a report such as `SELECT 'a' AS k, COUNT(*)
/// FROM t UNION ALL SELECT 'b', COUNT(*) FROM u ORDER BY k`); the scheduler
/// then logs a `SanityCheckPlan` error and the job never ends. The static
/// planner runs such queries. A session may still turn it on with `SET`.
///
/// DataFusion's leaf-expression pushdown
/// (`datafusion.optimizer.enable_leaf_expression_pushdown`) is off. It moves
/// struct field accesses towards the scan as cheap, and in DataFusion 55 it
/// moves the expression under the field along with them: `get_field(
/// sentio_explain(…), 'label')` over `(SELECT … WHERE split = 'test' ORDER
/// BY … LIMIT 3)` was computed in the Parquet scan for every row, below the
/// filter and the limit — 265 s instead of a fraction of a second for three
/// explained rows, and `ML.PREDICT` predicted rows its query filtered out.
///
/// Parquet filters are applied while decoding
/// (`datafusion.execution.parquet.pushdown_filters`): the columns a filter
/// reads are decoded first, and the other columns only for the rows that
/// pass. A training query keeps a fraction of the frames
/// (`WHERE split = 'train' AND session_id % 10 = 0`); `CREATE MODEL`'s passes
/// then decode a tenth of the feature values (logistic regression on 1M of
/// 10M frames: 3.5 → 3.2 s; the statistics queries, which filter little,
/// 1.72 → 1.66 s; docs/benchmarks.md, "Plain feature columns").
///
/// `opdb` is this process's operational DB: the codecs give it to the
/// `opdb` tables and scans they decode, so plans never carry its address.
pub fn session_config(opdb: &Arc<Opdb>) -> SessionConfig {
    SessionConfig::new_with_ballista()
        .with_information_schema(true)
        .with_create_default_catalog_and_schema(true)
        .set_bool(ballista_core::config::BALLISTA_CLIENT_PULL, true)
        .set_bool(ballista_core::config::BALLISTA_ADAPTIVE_PLANNER_ENABLED, false)
        .set_bool("datafusion.optimizer.enable_leaf_expression_pushdown", false)
        .set_bool("datafusion.execution.parquet.pushdown_filters", true)
        .with_ballista_logical_extension_codec(Arc::new(SentioLogicalCodec::new(Arc::clone(opdb))))
        .with_ballista_physical_extension_codec(Arc::new(SentioPhysicalCodec::new(Arc::clone(opdb))))
}

/// The runtime environment: memory, disk and Sentio's object stores.
///
/// DataFusion's cache of folder listings is off: it keeps a listing for the
/// life of the process, and a scheduler, an executor or a script lives on
/// while models, evaluations and lake files are added — each statement must
/// see the folders as they are.
pub fn runtime_env(s3: &S3Config) -> Result<Arc<RuntimeEnv>> {
    Ok(Arc::new(
        RuntimeEnvBuilder::new()
            .with_object_store_registry(Arc::new(SentioObjectStoreRegistry::new(s3.clone())))
            .with_cache_manager(CacheManagerConfig::default().with_list_files_cache_limit(0))
            .build()?,
    ))
}

/// Sentio's scalar and aggregate functions for a process whose S3 settings
/// are `s3` (`sentio_predict` and `sentio_als` read stored models and
/// factors with them).
fn sentio_functions(
    s3: &S3Config,
) -> (Vec<Arc<datafusion::logical_expr::ScalarUDF>>, Vec<Arc<datafusion::logical_expr::AggregateUDF>>) {
    let models: Arc<LakeModels> = Arc::new(LakeModels::new(s3.clone()));
    (sentio_udfs::scalar_functions(models.clone()), sentio_udfs::aggregate_functions(models))
}

/// A session state with DataFusion's, Ballista's and Sentio's functions.
pub fn session_state(config: SessionConfig, runtime: Arc<RuntimeEnv>, s3: &S3Config) -> SessionState {
    let (sentio_scalars, sentio_aggregates) = sentio_functions(s3);
    let mut scalars = ballista_scalar_functions();
    scalars.extend(sentio_scalars);
    let mut aggregates = ballista_aggregate_functions();
    aggregates.extend(sentio_aggregates);
    let mut builder = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .with_scalar_functions(scalars)
        .with_aggregate_functions(aggregates)
        .with_window_functions(ballista_window_functions());
    *builder.physical_optimizers() = Some(PhysicalOptimizer::with_rules(physical_optimizer_rules()));
    builder.build()
}

/// DataFusion's physical optimizer rules with Sentio's: joins with a small
/// side build it in every task of the other
/// ([`crate::small_joins::SmallSidesInTask`], decided on the plan as the
/// planner made it, before DataFusion's rules add the sorts and shuffles of a
/// sort-merge join), then models applied after a top-k and generated leaves
/// made scans at the end.
pub(crate) fn physical_optimizer_rules() -> Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> {
    let mut rules: Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> =
        vec![Arc::new(crate::small_joins::SmallSidesInTask)];
    rules.extend(PhysicalOptimizer::new().rules);
    rules.push(Arc::new(crate::late_models::LateModels));
    rules.push(Arc::new(crate::leaves::CountedLeaves));
    rules
}

/// Registers Sentio's functions on a client context.
///
/// `upgrade_for_ballista` replaces a state's function lists, so the client
/// registers Sentio's functions again after the context is created.
pub fn register_functions(ctx: &SessionContext, s3: &S3Config) {
    let (scalars, aggregates) = sentio_functions(s3);
    for f in scalars {
        ctx.register_udf(f.as_ref().clone());
    }
    for f in aggregates {
        ctx.register_udaf(f.as_ref().clone());
    }
}

/// Applies Sentio's session, functions and object stores to a scheduler.
pub fn configure_scheduler(config: SchedulerConfig, sentio: &SentioConfig) -> Result<SchedulerConfig> {
    let runtime = runtime_env(&sentio.s3)?;
    let s3 = sentio.s3.clone();
    let opdb = Arc::new(sentio.opdb());
    let mut config = config;
    config.override_logical_codec = Some(Arc::new(SentioLogicalCodec::new(Arc::clone(&opdb))));
    config.override_physical_codec = Some(Arc::new(SentioPhysicalCodec::new(Arc::clone(&opdb))));
    Ok(config.with_override_config_producer(Arc::new(move || session_config(&opdb))).with_override_session_builder(
        Arc::new(move |cfg: SessionConfig| Ok(session_state(cfg, Arc::clone(&runtime), &s3))),
    ))
}

/// Applies Sentio's session, functions, object stores and execution engine
/// to an executor.
pub fn configure_executor(config: &mut ExecutorProcessConfig, sentio: &SentioConfig) -> Result<()> {
    let runtime = runtime_env(&sentio.s3)?;
    let opdb = Arc::new(sentio.opdb());
    let state = session_state(session_config(&opdb), Arc::clone(&runtime), &sentio.s3);
    let producer_opdb = Arc::clone(&opdb);
    config.override_config_producer = Some(Arc::new(move || session_config(&producer_opdb)));
    config.override_logical_codec = Some(Arc::new(SentioLogicalCodec::new(Arc::clone(&opdb))));
    config.override_physical_codec = Some(Arc::new(SentioPhysicalCodec::new(opdb)));
    config.override_runtime_producer = Some(Arc::new(move |_| Ok(Arc::clone(&runtime))));
    config.override_function_registry = Some(Arc::new(BallistaFunctionRegistry::from(&state)));
    // Ballista's engine (without its client pool, which Ballista 55 does not
    // export), with cancelled tasks' work stopped (`crate::stop`).
    config.override_execution_engine = Some(Arc::new(StoppingEngine::new(Arc::new(DefaultExecutionEngine::new()))));
    // The memory limit ([`crate::memory`]): Ballista's executor splits it
    // into per-task spilling pools. Its own --memory-pool-size, when given,
    // stays in force.
    if config.memory_pool_size.is_none() {
        config.memory_pool_size = sentio.memory_limit_bytes()?;
    }
    Ok(())
}

/// For an executor that runs apart from its scheduler (`sentio-executor`),
/// after [`configure_executor`]: its tasks also stop when the scheduler no
/// longer runs their job — it died and came back without it
/// ([`crate::job_watch`]).
pub fn watch_jobs(config: &mut ExecutorProcessConfig) -> Result<()> {
    let url = format!("http://{}:{}", config.scheduler_host, config.scheduler_port);
    let watch = JobWatch::new(&url).map_err(|e| SentioError::Config(format!("scheduler address {url}: {e}")))?;
    let engine = StoppingEngine::new(Arc::new(DefaultExecutionEngine::new())).watching_jobs(watch);
    config.override_execution_engine = Some(Arc::new(engine));
    Ok(())
}
