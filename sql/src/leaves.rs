//! Generated leaves as in-memory scans, so every task of a stage reports
//! the same number of metrics sets.
//!
//! Ballista runs a stage as tasks that each read a slice of its partitions.
//! Under a `UnionExec` it gives a task's plan a 0-partition in-memory scan in
//! place of each generated leaf (`PlaceholderRowExec` — the one row of
//! `SELECT 1` — or `EmptyExec`) whose partitions the task does not read.
//! The scan reports metrics and the generated leaf none, so two tasks of
//! one stage sent different numbers of metrics sets; Ballista 55's scheduler
//! then refused the second task's status, never saw it finish, and the job
//! waited forever: `SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3` hung
//! (as did `ML.TRIAL_INFO` of three trials). [`CountedLeaves`] turns those
//! leaves into in-memory scans of the same rows before the plan is
//! distributed, so every task's leaves are scans.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions, new_null_array};
use datafusion::common::ScalarValue;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::placeholder_row::PlaceholderRowExec;

/// The rule (see the module docs).
#[derive(Debug, Default)]
pub struct CountedLeaves;

impl PhysicalOptimizerRule for CountedLeaves {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| Ok(as_scan(&node)?.map_or_else(|| Transformed::no(node), Transformed::yes)))
            .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "sentio_counted_leaves"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `node` as an in-memory scan of the same rows in the same partitions, if
/// it is a generated leaf: one all-NULL row per partition
/// (`PlaceholderRowExec`), or none (`EmptyExec`).
fn as_scan(node: &Arc<dyn ExecutionPlan>) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let rows = if node.is::<PlaceholderRowExec>() {
        1
    } else if node.is::<EmptyExec>() {
        0
    } else {
        return Ok(None);
    };
    let schema = node.schema();
    let partitions = node.properties().output_partitioning().partition_count();
    let partition = if rows == 0 {
        Vec::new()
    } else {
        // The row's values are never read (DataFusion's own placeholder row
        // is NULLs of type Null): NULL where the schema allows it, else a
        // default value; a type without one keeps the leaf as it is.
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for f in schema.fields() {
            columns.push(if f.is_nullable() {
                new_null_array(f.data_type(), rows)
            } else {
                match ScalarValue::new_default(f.data_type()).and_then(|v| v.to_array_of_size(rows)) {
                    Ok(column) => column,
                    Err(_) => return Ok(None),
                }
            });
        }
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        vec![RecordBatch::try_new_with_options(Arc::clone(&schema), columns, &options)?]
    };
    let config = MemorySourceConfig::try_new(&vec![partition; partitions], schema, None)?;
    Ok(Some(DataSourceExec::from_data_source(config)))
}

#[cfg(test)]
mod tests {
    use datafusion::execution::SessionStateBuilder;
    use datafusion::physical_plan::displayable;
    use datafusion::prelude::SessionContext;

    use super::*;

    #[tokio::test]
    async fn generated_leaves_become_scans_of_the_same_rows() {
        let state = SessionStateBuilder::new().with_default_features().build();
        let plain = SessionContext::new_with_state(state);
        let state =
            SessionStateBuilder::new().with_default_features().with_physical_optimizer_rule(Arc::new(CountedLeaves));
        let ruled = SessionContext::new_with_state(state.build());
        for sql in [
            "SELECT 1 AS t UNION ALL SELECT 2 UNION ALL SELECT 3",
            "SELECT * FROM (SELECT 1 AS a, 'x' AS b) WHERE a > 5 UNION ALL SELECT 2, 'y'",
            "SELECT count(*) AS n FROM (SELECT 1 AS a UNION ALL SELECT 2) UNION ALL SELECT 7",
        ] {
            let rows = |ctx: &SessionContext| {
                let ctx = ctx.clone();
                async move {
                    let batches = ctx.sql(&format!("SELECT * FROM ({sql}) ORDER BY 1")).await?.collect().await?;
                    datafusion::arrow::util::pretty::pretty_format_batches(&batches).map(|t| t.to_string())
                }
            };
            assert_eq!(rows(&ruled).await.unwrap(), rows(&plain).await.unwrap(), "{sql}");
            let plan = ruled.sql(sql).await.unwrap().create_physical_plan().await.unwrap();
            let text = displayable(plan.as_ref()).indent(true).to_string();
            assert!(!text.contains("PlaceholderRowExec") && !text.contains("EmptyExec"), "{sql}:\n{text}");
        }
    }
}
