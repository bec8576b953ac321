//! One statement from its text to its result, the same for every front end:
//! extract and ML statements run their jobs here; any other SQL is planned
//! for the cluster and left to the caller to run, stream, watch or cancel.

use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::TreeNode;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};

use crate::client::Client;
use crate::error::{Result, SentioError};
use crate::{extract, local, ml};

/// What a session may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Every statement.
    Everything,
    /// Queries (and `SET`, `EXPLAIN`, `SHOW`, `DESCRIBE`) only: no `INSERT`,
    /// no `CREATE`/`DROP MODEL`, no extract statements, no other DDL.
    QueriesOnly,
}

/// A statement, once planned.
pub enum Planned {
    /// The statement ran (ML and extract statements); its rows.
    Done(Vec<RecordBatch>),
    /// A plan for the cluster, not yet run.
    Query {
        /// The logical plan (an `INSERT INTO opdb.…` is recognised by it).
        logical: LogicalPlan,
        /// The plan to run.
        physical: Arc<dyn ExecutionPlan>,
    },
}

/// Plans `sql` on `client`, running it when it is an ML or extract
/// statement; refuses what `access` does not allow before any work is done.
pub async fn plan(client: &Client, sql: &str, access: Access) -> Result<Planned> {
    if let Some(stmt) = extract::parse_extract_statement(sql)? {
        permit(access, Some("an extract statement"))?;
        let extracts = client.extracts.as_ref().ok_or(extract::ExtractError::NoLake)?;
        return Ok(Planned::Done(extracts.run(&client.ml, stmt).await?));
    }
    permit(access, ml::changes_models(sql))?;
    let sql = match ml::prepare(&client.ml, sql).await? {
        ml::Prepared::Done(batches) => return Ok(Planned::Done(batches)),
        ml::Prepared::Sql(sql) => sql,
    };
    let state = client.ctx.state();
    let logical = state.create_logical_plan(&sql).await?;
    permit(access, changes_data(&logical))?;
    if matches!(logical, LogicalPlan::DescribeTable(_)) || local::reads_only_process_tables(&logical) {
        // What these read is here (a table's schema, rows of this process);
        // Ballista could not send a DESCRIBE, nor reach such rows.
        let physical = DefaultPhysicalPlanner::default().create_physical_plan(&logical, &state).await?;
        return Ok(Planned::Query { logical, physical });
    }
    let df = client.ctx.execute_logical_plan(logical).await?;
    let logical = df.logical_plan().clone();
    let physical = df.create_physical_plan().await?;
    Ok(Planned::Query { logical, physical })
}

/// Refuses `what` (a statement that changes something) unless `access`
/// allows every statement.
fn permit(access: Access, what: Option<&'static str>) -> Result<()> {
    match (access, what) {
        (Access::QueriesOnly, Some(what)) => Err(SentioError::NotPermitted(what.to_string())),
        _ => Ok(()),
    }
}

/// What `plan` changes, if anything: a write (`INSERT`, `UPDATE`, `DELETE`,
/// `COPY`) or DDL, anywhere in it (`EXPLAIN ANALYZE INSERT …` runs the insert).
fn changes_data(plan: &LogicalPlan) -> Option<&'static str> {
    let mut what = None;
    let _ = plan.apply(|p| {
        what = match p {
            LogicalPlan::Dml(_) | LogicalPlan::Copy(_) => Some("a write (INSERT, UPDATE, DELETE, COPY)"),
            LogicalPlan::Ddl(_) => Some("a CREATE or DROP statement"),
            _ => None,
        };
        Ok(if what.is_some() {
            datafusion::common::tree_node::TreeNodeRecursion::Stop
        } else {
            datafusion::common::tree_node::TreeNodeRecursion::Continue
        })
    });
    what
}
