//! Prometheus metrics, rendered at `GET /actuator/prometheus` on the admin listener.
//!
//! Built on the `metrics` facade with `metrics-exporter-prometheus` as the recorder. The
//! connection engine's calls ([`connection_opened`], [`delivered`], ...) run per connection
//! event or per socket write, so they go through handles resolved once into a static: an
//! atomic add on a counter or gauge, a lock-free push into the histogram's atomic block list
//! (one 64-slot block allocated per 64 observations, drained at scrape and by the upkeep
//! thread). No lock, no label lookup, no per-call allocation.
//!
//! Everything sampled rather than counted (database pool, outbox, process) is set by the
//! scrape handler right before [`render`].

use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

use super::process::ProcessSample;

/// A realtime transport: the `transport` label of the connection metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Sse,
    WebSocket,
    SockJsWebSocket,
    SockJsXhrStreaming,
    SockJsXhrPolling,
    SockJsEventSource,
    SockJsHtmlFile,
    SockJsJsonp,
}

impl Transport {
    pub const ALL: [Transport; 8] = [
        Transport::Sse,
        Transport::WebSocket,
        Transport::SockJsWebSocket,
        Transport::SockJsXhrStreaming,
        Transport::SockJsXhrPolling,
        Transport::SockJsEventSource,
        Transport::SockJsHtmlFile,
        Transport::SockJsJsonp,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Transport::Sse => "sse",
            Transport::WebSocket => "websocket",
            Transport::SockJsWebSocket => "sockjs_websocket",
            Transport::SockJsXhrStreaming => "sockjs_xhr_streaming",
            Transport::SockJsXhrPolling => "sockjs_xhr_polling",
            Transport::SockJsEventSource => "sockjs_eventsource",
            Transport::SockJsHtmlFile => "sockjs_htmlfile",
            Transport::SockJsJsonp => "sockjs_jsonp",
        }
    }
}

/// Why a realtime connection ended: the `reason` label of `discodeit_connections_closed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed or went away.
    Client,
    /// Slow consumer: its queue exceeded the byte limit.
    SlowBytes,
    /// Slow consumer: its oldest queued frame exceeded the age limit.
    SlowAge,
    /// The login session was revoked (logout, re-login, role change).
    Revoked,
    /// A protocol or I/O error.
    Error,
    /// Heart-beat or idle timeout.
    Timeout,
    /// Refused by a limit or rule (frame size, authorization).
    Policy,
    /// The server is draining.
    Shutdown,
}

impl CloseReason {
    pub const ALL: [CloseReason; 8] = [
        CloseReason::Client,
        CloseReason::SlowBytes,
        CloseReason::SlowAge,
        CloseReason::Revoked,
        CloseReason::Error,
        CloseReason::Timeout,
        CloseReason::Policy,
        CloseReason::Shutdown,
    ];

    pub fn label(self) -> &'static str {
        match self {
            CloseReason::Client => "client",
            CloseReason::SlowBytes => "slow_bytes",
            CloseReason::SlowAge => "slow_age",
            CloseReason::Revoked => "revoked",
            CloseReason::Error => "error",
            CloseReason::Timeout => "timeout",
            CloseReason::Policy => "policy",
            CloseReason::Shutdown => "shutdown",
        }
    }
}

/// A JWT registry operation: the `operation` label of the registry metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryOp {
    Start,
    EndUser,
    EndSession,
    FindBySession,
    FindByRefresh,
    Rotate,
    IsEnded,
    IsActive,
    OnlineUsers,
    LapsedBetween,
    Ping,
}

impl RegistryOp {
    pub const ALL: [RegistryOp; 11] = [
        RegistryOp::Start,
        RegistryOp::EndUser,
        RegistryOp::EndSession,
        RegistryOp::FindBySession,
        RegistryOp::FindByRefresh,
        RegistryOp::Rotate,
        RegistryOp::IsEnded,
        RegistryOp::IsActive,
        RegistryOp::OnlineUsers,
        RegistryOp::LapsedBetween,
        RegistryOp::Ping,
    ];

    pub fn label(self) -> &'static str {
        match self {
            RegistryOp::Start => "start",
            RegistryOp::EndUser => "end_user",
            RegistryOp::EndSession => "end_session",
            RegistryOp::FindBySession => "find_by_session",
            RegistryOp::FindByRefresh => "find_by_refresh",
            RegistryOp::Rotate => "rotate",
            RegistryOp::IsEnded => "is_ended",
            RegistryOp::IsActive => "is_active",
            RegistryOp::OnlineUsers => "online_users",
            RegistryOp::LapsedBetween => "lapsed_between",
            RegistryOp::Ping => "ping",
        }
    }
}

/// Metric names: the one place dashboards and tests take them from.
pub mod names {
    pub const CONNECTIONS_OPENED: &str = "discodeit_connections_opened_total";
    pub const CONNECTIONS_CLOSED: &str = "discodeit_connections_closed_total";
    pub const CONNECTIONS_OPEN: &str = "discodeit_connections_open";
    pub const DELIVERIES: &str = "discodeit_deliveries_total";
    pub const DELIVERED_BYTES: &str = "discodeit_delivered_bytes_total";
    pub const PUBLISH_TO_WRITE: &str = "discodeit_publish_to_write_seconds";
    pub const QUEUE_BYTES: &str = "discodeit_connection_queue_bytes";
    pub const STOMP_SESSIONS: &str = "discodeit_stomp_sessions";
    pub const STOMP_SUBSCRIPTIONS: &str = "discodeit_stomp_subscriptions";
    pub const HTTP_REQUESTS: &str = "discodeit_http_server_requests_seconds";
    pub const DB_POOL_MAX: &str = "discodeit_db_pool_max_connections";
    pub const DB_POOL_OPEN: &str = "discodeit_db_pool_connections";
    pub const DB_POOL_IN_USE: &str = "discodeit_db_pool_in_use";
    pub const DB_POOL_WAITING: &str = "discodeit_db_pool_waiting";
    pub const OUTBOX_BACKLOG: &str = "discodeit_outbox_backlog_rows";
    pub const OUTBOX_LAG: &str = "discodeit_outbox_relay_lag_seconds";
    pub const DEAD_LETTERS: &str = "discodeit_dead_letters_rows";
    pub const KAFKA_LAG: &str = "discodeit_kafka_consumer_lag";
    pub const FANOUT_WAITS: &str = "discodeit_fanout_waits_total";
    pub const REGISTRY_OPS: &str = "discodeit_jwt_registry_operations_total";
    pub const REGISTRY_ERRORS: &str = "discodeit_jwt_registry_errors_total";
    pub const READY: &str = "discodeit_ready";
    pub const PROCESS_RSS: &str = "process_resident_memory_bytes";
    pub const PROCESS_OPEN_FDS: &str = "process_open_fds";
    pub const PROCESS_MAX_FDS: &str = "process_max_fds";

    /// Every name above (histograms and summaries add `_bucket`, `_sum`, `_count`).
    pub const ALL: &[&str] = &[
        CONNECTIONS_OPENED,
        CONNECTIONS_CLOSED,
        CONNECTIONS_OPEN,
        DELIVERIES,
        DELIVERED_BYTES,
        PUBLISH_TO_WRITE,
        QUEUE_BYTES,
        STOMP_SESSIONS,
        STOMP_SUBSCRIPTIONS,
        HTTP_REQUESTS,
        DB_POOL_MAX,
        DB_POOL_OPEN,
        DB_POOL_IN_USE,
        DB_POOL_WAITING,
        OUTBOX_BACKLOG,
        OUTBOX_LAG,
        DEAD_LETTERS,
        FANOUT_WAITS,
        KAFKA_LAG,
        REGISTRY_OPS,
        REGISTRY_ERRORS,
        READY,
        PROCESS_RSS,
        PROCESS_OPEN_FDS,
        PROCESS_MAX_FDS,
    ];
}

/// Histogram buckets (seconds) of the publish→write latency: sub-millisecond fan-out up to
/// the multi-second stalls of a slow consumer.
const DELIVERY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// Histogram buckets (seconds) of REST request latency.
const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The installed recorder's handle, or `None` once [`disable`] ran first.
static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Turns metrics off for the life of the process (`DISCODEIT_METRICS=off`): no recorder is
/// installed, so every handle the `metrics` facade hands out is a no-op and [`render`] is
/// empty. Only effective before the first [`install`] (start-up calls it before anything
/// records).
pub fn disable() {
    let _ = RECORDER.set(None);
}

/// False when [`disable`] ran before the recorder was installed.
pub fn enabled() -> bool {
    install().is_some()
}

/// Installs the global recorder (once; later calls return the same handle) and starts the
/// upkeep thread that drains histogram samples between scrapes. `None` when metrics are off.
pub fn install() -> Option<&'static PrometheusHandle> {
    RECORDER.get_or_init(|| Some(build_and_install())).as_ref()
}

fn build_and_install() -> PrometheusHandle {
    let base = PrometheusBuilder::new();
    let builder = base
        .set_buckets_for_metric(
            Matcher::Full(names::PUBLISH_TO_WRITE.into()),
            DELIVERY_BUCKETS,
        )
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full(names::HTTP_REQUESTS.into()), HTTP_BUCKETS)
        })
        .and_then(|b| b.set_quantiles(&[0.5, 0.9, 0.99, 1.0]));
    let recorder = match builder {
        Ok(b) => b.build_recorder(),
        // Only non-empty constant lists go in above; never taken.
        Err(_) => PrometheusBuilder::new().build_recorder(),
    };
    let handle = recorder.handle();
    if metrics::set_global_recorder(recorder).is_err() {
        tracing::warn!("another metrics recorder is installed; /actuator/prometheus is empty");
    }
    describe();
    let upkeep = handle.clone();
    let _ = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_secs(5));
            upkeep.run_upkeep();
        });
    handle
}

/// Installs the recorder and registers every labelled series of the engine and the registry
/// at zero, so dashboards and alerts see them before the first event.
pub fn preregister() {
    engine();
    registry_handles();
}

/// The Prometheus text exposition of every metric (empty when metrics are off).
pub fn render() -> String {
    install().map(|h| h.render()).unwrap_or_default()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    use names::*;
    describe_counter!(
        CONNECTIONS_OPENED,
        "Realtime connections opened, by transport"
    );
    describe_counter!(
        CONNECTIONS_CLOSED,
        "Realtime connections closed, by transport and reason"
    );
    describe_gauge!(
        CONNECTIONS_OPEN,
        "Realtime connections open now, by transport"
    );
    describe_counter!(DELIVERIES, "Messages written to realtime connections");
    describe_counter!(
        DELIVERED_BYTES,
        Unit::Bytes,
        "Bytes written to realtime connections"
    );
    describe_histogram!(
        PUBLISH_TO_WRITE,
        Unit::Seconds,
        "Time from an event's publication to its write on a connection"
    );
    describe_histogram!(
        QUEUE_BYTES,
        Unit::Bytes,
        "Bytes queued on a connection, observed per write"
    );
    describe_gauge!(STOMP_SESSIONS, "Connected STOMP sessions");
    describe_gauge!(STOMP_SUBSCRIPTIONS, "Active STOMP subscriptions");
    describe_histogram!(
        HTTP_REQUESTS,
        Unit::Seconds,
        "HTTP requests by method, route template and status (time to the response head)"
    );
    describe_gauge!(DB_POOL_MAX, "PostgreSQL pool size limit");
    describe_gauge!(DB_POOL_OPEN, "PostgreSQL connections open in the pool");
    describe_gauge!(DB_POOL_IN_USE, "PostgreSQL connections checked out");
    describe_gauge!(DB_POOL_WAITING, "Tasks waiting for a PostgreSQL connection");
    describe_gauge!(OUTBOX_BACKLOG, "Outbox rows not yet published to Kafka");
    describe_gauge!(
        OUTBOX_LAG,
        Unit::Seconds,
        "Age of the oldest unpublished outbox row"
    );
    describe_gauge!(DEAD_LETTERS, "Rows in the dead_letters table");
    describe_counter!(
        FANOUT_WAITS,
        "Times a source of events (message writer, broker SEND, Kafka consumer) waited for the fan-out to catch up"
    );
    describe_gauge!(KAFKA_LAG, "Kafka records not yet consumed, by topic");
    describe_counter!(REGISTRY_OPS, "JWT session registry operations");
    describe_counter!(
        REGISTRY_ERRORS,
        "JWT session registry operations that failed"
    );
    describe_gauge!(READY, "1 while the readiness probe answers UP");
    describe_gauge!(
        PROCESS_RSS,
        Unit::Bytes,
        "Resident memory of the server process"
    );
    describe_gauge!(PROCESS_OPEN_FDS, "Open file descriptors");
    describe_gauge!(PROCESS_MAX_FDS, "File descriptor limit (soft)");
}

const T: usize = Transport::ALL.len();
const R: usize = CloseReason::ALL.len();

/// The connection engine's handles, resolved once.
struct Engine {
    opened: [Counter; T],
    open: [Gauge; T],
    closed: [[Counter; R]; T],
    deliveries: [Counter; T],
    bytes: [Counter; T],
    latency: [Histogram; T],
    queue_bytes: Histogram,
    stomp_sessions: Gauge,
    stomp_subscriptions: Gauge,
}

static ENGINE: OnceLock<Engine> = OnceLock::new();

fn engine() -> &'static Engine {
    ENGINE.get_or_init(|| {
        // Handles taken before the recorder exists would record nowhere.
        install();
        let label = |i: usize| Transport::ALL[i].label();
        Engine {
            opened: std::array::from_fn(
                |i| metrics::counter!(names::CONNECTIONS_OPENED, "transport" => label(i)),
            ),
            open: std::array::from_fn(
                |i| metrics::gauge!(names::CONNECTIONS_OPEN, "transport" => label(i)),
            ),
            closed: std::array::from_fn(|i| {
                std::array::from_fn(|r| {
                    metrics::counter!(names::CONNECTIONS_CLOSED,
                        "transport" => label(i), "reason" => CloseReason::ALL[r].label())
                })
            }),
            deliveries: std::array::from_fn(
                |i| metrics::counter!(names::DELIVERIES, "transport" => label(i)),
            ),
            bytes: std::array::from_fn(
                |i| metrics::counter!(names::DELIVERED_BYTES, "transport" => label(i)),
            ),
            latency: std::array::from_fn(
                |i| metrics::histogram!(names::PUBLISH_TO_WRITE, "transport" => label(i)),
            ),
            queue_bytes: metrics::histogram!(names::QUEUE_BYTES),
            stomp_sessions: metrics::gauge!(names::STOMP_SESSIONS),
            stomp_subscriptions: metrics::gauge!(names::STOMP_SUBSCRIPTIONS),
        }
    })
}

/// A realtime connection was accepted (after its handshake).
pub fn connection_opened(t: Transport) {
    let e = engine();
    e.opened[t as usize].increment(1);
    e.open[t as usize].increment(1.0);
}

/// A realtime connection ended, for `r`. Pairs with one [`connection_opened`].
pub fn connection_closed(t: Transport, r: CloseReason) {
    let e = engine();
    e.closed[t as usize][r as usize].increment(1);
    e.open[t as usize].decrement(1.0);
}

/// One write on a connection carried `messages` messages in `bytes` bytes.
pub fn delivered(t: Transport, messages: u64, bytes: u64) {
    let e = engine();
    e.deliveries[t as usize].increment(messages);
    e.bytes[t as usize].increment(bytes);
}

/// The time from an event's publication to its write on a connection.
pub fn publish_to_write(t: Transport, latency: Duration) {
    engine().latency[t as usize].record(latency.as_secs_f64());
}

/// The bytes queued on a connection, observed at each write.
pub fn queue_bytes(bytes: u64) {
    engine().queue_bytes.record(bytes as f64);
}

/// STOMP sessions connected (+1) or ended (-1).
pub fn stomp_sessions(delta: i64) {
    engine().stomp_sessions.increment(delta as f64);
}

/// STOMP subscriptions added (+n) or removed (-n).
pub fn stomp_subscriptions(delta: i64) {
    engine().stomp_subscriptions.increment(delta as f64);
}

/// One HTTP request answered: its method (unknown methods are `OTHER`, so a client cannot
/// create series), route template, status and the time to the response head.
pub fn http_request(method: &http::Method, route: &'static str, status: u16, latency: Duration) {
    // Off: skip the label rendering too, not only the no-op record.
    if install().is_none() {
        return;
    }
    metrics::histogram!(names::HTTP_REQUESTS,
        "method" => method_label(method), "route" => route, "status" => status.to_string())
    .record(latency.as_secs_f64());
}

fn method_label(m: &http::Method) -> &'static str {
    match m.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "OTHER",
    }
}

/// Registry handles, resolved once: `[operations, errors]` per [`RegistryOp`].
static REGISTRY: OnceLock<[[Counter; 2]; RegistryOp::ALL.len()]> = OnceLock::new();

/// One JWT registry operation finished; `ok` false counts an error too.
pub fn registry_op(op: RegistryOp, ok: bool) {
    let h = &registry_handles()[op as usize];
    h[0].increment(1);
    if !ok {
        h[1].increment(1);
    }
}

fn registry_handles() -> &'static [[Counter; 2]; RegistryOp::ALL.len()] {
    REGISTRY.get_or_init(|| {
        install();
        std::array::from_fn(|i| {
            let l = RegistryOp::ALL[i].label();
            [
                metrics::counter!(names::REGISTRY_OPS, "operation" => l),
                metrics::counter!(names::REGISTRY_ERRORS, "operation" => l),
            ]
        })
    })
}

/// The PostgreSQL pool, sampled at scrape.
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolSample {
    pub max: usize,
    pub open: usize,
    pub in_use: usize,
    pub waiting: usize,
}

pub fn record_db_pool(p: PoolSample) {
    install();
    metrics::gauge!(names::DB_POOL_MAX).set(p.max as f64);
    metrics::gauge!(names::DB_POOL_OPEN).set(p.open as f64);
    metrics::gauge!(names::DB_POOL_IN_USE).set(p.in_use as f64);
    metrics::gauge!(names::DB_POOL_WAITING).set(p.waiting as f64);
}

/// Outbox rows waiting for the relay and the age of the oldest, sampled at scrape.
pub fn record_outbox(backlog_rows: u64, lag: Duration) {
    install();
    metrics::gauge!(names::OUTBOX_BACKLOG).set(backlog_rows as f64);
    metrics::gauge!(names::OUTBOX_LAG).set(lag.as_secs_f64());
}

/// Rows in `dead_letters`, sampled at scrape (only where the table exists).
pub fn record_dead_letters(rows: u64) {
    install();
    metrics::gauge!(names::DEAD_LETTERS).set(rows as f64);
}

/// The consumer's lag on `topic` (records behind the high watermark), from librdkafka's
/// statistics.
pub fn record_kafka_lag(topic: &str, lag: u64) {
    install();
    metrics::gauge!(names::KAFKA_LAG, "topic" => topic.to_string()).set(lag as f64);
}

/// A source of events waited for the fan-out to catch up (see `bus::backlog`).
pub fn fanout_waited() {
    install();
    metrics::counter!(names::FANOUT_WAITS).increment(1);
}

/// The readiness probe's answer, sampled at scrape.
pub fn record_ready(ready: bool) {
    install();
    metrics::gauge!(names::READY).set(if ready { 1.0 } else { 0.0 });
}

/// Process figures, sampled at scrape.
pub fn record_process(p: ProcessSample) {
    install();
    if let Some(v) = p.resident_bytes {
        metrics::gauge!(names::PROCESS_RSS).set(v as f64);
    }
    if let Some(v) = p.open_fds {
        metrics::gauge!(names::PROCESS_OPEN_FDS).set(v as f64);
    }
    if let Some(v) = p.max_fds {
        metrics::gauge!(names::PROCESS_MAX_FDS).set(v as f64);
    }
}

/// Reading the text exposition back: for tests, and for anything that checks a scrape.
pub mod exposition {
    use std::collections::BTreeMap;

    /// One sample line: metric name, labels, value.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Sample {
        pub name: String,
        pub labels: BTreeMap<String, String>,
        pub value: f64,
    }

    /// Parses the sample lines of a Prometheus text exposition (comments skipped; label
    /// values with escaped quotes are not produced by this server and not handled).
    pub fn parse(text: &str) -> Vec<Sample> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(parse_line)
            .collect()
    }

    fn parse_line(line: &str) -> Option<Sample> {
        let (series, value) = line.rsplit_once(' ')?;
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().ok()?,
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}')?;
                let mut labels = BTreeMap::new();
                for pair in body.split("\",").filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once("=\"")?;
                    labels.insert(k.to_string(), v.trim_end_matches('"').to_string());
                }
                (name.to_string(), labels)
            }
        };
        Some(Sample {
            name,
            labels,
            value,
        })
    }

    /// The value of the sample named `name` whose labels include every pair in `labels`
    /// (summed when several match).
    pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let matching: Vec<f64> = samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .collect();
        (!matching.is_empty()).then(|| matching.iter().sum())
    }
}

#[cfg(test)]
mod tests {
    use super::exposition::{parse, value};
    use super::*;

    fn now(name: &str, labels: &[(&str, &str)]) -> f64 {
        value(&parse(&render()), name, labels).unwrap_or(0.0)
    }

    /// The engine API shows up in the exposition: counters, the open gauge derived from
    /// opened/closed, the histogram's buckets and the summary's quantiles. (The only test
    /// that records engine metrics in this binary, so exact deltas hold.)
    #[test]
    fn engine_recording_shows_up_in_the_rendered_output() {
        let ws = [("transport", "websocket")];
        let before_opened = now(names::CONNECTIONS_OPENED, &ws);
        let before_open = now(names::CONNECTIONS_OPEN, &ws);
        for _ in 0..3 {
            connection_opened(Transport::WebSocket);
        }
        connection_closed(Transport::WebSocket, CloseReason::SlowBytes);
        delivered(Transport::WebSocket, 5, 1200);
        publish_to_write(Transport::WebSocket, Duration::from_micros(700));
        publish_to_write(Transport::WebSocket, Duration::from_millis(30));
        queue_bytes(4096);
        stomp_sessions(2);
        stomp_sessions(-1);
        stomp_subscriptions(4);

        let s = parse(&render());
        let v = |n: &str, l: &[(&str, &str)]| value(&s, n, l).unwrap_or(f64::NAN);
        assert_eq!(v(names::CONNECTIONS_OPENED, &ws) - before_opened, 3.0);
        assert_eq!(v(names::CONNECTIONS_OPEN, &ws) - before_open, 2.0);
        assert_eq!(
            v(
                names::CONNECTIONS_CLOSED,
                &[("transport", "websocket"), ("reason", "slow_bytes")]
            ),
            1.0
        );
        assert_eq!(
            v(
                names::CONNECTIONS_CLOSED,
                &[("transport", "sse"), ("reason", "client")]
            ),
            0.0,
            "every transport/reason pair is exported from the start"
        );
        assert_eq!(v(names::DELIVERIES, &ws), 5.0);
        assert_eq!(v(names::DELIVERED_BYTES, &ws), 1200.0);
        let bucket = |le: &str| {
            v(
                &format!("{}_bucket", names::PUBLISH_TO_WRITE),
                &[("transport", "websocket"), ("le", le)],
            )
        };
        assert_eq!(bucket("0.001"), 1.0);
        assert_eq!(bucket("0.05"), 2.0);
        assert_eq!(v(&format!("{}_count", names::PUBLISH_TO_WRITE), &ws), 2.0);
        // A summary (unlabelled, so other tests in this process may observe it too).
        assert!(v(&format!("{}_count", names::QUEUE_BYTES), &[]) >= 1.0);
        assert!(v(names::QUEUE_BYTES, &[("quantile", "0.5")]) > 0.0);
        assert_eq!(v(names::STOMP_SESSIONS, &[]), 1.0);
        assert_eq!(v(names::STOMP_SUBSCRIPTIONS, &[]), 4.0);
    }

    #[test]
    fn rest_registry_and_sampled_metrics_render() {
        http_request(
            &http::Method::GET,
            "/api/users",
            200,
            Duration::from_millis(3),
        );
        http_request(
            &http::Method::from_bytes(b"BREW").unwrap(),
            "UNKNOWN",
            405,
            Duration::from_millis(1),
        );
        registry_op(RegistryOp::Rotate, true);
        registry_op(RegistryOp::Rotate, false);
        record_db_pool(PoolSample {
            max: 8,
            open: 3,
            in_use: 2,
            waiting: 0,
        });
        record_outbox(7, Duration::from_millis(1500));
        record_kafka_lag("discodeit.messages", 42);
        record_process(super::super::process::sample());

        let s = parse(&render());
        let count = format!("{}_count", names::HTTP_REQUESTS);
        assert_eq!(
            value(
                &s,
                &count,
                &[
                    ("method", "GET"),
                    ("route", "/api/users"),
                    ("status", "200")
                ]
            ),
            Some(1.0)
        );
        assert_eq!(
            value(&s, &count, &[("method", "OTHER"), ("status", "405")]),
            Some(1.0)
        );
        let rotate = [("operation", "rotate")];
        assert_eq!(value(&s, names::REGISTRY_OPS, &rotate), Some(2.0));
        assert_eq!(value(&s, names::REGISTRY_ERRORS, &rotate), Some(1.0));
        assert_eq!(value(&s, names::DB_POOL_IN_USE, &[]), Some(2.0));
        assert_eq!(value(&s, names::OUTBOX_BACKLOG, &[]), Some(7.0));
        assert_eq!(value(&s, names::OUTBOX_LAG, &[]), Some(1.5));
        assert_eq!(
            value(&s, names::KAFKA_LAG, &[("topic", "discodeit.messages")]),
            Some(42.0)
        );
        assert!(value(&s, names::PROCESS_RSS, &[]).unwrap() > 0.0);
        assert!(value(&s, names::PROCESS_MAX_FDS, &[]).unwrap() > 0.0);
    }

    #[test]
    fn parses_exposition_lines() {
        let s = parse(
            "# HELP x y\nx_total{a=\"1\",b=\"two words\"} 3\nplain 1.5\nh_bucket{le=\"+Inf\"} 2\n",
        );
        assert_eq!(s.len(), 3);
        assert_eq!(value(&s, "x_total", &[("b", "two words")]), Some(3.0));
        assert_eq!(value(&s, "plain", &[]), Some(1.5));
        assert_eq!(value(&s, "h_bucket", &[("le", "+Inf")]), Some(2.0));
        assert_eq!(value(&s, "missing", &[]), None);
    }
}
