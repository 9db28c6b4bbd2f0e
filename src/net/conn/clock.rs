//! A cheap monotonic millisecond clock for queue ages and idle times.
//!
//! Exists so hot paths store a `u64` instead of a 16-byte `Instant`, and compare ages with
//! plain integer arithmetic. One reading is taken per broadcast, not per subscriber.

/// Milliseconds since the first call in this process (never 0, so 0 can mean "none").
pub fn now_ms() -> u64 {
    crate::time::since_start().as_millis() as u64 + 1
}
