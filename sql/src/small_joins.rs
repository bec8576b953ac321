//! Joins with a small side of files broadcast that side — **not in any
//! session's rules for now** (`crate::session::physical_optimizer_rules`
//! says why: wrong answers after an executor loss on a cluster).
//!
//! Ballista makes sessions prefer sort-merge joins (they spill; DataFusion's
//! hash join does not), and the physical planner picks one for every equi-join
//! before any size is looked at. Joining the frames with the hand-written CSV
//! of a few kilobytes then shuffled all the frames by the join key and sorted
//! them, where broadcasting the CSV to the tasks that scan the frames needs no
//! shuffle of the big side at all.
//!
//! [`BroadcastSmallSides`] runs first among the physical optimizer rules, on
//! the plan as the planner made it: a sort-merge join one of whose inputs
//! reads only files, less than `datafusion.optimizer.repartition_file_min_size`
//! bytes in all (the size below which Sentio counts an input as small, as
//! [`crate::one_task`] does), and nothing that multiplies rows, becomes a hash
//! join that collects that side (built once per task from a small input, so
//! no spill is needed). The small side's file scans also get their size as an
//! estimate of their bytes where their format gives none (CSV, JSON), so that
//! DataFusion's join selection keeps the small side as the one collected and
//! Ballista's planner broadcasts it (it checks a side's size against
//! `ballista.optimizer.broadcast_join_threshold_bytes`). Join types whose
//! rows depend on the collected side (a left join collecting its left side)
//! are left as they are, and so is a join whose small side Ballista could not
//! size (an aggregate of a small file, say): Ballista's planner turns such a
//! collecting join back into a shuffled one with another number of output
//! partitions than the plan above it was made for — a `COPY` over it wrote
//! one partition of sixteen.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{JoinType, Statistics};
use datafusion::datasource::physical_plan::{FileScanConfig, FileScanConfigBuilder};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::joins::{
    CrossJoinExec, HashJoinExec, NestedLoopJoinExec, PartitionMode, SortMergeJoinExec, SymmetricHashJoinExec,
};
use datafusion::physical_plan::statistics::StatisticsContext;
use datafusion::physical_plan::unnest::UnnestExec;
use datafusion::physical_plan::{ExecutionPlan, StatisticsArgs};

/// The rule (see the module docs).
#[derive(Debug, Default)]
pub struct BroadcastSmallSides;

impl PhysicalOptimizerRule for BroadcastSmallSides {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        let below = config.optimizer.repartition_file_min_size as u64;
        if below == 0 || config.execution.target_partitions <= 1 {
            return Ok(plan);
        }
        plan.transform_up(|node| match node.downcast_ref::<SortMergeJoinExec>() {
            Some(join) => broadcast(join, below, ballista_threshold(config))
                .map(|b| b.map_or(Transformed::no(Arc::clone(&node)), Transformed::yes)),
            None => Ok(Transformed::no(node)),
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "broadcast_small_sides"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `join` as a hash join collecting its small side, when it has one that can
/// be collected and Ballista broadcasts (below `threshold` bytes by its
/// statistics); `None` otherwise.
fn broadcast(join: &SortMergeJoinExec, below: u64, threshold: usize) -> Result<Option<Arc<dyn ExecutionPlan>>> {
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
        (Arc::clone(join.left()), with_sizes(join.right())?)
    } else {
        (with_sizes(join.left())?, Arc::clone(join.right()))
    };
    if !sized_below(if swap { &right } else { &left }, threshold) {
        return Ok(None);
    }
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
    if swap { hash.swap_inputs(PartitionMode::CollectLeft).map(Some) } else { Ok(Some(Arc::new(hash))) }
}

/// Whether a join of `join_type` that collects its left side gives every row
/// from the tasks of its right side alone (Ballista's condition for
/// broadcasting the left side).
fn probe_driven(join_type: JoinType) -> bool {
    matches!(
        join_type,
        JoinType::Inner | JoinType::Right | JoinType::RightSemi | JoinType::RightAnti | JoinType::RightMark
    )
}

/// Ballista's `ballista.optimizer.broadcast_join_threshold_bytes` (its
/// default when the session has no Ballista settings).
fn ballista_threshold(config: &ConfigOptions) -> usize {
    let ballista = config.extensions.get::<ballista_core::config::BallistaConfig>();
    ballista.map_or_else(
        || ballista_core::config::BallistaConfig::default().broadcast_join_threshold_bytes(),
        |c| c.broadcast_join_threshold_bytes(),
    )
}

/// Whether `plan`'s statistics show it below `threshold` bytes: its byte
/// size, or else its rows at 32 bytes a column. Ballista's planner decides
/// by the same statistics whether to broadcast a collected side (with an
/// estimate per column of at most 32 bytes, so a side sized here is sized
/// there too) and shuffles it when they say nothing.
fn sized_below(plan: &Arc<dyn ExecutionPlan>, threshold: usize) -> bool {
    let Ok(stats) = StatisticsContext::new().compute(plan.as_ref(), &StatisticsArgs::new()) else {
        return false;
    };
    let bytes = match (stats.total_byte_size.get_value(), stats.num_rows.get_value()) {
        (Some(bytes), _) if *bytes != 0 => *bytes,
        (_, Some(rows)) if *rows != 0 => rows.saturating_mul(32 * plan.schema().fields().len().max(1)),
        _ => return false,
    };
    bytes < threshold
}

/// The bytes of the files `plan` reads, when it reads only files and
/// nothing in it multiplies rows (a join, an unnest).
fn file_bytes(plan: &Arc<dyn ExecutionPlan>) -> Option<u64> {
    let mut bytes = Some(0u64);
    let _ = plan.apply(|node| {
        let multiplies = node.is::<HashJoinExec>()
            || node.is::<SortMergeJoinExec>()
            || node.is::<CrossJoinExec>()
            || node.is::<NestedLoopJoinExec>()
            || node.is::<SymmetricHashJoinExec>()
            || node.is::<UnnestExec>();
        let found = match file_scan(node) {
            Some(scan) => Some(scanned_bytes(scan)),
            None if multiplies || node.children().is_empty() => None,
            None => Some(0),
        };
        bytes = bytes.zip(found).map(|(a, b)| a + b);
        Ok(if bytes.is_some() { TreeNodeRecursion::Continue } else { TreeNodeRecursion::Stop })
    });
    bytes
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

/// `plan` with each file scan that has no byte size estimated at the size of
/// its files.
fn with_sizes(plan: &Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    Arc::clone(plan)
        .transform_up(|node| {
            let Some(scan) = file_scan(&node) else {
                return Ok(Transformed::no(node));
            };
            let stats: Statistics = scan.statistics();
            if stats.total_byte_size.get_value().is_some() {
                return Ok(Transformed::no(node));
            }
            let bytes = usize::try_from(scanned_bytes(scan)).unwrap_or(usize::MAX);
            let stats = stats.with_total_byte_size(Precision::Inexact(bytes));
            let sized = FileScanConfigBuilder::from(scan.clone()).with_statistics(stats).build();
            Ok(Transformed::yes(DataSourceExec::from_data_source(sized) as Arc<dyn ExecutionPlan>))
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
            rules.insert(0, Arc::new(BroadcastSmallSides));
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
            "SELECT b.v FROM big b WHERE b.k NOT IN (SELECT k FROM small WHERE k IS NOT NULL)",
        ];
        for sql in broadcast {
            let (plan, rows) = run(&sentio, sql).await;
            assert!(
                plan.contains("HashJoinExec: mode=CollectLeft") && !plan.contains("SortMergeJoin"),
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
            // The small side is an aggregate: no statistics Ballista could
            // broadcast it by.
            "SELECT b.v FROM big b WHERE b.k IN (SELECT k FROM small GROUP BY k HAVING COUNT(*) >= 1)",
        ];
        for sql in kept {
            let (plan, rows) = run(&sentio, sql).await;
            assert!(plan.contains("SortMergeJoin"), "{sql}\n{plan}");
            assert_eq!(rows, run(&plain, sql).await.1, "{sql}");
        }
    }

    #[tokio::test]
    async fn the_collected_side_carries_its_files_size() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = session(dir.path(), true).await;
        let df = ctx.sql("SELECT b.v, s.name FROM big b JOIN small s ON b.k = s.k").await.unwrap();
        let plan = df.create_physical_plan().await.unwrap();
        let mut sizes = Vec::new();
        let _ = plan.apply(|node| {
            if let Some(scan) = file_scan(node) {
                sizes.push(scan.statistics().total_byte_size);
            }
            Ok(TreeNodeRecursion::Continue)
        });
        let small = std::fs::metadata(dir.path().join("small.csv")).unwrap().len() as usize;
        assert!(sizes.contains(&Precision::Inexact(small)), "{sizes:?}");
    }
}
