//! Sentio's front end: an authenticated Arrow Flight SQL endpoint where
//! clients (ADBC and JDBC drivers, BI tools, notebooks) send SQL and get
//! rows back, while the statements are planned and run beside the cluster.
//!
//! * [`auth`] — the users file: users with passwords, API tokens, roles;
//! * [`throttle`] — failed password logins slow down the next try;
//! * [`sessions`] — one engine session per signed-in client;
//! * [`service`] — the Flight SQL calls ([`FrontEnd`]);
//! * [`statements`] — who ran what: the log behind `system.statements`;
//! * [`delivery`] — a result streamed to the client, counted and logged;
//! * [`cancel`] — a statement's job, cancelled when its call ends early;
//! * [`metadata`] — the catalog calls BI tools browse with.
//!
//! The scheduler serves it ([`serve`]) next to Ballista's own gRPC port.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let users = sentio_frontend::auth::Users::load("users.toml".as_ref())?;
//! let engine = sentio_sql::config::SentioConfig::load(None)?;
//! sentio_frontend::serve("0.0.0.0:50060".parse()?, sentio_frontend::FrontEnd::new(users, engine), None).await?;
//! # Ok(()) }
//! ```

pub mod auth;
pub mod cancel;
pub mod delivery;
pub mod metadata;
pub mod service;
pub mod sessions;
pub mod statements;
pub mod throttle;

pub use service::FrontEnd;

use arrow_flight::flight_service_server::FlightServiceServer;

/// A certificate chain and its private key, PEM-encoded: the front end
/// then speaks TLS only.
pub struct Tls {
    /// The certificate chain.
    pub cert_pem: Vec<u8>,
    /// Its private key.
    pub key_pem: Vec<u8>,
}

/// Serves `front_end` on `addr` until the process ends; over TLS when `tls`
/// is given.
pub async fn serve(
    addr: std::net::SocketAddr,
    front_end: FrontEnd,
    tls: Option<Tls>,
) -> Result<(), tonic::transport::Error> {
    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        let identity = tonic::transport::Identity::from_pem(tls.cert_pem, tls.key_pem);
        server = server.tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))?;
    }
    log::info!("Flight SQL front end listening on {addr}");
    server.add_service(FlightServiceServer::new(front_end).max_decoding_message_size(64 << 20)).serve(addr).await
}
