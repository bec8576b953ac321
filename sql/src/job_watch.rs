//! Orphaned tasks: an executor stops a task whose job its scheduler no
//! longer runs.
//!
//! Ballista's scheduler keeps its jobs in memory. When it dies (a crash, a
//! deploy, `kill -9`) its clients fail at once, but its executors go on with
//! the tasks they were given — a long scan or a training keeps a core busy
//! for a job nobody will ever collect, and nothing tells the executor: the
//! restarted scheduler does not know the job and never cancels it. So each
//! task of a `sentio-executor` asks the scheduler every [`WATCH_EVERY`]
//! about its job (`GetJobStatus`, over one lazily connected channel that
//! reconnects when the scheduler is back). A scheduler that answers and does
//! not know the job, or has it ended, gets the task stopped (its
//! [`TaskStop`] raised, `crate::stop`); an unreachable scheduler does not —
//! it may be back before the task ends, and a network blip must not stop
//! work.

use std::sync::Arc;
use std::time::Duration;

use ballista_core::serde::protobuf::GetJobStatusParams;
use ballista_core::serde::protobuf::job_status::Status;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use sentio_udfs::cancel::TaskStop;
use tonic::transport::{Channel, Endpoint};

/// How often a running task asks about its job.
pub const WATCH_EVERY: Duration = Duration::from_secs(5);

/// The scheduler that tasks ask about their jobs.
#[derive(Clone)]
pub struct JobWatch {
    client: SchedulerGrpcClient<Channel>,
}

impl std::fmt::Debug for JobWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JobWatch")
    }
}

/// What the scheduler says of a job.
#[derive(Debug, PartialEq, Eq)]
enum JobState {
    /// Queued or running: the task is wanted.
    Running,
    /// Unknown to the scheduler, or ended: the task is an orphan.
    Gone,
    /// The scheduler did not answer.
    Unknown,
}

impl JobWatch {
    /// Watches through the scheduler at `url` (`http://host:port`); the
    /// connection is made when first needed.
    pub fn new(url: &str) -> Result<Self, tonic::transport::Error> {
        let channel = Endpoint::from_shared(url.to_string())?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .connect_lazy();
        Ok(Self { client: SchedulerGrpcClient::new(channel) })
    }

    /// Raises `stop` once the scheduler no longer runs `job`; returns when
    /// it did or when the task ended (its stop raised by the task itself).
    pub async fn watch(self, job: Arc<str>, stop: TaskStop) {
        loop {
            tokio::select! {
                _ = stop.raised() => return,
                _ = tokio::time::sleep(WATCH_EVERY) => {}
            }
            if self.state(&job).await == JobState::Gone {
                log::warn!("job {job} is no longer run by the scheduler (did it restart?): stopping its task here");
                stop.raise();
                return;
            }
        }
    }

    async fn state(&self, job: &str) -> JobState {
        let mut client = self.client.clone();
        let asked = client.get_job_status(GetJobStatusParams { job_id: job.to_string() }).await;
        let Ok(answer) = asked else { return JobState::Unknown };
        match answer.into_inner().status.map(|s| s.status) {
            None => JobState::Gone,
            Some(Some(Status::Failed(_) | Status::Successful(_))) => JobState::Gone,
            Some(Some(Status::Queued(_) | Status::Running(_))) => JobState::Running,
            Some(None) => JobState::Unknown,
        }
    }
}
