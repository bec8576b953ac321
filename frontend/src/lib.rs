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
//! * [`metadata`] — the catalog calls BI tools browse with;
//! * [`running`] — a session's statements under way: progress, cancel;
//! * [`prepared`] — prepared statements and their bound parameters;
//! * [`connections`] — accepted connections, whose token sessions end
//!   when they close;
//! * [`embedded`] — the `sentio` command's in-process cluster behind a
//!   front end of its own.
//!
//! The scheduler serves it ([`serve`]) next to Ballista's own gRPC port.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use sentio_frontend::{FrontEnd, auth::Users};
//! let users = Users::load("users.toml".as_ref())?;
//! let engine = sentio_sql::config::SentioConfig::load(None)?;
//! let cluster = sentio_sql::client::Cluster::Remote("df://127.0.0.1:50050".into());
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:50060").await?;
//! sentio_frontend::serve(listener, FrontEnd::new(users, engine, cluster), None).await?;
//! # Ok(()) }
//! ```

pub mod auth;
pub mod cancel;
pub mod connections;
pub mod delivery;
pub mod embedded;
pub mod metadata;
pub mod prepared;
pub mod running;
pub mod service;
pub mod sessions;
pub mod statements;
pub mod throttle;

pub use service::FrontEnd;

use arrow_flight::flight_service_server::FlightServiceServer;
use tokio::net::TcpListener;

/// A certificate chain and its private key, PEM-encoded: the front end
/// then speaks TLS only.
pub struct Tls {
    /// The certificate chain.
    pub cert_pem: Vec<u8>,
    /// Its private key.
    pub key_pem: Vec<u8>,
}

/// Serves `front_end` on `listener` until the process ends; over TLS when
/// `tls` is given. The sessions of API tokens end with their connections.
pub async fn serve(
    listener: TcpListener,
    front_end: FrontEnd,
    tls: Option<Tls>,
) -> Result<(), tonic::transport::Error> {
    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        let identity = tonic::transport::Identity::from_pem(tls.cert_pem, tls.key_pem);
        server = server.tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))?;
    }
    let (closed, mut closings) = tokio::sync::mpsc::unbounded_channel();
    let sessions = front_end.sessions();
    tokio::spawn(async move {
        while let Some(peer) = closings.recv().await {
            sessions.connection_closed(peer);
        }
    });
    if let Ok(addr) = listener.local_addr() {
        log::info!("Flight SQL front end listening on {addr}");
    }
    server
        .add_service(FlightServiceServer::new(front_end).max_decoding_message_size(64 << 20))
        .serve_with_incoming(connections::incoming(listener, closed))
        .await
}
