//! `sentio-scheduler`: Ballista's scheduler with Sentio's functions, object
//! stores and session, all from `sentio_sql::session` (the same code the
//! CLI and the executors use). Takes every flag of Ballista's scheduler.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::{Config, SchedulerConfig};
use ballista_scheduler::scheduler_process::start_server;
use clap::Parser;

#[derive(Parser)]
#[command(name = "sentio-scheduler", version, about = "Sentio's Ballista scheduler")]
struct Args {
    /// Sentio configuration file (S3 endpoint etc.); default ./sentio.toml when present.
    #[arg(long, value_name = "FILE")]
    sentio_config: Option<PathBuf>,
    #[command(flatten)]
    ballista: Config,
}

fn main() -> anyhow::Result<()> {
    sentio_sql::runtime::build()?.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    sentio_sql::logging::init(&args.ballista.log_level_setting);
    let sentio = sentio_sql::config::SentioConfig::load(args.sentio_config.as_deref())?;
    let addr = format!("{}:{}", args.ballista.bind_host, args.ballista.bind_port)
        .parse()
        .context("invalid --bind-host/--bind-port")?;
    let config: SchedulerConfig = args.ballista.try_into()?;
    let config = sentio_sql::session::configure_scheduler(config, &sentio)?;
    let cluster = BallistaCluster::new_from_config(&config).await?;
    start_server(cluster, addr, Arc::new(config)).await?;
    Ok(())
}
