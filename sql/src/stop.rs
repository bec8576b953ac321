//! Stopping the work of a cancelled task on an executor.
//!
//! Ballista cancels a task by dropping the future that awaits it, but its
//! shuffle writers run the stage's plan in Tokio tasks of their own, which
//! outlive that future: a cancelled job went on reading its sources (the
//! operational DB among them), computing and writing shuffle files until its
//! input ran out (on Ballista 55, a cancelled count over a huge
//! `generate_series` kept an executor's cores busy for its hours of work).
//!
//! [`StoppingEngine`] wraps Ballista's execution engine. Each task gets a
//! [`TaskStop`], raised when the future that runs the task is dropped
//! (cancelled) or ends, and carried in the task's
//! [`TaskContext`] (a session config extension). Every leaf of the stage's
//! plan — the scans of files, of the operational DB, of shuffle output, and
//! generated rows — is wrapped in a [`StopExec`], whose stream ends with an
//! error as soon as the stop is raised, whether it is waiting for its input
//! or not; Sentio's own nodes that work after their input has ended (the
//! publishing of an operational-DB write) check [`TaskStop::check`] between
//! units of work. The stage under the shuffle writer is wrapped too, and
//! every poll of a `StopExec` puts the stop where Sentio's functions find it
//! ([`sentio_udfs::cancel`]): a model being fitted stops between trees or
//! iterations. A cancelled task's work thus stops at the next batch (an
//! operator already inside one long computation — a cross join's batch
//! against the whole other side — finishes that computation first).
//!
//! [`StopExec`] reports no metrics, so the metrics the executor sends the
//! scheduler (one set per plan node that has some) line up with the
//! scheduler's plan, which has no such nodes. It never travels: it is added
//! on the executor, after the plan was decoded.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ballista_core::JobId;
use ballista_core::serde::protobuf::{RuntimeStatsReport, ShuffleWritePartition, TaskColumnStats, WindowStateReport};
use ballista_executor::execution_engine::{ExecutionEngine, QueryStageExecutor};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::metrics::MetricsSet;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, ReplaceChildrenOptions,
};
use datafusion::prelude::SessionConfig;
use futures::{FutureExt, Stream};
use sentio_udfs::cancel::{TaskStop, stopped};

use crate::job_watch::JobWatch;
use tokio_util::sync::WaitForCancellationFutureOwned;

/// Ballista's execution engine, with every task's work stopped when the
/// task is (see the module docs).
pub struct StoppingEngine {
    inner: Arc<dyn ExecutionEngine>,
    watch: Option<JobWatch>,
}

impl StoppingEngine {
    /// Wraps `inner` (Ballista's `DefaultExecutionEngine`).
    pub fn new(inner: Arc<dyn ExecutionEngine>) -> Self {
        Self { inner, watch: None }
    }

    /// Also stops each task whose job the scheduler no longer runs
    /// ([`crate::job_watch`]): for executors that run apart from their
    /// scheduler.
    pub fn watching_jobs(self, watch: JobWatch) -> Self {
        Self { watch: Some(watch), ..self }
    }
}

impl ExecutionEngine for StoppingEngine {
    fn create_query_stage_exec(
        &self,
        job_id: JobId,
        stage_id: usize,
        task_id: usize,
        global_output_partition_ids: Vec<usize>,
        plan: Arc<dyn ExecutionPlan>,
        work_dir: &str,
        config: &SessionConfig,
    ) -> Result<Arc<dyn QueryStageExecutor>> {
        let plan = wrap_stage(plan)?;
        let inner = self.inner.create_query_stage_exec(
            job_id.clone(),
            stage_id,
            task_id,
            global_output_partition_ids,
            plan,
            work_dir,
            config,
        )?;
        Ok(Arc::new(StoppingStage { inner, job: Arc::from(job_id.as_str()), watch: self.watch.clone() }))
    }
}

/// A task's plan (a shuffle writer over the stage) with a [`StopExec`] over
/// each leaf and over the stage itself, under the writer: the work of
/// functions that run while the stage is polled ([`sentio_udfs::cancel`]:
/// fitting a model) then sees the task's stop.
fn wrap_stage(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    let plan = wrap_leaves(plan)?;
    let unwrapped = |c: &&Arc<dyn ExecutionPlan>| c.downcast_ref::<StopExec>().is_none();
    if !plan.children().iter().any(unwrapped) {
        return Ok(plan);
    }
    let wrapped = plan.children().into_iter().map(|c| stop_over(Arc::clone(c))).collect();
    plan.replace_children(wrapped, ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute))
}

/// `node` under a [`StopExec`], unless it is one.
fn stop_over(node: Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
    if node.downcast_ref::<StopExec>().is_some() { node } else { Arc::new(StopExec::new(node)) }
}

/// `plan` with a [`StopExec`] over each leaf that has none yet.
fn wrap_leaves(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_down(|node| {
        Ok(if node.downcast_ref::<StopExec>().is_some() {
            Transformed::new(node, false, TreeNodeRecursion::Jump)
        } else if node.children().is_empty() {
            Transformed::new(stop_over(node), true, TreeNodeRecursion::Jump)
        } else {
            Transformed::no(node)
        })
    })
    .map(|t| t.data)
}

/// A query stage whose task raises its [`TaskStop`] when it ends or is
/// dropped.
#[derive(Debug)]
struct StoppingStage {
    inner: Arc<dyn QueryStageExecutor>,
    job: Arc<str>,
    watch: Option<JobWatch>,
}

impl fmt::Display for StoppingStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

/// Raises the stop when dropped.
struct RaiseOnDrop(TaskStop);

impl Drop for RaiseOnDrop {
    fn drop(&mut self) {
        self.0.raise();
    }
}

#[async_trait::async_trait]
impl QueryStageExecutor for StoppingStage {
    async fn execute_query_stage(
        &self,
        task_id: usize,
        context: Arc<TaskContext>,
    ) -> Result<Vec<ShuffleWritePartition>> {
        let stop = TaskStop::for_job(Arc::clone(&self.job));
        let _raise = RaiseOnDrop(stop.clone());
        if let Some(watch) = &self.watch {
            tokio::spawn(watch.clone().watch(Arc::clone(&self.job), stop.clone()));
        }
        let config = context.session_config().clone().with_extension(Arc::new(stop));
        let context = Arc::new(TaskContext::new(
            context.task_id(),
            context.session_id(),
            config,
            context.scalar_functions().clone(),
            context.higher_order_functions().clone(),
            context.aggregate_functions().clone(),
            context.window_functions().clone(),
            context.runtime_env(),
        ));
        self.inner.execute_query_stage(task_id, context).await.map_err(crate::task_error::for_scheduler)
    }

    fn collect_plan_metrics(&self) -> Vec<MetricsSet> {
        self.inner.collect_plan_metrics()
    }

    fn collect_runtime_stats_reports(&self) -> Vec<RuntimeStatsReport> {
        self.inner.collect_runtime_stats_reports()
    }

    fn collect_window_state_reports(&self) -> Result<Vec<WindowStateReport>> {
        self.inner.collect_window_state_reports()
    }

    fn collect_column_stats(&self) -> Vec<TaskColumnStats> {
        self.inner.collect_column_stats()
    }
}

/// Passes its input's batches through until the task's [`TaskStop`] is
/// raised, then ends with an error (and drops the input's stream).
#[derive(Debug)]
pub struct StopExec {
    input: Arc<dyn ExecutionPlan>,
}

impl StopExec {
    /// Wraps `input`.
    pub fn new(input: Arc<dyn ExecutionPlan>) -> Self {
        Self { input }
    }
}

impl DisplayAs for StopExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "StopExec")
    }
}

impl ExecutionPlan for StopExec {
    fn name(&self) -> &'static str {
        "StopExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = children.pop().ok_or_else(|| DataFusionError::Internal("StopExec needs an input".into()))?;
        Ok(Arc::new(Self::new(input)))
    }

    #[allow(deprecated)]
    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(children, ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let stop = TaskStop::of(&context);
        stop.check()?;
        crate::scanned::note(&self.input, partition);
        let input = self.input.execute(partition, context)?;
        Ok(Box::pin(StopStream { schema: input.schema(), input: Some(input), stopped: Box::pin(stop.raised()), stop }))
    }
}

struct StopStream {
    schema: SchemaRef,
    /// `None` once stopped (the input's stream is dropped then) or ended.
    input: Option<SendableRecordBatchStream>,
    stop: TaskStop,
    /// Wakes the stream when the stop is raised while its input waits.
    stopped: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl Stream for StopStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.input.is_none() {
            return Poll::Ready(None);
        }
        let next = if self.stop.is_stopped() {
            Poll::Ready(Some(Err(stopped())))
        } else {
            let stop = self.stop.clone();
            match self.input.as_mut().map(|i| stop.scope(|| i.as_mut().poll_next(cx))) {
                Some(Poll::Pending) if self.stopped.poll_unpin(cx).is_ready() => Poll::Ready(Some(Err(stopped()))),
                Some(next) => next,
                None => Poll::Ready(None),
            }
        };
        if matches!(next, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            self.input = None;
        }
        next
    }
}

impl RecordBatchStream for StopStream {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
    use datafusion::physical_plan::test::exec::MockExec;
    use futures::StreamExt;

    use super::*;

    fn context(stop: &TaskStop) -> Arc<TaskContext> {
        let config = SessionConfig::new().with_extension(Arc::new(stop.clone()));
        Arc::new(TaskContext::default().with_session_config(config))
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]))
    }

    fn batch() -> RecordBatch {
        RecordBatch::try_new(schema(), vec![Arc::new(Int64Array::from(vec![1, 2, 3]))]).unwrap()
    }

    /// A stream that yields batches without end, or waits without end.
    fn endless(pending: bool) -> SendableRecordBatchStream {
        let s = if pending {
            futures::stream::pending().boxed()
        } else {
            futures::stream::repeat_with(|| Ok(batch())).boxed()
        };
        Box::pin(RecordBatchStreamAdapter::new(schema(), s))
    }

    fn stopping(stop: &TaskStop, pending: bool) -> SendableRecordBatchStream {
        Box::pin(StopStream {
            schema: schema(),
            input: Some(endless(pending)),
            stop: stop.clone(),
            stopped: Box::pin(stop.raised()),
        })
    }

    #[tokio::test]
    async fn a_raised_stop_ends_a_busy_stream_with_an_error() {
        let stop = TaskStop::default();
        let mut s = stopping(&stop, false);
        assert_eq!(s.next().await.unwrap().unwrap().num_rows(), 3);
        stop.raise();
        let err = s.next().await.unwrap().unwrap_err();
        assert!(err.to_string().contains("cancelled"), "{err}");
        assert!(s.next().await.is_none());
    }

    #[tokio::test]
    async fn a_raised_stop_wakes_a_waiting_stream() {
        let stop = TaskStop::default();
        let mut s = stopping(&stop, true);
        let raiser = {
            let stop = stop.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                stop.raise();
            })
        };
        let next = tokio::time::timeout(Duration::from_secs(5), s.next()).await.expect("woken by the stop");
        assert!(next.unwrap().is_err());
        raiser.await.unwrap();
    }

    #[tokio::test]
    async fn leaves_are_wrapped_once_and_metrics_are_untouched() {
        let leaf: Arc<dyn ExecutionPlan> = Arc::new(MockExec::new(vec![Ok(batch())], schema()));
        let plan = datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec::new(leaf);
        let wrapped = wrap_leaves(wrap_leaves(Arc::new(plan)).unwrap()).unwrap();
        let text = datafusion::physical_plan::displayable(wrapped.as_ref()).indent(false).to_string();
        assert_eq!(text.matches("StopExec").count(), 1, "{text}");
        assert!(wrapped.children()[0].metrics().is_none());

        let stop = TaskStop::default();
        let rows: usize = datafusion::physical_plan::collect(Arc::clone(&wrapped), context(&stop))
            .await
            .unwrap()
            .iter()
            .map(RecordBatch::num_rows)
            .sum();
        assert_eq!(rows, 3);
        stop.raise();
        let err = datafusion::physical_plan::collect(wrapped, context(&stop)).await.unwrap_err();
        assert!(err.to_string().contains("cancelled"), "{err}");
    }
}
