//! The `sentio` command line (see `sentio --help`).

use clap::Parser;

fn main() -> std::process::ExitCode {
    sentio_sql::logging::init(&format!("warn,{}", sentio_sql::logging::REPEATED_ERRORS));
    let cli = sentio_cli::args::Cli::parse();
    let runtime = match sentio_sql::runtime::build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let (code, failed) = match runtime.block_on(sentio_cli::commands::run(cli)) {
        Ok(()) => (std::process::ExitCode::SUCCESS, false),
        Err(e) => {
            eprintln!("error: {e}");
            (std::process::ExitCode::from(e.exit_code()), true)
        }
    };
    // A cancelled statement's tasks may still be winding down: stop them
    // before the in-process cluster's shuffle folder is removed for good.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    sentio_sql::standalone::remove_work_dirs(failed);
    code
}
