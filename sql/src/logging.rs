//! Log set-up shared by the `sentio` CLI and the cluster binaries.

use tracing_subscriber::EnvFilter;

/// Logs to stderr at `default_level`, or as `RUST_LOG` says.
pub fn init(default_level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .try_init();
}
