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
//! subscribers are internal dispatchers that only push into bounded per-connection queues.
//! When they fall behind anyway (the machine cannot fan out what is offered), the
//! [`backlog`] gate holds the sources of load back ([`EventBus::wait_ready`]).

pub mod backlog;
pub mod error;
pub mod kafka;
pub mod outbox;

use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;

use crate::domain::Event;
use backlog::{Backlog, BacklogLimits, FanoutMeter, Lane, Overloaded, Queued};
use error::PipelineError;
use outbox::OutboxWriter;

/// A synchronous observer of local deliveries (see [`EventBus::on_deliver`]).
type Hook = Arc<dyn Fn(&Event) + Send + Sync>;

/// A cheap-to-clone handle on the bus.
#[derive(Clone)]
pub struct EventBus {
    hooks: Arc<RwLock<Vec<Hook>>>,
    /// The subscribers, and how far behind each is.
    backlog: Arc<Backlog>,
    /// Set in multi-instance mode: events leave through the outbox instead of going local.
    outbox: Option<OutboxWriter>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new(BacklogLimits::default())
    }
}

/// A subscriber's receiving side.
pub struct BusReceiver {
    rx: mpsc::UnboundedReceiver<Queued>,
    lane: Arc<Lane>,
    backlog: Arc<Backlog>,
}

impl BusReceiver {
    /// The next event, in delivery order; `None` once the bus is gone.
    pub async fn recv(&mut self) -> Option<Arc<Event>> {
        let (event, weight, at) = self.rx.recv().await?;
        self.backlog.received(&self.lane, weight, at);
        Some(event)
    }
}

impl EventBus {
    /// The single-instance bus.
    pub fn new(limits: BacklogLimits) -> Self {
        EventBus {
            hooks: Default::default(),
            backlog: Arc::new(Backlog::new(limits)),
            outbox: None,
        }
    }

    /// The multi-instance bus: `publish` appends to the outbox through `writer`.
    pub fn distributed(writer: OutboxWriter, limits: BacklogLimits) -> Self {
        EventBus {
            outbox: Some(writer),
            ..EventBus::new(limits)
        }
    }

    /// Is the local fan-out too far behind to take more events now? (Cheap: asked per
    /// broker SEND and per writer round.)
    pub fn is_behind(&self) -> bool {
        self.backlog.behind().is_some()
    }

    /// Why the local fan-out is too far behind, in words, or `None`.
    pub fn why_behind(&self) -> Option<String> {
        self.backlog.why_behind()
    }

    /// Waits until the local fan-out is within its limits (see [`backlog`]); after `limit`
    /// (`None`: as long as it takes) gives up with the client-facing reason.
    pub async fn wait_ready(&self, limit: Option<Duration>) -> Result<(), Overloaded> {
        self.backlog.wait_ready(limit).await
    }

    /// Where the realtime hubs report how far behind the connections' queues are.
    pub fn fanout_meter(&self) -> FanoutMeter {
        self.backlog.meter()
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
    pub fn subscribe(&self) -> BusReceiver {
        let (rx, lane) = self.backlog.subscribe();
        BusReceiver {
            rx,
            lane,
            backlog: self.backlog.clone(),
        }
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
        self.backlog.send(|| {
            if let Event::Sse(s) = &mut event {
                s.id = uuid::Uuid::now_v7();
            }
            Arc::new(event)
        });
    }

    /// Hands `event` to every live local subscriber (dropped subscribers are forgotten).
    pub fn deliver_local(&self, event: Arc<Event>) {
        self.run_hooks(&event);
        self.backlog.send(|| event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use uuid::Uuid;

    #[tokio::test]
    async fn hooks_run_before_subscribers_receive() {
        let bus = EventBus::default();
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
        let bus = EventBus::default();
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

    fn broker(body: &str) -> Event {
        Event::BrokerMessage {
            destination: "/sub/x".into(),
            body: body.into(),
        }
    }

    #[tokio::test]
    async fn a_subscriber_past_the_byte_limit_holds_publishers_until_it_catches_up() {
        let limits = BacklogLimits {
            max_bytes: 4096,
            max_lag: Duration::from_secs(3600),
        };
        let bus = EventBus::new(limits);
        let mut fast = bus.subscribe();
        let mut slow = bus.subscribe();
        let body = "x".repeat(1000);
        for _ in 0..3 {
            bus.publish(broker(&body));
        }
        assert!(bus.why_behind().is_none(), "3 × ~1.3 KB is under 4 KiB");
        bus.publish(broker(&body));
        // The fast subscriber keeps up; the slow one alone is enough to be behind.
        for _ in 0..4 {
            fast.recv().await.unwrap();
        }
        let why = bus.why_behind().expect("behind past 4 KiB");
        assert!(why.contains("limit 4096"), "{why}");
        let refused = bus.wait_ready(Some(Duration::from_millis(30))).await;
        let why = refused.expect_err("still behind after 30 ms").to_string();
        assert!(why.starts_with("the server is overloaded: "), "{why}");

        // A waiter is let through as soon as the subscriber catches up.
        let waiter = tokio::spawn({
            let bus = bus.clone();
            async move { bus.wait_ready(None).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        slow.recv().await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken once under the limit")
            .unwrap()
            .unwrap();
        for _ in 0..3 {
            slow.recv().await.unwrap();
        }
        assert!(bus.why_behind().is_none());
    }

    #[tokio::test]
    async fn a_subscriber_working_on_an_old_event_is_behind_and_a_gone_one_is_forgotten() {
        let limits = BacklogLimits {
            max_bytes: usize::MAX,
            max_lag: Duration::from_millis(40),
        };
        let bus = EventBus::new(limits);
        let mut rx = bus.subscribe();
        bus.publish(broker("a"));
        bus.publish(broker("b"));
        assert!(bus.why_behind().is_none(), "fresh events are not late");
        tokio::time::sleep(Duration::from_millis(60)).await;
        let why = bus.why_behind().expect("the queued event is 60 ms old");
        assert!(why.contains("ms behind (limit 40 ms)"), "{why}");
        // Taking the first: the second was queued as long ago, still behind.
        rx.recv().await.unwrap();
        assert!(bus.why_behind().is_some());
        rx.recv().await.unwrap();
        assert!(bus.why_behind().is_none(), "an empty queue is never behind");

        // A subscriber that went away is not waited for.
        bus.publish(broker("c"));
        drop(rx);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(bus.why_behind().is_some(), "not yet noticed");
        bus.publish(broker("d"));
        assert!(
            bus.why_behind().is_none(),
            "its lane is dropped at the next send"
        );
    }

    #[tokio::test]
    async fn most_pushes_finding_lagging_queues_is_behind_a_few_is_not() {
        let bus = EventBus::default();
        let meter = bus.fanout_meter();
        assert_eq!(meter.lag_ms(), 10_000);
        // Too few pushes to tell (a small channel with a slow member).
        meter.observe(100, 100);
        assert!(bus.why_behind().is_none());
        // A few slow subscribers among many.
        meter.observe(1000, 30);
        assert!(bus.why_behind().is_none());
        // Most of the recent pushes found old messages queued: the server is behind.
        meter.observe(1000, 1000);
        let why = bus.why_behind().expect("behind");
        assert!(why.contains("% of the subscribers' queues"), "{why}");
        // Nothing pushed for a while: nothing to hold back for.
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(bus.why_behind().is_none());
    }
}
