//! `StoreError`: a database failure with the one decision callers need — retry it later
//! (transient) or give up on this statement (permanent).

use std::fmt;
use tokio_postgres::error::SqlState;

/// A failed database call, classified in [`StoreError::is_transient`].
///
/// Exists so the event pipeline (outbox writer, relay) can tell "the database is down, wait"
/// from "this row can never be written, dead-letter it" in one place, from the SQLSTATE,
/// instead of matching on message strings.
#[derive(Debug)]
pub enum StoreError {
    /// No pooled connection could be had (pool timeout, connect failure).
    Pool(deadpool_postgres::PoolError),
    /// The statement failed (a server error with a SQLSTATE, or the connection broke).
    Db(tokio_postgres::Error),
}

impl StoreError {
    /// True when retrying the same statement later can succeed: the connection or server is
    /// the problem, not the statement. Server errors are classified by SQLSTATE
    /// ([`sqlstate_is_transient`]). Errors without one are about the connection (I/O, closed,
    /// timeout), or a client-side bug that every row would hit alike; both are retried, as
    /// dead-lettering every row would lose everything.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Pool(_) => true,
            StoreError::Db(e) => e.code().is_none_or(sqlstate_is_transient),
        }
    }
}

/// SQLSTATE classes that describe the server's condition rather than the statement:
/// 08 connection exception, 40 transaction rollback (serialization failure, deadlock),
/// 53 insufficient resources, 57 operator intervention (shutdown, starting up), 58 system
/// error, plus 55P03 lock not available and 55006 object in use. Everything else (22 data
/// exception such as a NUL in text, 23 constraint violation, 42 syntax, 54 program limit,
/// ...) will fail the same way again.
pub fn sqlstate_is_transient(code: &SqlState) -> bool {
    let c = code.code();
    matches!(c.get(..2), Some("08" | "40" | "53" | "57" | "58")) || c == "55P03" || c == "55006"
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Pool(e) => write!(f, "database pool: {e}"),
            StoreError::Db(e) => match e.as_db_error() {
                Some(db) => write!(f, "database: {} ({})", db.message(), db.code().code()),
                None => write!(f, "database: {e}"),
            },
        }
    }
}

impl std::error::Error for StoreError {}

/// For service callers: the same client-visible errors as the untyped path (503 without a
/// connection, 500 otherwise).
impl From<StoreError> for crate::error::ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Pool(p) => p.into(),
            StoreError::Db(d) => d.into(),
        }
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Db(e)
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::Pool(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_are_classified_by_class() {
        for transient in [
            SqlState::CONNECTION_FAILURE,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::DISK_FULL,
            SqlState::LOCK_NOT_AVAILABLE,
        ] {
            assert!(sqlstate_is_transient(&transient), "{}", transient.code());
        }
        for permanent in [
            SqlState::CHARACTER_NOT_IN_REPERTOIRE,
            SqlState::UNTRANSLATABLE_CHARACTER,
            SqlState::INVALID_TEXT_REPRESENTATION,
            SqlState::UNIQUE_VIOLATION,
            SqlState::SYNTAX_ERROR,
            SqlState::PROGRAM_LIMIT_EXCEEDED,
            SqlState::STRING_DATA_RIGHT_TRUNCATION,
        ] {
            assert!(!sqlstate_is_transient(&permanent), "{}", permanent.code());
        }
    }
}
