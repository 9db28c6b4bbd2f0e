//! The STOMP broker: who subscribed to what, and the fan-out of bus events to them.
//!
//! Subscriptions live in 64 shards keyed by destination, each destination holding a
//! copy-on-write list, so a broadcast takes the lock only to clone one `Arc` and pushes with
//! no lock held. Connections are registered in 64 shards keyed by user, so a revocation
//! finds a user's sessions at once. A broadcast is encoded once: the MESSAGE frame is built
//! from one [`MessageTemplate`], rendered once per distinct subscription id and framing, and
//! every subscriber sharing that id gets the same bytes. Pushes never wait (see [`Outbox`]).

use crate::net::shards::Sharded;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use uuid::Uuid;

use super::outbox::{CloseReason, Framing, Outbox, Outgoing};
use crate::bus::EventBus;
use crate::domain::{Event, MessageDto};
use crate::proto::stomp::{encode_to_bytes, Command, Frame, MessageTemplate};

/// The content type of broker messages sent with `SEND /sub/...` (the bus carries text).
const BROKER_CONTENT_TYPE: &str = "text/plain;charset=UTF-8";

/// One SUBSCRIBE of one connection.
#[derive(Clone)]
struct Subscriber {
    conn: u64,
    id: Arc<str>,
    outbox: Outbox,
}

/// One authenticated STOMP connection, for revocation.
struct Connection {
    conn: u64,
    session_id: Option<Uuid>,
    outbox: Outbox,
}

/// Subscribers per destination; the list is shared with in-flight broadcasts.
type Destinations = HashMap<String, Arc<Vec<Subscriber>>>;

/// The in-memory broker and connection registry.
pub struct Hub {
    destinations: Sharded<Destinations>,
    users: Sharded<HashMap<Uuid, Vec<Connection>>>,
    next_conn: AtomicU64,
    next_message: AtomicU64,
}

/// The destination every message of a channel is broadcast to.
pub fn channel_destination(channel_id: Uuid) -> String {
    format!("/sub/channels.{channel_id}.messages")
}

/// The destination edits and deletions of a channel's messages are broadcast to.
pub fn message_events_destination(channel_id: Uuid) -> String {
    format!("/sub/channels.{channel_id}.message-events")
}

impl Hub {
    pub fn new() -> Arc<Hub> {
        Arc::new(Hub {
            destinations: Sharded::default(),
            users: Sharded::default(),
            next_conn: AtomicU64::new(1),
            next_message: AtomicU64::new(1),
        })
    }

    /// Consumes the bus: messages are fanned out in the order the bus delivers them, and
    /// revocations close the user's connections.
    pub fn attach(self: &Arc<Self>, bus: &EventBus) {
        let mut rx = bus.subscribe();
        let hub = self.clone();
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                hub.on_event(&event);
            }
        });
    }

    /// Reacts to one bus event.
    pub fn on_event(&self, event: &Event) {
        match event {
            Event::MessageCreated { message } => self.broadcast_message(message),
            Event::MessageUpdated { .. } | Event::MessageDeleted { .. } => {
                if let Some((channel_id, body)) = event.message_event() {
                    let destination = message_events_destination(channel_id);
                    if !self.has_subscribers(&destination) {
                        return;
                    }
                    match serde_json::to_vec(&body) {
                        Ok(json) => {
                            let id =
                                format!("e-{}", self.next_message.fetch_add(1, Ordering::Relaxed));
                            self.publish(&destination, &id, "application/json", Bytes::from(json));
                        }
                        Err(e) => tracing::error!("cannot serialise {destination} event: {e}"),
                    }
                }
            }
            Event::BrokerMessage { destination, body } => {
                let id = format!("b-{}", self.next_message.fetch_add(1, Ordering::Relaxed));
                self.publish(
                    destination,
                    &id,
                    BROKER_CONTENT_TYPE,
                    Bytes::from(body.clone().into_bytes()),
                );
            }
            Event::UserRevoked {
                user_id,
                session_id,
            } => self.revoke(*user_id, *session_id),
            _ => {}
        }
    }

    /// Sends a created message to `/sub/channels.{channelId}.messages`; the DTO is
    /// serialised once.
    pub fn broadcast_message(&self, message: &MessageDto) {
        let destination = channel_destination(message.channel_id);
        if !self.has_subscribers(&destination) {
            return;
        }
        match serde_json::to_vec(message) {
            Ok(json) => {
                self.publish(
                    &destination,
                    &message.id.to_string(),
                    "application/json",
                    Bytes::from(json),
                );
            }
            Err(e) => tracing::error!("cannot serialise message {}: {e}", message.id),
        }
    }

    fn has_subscribers(&self, destination: &str) -> bool {
        self.destinations
            .lock(destination)
            .contains_key(destination)
    }

    /// Delivers one MESSAGE to every subscriber of `destination`. Returns how many
    /// subscribers it was queued for.
    pub fn publish(
        &self,
        destination: &str,
        message_id: &str,
        content_type: &str,
        body: Bytes,
    ) -> usize {
        let targets = match self.destinations.lock(destination).get(destination) {
            Some(list) => list.clone(),
            None => return 0,
        };
        let template = MessageTemplate::new(destination, message_id, content_type, body);
        // Rendered once per distinct (subscription id, framing); usually a single entry.
        let mut rendered: HashMap<(&str, Framing), Outgoing> = HashMap::new();
        let mut queued = 0;
        for t in targets.iter() {
            let framing = t.outbox.framing();
            let item = rendered
                .entry((&t.id, framing))
                .or_insert_with(|| Outgoing::encode(framing, &template.render(&t.id)))
                .clone();
            if t.outbox.push(item) {
                queued += 1;
            }
        }
        queued
    }

    /// A new connection id.
    pub fn next_connection_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Adds a subscription.
    pub fn subscribe(&self, destination: &str, conn: u64, id: &str, outbox: &Outbox) {
        let mut map = self.destinations.lock(destination);
        let list = map.entry(destination.to_string()).or_default();
        Arc::make_mut(list).push(Subscriber {
            conn,
            id: Arc::from(id),
            outbox: outbox.clone(),
        });
    }

    /// Removes a subscription (no-op when absent).
    pub fn unsubscribe(&self, destination: &str, conn: u64, id: &str) {
        let mut map = self.destinations.lock(destination);
        if let Some(list) = map.get_mut(destination) {
            Arc::make_mut(list).retain(|s| !(s.conn == conn && &*s.id == id));
            if list.is_empty() {
                map.remove(destination);
            }
        }
    }

    /// Number of subscriptions to `destination` (for tests and metrics).
    pub fn subscriber_count(&self, destination: &str) -> usize {
        self.destinations
            .lock(destination)
            .get(destination)
            .map_or(0, |l| l.len())
    }

    /// Registers an authenticated connection so a revocation can close it.
    pub fn register(&self, conn: u64, user: Uuid, session_id: Option<Uuid>, outbox: &Outbox) {
        self.users
            .lock(&user)
            .entry(user)
            .or_default()
            .push(Connection {
                conn,
                session_id,
                outbox: outbox.clone(),
            });
    }

    pub fn unregister(&self, conn: u64, user: Uuid) {
        let mut map = self.users.lock(&user);
        if let Some(list) = map.get_mut(&user) {
            list.retain(|c| c.conn != conn);
            if list.is_empty() {
                map.remove(&user);
            }
        }
    }

    /// Number of live STOMP connections of `user`.
    pub fn connection_count(&self, user: Uuid) -> usize {
        self.users.lock(&user).get(&user).map_or(0, Vec::len)
    }

    /// Closes the user's connections (of one login session, or all) with an ERROR frame.
    pub fn revoke(&self, user: Uuid, session_id: Option<Uuid>) {
        let closed: Vec<Connection> = {
            let mut map = self.users.lock(&user);
            let Some(list) = map.get_mut(&user) else {
                return;
            };
            let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(list)
                .into_iter()
                .partition(|c| session_id.is_none() || c.session_id == session_id);
            *list = kept;
            if list.is_empty() {
                map.remove(&user);
            }
            gone
        };
        if closed.is_empty() {
            return;
        }
        let message =
            "Session ended: the access token was revoked (logout, new login or role change)";
        let frame = encode_to_bytes(
            &Frame::new(Command::Error)
                .with_header("message", message)
                .with_header("content-type", "text/plain")
                .body(message.as_bytes().to_vec()),
        );
        for c in closed {
            c.outbox.push_bytes(&frame);
            c.outbox.close(CloseReason::policy("Session revoked"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::ws::outbox::{Next, OutboxReceiver};

    fn conn(hub: &Hub, framing: Framing, cap: usize) -> (u64, Outbox, OutboxReceiver) {
        let (outbox, rx) = Outbox::channel(framing, cap);
        (hub.next_connection_id(), outbox, rx)
    }

    async fn batch(rx: &mut OutboxReceiver) -> Vec<Outgoing> {
        match rx.next().await {
            Next::Batch(b) => b,
            Next::Close(r) => panic!("closed: {r:?}"),
        }
    }

    #[tokio::test]
    async fn identical_frames_share_bytes() {
        let hub = Hub::new();
        let (c1, o1, mut r1) = conn(&hub, Framing::Raw, 8);
        let (c2, o2, mut r2) = conn(&hub, Framing::Raw, 8);
        let (c3, o3, mut r3) = conn(&hub, Framing::Raw, 8);
        hub.subscribe("/sub/x", c1, "sub-0", &o1);
        hub.subscribe("/sub/x", c2, "sub-0", &o2);
        hub.subscribe("/sub/x", c3, "sub-7", &o3);
        assert_eq!(
            hub.publish(
                "/sub/x",
                "m1",
                "application/json",
                Bytes::from_static(b"{}")
            ),
            3
        );
        let (a, b, c) = (
            batch(&mut r1).await,
            batch(&mut r2).await,
            batch(&mut r3).await,
        );
        let (Outgoing::Text(a), Outgoing::Text(b), Outgoing::Text(c)) = (&a[0], &b[0], &c[0])
        else {
            panic!("text expected");
        };
        // Same subscription id: the very same allocation.
        assert_eq!(a.as_str().as_ptr(), b.as_str().as_ptr());
        assert_ne!(a.as_str().as_ptr(), c.as_str().as_ptr());
        assert!(a
            .as_str()
            .starts_with("MESSAGE\nsubscription:sub-0\ndestination:/sub/x\n"));
        assert!(c.as_str().starts_with("MESSAGE\nsubscription:sub-7\n"));
    }

    #[tokio::test]
    async fn full_subscriber_is_closed_others_continue() {
        let hub = Hub::new();
        let (slow, slow_out, _slow_rx) = conn(&hub, Framing::SockJs, 1);
        let (fast, fast_out, mut fast_rx) = conn(&hub, Framing::SockJs, 8);
        hub.subscribe("/sub/x", slow, "s", &slow_out);
        hub.subscribe("/sub/x", fast, "s", &fast_out);
        hub.publish("/sub/x", "1", "text/plain", Bytes::from_static(b"a"));
        hub.publish("/sub/x", "2", "text/plain", Bytes::from_static(b"b"));
        assert!(slow_out.is_closed());
        assert!(!fast_out.is_closed());
        assert_eq!(batch(&mut fast_rx).await.len(), 2);
    }

    #[tokio::test]
    async fn revoke_closes_only_that_login_session() {
        let hub = Hub::new();
        let user = Uuid::new_v4();
        let (s1, s2) = (Uuid::new_v4(), Uuid::new_v4());
        let (c1, o1, mut r1) = conn(&hub, Framing::Raw, 8);
        let (c2, o2, _r2) = conn(&hub, Framing::Raw, 8);
        hub.register(c1, user, Some(s1), &o1);
        hub.register(c2, user, Some(s2), &o2);
        hub.revoke(user, Some(s1));
        assert!(o1.is_closed());
        assert!(!o2.is_closed());
        assert_eq!(hub.connection_count(user), 1);
        let error = batch(&mut r1).await;
        assert!(std::str::from_utf8(error[0].as_bytes())
            .unwrap()
            .starts_with("ERROR\n"));
        hub.revoke(user, None);
        assert!(o2.is_closed());
        assert_eq!(hub.connection_count(user), 0);
    }

    #[test]
    fn unsubscribe_forgets_empty_destinations() {
        let hub = Hub::new();
        let (c, o, _r) = conn(&hub, Framing::Raw, 1);
        hub.subscribe("/sub/y", c, "a", &o);
        hub.subscribe("/sub/y", c, "b", &o);
        hub.unsubscribe("/sub/y", c, "a");
        assert_eq!(hub.subscriber_count("/sub/y"), 1);
        hub.unsubscribe("/sub/y", c, "b");
        assert_eq!(hub.subscriber_count("/sub/y"), 0);
        assert!(!hub.has_subscribers("/sub/y"));
    }
}
