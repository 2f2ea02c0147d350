//! Events about any [`kube::Resource`].
//!
//! requeue's [`Involved`](requeue::events::Involved) trait and kube's
//! `Resource` are both foreign here, so `impl<K: Resource> Involved for K`
//! breaks the orphan rule. Rather than a wrapper type the caller has to
//! remember, this is an extension trait of this crate, implemented for
//! every `Resource`: `object.involved()` is an
//! [`ObjectReference`](requeue::events::ObjectReference), which is
//! `Involved`, so recording stays one line.

use kube::Resource;
use requeue::events::ObjectReference;

/// The [`ObjectReference`] events about a kube [`Resource`] carry, as
/// client-go's `ref.GetReference` builds it: kind, API version, namespace,
/// name, UID and resource version of the object.
///
/// ```
/// use k8s_openapi::api::core::v1::Pod;
/// use kube::api::ObjectMeta;
/// use requeue_kube::events::InvolvedExt;
///
/// let pod = Pod {
///     metadata: ObjectMeta {
///         name: Some("web-0".into()),
///         namespace: Some("shop".into()),
///         uid: Some("5f0f3c52".into()),
///         resource_version: Some("42".into()),
///         ..ObjectMeta::default()
///     },
///     ..Pod::default()
/// };
/// let reference = pod.involved();
/// assert_eq!((reference.kind.as_str(), reference.api_version.as_str()), ("Pod", "v1"));
/// assert_eq!((reference.namespace.as_str(), reference.name.as_str()), ("shop", "web-0"));
/// assert_eq!((reference.uid.as_str(), reference.resource_version.as_str()), ("5f0f3c52", "42"));
/// ```
pub trait InvolvedExt: Resource {
    /// The reference for a resource with a static type (every k8s-openapi
    /// type and `#[derive(CustomResource)]` type).
    fn involved(&self) -> ObjectReference
    where
        Self: Resource<DynamicType = ()>,
    {
        self.involved_with(&())
    }

    /// The reference for any resource, given its dynamic type (an
    /// `ApiResource` for a `DynamicObject`).
    fn involved_with(&self, dt: &Self::DynamicType) -> ObjectReference;
}

impl<K: Resource> InvolvedExt for K {
    fn involved_with(&self, dt: &Self::DynamicType) -> ObjectReference {
        let meta = self.meta();
        let field = |value: &Option<String>| value.clone().unwrap_or_default();
        ObjectReference {
            kind: K::kind(dt).into_owned(),
            namespace: field(&meta.namespace),
            name: field(&meta.name),
            uid: field(&meta.uid),
            api_version: K::api_version(dt).into_owned(),
            // client-go's `GetReference` keeps it; kube's `object_ref`
            // does not. The correlator's keys ignore it either way.
            resource_version: field(&meta.resource_version),
            field_path: String::new(),
        }
    }
}
