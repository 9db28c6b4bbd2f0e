//! HS256 JSON Web Tokens, signed and verified with `ring::hmac` (constant-time compare).
//!
//! Claims follow the reference (`sub`, `userDto`, `iat`, `exp`) plus `jti` (unique id), `sid`
//! (the login session, kept across refresh rotation) and `typ` (`access` or `refresh`, so a
//! refresh token is never accepted as an access token). `sid` and `typ` are required: a token
//! without them (from an older version, or forged with a leaked secret of one) is malformed.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::UserDto;

/// The token payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Claims {
    pub sub: String,
    pub user_dto: UserDto,
    pub iat: i64,
    pub exp: i64,
    #[serde(default)]
    pub jti: Option<Uuid>,
    pub sid: Uuid,
    pub typ: TokenType,
}

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Access,
    Refresh,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum JwtError {
    Malformed,
    UnsupportedAlgorithm,
    BadSignature,
    /// Signature valid but `exp` passed; the claims are returned for the cases that may still
    /// accept it (STOMP CONNECT with a live session).
    Expired(Box<Claims>),
    WrongType,
}

impl std::fmt::Display for JwtError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            JwtError::Malformed => "malformed token",
            JwtError::UnsupportedAlgorithm => "unsupported token algorithm",
            JwtError::BadSignature => "invalid token signature",
            JwtError::Expired(_) => "token expired",
            JwtError::WrongType => "wrong token type",
        })
    }
}

/// Signs and verifies tokens with one secret.
pub struct JwtCodec {
    key: hmac::Key,
}

/// The fixed header: exactly `{"alg":"HS256"}` like the reference.
const HEADER_B64: &str = "eyJhbGciOiJIUzI1NiJ9";

impl JwtCodec {
    pub fn new(secret: &[u8]) -> Self {
        JwtCodec {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    pub fn sign(&self, claims: &Claims) -> String {
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        let mut token = String::with_capacity(64 + payload.len() * 2);
        token.push_str(HEADER_B64);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let tag = hmac::sign(&self.key, token.as_bytes());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(tag.as_ref(), &mut token);
        token
    }

    /// Verifies algorithm, signature and expiry (at `now` epoch seconds).
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, JwtError> {
        let mut parts = token.trim().splitn(3, '.');
        let (Some(h), Some(p), Some(s)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(JwtError::Malformed);
        };
        if s.contains('.') {
            return Err(JwtError::Malformed);
        }
        let header = URL_SAFE_NO_PAD.decode(h).map_err(|_| JwtError::Malformed)?;
        let header: serde_json::Value =
            serde_json::from_slice(&header).map_err(|_| JwtError::Malformed)?;
        if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
            return Err(JwtError::UnsupportedAlgorithm);
        }
        let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwtError::Malformed)?;
        let signed = &token.trim()[..h.len() + 1 + p.len()];
        hmac::verify(&self.key, signed.as_bytes(), &sig).map_err(|_| JwtError::BadSignature)?;
        let payload = URL_SAFE_NO_PAD.decode(p).map_err(|_| JwtError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| JwtError::Malformed)?;
        if claims.exp <= now {
            return Err(JwtError::Expired(Box::new(claims)));
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Role;

    fn claims(exp: i64) -> Claims {
        Claims {
            sub: "alice".into(),
            user_dto: UserDto {
                id: Uuid::new_v4(),
                username: "alice".into(),
                email: "a@x".into(),
                profile: None,
                online: None,
                role: Role::User,
            },
            iat: 100,
            exp,
            jti: Some(Uuid::new_v4()),
            sid: Uuid::new_v4(),
            typ: TokenType::Access,
        }
    }

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn round_trip_and_header() {
        let c = JwtCodec::new(SECRET);
        let t = c.sign(&claims(1000));
        assert!(t.starts_with("eyJhbGciOiJIUzI1NiJ9."));
        assert_eq!(c.verify(&t, 500).unwrap(), claims_eq(&t));
        fn claims_eq(t: &str) -> Claims {
            let p = t.split('.').nth(1).unwrap();
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
        }
    }

    #[test]
    fn rejects_tampering_expiry_and_alg_none() {
        let c = JwtCodec::new(SECRET);
        let t = c.sign(&claims(1000));
        assert!(matches!(c.verify(&t, 1000), Err(JwtError::Expired(_))));
        let other = JwtCodec::new(b"another-secret-another-secret-xx");
        assert_eq!(other.verify(&t, 1), Err(JwtError::BadSignature));
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(br#"{"sub":"mallory"}"#);
        parts[1] = &forged;
        assert_eq!(c.verify(&parts.join("."), 1), Err(JwtError::BadSignature));
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            t.split('.').nth(1).unwrap()
        );
        assert_eq!(c.verify(&none, 1), Err(JwtError::UnsupportedAlgorithm));
        assert_eq!(c.verify("abc", 1), Err(JwtError::Malformed));
        assert_eq!(c.verify("a.b.c.d", 1), Err(JwtError::Malformed));
    }

    #[test]
    fn sid_and_typ_are_required() {
        let c = JwtCodec::new(SECRET);
        let full = serde_json::to_value(claims(1000)).unwrap();
        for missing in ["sid", "typ"] {
            let mut v = full.clone();
            v.as_object_mut().unwrap().remove(missing);
            let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&v).unwrap());
            let input = format!("{HEADER_B64}.{payload}");
            let tag = hmac::sign(&c.key, input.as_bytes());
            let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
            assert_eq!(c.verify(&token, 1), Err(JwtError::Malformed), "{missing}");
        }
        let mut v = full;
        v["typ"] = "other".into();
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&v).unwrap());
        let input = format!("{HEADER_B64}.{payload}");
        let tag = hmac::sign(&c.key, input.as_bytes());
        let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
        assert_eq!(c.verify(&token, 1), Err(JwtError::Malformed));
    }
}
