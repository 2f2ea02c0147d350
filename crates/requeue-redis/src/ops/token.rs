//! The fencing token of a lease.

use std::fmt;
use std::str::FromStr;

/// The fencing token of one lease: `<epoch>:<nonce>`.
///
/// `epoch` comes from the queue's `seq` counter (`HINCRBY`), so it grows
/// with every hand-out and can be passed to systems that reject stale
/// writers. `nonce` is 64 random bits drawn by the client: should Redis
/// lose writes on a failover and hand out an epoch twice, the nonce still
/// tells the two leases apart. `done`, `extend` and `release` compare the
/// whole token.
///
/// Its text form (also what Redis stores) is the epoch in decimal, `:`,
/// and the nonce as exactly 16 lowercase hex digits.
///
/// ```
/// use requeue_redis::ops::Token;
///
/// let token: Token = "42:00000000deadbeef".parse()?;
/// assert_eq!(token.epoch(), 42);
/// assert_eq!(token.nonce(), 0xdead_beef);
/// assert_eq!(token.to_string(), "42:00000000deadbeef");
/// # Ok::<(), requeue_redis::ops::ParseTokenError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token {
    epoch: u64,
    nonce: u64,
}

impl Token {
    /// A token from its parts.
    pub const fn new(epoch: u64, nonce: u64) -> Self {
        Token { epoch, nonce }
    }

    /// The fencing epoch: larger for later hand-outs of the queue.
    pub const fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The client-drawn random part.
    pub const fn nonce(&self) -> u64 {
        self.nonce
    }
}

/// The nonce as sent to the scripts (always 16 hex digits, so the stored
/// token is the canonical text form).
pub(super) fn nonce_arg(nonce: u64) -> String {
    format!("{nonce:016x}")
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.epoch, nonce_arg(self.nonce))
    }
}

/// A string that is not a token's text form.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a lease token (`<epoch>:<16 hex digits>`): {0:?}")]
pub struct ParseTokenError(pub String);

impl FromStr for Token {
    type Err = ParseTokenError;

    /// Accepts only the canonical form, so that parse and display agree
    /// byte for byte with what Redis stores.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseTokenError(s.to_owned());
        let (epoch, nonce) = s.split_once(':').ok_or_else(bad)?;
        let digits = |t: &str, hex: bool| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_digit() || (hex && matches!(b, b'a'..=b'f')))
        };
        if !digits(epoch, false) || nonce.len() != 16 || !digits(nonce, true) {
            return Err(bad());
        }
        if epoch.len() > 1 && epoch.starts_with('0') {
            return Err(bad());
        }
        Ok(Token {
            epoch: epoch.parse().map_err(|_| bad())?,
            nonce: u64::from_str_radix(nonce, 16).map_err(|_| bad())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips_and_only_canonical_text_parses() {
        let token = Token::new(7, u64::MAX);
        assert_eq!(token.to_string(), "7:ffffffffffffffff");
        assert_eq!(token.to_string().parse(), Ok(token));
        for bad in [
            "",
            "7",
            ":0000000000000000",
            "7:",
            "7:abc",
            "+7:0000000000000000",
            "07:0000000000000000",
            "7:000000000000000G",
            "7:FFFFFFFFFFFFFFFF",
            "7:00000000000000000",
            "18446744073709551616:0000000000000000",
        ] {
            assert!(bad.parse::<Token>().is_err(), "{bad:?}");
        }
    }
}
