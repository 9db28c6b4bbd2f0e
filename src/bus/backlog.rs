//! How far the bus's subscribers (the STOMP and SSE fan-out) are behind, and the gate that
//! holds publishers back while they are too far behind.
//!
//! Every subscriber's queue is unbounded by construction (a publisher never blocks on a
//! subscriber), so the bound is kept at admission instead: while any subscriber has more
//! than `max_bytes` queued, or the event it is working on waited more than `max_lag`, the
//! sources of load wait at [`Backlog::wait_ready`]: the message writer before its next
//! batch (its queue fills, then STOMP SENDs wait and REST gets 503), broker SENDs before
//! they are published, and the Kafka consumer before it delivers the next record. The
//! server's backlog (memory, and the lag between publishing and fan-out) therefore stays
//! near the limits however hard it is pushed; a publisher that keeps sending regardless
//! waits in its own socket buffer instead (perf/RESULTS.md, "Fan-out backlog gate").
//!
//! The same holds one step further down: when the dispatchers keep up but the connections'
//! own queues do not (the sockets cannot be written as fast as messages arrive), the
//! [`FanoutMeter`] sees it. The hub reports, per broadcast, how many subscribers' queues
//! already held a message older than `max_lag`; when most pushes of the last ~100 ms found
//! such a queue, the server as a whole is behind. One slow subscriber (or a few) never is:
//! they are a small share of the pushes, and their own byte and age limits deal with them.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, Notify};

use crate::domain::Event;

/// The limits of the fan-out's backlog (`DISCODEIT_FANOUT_MAX_BYTES`,
/// `DISCODEIT_FANOUT_MAX_LAG_MS`).
#[derive(Clone, Copy, Debug)]
pub struct BacklogLimits {
    pub max_bytes: usize,
    pub max_lag: Duration,
}

impl Default for BacklogLimits {
    fn default() -> Self {
        BacklogLimits {
            max_bytes: 32 * 1024 * 1024,
            max_lag: Duration::from_millis(10_000),
        }
    }
}

/// Why the gate did not open in time: the client-facing reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overloaded(pub String);

impl std::fmt::Display for Overloaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An event in a subscriber's queue: its weight and when it was queued ([`now_us`]).
pub(crate) type Queued = (Arc<Event>, usize, u64);

/// A subscriber: its queue's sending side and how far behind it is.
pub(crate) struct Subscriber {
    tx: mpsc::UnboundedSender<Queued>,
    lane: Arc<Lane>,
}

/// Why the fan-out counts as behind; rendered only when someone is told.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Behind {
    /// This share of the recent pushes found a lagging connection queue.
    LaggingQueues(f64),
    /// A subscriber has this many bytes queued.
    Bytes(usize),
    /// A subscriber works on an event queued this long ago.
    Lag(Duration),
}

/// One subscriber's queue, as the gate sees it.
#[derive(Default)]
pub(crate) struct Lane {
    /// Bytes (see [`crate::domain::Event::weight`]) queued and not yet received.
    bytes: AtomicUsize,
    /// [`now_us`] at which the event being worked on was queued (or, when
    /// the queue was empty, at which the next one arrived): its age is the lane's lag.
    since_us: AtomicU64,
}

/// The state shared by the bus, its receivers and whoever waits at the gate: the bus's
/// subscribers live here, so the gate reads their lanes under the lock that sends to them.
pub(crate) struct Backlog {
    limits: BacklogLimits,
    subscribers: Mutex<Vec<Subscriber>>,
    waiters: AtomicUsize,
    ready: Notify,
    pushes: PushWindow,
}

/// Pushes to connection queues in the current and the previous window, and how many of them
/// found the queue lagging.
#[derive(Default)]
struct PushWindow {
    start_us: AtomicU64,
    pushes: AtomicU64,
    lagging: AtomicU64,
    last_pushes: AtomicU64,
    last_lagging: AtomicU64,
}

/// The window's length.
const WINDOW_US: u64 = 100_000;
/// Fewer pushes than this in a window say nothing (a small channel with a slow member).
const MIN_PUSHES: u64 = 256;

impl PushWindow {
    fn add(&self, pushes: u64, lagging: u64) {
        let now = now_us();
        let start = self.start_us.load(Ordering::Relaxed);
        if now.saturating_sub(start) > WINDOW_US
            && self
                .start_us
                .compare_exchange(start, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            // A window that ended long ago is not the previous one.
            let recent = now.saturating_sub(start) <= 2 * WINDOW_US;
            let (p, l) = (
                self.pushes.swap(0, Ordering::AcqRel),
                self.lagging.swap(0, Ordering::AcqRel),
            );
            self.last_pushes
                .store(if recent { p } else { 0 }, Ordering::Release);
            self.last_lagging
                .store(if recent { l } else { 0 }, Ordering::Release);
        }
        self.pushes.fetch_add(pushes, Ordering::AcqRel);
        self.lagging.fetch_add(lagging, Ordering::AcqRel);
    }

    /// The share of recent pushes that found a lagging queue (`None`: too few to tell, or
    /// nothing pushed lately).
    fn lagging_share(&self) -> Option<f64> {
        let age = now_us().saturating_sub(self.start_us.load(Ordering::Acquire));
        if age > 2 * WINDOW_US {
            return None;
        }
        let pushes = self.pushes.load(Ordering::Acquire) + self.last_pushes.load(Ordering::Acquire);
        let lagging =
            self.lagging.load(Ordering::Acquire) + self.last_lagging.load(Ordering::Acquire);
        (pushes >= MIN_PUSHES).then(|| lagging as f64 / pushes as f64)
    }
}

/// The hub's view of the gate: what counts as a lagging queue, and where to report.
#[derive(Clone)]
pub struct FanoutMeter(Arc<Backlog>);

impl FanoutMeter {
    /// A queue whose oldest message is older than this is lagging.
    pub fn lag_ms(&self) -> u64 {
        self.0.limits.max_lag.as_millis() as u64
    }

    /// One broadcast pushed to `pushes` queues, `lagging` of which were lagging.
    pub fn observe(&self, pushes: usize, lagging: usize) {
        self.0.pushes.add(pushes as u64, lagging as u64);
    }
}

/// Microseconds on the process's monotonic clock: what queued events are stamped with.
pub(crate) fn now_us() -> u64 {
    crate::time::since_start().as_micros() as u64
}

impl Backlog {
    pub fn new(limits: BacklogLimits) -> Backlog {
        Backlog {
            limits,
            subscribers: Mutex::new(Vec::new()),
            waiters: AtomicUsize::new(0),
            ready: Notify::new(),
            pushes: PushWindow::default(),
        }
    }

    /// The handle the realtime hubs report their pushes through.
    pub fn meter(self: &Arc<Self>) -> FanoutMeter {
        FanoutMeter(self.clone())
    }

    fn lock(&self) -> Option<MutexGuard<'_, Vec<Subscriber>>> {
        self.subscribers.lock().ok()
    }

    /// A new subscriber: its queue's receiving side and its lane.
    pub fn subscribe(&self) -> (mpsc::UnboundedReceiver<Queued>, Arc<Lane>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let lane = Arc::new(Lane::default());
        if let Some(mut subs) = self.lock() {
            subs.push(Subscriber {
                tx,
                lane: lane.clone(),
            });
        }
        (rx, lane)
    }

    /// Queues the event `make` returns for every subscriber, counting it in their lanes.
    /// `make` runs under the lock that orders the subscribers' queues. Subscribers that are
    /// gone are forgotten (their queue would never drain).
    pub fn send(&self, make: impl FnOnce() -> Arc<Event>) {
        let Some(mut subs) = self.lock() else { return };
        let event = make();
        let weight = event.weight();
        let at = now_us();
        let before = subs.len();
        subs.retain(|s| {
            if s.lane.bytes.fetch_add(weight, Ordering::AcqRel) == 0 {
                s.lane.since_us.store(at, Ordering::Release);
            }
            s.tx.send((event.clone(), weight, at)).is_ok()
        });
        if subs.len() < before {
            drop(subs);
            self.wake();
        }
    }

    /// The subscriber took an event of `weight` bytes, queued at `at_us`.
    pub fn received(&self, lane: &Lane, weight: usize, at_us: u64) {
        lane.since_us.store(at_us, Ordering::Release);
        lane.bytes.fetch_sub(weight, Ordering::AcqRel);
        if self.waiters.load(Ordering::Acquire) > 0 && self.behind().is_none() {
            self.wake();
        }
    }

    fn wake(&self) {
        self.ready.notify_waiters();
    }

    /// Why the fan-out is too far behind to take more, or `None`. Cheap (no allocation):
    /// it is asked per broker SEND, per writer round and per received event while someone
    /// waits.
    pub fn behind(&self) -> Option<Behind> {
        if let Some(share) = self.pushes.lagging_share() {
            if share > 0.5 {
                return Some(Behind::LaggingQueues(share));
            }
        }
        let subs = self.lock()?;
        let now = now_us();
        subs.iter().find_map(|s| {
            let bytes = s.lane.bytes.load(Ordering::Acquire);
            let since = s.lane.since_us.load(Ordering::Acquire);
            let lag = Duration::from_micros(now.saturating_sub(since));
            if bytes > self.limits.max_bytes {
                Some(Behind::Bytes(bytes))
            } else if bytes > 0 && lag > self.limits.max_lag {
                Some(Behind::Lag(lag))
            } else {
                None
            }
        })
    }

    /// [`Backlog::behind`], in words for a client or a log.
    pub fn why_behind(&self) -> Option<String> {
        self.behind().map(|b| self.explain(b).to_string())
    }

    fn explain(&self, b: Behind) -> impl fmt::Display + '_ {
        struct Why<'a>(&'a BacklogLimits, Behind);
        impl fmt::Display for Why<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let lag_ms = self.0.max_lag.as_millis();
                match self.1 {
                    Behind::LaggingQueues(share) => write!(
                        f,
                        "{:.0} % of the subscribers' queues hold messages older than {lag_ms} ms",
                        share * 100.0
                    ),
                    Behind::Bytes(bytes) => write!(
                        f,
                        "{bytes} bytes of events wait for the fan-out (limit {})",
                        self.0.max_bytes
                    ),
                    Behind::Lag(lag) => write!(
                        f,
                        "the fan-out is {} ms behind (limit {lag_ms} ms)",
                        lag.as_millis()
                    ),
                }
            }
        }
        Why(&self.limits, b)
    }

    /// Returns once the fan-out is within its limits, or after `limit` (`None`: no limit)
    /// with the reason it is still behind.
    pub async fn wait_ready(&self, limit: Option<Duration>) -> Result<(), Overloaded> {
        if self.behind().is_none() {
            return Ok(());
        }
        crate::telemetry::metrics::fanout_waited();
        let deadline = limit.map(|l| tokio::time::Instant::now() + l);
        let _waiting = Waiting::new(&self.waiters);
        loop {
            let notified = self.ready.notified();
            tokio::pin!(notified);
            // Registered before the check, so a wake between the check and the wait counts.
            notified.as_mut().enable();
            let Some(why) = self.behind() else {
                return Ok(());
            };
            // The lag grows while a lane is stuck, and nobody wakes us for that: look again
            // now and then.
            let poll = tokio::time::Instant::now() + Duration::from_millis(50);
            let until = deadline.map_or(poll, |d| d.min(poll));
            if tokio::time::timeout_at(until, notified).await.is_err()
                && deadline.is_some_and(|d| tokio::time::Instant::now() >= d)
            {
                return match self.behind() {
                    None => Ok(()),
                    Some(_) => Err(Overloaded(format!(
                        "the server is overloaded: {}",
                        self.explain(why)
                    ))),
                };
            }
        }
    }
}

/// Counts a waiter for as long as it waits (also when its future is dropped).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
