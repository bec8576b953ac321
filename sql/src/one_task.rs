//! Statements over small inputs, run as one task.
//!
//! The scheduler plans a statement with the session's partition count, so a
//! `GROUP BY` over a 2,000-row CSV file became a scan task, a shuffle into 8
//! or 16 partitions and as many final tasks — each with its launch, status
//! report, shuffle files and result fetch: tens of milliseconds for a few
//! kilobytes. When everything a statement reads is files whose sizes add up
//! to less than `datafusion.optimizer.repartition_file_min_size` (DataFusion's
//! own size below which a scan is not worth splitting; 10 MiB unless set), or
//! it reads no table at all, its job is submitted with one target partition
//! ([`ONE_TASK`]): the scheduler then plans it without repartitioning, and a
//! scan with an aggregate, a sort or a join of small tables is one stage of
//! one task. The answers are the same either way (the tests compare them).
//!
//! It is decided here, before the job is submitted, and carried in the job's
//! settings: every step of the scheduler's planning must see one partition
//! count. Re-planning on the scheduler with a smaller count alone gave wrong
//! answers — Ballista's distributed planner re-cuts a join it cannot
//! broadcast with the session's count, and a `COUNT(*)` over such a join came
//! back as 8 partial counts.
//!
//! A statement keeps the session's partitions when it calls a function whose
//! work is out of proportion to its input (training a model's parts,
//! explaining predictions: [`sentio_udfs::compute_bound`]), when any input's
//! size is not known without reading it (an operational-DB table, a generated series,
//! rows in memory), when listing an input fails (the scheduler then reports
//! the failure as it always has), and when it writes or changes anything.
//! (A file gone since the table was registered lists as nothing: such a
//! statement runs as one task, and its scan fails as it would have.)
//! Sizes are listed afresh for every statement: a table that has grown is
//! spread over the executors again at once.

use datafusion::catalog::Session;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::listing::{ListingTable, ListingTableUrl};
use datafusion::datasource::source_as_provider;
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, LogicalPlan};
use futures::TryStreamExt;

/// The target partitions a statement over small inputs is submitted with.
pub const ONE_TASK: usize = 1;

/// Whether `plan` reads less than the session's
/// `datafusion.optimizer.repartition_file_min_size` bytes of files and
/// nothing else, and changes nothing (see the module docs). A size of 0
/// turns the one-task path off.
pub async fn fits_one_task(plan: &LogicalPlan, session: &dyn Session) -> bool {
    let below = session.config_options().optimizer.repartition_file_min_size as u64;
    if below == 0 {
        return false;
    }
    let Some(listings) = file_inputs(plan) else {
        return false;
    };
    match bytes_up_to(&listings, session, below).await {
        Ok(bytes) => bytes < below,
        Err(e) => {
            log::debug!("planned with the session's partitions: listing an input failed: {e}");
            false
        }
    }
}

/// The file listings `plan` reads (its subqueries' too), or `None` when it
/// reads anything else, changes anything or calls a compute-bound function.
fn file_inputs(plan: &LogicalPlan) -> Option<Vec<(ListingTableUrl, String)>> {
    let mut listings = Some(Vec::new());
    let _ = plan.apply_with_subqueries(|node| {
        let input = match node {
            LogicalPlan::TableScan(scan) => source_as_provider(&scan.source).ok().and_then(|provider| {
                let table = provider.downcast_ref::<ListingTable>()?;
                let extension = table.options().file_extension.clone();
                Some(table.table_paths().iter().map(|url| (url.clone(), extension.clone())).collect::<Vec<_>>())
            }),
            LogicalPlan::Dml(_) | LogicalPlan::Copy(_) | LogicalPlan::Ddl(_) | LogicalPlan::Extension(_) => None,
            _ if calls_compute_bound(node) => None,
            _ => Some(Vec::new()),
        };
        match (input, listings.as_mut()) {
            (Some(found), Some(all)) => {
                all.extend(found);
                Ok(TreeNodeRecursion::Continue)
            }
            _ => {
                listings = None;
                Ok(TreeNodeRecursion::Stop)
            }
        }
    });
    listings
}

/// Whether an expression of `node` calls one of Sentio's compute-bound
/// functions.
fn calls_compute_bound(node: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = node.apply_expressions(|expr| {
        expr.apply(|e| {
            found |= match e {
                Expr::ScalarFunction(f) => sentio_udfs::compute_bound(f.name()),
                Expr::AggregateFunction(f) => sentio_udfs::compute_bound(f.func.name()),
                _ => false,
            };
            Ok(if found { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
        })
    });
    found
}

/// The bytes of the files under `listings`, counted until they reach `limit`.
async fn bytes_up_to(listings: &[(ListingTableUrl, String)], session: &dyn Session, limit: u64) -> Result<u64> {
    let mut bytes = 0;
    for (url, extension) in listings {
        let store = session.runtime_env().object_store(url)?;
        let mut files = url.list_all_files(session, store.as_ref(), extension).await?;
        while let Some(file) = files.try_next().await? {
            bytes += file.size;
            if bytes >= limit {
                return Ok(bytes);
            }
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{CsvReadOptions, SessionContext};

    /// A session with `t` (a CSV file of `rows` rows) and an in-memory `m`.
    async fn session(dir: &std::path::Path, rows: usize) -> SessionContext {
        let path = dir.join("t.csv");
        let body: String = (0..rows).map(|i| format!("{i},{}\n", i % 3)).collect();
        std::fs::write(&path, format!("a,b\n{body}")).unwrap();
        let ctx = SessionContext::new();
        ctx.register_csv("t", path.to_str().unwrap(), CsvReadOptions::new()).await.unwrap();
        ctx.sql("CREATE TABLE m AS VALUES (1, 2)").await.unwrap().collect().await.unwrap();
        ctx
    }

    async fn fits(ctx: &SessionContext, sql: &str) -> bool {
        let state = ctx.state();
        let plan = state.create_logical_plan(sql).await.unwrap();
        fits_one_task(&plan, &state).await
    }

    #[tokio::test]
    async fn small_files_and_no_tables_fit_one_task() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = session(dir.path(), 2_000).await;
        assert!(fits(&ctx, "SELECT b, COUNT(*) FROM t GROUP BY b").await);
        assert!(fits(&ctx, "SELECT * FROM t x JOIN t y USING (a) WHERE x.b IN (SELECT b FROM t)").await);
        assert!(fits(&ctx, "SELECT 1").await);
    }

    #[tokio::test]
    async fn unknown_sizes_big_files_and_writes_keep_the_partitions() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = session(dir.path(), 2_000).await;
        // Rows in memory: a size not known from a listing.
        assert!(!fits(&ctx, "SELECT * FROM t JOIN m ON t.a = m.column1").await);
        assert!(!fits(&ctx, "SELECT * FROM t WHERE a IN (SELECT column1 FROM m)").await);
        assert!(!fits(&ctx, "INSERT INTO m VALUES (3, 4)").await);
        // The file is 2,000 rows of ~7 bytes: above a limit of 1 KiB.
        ctx.sql("SET datafusion.optimizer.repartition_file_min_size = 1024").await.unwrap();
        assert!(!fits(&ctx, "SELECT COUNT(*) FROM t").await);
        ctx.sql("SET datafusion.optimizer.repartition_file_min_size = 0").await.unwrap();
        assert!(!fits(&ctx, "SELECT 1").await, "0 turns the path off");
    }

    #[tokio::test]
    async fn compute_bound_functions_keep_the_partitions() {
        use datafusion::arrow::datatypes::DataType;
        use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
        use std::sync::Arc;

        let dir = tempfile::tempdir().unwrap();
        let ctx = session(dir.path(), 100).await;
        // A stand-in of the name: only the name is looked at.
        let explain = create_udf(
            "sentio_explain",
            vec![DataType::Int64],
            DataType::Int64,
            Volatility::Immutable,
            Arc::new(|args: &[ColumnarValue]| Ok(args[0].clone())),
        );
        ctx.register_udf(explain);
        assert!(!fits(&ctx, "SELECT sentio_explain(a) FROM t").await);
        assert!(!fits(&ctx, "SELECT * FROM t WHERE a IN (SELECT sentio_explain(a) FROM t)").await);
        assert!(fits(&ctx, "SELECT abs(a) FROM t").await);
    }

    #[tokio::test]
    async fn an_input_that_cannot_be_listed_keeps_the_partitions() {
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        use datafusion::datasource::file_format::csv::CsvFormat;
        use datafusion::datasource::listing::{ListingOptions, ListingTableConfig};
        use std::sync::Arc;

        // No object store is registered for s3://: the listing fails.
        let url = ListingTableUrl::parse("s3://nowhere/t/").unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));
        let options = ListingOptions::new(Arc::new(CsvFormat::default())).with_file_extension(".csv");
        let config = ListingTableConfig::new(url).with_listing_options(options).with_schema(schema);
        let ctx = SessionContext::new();
        ctx.register_table("t", Arc::new(ListingTable::try_new(config).unwrap())).unwrap();
        assert!(!fits(&ctx, "SELECT COUNT(*) FROM t").await);
    }
}
