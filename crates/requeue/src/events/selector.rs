//! Field selectors for listing the events about one object (client-go's
//! `tools/events.GetFieldSelector`).

/// The events API asked for is not one of core `v1`, `events.k8s.io/v1` or
/// `events.k8s.io/v1beta1`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown events API version {0:?}: expected \"v1\", \"events.k8s.io/v1\" or \"events.k8s.io/v1beta1\""
)]
pub struct UnknownEventsApi(pub String);

/// The field selector that lists the events about an object, for the given
/// events API: `involvedObject.*` fields for core `v1`, `regarding.*` for
/// `events.k8s.io`. Empty arguments are left out; fields come sorted by
/// name and values are escaped, as `fields.Set.AsSelector().String()` does.
///
/// ```
/// use requeue::events::field_selector;
///
/// let selector = field_selector("v1", "apps/v1", "Deployment", "web", "").unwrap();
/// assert_eq!(selector, "involvedObject.apiVersion=apps/v1,involvedObject.kind=Deployment,involvedObject.name=web");
/// assert!(field_selector("v2", "", "", "web", "").is_err());
/// ```
pub fn field_selector(
    events_api_version: &str,
    regarding_api_version: &str,
    regarding_kind: &str,
    regarding_name: &str,
    regarding_uid: &str,
) -> Result<String, UnknownEventsApi> {
    let prefix = match events_api_version {
        "v1" => "involvedObject",
        "events.k8s.io/v1" | "events.k8s.io/v1beta1" => "regarding",
        other => return Err(UnknownEventsApi(other.to_string())),
    };
    let mut fields: Vec<(String, &str)> = [
        ("apiVersion", regarding_api_version),
        ("kind", regarding_kind),
        ("name", regarding_name),
        ("uid", regarding_uid),
    ]
    .into_iter()
    .filter(|(_, value)| !value.is_empty())
    .map(|(field, value)| (format!("{prefix}.{field}"), value))
    .collect();
    fields.sort();
    Ok(fields
        .iter()
        .map(|(field, value)| format!("{field}={}", escape(value)))
        .collect::<Vec<_>>()
        .join(","))
}

/// `fields.EscapeValue`: backslash, comma and equals sign are escaped.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_field_selector_per_events_api() {
        let all = |api| field_selector(api, "v1", "Pod", "foo", "uid-1");
        assert_eq!(
            all("v1").unwrap_or_default(),
            "involvedObject.apiVersion=v1,involvedObject.kind=Pod,involvedObject.name=foo,involvedObject.uid=uid-1"
        );
        let regarding =
            "regarding.apiVersion=v1,regarding.kind=Pod,regarding.name=foo,regarding.uid=uid-1";
        assert_eq!(all("events.k8s.io/v1").unwrap_or_default(), regarding);
        assert_eq!(all("events.k8s.io/v1beta1").unwrap_or_default(), regarding);
        assert_eq!(
            all("events.k8s.io/v2"),
            Err(UnknownEventsApi("events.k8s.io/v2".into()))
        );
    }

    #[test]
    fn empty_parts_are_left_out_and_values_escaped() {
        assert_eq!(field_selector("v1", "", "", "", "").unwrap_or_default(), "");
        assert_eq!(
            field_selector("v1", "", "", "a,b=c\\d", "").unwrap_or_default(),
            "involvedObject.name=a\\,b\\=c\\\\d"
        );
    }
}
