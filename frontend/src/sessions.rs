//! One engine session per signed-in client: its catalogs, its `SET`s and the
//! results it has yet to fetch.
//!
//! A client that logs in with a password (the Flight SQL handshake) gets a
//! session token back and its session is the token's. A client that sends
//! an API token on every call gets one session per connection (the token
//! and the client's address): two notebooks with one token do not see each
//! other's settings.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::physical_plan::ExecutionPlan;
use sentio_sql::client::Client;
use sentio_sql::config::SentioConfig;
use sentio_sql::local::ProcessTable;

use crate::auth::{Principal, random_text};
use crate::statements::{Entry, StatementLog};

/// Sessions unused for this long are ended (their results dropped).
const IDLE_LIMIT: Duration = Duration::from_secs(8 * 3600);

/// What a statement gives the client.
pub enum Output {
    /// Rows already computed (ML and extract statements).
    Rows(SchemaRef, Vec<RecordBatch>),
    /// A plan that runs when the client fetches it.
    Plan(Arc<dyn ExecutionPlan>),
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
}

impl Pending {
    /// The schema the client receives.
    pub fn schema(&self) -> SchemaRef {
        match &self.output {
            Output::Rows(schema, _) => Arc::clone(schema),
            Output::Plan(plan) => plan.schema(),
        }
    }
}

/// A client's session.
pub struct Session {
    /// Who it belongs to.
    pub principal: Principal,
    /// The engine session: catalogs, settings, ML and extracts.
    pub client: Client,
    results: Mutex<HashMap<String, Pending>>,
    last_used: Mutex<Instant>,
}

impl Session {
    /// Keeps `result` for the client; returns the handle it fetches it by.
    pub fn keep(&self, result: Pending) -> String {
        let handle = random_text();
        self.results.lock().unwrap_or_else(|e| e.into_inner()).insert(handle.clone(), result);
        handle
    }

    /// Takes the result kept under `handle`: a result is fetched once.
    pub fn take(&self, handle: &str) -> Option<Pending> {
        self.results.lock().unwrap_or_else(|e| e.into_inner()).remove(handle)
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
    log: Arc<StatementLog>,
    live: Mutex<HashMap<Key, Arc<Session>>>,
}

impl Sessions {
    /// Sessions whose engine is configured by `engine` (its `scheduler` is
    /// the cluster the statements run on), each with `log` as
    /// `system.statements`.
    pub fn new(engine: SentioConfig, log: Arc<StatementLog>) -> Self {
        Self { engine, log, live: Mutex::default() }
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

    /// Ends every session whose principal `keep` refuses, and every idle one.
    pub fn retain(&self, keep: impl Fn(&Principal) -> bool) {
        self.live().retain(|_, s| keep(&s.principal) && s.idle_for() < IDLE_LIMIT);
    }

    async fn start(&self, principal: Principal) -> sentio_sql::Result<Arc<Session>> {
        let client = sentio_sql::client::connect(&self.engine).await?;
        register_log(&client, Arc::clone(&self.log))?;
        for warning in &client.warnings {
            log::warn!("session of {}: {warning}", principal.name);
        }
        log::info!("session started for {} ({:?})", principal.name, principal.role);
        Ok(Arc::new(Session { principal, client, results: Mutex::default(), last_used: Mutex::new(Instant::now()) }))
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
