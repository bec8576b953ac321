//! `sentio-executor`: Ballista's executor with Sentio's functions, object
//! stores and session, all from `sentio_sql::session` (the same code the
//! CLI and the scheduler use). Takes every flag of Ballista's executor. Its
//! tasks stop when their scheduler no longer runs their job
//! (`sentio_sql::job_watch`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use ballista_executor::config::Config;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_executor::health::spawn_health_server;
use clap::Parser;

#[derive(Parser)]
#[command(name = "sentio-executor", version, about = "Sentio's Ballista executor")]
struct Args {
    /// Sentio configuration file (S3 endpoint etc.); default ./sentio.toml when present.
    #[arg(long, value_name = "FILE")]
    sentio_config: Option<PathBuf>,
    /// What this executor's tasks may hold in memory, e.g. 4GiB (beyond it
    /// they spill to disk); default SENTIO_MEMORY_LIMIT, sentio.toml's
    /// memory_limit, else 70 % of the machine's memory.
    #[arg(long, value_name = "SIZE")]
    memory_limit: Option<String>,
    #[command(flatten)]
    ballista: Config,
}

fn main() -> anyhow::Result<()> {
    sentio_sql::runtime::build()?.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut sentio = sentio_sql::config::SentioConfig::load(args.sentio_config.as_deref())?;
    if let Some(limit) = args.memory_limit {
        sentio.memory_limit = Some(limit);
        sentio.memory_limit_bytes().context("--memory-limit")?;
    }
    let health_addr: SocketAddr = format!("{}:{}", args.ballista.bind_host, args.ballista.bind_health_port)
        .parse()
        .context("invalid --bind-host/--bind-health-port")?;
    let mut config: ExecutorProcessConfig = args.ballista.try_into()?;
    sentio_sql::logging::init(&config.special_mod_log_level);
    sentio_sql::session::configure_executor(&mut config, &sentio)?;
    sentio_sql::session::watch_jobs(&mut config)?;

    let (stop_health, health_stopped) = tokio::sync::oneshot::channel();
    let health = spawn_health_server(health_addr, config.health.clone(), health_stopped);
    let result = start_executor_process(Arc::new(config)).await;
    let _ = stop_health.send(());
    let _ = health.await;
    result?;
    Ok(())
}
