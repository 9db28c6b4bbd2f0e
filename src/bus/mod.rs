//! The event bus: services publish [`Event`]s after commit; realtime layers subscribe.
//!
//! Single-instance mode delivers in process. Each subscriber has its own queue so a busy
//! subscriber never blocks the publisher; subscribers are internal dispatchers (hub, SSE
//! registry) that only push into bounded per-connection queues, so their queues stay short.

use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

use crate::domain::Event;

/// A cheap-to-clone handle on the bus.
#[derive(Clone, Default)]
pub struct EventBus {
    subscribers: Arc<Mutex<Vec<mpsc::UnboundedSender<Arc<Event>>>>>,
}

impl EventBus {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a subscriber; it receives every event published from now on, in order.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Arc<Event>> {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut subs) = self.subscribers.lock() {
            subs.push(tx);
        }
        rx
    }

    /// Delivers `event` to every live subscriber (dropped subscribers are forgotten).
    pub fn publish(&self, event: Event) {
        let event = Arc::new(event);
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
