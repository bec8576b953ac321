//! The cluster's services on their sockets: Ballista's scheduler as
//! `sentio-scheduler` and the in-process cluster run it ([`scheduler`]; its
//! executors' [`TaskSlots`]), on listening sockets whose connections send at
//! once ([`bind`]).
//!
//! `TCP_NODELAY`: Ballista's scheduler serves through axum, and a tonic
//! server handed a bound listener ignores its builder's setting; both left
//! Nagle's algorithm on. A reply whose last frame (gRPC's trailers) followed
//! its data in a small second segment then waited for the client's delayed
//! acknowledgement — 40 ms on Linux, on every job's result fetch and every
//! question to the scheduler: more than half of a small statement's time.
//! The option is set on the listening socket, which Linux copies to every
//! connection it accepts.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::{create_scheduler, start_grpc_service_with_listener};
use ballista_scheduler::state::SchedulerState;
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
use tokio::net::{TcpListener, TcpSocket};

use crate::config::SentioConfig;
use crate::error::{Result, SentioError};
use crate::session::configure_scheduler;

/// How many connections may wait to be accepted (the kernel caps it at
/// `net.core.somaxconn`).
const BACKLOG: u32 = 1024;

/// A socket listening on `addr` whose accepted connections have
/// `TCP_NODELAY` set. Port 0 picks a free port ([`TcpListener::local_addr`]).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let listener = sentio_sql::serve::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
/// assert_ne!(listener.local_addr().unwrap().port(), 0);
/// # });
/// ```
pub async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    // As `TcpListener::bind` does: a restarted service can take its port
    // back while connections of the last one linger in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Ballista's scheduler with Sentio's session ([`configure_scheduler`]),
/// serving on `listener` (from [`bind`]): the future serves until the
/// process ends or the service fails; [`TaskSlots`] counts its executors'
/// slots for sessions planned in this process. Errors here are a
/// configuration the scheduler refuses or a cluster state it cannot set up.
pub async fn scheduler(
    listener: TcpListener,
    config: SchedulerConfig,
    sentio: &SentioConfig,
) -> Result<(impl Future<Output = ballista_core::error::Result<()>> + use<>, TaskSlots)> {
    let config = configure_scheduler(config, sentio)?;
    let fail = |e: ballista_core::error::BallistaError| SentioError::Scheduler(e.to_string());
    config.validate().map_err(fail)?;
    let cluster = BallistaCluster::new_from_config(&config).await.map_err(fail)?;
    let scheduler =
        create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(cluster, Arc::new(config)).await.map_err(fail)?;
    let slots = TaskSlots(Arc::clone(&scheduler.state));
    Ok((start_grpc_service_with_listener(listener, scheduler), slots))
}

/// The task slots (vcores) of the executors registered with a scheduler
/// running in this process, as it knows them now.
#[derive(Clone)]
pub struct TaskSlots(Arc<SchedulerState<LogicalPlanNode, PhysicalPlanNode>>);

impl TaskSlots {
    /// Their sum; 0 before any executor has registered (or if the
    /// scheduler's cluster state cannot say).
    pub async fn count(&self) -> usize {
        let executors = self.0.executor_manager.get_executors_state().await.unwrap_or_default();
        executors.iter().map(|(metadata, _, _)| metadata.specification.vcores as usize).sum()
    }
}

impl std::fmt::Debug for TaskSlots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TaskSlots")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_connections_send_at_once() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_client, accepted) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        let (stream, _) = accepted.unwrap();
        assert!(stream.nodelay().unwrap(), "an accepted connection inherits TCP_NODELAY");
    }

    #[tokio::test]
    async fn a_port_in_use_is_an_error() {
        let first = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let taken = first.local_addr().unwrap();
        assert!(bind(taken).await.is_err());
    }
}
