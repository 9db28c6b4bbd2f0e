//! The STOMP broker: who subscribed to what, and the fan-out of bus events to them.
//!
//! Subscriptions live in 64 shards keyed by destination, each destination holding a
//! copy-on-write list, so a broadcast takes the lock only to clone one `Arc` and pushes with
//! no lock held. Connections are registered in 64 shards keyed by user, so a revocation finds
//! a user's sessions at once (and a sweep finds stuck queues). A broadcast is encoded once
//! per encoding: every subscriber's queue gets the same three shared slices — the frame head,
//! its own subscription id (encoded when it subscribed) and the shared tail with the body —
//! so nothing is copied per subscriber and 1000 subscriptions of one connection to one
//! destination share one body. Pushes never wait (see [`Outbound`]).

use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use uuid::Uuid;

use crate::bus::backlog::FanoutMeter;
use crate::bus::EventBus;
use crate::domain::{Event, MessageDto};
use crate::net::conn::clock::now_ms;
use crate::net::conn::{json_escaped, CloseReason, Encoding, Item, Outbound};
use crate::net::shards::{lock, Sharded};
use crate::proto::stomp::{encode_to_bytes, escape_header, Command, Frame, MessageTemplate};
use crate::service::destinations::{channel_message_events, channel_messages};

/// The content type of broker messages sent with `SEND /sub/...` (the bus carries text).
const BROKER_CONTENT_TYPE: &str = "text/plain;charset=UTF-8";

/// One SUBSCRIBE of one connection.
#[derive(Clone)]
struct Subscriber {
    conn: u64,
    id: Arc<str>,
    /// The id as it goes on the wire for this connection's encoding.
    id_encoded: Bytes,
    out: Arc<Outbound>,
}

/// One authenticated STOMP connection, for revocation and sweeps.
struct Connection {
    conn: u64,
    session_id: Option<Uuid>,
    out: Arc<Outbound>,
}

/// Subscribers per destination; the list is shared with in-flight broadcasts.
type Destinations = HashMap<String, Arc<Vec<Subscriber>>>;

/// A refused subscription or registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubError {
    /// The destination has as many subscribers as allowed.
    DestinationFull { limit: usize },
    /// The user has as many STOMP sessions as allowed.
    TooManySessions { limit: usize },
}

impl std::fmt::Display for HubError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HubError::DestinationFull { limit } => {
                write!(
                    f,
                    "too many subscribers to this destination: limit is {limit}"
                )
            }
            HubError::TooManySessions { limit } => {
                write!(f, "too many STOMP sessions for this user: limit is {limit}")
            }
        }
    }
}

/// The in-memory broker and connection registry.
pub struct Hub {
    destinations: Sharded<Destinations>,
    users: Sharded<HashMap<Uuid, Vec<Connection>>>,
    next_conn: AtomicU64,
    next_message: AtomicU64,
    max_per_destination: usize,
    max_sessions_per_user: usize,
    /// Set by [`Hub::attach`]: where broadcasts report lagging queues (see `bus::backlog`).
    meter: OnceLock<FanoutMeter>,
}

/// `MESSAGE\nsubscription:` in each encoding.
const HEAD_RAW: &[u8] = b"MESSAGE\nsubscription:";
const HEAD_SOCKJS: &[u8] = b"MESSAGE\\nsubscription:";

impl Hub {
    pub fn new(max_per_destination: usize, max_sessions_per_user: usize) -> Arc<Hub> {
        Arc::new(Hub {
            destinations: Sharded::default(),
            users: Sharded::default(),
            next_conn: AtomicU64::new(1),
            next_message: AtomicU64::new(1),
            max_per_destination,
            max_sessions_per_user,
            meter: OnceLock::new(),
        })
    }

    /// Consumes the bus (messages are fanned out in the order the bus delivers them,
    /// revocations close the user's connections) and sweeps stuck queues every second.
    pub fn attach(self: &Arc<Self>, bus: &EventBus) {
        let _ = self.meter.set(bus.fanout_meter());
        let mut rx = bus.subscribe();
        let hub = self.clone();
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                hub.on_event(&event);
            }
        });
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(hub) = weak.upgrade() else { break };
                hub.sweep(now_ms());
            }
        });
    }

    /// Reacts to one bus event.
    pub fn on_event(&self, event: &Event) {
        match event {
            Event::MessageCreated { message } => self.broadcast_message(message),
            Event::MessageUpdated { .. } | Event::MessageDeleted { .. } => {
                if let Some((channel_id, body)) = event.message_event() {
                    let id = format!("e-{}", self.next_message.fetch_add(1, Ordering::Relaxed));
                    self.broadcast_message_event(channel_id, &id, &body);
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
        let destination = channel_messages(message.channel_id);
        self.publish_json(&destination, &message.id.to_string(), message);
    }

    /// An edit or deletion event on `/sub/channels.{channelId}.message-events`.
    pub fn broadcast_message_event(
        &self,
        channel_id: Uuid,
        event_id: &str,
        body: &impl serde::Serialize,
    ) {
        self.publish_json(&channel_message_events(channel_id), event_id, body);
    }

    fn publish_json(&self, destination: &str, id: &str, body: &impl serde::Serialize) {
        if !self.has_subscribers(destination) {
            return;
        }
        match serde_json::to_vec(body) {
            Ok(json) => {
                self.publish(destination, id, "application/json", Bytes::from(json));
            }
            Err(e) => tracing::error!("cannot serialise the body for {destination}: {e}"),
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
        let tail_raw = MessageTemplate::new(destination, message_id, content_type, body).tail();
        let mut tail_sockjs: Option<Bytes> = None;
        let at = now_ms();
        let lag_ms = self.meter.get().map_or(u64::MAX, FanoutMeter::lag_ms);
        let (mut queued, mut lagging) = (0, 0);
        for s in targets.iter() {
            let (head, tail) = match s.out.encoding() {
                Encoding::Raw => (HEAD_RAW, tail_raw.clone()),
                Encoding::SockJs => (
                    HEAD_SOCKJS,
                    tail_sockjs
                        .get_or_insert_with(|| json_escaped(&tail_raw))
                        .clone(),
                ),
            };
            let item = Item::three(Bytes::from_static(head), s.id_encoded.clone(), tail, at);
            if let Some(age) = s.out.push_aged(item) {
                queued += 1;
                lagging += usize::from(age > lag_ms);
            }
        }
        if let Some(meter) = self.meter.get() {
            meter.observe(queued, lagging);
        }
        queued
    }

    /// A new connection id.
    pub fn next_connection_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Adds a subscription, unless the destination is full.
    pub fn subscribe(
        &self,
        destination: &str,
        conn: u64,
        id: &str,
        out: &Arc<Outbound>,
    ) -> Result<(), HubError> {
        let escaped = escape_header(id);
        let id_encoded = match out.encoding() {
            Encoding::Raw => Bytes::from(escaped.into_bytes()),
            Encoding::SockJs => json_escaped(escaped.as_bytes()),
        };
        let mut map = self.destinations.lock(destination);
        let list = map.entry(destination.to_string()).or_default();
        if list.len() >= self.max_per_destination {
            let limit = self.max_per_destination;
            if list.is_empty() {
                map.remove(destination);
            }
            return Err(HubError::DestinationFull { limit });
        }
        Arc::make_mut(list).push(Subscriber {
            conn,
            id: Arc::from(id),
            id_encoded,
            out: out.clone(),
        });
        Ok(())
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

    /// Registers an authenticated connection so a revocation can close it; refused when the
    /// user already holds the allowed number of sessions.
    pub fn register(
        &self,
        conn: u64,
        user: Uuid,
        session_id: Option<Uuid>,
        out: &Arc<Outbound>,
    ) -> Result<(), HubError> {
        let mut map = self.users.lock(&user);
        let list = map.entry(user).or_default();
        if list.len() >= self.max_sessions_per_user {
            return Err(HubError::TooManySessions {
                limit: self.max_sessions_per_user,
            });
        }
        list.push(Connection {
            conn,
            session_id,
            out: out.clone(),
        });
        Ok(())
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

    /// Number of authenticated STOMP connections (for metrics).
    pub fn session_count(&self) -> usize {
        self.users
            .all()
            .map(|s| lock(s).values().map(Vec::len).sum::<usize>())
            .sum()
    }

    /// Every registered connection's queue, shard by shard (no lock held while the caller
    /// acts on them).
    fn for_each_connection(&self, mut f: impl FnMut(&Arc<Outbound>)) {
        for shard in self.users.all() {
            let outs: Vec<Arc<Outbound>> = lock(shard)
                .values()
                .flatten()
                .map(|c| c.out.clone())
                .collect();
            outs.iter().for_each(&mut f);
        }
    }

    /// Closes queues whose oldest message waited past the send-time limit: a stuck socket
    /// that gets no new messages is found here rather than on the next push.
    pub fn sweep(&self, now: u64) {
        self.for_each_connection(|out| {
            out.check_age(now);
        });
    }

    /// Closes every connection (server shutdown) with `reason`.
    pub fn close_all(&self, reason: CloseReason) {
        self.for_each_connection(|out| out.close(reason.clone()));
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
            c.out.push_encoded(&frame);
            c.out.close(CloseReason::revoked());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::conn::{Framing, QueueLimits, Writer};
    use futures_util::task::noop_waker;
    use std::collections::VecDeque;
    use std::task::{Context, Poll};

    fn conn(hub: &Hub, encoding: Encoding, bytes: usize) -> (u64, Arc<Outbound>) {
        let out = Outbound::new(
            encoding,
            QueueLimits {
                max_bytes: bytes,
                max_age: Duration::from_secs(60),
            },
        );
        (hub.next_connection_id(), out)
    }

    fn take(out: &Outbound) -> (Vec<Item>, Option<CloseReason>) {
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut items = VecDeque::new();
        match out.poll_take(&mut cx, &mut items) {
            Poll::Ready(r) => (items.into_iter().collect(), r),
            Poll::Pending => (vec![], None),
        }
    }

    fn wire(framing: Framing, items: Vec<Item>) -> Vec<u8> {
        let mut w = Writer::new(framing);
        let mut q: VecDeque<Item> = items.into();
        w.extend(&mut q);
        w.drain_to_vec().0
    }

    #[test]
    fn one_body_shared_by_every_subscriber_and_encoding() {
        let hub = Hub::new(100, 10);
        let (c1, o1) = conn(&hub, Encoding::Raw, 1 << 20);
        let (c2, o2) = conn(&hub, Encoding::Raw, 1 << 20);
        let (c3, o3) = conn(&hub, Encoding::SockJs, 1 << 20);
        hub.subscribe("/sub/x", c1, "sub-0", &o1).unwrap();
        hub.subscribe("/sub/x", c2, "s:7", &o2).unwrap();
        hub.subscribe("/sub/x", c3, "sub-0", &o3).unwrap();
        let body = Bytes::from_static(b"{\"a\":\"\\n\"}");
        assert_eq!(hub.publish("/sub/x", "m1", "application/json", body), 3);
        let (a, b, c) = (take(&o1).0, take(&o2).0, take(&o3).0);
        let tails: Vec<_> = [&a[0], &b[0]]
            .iter()
            .map(|i| i.parts().nth(2).unwrap().as_ptr())
            .collect();
        assert_eq!(tails[0], tails[1], "raw subscribers share one tail");
        let raw = wire(Framing::WebSocket, a);
        assert_eq!(
            &raw[2..],
            b"MESSAGE\nsubscription:sub-0\ndestination:/sub/x\nmessage-id:m1\ncontent-type:application/json\ncontent-length:10\n\n{\"a\":\"\\n\"}\0"
        );
        let escaped = wire(Framing::WebSocket, b);
        assert!(escaped[2..].starts_with(b"MESSAGE\nsubscription:s\\c7\n"));
        let sockjs = wire(Framing::SockJsWebSocket, c);
        let header = if sockjs[1] == 126 { 4 } else { 2 };
        let frame = std::str::from_utf8(&sockjs[header..]).unwrap();
        let parsed: Vec<String> = serde_json::from_str(frame.strip_prefix('a').unwrap()).unwrap();
        assert_eq!(parsed[0].as_bytes(), &raw[2..]);
    }

    #[test]
    fn slow_subscriber_is_closed_others_continue() {
        let hub = Hub::new(100, 10);
        let (slow, slow_out) = conn(&hub, Encoding::SockJs, 1024);
        let (fast, fast_out) = conn(&hub, Encoding::SockJs, 1 << 20);
        hub.subscribe("/sub/x", slow, "s", &slow_out).unwrap();
        hub.subscribe("/sub/x", fast, "s", &fast_out).unwrap();
        for i in 0..10 {
            hub.publish(
                "/sub/x",
                &i.to_string(),
                "text/plain",
                Bytes::from(vec![b'x'; 200]),
            );
        }
        assert!(slow_out.is_closed());
        assert_eq!(
            slow_out.close_reason().unwrap().kind,
            crate::net::conn::CloseKind::SlowBytes
        );
        assert!(!fast_out.is_closed());
        assert_eq!(take(&fast_out).0.len(), 10);
    }

    #[test]
    fn many_subscriptions_of_one_connection_share_the_body() {
        let hub = Hub::new(10_000, 10);
        let (c, out) = conn(&hub, Encoding::Raw, 512 * 1024);
        for i in 0..1000 {
            hub.subscribe("/sub/big", c, &format!("s{i}"), &out)
                .unwrap();
        }
        let body = Bytes::from(vec![b'y'; 60_000]);
        hub.publish("/sub/big", "1", "text/plain", body.clone());
        // Over the byte limit after a few copies: closed, and nothing is held.
        assert!(out.is_closed());
        let (items, _) = take(&out);
        assert!(items.is_empty());
    }

    #[test]
    fn destination_and_session_caps() {
        let hub = Hub::new(2, 1);
        let (c, out) = conn(&hub, Encoding::Raw, 1024);
        hub.subscribe("/sub/y", c, "a", &out).unwrap();
        hub.subscribe("/sub/y", c, "b", &out).unwrap();
        assert_eq!(
            hub.subscribe("/sub/y", c, "c", &out),
            Err(HubError::DestinationFull { limit: 2 })
        );
        let user = Uuid::new_v4();
        hub.register(c, user, None, &out).unwrap();
        assert_eq!(
            hub.register(c + 1, user, None, &out),
            Err(HubError::TooManySessions { limit: 1 })
        );
    }

    #[test]
    fn revoke_closes_only_that_login_session() {
        let hub = Hub::new(100, 10);
        let user = Uuid::new_v4();
        let (s1, s2) = (Uuid::new_v4(), Uuid::new_v4());
        let (c1, o1) = conn(&hub, Encoding::Raw, 1 << 20);
        let (c2, o2) = conn(&hub, Encoding::Raw, 1 << 20);
        hub.register(c1, user, Some(s1), &o1).unwrap();
        hub.register(c2, user, Some(s2), &o2).unwrap();
        hub.revoke(user, Some(s1));
        assert!(o1.is_closed());
        assert!(!o2.is_closed());
        assert_eq!(hub.connection_count(user), 1);
        let (error, _) = take(&o1);
        assert!(error[0].to_bytes().starts_with(b"ERROR\n"));
        hub.revoke(user, None);
        assert!(o2.is_closed());
        assert_eq!(hub.connection_count(user), 0);
    }

    #[test]
    fn unsubscribe_forgets_empty_destinations() {
        let hub = Hub::new(100, 10);
        let (c, o) = conn(&hub, Encoding::Raw, 1024);
        hub.subscribe("/sub/y", c, "a", &o).unwrap();
        hub.subscribe("/sub/y", c, "b", &o).unwrap();
        hub.unsubscribe("/sub/y", c, "a");
        assert_eq!(hub.subscriber_count("/sub/y"), 1);
        hub.unsubscribe("/sub/y", c, "b");
        assert_eq!(hub.subscriber_count("/sub/y"), 0);
        assert!(!hub.has_subscribers("/sub/y"));
    }
}
