//! The event bus: services publish [`Event`]s after commit; realtime layers subscribe.
//!
//! Subscribers (the STOMP hub, the SSE hub) always receive from the local, in-process side.
//! What feeds that side depends on the mode:
//! - single instance: [`EventBus::publish`] delivers straight to the local subscribers;
//! - multi instance (`KAFKA_BOOTSTRAP_SERVERS`): events go to the PostgreSQL outbox (in the
//!   transaction of the change, see `Services::commit`), the [`outbox`] relay publishes them to
//!   Kafka, and every instance's [`kafka`] consumer delivers them locally — so every instance
//!   sees every event, in the same order, whichever instance produced it.
//!
//! Each subscriber has its own queue so a busy subscriber never blocks the publisher;
//! subscribers are internal dispatchers that only push into bounded per-connection queues, so
//! their queues stay short.

pub mod error;
pub mod kafka;
pub mod outbox;

use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::mpsc;

use crate::domain::Event;
use error::PipelineError;
use outbox::OutboxWriter;

/// A synchronous observer of local deliveries (see [`EventBus::on_deliver`]).
type Hook = Arc<dyn Fn(&Event) + Send + Sync>;

/// A cheap-to-clone handle on the bus.
#[derive(Clone, Default)]
pub struct EventBus {
    subscribers: Arc<Mutex<Vec<mpsc::UnboundedSender<Arc<Event>>>>>,
    hooks: Arc<RwLock<Vec<Hook>>>,
    /// Set in multi-instance mode: events leave through the outbox instead of going local.
    outbox: Option<OutboxWriter>,
}

impl EventBus {
    /// The single-instance bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// The multi-instance bus: `publish` appends to the outbox through `writer`.
    pub fn distributed(writer: OutboxWriter) -> Self {
        EventBus {
            subscribers: Default::default(),
            hooks: Default::default(),
            outbox: Some(writer),
        }
    }

    /// True when events travel through the outbox and Kafka.
    pub fn is_distributed(&self) -> bool {
        self.outbox.is_some()
    }

    /// The outbox writer in multi-instance mode.
    pub fn outbox(&self) -> Option<&OutboxWriter> {
        self.outbox.as_ref()
    }

    /// Registers a subscriber; it receives every event delivered from now on, in order.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Arc<Event>> {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut subs) = self.subscribers.lock() {
            subs.push(tx);
        }
        rx
    }

    /// Registers `hook`, called synchronously with every event delivered locally before any
    /// subscriber receives it: caches invalidated there are fresh before anything delivered
    /// after the event can reach a client.
    pub fn on_deliver(&self, hook: impl Fn(&Event) + Send + Sync + 'static) {
        if let Ok(mut hooks) = self.hooks.write() {
            hooks.push(Arc::new(hook));
        }
    }

    /// Publishes `event` with no database change of its own (login, logout, lapses):
    /// delivered at once in single-instance mode, or appended to the outbox in its own small
    /// transaction (in order, retried while the database is down) in multi-instance mode.
    pub fn publish(&self, event: Event) {
        match &self.outbox {
            Some(w) => w.append(event),
            None => self.deliver_ordered(event),
        }
    }

    /// Like [`EventBus::publish`], but refuses (instead of dead-lettering) an event that could
    /// never be sent, so the caller can tell its client.
    pub fn try_publish(&self, event: Event) -> Result<(), PipelineError> {
        match &self.outbox {
            Some(w) => w.try_append(event),
            None => {
                self.deliver_ordered(event);
                Ok(())
            }
        }
    }

    /// The synchronous hooks (cache invalidation) run before any subscriber sees the event.
    fn run_hooks(&self, event: &Event) {
        if let Ok(hooks) = self.hooks.read() {
            for hook in hooks.iter() {
                hook(event);
            }
        }
    }

    /// Single-instance delivery: an SSE event gets its id here, under the lock that orders
    /// the subscribers' channels, so id order is delivery order, as the relay makes it in
    /// Kafka mode (a stream skips live events at or below its `Last-Event-ID`).
    fn deliver_ordered(&self, mut event: Event) {
        self.run_hooks(&event);
        if let Ok(mut subs) = self.subscribers.lock() {
            if let Event::Sse(s) = &mut event {
                s.id = uuid::Uuid::now_v7();
            }
            let event = Arc::new(event);
            subs.retain(|tx| tx.send(event.clone()).is_ok());
        }
    }

    /// Hands `event` to every live local subscriber (dropped subscribers are forgotten).
    pub fn deliver_local(&self, event: Arc<Event>) {
        self.run_hooks(&event);
        if let Ok(mut subs) = self.subscribers.lock() {
            subs.retain(|tx| tx.send(event.clone()).is_ok());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[tokio::test]
    async fn hooks_run_before_subscribers_receive() {
        let bus = EventBus::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        bus.on_deliver(move |e| {
            if let Event::UserRevoked { user_id, .. } = e {
                log.lock().unwrap().push(*user_id);
            }
        });
        let mut rx = bus.subscribe();
        let id = Uuid::new_v4();
        bus.publish(Event::UserRevoked {
            user_id: id,
            session_id: None,
        });
        // The hook ran during publish, before the subscriber's receive.
        assert_eq!(*seen.lock().unwrap(), vec![id]);
        assert!(rx.recv().await.is_some());
    }

    #[tokio::test]
    async fn every_subscriber_sees_every_event_in_order() {
        let bus = EventBus::new();
        let mut a = bus.subscribe();
        let mut b = bus.subscribe();
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        for id in &ids {
            bus.publish(Event::UserRevoked {
                user_id: *id,
                session_id: None,
            });
        }
        for rx in [&mut a, &mut b] {
            for id in &ids {
                match &*rx.recv().await.unwrap() {
                    Event::UserRevoked { user_id, .. } => assert_eq!(user_id, id),
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
    }
}
