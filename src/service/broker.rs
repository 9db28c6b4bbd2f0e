//! Plain broker destinations (`/sub/...` other than channel messages): a client's SEND is
//! relayed to the destination's subscribers on every instance, as text.

use super::Services;
use crate::domain::Event;
use crate::error::{ApiError, ApiResult};

impl Services {
    /// Publishes a client's message to a plain broker destination. The body must be UTF-8
    /// text without NUL characters (NUL is valid STOMP with `content-length`, but it is not
    /// text: PostgreSQL refuses it in text columns and many clients end a string at it), and
    /// its event must fit a Kafka record; either refusal reaches the sender, so nothing is
    /// accepted here that could fail later in the pipeline.
    pub fn publish_broker_message(&self, destination: &str, body: &[u8]) -> ApiResult<()> {
        let text = std::str::from_utf8(body)
            .map_err(|_| ApiError::invalid_request("the body must be UTF-8 text"))?;
        if let Some(at) = text.find('\0') {
            return Err(ApiError::invalid_request(format!(
                "the body must not contain NUL characters (found one at byte {at})"
            )));
        }
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
