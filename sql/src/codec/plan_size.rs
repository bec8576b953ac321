//! Plans too large for a cluster message.
//!
//! A statement's plan goes to the scheduler in one gRPC message, and the
//! scheduler accepts messages of up to 16 MiB (Ballista's default, which
//! Sentio's scheduler keeps). A plan over it makes the transport fail with a
//! bare "h2 protocol error". The usual cause is a huge
//! constant: DataFusion computes functions of constants while optimising,
//! so `SELECT unnest(range(1, 3000000))` sends a 3M-element list inside the
//! plan. [`oversized`] measures the plan that was sent, so the runner can
//! say so instead.

use ballista_core::extension::SessionConfigExt;
use ballista_scheduler::config::SchedulerConfig;
use datafusion::execution::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion_proto::logical_plan::AsLogicalPlan;
use datafusion_proto::protobuf::LogicalPlanNode;
use prost::Message;

use crate::size::human_bytes;

/// Whether `message` is what a broken or refused gRPC message looks like.
pub fn is_transport_failure(message: &str) -> bool {
    message.contains("h2 protocol error") || message.contains("message length too large")
}

/// Why `plan`, as `state` would send it to the scheduler, cannot be sent:
/// `Some` when its encoding is over the message limit.
pub fn oversized(state: &SessionState, plan: &LogicalPlan) -> Option<String> {
    let limit = SchedulerConfig::default().grpc_server_max_decoding_message_size as usize;
    let optimized = state.optimize(plan).ok()?;
    let codec = state.config().ballista_logical_extension_codec();
    let size = LogicalPlanNode::try_from_logical_plan(&optimized, codec.as_ref()).ok()?.encoded_len();
    (size > limit).then(|| {
        format!(
            "the statement's plan is {} once encoded, more than the {} the scheduler accepts in one \
             message. It holds a very large constant: a function of \
             constants, such as range(1, 3000000), is computed before the plan is sent. Generate the rows \
             with a table function instead (SELECT value FROM range(1, 3000000)) or read them from a table",
            human_bytes(size as u64),
            human_bytes(limit as u64)
        )
    })
}
