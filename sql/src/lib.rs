//! Sentio's analyst-facing layer: everything between an analyst's SQL and the
//! Ballista cluster.
//!
//! * [`session`] puts a session together — one function set that the CLI
//!   client, `sentio-scheduler` and `sentio-executor` all call;
//! * [`config`] reads flags, environment and `sentio.toml`;
//! * [`lake`] registers the `training` and `adhoc` catalogs from the lake;
//! * [`opdb`] is the operational DB as the `opdb` catalog: pushdown reads,
//!   atomic batched writes;
//! * [`extract`] keeps Parquet extracts of operational tables in the lake,
//!   refreshed with only what changed (`extracts.*`);
//! * [`codec`] carries Sentio's plan nodes across the cluster, delegating the
//!   rest to Ballista's codecs;
//! * [`stop`] stops a cancelled task's work on an executor;
//! * [`task_error`] carries a failed task's error to the analyst in plain words;
//! * [`object_store`] resolves `s3://` and local paths per process;
//! * [`script`] splits SQL scripts into statements with line numbers;
//! * [`runner`] runs statements, shows progress and what crossed the network;
//! * [`interrupt`] turns Ctrl-C, `SIGTERM` and `SIGHUP` into cancelled statements;
//! * [`output`] prints results as table, CSV or JSON;
//! * [`runtime`] is the Tokio runtime all three binaries run on;
//! * [`datagen`] writes the deterministic sample lake and operational DB;
//! * [`report`] renders models as an HTML page with SVG charts;
//! * [`cli`] is the `sentio` command line.

pub mod cli;
pub mod codec;
pub mod config;
pub mod datagen;
pub mod output;
pub mod runner;
pub mod script;
pub mod error;
pub mod extract;
pub mod interrupt;
pub mod lake;
pub mod logging;
pub mod ml;
pub mod object_store;
pub mod opdb;
pub mod repl;
pub mod report;
pub mod runtime;
pub mod session;
pub mod standalone;
pub mod stop;
pub mod task_error;

pub use error::{Result, SentioError};
