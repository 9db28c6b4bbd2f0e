//! How far the bus's subscribers (the STOMP and SSE fan-out) are behind, and the gate that
//! holds publishers back while they are too far behind.
//!
//! Every subscriber's queue is unbounded by construction (a publisher never blocks on a
//! subscriber), so the bound is kept at admission instead: while any subscriber has more
//! than `max_bytes` queued, or the event it is working on waited more than `max_lag`, the
//! sources of load wait at [`Backlog::wait_ready`]: the message writer before its next
//! batch (its queue fills, then STOMP SENDs wait and REST gets 503), broker SENDs before
//! they are published, and the Kafka consumer before it delivers the next record. The
//! backlog therefore stays near the limits however hard the server is pushed, and what is
//! delivered keeps a latency near `max_lag` instead of growing with the overload's length.
//!
//! The same holds one step further down: when the dispatchers keep up but the connections'
//! own queues do not (the sockets cannot be written as fast as messages arrive), the
//! [`FanoutMeter`] sees it. The hub reports, per broadcast, how many subscribers' queues
//! already held a message older than `max_lag`; when most pushes of the last ~100 ms found
//! such a queue, the server as a whole is behind. One slow subscriber (or a few) never is:
//! they are a small share of the pushes, and their own byte and age limits deal with them.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

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

/// One subscriber's queue, as the gate sees it.
#[derive(Default)]
pub(crate) struct Lane {
    /// Bytes (see [`crate::domain::Event::weight`]) queued and not yet received.
    bytes: AtomicUsize,
    /// Microseconds since [`epoch`] at which the event being worked on was queued (or, when
    /// the queue was empty, at which the next one arrived): its age is the lane's lag.
    since_us: AtomicU64,
}

/// The state shared by the bus, its receivers and whoever waits at the gate.
pub(crate) struct Backlog {
    limits: BacklogLimits,
    lanes: Mutex<Vec<Arc<Lane>>>,
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

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Microseconds since [`epoch`]: what queued events are stamped with.
pub(crate) fn now_us() -> u64 {
    epoch().elapsed().as_micros() as u64
}

impl Backlog {
    pub fn new(limits: BacklogLimits) -> Backlog {
        Backlog {
            limits,
            lanes: Mutex::new(Vec::new()),
            waiters: AtomicUsize::new(0),
            ready: Notify::new(),
            pushes: PushWindow::default(),
        }
    }

    /// The handle the realtime hubs report their pushes through.
    pub fn meter(self: &Arc<Self>) -> FanoutMeter {
        FanoutMeter(self.clone())
    }

    pub fn limits(&self) -> BacklogLimits {
        self.limits
    }

    /// A new subscriber's lane.
    pub fn add_lane(&self) -> Arc<Lane> {
        let lane = Arc::new(Lane::default());
        if let Ok(mut lanes) = self.lanes.lock() {
            lanes.push(lane.clone());
        }
        lane
    }

    /// Forgets the lanes whose subscriber is gone (their queue will never drain).
    pub fn drop_lanes(&self, gone: &[Arc<Lane>]) {
        if gone.is_empty() {
            return;
        }
        if let Ok(mut lanes) = self.lanes.lock() {
            lanes.retain(|l| !gone.iter().any(|g| Arc::ptr_eq(l, g)));
        }
        self.wake();
    }

    /// An event of `weight` bytes was queued on `lane` at `at_us`.
    pub fn queued(&self, lane: &Lane, weight: usize, at_us: u64) {
        if lane.bytes.fetch_add(weight, Ordering::AcqRel) == 0 {
            lane.since_us.store(at_us, Ordering::Release);
        }
    }

    /// The subscriber took an event of `weight` bytes, queued at `at_us`.
    pub fn received(&self, lane: &Lane, weight: usize, at_us: u64) {
        lane.since_us.store(at_us, Ordering::Release);
        lane.bytes.fetch_sub(weight, Ordering::AcqRel);
        if self.waiters.load(Ordering::Acquire) > 0 && self.why_behind().is_none() {
            self.wake();
        }
    }

    fn wake(&self) {
        self.ready.notify_waiters();
    }

    /// Why the fan-out is too far behind to take more, or `None`.
    pub fn why_behind(&self) -> Option<String> {
        if let Some(share) = self.pushes.lagging_share() {
            if share > 0.5 {
                return Some(format!(
                    "{:.0} % of the subscribers' queues hold messages older than {} ms",
                    share * 100.0,
                    self.limits.max_lag.as_millis()
                ));
            }
        }
        let lanes = self.lanes.lock().ok()?;
        let now = now_us();
        for lane in lanes.iter() {
            let bytes = lane.bytes.load(Ordering::Acquire);
            if bytes == 0 {
                continue;
            }
            if bytes > self.limits.max_bytes {
                return Some(format!(
                    "{bytes} bytes of events wait for the fan-out (limit {})",
                    self.limits.max_bytes
                ));
            }
            let lag =
                Duration::from_micros(now.saturating_sub(lane.since_us.load(Ordering::Acquire)));
            if lag > self.limits.max_lag {
                return Some(format!(
                    "the fan-out is {} ms behind (limit {} ms)",
                    lag.as_millis(),
                    self.limits.max_lag.as_millis()
                ));
            }
        }
        None
    }

    /// Returns once the fan-out is within its limits, or after `limit` (`None`: no limit)
    /// with the reason it is still behind.
    pub async fn wait_ready(&self, limit: Option<Duration>) -> Result<(), Overloaded> {
        if self.why_behind().is_none() {
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
            let Some(why) = self.why_behind() else {
                return Ok(());
            };
            // The lag grows while a lane is stuck, and nobody wakes us for that: look again
            // now and then.
            let poll = tokio::time::Instant::now() + Duration::from_millis(50);
            let until = deadline.map_or(poll, |d| d.min(poll));
            if tokio::time::timeout_at(until, notified).await.is_err()
                && deadline.is_some_and(|d| tokio::time::Instant::now() >= d)
            {
                return match self.why_behind() {
                    None => Ok(()),
                    Some(_) => Err(Overloaded(format!("the server is overloaded: {why}"))),
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
