//! The service layer: every domain rule of the contract, shared by REST, STOMP and the event
//! relays. Each file adds methods to [`Services`] for one resource. Services publish domain
//! events on the bus after their transaction commits and never touch sockets.

pub mod auth;
pub mod binary_contents;
pub mod broker;
pub mod channels;
pub mod messages;
pub mod notifications;
pub mod read_statuses;
pub mod uploads;
pub mod users;
pub mod validation;

use std::sync::Arc;

use crate::bus::EventBus;
use crate::config::Config;
use crate::domain::Event;
use crate::error::ApiResult;
use crate::security::jwt::JwtCodec;
use crate::security::registry::JwtRegistry;
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

/// Current epoch seconds.
pub(crate) fn epoch_now() -> i64 {
    chrono::Utc::now().timestamp()
}
