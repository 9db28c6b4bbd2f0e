//! Domain events: what happened, emitted after the database commit.
//!
//! The realtime layers (STOMP hub, SSE streams, the Kafka relay) subscribe to these through
//! [`crate::bus::EventBus`]; services never call them directly.

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use uuid::Uuid;

use super::MessageDto;

/// Who an SSE event is addressed to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "users", rename_all = "camelCase")]
pub enum Audience {
    /// Every connected user.
    All,
    /// These users only.
    Users(Vec<Uuid>),
}

/// One Server-Sent Event as produced: id fixed at production so every relay uses the same one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SseEvent {
    /// UUIDv7: unique and time-ordered.
    pub id: Uuid,
    /// `notifications`, `binaryContents.status`, `channels.refresh`, `users.refresh`.
    pub name: String,
    /// The JSON payload, encoded once.
    pub data: String,
    pub audience: Audience,
}

impl SseEvent {
    pub fn new(name: &str, data: &impl Serialize, audience: Audience) -> Self {
        SseEvent {
            id: Uuid::now_v7(),
            name: name.to_string(),
            data: serde_json::to_string(data).unwrap_or_else(|_| "null".into()),
            audience,
        }
    }
}

/// The JSON body of a MESSAGE on `/sub/channels.{channelId}.message-events`:
/// `{"type":"updated","message":MessageDto}` or
/// `{"type":"deleted","messageId":…,"channelId":…}`.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum MessageEventBody<'a> {
    Updated {
        message: &'a MessageDto,
    },
    #[serde(rename_all = "camelCase")]
    Deleted {
        message_id: Uuid,
        channel_id: Uuid,
    },
}

impl Event {
    /// Roughly the bytes this event costs while it waits for the fan-out: its text plus a
    /// fixed allowance for the rest (ids, times, the author), for the bus's backlog limit.
    pub fn weight(&self) -> usize {
        const BASE: usize = 256;
        BASE + match self {
            Event::MessageCreated { message } | Event::MessageUpdated { message } => {
                message.content.len() + message.attachments.len() * BASE
            }
            Event::BrokerMessage { destination, body } => destination.len() + body.len(),
            Event::Sse(e) => e.name.len() + e.data.len(),
            Event::MessageDeleted { .. } | Event::UserRevoked { .. } | Event::Changed(_) => 0,
        }
    }

    /// For an edit or a deletion: the channel and the `.message-events` body.
    pub fn message_event(&self) -> Option<(Uuid, MessageEventBody<'_>)> {
        match self {
            Event::MessageUpdated { message } => {
                Some((message.channel_id, MessageEventBody::Updated { message }))
            }
            Event::MessageDeleted {
                message_id,
                channel_id,
            } => Some((
                *channel_id,
                MessageEventBody::Deleted {
                    message_id: *message_id,
                    channel_id: *channel_id,
                },
            )),
            _ => None,
        }
    }
}

/// What changed about an entity the message write path caches (see `service::lookups`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "camelCase")]
pub enum Change {
    /// The channel was renamed or deleted, or its membership changed.
    Channel(Uuid),
    /// The user was renamed, got another role or profile, or was deleted (which also ends
    /// their private-channel memberships).
    User(Uuid),
}

/// Everything the realtime layer reacts to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Event {
    /// A message was committed: broadcast to `/sub/channels.{channelId}.messages`.
    MessageCreated { message: Arc<MessageDto> },
    /// A message's content was edited: broadcast to `/sub/channels.{channelId}.message-events`
    /// (never to `.messages`, whose subscribers expect new messages only).
    MessageUpdated { message: Arc<MessageDto> },
    /// A message was deleted: broadcast to `/sub/channels.{channelId}.message-events`.
    MessageDeleted { message_id: Uuid, channel_id: Uuid },
    /// A message to a plain broker destination (`/sub/...` other than channel messages).
    BrokerMessage { destination: String, body: String },
    /// An SSE event for its audience.
    Sse(SseEvent),
    /// The user's sessions ended (logout, re-login, role change, deletion): close their live
    /// STOMP sessions and SSE streams.
    UserRevoked {
        user_id: Uuid,
        /// Only connections of this login session; `None` closes all of the user's.
        session_id: Option<Uuid>,
    },
    /// Cached facts about an entity are stale: every instance drops them (written in the
    /// change's transaction, so it reaches every instance exactly when the change exists).
    Changed(Change),
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use serde_json::json;

    #[test]
    fn message_event_bodies_have_the_contract_shape() {
        let (message_id, channel_id) = (Uuid::new_v4(), Uuid::new_v4());
        let deleted = Event::MessageDeleted {
            message_id,
            channel_id,
        };
        let (channel, body) = deleted.message_event().unwrap();
        assert_eq!(channel, channel_id);
        let body = serde_json::to_value(&body).unwrap();
        assert_eq!(
            body,
            json!({"type": "deleted", "messageId": message_id, "channelId": channel_id})
        );

        let now = Utc::now();
        let message = MessageDto {
            id: message_id,
            created_at: now,
            updated_at: now,
            content: "edited".into(),
            channel_id,
            author: None,
            attachments: vec![],
        };
        let updated = Event::MessageUpdated {
            message: Arc::new(message.clone()),
        };
        let (channel, body) = updated.message_event().unwrap();
        assert_eq!(channel, channel_id);
        let body = serde_json::to_value(&body).unwrap();
        assert_eq!(body["type"], "updated");
        assert_eq!(body["message"], serde_json::to_value(&message).unwrap());
        assert_eq!(body.as_object().unwrap().len(), 2);

        let created = Event::MessageCreated {
            message: Arc::new(message),
        };
        assert!(created.message_event().is_none());
    }

    #[test]
    fn changes_survive_the_outbox_json() {
        for change in [
            Change::Channel(Uuid::new_v4()),
            Change::User(Uuid::new_v4()),
        ] {
            let e = Event::Changed(change);
            let json = serde_json::to_string(&e).unwrap();
            assert!(json.contains("\"type\":\"changed\""), "{json}");
            assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), e);
        }
    }
}
