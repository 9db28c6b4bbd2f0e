//! Configuration from environment variables. Every variable is listed in [`HELP`] and README.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// `discodeit --help`.
pub const HELP: &str = "\
discodeit - real-time Discodeit chat backend (REST, STOMP over WebSocket/SockJS, SSE)

Usage: discodeit [--help]
Configuration comes from environment variables (defaults in brackets):
  DISCODEIT_ADDR                               listen address [0.0.0.0:8080]
  DATABASE_URL                                 PostgreSQL URL [required]
  DATABASE_POOL_SIZE                           PostgreSQL connections [32]
  SECURITY_JWT_SECRET                          HMAC secret, at least 32 bytes [required]
  SECURITY_JWT_ACCESS_TOKEN_VALIDITY_SECONDS   access token lifetime [600]
  SECURITY_JWT_REFRESH_TOKEN_VALIDITY_SECONDS  refresh token lifetime [604800]
  DISCODEIT_STORAGE_DIR                        file storage directory [./.data/storage]
  DISCODEIT_WEB_DIR                            web client to serve at / [unset: none]
  DISCODEIT_INSTANCE_ID                        this instance's name [hostname]
  DISCODEIT_ADMIN_USERNAME                     bootstrap admin user name [unset: no admin]
  DISCODEIT_ADMIN_EMAIL                        bootstrap admin e-mail
  DISCODEIT_ADMIN_PASSWORD                     bootstrap admin password
  DISCODEIT_MAX_FILE_BYTES                     upload limit per file [10485760]
  DISCODEIT_MAX_REQUEST_BYTES                  upload limit per request [31457280]
  DISCODEIT_CSRF_ENABLED                       enforce the CSRF double-submit check [true]
  DISCODEIT_SSE_REPLAY_MAX_EVENTS              SSE events kept per user for replay [1000]
  DISCODEIT_SSE_REPLAY_MAX_AGE_SECONDS         SSE replay horizon [3600]
  DISCODEIT_SSE_KEEPALIVE_SECONDS              SSE keep-alive interval [15]
  DISCODEIT_STOMP_MAX_FRAME_BYTES              STOMP frame limit [65536]
  DISCODEIT_OUTBOUND_QUEUE                     frames queued per connection before it is dropped [1024]
  DISCODEIT_SOCKET_SEND_BUFFER                 SO_SNDBUF per connection, bytes [unset: kernel]
  DISCODEIT_MESSAGE_BATCH_MAX                  messages committed together at most [256]
  DISCODEIT_MESSAGE_BATCH_WINDOW_US            wait for more messages after the first, µs [0]
  DISCODEIT_MESSAGE_BATCHES_IN_FLIGHT          batches written at once, in order (1 with Kafka) [2]
  DISCODEIT_MESSAGE_QUEUE                      messages waiting for the writer at most [2048]
  DISCODEIT_MESSAGE_ADMISSION_TIMEOUT_MS       REST wait for room in that queue before 503 [2000]
  DISCODEIT_LOOKUP_CACHE_ENTRIES               channels and users cached for the write path, each [50000]
  REDIS_URL                                    Redis for the JWT registry [unset: in memory]
  KAFKA_BOOTSTRAP_SERVERS                      Kafka for the event fan-out [unset: in process]
  REDIS_KEY_PREFIX                             namespace of the registry's Redis keys [discodeit:]
  KAFKA_TOPIC_PREFIX                           namespace of the Kafka topics [discodeit.]
  KAFKA_TOPIC_PARTITIONS                       partitions of the message topics at creation [4]
  KAFKA_SESSION_TIMEOUT_MS                     consumer group session timeout [6000]
  KAFKA_HEARTBEAT_INTERVAL_MS                  consumer group heartbeat interval [1000]
  RUST_LOG                                     log filter [info]
";

/// The validated server configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub addr: SocketAddr,
    pub database_url: String,
    pub database_pool_size: usize,
    pub jwt_secret: Vec<u8>,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub storage_dir: PathBuf,
    pub web_dir: Option<PathBuf>,
    pub instance_id: String,
    pub admin: Option<AdminBootstrap>,
    pub max_file_bytes: usize,
    pub max_request_bytes: usize,
    pub csrf_enabled: bool,
    pub sse_replay_max_events: usize,
    pub sse_replay_max_age: Duration,
    pub sse_keepalive: Duration,
    pub stomp_max_frame_bytes: usize,
    pub outbound_queue: usize,
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
    pub kafka_heartbeat_interval_ms: u64,
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
        let var = |k: &str| get(k).filter(|v| !v.trim().is_empty());
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
        let database_url = var("DATABASE_URL").ok_or("DATABASE_URL is required")?;
        let jwt_secret = var("SECURITY_JWT_SECRET").ok_or("SECURITY_JWT_SECRET is required")?;
        if jwt_secret.len() < 32 {
            return Err("SECURITY_JWT_SECRET must be at least 32 bytes".into());
        }
        let access = parse_num("SECURITY_JWT_ACCESS_TOKEN_VALIDITY_SECONDS", 600)?;
        let refresh = parse_num("SECURITY_JWT_REFRESH_TOKEN_VALIDITY_SECONDS", 604_800)?;
        if access == 0 || refresh == 0 {
            return Err("token validity must be at least 1 second".into());
        }
        let admin = match (
            var("DISCODEIT_ADMIN_USERNAME"),
            var("DISCODEIT_ADMIN_EMAIL"),
            var("DISCODEIT_ADMIN_PASSWORD"),
        ) {
            (None, None, None) => None,
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
        let pool = parse_num("DATABASE_POOL_SIZE", 32)?;
        if pool == 0 {
            return Err("DATABASE_POOL_SIZE must be at least 1".into());
        }
        Ok(Config {
            addr,
            database_url,
            database_pool_size: pool as usize,
            jwt_secret: jwt_secret.into_bytes(),
            access_ttl: Duration::from_secs(access),
            refresh_ttl: Duration::from_secs(refresh),
            storage_dir: var("DISCODEIT_STORAGE_DIR")
                .unwrap_or_else(|| "./.data/storage".into())
                .into(),
            web_dir: var("DISCODEIT_WEB_DIR").map(PathBuf::from),
            instance_id,
            admin,
            max_file_bytes: parse_num("DISCODEIT_MAX_FILE_BYTES", 10 * 1024 * 1024)? as usize,
            max_request_bytes: parse_num("DISCODEIT_MAX_REQUEST_BYTES", 30 * 1024 * 1024)? as usize,
            csrf_enabled,
            sse_replay_max_events: parse_num("DISCODEIT_SSE_REPLAY_MAX_EVENTS", 1000)? as usize,
            sse_replay_max_age: Duration::from_secs(parse_num(
                "DISCODEIT_SSE_REPLAY_MAX_AGE_SECONDS",
                3600,
            )?),
            sse_keepalive: Duration::from_secs(
                parse_num("DISCODEIT_SSE_KEEPALIVE_SECONDS", 15)?.max(1),
            ),
            stomp_max_frame_bytes: parse_num("DISCODEIT_STOMP_MAX_FRAME_BYTES", 65536)? as usize,
            outbound_queue: parse_num("DISCODEIT_OUTBOUND_QUEUE", 1024)?.max(1) as usize,
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
            kafka_heartbeat_interval_ms: parse_num("KAFKA_HEARTBEAT_INTERVAL_MS", 1000)?.max(100),
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
            ("DISCODEIT_MESSAGE_BATCH_MAX", "0"),
        ])
        .unwrap_err();
        assert!(e.contains("DISCODEIT_MESSAGE_BATCH_MAX must be between 1 and"));
    }
}
