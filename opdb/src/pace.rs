//! Pacing: how much of the operational DB's time bulk work may take.
//!
//! A bulk read or write works in units (a batch of rows fetched, a chunk of
//! `COPY` data sent, a slice of the publishing `INSERT`). After each unit a
//! [`Pacer`] sleeps so that, over time, the work takes at most a `duty`
//! share of the wall clock: with a duty of 0.25 a unit that took 40 ms is
//! followed by a 120 ms pause. All the sessions of one process draw on one
//! [`Budget`]: however many ranges an executor reads and stages at once,
//! their units together take at most the duty (two sessions at a duty of 0.5
//! each work a quarter of the time), so a process never keeps more than that
//! share of one database backend busy.
//!
//! While a read pauses, the database's backend blocks on its socket and uses
//! no CPU; while a write pauses, the WAL it wrote is flushed by the database
//! in the background, so the application's commits do not queue behind it.
//!
//! The duty is set with `SENTIO_OPDB_BULK_DUTY` (or `opdb_bulk_duty` in
//! `sentio.toml`); 1 turns pacing off.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// The share of wall time bulk work may take when nothing is configured.
/// At 0.5 an application's p99 on a 2-core host with a fast idle baseline
/// (0.6 ms) rose 2.1–2.3x while Sentio extracted and wrote 1M rows; at
/// 0.35, 1.7x (tests/opdb.rs, "never blocks"; the target is 2x).
pub const DEFAULT_DUTY: f64 = 0.3;

/// The longest single pause: a slow unit (a cold cache, a big row) must not
/// stall a job for long.
const MAX_PAUSE: Duration = Duration::from_secs(2);

/// A share of wall time, in `(0, 1]`.
///
/// ```
/// use sentio_opdb::pace::Duty;
/// assert_eq!(Duty::parse("0.25").unwrap().get(), 0.25);
/// assert!(Duty::parse("0").is_err());
/// assert!(Duty::parse("1.5").is_err());
/// assert!(Duty::parse("half").is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Duty(f64);

impl Default for Duty {
    fn default() -> Self {
        Self(DEFAULT_DUTY)
    }
}

impl Duty {
    /// A duty from a number in `(0, 1]`.
    pub fn new(share: f64) -> Result<Self, String> {
        if share.is_finite() && share > 0.0 && share <= 1.0 {
            Ok(Self(share))
        } else {
            Err(format!("the operational DB bulk duty must be a share of time in (0, 1], e.g. 0.5; got {share}"))
        }
    }

    /// Parses a duty such as `0.5`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let share = s
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("the operational DB bulk duty must be a number in (0, 1], e.g. 0.5; got {s:?}"))?;
        Self::new(share)
    }

    /// The share.
    pub fn get(self) -> f64 {
        self.0
    }

    /// The pause that keeps a unit of `worked` within the duty.
    ///
    /// ```
    /// use std::time::Duration;
    /// use sentio_opdb::pace::Duty;
    /// let quarter = Duty::new(0.25).unwrap();
    /// assert_eq!(quarter.pause_after(Duration::from_millis(40)), Duration::from_millis(120));
    /// assert_eq!(Duty::new(1.0).unwrap().pause_after(Duration::from_millis(40)), Duration::ZERO);
    /// ```
    pub fn pause_after(self, worked: Duration) -> Duration {
        if self.0 >= 1.0 {
            return Duration::ZERO;
        }
        worked.mul_f64((1.0 - self.0) / self.0).min(MAX_PAUSE)
    }
}

/// The bulk-work budget of one process: every session's [`Pacer`] draws on
/// it, so their units together stay within the duty.
///
/// It is a clock: each unit of work moves the time at which the budget is
/// paid off forward by the unit and the pause it owes; a session that ends a
/// unit rests until then.
#[derive(Debug, Clone)]
pub struct Budget {
    duty: Duty,
    paid_off_at: Arc<Mutex<Instant>>,
}

impl Default for Budget {
    fn default() -> Self {
        Self::new(Duty::default())
    }
}

impl Budget {
    /// A budget of `duty`, with nothing owed.
    pub fn new(duty: Duty) -> Self {
        Self { duty, paid_off_at: Arc::new(Mutex::new(Instant::now())) }
    }

    /// A pacer for one session's bulk work, whose first unit starts now.
    pub fn pacer(&self) -> Pacer {
        Pacer { budget: self.clone(), since: Instant::now() }
    }

    /// Charges a unit of `worked` that ended now; returns when the budget is
    /// paid off. A duty of 1 keeps no account: unpaced sessions never rest,
    /// however many work at once.
    fn charge(&self, worked: Duration) -> Instant {
        let now = Instant::now();
        if self.duty.get() >= 1.0 {
            return now;
        }
        let cost = worked + self.duty.pause_after(worked);
        // A poisoned lock only means another session panicked mid-update of
        // an Instant: the value is still a valid time.
        let mut at = self.paid_off_at.lock().unwrap_or_else(|e| e.into_inner());
        let started = now.checked_sub(worked).unwrap_or(now);
        *at = (*at).max(started) + cost;
        *at
    }
}

/// Paces one session's bulk work: call [`Pacer::pause`] after each unit.
#[derive(Debug)]
pub struct Pacer {
    budget: Budget,
    since: Instant,
}

impl Pacer {
    /// Ends a unit of work: sleeps as the budget requires and starts the next.
    pub async fn pause(&mut self) {
        let owed = self.end_unit();
        self.rest(owed).await;
    }

    /// Whether this pacer paces at all (a duty below 1).
    pub fn paced(&self) -> bool {
        self.budget.duty.get() < 1.0
    }

    /// Ends a unit whose work the database does after the client handed it
    /// over (a piece of `COPY` data): like [`Pacer::pause`], but rests at
    /// least `floor`, the time the database takes to absorb the unit, so
    /// that the next one does not queue behind it and the backend's work
    /// stays in short bursts. Unpaced, it does not rest.
    pub async fn pause_at_least(&mut self, floor: Duration) {
        let owed = self.end_unit();
        let floor = if self.paced() { floor } else { Duration::ZERO };
        self.rest(owed.max(floor)).await;
    }

    /// Leaves `waited` (e.g. time spent waiting for input rows) out of the
    /// current unit: it was not the database's work.
    pub fn exclude(&mut self, waited: Duration) {
        self.since = (self.since + waited).min(Instant::now());
    }

    /// Ends a unit of work and returns the rest it owes, for a caller that
    /// has more to do before resting (time spent on it counts as rest).
    pub fn end_unit(&mut self) -> Duration {
        let paid_off = self.budget.charge(self.since.elapsed());
        self.since = Instant::now();
        paid_off.saturating_duration_since(self.since)
    }

    /// Rests for what is left of `owed` since [`Pacer::end_unit`], then
    /// starts the next unit.
    pub async fn rest(&mut self, owed: Duration) {
        let left = owed.saturating_sub(self.since.elapsed());
        if !left.is_zero() {
            tokio::time::sleep(left).await;
        }
        self.since = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_are_capped() {
        let tiny = Duty::new(0.01).unwrap();
        assert_eq!(tiny.pause_after(Duration::from_secs(10)), MAX_PAUSE);
    }

    #[tokio::test]
    async fn a_pacer_keeps_work_within_its_duty() {
        let mut p = Budget::new(Duty::new(0.5).unwrap()).pacer();
        let start = Instant::now();
        tokio::time::sleep(Duration::from_millis(30)).await; // the unit of work
        p.pause().await;
        assert!(start.elapsed() >= Duration::from_millis(60), "{:?}", start.elapsed());
        let mut off = Budget::new(Duty::new(1.0).unwrap()).pacer();
        let start = Instant::now();
        tokio::time::sleep(Duration::from_millis(30)).await;
        off.pause().await;
        assert!(start.elapsed() < Duration::from_millis(60), "{:?}", start.elapsed());
    }

    /// A unit the database absorbs after the client handed it over rests
    /// at least its floor when paced, however quick the hand-over; unpaced,
    /// not at all.
    #[tokio::test]
    async fn a_floor_holds_only_when_paced() {
        let floor = Duration::from_millis(40);
        let mut p = Budget::new(Duty::new(0.5).unwrap()).pacer();
        assert!(p.paced());
        let start = Instant::now();
        p.pause_at_least(floor).await;
        assert!(start.elapsed() >= floor, "{:?}", start.elapsed());
        let mut off = Budget::new(Duty::new(1.0).unwrap()).pacer();
        assert!(!off.paced());
        let start = Instant::now();
        off.pause_at_least(floor).await;
        assert!(start.elapsed() < floor, "{:?}", start.elapsed());
    }

    /// Two sessions of one budget working at once each rest for both: at a
    /// duty of 0.5, two 30 ms units are paid off 120 ms after they began.
    /// Sessions of separate budgets rest only for their own unit, and those
    /// of an unpaced budget (duty 1) not at all.
    #[tokio::test]
    async fn sessions_of_one_budget_share_its_duty() {
        async fn two_units(a: &mut Pacer, b: &mut Pacer) -> Duration {
            let start = Instant::now();
            let unit = || tokio::time::sleep(Duration::from_millis(30));
            tokio::join!(
                async {
                    unit().await;
                    a.pause().await
                },
                async {
                    unit().await;
                    b.pause().await
                }
            );
            start.elapsed()
        }
        let shared = Budget::new(Duty::new(0.5).unwrap());
        let took = two_units(&mut shared.pacer(), &mut shared.pacer()).await;
        assert!(took >= Duration::from_millis(120), "{took:?}");
        let half = || Budget::new(Duty::new(0.5).unwrap());
        let took = two_units(&mut half().pacer(), &mut half().pacer()).await;
        assert!(took >= Duration::from_millis(60) && took < Duration::from_millis(115), "{took:?}");
        let off = Budget::new(Duty::new(1.0).unwrap());
        let took = two_units(&mut off.pacer(), &mut off.pacer()).await;
        assert!(took < Duration::from_millis(58), "{took:?}");
    }
}
