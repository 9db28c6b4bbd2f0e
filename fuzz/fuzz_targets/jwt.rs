//! JWT verification (`security::jwt`). Half the inputs are verified as they are; the other half
//! become a token with a valid signature over fuzzed header and payload bytes, so the claim
//! parsing behind the signature check is reached too. Properties: verification never panics;
//! a token the codec signed verifies back to the same claims.
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use discodeit::security::jwt::{JwtCodec, JwtError};
use libfuzzer_sys::fuzz_target;
use ring::hmac;
use std::sync::OnceLock;

const SECRET: &[u8] = b"fuzz-secret-fuzz-secret-fuzz-secret-0123456789";
const NOW: i64 = 1_800_000_000;

static CODEC: OnceLock<JwtCodec> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let codec = CODEC.get_or_init(|| JwtCodec::new(SECRET));
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let token = if mode % 2 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        // `header \x01 payload`: both fuzzed, then signed with the codec's secret.
        let text = String::from_utf8_lossy(rest);
        let (header, payload) = text
            .split_once('\u{1}')
            .unwrap_or(("{\"alg\":\"HS256\"}", &text));
        let mut token = URL_SAFE_NO_PAD.encode(header);
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(payload));
        let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET);
        let tag = hmac::sign(&key, token.as_bytes());
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(tag.as_ref()));
        token
    };
    let claims = match codec.verify(&token, NOW) {
        Ok(c) => {
            assert!(c.exp > NOW, "an expired token verified");
            c
        }
        Err(JwtError::Expired(c)) => {
            assert!(c.exp <= NOW);
            *c
        }
        Err(_) => return,
    };
    // What the codec signs, it verifies back unchanged.
    let resigned = codec.sign(&claims);
    match codec.verify(&resigned, NOW) {
        Ok(back) => assert_eq!(back, claims),
        Err(JwtError::Expired(back)) => assert_eq!(*back, claims),
        Err(e) => panic!("own token refused: {e:?}"),
    }
});
