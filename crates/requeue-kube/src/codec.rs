//! kube's [`ObjectRef`] as a queue key any engine can store: a
//! [`KeyCodec`] that writes the object's name, namespace and (for dynamic
//! types such as `DynamicObject`) its type information as compact JSON.
//!
//! `ObjectRef` is not `Serialize`, so without this codec only the
//! in-memory engine could carry kube keys; with it, `requeue-redis` and
//! any other engine that keeps keys as bytes can too.
//!
//! # Usage
//!
//! ```
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use kube::runtime::reflector::ObjectRef;
//! use requeue::engine::codec::KeyCodec;
//! use requeue_kube::codec::{DecodeError, ObjectRefCodec};
//!
//! let codec = ObjectRefCodec::<ConfigMap>::new();
//! let key = ObjectRef::<ConfigMap>::new("web").within("shop");
//! let raw = codec.encode(&key);
//! assert_eq!(raw, br#"{"ns":"shop","name":"web"}"#);
//! assert_eq!(codec.decode(&raw).unwrap(), key);
//!
//! // The typed decoder says what is wrong with bytes that are no key.
//! assert!(matches!(codec.decode_ref(b"{}"), Err(DecodeError::Malformed(_))));
//! assert!(matches!(codec.decode_ref(br#"{"name":""}"#), Err(DecodeError::EmptyName)));
//!
//! // What a remote engine's builder takes, e.g. requeue-redis's
//! // `RedisQueue::builder_with_codec(url, name, codec)`.
//! let codec: std::sync::Arc<dyn KeyCodec<ObjectRef<ConfigMap>>> = std::sync::Arc::new(codec);
//! # let _ = codec;
//! ```
//!
//! # Identity
//!
//! A remote engine takes the bytes as the key's identity, so they hold
//! exactly what `ObjectRef`'s own `Eq` compares: the dynamic type, the
//! name and the namespace. `ObjectRef::extra` (uid, resource version) is
//! left out: two references to the same object that differ only there
//! must collapse into one queued key, as they do in memory. Code that
//! needs the uid reads it from the reflector store (as
//! [`KubeController`](crate::controller::KubeController) does for events).
//!
//! For static types (`DynamicType = ()`) the type field is omitted; for
//! dynamic ones it is the type information's JSON (kube's `ApiResource`
//! serialises with fixed field order, so the bytes are deterministic).

use kube::runtime::reflector::{Lookup, ObjectRef};
use requeue::engine::codec::KeyCodec;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::marker::PhantomData;

/// Why stored bytes are not an [`ObjectRef`].
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not the JSON object the codec writes (or a required field is missing).
    #[error("not an encoded object reference: {0}")]
    Malformed(#[source] serde_json::Error),
    /// The type information does not fit the key's dynamic type (missing
    /// for a dynamic type, or of another shape).
    #[error("the object reference's type information does not fit: {0}")]
    DynamicType(#[source] serde_json::Error),
    /// The name is empty: no Kubernetes object has one.
    #[error("the object reference has an empty name")]
    EmptyName,
}

/// The stored shape. Field order is the byte order, so never reorder.
#[derive(Serialize, Deserialize)]
struct Wire {
    /// The dynamic type's JSON; absent (null) for static types.
    #[serde(
        rename = "type",
        default,
        skip_serializing_if = "serde_json::Value::is_null"
    )]
    dyntype: serde_json::Value,
    #[serde(rename = "ns", default, skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    name: String,
}

/// Encodes `ObjectRef<K>` keys as JSON; see the [module docs](self).
pub struct ObjectRefCodec<K>(PhantomData<fn() -> K>);

impl<K> ObjectRefCodec<K> {
    /// The codec for `ObjectRef<K>`.
    pub const fn new() -> Self {
        ObjectRefCodec(PhantomData)
    }
}

impl<K> Default for ObjectRefCodec<K> {
    fn default() -> Self {
        ObjectRefCodec::new()
    }
}

// Not derived: derives would ask `K: Clone`/`K: Debug`.
impl<K> Clone for ObjectRefCodec<K> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K> Copy for ObjectRefCodec<K> {}

impl<K> fmt::Debug for ObjectRefCodec<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ObjectRefCodec")
    }
}

impl<K> ObjectRefCodec<K>
where
    K: Lookup,
    K::DynamicType: Serialize + DeserializeOwned,
{
    /// The key's bytes.
    pub fn encode_ref(&self, key: &ObjectRef<K>) -> Vec<u8> {
        let wire = Wire {
            // `()` and kube's type-information structs serialise without
            // fail; a type whose impl errors is stored without it, and
            // decoding such a key reports `DynamicType`.
            dyntype: serde_json::to_value(&key.dyntype).unwrap_or_default(),
            namespace: key.namespace.clone(),
            name: key.name.clone(),
        };
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// The key the bytes stand for, or why they stand for none.
    pub fn decode_ref(&self, raw: &[u8]) -> Result<ObjectRef<K>, DecodeError> {
        let wire: Wire = serde_json::from_slice(raw).map_err(DecodeError::Malformed)?;
        if wire.name.is_empty() {
            return Err(DecodeError::EmptyName);
        }
        let dyntype: K::DynamicType =
            serde_json::from_value(wire.dyntype).map_err(DecodeError::DynamicType)?;
        let key = ObjectRef::new_with(&wire.name, dyntype);
        Ok(match wire.namespace {
            Some(namespace) => key.within(&namespace),
            None => key,
        })
    }
}

impl<K> KeyCodec<ObjectRef<K>> for ObjectRefCodec<K>
where
    K: Lookup + 'static,
    K::DynamicType: Serialize + DeserializeOwned,
{
    fn encode(&self, item: &ObjectRef<K>) -> Vec<u8> {
        self.encode_ref(item)
    }

    fn decode(&self, raw: &[u8]) -> Result<ObjectRef<K>, String> {
        self.decode_ref(raw).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};

    #[test]
    fn static_types_round_trip_without_type_info_and_drop_extra() {
        let codec = ObjectRefCodec::<Namespace>::new();
        let mut key = ObjectRef::<Namespace>::new("prod");
        key.extra.uid = Some("u-1".into());
        let raw = codec.encode_ref(&key);
        assert_eq!(raw, br#"{"name":"prod"}"#);
        let back = codec.decode_ref(&raw).unwrap();
        assert_eq!(back, key);
        assert_eq!(back.namespace, None);
        assert_eq!(back.extra.uid, None, "extra is not part of the identity");
    }

    #[test]
    fn dynamic_types_carry_their_type_info() {
        let gvk = GroupVersionKind::gvk("example.com", "v1", "Document");
        let ar = ApiResource::from_gvk(&gvk);
        let codec = ObjectRefCodec::<DynamicObject>::new();
        let key = ObjectRef::<DynamicObject>::new_with("a", ar.clone()).within("ns");
        let raw = codec.encode_ref(&key);
        let back = codec.decode_ref(&raw).unwrap();
        assert_eq!(back, key);
        assert_eq!(back.dyntype, ar);
        assert_eq!(codec.encode_ref(&back), raw, "deterministic");
        // A static key's bytes lack the type a dynamic key needs.
        let static_raw = ObjectRefCodec::<ConfigMap>::new().encode_ref(&ObjectRef::new("a"));
        assert!(matches!(
            codec.decode_ref(&static_raw),
            Err(DecodeError::DynamicType(_))
        ));
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        let codec = ObjectRefCodec::<ConfigMap>::new();
        assert!(matches!(
            codec.decode_ref(b"\xff"),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            codec.decode_ref(br#"{"ns":"a"}"#),
            Err(DecodeError::Malformed(_))
        ));
        assert!(KeyCodec::decode(&codec, br#"{"name":""}"#).is_err());
    }
}
