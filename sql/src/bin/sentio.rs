//! The `sentio` command line (see `sentio --help`).

use clap::Parser;

fn main() -> std::process::ExitCode {
    sentio_sql::logging::init("warn");
    let cli = sentio_sql::cli::Cli::parse();
    let runtime = match sentio_sql::runtime::build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(sentio_sql::cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::from(e.exit_code())
        }
    }
}
