//! Plain broker destinations (`/sub/...` other than channel messages): a client's SEND is
//! relayed to the destination's subscribers on every instance, as text.

use super::Services;
use crate::domain::Event;
use crate::error::{ApiError, ApiResult};

impl Services {
    /// Publishes a client's message to a plain broker destination. The body must be UTF-8
    /// text; NUL characters are fine (STOMP bodies may carry them with `content-length`, and
    /// the outbox stores the event as JSON, where a NUL is the escape `\u0000`). Its event must
    /// fit a Kafka record. Either refusal reaches the sender, so nothing is accepted here that
    /// could fail later in the pipeline.
    pub fn publish_broker_message(&self, destination: &str, body: &[u8]) -> ApiResult<()> {
        let text = std::str::from_utf8(body)
            .map_err(|_| ApiError::invalid_request("the body must be UTF-8 text"))?;
        if destination.contains(char::is_control) {
            return Err(ApiError::invalid_request(
                "the destination must not contain control characters",
            ));
        }
        self.bus.try_publish(Event::BrokerMessage {
            destination: destination.to_string(),
            body: text.to_string(),
        })?;
        Ok(())
    }
}
