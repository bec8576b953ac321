//! Sentio's integration tests: one test binary that starts the real `sentio`,
//! `sentio-scheduler` and `sentio-executor` binaries (built beforehand by
//! `scripts/test.sh`), a local S3-compatible server, and real databases.

mod faulty_link;
mod support;

mod bench;
mod cli;
mod cluster;
mod datagen;
mod deploy;
mod extracts;
mod frontend;
mod ml;
mod opdb;
mod recommend;
mod workflows;
