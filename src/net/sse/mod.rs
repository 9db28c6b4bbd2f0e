//! Server-Sent Events at `GET /api/sse`.
//!
//! Streams are registered in 64 shards keyed by user. Each user entry also keeps the replay
//! history of events addressed to that user (bounded by count and age), whether or not a
//! stream was open; broadcast events live in one shared history. Appending to a history and
//! pushing to that user's streams happen under the same shard lock as a new stream's replay
//! and registration, so a reconnecting client gets no gap and no duplicate at the seam.
//! Each event is encoded once; every stream gets a clone of the same `Bytes`. Every stream
//! has a bounded queue: a stream whose queue is full or whose client went away is removed.

use crate::net::shards::{lock, Sharded};
use bytes::Bytes;
use futures_util::stream;
use http::{header, HeaderValue, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::bus::EventBus;
use crate::config::Config;
use crate::domain::{Audience, Event, SseEvent};
use crate::net::response::Resp;
use crate::proto::sse::{encode_comment, encode_event};
use crate::security::Principal;

/// One open stream's sending side.
struct StreamHandle {
    id: u64,
    session_id: Option<Uuid>,
    tx: mpsc::Sender<Bytes>,
    /// Ids already sent as replay; live copies of them are skipped.
    replayed: HashSet<Uuid>,
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
    queue: usize,
    max_events: usize,
    max_age: Duration,
    keepalive: Duration,
}

/// Where a reconnecting client's replay starts.
enum ReplayFrom {
    Nothing,
    After(Uuid),
    Reset,
}

impl SseHub {
    pub fn new(config: &Config) -> Arc<Self> {
        let start = Uuid::now_v7();
        Arc::new(SseHub {
            shards: Sharded::default(),
            broadcast: Mutex::new(History::new(start)),
            start_horizon: start,
            next_stream: AtomicU64::new(1),
            queue: config.outbound_queue.max(16),
            max_events: config.sse_replay_max_events.max(1),
            max_age: config.sse_replay_max_age,
            keepalive: config.sse_keepalive,
        })
    }

    /// Subscribes to the bus and starts the keep-alive sweep.
    pub fn attach(self: Arc<Self>, bus: &EventBus) {
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
                        push_live(&mut entry.streams, e.id, &bytes);
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
                    push_live(&mut entry.streams, e.id, &bytes);
                }
            }
        }
    }

    /// Closes the user's streams (all, or those of one login session).
    pub fn close_user(&self, user: Uuid, session: Option<Uuid>) {
        let mut map = self.shards.lock(&user);
        if let Some(entry) = map.get_mut(&user) {
            entry
                .streams
                .retain(|s| session.is_some() && s.session_id != session);
        }
    }

    /// Sends a keep-alive comment to every stream; drops dead and stuck ones.
    fn ping_all(&self) {
        let ping = encode_comment("ping");
        for shard in self.shards.all() {
            let mut map = lock(shard);
            for entry in map.values_mut() {
                entry
                    .streams
                    .retain(|s| s.tx.try_send(ping.clone()).is_ok());
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
        let Some(raw) = last_id.map(str::trim).filter(|s| !s.is_empty()) else {
            return ReplayFrom::Nothing;
        };
        let Ok(id) = Uuid::parse_str(raw) else {
            return ReplayFrom::Reset;
        };
        let horizon = user_horizon.max(lock(&self.broadcast).horizon);
        if id < horizon {
            ReplayFrom::Reset
        } else {
            ReplayFrom::After(id)
        }
    }

    /// Opens a stream for `who`: the `connect` event, then replay after `last_id`, then live.
    pub fn open(&self, who: &Principal, last_id: Option<&str>) -> Resp {
        let (tx, rx) = mpsc::channel::<Bytes>(self.queue);
        let stream_id = self.next_stream.fetch_add(1, Ordering::Relaxed);
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
            match self.replay_from(last_id, user_horizon) {
                ReplayFrom::Nothing => {}
                ReplayFrom::Reset => reset = true,
                ReplayFrom::After(after) => {
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
            // The queue is new and empty: fill what fits, and if the replay is larger than
            // the queue, tell the client to refetch instead.
            let _ = tx.try_send(encode_comment(&" ".repeat(2048)));
            let _ = tx.try_send(connect);
            if replay.len() + 4 > self.queue {
                reset = true;
                replay.clear();
            }
            if reset {
                let _ = tx.try_send(encode_event(None, Some("reset"), "{}"));
            }
            let mut replayed = HashSet::new();
            for (id, bytes) in replay {
                replayed.insert(id);
                let _ = tx.try_send(bytes);
            }
            entry.streams.push(StreamHandle {
                id: stream_id,
                session_id: who.session_id,
                tx,
                replayed,
            });
        }
        tracing::debug!("sse stream {stream_id} opened for {}", who.user_id);
        let body = StreamBody::new(stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|b| (Ok::<_, std::io::Error>(Frame::data(b)), rx))
        }));
        let mut r = http::Response::new(body.boxed());
        *r.status_mut() = StatusCode::OK;
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream;charset=UTF-8"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert("x-accel-buffering", HeaderValue::from_static("no"));
        r
    }
}

/// Pushes `bytes` to every stream; a full or closed stream is removed at once.
fn push_live(streams: &mut Vec<StreamHandle>, id: Uuid, bytes: &Bytes) {
    streams.retain_mut(|s| {
        if !s.replayed.is_empty() && s.replayed.remove(&id) {
            return true;
        }
        match s.tx.try_send(bytes.clone()) {
            Ok(()) => true,
            Err(_) => {
                tracing::debug!("sse stream {} dropped (slow or gone)", s.id);
                false
            }
        }
    });
}
