//! The client's address: the TCP peer, or — when the peer is a configured trusted proxy
//! (`DISCODEIT_TRUSTED_PROXIES`, e.g. nginx) — what the proxy says: `X-Real-IP`, else the
//! right-most `X-Forwarded-For` entry that is not itself a trusted proxy. Headers from anyone
//! else are ignored, so a client cannot pick its own address to dodge a rate limit.

use http::HeaderMap;
use std::net::IpAddr;

use crate::config::{canonical, Cidr};

pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let peer = canonical(peer);
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ip) = header("x-real-ip").and_then(|v| v.trim().parse::<IpAddr>().ok()) {
        return canonical(ip);
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .map(canonical)
        .collect::<Vec<_>>();
    forwarded
        .into_iter()
        .rev()
        .find(|ip| !is_trusted(*ip))
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_trusted_peers_may_name_the_client() {
        let trusted = vec![Cidr::parse("10.0.0.0/8").unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let spoof = headers(&[("x-real-ip", "1.1.1.1"), ("x-forwarded-for", "2.2.2.2")]);
        assert_eq!(client_ip(ip("8.8.8.8"), &spoof, &trusted), ip("8.8.8.8"));
        assert_eq!(client_ip(ip("10.0.0.5"), &spoof, &trusted), ip("1.1.1.1"));
        let chain = headers(&[("x-forwarded-for", "6.6.6.6, 3.3.3.3, 10.0.0.7")]);
        assert_eq!(client_ip(ip("10.0.0.5"), &chain, &trusted), ip("3.3.3.3"));
        assert_eq!(
            client_ip(ip("10.0.0.5"), &HeaderMap::new(), &trusted),
            ip("10.0.0.5")
        );
        assert_eq!(
            client_ip(ip("::ffff:8.8.4.4"), &spoof, &trusted),
            ip("8.8.4.4")
        );
        assert_eq!(client_ip(ip("10.0.0.5"), &spoof, &[]), ip("10.0.0.5"));
    }
}
