//! Client frames as typed commands: the headers each command needs, checked once.
//!
//! Exists so the session applies a closed set of well-formed requests instead of looking up
//! header strings as it goes: [`ClientCommand::parse`] turns a decoded [`Frame`] into a
//! command or a [`CommandError`] whose text becomes the ERROR frame's `message`. Pure: it
//! decides nothing about who may do what (that is the service layer's).

use bytes::Bytes;
use std::fmt;

use super::frame::{Command, Frame};

/// What a client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCommand {
    /// `CONNECT` or `STOMP`.
    Connect {
        accept_version: Option<String>,
        /// The `Authorization` header (any case), verbatim.
        authorization: Option<String>,
        heart_beat: Option<String>,
    },
    Subscribe {
        id: String,
        destination: String,
    },
    Unsubscribe {
        id: String,
    },
    Send {
        destination: String,
        body: Bytes,
    },
    /// `ACK`/`NACK`: subscriptions are auto-acknowledged; only the receipt matters.
    Ack,
    /// `BEGIN`/`COMMIT`/`ABORT`.
    Transaction(Command),
    Disconnect,
}

/// A client frame with its receipt request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub command: ClientCommand,
    /// The `receipt` header: a RECEIPT (or the ERROR's `receipt-id`) echoes it.
    pub receipt: Option<String>,
}

/// Why a frame is not a valid client request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// A header the command needs is absent.
    MissingHeader {
        command: Command,
        header: &'static str,
    },
    /// A server frame (`MESSAGE`, `RECEIPT`, …) sent by the client.
    ServerFrame(Command),
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::MissingHeader { command, header } => {
                write!(f, "{command} requires a '{header}' header")
            }
            CommandError::ServerFrame(c) => {
                write!(f, "{c} is a server frame and cannot be sent by a client")
            }
        }
    }
}

impl std::error::Error for CommandError {}

impl Request {
    /// Types `frame`; the receipt is kept even when the command is invalid, so the ERROR
    /// can name it.
    pub fn parse(frame: Frame) -> (Option<String>, Result<ClientCommand, CommandError>) {
        let receipt = frame.header("receipt").map(str::to_string);
        (receipt, ClientCommand::parse(frame))
    }
}

impl ClientCommand {
    pub fn parse(frame: Frame) -> Result<ClientCommand, CommandError> {
        let command = frame.command;
        let required = |name: &'static str| {
            frame
                .header(name)
                .map(str::to_string)
                .ok_or(CommandError::MissingHeader {
                    command,
                    header: name,
                })
        };
        Ok(match command {
            Command::Connect | Command::Stomp => ClientCommand::Connect {
                accept_version: frame.header("accept-version").map(str::to_string),
                authorization: frame
                    .headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
                    .map(|(_, v)| v.clone()),
                heart_beat: frame.header("heart-beat").map(str::to_string),
            },
            Command::Subscribe => {
                let id = required("id")?;
                let destination = required("destination")?;
                ClientCommand::Subscribe { id, destination }
            }
            Command::Unsubscribe => ClientCommand::Unsubscribe {
                id: required("id")?,
            },
            Command::Send => ClientCommand::Send {
                destination: required("destination")?,
                body: frame.body,
            },
            Command::Ack | Command::Nack => ClientCommand::Ack,
            Command::Begin | Command::Commit | Command::Abort => {
                ClientCommand::Transaction(command)
            }
            Command::Disconnect => ClientCommand::Disconnect,
            Command::Connected | Command::Message | Command::Receipt | Command::Error => {
                return Err(CommandError::ServerFrame(command))
            }
        })
    }

    /// The wire name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            ClientCommand::Connect { .. } => "CONNECT",
            ClientCommand::Subscribe { .. } => "SUBSCRIBE",
            ClientCommand::Unsubscribe { .. } => "UNSUBSCRIBE",
            ClientCommand::Send { .. } => "SEND",
            ClientCommand::Ack => "ACK",
            ClientCommand::Transaction(c) => c.as_str(),
            ClientCommand::Disconnect => "DISCONNECT",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_their_required_headers() {
        let f = Frame::new(Command::Subscribe)
            .with_header("id", "s1")
            .with_header("destination", "/sub/x")
            .with_header("receipt", "r1");
        let (receipt, cmd) = Request::parse(f);
        assert_eq!(receipt.as_deref(), Some("r1"));
        assert_eq!(
            cmd.unwrap(),
            ClientCommand::Subscribe {
                id: "s1".into(),
                destination: "/sub/x".into()
            }
        );
        let err = ClientCommand::parse(Frame::new(Command::Subscribe).with_header("id", "a"))
            .unwrap_err();
        assert_eq!(err.to_string(), "SUBSCRIBE requires a 'destination' header");
        let err = ClientCommand::parse(Frame::new(Command::Send)).unwrap_err();
        assert_eq!(err.to_string(), "SEND requires a 'destination' header");
        let err = ClientCommand::parse(Frame::new(Command::Message)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "MESSAGE is a server frame and cannot be sent by a client"
        );
    }

    #[test]
    fn authorization_header_in_any_case_first_wins() {
        let f = Frame::new(Command::Connect)
            .with_header("AUTHORIZATION", "Bearer a")
            .with_header("authorization", "Bearer b");
        match ClientCommand::parse(f).unwrap() {
            ClientCommand::Connect { authorization, .. } => {
                assert_eq!(authorization.as_deref(), Some("Bearer a"))
            }
            other => panic!("{other:?}"),
        }
    }
}
