//! One engine session per signed-in client: its catalogs, its `SET`s and the
//! results it has yet to fetch.
//!
//! A client that logs in with a password (the Flight SQL handshake) gets a
//! session token back and its session is the token's. A client that sends
//! an API token on every call gets one session per connection (the token
//! and the client's address): two notebooks with one token do not see each
//! other's settings. Such a session ends when its connection closes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use sentio_sql::client::{Client, Cluster};
use sentio_sql::config::SentioConfig;
use sentio_sql::local::ProcessTable;

use crate::auth::{Principal, random_text};
use crate::prepared::PreparedStatements;
use crate::running::{Running, Underway};
use crate::statements::{Entry, StatementLog};

/// The `DoAction` type that answers who the caller's session is and what
/// its catalogs work without ([`SessionInfo`], JSON in the result's body).
pub const SESSION_ACTION: &str = "sentio.session";

/// Who a session is, as [`SESSION_ACTION`] answers.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SessionInfo {
    /// The user's or token's name.
    pub user: String,
    /// `analyst` or `reader`.
    pub role: String,
    /// What the session's catalogs work without: an empty lake, an
    /// operational DB that did not answer, extracts that could not be read.
    pub warnings: Vec<String>,
}

/// Sessions unused for this long are ended (their results dropped).
const IDLE_LIMIT: Duration = Duration::from_secs(8 * 3600);

/// What a statement gives the client.
pub enum Output {
    /// Rows already computed (ML and extract statements).
    Rows(SchemaRef, Vec<RecordBatch>),
    /// A plan that runs when the client fetches it.
    Plan {
        /// What it was planned from.
        logical: Box<LogicalPlan>,
        /// The plan.
        physical: Arc<dyn ExecutionPlan>,
    },
}

/// A statement's result, waiting for the client to fetch it.
pub struct Pending {
    /// The statement in the statement log (cancelled there if this result
    /// is dropped unfetched).
    pub statement: Entry,
    /// The cluster jobs it has run so far (ML and extract statements).
    pub jobs: Vec<String>,
    /// Its output.
    pub output: Output,
    /// Marks it under way in its session until it has streamed.
    pub underway: Underway,
}

impl Pending {
    /// The schema the client receives.
    pub fn schema(&self) -> SchemaRef {
        match &self.output {
            Output::Rows(schema, _) => Arc::clone(schema),
            Output::Plan { physical, .. } => physical.schema(),
        }
    }
}

/// A client's session.
pub struct Session {
    /// Who it belongs to.
    pub principal: Principal,
    /// The engine session: catalogs, settings, ML and extracts.
    pub client: Client,
    /// Its statements under way.
    pub running: Arc<Running>,
    /// Its prepared statements.
    pub prepared: PreparedStatements,
    results: Mutex<HashMap<String, Pending>>,
    last_used: Mutex<Instant>,
}

impl Session {
    /// Keeps `result` for the client; returns the handle it fetches it by.
    pub fn keep(&self, result: Pending) -> String {
        let handle = random_text();
        result.underway.kept();
        self.results().insert(handle.clone(), result);
        handle
    }

    /// Takes the result kept under `handle`: a result is fetched once.
    pub fn take(&self, handle: &str) -> Option<Pending> {
        self.results().remove(handle)
    }

    /// Drops the kept results of statement `id` (or of every statement):
    /// they are not fetched, and their statements end as cancelled. Says
    /// whether there was one.
    pub fn drop_results(&self, id: Option<i64>) -> bool {
        let mut results = self.results();
        let before = results.len();
        results.retain(|_, r| id.is_some_and(|id| r.statement.id() != id));
        results.len() < before
    }

    fn results(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.results.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn touch(&self) {
        *self.last_used.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    fn idle_for(&self) -> Duration {
        self.last_used.lock().unwrap_or_else(|e| e.into_inner()).elapsed()
    }
}

/// Where a session is found again.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    /// The session token a handshake gave out.
    Token(String),
    /// An API token's digest and the connection it came from.
    Connection(String, SocketAddr),
}

/// Every live session.
pub struct Sessions {
    engine: SentioConfig,
    cluster: Cluster,
    log: Arc<StatementLog>,
    live: Mutex<HashMap<Key, Arc<Session>>>,
}

impl Sessions {
    /// Sessions that run their statements on `cluster`, with the catalogs
    /// `engine` configures (lake, operational DB), each with `log` as
    /// `system.statements`.
    pub fn new(engine: SentioConfig, cluster: Cluster, log: Arc<StatementLog>) -> Self {
        Self { engine, cluster, log, live: Mutex::default() }
    }

    /// The session a handshake gave out as `token`.
    pub fn by_token(&self, token: &str) -> Option<Arc<Session>> {
        self.find(&Key::Token(token.to_string()))
    }

    /// The session of an API token (by its digest) on connection `from`,
    /// started when there is none.
    pub async fn for_connection(
        &self,
        digest: &str,
        from: SocketAddr,
        principal: Principal,
    ) -> sentio_sql::Result<Arc<Session>> {
        let key = Key::Connection(digest.to_string(), from);
        if let Some(s) = self.find(&key) {
            return Ok(s);
        }
        let session = self.start(principal).await?;
        Ok(Arc::clone(self.live().entry(key).or_insert(session)))
    }

    /// Starts a session for `principal`; returns it with its token.
    pub async fn log_in(&self, principal: Principal) -> sentio_sql::Result<(String, Arc<Session>)> {
        let token = random_text();
        let session = self.start(principal).await?;
        self.live().insert(Key::Token(token.clone()), Arc::clone(&session));
        Ok((token, session))
    }

    /// Ends the sessions of API tokens on the connection from `peer`, which
    /// has closed.
    pub fn connection_closed(&self, peer: SocketAddr) {
        self.live().retain(|key, session| {
            let closed = matches!(key, Key::Connection(_, from) if *from == peer);
            if closed {
                log::info!("session of {} ended: its connection from {peer} closed", session.principal.name);
            }
            !closed
        });
    }

    /// Ends every session whose principal `keep` refuses, and every idle one.
    pub fn retain(&self, keep: impl Fn(&Principal) -> bool) {
        self.live().retain(|_, s| keep(&s.principal) && s.idle_for() < IDLE_LIMIT);
    }

    async fn start(&self, principal: Principal) -> sentio_sql::Result<Arc<Session>> {
        let client = sentio_sql::client::connect_to(&self.engine, &self.cluster).await?;
        register_log(&client, Arc::clone(&self.log))?;
        for warning in &client.warnings {
            log::info!("session of {}: {warning}", principal.name);
        }
        log::info!("session started for {} ({:?})", principal.name, principal.role);
        Ok(Arc::new(Session {
            principal,
            client,
            running: Arc::default(),
            prepared: PreparedStatements::default(),
            results: Mutex::default(),
            last_used: Mutex::new(Instant::now()),
        }))
    }

    fn find(&self, key: &Key) -> Option<Arc<Session>> {
        let s = self.live().get(key).cloned()?;
        s.touch();
        Some(s)
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Arc<Session>>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Registers the statement log as `system.statements` in `client`'s session.
fn register_log(client: &Client, log: Arc<StatementLog>) -> sentio_sql::Result<()> {
    let default = client.ctx.state().config().options().catalog.default_catalog.clone();
    let catalog = client
        .ctx
        .catalog(&default)
        .ok_or_else(|| sentio_sql::SentioError::Config(format!("the session has no default catalog {default:?}")))?;
    let schema = Arc::new(MemorySchemaProvider::new());
    schema.register_table("statements".into(), Arc::new(ProcessTable::new(log)))?;
    catalog.register_schema("system", schema)?;
    Ok(())
}
