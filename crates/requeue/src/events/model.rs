//! The core/v1 `Event` object and its parts, serialised exactly as the
//! Kubernetes API server writes them.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

use super::reference::event_name;
use super::time::{MicroTime, Time};

/// The namespace an event goes to when the object it is about has none
/// (cluster-scoped objects), as Go's `metav1.NamespaceDefault`.
pub const DEFAULT_NAMESPACE: &str = "default";

fn is_zero(n: &i32) -> bool {
    *n == 0
}

/// The part of `metav1.ObjectMeta` events use: name, namespace,
/// resource version and annotations.
///
/// Every field is omitted from the JSON when empty; other metadata the API
/// server sends (`uid`, `creationTimestamp`, `managedFields`, …) is ignored
/// when reading.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// The event's own name, e.g. `"web-0.187a9c3e5d2f1b40"`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The namespace the event lives in (that of the involved object, or
    /// [`DEFAULT_NAMESPACE`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// The server's version of the stored event; empty before it is created.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    /// Free-form annotations (`AnnotatedEventf`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A pointer to a Kubernetes object (core/v1 `ObjectReference`): what an
/// event is about (`involvedObject`) or a second object it concerns
/// (`related`).
///
/// As in Go, every field is a plain string whose empty value means "not
/// set" and is omitted from the JSON. An empty `namespace` means the object
/// is cluster-scoped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    /// The object's kind, e.g. `"Pod"`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// The object's namespace; empty for cluster-scoped objects.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// The object's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The object's UID.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// The object's group/version, e.g. `"v1"` or `"apps/v1"`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// The object's resource version the event refers to.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    /// A part of the object, e.g. `"spec.containers{app}"`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub field_path: String,
}

impl ObjectReference {
    /// A reference to the object `kind` `namespace`/`name` (`namespace` empty
    /// for cluster-scoped objects); set the other fields with the `with_*`
    /// methods or directly.
    pub fn new(
        kind: impl Into<String>,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        ObjectReference {
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
            ..ObjectReference::default()
        }
    }

    /// Sets the UID.
    #[must_use]
    pub fn with_uid(mut self, uid: impl Into<String>) -> Self {
        self.uid = uid.into();
        self
    }

    /// Sets the API version (`"v1"`, `"apps/v1"`, …).
    #[must_use]
    pub fn with_api_version(mut self, api_version: impl Into<String>) -> Self {
        self.api_version = api_version.into();
        self
    }

    /// Sets the resource version.
    #[must_use]
    pub fn with_resource_version(mut self, resource_version: impl Into<String>) -> Self {
        self.resource_version = resource_version.into();
        self
    }

    /// Sets the field path (`"spec.containers{app}"`).
    #[must_use]
    pub fn with_field_path(mut self, field_path: impl Into<String>) -> Self {
        self.field_path = field_path.into();
        self
    }
}

/// Who reported an event (core/v1 `EventSource`); both fields are omitted
/// from the JSON when empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventSource {
    /// The reporting component, e.g. `"kubelet"` or your controller's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub component: String,
    /// The host (or instance) it runs on.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
}

impl EventSource {
    /// A source with this component and host (`host` may be empty).
    pub fn new(component: impl Into<String>, host: impl Into<String>) -> Self {
        EventSource {
            component: component.into(),
            host: host.into(),
        }
    }
}

/// How often an isomorphic event has been seen (core/v1 `EventSeries`, set
/// by the `events.k8s.io` machinery).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventSeries {
    /// Occurrences in the series so far (omitted when 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub count: i32,
    /// When the last occurrence was seen.
    #[serde(default)]
    pub last_observed_time: MicroTime,
}

/// An event's `type`: `"Normal"` or `"Warning"`, the only two Kubernetes
/// accepts.
///
/// Reading any other string is a serde error naming the two valid values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EventType {
    /// Nothing to worry about (`"Normal"`).
    Normal,
    /// Something may be wrong (`"Warning"`).
    Warning,
}

impl EventType {
    /// `"Normal"` or `"Warning"`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing an [`EventType`] from a string other than
/// `"Normal"` or `"Warning"`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type {0:?}: expected \"Normal\" or \"Warning\"")]
pub struct UnknownEventType(pub String);

impl FromStr for EventType {
    type Err = UnknownEventType;

    /// Exact, case-sensitive match, as the API server validates it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "Normal" => Ok(EventType::Normal),
            "Warning" => Ok(EventType::Warning),
            other => Err(UnknownEventType(other.to_owned())),
        }
    }
}

/// A Kubernetes core/v1 `Event`: a report that something happened to an
/// object.
///
/// Serialises to exactly the JSON the API server uses (`apiVersion: "v1"`,
/// `kind: "Event"`, camelCase names, empty optional fields omitted,
/// `eventTime` and zero timestamps as `null`, `reportingComponent` and
/// `reportingInstance` always present). Reading ignores unknown fields;
/// `apiVersion` and `kind` are accepted but not checked.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Name, namespace, resource version and annotations of the event
    /// itself.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The object the event is about.
    #[serde(default)]
    pub involved_object: ObjectReference,
    /// A short, machine-readable, UpperCamelCase reason, e.g. `"BackOff"`.
    #[serde(default)]
    pub reason: String,
    /// A human-readable description.
    #[serde(default)]
    pub message: String,
    /// Who reported it.
    #[serde(default)]
    pub source: EventSource,
    /// When it was first seen (whole seconds).
    #[serde(default)]
    pub first_timestamp: Time,
    /// When it was most recently seen (whole seconds).
    #[serde(default)]
    pub last_timestamp: Time,
    /// How many times it has been seen (omitted when 0).
    #[serde(default)]
    pub count: i32,
    /// `Normal` or `Warning` (JSON `type`).
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When it was first observed, at microsecond precision; set by the
    /// `events.k8s.io` machinery, `None` (`null`) for recorder events.
    #[serde(default)]
    pub event_time: Option<MicroTime>,
    /// Series data for `events.k8s.io`-style events.
    #[serde(default)]
    pub series: Option<EventSeries>,
    /// What was done (or failed) about the object, e.g. `"Scheduling"`.
    #[serde(default)]
    pub action: String,
    /// A second object involved, if any.
    #[serde(default)]
    pub related: Option<ObjectReference>,
    /// The controller that emitted the event (Go's `ReportingController`;
    /// JSON `reportingComponent`), e.g. `"kubelet"`.
    #[serde(default, rename = "reportingComponent")]
    pub reporting_controller: String,
    /// The controller instance that emitted it, e.g. `"kubelet-node-a"`.
    #[serde(default)]
    pub reporting_instance: String,
}

impl Event {
    /// The API version written to JSON: `"v1"`.
    pub const API_VERSION: &'static str = "v1";
    /// The kind written to JSON: `"Event"`.
    pub const KIND: &'static str = "Event";

    /// A fresh event as client-go's recorder makes one (`makeEvent`):
    /// name `"<involved name>.<hex Unix nanoseconds of at>"` (see
    /// [`event_name`]), namespace that of `involved` or
    /// [`DEFAULT_NAMESPACE`], first = last timestamp = `at`, count 1,
    /// reporting controller/instance = `source` component/host.
    ///
    /// ```
    /// use std::time::SystemTime;
    /// use requeue::events::{Event, EventSource, EventType, ObjectReference};
    ///
    /// let node = ObjectReference::new("Node", "", "node-a");
    /// let event = Event::new(
    ///     node,
    ///     EventType::Normal,
    ///     "NodeReady",
    ///     "Node node-a status is now: NodeReady",
    ///     EventSource::new("kubelet", "node-a"),
    ///     SystemTime::now(),
    /// );
    /// assert_eq!(event.metadata.namespace, "default");
    /// assert!(event.metadata.name.starts_with("node-a."));
    /// assert_eq!(event.count, 1);
    /// assert_eq!(event.reporting_controller, "kubelet");
    /// ```
    pub fn new(
        involved: ObjectReference,
        event_type: EventType,
        reason: impl Into<String>,
        message: impl Into<String>,
        source: EventSource,
        at: SystemTime,
    ) -> Self {
        let namespace = if involved.namespace.is_empty() {
            DEFAULT_NAMESPACE.to_owned()
        } else {
            involved.namespace.clone()
        };
        let now = Time::from(at);
        Event {
            metadata: ObjectMeta {
                name: event_name(&involved.name, at),
                namespace,
                ..ObjectMeta::default()
            },
            involved_object: involved,
            reason: reason.into(),
            message: message.into(),
            reporting_controller: source.component.clone(),
            reporting_instance: source.host.clone(),
            source,
            first_timestamp: now,
            last_timestamp: now,
            count: 1,
            event_type,
            event_time: None,
            series: None,
            action: String::new(),
            related: None,
        }
    }

    /// Sets the annotations (`AnnotatedEventf`).
    #[must_use]
    pub fn with_annotations(mut self, annotations: BTreeMap<String, String>) -> Self {
        self.metadata.annotations = annotations;
        self
    }

    /// Sets the action (`"Scheduling"`, `"Pulling"`, …).
    #[must_use]
    pub fn with_action(mut self, action: impl Into<String>) -> Self {
        self.action = action.into();
        self
    }

    /// Sets the related object.
    #[must_use]
    pub fn with_related(mut self, related: ObjectReference) -> Self {
        self.related = Some(related);
        self
    }
}

impl Serialize for Event {
    /// Field by field as Go's `encoding/json` writes a core/v1 `Event`
    /// (`omitempty` honoured, struct-typed timestamps written as `null`
    /// when zero).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Event", 17)?;
        s.serialize_field("kind", Self::KIND)?;
        s.serialize_field("apiVersion", Self::API_VERSION)?;
        s.serialize_field("metadata", &self.metadata)?;
        s.serialize_field("involvedObject", &self.involved_object)?;
        string_field(&mut s, "reason", &self.reason)?;
        string_field(&mut s, "message", &self.message)?;
        s.serialize_field("source", &self.source)?;
        s.serialize_field("firstTimestamp", &self.first_timestamp)?;
        s.serialize_field("lastTimestamp", &self.last_timestamp)?;
        if self.count == 0 {
            s.skip_field("count")?;
        } else {
            s.serialize_field("count", &self.count)?;
        }
        s.serialize_field("type", &self.event_type)?;
        s.serialize_field("eventTime", &self.event_time)?;
        match &self.series {
            Some(series) => s.serialize_field("series", series)?,
            None => s.skip_field("series")?,
        }
        string_field(&mut s, "action", &self.action)?;
        match &self.related {
            Some(related) => s.serialize_field("related", related)?,
            None => s.skip_field("related")?,
        }
        s.serialize_field("reportingComponent", &self.reporting_controller)?;
        s.serialize_field("reportingInstance", &self.reporting_instance)?;
        s.end()
    }
}

/// Writes a Go `string` field tagged `omitempty`.
fn string_field<S: SerializeStruct>(
    s: &mut S,
    key: &'static str,
    value: &str,
) -> Result<(), S::Error> {
    if value.is_empty() {
        s.skip_field(key)
    } else {
        s.serialize_field(key, value)
    }
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
