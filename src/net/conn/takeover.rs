//! Taking a connection out of hyper once a realtime response starts.
//!
//! hyper parses every request and runs the router. When a handler answers a WebSocket
//! upgrade or opens an SSE stream, it registers a [`Handoff`] on the request's [`Takeover`]:
//! hyper finishes that one response (the 101 it writes itself; for a stream, a placeholder it
//! writes into the void while the handoff writes the real head), the server takes the socket
//! back with `into_parts`, and the handoff runs the project's own driver in a fresh, small
//! task. Nothing of hyper's per-connection state (8 KiB buffers, the boxed service future)
//! outlives the handshake.

use bytes::Bytes;
use futures_util::future::BoxFuture;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::net::shards::lock;

/// What runs with the socket after hyper is done with it: the raw stream and any bytes
/// hyper had already read past the request.
pub type Handoff = Box<dyn FnOnce(TcpStream, Bytes) -> BoxFuture<'static, ()> + Send>;

struct Shared {
    /// hyper's write buffer is known to be empty: its last call was a flush after its writes.
    flushed: AtomicBool,
    /// Swallow what hyper writes from now on (its placeholder response).
    mute: AtomicBool,
    handoff: Mutex<Option<Handoff>>,
}

/// The per-connection handle a realtime handler uses to take the socket (a request
/// extension put there by the server).
#[derive(Clone)]
pub struct Takeover(Arc<Shared>);

/// The socket as hyper sees it: a `TcpStream` that notices flushes and can be muted.
pub struct HttpIo {
    stream: TcpStream,
    shared: Arc<Shared>,
}

/// The placeholder response could not be used: hyper still holds bytes of an earlier
/// response (the client pipelined this request), so the stream cannot start cleanly.
#[derive(Debug)]
pub struct Pipelined;

impl Takeover {
    /// A new connection's pair: the IO to give hyper and the handle for handlers.
    pub fn new(stream: TcpStream) -> (HttpIo, Takeover) {
        let shared = Arc::new(Shared {
            flushed: AtomicBool::new(true),
            mute: AtomicBool::new(false),
            handoff: Mutex::new(None),
        });
        (
            HttpIo {
                stream,
                shared: shared.clone(),
            },
            Takeover(shared),
        )
    }

    /// For a 101 upgrade: hyper writes the response, then `handoff` gets the socket.
    pub fn after_response(&self, handoff: Handoff) {
        *lock(&self.0.handoff) = Some(handoff);
    }

    /// For a stream whose head the handoff writes itself: from now on hyper's output is
    /// discarded (the handler returns [`placeholder`]), then `handoff` gets the socket.
    pub fn replace_response(&self, handoff: Handoff) -> Result<(), Pipelined> {
        if !self.0.flushed.load(Ordering::Acquire) {
            return Err(Pipelined);
        }
        self.0.mute.store(true, Ordering::Release);
        *lock(&self.0.handoff) = Some(handoff);
        Ok(())
    }

    /// The registered handoff, once hyper has let go of the connection.
    pub fn take(&self) -> Option<Handoff> {
        lock(&self.0.handoff).take()
    }
}

/// What a handler returns to hyper after [`Takeover::replace_response`]: it ends hyper's
/// work on the connection (`Connection: close`, no body); its bytes are discarded.
pub fn placeholder() -> crate::net::Resp {
    let mut r = crate::net::response::status_only(http::StatusCode::OK);
    r.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    r
}

impl HttpIo {
    pub fn into_inner(self) -> TcpStream {
        self.stream
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }
}

impl AsyncRead for HttpIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for HttpIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.shared.mute.load(Ordering::Acquire) {
            return Poll::Ready(Ok(buf.len()));
        }
        this.shared.flushed.store(false, Ordering::Release);
        Pin::new(&mut this.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.shared.mute.load(Ordering::Acquire) {
            return Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()));
        }
        this.shared.flushed.store(false, Ordering::Release);
        Pin::new(&mut this.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.stream).poll_flush(cx);
        if matches!(r, Poll::Ready(Ok(()))) {
            this.shared.flushed.store(true, Ordering::Release);
        }
        r
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.shared.mute.load(Ordering::Acquire) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}
