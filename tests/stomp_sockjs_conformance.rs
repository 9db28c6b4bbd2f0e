//! The key SockJS 0.3.3 behaviours (the ones the current sockjs-protocol suite checks; run
//! the suite itself with `scripts/sockjs-conformance.sh`),
//! against the conformance test server `examples/sockjs-test-server.rs`, which mounts echo
//! services on the same session and transport code as `/ws`.

use futures_util::{SinkExt, StreamExt};
use reqwest::{Client, Response};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// The example server on a free port, killed on drop.
struct SockJsServer {
    base: String,
    child: Child,
}

impl Drop for SockJsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn example_binary() -> std::path::PathBuf {
    // target/<profile>/deps/<test> -> target/<profile>/examples/sockjs-test-server
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    let bin = dir.join("sockjs-test-server");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut args = vec!["build", "--example", "sockjs-test-server"];
    if dir.parent().and_then(|p| p.file_name()) == Some(std::ffi::OsStr::new("release")) {
        args.push("--release");
    }
    let status = Command::new(cargo)
        .args(args)
        .stdout(Stdio::null())
        .status()
        .expect("cargo build --example sockjs-test-server");
    assert!(status.success(), "building the example failed");
    bin
}

async fn start() -> SockJsServer {
    static BIN: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    let bin = BIN.get_or_init(example_binary).clone();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(bin)
        .args(["--port", &port.to_string()])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn sockjs-test-server");
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("{base}/echo")).await.is_err() {
        assert!(Instant::now() < deadline, "test server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    SockJsServer { base, child }
}

fn session(base: &str, service: &str) -> String {
    format!("{base}/{service}/000/{}", uuid::Uuid::new_v4().simple())
}

async fn post(url: &str, body: &str) -> Response {
    Client::new()
        .post(url)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

/// Reads a streaming response up to and including `terminator`, `n` times.
struct StreamReader {
    resp: Response,
    buf: Vec<u8>,
}

impl StreamReader {
    async fn next(&mut self, terminator: &[u8]) -> Option<String> {
        loop {
            if let Some(i) = self
                .buf
                .windows(terminator.len())
                .position(|w| w == terminator)
            {
                let part: Vec<u8> = self.buf.drain(..i + terminator.len()).collect();
                return Some(String::from_utf8(part).unwrap());
            }
            match tokio::time::timeout(Duration::from_secs(5), self.resp.chunk()).await {
                Ok(Ok(Some(c))) => self.buf.extend_from_slice(&c),
                _ => return None,
            }
        }
    }

    /// True when the response ends (no more bytes).
    async fn ended(&mut self) -> bool {
        self.buf.is_empty()
            && matches!(
                tokio::time::timeout(Duration::from_secs(5), self.resp.chunk()).await,
                Ok(Ok(None))
            )
    }
}

#[tokio::test]
async fn static_urls_info_iframe_and_preflight() {
    let s = start().await;
    let greeting = reqwest::get(format!("{}/echo", s.base)).await.unwrap();
    assert_eq!(
        greeting.headers()["content-type"],
        "text/plain;charset=UTF-8"
    );
    assert_eq!(greeting.text().await.unwrap(), "Welcome to SockJS!\n");
    for bad in [
        "/a",
        "/a.html",
        "//",
        "/a/a",
        "/a/a/",
        "/iframe.htm",
        "/IFRAME.HTML",
        "/iframe-/.html",
    ] {
        let r = reqwest::get(format!("{}/echo{bad}", s.base)).await.unwrap();
        assert_eq!(r.status(), 404, "{bad}");
    }

    let http = Client::new();
    let info = http
        .get(format!("{}/echo/info", s.base))
        .send()
        .await
        .unwrap();
    // No Origin: `*` and no credentials (browsers refuse that pair).
    assert_eq!(info.headers()["access-control-allow-origin"], "*");
    assert!(info
        .headers()
        .get("access-control-allow-credentials")
        .is_none());
    assert_eq!(info.headers()["vary"], "Origin");
    assert_eq!(
        info.headers()["cache-control"],
        "no-store, no-cache, no-transform, must-revalidate, max-age=0"
    );
    assert!(info.headers().get("set-cookie").is_none());
    let a: serde_json::Value = info.json().await.unwrap();
    let b: serde_json::Value = reqwest::get(format!("{}/echo/info", s.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(a["websocket"], true);
    assert_eq!(a["cookie_needed"], false);
    assert_ne!(a["entropy"], b["entropy"]);
    let off: serde_json::Value = reqwest::get(format!("{}/disabled_websocket_echo/info", s.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(off["websocket"], false);
    let cookie: serde_json::Value = reqwest::get(format!("{}/cookie_needed_echo/info", s.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cookie["cookie_needed"], true);

    // The `null` origin of a `file://` page is echoed, with credentials, like any other.
    let null_origin = http
        .get(format!("{}/echo/info", s.base))
        .header("Origin", "null")
        .send()
        .await
        .unwrap();
    assert_eq!(null_origin.headers()["access-control-allow-origin"], "null");
    assert_eq!(
        null_origin.headers()["access-control-allow-credentials"],
        "true"
    );

    for (url, methods) in [
        (format!("{}/echo/info", s.base), "OPTIONS, GET"),
        (format!("{}/echo/abc/abc/xhr", s.base), "OPTIONS, POST"),
        (format!("{}/echo/abc/abc/xhr_send", s.base), "OPTIONS, POST"),
        (
            format!("{}/echo/abc/abc/xhr_streaming", s.base),
            "OPTIONS, POST",
        ),
    ] {
        let r = http
            .request(reqwest::Method::OPTIONS, &url)
            .header("Origin", "test")
            .header("Access-Control-Request-Headers", "a, b")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "{url}");
        let h = r.headers();
        assert_eq!(h["access-control-allow-methods"], methods);
        assert_eq!(h["access-control-allow-origin"], "test");
        assert_eq!(h["access-control-allow-headers"], "a, b");
        assert!(
            h["access-control-max-age"]
                .to_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
                > 1_000_000
        );
        assert!(h["cache-control"].to_str().unwrap().contains("public"));
        assert!(h.contains_key("expires"));
    }

    let iframe = reqwest::get(format!("{}/echo/iframe.html", s.base))
        .await
        .unwrap();
    assert_eq!(iframe.headers()["content-type"], "text/html;charset=UTF-8");
    assert!(iframe.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("max-age=31536000"));
    let etag = iframe.headers()["etag"].to_str().unwrap().to_string();
    // The client script first, then the bootstrap call (the sockjs-node page).
    let page = iframe.text().await.unwrap();
    let script = page.find("<script src=\"").expect("client script");
    let bootstrap = page
        .find("    document.domain = document.domain;\n    SockJS.bootstrap_iframe();\n")
        .expect("bootstrap call");
    assert!(script < bootstrap, "{page}");
    for path in ["/iframe-a.html", "/iframe-0.1.2abc-dirty.2144.html?t=1"] {
        let r = reqwest::get(format!("{}/echo{path}", s.base))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
    }
    let cached = http
        .get(format!("{}/echo/iframe.html", s.base))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);
    assert!(cached.headers().get("content-type").is_none());
    assert!(cached.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn xhr_polling_and_send() {
    let s = start().await;
    let url = session(&s.base, "echo");
    let open = post(&format!("{url}/xhr"), "").await;
    assert_eq!(
        open.headers()["content-type"],
        "application/javascript;charset=UTF-8"
    );
    assert_eq!(open.text().await.unwrap(), "o\n");
    let sent = post(&format!("{url}/xhr_send"), r#"["a","b\u0000\n"]"#).await;
    assert_eq!(sent.status(), 204);
    assert_eq!(sent.headers()["content-type"], "text/plain;charset=UTF-8");
    // Both messages in one frame.
    assert_eq!(
        post(&format!("{url}/xhr"), "").await.text().await.unwrap(),
        "a[\"a\",\"b\\u0000\\n\"]\n"
    );

    let broken = post(&format!("{url}/xhr_send"), "[\"x").await;
    assert_eq!(broken.status(), 500);
    assert!(broken
        .text()
        .await
        .unwrap()
        .contains("Broken JSON encoding."));
    let empty = post(&format!("{url}/xhr_send"), "").await;
    assert_eq!(empty.status(), 500);
    assert!(empty.text().await.unwrap().contains("Payload expected."));
    let unknown = post(
        &format!("{}/xhr_send", session(&s.base, "echo")),
        r#"["x"]"#,
    )
    .await;
    assert_eq!(unknown.status(), 404);
    for bad in ["//xhr", "/a./a/xhr", "/a/a./xhr", "/xhr"] {
        assert_eq!(
            post(&format!("{}/echo{bad}", s.base), "").await.status(),
            404,
            "{bad}"
        );
    }

    // A second receiver is refused with 2010 and leaves the first one alone.
    let waiting = {
        let url = url.clone();
        tokio::spawn(async move { post(&format!("{url}/xhr"), "").await.text().await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = post(&format!("{url}/xhr"), "").await.text().await.unwrap();
    assert_eq!(second, "c[2010,\"Another connection still open\"]\n");
    post(&format!("{url}/xhr_send"), r#"["late"]"#).await;
    assert_eq!(waiting.await.unwrap(), "a[\"late\"]\n");
}

#[tokio::test]
async fn close_service_serves_its_close_frame_until_the_session_expires() {
    let s = start().await;
    let url = session(&s.base, "close");
    assert_eq!(
        post(&format!("{url}/xhr"), "").await.text().await.unwrap(),
        "o\n"
    );
    for _ in 0..2 {
        assert_eq!(
            post(&format!("{url}/xhr"), "").await.text().await.unwrap(),
            "c[3000,\"Go away!\"]\n"
        );
    }
    // Streaming: open, close frame, end of response.
    let url = session(&s.base, "close");
    let resp = Client::new()
        .post(format!("{url}/xhr_streaming"))
        .send()
        .await
        .unwrap();
    let mut r = StreamReader {
        resp,
        buf: Vec::new(),
    };
    assert_eq!(
        r.next(b"\n").await.unwrap(),
        format!("{}\n", "h".repeat(2048))
    );
    assert_eq!(r.next(b"\n").await.unwrap(), "o\n");
    assert_eq!(r.next(b"\n").await.unwrap(), "c[3000,\"Go away!\"]\n");
    assert!(r.ended().await);
}

#[tokio::test]
async fn streaming_transports_frame_and_limit_their_responses() {
    let s = start().await;
    // xhr_streaming: the 2 KiB prelude, then frames; ends after 4096 bytes (test server).
    let url = session(&s.base, "echo");
    let resp = Client::new()
        .post(format!("{url}/xhr_streaming"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["content-type"],
        "application/javascript;charset=UTF-8"
    );
    let mut r = StreamReader {
        resp,
        buf: Vec::new(),
    };
    assert_eq!(r.next(b"\n").await.unwrap().len(), 2049);
    assert_eq!(r.next(b"\n").await.unwrap(), "o\n");
    let msg = format!("\"{}\"", "x".repeat(128));
    for _ in 0..31 {
        assert_eq!(
            post(&format!("{url}/xhr_send"), &format!("[{msg}]"))
                .await
                .status(),
            204
        );
        assert_eq!(r.next(b"\n").await.unwrap(), format!("a[{msg}]\n"));
    }
    assert!(r.ended().await, "the response must end after 4096 bytes");
    // The session survives the end of a streaming response.
    post(&format!("{url}/xhr_send"), r#"["kept"]"#).await;
    assert_eq!(
        post(&format!("{url}/xhr"), "").await.text().await.unwrap(),
        "a[\"kept\"]\n"
    );

    // eventsource
    let url = session(&s.base, "echo");
    let resp = Client::new()
        .get(format!("{url}/eventsource"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(
        resp.headers()["cache-control"],
        "no-store, no-cache, no-transform, must-revalidate, max-age=0"
    );
    let mut r = StreamReader {
        resp,
        buf: Vec::new(),
    };
    assert_eq!(r.next(b"\r\n").await.unwrap(), "\r\n");
    assert_eq!(r.next(b"\r\n\r\n").await.unwrap(), "data: o\r\n\r\n");
    post(&format!("{url}/xhr_send"), r#"["  \u0000\n\r "]"#).await;
    assert_eq!(
        r.next(b"\r\n\r\n").await.unwrap(),
        "data: a[\"  \\u0000\\n\\r \"]\r\n\r\n"
    );
    let big = "x".repeat(4096);
    post(&format!("{url}/xhr_send"), &format!("[\"{big}\"]")).await;
    assert_eq!(
        r.next(b"\r\n\r\n").await.unwrap(),
        format!("data: a[\"{big}\"]\r\n\r\n")
    );
    assert!(r.ended().await);

    // htmlfile: callback required and validated, script-tag frames.
    let url = session(&s.base, "echo");
    let none = reqwest::get(format!("{url}/htmlfile")).await.unwrap();
    assert_eq!(none.status(), 500);
    assert!(none
        .text()
        .await
        .unwrap()
        .contains("\"callback\" parameter required"));
    let bad = reqwest::get(format!("{url}/htmlfile?c=alert(1)"))
        .await
        .unwrap();
    assert_eq!(bad.status(), 500);
    assert!(bad
        .text()
        .await
        .unwrap()
        .contains("invalid \"callback\" parameter"));
    let resp = reqwest::get(format!("{url}/htmlfile?c=%63allback"))
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/html;charset=UTF-8");
    let mut r = StreamReader {
        resp,
        buf: Vec::new(),
    };
    let head = r.next(b"</script>").await.unwrap();
    assert!(head.contains("var c = parent.callback;"));
    let rest = r.next(b"\r\n").await.unwrap();
    assert!(head.len() + rest.len() > 1024, "prelude padded to 1 KiB");
    assert_eq!(
        r.next(b"\r\n").await.unwrap(),
        "<script>\np(\"o\");\n</script>\r\n"
    );
    post(&format!("{url}/xhr_send"), r#"["x"]"#).await;
    assert_eq!(
        r.next(b"\r\n").await.unwrap(),
        "<script>\np(\"a[\\\"x\\\"]\");\n</script>\r\n"
    );
}

#[tokio::test]
async fn jsonp_and_cookies() {
    let s = start().await;
    let url = session(&s.base, "echo");
    let first = reqwest::get(format!("{url}/jsonp?c=%63allback"))
        .await
        .unwrap();
    assert_eq!(
        first.headers()["content-type"],
        "application/javascript;charset=UTF-8"
    );
    assert_eq!(first.text().await.unwrap(), "/**/callback(\"o\");\r\n");
    let form = Client::new()
        .post(format!("{url}/jsonp_send"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("d=%5B%22x%22%5D")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200);
    assert_eq!(form.text().await.unwrap(), "ok");
    let raw = Client::new()
        .post(format!("{url}/jsonp_send"))
        .header("Content-Type", "text/plain")
        .body(r#"["%61bc"]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.text().await.unwrap(), "ok");
    let next = reqwest::get(format!("{url}/jsonp?c=x"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(next, "/**/x(\"a[\\\"x\\\",\\\"%61bc\\\"]\");\r\n");
    for body in ["", "d=", "p=p"] {
        let r = Client::new()
            .post(format!("{url}/jsonp_send"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 500);
        assert!(r.text().await.unwrap().contains("Payload expected."));
    }

    // JSESSIONID on the HTTP transports of the cookie_needed service only.
    let url = session(&s.base, "cookie_needed_echo");
    let r = post(&format!("{url}/xhr"), "").await;
    assert_eq!(r.headers()["set-cookie"], "JSESSIONID=dummy; Path=/");
    let r = Client::new()
        .post(format!("{}/xhr", session(&s.base, "cookie_needed_echo")))
        .header("Cookie", "JSESSIONID=abcdef")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["set-cookie"], "JSESSIONID=abcdef; Path=/");
    let plain = post(&format!("{}/xhr", session(&s.base, "echo")), "").await;
    assert!(plain.headers().get("set-cookie").is_none());
}

#[tokio::test]
async fn websocket_transports() {
    let s = start().await;
    let ws_base = s.base.replacen("http", "ws", 1);
    // SockJS framing: o, a[...], empty messages ignored; session ids may be reused.
    let url = format!("{}/websocket", session(&ws_base, "echo"));
    let (mut a, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    let (mut b, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    for ws in [&mut a, &mut b] {
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::Text("o".into()));
    }
    a.send(Message::Text("".into())).await.unwrap();
    a.send(Message::Text(r#"["a"]"#.into())).await.unwrap();
    b.send(Message::Text(r#""b""#.into())).await.unwrap();
    assert_eq!(
        a.next().await.unwrap().unwrap(),
        Message::Text(r#"a["a"]"#.into())
    );
    assert_eq!(
        b.next().await.unwrap().unwrap(),
        Message::Text(r#"a["b"]"#.into())
    );
    // Broken JSON ends the connection.
    a.send(Message::Text("[\"a".into())).await.unwrap();
    assert!(matches!(
        a.next().await,
        None | Some(Err(_)) | Some(Ok(Message::Close(_)))
    ));

    // The close service: o, c[3000,...], then the socket closes.
    let url = format!("{}/websocket", session(&ws_base, "close"));
    let (mut c, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    assert_eq!(c.next().await.unwrap().unwrap(), Message::Text("o".into()));
    assert_eq!(
        c.next().await.unwrap().unwrap(),
        Message::Text(r#"c[3000,"Go away!"]"#.into())
    );
    assert!(matches!(
        c.next().await,
        None | Some(Err(_)) | Some(Ok(Message::Close(_)))
    ));

    // Raw /websocket: no framing at all.
    let (mut raw, _) = tokio_tungstenite::connect_async(format!("{ws_base}/echo/websocket"))
        .await
        .unwrap();
    raw.send(Message::Text("Hello world!\u{ffff}".into()))
        .await
        .unwrap();
    assert_eq!(
        raw.next().await.unwrap().unwrap(),
        Message::Text("Hello world!\u{ffff}".into())
    );

    // Disabled websocket: 404; plain GET and POST on a websocket URL: 400 and 405.
    let off = reqwest::get(format!(
        "{}/websocket",
        session(&s.base, "disabled_websocket_echo")
    ))
    .await
    .unwrap();
    assert_eq!(off.status(), 404);
    let get = reqwest::get(format!("{}/echo/0/0/websocket", s.base))
        .await
        .unwrap();
    assert_eq!(get.status(), 400);
    assert!(get
        .text()
        .await
        .unwrap()
        .contains("Can \"Upgrade\" only to \"WebSocket\"."));
    let p = post(&format!("{}/echo/0/0/websocket", s.base), "").await;
    assert_eq!(p.status(), 405);
    assert_eq!(p.headers()["allow"], "GET");
}

#[tokio::test]
async fn aborted_receiver_interrupts_and_idle_sessions_expire() {
    let s = start().await;
    let url = session(&s.base, "echo");
    let resp = Client::new()
        .post(format!("{url}/xhr_streaming"))
        .send()
        .await
        .unwrap();
    let mut r = StreamReader {
        resp,
        buf: Vec::new(),
    };
    r.next(b"\n").await.unwrap();
    assert_eq!(r.next(b"\n").await.unwrap(), "o\n");
    drop(r); // the network drops the receiving request
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let body = post(&format!("{url}/xhr"), "").await.text().await.unwrap();
        if body == "c[1002,\"Connection interrupted\"]\n" {
            break;
        }
        assert_eq!(body, "c[2010,\"Another connection still open\"]\n");
        assert!(Instant::now() < deadline, "abort not noticed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Without a receiver a session lives 5 s (disconnect delay), then it is gone.
    let url = session(&s.base, "echo");
    assert_eq!(
        post(&format!("{url}/xhr"), "").await.text().await.unwrap(),
        "o\n"
    );
    assert_eq!(
        post(&format!("{url}/xhr_send"), r#"["x"]"#).await.status(),
        204
    );
    tokio::time::sleep(Duration::from_millis(8000)).await;
    assert_eq!(
        post(&format!("{url}/xhr_send"), r#"["x"]"#).await.status(),
        404
    );
}
