//! Ctrl-C, `SIGTERM` and `SIGHUP` for the `sentio` command.
//!
//! Once [`listen`] has run, a signal that arrives while a statement runs is
//! delivered to that statement ([`Statement::interrupted`]): the runner
//! cancels the statement's cluster job, as a timeout does, and the
//! statement fails with [`CliError::Interrupted`](crate::CliError::Interrupted) —
//! a script stops there, the interactive prompt returns to its prompt. A
//! signal that arrives when no statement runs, or a second one while the
//! first is being handled, ends the command ([`command_interrupted`]). Either
//! way the process leaves through its normal path — the in-process
//! cluster's temporary folder is removed — with status 130 (Ctrl-C), 143
//! (`SIGTERM`) or 129 (`SIGHUP`).
//!
//! Without [`listen`] (a library user, unit tests) no signal is intercepted
//! and the futures here never complete.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::watch;

/// A signal that stops work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// `SIGINT`, what Ctrl-C on a terminal sends.
    Interrupt,
    /// `SIGTERM`, what `kill`, `timeout` and service managers send.
    Terminate,
    /// `SIGHUP`, what a closing terminal (a dropped SSH session) sends.
    Hangup,
}

impl Signal {
    /// How messages name the signal.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "Ctrl-C (SIGINT)",
            Signal::Terminate => "SIGTERM",
            Signal::Hangup => "SIGHUP",
        }
    }

    /// The exit status of a process that a signal stopped: 128 + its number.
    ///
    /// ```
    /// use sentio_cli::interrupt::Signal;
    /// assert_eq!(Signal::Interrupt.exit_code(), 130);
    /// assert_eq!(Signal::Terminate.exit_code(), 143);
    /// assert_eq!(Signal::Hangup.exit_code(), 129);
    /// ```
    pub fn exit_code(self) -> u8 {
        match self {
            Signal::Interrupt => 128 + 2,
            Signal::Terminate => 128 + 15,
            Signal::Hangup => 128 + 1,
        }
    }

    /// Whether the signal asks the whole program to end (all but Ctrl-C,
    /// which at the prompt only stops the statement).
    pub fn ends_the_program(self) -> bool {
        self != Signal::Interrupt
    }
}

/// How many signals went where; the last one's kind.
#[derive(Debug, Clone, Copy, Default)]
struct Delivered {
    to_statement: u64,
    to_command: u64,
    last: Option<Signal>,
}

struct State {
    delivered: watch::Sender<Delivered>,
    /// Statements being watched (0 or 1 in the CLI).
    running: AtomicUsize,
    /// A signal went to the running statement, which has not ended yet.
    interrupting: AtomicBool,
}

static STATE: OnceLock<State> = OnceLock::new();

/// Intercepts `SIGINT`, `SIGTERM` and `SIGHUP` from now on, for the whole process
/// (their default action, ending the process at once, no longer applies).
/// Must run inside a Tokio runtime; a second call does nothing.
pub fn listen() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    if STATE.get().is_some() {
        return Ok(());
    }
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let state = State {
        delivered: watch::Sender::new(Delivered::default()),
        running: AtomicUsize::new(0),
        interrupting: AtomicBool::new(false),
    };
    if STATE.set(state).is_err() {
        return Ok(());
    }
    tokio::spawn(async move {
        loop {
            let signal = tokio::select! {
                Some(()) = int.recv() => Signal::Interrupt,
                Some(()) = term.recv() => Signal::Terminate,
                Some(()) = hup.recv() => Signal::Hangup,
                else => break,
            };
            deliver(signal);
        }
    });
    Ok(())
}

/// Sends `signal` to the running statement, or to the command when none
/// runs or the statement already has one.
fn deliver(signal: Signal) {
    let Some(st) = STATE.get() else { return };
    let to_statement = st.running.load(Ordering::SeqCst) > 0 && !st.interrupting.swap(true, Ordering::SeqCst);
    st.delivered.send_modify(|d| {
        d.last = Some(signal);
        if to_statement {
            d.to_statement += 1;
        } else {
            d.to_command += 1;
        }
    });
}

/// Resolves when a signal ends the command (see the module docs); never
/// without [`listen`].
pub async fn command_interrupted() -> Signal {
    let Some(st) = STATE.get() else { return std::future::pending().await };
    let mut rx = st.delivered.subscribe();
    let seen = rx.borrow_and_update().to_command;
    loop {
        if rx.changed().await.is_err() {
            return std::future::pending().await;
        }
        let d = *rx.borrow_and_update();
        if d.to_command > seen {
            return d.last.unwrap_or(Signal::Interrupt);
        }
    }
}

/// A statement that signals are delivered to while this lives.
pub struct Statement {
    rx: Option<watch::Receiver<Delivered>>,
    seen: u64,
    taken: bool,
}

impl Statement {
    /// Marks a statement as running.
    pub fn start() -> Statement {
        let Some(st) = STATE.get() else { return Statement { rx: None, seen: 0, taken: false } };
        let mut rx = st.delivered.subscribe();
        let seen = rx.borrow_and_update().to_statement;
        st.running.fetch_add(1, Ordering::SeqCst);
        Statement { rx: Some(rx), seen, taken: false }
    }

    /// Resolves when a signal is delivered to the statement; never without
    /// [`listen`].
    pub async fn interrupted(&mut self) -> Signal {
        let Some(rx) = self.rx.as_mut() else { return std::future::pending().await };
        loop {
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
            let d = *rx.borrow_and_update();
            if d.to_statement > self.seen {
                self.taken = true;
                return d.last.unwrap_or(Signal::Interrupt);
            }
        }
    }
}

impl Drop for Statement {
    fn drop(&mut self) {
        let (Some(st), Some(rx)) = (STATE.get(), self.rx.as_ref()) else { return };
        let d = *rx.borrow();
        // A signal that reached the statement as it was ending, too late to
        // interrupt it, still stops the command.
        let missed = d.to_statement > self.seen && !self.taken;
        if st.running.fetch_sub(1, Ordering::SeqCst) == 1 {
            st.interrupting.store(false, Ordering::SeqCst);
        }
        if missed {
            st.delivered.send_modify(|d| d.to_command += 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn within<T>(f: impl std::future::Future<Output = T>) -> Option<T> {
        tokio::time::timeout(Duration::from_millis(200), f).await.ok()
    }

    /// Where signals go; one test, since the state is the process's.
    #[tokio::test]
    async fn signals_go_to_the_statement_then_to_the_command() {
        listen().unwrap();
        // No statement: the command gets it.
        let command = tokio::spawn(command_interrupted());
        tokio::task::yield_now().await;
        deliver(Signal::Terminate);
        assert_eq!(command.await.unwrap(), Signal::Terminate);

        // A running statement gets the first; the second, while the first
        // is being handled, ends the command.
        let mut statement = Statement::start();
        let command = tokio::spawn(command_interrupted());
        tokio::task::yield_now().await;
        deliver(Signal::Interrupt);
        assert_eq!(within(statement.interrupted()).await, Some(Signal::Interrupt));
        assert!(!command.is_finished());
        deliver(Signal::Interrupt);
        assert_eq!(command.await.unwrap(), Signal::Interrupt);
        drop(statement);

        // The next statement starts afresh.
        let mut statement = Statement::start();
        assert_eq!(within(statement.interrupted()).await, None);
        deliver(Signal::Interrupt);
        assert_eq!(within(statement.interrupted()).await, Some(Signal::Interrupt));
        drop(statement);

        // A signal that reached a statement too late to stop it ends the command.
        let statement = Statement::start();
        let command = tokio::spawn(command_interrupted());
        tokio::task::yield_now().await;
        deliver(Signal::Interrupt);
        drop(statement);
        assert_eq!(within(command).await.map(Result::unwrap), Some(Signal::Interrupt));
    }
}
