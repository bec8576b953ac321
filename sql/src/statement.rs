//! One statement from its text to its result, the same for every front end:
//! extract and ML statements run their jobs here; any other SQL is planned
//! for the cluster and left to the caller to run, stream, watch or cancel.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ParamValues;
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
    plan_with(client, sql, access, None).await
}

/// [`plan`], with `params` as the values of the statement's placeholders
/// (`$1`, `$2`, …; a prepared statement's bound parameters). Only queries
/// and writes take parameters: an ML or extract statement given some is
/// refused.
pub async fn plan_with(client: &Client, sql: &str, access: Access, params: Option<ParamValues>) -> Result<Planned> {
    let refuse_params = |what: &str| -> Result<()> {
        match &params {
            Some(_) => Err(SentioError::Parameters(format!("$1, $2, … are for queries and writes, not for {what}"))),
            None => Ok(()),
        }
    };
    if let Some(stmt) = extract::parse_extract_statement(sql)? {
        permit(access, Some("an extract statement"))?;
        refuse_params("an extract statement")?;
        let extracts = client.extracts.as_ref().ok_or(extract::ExtractError::NoLake)?;
        return Ok(Planned::Done(extracts.run(&client.ml, stmt).await?));
    }
    let model_change = ml::changes_models(sql);
    permit(access, model_change)?;
    if let Some(what) = model_change {
        refuse_params(what)?;
    }
    let sql = match ml::prepare(&client.ml, sql).await? {
        ml::Prepared::Done(batches) => return Ok(Planned::Done(batches)),
        ml::Prepared::Sql(sql) => sql,
    };
    let state = client.ctx.state();
    let mut logical = state.create_logical_plan(&sql).await?;
    if let Some(params) = params {
        logical = logical.with_param_values(params)?;
    }
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

/// What a statement returns and takes, found without running anything: its
/// result's schema and its placeholders' (`$1` …, named so, with the type
/// the statement implies, `Null` where it implies none). Statements whose
/// result is only known by running them — ML and extract statements, and
/// queries with `ML.*` calls — give `None`.
pub async fn describe(client: &Client, sql: &str) -> Result<Option<(SchemaRef, SchemaRef)>> {
    if extract::parse_extract_statement(sql)?.is_some()
        || ml::changes_models(sql).is_some()
        || !ml::parse::find_ml_calls(sql)?.is_empty()
    {
        return Ok(None);
    }
    let logical = client.ctx.state().create_logical_plan(sql).await?;
    let mut params: Vec<(String, Option<DataType>)> = logical.get_parameter_types()?.into_iter().collect();
    params.sort_by_key(|(name, _)| name.trim_start_matches('$').parse::<usize>().unwrap_or(usize::MAX));
    let params =
        params.into_iter().map(|(name, t)| Field::new(name, t.unwrap_or(DataType::Null), true)).collect::<Vec<_>>();
    Ok(Some((Arc::new(logical.schema().as_arrow().clone()), Arc::new(Schema::new(params)))))
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
