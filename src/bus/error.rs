//! `PipelineError`: why an event could not travel outbox → Kafka, and whether waiting helps.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use std::fmt;

use crate::error::ApiError;
use crate::store::StoreError;

/// A failure of the event pipeline (outbox writer, relay, producer).
///
/// Exists so "transient: retry the same event later" and "permanent: dead-letter it and carry
/// on" are decided in one place ([`PipelineError::is_transient`]); a permanent error that were
/// retried would stall every event behind it, and a transient one that were dead-lettered
/// would drop events during a short outage.
#[derive(Debug)]
pub enum PipelineError {
    /// The database refused or was unreachable (classified by SQLSTATE).
    Store(StoreError),
    /// The Kafka producer refused or failed (classified by librdkafka's error code).
    Kafka(KafkaError),
    /// The event could not be encoded, or an outbox row is not an event of a known family.
    Malformed(String),
    /// The encoded event would exceed the broker's record size limit.
    TooLarge { bytes: usize, limit: usize },
}

impl PipelineError {
    /// True when retrying the same event later can succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            PipelineError::Store(e) => e.is_transient(),
            PipelineError::Kafka(e) => e.rdkafka_error_code().is_none_or(kafka_is_transient),
            PipelineError::Malformed(_) | PipelineError::TooLarge { .. } => false,
        }
    }
}

/// librdkafka errors that concern the record itself (its size, its encoding, its topic name)
/// are permanent; everything else (brokers down, queue full, timeouts, leader changes, even
/// authorisation, which every record would hit alike) is the broker's condition: wait.
pub fn kafka_is_transient(code: RDKafkaErrorCode) -> bool {
    !matches!(
        code,
        RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::MessageBatchTooLarge
            | RDKafkaErrorCode::InvalidMessage
            | RDKafkaErrorCode::BadMessage
            | RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::InvalidTopic
            | RDKafkaErrorCode::UnsupportedForMessageFormat
            | RDKafkaErrorCode::KeySerialization
            | RDKafkaErrorCode::ValueSerialization
    )
}

impl fmt::Display for PipelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PipelineError::Store(e) => e.fmt(f),
            PipelineError::Kafka(e) => write!(f, "kafka: {e}"),
            PipelineError::Malformed(why) => write!(f, "malformed event: {why}"),
            PipelineError::TooLarge { bytes, limit } => write!(
                f,
                "event too large: {bytes} bytes encoded, the record limit is {limit} bytes"
            ),
        }
    }
}

impl std::error::Error for PipelineError {}

/// For services committing a change with its events: an event that could never be sent is the
/// request's fault (400 naming the limit); the database's failures keep their usual answers.
impl From<PipelineError> for ApiError {
    fn from(e: PipelineError) -> Self {
        match e {
            PipelineError::Store(e) => e.into(),
            PipelineError::TooLarge { bytes, limit } => ApiError::invalid_request(format!(
                "the change's realtime event would be {bytes} bytes, over the limit of {limit}"
            ))
            .detail("maxEventBytes", limit as u64),
            other => ApiError::internal(other),
        }
    }
}

impl From<StoreError> for PipelineError {
    fn from(e: StoreError) -> Self {
        PipelineError::Store(e)
    }
}

impl From<KafkaError> for PipelineError {
    fn from(e: KafkaError) -> Self {
        PipelineError::Kafka(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_errors_are_permanent_broker_errors_transient() {
        for permanent in [
            RDKafkaErrorCode::MessageSizeTooLarge,
            RDKafkaErrorCode::InvalidRecord,
            RDKafkaErrorCode::InvalidTopic,
        ] {
            assert!(!kafka_is_transient(permanent));
            let e = PipelineError::Kafka(KafkaError::MessageProduction(permanent));
            assert!(!e.is_transient());
        }
        for transient in [
            RDKafkaErrorCode::QueueFull,
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::AllBrokersDown,
            RDKafkaErrorCode::BrokerTransportFailure,
            RDKafkaErrorCode::UnknownTopicOrPartition,
            RDKafkaErrorCode::NotLeaderForPartition,
        ] {
            assert!(kafka_is_transient(transient));
        }
        assert!(!PipelineError::Malformed("x".into()).is_transient());
        assert!(!PipelineError::TooLarge { bytes: 2, limit: 1 }.is_transient());
    }
}
