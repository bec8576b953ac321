//! Models applied after a top-k, not before it.
//!
//! DataFusion's projection pushdown moves a projection below a sort when the
//! projection narrows the rows, and a top-k sort (`ORDER BY … LIMIT k`) is no
//! exception: `SELECT id, prediction_value FROM ML.EXPLAIN_PREDICT(MODEL m,
//! (SELECT * FROM t ORDER BY id LIMIT 3))` explained every row of `t` and
//! kept three (26 s instead of 0.4 s on 30,000 rows). A projection is cheap
//! for DataFusion; one that applies a model is not. [`LateModels`] runs after
//! DataFusion's rules and lifts such a projection back above each top-k sort
//! (and sort-preserving merge with a fetch) it was pushed under, when the sort
//! orders by columns the projection passes through.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result;
use datafusion::physical_expr::{LexOrdering, PhysicalExpr, PhysicalSortExpr, ScalarFunctionExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::expressions::Column;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;

/// The functions that apply a model to each row: costly enough that they
/// must see only the rows a top-k keeps.
const MODEL_FUNCTIONS: [&str; 3] = ["sentio_predict", "sentio_predict_value", "sentio_explain"];

/// The rule (see the module docs).
#[derive(Debug, Default)]
pub struct LateModels;

impl PhysicalOptimizerRule for LateModels {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| Ok(lift(&node)?.map_or_else(|| Transformed::no(node), Transformed::yes)))
            .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "sentio_late_models"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `node` with its model-applying projection child lifted above it, when it
/// is a top-k that orders by passed-through columns.
fn lift(node: &Arc<dyn ExecutionPlan>) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    if let Some(sort) = node.downcast_ref::<SortExec>()
        && sort.fetch().is_some()
        && let Some(projection) = costly_projection(sort.input())
        && let Some(ordering) = through(sort.expr(), projection)
    {
        let below = SortExec::new(ordering, Arc::clone(projection.input()))
            .with_fetch(sort.fetch())
            .with_preserve_partitioning(sort.preserve_partitioning());
        return Ok(Some(Arc::new(ProjectionExec::try_new(projection.expr().to_vec(), Arc::new(below))?)));
    }
    if let Some(merge) = node.downcast_ref::<SortPreservingMergeExec>()
        && merge.fetch().is_some()
        && let Some(projection) = costly_projection(merge.input())
        && let Some(ordering) = through(merge.expr(), projection)
    {
        let below = SortPreservingMergeExec::new(ordering, Arc::clone(projection.input())).with_fetch(merge.fetch());
        return Ok(Some(Arc::new(ProjectionExec::try_new(projection.expr().to_vec(), Arc::new(below))?)));
    }
    Ok(None)
}

/// `plan` as a projection that applies a model, if it is one.
fn costly_projection(plan: &Arc<dyn ExecutionPlan>) -> Option<&ProjectionExec> {
    let projection = plan.downcast_ref::<ProjectionExec>()?;
    projection.expr().iter().any(|e| applies_model(&e.expr)).then_some(projection)
}

fn applies_model(expr: &Arc<dyn PhysicalExpr>) -> bool {
    expr.exists(|e| Ok(e.downcast_ref::<ScalarFunctionExpr>().is_some_and(|f| MODEL_FUNCTIONS.contains(&f.name()))))
        .unwrap_or(false)
}

/// `ordering` over the projection's output rewritten over its input: only
/// when every column it uses is one the projection passes through.
fn through(ordering: &LexOrdering, projection: &ProjectionExec) -> Option<LexOrdering> {
    let exprs = projection.expr();
    let mut rewritten = Vec::with_capacity(ordering.len());
    for sort in ordering.iter() {
        let mut passable = true;
        let expr = Arc::clone(&sort.expr)
            .transform(|e| {
                let Some(column) = e.downcast_ref::<Column>() else { return Ok(Transformed::no(e)) };
                match exprs.get(column.index()).map(|p| &p.expr) {
                    Some(source) if source.downcast_ref::<Column>().is_some() => {
                        Ok(Transformed::yes(Arc::clone(source)))
                    }
                    _ => {
                        passable = false;
                        Ok(Transformed::no(e))
                    }
                }
            })
            .ok()?
            .data;
        if !passable {
            return None;
        }
        rewritten.push(PhysicalSortExpr { expr, options: sort.options });
    }
    LexOrdering::new(rewritten)
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::logical_expr::ScalarUDF;
    use datafusion::physical_plan::displayable;
    use datafusion::prelude::SessionContext;
    use sentio_udfs::ml::predict_udf::{ModelSource, PredictUdf};

    use super::*;

    /// Planning never reads a model.
    #[derive(Debug)]
    struct NoModels;

    impl ModelSource for NoModels {
        fn fetch(&self, url: &str) -> std::result::Result<Vec<u8>, String> {
            Err(format!("no model at {url} while planning"))
        }
    }

    /// The plan of a prediction over a top-k, with or without the rule.
    async fn plan(with_rule: bool) -> String {
        let mut builder = SessionStateBuilder::new().with_default_features();
        if with_rule {
            builder = builder.with_physical_optimizer_rule(Arc::new(LateModels));
        }
        let ctx = SessionContext::new_with_state(builder.build());
        ctx.register_udf(ScalarUDF::new_from_impl(PredictUdf::new(Arc::new(NoModels))));
        let a = Arc::new(Int64Array::from((0..100).collect::<Vec<i64>>()));
        let b = Arc::new(Int64Array::from((0..100).map(|i| i * 7 % 13).collect::<Vec<i64>>()));
        let c = Arc::new(Int64Array::from(vec![1; 100]));
        let batch = RecordBatch::try_from_iter([("a", a as _), ("b", b as _), ("c", c as _)]).unwrap();
        ctx.register_batch("t", batch).unwrap();
        // The projection narrows the rows (three columns in, two out):
        // DataFusion pushes such a projection under a sort.
        let df = ctx
            .sql("SELECT a, sentio_predict('{}', b, c) AS p FROM (SELECT a, b, c FROM t ORDER BY a LIMIT 3) s")
            .await
            .unwrap();
        displayable(df.create_physical_plan().await.unwrap().as_ref()).indent(false).to_string()
    }

    /// Where the model is applied: the line of the projection that calls it,
    /// and of the top-k.
    fn lines(plan: &str) -> (usize, usize) {
        let at = |what: &str| plan.lines().position(|l| l.contains(what)).unwrap_or_else(|| panic!("{plan}"));
        (at("sentio_predict"), at("fetch=3"))
    }

    #[tokio::test]
    async fn the_model_sees_only_the_rows_a_top_k_keeps() {
        let (model, top_k) = lines(&plan(false).await);
        assert!(model > top_k, "DataFusion alone pushes the model under the top-k:\n{}", plan(false).await);
        let (model, top_k) = lines(&plan(true).await);
        assert!(model < top_k, "with the rule the model is applied above the top-k");
    }
}
