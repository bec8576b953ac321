//! Joins with a small side of files build that side inside every task of
//! the other side.
//!
//! Ballista makes sessions prefer sort-merge joins (they spill; DataFusion's
//! hash join does not), and the physical planner picks one for every equi-join
//! before any size is looked at. Joining the frames with the hand-written CSV
//! of a few kilobytes then shuffled all the frames by the join key and sorted
//! them, where building the CSV's hash table in each task that scans the
//! frames needs no shuffle at all.
//!
//! [`SmallSidesInTask`] runs first among the physical optimizer rules, on the
//! plan as the planner made it: a sort-merge join one of whose inputs reads
//! files through nothing but filters and projections, less than
//! `datafusion.optimizer.repartition_file_min_size` bytes in all (the size
//! below which Sentio counts an input as small, as [`crate::one_task`] does),
//! becomes a hash join that collects that side, read as one partition, held
//! in an [`exec::SmallSideJoinExec`]. That node keeps the small side in the
//! stage of the big one on a cluster, where Ballista would otherwise
//! broadcast it from a stage of its own — which an executor loss turned into
//! a wrong answer ([`exec`] says how). Join types whose rows depend on the
//! collected side (a left join collecting its left side) are left as they
//! are, and so is a small side that aggregates, sorts or joins: its own
//! shuffles would make it a stage again.

use std::sync::Arc;

use datafusion::common::JoinType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig, FileScanConfigBuilder};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode, SortMergeJoinExec};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::{ChildrenPropertiesMode, ExecutionPlan, ReplaceChildrenOptions};

pub mod exec;

use exec::SmallSideJoinExec;

/// The rule (see the module docs).
#[derive(Debug, Default)]
pub struct SmallSidesInTask;

impl PhysicalOptimizerRule for SmallSidesInTask {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        let below = config.optimizer.repartition_file_min_size as u64;
        if below == 0 || config.execution.target_partitions <= 1 {
            return Ok(plan);
        }
        plan.transform_up(|node| match node.downcast_ref::<SortMergeJoinExec>() {
            Some(join) => in_task(join, below).map(|b| b.map_or(Transformed::no(Arc::clone(&node)), Transformed::yes)),
            None => Ok(Transformed::no(node)),
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "small_sides_in_task"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `join` as a hash join that builds its small side in every task, when it
/// has a side small and simple enough and a join type that allows it;
/// `None` otherwise.
fn in_task(join: &SortMergeJoinExec, below: u64) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let small = |side: &Arc<dyn ExecutionPlan>| file_bytes(side).filter(|bytes| *bytes < below);
    let (left, right) = (small(join.left()), small(join.right()));
    let join_type = join.join_type();
    let collect_left = left.is_some() && probe_driven(join_type);
    let collect_right = right.is_some() && join_type.supports_swap() && probe_driven(join_type.swap());
    let swap = match (collect_left, collect_right) {
        (true, true) => right < left,
        (false, true) => true,
        (true, false) => false,
        (false, false) => return Ok(None),
    };
    let (left, right) = if swap {
        (Arc::clone(join.left()), one_partition(join.right())?)
    } else {
        (one_partition(join.left())?, Arc::clone(join.right()))
    };
    let hash = HashJoinExec::try_new(
        left,
        right,
        join.on().to_vec(),
        join.filter().clone(),
        &join_type,
        None,
        PartitionMode::CollectLeft,
        join.null_equality(),
        false,
    )?;
    let joined = if swap { hash.swap_inputs(PartitionMode::CollectLeft)? } else { Arc::new(hash) };
    held(joined).map(Some)
}

/// `plan` — a hash join, or a projection over one (a swapped join restores
/// its column order so) — with that join held in a [`SmallSideJoinExec`].
fn held(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    if plan.is::<HashJoinExec>() {
        return Ok(Arc::new(SmallSideJoinExec::try_new(plan)?));
    }
    let options = ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute);
    match plan.children().as_slice() {
        [join] if plan.is::<ProjectionExec>() && join.is::<HashJoinExec>() => {
            let join: Arc<dyn ExecutionPlan> = Arc::new(SmallSideJoinExec::try_new(Arc::clone(join))?);
            plan.replace_children(vec![join], options)
        }
        _ => Err(datafusion::error::DataFusionError::Internal(format!(
            "a swapped small-side join planned as {}",
            plan.name()
        ))),
    }
}

/// Whether a join of `join_type` that collects its left side gives every row
/// from the tasks of its right side alone (each task collects the whole left
/// side, so rows owed to the left side alone would come from every task).
fn probe_driven(join_type: JoinType) -> bool {
    matches!(
        join_type,
        JoinType::Inner | JoinType::Right | JoinType::RightSemi | JoinType::RightAnti | JoinType::RightMark
    )
}

/// The bytes of the files `plan` reads, when it is one file scan under
/// nothing but filters and projections.
fn file_bytes(plan: &Arc<dyn ExecutionPlan>) -> Option<u64> {
    let mut bytes = None;
    let mut simple = true;
    let _ = plan.apply(|node| {
        if let Some(scan) = file_scan(node) {
            bytes = Some(scanned_bytes(scan));
        } else if !(node.is::<FilterExec>() || node.is::<ProjectionExec>()) {
            simple = false;
        }
        Ok(if simple { TreeNodeRecursion::Continue } else { TreeNodeRecursion::Stop })
    });
    bytes.filter(|_| simple)
}

/// `node`'s file scan configuration, when it is a file scan.
fn file_scan(node: &Arc<dyn ExecutionPlan>) -> Option<&FileScanConfig> {
    node.downcast_ref::<DataSourceExec>()?.data_source().downcast_ref::<FileScanConfig>()
}

/// The bytes of the file ranges `scan` reads.
fn scanned_bytes(scan: &FileScanConfig) -> u64 {
    scan.file_groups
        .iter()
        .flat_map(|group| group.iter())
        .map(|file| file.range.as_ref().map_or(file.object_meta.size, |r| (r.end - r.start).max(0) as u64))
        .sum()
}

/// `plan` with its file scan reading all its files as one partition (the
/// collected side of a join must be one).
fn one_partition(plan: &Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    Arc::clone(plan)
        .transform_up(|node| {
            let Some(scan) = file_scan(&node).filter(|scan| scan.file_groups.len() > 1) else {
                return Ok(Transformed::no(node));
            };
            let files: Vec<_> = scan.file_groups.iter().flat_map(|group| group.iter().cloned()).collect();
            let one = FileScanConfigBuilder::from(scan.clone()).with_file_groups(vec![FileGroup::new(files)]).build();
            Ok(Transformed::yes(DataSourceExec::from_data_source(one) as Arc<dyn ExecutionPlan>))
        })
        .map(|t| t.data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
    use datafusion::physical_plan::displayable;
    use datafusion::prelude::{CsvReadOptions, SessionConfig, SessionContext};
    use prost::Message;

    /// A session that prefers sort-merge joins, as Ballista's do, with
    /// Sentio's rules or DataFusion's alone, and two CSV tables: `big`
    /// (above the 1,000-byte limit set here) and `small` (below it).
    async fn session(dir: &std::path::Path, sentio_rules: bool) -> SessionContext {
        let config = SessionConfig::new()
            .with_target_partitions(4)
            .set_bool("datafusion.optimizer.prefer_hash_join", false)
            .set_u64("datafusion.optimizer.repartition_file_min_size", 1_000);
        let mut rules = PhysicalOptimizer::new().rules;
        if sentio_rules {
            rules.insert(0, Arc::new(SmallSidesInTask));
        }
        let mut builder = SessionStateBuilder::new().with_config(config).with_default_features();
        *builder.physical_optimizers() = Some(PhysicalOptimizer::with_rules(rules));
        let ctx = SessionContext::new_with_state(builder.build());
        let big: String = (0..500).map(|i| format!("{},{}\n", i % 7, i)).collect();
        let small: String = (0..5).map(|k| format!("{k},name{k}\n")).collect();
        std::fs::write(dir.join("big.csv"), format!("k,v\n{big}")).unwrap();
        std::fs::write(dir.join("small.csv"), format!("k,name\n{small}")).unwrap();
        for t in ["big", "small"] {
            let path = dir.join(format!("{t}.csv"));
            ctx.register_csv(t, path.to_str().unwrap(), CsvReadOptions::new()).await.unwrap();
        }
        ctx
    }

    /// The plan of `sql` as text, and its rows sorted.
    async fn run(ctx: &SessionContext, sql: &str) -> (String, String) {
        let df = ctx.sql(sql).await.unwrap();
        let plan = df.clone().create_physical_plan().await.unwrap();
        let batches = df.collect().await.unwrap();
        let mut rows: Vec<String> =
            pretty_format_batches(&batches).unwrap().to_string().lines().map(String::from).collect();
        rows.sort();
        (displayable(plan.as_ref()).indent(false).to_string(), rows.join("\n"))
    }

    #[tokio::test]
    async fn a_small_file_side_is_collected_with_the_same_answers() {
        let dir = tempfile::tempdir().unwrap();
        let (sentio, plain) = (session(dir.path(), true).await, session(dir.path(), false).await);
        let broadcast = [
            "SELECT b.v, s.name FROM big b JOIN small s ON b.k = s.k",
            "SELECT b.v, s.name FROM small s JOIN big b ON b.k = s.k",
            // The small side on the right of a left join: collected as the
            // left of the swapped (right) join.
            "SELECT b.v, s.name FROM big b LEFT JOIN small s ON b.k = s.k",
            "SELECT b.v FROM big b WHERE b.k IN (SELECT k FROM small)",
        ];
        for sql in broadcast {
            let (plan, rows) = run(&sentio, sql).await;
            assert!(
                plan.contains("SmallSideJoinExec: built in every task, HashJoinExec: mode=CollectLeft")
                    && !plan.contains("SortMergeJoin"),
                "{sql}\n{plan}"
            );
            assert_eq!(rows, run(&plain, sql).await.1, "{sql}");
            assert!(rows.lines().count() > 50, "{sql}\n{rows}");
        }
        let kept = [
            // Rows of the collected side would come from every task.
            "SELECT b.v, s.name FROM small s LEFT JOIN big b ON b.k = s.k",
            "SELECT b.v, s.name FROM big b FULL JOIN small s ON b.k = s.k",
            // Neither side is small.
            "SELECT x.v FROM big x JOIN big y ON x.v = y.v",
            // The small side is an aggregate: its own shuffle would make it
            // a stage again.
            "SELECT b.v FROM big b WHERE b.k IN (SELECT k FROM small GROUP BY k HAVING COUNT(*) >= 1)",
        ];
        for sql in kept {
            let (plan, rows) = run(&sentio, sql).await;
            assert!(plan.contains("SortMergeJoin"), "{sql}\n{plan}");
            assert_eq!(rows, run(&plain, sql).await.1, "{sql}");
        }
    }

    #[tokio::test]
    async fn a_small_side_of_several_files_is_read_as_one_partition() {
        let dir = tempfile::tempdir().unwrap();
        let (sentio, plain) = (session(dir.path(), true).await, session(dir.path(), false).await);
        let parts = dir.path().join("parts");
        std::fs::create_dir(&parts).unwrap();
        for (i, keys) in [[0, 1, 2], [3, 4, 5]].iter().enumerate() {
            let rows: String = keys.iter().map(|k| format!("{k},part{k}\n")).collect();
            std::fs::write(parts.join(format!("{i}.csv")), format!("k,name\n{rows}")).unwrap();
        }
        for ctx in [&sentio, &plain] {
            ctx.register_csv("parts", parts.to_str().unwrap(), CsvReadOptions::new()).await.unwrap();
        }
        let sql = "SELECT b.v, p.name FROM big b JOIN parts p ON b.k = p.k";
        let (plan, rows) = run(&sentio, sql).await;
        assert!(plan.contains("SmallSideJoinExec") && !plan.contains("CoalescePartitionsExec"), "{plan}");
        assert_eq!(rows, run(&plain, sql).await.1);
        assert!(rows.lines().count() > 400, "{rows}");
    }

    #[tokio::test]
    async fn the_join_travels_through_sentios_codec() {
        use datafusion_proto::physical_plan::AsExecutionPlan;
        use datafusion_proto::protobuf::PhysicalPlanNode;

        let dir = tempfile::tempdir().unwrap();
        let ctx = session(dir.path(), true).await;
        let sql = "SELECT b.v, s.name FROM big b LEFT JOIN small s ON b.k = s.k WHERE s.name <> 'name3'";
        let plan = ctx.sql(sql).await.unwrap().create_physical_plan().await.unwrap();
        let codec = crate::codec::SentioPhysicalCodec::default();
        let bytes = PhysicalPlanNode::try_from_physical_plan(Arc::clone(&plan), &codec).unwrap().encode_to_vec();
        let decoded = PhysicalPlanNode::decode(bytes.as_slice())
            .unwrap()
            .try_into_physical_plan(&ctx.task_ctx(), &codec)
            .unwrap();
        let shown = |p: &Arc<dyn ExecutionPlan>| displayable(p.as_ref()).indent(false).to_string();
        assert!(shown(&decoded).contains("SmallSideJoinExec"), "{}", shown(&decoded));
        assert_eq!(shown(&decoded), shown(&plan));
        let rows = |batches: Vec<datafusion::arrow::record_batch::RecordBatch>| {
            let mut rows: Vec<String> =
                pretty_format_batches(&batches).unwrap().to_string().lines().map(String::from).collect();
            rows.sort();
            rows
        };
        let got = rows(datafusion::physical_plan::collect(decoded, ctx.task_ctx()).await.unwrap());
        assert_eq!(got, rows(datafusion::physical_plan::collect(plan, ctx.task_ctx()).await.unwrap()));
        assert!(got.len() > 200, "{got:?}");
    }
}
