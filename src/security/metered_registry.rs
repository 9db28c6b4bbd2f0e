//! A [`JwtRegistry`] decorator that counts every operation and every failure
//! (`discodeit_jwt_registry_operations_total` / `_errors_total`), whichever registry it wraps:
//! a rising error rate is the first sign of a Redis outage, before logins start failing.

use futures_util::future::BoxFuture;
use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use uuid::Uuid;

use super::registry::{JwtRegistry, Session};
use crate::error::ApiResult;
use crate::telemetry::metrics::{registry_op, RegistryOp};

/// Counts the operations of the registry it wraps.
pub struct MeteredRegistry {
    inner: Arc<dyn JwtRegistry>,
}

impl MeteredRegistry {
    pub fn new(inner: Arc<dyn JwtRegistry>) -> Self {
        MeteredRegistry { inner }
    }
}

fn counted<'a, T: Send + 'a>(
    op: RegistryOp,
    fut: impl Future<Output = ApiResult<T>> + Send + 'a,
) -> BoxFuture<'a, ApiResult<T>> {
    Box::pin(async move {
        let r = fut.await;
        registry_op(op, r.is_ok());
        r
    })
}

impl JwtRegistry for MeteredRegistry {
    fn start(&self, session: Session) -> BoxFuture<'_, ApiResult<Option<Session>>> {
        counted(RegistryOp::Start, self.inner.start(session))
    }

    fn end_user(&self, user_id: Uuid) -> BoxFuture<'_, ApiResult<Option<Session>>> {
        counted(RegistryOp::EndUser, self.inner.end_user(user_id))
    }

    fn find_by_refresh<'a>(
        &'a self,
        refresh_token: &'a str,
    ) -> BoxFuture<'a, ApiResult<Option<Session>>> {
        counted(
            RegistryOp::FindByRefresh,
            self.inner.find_by_refresh(refresh_token),
        )
    }

    fn rotate<'a>(&'a self, old_refresh: &'a str, next: Session) -> BoxFuture<'a, ApiResult<bool>> {
        counted(RegistryOp::Rotate, self.inner.rotate(old_refresh, next))
    }

    fn is_ended(&self, session_id: Uuid) -> BoxFuture<'_, ApiResult<bool>> {
        counted(RegistryOp::IsEnded, self.inner.is_ended(session_id))
    }

    fn is_active(&self, session_id: Uuid) -> BoxFuture<'_, ApiResult<bool>> {
        counted(RegistryOp::IsActive, self.inner.is_active(session_id))
    }

    fn online_users(&self, now: i64) -> BoxFuture<'_, ApiResult<HashSet<Uuid>>> {
        counted(RegistryOp::OnlineUsers, self.inner.online_users(now))
    }

    fn lapsed_between(&self, after: i64, upto: i64) -> BoxFuture<'_, ApiResult<Vec<Uuid>>> {
        counted(
            RegistryOp::LapsedBetween,
            self.inner.lapsed_between(after, upto),
        )
    }

    fn ping(&self) -> BoxFuture<'_, ApiResult<()>> {
        counted(RegistryOp::Ping, self.inner.ping())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::registry::MemoryRegistry;
    use crate::telemetry::metrics::{exposition, names, render};

    fn count(name: &str) -> f64 {
        exposition::value(
            &exposition::parse(&render()),
            name,
            &[("operation", "end_user")],
        )
        .unwrap_or(0.0)
    }

    #[tokio::test]
    async fn every_operation_is_counted() {
        let registry = MeteredRegistry::new(Arc::new(MemoryRegistry::new()));
        let before = count(names::REGISTRY_OPS);
        registry.end_user(Uuid::new_v4()).await.unwrap();
        registry.end_user(Uuid::new_v4()).await.unwrap();
        assert_eq!(count(names::REGISTRY_OPS) - before, 2.0);
        assert_eq!(count(names::REGISTRY_ERRORS), 0.0);
    }
}
