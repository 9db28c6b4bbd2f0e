//! discodeit: a Discodeit-compatible chat backend.
//!
//! Layers (arrows point downwards only): `net` (HTTP, WebSocket, SSE I/O) → `service`
//! (the domain rules, shared by REST, STOMP and the event relays) → `store` (PostgreSQL and
//! file storage). `security` and `domain` are leaf modules used by all of them; `proto` holds the
//! pure wire codecs. See ARCHITECTURE.md for the map.

pub mod app;
pub mod bus;
pub mod config;
pub mod domain;
pub mod error;
pub mod fd_limit;
pub mod net;
pub mod proto;
pub mod security;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod time;
