//! The authenticated caller and the role rules of the contract.

use uuid::Uuid;

use crate::domain::{Role, UserDto};
use crate::error::{ApiError, ApiResult};

/// Who is calling: taken from the verified access token's `userDto`.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub user_id: Uuid,
    pub username: String,
    pub role: Role,
    /// The login session the token belongs to.
    pub session_id: Option<Uuid>,
    pub user: UserDto,
}

impl Principal {
    /// 403 unless the caller's role is at least `role`.
    pub fn require(&self, role: Role) -> ApiResult<()> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::denied())
        }
    }

    /// 403 unless the caller is `user_id` or an ADMIN.
    pub fn require_self_or_admin(&self, user_id: Uuid) -> ApiResult<()> {
        if self.user_id == user_id || self.role == Role::Admin {
            Ok(())
        } else {
            Err(ApiError::denied())
        }
    }
}
