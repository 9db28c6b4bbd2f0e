//! The SSE stream driver: one task per stream that owns the socket after the request.
//!
//! It writes the response head itself (hyper's answer was a discarded placeholder), then the
//! queued events as HTTP/1.1 chunks — everything pending at a wake-up in one chunk, one
//! `writev`. It reads only to notice the client leaving (EOF), into the per-thread scratch
//! buffer, so an idle stream holds no buffers. When the queue is closed it ends the body: a
//! comment with the reason (so a client that reads it knows why), the last chunk, then the
//! socket is shut down. A stream that cannot drain that within the close timeout is dropped.

use bytes::Bytes;
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

use crate::net::conn::{observe, CloseKind, CloseReason, Framing, Item, Outbound, Writer};
use crate::telemetry::metrics::Transport;

/// How long a closing stream may take to flush its last bytes.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);
/// Loop turns before the task yields to others even if it could go on.
const MAX_TURNS: usize = 64;

/// The response head (HTTP/1.1, chunked, closed after the stream).
pub fn response_head(request_id: &str) -> Bytes {
    let date = httpdate_now();
    Bytes::from(format!(
        "HTTP/1.1 200 OK\r\n\
         content-type: text/event-stream;charset=UTF-8\r\n\
         cache-control: no-cache\r\n\
         x-accel-buffering: no\r\n\
         transfer-encoding: chunked\r\n\
         connection: close\r\n\
         discodeit-request-id: {request_id}\r\n\
         date: {date}\r\n\r\n"
    ))
}

fn httpdate_now() -> String {
    chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

/// The last bytes of a stream: a comment saying why, then the terminating chunk.
fn trailer(reason: &CloseReason) -> Bytes {
    let comment = format!(": closed {} {}\n\n", reason.kind.as_str(), reason.text);
    Bytes::from(format!("{:x}\r\n{comment}\r\n0\r\n\r\n", comment.len()))
}

/// Runs one stream to its end; returns why it ended.
pub async fn run(stream: TcpStream, head: Bytes, out: Arc<Outbound>) -> CloseReason {
    observe::opened(Transport::Sse);
    let mut writer = Writer::new(Framing::Chunked);
    writer.push_raw(head);
    let mut d = Driver {
        stream,
        out,
        writer,
        taken: VecDeque::new(),
        closing: None,
        reason: None,
        done: false,
    };
    poll_fn(|cx| d.poll(cx)).await;
    let _ = d.stream.shutdown().await;
    let reason = d
        .reason
        .unwrap_or_else(|| CloseReason::new(CloseKind::Client, 1006, "connection closed"));
    d.out.close(reason.clone());
    if d.closing.is_none() {
        observe::closed(Transport::Sse, &reason);
    }
    reason
}

struct Driver {
    stream: TcpStream,
    out: Arc<Outbound>,
    writer: Writer,
    taken: VecDeque<Item>,
    closing: Option<Pin<Box<Sleep>>>,
    reason: Option<CloseReason>,
    done: bool,
}

impl Driver {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        for _ in 0..MAX_TURNS {
            let mut progress = self.read(cx);
            progress |= self.take(cx);
            progress |= self.write(cx);
            if let Some(deadline) = self.closing.as_mut() {
                if self.writer.is_empty() || deadline.as_mut().poll(cx).is_ready() {
                    self.done = true;
                }
            }
            if self.done {
                return Poll::Ready(());
            }
            if !progress {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Reads and discards whatever the client sends; EOF or an error ends the stream.
    fn read(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            match self.stream.poll_read_ready(cx) {
                Poll::Pending => return false,
                Poll::Ready(Err(e)) => {
                    self.end(CloseReason::error(format!("read failed: {e}")));
                    return true;
                }
                Poll::Ready(Ok(())) => {}
            }
            let mut scratch = [0u8; 512];
            match self.stream.try_read(&mut scratch) {
                Ok(0) => {
                    self.end(CloseReason::new(
                        CloseKind::Client,
                        1000,
                        "closed by the client",
                    ));
                    return true;
                }
                Ok(_) => continue,
                // Stale readiness: poll it again so this task is woken by the next bytes
                // (or the client's EOF).
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.end(CloseReason::error(format!("read failed: {e}")));
                    return true;
                }
            }
        }
    }

    fn take(&mut self, cx: &mut Context<'_>) -> bool {
        if self.closing.is_some() {
            return false;
        }
        match self.out.poll_take(cx, &mut self.taken) {
            Poll::Pending => false,
            Poll::Ready(None) => {
                self.writer.extend(&mut self.taken);
                if self.taken.capacity() > 64 {
                    self.taken = VecDeque::new();
                }
                true
            }
            Poll::Ready(Some(reason)) => {
                if reason.discards_queue() {
                    self.writer.discard_unstarted();
                }
                self.writer.push_raw(trailer(&reason));
                // Counted when decided, not when the last bytes finally drained.
                observe::closed(Transport::Sse, &reason);
                self.reason.get_or_insert(reason);
                self.closing = Some(Box::pin(sleep(CLOSE_TIMEOUT)));
                true
            }
        }
    }

    fn write(&mut self, cx: &mut Context<'_>) -> bool {
        if self.writer.is_empty() || self.done {
            return false;
        }
        match self.stream.poll_write_ready(cx) {
            Poll::Pending => false,
            Poll::Ready(Err(e)) => {
                self.end(CloseReason::error(format!("write failed: {e}")));
                true
            }
            Poll::Ready(Ok(())) => match self.writer.write_to(&self.stream) {
                Ok(p) => {
                    if p.message_bytes > 0 {
                        self.out.written(p.message_bytes, self.writer.oldest_ms());
                    }
                    observe::wrote(Transport::Sse, &p);
                    // Blocked: poll the write readiness again, which registers this task.
                    p.wire_bytes > 0 || p.blocked
                }
                Err(e) => {
                    self.end(CloseReason::error(format!("write failed: {e}")));
                    true
                }
            },
        }
    }

    fn end(&mut self, reason: CloseReason) {
        self.out.close(reason.clone());
        self.reason.get_or_insert(reason);
        self.done = true;
    }
}
