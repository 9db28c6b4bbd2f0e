//! The router's path resolution (`net::router::resolve`) and the request context's query,
//! cookie and Bearer parsing, on request targets as hyper hands them over. Properties: a
//! resolved route answers the request's method; a refusal is 400, 404 or 405.
#![no_main]

use discodeit::net::request::{parse_query, Ctx};
use discodeit::net::router::resolve;
use http::{HeaderMap, HeaderValue, Method, Uri};
use libfuzzer_sys::fuzz_target;

const METHODS: [&str; 8] = [
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "BREW",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let (target, header) = text.split_once('\u{1}').unwrap_or((&text, ""));
    // Only targets hyper would accept reach the router.
    let Ok(uri) = target.parse::<Uri>() else {
        return;
    };
    let Ok(method) = Method::from_bytes(METHODS[usize::from(selector % 8)].as_bytes()) else {
        return;
    };
    match resolve(&method, uri.path()) {
        Ok(route) => {
            let (want, _) = route.template();
            assert!(want == method || (method == Method::HEAD && want == Method::GET));
        }
        Err(e) => assert!(matches!(e.status, 400 | 404 | 405), "status {}", e.status),
    }

    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(header) {
        headers.insert(http::header::COOKIE, v.clone());
        headers.insert(http::header::AUTHORIZATION, v);
    }
    let ctx = Ctx {
        method,
        path: uri.path().to_string(),
        query: uri.query().map(parse_query).unwrap_or_default(),
        headers,
        request_id: String::new(),
        body: None,
        remote: ([127, 0, 0, 1], 1).into(),
        set_cookies: Vec::new(),
        takeover: None,
    };
    for name in [
        "channelId",
        "userId",
        "page",
        "size",
        "sort",
        "cursor",
        "lastEventId",
    ] {
        let _ = ctx.query(name);
        for v in ctx.query_all(name) {
            assert!(!v.is_empty() && !v.contains(','));
        }
        let _ = ctx.query_uuid(name);
        let _ = ctx.cookie(name);
    }
    if let Some(token) = ctx.bearer() {
        assert!(!token.is_empty());
    }
});
