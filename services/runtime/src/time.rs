//! Times as the stores keep them (microseconds since the Unix epoch, a BIGINT on both
//! databases, so windows and gaps are plain integer arithmetic in SQL) and page tokens.

use prost_types::{Duration, Timestamp};
use sha2::{Digest, Sha256};

pub const MICROS_PER_SECOND: i64 = 1_000_000;
pub const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;

pub fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// A valid timestamp (nanos in range, from 1970) as microseconds.
pub fn timestamp_us(timestamp: &Timestamp) -> Option<i64> {
    if timestamp.seconds < 0 || !(0..1_000_000_000).contains(&timestamp.nanos) {
        return None;
    }
    timestamp
        .seconds
        .checked_mul(MICROS_PER_SECOND)?
        .checked_add(i64::from(timestamp.nanos / 1000))
}

pub fn timestamp(us: i64) -> Timestamp {
    Timestamp {
        seconds: us.div_euclid(MICROS_PER_SECOND),
        nanos: i32::try_from(us.rem_euclid(MICROS_PER_SECOND) * 1000).unwrap_or(0),
    }
}

/// A positive duration as microseconds.
pub fn duration_us(duration: &Duration) -> Option<i64> {
    if duration.seconds < 0 || duration.nanos < 0 || duration.nanos >= 1_000_000_000 {
        return None;
    }
    duration
        .seconds
        .checked_mul(MICROS_PER_SECOND)?
        .checked_add(i64::from(duration.nanos / 1000))
        .filter(|us| *us > 0)
}

/// A keyset page token: the sort key of the last item returned, bound to the request's
/// filters so that a token cannot be replayed against a different query (AIP-158).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageToken {
    pub sort_us: i64,
    pub id: String,
}

impl PageToken {
    pub fn encode(&self, filters: &str) -> String {
        let mut text = fingerprint(filters);
        text.push('|');
        text.push_str(&self.sort_us.to_string());
        text.push('|');
        text.push_str(&self.id);
        hex(text.as_bytes())
    }

    /// `None` for an empty token; an error message for one that is not ours or not for these
    /// filters.
    pub fn decode(token: &str, filters: &str) -> Result<Option<Self>, &'static str> {
        if token.is_empty() {
            return Ok(None);
        }
        let invalid = "not a page token of this query";
        let bytes = unhex(token).ok_or(invalid)?;
        let text = String::from_utf8(bytes).map_err(|_| invalid)?;
        let mut parts = text.splitn(3, '|');
        let (Some(print), Some(sort), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(invalid);
        };
        if print != fingerprint(filters) {
            return Err("the page token was issued for different filters");
        }
        Ok(Some(Self {
            sort_us: sort.parse().map_err(|_| invalid)?,
            id: id.to_owned(),
        }))
    }
}

/// Trims a page read with one row more than `page_size` (the keyset way of knowing there are
/// more) and returns the token of the next page, if there is one.
pub fn next_page<T>(
    rows: &mut Vec<T>,
    page_size: usize,
    key: impl Fn(&T) -> PageToken,
) -> Option<PageToken> {
    if rows.len() <= page_size {
        return None;
    }
    rows.truncate(page_size);
    rows.last().map(key)
}

fn fingerprint(filters: &str) -> String {
    hex(&Sha256::digest(filters.as_bytes())[..6])
}

/// Lower-case hex; every ListInteractions page with more to read issues a token, so this stays
/// off `format!`.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(2 * bytes.len());
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    text
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || text.len() > 1024 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_are_bound_to_their_filters() {
        let token = PageToken {
            sort_us: 1_700_000_000_123_456,
            id: "a|b".into(),
        };
        let encoded = token.encode("customer=x");
        assert_eq!(
            PageToken::decode(&encoded, "customer=x").unwrap(),
            Some(token)
        );
        assert!(PageToken::decode(&encoded, "customer=y").is_err());
        assert!(PageToken::decode("zz", "customer=x").is_err());
        assert_eq!(PageToken::decode("", "customer=x").unwrap(), None);
        // Tokens already handed out must keep decoding: the text and its hex are pinned.
        assert_eq!(hex(&[0x0f, 0xa0, 0x5c]), "0fa05c");
        assert_eq!(
            unhex(&encoded).unwrap(),
            format!("{}|1700000000123456|a|b", fingerprint("customer=x")).into_bytes()
        );
    }

    #[test]
    fn timestamps_round_trip() {
        let t = Timestamp {
            seconds: 1_700_000_000,
            nanos: 123_456_000,
        };
        assert_eq!(timestamp(timestamp_us(&t).unwrap()), t);
        assert_eq!(
            timestamp_us(&Timestamp {
                seconds: -1,
                nanos: 0
            }),
            None
        );
    }
}
