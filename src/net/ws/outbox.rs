//! The bounded outbound queue every realtime connection has, and its close signal.
//!
//! Producers (the STOMP session, the hub's fan-out, the echo service of the test server) push
//! already encoded [`Outgoing`] items with [`Outbox::push`], which never waits: a full queue
//! closes the connection instead, so one slow client can never stall a broadcast. The
//! transport's writer owns the [`OutboxReceiver`] and drains everything queued in one batch.

use bytes::Bytes;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::proto::sockjs;

/// How a connection's transport wraps application messages.
///
/// Exists so a broadcast can be encoded once per framing: raw WebSocket carries each message
/// as it is, SockJS carries JSON-quoted strings that the writer batches into `a[...]` frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Framing {
    /// One WebSocket message per application message.
    Raw,
    /// SockJS: messages are JSON strings inside `a[...]` frames.
    SockJs,
}

/// One application message, already encoded for its connection's [`Framing`].
///
/// Cloning is cheap (a reference count), so the hub hands the same bytes to every subscriber.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    /// UTF-8 text: a raw frame, or for SockJS the quoted JSON string (quotes included).
    Text(Utf8Bytes),
    /// A raw frame that is not UTF-8 (only possible on raw WebSocket).
    Binary(Bytes),
}

impl Outgoing {
    /// Encodes `payload` for `framing`. SockJS can only carry text, so invalid UTF-8 is
    /// replaced there.
    pub fn encode(framing: Framing, payload: &Bytes) -> Outgoing {
        match framing {
            Framing::Raw => match Utf8Bytes::try_from(payload.clone()) {
                Ok(text) => Outgoing::Text(text),
                Err(_) => Outgoing::Binary(payload.clone()),
            },
            Framing::SockJs => {
                let text = String::from_utf8_lossy(payload);
                let mut quoted = String::with_capacity(text.len() + 16);
                sockjs::quote(&text, &mut quoted);
                Outgoing::Text(quoted.into())
            }
        }
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Outgoing::Text(t) => t.as_bytes(),
            Outgoing::Binary(b) => b,
        }
    }
}

/// WebSocket close code 1013 "Try Again Later": the client was too slow.
const SLOW_CONSUMER_CODE: u16 = 1013;

/// Why a connection is closed: the SockJS close frame (`c[code,"reason"]`) or WebSocket
/// close frame sent to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    pub code: u16,
    pub reason: String,
}

impl CloseReason {
    pub fn new(code: u16, reason: impl Into<String>) -> Self {
        CloseReason {
            code,
            reason: reason.into(),
        }
    }

    /// The client ended the conversation (STOMP DISCONNECT).
    pub fn normal() -> Self {
        Self::new(1000, "Normal closure")
    }

    /// The server refused something and said why in an ERROR frame.
    pub fn policy(reason: impl Into<String>) -> Self {
        Self::new(1008, reason)
    }

    /// The client does not read fast enough; it may reconnect.
    pub fn slow_consumer() -> Self {
        Self::new(SLOW_CONSUMER_CODE, "Outbound queue full")
    }

    /// SockJS: the receiving request was aborted by the network.
    pub fn interrupted() -> Self {
        Self::new(1002, "Connection interrupted")
    }
}

/// Milliseconds since the first call, a cheap monotonic clock for idle tracking.
fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// State shared by every clone of an [`Outbox`].
struct Shared {
    framing: Framing,
    close: watch::Sender<Option<CloseReason>>,
    /// Set once, together with `close`, so hot paths check a plain atomic.
    closed: AtomicBool,
    last_push_ms: AtomicU64,
}

/// The sending side of a connection's bounded queue. Cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Outgoing>,
    shared: Arc<Shared>,
}

/// The writer's side: the queue and the close signal.
pub struct OutboxReceiver {
    rx: mpsc::Receiver<Outgoing>,
    close: watch::Receiver<Option<CloseReason>>,
}

impl Outbox {
    /// A new queue holding at most `capacity` items.
    pub fn channel(framing: Framing, capacity: usize) -> (Outbox, OutboxReceiver) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let (close_tx, close_rx) = watch::channel(None);
        let shared = Arc::new(Shared {
            framing,
            close: close_tx,
            closed: AtomicBool::new(false),
            last_push_ms: AtomicU64::new(now_ms()),
        });
        (
            Outbox { tx, shared },
            OutboxReceiver {
                rx,
                close: close_rx,
            },
        )
    }

    pub fn framing(&self) -> Framing {
        self.shared.framing
    }

    /// Queues `item` without waiting. A full queue closes the connection (slow consumer);
    /// returns false when the item was not queued.
    pub fn push(&self, item: Outgoing) -> bool {
        if self.is_closed() {
            return false;
        }
        match self.tx.try_send(item) {
            Ok(()) => {
                self.shared.last_push_ms.store(now_ms(), Ordering::Relaxed);
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.close(CloseReason::slow_consumer());
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.close(CloseReason::normal());
                false
            }
        }
    }

    /// Encodes `payload` for this connection's framing and queues it.
    pub fn push_bytes(&self, payload: &Bytes) -> bool {
        self.push(Outgoing::encode(self.framing(), payload))
    }

    /// Asks the writer to flush what is queued and close with `reason`. The first reason wins.
    pub fn close(&self, reason: CloseReason) {
        if self.shared.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.shared.close.send_replace(Some(reason));
    }

    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// The close reason, once closed.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.shared.close.borrow().clone()
    }

    /// Resolves once [`Outbox::close`] has been called.
    pub async fn closed(&self) {
        let mut rx = self.shared.close.subscribe();
        let _ = rx.wait_for(Option::is_some).await;
    }

    /// Resolves once the connection was closed because its queue overflowed: a writer
    /// blocked on the socket gives up instead of finishing a write nobody reads.
    pub async fn stalled(&self) {
        let mut rx = self.shared.close.subscribe();
        let _ = rx
            .wait_for(|r| r.as_ref().is_some_and(|r| r.code == SLOW_CONSUMER_CODE))
            .await;
    }

    /// How long nothing has been queued (for heart-beats).
    pub fn idle_for(&self) -> Duration {
        let last = self.shared.last_push_ms.load(Ordering::Relaxed);
        Duration::from_millis(now_ms().saturating_sub(last))
    }

    /// True when both handles belong to the same connection.
    pub fn same_as(&self, other: &Outbox) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

/// What the writer should do next.
#[derive(Debug)]
pub enum Next {
    /// Write these items (at least one), in order, as one batch.
    Batch(Vec<Outgoing>),
    /// Everything queued was written: close with this reason.
    Close(CloseReason),
}

impl OutboxReceiver {
    /// Everything queued right now, without waiting.
    pub fn drain(&mut self) -> Vec<Outgoing> {
        let mut items = Vec::new();
        while let Ok(item) = self.rx.try_recv() {
            items.push(item);
        }
        items
    }

    /// The close reason, if the connection was closed.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.close.borrow().clone()
    }

    /// Waits for the next batch or for the close signal. Queued items are always delivered
    /// before the close, so an ERROR frame reaches the client ahead of the close.
    pub async fn next(&mut self) -> Next {
        loop {
            let batch = self.drain();
            if !batch.is_empty() {
                return Next::Batch(batch);
            }
            if let Some(reason) = self.close_reason() {
                return Next::Close(reason);
            }
            tokio::select! {
                item = self.rx.recv() => match item {
                    Some(item) => {
                        let mut batch = vec![item];
                        batch.extend(self.drain());
                        return Next::Batch(batch);
                    }
                    // Every sender is gone: nobody can write or close any more.
                    None => return Next::Close(self.close_reason().unwrap_or_else(CloseReason::normal)),
                },
                changed = self.close.changed() => {
                    if changed.is_err() {
                        return Next::Close(self.close_reason().unwrap_or_else(CloseReason::normal));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_per_framing() {
        let frame = Bytes::from_static(b"MESSAGE\n\n\"hi\"\0");
        assert_eq!(
            Outgoing::encode(Framing::Raw, &frame).as_bytes(),
            &frame[..]
        );
        assert_eq!(
            Outgoing::encode(Framing::SockJs, &frame).as_bytes(),
            b"\"MESSAGE\\n\\n\\\"hi\\\"\\u0000\""
        );
        let binary = Bytes::from_static(b"\xff\x00");
        assert_eq!(
            Outgoing::encode(Framing::Raw, &binary),
            Outgoing::Binary(binary.clone())
        );
    }

    #[tokio::test]
    async fn full_queue_closes_instead_of_waiting() {
        let (outbox, mut rx) = Outbox::channel(Framing::Raw, 2);
        let item = Outgoing::Text("x".into());
        assert!(outbox.push(item.clone()));
        assert!(outbox.push(item.clone()));
        assert!(!outbox.push(item.clone()));
        assert!(outbox.is_closed());
        assert_eq!(outbox.close_reason(), Some(CloseReason::slow_consumer()));
        // What was queued is still delivered, then the close.
        match rx.next().await {
            Next::Batch(b) => assert_eq!(b.len(), 2),
            other => panic!("expected a batch, got {other:?}"),
        }
        match rx.next().await {
            Next::Close(r) => assert_eq!(r, CloseReason::slow_consumer()),
            other => panic!("expected close, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn first_close_reason_wins_and_wakes_waiters() {
        let (outbox, mut rx) = Outbox::channel(Framing::SockJs, 4);
        let waiter = {
            let outbox = outbox.clone();
            tokio::spawn(async move { outbox.closed().await })
        };
        outbox.close(CloseReason::new(3000, "Go away!"));
        outbox.close(CloseReason::normal());
        waiter.await.unwrap();
        match rx.next().await {
            Next::Close(r) => assert_eq!(r, CloseReason::new(3000, "Go away!")),
            other => panic!("expected close, got {other:?}"),
        }
    }
}
