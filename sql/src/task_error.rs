//! A task's error, told in plain words across the cluster.
//!
//! Ballista reports a failed task to the scheduler, and the scheduler to the
//! client, as the `Debug` text of the error, so an error raised on an
//! executor reached the analyst as
//! `Job 038… failed: Job failed due to stage 1 failed: Task failed due to
//! runtime execution error: DataFusionError(Shared(External(ArrowError(
//! CastError("Cannot cast string '1x' to value of Int32 type")))))`.
//!
//! On the executor, [`for_scheduler`] turns a task's error into one whose
//! `Debug` text is its message between `⟨` and `⟩`; on the client,
//! [`describe`] finds that message in the job's failure and says it with
//! the job and stage it came from:
//! `Cast error: Cannot cast string '1x' to value of Int32 type (job 038…,
//! stage 1)`. Errors that Ballista itself acts on — a shuffle fetch
//! failure, which reruns the stage that wrote the lost output, and I/O
//! errors, which it retries — pass unchanged.

use std::fmt;

use ballista_core::error::BallistaError;
use datafusion::error::DataFusionError;

/// Where Ballista's report of a task failure puts the error's `Debug` text.
const TASK_FAILED: &str = "Task failed due to runtime execution error: DataFusionError(External(";
const OPEN: char = '⟨';
const CLOSE: char = '⟩';

/// The message of a failed task, whose `Debug` text is the message marked
/// for [`describe`].
struct TaskFailure(String);

impl fmt::Debug for TaskFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{OPEN}{}{CLOSE}", self.0)
    }
}

impl fmt::Display for TaskFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TaskFailure {}

/// The error a task reports to the scheduler: `e`'s message, plainly, or
/// `e` itself where Ballista acts on its kind (shuffle fetch failures, I/O).
pub fn for_scheduler(e: DataFusionError) -> DataFusionError {
    if ballista_acts_on(&e) {
        return e;
    }
    DataFusionError::External(Box::new(TaskFailure(message(&e))))
}

/// Whether Ballista's executor treats `e` as a kind of its own: a shuffle
/// fetch failure or an I/O error, seen through DataFusion's and Ballista's
/// wrappers as Ballista looks for them.
fn ballista_acts_on(e: &DataFusionError) -> bool {
    match e.find_root() {
        DataFusionError::IoError(_) => true,
        DataFusionError::External(inner) => match inner.downcast_ref::<BallistaError>() {
            Some(BallistaError::FetchFailed(..) | BallistaError::IoError(_)) => true,
            Some(BallistaError::DataFusionError(d)) => ballista_acts_on(d),
            _ => false,
        },
        _ => false,
    }
}

/// The innermost message of `e`, without DataFusion's "External error: "
/// and Ballista's "DataFusion error: " wrappers.
fn message(e: &DataFusionError) -> String {
    match e.find_root() {
        DataFusionError::External(inner) => match inner.downcast_ref::<BallistaError>() {
            Some(BallistaError::DataFusionError(d)) => message(d),
            _ => inner.to_string(),
        },
        other => other.strip_backtrace(),
    }
}

/// `e` as the analyst reads it: a task's failure as its message and where
/// it happened, anything else as DataFusion says it.
///
/// ```
/// use datafusion::error::DataFusionError;
/// use sentio_sql::task_error::describe;
///
/// let failed = DataFusionError::Execution(
///     "Job 03Ab failed: Job failed due to stage 2 failed: Task failed due to runtime execution \
///      error: DataFusionError(External(⟨opdb.t: column \"k\": out of range⟩))".into(),
/// );
/// assert_eq!(describe(&failed), "opdb.t: column \"k\": out of range (job 03Ab, stage 2)");
/// assert_eq!(describe(&DataFusionError::Plan("no such table".into())), "Error during planning: no such table");
/// ```
pub fn describe(e: &DataFusionError) -> String {
    let text = e.to_string();
    plain(&text).or_else(|| scheduler_gone(&text)).or_else(|| store_unreachable(&text)).unwrap_or(text)
}

/// The text of `text` from `start` to the next `end`.
fn between<'a>(text: &'a str, start: &str, end: char) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let rest = &text[from..];
    Some(&rest[..rest.find(end)?])
}

/// A job the scheduler could not plan because the lake's object store did
/// not answer, said in words: Ballista reports it as the `Debug` text of the
/// error (`DataFusionError(ObjectStore(Generic { store: "S3", source:
/// ListRequest { source: RetryError(…uri: Some(…), retries: 4, …
/// ConnectionRefused…`).
fn store_unreachable(text: &str) -> Option<String> {
    let debug = &text[text.find("ObjectStore(")?..];
    let store = between(debug, "store: \"", '"').unwrap_or("object");
    let why =
        between(debug, "message: \"", '"').or_else(|| between(debug, "ConnectError(\"", '"')).unwrap_or("no answer");
    let mut at = String::new();
    if let Some(uri) = between(debug, "uri: Some(", ')') {
        let (base, query) = uri.split_once('?').unwrap_or((uri, ""));
        at.push_str(&format!(" at {base}"));
        if let Some(prefix) = query.split('&').find_map(|kv| kv.strip_prefix("prefix=")) {
            at.push_str(&format!(", listing {}", prefix.replace("%2F", "/").replace("%20", " ")));
        }
    }
    let retries = between(debug, "retries: ", ',').map(|r| format!(" after {r} retries")).unwrap_or_default();
    let job = text.split("Job ").nth(1).and_then(|s| s.split(' ').next()).filter(|j| !j.is_empty());
    let step = if text.contains("Error planning job") { ", while planning" } else { "" };
    let job = job.map(|j| format!(" (job {j}{step})")).unwrap_or_default();
    Some(format!(
        "the lake's {store} store did not answer ({why}){at}{retries}: check that it is up and that the cluster can \
         reach it{job}"
    ))
}

/// The error of a client whose scheduler stopped answering mid-statement
/// (gRPC's `Unavailable`), in words: Ballista's scheduler keeps its jobs in
/// memory, so a restarted one has lost the statement's job.
fn scheduler_gone(text: &str) -> Option<String> {
    // A call in flight when the scheduler died does not end as
    // `Unavailable` but with whatever code the transport gave it (`Unknown`
    // "transport error", `Cancelled` "operation was canceled", …): any
    // status whose source is a transport error over a connection that broke.
    let broken = text.contains("tonic::transport::Error")
        && ["BrokenPipe", "ConnectionReset", "connection closed"].iter().any(|b| text.contains(b));
    let start = text.find("Status { code: Unavailable").or_else(|| text.find("Status { code: ").filter(|_| broken))?;
    let status = &text[start..];
    let message = status.split("message: \"").nth(1).and_then(|s| s.split('"').next()).unwrap_or("unavailable");
    Some(format!(
        "the cluster's scheduler stopped answering ({message}); a scheduler that restarts loses the jobs it ran — \
         run the statement again once it is back"
    ))
}

fn plain(text: &str) -> Option<String> {
    let start = text.find(TASK_FAILED)? + TASK_FAILED.len();
    let rest = text[start..].strip_prefix(OPEN)?;
    let message = &rest[..rest.rfind(CLOSE)?];
    let job = text.split("Job ").nth(1).and_then(|s| s.split(' ').next()).filter(|j| !j.is_empty());
    let stage = text.split("due to stage ").nth(1).and_then(|s| s.split(' ').next());
    Some(match (job, stage) {
        (Some(job), Some(stage)) => format!("{message} (job {job}, stage {stage})"),
        (Some(job), None) => format!("{message} (job {job})"),
        _ => message.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::error::ArrowError;

    use super::*;

    /// What Ballista 55 makes of a task's error on its way to the client.
    fn as_reported(e: DataFusionError) -> DataFusionError {
        let task =
            format!("Task failed due to runtime execution error: {:?}", BallistaError::DataFusionError(Box::new(e)));
        DataFusionError::Execution(format!("Job 03Xy failed: Job failed due to stage 3 failed: {task}"))
    }

    #[test]
    fn a_scheduler_that_went_away_is_said_in_words() {
        // As a client polling a killed scheduler's job status got it.
        let e = DataFusionError::Execution(
            "Status { code: Unavailable, message: \"tcp connect error\", source: Some(tonic::transport::Error(\
             Transport, ConnectError(\"tcp connect error\", 127.0.0.1:51200, Os { code: 111 }))) }"
                .into(),
        );
        assert_eq!(
            describe(&e),
            "the cluster's scheduler stopped answering (tcp connect error); a scheduler that restarts loses the \
             jobs it ran — run the statement again once it is back"
        );
    }

    #[test]
    fn a_call_cut_off_by_a_dying_scheduler_is_said_in_words() {
        let e = DataFusionError::Execution(
            "Status { code: Unknown, message: \"transport error\", source: Some(tonic::transport::Error(Transport, \
             hyper::Error(Io, Custom { kind: BrokenPipe, error: \"stream closed because of a broken pipe\" }))) }"
                .into(),
        );
        assert!(
            describe(&e).starts_with("the cluster's scheduler stopped answering (transport error)"),
            "{}",
            describe(&e)
        );
        // The same cut seen as a cancelled call (a CI run's shape).
        let cancelled = DataFusionError::Execution(
            "Status { code: Cancelled, message: \"operation was canceled\", source: Some(tonic::transport::Error(\
             Transport, hyper::Error(Canceled, \"connection closed\"))) }"
                .into(),
        );
        assert!(
            describe(&cancelled).starts_with("the cluster's scheduler stopped answering (operation was canceled)"),
            "{}",
            describe(&cancelled)
        );
        // A transport error whose connection did not break is left as it is.
        let other = DataFusionError::Execution("Status { code: Unknown, message: \"transport error\" }".into());
        assert!(!describe(&other).contains("scheduler"), "{}", describe(&other));
    }

    #[test]
    fn a_task_error_reaches_the_client_as_its_message() {
        let cast = ArrowError::CastError("Cannot cast string '1x' to value of Int32 type".into());
        let e = DataFusionError::Shared(Arc::new(DataFusionError::ArrowError(Box::new(cast), None)));
        assert_eq!(
            describe(&as_reported(for_scheduler(e))),
            "Arrow error: Cast error: Cannot cast string '1x' to value of Int32 type (job 03Xy, stage 3)"
        );
    }

    #[test]
    fn an_external_error_says_only_its_own_message() {
        let e = DataFusionError::Shared(Arc::new(DataFusionError::External(Box::new(TaskFailure(
            "opdb.t: column \"k\": (a) ⟩ b".into(),
        )))));
        assert_eq!(describe(&as_reported(for_scheduler(e))), "opdb.t: column \"k\": (a) ⟩ b (job 03Xy, stage 3)");
    }

    #[test]
    fn a_ballista_wrapped_error_says_its_message() {
        let cast = ArrowError::CastError("Cannot cast string '1x' to value of Int32 type".into());
        let e = DataFusionError::Shared(Arc::new(DataFusionError::External(Box::new(BallistaError::ArrowError(
            Box::new(cast),
        )))));
        let said = describe(&as_reported(for_scheduler(e)));
        assert!(said.ends_with("Cannot cast string '1x' to value of Int32 type (job 03Xy, stage 3)"), "{said}");
        assert!(!said.contains("Shared") && !said.contains("External"), "{said}");
    }

    #[test]
    fn errors_ballista_acts_on_pass_unchanged() {
        let fetch = BallistaError::FetchFailed("ex1".into(), 1, 2, "gone".into());
        let e = for_scheduler(DataFusionError::External(Box::new(fetch)));
        assert!(matches!(e.find_root(), DataFusionError::External(i) if i.downcast_ref::<BallistaError>().is_some()));
        let io = for_scheduler(DataFusionError::IoError(std::io::Error::other("disk")));
        assert!(matches!(io, DataFusionError::IoError(_)));
        let wrapped = BallistaError::DataFusionError(Box::new(DataFusionError::External(Box::new(
            BallistaError::FetchFailed("ex1".into(), 1, 2, "gone".into()),
        ))));
        let e = for_scheduler(DataFusionError::Shared(Arc::new(DataFusionError::External(Box::new(wrapped)))));
        assert!(matches!(e, DataFusionError::Shared(_)));
    }

    #[test]
    fn a_store_that_does_not_answer_at_planning_is_said_in_words() {
        let e = DataFusionError::Execution(
            "Job 038J failed: Error planning job 038J: DataFusionError(ObjectStore(Generic { store: \"S3\", source: \
             ListRequest { source: RetryError(RetryErrorImpl { method: GET, uri: Some(http://127.0.0.1:42749/\
             sentio-gone?list-type=2&prefix=lake%2Ftraining%2Fframes%2F), retries: 4, max_retries: 4, elapsed: \
             557.894486ms, retry_timeout: 20s, inner: Http(HttpError { kind: Connect, source: reqwest::Error { kind: \
             Request, source: hyper_util::client::legacy::Error(Connect, ConnectError(\"tcp connect error\", \
             127.0.0.1:42749, Os { code: 111, kind: ConnectionRefused, message: \"Connection refused\" })) } }) }) } }))"
                .into(),
        );
        assert_eq!(
            describe(&e),
            "the lake's S3 store did not answer (Connection refused) at http://127.0.0.1:42749/sentio-gone, listing \
             lake/training/frames/ after 4 retries: check that it is up and that the cluster can reach it (job 038J, \
             while planning)"
        );
    }

    #[test]
    fn other_errors_are_said_as_before() {
        let e = DataFusionError::Execution("Job 1 failed: executor lost".into());
        assert_eq!(describe(&e), "Execution error: Job 1 failed: executor lost");
    }
}
