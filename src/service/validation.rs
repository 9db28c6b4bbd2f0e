//! Bean-validation-style checks with the reference's Korean messages; all failures of one
//! request are collected into one `VALIDATION_ERROR`.

use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};

/// Collects field errors; the first message per field wins.
#[derive(Default)]
pub struct Checks {
    details: Map<String, Value>,
}

impl Checks {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn fail(&mut self, field: &str, msg: &str) {
        self.details
            .entry(field.to_string())
            .or_insert_with(|| Value::String(msg.to_string()));
    }

    pub fn check(&mut self, ok: bool, field: &str, msg: &str) {
        if !ok {
            self.fail(field, msg);
        }
    }

    pub fn finish(self) -> ApiResult<()> {
        if self.details.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(self.details))
        }
    }

    /// PostgreSQL text cannot hold U+0000, so no stored string may contain it.
    pub fn no_nul(&mut self, field: &str, v: &str) {
        self.check(!v.contains('\0'), field, NUL_MESSAGE);
    }

    pub fn username(&mut self, field: &str, v: &str) {
        let n = v.chars().count();
        self.no_nul(field, v);
        self.check(!v.trim().is_empty(), field, "사용자 이름은 필수입니다");
        self.check(
            (3..=50).contains(&n),
            field,
            "사용자 이름은 3자 이상 50자 이하여야 합니다",
        );
    }

    pub fn email(&mut self, field: &str, v: &str) {
        self.no_nul(field, v);
        self.check(!v.trim().is_empty(), field, "이메일은 필수입니다");
        self.check(is_email(v), field, "유효한 이메일 형식이어야 합니다");
        self.check(
            v.chars().count() <= 100,
            field,
            "이메일은 100자 이하여야 합니다",
        );
    }

    pub fn password(&mut self, field: &str, v: &str) {
        let n = v.chars().count();
        self.no_nul(field, v);
        self.check(!v.is_empty(), field, "비밀번호는 필수입니다");
        self.check(
            (8..=60).contains(&n),
            field,
            "비밀번호는 8자 이상 60자 이하여야 합니다",
        );
        self.check(
            password_pattern(v),
            field,
            "비밀번호는 최소 8자 이상, 숫자, 문자, 특수문자를 포함해야 합니다",
        );
    }

    pub fn channel_name(&mut self, field: &str, v: &str) {
        let n = v.chars().count();
        self.no_nul(field, v);
        self.check(!v.trim().is_empty(), field, "채널명은 필수입니다");
        self.check(
            (2..=50).contains(&n),
            field,
            "채널명은 2자 이상 50자 이하여야 합니다",
        );
    }

    pub fn channel_description(&mut self, field: &str, v: &str) {
        self.no_nul(field, v);
        self.check(
            v.chars().count() <= 255,
            field,
            "채널 설명은 255자 이하여야 합니다",
        );
    }

    /// A file part's name and content type must fit their metadata columns.
    pub fn file(&mut self, field: &str, file_name: &str, content_type: &str) {
        self.no_nul(field, file_name);
        self.no_nul(field, content_type);
        self.check(
            file_name.chars().count() <= MAX_FILE_NAME_CHARS,
            field,
            "파일 이름은 255자 이하여야 합니다",
        );
        self.check(
            content_type.chars().count() <= MAX_CONTENT_TYPE_CHARS,
            field,
            "파일 형식(Content-Type)은 100자 이하여야 합니다",
        );
    }

    pub fn message_content(&mut self, field: &str, v: &str, blank_ok: bool) {
        self.no_nul(field, v);
        self.check(
            blank_ok || !v.trim().is_empty(),
            field,
            "메시지 내용은 필수입니다",
        );
        self.check(
            v.chars().count() <= 2000,
            field,
            "메시지 내용은 2000자 이하여야 합니다",
        );
    }
}

/// Refuses a client-supplied collection of `len` items over `limit` (400 naming both).
pub fn at_most(field: &str, len: usize, limit: usize) -> ApiResult<()> {
    if len > limit {
        return Err(ApiError::too_many(field, limit));
    }
    Ok(())
}

/// Longest file name the metadata holds (`binary_contents.file_name`), in characters.
pub const MAX_FILE_NAME_CHARS: usize = 255;
/// Longest content type the metadata holds (`binary_contents.content_type`), in characters.
pub const MAX_CONTENT_TYPE_CHARS: usize = 100;

/// The message for a U+0000 in a text field.
pub const NUL_MESSAGE: &str = "NUL 문자(\\u0000)는 사용할 수 없습니다";

/// Hibernate-validator-like lenient check: `local@domain`, no TLD required.
pub fn is_email(v: &str) -> bool {
    let Some((local, domain)) = v.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !local.contains(char::is_whitespace)
        && !domain.contains(char::is_whitespace)
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && !local.contains('@')
}

/// `^(?=.*[0-9])(?=.*[a-zA-Z])(?=.*[!@#$%^&*]).{8,}$`
pub fn password_pattern(v: &str) -> bool {
    v.chars().count() >= 8
        && !v.contains('\n')
        && v.chars().any(|c| c.is_ascii_digit())
        && v.chars().any(|c| c.is_ascii_alphabetic())
        && v.chars().any(|c| "!@#$%^&*".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert!(is_email("a@b") && is_email("alice@example.com"));
        assert!(!is_email("nope") && !is_email("@x") && !is_email("a@"));
        assert!(password_pattern("p@ssw0rd1"));
        assert!(!password_pattern("password1") && !password_pattern("p@ss1"));
        let mut c = Checks::new();
        c.username("username", "ab");
        c.password("password", "short");
        c.channel_name("name", "a\0b");
        c.file("profile", &"x".repeat(256), "image/png");
        let e = c.finish().unwrap_err();
        assert_eq!(e.code, "VALIDATION_ERROR");
        assert_eq!(e.details.len(), 4);
        assert_eq!(e.details["name"], NUL_MESSAGE);
    }
}
