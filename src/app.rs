//! Wiring: builds the services, the realtime hubs and the HTTP server from a [`Config`], and
//! runs them until SIGINT/SIGTERM.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tokio::net::TcpListener;

use crate::bus::backlog::BacklogLimits;
use crate::bus::kafka::{start_consumer, Publisher};
use crate::bus::outbox::{spawn_relay, OutboxWriter};
use crate::bus::EventBus;
use crate::config::Config;
use crate::net::sse::SseHub;
use crate::net::static_files::StaticFiles;
use crate::net::ws::WsEndpoint;
use crate::net::App;
use crate::security::jwt::JwtCodec;
use crate::security::metered_registry::MeteredRegistry;
use crate::security::redis_registry::RedisRegistry;
use crate::security::registry::{JwtRegistry, MemoryRegistry};
use crate::service::Services;
use crate::store::files::FileStore;
use crate::store::Db;

/// Connects to the database, migrates, bootstraps the admin, builds the [`App`].
pub async fn build(config: Config) -> Result<Arc<App>, String> {
    let config = Arc::new(config);
    let db = Db::connect(&config.database_url, config.database_pool_size)?;
    db.migrate().await?;
    let mut files = FileStore::new(&config.storage_dir)
        .map_err(|e| format!("storage dir {}: {e}", config.storage_dir.display()))?;
    if config.faults.upload_write_fails {
        tracing::warn!("fault injection: every file write fails");
        files = files.failing_writes();
    }
    let (registry, memory) = session_registry(&config).await?;
    let registry: Arc<dyn JwtRegistry> = Arc::new(MeteredRegistry::new(registry));
    let fanout = BacklogLimits {
        max_bytes: config.fanout_max_bytes,
        max_lag: config.fanout_max_lag,
    };
    let bus = match &config.kafka_bootstrap {
        Some(_) => EventBus::distributed(
            OutboxWriter::start(db.clone(), config.kafka_message_max_bytes),
            fanout,
        ),
        None => EventBus::new(fanout),
    };
    let services = Services::new(
        db,
        files,
        bus.clone(),
        JwtCodec::new(&config.jwt_secret),
        registry,
        config.clone(),
    );
    services
        .bootstrap_admin()
        .await
        .map_err(|e| format!("admin bootstrap: {e}"))?;
    let sse = SseHub::new(&config);
    sse.clone().attach(&bus);
    let ws = WsEndpoint::new(&config, services.clone(), &bus);
    let app = Arc::new(App {
        web: config.web_dir.clone().map(StaticFiles::new),
        swagger_ui: config.swagger_ui_dir.clone().map(StaticFiles::exact),
        config: config.clone(),
        services: services.clone(),
        sse,
        ws: Some(ws),
        ready: start_event_pipeline(&config, &bus)?,
        accepting: AtomicBool::new(true),
    });
    spawn_upload_recovery(services.clone());
    spawn_session_sweeper(services, memory);
    Ok(app)
}

/// Multi-instance mode: the outbox relay and this instance's Kafka consumer. Returns the
/// readiness flag (true at once in single-instance mode, once partitions are assigned else).
fn start_event_pipeline(config: &Arc<Config>, bus: &EventBus) -> Result<Arc<AtomicBool>, String> {
    let Some(servers) = &config.kafka_bootstrap else {
        return Ok(Arc::new(AtomicBool::new(true)));
    };
    let ready = Arc::new(AtomicBool::new(false));
    let publisher =
        Arc::new(Publisher::new(config, servers).map_err(|e| format!("kafka producer: {e}"))?);
    // Unique per process: a restarted instance is a new lease holder.
    let holder = format!("{}/{}", config.instance_id, uuid::Uuid::new_v4().simple());
    spawn_relay(config.database_url.clone(), holder, publisher);
    start_consumer(config.clone(), servers.clone(), bus.clone(), ready.clone())?;
    tracing::info!("event bus: Kafka at {servers} through the outbox");
    Ok(ready)
}

/// The shared Redis registry when `REDIS_URL` is set, else the in-memory one (returned a
/// second time so the sweeper can purge it; Redis expires its keys by itself).
async fn session_registry(
    config: &Config,
) -> Result<(Arc<dyn JwtRegistry>, Option<Arc<MemoryRegistry>>), String> {
    let Some(url) = &config.redis_url else {
        let memory = Arc::new(MemoryRegistry::new());
        return Ok((memory.clone(), Some(memory)));
    };
    let redis = RedisRegistry::new(url, &config.redis_key_prefix)?;
    match redis.ping().await {
        Ok(()) => tracing::info!("JWT registry: Redis"),
        Err(_) => {
            tracing::warn!("JWT registry: Redis not reachable yet; auth answers 503 until it is")
        }
    }
    Ok((Arc::new(redis), None))
}

/// At start-up, then every minute: finish or fail uploads a crash left behind.
fn spawn_upload_recovery(services: Arc<Services>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            if let Err(e) = services.recover_uploads().await {
                tracing::warn!("upload recovery: {e}");
            }
        }
    });
}

/// Every few seconds: users whose access session lapsed go offline (`users.refresh`), and
/// old revocations are forgotten.
fn spawn_session_sweeper(services: Arc<Services>, memory: Option<Arc<MemoryRegistry>>) {
    tokio::spawn(async move {
        let mut last = chrono::Utc::now().timestamp();
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
        loop {
            tick.tick().await;
            let now = chrono::Utc::now().timestamp();
            if let Ok(users) = services.registry.lapsed_between(last, now).await {
                for u in users {
                    services.emit_users_refresh(u);
                }
            }
            if let Some(m) = &memory {
                m.purge(now);
            }
            last = now;
        }
    });
}

/// Binds and serves until a shutdown signal.
pub async fn run(config: Config) -> Result<(), String> {
    let addr = config.addr;
    let admin_addr = config.admin_addr;
    crate::fd_limit::raise_and_log(config.database_pool_size);
    let app = build(config).await?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let admin = TcpListener::bind(admin_addr)
        .await
        .map_err(|e| format!("cannot listen on {admin_addr} (DISCODEIT_ADMIN_ADDR): {e}"))?;
    let bound = |l: &TcpListener| l.local_addr().map(|a| a.to_string()).unwrap_or_default();
    tracing::info!(
        "discodeit {} listening on http://{} (metrics and health on http://{})",
        app.config.instance_id,
        bound(&listener),
        bound(&admin)
    );
    crate::net::admin::spawn(app.clone(), admin);
    crate::net::server::serve(app, listener, shutdown_signal()).await;
    tracing::info!("shut down");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
