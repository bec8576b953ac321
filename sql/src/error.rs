//! Errors at the boundary of the `sentio-sql` library.

use std::path::PathBuf;

use datafusion::error::DataFusionError;

/// Result type of the `sentio-sql` library.
pub type Result<T, E = SentioError> = std::result::Result<T, E>;

/// Everything that can go wrong in Sentio's analyst-facing layer.
#[derive(Debug, thiserror::Error)]
pub enum SentioError {
    /// A configuration value is missing or malformed.
    #[error("configuration: {0}")]
    Config(String),

    /// The configuration file could not be read or parsed.
    #[error("cannot read configuration file {path}: {message}")]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },

    /// The lake could not be read or written.
    #[error("lake {url}: {message}")]
    Lake {
        /// The lake (or part of it) concerned.
        url: String,
        /// What went wrong.
        message: String,
    },

    /// The operational database could not be reached or written.
    #[error("operational DB: {0}")]
    OpDb(String),

    /// An error of the `opdb` catalog.
    #[error(transparent)]
    Opdb(#[from] crate::opdb::OpdbError),

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

    /// `sentio report` could not make its page.
    #[error("report: {0}")]
    Report(String),

    /// A statement of a script failed.
    #[error("{source_name}:{line}: {message}")]
    Statement {
        /// File name, or `<command line>`.
        source_name: String,
        /// 1-based line where the failing statement starts (or the error is).
        line: usize,
        /// What went wrong.
        message: String,
    },

    /// A statement ran longer than its timeout.
    #[error("statement timed out after {seconds} s{}", job.as_deref().map(|j| format!(" ({j})")).unwrap_or_default())]
    Timeout {
        /// The limit.
        seconds: f64,
        /// What happened to the cluster job.
        job: Option<String>,
    },

    /// A signal (Ctrl-C, `SIGTERM`) stopped the statement or the command.
    #[error("interrupted by {}{}", signal.name(), job.as_deref().map(|j| format!(" ({j})")).unwrap_or_default())]
    Interrupted {
        /// The signal.
        signal: crate::interrupt::Signal,
        /// What happened to the cluster job of the statement it stopped.
        job: Option<String>,
    },

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

    /// An I/O error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl SentioError {
    /// The exit status of a command that ends with this error: 1, or
    /// 128 + the signal's number for [`SentioError::Interrupted`].
    pub fn exit_code(&self) -> u8 {
        match self {
            SentioError::Interrupted { signal, .. } => signal.exit_code(),
            _ => 1,
        }
    }

    /// A lake error about `url`.
    pub fn lake(url: impl Into<String>, message: impl ToString) -> Self {
        SentioError::Lake {
            url: url.into(),
            message: message.to_string(),
        }
    }
}

impl From<sqlx::Error> for SentioError {
    fn from(e: sqlx::Error) -> Self {
        SentioError::OpDb(e.to_string())
    }
}
