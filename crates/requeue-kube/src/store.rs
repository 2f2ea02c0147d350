//! A reflector [`Store`] as the source of a resync: every object it holds,
//! as the keys requeue's
//! [`Controller::resync`](requeue::controller::Controller::resync) re-adds
//! (at low priority) every period.
//!
//! ```
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use kube::api::ObjectMeta;
//! use kube::runtime::{reflector, watcher::Event};
//! use requeue_kube::store::keys_of;
//!
//! let (store, mut writer) = reflector::store::<ConfigMap>();
//! let cm = ConfigMap {
//!     metadata: ObjectMeta { name: Some("web".into()), namespace: Some("shop".into()), ..Default::default() },
//!     ..Default::default()
//! };
//! writer.apply_watcher_event(&Event::Apply(cm));
//! let list = keys_of(store, ());
//! let keys = list();
//! assert_eq!(keys.len(), 1);
//! assert_eq!(keys[0].name, "web");
//! assert_eq!(keys[0].namespace.as_deref(), Some("shop"));
//! ```

use kube::runtime::reflector::{Lookup, ObjectRef, Store};
use std::hash::Hash;

/// A lister of every object `store` holds now, for
/// [`Controller::resync`](requeue::controller::Controller::resync).
/// `dyntype` is the store's dynamic type (`()` for static types): kube's
/// `Store` keeps it private, and every key needs it.
pub fn keys_of<K>(
    store: Store<K>,
    dyntype: K::DynamicType,
) -> impl Fn() -> Vec<ObjectRef<K>> + Send + Sync + 'static
where
    K: Lookup + Clone + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Send + Sync,
{
    move || {
        store
            .state()
            .iter()
            .map(|object| object.to_object_ref(dyntype.clone()))
            .collect()
    }
}
