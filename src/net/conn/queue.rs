//! The outbound queue of one realtime connection: bounded by bytes and by age.
//!
//! Producers (the STOMP hub's fan-out, the SSE hub, the connection's own session) push
//! already encoded [`Item`]s with [`Outbound::push`], which never waits: a push that would take
//! the backlog past the byte limit, or that finds the oldest unwritten item older than the
//! send-time limit, closes the connection as a slow consumer instead, so one slow client can
//! never stall a broadcast or grow memory without bound. Items hold shared [`Bytes`]: a
//! broadcast queued to 10,000 connections is 10,000 reference counts, not 10,000 copies.
//!
//! The connection's driver owns the socket; it moves everything queued into its writer in one
//! step ([`Outbound::poll_take`]) and reports back what reached the socket
//! ([`Outbound::written`]), so the backlog the limits see includes bytes taken but not yet
//! written.

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use super::clock::now_ms;
use crate::net::shards::lock;

/// How a connection's transport encodes the items queued for it.
///
/// Exists so a broadcast is encoded once per encoding, not once per subscriber: raw
/// transports (WebSocket, SSE) carry items as they are; SockJS carries JSON string contents
/// (escaped, without the quotes), which its writer wraps into `a["…","…"]` frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    Raw,
    SockJs,
}

/// Per-connection queue limits (Spring's `sendBufferSizeLimit` and `sendTimeLimit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Bytes queued but not yet written to the socket.
    pub max_bytes: usize,
    /// Age of the oldest item not yet written.
    pub max_age: Duration,
}

impl QueueLimits {
    /// `DISCODEIT_QUEUE_MAX_BYTES` and `DISCODEIT_QUEUE_MAX_AGE_MS`.
    pub fn from_config(config: &crate::config::Config) -> Self {
        QueueLimits {
            max_bytes: config.queue_max_bytes,
            max_age: config.queue_max_age,
        }
    }
}

impl Default for QueueLimits {
    fn default() -> Self {
        QueueLimits {
            max_bytes: 512 * 1024,
            max_age: Duration::from_secs(10),
        }
    }
}

/// Why a connection ends, in the terms operators count (logs and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseKind {
    /// The client ended it (STOMP DISCONNECT, WebSocket close, EOF).
    Client,
    /// The backlog passed the byte limit.
    SlowBytes,
    /// The oldest unwritten item passed the send-time limit.
    SlowAge,
    /// The user's login session ended (logout, new login, role change, deletion).
    Revoked,
    /// The server refused something the client did (STOMP ERROR, protocol violation).
    Policy,
    /// The socket failed.
    Error,
    /// A deadline passed (CONNECT, heart-beat, handshake).
    Timeout,
    /// The server is draining.
    Shutdown,
}

impl CloseKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseKind::Client => "client",
            CloseKind::SlowBytes => "slow_consumer_bytes",
            CloseKind::SlowAge => "slow_consumer_age",
            CloseKind::Revoked => "revoked",
            CloseKind::Policy => "policy",
            CloseKind::Error => "error",
            CloseKind::Timeout => "timeout",
            CloseKind::Shutdown => "shutdown",
        }
    }
}

/// Why a connection is closed: its kind and the close code and text the client is sent
/// (WebSocket close frame, SockJS `c[code,"text"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    pub kind: CloseKind,
    pub code: u16,
    pub text: Cow<'static, str>,
}

impl CloseReason {
    pub fn new(kind: CloseKind, code: u16, text: impl Into<Cow<'static, str>>) -> Self {
        CloseReason {
            kind,
            code,
            text: text.into(),
        }
    }

    /// The conversation ended normally (STOMP DISCONNECT, client close).
    pub fn normal() -> Self {
        Self::new(CloseKind::Client, 1000, "Normal closure")
    }

    /// The server refused something and said why (in an ERROR frame, usually).
    pub fn policy(text: impl Into<Cow<'static, str>>) -> Self {
        Self::new(CloseKind::Policy, 1008, text)
    }

    /// Too many bytes waiting: WebSocket 1013 "Try Again Later"; the client may reconnect.
    pub fn slow_bytes(limit: usize) -> Self {
        Self::new(
            CloseKind::SlowBytes,
            1013,
            format!("Slow consumer: more than {limit} bytes queued"),
        )
    }

    /// Waiting too long: 1013 as well.
    pub fn slow_age(limit: Duration) -> Self {
        Self::new(
            CloseKind::SlowAge,
            1013,
            format!(
                "Slow consumer: a message waited more than {} ms",
                limit.as_millis()
            ),
        )
    }

    /// The login session ended.
    pub fn revoked() -> Self {
        Self::new(CloseKind::Revoked, 1008, "Session revoked")
    }

    /// The server is going away; reconnect (to another instance).
    pub fn shutdown() -> Self {
        Self::new(CloseKind::Shutdown, 1001, "Server shutting down")
    }

    pub fn timeout(text: impl Into<Cow<'static, str>>) -> Self {
        Self::new(CloseKind::Timeout, 1000, text)
    }

    pub fn error(text: impl Into<Cow<'static, str>>) -> Self {
        Self::new(CloseKind::Error, 1011, text)
    }

    /// Slow-consumer closes drop what is queued: the client could not take it anyway, and it
    /// recovers by reconnecting. Every other close delivers the queue first (an ERROR frame
    /// must reach the client before the close).
    pub fn discards_queue(&self) -> bool {
        matches!(self.kind, CloseKind::SlowBytes | CloseKind::SlowAge)
    }
}

/// One queued message: up to three shared slices written back to back (a MESSAGE frame's
/// head, the subscription id, the shared tail with the body), plus its publish time.
#[derive(Debug, Clone)]
pub struct Item {
    parts: [Bytes; 3],
    len: usize,
    /// Milliseconds on [`now_ms`]'s clock when the message was published.
    pub at_ms: u64,
}

impl Item {
    pub fn new(one: Bytes, at_ms: u64) -> Item {
        Item {
            len: one.len(),
            parts: [one, Bytes::new(), Bytes::new()],
            at_ms,
        }
    }

    pub fn three(a: Bytes, b: Bytes, c: Bytes, at_ms: u64) -> Item {
        Item {
            len: a.len() + b.len() + c.len(),
            parts: [a, b, c],
            at_ms,
        }
    }

    /// An item stamped now.
    pub fn now(bytes: Bytes) -> Item {
        Item::new(bytes, now_ms())
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The non-empty slices, in order.
    pub fn parts(&self) -> impl Iterator<Item = &Bytes> {
        self.parts.iter().filter(|p| !p.is_empty())
    }

    /// The whole item in one buffer (for transports that write through hyper).
    pub fn to_bytes(&self) -> Bytes {
        if self.parts[1].is_empty() && self.parts[2].is_empty() {
            return self.parts[0].clone();
        }
        let mut out = Vec::with_capacity(self.len);
        for p in self.parts() {
            out.extend_from_slice(p);
        }
        Bytes::from(out)
    }
}

struct State {
    items: VecDeque<Item>,
    /// Bytes pushed and not yet reported written (queued + taken by the driver).
    backlog: usize,
    /// Publish time of the oldest item not yet written; 0 when there is none.
    oldest_ms: u64,
    close: Option<CloseReason>,
}

/// The shared side of a connection's queue. Cheap to share behind an `Arc`.
pub struct Outbound {
    state: Mutex<State>,
    waker: AtomicWaker,
    /// Mirrors `state.close.is_some()` so producers skip closed connections without locking.
    closed: AtomicBool,
    encoding: Encoding,
    limits: QueueLimits,
    /// When the last item was queued (for heart-beats: output keeps a connection alive).
    last_push_ms: AtomicU64,
}

/// `raw` as an item of `encoding`: as it is, or JSON-escaped (without quotes) for SockJS.
pub fn encode(encoding: Encoding, raw: &[u8]) -> Bytes {
    match encoding {
        Encoding::Raw => Bytes::copy_from_slice(raw),
        Encoding::SockJs => json_escaped(raw),
    }
}

/// The contents of the JSON string for `raw` (invalid UTF-8 replaced), quotes stripped:
/// escaping is per character, so parts escaped separately concatenate correctly.
pub fn json_escaped(raw: &[u8]) -> Bytes {
    let text = String::from_utf8_lossy(raw);
    let mut quoted = String::with_capacity(text.len() + 16);
    crate::proto::sockjs::quote(&text, &mut quoted);
    let inner = quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or(&quoted);
    Bytes::copy_from_slice(inner.as_bytes())
}

impl Outbound {
    pub fn new(encoding: Encoding, limits: QueueLimits) -> Arc<Outbound> {
        Arc::new(Outbound {
            state: Mutex::new(State {
                items: VecDeque::new(),
                backlog: 0,
                oldest_ms: 0,
                close: None,
            }),
            waker: AtomicWaker::new(),
            closed: AtomicBool::new(false),
            encoding,
            limits,
            last_push_ms: AtomicU64::new(now_ms()),
        })
    }

    /// Milliseconds since something was last queued.
    pub fn idle_ms(&self, now: u64) -> u64 {
        now.saturating_sub(self.last_push_ms.load(Ordering::Relaxed))
    }

    /// [`Outbound::push`] of an encoded copy of `raw` (session replies: CONNECTED, RECEIPT,
    /// ERROR, heart-beats).
    pub fn push_encoded(&self, raw: &[u8]) -> bool {
        self.push(Item::now(encode(self.encoding, raw)))
    }

    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    pub fn limits(&self) -> QueueLimits {
        self.limits
    }

    /// Queues `item` without waiting. Returns false when it was not queued: the connection
    /// is closed, or this push made it a slow consumer (and closed it).
    pub fn push(&self, item: Item) -> bool {
        self.push_aged(item).is_some()
    }

    /// [`Outbound::push`] that also tells how old the queue's oldest unwritten item was
    /// (relative to `item`, in ms; 0 for an empty queue): `None` when not queued.
    pub fn push_aged(&self, item: Item) -> Option<u64> {
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        let mut st = lock(&self.state);
        if st.close.is_some() {
            return None;
        }
        let max_age_ms = self.limits.max_age.as_millis() as u64;
        let age = if st.oldest_ms == 0 {
            0
        } else {
            item.at_ms.saturating_sub(st.oldest_ms)
        };
        if age > max_age_ms {
            self.close_locked(&mut st, CloseReason::slow_age(self.limits.max_age));
            drop(st);
            self.waker.wake();
            return None;
        }
        if st.backlog + item.len > self.limits.max_bytes {
            self.close_locked(&mut st, CloseReason::slow_bytes(self.limits.max_bytes));
            drop(st);
            self.waker.wake();
            return None;
        }
        let wake = st.items.is_empty();
        if st.backlog == 0 {
            st.oldest_ms = item.at_ms;
        }
        st.backlog += item.len;
        self.last_push_ms.store(item.at_ms, Ordering::Relaxed);
        st.items.push_back(item);
        drop(st);
        if wake {
            self.waker.wake();
        }
        Some(age)
    }

    /// [`Outbound::push`] of one buffer stamped now.
    pub fn push_bytes(&self, bytes: Bytes) -> bool {
        self.push(Item::now(bytes))
    }

    /// Asks the driver to close with `reason` (after delivering the queue, unless the reason
    /// discards it). The first reason wins.
    pub fn close(&self, reason: CloseReason) {
        let mut st = lock(&self.state);
        if st.close.is_some() {
            return;
        }
        self.close_locked(&mut st, reason);
        drop(st);
        self.waker.wake();
    }

    fn close_locked(&self, st: &mut State, reason: CloseReason) {
        if reason.discards_queue() {
            st.items = VecDeque::new();
        }
        st.close = Some(reason);
        self.closed.store(true, Ordering::Release);
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub fn close_reason(&self) -> Option<CloseReason> {
        lock(&self.state).close.clone()
    }

    /// Closes the connection as a slow consumer if its oldest unwritten item is older than
    /// the limit at `now`. For sweeps: a stuck socket with no new pushes is found this way.
    pub fn check_age(&self, now: u64) -> bool {
        let mut st = lock(&self.state);
        let max_age_ms = self.limits.max_age.as_millis() as u64;
        if st.close.is_none() && st.oldest_ms != 0 && now.saturating_sub(st.oldest_ms) > max_age_ms
        {
            self.close_locked(&mut st, CloseReason::slow_age(self.limits.max_age));
            drop(st);
            self.waker.wake();
            return true;
        }
        false
    }

    /// Bytes queued or taken but not yet written.
    pub fn backlog(&self) -> usize {
        lock(&self.state).backlog
    }

    /// Driver side: moves everything queued into `into` (Ready(None)), or returns the close
    /// reason once the queue is empty and the connection closed (Ready(Some)), or registers
    /// the task to be woken by the next push or close (Pending).
    pub fn poll_take(
        &self,
        cx: &mut Context<'_>,
        into: &mut VecDeque<Item>,
    ) -> Poll<Option<CloseReason>> {
        self.waker.register(cx.waker());
        let mut st = lock(&self.state);
        if !st.items.is_empty() {
            if into.is_empty() {
                std::mem::swap(into, &mut st.items);
            } else {
                into.extend(st.items.drain(..));
            }
            return Poll::Ready(None);
        }
        match &st.close {
            Some(reason) => Poll::Ready(Some(reason.clone())),
            None => Poll::Pending,
        }
    }

    /// Takes what is queued without registering (for transports polled by hyper).
    pub fn take(&self, into: &mut VecDeque<Item>) -> Option<CloseReason> {
        let mut st = lock(&self.state);
        into.extend(st.items.drain(..));
        if into.is_empty() {
            st.close.clone()
        } else {
            None
        }
    }

    /// Registers the task to be woken by the next push or close.
    pub fn register(&self, cx: &mut Context<'_>) {
        self.waker.register(cx.waker());
    }

    /// Driver side: `bytes` of taken items reached the socket; `oldest_pending_ms` is the
    /// publish time of the oldest item the driver still holds (if any).
    pub fn written(&self, bytes: usize, oldest_pending_ms: Option<u64>) {
        let mut st = lock(&self.state);
        st.backlog = st.backlog.saturating_sub(bytes);
        st.oldest_ms = oldest_pending_ms
            .or_else(|| st.items.front().map(|i| i.at_ms))
            .unwrap_or(0);
        if st.backlog == 0 {
            st.oldest_ms = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::task::noop_waker;

    fn limits(bytes: usize, age_ms: u64) -> QueueLimits {
        QueueLimits {
            max_bytes: bytes,
            max_age: Duration::from_millis(age_ms),
        }
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

    #[test]
    fn byte_limit_counts_taken_but_unwritten_items() {
        let out = Outbound::new(Encoding::Raw, limits(10, 60_000));
        assert!(out.push(Item::new(Bytes::from_static(b"123456"), 1)));
        let (items, _) = take(&out);
        assert_eq!(items.len(), 1);
        // Taken, not written: still counted.
        assert!(!out.push(Item::new(Bytes::from_static(b"12345"), 2)));
        assert_eq!(out.close_reason().unwrap().kind, CloseKind::SlowBytes);
    }

    #[test]
    fn written_bytes_free_the_backlog() {
        let out = Outbound::new(Encoding::Raw, limits(10, 60_000));
        assert!(out.push(Item::new(Bytes::from_static(b"123456"), 1)));
        let _ = take(&out);
        out.written(6, None);
        assert_eq!(out.backlog(), 0);
        assert!(out.push(Item::new(Bytes::from_static(b"1234567890"), 2)));
        assert!(!out.is_closed());
    }

    #[test]
    fn age_limit_measured_from_the_oldest_unwritten_item() {
        let out = Outbound::new(Encoding::Raw, limits(1000, 100));
        assert!(out.push(Item::new(Bytes::from_static(b"a"), 1_000)));
        assert!(out.push(Item::new(Bytes::from_static(b"b"), 1_100)));
        assert!(!out.push(Item::new(Bytes::from_static(b"c"), 1_101)));
        let reason = out.close_reason().unwrap();
        assert_eq!(reason.kind, CloseKind::SlowAge);
        assert_eq!(reason.code, 1013);
        // Slow closes discard the queue: the driver sees the close at once.
        let (items, close) = take(&out);
        assert!(items.is_empty());
        assert_eq!(close, Some(reason));
    }

    #[test]
    fn a_push_tells_the_age_of_the_oldest_unwritten_item() {
        let out = Outbound::new(Encoding::Raw, limits(1000, 100));
        assert_eq!(
            out.push_aged(Item::new(Bytes::from_static(b"a"), 1_000)),
            Some(0)
        );
        assert_eq!(
            out.push_aged(Item::new(Bytes::from_static(b"b"), 1_040)),
            Some(40)
        );
        let _ = take(&out);
        out.written(2, None);
        assert_eq!(
            out.push_aged(Item::new(Bytes::from_static(b"c"), 1_090)),
            Some(0)
        );
        assert_eq!(
            out.push_aged(Item::new(Bytes::from_static(b"d"), 1_300)),
            None
        );
    }

    #[test]
    fn sweep_finds_a_stuck_queue() {
        let out = Outbound::new(Encoding::Raw, limits(1000, 100));
        assert!(out.push(Item::new(Bytes::from_static(b"a"), 1_000)));
        assert!(!out.check_age(1_050));
        assert!(out.check_age(1_200));
        assert_eq!(out.close_reason().unwrap().kind, CloseKind::SlowAge);
    }

    #[test]
    fn policy_close_delivers_the_queue_first_and_first_reason_wins() {
        let out = Outbound::new(Encoding::SockJs, QueueLimits::default());
        assert!(out.push_bytes(Bytes::from_static(b"ERROR")));
        out.close(CloseReason::policy("refused"));
        out.close(CloseReason::normal());
        assert!(!out.push_bytes(Bytes::from_static(b"late")));
        let (items, close) = take(&out);
        assert_eq!(items.len(), 1);
        assert_eq!(close, None);
        let (items, close) = take(&out);
        assert!(items.is_empty());
        assert_eq!(close.unwrap().kind, CloseKind::Policy);
    }

    #[test]
    fn items_share_their_bytes() {
        let body = Bytes::from(vec![7u8; 60_000]);
        let a = Item::three(
            Bytes::from_static(b"h"),
            Bytes::from_static(b"1"),
            body.clone(),
            1,
        );
        let b = a.clone();
        let pa: Vec<_> = a.parts().map(|p| p.as_ptr()).collect();
        let pb: Vec<_> = b.parts().map(|p| p.as_ptr()).collect();
        assert_eq!(pa, pb);
        assert_eq!(a.len(), 60_002);
        assert_eq!(&a.to_bytes()[..2], b"h1");
    }
}
