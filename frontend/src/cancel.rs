//! A statement's cluster job, cancelled when its call ends before the
//! statement does: the client hung up, timed out or was interrupted.

use std::sync::Arc;

use datafusion::physical_plan::ExecutionPlan;
use sentio_sql::jobs;

/// Finds the running plan of a statement, when it has one.
type RunningPlan = Box<dyn Fn() -> Option<Arc<dyn ExecutionPlan>> + Send + Sync>;

/// Cancels the cluster job of a statement when dropped, unless
/// [`CancelOnDrop::finished`] was called first.
pub struct CancelOnDrop {
    scheduler: String,
    running: RunningPlan,
    finished: bool,
}

impl CancelOnDrop {
    /// Watches the job of whatever plan `running` names, on the scheduler
    /// whose gRPC URL is `scheduler`.
    pub fn new(scheduler: &str, running: RunningPlan) -> Self {
        Self { scheduler: scheduler.to_string(), running, finished: false }
    }

    /// The statement ran to its end: nothing to cancel.
    pub fn finished(mut self) {
        self.finished = true;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let Some(job) = (self.running)().as_ref().and_then(jobs::job_of) else { return };
        let scheduler = self.scheduler.clone();
        // Drop cannot wait: the cancel is sent from a task of its own.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let cancelled = jobs::cancel_job(&scheduler, &job).await;
                log::info!("the client left before job {job} ended; cancelled: {cancelled}");
            });
        }
    }
}
