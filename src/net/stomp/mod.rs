//! STOMP 1.2 on the realtime engine: the per-connection session ([`session`]) and the
//! broker that fans messages out to subscriptions ([`hub`]).

pub mod backend;
pub mod hub;
pub mod session;
