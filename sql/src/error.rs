//! Errors at the boundary of the `sentio-sql` library.

use datafusion::error::DataFusionError;

/// Result type of the `sentio-sql` library.
pub type Result<T, E = SentioError> = std::result::Result<T, E>;

/// Everything that can go wrong in Sentio's engine.
#[derive(Debug, thiserror::Error)]
pub enum SentioError {
    /// A configuration value is missing or malformed.
    #[error("configuration: {0}")]
    Config(String),

    /// The configuration could not be read.
    #[error(transparent)]
    Configuration(#[from] crate::config::ConfigError),

    /// An error of the `opdb` catalog.
    #[error(transparent)]
    Opdb(#[from] sentio_opdb::OpdbError),

    /// The scheduler could not be reached.
    #[error(
        "cannot reach the Sentio scheduler at {url}: {message}\n  \
         (is sentio-scheduler running there? check --scheduler / SENTIO_SCHEDULER)"
    )]
    SchedulerUnreachable {
        /// The scheduler URL as given.
        url: String,
        /// What went wrong.
        message: String,
    },

    /// The standalone (in-process) scheduler and executor could not start.
    #[error(
        "cannot start the in-process cluster: {0} (it needs loopback ports and a writable temporary \
         folder, TMPDIR; or run on a cluster with --scheduler df://HOST:PORT)"
    )]
    Standalone(String),

    /// Ballista's scheduler could not be set up (its configuration or its
    /// cluster state).
    #[error("the scheduler cannot start: {0}")]
    Scheduler(String),

    /// The lake could not be read.
    #[error(transparent)]
    Lake(#[from] crate::lake::LakeError),

    /// An error of the machine-learning layer.
    #[error(transparent)]
    Ml(#[from] crate::ml::MlError),

    /// An error of the `extracts` catalog.
    #[error(transparent)]
    Extract(#[from] crate::extract::ExtractError),

    /// An error from DataFusion or Ballista (a cluster task's said
    /// plainly, [`crate::task_error`]).
    #[error("{}", crate::task_error::describe(.0))]
    DataFusion(#[from] DataFusionError),

    /// A statement's parameter values do not fit it.
    #[error("parameters: {0}")]
    Parameters(String),

    /// The session may not run this statement ([`crate::statement::Access`]).
    #[error("{0} is not allowed in a session that may only run queries")]
    NotPermitted(String),

    /// An I/O error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
