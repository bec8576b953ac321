//! The model store: immutable model versions under the lake, and the
//! registry tables `ml.models`, `ml.evaluations` and `ml.cross_validations`.
//!
//! ```text
//! <lake>/models/<name>/payloads/<fp>-<n>.pb   the parameters (ModelPayload):
//!                                             fingerprint and a name unique to
//!                                             the writer, so two writers never
//!                                             touch each other's (models stored
//!                                             before: <version>/model.pb)
//! <lake>/models/<name>/<version>/model.json   metadata naming its payload;
//!                                             written last, with create-only
//!                                             semantics: a version exists once
//!                                             this file does
//! <lake>/ml/models/<name>.v<version>.parquet  one row of ml.models
//! <lake>/ml/evaluations/*.parquet             rows of ml.evaluations
//! <lake>/ml/cross_validations/*.parquet       rows of ml.cross_validations
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use sentio_udfs::ml::spec::TrainSpec;
use serde::{Deserialize, Serialize};

use crate::folder::LakeFolder;
use crate::ml::MlError;

/// Version of the metadata format this build writes and reads.
pub const META_FORMAT: u32 = 1;

/// How old a parameters file no version names must be before
/// [`ModelStore::sweep_orphan_payloads`] removes it: older than any
/// `CREATE MODEL` takes between writing its parameters and committing.
pub const ORPHAN_GRACE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Statistics of one feature over the training rows (`ML.FEATURE_INFO`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureStat {
    /// Column name.
    pub input: String,
    /// Minimum (numeric features).
    pub min: Option<f64>,
    /// Maximum (numeric features).
    pub max: Option<f64>,
    /// Mean (numeric features).
    pub mean: Option<f64>,
    /// Approximate median (numeric features; a t-digest). None in models
    /// stored before Sentio recorded it.
    #[serde(default)]
    pub median: Option<f64>,
    /// Population standard deviation (numeric features).
    pub stddev: Option<f64>,
    /// Distinct categories kept (text features).
    pub category_count: Option<i64>,
    /// NULL (and NaN) values.
    pub null_count: i64,
}

/// One iteration of training (`ML.TRAINING_INFO`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Iteration {
    /// 0-based iteration.
    pub iteration: i64,
    /// Training loss.
    pub loss: Option<f64>,
    /// Loss on the evaluation rows (last iteration only).
    pub eval_loss: Option<f64>,
    /// The step length the optimiser took (logistic regression's L-BFGS
    /// line search); none for models fitted in one pass.
    #[serde(default)]
    pub learning_rate: Option<f64>,
    /// Time taken.
    pub duration_ms: i64,
}

/// Importance of one feature in a tree model (`ML.FEATURE_IMPORTANCE`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Importance {
    /// Column name.
    pub feature: String,
    /// Splits that use it.
    pub importance_weight: f64,
    /// Total weighted Gini decrease of those splits.
    pub importance_gain: f64,
    /// Rows those splits divided.
    pub importance_cover: f64,
}

/// A feature's global importance (`ML.GLOBAL_EXPLAIN`): the mean absolute
/// attribution it received, over a model's explained training rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GlobalAttribution {
    /// The label whose value was explained; `None` for each row's own
    /// predicted label.
    pub class_label: Option<String>,
    /// Column name.
    pub feature: String,
    /// Mean absolute attribution.
    pub attribution: f64,
}

/// Where one part of a model was trained (`sentio_train`'s final aggregate
/// for one bucket).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingPartInfo {
    /// The bucket.
    pub bucket: u32,
    /// `host:pid` of the process that trained it.
    pub worker: String,
    /// Rows it trained on.
    pub rows: u64,
    /// How long training took there.
    pub millis: u64,
}

/// One trial of a tuned model (`num_trials`): its hyperparameters, its
/// parameters' file and its scores on the evaluation rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialMeta {
    /// 1, 2, … in the order drawn.
    pub trial_id: u32,
    /// Each tuned hyperparameter and the value this trial drew.
    pub hyperparameters: Vec<(String, f64)>,
    /// `SUCCEEDED` or `FAILED`.
    pub status: String,
    /// Why a failed trial failed.
    pub error_message: Option<String>,
    /// Whether it is the model's (the best by the objective).
    pub is_optimal: bool,
    /// The trial's spec (its hyperparameters; the same features and labels
    /// as every other trial's); None for a failed trial.
    pub spec: Option<TrainSpec>,
    /// Its parameters' file under the lake.
    pub payload_file: Option<String>,
    /// Their fingerprint.
    pub payload_fingerprint: Option<String>,
    /// Their size in bytes.
    pub payload_bytes: u64,
    /// Metrics on the evaluation rows.
    pub metrics: BTreeMap<String, Option<f64>>,
    /// The last training loss (logistic regression).
    pub training_loss: Option<f64>,
    /// Milliseconds after the statement started that the trial started and
    /// ended (trials run `max_parallel_trials` at a time).
    pub started_ms: u64,
    /// See `started_ms`.
    pub ended_ms: u64,
    /// Where its parts were trained.
    #[serde(default)]
    pub training_parts: Vec<TrainingPartInfo>,
    /// Its `ML.TRAINING_INFO` rows (none for a failed trial, or a version
    /// stored before trials kept them).
    #[serde(default)]
    pub training_info: Vec<Iteration>,
}

/// Everything stored about a model version beside its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta {
    /// Metadata format ([`META_FORMAT`]).
    pub format: u32,
    /// Model name.
    pub name: String,
    /// Version (1, 2, …).
    pub version: u32,
    /// `model_type`.
    pub model_type: String,
    /// When it was trained (RFC 3339).
    pub created: String,
    /// The Sentio that trained it.
    pub library: String,
    /// Label column.
    pub label: String,
    /// SQL type of the label column (predictions are cast back to it).
    pub label_type: String,
    /// Inputs, encodings, labels, hyperparameters.
    pub spec: TrainSpec,
    /// The OPTIONS as written.
    pub options: BTreeMap<String, String>,
    /// The OPTIONS as understood (retraining, e.g. in ML.CROSS_VALIDATE).
    pub train_options: crate::ml::options::TrainOptions,
    /// The training query's text.
    pub training_query: String,
    /// Rows trained on.
    pub training_rows: u64,
    /// Rows held out for evaluation.
    pub eval_rows: u64,
    /// Rows the model was fit on: `training_rows`, or fewer where
    /// `max_training_rows` (k-NN: `max_stored_rows`) made them a sample. None
    /// in models stored before Sentio recorded it.
    #[serde(default)]
    pub fit_rows: Option<u64>,
    /// A fingerprint of the training rows (count and order-independent hash).
    pub data_fingerprint: String,
    /// Metrics on the evaluation rows (or the training rows without a split).
    pub metrics: BTreeMap<String, Option<f64>>,
    /// Which rows `metrics` were computed on.
    pub metrics_on: String,
    /// Per-feature statistics.
    pub feature_info: Vec<FeatureStat>,
    /// Training iterations.
    pub training_info: Vec<Iteration>,
    /// Feature importance (tree models).
    pub feature_importance: Vec<Importance>,
    /// Wall time of the steps, in milliseconds.
    pub timings_ms: BTreeMap<String, u64>,
    /// Where the parts of the model were trained, and how long each took.
    #[serde(default)]
    pub training_parts: Vec<TrainingPartInfo>,
    /// Payload fingerprint (checked by every reader).
    pub payload_fingerprint: String,
    /// Payload size in bytes.
    pub payload_bytes: u64,
    /// The payload's file under the lake ([`ModelStore::put_payload`]);
    /// `None` in models stored before, whose payload is
    /// `models/<name>/<version>/model.pb`.
    #[serde(default)]
    pub payload_file: Option<String>,
    /// The global explanation (`enable_global_explain = TRUE`); empty
    /// without one.
    #[serde(default)]
    pub global_explain: Vec<GlobalAttribution>,
    /// The trials of a tuned model (`num_trials`); the version's own
    /// parameters are the optimal trial's. Empty without tuning.
    #[serde(default)]
    pub trials: Vec<TrialMeta>,
    /// The metric the trials were ranked by (`hparam_tuning_objectives`).
    #[serde(default)]
    pub tuning_objective: Option<String>,
    /// The `TRANSFORM` columns the model applies to its input rows; empty
    /// without a `TRANSFORM` clause.
    #[serde(default)]
    pub transform: Vec<crate::ml::transform::TransformColumn>,
    /// What a `matrix_factorization` model factorized; None for the other
    /// model types. Its factors are the payload ([`sentio_proto::FactorModel`]).
    #[serde(default)]
    pub factorization: Option<FactorizationMeta>,
}

/// The columns and hyperparameters of a `matrix_factorization` model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FactorizationMeta {
    /// `explicit` or `implicit`.
    pub feedback_type: String,
    /// `user_col`.
    pub user_col: String,
    /// `item_col`.
    pub item_col: String,
    /// `rating_col`.
    pub rating_col: String,
    /// SQL type of the user column (ids are cast back to it).
    pub user_type: String,
    /// SQL type of the item column.
    pub item_type: String,
    /// Latent factors.
    pub num_factors: u32,
    /// Users and items the model knows.
    pub users: u64,
    /// See `users`.
    pub items: u64,
}

impl FactorizationMeta {
    /// Implicit feedback.
    pub fn implicit(&self) -> bool {
        self.feedback_type == "implicit"
    }

    /// The column of predictions, as BigQuery ML names it:
    /// `predicted_<rating_col>`, with `_confidence` for implicit feedback.
    pub fn predicted_column(&self) -> String {
        if self.implicit() {
            format!("predicted_{}_confidence", self.rating_col)
        } else {
            format!("predicted_{}", self.rating_col)
        }
    }
}

impl ModelMeta {
    /// This version as trial `trial_id` of it: its parameters and metrics
    /// in place of the optimal trial's.
    pub fn with_trial(mut self, trial_id: u32) -> Result<Self, MlError> {
        let at = format!("{}@{}", self.name, self.version);
        if self.trials.is_empty() {
            return Err(MlError::Data(format!("trial_id: {at} has no trials (it was created without num_trials)")));
        }
        let ids: Vec<String> = self.trials.iter().map(|t| t.trial_id.to_string()).collect();
        let trial = self.trials.iter().find(|t| t.trial_id == trial_id).ok_or_else(|| {
            MlError::Data(format!("trial_id: {at} has no trial {trial_id} (its trials: {})", ids.join(", ")))
        })?;
        let (Some(spec), Some(file), Some(fp)) = (&trial.spec, &trial.payload_file, &trial.payload_fingerprint) else {
            return Err(MlError::Data(format!(
                "trial_id: trial {trial_id} of {at} failed ({}); it has no model",
                trial.error_message.as_deref().unwrap_or("no reason recorded")
            )));
        };
        self.spec = spec.clone();
        self.payload_file = Some(file.clone());
        self.payload_fingerprint = fp.clone();
        self.payload_bytes = trial.payload_bytes;
        self.metrics = trial.metrics.clone();
        Ok(self)
    }
}

/// `name` or `name@version`, the name as BigQuery writes it
/// ([`crate::ml::parse::model_name`]: `dataset.model`, backquoted, …).
pub fn parse_model_ref(text: &str) -> Result<(String, Option<u32>), MlError> {
    let text = text.trim();
    let (name, version) = match text.rsplit_once('@') {
        Some((n, v)) => {
            let v: u32 = v
                .trim()
                .parse()
                .map_err(|_| MlError::Syntax(format!("bad model version in {text:?} (expected name@N)")))?;
            (n.trim(), Some(v))
        }
        None => (text, None),
    };
    Ok((crate::ml::parse::model_name(name)?, version))
}

/// The model store of one lake.
#[derive(Debug, Clone)]
pub struct ModelStore {
    folder: LakeFolder,
}

fn store_err(e: impl std::fmt::Display) -> MlError {
    MlError::Store(e.to_string())
}

impl ModelStore {
    /// The store under the lake at `root_url` (ending in `/`).
    pub fn new(ctx: &SessionContext, root_url: &str) -> Result<Self, MlError> {
        Ok(Self { folder: LakeFolder::new(ctx, root_url).map_err(store_err)? })
    }

    /// URL of a file under the lake.
    pub fn url(&self, rel: &str) -> String {
        self.folder.url(rel)
    }

    /// The versions of `name` that exist (have metadata), ascending.
    pub async fn versions(&self, name: &str) -> Result<Vec<u32>, MlError> {
        let listed = self.folder.store.list_with_delimiter(Some(&self.folder.path(&format!("models/{name}/")))).await;
        let listed = match listed {
            Ok(l) => l,
            Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(store_err(e)),
        };
        let mut out = Vec::new();
        for p in listed.common_prefixes {
            if let Some(v) = p.filename().and_then(|f| f.parse::<u32>().ok())
                && self.folder.store.head(&self.folder.path(&format!("models/{name}/{v}/model.json"))).await.is_ok()
            {
                out.push(v);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// The file holding `name@version`'s row of `ml.models`.
    pub fn registry_file(name: &str, version: u32) -> String {
        format!("ml/models/{name}.v{version}.parquet")
    }

    /// The versions of `name` that have a row in `ml.models`.
    pub async fn listed_versions(&self, name: &str) -> Result<Vec<u32>, MlError> {
        let files: Vec<_> = match self.folder.store.list(Some(&self.folder.path("ml/models/"))).try_collect().await {
            Ok(files) => files,
            Err(object_store::Error::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(store_err(e)),
        };
        let prefix = format!("{name}.v");
        let mut out: Vec<u32> = files
            .iter()
            .filter_map(|f| f.location.filename()?.strip_prefix(&prefix)?.strip_suffix(".parquet")?.parse().ok())
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    /// Metadata of `name@version` (the latest without a version).
    pub async fn meta(&self, name: &str, version: Option<u32>) -> Result<ModelMeta, MlError> {
        let version = match version {
            Some(v) => v,
            None => *self.versions(name).await?.last().ok_or_else(|| MlError::UnknownModel(name.to_string()))?,
        };
        let path = self.folder.path(&format!("models/{name}/{version}/model.json"));
        let bytes = match self.folder.store.get(&path).await {
            Ok(g) => g.bytes().await.map_err(store_err)?,
            Err(object_store::Error::NotFound { .. }) => {
                let known = self.versions(name).await?;
                return Err(if known.is_empty() {
                    MlError::UnknownModel(name.to_string())
                } else {
                    MlError::UnknownModel(format!(
                        "{name}@{version} (versions: {})",
                        known.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
                    ))
                });
            }
            Err(e) => return Err(store_err(e)),
        };
        #[derive(Deserialize)]
        struct Format {
            format: u32,
        }
        let f: Format = serde_json::from_slice(&bytes)
            .map_err(|e| MlError::Corrupt(format!("{name}@{version}: model.json is not valid: {e}")))?;
        if f.format != META_FORMAT {
            return Err(MlError::Corrupt(format!(
                "{name}@{version} has metadata format {} and this Sentio reads format {META_FORMAT}",
                f.format
            )));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| MlError::Corrupt(format!("{name}@{version}: model.json is not valid: {e}")))
    }

    /// URL of a version's parameters.
    pub fn payload_url(&self, meta: &ModelMeta) -> String {
        match &meta.payload_file {
            Some(file) => self.url(file),
            None => self.url(&format!("models/{}/{}/model.pb", meta.name, meta.version)),
        }
    }

    /// Writes a model's parameters, fingerprint `fp`, to a file of this
    /// writer's own (`models/<name>/payloads/<fp>-<unique name>.pb`,
    /// created only if absent): no version names it until [`Self::commit`],
    /// and no other writer — not even one that trained the same bytes —
    /// writes or removes it. Returns the file's path under the lake.
    pub async fn put_payload(&self, name: &str, fp: &str, bytes: Vec<u8>) -> Result<String, MlError> {
        // Shared, not copied, by each attempt.
        let bytes = bytes::Bytes::from(bytes);
        loop {
            let rel = format!("models/{name}/payloads/{fp}-{}.pb", crate::ids::unique_name());
            let create = PutOptions { mode: PutMode::Create, ..Default::default() };
            let path = self.folder.path(&rel);
            match self.folder.store.put_opts(&path, PutPayload::from(bytes.clone()), create).await {
                Ok(_) => return Ok(rel),
                // Another writer drew the same name: draw again.
                Err(object_store::Error::AlreadyExists { .. }) => continue,
                // A store without create-only writes: the unique name alone
                // keeps the file this writer's.
                Err(object_store::Error::NotImplemented { .. }) => {
                    self.folder.store.put(&path, PutPayload::from(bytes)).await.map_err(store_err)?;
                    return Ok(rel);
                }
                Err(e) => return Err(store_err(e)),
            }
        }
    }

    /// Removes the parameters file `rel` ([`Self::put_payload`]'s) of a
    /// `CREATE MODEL` that failed before committing a version.
    pub async fn discard_payload(&self, rel: &str) -> Result<(), MlError> {
        match self.folder.store.delete(&self.folder.path(rel)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_err(e)),
        }
    }

    /// Publishes a version: writes its metadata only if no one else has
    /// published that version; returns false if someone had.
    ///
    /// A write whose answer is lost may still have landed: object_store
    /// retries a PUT whose connection closed before the answer, and the
    /// retry then finds the version taken — by this very write. So a taken
    /// version, or a failed write, is read back: metadata naming this
    /// statement's own parameters file is this commit. When even the read
    /// fails, the outcome is unknown and the error says so
    /// ([`MlError::Unsettled`]): the caller must not remove the parameters
    /// file a committed version may name.
    pub async fn commit(&self, meta: &ModelMeta) -> Result<bool, MlError> {
        let path = self.folder.path(&format!("models/{}/{}/model.json", meta.name, meta.version));
        let body = PutPayload::from(serde_json::to_vec_pretty(meta).map_err(store_err)?);
        let create = PutOptions { mode: PutMode::Create, ..Default::default() };
        match self.folder.store.put_opts(&path, body.clone(), create).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(self.committed_by(&path, meta).await? == Some(true)),
            Err(object_store::Error::NotImplemented { .. }) => {
                if self.folder.store.head(&path).await.is_ok() {
                    return Ok(false);
                }
                self.folder.store.put(&path, body).await.map_err(store_err)?;
                Ok(true)
            }
            Err(e) => match self.committed_by(&path, meta).await {
                Ok(Some(true)) => Ok(true),
                Ok(_) => Err(store_err(e)),
                Err(_) => Err(MlError::Unsettled(format!(
                    "writing {} failed ({e}) and it could not be read back: whether version {} of {} was \
                     committed is unknown (once the model store answers, `ML.TRAINING_INFO(MODEL {}@{})` \
                     says; its parameters file is kept)",
                    path, meta.version, meta.name, meta.name, meta.version
                ))),
            },
        }
    }

    /// Whether the metadata at `path` is `meta`'s own (the same parameters
    /// file and creation time): `None` when there is none.
    async fn committed_by(&self, path: &object_store::path::Path, meta: &ModelMeta) -> Result<Option<bool>, MlError> {
        let bytes = match self.folder.store.get(path).await {
            Ok(g) => g.bytes().await.map_err(store_err)?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(store_err(e)),
        };
        #[derive(Deserialize)]
        struct Claim {
            created: String,
            payload_file: Option<String>,
        }
        Ok(Some(match serde_json::from_slice::<Claim>(&bytes) {
            Ok(c) => meta.payload_file.is_some() && c.payload_file == meta.payload_file && c.created == meta.created,
            Err(_) => false,
        }))
    }

    /// Removes the parameter files of `name` that no version names and that
    /// are older than `grace`: those of `CREATE MODEL`s killed between
    /// writing them and committing a version (a statement that fails
    /// removes its own). Younger ones may belong to a statement still
    /// running, and are kept. Returns how many were removed.
    pub async fn sweep_orphan_payloads(&self, name: &str, grace: std::time::Duration) -> Result<usize, MlError> {
        let folder = self.folder.path(&format!("models/{name}/payloads/"));
        let files: Vec<_> = self.folder.store.list(Some(&folder)).try_collect().await.map_err(store_err)?;
        let cutoff = chrono::Utc::now() - chrono::Duration::from_std(grace).map_err(store_err)?;
        let old: Vec<_> = files.into_iter().filter(|f| f.last_modified < cutoff).collect();
        if old.is_empty() {
            return Ok(0);
        }
        let mut named = std::collections::HashSet::new();
        for v in self.versions(name).await? {
            let meta = self.meta(name, Some(v)).await?;
            let files = meta.payload_file.iter().chain(meta.trials.iter().filter_map(|t| t.payload_file.as_ref()));
            named.extend(files.map(|f| self.folder.path(f).to_string()));
        }
        let mut removed = 0;
        for f in old.iter().filter(|f| !named.contains(&f.location.to_string())) {
            match self.folder.store.delete(&f.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => removed += 1,
                Err(e) => return Err(store_err(e)),
            }
        }
        Ok(removed)
    }

    /// Deletes every file under `rel` (a folder).
    async fn delete_prefix(&self, rel: &str) -> Result<(), MlError> {
        let files: Vec<_> =
            self.folder.store.list(Some(&self.folder.path(rel))).try_collect().await.map_err(store_err)?;
        for f in files {
            self.folder.store.delete(&f.location).await.map_err(store_err)?;
        }
        Ok(())
    }

    /// Removes every version of `name` and its `ml.models` rows; returns how
    /// many versions there were.
    pub async fn drop_model(&self, name: &str) -> Result<usize, MlError> {
        let versions = self.versions(name).await?;
        // The versions go first, their rows after: a `CREATE MODEL` that
        // lists a committed version missing from ml.models meanwhile sees it
        // gone and takes the row back.
        self.delete_prefix(&format!("models/{name}/")).await?;
        for v in &versions {
            let _ = self.folder.store.delete(&self.folder.path(&Self::registry_file(name, *v))).await;
        }
        Ok(versions.len())
    }

    /// Writes `batch` as one Parquet file at `rel`.
    pub async fn put_parquet(&self, rel: &str, batch: &RecordBatch) -> Result<(), MlError> {
        let mut buf = Vec::new();
        let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), None).map_err(store_err)?;
        w.write(batch).map_err(store_err)?;
        w.close().map_err(store_err)?;
        self.folder.store.put(&self.folder.path(rel), PutPayload::from(buf)).await.map_err(store_err)?;
        Ok(())
    }

    /// Writes raw bytes at `rel`.
    pub async fn put_bytes(&self, rel: &str, bytes: Vec<u8>) -> Result<(), MlError> {
        self.folder.store.put(&self.folder.path(rel), PutPayload::from(bytes)).await.map_err(store_err)?;
        Ok(())
    }

    /// Deletes every file under the folder `rel` (a scratch folder).
    pub async fn delete_folder(&self, rel: &str) -> Result<(), MlError> {
        self.delete_prefix(rel).await?;
        self.folder.remove_empty_dirs(rel);
        Ok(())
    }

    /// Deletes the file at `rel`.
    pub async fn delete_file(&self, rel: &str) -> Result<(), MlError> {
        self.folder.store.delete(&self.folder.path(rel)).await.map_err(store_err)
    }

    /// Registers a Parquet folder of the store as a table with `schema`.
    pub fn register_table(
        &self,
        ctx: &SessionContext,
        table: &str,
        folder: &str,
        schema: SchemaRef,
    ) -> Result<(), MlError> {
        use datafusion::datasource::file_format::parquet::ParquetFormat;
        use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig};
        self.folder.ensure_dir(folder);
        let url = ListingTableUrl::parse(self.url(folder)).map_err(store_err)?;
        let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let config = ListingTableConfig::new(url).with_listing_options(options).with_schema(schema);
        let provider = ListingTable::try_new(config).map_err(store_err)?;
        ctx.register_table(datafusion::common::TableReference::partial("ml", table), Arc::new(provider))
            .map_err(store_err)?;
        Ok(())
    }
}
