//! Operations telemetry: logs through `tracing` (text for people, JSON for log shippers) and
//! Prometheus metrics ([`metrics`]), with process figures read from `/proc` ([`process`]).
//!
//! A leaf like `security` or `time`: every layer records into it, it calls none of them, so
//! recording never creates an import loop.

pub mod metrics;
pub mod process;

use std::io::IsTerminal;

use crate::config::LogFormat;

/// Installs the global log subscriber once (later calls are ignored) and, when `metrics_on`,
/// the metrics recorder (off: no recorder, every metric handle a no-op). `RUST_LOG` filters
/// (default `info`; `access=off` silences the access log). Colours only when stdout is a
/// terminal, so files and log collectors get plain text.
pub fn init(format: LogFormat, metrics_on: bool) {
    if metrics_on {
        metrics::preregister();
    } else {
        metrics::disable();
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::stdout().is_terminal();
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Text => builder.with_target(false).with_ansi(ansi).try_init(),
        // One object per line: the event's fields at the top level, the enclosing request
        // span (with its request id) under "span".
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_ansi(false)
            .try_init(),
    };
}
