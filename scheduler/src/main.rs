//! `sentio-scheduler`: Ballista's scheduler with Sentio's functions, object
//! stores and session, all from `sentio_sql::session` (the same code the
//! CLI and the executors use), and Sentio's Flight SQL front end
//! (`sentio_frontend`) when given a users file. Takes every flag of
//! Ballista's scheduler.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use ballista_scheduler::config::{Config, SchedulerConfig};
use clap::Parser;
use sentio_sql::client::Cluster;
use sentio_sql::config::SentioConfig;
use sentio_sql::serve::TaskSlots;

#[derive(Parser)]
#[command(name = "sentio-scheduler", version, about = "Sentio's Ballista scheduler")]
struct Args {
    /// Sentio configuration file (S3 endpoint etc.); default ./sentio.toml when present.
    #[arg(long, value_name = "FILE")]
    sentio_config: Option<PathBuf>,
    /// Users file of the Flight SQL front end (users, API tokens, roles;
    /// docs/deploy.md). Without one the front end is off.
    #[arg(long, value_name = "FILE", env = "SENTIO_USERS")]
    users: Option<PathBuf>,
    /// Port of the Flight SQL front end, on --bind-host.
    #[arg(long, value_name = "PORT", default_value_t = 50060, env = "SENTIO_FLIGHT_SQL_PORT")]
    flight_sql_port: u16,
    /// TLS certificate chain (PEM) of the front end; with --tls-key it speaks TLS only.
    #[arg(long, value_name = "FILE", env = "SENTIO_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The TLS certificate's private key (PEM).
    #[arg(long, value_name = "FILE", env = "SENTIO_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    #[command(flatten)]
    ballista: Config,
}

fn main() -> anyhow::Result<()> {
    sentio_sql::runtime::build()?.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    sentio_sql::logging::init(&args.ballista.log_level_setting);
    let sentio = SentioConfig::load(args.sentio_config.as_deref())?;
    let host = args.ballista.bind_host.clone();
    let port = args.ballista.bind_port;
    let addr: SocketAddr = format!("{host}:{port}").parse().context("invalid --bind-host/--bind-port")?;
    // The users file is checked before the scheduler starts.
    let users = match &args.users {
        Some(users) => Some(sentio_frontend::auth::Users::load(users)?),
        None if args.tls_cert.is_some() => anyhow::bail!("--tls-cert is for the front end, which needs --users"),
        None => {
            log::info!("no users file (--users or SENTIO_USERS): the Flight SQL front end is off");
            None
        }
    };
    let config: SchedulerConfig = args.ballista.try_into()?;
    let listener =
        sentio_sql::serve::bind(addr).await.with_context(|| format!("the scheduler cannot listen on {addr}"))?;
    log::info!("Sentio's scheduler listening on {addr}");
    let (scheduler, slots) = sentio_sql::serve::scheduler(listener, config, &sentio).await?;
    match users.map(|users| front_end(users, &sentio, addr, args.flight_sql_port, slots)) {
        None => scheduler.await?,
        Some((fe_addr, fe)) => {
            let tls = tls(args.tls_cert.as_deref(), args.tls_key.as_deref())?;
            tokio::select! {
                done = scheduler => done?,
                done = serve(fe_addr, fe, tls) => done?,
            }
        }
    }
    Ok(())
}

/// Serves the front end on `addr`.
async fn serve(
    addr: SocketAddr,
    fe: sentio_frontend::FrontEnd,
    tls: Option<sentio_frontend::Tls>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("the Flight SQL front end cannot listen on {addr}"))?;
    sentio_frontend::serve(listener, fe, tls).await.context("the Flight SQL front end stopped")
}

/// The front end's certificate and key, when both are given.
fn tls(cert: Option<&std::path::Path>, key: Option<&std::path::Path>) -> anyhow::Result<Option<sentio_frontend::Tls>> {
    let (Some(cert), Some(key)) = (cert, key) else { return Ok(None) };
    let read = |p: &std::path::Path| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
    Ok(Some(sentio_frontend::Tls { cert_pem: read(cert)?, key_pem: read(key)? }))
}

/// The front end on `port`, whose sessions run their statements on this
/// scheduler (at `scheduler`, with its executors' `slots`).
fn front_end(
    users: sentio_frontend::auth::Users,
    sentio: &SentioConfig,
    scheduler: SocketAddr,
    port: u16,
    slots: TaskSlots,
) -> (SocketAddr, sentio_frontend::FrontEnd) {
    // Sessions reach this scheduler on loopback when it listens on every
    // address.
    let reach = if scheduler.ip().is_unspecified() { "127.0.0.1".to_string() } else { scheduler.ip().to_string() };
    let cluster = Cluster::Hosted { url: format!("df://{reach}:{}", scheduler.port()), slots };
    (SocketAddr::new(scheduler.ip(), port), sentio_frontend::FrontEnd::new(users, sentio.clone(), cluster))
}
