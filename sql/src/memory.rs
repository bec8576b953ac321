//! The memory an executor's tasks may hold: a limit per executor — the
//! `memory_limit` setting, else a share of the machine's memory — split into
//! one pool per task slot. Operators that can spill (sorts, joins,
//! aggregations) spill to the executor's disk when their pool is full; an
//! operator that cannot fails with DataFusion's "resources exhausted" error,
//! which names what it asked for, instead of exhausting the machine.
//!
//! The `sentio-executor` binary hands the limit to Ballista's executor
//! (`--memory-pool-size`), which applies the same per-task policy; the
//! in-process cluster applies [`pool_policy`] itself.

use std::sync::Arc;

use ballista_executor::runtime_cache::MemoryPoolPolicy;
use datafusion::execution::memory_pool::{FairSpillPool, MemoryPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;

/// The share of the machine's memory an executor takes when no limit is set
/// (Ballista's own default).
pub const DEFAULT_FRACTION: f64 = 0.7;

/// Parses a size as people write it: `512MiB`, `4GiB`, `2GB` (powers of
/// 1000), or a number of bytes.
///
/// ```
/// use sentio_sql::memory::parse_size;
/// assert_eq!(parse_size("512MiB"), Ok(512 << 20));
/// assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
/// assert!(parse_size("lots").is_err());
/// ```
pub fn parse_size(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("{text:?} is not a size (e.g. 512MiB, 4GiB): {e}"))
}

/// The machine's memory: `MemTotal` of `/proc/meminfo`, or the cgroup's
/// `memory.max` when that is lower.
pub fn machine_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let total = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)?;
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max").ok().and_then(|v| v.trim().parse::<u64>().ok());
    Some(cgroup.map_or(total, |c| c.min(total)))
}

/// An executor's limit: `configured`, else [`DEFAULT_FRACTION`] of the
/// machine's memory; `None` when neither is known (no pool then).
pub fn executor_limit(configured: Option<u64>) -> Option<u64> {
    configured.or_else(|| machine_memory().map(|m| (m as f64 * DEFAULT_FRACTION) as u64))
}

/// Each task's runtime gets a spilling pool of `limit / slots` for every
/// slot the task takes, so the tasks of a full executor hold `limit` at most.
pub fn pool_policy(limit: u64, slots: usize) -> MemoryPoolPolicy {
    let per_slot = (limit / slots.max(1) as u64).max(1) as usize;
    Arc::new(move |base, _config, slots_taken| {
        let pool: Arc<dyn MemoryPool> =
            Arc::new(FairSpillPool::new(per_slot.saturating_mul(slots_taken.max(1) as usize)));
        RuntimeEnvBuilder::from_runtime_env(&base).with_memory_pool(pool).build_arc()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::memory_pool::MemoryLimit;
    use datafusion::execution::runtime_env::RuntimeEnv;
    use datafusion::prelude::SessionConfig;

    #[test]
    fn each_task_gets_its_slots_share() {
        let policy = pool_policy(400 << 20, 4);
        let base = Arc::new(RuntimeEnv::default());
        for (slots, want) in [(1, 100 << 20), (2, 200 << 20)] {
            let env = policy(Arc::clone(&base), &SessionConfig::new(), slots).unwrap();
            assert!(matches!(env.memory_pool.memory_limit(), MemoryLimit::Finite(n) if n == want));
        }
        assert!(executor_limit(Some(7)) == Some(7));
        assert!(machine_memory().is_some_and(|m| m > 0), "/proc/meminfo is read");
    }
}
