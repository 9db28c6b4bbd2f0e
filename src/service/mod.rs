//! The service layer: every domain rule of the contract, shared by REST, STOMP and the event
//! relays. Each file adds methods to [`Services`] for one resource. Services publish domain
//! events on the bus after their transaction commits and never touch sockets.

pub mod auth;
pub mod binary_contents;
pub mod channels;
pub mod destinations;
pub mod lookups;
pub mod message_writer;
pub mod messages;
pub mod notifications;
pub mod read_statuses;
pub mod uploads;
pub mod users;
pub mod validation;

use std::net::IpAddr;
use std::sync::Arc;

use crate::bus::EventBus;
use crate::config::Config;
use crate::domain::Event;
use crate::error::{ApiError, ApiResult};
use crate::security::jwt::JwtCodec;
use crate::security::registry::JwtRegistry;
use crate::security::throttle::{AuthThrottle, RateLimiter};
use crate::store::files::FileStore;
use crate::store::upload_jobs::Owner;
use crate::store::{Db, Tx};

use lookups::Lookups;
use message_writer::MessageWriter;
pub use message_writer::PendingMessage;
pub use uploads::Upload;

/// Shared application services; cheap to share behind an `Arc`.
pub struct Services {
    pub db: Db,
    pub files: FileStore,
    pub bus: EventBus,
    pub jwt: JwtCodec,
    pub registry: Arc<dyn JwtRegistry>,
    pub config: Arc<Config>,
    /// This process, as the owner of the uploads it starts (see `uploads.rs`).
    pub upload_owner: Owner,
    /// Rate limits on login and sign-up attempts.
    pub throttle: AuthThrottle,
    /// Channel and author facts of the message write path, kept fresh by `Event::Changed`.
    pub(crate) lookups: Arc<Lookups>,
    /// The queue into the one task that writes messages in batches.
    pub(crate) writer: MessageWriter,
}

/// Why [`Services::try_commit`] failed.
pub(crate) enum CommitError {
    /// Nothing was committed.
    Failed(tokio_postgres::Error),
    /// The outbox rows could not be written; nothing was committed.
    Outbox(ApiError),
    /// The connection broke during `COMMIT`: the transaction may or may not have committed.
    Unknown(tokio_postgres::Error),
}

impl Services {
    /// Builds the services and starts the message writer (it needs a tokio runtime). Local
    /// deliveries of `Event::Changed` refresh the write path's caches on every instance.
    pub fn new(
        db: Db,
        files: FileStore,
        bus: EventBus,
        jwt: JwtCodec,
        registry: Arc<dyn JwtRegistry>,
        config: Arc<Config>,
    ) -> Arc<Self> {
        let lookups = Arc::new(Lookups::new(config.lookup_cache_entries));
        let hook = lookups.clone();
        bus.on_deliver(move |e| hook.apply_events([e]));
        // Batches overlap only in single-instance mode: with the outbox, rows of overlapping
        // transactions could reach the relay out of order.
        let depth = if bus.is_distributed() {
            1
        } else {
            config.message_batches_in_flight
        };
        Arc::new_cyclic(|services| Services {
            writer: MessageWriter::start(services.clone(), bus.clone(), &config, depth),
            upload_owner: Owner {
                instance_id: config.instance_id.clone(),
                incarnation: uuid::Uuid::new_v4(),
            },
            throttle: AuthThrottle {
                per_ip: RateLimiter::new(config.auth_ip_burst, config.auth_ip_per_minute),
                per_username: RateLimiter::new(
                    config.auth_username_burst,
                    config.auth_username_per_minute,
                ),
            },
            db,
            files,
            bus,
            jwt,
            registry,
            config,
            lookups,
        })
    }

    /// Commits `tx` with its `events`: realtime pushes never precede the commit. In
    /// multi-instance mode the events are outbox rows of the same transaction (they exist
    /// exactly when the change does); otherwise they are published after the commit.
    pub(crate) async fn commit(&self, tx: Tx<'_>, events: Vec<Event>) -> ApiResult<()> {
        match self.try_commit(tx, &events).await {
            Ok(()) => {
                self.after_commit(events);
                Ok(())
            }
            Err(CommitError::Outbox(e)) => Err(e),
            Err(CommitError::Failed(e) | CommitError::Unknown(e)) => Err(e.into()),
        }
    }

    /// The first half of [`Self::commit`]: outbox rows (multi-instance mode), then `COMMIT`.
    /// Tells a lost `COMMIT` (outcome unknown) apart from a failure before it.
    pub(crate) async fn try_commit(&self, tx: Tx<'_>, events: &[Event]) -> Result<(), CommitError> {
        if let Some(outbox) = self.bus.outbox() {
            outbox
                .insert_in(&*tx, events)
                .await
                .map_err(|e| CommitError::Outbox(e.into()))?;
        }
        tx.commit().await.map_err(|e| {
            if e.as_db_error().is_some() {
                // The server answered: it refused, so nothing was committed.
                CommitError::Failed(e)
            } else {
                CommitError::Unknown(e)
            }
        })
    }

    /// The second half of [`Self::commit`], once committed: this instance's caches are
    /// refreshed at once (before the caller answers), then in single-instance mode the events
    /// are published (the outbox relay does it otherwise).
    pub(crate) fn after_commit(&self, events: Vec<Event>) {
        self.lookups.apply_events(&events);
        if self.bus.is_distributed() {
            return;
        }
        for e in events {
            self.bus.publish(e);
        }
    }
}

impl Services {
    /// Counts a login or sign-up attempt by `client` for `username`; 429 (naming the limit,
    /// with `Retry-After`) over either rate limit. Runs before any database or bcrypt work.
    pub(crate) fn throttle_attempt(&self, client: IpAddr, username: &str) -> ApiResult<()> {
        self.throttle
            .attempt(&client.to_string(), username)
            .map_err(|t| {
                tracing::info!("throttled {client} ({username:?}): {}", t.limit);
                let secs = (t.retry_after.as_secs_f64().ceil() as u64).max(1);
                ApiError::too_many_requests(t.limit, secs)
            })
    }
}

/// Current epoch seconds.
pub(crate) fn epoch_now() -> i64 {
    chrono::Utc::now().timestamp()
}
