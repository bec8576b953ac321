//! Failed password logins slow down the next try of the same user from the
//! same address: each failure doubles the wait (from 50 ms up to 5 s), and a
//! try inside the wait is refused without checking the password. A guessing
//! client so costs the scheduler at most a password check every few
//! seconds, while other users — also from the same office address — log in
//! as before.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The wait after the first failure.
const FIRST_WAIT: Duration = Duration::from_millis(50);
/// The longest wait.
const LONGEST_WAIT: Duration = Duration::from_secs(5);
/// Entries kept before the ones whose wait ended are forgotten.
const KEPT: usize = 10_000;

/// Failed logins by address and user name.
#[derive(Debug, Default)]
pub struct Throttle {
    failures: Mutex<HashMap<(IpAddr, String), Failures>>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    until: Instant,
}

impl Throttle {
    /// `Err(wait)` when `user` from `ip` must wait that long before the
    /// next try is checked.
    pub fn check(&self, ip: IpAddr, user: &str, now: Instant) -> Result<(), Duration> {
        match self.lock().get(&(ip, user.to_string())) {
            Some(f) if f.until > now => Err(f.until - now),
            _ => Ok(()),
        }
    }

    /// Records a failed login of `user` from `ip`.
    pub fn failed(&self, ip: IpAddr, user: &str, now: Instant) {
        let mut failures = self.lock();
        if failures.len() >= KEPT {
            failures.retain(|_, f| f.until > now);
        }
        let f = failures.entry((ip, user.to_string())).or_insert(Failures { count: 0, until: now });
        f.count = f.count.saturating_add(1);
        let wait = FIRST_WAIT.saturating_mul(1 << (f.count - 1).min(16)).min(LONGEST_WAIT);
        f.until = now + wait;
    }

    /// Forgets the failures of `user` from `ip` once it logged in.
    pub fn succeeded(&self, ip: IpAddr, user: &str) {
        self.lock().remove(&(ip, user.to_string()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(IpAddr, String), Failures>> {
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_doubles_the_wait_up_to_the_longest() {
        let t = Throttle::default();
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        let now = Instant::now();
        assert_eq!(t.check(ip, "ana", now), Ok(()));
        t.failed(ip, "ana", now);
        assert_eq!(t.check(ip, "ana", now), Err(Duration::from_millis(50)));
        assert_eq!(t.check(ip, "ana", now + Duration::from_millis(50)), Ok(()));
        t.failed(ip, "ana", now);
        assert_eq!(t.check(ip, "ana", now), Err(Duration::from_millis(100)));
        for _ in 0..20 {
            t.failed(ip, "ana", now);
        }
        assert_eq!(t.check(ip, "ana", now), Err(LONGEST_WAIT));
        // Another user from the same address, and the same user elsewhere,
        // are not held up.
        assert_eq!(t.check(ip, "ben", now), Ok(()));
        assert_eq!(t.check("10.0.0.8".parse().unwrap(), "ana", now), Ok(()));
        t.succeeded(ip, "ana");
        assert_eq!(t.check(ip, "ana", now), Ok(()));
    }
}
