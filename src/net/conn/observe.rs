//! What the engine tells operators: connection metrics and open/close log lines.
//!
//! Called per connection event and per socket write (never per message), so recording stays
//! a few atomic operations on the hot path (see `telemetry::metrics`).

use std::time::Duration;

use super::clock::now_ms;
use super::queue::{CloseKind, CloseReason};
use super::writer::Progress;
use crate::telemetry::metrics::{self, CloseReason as Closed, Transport};

fn metric_reason(kind: CloseKind) -> Closed {
    match kind {
        CloseKind::Client => Closed::Client,
        CloseKind::SlowBytes => Closed::SlowBytes,
        CloseKind::SlowAge => Closed::SlowAge,
        CloseKind::Revoked => Closed::Revoked,
        CloseKind::Policy => Closed::Policy,
        CloseKind::Error => Closed::Error,
        CloseKind::Timeout => Closed::Timeout,
        CloseKind::Shutdown => Closed::Shutdown,
    }
}

/// A connection passed its handshake.
pub fn opened(t: Transport) {
    metrics::connection_opened(t);
    tracing::debug!(transport = ?t, "realtime connection opened");
}

/// A connection ended. Slow consumers are logged at info (operators want to see them);
/// everything else at debug.
pub fn closed(t: Transport, reason: &CloseReason) {
    metrics::connection_closed(t, metric_reason(reason.kind));
    match reason.kind {
        CloseKind::SlowBytes | CloseKind::SlowAge => tracing::info!(
            transport = ?t,
            reason = reason.kind.as_str(),
            code = reason.code,
            "realtime connection closed: {}",
            reason.text
        ),
        _ => tracing::debug!(
            transport = ?t,
            reason = reason.kind.as_str(),
            code = reason.code,
            "realtime connection closed: {}",
            reason.text
        ),
    }
}

/// One write on a connection.
pub fn wrote(t: Transport, p: &Progress) {
    if p.messages == 0 {
        return;
    }
    metrics::delivered(t, p.messages as u64, p.wire_bytes as u64);
    metrics::queue_bytes(p.message_bytes as u64);
    if let Some(at) = p.oldest_at_ms {
        metrics::publish_to_write(t, Duration::from_millis(now_ms().saturating_sub(at)));
    }
}
