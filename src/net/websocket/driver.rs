//! The WebSocket connection driver: one task per connection that owns the socket and does
//! both the reading and the writing.
//!
//! Reading: the socket is read into a per-thread scratch buffer, so an idle connection holds no
//! read buffer at all; bytes of an unfinished frame are kept in a small `BytesMut` that is
//! dropped again once empty. Complete messages go to the [`Session`]; while the session is
//! busy (a frame waits on the database), nothing more is read, which holds the client back
//! through TCP. Writing: when the task wakes, everything queued moves into the [`Writer`] and
//! leaves in as few `writev` calls as possible. Closing: queued frames (an ERROR, say) go out,
//! then the close frame (and SockJS's `c[…]`), then the driver waits briefly for the client's
//! close reply so nothing it sent is answered with a reset.

use bytes::{Bytes, BytesMut};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::{sleep, Sleep};

use super::Wire;
use crate::net::conn::clock::now_ms;
use crate::net::conn::{observe, CloseKind, CloseReason, Framing, Item, Outbound, Session, Writer};
use crate::proto::hixie76;
use crate::proto::sockjs;
use crate::proto::websocket::{self as ws, Event, OpCode};
use crate::telemetry::metrics::Transport;

/// How long a closing connection may take to flush and hear the client's close reply.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);
/// Control frames (pongs) a client may make us queue while it does not read.
const MAX_CONTROL_BACKLOG: usize = 64 * 1024;
/// Loop turns before the task yields to others even if it could go on.
const MAX_TURNS: usize = 64;
/// Per-thread read buffer.
const SCRATCH: usize = 16 * 1024;

thread_local! {
    static SCRATCH_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; SCRATCH]);
}

/// Per-connection settings.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Largest client message (after reassembly).
    pub max_message: usize,
    /// SockJS framing with this heart-beat period; raw WebSocket when `None`.
    pub sockjs_heartbeat: Option<Duration>,
}

/// Runs one WebSocket connection to its end. `early` holds bytes the client sent after its
/// handshake that were already read.
pub async fn run(
    stream: TcpStream,
    early: Bytes,
    wire: Wire,
    out: Arc<Outbound>,
    session: Box<dyn Session>,
    options: Options,
) -> CloseReason {
    let transport = if options.sockjs_heartbeat.is_some() {
        Transport::SockJsWebSocket
    } else {
        Transport::WebSocket
    };
    observe::opened(transport);
    let mut d = Driver::new(stream, early, wire, out, session, options);
    d.transport = transport;
    poll_fn(|cx| d.poll(cx)).await;
    let reason = d
        .final_reason
        .clone()
        .unwrap_or_else(|| CloseReason::new(CloseKind::Client, 1006, "connection lost"));
    d.session.on_close(&reason);
    d.report_close(&reason);
    let _ = d.stream.shutdown().await;
    reason
}

/// The client-frame decoder of the connection's protocol.
enum Input {
    Rfc6455(ws::Decoder),
    Hixie76(hixie76::Decoder),
}

impl Input {
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, (u16, String)> {
        match self {
            Input::Rfc6455(d) => d.decode(buf).map_err(|e| (e.close_code(), e.to_string())),
            Input::Hixie76(d) => match d.decode(buf) {
                Ok(Some(hixie76::Frame::Text(t))) => Ok(Some(Event::Text(Bytes::from(t)))),
                Ok(Some(hixie76::Frame::Close)) => Ok(Some(Event::Close(None))),
                Ok(None) => Ok(None),
                Err(e) => Err((1002, e.to_string())),
            },
        }
    }

    /// A text control message (SockJS `o`, `h`, `c[...]`) framed for the wire.
    fn text_frame(&self, text: &[u8]) -> Bytes {
        match self {
            Input::Rfc6455(_) => ws::encode_frame(OpCode::Text, text),
            Input::Hixie76(_) => hixie76::encode_text(&String::from_utf8_lossy(text)),
        }
    }

    fn close_frame(&self, code: u16, text: &str) -> Bytes {
        match self {
            Input::Rfc6455(_) => {
                let code = if ws::valid_close_code(code) {
                    code
                } else {
                    1000
                };
                ws::close_frame(code, text)
            }
            Input::Hixie76(_) => Bytes::from_static(&hixie76::CLOSE_FRAME),
        }
    }
}

struct Driver {
    transport: Transport,
    stream: TcpStream,
    out: Arc<Outbound>,
    writer: Writer,
    taken: VecDeque<Item>,
    decoder: Input,
    inbuf: BytesMut,
    /// Client messages not yet handed to the busy session.
    inbox: VecDeque<Bytes>,
    session: Box<dyn Session>,
    sockjs: Option<Duration>,
    heartbeat: Option<Pin<Box<Sleep>>>,
    last_write_ms: u64,
    /// Set once the close frame is queued.
    closing: Option<Pin<Box<Sleep>>>,
    /// The close was counted (when it was decided, not when the socket went).
    reported: bool,
    close_queued: bool,
    client_closed: bool,
    final_reason: Option<CloseReason>,
    done: bool,
}

enum Step {
    Progress,
    Idle,
}

impl Driver {
    fn new(
        stream: TcpStream,
        early: Bytes,
        wire: Wire,
        out: Arc<Outbound>,
        session: Box<dyn Session>,
        options: Options,
    ) -> Driver {
        let sockjs_framing = options.sockjs_heartbeat.is_some();
        let (framing, decoder, prelude) = match wire {
            Wire::Rfc6455 => (
                if sockjs_framing {
                    Framing::SockJsWebSocket
                } else {
                    Framing::WebSocket
                },
                Input::Rfc6455(ws::Decoder::new(options.max_message)),
                None,
            ),
            Wire::Hixie76 { challenge } => (
                if sockjs_framing {
                    Framing::SockJsHixie76
                } else {
                    Framing::Hixie76
                },
                Input::Hixie76(hixie76::Decoder::new(options.max_message)),
                Some(challenge),
            ),
        };
        let mut writer = Writer::new(framing);
        if let Some(p) = prelude {
            writer.push_raw(p);
        }
        let heartbeat = options.sockjs_heartbeat.map(|hb| {
            writer.push_raw(decoder.text_frame(sockjs::OPEN));
            Box::pin(sleep(hb))
        });
        Driver {
            transport: Transport::WebSocket,
            stream,
            out,
            writer,
            taken: VecDeque::new(),
            decoder,
            inbuf: BytesMut::from(&early[..]),
            inbox: VecDeque::new(),
            session,
            sockjs: options.sockjs_heartbeat,
            heartbeat,
            last_write_ms: now_ms(),
            closing: None,
            reported: false,
            close_queued: false,
            client_closed: false,
            final_reason: None,
            done: false,
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        for _ in 0..MAX_TURNS {
            if self.done {
                return Poll::Ready(());
            }
            let mut progress = false;
            if self.session.poll_work(cx).is_ready() {
                progress = true;
            }
            progress |= matches!(self.input(cx), Step::Progress);
            progress |= matches!(self.take(cx), Step::Progress);
            progress |= matches!(self.write(cx), Step::Progress);
            progress |= matches!(self.timers(cx), Step::Progress);
            if self.done {
                return Poll::Ready(());
            }
            if self.closing.is_some() && self.writer.is_empty() && self.client_closed {
                self.done = true;
                return Poll::Ready(());
            }
            if !progress {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Hands buffered input to the session and reads more while it can take it.
    fn input(&mut self, cx: &mut Context<'_>) -> Step {
        let mut step = self.deliver();
        while !self.session.busy() && self.inbox.is_empty() && !self.done {
            match self.stream.poll_read_ready(cx) {
                Poll::Pending => break,
                Poll::Ready(Err(e)) => {
                    self.end(CloseReason::error(format!("read failed: {e}")));
                    return Step::Progress;
                }
                Poll::Ready(Ok(())) => {}
            }
            let read = SCRATCH_BUF.with_borrow_mut(|buf| match self.stream.try_read(buf) {
                Ok(0) => Ok(None),
                Ok(n) => {
                    self.inbuf.extend_from_slice(&buf[..n]);
                    Ok(Some(n))
                }
                Err(e) => Err(e),
            });
            match read {
                Ok(Some(_)) => {
                    step = Step::Progress;
                    if matches!(self.deliver(), Step::Progress) {
                        step = Step::Progress;
                    }
                }
                Ok(None) => {
                    // EOF: after our close, that is the client's answer; else it went away.
                    self.client_closed = true;
                    if self.closing.is_none() {
                        self.end(CloseReason::new(
                            CloseKind::Client,
                            1006,
                            "connection closed by the client",
                        ));
                    } else if self.writer.is_empty() {
                        self.done = true;
                    }
                    return Step::Progress;
                }
                // The readiness was stale (tokio clears it now): poll it again, which
                // registers this task for the next bytes. Breaking out here instead left the
                // connection deaf until something else woke it: a CONNECT sent a moment after
                // the upgrade, or a publisher's next SEND, was never read.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.end(CloseReason::error(format!("read failed: {e}")));
                    return Step::Progress;
                }
            }
        }
        if self.inbuf.is_empty() && self.inbuf.capacity() > 0 {
            // Idle connections keep no read buffer.
            self.inbuf = BytesMut::new();
        }
        step
    }

    /// Decodes buffered bytes and delivers messages while the session is not busy.
    fn deliver(&mut self) -> Step {
        let mut step = Step::Idle;
        loop {
            while !self.session.busy() {
                let Some(m) = self.inbox.pop_front() else {
                    break;
                };
                if self.closing.is_none() {
                    self.session.on_message(m);
                }
                step = Step::Progress;
            }
            if self.session.busy() || !self.inbox.is_empty() || self.done {
                return step;
            }
            match self.decoder.decode(&mut self.inbuf) {
                Ok(None) => return step,
                Ok(Some(event)) => {
                    step = Step::Progress;
                    self.on_event(event);
                }
                Err((code, text)) => {
                    step = Step::Progress;
                    self.inbuf.clear();
                    if self.closing.is_none() {
                        self.begin_close(CloseReason::new(CloseKind::Policy, code, text));
                    } else {
                        self.client_closed = true;
                    }
                    return step;
                }
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Text(payload) | Event::Binary(payload) => {
                if self.closing.is_some() {
                    return;
                }
                if self.sockjs.is_none() {
                    self.inbox.push_back(payload);
                    return;
                }
                let parsed = std::str::from_utf8(&payload)
                    .ok()
                    .map(sockjs::parse_ws_message);
                match parsed {
                    Some(Ok(messages)) => {
                        self.inbox
                            .extend(messages.into_iter().map(|m| Bytes::from(m.into_bytes())));
                    }
                    // SockJS: broken JSON ends the connection at once.
                    _ => self.end(CloseReason::new(
                        CloseKind::Policy,
                        1002,
                        "broken SockJS JSON from the client",
                    )),
                }
            }
            Event::Ping(payload) => {
                if self.writer.raw_backlog() > MAX_CONTROL_BACKLOG {
                    self.out.close(CloseReason::slow_bytes(MAX_CONTROL_BACKLOG));
                    return;
                }
                self.writer
                    .push_raw(ws::encode_frame(OpCode::Pong, &payload));
            }
            Event::Pong(_) => {}
            Event::Close(status) => {
                self.client_closed = true;
                if self.closing.is_none() {
                    let code = status.as_ref().map_or(1000, |(c, _)| *c);
                    let mut reason = CloseReason::normal();
                    reason.code = code;
                    self.out.close(reason.clone());
                    self.begin_close(reason);
                }
            }
        }
    }

    /// Moves queued items into the writer; a close reason starts the close.
    fn take(&mut self, cx: &mut Context<'_>) -> Step {
        if self.closing.is_some() {
            return Step::Idle;
        }
        match self.out.poll_take(cx, &mut self.taken) {
            Poll::Pending => Step::Idle,
            Poll::Ready(None) => {
                self.writer.extend(&mut self.taken);
                if self.taken.capacity() > 64 {
                    self.taken = VecDeque::new();
                }
                Step::Progress
            }
            Poll::Ready(Some(reason)) => {
                self.begin_close(reason);
                Step::Progress
            }
        }
    }

    fn write(&mut self, cx: &mut Context<'_>) -> Step {
        if self.writer.is_empty() || self.done {
            return Step::Idle;
        }
        match self.stream.poll_write_ready(cx) {
            Poll::Pending => Step::Idle,
            Poll::Ready(Err(e)) => {
                self.end(CloseReason::error(format!("write failed: {e}")));
                Step::Progress
            }
            Poll::Ready(Ok(())) => match self.writer.write_to(&self.stream) {
                Ok(p) => {
                    if p.message_bytes > 0 {
                        self.out.written(p.message_bytes, self.writer.oldest_ms());
                    }
                    observe::wrote(self.transport, &p);
                    // Blocked: poll the write readiness again (it registers this task for
                    // when the socket drains), even when the readiness was stale and nothing
                    // was written.
                    if p.wire_bytes > 0 || p.blocked {
                        self.last_write_ms = now_ms();
                        Step::Progress
                    } else {
                        Step::Idle
                    }
                }
                Err(e) => {
                    self.end(CloseReason::error(format!("write failed: {e}")));
                    Step::Progress
                }
            },
        }
    }

    fn timers(&mut self, cx: &mut Context<'_>) -> Step {
        if let Some(deadline) = self.closing.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                self.done = true;
                return Step::Progress;
            }
        }
        let (Some(period), Some(timer)) = (self.sockjs, self.heartbeat.as_mut()) else {
            return Step::Idle;
        };
        if timer.as_mut().poll(cx).is_pending() {
            return Step::Idle;
        }
        let idle = Duration::from_millis(now_ms().saturating_sub(self.last_write_ms));
        if idle + Duration::from_millis(50) >= period && self.closing.is_none() {
            let h = self.decoder.text_frame(sockjs::HEARTBEAT);
            self.writer.push_raw(h);
            timer.as_mut().reset(tokio::time::Instant::now() + period);
        } else {
            timer
                .as_mut()
                .reset(tokio::time::Instant::now() + period.saturating_sub(idle));
        }
        Step::Progress
    }

    /// Queues the close frames (after a partly written frame, if any) and starts the
    /// close deadline.
    fn begin_close(&mut self, reason: CloseReason) {
        if self.closing.is_some() {
            return;
        }
        if reason.discards_queue() {
            self.writer.discard_unstarted();
        }
        if !self.close_queued {
            if self.sockjs.is_some() {
                let c = sockjs::close_frame(reason.code, &reason.text);
                let frame = self.decoder.text_frame(c.as_bytes());
                self.writer.push_raw(frame);
            }
            let close = self.decoder.close_frame(reason.code, &reason.text);
            self.writer.push_raw(close);
            self.close_queued = true;
        }
        self.out.close(reason.clone());
        self.report_close(&reason);
        self.final_reason.get_or_insert(reason);
        self.closing = Some(Box::pin(sleep(CLOSE_TIMEOUT)));
    }

    /// Counts the close once, when it is decided: a slow consumer is counted (and logged)
    /// as soon as it is dropped, not after its close frame finally drained.
    fn report_close(&mut self, reason: &CloseReason) {
        if !std::mem::replace(&mut self.reported, true) {
            observe::closed(self.transport, reason);
        }
    }

    /// Ends at once (the socket failed or the client is gone).
    fn end(&mut self, reason: CloseReason) {
        self.out.close(reason.clone());
        self.report_close(&reason);
        self.final_reason.get_or_insert(reason);
        self.done = true;
    }
}
