//! The realtime connection engine, shared by every transport (SSE, WebSocket, SockJS).
//!
//! - [`queue`]: the per-connection outbound queue, bounded by bytes and age;
//! - [`writer`]: coalesced, framed `writev` of everything pending;
//! - [`clock`]: the cheap millisecond clock queue ages use.

pub mod clock;
pub mod observe;
pub mod queue;
pub mod session;
pub mod takeover;
pub mod writer;

pub use queue::{
    encode, json_escaped, CloseKind, CloseReason, Encoding, Item, Outbound, QueueLimits,
};
pub use session::{Session, SessionFactory};
pub use takeover::{placeholder, Handoff, HttpIo, Takeover};
pub use writer::{Framing, Progress, Writer};
