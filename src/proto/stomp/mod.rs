//! Pure STOMP 1.2 codec (server side): frames, an incremental decoder with resource limits,
//! an encoder, a pre-encoded MESSAGE template for fan-out, and heart-beat negotiation.
//!
//! No I/O happens here: the connection task feeds received bytes into a [`Decoder`] and writes
//! what [`encode`] / [`MessageTemplate::render`] produce. Depends only on `bytes` and std.
//!
//! ```text
//! loop { read into buf; while let Some(item) = decoder.decode(&mut buf)? { handle(item) } }
//! ```

mod command;
mod decode;
mod encode;
mod error;
mod frame;
mod heartbeat;

pub use command::{ClientCommand, CommandError, Request};
pub use decode::{Decoder, Item, Limits};
pub use encode::{encode, encode_to_bytes, escape_header, heartbeat, printable, MessageTemplate};
pub use error::DecodeError;
pub use frame::{Command, Frame};
pub use heartbeat::negotiate_heartbeat;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod proptests;
