//! Timestamps the way the Java reference prints them (`Instant.toString()`), and the
//! process's monotonic clock.

use chrono::{DateTime, SecondsFormat, Timelike, Utc};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Time since the first call in this process, on the monotonic clock: the one epoch the
/// realtime queues (`net::conn::clock`) and the bus's backlog (`bus::backlog`) stamp with.
pub fn since_start() -> Duration {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

/// Java's `Instant.MIN`: what the reference sends as `lastMessageAt` of an empty channel.
pub const INSTANT_MIN: &str = "-1000000000-01-01T00:00:00Z";

/// Current time truncated to microseconds (PostgreSQL's precision), so what we return equals
/// what we store.
pub fn now() -> DateTime<Utc> {
    truncate_micros(Utc::now())
}

/// Drops sub-microsecond digits.
pub fn truncate_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    let nanos = t.nanosecond();
    t.with_nanosecond(nanos - nanos % 1000).unwrap_or(t)
}

/// `yyyy-MM-ddTHH:mm:ss[.fff|.ffffff|.fffffffff]Z`, fraction in groups of three, none when zero.
pub fn format_instant(t: &DateTime<Utc>) -> String {
    let nanos = t.nanosecond() % 1_000_000_000;
    let fmt = if nanos == 0 {
        SecondsFormat::Secs
    } else if nanos.is_multiple_of(1_000_000) {
        SecondsFormat::Millis
    } else if nanos.is_multiple_of(1000) {
        SecondsFormat::Micros
    } else {
        SecondsFormat::Nanos
    };
    t.to_rfc3339_opts(fmt, true)
}

/// Parses an RFC 3339 timestamp (`Z` or an offset).
pub fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| truncate_micros(t.with_timezone(&Utc)))
}

/// serde helpers so DTO fields print Java-style.
pub mod serde_instant {
    use super::*;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_instant(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        parse_instant(&s).ok_or_else(|| serde::de::Error::custom("invalid timestamp"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn java_style_fractions() {
        let base = Utc.with_ymd_and_hms(2025, 6, 8, 14, 20, 48).unwrap();
        assert_eq!(format_instant(&base), "2025-06-08T14:20:48Z");
        let ms = base.with_nanosecond(120_000_000).unwrap();
        assert_eq!(format_instant(&ms), "2025-06-08T14:20:48.120Z");
        let us = base.with_nanosecond(123_456_000).unwrap();
        assert_eq!(format_instant(&us), "2025-06-08T14:20:48.123456Z");
    }

    #[test]
    fn parses_offsets() {
        let t = parse_instant("2025-06-08T16:20:48.123+02:00").unwrap();
        assert_eq!(format_instant(&t), "2025-06-08T14:20:48.123Z");
        assert!(parse_instant("yesterday").is_none());
    }
}
