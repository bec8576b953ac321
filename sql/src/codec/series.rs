//! The `generate_series` and `range` table functions across the cluster.
//!
//! DataFusion plans `FROM generate_series(1, 10)` into a scan of a
//! [`GenerateSeriesTable`], which Ballista's logical codec cannot encode, so
//! such a query could not be sent to the scheduler. The table travels as
//! DataFusion's own `GenerateSeriesNode` message (the one its physical codec
//! writes for the same series) inside a Sentio envelope, and is rebuilt on the
//! other side as the same `GenerateSeriesTable`, wrapped in a [`SeriesTable`]
//! whose scan never projects the generator itself: DataFusion's physical codec
//! drops that projection, so `SELECT COUNT(*) FROM generate_series(1, 10)`
//! failed on the executors with "number of columns(1) must match number of
//! fields(0)". The projection runs as its own step instead.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, IntervalMonthDayNano, IntervalMonthDayNanoType, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::TableType;
use datafusion::functions_table::generate_series::{GenSeriesArgs, GenerateSeriesTable};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::memory::LazyMemoryExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion_proto::physical_plan::{AsExecutionPlan, DefaultPhysicalExtensionCodec};
use datafusion_proto::protobuf::generate_series_node::Args;
use datafusion_proto::protobuf::physical_plan_node::PhysicalPlanType;
use datafusion_proto::protobuf::{GenerateSeriesName, GenerateSeriesNode, PhysicalPlanNode};
use prost::Message;

/// The envelope kind of a series table.
pub const KIND: &str = "generate_series";

/// A series table that scans its whole series and projects it afterwards.
#[derive(Debug)]
pub struct SeriesTable(GenerateSeriesTable);

#[async_trait]
impl TableProvider for SeriesTable {
    fn schema(&self) -> SchemaRef {
        self.0.schema()
    }

    fn table_type(&self) -> TableType {
        self.0.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let series = self.0.scan(state, None, filters, limit).await?;
        let Some(columns) = projection else { return Ok(series) };
        let schema = series.schema();
        let exprs = columns.iter().map(|&i| {
            let column: Arc<dyn PhysicalExpr> = Arc::new(Column::new(schema.field(i).name(), i));
            (column, schema.field(i).name().clone())
        });
        Ok(Arc::new(ProjectionExec::try_new(exprs, series)?))
    }
}

/// The payload of `table` if it is a series table.
pub fn encode(table: &dyn TableProvider) -> Result<Option<Vec<u8>>> {
    let any = table as &dyn std::any::Any;
    let series = match any.downcast_ref::<SeriesTable>() {
        Some(SeriesTable(series)) => series,
        None => match any.downcast_ref::<GenerateSeriesTable>() {
            Some(series) => series,
            None => return Ok(None),
        },
    };
    // The table keeps its arguments private; its generator shows them, and
    // DataFusion's physical codec knows how to write that generator.
    let exec = LazyMemoryExec::try_new(series.schema(), vec![series.as_generator(1)?])?;
    let node = PhysicalPlanNode::try_from_physical_plan(Arc::new(exec), &DefaultPhysicalExtensionCodec {})?;
    match node.physical_plan_type {
        Some(PhysicalPlanType::GenerateSeries(node)) => Ok(Some(node.encode_to_vec())),
        _ => Err(DataFusionError::Internal("DataFusion did not encode a generate_series table as a series".into())),
    }
}

/// The series table of `payload`, whose scan has `schema`.
pub fn decode(payload: &[u8], schema: SchemaRef) -> Result<Arc<dyn TableProvider>> {
    let node = GenerateSeriesNode::decode(payload)
        .map_err(|e| DataFusionError::Internal(format!("corrupt generate_series node: {e}")))?;
    let args = match node.args {
        Some(Args::ContainsNull(a)) => GenSeriesArgs::ContainsNull { name: name(a.name)? },
        Some(Args::Int64Args(a)) => GenSeriesArgs::Int64Args {
            start: a.start,
            end: a.end,
            step: a.step,
            include_end: a.include_end,
            name: name(a.name)?,
        },
        Some(Args::TimestampArgs(a)) => GenSeriesArgs::TimestampArgs {
            start: a.start,
            end: a.end,
            step: interval(a.step.map(|s| (s.months, s.days, s.nanos)))?,
            tz: a.tz.map(Arc::from),
            include_end: a.include_end,
            name: name(a.name)?,
        },
        Some(Args::DateArgs(a)) => {
            let (start, end, include_end) = (a.start, a.end, a.include_end);
            let (step, name) = (interval(a.step.map(|s| (s.months, s.days, s.nanos)))?, name(a.name)?);
            // DataFusion writes a timestamp series without a time zone as
            // dates; the column's type tells them apart.
            match schema.fields().first().map(|f| f.data_type()) {
                Some(DataType::Date32) => GenSeriesArgs::DateArgs { start, end, step, include_end, name },
                _ => GenSeriesArgs::TimestampArgs { start, end, step, tz: None, include_end, name },
            }
        }
        None => return Err(DataFusionError::Internal("generate_series node without arguments".into())),
    };
    Ok(Arc::new(SeriesTable(GenerateSeriesTable::new(schema, args))))
}

/// A step interval from its months, days and nanoseconds.
fn interval(step: Option<(i32, i32, i64)>) -> Result<IntervalMonthDayNano> {
    let (months, days, nanos) =
        step.ok_or_else(|| DataFusionError::Internal("generate_series node without a step".into()))?;
    Ok(IntervalMonthDayNanoType::make_value(months, days, nanos))
}

/// The function's name, which DataFusion keeps as a `&'static str`.
fn name(code: i32) -> Result<&'static str> {
    match GenerateSeriesName::try_from(code) {
        Ok(GenerateSeriesName::GsGenerateSeries) => Ok("generate_series"),
        Ok(GenerateSeriesName::GsRange) => Ok("range"),
        Err(_) => Err(DataFusionError::Internal(format!("unknown series function {code}"))),
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::prelude::SessionContext;
    use datafusion_proto::bytes::{
        logical_plan_from_bytes_with_extension_codec, logical_plan_to_bytes_with_extension_codec,
    };

    use crate::codec::SentioLogicalCodec;

    /// Plans `sql`, sends the plan through Sentio's logical codec as the
    /// client does, and runs what comes out; returns both answers as text and
    /// the number of rows.
    async fn through_the_codec(sql: &str) -> (String, String, usize) {
        let ctx = SessionContext::new();
        let df = ctx.sql(sql).await.unwrap();
        let plan = df.logical_plan().clone();
        let codec = SentioLogicalCodec::default();
        let bytes = logical_plan_to_bytes_with_extension_codec(&plan, &codec).unwrap();
        let decoded = logical_plan_from_bytes_with_extension_codec(&bytes, &ctx.task_ctx(), &codec).unwrap();
        let direct = ctx.execute_logical_plan(plan).await.unwrap().collect().await.unwrap();
        let sent = ctx.execute_logical_plan(decoded).await.unwrap().collect().await.unwrap();
        (
            pretty_format_batches(&direct).unwrap().to_string(),
            pretty_format_batches(&sent).unwrap().to_string(),
            sent.iter().map(|b| b.num_rows()).sum(),
        )
    }

    #[tokio::test]
    async fn every_kind_of_series_survives_the_codec() {
        for (sql, rows) in [
            ("SELECT value FROM generate_series(1, 10, 3)", 4),
            ("SELECT value FROM range(10, 0, -4)", 3),
            ("SELECT COUNT(*) FROM generate_series(1, 100000)", 1),
            ("SELECT value FROM generate_series(1, NULL)", 0),
            ("SELECT value FROM generate_series(DATE '2024-01-30', DATE '2024-04-01', INTERVAL '1 month')", 3),
            (
                "SELECT value FROM range(TIMESTAMP '2024-01-01 00:00:00', TIMESTAMP '2024-01-01 03:00:00', \
                 INTERVAL '1 hour')",
                3,
            ),
            (
                "SELECT value FROM generate_series(\
                 arrow_cast('2024-03-30T00:00:00', 'Timestamp(Nanosecond, Some(\"Europe/Paris\"))'), \
                 arrow_cast('2024-04-01T00:00:00', 'Timestamp(Nanosecond, Some(\"Europe/Paris\"))'), INTERVAL '1 day')",
                3,
            ),
        ] {
            let (direct, sent, n) = through_the_codec(sql).await;
            assert_eq!(direct, sent, "{sql}");
            assert_eq!(n, rows, "{sql}:\n{sent}");
        }
    }
}
