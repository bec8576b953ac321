//! The `sentio` command's embedded default: a cluster inside the process
//! (`sentio_sql::standalone`) behind a front end of its own on a loopback
//! port, admitting one analyst token made up at start. A laptop's
//! statements then travel the production path — Flight SQL to a front end
//! that plans and runs them beside the cluster — and only the process that
//! started it knows the token.

use std::net::Ipv4Addr;

use sentio_sql::SentioError;
use sentio_sql::client::Cluster;
use sentio_sql::config::SentioConfig;
use tokio::net::TcpListener;

use crate::FrontEnd;
use crate::auth::{Role, Users, new_token};

/// A running in-process cluster and its front end; both stop when it is
/// dropped (and the clients connected to it have hung up).
pub struct Embedded {
    url: String,
    token: String,
    server: tokio::task::JoinHandle<()>,
}

impl Embedded {
    /// Starts an in-process cluster whose sessions have the catalogs
    /// `engine` configures (its `scheduler` is not looked at), and its front
    /// end on a loopback port.
    pub async fn start(engine: &SentioConfig) -> Result<Self, SentioError> {
        let mut engine = engine.clone();
        engine.scheduler = None;
        let cluster = Cluster::from_config(&engine).await?;
        let token = new_token();
        let user = std::env::var("USER").unwrap_or_else(|_| "sentio".to_string());
        let front_end = FrontEnd::new(Users::one_token(&user, Role::Analyst, &token), engine, cluster);
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| SentioError::Standalone(format!("the front end's loopback port: {e}")))?;
        let addr = listener.local_addr().map_err(|e| SentioError::Standalone(e.to_string()))?;
        let server = tokio::spawn(async move {
            if let Err(e) = crate::serve(listener, front_end, None).await {
                log::error!("the in-process front end stopped: {e}");
            }
        });
        Ok(Self { url: format!("grpc://{addr}"), token, server })
    }

    /// Where the front end listens: `grpc://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The one token it admits (an analyst's).
    pub fn token(&self) -> &str {
        &self.token
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        self.server.abort();
    }
}
