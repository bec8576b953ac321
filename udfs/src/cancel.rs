//! Stopping the work of a cancelled task.
//!
//! [`TaskStop`] is one task's stop signal: the executor (`sentio_sql::stop`)
//! gives each task one, in its [`TaskContext`], and raises it when the task is
//! cancelled; plan nodes that work after their input has ended (the publish of
//! an operational-DB write, in `sentio_opdb`) check it between units of work.
//!
//! A function's heavy work — fitting a model in `sentio_train`'s final step
//! — runs inside the poll of a plan node and cannot see the task it belongs
//! to. The executor (`sentio_sql::stop`) puts the task's stop flag in
//! [`scope`] for the duration of each poll of the task's stage; long loops
//! ask [`cancelled`] between units of work (trees, iterations) and give up.
//! Outside a scope (a local query, the client) nothing is ever cancelled.
//! The computation runs in [`long`], so that the executor keeps a thread to
//! process the cancellation on while it computes.
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicBool, Ordering};
//!
//! let flag = Arc::new(AtomicBool::new(false));
//! assert!(!sentio_udfs::cancel::cancelled());
//! sentio_udfs::cancel::scope(&flag, || {
//!     assert!(!sentio_udfs::cancel::cancelled());
//!     flag.store(true, Ordering::Relaxed);
//!     assert!(sentio_udfs::cancel::cancelled());
//! });
//! assert!(!sentio_udfs::cancel::cancelled());
//! ```

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// The stop signal of one task, found in its [`TaskContext`].
///
/// ```
/// use datafusion::execution::TaskContext;
/// use sentio_udfs::cancel::TaskStop;
///
/// // Outside a cluster task (a local query) there is none, and it never stops.
/// let ctx = TaskContext::default();
/// assert!(TaskStop::of(&ctx).check().is_ok());
/// ```
#[derive(Debug, Clone, Default)]
pub struct TaskStop {
    token: CancellationToken,
    /// The same, for code that cannot see the task ([`cancelled`]).
    flag: Arc<AtomicBool>,
    /// The cluster job the task belongs to, whose cancellation raises the
    /// stop (none outside a cluster task).
    job: Option<Arc<str>>,
}

impl TaskStop {
    /// A stop, not raised yet, for a task of the cluster job `job`.
    pub fn for_job(job: Arc<str>) -> TaskStop {
        TaskStop { job: Some(job), ..TaskStop::default() }
    }

    /// The stop of the task that `ctx` belongs to; one that is never raised
    /// if `ctx` has none.
    pub fn of(ctx: &TaskContext) -> TaskStop {
        ctx.session_config().get_extension::<TaskStop>().map(|s| (*s).clone()).unwrap_or_default()
    }

    /// The cluster job of the task, if it runs in one: an operational-DB
    /// write records it so that a client that cancelled the job can settle
    /// whether the write landed (`sentio_opdb::settle`).
    pub fn job(&self) -> Option<&str> {
        self.job.as_deref()
    }

    /// Whether the task was stopped.
    pub fn is_stopped(&self) -> bool {
        self.token.is_cancelled()
    }

    /// An error once the task was stopped: call between units of work.
    pub fn check(&self) -> Result<()> {
        if self.is_stopped() { Err(stopped()) } else { Ok(()) }
    }

    /// Raises the stop (the task was cancelled, or has ended).
    pub fn raise(&self) {
        self.flag.store(true, Ordering::Relaxed);
        self.token.cancel();
    }

    /// A future that completes when the stop is raised.
    pub fn raised(&self) -> WaitForCancellationFutureOwned {
        self.token.clone().cancelled_owned()
    }

    /// Runs `f` with this stop as the current task's on this thread
    /// ([`scope`]).
    pub fn scope<R>(&self, f: impl FnOnce() -> R) -> R {
        scope(&self.flag, f)
    }
}

/// The error of work that stopped because its task was cancelled.
pub fn stopped() -> DataFusionError {
    DataFusionError::Execution("the task was cancelled".into())
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
}

/// Runs `f` with `flag` as the current task's stop flag on this thread.
pub fn scope<R>(flag: &Arc<AtomicBool>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Arc<AtomicBool>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            CURRENT.with(|c| *c.borrow_mut() = previous);
        }
    }
    let _restore = Restore(CURRENT.with(|c| c.replace(Some(Arc::clone(flag)))));
    f()
}

/// Whether the task whose work runs on this thread was cancelled.
pub fn cancelled() -> bool {
    CURRENT.with(|c| c.borrow().as_ref().is_some_and(|f| f.load(Ordering::Relaxed)))
}

/// Runs `f`, a computation of seconds or more, so that the Tokio runtime
/// it runs on (on a multi-threaded one) hands this thread's other tasks to
/// another thread meanwhile. An executor's task threads would otherwise all
/// be inside fits, and the cancellation of their tasks — which raises the
/// flag [`cancelled`] reads — would wait for a thread until the fits end.
pub fn long<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}
