//! Decoding script replies: every mismatch is `Error::Protocol`.

use crate::error::Error;
use redis::Value;

fn unexpected(what: &str, value: &Value) -> Error {
    Error::Protocol(format!("{what}: unexpected {value:?}"))
}

/// Lua `false` arrives as nil (RESP2) or as a boolean (RESP3).
fn is_absent(value: &Value) -> bool {
    matches!(value, Value::Nil | Value::Boolean(false))
}

/// An array of exactly `N` values.
pub(super) fn fields<const N: usize>(value: Value, what: &str) -> Result<[Value; N], Error> {
    let items = list(value, what)?;
    let len = items.len();
    <[Value; N]>::try_from(items)
        .map_err(|_| Error::Protocol(format!("{what}: {len} fields, expected {N}")))
}

/// An array of any length.
pub(super) fn list(value: Value, what: &str) -> Result<Vec<Value>, Error> {
    match value {
        Value::Array(items) | Value::Set(items) => Ok(items),
        other => Err(unexpected(what, &other)),
    }
}

/// An integer (also accepted as decimal digits).
pub(super) fn int(value: &Value, what: &str) -> Result<i64, Error> {
    match value {
        Value::Int(n) => Ok(*n),
        Value::BulkString(bytes) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| unexpected(what, value)),
        other => Err(unexpected(what, other)),
    }
}

/// A non-negative integer.
pub(super) fn uint(value: &Value, what: &str) -> Result<u64, Error> {
    u64::try_from(int(value, what)?).map_err(|_| unexpected(what, value))
}

/// A non-negative integer or Lua `false`.
pub(super) fn opt_uint(value: &Value, what: &str) -> Result<Option<u64>, Error> {
    if is_absent(value) {
        return Ok(None);
    }
    uint(value, what).map(Some)
}

/// A byte string.
pub(super) fn bytes(value: Value, what: &str) -> Result<Vec<u8>, Error> {
    match value {
        Value::BulkString(bytes) => Ok(bytes),
        Value::SimpleString(s) => Ok(s.into_bytes()),
        other => Err(unexpected(what, &other)),
    }
}

/// A byte string or Lua `false`.
pub(super) fn opt_bytes(value: Value, what: &str) -> Result<Option<Vec<u8>>, Error> {
    if is_absent(&value) {
        return Ok(None);
    }
    bytes(value, what).map(Some)
}

/// A UTF-8 string.
pub(super) fn string(value: Value, what: &str) -> Result<String, Error> {
    String::from_utf8(bytes(value, what)?).map_err(|e| Error::Protocol(format!("{what}: {e}")))
}

/// A UTF-8 string or Lua `false`.
pub(super) fn opt_string(value: Value, what: &str) -> Result<Option<String>, Error> {
    opt_bytes(value, what)?
        .map(|b| String::from_utf8(b).map_err(|e| Error::Protocol(format!("{what}: {e}"))))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_checked_without_panicking() {
        let arr = Value::Array(vec![Value::Int(1), Value::Nil]);
        assert!(fields::<3>(arr.clone(), "x").is_err());
        let [a, b] = fields::<2>(arr, "x").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(uint(&a, "a").ok(), Some(1));
        assert_eq!(opt_uint(&b, "b").ok(), Some(None));
        assert!(uint(&Value::Int(-1), "neg").is_err());
        assert!(int(&Value::Okay, "ok").is_err());
        assert_eq!(int(&Value::BulkString(b"42".to_vec()), "s").ok(), Some(42));
        assert!(bytes(Value::Int(3), "b").is_err());
        assert_eq!(opt_bytes(Value::Boolean(false), "f").ok(), Some(None));
        assert!(list(Value::Int(1), "l").is_err());
        assert!(opt_string(Value::BulkString(vec![0xff]), "utf8").is_err());
    }
}
