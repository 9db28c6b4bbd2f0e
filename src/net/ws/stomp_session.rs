//! One STOMP 1.2 session, independent of the transport that carries it.
//!
//! A single task per connection feeds the client's bytes (raw WebSocket messages or SockJS
//! messages, which may split or join frames) into a [`Decoder`] and handles each frame in
//! order, emitting replies into the connection's bounded [`Outbox`]. Authorization happens
//! here, the work itself in the service layer (the same `create_message` as REST). Every
//! refusal is an ERROR frame with a precise `message`, after which the connection closes.

use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::hub::Hub;
use super::outbox::{CloseReason, Outbox};
use super::sockjs::{Service, SessionIo};
use crate::domain::{Event, Role};
use crate::proto::stomp::{
    encode_to_bytes, negotiate_heartbeat, Command, Decoder, Frame, Item, Limits,
};
use crate::security::Principal;
use crate::service::messages::MessageCreateRequest;
use crate::service::Services;

/// Subscriptions one connection may hold.
pub const MAX_SUBSCRIPTIONS: usize = 1000;
/// The server's heart-beat offer: it can send and wants to receive every 10 s (Spring's
/// default); the client's wishes are combined with it as STOMP 1.2 says.
const SERVER_HEARTBEAT_MS: u32 = 10_000;
/// A client that has not sent CONNECT by then is dropped.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
/// A client is considered gone after this many of its heart-beat intervals of silence.
const HEARTBEAT_GRACE: u32 = 3;
/// The `server` header of CONNECTED.
const SERVER_NAME: &str = concat!("discodeit/", env!("CARGO_PKG_VERSION"));

/// What every STOMP session of an endpoint shares.
pub struct StompContext {
    pub services: Arc<Services>,
    pub hub: Arc<Hub>,
    pub limits: Limits,
}

/// The STOMP application as a SockJS [`Service`] (also used for the raw `/ws/websocket`).
pub struct StompService {
    ctx: Arc<StompContext>,
}

impl StompService {
    pub fn new(ctx: Arc<StompContext>) -> Self {
        StompService { ctx }
    }
}

impl Service for StompService {
    fn start(&self, io: SessionIo) {
        let session = StompSession::new(self.ctx.clone(), io.outbox);
        tokio::spawn(session.run(io.inbound));
    }
}

/// The state of one STOMP connection.
struct StompSession {
    ctx: Arc<StompContext>,
    outbox: Outbox,
    conn: u64,
    decoder: Decoder,
    buf: BytesMut,
    principal: Option<Principal>,
    /// Subscription id → destination.
    subscriptions: HashMap<String, String>,
    started: Instant,
    last_inbound: Instant,
    send_every: Duration,
    expect_every: Duration,
}

/// Case-insensitive header lookup, for headers that clients spell differently.
fn header_ci<'a>(frame: &'a Frame, name: &str) -> Option<&'a str> {
    frame
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The channel id of `/sub/channels.{id}.messages`, if `destination` has that shape.
fn channel_of(destination: &str) -> Option<&str> {
    destination
        .strip_prefix("/sub/channels.")?
        .strip_suffix(".messages")
}

impl StompSession {
    fn new(ctx: Arc<StompContext>, outbox: Outbox) -> Self {
        let now = Instant::now();
        StompSession {
            conn: ctx.hub.next_connection_id(),
            decoder: Decoder::new(ctx.limits),
            ctx,
            outbox,
            buf: BytesMut::new(),
            principal: None,
            subscriptions: HashMap::new(),
            started: now,
            last_inbound: now,
            send_every: Duration::ZERO,
            expect_every: Duration::ZERO,
        }
    }

    async fn run(mut self, mut inbound: mpsc::Receiver<Bytes>) {
        // A fixed deadline, not a sleep restarted per message: a chatty client must not
        // postpone the server's heart-beats or the silence check.
        let mut next_tick = tokio::time::Instant::now() + self.tick_period();
        loop {
            tokio::select! {
                msg = inbound.recv() => match msg {
                    Some(bytes) => {
                        self.last_inbound = Instant::now();
                        let was_connected = self.principal.is_some();
                        if self.feed(&bytes).await.is_break() {
                            break;
                        }
                        if !was_connected && self.principal.is_some() {
                            next_tick = tokio::time::Instant::now() + self.tick_period();
                        }
                    }
                    None => break,
                },
                _ = tokio::time::sleep_until(next_tick) => {
                    if self.on_tick().is_break() {
                        break;
                    }
                    next_tick = tokio::time::Instant::now() + self.tick_period();
                }
                _ = self.outbox.closed() => break,
            }
        }
        self.cleanup();
    }

    /// How often timers are checked: until CONNECT, at the CONNECT deadline; then a quarter
    /// of the shortest heart-beat interval (or rarely, without heart-beats).
    fn tick_period(&self) -> Duration {
        if self.principal.is_none() {
            return CONNECT_TIMEOUT.saturating_sub(self.started.elapsed())
                + Duration::from_millis(10);
        }
        let shortest = [self.send_every, self.expect_every]
            .into_iter()
            .filter(|d| !d.is_zero())
            .min();
        match shortest {
            Some(d) => (d / 4).max(Duration::from_millis(100)),
            None => Duration::from_secs(3600),
        }
    }

    fn on_tick(&mut self) -> ControlFlow<()> {
        if self.principal.is_none() {
            if self.started.elapsed() >= CONNECT_TIMEOUT {
                return self.refuse(None, "CONNECT frame expected within 60 seconds");
            }
            return ControlFlow::Continue(());
        }
        if !self.expect_every.is_zero()
            && self.last_inbound.elapsed() > self.expect_every * HEARTBEAT_GRACE
        {
            let ms = self.last_inbound.elapsed().as_millis();
            return self.refuse(
                None,
                &format!("heart-beat timeout: nothing received from the client for {ms} ms"),
            );
        }
        if !self.send_every.is_zero() {
            let margin = self.tick_period();
            if self.outbox.idle_for() + margin >= self.send_every {
                self.outbox.push_bytes(&Bytes::from_static(b"\n"));
            }
        }
        ControlFlow::Continue(())
    }

    /// Appends received bytes and handles every complete frame.
    async fn feed(&mut self, bytes: &[u8]) -> ControlFlow<()> {
        self.buf.extend_from_slice(bytes);
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(None) => return ControlFlow::Continue(()),
                Ok(Some(Item::HeartBeat)) => {}
                Ok(Some(Item::Frame(frame))) => self.handle(frame).await?,
                Err(e) => return self.refuse(None, &e.to_string()),
            }
        }
    }

    fn send(&self, frame: &Frame) {
        self.outbox.push_bytes(&encode_to_bytes(frame));
    }

    /// RECEIPT for a frame that asked for one.
    fn receipt(&self, frame: &Frame) {
        if let Some(r) = frame.header("receipt") {
            self.send(&Frame::new(Command::Receipt).with_header("receipt-id", r));
        }
    }

    /// ERROR with `message`, then close. `frame` is the refused frame, if any (its receipt
    /// id is echoed so the client can match the error).
    fn refuse(&self, frame: Option<&Frame>, message: &str) -> ControlFlow<()> {
        tracing::debug!("stomp connection {} refused: {message}", self.conn);
        let mut error = Frame::new(Command::Error).with_header("message", message);
        if let Some(r) = frame.and_then(|f| f.header("receipt")) {
            error = error.with_header("receipt-id", r);
        }
        let error = error
            .with_header("content-type", "text/plain")
            .body(message.as_bytes().to_vec());
        self.send(&error);
        self.outbox.close(CloseReason::policy(message));
        ControlFlow::Break(())
    }

    async fn handle(&mut self, frame: Frame) -> ControlFlow<()> {
        let command = frame.command;
        if matches!(command, Command::Connect | Command::Stomp) {
            return self.on_connect(&frame).await;
        }
        let Some(principal) = &self.principal else {
            return self.refuse(
                Some(&frame),
                &format!("Unauthorized: CONNECT expected before {command}"),
            );
        };
        if principal.require(Role::User).is_err() {
            return self.refuse(Some(&frame), "Forbidden: role USER required");
        }
        match command {
            Command::Subscribe => self.on_subscribe(&frame).await,
            Command::Unsubscribe => self.on_unsubscribe(&frame),
            Command::Send => self.on_send(&frame).await,
            Command::Disconnect => {
                self.receipt(&frame);
                self.outbox.close(CloseReason::normal());
                ControlFlow::Break(())
            }
            // Every subscription is auto-acknowledged; ACK/NACK change nothing.
            Command::Ack | Command::Nack => {
                self.receipt(&frame);
                ControlFlow::Continue(())
            }
            Command::Begin | Command::Commit | Command::Abort => {
                self.refuse(Some(&frame), "transactions are not supported")
            }
            _ => self.refuse(
                Some(&frame),
                &format!("{command} is a server frame and cannot be sent by a client"),
            ),
        }
    }

    async fn on_connect(&mut self, frame: &Frame) -> ControlFlow<()> {
        if self.principal.is_some() {
            return self.refuse(Some(frame), "already connected");
        }
        if let Some(versions) = frame.header("accept-version") {
            if !versions
                .split(',')
                .any(|v| matches!(v.trim(), "1.2" | "1.1" | "1.0"))
            {
                return self.refuse(
                    Some(frame),
                    &format!("unsupported STOMP version {versions:?}: this server speaks 1.2"),
                );
            }
        }
        let Some(auth) = header_ci(frame, "authorization") else {
            return self.refuse(Some(frame), "Unauthorized: missing Authorization header");
        };
        let token = match auth.trim().split_once(' ') {
            Some((scheme, token))
                if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
            {
                token.trim()
            }
            _ => {
                return self.refuse(
                    Some(frame),
                    "Unauthorized: Authorization header must be 'Bearer <access token>'",
                )
            }
        };
        let principal = match self.ctx.services.authenticate_stomp(token).await {
            Ok(p) => p,
            Err(reason) => return self.refuse(Some(frame), &format!("Unauthorized: {reason}")),
        };
        if principal.require(Role::User).is_err() {
            return self.refuse(Some(frame), "Forbidden: role USER required");
        }
        let (send_ms, expect_ms, heart_beat) = match negotiate_heartbeat(
            frame.header("heart-beat"),
            SERVER_HEARTBEAT_MS,
            SERVER_HEARTBEAT_MS,
        ) {
            Ok(hb) => hb,
            Err(e) => return self.refuse(Some(frame), &e.to_string()),
        };
        let hub = &self.ctx.hub;
        hub.register(
            self.conn,
            principal.user_id,
            principal.session_id,
            &self.outbox,
        );
        // A logout that raced with this CONNECT was published before the registration and
        // would be missed: check the login session once more now that revocations reach us.
        if let Some(sid) = principal.session_id {
            if self
                .ctx
                .services
                .registry
                .is_ended(sid)
                .await
                .unwrap_or(false)
            {
                hub.unregister(self.conn, principal.user_id);
                return self.refuse(Some(frame), "Unauthorized: token revoked");
            }
        }
        self.send_every = Duration::from_millis(u64::from(send_ms));
        self.expect_every = Duration::from_millis(u64::from(expect_ms));
        self.send(
            &Frame::new(Command::Connected)
                .with_header("version", "1.2")
                .with_header("heart-beat", heart_beat)
                .with_header("server", SERVER_NAME)
                .with_header("user-name", principal.username.clone()),
        );
        tracing::debug!(
            "stomp connection {} authenticated as {}",
            self.conn,
            principal.username
        );
        self.principal = Some(principal);
        ControlFlow::Continue(())
    }

    async fn on_subscribe(&mut self, frame: &Frame) -> ControlFlow<()> {
        let Some(id) = frame.header("id") else {
            return self.refuse(Some(frame), "SUBSCRIBE requires an 'id' header");
        };
        let Some(destination) = frame.header("destination") else {
            return self.refuse(Some(frame), "SUBSCRIBE requires a 'destination' header");
        };
        if self.subscriptions.contains_key(id) {
            return self.refuse(
                Some(frame),
                &format!("subscription id '{id}' is already in use"),
            );
        }
        if self.subscriptions.len() >= MAX_SUBSCRIPTIONS {
            return self.refuse(
                Some(frame),
                &format!("too many subscriptions: limit is {MAX_SUBSCRIPTIONS}"),
            );
        }
        if let Err(why) = self.may_subscribe(destination).await {
            return self.refuse(Some(frame), &why);
        }
        self.ctx
            .hub
            .subscribe(destination, self.conn, id, &self.outbox);
        self.subscriptions
            .insert(id.to_string(), destination.to_string());
        self.receipt(frame);
        ControlFlow::Continue(())
    }

    /// `/sub/channels.{id}.messages` needs a PUBLIC channel or membership; other `/sub/...`
    /// destinations are open; anything else does not exist.
    async fn may_subscribe(&self, destination: &str) -> Result<(), String> {
        let Some(principal) = &self.principal else {
            return Err("Unauthorized".into());
        };
        if let Some(raw) = channel_of(destination) {
            let denied = |why: &str| format!("Access denied to {destination}: {why}");
            let id = Uuid::parse_str(raw).map_err(|_| denied("not a channel id"))?;
            let services = &self.ctx.services;
            let channel = match services.channel_row(id).await {
                Ok(c) => c,
                Err(e) if e.status == 404 => return Err(denied("channel not found")),
                Err(e) => return Err(format!("SUBSCRIBE {destination} failed: {e}")),
            };
            return match services
                .require_channel_access(principal.user_id, &channel)
                .await
            {
                Ok(()) => Ok(()),
                Err(e) if e.status == 403 => Err(denied(
                    "the channel is private and you are not a participant",
                )),
                Err(e) => Err(format!("SUBSCRIBE {destination} failed: {e}")),
            };
        }
        if destination.starts_with("/sub/") {
            Ok(())
        } else {
            Err(format!(
                "Unknown destination {destination}: subscriptions must start with /sub/"
            ))
        }
    }

    fn on_unsubscribe(&mut self, frame: &Frame) -> ControlFlow<()> {
        let Some(id) = frame.header("id") else {
            return self.refuse(Some(frame), "UNSUBSCRIBE requires an 'id' header");
        };
        if let Some(destination) = self.subscriptions.remove(id) {
            self.ctx.hub.unsubscribe(&destination, self.conn, id);
        }
        self.receipt(frame);
        ControlFlow::Continue(())
    }

    async fn on_send(&mut self, frame: &Frame) -> ControlFlow<()> {
        let Some(destination) = frame.header("destination") else {
            return self.refuse(Some(frame), "SEND requires a 'destination' header");
        };
        let result = match destination {
            "/pub/messages" => self.create_message(&frame.body).await,
            d if d.starts_with("/pub/") => Err(format!("Unknown destination {d}")),
            d if channel_of(d).is_some() || d.starts_with("/sub/channels.") => Err(format!(
                "SEND {d} refused: channel destinations are written by the server only"
            )),
            d if d.starts_with("/sub/") => match std::str::from_utf8(&frame.body) {
                Ok(body) => {
                    self.ctx.services.bus.publish(Event::BrokerMessage {
                        destination: d.to_string(),
                        body: body.to_string(),
                    });
                    Ok(())
                }
                Err(_) => Err(format!("SEND {d} refused: the body must be UTF-8 text")),
            },
            d => Err(format!(
                "Unknown destination {d}: send to /pub/messages or /sub/..."
            )),
        };
        match result {
            Ok(()) => {
                self.receipt(frame);
                ControlFlow::Continue(())
            }
            Err(why) => self.refuse(Some(frame), &why),
        }
    }

    /// `SEND /pub/messages`: the same service call as `POST /api/messages` without files.
    async fn create_message(&self, body: &[u8]) -> Result<(), String> {
        let refused = |why: &dyn std::fmt::Display| format!("SEND /pub/messages refused: {why}");
        let Some(principal) = &self.principal else {
            return Err(refused(&"Unauthorized"));
        };
        let request: MessageCreateRequest = serde_json::from_slice(body)
            .map_err(|e| refused(&format!("malformed MessageCreateRequest JSON: {e}")))?;
        let request_id = Uuid::new_v4().simple().to_string();
        // Admission first (a full queue stops this session's reading), then the outcome.
        self.ctx
            .services
            .submit_message(principal, request, Vec::new(), request_id)
            .await
            .map_err(|e| refused(&e))?
            .await
            .map(|_| ())
            .map_err(|e| refused(&e))
    }

    /// Forgets the connection everywhere and makes sure the transport closes.
    fn cleanup(&mut self) {
        let hub = &self.ctx.hub;
        for (id, destination) in self.subscriptions.drain() {
            hub.unsubscribe(&destination, self.conn, &id);
        }
        if let Some(p) = &self.principal {
            hub.unregister(self.conn, p.user_id);
        }
        self.outbox.close(CloseReason::normal());
        tracing::debug!("stomp connection {} ended", self.conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_destinations() {
        let id = Uuid::new_v4();
        let d = format!("/sub/channels.{id}.messages");
        assert_eq!(channel_of(&d), Some(id.to_string().as_str()));
        assert_eq!(channel_of("/sub/channels.x"), None);
        assert_eq!(channel_of("/sub/other"), None);
    }
}
