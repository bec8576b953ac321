//! The statements a session has under way: their cluster jobs' progress,
//! and cancelling them on the client's word (Flight SQL's
//! `CancelFlightInfo`, or Sentio's [`CANCEL_ACTION`]).
//!
//! A statement is under way from the moment the front end takes it until
//! its last row is sent (or it fails): first while it is planned — when ML
//! and extract statements run their jobs — then while its plan runs and
//! streams. An [`Underway`] marks it so, and forgets it when dropped.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use sentio_sql::client::Client;
use sentio_sql::jobs::{self, JobStates};

/// The `DoAction` type that answers the state of the session's running
/// statements ([`Progress`], a JSON list in the result's body).
pub const PROGRESS_ACTION: &str = "sentio.progress";

/// The `DoAction` type that cancels every statement the session has under
/// way, and drops the results it has not fetched; its result's body is a
/// JSON list of [`Cancelled`].
pub const CANCEL_ACTION: &str = "sentio.cancel";

/// Where a statement is.
#[derive(Clone)]
enum Phase {
    /// Being planned: ML and extract statements run their jobs now (the
    /// session's ML layer knows the plan of the one running).
    Planning,
    /// Planned, its result kept until the client fetches it.
    Kept,
    /// Its plan runs and its rows stream to the client.
    Streaming { logical: Box<LogicalPlan>, plan: Arc<dyn ExecutionPlan> },
}

type PlanRef = Arc<dyn ExecutionPlan>;

/// A running statement's state, for a progress line.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    /// The statement's id in the statement log.
    pub statement: i64,
    /// Its cluster job, once it has one.
    pub job: Option<String>,
    /// The job's state in a few words (`running`, `queued`, …), or what the
    /// statement does (`planning`, `waiting to be fetched`).
    pub state: String,
}

/// A statement the client cancelled, and what became of its job.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Cancelled {
    /// The statement's id in the statement log.
    pub statement: i64,
    /// `job … cancelled` (and for a write into the operational DB, whether
    /// its rows landed), or `None` when no job was running.
    pub job: Option<String>,
}

/// A session's statements under way.
#[derive(Default)]
pub struct Running {
    statements: Mutex<BTreeMap<i64, Phase>>,
    states: tokio::sync::Mutex<JobStates>,
}

impl Running {
    /// Marks statement `id` as being planned, until the returned guard is
    /// dropped.
    pub fn start(self: &Arc<Self>, id: i64) -> Underway {
        self.set(id, Phase::Planning);
        Underway { running: Arc::clone(self), id }
    }

    fn set(&self, id: i64, phase: Phase) {
        self.lock().insert(id, phase);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<i64, Phase>> {
        self.statements.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Each statement under way with its plan, if it has one running now.
    fn plans(&self, client: &Client) -> Vec<(i64, Phase, Option<PlanRef>)> {
        let statements = self.lock().clone();
        statements
            .into_iter()
            .map(|(id, phase)| {
                let plan = match &phase {
                    Phase::Planning => client.ml.running_plan(),
                    Phase::Kept => None,
                    Phase::Streaming { plan, .. } => Some(Arc::clone(plan)),
                };
                (id, phase, plan)
            })
            .collect()
    }

    /// The state of each statement under way in `client`'s session.
    pub async fn progress(&self, client: &Client) -> Vec<Progress> {
        let mut states = self.states.lock().await;
        let mut all = Vec::new();
        for (statement, phase, plan) in self.plans(client) {
            let job = plan.as_ref().and_then(jobs::job_of);
            let state = match (&job, phase) {
                (Some(job), _) => states.state(&client.scheduler_grpc_url, job).await,
                (None, Phase::Kept) => "waiting to be fetched".to_string(),
                (None, _) => "planning".to_string(),
            };
            all.push(Progress { statement, job, state });
        }
        all
    }

    /// Cancels the cluster job of each statement under way (or only of
    /// statement `only`) in `client`'s session; a job submitted a moment ago
    /// is waited for until the scheduler names it ([`jobs::job_named_soon`]).
    pub async fn cancel(&self, client: &Client, only: Option<i64>) -> Vec<Cancelled> {
        let mut all = Vec::new();
        let ids: Vec<i64> = self.lock().keys().copied().filter(|id| only.is_none_or(|o| o == *id)).collect();
        for statement in ids {
            let current = || {
                let phase = self.lock().get(&statement).cloned()?;
                match phase {
                    Phase::Planning => client.ml.running_plan(),
                    Phase::Kept => None,
                    Phase::Streaming { plan, .. } => Some(plan),
                }
            };
            let plan = jobs::job_named_soon(std::pin::pin!(std::future::pending::<()>()), &current).await;
            let logical = match self.lock().get(&statement) {
                Some(Phase::Streaming { logical, .. }) => Some(logical.as_ref().clone()),
                _ => None,
            };
            let job = jobs::cancel_statement(&client.scheduler_grpc_url, plan.as_ref(), logical.as_ref()).await;
            all.push(Cancelled { statement, job });
        }
        all
    }
}

/// A statement under way; dropped, it is no longer.
pub struct Underway {
    running: Arc<Running>,
    id: i64,
}

impl Underway {
    /// The statement is planned and its result kept for the client.
    pub fn kept(&self) {
        self.running.set(self.id, Phase::Kept);
    }

    /// The statement's plan runs now (`logical` is what it was planned
    /// from: a cancelled write is settled by it).
    pub fn streaming(&self, logical: LogicalPlan, plan: Arc<dyn ExecutionPlan>) {
        self.running.set(self.id, Phase::Streaming { logical: Box::new(logical), plan });
    }
}

impl Drop for Underway {
    fn drop(&mut self) {
        self.running.lock().remove(&self.id);
    }
}
