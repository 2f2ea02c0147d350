//! Conversions between requeue's event model and k8s-openapi's types.
//!
//! Both directions are free functions because both sides are foreign to
//! this crate (the orphan rule forbids `From` impls between them).
//!
//! # What maps, and what does not
//!
//! requeue's model writes Go's zero values (empty strings, count 0, zero
//! timestamps) where k8s-openapi writes `None`, so:
//!
//! - requeue → k8s-openapi → requeue gives back an equal value, always.
//! - k8s-openapi → requeue → k8s-openapi gives back an equal value once
//!   normalised: `Some("")`, `Some(0)`, empty annotations and an
//!   all-empty `source` become `None` (the API server does not tell them
//!   apart either).
//! - requeue's `event_time: Some(MicroTime::ZERO)` becomes `None`, as in
//!   requeue's own JSON (Go writes a zero time as `null`).
//! - Metadata other than name, namespace, resource version and
//!   annotations (uid, labels, creation time, managed fields, …) is
//!   dropped when reading a k8s-openapi event: the recorder never sets it.
//! - A k8s-openapi timestamp carrying more precision than the wire
//!   (`Time`: seconds, `MicroTime`: microseconds) is truncated; the API
//!   server never sends more.
//! - A core/v1 `EventSeries` with no `lastObservedTime` reads as
//!   requeue's zero [`MicroTime`](requeue::events::MicroTime).
//! - An event without a `type`, or with a type other than `Normal` or
//!   `Warning`, cannot be read: [`ConvertError`].
//!
//! events.k8s.io/v1 `Event` maps to the same requeue [`Event`] the way the
//! API server converts between the two versions: `regarding` ↔
//! `involvedObject`, `note` ↔ `message`, `deprecatedSource`,
//! `deprecatedFirstTimestamp`, `deprecatedLastTimestamp`,
//! `deprecatedCount` ↔ `source`, `firstTimestamp`, `lastTimestamp`,
//! `count`, `reportingController` ↔ `reportingComponent`.

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::events::v1 as events;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use requeue::events::{
    Event, EventSeries, EventSource, EventType, MicroTime, ObjectMeta, ObjectReference, Time,
    UnknownEventType,
};

/// Why a k8s-openapi event cannot become a requeue [`Event`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// The event has no `type`; requeue's model requires one.
    #[error("the event has no type")]
    MissingType,
    /// The event's `type` is neither `Normal` nor `Warning`.
    #[error(transparent)]
    UnknownType(#[from] UnknownEventType),
}

/// `None` for an empty string, as k8s-openapi writes Go's `omitempty`.
fn opt(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn string(s: Option<String>) -> String {
    s.unwrap_or_default()
}

fn to_time(t: Time) -> Option<meta::Time> {
    (!t.is_zero()).then(|| meta::Time(t.timestamp()))
}

fn from_time(t: Option<meta::Time>) -> Time {
    t.map_or(Time::ZERO, |t| Time::from_timestamp(t.0))
}

fn to_micro(t: MicroTime) -> Option<meta::MicroTime> {
    (!t.is_zero()).then(|| meta::MicroTime(t.timestamp()))
}

fn from_micro(t: Option<meta::MicroTime>) -> MicroTime {
    t.map_or(MicroTime::ZERO, |t| MicroTime::from_timestamp(t.0))
}

fn event_type(t: Option<String>) -> Result<EventType, ConvertError> {
    Ok(t.ok_or(ConvertError::MissingType)?.parse()?)
}

/// requeue's [`ObjectReference`] as k8s-openapi's (empty fields `None`).
///
/// ```
/// use requeue::events::ObjectReference;
/// use requeue_kube::events::{from_object_reference, to_object_reference};
///
/// let pod = ObjectReference::new("Pod", "shop", "web-0").with_api_version("v1");
/// let k8s = to_object_reference(&pod);
/// assert_eq!(k8s.kind.as_deref(), Some("Pod"));
/// assert_eq!(k8s.uid, None);
/// assert_eq!(from_object_reference(k8s), pod);
/// ```
pub fn to_object_reference(r: &ObjectReference) -> core::ObjectReference {
    core::ObjectReference {
        api_version: opt(&r.api_version),
        field_path: opt(&r.field_path),
        kind: opt(&r.kind),
        name: opt(&r.name),
        namespace: opt(&r.namespace),
        resource_version: opt(&r.resource_version),
        uid: opt(&r.uid),
    }
}

/// k8s-openapi's `ObjectReference` as requeue's (`None` → empty).
pub fn from_object_reference(r: core::ObjectReference) -> ObjectReference {
    ObjectReference {
        kind: string(r.kind),
        namespace: string(r.namespace),
        name: string(r.name),
        uid: string(r.uid),
        api_version: string(r.api_version),
        resource_version: string(r.resource_version),
        field_path: string(r.field_path),
    }
}

fn to_meta(m: &ObjectMeta) -> meta::ObjectMeta {
    meta::ObjectMeta {
        name: opt(&m.name),
        namespace: opt(&m.namespace),
        resource_version: opt(&m.resource_version),
        annotations: (!m.annotations.is_empty()).then(|| m.annotations.clone()),
        ..meta::ObjectMeta::default()
    }
}

fn from_meta(m: meta::ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        name: string(m.name),
        namespace: string(m.namespace),
        resource_version: string(m.resource_version),
        annotations: m.annotations.unwrap_or_default(),
    }
}

fn to_source(s: &EventSource) -> Option<core::EventSource> {
    (!s.component.is_empty() || !s.host.is_empty()).then(|| core::EventSource {
        component: opt(&s.component),
        host: opt(&s.host),
    })
}

fn from_source(s: Option<core::EventSource>) -> EventSource {
    s.map_or_else(EventSource::default, |s| EventSource {
        component: string(s.component),
        host: string(s.host),
    })
}

fn nonzero(n: i32) -> Option<i32> {
    (n != 0).then_some(n)
}

/// A requeue [`Event`] as k8s-openapi's core/v1 `Event`.
///
/// ```
/// use std::time::SystemTime;
/// use requeue::events::{Event, EventSource, EventType, ObjectReference};
/// use requeue_kube::events::{from_core_event, to_core_event};
///
/// let pod = ObjectReference::new("Pod", "shop", "web-0");
/// let event = Event::new(pod, EventType::Warning, "BackOff", "restarting",
///     EventSource::new("shop-controller", ""), SystemTime::now());
/// let k8s = to_core_event(&event);
/// assert_eq!(k8s.type_.as_deref(), Some("Warning"));
/// assert_eq!(k8s.count, Some(1));
/// assert_eq!(from_core_event(k8s)?, event);
/// # Ok::<(), requeue_kube::events::ConvertError>(())
/// ```
pub fn to_core_event(e: &Event) -> core::Event {
    core::Event {
        action: opt(&e.action),
        count: nonzero(e.count),
        event_time: e.event_time.and_then(to_micro),
        first_timestamp: to_time(e.first_timestamp),
        involved_object: to_object_reference(&e.involved_object),
        last_timestamp: to_time(e.last_timestamp),
        message: opt(&e.message),
        metadata: to_meta(&e.metadata),
        reason: opt(&e.reason),
        related: e.related.as_ref().map(to_object_reference),
        reporting_component: opt(&e.reporting_controller),
        reporting_instance: opt(&e.reporting_instance),
        series: e.series.as_ref().map(|s| core::EventSeries {
            count: nonzero(s.count),
            last_observed_time: to_micro(s.last_observed_time),
        }),
        source: to_source(&e.source),
        type_: Some(e.event_type.as_str().to_owned()),
    }
}

/// k8s-openapi's core/v1 `Event` as a requeue [`Event`]; fails without a
/// valid `type`. See the module docs for what is dropped.
pub fn from_core_event(e: core::Event) -> Result<Event, ConvertError> {
    Ok(Event {
        metadata: from_meta(e.metadata),
        involved_object: from_object_reference(e.involved_object),
        reason: string(e.reason),
        message: string(e.message),
        source: from_source(e.source),
        first_timestamp: from_time(e.first_timestamp),
        last_timestamp: from_time(e.last_timestamp),
        count: e.count.unwrap_or(0),
        event_type: event_type(e.type_)?,
        // A zero `eventTime` is what Go writes as `null`.
        event_time: e.event_time.map(|t| from_micro(Some(t))),
        series: e.series.map(|s| EventSeries {
            count: s.count.unwrap_or(0),
            last_observed_time: from_micro(s.last_observed_time),
        }),
        action: string(e.action),
        related: e.related.map(from_object_reference),
        reporting_controller: string(e.reporting_component),
        reporting_instance: string(e.reporting_instance),
    })
}

/// A requeue [`Event`] as k8s-openapi's events.k8s.io/v1 `Event` (the
/// series path), field by field as the API server converts versions.
///
/// ```
/// use std::time::SystemTime;
/// use requeue::events::{Event, EventSource, EventType, ObjectReference};
/// use requeue_kube::events::{from_events_v1, to_events_v1};
///
/// let pod = ObjectReference::new("Pod", "shop", "web-0");
/// let event = Event::new(pod, EventType::Normal, "Started", "started",
///     EventSource::new("shop-controller", ""), SystemTime::now());
/// let k8s = to_events_v1(&event);
/// assert_eq!(k8s.note.as_deref(), Some("started"));
/// assert_eq!(k8s.reporting_controller.as_deref(), Some("shop-controller"));
/// assert_eq!(from_events_v1(k8s)?, event);
/// # Ok::<(), requeue_kube::events::ConvertError>(())
/// ```
pub fn to_events_v1(e: &Event) -> events::Event {
    events::Event {
        action: opt(&e.action),
        deprecated_count: nonzero(e.count),
        deprecated_first_timestamp: to_time(e.first_timestamp),
        deprecated_last_timestamp: to_time(e.last_timestamp),
        deprecated_source: to_source(&e.source),
        event_time: e.event_time.and_then(to_micro),
        metadata: to_meta(&e.metadata),
        note: opt(&e.message),
        reason: opt(&e.reason),
        regarding: Some(to_object_reference(&e.involved_object)),
        related: e.related.as_ref().map(to_object_reference),
        reporting_controller: opt(&e.reporting_controller),
        reporting_instance: opt(&e.reporting_instance),
        series: e.series.as_ref().map(|s| events::EventSeries {
            count: s.count,
            last_observed_time: meta::MicroTime(s.last_observed_time.timestamp()),
        }),
        type_: Some(e.event_type.as_str().to_owned()),
    }
}

/// k8s-openapi's events.k8s.io/v1 `Event` as a requeue [`Event`]; fails
/// without a valid `type`. A missing `regarding` reads as an empty
/// reference.
pub fn from_events_v1(e: events::Event) -> Result<Event, ConvertError> {
    Ok(Event {
        metadata: from_meta(e.metadata),
        involved_object: e.regarding.map(from_object_reference).unwrap_or_default(),
        reason: string(e.reason),
        message: string(e.note),
        source: from_source(e.deprecated_source),
        first_timestamp: from_time(e.deprecated_first_timestamp),
        last_timestamp: from_time(e.deprecated_last_timestamp),
        count: e.deprecated_count.unwrap_or(0),
        event_type: event_type(e.type_)?,
        event_time: e.event_time.map(|t| from_micro(Some(t))),
        series: e.series.map(|s| EventSeries {
            count: s.count,
            last_observed_time: MicroTime::from_timestamp(s.last_observed_time.0),
        }),
        action: string(e.action),
        related: e.related.map(from_object_reference),
        reporting_controller: string(e.reporting_controller),
        reporting_instance: string(e.reporting_instance),
    })
}
