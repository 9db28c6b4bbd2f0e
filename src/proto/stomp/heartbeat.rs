//! STOMP 1.2 heart-beat negotiation.

use super::error::DecodeError;

/// Negotiates heart-beating from the client's CONNECT `heart-beat` header.
///
/// `client` is the raw header value `"<cx>,<cy>"` (`None` if absent, meaning `0,0`): the client
/// can send every `cx` ms and wants to receive every `cy` ms (0 = not at all). `server_cx` /
/// `server_cy` are the same two numbers from the server's point of view.
///
/// Returns `(send_every_ms, expect_every_ms, connected_value)`:
/// - the server sends a heart-beat every `max(server_cx, cy)` ms if both are non-zero, else 0;
/// - it expects one from the client every `max(cx, server_cy)` ms if both are non-zero, else 0;
/// - `connected_value` is `"<send>,<expect>"` for the CONNECTED frame's `heart-beat` header, so
///   the client's own max() computation lands on the same two intervals.
///
/// Callers should allow some grace on `expect_every_ms` before declaring the client dead.
pub fn negotiate_heartbeat(
    client: Option<&str>,
    server_cx: u32,
    server_cy: u32,
) -> Result<(u32, u32, String), DecodeError> {
    let (cx, cy) = match client {
        None => (0, 0),
        Some(value) => parse_pair(value)?,
    };
    let send = if server_cx != 0 && cy != 0 {
        server_cx.max(cy)
    } else {
        0
    };
    let expect = if cx != 0 && server_cy != 0 {
        cx.max(server_cy)
    } else {
        0
    };
    Ok((send, expect, format!("{send},{expect}")))
}

fn parse_pair(value: &str) -> Result<(u32, u32), DecodeError> {
    let (a, b) = value.split_once(',').ok_or(DecodeError::InvalidHeartBeat)?;
    Ok((parse_ms(a)?, parse_ms(b)?))
}

fn parse_ms(text: &str) -> Result<u32, DecodeError> {
    let text = text.trim_matches(' ');
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DecodeError::InvalidHeartBeat);
    }
    // Absurdly large intervals saturate (they mean "practically never") instead of failing.
    Ok(text
        .parse::<u64>()
        .map_or(u32::MAX, |n| n.min(u64::from(u32::MAX)) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_header_means_no_heartbeats() {
        assert_eq!(
            negotiate_heartbeat(None, 10_000, 10_000).unwrap(),
            (0, 0, "0,0".to_string())
        );
    }

    #[test]
    fn takes_max_when_both_sides_want_it() {
        // Client can send every 4s, wants to receive every 20s.
        assert_eq!(
            negotiate_heartbeat(Some("4000,20000"), 10_000, 10_000).unwrap(),
            (20_000, 10_000, "20000,10000".to_string())
        );
        assert_eq!(
            negotiate_heartbeat(Some("30000,5000"), 10_000, 10_000).unwrap(),
            (10_000, 30_000, "10000,30000".to_string())
        );
    }

    #[test]
    fn zero_on_either_side_disables_that_direction() {
        assert_eq!(
            negotiate_heartbeat(Some("0,5000"), 10_000, 10_000).unwrap(),
            (10_000, 0, "10000,0".to_string())
        );
        assert_eq!(
            negotiate_heartbeat(Some("5000,0"), 10_000, 10_000).unwrap(),
            (0, 10_000, "0,10000".to_string())
        );
        assert_eq!(
            negotiate_heartbeat(Some("5000,5000"), 0, 0).unwrap(),
            (0, 0, "0,0".to_string())
        );
        assert_eq!(
            negotiate_heartbeat(Some("0,0"), 10_000, 10_000).unwrap(),
            (0, 0, "0,0".to_string())
        );
    }

    #[test]
    fn tolerates_spaces_and_saturates_huge_values() {
        assert_eq!(
            negotiate_heartbeat(Some(" 100 , 200 "), 50, 50).unwrap().0,
            200
        );
        assert_eq!(
            negotiate_heartbeat(Some("1,99999999999999999999999"), 1, 1)
                .unwrap()
                .0,
            u32::MAX
        );
    }

    #[test]
    fn rejects_malformed_values() {
        for bad in [
            "", "100", "a,b", "1,2,3", "-1,5", "1,", ",1", "1;2", "+1,2", "1.5,2",
        ] {
            assert_eq!(
                negotiate_heartbeat(Some(bad), 1, 1),
                Err(DecodeError::InvalidHeartBeat),
                "{bad:?}"
            );
        }
    }
}
