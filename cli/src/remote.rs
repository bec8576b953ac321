//! `sentio sql` against the front end: a Flight SQL connection to the
//! scheduler (`--scheduler grpc://HOST:PORT`) with an API token or a user's
//! password, or to the front end of the cluster this process starts when
//! there is no `--scheduler` ([`FrontEnd::embedded`]). Statements go there
//! as text and only result rows come back: the workstation needs no lake or
//! database credentials.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::{CommandStatementQuery, ProstMessageExt};
use arrow_flight::{Action, FlightData, FlightDescriptor, HandshakeRequest};
use datafusion::arrow::record_batch::RecordBatch;
use futures::StreamExt;
use prost::Message;
use sentio_frontend::embedded::Embedded;
use sentio_frontend::running::{CANCEL_ACTION, Cancelled, PROGRESS_ACTION, Progress};
use sentio_frontend::sessions::{SESSION_ACTION, SessionInfo};
use sentio_frontend::statements::{OUTCOME_ACTION, OUTCOME_TRAILER, Outcome};
use sentio_sql::SentioError;
use sentio_sql::client::error_chain;
use sentio_sql::config::SentioConfig;
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
    /// The connection; each call takes a clone (calls share it).
    client: FlightServiceClient<Channel>,
    /// `Bearer …`: the API token, or the session token a login returned.
    authorization: MetadataValue<tonic::metadata::Ascii>,
    /// Every byte received on the connection so far.
    received: Received,
    /// What the session's catalogs work without (the front end says).
    pub warnings: Vec<String>,
    /// The in-process cluster and front end this connection is to, if any;
    /// dropped after the connection.
    _embedded: Option<Embedded>,
}

impl FrontEnd {
    /// Starts a cluster in this process with the lake and operational DB
    /// that `cfg` names, behind a front end of its own, and connects to it:
    /// the embedded default runs statements as a cluster's workstation does.
    pub async fn embedded(cfg: &SentioConfig) -> Result<Self> {
        let embedded = Embedded::start(cfg).await?;
        let token = Credentials::Token(embedded.token().to_string());
        let mut front_end = Self::connect(embedded.url(), token, None).await?;
        front_end._embedded = Some(embedded);
        Ok(front_end)
    }

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
        let mut front_end = Self { client, authorization, received, warnings: Vec::new(), _embedded: None };
        front_end.warnings = front_end.session().await?.warnings;
        Ok(front_end)
    }

    /// Who the session is, from the front end: refuses bad credentials now,
    /// before any statement.
    async fn session(&self) -> Result<SessionInfo> {
        let action = Action { r#type: SESSION_ACTION.to_string(), body: Default::default() };
        let replies = self.client.clone().do_action(self.request(action)).await.map_err(refused)?;
        let reply = replies.into_inner().message().await.map_err(refused)?;
        serde_json::from_slice(&reply.map(|r| r.body).unwrap_or_default())
            .map_err(|e| CliError::FrontEnd(format!("the front end's answer about the session is malformed: {e}")))
    }

    /// The cluster job of the statement this session has running, and its
    /// state (`running`, `queued`, …), when it has one.
    pub async fn progress(&self) -> Option<(String, String)> {
        let running: Vec<Progress> = self.action(PROGRESS_ACTION, Vec::new()).await?;
        running.into_iter().rev().find_map(|p| Some((p.job?, p.state)))
    }

    /// Cancels what this session has running on the cluster side; says what
    /// became of its job (`job … cancelled`, and for a write into the
    /// operational DB whether its rows landed).
    pub async fn cancel(&self) -> Option<String> {
        let cancelled: Vec<Cancelled> = self.action(CANCEL_ACTION, Vec::new()).await?;
        let said: Vec<String> = cancelled.into_iter().filter_map(|c| c.job).collect();
        (!said.is_empty()).then(|| said.join("; "))
    }

    /// The JSON answer of Sentio's action `kind` with `body`; `None` when
    /// the front end does not answer it.
    async fn action<T: serde::de::DeserializeOwned>(&self, kind: &str, body: Vec<u8>) -> Option<T> {
        let action = Action { r#type: kind.to_string(), body: body.into() };
        let mut replies = self.client.clone().do_action(self.request(action)).await.ok()?.into_inner();
        let reply = replies.message().await.ok()??;
        serde_json::from_slice(&reply.body).ok()
    }

    /// Runs `sql` on the cluster side; returns its rows, what it did there
    /// and the bytes the client received while it ran (every byte read from
    /// the socket).
    pub async fn query(&self, sql: &str) -> Result<Answer> {
        let mut client = self.client.clone();
        let before = self.received.load(Ordering::Relaxed);
        let cmd = CommandStatementQuery { query: sql.to_string(), transaction_id: None };
        let request = self.request(FlightDescriptor::new_cmd(cmd.as_any().encode_to_vec()));
        let info = client.get_flight_info(request).await.map_err(statement_failed)?.into_inner();
        let statement_id = String::from_utf8_lossy(&info.app_metadata).to_string();
        let mut batches = Vec::new();
        let mut outcome = None;
        for endpoint in info.endpoint {
            let ticket = endpoint.ticket.ok_or_else(|| CliError::FrontEnd("the server sent no ticket".into()))?;
            let data = client.do_get(self.request(ticket)).await.map_err(statement_failed)?.into_inner();
            let trailers = Arc::new(std::sync::Mutex::new(None));
            let mut rows = FlightRecordBatchStream::new_from_flight_data(with_trailers(data, Arc::clone(&trailers)));
            while let Some(batch) = rows.next().await {
                batches.push(batch.map_err(flight_failed)?);
            }
            let trailers = trailers.lock().unwrap_or_else(|e| e.into_inner()).take();
            outcome = trailers.and_then(|t: tonic::metadata::MetadataMap| outcome_of(&t)).or(outcome);
        }
        // A front end that does not send the outcome with the rows is asked.
        let outcome = match outcome {
            Some(o) => Some(o),
            None => self.outcome(statement_id).await,
        };
        Ok(Answer { batches, received: self.received.load(Ordering::Relaxed) - before, outcome })
    }

    /// What the front end says the statement did in the cluster; `None`
    /// from a front end that does not say (the rows are what matter).
    async fn outcome(&self, statement_id: String) -> Option<Outcome> {
        if statement_id.is_empty() {
            return None;
        }
        self.action(OUTCOME_ACTION, statement_id.into_bytes()).await
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.metadata_mut().insert("authorization", self.authorization.clone());
        request
    }
}

/// `data`'s messages; at its end, its trailers are put in `trailers`.
fn with_trailers(
    data: tonic::Streaming<FlightData>,
    trailers: Arc<std::sync::Mutex<Option<tonic::metadata::MetadataMap>>>,
) -> impl futures::Stream<Item = std::result::Result<FlightData, FlightError>> + Send + 'static {
    futures::stream::unfold(Some(data), move |data| {
        let trailers = Arc::clone(&trailers);
        async move {
            let mut data = data?;
            match data.message().await {
                Ok(Some(message)) => Some((Ok(message), Some(data))),
                Ok(None) => {
                    let end = data.trailers().await.ok().flatten();
                    *trailers.lock().unwrap_or_else(|e| e.into_inner()) = end;
                    None
                }
                Err(status) => Some((Err(FlightError::from(status)), None)),
            }
        }
    })
}

/// The statement's outcome in a `DoGet` stream's trailers
/// ([`OUTCOME_TRAILER`]), if the front end sent it.
fn outcome_of(trailers: &tonic::metadata::MetadataMap) -> Option<Outcome> {
    let json = trailers.get_bin(OUTCOME_TRAILER)?.to_bytes().ok()?;
    serde_json::from_slice(&json).ok()
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

/// A failed sign-in: refused credentials, or a session that could not start.
fn refused(status: tonic::Status) -> CliError {
    match status.code() {
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => {
            CliError::FrontEnd(format!("the front end refused the login: {}", status.message()))
        }
        _ => CliError::FrontEnd(status.message().to_string()),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    /// A query's rows end with its outcome in the stream's trailers, which
    /// the client reads without asking the front end again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_outcome_arrives_in_the_trailers() {
        let front_end = FrontEnd::embedded(&SentioConfig::default()).await.unwrap();
        let mut client = front_end.client.clone();
        let cmd = CommandStatementQuery { query: "SELECT 1 AS one".into(), transaction_id: None };
        let descriptor = FlightDescriptor::new_cmd(cmd.as_any().encode_to_vec());
        let info = client.get_flight_info(front_end.request(descriptor)).await.unwrap().into_inner();
        let ticket = info.endpoint[0].ticket.clone().unwrap();
        let data = client.do_get(front_end.request(ticket)).await.unwrap().into_inner();
        let trailers = Arc::new(std::sync::Mutex::new(None));
        let rows: Vec<RecordBatch> =
            FlightRecordBatchStream::new_from_flight_data(with_trailers(data, Arc::clone(&trailers)))
                .try_collect()
                .await
                .unwrap();
        assert_eq!(rows.iter().map(RecordBatch::num_rows).sum::<usize>(), 1);
        let trailers = trailers.lock().unwrap().take().expect("the stream's trailers");
        let outcome = outcome_of(&trailers).expect("the outcome in the trailers");
        assert_eq!((outcome.status.as_str(), outcome.rows_returned), ("ok", Some(1)));
        assert!(!outcome.jobs.is_empty(), "{outcome:?}");
    }
}
