//! `ApiError`: every failure a client can see, with the reference's codes and texts.
//!
//! Services return it, `net` turns it into an `ErrorResponse` body (and STOMP into an ERROR
//! frame), so the error vocabulary lives in one place.

use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;

/// One client-visible error: HTTP status, `ErrorCode` name, message, details.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub code: Cow<'static, str>,
    pub message: Cow<'static, str>,
    pub details: Map<String, Value>,
    pub exception_type: Cow<'static, str>,
    /// Set for errors the reference produces below the application (Spring's 403 body).
    pub framework: bool,
    /// Seconds for a `Retry-After` header (429).
    pub retry_after: Option<u64>,
}

type S = Cow<'static, str>;

impl ApiError {
    pub fn new(status: u16, code: impl Into<S>, message: impl Into<S>, exc: impl Into<S>) -> Self {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
            details: Map::new(),
            exception_type: exc.into(),
            framework: false,
            retry_after: None,
        }
    }

    /// Adds one `details` entry.
    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_string(), value.into());
        self
    }

    fn domain(status: u16, code: &'static str, msg: &'static str, exc: &'static str) -> Self {
        Self::new(status, code, msg, exc)
    }

    pub fn validation(details: Map<String, Value>) -> Self {
        let mut e = Self::new(
            400,
            "VALIDATION_ERROR",
            "요청 데이터 유효성 검사에 실패했습니다",
            "MethodArgumentNotValidException",
        );
        e.details = details;
        e
    }

    /// 400 `INVALID_REQUEST` for malformed input; `why` goes into details so clients see it.
    pub fn invalid_request(why: impl Into<String>) -> Self {
        Self::domain(
            400,
            "INVALID_REQUEST",
            "잘못된 요청입니다.",
            "InvalidRequestException",
        )
        .detail("reason", why.into())
    }

    /// 400 for a client-supplied collection over its configured cap: names the field and the
    /// limit, in the reason and as details.
    pub fn too_many(field: &str, limit: usize) -> Self {
        Self::invalid_request(format!("{field}: at most {limit} allowed"))
            .detail("field", field)
            .detail("limit", limit as u64)
    }

    pub fn private_channel_update(channel_id: uuid::Uuid) -> Self {
        Self::domain(
            400,
            "PRIVATE_CHANNEL_UPDATE",
            "비공개 채널은 수정할 수 없습니다.",
            "PrivateChannelUpdateException",
        )
        .detail("channelId", channel_id.to_string())
    }

    pub fn invalid_token(key: &str, token: &str) -> Self {
        Self::domain(
            401,
            "INVALID_TOKEN",
            "유효하지 않은 토큰입니다.",
            "DiscodeitException",
        )
        .detail(key, token)
    }

    pub fn token_not_found(token: Option<&str>) -> Self {
        let e = Self::domain(
            401,
            "TOKEN_NOT_FOUND",
            "토큰을 찾을 수 없습니다.",
            "DiscodeitException",
        );
        match token {
            Some(t) => e.detail("refreshToken", t),
            None => e,
        }
    }

    pub fn bad_credentials() -> Self {
        Self::new(
            401,
            "BadCredentialsException",
            "Bad credentials",
            "BadCredentialsException",
        )
    }

    pub fn unknown_login_user() -> Self {
        Self::new(
            401,
            "InternalAuthenticationServiceException",
            "사용자를 찾을 수 없습니다.",
            "InternalAuthenticationServiceException",
        )
    }

    pub fn unreadable_login() -> Self {
        Self::new(
            401,
            "AuthenticationServiceException",
            "로그인 요청을 읽을 수 없습니다.",
            "AuthenticationServiceException",
        )
    }

    /// 403 for a role or ownership rule.
    pub fn denied() -> Self {
        Self::new(
            403,
            "AuthorizationDeniedException",
            "Access Denied",
            "AuthorizationDeniedException",
        )
    }

    /// 403 below the application: no token, or the CSRF check failed.
    pub fn forbidden_anonymous(why: &str) -> Self {
        let mut e = Self::new(
            403,
            "AccessDeniedException",
            "Access Denied",
            "AccessDeniedException",
        )
        .detail("reason", why);
        e.framework = true;
        e
    }

    pub fn user_not_found(id: uuid::Uuid) -> Self {
        Self::domain(
            404,
            "USER_NOT_FOUND",
            "사용자를 찾을 수 없습니다.",
            "UserNotFoundException",
        )
        .detail("userId", id.to_string())
    }

    pub fn channel_not_found(id: uuid::Uuid) -> Self {
        Self::domain(
            404,
            "CHANNEL_NOT_FOUND",
            "채널을 찾을 수 없습니다.",
            "ChannelNotFoundException",
        )
        .detail("channelId", id.to_string())
    }

    pub fn message_not_found(id: uuid::Uuid) -> Self {
        Self::domain(
            404,
            "MESSAGE_NOT_FOUND",
            "메시지를 찾을 수 없습니다.",
            "MessageNotFoundException",
        )
        .detail("messageId", id.to_string())
    }

    pub fn binary_content_not_found(id: uuid::Uuid) -> Self {
        Self::domain(
            404,
            "BINARY_CONTENT_NOT_FOUND",
            "바이너리 컨텐츠를 찾을 수 없습니다.",
            "BinaryContentNotFoundException",
        )
        .detail("binaryContentId", id.to_string())
    }

    pub fn read_status_not_found(id: uuid::Uuid) -> Self {
        Self::domain(
            404,
            "READ_STATUS_NOT_FOUND",
            "읽음 상태를 찾을 수 없습니다.",
            "ReadStatusNotFoundException",
        )
        .detail("readStatusId", id.to_string())
    }

    pub fn duplicate_user(key: &str, value: &str) -> Self {
        Self::domain(
            409,
            "DUPLICATE_USER",
            "이미 존재하는 사용자입니다.",
            "UserAlreadyExistsException",
        )
        .detail(key, value)
    }

    pub fn duplicate_read_status(user: uuid::Uuid, channel: uuid::Uuid) -> Self {
        Self::domain(
            409,
            "DUPLICATE_READ_STATUS",
            "이미 존재하는 읽음 상태입니다.",
            "DuplicateReadStatusException",
        )
        .detail("userId", user.to_string())
        .detail("channelId", channel.to_string())
    }

    pub fn not_found_route(path: &str) -> Self {
        Self::new(
            404,
            "NoResourceFoundException",
            "요청한 리소스를 찾을 수 없습니다.",
            "NoResourceFoundException",
        )
        .detail("path", path)
    }

    pub fn method_not_allowed(method: &str) -> Self {
        Self::new(
            405,
            "HttpRequestMethodNotSupportedException",
            "지원하지 않는 HTTP 메서드입니다.",
            "HttpRequestMethodNotSupportedException",
        )
        .detail("method", method)
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            413,
            "MaxUploadSizeExceededException",
            "업로드 크기 제한을 초과했습니다.",
            "MaxUploadSizeExceededException",
        )
        .detail("maxBytes", limit as u64)
    }

    pub fn unsupported_media_type(got: &str) -> Self {
        Self::new(
            415,
            "HttpMediaTypeNotSupportedException",
            "지원하지 않는 Content-Type 입니다.",
            "HttpMediaTypeNotSupportedException",
        )
        .detail("contentType", got)
    }

    /// 429 for a rate limit: names the limit, says when to retry (also as `Retry-After`).
    pub fn too_many_requests(limit: &str, retry_after_secs: u64) -> Self {
        let mut e = Self::new(
            429,
            "TOO_MANY_REQUESTS",
            "요청이 너무 많습니다. 잠시 후 다시 시도해 주세요.",
            "TooManyRequestsException",
        )
        .detail("limit", limit)
        .detail("retryAfterSeconds", retry_after_secs);
        e.retry_after = Some(retry_after_secs);
        e
    }

    pub fn service_unavailable(what: &str) -> Self {
        Self::new(
            503,
            "SERVICE_UNAVAILABLE",
            "서비스를 일시적으로 사용할 수 없습니다.",
            "ServiceUnavailableException",
        )
        .detail("reason", what)
    }

    /// 429: a per-user resource limit (streams, sessions) is reached.
    pub fn limit_reached(what: &str, limit: usize) -> Self {
        Self::new(
            429,
            "TOO_MANY_REQUESTS",
            "요청이 너무 많습니다. 잠시 후 다시 시도해 주세요.",
            "TooManyRequestsException",
        )
        .detail("reason", what)
        .detail("limit", limit)
    }

    pub fn internal(what: impl fmt::Display) -> Self {
        tracing::error!("internal error: {what}");
        Self::new(
            500,
            "INTERNAL_SERVER_ERROR",
            "서버 내부 오류가 발생했습니다.",
            "InternalServerError",
        )
    }
}

impl ApiError {
    /// The resource does not exist (the service's "not found" errors).
    pub fn is_not_found(&self) -> bool {
        self.status == 404
    }

    /// The caller may not do this.
    pub fn is_forbidden(&self) -> bool {
        self.status == 403
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)?;
        if !self.details.is_empty() {
            write!(f, " {}", Value::Object(self.details.clone()))?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

impl From<tokio_postgres::Error> for ApiError {
    fn from(e: tokio_postgres::Error) -> Self {
        ApiError::internal(format!("database: {e}"))
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        tracing::error!("database pool: {e}");
        ApiError::service_unavailable("database unavailable")
    }
}

/// Shorthand used across services.
pub type ApiResult<T> = Result<T, ApiError>;
