//! Reading: the `opdb.<table>` provider and the scan that runs on executors.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, Int64Array, RecordBatchOptions};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result, project_schema};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    ReplaceChildrenOptions,
};
use futures::TryStreamExt;
use sqlx::AssertSqlSafe;

use super::backend::{Backend, Conn};
use super::filter::{self, Param};
use super::meta::TableMeta;
use super::pace::Pacer;
use super::types::ReadCast;
use super::values::{self, Builder};
use super::{Opdb, OpdbError, introspect, write};

/// Rows per read partition when a table is split on its integer key.
pub const ROWS_PER_PARTITION: i64 = 250_000;
/// Most partitions one scan is split into.
pub const MAX_PARTITIONS: i64 = 16;
/// Rows per Arrow batch a scan produces.
const BATCH_ROWS: usize = 8192;

/// A table of the operational DB, as the planner sees it.
#[derive(Debug, Clone)]
pub struct OpdbTable {
    opdb: Arc<Opdb>,
    meta: Arc<TableMeta>,
    schema: SchemaRef,
}

impl OpdbTable {
    /// The provider for `meta`, reading and writing through `opdb`.
    pub fn new(opdb: Arc<Opdb>, meta: TableMeta) -> Self {
        let schema = meta.schema();
        Self { opdb, meta: Arc::new(meta), schema }
    }

    /// The table's description.
    pub fn meta(&self) -> &TableMeta {
        &self.meta
    }

    /// The operational DB it reads and writes through.
    pub fn opdb(&self) -> &Arc<Opdb> {
        &self.opdb
    }
}

#[async_trait]
impl TableProvider for OpdbTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters.iter().map(|f| filter::pushdown(f, &self.meta)).collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let projection = projection.cloned().unwrap_or_else(|| (0..self.meta.columns.len()).collect());
        let pushed: Vec<Expr> = filters
            .iter()
            .filter(|f| filter::pushdown(f, &self.meta) != TableProviderFilterPushDown::Unsupported)
            .cloned()
            .collect();
        let ranges = match (&self.meta.split_column, limit) {
            (Some(key), None) => {
                // Conditions on the key narrow its range (an incremental read
                // asks for the keys past a watermark); others would turn the
                // index lookup of MIN and MAX into a scan.
                let on_key: Vec<Expr> =
                    pushed.iter().filter(|f| f.column_refs().iter().all(|c| &c.name == key)).cloned().collect();
                self.split(key, &filter::render(&on_key, &self.meta, 1)).await?
            }
            _ => vec![KeyRange::default()],
        };
        Ok(Arc::new(OpdbScanExec::new(
            Arc::clone(&self.opdb),
            Arc::clone(&self.meta),
            projection,
            pushed,
            limit,
            ranges_source(&ranges)?,
        )?))
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        write::plan_insert(Arc::clone(&self.opdb), Arc::clone(&self.meta), input, insert_op)
    }
}

impl OpdbTable {
    /// Splits the key range of the rows passing `filters` into partitions of
    /// about [`ROWS_PER_PARTITION`].
    async fn split(&self, key: &str, filters: &filter::Rendered) -> Result<Vec<KeyRange>> {
        let mut conn = self.opdb.connect_read(Some(self.meta.backend)).await?;
        conn.begin_snapshot().await?;
        let stats = introspect::key_range(&mut conn, &self.meta, key, filters).await;
        conn.rollback().await;
        conn.close().await;
        let (Some(lo), Some(hi), est) = stats? else {
            return Ok(vec![KeyRange::default()]);
        };
        Ok(split_ranges(lo, hi, est))
    }
}

/// Splits `[lo, hi]` into ranges of about [`ROWS_PER_PARTITION`] rows, given
/// the database's estimate of the row count if it has one. The first and
/// last ranges are open, so rows added meanwhile are not missed.
///
/// ```
/// use sentio_opdb::scan::{split_ranges, KeyRange};
/// let r = split_ranges(1, 1_000_000, None);
/// assert_eq!(r.len(), 4);
/// assert_eq!(r[0], KeyRange { low: None, high: Some(250_001) });
/// assert_eq!(r[3].high, None);
/// assert_eq!(split_ranges(5, 5, None), vec![KeyRange::default()]);
/// ```
pub fn split_ranges(lo: i64, hi: i64, estimate: Option<i64>) -> Vec<KeyRange> {
    let span = (hi as i128 - lo as i128 + 1).max(1);
    let rows = estimate.map_or(span, |e| (e.max(1) as i128).min(span));
    let parts = ceil_div(rows, ROWS_PER_PARTITION as i128).clamp(1, MAX_PARTITIONS as i128);
    if parts == 1 {
        return vec![KeyRange::default()];
    }
    let step = ceil_div(span, parts);
    (0..parts)
        .map(|i| KeyRange {
            low: (i > 0).then(|| (lo as i128 + i * step) as i64),
            high: (i + 1 < parts).then(|| (lo as i128 + (i + 1) * step) as i64),
        })
        .collect()
}

/// `a / b` rounded up, for positive `a` and `b`.
fn ceil_div(a: i128, b: i128) -> i128 {
    (a + b - 1) / b
}

/// A half-open range `[low, high)` of the split column; `None` is unbounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyRange {
    /// Smallest key included.
    pub low: Option<i64>,
    /// Smallest key excluded.
    pub high: Option<i64>,
}

/// The schema of the key-range batches a scan reads from its input.
pub fn ranges_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("low", DataType::Int64, true), Field::new("high", DataType::Int64, true)]))
}

/// An in-memory source with one key range per partition: the input of an
/// [`OpdbScanExec`]. Ranges travel as data so that Ballista hands each task
/// exactly the partitions it owns (it restricts in-memory sources to a
/// task's partitions, but not custom leaves).
pub fn ranges_source(ranges: &[KeyRange]) -> Result<Arc<dyn ExecutionPlan>> {
    let schema = ranges_schema();
    let partitions = ranges
        .iter()
        .map(|r| {
            let low: ArrayRef = Arc::new(Int64Array::from(vec![r.low]));
            let high: ArrayRef = Arc::new(Int64Array::from(vec![r.high]));
            Ok(vec![RecordBatch::try_new(Arc::clone(&schema), vec![low, high])?])
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(MemorySourceConfig::try_new_exec(&partitions, schema, None)?)
}

/// Reads a table of the operational DB: for each key range its input
/// yields, one query in a read-only snapshot transaction.
#[derive(Debug, Clone)]
pub struct OpdbScanExec {
    opdb: Arc<Opdb>,
    meta: Arc<TableMeta>,
    projection: Vec<usize>,
    filters: Vec<Expr>,
    limit: Option<usize>,
    input: Arc<dyn ExecutionPlan>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    /// `bytes_scanned`: the Arrow size of the values read, per partition.
    metrics: ExecutionPlanMetricsSet,
}

impl OpdbScanExec {
    /// A scan of the `projection` columns of `meta`'s table over the key
    /// ranges that `input` ([`ranges_source`]) yields.
    pub fn new(
        opdb: Arc<Opdb>,
        meta: Arc<TableMeta>,
        projection: Vec<usize>,
        filters: Vec<Expr>,
        limit: Option<usize>,
        input: Arc<dyn ExecutionPlan>,
    ) -> Result<Self> {
        if let Some(bad) = projection.iter().find(|i| **i >= meta.columns.len()) {
            return Err(OpdbError::Plan(format!("opdb scan: column index {bad} out of range")).into());
        }
        if input.schema() != ranges_schema() {
            return Err(OpdbError::Plan("opdb scan: its input does not yield key ranges".into()).into());
        }
        let schema = project_schema(&meta.schema(), Some(&projection))?;
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(input.properties().partitioning.partition_count()),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(Self {
            opdb,
            meta,
            projection,
            filters,
            limit,
            input,
            schema,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    /// The table read.
    pub fn meta(&self) -> &TableMeta {
        &self.meta
    }

    /// Indices of the columns read.
    pub fn projection(&self) -> &[usize] {
        &self.projection
    }

    /// Filters evaluated by the database.
    pub fn filters(&self) -> &[Expr] {
        &self.filters
    }

    /// Row limit evaluated by the database.
    pub fn limit(&self) -> Option<usize> {
        self.limit
    }

    /// The SQL and parameters that read key range `range`.
    pub fn sql(&self, range: KeyRange) -> (String, Vec<Param>) {
        let m = &self.meta;
        let b = m.backend;
        let cols: Vec<String> = self
            .projection
            .iter()
            .map(|i| {
                let c = &m.columns[*i];
                let q = b.quote(&c.name);
                match (c.read_cast, b) {
                    (ReadCast::None, _) => q,
                    (ReadCast::Text, Backend::Postgres) => format!("{q}::text"),
                    (ReadCast::Float8, Backend::Postgres) => format!("{q}::float8"),
                    (ReadCast::Text, Backend::MySql) => format!("CAST({q} AS CHAR)"),
                    (ReadCast::Signed, Backend::MySql) => format!("CAST({q} AS SIGNED)"),
                    (ReadCast::Text, Backend::Sqlite) => format!("CAST({q} AS TEXT)"),
                    (_, _) => q,
                }
            })
            .collect();
        let select = if cols.is_empty() { "1".to_string() } else { cols.join(", ") };
        let mut conds = Vec::new();
        if let Some(key) = &m.split_column {
            let k = b.quote(key);
            if let Some(lo) = range.low {
                conds.push(format!("{k} >= {lo}"));
            }
            if let Some(hi) = range.high {
                conds.push(format!("{k} < {hi}"));
            }
        }
        let rendered = filter::render(&self.filters, m, 1);
        conds.extend(rendered.conditions);
        let mut sql = format!("SELECT {select} FROM {}", m.quoted_table());
        if !conds.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conds.join(" AND "));
        }
        if let Some(n) = self.limit {
            sql.push_str(&format!(" LIMIT {n}"));
        }
        (sql, rendered.params)
    }
}

impl DisplayAs for OpdbScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let (sql, _) = self.sql(KeyRange::default());
        write!(
            f,
            "OpdbScanExec: table={}, partitions={}, sql={sql}",
            self.meta.table,
            self.properties.partitioning.partition_count()
        )
    }
}

impl ExecutionPlan for OpdbScanExec {
    fn name(&self) -> &'static str {
        "OpdbScanExec"
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
        let input = children.pop().ok_or_else(|| OpdbError::Plan("OpdbScanExec needs its key-range input".into()))?;
        Ok(Arc::new(Self::new(
            Arc::clone(&self.opdb),
            Arc::clone(&self.meta),
            self.projection.clone(),
            self.filters.clone(),
            self.limit,
            input,
        )?))
    }

    #[allow(deprecated)]
    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(children, ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let mut ranges_in = self.input.execute(partition, context)?;
        let scanned = MetricBuilder::new(&self.metrics).counter("bytes_scanned", partition);
        let opdb = Arc::clone(&self.opdb);
        let meta = Arc::clone(&self.meta);
        let projection = self.projection.clone();
        let schema = Arc::clone(&self.schema);
        let this = self.clone();
        let mut builder = RecordBatchReceiverStreamBuilder::new(Arc::clone(&schema), 2);
        let tx = builder.tx();
        builder.spawn(async move {
            let mut reader = BatchReader::new(&meta, &projection, schema, tx, opdb.pacer(), scanned);
            while let Some(batch) = ranges_in.try_next().await? {
                for range in key_ranges(&batch)? {
                    if reader.closed {
                        return Ok(());
                    }
                    let (sql, params) = this.sql(range);
                    log::info!("reading opdb.{}: {sql}", meta.table);
                    let mut conn = opdb.connect_read(Some(meta.backend)).await.map_err(|e| in_table(&meta, e))?;
                    conn.begin_snapshot().await.map_err(|e| in_table(&meta, e))?;
                    match read(&mut conn, &sql, &params, &mut reader, opdb.timeouts().statement).await {
                        Ok(()) => conn.commit().await.map_err(|e| in_table(&meta, e))?,
                        Err(e) => {
                            conn.rollback().await;
                            return Err(in_table(&meta, e).into());
                        }
                    }
                    conn.close().await;
                }
            }
            reader.flush().await
        });
        Ok(builder.build())
    }
}

/// The key ranges in a batch of [`ranges_schema`].
fn key_ranges(batch: &RecordBatch) -> Result<Vec<KeyRange>> {
    let col = |i: usize| {
        batch
            .column(i)
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or_else(|| OpdbError::Plan("opdb scan: key ranges are not integers".into()))
    };
    let (low, high) = (col(0)?, col(1)?);
    Ok((0..batch.num_rows())
        .map(|i| KeyRange { low: low.is_valid(i).then(|| low.value(i)), high: high.is_valid(i).then(|| high.value(i)) })
        .collect())
}

fn in_table(meta: &TableMeta, e: OpdbError) -> OpdbError {
    match e {
        OpdbError::Database(err) => OpdbError::Plan(format!("reading opdb.{}: {err}", meta.table)),
        other => other,
    }
}

/// Collects decoded rows into batches and sends them downstream.
struct BatchReader<'a> {
    meta: &'a TableMeta,
    projection: &'a [usize],
    schema: SchemaRef,
    builders: Vec<Builder>,
    rows: usize,
    tx: tokio::sync::mpsc::Sender<Result<RecordBatch>>,
    /// The consumer went away (e.g. a LIMIT was satisfied): stop reading.
    closed: bool,
    /// Keeps the read within the database's bulk duty.
    pacer: Pacer,
    /// Adds up the Arrow size of the values sent.
    scanned: Count,
}

impl<'a> BatchReader<'a> {
    fn new(
        meta: &'a TableMeta,
        projection: &'a [usize],
        schema: SchemaRef,
        tx: tokio::sync::mpsc::Sender<Result<RecordBatch>>,
        pacer: Pacer,
        scanned: Count,
    ) -> Self {
        let builders = projection.iter().map(|i| Builder::new(meta.columns[*i].ty, BATCH_ROWS)).collect();
        Self { meta, projection, schema, builders, rows: 0, tx, closed: false, pacer, scanned }
    }

    fn bad_value(&self, i: usize, e: values::BadValue) -> OpdbError {
        OpdbError::Value {
            table: self.meta.table.clone(),
            column: self.meta.columns[self.projection[i]].name.clone(),
            message: e.0,
        }
    }

    /// Counts a decoded row; sends a batch when full, then rests as the
    /// duty requires (the database's backend waits on its socket meanwhile;
    /// time spent waiting for the consumer counts as rest).
    async fn row_done(&mut self) -> Result<(), OpdbError> {
        self.rows += 1;
        if self.rows >= BATCH_ROWS {
            let owed = self.pacer.end_unit();
            self.flush().await.map_err(|e| OpdbError::Plan(e.to_string()))?;
            self.pacer.rest(owed).await;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        if self.rows == 0 || self.closed {
            return Ok(());
        }
        let columns = self.builders.iter_mut().map(|b| b.finish()).collect::<Result<Vec<_>, _>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(self.rows));
        let batch = RecordBatch::try_new_with_options(Arc::clone(&self.schema), columns, &options)?;
        self.rows = 0;
        // The bytes of the values read (not the builders' spare capacity).
        self.scanned.add(batch.columns().iter().map(|c| c.to_data().get_slice_memory_size().unwrap_or(0)).sum());
        if self.tx.send(Ok(batch)).await.is_err() {
            self.closed = true;
        }
        Ok(())
    }
}

/// The rows one `FETCH` of a PostgreSQL read asks for. The backend produces
/// them in a fraction of a millisecond and then waits for the next `FETCH`,
/// so an application's statement arriving on its CPU meanwhile waits at most
/// that long; a plain query would keep producing rows into the socket's
/// buffers (megabytes on one host) for as long as they had room, for
/// milliseconds at a time, while the scheduler lets it run to the end of
/// its time slice (docs/benchmarks.md, "never blocks").
pub const FETCH_ROWS: usize = 1000;

/// The cursor a PostgreSQL read fetches from (one per read transaction).
const CURSOR: &str = "sentio_read";

/// A query of `sql` with `params` bound: one definition for every driver.
macro_rules! bound {
    ($sql:expr, $params:expr) => {{
        let mut q = sqlx::query(AssertSqlSafe($sql.to_string()));
        for p in $params {
            match p {
                Param::Text(s) => q = q.bind(s.clone()),
            }
        }
        q
    }};
}

/// Streams `rows` through `reader`; evaluates to the number of rows read.
macro_rules! read_rows {
    ($rows:expr, $reader:expr, $append:path) => {{
        let mut rows = $rows;
        let mut n = 0usize;
        while let Some(row) = rows.try_next().await? {
            for (i, col) in $reader.projection.iter().enumerate() {
                $append(&row, i, &$reader.meta.columns[*col], &mut $reader.builders[i])
                    .map_err(|e| $reader.bad_value(i, e))?;
            }
            n += 1;
            $reader.row_done().await?;
            if $reader.closed {
                break;
            }
        }
        n
    }};
}

/// Reads the rows of `sql` into `reader`; a paced PostgreSQL read, whose
/// statements are each one `FETCH`, gives up after `limit` in all, as a
/// plain query does at its statement timeout (its snapshot, held open all
/// along, holds back the database's vacuum).
async fn read(
    conn: &mut Conn,
    sql: &str,
    params: &[Param],
    reader: &mut BatchReader<'_>,
    limit: std::time::Duration,
) -> Result<(), OpdbError> {
    log::debug!("opdb read: {sql}");
    match conn {
        // A paced read goes through a cursor in its snapshot transaction,
        // fetched [`FETCH_ROWS`] at a time, and planned for all of its rows
        // as the plain query is (a cursor is otherwise planned for its first
        // tenth). Unpaced (duty 1: a replica nobody else reads), the rows
        // stream from the query at full speed.
        Conn::Pg(c) if reader.pacer.paced() => {
            let started = std::time::Instant::now();
            sqlx::raw_sql("SET LOCAL cursor_tuple_fraction = 1").execute(&mut *c).await?;
            bound!(format!("DECLARE {CURSOR} NO SCROLL CURSOR FOR {sql}"), params).execute(&mut *c).await?;
            let fetch = format!("FETCH {FETCH_ROWS} FROM {CURSOR}");
            loop {
                let n = read_rows!(sqlx::query(AssertSqlSafe(fetch.clone())).fetch(&mut *c), reader, values::append_pg);
                if n < FETCH_ROWS || reader.closed {
                    break;
                }
                if started.elapsed() > limit {
                    return Err(OpdbError::Plan(format!(
                        "reading opdb.{}: a key range took over the {} s statement timeout at the bulk duty; \
                         raise SENTIO_OPDB_BULK_DUTY or read fewer rows",
                        reader.meta.table,
                        limit.as_secs()
                    )));
                }
            }
        }
        Conn::Pg(c) => {
            read_rows!(bound!(sql, params).fetch(&mut *c), reader, values::append_pg);
        }
        Conn::My(c) => {
            read_rows!(bound!(sql, params).fetch(&mut *c), reader, values::append_mysql);
        }
        Conn::Lite(c) => {
            read_rows!(bound!(sql, params).fetch(&mut *c), reader, values::append_sqlite);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::{col, lit};

    use super::*;
    use crate::meta::tests::sessions;

    #[test]
    fn partition_sql_has_range_filters_and_limit() {
        let meta = Arc::new(sessions(Backend::Postgres));
        let ranges = split_ranges(1, 600_000, None);
        let scan = OpdbScanExec::new(
            Arc::new(Opdb::default()),
            meta,
            vec![0, 4],
            vec![col("country").eq(lit("DE"))],
            None,
            ranges_source(&ranges).unwrap(),
        )
        .unwrap();
        assert_eq!(scan.properties().partitioning.partition_count(), 3);
        let (sql, params) = scan.sql(ranges[1]);
        assert_eq!(
            sql,
            r#"SELECT "session_id", "amount" FROM "sessions" WHERE "session_id" >= 200001 AND "session_id" < 400001 AND "country" = $1"#
        );
        assert_eq!(params, vec![Param::Text("DE".into())]);
    }

    #[test]
    fn ranges_cover_every_key_once() {
        let r = split_ranges(-10, 1_000_003, Some(900_000));
        assert!(r.len() > 1 && r.len() as i64 <= MAX_PARTITIONS);
        for w in r.windows(2) {
            assert_eq!(w[0].high, w[1].low);
        }
        assert!(r[0].low.is_none() && r.last().unwrap().high.is_none());
        assert_eq!(split_ranges(0, i64::MAX, Some(10)).len(), 1);
        assert_eq!(split_ranges(i64::MIN, i64::MAX, None).len() as i64, MAX_PARTITIONS);
    }
}
