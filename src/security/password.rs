//! bcrypt password hashing (`$2a$`/`$2b$`, cost 10 like the reference), run on the blocking
//! pool so the async workers keep serving connections.

use crate::error::{ApiError, ApiResult};

pub const COST: u32 = 10;

/// Hashes with a `$2a$` prefix so hashes look like the reference's.
pub async fn hash(password: String) -> ApiResult<String> {
    tokio::task::spawn_blocking(move || {
        bcrypt::hash_with_result(password.as_bytes(), COST)
            .map(|h| h.format_for_version(bcrypt::Version::TwoA))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)
}

/// True when `password` matches `hash`; a malformed stored hash never matches.
pub async fn verify(password: String, hash: String) -> ApiResult<bool> {
    tokio::task::spawn_blocking(move || bcrypt::verify(password.as_bytes(), &hash).unwrap_or(false))
        .await
        .map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn hash_and_verify() {
        let h = super::hash("p@ssw0rd1".into()).await.unwrap();
        assert!(h.starts_with("$2a$10$") && h.len() == 60);
        assert!(super::verify("p@ssw0rd1".into(), h.clone()).await.unwrap());
        assert!(!super::verify("wrong".into(), h).await.unwrap());
        assert!(!super::verify("x".into(), "garbage".into()).await.unwrap());
    }
}
