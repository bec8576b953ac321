//! Extracts: Parquet snapshots of operational tables in the lake, refreshed
//! with only what changed.
//!
//! ```sql
//! CREATE TABLE extracts.sessions AS SELECT * FROM opdb.sessions;  -- the watermark: its integer key
//! REFRESH EXTRACT extracts.sessions;        -- adds the rows past the watermark
//! REFRESH EXTRACT extracts.sessions FULL;   -- rebuilds it
//! SELECT * FROM extracts.manifest;          -- source, watermark, rows, files, last refresh
//! DROP TABLE extracts.sessions;
//! ```
//!
//! The rows are read through the `opdb` read path (the replica when one is
//! configured, snapshot transactions, timeouts, parallel key ranges) and
//! written by the cluster as Parquet into a new *part* folder,
//! `<lake>/extracts/<name>/<part>/`. The part becomes visible when the
//! extract's [`manifest`] — the commit point — is replaced in one PUT, so a
//! refresh that fails part-way leaves the extract as it was; its files are
//! removed by the next refresh that completes. Statements that change one
//! extract commit one at a time under its commit lock (`lock`), each
//! checking that the manifest is still the one it started from; a refresh
//! that another overtook starts again.
//!
//! With an update-time watermark (`OPTIONS (watermark = 'updated_at')`) over
//! a table whose integer primary key the query returns, a refresh also reads
//! rows that changed; their earlier versions are dropped from the older
//! parts (rewritten into one part, committed with the same PUT), so the
//! extract holds each key once.

mod lock;
pub mod manifest;
pub mod parse;

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use datafusion::catalog::MemorySchemaProvider;
use datafusion::common::TableReference;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::logical_expr::LogicalPlan;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::folder::LakeFolder;
use crate::ids::{now_micros, unique_name};
use crate::ml::MlContext;
use crate::sqltext::{lit, qcol};
use lock::CommitLock;
use manifest::{Manifest, manifest_schema};
pub use parse::{ExtractStatement, parse_extract_statement};
use sentio_opdb::scan::OpdbTable;

/// The schema extracts are registered under.
pub const SCHEMA: &str = "extracts";
/// `extracts.manifest`: one row per extract.
pub const MANIFEST_TABLE: &str = "manifest";
/// Folder of the manifests, under `<lake>/extracts/`.
const MANIFEST_DIR: &str = "_manifest";

/// What can go wrong with an extract.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// The statement is malformed.
    #[error("{0}")]
    Syntax(String),
    /// No such extract.
    #[error("unknown extract extracts.{0} (SELECT extract FROM extracts.manifest lists them)")]
    Unknown(String),
    /// CREATE of an extract that exists.
    #[error(
        "extracts.{0} already exists: REFRESH EXTRACT extracts.{0} adds new rows, REFRESH EXTRACT extracts.{0} FULL \
         rebuilds it, CREATE OR REPLACE TABLE extracts.{0} AS … gives it a new query"
    )]
    Exists(String),
    /// The source or the watermark does not allow what was asked.
    #[error("extracts.{0}: {1}")]
    Data(String, String),
    /// Another statement committed a change to the extract (a refresh,
    /// `CREATE OR REPLACE`, `DROP`) while this one ran.
    #[error(
        "extracts.{0} was changed by another statement (a refresh, CREATE OR REPLACE or DROP) while this one ran; \
         this one committed nothing — run it again"
    )]
    Changed(String),
    /// A manifest that cannot be read.
    #[error("corrupt extract manifest {0}")]
    Corrupt(String),
    /// No lake is configured.
    #[error("extracts live in the lake; give one with --lake or SENTIO_LAKE")]
    NoLake,
    /// The lake's object store failed.
    #[error("lake: {0}")]
    Store(#[from] object_store::Error),
    /// DataFusion or Ballista failed.
    #[error("{}", crate::task_error::describe(.0))]
    DataFusion(#[from] datafusion::error::DataFusionError),
}

impl From<datafusion::arrow::error::ArrowError> for ExtractError {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        Self::DataFusion(e.into())
    }
}

impl From<datafusion::parquet::errors::ParquetError> for ExtractError {
    fn from(e: datafusion::parquet::errors::ParquetError) -> Self {
        Self::DataFusion(e.into())
    }
}

impl From<crate::ml::MlError> for ExtractError {
    fn from(e: crate::ml::MlError) -> Self {
        match e {
            crate::ml::MlError::DataFusion(e) => Self::DataFusion(e),
            other => Self::DataFusion(datafusion::error::DataFusionError::External(Box::new(other))),
        }
    }
}

/// The extracts of one lake.
#[derive(Debug, Clone)]
pub struct Extracts {
    folder: LakeFolder,
}

/// Types a watermark can have: they grow, and compare in the database.
fn watermark_type_ok(t: &DataType) -> bool {
    t.is_integer()
        || matches!(t, DataType::Date32 | DataType::Date64 | DataType::Timestamp(..) | DataType::Decimal128(..))
}

impl Extracts {
    /// The extracts under the lake at `root_url` (ending in `/`).
    pub fn new(ctx: &SessionContext, root_url: &str) -> Result<Self, ExtractError> {
        Ok(Self { folder: LakeFolder::new(ctx, root_url)? })
    }

    fn manifest_rel(name: &str) -> String {
        format!("{SCHEMA}/{MANIFEST_DIR}/{name}.parquet")
    }

    fn part_rel(name: &str, part: &str) -> String {
        format!("{SCHEMA}/{name}/{part}/")
    }

    /// The manifest of `name`, if the extract exists.
    pub async fn manifest(&self, name: &str) -> Result<Option<Manifest>, ExtractError> {
        let rel = Self::manifest_rel(name);
        match self.folder.store.get(&self.folder.path(&rel)).await {
            Ok(g) => Ok(Some(Manifest::from_parquet(g.bytes().await?, &self.folder.url(&rel))?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Every manifest, by name; manifests that cannot be read are returned
    /// as errors beside the others.
    pub async fn manifests(&self) -> Result<(Vec<Manifest>, Vec<ExtractError>), ExtractError> {
        let dir = self.folder.path(&format!("{SCHEMA}/{MANIFEST_DIR}/"));
        let files: Vec<_> = match self.folder.store.list(Some(&dir)).try_collect::<Vec<_>>().await {
            Ok(f) => f,
            Err(object_store::Error::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        let mut bad = Vec::new();
        for f in files {
            let Some(name) = f.location.filename().and_then(|n| n.strip_suffix(".parquet")) else { continue };
            match self.manifest(name).await {
                Ok(Some(m)) => out.push(m),
                Ok(None) => {}
                Err(e @ ExtractError::Corrupt(_)) => bad.push(e),
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok((out, bad))
    }

    /// Registers `extracts.manifest` and every extract on `ctx`; returns the
    /// extracts it could not register (a corrupt manifest, missing files),
    /// which do not keep the others from working.
    pub async fn register(&self, ctx: &SessionContext) -> Result<Vec<ExtractError>, ExtractError> {
        let catalog_name = ctx.state().config().options().catalog.default_catalog.clone();
        if let Some(catalog) = ctx.catalog(&catalog_name)
            && catalog.schema(SCHEMA).is_none()
        {
            catalog.register_schema(SCHEMA, Arc::new(MemorySchemaProvider::new()))?;
        }
        let dir = format!("{SCHEMA}/{MANIFEST_DIR}/");
        self.folder.ensure_dir(&dir);
        let config = ListingTableConfig::new(ListingTableUrl::parse(self.folder.url(&dir))?)
            .with_listing_options(parquet_options())
            .with_schema(manifest_schema());
        ctx.register_table(TableReference::partial(SCHEMA, MANIFEST_TABLE), Arc::new(ListingTable::try_new(config)?))?;
        let (manifests, mut problems) = self.manifests().await?;
        for m in manifests {
            if let Err(e) = self.register_extract(ctx, &m).await {
                problems.push(ExtractError::Data(m.name.clone(), format!("not available: {e}")));
            }
        }
        Ok(problems)
    }

    /// Registers (or re-registers) `extracts.<name>` over its parts.
    async fn register_extract(&self, ctx: &SessionContext, m: &Manifest) -> Result<(), ExtractError> {
        let reference = TableReference::partial(SCHEMA, m.name.as_str());
        let _ = ctx.deregister_table(reference.clone());
        let urls = self.part_urls(&m.name, &m.parts)?;
        let Some(first) = urls.first() else {
            return Err(ExtractError::Corrupt(format!("{}: no parts", self.folder.url(&Self::manifest_rel(&m.name)))));
        };
        let options = parquet_options();
        let schema = options.infer_schema(&ctx.state(), first).await?;
        let config = ListingTableConfig::new_with_multi_paths(urls).with_listing_options(options).with_schema(schema);
        ctx.register_table(reference, Arc::new(ListingTable::try_new(config)?))?;
        Ok(())
    }

    /// The folders of `parts` of extract `name`, as table locations.
    fn part_urls(&self, name: &str, parts: &[String]) -> Result<Vec<ListingTableUrl>, ExtractError> {
        Ok(parts
            .iter()
            .map(|p| ListingTableUrl::parse(self.folder.url(&Self::part_rel(name, p))))
            .collect::<Result<Vec<_>, _>>()?)
    }

    async fn files_under(&self, rel: &str) -> Result<Vec<object_store::ObjectMeta>, ExtractError> {
        match self.folder.store.list(Some(&self.folder.path(rel))).try_collect::<Vec<_>>().await {
            Ok(f) => Ok(f),
            Err(object_store::Error::NotFound { .. }) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes those of `files` (the extract's) that `m` does not list: the parts
    /// that `was` (the manifest `m` replaced) listed, and files of no
    /// manifest (a failed statement's) older than `before` — a statement
    /// running now keeps its files; one that started before `m` was
    /// committed and whose files go anyway finds them missing when it
    /// commits, and starts again.
    async fn remove_unlisted(&self, m: &Manifest, was: Option<&Manifest>, files: Vec<PartFile>, before: i64) {
        let replaced = |p: &String| was.is_some_and(|w| w.parts.contains(p));
        let unlisted = files.into_iter().filter(|f| match &f.part {
            Some(p) if m.parts.contains(p) => false,
            Some(p) if replaced(p) => true,
            _ => f.meta.last_modified.timestamp_micros() < before,
        });
        self.delete_all(unlisted.map(|f| f.meta).collect()).await;
    }

    /// The files of extract `name`, each with its part folder.
    async fn part_files(&self, name: &str) -> Result<Vec<PartFile>, ExtractError> {
        let base = self.folder.path(&format!("{SCHEMA}/{name}/"));
        let files = self.files_under(&format!("{SCHEMA}/{name}/")).await?;
        Ok(files.into_iter().map(|meta| PartFile { part: part_of(&meta.location, &base), meta }).collect())
    }

    /// Runs an extract statement; its one-row result.
    pub async fn run(&self, ml: &MlContext, stmt: ExtractStatement) -> Result<Vec<RecordBatch>, ExtractError> {
        match stmt {
            ExtractStatement::Create { name, or_replace, if_not_exists, watermark, query } => {
                // OR REPLACE also replaces an extract whose manifest is corrupt.
                let existing = match self.manifest(&name).await {
                    Err(ExtractError::Corrupt(_)) if or_replace => None,
                    other => other?,
                };
                match (&existing, or_replace, if_not_exists) {
                    (Some(m), _, true) => return result(m, "exists", 0, 0),
                    (Some(_), false, false) => return Err(ExtractError::Exists(name)),
                    _ => {}
                }
                let m = Manifest { source_query: query, watermark_column: watermark, ..Manifest::new(&name) };
                let expect = if or_replace { Expect::Anything } else { Expect::Absent };
                self.refresh(ml, m, Refresh::Create, expect).await
            }
            ExtractStatement::Refresh { name, full } => {
                // A refresh that another statement's commit overtook starts
                // again from the new manifest.
                // Another statement's clean-up can also take the files of
                // a refresh it overtook before this one commits: any error
                // while the manifest changed means the same.
                let mut attempt = 1;
                loop {
                    let start = self.manifest(&name).await?.ok_or_else(|| ExtractError::Unknown(name.clone()))?;
                    match self.refresh_once(ml, start.clone(), full).await {
                        Err(ExtractError::Changed(_)) if attempt < REFRESH_ATTEMPTS => {}
                        Err(e) if attempt < REFRESH_ATTEMPTS && self.overtaken(&start).await => {
                            log::info!("extracts.{name}: a refresh overtaken by another statement starts again ({e})");
                        }
                        other => return other,
                    }
                    attempt += 1;
                }
            }
            ExtractStatement::Drop { name, if_exists } => self.drop_extract(ml, &name, if_exists).await,
        }
    }

    /// One attempt of `REFRESH EXTRACT extracts.<name> [FULL]`.
    async fn refresh_once(&self, ml: &MlContext, m: Manifest, full: bool) -> Result<Vec<RecordBatch>, ExtractError> {
        let name = m.name.as_str();
        if !full && m.watermark_column.is_none() {
            return Err(ExtractError::Data(
                name.to_string(),
                format!(
                    "it has no watermark column, so there is no telling which rows are new: \
                     REFRESH EXTRACT extracts.{name} FULL rebuilds it, or recreate it with \
                     CREATE OR REPLACE TABLE extracts.{name} OPTIONS (watermark = '<column>') AS …"
                ),
            ));
        }
        let kind = if full { Refresh::Full } else { Refresh::Incremental };
        self.refresh(ml, m.clone(), kind, Expect::Same(Box::new(m))).await
    }

    /// Whether another statement committed a change to the extract since
    /// `start` was its manifest.
    async fn overtaken(&self, start: &Manifest) -> bool {
        !matches!(self.manifest(&start.name).await, Ok(Some(now)) if now == *start)
    }

    /// `DROP TABLE extracts.<name>`: the manifest goes under the commit
    /// lock, then the files older than the statement.
    async fn drop_extract(
        &self,
        ml: &MlContext,
        name: &str,
        if_exists: bool,
    ) -> Result<Vec<RecordBatch>, ExtractError> {
        let started = now_micros();
        let lock = CommitLock::acquire(&self.folder, name).await?;
        // A corrupt manifest does not keep its extract from going.
        let m = match self.manifest(name).await {
            Err(ExtractError::Corrupt(_)) => Ok(Some(Manifest::new(name))),
            other => other,
        };
        let deleted = match &m {
            Ok(Some(_)) => {
                self.folder.store.delete(&self.folder.path(&Self::manifest_rel(name))).await.map_err(ExtractError::from)
            }
            _ => Ok(()),
        };
        lock.release().await?;
        deleted?;
        let Some(m) = m? else {
            return if if_exists { Ok(Vec::new()) } else { Err(ExtractError::Unknown(name.to_string())) };
        };
        let _ = ml.ctx.deregister_table(TableReference::partial(SCHEMA, name));
        // Files a CREATE that followed at once wrote are newer: they stay.
        for f in self.files_under(&format!("{SCHEMA}/{name}/")).await? {
            if f.last_modified.timestamp_micros() < started {
                self.folder.store.delete(&f.location).await?;
            }
        }
        result(&m, "dropped", 0, 0)
    }

    /// A temporary table over `parts` of `m`, for the refresh's own queries.
    fn probe(&self, ml: &MlContext, m: &Manifest, parts: &[String], schema: &SchemaRef) -> Result<Probe, ExtractError> {
        let config = ListingTableConfig::new_with_multi_paths(self.part_urls(&m.name, parts)?)
            .with_listing_options(parquet_options())
            .with_schema(schema.clone());
        let name = format!("__sentio_extract_{}", unique_name().replace('-', "_"));
        ml.ctx.register_table(name.as_str(), Arc::new(ListingTable::try_new(config)?))?;
        Ok(Probe { ctx: ml.ctx.clone(), name })
    }

    /// Refuses an incremental refresh whose query no longer returns the
    /// columns the extract has (a column added to or dropped from the
    /// source table under `SELECT *`, say).
    async fn check_columns(&self, ml: &MlContext, m: &Manifest, schema: &Schema) -> Result<(), ExtractError> {
        let Some(first) = m.parts.first() else { return Ok(()) };
        let url = &self.part_urls(&m.name, std::slice::from_ref(first))?[0];
        let has = parquet_options().infer_schema(&ml.ctx.state(), url).await?;
        let columns = |s: &Schema| {
            s.fields().iter().map(|f| format!("{} {}", f.name(), stored_as(f.data_type()))).collect::<Vec<_>>()
        };
        let (now, was) = (columns(schema), columns(&has));
        if now == was {
            return Ok(());
        }
        let only =
            |a: &[String], b: &[String]| a.iter().filter(|c| !b.contains(c)).cloned().collect::<Vec<_>>().join(", ");
        Err(ExtractError::Data(
            m.name.clone(),
            format!(
                "its query now returns other columns than the extract has (now: {}; in the extract: {}); \
                 REFRESH EXTRACT extracts.{} FULL rebuilds it",
                or_none(only(&now, &was)),
                or_none(only(&was, &now)),
                m.name
            ),
        ))
    }

    /// Reads the source (all of it, or what is past the watermark) into a
    /// new part, then commits the manifest that lists it; parts it no longer
    /// lists are removed after the commit.
    async fn refresh(
        &self,
        ml: &MlContext,
        mut m: Manifest,
        kind: Refresh,
        expect: Expect,
    ) -> Result<Vec<RecordBatch>, ExtractError> {
        let started = now_micros();
        let name = m.name.clone();
        let data = |msg: String| ExtractError::Data(name.clone(), msg);
        let source = ml.ctx.sql(&m.source_query).await?;
        let out_schema: SchemaRef = Arc::new(source.schema().as_arrow().clone());
        if kind == Refresh::Create {
            let key = detect_key(&ml.ctx, source.logical_plan(), &out_schema).await;
            let (column, t) = match &m.watermark_column {
                Some(c) => {
                    let f = out_schema.field_with_name(c).map_err(|_| {
                        data(format!(
                            "the watermark column {c:?} is not a column of the query ({})",
                            names(&out_schema)
                        ))
                    })?;
                    (Some(c.clone()), Some(f.data_type().clone()))
                }
                None => key.clone().unzip(),
            };
            if let Some(t) = &t
                && !watermark_type_ok(t)
            {
                return Err(data(format!(
                    "the watermark column {:?} is {t}; a watermark is an increasing integer key, a date or a timestamp",
                    column.as_deref().unwrap_or_default()
                )));
            }
            m.watermark_column = column;
            m.watermark_type = t.map(|t| t.to_string());
            m.key_column = key.map(|(c, _)| c);
        }
        if kind == Refresh::Incremental {
            self.check_columns(ml, &m, &out_schema).await?;
        }
        let query = match (kind, &m.watermark_column, &m.watermark, &m.watermark_type) {
            (Refresh::Incremental, Some(c), Some(w), Some(t)) => format!(
                "SELECT * FROM ({}) __s WHERE {} > arrow_cast({}, {})",
                m.source_query,
                qcol("__s", c),
                lit(w),
                lit(t)
            ),
            _ => m.source_query.clone(),
        };
        let part = new_part();
        let part_rel = Self::part_rel(&name, &part);
        self.folder.ensure_dir(&part_rel);
        let read = count(
            &ml.collect(&format!("COPY ({query}) TO {} STORED AS PARQUET", lit(&self.folder.url(&part_rel)))).await?,
        );
        let mut files = self.files_under(&part_rel).await?;
        let mut replaced = 0;
        if read == 0 && kind == Refresh::Incremental {
            for f in files {
                self.folder.store.delete(&f.location).await?;
            }
        } else {
            if files.is_empty() {
                // No rows: one empty file keeps the columns.
                let mut buf = Vec::new();
                let w = ArrowWriter::try_new(&mut buf, out_schema.clone(), None)?;
                w.close()?;
                self.folder
                    .store
                    .put(&self.folder.path(&format!("{part_rel}empty.parquet")), PutPayload::from(buf))
                    .await?;
                files = self.files_under(&part_rel).await?;
            }
            if let Some(c) = &m.watermark_column {
                let new = self.probe(ml, &m, std::slice::from_ref(&part), &out_schema)?;
                let max = ml
                    .collect(&format!("SELECT CAST(MAX({}) AS VARCHAR) FROM {}", qcol(&new.name, c), new.name))
                    .await?;
                if let Some(v) = max.first().filter(|b| b.num_rows() > 0 && b.column(0).is_valid(0)) {
                    let v = datafusion::arrow::compute::cast(v.column(0), &DataType::Utf8)?;
                    m.watermark = Some(v.as_string::<i32>().value(0).to_string());
                }
            }
            if kind == Refresh::Incremental {
                replaced = self.drop_replaced(ml, &mut m, &part, &out_schema).await?;
            } else {
                m.parts.clear();
                m.rows = 0;
                m.files = 0;
            }
            m.parts.push(part);
            m.rows += read;
            m.files += files.len() as i64;
        }
        m.refreshed_at = now_micros();
        m.last_refresh = kind.as_str().into();
        m.last_refresh_rows = read;
        if kind != Refresh::Create {
            m.refreshes += 1;
        }
        self.commit(&m, &expect, started).await?;
        self.register_extract(&ml.ctx, &m).await?;
        result(&m, kind.as_str(), read, replaced)
    }

    /// The commit of a statement that started at `started` and wrote the
    /// manifest `m`. Under the extract's commit lock: checks that the
    /// manifest is still what `expect` says and that every file `m` counts
    /// is there (another statement's clean-up may have taken the files of
    /// one it overtook), replaces the manifest in one PUT, and removes what
    /// it no longer lists (replaced parts, parts of failed statements). When
    /// a check fails, the statement's own parts (those `m` lists and the
    /// manifest it started from did not) are removed and nothing changes.
    async fn commit(&self, m: &Manifest, expect: &Expect, started: i64) -> Result<(), ExtractError> {
        let lock = CommitLock::acquire(&self.folder, &m.name).await?;
        let committed = self.commit_locked(m, expect, started).await;
        let released = lock.release().await;
        committed.and(released)
    }

    /// [`Self::commit`]'s work, the lock held: one listing of the extract's
    /// files serves the checks and the clean-up.
    async fn commit_locked(&self, m: &Manifest, expect: &Expect, started: i64) -> Result<(), ExtractError> {
        let files = self.part_files(&m.name).await?;
        match self.check_and_put(m, expect, &files).await {
            Ok(was) => {
                self.remove_unlisted(m, was.as_ref(), files, started - CLOCK_MARGIN_MICROS).await;
                Ok(())
            }
            Err(e) => {
                // Its own parts: those `m` lists and the manifest it started
                // from did not.
                let started_with = match expect {
                    Expect::Same(s) => s.parts.as_slice(),
                    _ => &[],
                };
                let own =
                    |f: &PartFile| f.part.as_ref().is_some_and(|p| m.parts.contains(p) && !started_with.contains(p));
                self.delete_all(files.into_iter().filter(own).map(|f| f.meta).collect()).await;
                Err(e)
            }
        }
    }

    /// [`Self::commit`]'s checks and PUT, given the extract's `files`;
    /// returns the manifest it replaced.
    async fn check_and_put(
        &self,
        m: &Manifest,
        expect: &Expect,
        files: &[PartFile],
    ) -> Result<Option<Manifest>, ExtractError> {
        let now = match (self.manifest(&m.name).await, expect) {
            // CREATE OR REPLACE also replaces a corrupt manifest.
            (Err(ExtractError::Corrupt(_)), Expect::Anything) => None,
            (now, _) => now?,
        };
        match (expect, &now) {
            (Expect::Anything, _) | (Expect::Absent, None) => {}
            (Expect::Absent, Some(_)) => return Err(ExtractError::Exists(m.name.clone())),
            (Expect::Same(was), Some(now)) if now == &**was => {}
            (Expect::Same(_), _) => return Err(ExtractError::Changed(m.name.clone())),
        }
        let listed = files.iter().filter(|f| f.part.as_ref().is_some_and(|p| m.parts.contains(p))).count();
        if listed != m.files as usize {
            return Err(ExtractError::Changed(m.name.clone()));
        }
        self.folder.ensure_dir(&format!("{SCHEMA}/{MANIFEST_DIR}/"));
        self.folder
            .store
            .put(&self.folder.path(&Self::manifest_rel(&m.name)), PutPayload::from(m.to_parquet()?))
            .await?;
        Ok(now)
    }

    /// Deletes `files` (in batches where the store has them), ignoring
    /// errors: what is left is removed by a later commit.
    async fn delete_all(&self, files: Vec<object_store::ObjectMeta>) {
        let locations = futures::stream::iter(files.into_iter().map(|f| Ok(f.location))).boxed();
        let _ = self.folder.store.delete_stream(locations).try_collect::<Vec<_>>().await;
    }

    /// After an incremental refresh by update time wrote `part`: the rows of
    /// the older parts whose key is in `part` are earlier versions of rows
    /// that changed. If there are any, the older rows without them are
    /// rewritten into one new part that replaces the older parts in `m`.
    /// Returns how many rows were replaced.
    async fn drop_replaced(
        &self,
        ml: &MlContext,
        m: &mut Manifest,
        part: &str,
        schema: &SchemaRef,
    ) -> Result<i64, ExtractError> {
        let (Some(key), Some(watermark)) = (&m.key_column, &m.watermark_column) else { return Ok(0) };
        if key == watermark || m.parts.is_empty() {
            // New keys only: nothing earlier can come back.
            return Ok(0);
        }
        let old = self.probe(ml, m, &m.parts, schema)?;
        let new = self.probe(ml, m, &[part.to_string()], schema)?;
        let (o, n) = (&old.name, &new.name);
        let (ok, nk) = (qcol(o, key), qcol(n, key));
        let replaced =
            count(&ml.collect(&format!("SELECT COUNT(*) FROM {o} WHERE {ok} IN (SELECT {nk} FROM {n})")).await?);
        if replaced == 0 {
            return Ok(0);
        }
        let merged = new_part();
        let merged_rel = Self::part_rel(&m.name, &merged);
        self.folder.ensure_dir(&merged_rel);
        let kept = format!("SELECT * FROM {o} WHERE NOT EXISTS (SELECT 1 FROM {n} WHERE {nk} = {ok})");
        ml.collect(&format!("COPY ({kept}) TO {} STORED AS PARQUET", lit(&self.folder.url(&merged_rel)))).await?;
        let files = self.files_under(&merged_rel).await?;
        m.parts = if files.is_empty() { Vec::new() } else { vec![merged] };
        m.files = files.len() as i64;
        m.rows -= replaced;
        Ok(replaced)
    }
}

/// A table registered for the length of a refresh; gone when dropped.
struct Probe {
    ctx: SessionContext,
    name: String,
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = self.ctx.deregister_table(self.name.as_str());
    }
}

fn parquet_options() -> ListingOptions {
    ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet")
}

/// A type as it compares between a query and the Parquet files it wrote:
/// Parquet reads text and bytes back as views, and keeps only whether a
/// timestamp has a zone.
fn stored_as(t: &DataType) -> DataType {
    match t {
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
        DataType::Timestamp(unit, tz) => DataType::Timestamp(*unit, tz.as_ref().map(|_| "UTC".into())),
        other => other.clone(),
    }
}

fn or_none(s: String) -> String {
    if s.is_empty() { "the same columns in another order".into() } else { s }
}

/// A fresh part folder name.
fn new_part() -> String {
    format!("p{}", unique_name())
}

/// The integer in the first column of the first row (a COUNT, or what
/// COPY reports), 0 when there is none.
fn count(batches: &[RecordBatch]) -> i64 {
    batches.first().filter(|b| b.num_rows() > 0).map_or(0, |b| {
        let c = datafusion::arrow::compute::cast(b.column(0), &DataType::Int64).ok();
        c.map_or(0, |c| c.as_primitive::<Int64Type>().value(0))
    })
}

/// How many times a refresh starts again when another statement's commit
/// overtook it.
const REFRESH_ATTEMPTS: u32 = 3;

/// How much older than a statement's start a file must look before the
/// statement's clean-up removes it unlisted: object stores give file times
/// to the second (S3's listings), so a file written just after the start
/// can look older.
const CLOCK_MARGIN_MICROS: i64 = 2_000_000;

/// A file of an extract and the part folder it is in (none: a file beside
/// the parts).
struct PartFile {
    part: Option<String>,
    meta: object_store::ObjectMeta,
}

/// The part folder `location` is in, under the extract folder `base`.
fn part_of(location: &object_store::path::Path, base: &object_store::path::Path) -> Option<String> {
    location.prefix_match(base).and_then(|mut p| p.next()).map(|p| p.as_ref().to_string())
}

/// What an extract's manifest must still be when a statement commits.
#[derive(Debug)]
enum Expect {
    /// No extract (`CREATE TABLE extracts.…`).
    Absent,
    /// The manifest the statement started from (a refresh).
    Same(Box<Manifest>),
    /// Whatever is there (`CREATE OR REPLACE`).
    Anything,
}

/// What a refresh does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refresh {
    Create,
    Incremental,
    Full,
}

impl Refresh {
    fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Incremental => "incremental",
            Self::Full => "full",
        }
    }
}

fn names(schema: &Schema) -> String {
    schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
}

/// The key of a query over one `opdb` table whose primary key is one
/// integer column that the query returns unchanged: the watermark when none
/// is given, and what identifies a changed row when one is.
async fn detect_key(ctx: &SessionContext, plan: &LogicalPlan, out: &Schema) -> Option<(String, DataType)> {
    let mut tables = Vec::new();
    let _ = plan.apply(|n| {
        if let LogicalPlan::TableScan(s) = n {
            tables.push(s.table_name.clone());
        }
        Ok(TreeNodeRecursion::Continue)
    });
    let [table] = tables.as_slice() else { return None };
    if table.schema() != Some(sentio_opdb::catalog::SCHEMA) {
        return None;
    }
    let provider = ctx.table_provider(table.clone()).await.ok()?;
    let opdb = (provider.as_ref() as &dyn std::any::Any).downcast_ref::<OpdbTable>()?;
    let [key] = opdb.meta().primary_key.as_slice() else { return None };
    let source_type = opdb.meta().schema().field_with_name(key).ok()?.data_type().clone();
    let f = out.field_with_name(key).ok()?;
    (f.data_type() == &source_type && source_type.is_integer()).then(|| (key.clone(), source_type))
}

/// The one-row result of an extract statement.
fn result(m: &Manifest, action: &str, read: i64, replaced: i64) -> Result<Vec<RecordBatch>, ExtractError> {
    let schema: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("extract", DataType::Utf8, false),
        Field::new("action", DataType::Utf8, false),
        Field::new("rows_read", DataType::Int64, false),
        Field::new("rows_replaced", DataType::Int64, false),
        Field::new("rows", DataType::Int64, false),
        Field::new("files", DataType::Int64, false),
        Field::new("watermark_column", DataType::Utf8, true),
        Field::new("watermark", DataType::Utf8, true),
    ]));
    let text = |v: &Option<String>| Arc::new(StringArray::from(vec![v.clone()])) as ArrayRef;
    Ok(vec![RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec![format!("{SCHEMA}.{}", m.name)])),
            Arc::new(StringArray::from(vec![action.to_string()])),
            Arc::new(Int64Array::from(vec![read])),
            Arc::new(Int64Array::from(vec![replaced])),
            Arc::new(Int64Array::from(vec![m.rows])),
            Arc::new(Int64Array::from(vec![m.files])),
            text(&m.watermark_column),
            text(&m.watermark),
        ],
    )?])
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::TimeUnit;

    #[test]
    fn watermark_types_survive_their_names() {
        // The manifest keeps the type as text; the refresh's filter casts
        // the watermark back with `arrow_cast(value, type)`.
        for t in [
            DataType::Int32,
            DataType::Int64,
            DataType::UInt64,
            DataType::Date32,
            DataType::Timestamp(TimeUnit::Microsecond, None),
            DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
            DataType::Decimal128(12, 2),
        ] {
            assert!(watermark_type_ok(&t), "{t}");
            assert_eq!(t.to_string().parse::<DataType>().unwrap(), t);
        }
        for t in [DataType::Utf8, DataType::Float64, DataType::Boolean] {
            assert!(!watermark_type_ok(&t), "{t}");
        }
    }
}
