//! Sentio's engine: everything a process needs to plan and run Sentio's SQL
//! on a Ballista cluster — the CLI client, `sentio-scheduler` and every
//! `sentio-executor` link it. No terminal I/O: what a command prints is the
//! `sentio-cli` crate's.
//!
//! * [`session`] puts a session together — the one set of functions that
//!   client, scheduler and executors call, so a function or codec known to
//!   one is known to all;
//! * [`client`] connects a client: the in-process cluster or a remote
//!   scheduler ([`client::Cluster`]), with every catalog registered;
//! * [`standalone`] is the in-process scheduler and executor, and [`serve`]
//!   the scheduler's service and the cluster's listening sockets;
//! * [`config`] reads the environment and `sentio.toml`;
//! * [`memory`] bounds what an executor's tasks hold (they spill beyond);
//! * [`lake`] registers the `training` and `adhoc` catalogs from the lake;
//! * [`statement`] takes one statement from its text to its result (or to
//!   a plan to run): the steps every front end shares;
//! * [`local`] is tables whose rows live in this process, and the rule that
//!   statements reading only them run here;
//! * [`ml`] is machine learning in SQL, as BigQuery ML spells it, and the `ml`
//!   catalog (the model store);
//! * [`extract`] keeps Parquet extracts of operational tables in the lake,
//!   refreshed with only what changed (`extracts.*`);
//! * [`codec`] carries Sentio's plan nodes across the cluster, delegating the
//!   rest to Ballista's codecs;
//! * [`job_exec`] runs a statement as a cluster job (in place of Ballista's
//!   node, which waited 50 ms between questions), and [`jobs`] names the
//!   cluster job of a plan and asks the scheduler about it; [`one_task`]
//!   decides which statements are small enough to run as one task, and
//!   [`small_joins`] builds a join's small side in every task of the other;
//! * [`late_models`] keeps models applied after a top-k, and [`leaves`]
//!   makes generated rows in-memory scans so Ballista's tasks report alike
//!   (physical optimizer rules every session has);
//! * [`stop`] stops a cancelled task's work on an executor, and [`job_watch`]
//!   the task of a job its scheduler no longer runs;
//! * [`scanned`] counts the bytes of file scans that count none themselves
//!   (CSV, JSON);
//! * [`task_error`] carries a failed task's error to the analyst in plain words,
//!   and [`failure`] names what a failed statement's error does not (a plan too
//!   large to send, an unreadable Parquet file);
//! * [`folder`] is a folder of the lake as an object store (the model
//!   store's and the extracts');
//! * [`ids`] makes unique names and timestamps;
//! * [`object_store`] resolves `s3://` and local paths per process;
//! * [`sqltext`] writes SQL text (identifiers, literals, inlined rows), and
//!   [`mutate`] mutates it for the fuzz tests of the parsers;
//! * [`size`] says sizes of data as people read them;
//! * [`runtime`] and [`logging`] are the Tokio runtime and log setup all
//!   three binaries share;
//! * [`error`] is the engine's error type.
//!
//! The operational DB (`opdb.*`) is its own crate, [`sentio_opdb`]; Sentio's
//! functions and learners are [`sentio_udfs`].

pub mod client;
pub mod codec;
pub mod config;
pub mod error;
pub mod extract;
pub mod failure;
pub mod folder;
pub mod ids;
pub mod job_exec;
pub mod job_watch;
pub mod jobs;
pub mod lake;
pub mod late_models;
pub mod leaves;
pub mod local;
pub mod logging;
pub mod memory;
pub mod ml;
pub mod mutate;
pub mod object_store;
pub mod one_task;
pub mod runtime;
pub mod scanned;
pub mod serve;
pub mod session;
pub mod size;
pub mod small_joins;
pub mod sqltext;
pub mod standalone;
pub mod statement;
pub mod stop;
pub mod task_error;

#[cfg(test)]
mod parsers_fuzz;

pub use error::{Result, SentioError};
