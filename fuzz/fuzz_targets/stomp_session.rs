//! The real STOMP session state machine (decoder, limits, refusals, hub, outbound queues) fed
//! arbitrary frame sequences on two connections, with the in-memory backend.
//!
//! Input: the first byte picks raw mode (the rest is client bytes, split into messages) or
//! structured mode (the rest is a list of operations building well-formed and broken frames).
//! Properties: everything the server sends is valid STOMP; nothing follows an ERROR frame and
//! an ERROR always closes the connection; once every connection is closed the hub holds no
//! session and no subscription.
#![no_main]

use bytes::{Bytes, BytesMut};
use discodeit::net::conn::{CloseReason, Encoding, Outbound, QueueLimits, Session};
use discodeit::net::stomp::backend::MemoryBackend;
use discodeit::net::stomp::hub::Hub;
use discodeit::net::stomp::session::{StompContext, StompLimits, StompSession};
use discodeit::proto::stomp::{Command, Decoder, Item, Limits};
use discodeit_fuzz::chunks;
use libfuzzer_sys::fuzz_target;
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();

/// Channel ids: even first byte = allowed by the memory backend, odd = private.
const OPEN_CHANNEL: &str = "00000000-0000-4000-8000-000000000001";
const PRIVATE_CHANNEL: &str = "01000000-0000-4000-8000-000000000002";

/// One client connection: its session, its queue, and what the server sent so far.
struct Conn {
    session: StompSession,
    out: Arc<Outbound>,
    ended: bool,
    received: BytesMut,
    decoder: Decoder,
    saw_error: bool,
}

impl Conn {
    fn open(ctx: &Arc<StompContext>, encoding: Encoding) -> Conn {
        let out = Outbound::new(encoding, QueueLimits::default());
        Conn {
            session: StompSession::new(ctx.clone(), out.clone()),
            out,
            ended: false,
            received: BytesMut::new(),
            decoder: Decoder::new(Limits {
                max_frame_bytes: 1 << 24,
                max_header_bytes: 1 << 20,
                max_headers: 1000,
            }),
            saw_error: false,
        }
    }

    /// Drives the session's work as its driver would, then reads and checks its output.
    fn settle(&mut self) {
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        for _ in 0..64 {
            if self.ended || self.session.poll_work(&mut cx) == Poll::Pending {
                break;
            }
        }
        self.drain();
    }

    fn drain(&mut self) {
        let mut items = VecDeque::new();
        let closed = self.out.take(&mut items);
        for item in items {
            let bytes = item.to_bytes();
            match self.out.encoding() {
                Encoding::Raw => self.received.extend_from_slice(&bytes),
                // SockJS items are JSON string contents: unescape them the way a client would.
                Encoding::SockJs => {
                    let quoted = format!("\"{}\"", String::from_utf8_lossy(&bytes));
                    let text: String = serde_json::from_str(&quoted)
                        .unwrap_or_else(|e| panic!("SockJS item is not a JSON string: {e}"));
                    self.received.extend_from_slice(text.as_bytes());
                }
            }
        }
        loop {
            match self.decoder.decode(&mut self.received) {
                Ok(Some(Item::Frame(f))) => {
                    assert!(!self.saw_error, "a frame after ERROR: {f:?}");
                    if f.command == Command::Error {
                        self.saw_error = true;
                    }
                }
                Ok(Some(Item::HeartBeat)) => {}
                Ok(None) => break,
                Err(e) => panic!(
                    "the server sent invalid STOMP: {e}: {:?}",
                    String::from_utf8_lossy(&self.received[..self.received.len().min(600)])
                ),
            }
        }
        if self.saw_error {
            assert!(self.out.is_closed(), "ERROR without closing the connection");
        }
        if let Some(reason) = closed {
            self.end(&reason);
        } else if self.out.is_closed() {
            // The driver writes what is queued, then ends the session.
            let reason = self.out.close_reason().unwrap_or_else(CloseReason::normal);
            self.end(&reason);
        }
    }

    fn end(&mut self, reason: &CloseReason) {
        if !self.ended {
            self.ended = true;
            self.session.on_close(reason);
        }
    }

    fn deliver(&mut self, message: &[u8]) {
        if self.ended {
            return;
        }
        // The driver stops reading while the session is busy.
        for _ in 0..64 {
            if !self.session.busy() {
                break;
            }
            self.settle();
        }
        if self.ended {
            return;
        }
        self.session.on_message(Bytes::copy_from_slice(message));
        self.settle();
    }
}

/// Reads the operation stream (zeros once exhausted).
struct Ops<'a>(&'a [u8]);

impl<'a> Ops<'a> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
}

fn frame(command: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{command}\n");
    for (n, v) in headers {
        out.push_str(&format!("{n}:{v}\n"));
    }
    out.push('\n');
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out.push(0);
    out
}

fn receipt(ops: &mut Ops, headers: &mut Vec<(&'static str, String)>) {
    if ops.byte() % 2 == 1 {
        headers.push(("receipt", format!("r{}", ops.byte())));
    }
}

fn destination(ops: &mut Ops) -> String {
    match ops.byte() % 8 {
        0 => format!("/sub/channels.{OPEN_CHANNEL}.messages"),
        1 => format!("/sub/channels.{PRIVATE_CHANNEL}.messages"),
        2 => format!("/sub/channels.{OPEN_CHANNEL}.message-events"),
        3 => format!("/sub/room.{}", ops.byte() % 4),
        4 => "/pub/messages".to_string(),
        5 => "/sub/channels.not-a-uuid.messages".to_string(),
        6 => format!("/sub/{}", "x".repeat(usize::from(ops.byte()) * 2)),
        _ => {
            let n = usize::from(ops.byte() % 16);
            String::from_utf8_lossy(ops.take(n)).replace(['\n', '\r', ':', '\0', '\\'], "_")
        }
    }
}

/// One operation as client bytes (`None`: not a message).
fn build(ops: &mut Ops) -> Vec<u8> {
    let mut headers: Vec<(&'static str, String)> = Vec::new();
    match ops.byte() % 10 {
        0 => {
            let token = match ops.byte() % 6 {
                0 => "Bearer user:alice".to_string(),
                1 => "Bearer user:bob".to_string(),
                2 => "Bearer ended:carol".to_string(),
                3 => "bearer admin:root".to_string(),
                // A username with a line break, DEL and NEL (percent-decoded by the backend).
                4 => "Bearer user:eve%0A%7F%C2%85".to_string(),
                _ => String::from_utf8_lossy(ops.take(12)).replace(['\n', '\r', '\0'], " "),
            };
            if !ops.byte().is_multiple_of(8) {
                headers.push(("Authorization", token));
            }
            match ops.byte() % 4 {
                0 => headers.push(("heart-beat", format!("{},{}", ops.byte(), ops.byte()))),
                1 => headers.push(("heart-beat", "x,1".to_string())),
                _ => {}
            }
            if ops.byte().is_multiple_of(4) {
                headers.push(("accept-version", "2.0".to_string()));
            }
            receipt(ops, &mut headers);
            let cmd = if ops.byte().is_multiple_of(2) {
                "CONNECT"
            } else {
                "STOMP"
            };
            frame(cmd, &headers, b"")
        }
        1 => {
            if !ops.byte().is_multiple_of(8) {
                headers.push(("id", format!("s{}", ops.byte() % 8)));
            }
            headers.push(("destination", destination(ops)));
            receipt(ops, &mut headers);
            frame("SUBSCRIBE", &headers, b"")
        }
        2 => {
            headers.push(("id", format!("s{}", ops.byte() % 8)));
            receipt(ops, &mut headers);
            frame("UNSUBSCRIBE", &headers, b"")
        }
        3 => {
            headers.push(("destination", "/pub/messages".to_string()));
            receipt(ops, &mut headers);
            let body = match ops.byte() % 4 {
                0 => format!(r#"{{"content":"hi","channelId":"{OPEN_CHANNEL}"}}"#).into_bytes(),
                1 => br#"{"content":""}"#.to_vec(),
                2 => b"[1,2]".to_vec(),
                _ => {
                    let n = usize::from(ops.byte() % 32);
                    ops.take(n).to_vec()
                }
            };
            frame("SEND", &headers, &body)
        }
        4 => {
            headers.push(("destination", destination(ops)));
            receipt(ops, &mut headers);
            let n = usize::from(ops.byte());
            let body = ops.take(n % 48).to_vec();
            if ops.byte().is_multiple_of(2) {
                headers.push(("content-length", body.len().to_string()));
            }
            frame("SEND", &headers, &body)
        }
        5 => {
            receipt(ops, &mut headers);
            frame("DISCONNECT", &headers, b"")
        }
        6 => {
            let cmd = ["ACK", "NACK", "BEGIN", "COMMIT", "ABORT"][usize::from(ops.byte() % 5)];
            headers.push(("id", "1".to_string()));
            headers.push(("transaction", "t".to_string()));
            receipt(ops, &mut headers);
            frame(cmd, &headers, b"")
        }
        7 => {
            let n = usize::from(ops.byte() % 32);
            ops.take(n).to_vec()
        }
        8 => b"\n".to_vec(),
        _ => Vec::new(),
    }
}

fuzz_target!(|data: &[u8]| {
    let rt = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
    });
    let _guard = rt.enter();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let hub = Hub::new(3, 2);
    let ctx = Arc::new(StompContext {
        backend: MemoryBackend::new(hub.clone()),
        hub: hub.clone(),
        limits: StompLimits {
            frame: Limits {
                max_frame_bytes: 256,
                max_header_bytes: 128,
                max_headers: 6,
            },
            max_subscriptions: 4,
            max_subscriptions_per_destination: 2,
            broker_max_body: 32,
            broker_rate: 5,
            max_in_flight_sends: 1 + usize::from(mode >> 6),
        },
    });
    let encoding = |b: u8| {
        if b & 2 == 0 {
            Encoding::Raw
        } else {
            Encoding::SockJs
        }
    };
    let mut conns = vec![
        Conn::open(&ctx, encoding(mode)),
        Conn::open(&ctx, Encoding::Raw),
    ];
    if mode & 1 == 0 {
        for chunk in chunks(mode, rest) {
            conns[0].deliver(chunk);
        }
    } else {
        let mut ops = Ops(rest);
        let mut current = 0;
        let mut pending = Vec::new();
        while !ops.0.is_empty() {
            let control = ops.byte();
            match control % 16 {
                // Switch connection, or reopen the current one.
                0 => current = 1 - current,
                1 => {
                    conns[current].end(&CloseReason::normal());
                    conns[current] = Conn::open(&ctx, encoding(ops.byte()));
                }
                _ => {
                    pending.extend(build(&mut ops));
                    // High bit: join with the next operation into one transport message.
                    if control & 0x80 == 0 {
                        conns[current].deliver(&pending);
                        pending.clear();
                    }
                }
            }
        }
        if !pending.is_empty() {
            conns[current].deliver(&pending);
        }
    }
    for c in &mut conns {
        c.settle();
        c.end(&CloseReason::normal());
    }
    assert_eq!(
        hub.session_count(),
        0,
        "a closed connection is still registered"
    );
    let mut destinations: HashSet<String> = HashSet::new();
    destinations.insert(format!("/sub/channels.{OPEN_CHANNEL}.messages"));
    destinations.insert(format!("/sub/channels.{OPEN_CHANNEL}.message-events"));
    for i in 0..4 {
        destinations.insert(format!("/sub/room.{i}"));
    }
    for d in &destinations {
        assert_eq!(hub.subscriber_count(d), 0, "{d} still has subscribers");
    }
});
