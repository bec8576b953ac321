//! The Flight SQL service: every call is authenticated, then runs in the
//! caller's session.
//!
//! A statement is planned (and, for ML and extract statements, run) when
//! the client asks for its `FlightInfo`; its rows stream when the client
//! redeems the ticket with `DoGet`. A ticket names a result kept in the
//! session that ran the statement and is redeemable once, by that session.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::FlightSqlService;
use arrow_flight::sql::{
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables,
    CommandStatementQuery, ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    Action, ActionType, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, Ticket,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::physical_plan::ExecutionPlan;
use futures::{Stream, TryStreamExt};
use prost::Message;
use sentio_sql::SentioError;
use sentio_sql::config::SentioConfig;
use sentio_sql::statement::{self, Access, Planned};
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::{AuthError, Principal, Role, Users, token_digest};
use crate::cancel::CancelOnDrop;
use crate::metadata;
use crate::sessions::{Output, Pending, Session, Sessions};
use crate::statements::{Ending, OUTCOME_ACTION, StatementLog, Status as LogStatus};
use crate::throttle::Throttle;

type DoGetStream = Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send + 'static>>;

/// Sentio's Flight SQL front end.
pub struct FrontEnd {
    users: Arc<Users>,
    sessions: Arc<Sessions>,
    log: Arc<StatementLog>,
    sql_info: Arc<SqlInfoData>,
    throttle: Throttle,
}

impl FrontEnd {
    /// A front end that admits the entries of `users` and runs their
    /// statements on the engine `engine` configures.
    pub fn new(users: Users, engine: SentioConfig) -> Self {
        let log = Arc::new(StatementLog::default());
        let sessions = Arc::new(Sessions::new(engine, Arc::clone(&log)));
        Self { users: Arc::new(users), sessions, log, sql_info: Arc::new(sql_info()), throttle: Throttle::default() }
    }

    /// The caller's session, from the `authorization` header: a session
    /// token from the handshake, or an API token (one session per
    /// connection). Refuses the call when there is neither.
    async fn session<T>(&self, request: &Request<T>) -> Result<Arc<Session>, Status> {
        self.reread_users();
        let bearer = match credentials(request.metadata())? {
            Credentials::Bearer(token) => token,
            Credentials::Basic(..) => {
                return Err(Status::unauthenticated(
                    "a user name and password are accepted in the handshake only; send the token it returns",
                ));
            }
        };
        if let Some(session) = self.sessions.by_token(&bearer) {
            return Ok(session);
        }
        let principal = self.users.token(&bearer).map_err(refused)?;
        let from = request.remote_addr().ok_or_else(|| Status::internal("the connection has no peer address"))?;
        self.sessions.for_connection(&token_digest(&bearer), from, principal).await.map_err(unavailable)
    }

    /// Checks a user's password, unless the user failed from this address
    /// too recently ([`Throttle`]): then the login is refused unchecked.
    async fn check_password(&self, from: Option<SocketAddr>, user: &str, password: &str) -> Result<Principal, Status> {
        let Some(ip) = from.map(|a| a.ip()) else {
            return self.users.password(user, password).await.map_err(|e| refused_login(from, e));
        };
        if let Err(wait) = self.throttle.check(ip, user, Instant::now()) {
            log::info!("refused a login of {user:?} from {ip} unchecked: it failed too recently");
            let message =
                format!("too many failed logins of {user} from {ip}: try again in {:.1} s", wait.as_secs_f64());
            return Err(Status::unauthenticated(message));
        }
        let checked = self.users.password(user, password).await;
        match &checked {
            Ok(_) => self.throttle.succeeded(ip, user),
            Err(_) => self.throttle.failed(ip, user, Instant::now()),
        }
        checked.map_err(|e| refused_login(from, e))
    }

    /// Reads the users file again when it changed, and ends the sessions of
    /// entries that were removed, revoked or changed.
    fn reread_users(&self) {
        match self.users.refresh() {
            Ok(true) => self.sessions.retain(|p| self.users.still_valid(p)),
            Ok(false) => {}
            Err(e) => log::error!("{e}; the entries read before stay in force"),
        }
    }

    /// The `FlightInfo` of a catalog listing: its ticket is the command.
    async fn listing_info(
        &self,
        request: Request<FlightDescriptor>,
        schema: &SchemaRef,
        command: arrow_flight::sql::Any,
    ) -> Result<Response<FlightInfo>, Status> {
        self.session(&request).await?;
        Ok(Response::new(flight_info(schema, command.encode_to_vec(), request.into_inner())?))
    }

    /// Plans `sql` in `session` (running ML and extract statements) and
    /// keeps the result for the client to fetch.
    async fn run(&self, session: &Session, sql: &str) -> Result<Pending, Status> {
        let access = match session.principal.role {
            Role::Analyst => Access::Everything,
            Role::Reader => Access::QueriesOnly,
        };
        // Ends as cancelled if the client hangs up before the result is kept.
        let entry = self.log.open(&session.principal, sql);
        session.client.ml.take_jobs();
        // ML and extract statements run their jobs here: cancel the one
        // under way if the client hangs up. The ML layer forgets its running
        // plan as soon as the statement is dropped, so the plan is noted at
        // every poll.
        let seen: Arc<std::sync::Mutex<Option<Arc<dyn ExecutionPlan>>>> = Arc::default();
        let last = Arc::clone(&seen);
        let guard = CancelOnDrop::new(&session.client.scheduler_grpc_url, Box::new(move || lock(&last).clone()));
        let work = statement::plan(&session.client, sql, access);
        tokio::pin!(work);
        let planned = std::future::poll_fn(|cx| {
            let poll = work.as_mut().poll(cx);
            if poll.is_pending() {
                *lock(&seen) = session.client.ml.running_plan();
            }
            poll
        })
        .await;
        guard.finished();
        let jobs = session.client.ml.take_jobs();
        let planned = match planned {
            Ok(planned) => planned,
            Err(e) => {
                let (status, error) = match e {
                    SentioError::NotPermitted(_) => {
                        let who = &session.principal.name;
                        let message = format!("{who} has the reader role: {e} (ask for the analyst role)");
                        (LogStatus::Refused, Status::permission_denied(message))
                    }
                    e => (LogStatus::Failed, statement_error(e)),
                };
                entry.end(status, Ending { error: Some(error.message().to_string()), jobs, ..Ending::default() });
                return Err(error);
            }
        };
        let output = match planned {
            Planned::Done(batches) => {
                let schema = batches
                    .first()
                    .map_or_else(|| Arc::new(datafusion::arrow::datatypes::Schema::empty()), |b| b.schema());
                Output::Rows(schema, batches)
            }
            Planned::Query { physical, .. } => Output::Plan(physical),
        };
        Ok(Pending { statement: entry, jobs, output })
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the `authorization` header holds.
enum Credentials {
    Bearer(String),
    Basic(String, String),
}

fn credentials(headers: &MetadataMap) -> Result<Credentials, Status> {
    let none = || {
        Status::unauthenticated(
            "no credentials: send `authorization: Bearer <API token>`, or log in with a user name and password",
        )
    };
    let value = headers.get("authorization").ok_or_else(none)?.to_str().map_err(|_| none())?;
    let (scheme, rest) = value.split_once(' ').ok_or_else(none)?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Ok(Credentials::Bearer(rest.to_string()));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        return basic(rest).ok_or_else(|| Status::unauthenticated("malformed Basic credentials"));
    }
    Err(none())
}

/// `user:password`, base64-encoded with or without padding (clients differ).
fn basic(encoded: &str) -> Option<Credentials> {
    use base64::Engine;
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let decoded = String::from_utf8(engine.decode(encoded).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some(Credentials::Basic(user.to_string(), password.to_string()))
}

fn refused(e: AuthError) -> Status {
    Status::unauthenticated(e.to_string())
}

/// A refused login, logged with where it came from (never the secret).
fn refused_login(from: Option<SocketAddr>, e: AuthError) -> Status {
    log::info!("refused a login from {from:?}: {e}");
    refused(e)
}

fn unavailable(e: SentioError) -> Status {
    Status::unavailable(format!("could not start a session: {e}"))
}

fn statement_error(e: SentioError) -> Status {
    match e {
        SentioError::SchedulerUnreachable { .. } => Status::unavailable(e.to_string()),
        e => Status::invalid_argument(e.to_string()),
    }
}

/// What `GetSqlInfo` answers.
fn sql_info() -> SqlInfoData {
    let mut b = SqlInfoDataBuilder::new();
    b.append(SqlInfo::FlightSqlServerName, "Sentio");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    b.append(SqlInfo::FlightSqlServerArrowVersion, "59");
    b.append(SqlInfo::FlightSqlServerReadOnly, false);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    b.append(SqlInfo::FlightSqlServerTransaction, 0_i32);
    b.append(SqlInfo::FlightSqlServerCancel, false);
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    b.build().expect("a fixed list of SqlInfo values builds")
}

/// A `FlightInfo` for `schema` whose one endpoint's ticket is `ticket`.
fn flight_info(schema: &SchemaRef, ticket: Vec<u8>, descriptor: FlightDescriptor) -> Result<FlightInfo, Status> {
    Ok(FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(e.to_string()))?
        .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)))
        .with_descriptor(descriptor))
}

/// Streams `batches` of `schema` to the client.
fn stream_batches(schema: SchemaRef, batches: Vec<RecordBatch>) -> Response<DoGetStream> {
    let rows = futures::stream::iter(batches.into_iter().map(Ok));
    Response::new(Box::pin(FlightDataEncoderBuilder::new().with_schema(schema).build(rows).map_err(Status::from)))
}

#[tonic::async_trait]
impl FlightSqlService for FrontEnd {
    type FlightService = FrontEnd;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>, Status> {
        self.reread_users();
        let from = request.remote_addr();
        let principal = match credentials(request.metadata())? {
            Credentials::Basic(user, password) => self.check_password(from, &user, &password).await?,
            Credentials::Bearer(token) => self.users.token(&token).map_err(|e| refused_login(from, e))?,
        };
        self.sessions.retain(|p| self.users.still_valid(p));
        let (token, _) = self.sessions.log_in(principal).await.map_err(unavailable)?;
        let reply = HandshakeResponse { protocol_version: 0, payload: token.clone().into() };
        let mut response: Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>> =
            Response::new(Box::pin(futures::stream::iter([Ok(reply)])));
        let header = format!("Bearer {token}").parse().map_err(|_| Status::internal("token is not ASCII"))?;
        response.metadata_mut().insert("authorization", header);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let session = self.session(&request).await?;
        let pending = self.run(&session, &query.query).await?;
        let schema = pending.schema();
        let id = pending.statement.id();
        let handle = session.keep(pending);
        let ticket = TicketStatementQuery { statement_handle: handle.into() }.as_any().encode_to_vec();
        // The id the client asks for the statement's outcome by.
        let info = flight_info(&schema, ticket, request.into_inner())?.with_app_metadata(id.to_string());
        Ok(Response::new(info))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let session = self.session(&request).await?;
        let handle = String::from_utf8_lossy(&ticket.statement_handle);
        let pending = session.take(&handle).ok_or_else(|| {
            Status::not_found("no such result in this session (a result is fetched once, by the session that ran it)")
        })?;
        Ok(Response::new(crate::delivery::deliver(pending, &session)?))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        self.listing_info(request, &schema, query.as_any()).await
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let session = self.session(&request).await?;
        let batch = metadata::catalogs(&session.client.ctx, query)?;
        Ok(stream_batches(batch.schema(), vec![batch]))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.listing_info(request, &schema, query.as_any()).await
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let session = self.session(&request).await?;
        let batch = metadata::schemas(&session.client.ctx, query)?;
        Ok(stream_batches(batch.schema(), vec![batch]))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.listing_info(request, &schema, query.as_any()).await
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let session = self.session(&request).await?;
        let batch = metadata::tables(&session.client.ctx, query).await?;
        Ok(stream_batches(batch.schema(), vec![batch]))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        self.listing_info(request, &schema, query.as_any()).await
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.session(&request).await?;
        let batch = metadata::table_types(query)?;
        Ok(stream_batches(batch.schema(), vec![batch]))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(&self.sql_info).schema();
        self.listing_info(request, &schema, query.as_any()).await
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.session(&request).await?;
        let batch = query.into_builder(&self.sql_info).build().map_err(|e| Status::internal(e.to_string()))?;
        Ok(stream_batches(batch.schema(), vec![batch]))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}

    /// Sentio's own action: a statement's [`Outcome`](crate::statements::Outcome)
    /// (what it scanned, its jobs) for the user who ran it.
    async fn do_action_fallback(
        &self,
        request: Request<Action>,
    ) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        let session = self.session(&request).await?;
        let action = request.into_inner();
        if action.r#type != OUTCOME_ACTION {
            return Err(Status::unimplemented(format!("no action {:?}", action.r#type)));
        }
        let id: i64 = std::str::from_utf8(&action.body)
            .ok()
            .and_then(|b| b.trim().parse().ok())
            .ok_or_else(|| Status::invalid_argument("the body of an outcome request is a statement id"))?;
        let outcome = self
            .log
            .outcome(id, &session.principal.name)
            .ok_or_else(|| Status::not_found(format!("no statement {id} of yours in the log")))?;
        let body = serde_json::to_vec(&outcome).map_err(|e| Status::internal(e.to_string()))?;
        let reply = arrow_flight::Result { body: body.into() };
        Ok(Response::new(Box::pin(futures::stream::iter([Ok(reply)]))))
    }

    async fn list_custom_actions(&self) -> Option<Vec<Result<ActionType, Status>>> {
        let outcome = ActionType {
            r#type: OUTCOME_ACTION.to_string(),
            description: "How a statement ended (body: its id, from its FlightInfo's app_metadata)".to_string(),
        };
        Some(vec![Ok(outcome)])
    }
}
