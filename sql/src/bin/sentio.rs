//! The `sentio` command line (see `sentio --help`).

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    sentio_sql::logging::init("warn");
    let cli = sentio_sql::cli::Cli::parse();
    match sentio_sql::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
