//! How a queue's items become bytes and back, for engines that keep them
//! outside the process (Redis, a database). The bytes are the item's
//! identity: two items are the same key exactly when they encode to the
//! same bytes, so an encoding must be deterministic.
//!
//! ```
//! use requeue::engine::codec::{DefaultCodec, KeyCodec, Utf8};
//!
//! let codec = String::default_codec();
//! assert_eq!(codec.encode(&"ns/web".to_string()), b"ns/web");
//! assert!(Utf8.decode(&[0xff]).is_err()); // not an item: refused, left in place
//! ```

#[cfg(feature = "json")]
use std::marker::PhantomData;
use std::sync::Arc;

/// Turns items into the bytes an engine stores and back.
pub trait KeyCodec<T>: Send + Sync + 'static {
    /// The item's bytes (its identity in Redis).
    fn encode(&self, item: &T) -> Vec<u8>;
    /// The item from stored bytes; `Err` with a reason if they are not one.
    fn decode(&self, raw: &[u8]) -> Result<T, String>;
}

/// `String` items as their UTF-8 bytes; stored bytes that are not UTF-8
/// are refused (and left in place).
#[derive(Debug, Clone, Copy, Default)]
pub struct Utf8;

impl KeyCodec<String> for Utf8 {
    fn encode(&self, item: &String) -> Vec<u8> {
        item.as_bytes().to_vec()
    }
    fn decode(&self, raw: &[u8]) -> Result<String, String> {
        String::from_utf8(raw.to_vec()).map_err(|e| e.to_string())
    }
}

/// `Vec<u8>` items as themselves.
#[derive(Debug, Clone, Copy, Default)]
pub struct Raw;

impl KeyCodec<Vec<u8>> for Raw {
    fn encode(&self, item: &Vec<u8>) -> Vec<u8> {
        item.clone()
    }
    fn decode(&self, raw: &[u8]) -> Result<Vec<u8>, String> {
        Ok(raw.to_vec())
    }
}

/// Any serde type as compact JSON. Serialization must be deterministic
/// for the type (structs and enums are; a `HashMap` field is not).
#[cfg(feature = "json")]
#[derive(Debug)]
pub struct Json<T>(PhantomData<fn() -> T>);

#[cfg(feature = "json")]
impl<T> Json<T> {
    /// The JSON codec for `T`.
    pub const fn new() -> Self {
        Json(PhantomData)
    }
}

#[cfg(feature = "json")]
impl<T> Default for Json<T> {
    fn default() -> Self {
        Json::new()
    }
}

#[cfg(feature = "json")]
impl<T> KeyCodec<T> for Json<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    fn encode(&self, item: &T) -> Vec<u8> {
        // Serializing plain data to a Vec cannot fail; a type whose
        // Serialize impl errors gets an empty key, which decode refuses.
        serde_json::to_vec(item).unwrap_or_default()
    }
    fn decode(&self, raw: &[u8]) -> Result<T, String> {
        serde_json::from_slice(raw).map_err(|e| e.to_string())
    }
}

/// Item types with a natural codec, so an engine's builder for them
/// (`RedisQueue::<String>::builder`) needs none.
pub trait DefaultCodec: Sized {
    /// The codec used unless the builder is given another.
    fn default_codec() -> Arc<dyn KeyCodec<Self>>;
}

impl DefaultCodec for String {
    fn default_codec() -> Arc<dyn KeyCodec<Self>> {
        Arc::new(Utf8)
    }
}

impl DefaultCodec for Vec<u8> {
    fn default_codec() -> Arc<dyn KeyCodec<Self>> {
        Arc::new(Raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_refuses_invalid_bytes_and_round_trips_valid_ones() {
        assert_eq!(Utf8.decode(b"ns/obj"), Ok("ns/obj".to_string()));
        assert!(Utf8.decode(&[0xff, 0xfe]).is_err());
        assert_eq!(Utf8.encode(&"a".to_string()), b"a");
    }

    #[cfg(feature = "json")]
    #[test]
    fn json_round_trips_structs_and_refuses_garbage() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct Key {
            ns: String,
            n: u32,
        }
        let codec = Json::<Key>::new();
        let key = Key {
            ns: "a".into(),
            n: 7,
        };
        let raw = codec.encode(&key);
        assert_eq!(raw, br#"{"ns":"a","n":7}"#);
        assert_eq!(codec.decode(&raw), Ok(key));
        assert!(codec.decode(b"{").is_err());
    }
}
