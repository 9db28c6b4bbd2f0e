//! Pure wire codecs: bytes in, frames out. No sockets, no tokio, so each can be unit-tested
//! and fuzzed on its own.

pub mod hixie76;
pub mod sockjs;
pub mod sse;
pub mod stomp;
