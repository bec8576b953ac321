//! [`SmallSideJoinExec`]: a hash join whose small side is built inside every
//! task of its probe side, and how it travels between processes.
//!
//! Ballista's planner turns every `HashJoinExec` that collects its left side
//! (`PartitionMode::CollectLeft`) into a broadcast: the left side becomes a
//! stage of its own whose output every probe task fetches. That stage is what
//! made such joins wrong after an executor loss: when the executor holding the
//! build stage's output dies while the probe stage runs, Ballista 55 rolls the
//! probe stage back and runs all of its tasks again, but the shuffle output
//! its earlier attempt had already handed to the next stage stays listed
//! there, so those rows are counted twice (~12 % too many on the test
//! cluster).
//!
//! This node holds such a join and is not a `HashJoinExec` to Ballista's
//! planner, and its only input is the big (probe) side: the small side is
//! part of the node, out of reach of the optimizer rules that would spread
//! it over partitions and of Ballista's planner, which would make it a stage.
//! Each task that probes reads it whole (a few kilobytes of files), builds
//! the hash table and probes its share of the big side. The stage then has
//! no input stage to lose, and an executor lost mid-stage only re-runs its
//! own tasks. Being out of sight, the small side is also left out of what a
//! job reports it scanned and out of [`crate::stop`]'s per-leaf checks: a
//! few kilobytes, read before the first batch of the big side.
//!
//! Between processes the node is a Sentio envelope holding the join encoded
//! by DataFusion — the small side whole, the big side as an empty input of
//! the same schema; the big side travels as the extension node's input.

use std::fmt;
use std::sync::Arc;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{Distribution, OrderingRequirements, PhysicalExpr};
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::metrics::MetricsSet;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, InputDistributionRequirements, PlanProperties,
    ReplaceChildrenOptions, displayable,
};
use datafusion_proto::physical_plan::{
    PhysicalExtensionCodec, PhysicalPlanDecodeContext, PhysicalProtoConverterExtension,
};
use datafusion_proto::protobuf::PhysicalPlanNode;
use prost::Message;

/// The envelope kind of a [`SmallSideJoinExec`].
pub const KIND: &str = "small_side_join";

/// A `HashJoinExec` in `CollectLeft` mode whose left (small) side is built
/// in every task that probes it (see the module docs). It runs and reports
/// metrics as the join it holds; its one input is the join's right side.
#[derive(Debug)]
pub struct SmallSideJoinExec {
    join: Arc<dyn ExecutionPlan>,
}

impl SmallSideJoinExec {
    /// Wraps `join`, which must collect a left side of one partition.
    pub fn try_new(join: Arc<dyn ExecutionPlan>) -> Result<Self> {
        let Some(hash) = join.downcast_ref::<HashJoinExec>() else {
            return Err(DataFusionError::Internal(format!(
                "SmallSideJoinExec holds a HashJoinExec, not {}",
                join.name()
            )));
        };
        let left_partitions = hash.left().properties().output_partitioning().partition_count();
        if *hash.partition_mode() != PartitionMode::CollectLeft || left_partitions != 1 {
            return Err(DataFusionError::Internal(format!(
                "SmallSideJoinExec needs a CollectLeft join of a one-partition left side, not {:?} of {left_partitions}",
                hash.partition_mode()
            )));
        }
        Ok(Self { join })
    }

    /// What the join asks of its big side, this node's only input.
    fn big_side_distribution(&self) -> Distribution {
        #[allow(deprecated)]
        let mut each = self.join.required_input_distribution();
        each.pop().unwrap_or(Distribution::UnspecifiedDistribution)
    }

    /// The small side, built in every task.
    fn small(&self) -> &Arc<dyn ExecutionPlan> {
        self.join.children()[0]
    }

    /// The node's payload: the join with its small side and an empty big
    /// side, encoded by `converter`.
    pub fn encode(
        &self,
        codec: &dyn PhysicalExtensionCodec,
        converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Vec<u8>> {
        let big = Arc::new(EmptyExec::new(self.join.children()[1].schema())) as Arc<dyn ExecutionPlan>;
        let shell = Arc::clone(&self.join).replace_children(vec![Arc::clone(self.small()), big], recompute())?;
        Ok(converter.execution_plan_to_proto(&shell, codec)?.encode_to_vec())
    }

    /// The node that [`Self::encode`] wrote, probing `inputs` (its big side).
    pub fn decode(
        payload: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        codec: &dyn PhysicalExtensionCodec,
        converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Self> {
        let node = PhysicalPlanNode::decode(payload)
            .map_err(|e| DataFusionError::Internal(format!("corrupt Sentio plan node '{KIND}': {e}")))?;
        let shell = converter.proto_to_execution_plan(&node, &PhysicalPlanDecodeContext::new(ctx, codec))?;
        let [big] = inputs else {
            return Err(DataFusionError::Internal(format!("'{KIND}' needs 1 input, got {}", inputs.len())));
        };
        let small = match shell.children().first() {
            Some(small) => Arc::clone(small),
            None => return Err(DataFusionError::Internal(format!("'{KIND}' holds no join"))),
        };
        Self::try_new(shell.replace_children(vec![small, Arc::clone(big)], recompute())?)
    }
}

/// Options that recompute a node's properties from its new children.
fn recompute() -> ReplaceChildrenOptions {
    ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute)
}

impl DisplayAs for SmallSideJoinExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "SmallSideJoinExec: built in every task, ")?;
        if let Some(hash) = self.join.downcast_ref::<HashJoinExec>() {
            hash.fmt_as(t, f)?;
        }
        // The small side is no input of this node: shown here, node by node.
        let mut nodes = Vec::new();
        let _ = self.small().apply(|node| {
            nodes.push(displayable(node.as_ref()).one_line().to_string().trim_end().to_string());
            Ok(TreeNodeRecursion::Continue)
        });
        write!(f, ", small side=[{}]", nodes.join(" <- "))
    }
}

impl ExecutionPlan for SmallSideJoinExec {
    fn name(&self) -> &'static str {
        "SmallSideJoinExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.join.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![self.join.children()[1]]
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![self.big_side_distribution()]
    }

    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        InputDistributionRequirements::new(vec![self.big_side_distribution()])
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        self.join.required_input_ordering().pop().into_iter().collect()
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        self.join.maintains_input_order().pop().into_iter().collect()
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        self.join.benefits_from_input_partitioning().pop().into_iter().collect()
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        self.join.apply_expressions(f)
    }

    fn replace_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
        options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let (Some(big), true) = (children.pop(), children.is_empty()) else {
            return Err(DataFusionError::Internal("SmallSideJoinExec has one input".into()));
        };
        let join = Arc::clone(&self.join).replace_children(vec![Arc::clone(self.small()), big], options)?;
        Ok(Arc::new(Self::try_new(join)?))
    }

    #[allow(deprecated)]
    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(children, recompute())
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        self.join.execute(partition, context)
    }

    fn metrics(&self) -> Option<MetricsSet> {
        self.join.metrics()
    }
}
