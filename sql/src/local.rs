//! Tables whose rows live in this process (the front end's statement log):
//! a statement that reads only such tables runs here, not on the cluster,
//! whose executors could not reach them.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableType, source_as_provider};
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_plan::ExecutionPlan;

/// Rows kept in this process, read afresh at every scan.
pub trait ProcessRows: Debug + Send + Sync {
    /// Their schema.
    fn schema(&self) -> SchemaRef;
    /// The rows as they are now.
    fn rows(&self) -> Result<RecordBatch>;
}

/// A table over [`ProcessRows`].
#[derive(Debug)]
pub struct ProcessTable {
    rows: Arc<dyn ProcessRows>,
}

impl ProcessTable {
    /// The table of `rows`.
    pub fn new(rows: Arc<dyn ProcessRows>) -> Self {
        Self { rows }
    }
}

#[async_trait]
impl TableProvider for ProcessTable {
    fn schema(&self) -> SchemaRef {
        self.rows.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batch = self.rows.rows()?;
        Ok(MemorySourceConfig::try_new_exec(&[vec![batch]], self.schema(), projection.cloned())?)
    }
}

/// Whether `plan` reads tables and every one of them is a [`ProcessTable`]
/// (in subqueries too).
pub fn reads_only_process_tables(plan: &LogicalPlan) -> bool {
    let (mut scans, mut here) = (0, 0);
    let _ = plan.apply_with_subqueries(|p| {
        if let LogicalPlan::TableScan(scan) = p {
            scans += 1;
            let local = source_as_provider(&scan.source).is_ok_and(|t| t.downcast_ref::<ProcessTable>().is_some());
            here += usize::from(local);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    scans > 0 && scans == here
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::prelude::SessionContext;

    #[derive(Debug)]
    struct Numbers;

    impl ProcessRows for Numbers {
        fn schema(&self) -> SchemaRef {
            Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]))
        }
        fn rows(&self) -> Result<RecordBatch> {
            Ok(RecordBatch::try_new(self.schema(), vec![Arc::new(Int64Array::from(vec![1, 2, 3]))])?)
        }
    }

    #[tokio::test]
    async fn only_plans_over_process_tables_run_here() {
        let ctx = SessionContext::new();
        ctx.register_table("here", Arc::new(ProcessTable::new(Arc::new(Numbers)))).unwrap();
        ctx.register_batch("elsewhere", Numbers.rows().unwrap()).unwrap();
        let plan = |sql: &str| {
            let ctx = ctx.clone();
            let sql = sql.to_string();
            async move { ctx.state().create_logical_plan(&sql).await.unwrap() }
        };
        assert!(reads_only_process_tables(&plan("SELECT SUM(n) FROM here").await));
        assert!(!reads_only_process_tables(&plan("SELECT * FROM here JOIN elsewhere USING (n)").await));
        assert!(!reads_only_process_tables(&plan("SELECT n FROM here WHERE n IN (SELECT n FROM elsewhere)").await));
        assert!(!reads_only_process_tables(&plan("SELECT 1").await));
        let batches = ctx.sql("SELECT SUM(n) AS s FROM here").await.unwrap().collect().await.unwrap();
        assert_eq!(batches[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0), 6);
    }
}
