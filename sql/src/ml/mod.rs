//! Machine learning in SQL, as BigQuery ML spells it: `CREATE MODEL`,
//! `DROP MODEL`, `ML.PREDICT`, `ML.EVALUATE`, `ML.CONFUSION_MATRIX`,
//! `ML.ROC_CURVE`, `ML.FEATURE_INFO`, `ML.TRAINING_INFO`,
//! `ML.FEATURE_IMPORTANCE`, `ML.EXPLAIN_PREDICT`, `ML.GLOBAL_EXPLAIN`,
//! `ML.WEIGHTS`, `ML.CROSS_VALIDATE`, `ML.RECOMMEND` (matrix factorization,
//! [`factorize`] and [`recommend`]), and the `ml` tables.
//!
//! DataFusion's parser accepts none of these, so [`prepare`] runs before it:
//! statements are recognised ([`parse`]) and carried out here; `ML.*` calls
//! inside a query are rewritten into ordinary SQL over Sentio's functions
//! (`sentio_train`, `sentio_predict`, `sentio_metrics`, see
//! [`sentio_udfs::ml`]) — so all the heavy work runs in the cluster like any
//! other query — or, for small results that must also be stored (metrics), run
//! first and inlined as a literal table ([`crate::sqltext::rows_table`]).

pub mod create;
pub mod describe;
pub mod drift;
pub mod explain;
pub mod factorize;
pub mod functions;
pub mod options;
pub mod parse;
pub mod preprocess;
pub mod recommend;
pub mod snapshot;
pub mod source;
pub mod sqltext;
pub mod store;
pub mod transform;
pub mod trials;
pub mod tuning;
pub mod weights;

use std::sync::{Arc, Mutex};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;

use crate::ml::parse::{MlStatement, parse_ml_statement};
use crate::ml::store::ModelStore;

/// Errors of the ML layer.
#[derive(Debug, thiserror::Error)]
pub enum MlError {
    /// A statement or call that does not parse.
    #[error("ML syntax: {0}")]
    Syntax(String),
    /// A bad or unknown OPTIONS entry.
    #[error("CREATE MODEL options: {0}")]
    Option(String),
    /// No such model or version.
    #[error("unknown model {0}")]
    UnknownModel(String),
    /// The model exists already.
    #[error("model {0} already exists; use CREATE OR REPLACE MODEL (a new version) or CREATE MODEL IF NOT EXISTS")]
    Exists(String),
    /// The data cannot train or feed the model.
    #[error("{0}")]
    Data(String),
    /// A stored model that cannot be read.
    #[error("model store: {0}")]
    Corrupt(String),
    /// The model store could not be read or written.
    #[error("model store: {0}")]
    Store(String),
    /// A version's metadata write failed in a way that may have landed:
    /// whether the version exists is unknown, so its files are kept.
    #[error("model store: {0}")]
    Unsettled(String),
    /// No lake is configured.
    #[error("machine learning needs a lake for its model store (--lake / SENTIO_LAKE)")]
    NoLake,
    /// DataFusion or Ballista failed.
    #[error("{}", crate::task_error::describe(.0))]
    DataFusion(#[from] datafusion::error::DataFusionError),
    /// A bug.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<datafusion::arrow::error::ArrowError> for MlError {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        MlError::DataFusion(e.into())
    }
}

/// What the ML layer needs of a session.
#[derive(Clone)]
pub struct MlContext {
    /// The session (queries run in the cluster through it).
    pub ctx: SessionContext,
    /// The model store (None without a lake).
    pub store: Option<ModelStore>,
    /// The plans of the jobs an ML statement is running now, oldest first
    /// (statistics, label counts and categories run at once), so the runner
    /// can show the progress of one and cancel it on `--timeout`.
    running: Arc<Mutex<Vec<Arc<dyn ExecutionPlan>>>>,
    /// The cluster jobs run since [`Self::take_jobs`] was last called.
    jobs: Arc<Mutex<Vec<String>>>,
    /// The project name that three-part model names may carry
    /// ([`Self::store_name`]); none accepts no project part.
    project: Option<String>,
}

/// Takes a job's plan off [`MlContext`]'s running plans when the job ends,
/// or is dropped — that plan only: jobs that run at once end in any order.
struct RunningGuard<'a>(&'a Mutex<Vec<Arc<dyn ExecutionPlan>>>, Arc<dyn ExecutionPlan>);

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut running) = self.0.lock() {
            running.retain(|plan| !Arc::ptr_eq(plan, &self.1));
        }
    }
}

impl MlContext {
    /// The model store, or the error saying a lake is needed.
    pub fn store(&self) -> Result<&ModelStore, MlError> {
        self.store.as_ref().ok_or(MlError::NoLake)
    }

    /// A context over `ctx` with the model store `store`.
    pub fn new(ctx: SessionContext, store: Option<ModelStore>) -> Self {
        Self { ctx, store, running: Arc::default(), jobs: Arc::default(), project: None }
    }

    /// Accepts `project` as the project part of three-part model names
    /// (`` `project.dataset.model` ``), as BigQuery scripts write them.
    pub fn with_project(mut self, project: Option<String>) -> Self {
        self.project = project;
        self
    }

    /// The model store's name of `name` as a statement wrote it
    /// ([`parse::model_name`]): `model` and `dataset.model` as they are; a
    /// project part must be this cluster's `project` and is dropped — the
    /// cluster's lake is its one project.
    pub fn store_name(&self, name: &str) -> Result<String, MlError> {
        let parts: Vec<&str> = name.split('.').collect();
        let [project, dataset, model] = parts[..] else { return Ok(name.to_string()) };
        match &self.project {
            Some(p) if p == project => Ok(format!("{dataset}.{model}")),
            Some(p) => Err(MlError::Syntax(format!(
                "model {name}: project {project} is not this cluster's ({p}); write {dataset}.{model}"
            ))),
            None => Err(MlError::Syntax(format!(
                "model {name}: this cluster has no project name; write {dataset}.{model}, or set project = \
                 \"{project}\" (SENTIO_PROJECT) where statements are planned to accept it"
            ))),
        }
    }

    /// Runs a query and collects its (small) result; while it runs, its
    /// plan is [`Self::running_plan`].
    pub async fn collect(&self, sql: &str) -> Result<Vec<RecordBatch>, MlError> {
        let plan = self.ctx.sql(sql).await?.create_physical_plan().await?;
        if let Ok(mut running) = self.running.lock() {
            running.push(Arc::clone(&plan));
        }
        let _clear = RunningGuard(&self.running, Arc::clone(&plan));
        let batches = datafusion::physical_plan::collect(Arc::clone(&plan), self.ctx.task_ctx()).await;
        if let (Some(job), Ok(mut jobs)) = (crate::jobs::job_of(&plan), self.jobs.lock()) {
            jobs.push(job);
        }
        Ok(batches?)
    }

    /// The ids of the cluster jobs run since the last call (for what they
    /// scanned).
    pub fn take_jobs(&self) -> Vec<String> {
        self.jobs.lock().map(|mut j| std::mem::take(&mut *j)).unwrap_or_default()
    }

    /// The plan of the job running now, if any (of several at once, the
    /// one started last).
    pub fn running_plan(&self) -> Option<Arc<dyn ExecutionPlan>> {
        self.running.lock().ok().and_then(|running| running.last().cloned())
    }
}

/// A statement after the ML layer.
#[derive(Debug)]
pub enum Prepared {
    /// Ordinary SQL for DataFusion (ML calls rewritten).
    Sql(String),
    /// Carried out already: its result.
    Done(Vec<RecordBatch>),
}

/// Carries out an ML statement or rewrites the ML calls of a query.
pub async fn prepare(ml: &MlContext, sql: &str) -> Result<Prepared, MlError> {
    match parse_ml_statement(sql) {
        Ok(Some(MlStatement::CreateModel { name, or_replace, if_not_exists, options, transform, query })) => {
            let name = ml.store_name(&name)?;
            let statement = create::Statement {
                or_replace,
                if_not_exists,
                options: &options,
                transform: transform.as_deref(),
                query: &query,
            };
            let batches = create::create_model(ml, &name, statement).await?;
            Ok(Prepared::Done(batches))
        }
        Ok(Some(MlStatement::DropModel { name, if_exists })) => {
            let name = ml.store_name(&name)?;
            let dropped = ml.store()?.drop_model(&name).await?;
            if dropped == 0 && !if_exists {
                return Err(MlError::UnknownModel(name));
            }
            let batch = RecordBatch::try_new(
                Arc::new(Schema::new(vec![
                    Field::new("model", DataType::Utf8, false),
                    Field::new("versions_dropped", DataType::Int64, false),
                ])),
                vec![
                    Arc::new(datafusion::arrow::array::StringArray::from(vec![name])),
                    Arc::new(datafusion::arrow::array::Int64Array::from(vec![dropped as i64])),
                ],
            )
            .map_err(|e| MlError::Internal(e.to_string()))?;
            Ok(Prepared::Done(vec![batch]))
        }
        Ok(None) => Ok(Prepared::Sql(functions::rewrite(ml, sql).await?)),
        // Not ours after all? Leave the message to DataFusion unless it is
        // clearly an ML statement.
        Err(e) => {
            let head = sql.trim_start().to_ascii_uppercase();
            let ours = head.starts_with("DROP MODEL")
                || head.split_whitespace().take(4).any(|w| w == "MODEL") && head.starts_with("CREATE");
            if ours { Err(e) } else { Ok(Prepared::Sql(functions::rewrite(ml, sql).await?)) }
        }
    }
}

/// The statement `sql` is, when it changes the model store: `CREATE MODEL`
/// or `DROP MODEL`.
pub fn changes_models(sql: &str) -> Option<&'static str> {
    match parse_ml_statement(sql) {
        Ok(Some(MlStatement::CreateModel { .. })) => Some("CREATE MODEL"),
        Ok(Some(MlStatement::DropModel { .. })) => Some("DROP MODEL"),
        _ => None,
    }
}

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// A regressor's metrics, as BigQuery ML names them (a classifier's are
/// [`sentio_udfs::ml::metrics_udaf::METRICS`]).
pub const REGRESSION_METRICS: [&str; 6] = [
    "mean_absolute_error",
    "mean_squared_error",
    "mean_squared_log_error",
    "median_absolute_error",
    "r2_score",
    "explained_variance",
];

/// The metrics of a model: a regressor's or a classifier's.
pub fn metric_names(regressor: bool) -> &'static [&'static str] {
    if regressor { &REGRESSION_METRICS } else { &sentio_udfs::ml::metrics_udaf::METRICS }
}

/// Every metric column of `ml.models` and `ml.evaluations`: a classifier's,
/// then a regressor's (NULL where they do not apply).
fn stored_metrics() -> Vec<&'static str> {
    metric_names(false).iter().chain(metric_names(true)).copied().collect()
}

/// The metric columns `names`, DOUBLE.
pub fn metric_fields(names: &[&str]) -> Vec<Field> {
    names.iter().map(|m| Field::new(*m, DataType::Float64, true)).collect()
}

/// One row of the metric columns `names` holding `metrics`.
pub fn metric_columns(
    names: &[&str],
    metrics: &std::collections::BTreeMap<String, Option<f64>>,
) -> Vec<datafusion::arrow::array::ArrayRef> {
    names
        .iter()
        .map(|k| {
            Arc::new(datafusion::arrow::array::Float64Array::from(vec![metrics.get(*k).copied().flatten()]))
                as datafusion::arrow::array::ArrayRef
        })
        .collect()
}

/// One row of `ml.models`' and `ml.evaluations`' metric columns.
pub fn stored_metric_columns(
    metrics: &std::collections::BTreeMap<String, Option<f64>>,
) -> Vec<datafusion::arrow::array::ArrayRef> {
    metric_columns(&stored_metrics(), metrics)
}

/// Schema of `ml.models`.
pub fn models_schema() -> SchemaRef {
    let mut f = vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("version", DataType::Int64, false),
        Field::new("model_type", DataType::Utf8, false),
        Field::new("created", ts(), false),
        Field::new("training_rows", DataType::Int64, false),
        Field::new("eval_rows", DataType::Int64, false),
        Field::new("label", DataType::Utf8, false),
        Field::new("labels", DataType::Utf8, false),
        Field::new("features", DataType::Utf8, false),
    ];
    f.extend(metric_fields(&stored_metrics()));
    f.push(Field::new("metrics", DataType::Utf8, false));
    f.push(Field::new("data_fingerprint", DataType::Utf8, false));
    f.push(Field::new("training_query", DataType::Utf8, false));
    Arc::new(Schema::new(f))
}

/// Schema of `ml.evaluations`.
pub fn evaluations_schema() -> SchemaRef {
    let mut f = vec![
        Field::new("model", DataType::Utf8, false),
        Field::new("version", DataType::Int64, false),
        Field::new("evaluated_at", ts(), false),
        Field::new("query_fingerprint", DataType::Utf8, false),
        Field::new("rows", DataType::Int64, false),
    ];
    f.extend(metric_fields(&stored_metrics()));
    Arc::new(Schema::new(f))
}

/// Schema of `ml.cross_validations` and of `ML.CROSS_VALIDATE`'s result.
pub fn cross_validations_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("model", DataType::Utf8, false),
        Field::new("version", DataType::Int64, false),
        Field::new("run_id", DataType::Utf8, false),
        Field::new("cross_validated_at", ts(), false),
        Field::new("num_folds", DataType::Int64, false),
        Field::new("fold", DataType::Utf8, false),
        Field::new("metric", DataType::Utf8, false),
        Field::new("value", DataType::Float64, true),
    ]))
}

/// Schema of `ml.script_runs`: one row per run of a script with
/// `sentio sql --record-run NAME` (a scheduled job's history).
pub fn script_runs_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("script", DataType::Utf8, false),
        Field::new("host", DataType::Utf8, false),
        Field::new("started_at", ts(), false),
        Field::new("finished_at", ts(), false),
        Field::new("status", DataType::Utf8, false),
        Field::new("error", DataType::Utf8, true),
    ]))
}

/// Registers the `ml` schema (`ml.models`, `ml.evaluations`,
/// `ml.cross_validations`, `ml.script_runs`) of the lake at `root_url` and
/// returns the context the ML layer works with.
pub fn register_ml(ctx: &SessionContext, root_url: Option<&str>) -> Result<MlContext, MlError> {
    let Some(root) = root_url else {
        return Ok(MlContext::new(ctx.clone(), None));
    };
    let store = ModelStore::new(ctx, root)?;
    let catalog_name = ctx.state().config().options().catalog.default_catalog.clone();
    if let Some(catalog) = ctx.catalog(&catalog_name)
        && catalog.schema("ml").is_none()
    {
        catalog
            .register_schema("ml", Arc::new(datafusion::catalog::MemorySchemaProvider::new()))
            .map_err(|e| MlError::Internal(e.to_string()))?;
    }
    store.register_table(ctx, "models", "ml/models/", models_schema())?;
    store.register_table(ctx, "evaluations", "ml/evaluations/", evaluations_schema())?;
    store.register_table(ctx, "cross_validations", "ml/cross_validations/", cross_validations_schema())?;
    store.register_table(ctx, "script_runs", "ml/script_runs/", script_runs_schema())?;
    Ok(MlContext::new(ctx.clone(), Some(store)))
}
