//! One STOMP 1.2 session, independent of the transport that carries it.
//!
//! The connection's driver hands it client messages (raw WebSocket messages or SockJS
//! messages, which may split or join frames); they go through the [`Decoder`], each frame is
//! typed ([`Request::parse`]) and applied in order. Work that needs I/O — verifying the token,
//! asking the service whether a subscription is allowed, creating a message — becomes the
//! session's one pending job (or, for `SEND /pub/messages`, an in-flight send), and while it
//! runs the session is busy so the driver stops reading. Replies go to the connection's
//! [`Outbound`]. Every refusal is an ERROR frame with a precise `message`, then the close.
//! Destination rules are the service layer's (`service::destinations`); this file only asks.

use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesOrdered, StreamExt};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{sleep, Sleep};

use super::backend::{Committed, StompBackend};
use super::hub::Hub;
use crate::domain::Role;
use crate::net::conn::clock::now_ms;
use crate::net::conn::{CloseReason, Outbound, Session, SessionFactory};
use crate::proto::stomp::{
    encode_to_bytes, negotiate_heartbeat, printable, ClientCommand, Command, Decoder, Frame, Item,
    Limits, Request,
};
use crate::security::Principal;
use crate::service::destinations::{Destination, DestinationError};
use crate::service::messages::MessageCreateRequest;
use crate::telemetry::metrics;

/// The server's heart-beat offer: it can send and wants to receive every 10 s (Spring's
/// default); the client's wishes are combined with it as STOMP 1.2 says.
const SERVER_HEARTBEAT_MS: u32 = 10_000;
/// A client that has not sent CONNECT by then is dropped.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
/// A client is considered gone after this many of its heart-beat intervals of silence.
const HEARTBEAT_GRACE: u64 = 3;
/// The `server` header of CONNECTED.
const SERVER_NAME: &str = concat!("discodeit/", env!("CARGO_PKG_VERSION"));

/// Per-session limits (from the configuration).
#[derive(Debug, Clone, Copy)]
pub struct StompLimits {
    pub frame: Limits,
    pub max_subscriptions: usize,
    pub max_subscriptions_per_destination: usize,
    pub broker_max_body: usize,
    /// SENDs to plain broker destinations per second (and burst).
    pub broker_rate: u32,
    /// `SEND /pub/messages` frames in flight at once.
    pub max_in_flight_sends: usize,
}

/// What every STOMP session of an endpoint shares.
pub struct StompContext {
    /// Authentication, authorization, message creation (`Services` in the server).
    pub backend: Arc<dyn StompBackend>,
    pub hub: Arc<Hub>,
    pub limits: StompLimits,
}

/// Opens a [`StompSession`] for each new connection.
pub struct StompFactory(pub Arc<StompContext>);

impl SessionFactory for StompFactory {
    fn open(&self, out: &Arc<Outbound>) -> Box<dyn Session> {
        Box::new(StompSession::new(self.0.clone(), out.clone()))
    }
}

/// One subscription of this connection.
struct Subscription {
    id: Arc<str>,
    destination: Arc<str>,
}

/// Negotiated heart-beats and the client's last sign of life.
struct HeartBeat {
    send_every_ms: u64,
    expect_every_ms: u64,
    last_in_ms: u64,
}

/// What a finished job hands back to the session.
enum Done {
    /// The token was checked.
    Authenticated {
        receipt: Option<String>,
        heart_beat: Option<String>,
        result: Result<Principal, String>,
    },
    /// After registering with the hub: was the login session ended meanwhile?
    SessionChecked {
        receipt: Option<String>,
        heart_beat: Option<String>,
        ended: bool,
    },
    /// A channel subscription was authorized (or not).
    Authorized {
        receipt: Option<String>,
        id: String,
        destination: String,
        result: Result<(), DestinationError>,
    },
    /// A `SEND /pub/messages` was queued for the writer (or refused before).
    Submitted {
        receipt: Option<String>,
        result: Result<Committed, String>,
    },
    /// A broker SEND waited for the fan-out to catch up (or gave up).
    FanoutReady {
        receipt: Option<String>,
        destination: Destination,
        body: Bytes,
        waited_ms: u64,
        result: Result<(), String>,
    },
}

/// The outcome of one `SEND /pub/messages`, in order.
struct Sent {
    receipt: Option<String>,
    result: Result<(), String>,
}

/// A token bucket for broker SENDs.
struct Bucket {
    tokens: f64,
    last_ms: u64,
    /// SENDs allowed beyond the bucket: while the session waited for the fan-out it read
    /// nothing, and what the client sent meanwhile (at its own pace) arrives as one burst.
    credit: f64,
}

/// The state of one STOMP connection.
pub struct StompSession {
    ctx: Arc<StompContext>,
    out: Arc<Outbound>,
    conn: u64,
    decoder: Decoder,
    buf: BytesMut,
    principal: Option<Box<Principal>>,
    subscriptions: Vec<Subscription>,
    heart_beat: Option<HeartBeat>,
    /// Before CONNECT: the CONNECT deadline; after: the heart-beat tick (if any).
    timer: Option<Pin<Box<Sleep>>>,
    job: Option<BoxFuture<'static, Done>>,
    sends: FuturesOrdered<BoxFuture<'static, Sent>>,
    /// A SEND was refused behind others still in flight: its ERROR waits for their receipts,
    /// and no further frame is read meanwhile.
    send_refused: bool,
    /// DISCONNECT waits for in-flight sends; its receipt is sent after them.
    disconnect: Option<Option<String>>,
    bucket: Bucket,
    closed: bool,
    /// CONNECTED was sent (counted in the session gauge).
    connected: bool,
}

impl StompSession {
    pub fn new(ctx: Arc<StompContext>, out: Arc<Outbound>) -> StompSession {
        StompSession {
            conn: ctx.hub.next_connection_id(),
            decoder: Decoder::new(ctx.limits.frame),
            bucket: Bucket {
                tokens: f64::from(ctx.limits.broker_rate),
                last_ms: now_ms(),
                credit: 0.0,
            },
            ctx,
            out,
            buf: BytesMut::new(),
            principal: None,
            subscriptions: Vec::new(),
            heart_beat: None,
            timer: Some(Box::pin(sleep(CONNECT_TIMEOUT))),
            job: None,
            sends: FuturesOrdered::new(),
            send_refused: false,
            disconnect: None,
            closed: false,
            connected: false,
        }
    }

    /// Decodes and applies buffered frames until one needs to wait.
    fn process(&mut self) {
        while !self.closed && !self.busy() && self.disconnect.is_none() {
            match self.decoder.decode(&mut self.buf) {
                Ok(None) => break,
                Ok(Some(Item::HeartBeat)) => {}
                Ok(Some(Item::Frame(frame))) => self.apply(frame),
                Err(e) => {
                    self.refuse(None, &e.to_string());
                    break;
                }
            }
        }
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            // An idle session holds no input buffer.
            self.buf = BytesMut::new();
            self.decoder = Decoder::new(self.ctx.limits.frame);
        }
    }

    fn send_frame(&self, frame: &Frame) {
        self.out.push_encoded(&encode_to_bytes(frame));
    }

    /// RECEIPT for a frame that asked for one.
    fn receipt(&self, receipt: Option<&str>) {
        if let Some(r) = receipt {
            self.send_frame(&Frame::new(Command::Receipt).with_header("receipt-id", r));
        }
    }

    /// ERROR with `message` (echoing the refused frame's receipt), then close.
    fn refuse(&mut self, receipt: Option<&str>, message: &str) {
        if self.closed {
            return;
        }
        tracing::debug!("stomp connection {} refused: {message}", self.conn);
        // The header is a one-line, printable summary; the body keeps the text as it is.
        let mut error = Frame::new(Command::Error).with_header("message", printable(message));
        if let Some(r) = receipt {
            error = error.with_header("receipt-id", r);
        }
        let error = error
            .with_header("content-type", "text/plain")
            .body(message.as_bytes().to_vec());
        self.send_frame(&error);
        self.out.close(CloseReason::policy(message.to_string()));
        self.closed = true;
        self.job = None;
    }

    fn apply(&mut self, frame: Frame) {
        let (receipt, command) = Request::parse(frame);
        let receipt = receipt.as_deref();
        let command = match command {
            Ok(c) => c,
            Err(e) => return self.refuse(receipt, &e.to_string()),
        };
        if let ClientCommand::Connect {
            accept_version,
            authorization,
            heart_beat,
        } = command
        {
            return self.connect(receipt, accept_version, authorization, heart_beat);
        }
        let Some(principal) = &self.principal else {
            let why = format!("Unauthorized: CONNECT expected before {}", command.name());
            return self.refuse(receipt, &why);
        };
        if principal.require(Role::User).is_err() {
            return self.refuse(receipt, "Forbidden: role USER required");
        }
        match command {
            ClientCommand::Subscribe { id, destination } => {
                self.subscribe(receipt, id, destination)
            }
            ClientCommand::Unsubscribe { id } => {
                if let Some(i) = self.subscriptions.iter().position(|s| *s.id == *id) {
                    let s = self.subscriptions.swap_remove(i);
                    self.ctx.hub.unsubscribe(&s.destination, self.conn, &s.id);
                    metrics::stomp_subscriptions(-1);
                }
                self.receipt(receipt);
            }
            ClientCommand::Send { destination, body } => self.send(receipt, &destination, body),
            ClientCommand::Disconnect => {
                self.disconnect = Some(receipt.map(str::to_string));
                self.finish_disconnect();
            }
            // Every subscription is auto-acknowledged; ACK/NACK change nothing.
            ClientCommand::Ack => self.receipt(receipt),
            ClientCommand::Transaction(_) => self.refuse(receipt, "transactions are not supported"),
            ClientCommand::Connect { .. } => {}
        }
    }

    /// DISCONNECT: once every in-flight SEND is answered, the receipt and a normal close.
    fn finish_disconnect(&mut self) {
        if !self.sends.is_empty() || self.closed {
            return;
        }
        if let Some(receipt) = self.disconnect.take() {
            self.receipt(receipt.as_deref());
            self.out.close(CloseReason::normal());
            self.closed = true;
        }
    }

    fn connect(
        &mut self,
        receipt: Option<&str>,
        accept_version: Option<String>,
        authorization: Option<String>,
        heart_beat: Option<String>,
    ) {
        if self.principal.is_some() {
            return self.refuse(receipt, "already connected");
        }
        if let Some(versions) = accept_version {
            if !versions
                .split(',')
                .any(|v| matches!(v.trim(), "1.2" | "1.1" | "1.0"))
            {
                let why = format!("unsupported STOMP version {versions:?}: this server speaks 1.2");
                return self.refuse(receipt, &why);
            }
        }
        let Some(auth) = authorization else {
            return self.refuse(receipt, "Unauthorized: missing Authorization header");
        };
        let token = match auth.trim().split_once(' ') {
            Some((scheme, token))
                if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
            {
                token.trim().to_string()
            }
            _ => {
                return self.refuse(
                    receipt,
                    "Unauthorized: Authorization header must be 'Bearer <access token>'",
                )
            }
        };
        if let Err(e) = negotiate_heartbeat(
            heart_beat.as_deref(),
            SERVER_HEARTBEAT_MS,
            SERVER_HEARTBEAT_MS,
        ) {
            return self.refuse(receipt, &e.to_string());
        }
        let authenticated = self.ctx.backend.clone().authenticate(token);
        let receipt = receipt.map(str::to_string);
        self.job = Some(Box::pin(async move {
            let result = authenticated.await;
            Done::Authenticated {
                receipt,
                heart_beat,
                result,
            }
        }));
    }

    fn on_authenticated(
        &mut self,
        receipt: Option<String>,
        heart_beat: Option<String>,
        result: Result<Principal, String>,
    ) {
        let principal = match result {
            Ok(p) => p,
            Err(reason) => {
                return self.refuse(receipt.as_deref(), &format!("Unauthorized: {reason}"))
            }
        };
        if principal.require(Role::User).is_err() {
            return self.refuse(receipt.as_deref(), "Forbidden: role USER required");
        }
        if let Err(e) = self.ctx.hub.register(
            self.conn,
            principal.user_id,
            principal.session_id,
            &self.out,
        ) {
            return self.refuse(receipt.as_deref(), &e.to_string());
        }
        let sid = principal.session_id;
        self.principal = Some(Box::new(principal));
        // A logout that raced with this CONNECT was published before the registration and
        // would be missed: check the login session once more now that revocations reach us.
        let ended = sid.map(|sid| self.ctx.backend.clone().is_session_ended(sid));
        self.job = Some(Box::pin(async move {
            let ended = match ended {
                Some(ended) => ended.await,
                None => false,
            };
            Done::SessionChecked {
                receipt,
                heart_beat,
                ended,
            }
        }));
    }

    fn on_session_checked(
        &mut self,
        receipt: Option<String>,
        heart_beat: Option<String>,
        ended: bool,
    ) {
        if ended {
            return self.refuse(receipt.as_deref(), "Unauthorized: token revoked");
        }
        let Some(principal) = &self.principal else {
            return;
        };
        let (send_ms, expect_ms, heart_beat) = match negotiate_heartbeat(
            heart_beat.as_deref(),
            SERVER_HEARTBEAT_MS,
            SERVER_HEARTBEAT_MS,
        ) {
            Ok(hb) => hb,
            Err(e) => return self.refuse(receipt.as_deref(), &e.to_string()),
        };
        self.send_frame(
            &Frame::new(Command::Connected)
                .with_header("version", "1.2")
                .with_header("heart-beat", heart_beat)
                .with_header("server", SERVER_NAME)
                // Usernames may hold line breaks; CONNECTED headers are not escaped.
                .with_header("user-name", printable(&principal.username)),
        );
        tracing::debug!(
            "stomp connection {} authenticated as {}",
            self.conn,
            principal.username
        );
        self.timer = None;
        self.connected = true;
        metrics::stomp_sessions(1);
        if send_ms > 0 || expect_ms > 0 {
            let hb = HeartBeat {
                send_every_ms: u64::from(send_ms),
                expect_every_ms: u64::from(expect_ms),
                last_in_ms: now_ms(),
            };
            self.timer = Some(Box::pin(sleep(tick_period(&hb))));
            self.heart_beat = Some(hb);
        }
    }

    fn subscribe(&mut self, receipt: Option<&str>, id: String, destination: String) {
        if self.subscriptions.iter().any(|s| *s.id == *id) {
            return self.refuse(
                receipt,
                &format!("subscription id '{id}' is already in use"),
            );
        }
        let limits = self.ctx.limits;
        if self.subscriptions.len() >= limits.max_subscriptions {
            let why = format!(
                "too many subscriptions: limit is {}",
                limits.max_subscriptions
            );
            return self.refuse(receipt, &why);
        }
        let parsed = match Destination::parse(&destination) {
            Ok(d) => d,
            Err(e) => return self.refuse(receipt, &e.to_string()),
        };
        let canonical = parsed.as_string();
        let same = self
            .subscriptions
            .iter()
            .filter(|s| *s.destination == *canonical)
            .count();
        if same >= limits.max_subscriptions_per_destination {
            let why = format!(
                "too many subscriptions to {canonical} on one connection: limit is {}",
                limits.max_subscriptions_per_destination
            );
            return self.refuse(receipt, &why);
        }
        let Some(principal) = self.principal.as_deref().cloned() else {
            return;
        };
        let receipt = receipt.map(str::to_string);
        if let Destination::Broker(_) = parsed {
            return self.on_authorized(receipt, id, canonical, Ok(()));
        }
        let authorized = self
            .ctx
            .backend
            .clone()
            .authorize_subscription(principal, parsed);
        self.job = Some(Box::pin(async move {
            let result = authorized.await;
            Done::Authorized {
                receipt,
                id,
                destination: canonical,
                result,
            }
        }));
    }

    fn on_authorized(
        &mut self,
        receipt: Option<String>,
        id: String,
        destination: String,
        result: Result<(), DestinationError>,
    ) {
        if let Err(e) = result {
            return self.refuse(receipt.as_deref(), &e.to_string());
        }
        if let Err(e) = self
            .ctx
            .hub
            .subscribe(&destination, self.conn, &id, &self.out)
        {
            return self.refuse(receipt.as_deref(), &e.to_string());
        }
        self.subscriptions.push(Subscription {
            id: Arc::from(id.as_str()),
            destination: Arc::from(destination.as_str()),
        });
        metrics::stomp_subscriptions(1);
        self.receipt(receipt.as_deref());
    }

    fn send(&mut self, receipt: Option<&str>, destination: &str, body: Bytes) {
        let parsed = match Destination::parse_for_send(destination) {
            Ok(d) => d,
            Err(e) => return self.refuse(receipt, &e.to_string()),
        };
        match parsed {
            Destination::PubMessages => self.create_message(receipt, body),
            Destination::Broker(_) => {
                if !self.take_token() {
                    let why = format!(
                        "SEND {destination} refused: more than {} messages per second",
                        self.ctx.limits.broker_rate
                    );
                    return self.refuse(receipt, &why);
                }
                // The fan-out is behind: the session reads nothing more until it caught up
                // (TCP holds the publisher back), or refuses once the send-time limit passed.
                if let Some(wait) = self.ctx.backend.fanout_ready() {
                    let receipt = receipt.map(str::to_string);
                    let since = now_ms();
                    self.job = Some(Box::pin(async move {
                        let result = wait.await;
                        Done::FanoutReady {
                            receipt,
                            destination: parsed,
                            body,
                            waited_ms: now_ms().saturating_sub(since),
                            result,
                        }
                    }));
                    return;
                }
                self.broker_send(receipt, &parsed, &body)
            }
            Destination::ChannelMessages(_) | Destination::ChannelMessageEvents(_) => {
                let e = DestinationError::ServerOnly {
                    destination: parsed.as_string(),
                };
                self.refuse(receipt, &e.to_string())
            }
        }
    }

    fn broker_send(&mut self, receipt: Option<&str>, destination: &Destination, body: &Bytes) {
        let max = self.ctx.limits.broker_max_body;
        match self.ctx.backend.broker_send(destination, body, max) {
            Ok(()) => self.receipt(receipt),
            Err(e) => self.refuse(receipt, &e.to_string()),
        }
    }

    fn take_token(&mut self) -> bool {
        let rate = f64::from(self.ctx.limits.broker_rate);
        let now = now_ms();
        let b = &mut self.bucket;
        if b.credit >= 1.0 {
            b.credit -= 1.0;
            return true;
        }
        b.tokens = (b.tokens + (now.saturating_sub(b.last_ms) as f64) * rate / 1000.0).min(rate);
        b.last_ms = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// `SEND /pub/messages`: the same service call as `POST /api/messages` without files.
    /// Queueing the message is a job (the session reads no further frame until it is
    /// queued, which fixes the order); waiting for its commit is not: up to
    /// `max_in_flight_sends` wait at once, answered in order.
    fn create_message(&mut self, receipt: Option<&str>, body: Bytes) {
        let Some(principal) = self.principal.as_deref().cloned() else {
            return;
        };
        // The same parsing as REST bodies: a JSON object, not any JSON a derive would take.
        let request: MessageCreateRequest = match crate::net::request::parse_json(&body) {
            Ok(r) => r,
            Err(e) => {
                let why = format!("malformed MessageCreateRequest JSON: {e}");
                return self.refuse_send(receipt.map(str::to_string), &why);
            }
        };
        let submitted = self.ctx.backend.clone().submit_message(principal, request);
        let receipt = receipt.map(str::to_string);
        self.job = Some(Box::pin(async move {
            let result = submitted.await;
            Done::Submitted { receipt, result }
        }));
    }

    fn on_submitted(&mut self, receipt: Option<String>, result: Result<Committed, String>) {
        match result {
            Ok(committed) => self.sends.push_back(Box::pin(async move {
                let result = committed.await.map_err(|why| send_refused(&why));
                Sent { receipt, result }
            })),
            Err(why) => self.refuse_send(receipt, &why),
        }
    }

    /// Refuses a `SEND /pub/messages` after the answers to the SENDs before it.
    fn refuse_send(&mut self, receipt: Option<String>, why: &str) {
        let message = send_refused(why);
        if self.sends.is_empty() {
            return self.refuse(receipt.as_deref(), &message);
        }
        self.send_refused = true;
        self.sends
            .push_back(Box::pin(futures_util::future::ready(Sent {
                receipt,
                result: Err(message),
            })));
    }

    fn on_done(&mut self, done: Done) {
        match done {
            Done::Authenticated {
                receipt,
                heart_beat,
                result,
            } => self.on_authenticated(receipt, heart_beat, result),
            Done::SessionChecked {
                receipt,
                heart_beat,
                ended,
            } => self.on_session_checked(receipt, heart_beat, ended),
            Done::Authorized {
                receipt,
                id,
                destination,
                result,
            } => self.on_authorized(receipt, id, destination, result),
            Done::Submitted { receipt, result } => self.on_submitted(receipt, result),
            Done::FanoutReady {
                receipt,
                destination,
                body,
                waited_ms,
                result,
            } => match result {
                Ok(()) => {
                    let rate = f64::from(self.ctx.limits.broker_rate);
                    // (At most 10 s worth, the default send-time limit a wait lasts at most.)
                    self.bucket.credit =
                        (self.bucket.credit + waited_ms as f64 * rate / 1000.0).min(rate * 10.0);
                    self.broker_send(receipt.as_deref(), &destination, &body)
                }
                Err(why) => {
                    let why = format!("SEND {} refused: {why}", destination.as_string());
                    self.refuse(receipt.as_deref(), &why)
                }
            },
        }
    }

    /// Timers: the CONNECT deadline, then heart-beats (send ours, watch the client's).
    fn on_tick(&mut self) {
        let Some(hb) = &self.heart_beat else {
            if self.principal.is_none() {
                self.refuse(None, "CONNECT frame expected within 60 seconds");
            }
            self.timer = None;
            return;
        };
        let now = now_ms();
        let period = tick_period(hb);
        if hb.expect_every_ms > 0
            && now.saturating_sub(hb.last_in_ms) > hb.expect_every_ms * HEARTBEAT_GRACE
        {
            let ms = now.saturating_sub(hb.last_in_ms);
            return self.refuse(
                None,
                &format!("heart-beat timeout: nothing received from the client for {ms} ms"),
            );
        }
        if hb.send_every_ms > 0
            && self.out.idle_ms(now) + period.as_millis() as u64 >= hb.send_every_ms
        {
            self.out.push_encoded(b"\n");
        }
        self.out.check_age(now);
        if let Some(t) = self.timer.as_mut() {
            t.as_mut().reset(tokio::time::Instant::now() + period);
        }
    }
}

fn send_refused(why: &str) -> String {
    format!("SEND /pub/messages refused: {why}")
}

/// A quarter of the shortest heart-beat interval (at least 100 ms).
fn tick_period(hb: &HeartBeat) -> Duration {
    let shortest = [hb.send_every_ms, hb.expect_every_ms]
        .into_iter()
        .filter(|d| *d > 0)
        .min()
        .unwrap_or(3_600_000);
    Duration::from_millis((shortest / 4).max(100))
}

impl Session for StompSession {
    fn on_message(&mut self, message: Bytes) {
        if let Some(hb) = self.heart_beat.as_mut() {
            hb.last_in_ms = now_ms();
        }
        if self.closed {
            return;
        }
        self.buf.extend_from_slice(&message);
        self.process();
    }

    fn poll_work(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut progress = false;
        if let Some(job) = self.job.as_mut() {
            if let Poll::Ready(done) = job.as_mut().poll(cx) {
                self.job = None;
                if !self.closed {
                    self.on_done(done);
                }
                progress = true;
            }
        }
        while let Poll::Ready(Some(sent)) = self.sends.poll_next_unpin(cx) {
            progress = true;
            match sent.result {
                Ok(()) => self.receipt(sent.receipt.as_deref()),
                Err(why) => self.refuse(sent.receipt.as_deref(), &why),
            }
        }
        if progress {
            self.finish_disconnect();
        }
        if let Some(timer) = self.timer.as_mut() {
            if timer.as_mut().poll(cx).is_ready() {
                self.on_tick();
                progress = true;
            }
        }
        if progress && !self.closed {
            self.process();
        }
        if progress {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    fn busy(&self) -> bool {
        self.job.is_some()
            || self.send_refused
            || self.sends.len() >= self.ctx.limits.max_in_flight_sends
    }

    fn on_close(&mut self, _reason: &CloseReason) {
        let hub = &self.ctx.hub;
        metrics::stomp_subscriptions(-(self.subscriptions.len() as i64));
        for s in self.subscriptions.drain(..) {
            hub.unsubscribe(&s.destination, self.conn, &s.id);
        }
        if std::mem::take(&mut self.connected) {
            metrics::stomp_sessions(-1);
        }
        if let Some(p) = &self.principal {
            hub.unregister(self.conn, p.user_id);
        }
        self.job = None;
        self.sends = FuturesOrdered::new();
        self.timer = None;
        self.closed = true;
        tracing::debug!("stomp connection {} ended", self.conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::conn::{Encoding, QueueLimits};
    use crate::net::stomp::backend::MemoryBackend;
    use std::collections::VecDeque;

    fn context(hub: &Arc<Hub>) -> Arc<StompContext> {
        context_on(hub, MemoryBackend::new(hub.clone()))
    }

    fn context_on(hub: &Arc<Hub>, backend: Arc<MemoryBackend>) -> Arc<StompContext> {
        Arc::new(StompContext {
            backend,
            hub: hub.clone(),
            limits: StompLimits {
                frame: Limits::default(),
                max_subscriptions: 4,
                max_subscriptions_per_destination: 1,
                broker_max_body: 64,
                broker_rate: 10,
                max_in_flight_sends: 1,
            },
        })
    }

    /// Feeds `input` as one client message, drives the session's work as its driver does,
    /// and returns what it sent.
    fn exchange(session: &mut StompSession, out: &Outbound, input: &str) -> String {
        session.on_message(Bytes::copy_from_slice(input.as_bytes()));
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        while session.poll_work(&mut cx).is_ready() {}
        let mut items = VecDeque::new();
        out.take(&mut items);
        items
            .iter()
            .map(|i| String::from_utf8_lossy(&i.to_bytes()).into_owned())
            .collect()
    }

    /// The frames in `sent`, read by the server's own (strict) decoder as a client would.
    fn strictly_decoded(sent: &str) -> Vec<Frame> {
        let mut buf = BytesMut::from(sent.as_bytes());
        let mut decoder = Decoder::new(Limits::default());
        let mut frames = Vec::new();
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(Item::Frame(f))) => frames.push(f),
                Ok(Some(Item::HeartBeat)) => {}
                Ok(None) => return frames,
                Err(e) => panic!("invalid STOMP ({e}): {sent:?}"),
            }
        }
    }

    #[tokio::test]
    async fn the_real_session_runs_on_the_memory_backend() {
        let hub = Hub::new(10, 2);
        let ctx = context(&hub);
        let out = Outbound::new(Encoding::Raw, QueueLimits::default());
        let mut s = StompSession::new(ctx, out.clone());
        let sent = exchange(
            &mut s,
            &out,
            "CONNECT\naccept-version:1.2\nAuthorization:Bearer user:alice\n\n\0",
        );
        assert!(sent.starts_with("CONNECTED\n"), "{sent}");
        assert!(sent.contains("user-name:alice\n"), "{sent}");
        let sent = exchange(
            &mut s,
            &out,
            "SUBSCRIBE\nid:1\ndestination:/sub/room\nreceipt:r1\n\n\0\
             SEND\ndestination:/sub/room\n\nhello\0",
        );
        assert!(sent.starts_with("RECEIPT\nreceipt-id:r1\n"), "{sent}");
        assert!(sent.contains("MESSAGE\nsubscription:1\ndestination:/sub/room\n"));
        assert!(sent.ends_with("\n\nhello\0"), "{sent}");
        assert_eq!(hub.subscriber_count("/sub/room"), 1);
        s.on_close(&CloseReason::normal());
        assert_eq!(hub.subscriber_count("/sub/room"), 0);
        assert_eq!(hub.session_count(), 0);
    }

    #[tokio::test]
    async fn a_broker_send_waits_for_a_lagging_fanout_and_is_refused_if_it_stays_behind() {
        let hub = Hub::new(10, 2);
        let backend = MemoryBackend::new(hub.clone());
        let ctx = context_on(&hub, backend.clone());
        let out = Outbound::new(Encoding::Raw, QueueLimits::default());
        let mut s = StompSession::new(ctx, out.clone());
        exchange(
            &mut s,
            &out,
            "CONNECT\naccept-version:1.2\nAuthorization:Bearer user:alice\n\n\0\
             SUBSCRIBE\nid:1\ndestination:/sub/room\n\n\0",
        );
        // Behind, then caught up: the SEND goes out after the wait.
        backend.set_fanout(Some(Ok(())));
        let sent = exchange(
            &mut s,
            &out,
            "SEND\ndestination:/sub/room\nreceipt:r1\n\nlate\0",
        );
        assert!(sent.contains("MESSAGE\nsubscription:1\n"), "{sent}");
        assert!(sent.ends_with("RECEIPT\nreceipt-id:r1\n\n\0"), "{sent}");
        // Still behind when the wait ends: an ERROR with the reason, nothing published.
        backend.set_fanout(Some(Err("the server is overloaded: 9 ms behind".into())));
        let sent = exchange(
            &mut s,
            &out,
            "SEND\ndestination:/sub/room\nreceipt:r2\n\nlost\0",
        );
        assert!(sent.starts_with("ERROR\n"), "{sent}");
        assert!(sent.contains("receipt-id:r2\n"), "{sent}");
        assert!(
            sent.contains("\n\nSEND /sub/room refused: the server is overloaded: 9 ms behind\0"),
            "{sent}"
        );
        assert!(!sent.contains("MESSAGE"), "{sent}");
        assert!(s.closed);
        // As the driver does (it also settles the process-wide session gauges).
        s.on_close(&CloseReason::normal());
    }

    #[tokio::test]
    async fn an_error_quoting_control_characters_stays_decodable() {
        let hub = Hub::new(10, 2);
        let out = Outbound::new(Encoding::Raw, QueueLimits::default());
        let mut s = StompSession::new(context(&hub), out.clone());
        // serde_json leaves DEL and C1 raw; the UUID error quotes the character.
        let sent = exchange(
            &mut s,
            &out,
            "CONNECT\nAuthorization:Bearer user:alice\n\n\0\
             SEND\ndestination:/pub/messages\n\n{\"content\":\"x\",\"channelId\":\"\u{85}\"}\0",
        );
        let frames = strictly_decoded(&sent);
        assert_eq!(frames[0].command, Command::Connected);
        assert_eq!(frames[0].header("user-name"), Some("alice"));
        let error = frames.last().expect("an ERROR");
        assert_eq!(error.command, Command::Error);
        let message = error.header("message").unwrap_or_default();
        assert!(message.contains("found `\\u{85}`"), "{message}");
        assert!(String::from_utf8_lossy(&error.body).contains("found `\u{85}`"));
        s.on_close(&CloseReason::normal());
    }

    #[tokio::test]
    async fn connected_writes_control_characters_of_a_username_as_escapes() {
        let hub = Hub::new(10, 2);
        let out = Outbound::new(Encoding::Raw, QueueLimits::default());
        let mut s = StompSession::new(context(&hub), out.clone());
        let sent = exchange(
            &mut s,
            &out,
            "CONNECT\nAuthorization:Bearer user:eve%0A%7F%C2%85\n\n\0",
        );
        let connected = &strictly_decoded(&sent)[0];
        assert_eq!(connected.command, Command::Connected);
        assert_eq!(connected.header("user-name"), Some("eve\\n\\u{7f}\\u{85}"));
        s.on_close(&CloseReason::normal());
    }

    #[tokio::test]
    async fn refusals_are_an_error_frame_then_the_close() {
        let hub = Hub::new(10, 2);
        let ctx = context(&hub);
        let private = "/sub/channels.01000000-0000-4000-8000-000000000002.messages";
        for (input, needle) in [
            (
                "SUBSCRIBE\nid:1\ndestination:/sub/x\n\n\0",
                "CONNECT expected",
            ),
            (
                "CONNECT\nAuthorization:Bearer ended:carol\n\n\0",
                "Unauthorized: token revoked",
            ),
            (
                "CONNECT\nAuthorization:Bearer nobody\n\n\0",
                "invalid token",
            ),
        ] {
            let out = Outbound::new(Encoding::Raw, QueueLimits::default());
            let mut s = StompSession::new(ctx.clone(), out.clone());
            let sent = exchange(&mut s, &out, input);
            assert!(
                sent.starts_with("ERROR\n") && sent.contains(needle),
                "{sent}"
            );
            assert!(out.is_closed());
            s.on_close(&CloseReason::normal());
        }
        let out = Outbound::new(Encoding::Raw, QueueLimits::default());
        let mut s = StompSession::new(ctx, out.clone());
        exchange(&mut s, &out, "CONNECT\nAuthorization:Bearer user:bob\n\n\0");
        let sent = exchange(
            &mut s,
            &out,
            &format!("SUBSCRIBE\nid:1\ndestination:{private}\nreceipt:r\n\n\0"),
        );
        assert!(
            sent.contains("receipt-id:r\n") && sent.contains("private"),
            "{sent}"
        );
        assert!(out.is_closed());
        s.on_close(&CloseReason::normal());
        assert_eq!(hub.session_count(), 0);
    }
}
