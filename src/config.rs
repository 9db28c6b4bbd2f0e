//! Configuration from environment variables. Every variable is listed in [`KNOWN_VARS`] (which
//! `--help` prints) and in README's configuration table.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// One environment variable the server reads: its name and the `--help` line (default in
/// brackets). The single list `--help`, README's table and the deployment test derive from.
#[derive(Debug, Clone, Copy)]
pub struct Var {
    pub name: &'static str,
    pub help: &'static str,
}

const fn v(name: &'static str, help: &'static str) -> Var {
    Var { name, help }
}

/// Every variable [`Config::from_lookup`] (and the log set-up) reads; reading one not listed
/// here is a bug caught by a debug assertion and a unit test.
pub const KNOWN_VARS: &[Var] = &[
    v("DISCODEIT_ADDR", "listen address [0.0.0.0:8080]"),
    v(
        "DISCODEIT_ADMIN_ADDR",
        "metrics and health listener, never behind nginx [127.0.0.1:9091]",
    ),
    v("DATABASE_URL", "PostgreSQL URL [required]"),
    v("DATABASE_POOL_SIZE", "PostgreSQL connections [32]"),
    v(
        "SECURITY_JWT_SECRET",
        "HMAC secret, at least 32 bytes, not a published default [required]",
    ),
    v(
        "SECURITY_JWT_ACCESS_TOKEN_VALIDITY_SECONDS",
        "access token lifetime [600]",
    ),
    v(
        "SECURITY_JWT_REFRESH_TOKEN_VALIDITY_SECONDS",
        "refresh token lifetime [604800]",
    ),
    v(
        "DISCODEIT_STOMP_EXPIRED_TOKEN_GRACE_SECONDS",
        "how long past its expiry an access token of a live session still opens a STOMP session [access token lifetime]",
    ),
    v(
        "DISCODEIT_STORAGE_DIR",
        "file storage directory [./.data/storage]",
    ),
    v(
        "DISCODEIT_WEB_DIR",
        "web client to serve at / [unset: none]",
    ),
    v(
        "DISCODEIT_SWAGGER_UI_DIR",
        "Swagger UI files to serve at /swagger-ui [unset: none]",
    ),
    v("DISCODEIT_INSTANCE_ID", "this instance's name [hostname]"),
    v(
        "DISCODEIT_ADMIN_USERNAME",
        "bootstrap admin user name [unset: no admin]",
    ),
    v("DISCODEIT_ADMIN_EMAIL", "bootstrap admin e-mail"),
    v(
        "DISCODEIT_ADMIN_PASSWORD",
        "bootstrap admin password, not a published default",
    ),
    v(
        "DISCODEIT_MAX_FILE_BYTES",
        "upload limit per file [10485760]",
    ),
    v(
        "DISCODEIT_MAX_REQUEST_BYTES",
        "upload limit per request [31457280]",
    ),
    v(
        "DISCODEIT_MAX_PARTICIPANTS",
        "participantIds per private channel [100]",
    ),
    v("DISCODEIT_MAX_ATTACHMENTS", "attachments per message [10]"),
    v(
        "DISCODEIT_MAX_BATCH_IDS",
        "ids per batch query (binaryContentIds) [200]",
    ),
    v(
        "DISCODEIT_AUTH_IP_BURST",
        "login/sign-up attempts per client IP at once; 0 = off [30]",
    ),
    v("DISCODEIT_AUTH_IP_PER_MINUTE", "... refilled per minute [30]"),
    v(
        "DISCODEIT_AUTH_USERNAME_BURST",
        "login/sign-up attempts per username at once; 0 = off [10]",
    ),
    v("DISCODEIT_AUTH_USERNAME_PER_MINUTE", "... refilled per minute [6]"),
    v(
        "DISCODEIT_TRUSTED_PROXIES",
        "proxies whose X-Real-IP / X-Forwarded-For name the client, comma-separated IPs or CIDRs [unset: none]",
    ),
    v(
        "DISCODEIT_CSRF_ENABLED",
        "enforce the CSRF double-submit check [true]",
    ),
    v(
        "DISCODEIT_SSE_REPLAY_MAX_EVENTS",
        "SSE events kept per user for replay [1000]",
    ),
    v(
        "DISCODEIT_SSE_REPLAY_MAX_AGE_SECONDS",
        "SSE replay horizon [3600]",
    ),
    v(
        "DISCODEIT_SSE_KEEPALIVE_SECONDS",
        "SSE keep-alive interval [15]",
    ),
    v(
        "DISCODEIT_STOMP_MAX_FRAME_BYTES",
        "STOMP frame limit [65536]",
    ),
    v(
        "DISCODEIT_QUEUE_MAX_BYTES",
        "bytes queued per realtime connection before it is closed as a slow consumer [524288]",
    ),
    v(
        "DISCODEIT_QUEUE_MAX_AGE_MS",
        "send-time limit: age of the oldest queued message before the connection is closed [10000]",
    ),
    v(
        "DISCODEIT_FANOUT_MAX_LAG_MS",
        "how far the fan-out may fall behind (age of the event it works on) before publishers wait: message writes, broker SENDs, the Kafka consumer [10000]",
    ),
    v(
        "DISCODEIT_FANOUT_MAX_BYTES",
        "bytes of events waiting for the fan-out before publishers wait [33554432]",
    ),
    v(
        "DISCODEIT_MAX_CONNECTIONS",
        "open connections (all kinds) before new ones get 503 [the file-descriptor limit minus 128 and the pool]",
    ),
    v(
        "DISCODEIT_HTTP_HEADER_TIMEOUT_SECONDS",
        "time to send a request head; also the keep-alive idle timeout [30]",
    ),
    v(
        "DISCODEIT_SHUTDOWN_TIMEOUT_SECONDS",
        "on SIGTERM/SIGINT: how long to drain connections before exiting [25]",
    ),
    v(
        "DISCODEIT_MAX_SSE_STREAMS_PER_USER",
        "SSE streams one user may hold [256]",
    ),
    v(
        "DISCODEIT_MAX_STOMP_SESSIONS_PER_USER",
        "STOMP sessions one user may hold [256]",
    ),
    v(
        "DISCODEIT_STOMP_MAX_SUBSCRIPTIONS",
        "subscriptions per STOMP connection [1000]",
    ),
    v(
        "DISCODEIT_STOMP_MAX_SUBSCRIPTIONS_PER_DESTINATION",
        "subscriptions of one connection to one destination [8]",
    ),
    v(
        "DISCODEIT_STOMP_MAX_SUBSCRIBERS_PER_DESTINATION",
        "subscriptions to one destination, all connections together [100000]",
    ),
    v(
        "DISCODEIT_STOMP_BROKER_MAX_BODY_BYTES",
        "body of a SEND to a plain /sub/... destination [16384]",
    ),
    v(
        "DISCODEIT_STOMP_BROKER_RATE",
        "SENDs to plain /sub/... destinations per connection and second, burst as large [200]",
    ),
    v(
        "DISCODEIT_STOMP_MAX_IN_FLIGHT_SENDS",
        "SEND /pub/messages frames of one connection admitted and awaiting their commit [256]",
    ),
    v(
        "DISCODEIT_SOCKET_SEND_BUFFER",
        "SO_SNDBUF per connection, bytes [unset: kernel]",
    ),
    v(
        "DISCODEIT_MESSAGE_BATCH_MAX",
        "messages committed together at most [256]",
    ),
    v(
        "DISCODEIT_MESSAGE_BATCH_WINDOW_US",
        "wait for more messages after the first, µs [0]",
    ),
    v(
        "DISCODEIT_MESSAGE_BATCHES_IN_FLIGHT",
        "batches written at once, in order (1 with Kafka) [2]",
    ),
    v(
        "DISCODEIT_MESSAGE_QUEUE",
        "messages waiting for the writer at most [2048]",
    ),
    v(
        "DISCODEIT_MESSAGE_ADMISSION_TIMEOUT_MS",
        "REST wait for room in that queue before 503 [2000]",
    ),
    v(
        "DISCODEIT_LOOKUP_CACHE_ENTRIES",
        "channels and users cached for the write path, each [50000]",
    ),
    v("REDIS_URL", "Redis for the JWT registry [unset: in memory]"),
    v(
        "KAFKA_BOOTSTRAP_SERVERS",
        "Kafka for the event fan-out [unset: in process]",
    ),
    v(
        "REDIS_KEY_PREFIX",
        "namespace of the registry's Redis keys [discodeit:]",
    ),
    v(
        "KAFKA_TOPIC_PREFIX",
        "namespace of the Kafka topics [discodeit.]",
    ),
    v(
        "KAFKA_TOPIC_PARTITIONS",
        "partitions of the message topics at creation [4]",
    ),
    v(
        "KAFKA_FETCH_WAIT_MS",
        "longest a consumer fetch waits at the broker for new records [10]",
    ),
    v(
        "KAFKA_SESSION_TIMEOUT_MS",
        "consumer group session timeout [6000]",
    ),
    v(
        "KAFKA_HEARTBEAT_INTERVAL_MS",
        "consumer group heartbeat interval [1000]",
    ),
    v(
        "KAFKA_MESSAGE_MAX_BYTES",
        "largest Kafka record, the producer's message.max.bytes; bigger events are refused before the outbox [1000000]",
    ),
    v(
        "DISCODEIT_FAULT_INJECTION",
        "test hooks, comma-separated; never in production [unset]: upload-write-fails, crash-after-upload-commit",
    ),
    v("DISCODEIT_LOG_FORMAT", "text or json [text]"),
    v(
        "DISCODEIT_METRICS",
        "on or off; off installs no Prometheus recorder (every metric a no-op, /actuator/prometheus 404) [on]",
    ),
    v("RUST_LOG", "log filter [info]"),
];

/// Read only as a fallback for `DISCODEIT_INSTANCE_ID` (container runtimes set it).
const FALLBACK_VARS: &[&str] = &["HOSTNAME"];

/// True when the server reads `name` (the deployment check uses it).
pub fn is_known(name: &str) -> bool {
    KNOWN_VARS.iter().any(|v| v.name == name) || FALLBACK_VARS.contains(&name)
}

/// `discodeit --help`: the usage line and [`KNOWN_VARS`].
pub fn help() -> String {
    let mut s = String::from(
        "discodeit - real-time Discodeit chat backend (REST, STOMP over WebSocket/SockJS, SSE)\n\n\
         Usage: discodeit [--help]\n\
         Configuration comes from environment variables (defaults in brackets):\n",
    );
    let width = KNOWN_VARS.iter().map(|v| v.name.len()).max().unwrap_or(0) + 2;
    for v in KNOWN_VARS {
        s.push_str(&format!("  {:width$}{}\n", v.name, v.help));
    }
    s
}

/// The log output format (`DISCODEIT_LOG_FORMAT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (colours only on a terminal).
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl LogFormat {
    /// Reads `DISCODEIT_LOG_FORMAT` through `get`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        match get("DISCODEIT_LOG_FORMAT").as_deref().map(str::trim) {
            None | Some("") | Some("text") => Ok(LogFormat::Text),
            Some("json") => Ok(LogFormat::Json),
            Some(v) => Err(format!(
                "DISCODEIT_LOG_FORMAT must be text or json, got {v:?}"
            )),
        }
    }
}

/// JWT secrets published as fallbacks for deployments (compose.yaml's old default): anyone can
/// read them, so a server using one would accept tokens anybody can forge. Test-only secrets
/// (the test harnesses') are not on the list: no deployment falls back to them.
pub const PUBLISHED_JWT_SECRETS: &[&str] = &["insecure-local-secret-change-me-0123456789abcdef"];

/// Admin passwords published as defaults (compose.yaml's and scripts/run.sh's old fallback).
pub const PUBLISHED_ADMIN_PASSWORDS: &[&str] = &["admin1234!"];

/// `KAFKA_FETCH_WAIT_MS` when unset (also the default of `examples/kafka-ceiling.rs`).
pub const DEFAULT_KAFKA_FETCH_WAIT_MS: u64 = 10;
/// `KAFKA_MESSAGE_MAX_BYTES` when unset (also the default of `examples/kafka-ceiling.rs`).
pub const DEFAULT_KAFKA_MESSAGE_MAX_BYTES: u64 = 1_000_000;

/// The validated server configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub addr: SocketAddr,
    /// Where `/actuator/prometheus` and the health endpoints listen (never through nginx).
    pub admin_addr: SocketAddr,
    pub log_format: LogFormat,
    /// `DISCODEIT_METRICS`: false leaves the Prometheus recorder uninstalled, so every metric
    /// handle is a no-op (to measure what recording costs, or where nothing scrapes).
    pub metrics_enabled: bool,
    pub database_url: String,
    pub database_pool_size: usize,
    pub jwt_secret: Vec<u8>,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub stomp_expired_token_grace: Duration,
    pub storage_dir: PathBuf,
    pub web_dir: Option<PathBuf>,
    pub swagger_ui_dir: Option<PathBuf>,
    pub instance_id: String,
    pub admin: Option<AdminBootstrap>,
    pub max_file_bytes: usize,
    pub max_request_bytes: usize,
    pub max_participants: usize,
    pub max_attachments: usize,
    pub max_batch_ids: usize,
    pub csrf_enabled: bool,
    pub auth_ip_burst: u32,
    pub auth_ip_per_minute: u32,
    pub auth_username_burst: u32,
    pub auth_username_per_minute: u32,
    pub trusted_proxies: Vec<Cidr>,
    pub sse_replay_max_events: usize,
    pub sse_replay_max_age: Duration,
    pub sse_keepalive: Duration,
    pub stomp_max_frame_bytes: usize,
    /// Realtime connections (`net::conn`, STOMP, SSE): limits.
    pub queue_max_bytes: usize,
    pub queue_max_age: Duration,
    /// The fan-out's backlog limits (`DISCODEIT_FANOUT_MAX_*`), see `bus::backlog`.
    pub fanout_max_bytes: usize,
    pub fanout_max_lag: Duration,
    pub max_connections: Option<usize>,
    pub http_header_timeout: Duration,
    pub shutdown_timeout: Duration,
    pub max_sse_streams_per_user: usize,
    pub max_stomp_sessions_per_user: usize,
    pub stomp_max_subscriptions: usize,
    pub stomp_max_subscriptions_per_destination: usize,
    pub stomp_max_subscribers_per_destination: usize,
    pub stomp_broker_max_body_bytes: usize,
    pub stomp_broker_rate: u32,
    pub stomp_max_in_flight_sends: usize,
    pub socket_send_buffer: Option<usize>,
    pub message_batch_max: usize,
    pub message_batch_window: Duration,
    pub message_batches_in_flight: usize,
    pub message_queue: usize,
    pub message_admission_timeout: Duration,
    pub lookup_cache_entries: usize,
    pub redis_url: Option<String>,
    pub kafka_bootstrap: Option<String>,
    pub redis_key_prefix: String,
    pub kafka_topic_prefix: String,
    pub kafka_partitions: i32,
    pub kafka_session_timeout_ms: u64,
    pub kafka_fetch_wait_ms: u64,
    pub kafka_heartbeat_interval_ms: u64,
    pub kafka_message_max_bytes: usize,
    pub faults: Faults,
}

/// Test hooks (`DISCODEIT_FAULT_INJECTION`), all off by default: they let the upload
/// recovery be tested with a real crash and real write failures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Every file write fails.
    pub upload_write_fails: bool,
    /// The process kills itself (SIGKILL) right after an upload's transaction commits, before
    /// its bytes are moved into place and its status is updated.
    pub crash_after_upload_commit: bool,
}

impl Faults {
    fn parse(v: Option<String>) -> Result<Faults, String> {
        let mut f = Faults::default();
        for name in v.iter().flat_map(|v| v.split(',')).map(str::trim) {
            match name {
                "" => {}
                "upload-write-fails" => f.upload_write_fails = true,
                "crash-after-upload-commit" => f.crash_after_upload_commit = true,
                other => {
                    return Err(format!(
                        "DISCODEIT_FAULT_INJECTION: unknown fault {other:?} \
                         (known: upload-write-fails, crash-after-upload-commit)"
                    ))
                }
            }
        }
        Ok(f)
    }
}

/// An IP network (`10.0.0.0/8`, `::1/128`, or one address), for trusted proxies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        let addr = canonical(addr);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = |ip: IpAddr| -> u128 {
            match ip {
                IpAddr::V4(v) => u128::from(u32::from(v)) << 96,
                IpAddr::V6(v) => u128::from(v),
            }
        };
        let ip = canonical(ip);
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        if self.prefix == 0 {
            return true;
        }
        // IPv4 sits in the top 32 bits, so one mask fits both families.
        let mask = u128::MAX << (128 - u32::from(self.prefix));
        bits(ip) & mask == bits(self.addr) & mask
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`, what a dual-stack socket reports) as IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The admin account created at start-up when neither its name nor its e-mail exists.
#[derive(Clone, Debug)]
pub struct AdminBootstrap {
    pub username: String,
    pub email: String,
    pub password: String,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads configuration through `get`, so tests can pass a map.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let var = |k: &str| {
            debug_assert!(is_known(k), "{k} is missing from config::KNOWN_VARS");
            get(k).filter(|v| !v.trim().is_empty())
        };
        let parse_num = |k: &str, default: u64| -> Result<u64, String> {
            match var(k) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| format!("{k} must be a non-negative integer, got {v:?}")),
            }
        };
        let ranged = |k: &str, default: u64, min: u64, max: u64| -> Result<u64, String> {
            let v = parse_num(k, default)?;
            if (min..=max).contains(&v) {
                Ok(v)
            } else {
                Err(format!("{k} must be between {min} and {max}, got {v}"))
            }
        };
        let addr = var("DISCODEIT_ADDR").unwrap_or_else(|| "0.0.0.0:8080".into());
        let addr: SocketAddr = addr
            .parse()
            .map_err(|_| format!("DISCODEIT_ADDR must be host:port, got {addr:?}"))?;
        let admin_addr = var("DISCODEIT_ADMIN_ADDR").unwrap_or_else(|| "127.0.0.1:9091".into());
        let admin_addr: SocketAddr = admin_addr
            .parse()
            .map_err(|_| format!("DISCODEIT_ADMIN_ADDR must be host:port, got {admin_addr:?}"))?;
        if admin_addr.port() != 0
            && admin_addr.port() == addr.port()
            && admin_addr.ip() == addr.ip()
        {
            return Err("DISCODEIT_ADMIN_ADDR must differ from DISCODEIT_ADDR".into());
        }
        let log_format = LogFormat::from_lookup(var)?;
        let metrics_enabled = match var("DISCODEIT_METRICS").as_deref().map(str::trim) {
            None | Some("on") => true,
            Some("off") => false,
            Some(v) => return Err(format!("DISCODEIT_METRICS must be on or off, got {v:?}")),
        };
        let database_url = var("DATABASE_URL").ok_or("DATABASE_URL is required")?;
        let jwt_secret = var("SECURITY_JWT_SECRET").ok_or("SECURITY_JWT_SECRET is required")?;
        if jwt_secret.len() < 32 {
            return Err("SECURITY_JWT_SECRET must be at least 32 bytes".into());
        }
        if PUBLISHED_JWT_SECRETS.contains(&jwt_secret.as_str()) {
            return Err(
                "SECURITY_JWT_SECRET is a published default: anyone could forge tokens; set your own"
                    .into(),
            );
        }
        let access = parse_num("SECURITY_JWT_ACCESS_TOKEN_VALIDITY_SECONDS", 600)?;
        let refresh = parse_num("SECURITY_JWT_REFRESH_TOKEN_VALIDITY_SECONDS", 604_800)?;
        if access == 0 || refresh == 0 {
            return Err("token validity must be at least 1 second".into());
        }
        if access > refresh {
            return Err(
                "SECURITY_JWT_ACCESS_TOKEN_VALIDITY_SECONDS must not exceed the refresh token validity"
                    .into(),
            );
        }
        let stomp_grace = parse_num("DISCODEIT_STOMP_EXPIRED_TOKEN_GRACE_SECONDS", access)?;
        let admin = match (
            var("DISCODEIT_ADMIN_USERNAME"),
            var("DISCODEIT_ADMIN_EMAIL"),
            var("DISCODEIT_ADMIN_PASSWORD"),
        ) {
            (None, None, None) => None,
            (Some(_), Some(_), Some(password))
                if PUBLISHED_ADMIN_PASSWORDS.contains(&password.as_str()) =>
            {
                return Err("DISCODEIT_ADMIN_PASSWORD is a published default: set your own".into())
            }
            (Some(username), Some(email), Some(password)) => Some(AdminBootstrap {
                username,
                email,
                password,
            }),
            _ => return Err("DISCODEIT_ADMIN_USERNAME, _EMAIL and _PASSWORD go together".into()),
        };
        let csrf_enabled = match var("DISCODEIT_CSRF_ENABLED").as_deref() {
            None | Some("true") | Some("1") => true,
            Some("false") | Some("0") => false,
            Some(v) => {
                return Err(format!(
                    "DISCODEIT_CSRF_ENABLED must be true or false, got {v:?}"
                ))
            }
        };
        let instance_id = var("DISCODEIT_INSTANCE_ID")
            .or_else(|| var("HOSTNAME"))
            .or_else(|| {
                std::fs::read_to_string("/etc/hostname")
                    .ok()
                    .map(|s| s.trim().to_string())
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "discodeit".into());
        let at_least_one = |k: &str, default: u64| -> Result<usize, String> {
            match parse_num(k, default)? {
                0 => Err(format!("{k} must be at least 1")),
                n => Ok(n as usize),
            }
        };
        let small = |k: &str, default: u64| -> Result<u32, String> {
            u32::try_from(parse_num(k, default)?).map_err(|_| format!("{k} is too large"))
        };
        let trusted_proxies = var("DISCODEIT_TRUSTED_PROXIES")
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                Cidr::parse(s).ok_or_else(|| {
                    format!("DISCODEIT_TRUSTED_PROXIES: {s:?} is not an IP address or CIDR")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let pool = parse_num("DATABASE_POOL_SIZE", 32)?;
        if pool == 0 {
            return Err("DATABASE_POOL_SIZE must be at least 1".into());
        }
        let kafka_message_max_bytes =
            parse_num("KAFKA_MESSAGE_MAX_BYTES", DEFAULT_KAFKA_MESSAGE_MAX_BYTES)?;
        if !(65_536..=1_000_000_000).contains(&kafka_message_max_bytes) {
            return Err("KAFKA_MESSAGE_MAX_BYTES must be between 65536 and 1000000000".into());
        }
        Ok(Config {
            addr,
            admin_addr,
            log_format,
            metrics_enabled,
            database_url,
            database_pool_size: pool as usize,
            jwt_secret: jwt_secret.into_bytes(),
            access_ttl: Duration::from_secs(access),
            refresh_ttl: Duration::from_secs(refresh),
            stomp_expired_token_grace: Duration::from_secs(stomp_grace),
            storage_dir: var("DISCODEIT_STORAGE_DIR")
                .unwrap_or_else(|| "./.data/storage".into())
                .into(),
            web_dir: var("DISCODEIT_WEB_DIR").map(PathBuf::from),
            swagger_ui_dir: var("DISCODEIT_SWAGGER_UI_DIR").map(PathBuf::from),
            instance_id,
            admin,
            max_file_bytes: parse_num("DISCODEIT_MAX_FILE_BYTES", 10 * 1024 * 1024)? as usize,
            max_request_bytes: parse_num("DISCODEIT_MAX_REQUEST_BYTES", 30 * 1024 * 1024)? as usize,
            max_participants: at_least_one("DISCODEIT_MAX_PARTICIPANTS", 100)?,
            max_attachments: at_least_one("DISCODEIT_MAX_ATTACHMENTS", 10)?,
            max_batch_ids: at_least_one("DISCODEIT_MAX_BATCH_IDS", 200)?,
            csrf_enabled,
            auth_ip_burst: small("DISCODEIT_AUTH_IP_BURST", 30)?,
            auth_ip_per_minute: small("DISCODEIT_AUTH_IP_PER_MINUTE", 30)?,
            auth_username_burst: small("DISCODEIT_AUTH_USERNAME_BURST", 10)?,
            auth_username_per_minute: small("DISCODEIT_AUTH_USERNAME_PER_MINUTE", 6)?,
            trusted_proxies,
            sse_replay_max_events: parse_num("DISCODEIT_SSE_REPLAY_MAX_EVENTS", 1000)? as usize,
            sse_replay_max_age: Duration::from_secs(parse_num(
                "DISCODEIT_SSE_REPLAY_MAX_AGE_SECONDS",
                3600,
            )?),
            sse_keepalive: Duration::from_secs(
                parse_num("DISCODEIT_SSE_KEEPALIVE_SECONDS", 15)?.max(1),
            ),
            stomp_max_frame_bytes: parse_num("DISCODEIT_STOMP_MAX_FRAME_BYTES", 65536)? as usize,
            queue_max_bytes: parse_num("DISCODEIT_QUEUE_MAX_BYTES", 512 * 1024)?.max(1024) as usize,
            queue_max_age: Duration::from_millis(
                parse_num("DISCODEIT_QUEUE_MAX_AGE_MS", 10_000)?.max(10),
            ),
            fanout_max_bytes: parse_num("DISCODEIT_FANOUT_MAX_BYTES", 32 * 1024 * 1024)?.max(1)
                as usize,
            fanout_max_lag: Duration::from_millis(
                parse_num("DISCODEIT_FANOUT_MAX_LAG_MS", 10_000)?.max(1),
            ),
            max_connections: match var("DISCODEIT_MAX_CONNECTIONS") {
                Some(_) => Some(parse_num("DISCODEIT_MAX_CONNECTIONS", 0)?.max(1) as usize),
                None => None,
            },
            http_header_timeout: Duration::from_secs(
                parse_num("DISCODEIT_HTTP_HEADER_TIMEOUT_SECONDS", 30)?.max(1),
            ),
            shutdown_timeout: Duration::from_secs(
                parse_num("DISCODEIT_SHUTDOWN_TIMEOUT_SECONDS", 25)?.max(1),
            ),
            max_sse_streams_per_user: parse_num("DISCODEIT_MAX_SSE_STREAMS_PER_USER", 256)?.max(1)
                as usize,
            max_stomp_sessions_per_user: parse_num("DISCODEIT_MAX_STOMP_SESSIONS_PER_USER", 256)?
                .max(1) as usize,
            stomp_max_subscriptions: parse_num("DISCODEIT_STOMP_MAX_SUBSCRIPTIONS", 1000)?.max(1)
                as usize,
            stomp_max_subscriptions_per_destination: parse_num(
                "DISCODEIT_STOMP_MAX_SUBSCRIPTIONS_PER_DESTINATION",
                8,
            )?
            .max(1) as usize,
            stomp_max_subscribers_per_destination: parse_num(
                "DISCODEIT_STOMP_MAX_SUBSCRIBERS_PER_DESTINATION",
                100_000,
            )?
            .max(1) as usize,
            stomp_broker_max_body_bytes: parse_num("DISCODEIT_STOMP_BROKER_MAX_BODY_BYTES", 16384)?
                as usize,
            stomp_broker_rate: parse_num("DISCODEIT_STOMP_BROKER_RATE", 200)?.clamp(1, 1_000_000)
                as u32,
            stomp_max_in_flight_sends: parse_num("DISCODEIT_STOMP_MAX_IN_FLIGHT_SENDS", 256)?
                .clamp(1, 100_000) as usize,
            socket_send_buffer: match var("DISCODEIT_SOCKET_SEND_BUFFER") {
                Some(_) => Some(parse_num("DISCODEIT_SOCKET_SEND_BUFFER", 0)? as usize),
                None => None,
            },
            message_batch_max: ranged("DISCODEIT_MESSAGE_BATCH_MAX", 256, 1, 10_000)? as usize,
            message_batch_window: Duration::from_micros(ranged(
                "DISCODEIT_MESSAGE_BATCH_WINDOW_US",
                0,
                0,
                1_000_000,
            )?),
            message_batches_in_flight: ranged("DISCODEIT_MESSAGE_BATCHES_IN_FLIGHT", 2, 1, 8)?
                as usize,
            message_queue: ranged("DISCODEIT_MESSAGE_QUEUE", 2048, 1, 1_000_000)? as usize,
            message_admission_timeout: Duration::from_millis(ranged(
                "DISCODEIT_MESSAGE_ADMISSION_TIMEOUT_MS",
                2000,
                0,
                600_000,
            )?),
            lookup_cache_entries: ranged("DISCODEIT_LOOKUP_CACHE_ENTRIES", 50_000, 2, 10_000_000)?
                as usize,
            redis_url: var("REDIS_URL"),
            kafka_bootstrap: var("KAFKA_BOOTSTRAP_SERVERS"),
            redis_key_prefix: var("REDIS_KEY_PREFIX").unwrap_or_else(|| "discodeit:".into()),
            kafka_topic_prefix: var("KAFKA_TOPIC_PREFIX").unwrap_or_else(|| "discodeit.".into()),
            kafka_partitions: parse_num("KAFKA_TOPIC_PARTITIONS", 4)?.clamp(1, 1024) as i32,
            kafka_session_timeout_ms: parse_num("KAFKA_SESSION_TIMEOUT_MS", 6000)?.max(1000),
            kafka_fetch_wait_ms: parse_num("KAFKA_FETCH_WAIT_MS", DEFAULT_KAFKA_FETCH_WAIT_MS)?
                .clamp(1, 5000),
            kafka_heartbeat_interval_ms: parse_num("KAFKA_HEARTBEAT_INTERVAL_MS", 1000)?.max(100),
            kafka_message_max_bytes: kafka_message_max_bytes as usize,
            faults: Faults::parse(var("DISCODEIT_FAULT_INJECTION"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| m.get(k).cloned())
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn defaults_apply() {
        let c = cfg(&[
            ("DATABASE_URL", "postgres://x"),
            ("SECURITY_JWT_SECRET", SECRET),
        ])
        .unwrap();
        assert_eq!(c.addr.port(), 8080);
        assert_eq!(c.access_ttl.as_secs(), 600);
        assert_eq!(c.refresh_ttl.as_secs(), 604800);
        assert!(c.csrf_enabled);
        assert!(c.admin.is_none());
    }

    #[test]
    fn rejects_bad_values() {
        assert!(cfg(&[("SECURITY_JWT_SECRET", SECRET)])
            .unwrap_err()
            .contains("DATABASE_URL"));
        assert!(
            cfg(&[("DATABASE_URL", "x"), ("SECURITY_JWT_SECRET", "short")])
                .unwrap_err()
                .contains("32 bytes")
        );
        let e = cfg(&[
            ("DATABASE_URL", "x"),
            ("SECURITY_JWT_SECRET", SECRET),
            ("DISCODEIT_ADDR", "nope"),
        ])
        .unwrap_err();
        assert!(e.contains("DISCODEIT_ADDR"));
        let e = cfg(&[
            ("DATABASE_URL", "x"),
            ("SECURITY_JWT_SECRET", SECRET),
            ("DISCODEIT_ADMIN_USERNAME", "admin"),
        ])
        .unwrap_err();
        assert!(e.contains("go together"));
        let e = cfg(&[
            ("DATABASE_URL", "x"),
            ("SECURITY_JWT_SECRET", SECRET),
            ("DISCODEIT_LOG_FORMAT", "xml"),
        ])
        .unwrap_err();
        assert!(e.contains("DISCODEIT_LOG_FORMAT"));
        let e = cfg(&[
            ("DATABASE_URL", "x"),
            ("SECURITY_JWT_SECRET", SECRET),
            ("DISCODEIT_METRICS", "false"),
        ])
        .unwrap_err();
        assert!(e.contains("DISCODEIT_METRICS must be on or off"), "{e}");
        let e = cfg(&[
            ("DATABASE_URL", "x"),
            ("SECURITY_JWT_SECRET", SECRET),
            ("DISCODEIT_ADDR", "127.0.0.1:9000"),
            ("DISCODEIT_ADMIN_ADDR", "127.0.0.1:9000"),
        ])
        .unwrap_err();
        assert!(e.contains("DISCODEIT_ADMIN_ADDR"));
    }

    #[test]
    fn admin_listener_defaults_to_loopback() {
        let c = cfg(&[
            ("DATABASE_URL", "postgres://x"),
            ("SECURITY_JWT_SECRET", SECRET),
        ])
        .unwrap();
        assert_eq!(c.admin_addr.to_string(), "127.0.0.1:9091");
        assert_eq!(c.log_format, LogFormat::Text);
        assert!(c.metrics_enabled);
        let off = cfg(&[
            ("DATABASE_URL", "postgres://x"),
            ("SECURITY_JWT_SECRET", SECRET),
            ("DISCODEIT_METRICS", "off"),
        ])
        .unwrap();
        assert!(!off.metrics_enabled);
    }

    /// KNOWN_VARS is exactly what the server reads: nothing read is missing from it, nothing
    /// listed is never read (RUST_LOG is read by the log filter, not by `from_lookup`).
    #[test]
    fn known_vars_are_exactly_the_vars_read() {
        let read = std::sync::Mutex::new(std::collections::BTreeSet::new());
        Config::from_lookup(|k| {
            read.lock().unwrap().insert(k.to_string());
            match k {
                "DATABASE_URL" => Some("postgres://x".into()),
                "SECURITY_JWT_SECRET" => Some(SECRET.into()),
                _ => None,
            }
        })
        .unwrap();
        let mut read = read.into_inner().unwrap();
        read.insert("RUST_LOG".into());
        for name in &read {
            assert!(is_known(name), "{name} is read but not in KNOWN_VARS");
        }
        for v in KNOWN_VARS {
            assert!(read.contains(v.name), "{} is listed but never read", v.name);
        }
        let help = help();
        for v in KNOWN_VARS {
            assert!(help.contains(v.name) && help.contains(v.help), "{}", v.name);
        }
    }

    #[test]
    fn published_defaults_are_refused() {
        let e = cfg(&[
            ("DATABASE_URL", "x"),
            ("SECURITY_JWT_SECRET", PUBLISHED_JWT_SECRETS[0]),
        ])
        .unwrap_err();
        assert!(e.contains("published default"), "{e}");
        let e = cfg(&[
            ("DATABASE_URL", "x"),
            ("SECURITY_JWT_SECRET", SECRET),
            ("DISCODEIT_ADMIN_USERNAME", "admin"),
            ("DISCODEIT_ADMIN_EMAIL", "a@x"),
            ("DISCODEIT_ADMIN_PASSWORD", "admin1234!"),
        ])
        .unwrap_err();
        assert!(
            e.contains("DISCODEIT_ADMIN_PASSWORD is a published default"),
            "{e}"
        );
    }

    #[test]
    fn cidrs() {
        let net = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()));
        assert!(!net.contains("::1".parse().unwrap()));
        let one = Cidr::parse("127.0.0.1").unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let v6 = Cidr::parse("fd00::/8").unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("fe80::1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("nope").is_none());
        let e = cfg(&[
            ("DATABASE_URL", "x"),
            ("SECURITY_JWT_SECRET", SECRET),
            ("DISCODEIT_TRUSTED_PROXIES", "10.0.0.0/8, bad"),
        ])
        .unwrap_err();
        assert!(e.contains("DISCODEIT_TRUSTED_PROXIES"));
    }

    #[test]
    fn fault_injection_is_off_by_default_and_names_are_checked() {
        let base = [("DATABASE_URL", "x"), ("SECURITY_JWT_SECRET", SECRET)];
        assert_eq!(cfg(&base).unwrap().faults, Faults::default());
        let mut with = base.to_vec();
        with.push((
            "DISCODEIT_FAULT_INJECTION",
            "upload-write-fails, crash-after-upload-commit",
        ));
        let f = cfg(&with).unwrap().faults;
        assert!(f.upload_write_fails && f.crash_after_upload_commit);
        let mut bad = base.to_vec();
        bad.push(("DISCODEIT_FAULT_INJECTION", "everything"));
        assert!(cfg(&bad).unwrap_err().contains("unknown fault"));
        let e = cfg(&[
            ("DATABASE_URL", "x"),
            ("SECURITY_JWT_SECRET", SECRET),
            ("DISCODEIT_MESSAGE_BATCH_MAX", "0"),
        ])
        .unwrap_err();
        assert!(e.contains("DISCODEIT_MESSAGE_BATCH_MAX must be between 1 and"));
    }
}
