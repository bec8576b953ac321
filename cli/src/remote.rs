//! `sentio sql` against the front end: a Flight SQL connection to the
//! scheduler (`--scheduler grpc://HOST:PORT`) with an API token or a user's
//! password. Statements go there as text and only result rows come back: the
//! workstation needs no lake or database credentials.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::{CommandGetSqlInfo, CommandStatementQuery, ProstMessageExt, SqlInfo};
use arrow_flight::{Action, FlightDescriptor, HandshakeRequest};
use datafusion::arrow::record_batch::RecordBatch;
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use sentio_frontend::statements::{OUTCOME_ACTION, Outcome};
use sentio_sql::SentioError;
use sentio_sql::client::error_chain;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use crate::counted::{self, Received};
use crate::error::{CliError, Result};

/// How long connecting to the front end may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Who the client signs in as.
pub enum Credentials {
    /// An API token, sent on every call.
    Token(String),
    /// A user's name and password, exchanged once for a session token.
    Password {
        /// The user's name.
        user: String,
        /// The password.
        password: String,
    },
}

/// Whether `url` names the front end (`grpc://…`) rather than Ballista's
/// own port (`df://…`).
pub fn is_front_end(url: &str) -> bool {
    url.starts_with("grpc://") || url.starts_with("grpc+tls://")
}

/// A signed-in connection to the front end.
pub struct FrontEnd {
    client: tokio::sync::Mutex<FlightServiceClient<Channel>>,
    /// `Bearer …`: the API token, or the session token a login returned.
    authorization: MetadataValue<tonic::metadata::Ascii>,
    /// Every byte received on the connection so far.
    received: Received,
}

impl FrontEnd {
    /// Connects to `url` and signs in; a refused login is an error here,
    /// before any statement.
    pub async fn connect(url: &str, credentials: Credentials, ca_pem: Option<Vec<u8>>) -> Result<Self> {
        let unreachable = |message: String| SentioError::SchedulerUnreachable { url: url.to_string(), message };
        let (host_port, tls) = match (url.strip_prefix("grpc://"), url.strip_prefix("grpc+tls://")) {
            (Some(h), _) => (h, false),
            (_, Some(h)) => (h, true),
            _ => {
                return Err(CliError::Usage(format!(
                    "{url}: a front end's URL is grpc://HOST:PORT or grpc+tls://HOST:PORT"
                )));
            }
        };
        if ca_pem.is_some() && !tls {
            return Err(CliError::Usage(format!("--tls-ca is for grpc+tls:// front ends, not {url}")));
        }
        let scheme = if tls { "https" } else { "http" };
        let mut endpoint = tonic::transport::Endpoint::from_shared(format!("{scheme}://{host_port}"))
            .map_err(|e| unreachable(e.to_string()))?
            .connect_timeout(CONNECT_TIMEOUT);
        if tls {
            // The system's roots, and the given CA (a self-signed certificate).
            let mut config = tonic::transport::ClientTlsConfig::new().with_native_roots();
            if let Some(ca) = ca_pem {
                config = config.ca_certificate(tonic::transport::Certificate::from_pem(ca));
            }
            endpoint = endpoint.tls_config(config).map_err(|e| unreachable(error_chain(&e)))?;
        }
        let received = Received::default();
        let connector = counted::connector(host_port.to_string(), Arc::clone(&received));
        let channel = tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect_with_connector(connector))
            .await
            .map_err(|_| unreachable(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs())))?
            .map_err(|e| unreachable(error_chain(&e)))?;
        let mut client = FlightServiceClient::new(channel).max_decoding_message_size(usize::MAX);
        let authorization = match credentials {
            Credentials::Token(token) => bearer(&token)?,
            Credentials::Password { user, password } => log_in(&mut client, &user, &password).await?,
        };
        let front_end = Self { client: tokio::sync::Mutex::new(client), authorization, received };
        front_end.check().await?;
        Ok(front_end)
    }

    /// Asks the server who it is: refuses bad credentials now.
    async fn check(&self) -> Result<()> {
        let cmd = CommandGetSqlInfo { info: vec![SqlInfo::FlightSqlServerName as u32] };
        let request = self.request(FlightDescriptor::new_cmd(cmd.as_any().encode_to_vec()));
        self.client.lock().await.get_flight_info(request).await.map_err(refused)?;
        Ok(())
    }

    /// Runs `sql` on the cluster side; returns its rows, what it did there
    /// and the bytes the client received while it ran (every byte read from
    /// the socket).
    pub async fn query(&self, sql: &str) -> Result<Answer> {
        let mut client = self.client.lock().await;
        let before = self.received.load(Ordering::Relaxed);
        let cmd = CommandStatementQuery { query: sql.to_string(), transaction_id: None };
        let request = self.request(FlightDescriptor::new_cmd(cmd.as_any().encode_to_vec()));
        let info = client.get_flight_info(request).await.map_err(statement_failed)?.into_inner();
        let statement_id = String::from_utf8_lossy(&info.app_metadata).to_string();
        let mut batches = Vec::new();
        for endpoint in info.endpoint {
            let ticket = endpoint.ticket.ok_or_else(|| CliError::FrontEnd("the server sent no ticket".into()))?;
            let data = client.do_get(self.request(ticket)).await.map_err(statement_failed)?.into_inner();
            let mut rows = FlightRecordBatchStream::new_from_flight_data(data.map_err(FlightError::from));
            while let Some(batch) = rows.next().await {
                batches.push(batch.map_err(flight_failed)?);
            }
        }
        let outcome = self.outcome(&mut client, statement_id).await;
        Ok(Answer { batches, received: self.received.load(Ordering::Relaxed) - before, outcome })
    }

    /// What the front end says the statement did in the cluster; `None`
    /// from a front end that does not say (the rows are what matter).
    async fn outcome(&self, client: &mut FlightServiceClient<Channel>, statement_id: String) -> Option<Outcome> {
        if statement_id.is_empty() {
            return None;
        }
        let action = Action { r#type: OUTCOME_ACTION.to_string(), body: statement_id.into_bytes().into() };
        let mut replies = client.do_action(self.request(action)).await.ok()?.into_inner();
        let reply = replies.message().await.ok()??;
        serde_json::from_slice(&reply.body).ok()
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.metadata_mut().insert("authorization", self.authorization.clone());
        request
    }
}

/// A statement's answer from the front end.
pub struct Answer {
    /// Its rows.
    pub batches: Vec<RecordBatch>,
    /// Every byte the client received while it ran.
    pub received: u64,
    /// What it did in the cluster, when the front end says.
    pub outcome: Option<Outcome>,
}

/// Exchanges a user's name and password for a session token (the Flight
/// handshake with Basic credentials).
async fn log_in(
    client: &mut FlightServiceClient<Channel>,
    user: &str,
    password: &str,
) -> Result<MetadataValue<tonic::metadata::Ascii>> {
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut request = tonic::Request::new(futures::stream::iter([HandshakeRequest {
        protocol_version: 0,
        payload: Default::default(),
    }]));
    let value = format!("Basic {basic}").parse().map_err(|_| CliError::Usage("the user name is not ASCII".into()))?;
    request.metadata_mut().insert("authorization", value);
    let reply = client.handshake(request).await.map_err(refused)?;
    reply
        .metadata()
        .get("authorization")
        .cloned()
        .ok_or_else(|| CliError::FrontEnd("the server's login reply has no session token".into()))
}

fn bearer(token: &str) -> Result<MetadataValue<tonic::metadata::Ascii>> {
    format!("Bearer {token}").parse().map_err(|_| CliError::Usage("the token is not ASCII".into()))
}

fn refused(status: tonic::Status) -> CliError {
    CliError::FrontEnd(format!("the front end refused the login: {}", status.message()))
}

fn statement_failed(status: tonic::Status) -> CliError {
    CliError::FrontEnd(status.message().to_string())
}

fn flight_failed(e: FlightError) -> CliError {
    match e {
        FlightError::Tonic(status) => statement_failed(*status),
        e => CliError::FrontEnd(e.to_string()),
    }
}
