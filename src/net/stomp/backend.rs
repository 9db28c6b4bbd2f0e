//! What a STOMP session asks of the rest of the server, as a trait.
//!
//! [`StompSession`](super::session::StompSession) is a state machine over frames; the only
//! I/O it starts is these five questions. [`Services`] answers them in the server (PostgreSQL,
//! the registry, the bus); [`MemoryBackend`] answers them from memory, so unit tests and the
//! fuzz target can drive the real session — decoder, limits, refusals, the real [`Hub`] and
//! real [`Outbound`](crate::net::conn::Outbound) queues — with no database.

use bytes::Bytes;
use futures_util::future::BoxFuture;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

use super::hub::Hub;
use crate::domain::{Role, UserDto};
use crate::security::Principal;
use crate::service::destinations::{broker_event, Destination, DestinationError};
use crate::service::messages::MessageCreateRequest;
use crate::service::Services;

/// The outcome of a queued message: `Ok` once committed, or the client-facing reason.
pub type Committed = BoxFuture<'static, Result<(), String>>;

/// The session's view of the server. Futures are `'static` because the session keeps them
/// as its pending job across polls.
pub trait StompBackend: Send + Sync + 'static {
    /// Verifies a CONNECT's access token (expired tokens get the STOMP grace).
    fn authenticate(
        self: Arc<Self>,
        token: String,
    ) -> BoxFuture<'static, Result<Principal, String>>;

    /// Was the login session ended (logout, new login) — asked once after registering.
    fn is_session_ended(self: Arc<Self>, session_id: Uuid) -> BoxFuture<'static, bool>;

    /// May `who` subscribe to the channel destination `destination`?
    fn authorize_subscription(
        self: Arc<Self>,
        who: Principal,
        destination: Destination,
    ) -> BoxFuture<'static, Result<(), DestinationError>>;

    /// `SEND /pub/messages`, first half: checks what needs no database and queues the
    /// message (waiting for room in the writer's queue). The returned [`Committed`] resolves
    /// once its batch committed. Messages queued one after another are committed and
    /// broadcast in that order, so a session may have many in flight and keep their order.
    /// Errors are the client-facing reason.
    fn submit_message(
        self: Arc<Self>,
        who: Principal,
        request: MessageCreateRequest,
    ) -> BoxFuture<'static, Result<Committed, String>>;

    /// While the fan-out is too far behind to take more: a future that resolves once it can
    /// (or with the client-facing reason it could not in time). `None`: go ahead now.
    fn fanout_ready(&self) -> Option<BoxFuture<'static, Result<(), String>>> {
        None
    }

    /// SEND to a plain broker destination (synchronous: it only publishes).
    fn broker_send(
        &self,
        destination: &Destination,
        body: &Bytes,
        max_body: usize,
    ) -> Result<(), DestinationError>;
}

impl StompBackend for Services {
    fn authenticate(
        self: Arc<Self>,
        token: String,
    ) -> BoxFuture<'static, Result<Principal, String>> {
        Box::pin(async move { self.authenticate_stomp(&token).await })
    }

    fn is_session_ended(self: Arc<Self>, session_id: Uuid) -> BoxFuture<'static, bool> {
        Box::pin(async move { self.registry.is_ended(session_id).await.unwrap_or(false) })
    }

    fn authorize_subscription(
        self: Arc<Self>,
        who: Principal,
        destination: Destination,
    ) -> BoxFuture<'static, Result<(), DestinationError>> {
        Box::pin(async move { Services::authorize_subscription(&self, &who, &destination).await })
    }

    fn submit_message(
        self: Arc<Self>,
        who: Principal,
        request: MessageCreateRequest,
    ) -> BoxFuture<'static, Result<Committed, String>> {
        Box::pin(async move {
            let request_id = Uuid::new_v4().simple().to_string();
            // STOMP waits for room in the writer's queue (no REST-style 503 timeout).
            let pending = Services::submit_message(&self, &who, request, Vec::new(), request_id)
                .await
                .map_err(|e| e.to_string())?;
            let committed: Committed =
                Box::pin(async move { pending.await.map(|_| ()).map_err(|e| e.to_string()) });
            Ok(committed)
        })
    }

    fn fanout_ready(&self) -> Option<BoxFuture<'static, Result<(), String>>> {
        if !self.bus.is_behind() {
            return None;
        }
        let bus = self.bus.clone();
        // As long as a subscriber's message may wait (the send-time limit), no longer.
        let limit = self.config.queue_max_age;
        Some(Box::pin(async move {
            bus.wait_ready(Some(limit)).await.map_err(|e| e.to_string())
        }))
    }

    fn broker_send(
        &self,
        destination: &Destination,
        body: &Bytes,
        max_body: usize,
    ) -> Result<(), DestinationError> {
        Services::broker_send(self, destination, body, max_body)
    }
}

/// An in-memory [`StompBackend`] for unit tests and fuzzing; deterministic, no I/O.
///
/// - tokens are `user:<name>` or `admin:<name>` (role USER/ADMIN); `ended:<name>`
///   authenticates but its login session is ended; anything else is refused; `<name>` is
///   percent-decoded (`user:a%0Ab` is the user `a\nb`);
/// - channel subscriptions are allowed when the channel id's first byte is even, denied when
///   odd (a private channel);
/// - `submit_message` needs a `channelId` and non-empty `content`; accepted ones are counted;
/// - broker SENDs follow the server's rules ([`broker_event`]) and go straight to `hub`;
///   the fan-out is never behind unless a test says so ([`MemoryBackend::set_fanout`]).
pub struct MemoryBackend {
    hub: Arc<Hub>,
    ended: Mutex<HashSet<Uuid>>,
    created: AtomicUsize,
    fanout: Mutex<Option<Result<(), String>>>,
}

impl MemoryBackend {
    pub fn new(hub: Arc<Hub>) -> Arc<MemoryBackend> {
        Arc::new(MemoryBackend {
            hub,
            ended: Mutex::new(HashSet::new()),
            created: AtomicUsize::new(0),
            fanout: Mutex::new(None),
        })
    }

    /// `Some(outcome)`: the fan-out counts as behind, and a broker SEND's wait for it ends
    /// with `outcome`.
    pub fn set_fanout(&self, outcome: Option<Result<(), String>>) {
        if let Ok(mut f) = self.fanout.lock() {
            *f = outcome;
        }
    }

    /// Messages created through `SEND /pub/messages` so far.
    pub fn created(&self) -> usize {
        self.created.load(Ordering::Relaxed)
    }

    /// The principal a test token names, if it is one.
    pub fn principal(token: &str) -> Option<Principal> {
        let (kind, name) = token.split_once(':')?;
        let role = match kind {
            "user" | "ended" => Role::User,
            "admin" => Role::Admin,
            _ => return None,
        };
        // Percent-decoded: real usernames may hold what a header cannot (line breaks, DEL).
        let name = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
        if name.is_empty() || name.len() > 64 {
            return None;
        }
        let user_id = stable_id(name.as_bytes());
        let session_id = stable_id(token.as_bytes());
        Some(Principal {
            user_id,
            username: name.to_string(),
            role,
            session_id: Some(session_id),
            user: UserDto {
                id: user_id,
                username: name.to_string(),
                email: format!("{name}@memory.test"),
                profile: None,
                online: Some(true),
                role,
            },
        })
    }
}

impl StompBackend for MemoryBackend {
    fn authenticate(
        self: Arc<Self>,
        token: String,
    ) -> BoxFuture<'static, Result<Principal, String>> {
        let result = match MemoryBackend::principal(&token) {
            Some(p) => {
                if token.starts_with("ended:") {
                    if let (Ok(mut ended), Some(sid)) = (self.ended.lock(), p.session_id) {
                        ended.insert(sid);
                    }
                }
                Ok(p)
            }
            None => Err("invalid token".to_string()),
        };
        Box::pin(async move { result })
    }

    fn is_session_ended(self: Arc<Self>, session_id: Uuid) -> BoxFuture<'static, bool> {
        let ended = self
            .ended
            .lock()
            .map(|e| e.contains(&session_id))
            .unwrap_or(false);
        Box::pin(async move { ended })
    }

    fn authorize_subscription(
        self: Arc<Self>,
        _who: Principal,
        destination: Destination,
    ) -> BoxFuture<'static, Result<(), DestinationError>> {
        let result = match destination {
            Destination::ChannelMessages(id) | Destination::ChannelMessageEvents(id) => {
                if id.as_bytes()[0] % 2 == 0 {
                    Ok(())
                } else {
                    Err(DestinationError::Denied {
                        destination: destination.as_string(),
                        why: "the channel is private and you are not a participant",
                    })
                }
            }
            Destination::Broker(_) => Ok(()),
            Destination::PubMessages => Err(DestinationError::Unknown {
                destination: destination.as_string(),
                hint: "subscriptions must start with /sub/",
            }),
        };
        Box::pin(async move { result })
    }

    fn submit_message(
        self: Arc<Self>,
        _who: Principal,
        request: MessageCreateRequest,
    ) -> BoxFuture<'static, Result<Committed, String>> {
        let ok = request.channel_id.is_some()
            && request.content.as_deref().is_some_and(|c| !c.is_empty());
        let result = if ok {
            self.created.fetch_add(1, Ordering::Relaxed);
            let committed: Committed = Box::pin(async { Ok(()) });
            Ok(committed)
        } else {
            Err("channelId and content are required".to_string())
        };
        Box::pin(async move { result })
    }

    fn fanout_ready(&self) -> Option<BoxFuture<'static, Result<(), String>>> {
        let outcome = self.fanout.lock().ok()?.clone()?;
        Some(Box::pin(std::future::ready(outcome)))
    }

    fn broker_send(
        &self,
        destination: &Destination,
        body: &Bytes,
        max_body: usize,
    ) -> Result<(), DestinationError> {
        self.hub
            .on_event(&broker_event(destination, body, max_body)?);
        Ok(())
    }
}

/// A UUID that depends only on `bytes` (FNV-1a, twice): the same name is the same user.
fn stable_id(bytes: &[u8]) -> Uuid {
    let fnv = |seed: u64| {
        bytes.iter().fold(seed, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    let (hi, lo) = (fnv(0xcbf2_9ce4_8422_2325), fnv(0x8422_2325_cbf2_9ce4));
    Uuid::from_u128((u128::from(hi) << 64) | u128::from(lo))
}
