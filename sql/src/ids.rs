//! Names that must not collide, and the time they are stamped with.

/// A unique, time-ordered name for a run, a part or a staging folder: the
/// time in nanoseconds and a number mixed from it and the process id, in hex.
///
/// ```
/// let (a, b) = (sentio_sql::ids::unique_name(), sentio_sql::ids::unique_name());
/// assert_ne!(a, b);
/// assert!(a.chars().all(|c| c.is_ascii_hexdigit() || c == '-'));
/// ```
pub fn unique_name() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let salt = sentio_udfs::hash_fraction_u64(nanos as u64 ^ u64::from(std::process::id()), 7);
    format!("{nanos:x}-{:x}", (salt * 1e15) as u64)
}

/// Now, in microseconds since 1970 (UTC): the timestamps Sentio stores.
pub fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}
