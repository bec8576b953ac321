//! Writing: `INSERT INTO opdb.<table> SELECT …` as a two-step plan.
//!
//! ```text
//! OpdbPublishExec            one task: publishes the staging tables in one transaction
//!   CoalescePartitionsExec   (a stage boundary in the cluster)
//!     OpdbStageExec          one task per input partition: fills its own staging table
//!                            and reports its name and row count
//!       <the query>
//! ```
//!
//! A statement's rows land all or none: if any stage task fails the job
//! fails and the table is untouched; publishing is one transaction that
//! deletes the earlier rows of the same run id (a `run_id` column) or
//! primary key, inserts the staged rows and records the write in
//! `_sentio_writes` under its cluster job ([`job_key`]), so a publish that
//! is retried after it committed does nothing twice, and one whose job was
//! cancelled either had landed or never will ([`super::settle`]). Staging
//! tables are dropped after publishing; ones left by failed writes are
//! dropped by a later write once they are [`STALE_STAGE_AGE`] old.
//!
//! Staging and publishing are paced ([`super::pace`]): on PostgreSQL and
//! MySQL the publishing `INSERT` goes a slice of each staging table at a
//! time ([`PUBLISH_PAGES`], [`PUBLISH_ROWS`]), still in the one
//! transaction, so other sessions see all of the rows or none of them. The
//! transaction holds only the locks an `INSERT` takes (row locks on rows
//! nobody else sees yet, and a lock on the table that conflicts with DDL
//! only) and, for a rerun, row locks on the rows it deletes (on MySQL it
//! runs READ COMMITTED, so no other rows or gaps; foreign keys are checked
//! at its end, `foreign.rs`), so pausing inside it blocks no
//! application. A task that is cancelled (`sentio_sql::stop`) rolls the
//! publishing transaction back at its next slice instead of committing.
//!
//! A column that the database fills by default (identity, auto-increment,
//! `DEFAULT`) and that a statement leaves NULL in every row is left out of
//! the insert, so the database fills it.

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use datafusion::arrow::array::{ArrayRef, AsArray, RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, Partitioning, PlanProperties,
    ReplaceChildrenOptions,
};
use futures::TryStreamExt;
use sqlx::AssertSqlSafe;

use super::backend::{Backend, Conn};
use super::foreign;
use super::introspect::{self, INTERNAL_PREFIX};
use super::meta::TableMeta;
use super::pace::Pacer;
use super::turn;
use super::{Opdb, OpdbError, stage};
use sentio_udfs::cancel::TaskStop;

/// Staging tables older than this are left over from failed writes.
pub const STALE_STAGE_AGE: Duration = Duration::from_secs(6 * 3600);

/// Heap pages of a PostgreSQL staging table published per statement.
pub const PUBLISH_PAGES: i64 = 128;

/// Rows of a MySQL staging table published per statement.
pub const PUBLISH_ROWS: i64 = 1024;

/// The table that records published writes.
pub const WRITE_LOG: &str = "_sentio_writes";

/// Plans `INSERT INTO` `meta`'s table from `input`.
pub fn plan_insert(
    opdb: Arc<Opdb>,
    meta: Arc<TableMeta>,
    input: Arc<dyn ExecutionPlan>,
    insert_op: InsertOp,
) -> Result<Arc<dyn ExecutionPlan>> {
    if insert_op != InsertOp::Append {
        return Err(DataFusionError::Plan(format!(
            "opdb.{}: only INSERT INTO is supported ({insert_op} is not); rows with the same run_id \
             or primary key as earlier rows replace them",
            meta.table
        )));
    }
    opdb.write_url()?;
    if input.schema().fields().len() != meta.columns.len() {
        return Err(DataFusionError::Plan(format!(
            "opdb.{}: the query gives {} columns for {} table columns",
            meta.table,
            input.schema().fields().len(),
            meta.columns.len()
        )));
    }
    let write_id = new_write_id();
    let key = replace_key(&meta);
    let stage =
        Arc::new(OpdbStageExec::new(Arc::clone(&opdb), Arc::clone(&meta), write_id.clone(), key.clone(), input));
    let coalesce = Arc::new(CoalescePartitionsExec::new(stage));
    Ok(Arc::new(OpdbPublishExec::new(opdb, meta, write_id, key, coalesce)))
}

/// The columns that identify a rerun's rows: a `run_id` column if the table
/// has one, else its primary key (empty: plain append).
pub fn replace_key(meta: &TableMeta) -> Vec<String> {
    match meta.columns.iter().find(|c| c.name.eq_ignore_ascii_case("run_id")) {
        Some(c) => vec![c.name.clone()],
        None => meta.primary_key.clone(),
    }
}

/// A new write id: `<unix seconds>_<8 random hex digits>`.
fn new_write_id() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let random = RandomState::new().hash_one(std::time::Instant::now()) as u32;
    format!("{secs}_{random:08x}")
}

fn count_schema(name: &str) -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(name, DataType::UInt64, false)]))
}

fn properties(schema: SchemaRef, partitions: usize) -> Arc<PlanProperties> {
    Arc::new(PlanProperties::new(
        EquivalenceProperties::new(schema),
        Partitioning::UnknownPartitioning(partitions),
        EmissionType::Final,
        Boundedness::Bounded,
    ))
}

/// Fills one staging table per input partition; yields one row per
/// partition: the staging table's name and its rows.
#[derive(Debug)]
pub struct OpdbStageExec {
    opdb: Arc<Opdb>,
    meta: Arc<TableMeta>,
    write_id: String,
    index_columns: Vec<String>,
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
}

impl OpdbStageExec {
    /// Stages `input` for write `write_id` into `meta`'s table, indexing
    /// `index_columns` in each staging table.
    pub fn new(
        opdb: Arc<Opdb>,
        meta: Arc<TableMeta>,
        write_id: String,
        index_columns: Vec<String>,
        input: Arc<dyn ExecutionPlan>,
    ) -> Self {
        let schema = Arc::new(Schema::new(vec![
            Field::new("stage_table", DataType::Utf8, false),
            Field::new("rows", DataType::UInt64, false),
        ]));
        let properties = properties(schema, input.properties().partitioning.partition_count());
        Self { opdb, meta, write_id, index_columns, input, properties }
    }

    /// The table written.
    pub fn meta(&self) -> &TableMeta {
        &self.meta
    }

    /// The write this stage belongs to.
    pub fn write_id(&self) -> &str {
        &self.write_id
    }

    /// Columns indexed in each staging table.
    pub fn index_columns(&self) -> &[String] {
        &self.index_columns
    }
}

impl DisplayAs for OpdbStageExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "OpdbStageExec: table={}, write={}", self.meta.table, self.write_id)
    }
}

impl ExecutionPlan for OpdbStageExec {
    fn name(&self) -> &'static str {
        "OpdbStageExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = children.pop().ok_or_else(|| DataFusionError::Internal("OpdbStageExec needs an input".into()))?;
        Ok(Arc::new(Self::new(
            Arc::clone(&self.opdb),
            Arc::clone(&self.meta),
            self.write_id.clone(),
            self.index_columns.clone(),
            input,
        )))
    }

    #[allow(deprecated)]
    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(children, ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let opdb = Arc::clone(&self.opdb);
        let meta = Arc::clone(&self.meta);
        let name = stage::table_name(&self.write_id);
        let index_columns = self.index_columns.clone();
        let schema = self.schema();
        let out_schema = Arc::clone(&schema);
        let fut = async move {
            let mut conn = opdb.connect_write(Some(meta.backend)).await?;
            stage::create(&mut conn, &name, &meta.table, &meta.columns).await.map_err(|e| writing(&meta, e))?;
            let rows = stage::fill(&mut conn, &name, &meta.columns, input, &mut opdb.pacer()).await?;
            let key: Vec<_> = meta.columns.iter().filter(|c| index_columns.contains(&c.name)).collect();
            stage::index(&mut conn, &name, &key).await.map_err(|e| writing(&meta, e))?;
            log::info!("staged {rows} rows of partition {partition} for opdb.{} in {name}", meta.table);
            conn.close().await;
            let columns: Vec<ArrayRef> =
                vec![Arc::new(StringArray::from(vec![name])), Arc::new(UInt64Array::from(vec![rows]))];
            Ok(RecordBatch::try_new(out_schema, columns)?)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, futures::stream::once(fut))))
    }
}

fn writing(meta: &TableMeta, e: OpdbError) -> DataFusionError {
    match e {
        OpdbError::Database(err) => OpdbError::Plan(format!("writing opdb.{}: {err}", meta.table)).into(),
        other => other.into(),
    }
}

/// Publishes the staging tables of a write in one transaction; yields the
/// rows inserted as `count`.
#[derive(Debug)]
pub struct OpdbPublishExec {
    opdb: Arc<Opdb>,
    meta: Arc<TableMeta>,
    write_id: String,
    replace_key: Vec<String>,
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
}

impl OpdbPublishExec {
    /// Publishes write `write_id`, whose stage results `input` yields.
    pub fn new(
        opdb: Arc<Opdb>,
        meta: Arc<TableMeta>,
        write_id: String,
        replace_key: Vec<String>,
        input: Arc<dyn ExecutionPlan>,
    ) -> Self {
        Self { opdb, meta, write_id, replace_key, input, properties: properties(count_schema("count"), 1) }
    }

    /// The table written.
    pub fn meta(&self) -> &TableMeta {
        &self.meta
    }

    /// The write published.
    pub fn write_id(&self) -> &str {
        &self.write_id
    }

    /// Columns whose staged values replace matching earlier rows.
    pub fn replace_key(&self) -> &[String] {
        &self.replace_key
    }
}

impl DisplayAs for OpdbPublishExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "OpdbPublishExec: table={}, write={}, replace_key=[{}]",
            self.meta.table,
            self.write_id,
            self.replace_key.join(", ")
        )
    }
}

impl ExecutionPlan for OpdbPublishExec {
    fn name(&self) -> &'static str {
        "OpdbPublishExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::SinglePartition]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = children.pop().ok_or_else(|| DataFusionError::Internal("OpdbPublishExec needs an input".into()))?;
        Ok(Arc::new(Self::new(
            Arc::clone(&self.opdb),
            Arc::clone(&self.meta),
            self.write_id.clone(),
            self.replace_key.clone(),
            input,
        )))
    }

    #[allow(deprecated)]
    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(children, ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!("OpdbPublishExec has no partition {partition}")));
        }
        let stop = TaskStop::of(&context);
        let mut input = self.input.execute(0, context)?;
        let opdb = Arc::clone(&self.opdb);
        let meta = Arc::clone(&self.meta);
        let write_id = self.write_id.clone();
        let key = self.replace_key.clone();
        let schema = self.schema();
        let out_schema = Arc::clone(&schema);
        let fut = async move {
            let prefix = stage::write_prefix(&write_id);
            let mut stages = Vec::new();
            while let Some(batch) = input.try_next().await? {
                let names = batch
                    .column(0)
                    .as_string_opt::<i32>()
                    .ok_or_else(|| DataFusionError::Internal("opdb publish: unexpected stage output".into()))?;
                for name in names.iter().flatten() {
                    if !name.starts_with(&prefix) || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                        return Err(DataFusionError::Internal(format!("opdb publish: bad staging table {name:?}")));
                    }
                    stages.push(name.to_string());
                }
            }
            stages.sort_unstable();
            stages.dedup();
            let rows = publish(&opdb, &meta, &write_id, &key, &stages, &stop).await.map_err(|e| writing(&meta, e))?;
            Ok(RecordBatch::try_new(out_schema, vec![Arc::new(UInt64Array::from(vec![rows])) as ArrayRef])?)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, futures::stream::once(fut))))
    }
}

/// Publishes the staging tables `stages`; returns the rows inserted. A
/// cancelled task (`stop`) rolls back at the next unit of work instead of
/// committing.
async fn publish(
    opdb: &Opdb,
    meta: &TableMeta,
    write_id: &str,
    key: &[String],
    stages: &[String],
    stop: &TaskStop,
) -> Result<u64, OpdbError> {
    let mut conn = opdb.connect_write(Some(meta.backend)).await?;
    let mut units = Units { pacer: opdb.pacer(), stop };
    let turn_wait = opdb.timeouts().statement;
    let result = publish_on(&mut conn, meta, write_id, key, stages, &mut units, turn_wait).await;
    if result.is_err() {
        conn.rollback().await;
    }
    turn::give_back(&mut conn, &meta.table).await;
    // The staging tables are spent either way (a failed publish fails the
    // statement, and its rerun stages again), and so are those of failed
    // task attempts of this write.
    let mine = stage::write_prefix(write_id);
    drop_stages(&mut conn, |name| name.starts_with(&mine)).await;
    drop_stale_stages(&mut conn).await;
    conn.close().await;
    result
}

/// Between two units of publishing work: rest as the bulk duty requires,
/// and stop if the task was cancelled.
struct Units<'a> {
    pacer: Pacer,
    stop: &'a TaskStop,
}

impl Units<'_> {
    async fn next(&mut self) -> Result<(), OpdbError> {
        self.pacer.pause().await;
        self.check()
    }

    fn check(&self) -> Result<(), OpdbError> {
        if self.stop.is_stopped() { Err(OpdbError::Cancelled) } else { Ok(()) }
    }
}

async fn publish_on(
    conn: &mut Conn,
    meta: &TableMeta,
    write_id: &str,
    key: &[String],
    stages: &[String],
    units: &mut Units<'_>,
    turn_wait: Duration,
) -> Result<u64, OpdbError> {
    let b = meta.backend;
    create_write_log(conn).await?;
    // The write's key in the log: its cluster job's, where a client that
    // cancels the job settles it (super::settle); outside a cluster, its
    // write id.
    let log_key = units.stop.job().map_or_else(|| write_id.to_string(), job_key);
    match logged_rows(conn, &log_key).await? {
        // Settled by the client that cancelled the job, before this attempt.
        Some(CANCELLED_ROWS) => return Err(OpdbError::Cancelled),
        // Published by an earlier attempt.
        Some(rows) => return Ok(rows.max(0) as u64),
        None => {}
    }
    let current = introspect::describe(conn, &meta.table)
        .await?
        .ok_or_else(|| OpdbError::Plan(format!("opdb.{} no longer exists", meta.table)))?;
    let mut written = Vec::new();
    for c in &meta.columns {
        let now = current.column(&c.name).ok_or_else(|| {
            OpdbError::Plan(format!("opdb.{}: column {:?} was dropped during the write", meta.table, c.name))
        })?;
        written.push(now.clone());
    }
    // Leave out defaulted columns that the statement left NULL everywhere.
    let defaulted: Vec<&str> = written.iter().filter(|c| c.has_default).map(|c| c.name.as_str()).collect();
    let mut omit = Vec::new();
    if !defaulted.is_empty() {
        let mut non_null = vec![0i64; defaulted.len()];
        for s in stages {
            let counts = defaulted.iter().map(|c| format!("CAST(COUNT({}) AS {})", b.quote(c), int_type(b)));
            let sql = format!("SELECT {} FROM {}", counts.collect::<Vec<_>>().join(", "), b.quote(s));
            for (i, n) in query_i64s(conn, &sql).await?.into_iter().enumerate() {
                non_null[i] += n;
            }
        }
        omit = defaulted.iter().zip(&non_null).filter(|(_, n)| **n == 0).map(|(c, _)| c.to_string()).collect();
    }
    let insert_cols: Vec<_> = written.iter().filter(|c| !omit.contains(&c.name)).collect();
    let expr = |c: &super::meta::Column| match b {
        Backend::Postgres => format!("CAST({} AS {})", b.quote(&c.name), c.db_type),
        _ => b.quote(&c.name),
    };
    let target = meta.quoted_table();
    let key: Vec<_> = insert_cols.iter().filter(|c| key.contains(&c.name)).copied().collect();
    // MySQL foreign keys: checked at the end (super::foreign), where the
    // statement writes every column of every one of them (a column left to
    // its default is checked by the engine).
    let foreign_keys = foreign::of_table(conn, &meta.table).await?;
    let written_by_statement =
        |k: &foreign::ForeignKey| k.columns.iter().all(|c| insert_cols.iter().any(|w| &w.name == c));
    let check_at_end = !foreign_keys.is_empty() && foreign_keys.iter().all(written_by_statement);
    if check_at_end {
        // A key missing all along fails here, before anything is inserted.
        foreign::check_all(conn, &meta.table, &foreign_keys, stages, foreign::Lock::No).await?;
    }

    conn.begin().await?;
    // One publish into a table at a time (super::turn): the one that waited
    // sees the rows it replaces, so a run id written twice at once ends up
    // with one copy. Then the write log again: an attempt of this same write
    // may have published while this one waited.
    turn::take(conn, &meta.table, turn_wait, || units.check()).await?;
    if let Some(rows) = logged_rows(conn, &log_key).await? {
        conn.rollback().await;
        return if rows == CANCELLED_ROWS { Err(OpdbError::Cancelled) } else { Ok(rows.max(0) as u64) };
    }
    // Earlier rows of the same run id or key: a semi-join on the staging
    // tables' key index, one staging table at a time.
    for s in stages.iter().filter(|_| !key.is_empty()) {
        let stage_q = b.quote(s);
        let matches = key
            .iter()
            .map(|c| {
                let staged = format!("{stage_q}.{}", b.quote(&c.name));
                let staged = match b {
                    Backend::Postgres => format!("CAST({staged} AS {})", c.db_type),
                    _ => staged,
                };
                format!("{staged} = {target}.{}", b.quote(&c.name))
            })
            .collect::<Vec<_>>()
            .join(" AND ");
        conn.execute(&format!("DELETE FROM {target} WHERE EXISTS (SELECT 1 FROM {stage_q} WHERE {matches})")).await?;
    }
    let col_list = insert_cols.iter().map(|c| b.quote(&c.name)).collect::<Vec<_>>().join(", ");
    let exprs = insert_cols.iter().map(|c| expr(c)).collect::<Vec<_>>().join(", ");
    let insert = format!("INSERT INTO {target} ({col_list}) SELECT {exprs} FROM");
    let mut rows = 0;
    let numbered = stage::numbers_rows(b, &meta.columns);
    if check_at_end {
        conn.execute("SET SESSION foreign_key_checks = 0").await?;
    }
    for s in stages {
        units.check()?;
        rows += insert_paced(conn, &insert, s, numbered, units).await?;
    }
    if check_at_end {
        conn.execute("SET SESSION foreign_key_checks = 1").await?;
        units.check()?;
        foreign::check_all(conn, &meta.table, &foreign_keys, stages, foreign::Lock::Share).await?;
    }
    let published_at = chrono::Utc::now().to_rfc3339();
    // Last: a client that cancelled the job and settled it first holds the
    // key, and the write rolls back (super::settle).
    let record = record_sql(b, rows as i64);
    match execute_with_text(conn, &record, &[&log_key, &meta.table, &published_at]).await {
        Err(OpdbError::Database(e)) if is_unique_violation(&e) => return Err(OpdbError::Cancelled),
        other => other?,
    };
    units.check()?;
    conn.commit().await?;
    Ok(rows)
}

/// Runs `insert` (an `INSERT … SELECT … FROM`) over staging table `stage`,
/// inside the publishing transaction, a slice of the staging table at a
/// time, resting between slices as the bulk duty requires: on PostgreSQL 14
/// and later [`PUBLISH_PAGES`] heap pages (a TID range scan), so the WAL of
/// a large publish is written, and flushed by the server, a slice at a time
/// rather than in one burst that the application's commits queue behind; on
/// MySQL [`PUBLISH_ROWS`] rows (a range of the staging table's
/// [`stage::ROW_COLUMN`], when `numbered`), so that a table-level lock
/// InnoDB holds for a whole `INSERT … SELECT` (the `AUTO_INCREMENT` lock,
/// in its default mode on MariaDB and MySQL 5.7) stops the application's
/// inserts into the same table for one slice, not for the whole write.
/// Elsewhere it is one statement.
async fn insert_paced(
    conn: &mut Conn,
    insert: &str,
    stage: &str,
    numbered: bool,
    units: &mut Units<'_>,
) -> Result<u64, OpdbError> {
    let b = conn.backend();
    let q = b.quote(stage);
    // Each slice's condition, where the engine can slice the table.
    let slices: Option<Vec<String>> = match b {
        Backend::Postgres => {
            let sql = format!(
                "SELECT CAST(current_setting('server_version_num') AS bigint), \
                 CAST(pg_relation_size('{}') / current_setting('block_size')::int AS bigint)",
                q.replace('\'', "''")
            );
            match query_i64s(conn, &sql).await?.as_slice() {
                [version, pages] if *version >= 140_000 => Some(
                    (0..*pages)
                        .step_by(PUBLISH_PAGES as usize)
                        .map(|first| {
                            format!("ctid >= '({first},0)'::tid AND ctid < '({},0)'::tid", first + PUBLISH_PAGES)
                        })
                        .collect(),
                ),
                _ => None,
            }
        }
        Backend::MySql if numbered => {
            let row = b.quote(stage::ROW_COLUMN);
            let sql = format!("SELECT CAST(COALESCE(MAX({row}), 0) AS SIGNED) FROM {q}");
            let last = query_i64s(conn, &sql).await?.first().copied().unwrap_or(0);
            Some(
                (0..last)
                    .step_by(PUBLISH_ROWS as usize)
                    .map(|first| format!("{row} > {first} AND {row} <= {}", first + PUBLISH_ROWS))
                    .collect(),
            )
        }
        _ => None,
    };
    let Some(slices) = slices else {
        let rows = conn.execute(&format!("{insert} {q}")).await?;
        units.next().await?;
        return Ok(rows);
    };
    let mut rows = 0;
    for slice in slices {
        rows += conn.execute(&format!("{insert} {q} WHERE {slice}")).await?;
        units.next().await?;
    }
    Ok(rows)
}

fn int_type(b: Backend) -> &'static str {
    if b == Backend::MySql { "SIGNED" } else { "BIGINT" }
}

/// `row_count` of a job's row in [`WRITE_LOG`] that the client who cancelled
/// the job wrote ([`super::settle`]): the write never lands.
pub const CANCELLED_ROWS: i64 = -1;

/// The [`WRITE_LOG`] key of the write made by cluster job `job`. The
/// publishing transaction inserts it just before it commits (outside a
/// cluster it uses its write id); a client that cancelled the job inserts
/// it with [`CANCELLED_ROWS`]. Whichever commits first holds the key, so a
/// cancelled write is either published already or never will be.
///
/// ```
/// assert_eq!(sentio_opdb::write::job_key("aBc1234"), "job:aBc1234");
/// ```
pub fn job_key(job: &str) -> String {
    format!("job:{job}")
}

/// Creates [`WRITE_LOG`] if it is missing.
pub(super) async fn create_write_log(conn: &mut Conn) -> Result<(), OpdbError> {
    let log = conn.backend().quote(WRITE_LOG);
    conn.execute(&format!(
        "CREATE TABLE IF NOT EXISTS {log} (write_id VARCHAR(64) PRIMARY KEY, target_table VARCHAR(255) NOT NULL, \
         row_count BIGINT NOT NULL, published_at VARCHAR(40) NOT NULL)"
    ))
    .await?;
    Ok(())
}

/// The statement that inserts a row of [`WRITE_LOG`] recording `rows`; its
/// parameters are the key, the table and the time.
pub(super) fn record_sql(b: Backend, rows: i64) -> String {
    format!(
        "INSERT INTO {} (write_id, target_table, row_count, published_at) VALUES ({}, {}, {rows}, {})",
        b.quote(WRITE_LOG),
        b.placeholder(1),
        b.placeholder(2),
        b.placeholder(3)
    )
}

/// Whether `e` is the database refusing a duplicate key.
pub(super) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// The `row_count` recorded under `key` (a write id or a [`job_key`]), if
/// any: the rows an earlier attempt of this write published.
pub(super) async fn logged_rows(conn: &mut Conn, key: &str) -> Result<Option<i64>, OpdbError> {
    let b = conn.backend();
    let sql = format!(
        "SELECT CAST(row_count AS {}) FROM {} WHERE write_id = {}",
        int_type(b),
        b.quote(WRITE_LOG),
        b.placeholder(1)
    );
    let sql = AssertSqlSafe(sql);
    let n: Option<i64> = match conn {
        Conn::Pg(c) => sqlx::query_scalar(sql).bind(key).fetch_optional(c).await?,
        Conn::My(c) => sqlx::query_scalar(sql).bind(key).fetch_optional(c).await?,
        Conn::Lite(c) => sqlx::query_scalar(sql).bind(key).fetch_optional(c).await?,
    };
    Ok(n)
}

async fn query_i64s(conn: &mut Conn, sql: &str) -> Result<Vec<i64>, OpdbError> {
    use sqlx::Row;
    let sql = AssertSqlSafe(sql.to_string());
    macro_rules! all {
        ($c:expr) => {{
            let row = sqlx::query(sql).fetch_one($c).await?;
            (0..row.len()).map(|i| row.try_get::<i64, _>(i)).collect::<Result<Vec<_>, _>>()?
        }};
    }
    Ok(match conn {
        Conn::Pg(c) => all!(c),
        Conn::My(c) => all!(c),
        Conn::Lite(c) => all!(c),
    })
}

pub(super) async fn execute_with_text(conn: &mut Conn, sql: &str, params: &[&str]) -> Result<u64, OpdbError> {
    let sql = AssertSqlSafe(sql.to_string());
    macro_rules! run {
        ($c:expr) => {{
            let mut q = sqlx::query(sql);
            for p in params {
                q = q.bind(p.to_string());
            }
            q.execute($c).await?.rows_affected()
        }};
    }
    Ok(match conn {
        Conn::Pg(c) => run!(c),
        Conn::My(c) => run!(c),
        Conn::Lite(c) => run!(c),
    })
}

async fn drop_tables(conn: &mut Conn, tables: &[String]) {
    for t in tables {
        let sql = format!("DROP TABLE IF EXISTS {}", conn.backend().quote(t));
        if let Err(e) = conn.execute(&sql).await {
            log::warn!("could not drop staging table {t}: {e}");
        }
    }
}

/// Drops the staging tables whose names satisfy `which`.
async fn drop_stages(conn: &mut Conn, which: impl Fn(&str) -> bool) {
    match staging_tables(conn).await {
        Ok(names) => {
            let names: Vec<String> = names.into_iter().filter(|n| which(n)).collect();
            drop_tables(conn, &names).await;
        }
        Err(e) => log::warn!("could not list staging tables: {e}"),
    }
}

/// Drops staging tables that failed writes left behind.
async fn drop_stale_stages(conn: &mut Conn) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let prefix = stage::prefix();
    drop_stages(conn, |n| {
        n.strip_prefix(&prefix)
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok())
            .is_some_and(|secs| now.saturating_sub(secs) > STALE_STAGE_AGE.as_secs())
    })
    .await;
}

/// The names of all staging tables.
async fn staging_tables(conn: &mut Conn) -> Result<Vec<String>, OpdbError> {
    let like = format!("{INTERNAL_PREFIX}stage%").replace('_', "!_");
    let sql = match conn.backend() {
        Backend::Postgres => format!(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname LIKE '{like}' ESCAPE '!'"
        ),
        Backend::MySql => format!(
            "SELECT CAST(TABLE_NAME AS CHAR) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() \
             AND TABLE_NAME LIKE '{like}' ESCAPE '!'"
        ),
        Backend::Sqlite => {
            format!("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE '{like}' ESCAPE '!'")
        }
    };
    let sql = AssertSqlSafe(sql);
    Ok(match conn {
        Conn::Pg(c) => sqlx::query_scalar(sql).fetch_all(c).await?,
        Conn::My(c) => sqlx::query_scalar(sql).fetch_all(c).await?,
        Conn::Lite(c) => sqlx::query_scalar(sql).fetch_all(c).await?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::tests::sessions;

    #[test]
    fn replace_key_prefers_run_id() {
        let mut m = sessions(Backend::Postgres);
        assert_eq!(replace_key(&m), vec!["session_id"]);
        m.columns[1].name = "RUN_ID".into();
        assert_eq!(replace_key(&m), vec!["RUN_ID"]);
        m.primary_key.clear();
        m.columns[1].name = "x".into();
        assert!(replace_key(&m).is_empty());
    }

    #[test]
    fn write_ids_name_valid_staging_tables() {
        let id = new_write_id();
        let name = stage::table_name(&id);
        assert!(name.len() < 60, "{name}");
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{name}");
        assert_ne!(new_write_id(), id);
    }
}
