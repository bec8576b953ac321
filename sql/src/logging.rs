//! Log set-up shared by the `sentio` CLI and the cluster binaries.

use tracing_subscriber::EnvFilter;

/// Ballista's log lines that only repeat a failed job's error, which the
/// `sentio` CLI reports itself (an in-process scheduler's "Job failed: \[id\]",
/// its "Fail to find job … in the cache" after a job that failed while being
/// planned, and the client's "Job … failed: …"), and its warning that a
/// shuffle spilled, which the CLI's summary says as bytes spilled to disk.
pub const REPEATED_ERRORS: &str = "ballista_scheduler::scheduler_server::query_stage_scheduler=off,\
                                   ballista_scheduler::state::task_manager=error,\
                                   ballista_core::execution_plans::distributed_query=off,\
                                   ballista_core::execution_plans::sort_shuffle::writer=error";

/// Logs to stderr at `default_level` (a level or an `EnvFilter` directive
/// list), or as `RUST_LOG` says.
pub fn init(default_level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt().with_ansi(false).with_writer(std::io::stderr).with_env_filter(filter).try_init();
}
