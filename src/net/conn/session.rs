//! The application side of a realtime connection: what runs behind a transport.
//!
//! Exists so the drivers (WebSocket, SockJS) are written once and serve both STOMP (`/ws`)
//! and the echo services of the SockJS conformance server. A session is plain state driven by
//! its connection's single task: the driver hands it each complete client message and polls
//! the work it started; the session answers through the connection's [`Outbound`] queue.

use bytes::Bytes;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::queue::{CloseReason, Outbound};

/// One connection's application state.
pub trait Session: Send + 'static {
    /// One complete client message (a WebSocket message, one SockJS message).
    fn on_message(&mut self, message: Bytes);

    /// Drives work the session started (authentication, database writes, heart-beat timers),
    /// registering the task's waker for whatever is still pending. `Ready` means it made
    /// progress and should be polled again; `Pending` that it is waiting.
    fn poll_work(&mut self, cx: &mut Context<'_>) -> Poll<()>;

    /// While true the driver stops reading: a frame is waiting on I/O, so the client is held
    /// back through TCP instead of buffering its input here.
    fn busy(&self) -> bool;

    /// The connection is gone: forget every registration. Called exactly once.
    fn on_close(&mut self, reason: &CloseReason);
}

/// Creates the session of each new connection.
pub trait SessionFactory: Send + Sync + 'static {
    fn open(&self, out: &Arc<Outbound>) -> Box<dyn Session>;
}

/// A session with nothing to do (helpers for trivial services).
pub fn idle(_cx: &mut Context<'_>) -> Poll<()> {
    Poll::Pending
}
