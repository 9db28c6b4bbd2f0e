//! Errors produced while decoding STOMP input.

use std::fmt;

/// Longest command text kept in [`DecodeError::UnknownCommand`] (in bytes of input).
pub(crate) const MAX_REPORTED_COMMAND: usize = 32;

/// Why a byte stream (or a header value) is not acceptable STOMP.
///
/// Exists so the session can turn any protocol violation into a STOMP ERROR frame and close the
/// connection: the `Display` text is written to be user-facing and is meant to be used verbatim
/// as the ERROR frame's `message` header. Every variant is fatal for the connection; after an
/// error the decoder's buffer is in an unspecified position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The command line is not one of the STOMP 1.2 commands. Holds (a lossy, truncated copy
    /// of) what was received.
    UnknownCommand(String),
    /// A header line has no `:` or an empty name.
    InvalidHeaderLine,
    /// A header uses an escape sequence other than `\r`, `\n`, `\c`, `\\`, or ends in a lone
    /// backslash.
    InvalidHeaderEscape,
    /// A header name or value is not UTF-8.
    InvalidUtf8,
    /// The `content-length` header is not a non-negative decimal integer.
    InvalidContentLength,
    /// The byte following a `content-length` body is not NUL.
    MissingNul,
    /// The command line plus header section exceeds `Limits::max_header_bytes`.
    HeadersTooLarge { limit: usize },
    /// The frame has more than `Limits::max_headers` header lines.
    TooManyHeaders { limit: usize },
    /// The whole frame (as received, or as announced by `content-length`) exceeds
    /// `Limits::max_frame_bytes`.
    FrameTooLarge { limit: usize },
    /// A `heart-beat` header is not of the form `<cx>,<cy>` with two non-negative integers.
    InvalidHeartBeat,
    /// A header name or value (after unescaping) contains a control character. `header` is
    /// the header's name (for a bad name: a printable, truncated copy of it); `code` the
    /// offending character's code point.
    ControlCharacter {
        header: String,
        in_name: bool,
        code: u32,
    },
}

impl DecodeError {
    /// Builds [`DecodeError::UnknownCommand`] from raw bytes, truncated for display.
    pub(crate) fn unknown_command(raw: &[u8]) -> DecodeError {
        let cut = &raw[..raw.len().min(MAX_REPORTED_COMMAND)];
        let mut text = String::from_utf8_lossy(cut).into_owned();
        if raw.len() > MAX_REPORTED_COMMAND {
            text.push_str("...");
        }
        DecodeError::UnknownCommand(text)
    }

    /// Builds [`DecodeError::ControlCharacter`] for a header *name*, keeping a printable,
    /// truncated copy of the name.
    pub(crate) fn control_in_name(name: &str, c: char) -> DecodeError {
        let mut shown: String = name.escape_debug().collect();
        if shown.len() > MAX_REPORTED_COMMAND {
            let mut cut = MAX_REPORTED_COMMAND;
            while !shown.is_char_boundary(cut) {
                cut -= 1;
            }
            shown.truncate(cut);
            shown.push_str("...");
        }
        DecodeError::ControlCharacter {
            header: shown,
            in_name: true,
            code: u32::from(c),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::UnknownCommand(cmd) => {
                write!(f, "unknown command: {}", cmd.escape_debug())
            }
            DecodeError::InvalidHeaderLine => {
                f.write_str("malformed header line: expected <name>:<value>")
            }
            DecodeError::InvalidHeaderEscape => f.write_str("invalid header escape"),
            DecodeError::InvalidUtf8 => f.write_str("header is not valid UTF-8"),
            DecodeError::InvalidContentLength => f.write_str("invalid content-length header"),
            DecodeError::MissingNul => {
                f.write_str("frame body is not terminated by NUL after content-length bytes")
            }
            DecodeError::HeadersTooLarge { limit } => {
                write!(f, "headers too large: limit is {limit} bytes")
            }
            DecodeError::TooManyHeaders { limit } => {
                write!(f, "too many headers: limit is {limit}")
            }
            DecodeError::FrameTooLarge { limit } => {
                write!(f, "frame too large: limit is {limit} bytes")
            }
            DecodeError::InvalidHeartBeat => {
                f.write_str("invalid heart-beat header: expected <cx>,<cy>")
            }
            DecodeError::ControlCharacter {
                header,
                in_name: true,
                code,
            } => write!(
                f,
                "header name \"{header}\" contains the control character U+{code:04X}"
            ),
            DecodeError::ControlCharacter {
                header,
                in_name: false,
                code,
            } => write!(
                f,
                "header '{header}' contains the control character U+{code:04X}: \
                 control characters are not allowed in header values"
            ),
        }
    }
}

impl std::error::Error for DecodeError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_precise() {
        assert_eq!(
            DecodeError::FrameTooLarge { limit: 65536 }.to_string(),
            "frame too large: limit is 65536 bytes"
        );
        assert_eq!(
            DecodeError::TooManyHeaders { limit: 50 }.to_string(),
            "too many headers: limit is 50"
        );
        assert_eq!(
            DecodeError::HeadersTooLarge { limit: 8192 }.to_string(),
            "headers too large: limit is 8192 bytes"
        );
        assert_eq!(
            DecodeError::UnknownCommand("FOO".into()).to_string(),
            "unknown command: FOO"
        );
        assert_eq!(
            DecodeError::InvalidHeaderEscape.to_string(),
            "invalid header escape"
        );
        assert_eq!(
            DecodeError::InvalidContentLength.to_string(),
            "invalid content-length header"
        );
        assert_eq!(
            DecodeError::ControlCharacter {
                header: "destination".into(),
                in_name: false,
                code: 0
            }
            .to_string(),
            "header 'destination' contains the control character U+0000: \
             control characters are not allowed in header values"
        );
        assert_eq!(
            DecodeError::control_in_name("a\nb", '\n').to_string(),
            "header name \"a\\nb\" contains the control character U+000A"
        );
    }

    #[test]
    fn control_in_name_is_truncated_and_printable() {
        let e = DecodeError::control_in_name(&"\u{1}".repeat(100), '\u{1}');
        let DecodeError::ControlCharacter { header, .. } = &e else {
            panic!("wrong variant")
        };
        assert!(header.len() <= MAX_REPORTED_COMMAND + 3);
        assert!(!header.chars().any(char::is_control));
    }

    #[test]
    fn unknown_command_is_truncated_and_printable() {
        let e = DecodeError::unknown_command(&[b'A'; 100]);
        let DecodeError::UnknownCommand(text) = &e else {
            panic!("wrong variant")
        };
        assert_eq!(text.len(), MAX_REPORTED_COMMAND + 3);
        assert!(text.ends_with("..."));
        let e = DecodeError::unknown_command(b"\xff\x00X");
        assert_eq!(e.to_string(), "unknown command: \u{fffd}\\0X");
    }

    #[test]
    fn is_std_error() {
        let e: Box<dyn std::error::Error> = Box::new(DecodeError::MissingNul);
        assert!(!e.to_string().is_empty());
    }
}
