//! CSRF double-submit check as Spring's cookie repository does it: cookie `XSRF-TOKEN`,
//! header `X-XSRF-TOKEN`, raw comparison.

pub const COOKIE: &str = "XSRF-TOKEN";
pub const HEADER: &str = "x-xsrf-token";

/// Methods that need the token.
pub fn method_needs_token(method: &http::Method) -> bool {
    !matches!(
        *method,
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS | http::Method::TRACE
    )
}

/// Constant-time equality of the header and cookie values; both must be present.
pub fn tokens_match(cookie: Option<&str>, header: Option<&str>) -> bool {
    match (cookie, header) {
        (Some(c), Some(h)) if !c.is_empty() => {
            c.len() == h.len()
                && c.bytes()
                    .zip(h.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn double_submit() {
        assert!(tokens_match(Some("abc"), Some("abc")));
        assert!(!tokens_match(Some("abc"), Some("abd")));
        assert!(!tokens_match(None, Some("abc")));
        assert!(!tokens_match(Some("abc"), None));
        assert!(!tokens_match(Some(""), Some("")));
        assert!(method_needs_token(&http::Method::POST));
        assert!(!method_needs_token(&http::Method::GET));
    }
}
