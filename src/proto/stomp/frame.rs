//! The in-memory representation of a STOMP frame.

use std::fmt;

use bytes::Bytes;

/// A STOMP command: the first line of every frame.
///
/// Exists so the rest of the server matches on a closed set of verbs instead of comparing
/// strings; an unrecognised command line never becomes a `Command` (the decoder rejects it with
/// [`DecodeError::UnknownCommand`](super::DecodeError::UnknownCommand)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    // Client → server.
    Connect,
    Stomp,
    Send,
    Subscribe,
    Unsubscribe,
    Ack,
    Nack,
    Begin,
    Commit,
    Abort,
    Disconnect,
    // Server → client.
    Connected,
    Message,
    Receipt,
    Error,
}

impl Command {
    /// Every command, used to validate partial command lines.
    pub(crate) const ALL: [Command; 15] = [
        Command::Connect,
        Command::Stomp,
        Command::Send,
        Command::Subscribe,
        Command::Unsubscribe,
        Command::Ack,
        Command::Nack,
        Command::Begin,
        Command::Commit,
        Command::Abort,
        Command::Disconnect,
        Command::Connected,
        Command::Message,
        Command::Receipt,
        Command::Error,
    ];

    /// The wire spelling of the command (upper case, as STOMP requires).
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Connect => "CONNECT",
            Command::Stomp => "STOMP",
            Command::Send => "SEND",
            Command::Subscribe => "SUBSCRIBE",
            Command::Unsubscribe => "UNSUBSCRIBE",
            Command::Ack => "ACK",
            Command::Nack => "NACK",
            Command::Begin => "BEGIN",
            Command::Commit => "COMMIT",
            Command::Abort => "ABORT",
            Command::Disconnect => "DISCONNECT",
            Command::Connected => "CONNECTED",
            Command::Message => "MESSAGE",
            Command::Receipt => "RECEIPT",
            Command::Error => "ERROR",
        }
    }

    /// Parses a command line (without its line end). Commands are case-sensitive.
    pub fn from_bytes(line: &[u8]) -> Option<Command> {
        Command::ALL
            .iter()
            .copied()
            .find(|c| c.as_str().as_bytes() == line)
    }

    /// Whether header names and values are sent raw (not escaped) in frames of this command.
    ///
    /// STOMP 1.2 exempts CONNECT and CONNECTED from escaping for compatibility with 1.0
    /// peers. (STOMP, the 1.2 alias of CONNECT, is escaped like every other frame.)
    pub fn raw_headers(self) -> bool {
        matches!(self, Command::Connect | Command::Connected)
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One complete STOMP frame: command, ordered headers, body.
///
/// Exists as the single value exchanged between the codec and the session logic. Headers are
/// kept as an ordered list (not a map) because STOMP allows repeated headers and gives the
/// first occurrence precedence; values are already unescaped. The body is a [`Bytes`] so the
/// decoder can hand out a zero-copy slice of the receive buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub command: Command,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Frame {
    /// A frame with no headers and an empty body.
    pub fn new(command: Command) -> Frame {
        Frame {
            command,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// Builder: appends a header (after any existing ones, so an earlier header of the same
    /// name keeps precedence).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Frame {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Builder: replaces the body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Frame {
        self.body = body.into();
        self
    }

    /// The value of the first header called `name`, if any (STOMP 1.2: when a header is
    /// repeated, only the first occurrence is significant).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_round_trips_through_its_spelling() {
        for c in Command::ALL {
            assert_eq!(Command::from_bytes(c.as_str().as_bytes()), Some(c));
            assert_eq!(c.to_string(), c.as_str());
        }
        assert_eq!(Command::from_bytes(b"send"), None);
        assert_eq!(Command::from_bytes(b""), None);
        assert_eq!(Command::from_bytes(b"SEND "), None);
    }

    #[test]
    fn only_connect_and_connected_are_raw() {
        for c in Command::ALL {
            assert_eq!(
                c.raw_headers(),
                c == Command::Connect || c == Command::Connected
            );
        }
    }

    #[test]
    fn repeated_header_first_wins() {
        let f = Frame::new(Command::Send)
            .with_header("destination", "/a")
            .with_header("destination", "/b");
        assert_eq!(f.header("destination"), Some("/a"));
        assert_eq!(f.header("missing"), None);
    }

    #[test]
    fn builder_sets_body() {
        let f = Frame::new(Command::Send).body(&b"hi"[..]);
        assert_eq!(&f.body[..], b"hi");
        assert_eq!(f.command, Command::Send);
        assert!(f.headers.is_empty());
    }
}
