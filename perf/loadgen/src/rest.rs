//! The few REST calls the benchmarks need: CSRF token, sign-up, login, public channel.

use base64::Engine;
use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::Res;

/// Password of every generated user (meets the server's password rules).
pub const PASSWORD: &str = "p@ssw0rd1";

/// A REST client that carries one XSRF token pair on every POST; it exists so callers never
/// repeat the double-submit dance.
#[derive(Clone)]
pub struct Rest {
    http: reqwest::Client,
    base: String,
    xsrf: String,
}

/// A logged-in user.
#[derive(Clone, Debug)]
pub struct Login {
    pub user_id: String,
    pub token: String,
}

impl Rest {
    /// `GET /api/auth/csrf-token`: the `XSRF-TOKEN` cookie (or the body's token) for later POSTs.
    pub async fn connect(base: &str) -> Res<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()?;
        let resp = http
            .get(format!("{base}/api/auth/csrf-token"))
            .send()
            .await?;
        let from_cookie = resp
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| {
                c.split(';')
                    .next()
                    .and_then(|kv| kv.trim().strip_prefix("XSRF-TOKEN="))
                    .map(str::to_string)
            });
        let body: Value = resp.json().await?;
        let xsrf = match from_cookie {
            Some(c) if !c.is_empty() => c,
            _ => body["token"]
                .as_str()
                .ok_or("csrf-token: no XSRF-TOKEN cookie and no token in the body")?
                .to_string(),
        };
        Ok(Rest {
            http,
            base: base.to_string(),
            xsrf,
        })
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.base))
            .header("Cookie", format!("XSRF-TOKEN={}", self.xsrf))
            .header("X-XSRF-TOKEN", &self.xsrf)
    }

    /// `POST /api/users`; an existing user (409) is fine, so reruns reuse the same names.
    pub async fn sign_up(&self, username: &str) -> Res<()> {
        let body = json!({
            "username": username,
            "email": format!("{username}@bench.local"),
            "password": PASSWORD,
        });
        let part = Part::text(body.to_string()).mime_str("application/json")?;
        let form = Form::new().part("userCreateRequest", part);
        let resp = self.post("/api/users").multipart(form).send().await?;
        match resp.status() {
            StatusCode::CREATED | StatusCode::OK | StatusCode::CONFLICT => Ok(()),
            s => Err(format!("sign-up {username}: {s} {}", resp.text().await?).into()),
        }
    }

    /// `POST /api/auth/login` → the access token (a JSON string) and the user id it carries.
    pub async fn login(&self, username: &str, password: &str) -> Res<Login> {
        let resp = self
            .post("/api/auth/login")
            .json(&json!({ "username": username, "password": password }))
            .send()
            .await?;
        if !resp.status().is_success() {
            let s = resp.status();
            return Err(format!("login {username}: {s} {}", resp.text().await?).into());
        }
        let token: String = serde_json::from_str(&resp.text().await?)?;
        let user_id = user_id_of(&token)?;
        Ok(Login { user_id, token })
    }

    /// `POST /api/channels/public` → the new channel's id.
    pub async fn create_public_channel(&self, token: &str, name: &str) -> Res<String> {
        let resp = self
            .post("/api/channels/public")
            .bearer_auth(token)
            .json(&json!({ "name": name, "description": "loadgen" }))
            .send()
            .await?;
        if resp.status() != StatusCode::CREATED && resp.status() != StatusCode::OK {
            let s = resp.status();
            return Err(format!("create channel: {s} {}", resp.text().await?).into());
        }
        let v: Value = resp.json().await?;
        Ok(v["id"].as_str().ok_or("channel without id")?.to_string())
    }
}

/// The `userDto.id` claim of an access token (payload only; the server checks the signature).
fn user_id_of(token: &str) -> Res<String> {
    let payload = token.split('.').nth(1).ok_or("token is not a JWT")?;
    let raw =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('='))?;
    let v: Value = serde_json::from_slice(&raw)?;
    Ok(v["userDto"]["id"]
        .as_str()
        .ok_or("token without userDto.id")?
        .to_string())
}

/// Signs up (if needed) and logs in `count` users named `<prefix><i>`, `parallel` at a time
/// (each login costs the server a bcrypt check, so this is the slow part of the set-up).
pub async fn users(rest: &Rest, prefix: &str, count: usize, parallel: usize) -> Res<Vec<Login>> {
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
    let mut tasks = Vec::with_capacity(count);
    for i in 0..count {
        let rest = rest.clone();
        let name = format!("{prefix}{i}");
        let sem = sem.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await?;
            rest.sign_up(&name).await?;
            rest.login(&name, PASSWORD).await
        }));
    }
    let mut out = Vec::with_capacity(count);
    for t in tasks {
        out.push(t.await??);
    }
    Ok(out)
}
