//! Stopping the long computations of a cancelled task.
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
