//! SockJS sessions of the HTTP transports: the registry (sharded by session id), the
//! one-receiver-at-a-time rule, and the disconnect delay.
//!
//! A session owns its connection's [`OutboxReceiver`] while no request is receiving. A
//! receiving request (`xhr`, `xhr_streaming`, `eventsource`, ...) takes it out for as long as
//! it runs, so "is a receiver attached?" is simply "is the receiver missing?", and a second
//! receiver is told `c[2010,...]`. The receiver goes back on every exit path through
//! [`Attached`]'s `Drop`; an exit without [`Attached::finish`] means the network aborted the
//! request, which ends the session (`c[1002,"Connection interrupted"]`).

use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

use super::SessionIo;
use crate::net::shards::{lock, Sharded};
use crate::net::ws::outbox::{CloseReason, Framing, Next, Outbox, OutboxReceiver, Outgoing};

/// Mutable state of one session.
struct State {
    /// Present while no receiving request is attached.
    rx: Option<OutboxReceiver>,
    /// The open frame was delivered.
    opened: bool,
    /// Since when no receiving request is attached.
    detached_at: Option<Instant>,
    /// Once the close frame was delivered, every later receiver gets it again.
    closed: Option<CloseReason>,
}

/// One SockJS session of the HTTP transports.
pub(super) struct Session {
    /// Client messages to the service.
    pub inbound: mpsc::Sender<Bytes>,
    pub outbox: Outbox,
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
    /// An `a[...]` frame with these messages.
    Messages(Vec<Outgoing>),
    /// The close frame; the session is over.
    Close(CloseReason),
    /// Nothing happened for the heart-beat period: send `h`.
    Heartbeat,
}

/// The receiving request's hold on a session. Dropping it without [`Attached::finish`]
/// means the request was aborted.
pub(super) struct Attached {
    session: Arc<Session>,
    rx: Option<OutboxReceiver>,
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
        let Some(rx) = st.rx.take() else {
            return Attach::Refuse(CloseReason::new(2010, "Another connection still open"));
        };
        let open = !st.opened;
        st.opened = true;
        st.detached_at = None;
        Attach::Receiver {
            guard: Attached {
                session: self.clone(),
                rx: Some(rx),
                finished: false,
            },
            open,
        }
    }

    fn detach(&self, rx: OutboxReceiver, aborted: bool) {
        let mut st = lock(&self.state);
        st.rx = Some(rx);
        st.detached_at = Some(Instant::now());
        if aborted && st.closed.is_none() {
            st.closed = Some(CloseReason::interrupted());
            drop(st);
            self.outbox.close(CloseReason::interrupted());
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
    /// Waits for something to send: queued messages (all of them, as one frame), the close,
    /// or a heart-beat after `heartbeat` of silence.
    pub async fn next(&mut self, heartbeat: Duration) -> Delivery {
        let Some(rx) = self.rx.as_mut() else {
            return Delivery::Close(CloseReason::normal());
        };
        match tokio::time::timeout(heartbeat, rx.next()).await {
            Ok(Next::Batch(items)) => Delivery::Messages(items),
            Ok(Next::Close(reason)) => {
                lock(&self.session.state).closed = Some(reason.clone());
                Delivery::Close(reason)
            }
            Err(_) => Delivery::Heartbeat,
        }
    }

    /// The request completed normally: give the receiver back to the session.
    pub fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        if let Some(rx) = self.rx.take() {
            self.session.detach(rx, !self.finished);
        }
    }
}

/// All sessions of one SockJS endpoint, sharded by session id.
pub(super) struct Registry {
    shards: Sharded<HashMap<String, Arc<Session>>>,
    queue: usize,
    inbound_queue: usize,
}

impl Registry {
    pub fn new(queue: usize, inbound_queue: usize) -> Arc<Registry> {
        Arc::new(Registry {
            shards: Sharded::default(),
            queue,
            inbound_queue,
        })
    }

    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.shards.lock(id).get(id).cloned()
    }

    /// The session `id`, created if absent. A new session's I/O is returned so the caller
    /// can start the service (outside the lock).
    pub fn get_or_create(&self, id: &str) -> (Arc<Session>, Option<SessionIo>) {
        let mut map = self.shards.lock(id);
        if let Some(s) = map.get(id) {
            return (s.clone(), None);
        }
        let (outbox, rx) = Outbox::channel(Framing::SockJs, self.queue);
        let (inbound, inbound_rx) = mpsc::channel(self.inbound_queue.max(1));
        let session = Arc::new(Session {
            inbound,
            outbox: outbox.clone(),
            state: Mutex::new(State {
                rx: Some(rx),
                opened: false,
                detached_at: Some(Instant::now()),
                closed: None,
            }),
        });
        map.insert(id.to_string(), session.clone());
        let io = SessionIo {
            inbound: inbound_rx,
            outbox,
        };
        (session, Some(io))
    }

    /// Number of live sessions (for tests and metrics).
    pub fn len(&self) -> usize {
        self.shards.all().map(|s| lock(s).len()).sum()
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
                s.outbox.close(CloseReason::new(3000, "Session timed out"));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn second_receiver_is_refused_and_abort_interrupts() {
        let reg = Registry::new(8, 8);
        let (s, io) = reg.get_or_create("a");
        assert!(io.is_some());
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
        assert!(s.outbox.is_closed());
        match s.attach() {
            Attach::Refuse(r) => assert_eq!(r, CloseReason::interrupted()),
            Attach::Receiver { .. } => panic!("closed session attached"),
        }
    }

    #[tokio::test]
    async fn queued_messages_come_before_close() {
        let reg = Registry::new(8, 8);
        let (s, _io) = reg.get_or_create("b");
        let Attach::Receiver { mut guard, .. } = s.attach() else {
            panic!("refused");
        };
        s.outbox.push(Outgoing::Text("\"x\"".into()));
        s.outbox.close(CloseReason::new(3000, "Go away!"));
        assert!(
            matches!(guard.next(Duration::from_secs(1)).await, Delivery::Messages(m) if m.len() == 1)
        );
        assert!(
            matches!(guard.next(Duration::from_secs(1)).await, Delivery::Close(r) if r.code == 3000)
        );
        assert!(matches!(
            guard.next(Duration::from_millis(10)).await,
            Delivery::Close(_) | Delivery::Heartbeat
        ));
        guard.finish();
        assert!(matches!(s.attach(), Attach::Refuse(r) if r.code == 3000));
    }

    #[tokio::test]
    async fn sweep_removes_only_detached_sessions() {
        let reg = Registry::new(8, 8);
        let (idle, _) = reg.get_or_create("idle");
        let (busy, _) = reg.get_or_create("busy");
        let Attach::Receiver { guard, .. } = busy.attach() else {
            panic!("refused");
        };
        reg.sweep(Duration::ZERO);
        assert!(reg.get("idle").is_none());
        assert!(idle.outbox.is_closed());
        assert!(reg.get("busy").is_some());
        guard.finish();
    }
}
