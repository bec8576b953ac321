//! The `sentio` command: a thin client of Sentio's engine ([`sentio_sql`]),
//! plus the sample data and reports.
//!
//! * [`args`] — the flags and subcommands, and the configuration they make;
//! * [`commands`] — what each subcommand does;
//! * [`runner`] — runs statements and scripts: results, a live progress
//!   line, a summary of what crossed the network, `--timeout`;
//! * [`remote`] — the Flight SQL connection to the front end
//!   (`--scheduler grpc://…`), over sockets that count every byte received
//!   (`counted`);
//! * [`script`] — splits SQL scripts into statements with line numbers;
//! * [`procedural`] — `DECLARE`, `SET`, `IF`, `ASSERT` in scripts;
//! * [`repl`] — the interactive prompt;
//! * [`interrupt`] — Ctrl-C, `SIGTERM` and `SIGHUP` as cancelled statements;
//! * [`output`] — results as a table, CSV or JSON;
//! * [`datagen`] — the deterministic sample lake and operational DB;
//! * [`report`] — models as an HTML page with SVG charts;
//! * [`auth`] — entries for the front end's users file (`sentio auth`);
//! * [`error`] — the command's errors and exit codes.
//!
//! Nothing here runs on the cluster: `sentio-scheduler` and `sentio-executor`
//! do not link this crate.

pub mod args;
pub mod auth;
pub mod commands;
mod counted;
pub mod datagen;
pub mod error;
pub mod interrupt;
pub mod output;
pub mod procedural;
pub mod remote;
pub mod repl;
pub mod report;
pub mod runner;
pub mod script;

pub use error::{CliError, Result};
