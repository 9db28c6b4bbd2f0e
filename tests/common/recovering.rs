//! A STOMP subscriber that survives its instance going away: it reconnects through nginx,
//! subscribes again and refetches the channel's message page, as the web client does.
#![allow(dead_code)]

use crate::common::Api;
use crate::stomp::{End, Kind, StompClient};
use discodeit::proto::stomp::Command;
use serde_json::Value;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Connects and subscribes to `dest`, retrying while nginx finds no live instance.
pub async fn stomp_subscribed(base: &str, kind: Kind, token: &str, dest: &str) -> StompClient {
    let mut c = StompClient::connected(base, kind, token).await;
    let r = c.subscribe_confirmed("s", dest).await;
    assert_eq!(r.command, Command::Receipt, "{r:?}");
    c
}

/// A STOMP subscriber that starts on `start`; when its connection drops it reconnects
/// through nginx, subscribes again and refetches the channel's message page, as the web
/// client does. Returns the message ids it has (live or refetched) and its reconnects.
pub async fn stomp_reader(
    start: String,
    nginx: String,
    token: String,
    channel: String,
    done: watch::Receiver<Option<Vec<String>>>,
) -> (HashSet<String>, usize) {
    let dest = format!("/sub/channels.{channel}.messages");
    let mut client = stomp_subscribed(&start, Kind::Raw, &token, &dest).await;
    let mut rest = Api::new(&nginx);
    rest.token = Some(token.clone());
    let mut seen = HashSet::new();
    let mut reconnects = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(all) = done.borrow().as_ref() {
            if all.iter().all(|id| seen.contains(id)) {
                break;
            }
        }
        if Instant::now() > deadline {
            break;
        }
        match client.next_frame(Duration::from_millis(300)).await {
            Some(f) if f.command == Command::Message => {
                let v: Value = serde_json::from_slice(&f.body).unwrap();
                seen.insert(v["id"].as_str().unwrap().to_string());
            }
            Some(_) => {}
            None => {
                if !matches!(client.end(Duration::from_millis(1)).await, End::Closed(_)) {
                    continue;
                }
                reconnects += 1;
                client = stomp_subscribed(&nginx, Kind::SockJsWebSocket, &token, &dest).await;
                let page = rest
                    .get_ok(&format!("/api/messages?channelId={channel}&size=200"))
                    .await;
                for m in page["content"].as_array().unwrap() {
                    seen.insert(m["id"].as_str().unwrap().to_string());
                }
            }
        }
    }
    (seen, reconnects)
}
