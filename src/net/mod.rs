//! I/O: the hyper server, routing, request/response helpers, static files, and the REST
//! handlers. Handlers parse and authenticate, call the service layer, and write the reply.

pub mod access_log;
pub mod admin;
pub mod api;
pub mod api_docs;
pub mod client_ip;
pub mod conn;
pub mod health;
pub mod multipart;
pub mod request;
pub mod response;
pub mod router;
pub mod server;
pub mod shards;
pub mod sockjs;
pub mod sse;
pub mod state;
pub mod static_files;
pub mod stomp;
pub mod websocket;
pub mod ws;

pub use request::Ctx;
pub use response::{Body, Resp};
pub use state::App;
