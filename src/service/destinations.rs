//! STOMP destinations: their grammar, who may subscribe, and what a SEND does.
//!
//! Exists so the realtime layer asks instead of deciding: the STOMP session parses nothing
//! and authorizes nothing itself; it calls [`Destination::parse`],
//! [`Services::authorize_subscription`] and [`Services::broker_send`], and turns a
//! [`DestinationError`] into an ERROR frame. The same rules hold for every transport.

use bytes::Bytes;
use std::fmt;
use uuid::Uuid;

use super::Services;
use crate::domain::Event;
use crate::error::ApiError;
use crate::security::Principal;

/// Longest destination accepted.
pub const MAX_DESTINATION_BYTES: usize = 256;

/// A valid destination.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Destination {
    /// `/pub/messages`: create a message (`MessageCreateRequest` JSON).
    PubMessages,
    /// `/sub/channels.{id}.messages`: new messages of a channel (server → client only).
    ChannelMessages(Uuid),
    /// `/sub/channels.{id}.message-events`: edits and deletions (server → client only).
    ChannelMessageEvents(Uuid),
    /// Any other `/sub/...`: the plain in-memory broker.
    Broker(String),
}

/// Why a destination is refused; the text is the ERROR frame's `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestinationError {
    /// Not a destination at all (characters, length).
    Invalid { destination: String, why: String },
    /// Well-formed but unknown (`/topic/x`, `/pub/x`).
    Unknown {
        destination: String,
        hint: &'static str,
    },
    /// A channel destination the caller may not subscribe to.
    Denied {
        destination: String,
        why: &'static str,
    },
    /// A server-written destination the client tried to SEND to.
    ServerOnly { destination: String },
    /// The SEND body is not acceptable.
    Body { destination: String, why: String },
    /// The check could not be made (database down, ...).
    Unavailable { destination: String, cause: String },
}

impl fmt::Display for DestinationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DestinationError::Invalid { destination, why } => {
                write!(f, "Invalid destination {destination:?}: {why}")
            }
            DestinationError::Unknown { destination, hint } => {
                write!(f, "Unknown destination {destination}: {hint}")
            }
            DestinationError::Denied { destination, why } => {
                write!(f, "Access denied to {destination}: {why}")
            }
            DestinationError::ServerOnly { destination } => write!(
                f,
                "SEND {destination} refused: channel destinations are written by the server only"
            ),
            DestinationError::Body { destination, why } => {
                write!(f, "SEND {destination} refused: {why}")
            }
            DestinationError::Unavailable { destination, cause } => {
                write!(f, "{destination} could not be checked: {cause}")
            }
        }
    }
}

impl std::error::Error for DestinationError {}

/// `[A-Za-z0-9._-]` and `/`.
fn valid_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/')
}

impl Destination {
    /// Parses and validates a destination header.
    pub fn parse(raw: &str) -> Result<Destination, DestinationError> {
        let invalid = |why: String| DestinationError::Invalid {
            destination: printable(raw),
            why,
        };
        if raw.len() > MAX_DESTINATION_BYTES {
            return Err(invalid(format!(
                "longer than {MAX_DESTINATION_BYTES} bytes"
            )));
        }
        if let Some(b) = raw.bytes().find(|b| !valid_char(*b)) {
            return Err(invalid(if b.is_ascii_control() {
                "control characters are not allowed".into()
            } else {
                "only letters, digits, '.', '_', '-' and '/' are allowed".into()
            }));
        }
        if raw == "/pub/messages" {
            return Ok(Destination::PubMessages);
        }
        if raw.starts_with("/pub/") {
            return Err(DestinationError::Unknown {
                destination: raw.into(),
                hint: "the only /pub destination is /pub/messages",
            });
        }
        let Some(rest) = raw.strip_prefix("/sub/") else {
            return Err(DestinationError::Unknown {
                destination: raw.into(),
                hint: "destinations start with /sub/ (or SEND to /pub/messages)",
            });
        };
        if rest.is_empty() || rest.split('/').any(str::is_empty) {
            return Err(invalid("empty path segment".into()));
        }
        if let Some(channel) = rest.strip_prefix("channels.") {
            let (id, kind) = channel
                .split_once('.')
                .ok_or_else(|| invalid("expected /sub/channels.{channelId}.messages".into()))?;
            let id = Uuid::parse_str(id).map_err(|_| DestinationError::Denied {
                destination: raw.into(),
                why: "not a channel id",
            })?;
            return match kind {
                "messages" => Ok(Destination::ChannelMessages(id)),
                "message-events" => Ok(Destination::ChannelMessageEvents(id)),
                _ => Err(DestinationError::Unknown {
                    destination: raw.into(),
                    hint: "a channel has .messages and .message-events",
                }),
            };
        }
        Ok(Destination::Broker(raw.to_string()))
    }

    /// Parses the destination of a SEND: anything shaped like a channel destination is the
    /// server's to write, whether or not it names a real channel.
    pub fn parse_for_send(raw: &str) -> Result<Destination, DestinationError> {
        if raw.starts_with("/sub/channels.") {
            return Err(DestinationError::ServerOnly {
                destination: printable(raw),
            });
        }
        Destination::parse(raw)
    }

    /// The canonical destination string (what subscriptions are keyed by).
    pub fn as_string(&self) -> String {
        match self {
            Destination::PubMessages => "/pub/messages".into(),
            Destination::ChannelMessages(id) => channel_messages(*id),
            Destination::ChannelMessageEvents(id) => channel_message_events(*id),
            Destination::Broker(d) => d.clone(),
        }
    }
}

/// `/sub/channels.{id}.messages`.
pub fn channel_messages(channel: Uuid) -> String {
    format!("/sub/channels.{channel}.messages")
}

/// `/sub/channels.{id}.message-events`.
pub fn channel_message_events(channel: Uuid) -> String {
    format!("/sub/channels.{channel}.message-events")
}

/// `raw`, cut to a destination's length, with control characters shown escaped, for error
/// texts.
fn printable(raw: &str) -> String {
    let cut: String = raw.chars().take(MAX_DESTINATION_BYTES).collect();
    crate::proto::stomp::printable(&cut).into_owned()
}

impl Services {
    /// May `who` subscribe to `destination`? Channel destinations need a PUBLIC channel or
    /// membership; broker destinations are open; `/pub/messages` is not subscribable.
    pub async fn authorize_subscription(
        &self,
        who: &Principal,
        destination: &Destination,
    ) -> Result<(), DestinationError> {
        let channel = match destination {
            Destination::ChannelMessages(id) | Destination::ChannelMessageEvents(id) => *id,
            Destination::Broker(_) => return Ok(()),
            Destination::PubMessages => {
                return Err(DestinationError::Unknown {
                    destination: destination.as_string(),
                    hint: "subscriptions must start with /sub/",
                })
            }
        };
        let name = destination.as_string();
        let unavailable = |e: ApiError| DestinationError::Unavailable {
            destination: name.clone(),
            cause: e.to_string(),
        };
        let row = match self.channel_row(channel).await {
            Ok(row) => row,
            Err(e) if e.is_not_found() => {
                return Err(DestinationError::Denied {
                    destination: name,
                    why: "channel not found",
                })
            }
            Err(e) => return Err(unavailable(e)),
        };
        match self.require_channel_access(who.user_id, &row).await {
            Ok(()) => Ok(()),
            Err(e) if e.is_forbidden() => Err(DestinationError::Denied {
                destination: name,
                why: "the channel is private and you are not a participant",
            }),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// SEND to a plain broker destination: the body goes to its subscribers on every
    /// instance (see [`broker_event`] for what is accepted).
    pub fn broker_send(
        &self,
        destination: &Destination,
        body: &Bytes,
        max_body: usize,
    ) -> Result<(), DestinationError> {
        self.bus.publish(broker_event(destination, body, max_body)?);
        Ok(())
    }
}

/// The event a client SEND to a plain broker destination becomes. Bodies must be UTF-8 text
/// of at most `max_body` bytes (NUL allowed: STOMP frames it with `content-length`, and the
/// bus carries it); only broker destinations take client SENDs.
pub fn broker_event(
    destination: &Destination,
    body: &Bytes,
    max_body: usize,
) -> Result<Event, DestinationError> {
    let name = destination.as_string();
    let Destination::Broker(_) = destination else {
        return Err(DestinationError::ServerOnly { destination: name });
    };
    let refuse = |why: String| DestinationError::Body {
        destination: name.clone(),
        why,
    };
    if body.len() > max_body {
        return Err(refuse(format!("the body is larger than {max_body} bytes")));
    }
    let text =
        std::str::from_utf8(body).map_err(|_| refuse("the body must be UTF-8 text".into()))?;
    Ok(Event::BrokerMessage {
        destination: name.clone(),
        body: text.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar() {
        let id = Uuid::new_v4();
        assert_eq!(
            Destination::parse("/pub/messages").unwrap(),
            Destination::PubMessages
        );
        assert_eq!(
            Destination::parse(&format!("/sub/channels.{id}.messages")).unwrap(),
            Destination::ChannelMessages(id)
        );
        assert_eq!(
            Destination::parse(&format!("/sub/channels.{id}.message-events")).unwrap(),
            Destination::ChannelMessageEvents(id)
        );
        assert_eq!(
            Destination::parse("/sub/bench-1/x.y").unwrap(),
            Destination::Broker("/sub/bench-1/x.y".into())
        );
        for bad in [
            "/sub/a\0b",
            "/sub/a b",
            "/sub/\u{7f}",
            "/sub//x",
            "/sub/",
            "/sub/é",
        ] {
            assert!(
                matches!(
                    Destination::parse(bad),
                    Err(DestinationError::Invalid { .. })
                ),
                "{bad:?}"
            );
        }
        let long = format!("/sub/{}", "x".repeat(300));
        assert!(matches!(
            Destination::parse(&long),
            Err(DestinationError::Invalid { .. })
        ));
        assert_eq!(
            Destination::parse("/queue/x").unwrap_err().to_string(),
            "Unknown destination /queue/x: destinations start with /sub/ (or SEND to /pub/messages)"
        );
        assert!(Destination::parse("/pub/unknown")
            .unwrap_err()
            .to_string()
            .starts_with("Unknown destination /pub/unknown"));
        assert_eq!(
            Destination::parse("/sub/channels.x.messages")
                .unwrap_err()
                .to_string(),
            "Access denied to /sub/channels.x.messages: not a channel id"
        );
        let nul = Destination::parse("/sub/a\0").unwrap_err().to_string();
        assert!(nul.contains("\\u{0}") && nul.contains("control"), "{nul}");
    }
}
