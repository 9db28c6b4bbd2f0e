//! Response and request DTOs, serialised exactly as the sprint-12 reference does
//! (camelCase, nulls written out, Java-style instants).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::time::serde_instant;

/// `ADMIN ⊃ CHANNEL_MANAGER ⊃ USER`; the derived order is the hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    User,
    ChannelManager,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "USER",
            Role::ChannelManager => "CHANNEL_MANAGER",
            Role::Admin => "ADMIN",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "USER" => Some(Role::User),
            "CHANNEL_MANAGER" => Some(Role::ChannelManager),
            "ADMIN" => Some(Role::Admin),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChannelType {
    Public,
    Private,
}

impl ChannelType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelType::Public => "PUBLIC",
            ChannelType::Private => "PRIVATE",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "PUBLIC" => Some(Self::Public),
            "PRIVATE" => Some(Self::Private),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UploadStatus {
    Waiting,
    Success,
    Failed,
}

impl UploadStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UploadStatus::Waiting => "WAITING",
            UploadStatus::Success => "SUCCESS",
            UploadStatus::Failed => "FAILED",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "WAITING" => Some(Self::Waiting),
            "SUCCESS" => Some(Self::Success),
            "FAILED" => Some(Self::Failed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NotificationType {
    NewMessage,
    RoleChanged,
    AsyncFailed,
}

impl NotificationType {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationType::NewMessage => "NEW_MESSAGE",
            NotificationType::RoleChanged => "ROLE_CHANGED",
            NotificationType::AsyncFailed => "ASYNC_FAILED",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "NEW_MESSAGE" => Some(Self::NewMessage),
            "ROLE_CHANGED" => Some(Self::RoleChanged),
            "ASYNC_FAILED" => Some(Self::AsyncFailed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BinaryContentDto {
    pub id: Uuid,
    pub file_name: String,
    pub size: i64,
    pub content_type: String,
    pub upload_status: UploadStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserDto {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub profile: Option<BinaryContentDto>,
    pub online: Option<bool>,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelDto {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub channel_type: ChannelType,
    pub name: Option<String>,
    pub description: Option<String>,
    pub participants: Vec<UserDto>,
    /// `None` prints Java's `Instant.MIN`, as the reference does for an empty channel.
    #[serde(with = "last_message_at")]
    pub last_message_at: Option<DateTime<Utc>>,
}

mod last_message_at {
    use super::*;
    use crate::time::{format_instant, parse_instant, INSTANT_MIN};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&format_instant(t)),
            None => s.serialize_str(INSTANT_MIN),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        let s = String::deserialize(d)?;
        Ok(parse_instant(&s))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageDto {
    pub id: Uuid,
    #[serde(with = "serde_instant")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "serde_instant")]
    pub updated_at: DateTime<Utc>,
    pub content: String,
    pub channel_id: Uuid,
    pub author: Option<UserDto>,
    pub attachments: Vec<BinaryContentDto>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadStatusDto {
    pub id: Uuid,
    pub user_id: Uuid,
    pub channel_id: Uuid,
    #[serde(with = "serde_instant")]
    pub last_read_at: DateTime<Utc>,
    pub notification_enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationDto {
    pub id: Uuid,
    #[serde(with = "serde_instant")]
    pub created_at: DateTime<Utc>,
    pub receiver_id: Uuid,
    pub title: String,
    pub content: String,
    #[serde(rename = "type")]
    pub notification_type: NotificationType,
    pub target_id: Option<Uuid>,
}

/// `PageResponse<T>`: a cursor page, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageResponse<T> {
    pub content: Vec<T>,
    pub next_cursor: Option<String>,
    pub size: i64,
    pub has_next: bool,
    pub total_elements: Option<i64>,
}

/// `CsrfTokenBody`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CsrfTokenBody {
    pub token: String,
    pub header_name: &'static str,
    pub parameter_name: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_dto_writes_nulls() {
        let u = UserDto {
            id: Uuid::nil(),
            username: "alice".into(),
            email: "a@x".into(),
            profile: None,
            online: None,
            role: Role::ChannelManager,
        };
        let s = serde_json::to_string(&u).unwrap();
        assert!(s.contains("\"profile\":null"));
        assert!(s.contains("\"online\":null"));
        assert!(s.contains("\"role\":\"CHANNEL_MANAGER\""));
    }

    #[test]
    fn empty_channel_prints_instant_min() {
        let c = ChannelDto {
            id: Uuid::nil(),
            channel_type: ChannelType::Private,
            name: None,
            description: None,
            participants: vec![],
            last_message_at: None,
        };
        let s = serde_json::to_string(&c).unwrap();
        assert!(s.contains("\"lastMessageAt\":\"-1000000000-01-01T00:00:00Z\""));
        assert!(s.contains("\"type\":\"PRIVATE\""));
    }

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Admin > Role::ChannelManager && Role::ChannelManager > Role::User);
    }
}
