//! Sizes of data as people read them.

/// `n` bytes in binary units.
///
/// ```
/// use sentio_sql::size::human_bytes;
///
/// assert_eq!(human_bytes(10), "10 B");
/// assert_eq!(human_bytes(1536), "1.5 KiB");
/// ```
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[u]) }
}
