//! Outgoing connections spread over several loopback source addresses, and how one ended.
//!
//! A leaf: `sse`, `stomp` and `worker` use it, it uses none of them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use tokio::net::{TcpSocket, TcpStream};

/// Source addresses `127.0.0.2 ..= 127.0.0.(1 + n)`: each has its own ~28k ephemeral ports
/// (a socket bound before connect reserves its port for every destination), so tens of
/// thousands of connections to one server port never run out of ports.
pub fn sources(n: usize) -> Vec<Ipv4Addr> {
    (0..n.clamp(1, 250))
        .map(|i| Ipv4Addr::new(127, 0, 0, 2 + i as u8))
        .collect()
}

/// Connects to `server` from `source` with Nagle off (frames are small and latency-measured).
pub async fn connect_from(source: Ipv4Addr, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
    let stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// `host:port` of an `http://` or `ws://` base URL, resolved to an address.
pub fn server_addr(base: &str) -> Result<(SocketAddr, String), String> {
    let rest = base
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(base)
        .trim_end_matches('/');
    let host = rest.split('/').next().unwrap_or(rest).to_string();
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&host)
        .map_err(|e| format!("{host}: {e}"))?
        .find(|a| a.is_ipv4())
        .ok_or_else(|| format!("{host}: no IPv4 address"))?;
    Ok((addr, host))
}

/// Where one connection goes from.
pub struct Conn {
    pub server: SocketAddr,
    pub host: String,
    pub source: Ipv4Addr,
}

/// How a connection the server ended went: whether it said why (a WebSocket close frame, a
/// STOMP ERROR frame, the SSE stream's last `: closed <kind> <text>` comment), and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The server said why: the reason as it was given (`ws 1013 Slow consumer: ...`,
    /// `sse slow_bytes Slow consumer: ...`, `stomp ERROR <message header>`).
    Told(String),
    /// The connection just ended (EOF, reset, a read error): what the client saw.
    Untold(String),
}

impl Ended {
    /// The reason, without the told/untold distinction (the key reasons are counted by).
    pub fn reason(&self) -> &str {
        match self {
            Ended::Told(r) | Ended::Untold(r) => r,
        }
    }

    pub fn told(&self) -> bool {
        matches!(self, Ended::Told(_))
    }
}
