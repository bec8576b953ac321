//! The `sentio` command's errors: the engine's ([`SentioError`]) plus what
//! only a command line has — a script's failing line, a timeout, a signal.

use sentio_sql::SentioError;

/// Result type of the `sentio` command.
pub type Result<T, E = CliError> = std::result::Result<T, E>;

/// Everything that can end a `sentio` command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// An error of the engine (configuration, lake, operational DB, ML,
    /// DataFusion, …).
    #[error(transparent)]
    Engine(#[from] SentioError),

    /// The command was given something it cannot use.
    #[error("{0}")]
    Usage(String),

    /// The front end (`--scheduler grpc://…`) refused or failed a call; its
    /// message as the server gave it.
    #[error("{0}")]
    FrontEnd(String),

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

    /// The scheduler stopped knowing the statement's job: it restarted, and
    /// Ballista's scheduler keeps its jobs in memory.
    #[error(
        "the cluster's scheduler no longer knows job {job} (it restarted and lost the jobs it ran); \
         run the statement again"
    )]
    JobLost {
        /// The job.
        job: String,
    },

    /// A signal (Ctrl-C, `SIGTERM`) stopped the statement or the command.
    #[error("interrupted by {}{}", signal.name(), job.as_deref().map(|j| format!(" ({j})")).unwrap_or_default())]
    Interrupted {
        /// The signal.
        signal: crate::interrupt::Signal,
        /// What happened to the cluster job of the statement it stopped.
        job: Option<String>,
    },
}

impl CliError {
    /// The exit status of a command that ends with this error: 1, or
    /// 128 + the signal's number for [`CliError::Interrupted`].
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Interrupted { signal, .. } => signal.exit_code(),
            _ => 1,
        }
    }
}

/// Errors that reach the command through the engine's.
macro_rules! through_engine {
    ($($t:ty),* $(,)?) => {$(
        impl From<$t> for CliError {
            fn from(e: $t) -> Self {
                CliError::Engine(e.into())
            }
        }
    )*};
}

through_engine!(
    datafusion::error::DataFusionError,
    sentio_sql::ml::MlError,
    sentio_sql::extract::ExtractError,
    sentio_sql::lake::LakeError,
    sentio_sql::config::ConfigError,
    sentio_opdb::OpdbError,
    std::io::Error,
);
