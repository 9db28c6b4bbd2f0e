//! Persistence: PostgreSQL through a deadpool connection pool, ordered SQL migrations, one
//! repository module per table family, and local file storage. No domain rules live here.

pub mod binary_contents;
pub mod channels;
pub mod db;
pub mod error;
pub mod files;
pub mod message_batch;
pub mod messages;
pub mod notifications;
pub mod outbox;
pub mod read_statuses;
pub mod upload_jobs;
pub mod users;

pub use db::{Db, Tx};
pub use error::StoreError;
