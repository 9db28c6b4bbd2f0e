//! Latency histograms, their transfer between processes, and /proc sampling of the server.

use hdrhistogram::Histogram;
use std::time::{SystemTime, UNIX_EPOCH};

/// Latency range recorded: 1 µs to 120 s, 2 significant digits (1 % resolution keeps each
/// per-connection histogram ~10 KB, so 18,000 of them fit comfortably).
pub fn new_histogram() -> Histogram<u32> {
    Histogram::new_with_bounds(1, 120_000_000, 2).expect("valid histogram bounds")
}

/// A histogram with 64-bit counts for merged totals.
pub fn new_total() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 2).expect("valid histogram bounds")
}

/// Records `us` (clamped into range; a negative latency from clock rounding counts as 1 µs).
pub fn record(h: &mut Histogram<u32>, us: i64) {
    let v = us.clamp(1, 120_000_000) as u64;
    let _ = h.record(v);
}

/// Microseconds since the Unix epoch (the clock the server's UUIDv7 ids and the publishers'
/// timestamps use; everything runs on one machine).
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// The histogram as (value, count) pairs, for the JSON line a worker sends back.
pub fn to_pairs<C: hdrhistogram::Counter>(h: &Histogram<C>) -> Vec<(u64, u64)> {
    h.iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value().as_u64()))
        .collect()
}

/// Adds (value, count) pairs to `total`.
pub fn add_pairs(total: &mut Histogram<u64>, pairs: &[(u64, u64)]) {
    for &(v, n) in pairs {
        let _ = total.record_n(v.clamp(1, 120_000_000), n);
    }
}

/// Resident set size of `pid` in KiB (`VmRSS` in /proc/<pid>/status).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// User + system CPU time of `pid` in seconds (/proc/<pid>/stat utime + stime).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name: state is [0], utime [11], stime [12].
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf only reads a constant of the running system.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some(ticks as f64 / if hz > 0 { hz as f64 } else { 100.0 })
}

/// Milliseconds with one decimal, from microseconds.
pub fn ms(us: u64) -> f64 {
    (us as f64 / 100.0).round() / 10.0
}
