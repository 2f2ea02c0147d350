//! What an event can be about ([`Involved`]) and how events are named
//! ([`event_name`]).

use std::rc::Rc;
use std::sync::Arc;
use std::time::SystemTime;

use super::model::ObjectReference;

/// Something events can be about: anything that can name a Kubernetes
/// object as an [`ObjectReference`] (client-go's `ref.GetReference`).
///
/// Implemented for [`ObjectReference`] itself, for references and smart
/// pointers to an `Involved`, and for `(kind, namespace, name, uid)` tuples of
/// any string types (`&str`, `String`, …), where an empty namespace means a
/// cluster-scoped object.
///
/// ```
/// use requeue::events::Involved;
///
/// let pod = ("Pod", "shop", "web-0", "5f0f3c52-8a4e-4d4b-9b2e-3c1a2f7d9e10");
/// let reference = pod.object_reference();
/// assert_eq!(reference.kind, "Pod");
/// assert_eq!(reference.namespace, "shop");
/// assert_eq!(reference.uid, "5f0f3c52-8a4e-4d4b-9b2e-3c1a2f7d9e10");
/// ```
pub trait Involved {
    /// The reference events about `self` carry as `involvedObject`.
    fn object_reference(&self) -> ObjectReference;
}

impl Involved for ObjectReference {
    fn object_reference(&self) -> ObjectReference {
        self.clone()
    }
}

impl<T: Involved + ?Sized> Involved for &T {
    fn object_reference(&self) -> ObjectReference {
        (**self).object_reference()
    }
}

impl<T: Involved + ?Sized> Involved for Box<T> {
    fn object_reference(&self) -> ObjectReference {
        (**self).object_reference()
    }
}

impl<T: Involved + ?Sized> Involved for Arc<T> {
    fn object_reference(&self) -> ObjectReference {
        (**self).object_reference()
    }
}

impl<T: Involved + ?Sized> Involved for Rc<T> {
    fn object_reference(&self) -> ObjectReference {
        (**self).object_reference()
    }
}

impl<K, N, M, U> Involved for (K, N, M, U)
where
    K: AsRef<str>,
    N: AsRef<str>,
    M: AsRef<str>,
    U: AsRef<str>,
{
    /// `(kind, namespace, name, uid)`; `namespace` `""` = cluster-scoped.
    fn object_reference(&self) -> ObjectReference {
        ObjectReference::new(self.0.as_ref(), self.1.as_ref(), self.2.as_ref())
            .with_uid(self.3.as_ref())
    }
}

/// The longest valid DNS-1123 subdomain (Go's `DNS1123SubdomainMaxLength`).
pub const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;

/// Whether `name` is a valid DNS-1123 subdomain, the rule for most
/// Kubernetes object names (Go's `validation.IsDNS1123Subdomain`): at most
/// 253 characters, one or more dot-separated labels, each label made of
/// lowercase ASCII letters, digits and `-`, starting and ending with a
/// letter or digit.
///
/// ```
/// use requeue::events::is_dns1123_subdomain;
///
/// assert!(is_dns1123_subdomain("web-0.187a9c3e5d2f1b40"));
/// assert!(!is_dns1123_subdomain("Web-0"));
/// assert!(!is_dns1123_subdomain("web..0"));
/// assert!(!is_dns1123_subdomain("web-.0"));
/// ```
pub fn is_dns1123_subdomain(name: &str) -> bool {
    name.len() <= DNS1123_SUBDOMAIN_MAX_LENGTH
        && name.split('.').all(|label| {
            let bytes = label.as_bytes();
            let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
            match (bytes.first(), bytes.last()) {
                (Some(first), Some(last)) => {
                    alnum(first) && alnum(last) && bytes.iter().all(|b| alnum(b) || *b == b'-')
                }
                _ => false,
            }
        })
}

/// The name of a new event about the object named `involved_name`, made at
/// `at` — client-go's `generateEventName` (since v0.33):
/// `"<involved_name>.<Unix nanoseconds of at in lowercase hex>"` (Go's
/// `%x`), or, when that is not a valid DNS subdomain
/// ([`is_dns1123_subdomain`], e.g. an uppercase or overlong name), a random
/// UUID (version 4, lowercase, `8-4-4-4-12` hex digits).
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use requeue::events::event_name;
///
/// let at = SystemTime::UNIX_EPOCH + Duration::from_nanos(0x187a_9c3e_5d2f_1b40);
/// assert_eq!(event_name("web-0", at), "web-0.187a9c3e5d2f1b40");
/// assert_eq!(event_name("Web-0", at).len(), 36); // a UUID
/// ```
pub fn event_name(involved_name: &str, at: SystemTime) -> String {
    let name = format!("{involved_name}.{}", go_hex(unix_nanos(at)));
    if is_dns1123_subdomain(&name) {
        name
    } else {
        random_uuid()
    }
}

/// Nanoseconds since the Unix epoch, negative before it.
fn unix_nanos(at: SystemTime) -> i128 {
    match at.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i128::try_from(after.as_nanos()).unwrap_or(i128::MAX),
        Err(before) => i128::try_from(before.duration().as_nanos())
            .map(|n| -n)
            .unwrap_or(i128::MIN),
    }
}

/// Go's `%x` of a signed integer: lowercase hex with a leading `-` when
/// negative.
fn go_hex(n: i128) -> String {
    if n < 0 {
        format!("-{:x}", n.unsigned_abs())
    } else {
        format!("{n:x}")
    }
}

/// A random (version 4) UUID in lowercase `8-4-4-4-12` form.
fn random_uuid() -> String {
    let mut bits = fastrand::u128(..);
    bits = (bits & !(0xf << 76)) | (0x4 << 76); // version 4
    bits = (bits & !(0b11 << 62)) | (0b10 << 62); // RFC 4122 variant
    let hex = format!("{bits:032x}");
    let mut uuid = String::with_capacity(36);
    for (i, part) in [0..8, 8..12, 12..16, 16..20, 20..32]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            uuid.push('-');
        }
        uuid.push_str(&hex[part]);
    }
    uuid
}

#[cfg(test)]
#[path = "reference_tests.rs"]
mod tests;

/// `at`, moved one nanosecond past the last event time handed out in this
/// process if the clock has not moved since. Event names are
/// `<object>.<hex time>`, so this keeps the names of recorded and aggregate
/// events unique even on a fake or coarse clock.
pub(crate) fn unique_event_time(at: SystemTime) -> SystemTime {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let nanos = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let previous = LAST
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
            Some(nanos.max(last.saturating_add(1)))
        })
        .unwrap_or(nanos);
    let stamp = nanos.max(previous.saturating_add(1));
    if stamp == nanos {
        at
    } else {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_nanos(stamp)
    }
}
