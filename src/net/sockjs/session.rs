//! SockJS sessions of the HTTP transports: the registry (sharded by session id), the
//! one-receiver-at-a-time rule, the disconnect delay, and the task that runs the application
//! session between requests.
//!
//! A session outlives the requests that carry it, so its application [`Session`] runs in a
//! task of its own ([`run_detached`]) fed by `xhr_send`. Its [`Outbound`] queue is the same
//! kind every transport uses (bounded by bytes and age); a receiving request (`xhr`,
//! `xhr_streaming`, `eventsource`, ...) is its reader for as long as it runs. A second
//! receiver is told `c[2010,...]`. The reader role is given back on every exit path through
//! [`Attached`]'s `Drop`; an exit without [`Attached::finish`] means the network aborted the
//! request, which ends the session (`c[1002,"Connection interrupted"]`).

use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::sync::{Arc, Mutex, Weak};
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

use crate::net::conn::{observe, CloseKind, CloseReason, Encoding, Item, Outbound, QueueLimits};
use crate::net::conn::{Session as AppSession, SessionFactory};
use crate::net::shards::{lock, Sharded};
use crate::telemetry::metrics::Transport;

/// SockJS: the client went away in the middle of a receiving request.
pub fn interrupted() -> CloseReason {
    CloseReason::new(CloseKind::Client, 1002, "Connection interrupted")
}

/// SockJS: a second receiving request while one is attached.
pub fn another_connection() -> CloseReason {
    CloseReason::new(CloseKind::Policy, 2010, "Another connection still open")
}

/// Mutable state of one session.
struct State {
    /// A receiving request is attached.
    attached: bool,
    /// The open frame was delivered.
    opened: bool,
    /// Since when no receiving request is attached.
    detached_at: Option<Instant>,
    /// Once the close frame was delivered, every later receiver gets it again.
    closed: Option<CloseReason>,
}

/// One SockJS session of the HTTP transports.
pub(super) struct Session {
    /// The transport of the request that opened it (for metrics).
    transport: Transport,
    /// Client messages to the application session.
    pub inbound: mpsc::Sender<Bytes>,
    pub out: Arc<Outbound>,
    state: Mutex<State>,
}

/// What a receiving request gets when it asks for the session.
pub(super) enum Attach {
    /// Answer with this close frame and stop (the session is closed, or another receiver is
    /// attached).
    Refuse(CloseReason),
    /// This request is the receiver. `open`: send the open frame first.
    Receiver { guard: Attached, open: bool },
}

/// What the attached receiver should send next.
pub(super) enum Delivery {
    /// An `a[...]` frame with these messages (JSON-escaped contents).
    Messages(Vec<Item>),
    /// The close frame; the session is over.
    Close(CloseReason),
    /// Nothing happened for the heart-beat period: send `h`.
    Heartbeat,
}

/// The receiving request's hold on a session. Dropping it without [`Attached::finish`]
/// means the request was aborted.
pub(super) struct Attached {
    session: Arc<Session>,
    finished: bool,
}

impl Session {
    /// Takes the receiver role, or says why not.
    pub fn attach(self: &Arc<Self>) -> Attach {
        let mut st = lock(&self.state);
        if st.opened {
            if let Some(reason) = &st.closed {
                return Attach::Refuse(reason.clone());
            }
        }
        if st.attached {
            return Attach::Refuse(another_connection());
        }
        let open = !st.opened;
        st.attached = true;
        st.opened = true;
        st.detached_at = None;
        Attach::Receiver {
            guard: Attached {
                session: self.clone(),
                finished: false,
            },
            open,
        }
    }

    fn detach(&self, aborted: bool) {
        let mut st = lock(&self.state);
        st.attached = false;
        st.detached_at = Some(Instant::now());
        if aborted && st.closed.is_none() {
            st.closed = Some(interrupted());
            drop(st);
            self.out.close(interrupted());
        }
    }

    /// True when the session has had no receiver for longer than `delay`.
    fn expired(&self, delay: Duration) -> bool {
        lock(&self.state)
            .detached_at
            .is_some_and(|t| t.elapsed() >= delay)
    }
}

impl Attached {
    /// Waits for something to send: everything queued (as one frame), the close, or a
    /// heart-beat after `heartbeat` of silence.
    pub async fn next(&mut self, heartbeat: Duration) -> Delivery {
        let out = self.session.out.clone();
        let mut items = VecDeque::new();
        let next = tokio::time::timeout(heartbeat, poll_fn(|cx| out.poll_take(cx, &mut items)));
        match next.await {
            Ok(None) => {
                let bytes = items.iter().map(Item::len).sum();
                out.written(bytes, None);
                observe::wrote(
                    self.session.transport,
                    &crate::net::conn::Progress {
                        messages: items.len(),
                        message_bytes: bytes,
                        wire_bytes: bytes,
                        oldest_at_ms: items.front().map(|i| i.at_ms),
                        blocked: false,
                    },
                );
                Delivery::Messages(items.into())
            }
            Ok(Some(reason)) => {
                lock(&self.session.state).closed = Some(reason.clone());
                Delivery::Close(reason)
            }
            Err(_) => Delivery::Heartbeat,
        }
    }

    /// The request completed normally: give the receiver role back to the session.
    pub fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        self.session.detach(!self.finished);
    }
}

/// All sessions of one SockJS endpoint, sharded by session id.
pub(super) struct Registry {
    shards: Sharded<HashMap<String, Arc<Session>>>,
    limits: QueueLimits,
    inbound_queue: usize,
}

impl Registry {
    pub fn new(limits: QueueLimits, inbound_queue: usize) -> Arc<Registry> {
        Arc::new(Registry {
            shards: Sharded::default(),
            limits,
            inbound_queue,
        })
    }

    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.shards.lock(id).get(id).cloned()
    }

    /// The session `id`, created (with its application session running) if absent.
    pub fn get_or_create(
        &self,
        id: &str,
        transport: Transport,
        factory: &Arc<dyn SessionFactory>,
    ) -> Arc<Session> {
        let mut map = self.shards.lock(id);
        if let Some(s) = map.get(id) {
            return s.clone();
        }
        let out = Outbound::new(Encoding::SockJs, self.limits);
        let (inbound, inbound_rx) = mpsc::channel(self.inbound_queue.max(1));
        let session = Arc::new(Session {
            transport,
            inbound,
            out: out.clone(),
            state: Mutex::new(State {
                attached: false,
                opened: false,
                detached_at: Some(Instant::now()),
                closed: None,
            }),
        });
        map.insert(id.to_string(), session.clone());
        drop(map);
        let app = factory.open(&out);
        observe::opened(transport);
        tokio::spawn(run_detached(app, inbound_rx, out, transport));
        session
    }

    /// Number of live sessions (for tests and metrics).
    pub fn len(&self) -> usize {
        self.shards.all().map(|s| lock(s).len()).sum()
    }

    /// Closes every session (server shutdown); they are swept once detached.
    pub fn close_all(&self, reason: CloseReason) {
        for shard in self.shards.all() {
            for s in lock(shard).values() {
                s.out.close(reason.clone());
            }
        }
    }

    /// Removes sessions without a receiver for `delay`, closing them for their service.
    fn sweep(&self, delay: Duration) {
        for shard in self.shards.all() {
            let mut gone = Vec::new();
            lock(shard).retain(|_, s| {
                let keep = !s.expired(delay);
                if !keep {
                    gone.push(s.clone());
                }
                keep
            });
            for s in gone {
                s.out.close(CloseReason::timeout(
                    "Session timed out: no receiving request",
                ));
            }
        }
    }

    /// Sweeps every `delay / 2` until the registry is dropped.
    pub fn spawn_sweeper(self: &Arc<Self>, delay: Duration) {
        let weak: Weak<Registry> = Arc::downgrade(self);
        let period = (delay / 2).max(Duration::from_millis(100));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(registry) => registry.sweep(delay),
                    None => break,
                }
            }
        });
    }
}

/// Runs an application session between HTTP requests: messages from `xhr_send` while it is
/// not busy, and its own work, until the session is closed or swept away.
pub async fn run_detached(
    mut app: Box<dyn AppSession>,
    mut inbound: mpsc::Receiver<Bytes>,
    out: Arc<Outbound>,
    transport: Transport,
) {
    poll_fn(|cx| loop {
        let mut progress = app.poll_work(cx).is_ready();
        while !app.busy() {
            match inbound.poll_recv(cx) {
                Poll::Ready(Some(m)) => {
                    app.on_message(m);
                    progress = true;
                }
                Poll::Ready(None) => return Poll::Ready(()),
                Poll::Pending => break,
            }
        }
        if !progress {
            return Poll::Pending;
        }
    })
    .await;
    let reason = out.close_reason().unwrap_or_else(interrupted);
    app.on_close(&reason);
    observe::closed(transport, &reason);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::{Context, Poll};

    /// An application session that does nothing.
    struct Nothing;
    impl AppSession for Nothing {
        fn on_message(&mut self, _: Bytes) {}
        fn poll_work(&mut self, _: &mut Context<'_>) -> Poll<()> {
            Poll::Pending
        }
        fn busy(&self) -> bool {
            false
        }
        fn on_close(&mut self, _: &CloseReason) {}
    }
    struct NothingFactory;
    impl SessionFactory for NothingFactory {
        fn open(&self, _: &Arc<Outbound>) -> Box<dyn AppSession> {
            Box::new(Nothing)
        }
    }

    fn registry() -> (Arc<Registry>, Arc<dyn SessionFactory>) {
        (
            Registry::new(QueueLimits::default(), 8),
            Arc::new(NothingFactory),
        )
    }

    #[tokio::test]
    async fn second_receiver_is_refused_and_abort_interrupts() {
        let (reg, f) = registry();
        let s = reg.get_or_create("a", Transport::SockJsXhrPolling, &f);
        let Attach::Receiver { guard, open } = s.attach() else {
            panic!("first receiver refused");
        };
        assert!(open);
        match s.attach() {
            Attach::Refuse(r) => assert_eq!(r.code, 2010),
            Attach::Receiver { .. } => panic!("two receivers"),
        }
        guard.finish();
        let Attach::Receiver { guard, open } = s.attach() else {
            panic!("receiver not returned");
        };
        assert!(!open);
        drop(guard); // aborted
        assert!(s.out.is_closed());
        match s.attach() {
            Attach::Refuse(r) => assert_eq!(r, interrupted()),
            Attach::Receiver { .. } => panic!("closed session attached"),
        }
        let _ = Nothing.busy();
    }

    #[tokio::test]
    async fn queued_messages_come_before_close() {
        let (reg, f) = registry();
        let s = reg.get_or_create("b", Transport::SockJsXhrPolling, &f);
        let Attach::Receiver { mut guard, .. } = s.attach() else {
            panic!("refused");
        };
        s.out.push_bytes(Bytes::from_static(b"x"));
        s.out
            .close(CloseReason::new(CloseKind::Policy, 3000, "Go away!"));
        assert!(
            matches!(guard.next(Duration::from_secs(1)).await, Delivery::Messages(m) if m.len() == 1)
        );
        assert!(
            matches!(guard.next(Duration::from_secs(1)).await, Delivery::Close(r) if r.code == 3000)
        );
        guard.finish();
        assert!(matches!(s.attach(), Attach::Refuse(r) if r.code == 3000));
    }

    #[tokio::test]
    async fn sweep_removes_only_detached_sessions() {
        let (reg, f) = registry();
        let idle = reg.get_or_create("idle", Transport::SockJsXhrPolling, &f);
        let busy = reg.get_or_create("busy", Transport::SockJsXhrPolling, &f);
        let Attach::Receiver { guard, .. } = busy.attach() else {
            panic!("refused");
        };
        reg.sweep(Duration::ZERO);
        assert!(reg.get("idle").is_none());
        assert!(idle.out.is_closed());
        assert!(reg.get("busy").is_some());
        guard.finish();
    }
}
