//! The service layer: every domain rule of the contract, shared by REST, STOMP and the event
//! relays. Each file adds methods to [`Services`] for one resource. Services publish domain
//! events on the bus after their transaction commits and never touch sockets.

pub mod auth;
pub mod binary_contents;
pub mod channels;
pub mod destinations;
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
use crate::security::throttle::AuthThrottle;
use crate::store::files::FileStore;
use crate::store::upload_jobs::Owner;
use crate::store::{Db, Tx};

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
}

impl Services {
    /// Commits `tx` with its `events`: realtime pushes never precede the commit. In
    /// multi-instance mode the events are outbox rows of the same transaction (they exist
    /// exactly when the change does); otherwise they are published after the commit.
    pub(crate) async fn commit(&self, tx: Tx<'_>, events: Vec<Event>) -> ApiResult<()> {
        if let Some(outbox) = self.bus.outbox() {
            outbox.insert_in(&*tx, &events).await?;
            tx.commit().await?;
            return Ok(());
        }
        tx.commit().await?;
        for e in events {
            self.bus.publish(e);
        }
        Ok(())
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
