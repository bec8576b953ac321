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

use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, XdbcTypeInfoData};
use arrow_flight::sql::server::FlightSqlService;
use arrow_flight::sql::server::PeekableFlightDataStream;
use arrow_flight::sql::{
    ActionCancelQueryRequest, ActionCancelQueryResult, ActionClosePreparedStatementRequest,
    ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandGetXdbcTypeInfo, CommandPreparedStatementQuery,
    CommandPreparedStatementUpdate, CommandStatementQuery, CommandStatementUpdate, DoPutPreparedStatementResult,
    ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    Action, ActionType, CancelFlightInfoRequest, CancelFlightInfoResult, CancelStatus, FlightDescriptor,
    FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, Ticket,
};
use arrow_flight::{IpcMessage, SchemaAsIpc};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::writer::IpcWriteOptions;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ParamValues;
use datafusion::physical_plan::ExecutionPlan;
use futures::{Stream, TryStreamExt};
use prost::Message;
use sentio_sql::SentioError;
use sentio_sql::client::Cluster;
use sentio_sql::config::SentioConfig;
use sentio_sql::statement::{self, Access, Planned};
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::{AuthError, Principal, Role, Users, token_digest};
use crate::cancel::CancelOnDrop;
use crate::metadata;
use crate::prepared::Prepared;
use crate::running::{CANCEL_ACTION, PROGRESS_ACTION};
use crate::sessions::{Output, Pending, SESSION_ACTION, Session, SessionInfo, Sessions};
use crate::statements::{Ending, OUTCOME_ACTION, StatementLog, Status as LogStatus};
use crate::throttle::Throttle;

type DoGetStream = Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send + 'static>>;

/// Sentio's Flight SQL front end.
pub struct FrontEnd {
    users: Arc<Users>,
    sessions: Arc<Sessions>,
    log: Arc<StatementLog>,
    sql_info: Arc<SqlInfoData>,
    xdbc_types: Arc<XdbcTypeInfoData>,
    throttle: Throttle,
}

impl FrontEnd {
    /// A front end that admits the entries of `users` and runs their
    /// statements on `cluster`, with the catalogs `engine` configures (the
    /// lake, the operational DB).
    pub fn new(users: Users, engine: SentioConfig, cluster: Cluster) -> Self {
        let log = Arc::new(StatementLog::default());
        let sessions = Arc::new(Sessions::new(engine, cluster, Arc::clone(&log)));
        Self {
            users: Arc::new(users),
            sessions,
            log,
            sql_info: Arc::new(metadata::sql_info()),
            xdbc_types: Arc::new(metadata::xdbc_types()),
            throttle: Throttle::default(),
        }
    }

    /// Its sessions ([`crate::serve`] ends those of a connection that
    /// closed).
    pub(crate) fn sessions(&self) -> Arc<Sessions> {
        Arc::clone(&self.sessions)
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
            // Unchecked: says nothing of the password.
            Err(AuthError::Busy) => {}
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

    /// Plans `sql` in `session` with `params` as its placeholders' values
    /// (running ML and extract statements); the result, for the client to
    /// fetch.
    async fn run(&self, session: &Session, sql: &str, params: Option<ParamValues>) -> Result<Pending, Status> {
        let access = match session.principal.role {
            Role::Analyst => Access::Everything,
            Role::Reader => Access::QueriesOnly,
        };
        // Ends as cancelled if the client hangs up before the result is kept.
        let entry = self.log.open(&session.principal, sql);
        let underway = session.running.start(entry.id());
        session.client.ml.take_jobs();
        // ML and extract statements run their jobs here: cancel the one
        // under way if the client hangs up. The ML layer forgets its running
        // plan as soon as the statement is dropped, so the plan is noted at
        // every poll.
        let seen: Arc<std::sync::Mutex<Option<Arc<dyn ExecutionPlan>>>> = Arc::default();
        let last = Arc::clone(&seen);
        let guard = CancelOnDrop::new(&session.client.scheduler_grpc_url, Box::new(move || lock(&last).clone()));
        let work = statement::plan_with(&session.client, sql, access, params);
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
            Planned::Query { logical, physical } => Output::Plan { logical: Box::new(logical), physical },
        };
        Ok(Pending { statement: entry, jobs, output, underway })
    }

    /// Runs `sql` with `params` in `session` and keeps its result; the
    /// `FlightInfo` the client fetches it by (its `app_metadata` is the
    /// statement's id in the log).
    async fn statement_info(
        &self,
        session: &Session,
        sql: &str,
        params: Option<ParamValues>,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo, Status> {
        let pending = self.run(session, sql, params).await?;
        let schema = pending.schema();
        let id = pending.statement.id();
        let handle = session.keep(pending);
        let ticket = TicketStatementQuery { statement_handle: handle.into() }.as_any().encode_to_vec();
        Ok(flight_info(&schema, ticket, descriptor)?.with_app_metadata(id.to_string()))
    }

    /// Runs the write `sql` once for each row of parameter values in `rows`
    /// (`[None]`: once, without); the rows it changed, or -1 when a run
    /// does not say (Flight SQL's "unknown").
    async fn update(&self, session: &Session, sql: &str, rows: Vec<Option<ParamValues>>) -> Result<i64, Status> {
        let mut total = Some(0);
        for params in rows {
            let pending = self.run(session, sql, params).await?;
            let batches = crate::delivery::collect(pending, session).await?;
            total = total.zip(rows_changed(&batches)).map(|(a, b)| a + b);
        }
        Ok(total.unwrap_or(-1))
    }

    /// Cancels the statement whose `FlightInfo` is `info` (Flight's
    /// `CancelFlightInfo`, Flight SQL's `CancelQuery`): a result not yet
    /// fetched is dropped, a running job cancelled.
    async fn cancel_info(&self, session: &Session, info: Option<FlightInfo>) -> Result<CancelStatus, Status> {
        let id: i64 = info
            .as_ref()
            .and_then(|i| std::str::from_utf8(&i.app_metadata).ok()?.parse().ok())
            .ok_or_else(|| Status::invalid_argument("not the FlightInfo of a statement of this front end"))?;
        if session.drop_results(Some(id)) {
            return Ok(CancelStatus::Cancelled);
        }
        let cancelled = session.running.cancel(&session.client, Some(id)).await;
        Ok(if cancelled.is_empty() { CancelStatus::NotCancellable } else { CancelStatus::Cancelled })
    }

    /// Answers Sentio's own actions: a statement's outcome, the progress of
    /// the session's running statements, cancelling them, the session.
    async fn sentio_action(&self, session: &Session, action: &Action) -> Result<Vec<u8>, Status> {
        match action.r#type.as_str() {
            OUTCOME_ACTION => {
                let id: i64 = std::str::from_utf8(&action.body)
                    .ok()
                    .and_then(|b| b.trim().parse().ok())
                    .ok_or_else(|| Status::invalid_argument("the body of an outcome request is a statement id"))?;
                let outcome = self
                    .log
                    .outcome(id, &session.principal.name)
                    .ok_or_else(|| Status::not_found(format!("no statement {id} of yours in the log")))?;
                json(&outcome)
            }
            PROGRESS_ACTION => json(&session.running.progress(&session.client).await),
            CANCEL_ACTION => {
                let cancelled = session.running.cancel(&session.client, None).await;
                session.drop_results(None);
                json(&cancelled)
            }
            SESSION_ACTION => json(&SessionInfo {
                user: session.principal.name.clone(),
                role: session.principal.role.as_str().to_string(),
                warnings: session.client.warnings.clone(),
            }),
            "CancelFlightInfo" => {
                let request = CancelFlightInfoRequest::decode(action.body.clone())
                    .map_err(|e| Status::invalid_argument(format!("malformed CancelFlightInfoRequest: {e}")))?;
                let status = self.cancel_info(session, request.info).await?;
                Ok(CancelFlightInfoResult { status: status as i32 }.encode_to_vec())
            }
            other => Err(Status::unimplemented(format!("no action {other:?}"))),
        }
    }
}

/// What a write says it changed: the sum of its one `count` column.
fn rows_changed(batches: &[RecordBatch]) -> Option<i64> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::UInt64Type;
    let mut total = 0;
    for b in batches {
        if b.num_columns() != 1 || b.schema().field(0).name() != "count" {
            return None;
        }
        let counts = b.column(0).as_primitive_opt::<UInt64Type>()?;
        total += counts.iter().flatten().sum::<u64>() as i64;
    }
    Some(total)
}

/// The rows a client sent with a `DoPut` (bound parameter values), in one
/// batch; `None` when it sent none.
async fn sent_rows(stream: PeekableFlightDataStream) -> Result<Option<RecordBatch>, Status> {
    let batches: Vec<RecordBatch> =
        FlightRecordBatchStream::new_from_flight_data(stream.map_err(FlightError::from)).try_collect().await?;
    let Some(first) = batches.first() else { return Ok(None) };
    let batch = datafusion::arrow::compute::concat_batches(&first.schema(), &batches)
        .map_err(|e| Status::invalid_argument(format!("parameter batches of different schemas: {e}")))?;
    Ok(Some(batch))
}

/// `schema` in the IPC form a prepared statement's description takes.
fn ipc_schema(schema: &SchemaRef) -> Result<bytes::Bytes, Status> {
    let message: IpcMessage = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(|e: datafusion::arrow::error::ArrowError| Status::internal(e.to_string()))?;
    Ok(message.0)
}

/// `v` as the JSON body of an action's result.
fn json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, Status> {
    serde_json::to_vec(v).map_err(|e| Status::internal(e.to_string()))
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

/// A refused credential: `UNAUTHENTICATED`, or `UNAVAILABLE` (try again)
/// when too many logins wait for their check.
fn refused(e: AuthError) -> Status {
    match e {
        AuthError::Busy => Status::unavailable(e.to_string()),
        _ => Status::unauthenticated(e.to_string()),
    }
}

/// A refused login, logged with where it came from (never the secret).
fn refused_login(from: Option<SocketAddr>, e: AuthError) -> Status {
    log::info!("refused a login from {from:?}: {e}");
    refused(e)
}

/// A session that could not start: what its engine said (a lake or a
/// scheduler that does not answer).
fn unavailable(e: SentioError) -> Status {
    Status::unavailable(e.to_string())
}

fn statement_error(e: SentioError) -> Status {
    match e {
        SentioError::SchedulerUnreachable { .. } => Status::unavailable(e.to_string()),
        e => Status::invalid_argument(e.to_string()),
    }
}

/// The prepared statement `handle` of `session`.
fn prepared_statement(session: &Session, handle: &[u8]) -> Result<Prepared, Status> {
    let handle = String::from_utf8_lossy(handle);
    session.prepared.get(&handle).ok_or_else(|| Status::not_found("no such prepared statement in this session"))
}

/// Binds the parameter values the client sent (if any) to the prepared
/// statement `handle` of `session`; the statement.
async fn bind(session: &Session, handle: &[u8], sent: PeekableFlightDataStream) -> Result<Prepared, Status> {
    prepared_statement(session, handle)?;
    if let Some(values) = sent_rows(sent).await? {
        session.prepared.bind(&String::from_utf8_lossy(handle), values);
    }
    prepared_statement(session, handle)
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
        Ok(Response::new(self.statement_info(&session, &query.query, None, request.into_inner()).await?))
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let session = self.session(&request).await?;
        let prepared = prepared_statement(&session, &query.prepared_statement_handle)?;
        let params = prepared.query_parameters().map_err(statement_error)?;
        Ok(Response::new(self.statement_info(&session, &prepared.sql, params, request.into_inner()).await?))
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let session = self.session(&request).await?;
        let described = statement::describe(&session.client, &query.query).await.map_err(statement_error)?;
        let (dataset_schema, parameter_schema) = match described {
            Some((dataset, parameters)) => (ipc_schema(&dataset)?, ipc_schema(&parameters)?),
            // Known once it runs (an ML or extract statement).
            None => Default::default(),
        };
        let handle = session.prepared.create(&query.query);
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into(),
            dataset_schema,
            parameter_schema,
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        let session = self.session(&request).await?;
        let handle = String::from_utf8_lossy(&query.prepared_statement_handle);
        if !session.prepared.close(&handle) {
            return Err(Status::not_found("no such prepared statement in this session"));
        }
        Ok(())
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let session = self.session(&request).await?;
        bind(&session, &query.prepared_statement_handle, request.into_inner()).await?;
        Ok(DoPutPreparedStatementResult { prepared_statement_handle: Some(query.prepared_statement_handle) })
    }

    async fn do_put_prepared_statement_update(
        &self,
        query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let session = self.session(&request).await?;
        let prepared = bind(&session, &query.prepared_statement_handle, request.into_inner()).await?;
        let rows = prepared.parameter_rows().map_err(statement_error)?;
        self.update(&session, &prepared.sql, rows).await
    }

    async fn do_put_statement_update(
        &self,
        command: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let session = self.session(&request).await?;
        self.update(&session, &command.query, vec![None]).await
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

    async fn get_flight_info_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = self.xdbc_types.schema();
        self.listing_info(request, &schema, query.as_any()).await
    }

    async fn do_get_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.session(&request).await?;
        let batch = query.into_builder(&self.xdbc_types).build().map_err(|e| Status::internal(e.to_string()))?;
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

    /// Sentio's own actions (`FrontEnd::sentio_action`) and Flight's
    /// `CancelFlightInfo`.
    async fn do_action_fallback(
        &self,
        request: Request<Action>,
    ) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        let session = self.session(&request).await?;
        let body = self.sentio_action(&session, request.get_ref()).await?;
        let reply = arrow_flight::Result { body: body.into() };
        Ok(Response::new(Box::pin(futures::stream::iter([Ok(reply)]))))
    }

    async fn do_action_cancel_query(
        &self,
        query: ActionCancelQueryRequest,
        request: Request<Action>,
    ) -> Result<ActionCancelQueryResult, Status> {
        let session = self.session(&request).await?;
        let info = FlightInfo::decode(query.info)
            .map_err(|e| Status::invalid_argument(format!("malformed FlightInfo in CancelQuery: {e}")))?;
        let status = self.cancel_info(&session, Some(info)).await?;
        // CancelQuery's result numbers its answers as CancelFlightInfo's
        // status does (1: cancelled, 3: not cancellable).
        Ok(ActionCancelQueryResult { result: status as i32 })
    }

    async fn list_custom_actions(&self) -> Option<Vec<Result<ActionType, Status>>> {
        let action = |name: &str, description: &str| {
            Ok(ActionType { r#type: name.to_string(), description: description.to_string() })
        };
        Some(vec![
            action(OUTCOME_ACTION, "How a statement ended (body: its id, from its FlightInfo's app_metadata)"),
            action(PROGRESS_ACTION, "The cluster jobs of this session's running statements, and their states"),
            action(CANCEL_ACTION, "Cancel this session's running statements; drop its unfetched results"),
            action(SESSION_ACTION, "Who this session is, and what its catalogs work without"),
            action("CancelFlightInfo", "Cancel the statement of a FlightInfo"),
        ])
    }
}
