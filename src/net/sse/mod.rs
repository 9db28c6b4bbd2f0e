//! Server-Sent Events at `GET /api/sse`.
//!
//! Streams are registered in 64 shards keyed by user. Each user entry also keeps the replay
//! history of events addressed to that user (bounded by count and age), whether or not a
//! stream was open; broadcast events live in one shared history. Appending to a history and
//! pushing to that user's streams happen under the same shard lock as a new stream's replay
//! and registration, so a reconnecting client gets no gap and no duplicate at the seam.
//! Each event is encoded once; every stream's queue gets a clone of the same `Bytes`. Every
//! stream has the engine's queue (bounded by bytes and age): a stream that falls behind is
//! closed, and one whose client went away is removed.
//!
//! Once a stream's head is due, the socket leaves hyper ([`Takeover`]) and [`driver::run`]
//! writes the head and then every queued event as HTTP chunks, coalesced per wake-up.

pub mod driver;

use crate::net::shards::{lock, Sharded};
use bytes::Bytes;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use uuid::Uuid;

use crate::bus::backlog::FanoutMeter;
use crate::bus::EventBus;
use crate::config::Config;
use crate::domain::{Audience, Event, SseEvent};
use crate::error::{ApiError, ApiResult};
use crate::net::conn::clock::now_ms;
use crate::net::conn::{placeholder, CloseReason, Encoding, Item, Outbound, QueueLimits, Takeover};
use crate::net::response::Resp;
use crate::proto::sse::{encode_comment, encode_event};
use crate::security::Principal;

/// One open stream's sending side.
struct StreamHandle {
    id: u64,
    session_id: Option<Uuid>,
    out: Arc<Outbound>,
    /// Ids already sent as replay; live copies of them are skipped.
    replayed: HashSet<Uuid>,
    /// The client's `Last-Event-ID`: it has seen every event up to it (ids are in delivery
    /// order on every instance), so a late live copy of an older event, which this instance's
    /// consumer may receive after a client that moved here from a faster instance, is skipped.
    resume_after: Option<Uuid>,
}

/// One event kept for replay.
struct Kept {
    id: Uuid,
    at: Instant,
    bytes: Bytes,
}

/// A bounded, age-limited history; `horizon` is the newest id that may have been dropped.
struct History {
    events: VecDeque<Kept>,
    horizon: Uuid,
}

impl History {
    fn new(horizon: Uuid) -> Self {
        History {
            events: VecDeque::new(),
            horizon,
        }
    }

    fn push(&mut self, kept: Kept, max: usize, max_age: Duration) {
        self.events.push_back(kept);
        self.trim(max, max_age);
    }

    fn trim(&mut self, max: usize, max_age: Duration) {
        while self.events.len() > max
            || self
                .events
                .front()
                .map(|k| k.at.elapsed() > max_age)
                .unwrap_or(false)
        {
            if let Some(k) = self.events.pop_front() {
                if k.id > self.horizon {
                    self.horizon = k.id;
                }
            }
        }
    }
}

#[derive(Default)]
struct UserEntry {
    streams: Vec<StreamHandle>,
    history: Option<History>,
}

/// The SSE registry and replay store.
pub struct SseHub {
    shards: Sharded<HashMap<Uuid, UserEntry>>,
    broadcast: Mutex<History>,
    /// Ids older than this were produced before this process could have kept them.
    start_horizon: Uuid,
    next_stream: AtomicU64,
    limits: QueueLimits,
    max_per_user: usize,
    max_events: usize,
    max_age: Duration,
    keepalive: Duration,
    /// Set by [`SseHub::attach`]: where dispatches report lagging queues (`bus::backlog`).
    meter: OnceLock<FanoutMeter>,
}

/// Where a reconnecting client's replay starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayFrom {
    Nothing,
    After(Uuid),
    Reset,
}

/// Reads a reconnecting client's `Last-Event-ID` (header or query): blank means a fresh
/// stream, an id older than `horizon` (the oldest event still in the histories) or not an id
/// at all means the client must refetch (`Reset`), anything else replays after it.
pub fn replay_from(last_id: Option<&str>, horizon: Uuid) -> ReplayFrom {
    let Some(raw) = last_id.map(str::trim).filter(|s| !s.is_empty()) else {
        return ReplayFrom::Nothing;
    };
    let Ok(id) = Uuid::parse_str(raw) else {
        return ReplayFrom::Reset;
    };
    if id < horizon {
        ReplayFrom::Reset
    } else {
        ReplayFrom::After(id)
    }
}

impl SseHub {
    pub fn new(config: &Config) -> Arc<Self> {
        let start = Uuid::now_v7();
        Arc::new(SseHub {
            shards: Sharded::default(),
            broadcast: Mutex::new(History::new(start)),
            start_horizon: start,
            next_stream: AtomicU64::new(1),
            limits: QueueLimits::from_config(config),
            max_per_user: config.max_sse_streams_per_user,
            max_events: config.sse_replay_max_events.max(1),
            max_age: config.sse_replay_max_age,
            keepalive: config.sse_keepalive,
            meter: OnceLock::new(),
        })
    }

    /// Subscribes to the bus and starts the keep-alive sweep.
    pub fn attach(self: Arc<Self>, bus: &EventBus) {
        let _ = self.meter.set(bus.fanout_meter());
        let mut rx = bus.subscribe();
        let hub = self.clone();
        tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                match &*ev {
                    Event::Sse(e) => hub.dispatch(e),
                    Event::UserRevoked {
                        user_id,
                        session_id,
                    } => hub.close_user(*user_id, *session_id),
                    _ => {}
                }
            }
        });
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(self.keepalive);
            tick.tick().await;
            loop {
                tick.tick().await;
                self.ping_all();
            }
        });
    }

    /// Delivers one event to its audience and keeps it for replay.
    pub fn dispatch(&self, e: &SseEvent) {
        let id = e.id.to_string();
        let bytes = encode_event(Some(&id), Some(&e.name), &e.data);
        let at = now_ms();
        let mut count = Pushes {
            lag_ms: self.meter.get().map_or(u64::MAX, FanoutMeter::lag_ms),
            ..Pushes::default()
        };
        let kept = || Kept {
            id: e.id,
            at: Instant::now(),
            bytes: bytes.clone(),
        };
        match &e.audience {
            Audience::All => {
                lock(&self.broadcast).push(kept(), self.max_events, self.max_age);
                for shard in self.shards.all() {
                    let mut map = lock(shard);
                    map.retain(|_, entry| {
                        push_live(&mut entry.streams, e.id, &bytes, at, &mut count);
                        !entry.streams.is_empty() || entry.history.is_some()
                    });
                }
            }
            Audience::Users(users) => {
                for user in users {
                    let mut map = self.shards.lock(&user);
                    let entry = map.entry(*user).or_default();
                    entry
                        .history
                        .get_or_insert_with(|| History::new(self.start_horizon))
                        .push(kept(), self.max_events, self.max_age);
                    push_live(&mut entry.streams, e.id, &bytes, at, &mut count);
                }
            }
        }
        if let Some(meter) = self.meter.get() {
            meter.observe(count.queued, count.lagging);
        }
    }

    /// Closes the user's streams (all, or those of one login session).
    pub fn close_user(&self, user: Uuid, session: Option<Uuid>) {
        let mut map = self.shards.lock(&user);
        if let Some(entry) = map.get_mut(&user) {
            entry.streams.retain(|s| {
                let keep = session.is_some() && s.session_id != session;
                if !keep {
                    s.out.close(CloseReason::revoked());
                }
                keep
            });
        }
    }

    /// Ends every stream (server shutdown): clients reconnect, to another instance, and
    /// replay from their last event id.
    pub fn close_all(&self, reason: CloseReason) {
        for shard in self.shards.all() {
            for entry in lock(shard).values_mut() {
                for s in entry.streams.drain(..) {
                    s.out.close(reason.clone());
                }
            }
        }
    }

    /// Sends a keep-alive comment to every stream; drops dead and stuck ones.
    fn ping_all(&self) {
        let ping = encode_comment("ping");
        let now = now_ms();
        for shard in self.shards.all() {
            let mut map = lock(shard);
            for entry in map.values_mut() {
                entry
                    .streams
                    .retain(|s| !s.out.check_age(now) && s.out.push(Item::new(ping.clone(), now)));
                if let Some(h) = entry.history.as_mut() {
                    h.trim(self.max_events, self.max_age);
                }
            }
            map.retain(|_, e| {
                !e.streams.is_empty() || e.history.as_ref().is_some_and(|h| !h.events.is_empty())
            });
        }
    }

    /// Number of open streams (for tests and metrics).
    pub fn stream_count(&self) -> usize {
        self.shards
            .all()
            .map(|s| lock(s).values().map(|e| e.streams.len()).sum::<usize>())
            .sum()
    }

    fn replay_from(&self, last_id: Option<&str>, user_horizon: Uuid) -> ReplayFrom {
        replay_from(last_id, user_horizon.max(lock(&self.broadcast).horizon))
    }

    /// Opens a stream for `who`: the `connect` event, then replay after `last_id`, then live.
    /// The socket is taken out of hyper; the response hyper sees is a placeholder.
    pub fn open(
        &self,
        who: &Principal,
        last_id: Option<&str>,
        takeover: Option<&Takeover>,
        request_id: &str,
    ) -> ApiResult<Resp> {
        let Some(takeover) = takeover else {
            return Err(ApiError::service_unavailable(
                "SSE needs its own connection",
            ));
        };
        {
            let mut map = self.shards.lock(&who.user_id);
            if let Some(entry) = map.get_mut(&who.user_id) {
                entry.streams.retain(|s| !s.out.is_closed());
                if entry.streams.len() >= self.max_per_user {
                    return Err(ApiError::limit_reached(
                        "too many open SSE streams for this user",
                        self.max_per_user,
                    ));
                }
            }
        }
        let out = Outbound::new(Encoding::Raw, self.limits);
        let stream_id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        let head = driver::response_head(request_id);
        let handoff_out = out.clone();
        let handoff = move |stream, _early| -> futures_util::future::BoxFuture<'static, ()> {
            Box::pin(async move {
                let reason = driver::run(stream, head, handoff_out).await;
                tracing::debug!("sse stream {stream_id} closed: {}", reason.text);
            })
        };
        if takeover.replace_response(Box::new(handoff)).is_err() {
            return Err(ApiError::service_unavailable(
                "an SSE request must not be pipelined behind an unfinished response",
            ));
        }
        let connect = encode_event(
            None,
            Some("connect"),
            &serde_json::json!({ "userId": who.user_id }).to_string(),
        );
        {
            let mut map = self.shards.lock(&who.user_id);
            let entry = map.entry(who.user_id).or_default();
            let user_horizon = entry
                .history
                .as_ref()
                .map(|h| h.horizon)
                .unwrap_or(self.start_horizon);
            let mut replay: Vec<(Uuid, Bytes)> = Vec::new();
            let mut reset = false;
            let mut resume_after = None;
            match self.replay_from(last_id, user_horizon) {
                ReplayFrom::Nothing => {}
                ReplayFrom::Reset => reset = true,
                ReplayFrom::After(after) => {
                    resume_after = Some(after);
                    if let Some(h) = &entry.history {
                        replay.extend(
                            h.events
                                .iter()
                                .filter(|k| k.id > after)
                                .map(|k| (k.id, k.bytes.clone())),
                        );
                    }
                    replay.extend(
                        lock(&self.broadcast)
                            .events
                            .iter()
                            .filter(|k| k.id > after)
                            .map(|k| (k.id, k.bytes.clone())),
                    );
                    replay.sort_by_key(|(id, _)| *id);
                }
            }
            // The queue is new and empty: fill what fits comfortably, and if the replay is
            // larger, tell the client to refetch instead.
            let replay_bytes: usize = replay.iter().map(|(_, b)| b.len()).sum();
            if replay_bytes + 4096 > self.limits.max_bytes / 2 {
                reset = true;
                replay.clear();
            }
            let now = now_ms();
            out.push(Item::new(encode_comment(&" ".repeat(2048)), now));
            out.push(Item::new(connect, now));
            if reset {
                out.push(Item::new(encode_event(None, Some("reset"), "{}"), now));
            }
            let mut replayed = HashSet::new();
            for (id, bytes) in replay {
                replayed.insert(id);
                out.push(Item::new(bytes, now));
            }
            entry.streams.push(StreamHandle {
                id: stream_id,
                session_id: who.session_id,
                out,
                replayed,
                resume_after,
            });
        }
        tracing::debug!("sse stream {stream_id} opened for {}", who.user_id);
        Ok(placeholder())
    }
}

/// Pushes `bytes` to every stream; a slow or closed stream is removed at once.
/// What one dispatch's pushes found, for the [`FanoutMeter`].
#[derive(Default)]
struct Pushes {
    lag_ms: u64,
    queued: usize,
    lagging: usize,
}

fn push_live(
    streams: &mut Vec<StreamHandle>,
    id: Uuid,
    bytes: &Bytes,
    at: u64,
    count: &mut Pushes,
) {
    streams.retain_mut(|s| {
        if !s.replayed.is_empty() && s.replayed.remove(&id) {
            return true;
        }
        if s.resume_after.is_some_and(|after| id <= after) {
            return true;
        }
        if let Some(age) = s.out.push_aged(Item::new(bytes.clone(), at)) {
            count.queued += 1;
            count.lagging += usize::from(age > count.lag_ms);
            true
        } else {
            tracing::debug!("sse stream {} dropped (slow or gone)", s.id);
            false
        }
    });
}
