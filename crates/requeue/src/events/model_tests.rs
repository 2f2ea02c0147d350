//! The core/v1 `Event` JSON shape: exact output, omitted fields, `null`s,
//! event types, round trips and real API-server fixtures.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use super::*;
use serde_json::{Value, json};
use std::time::Duration;

/// 2026-11-23T14:58:00Z.
const T0: u64 = 1_795_445_880;

fn at(secs: u64, nanos: u32) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::new(secs, nanos)
}

fn pod() -> ObjectReference {
    ObjectReference::new("Pod", "shop", "web-0")
        .with_uid("5f0f3c52-8a4e-4d4b-9b2e-3c1a2f7d9e10")
        .with_api_version("v1")
        .with_resource_version("48211")
        .with_field_path("spec.containers{app}")
}

/// Every field set.
fn full_event() -> Event {
    Event {
        metadata: ObjectMeta {
            name: "web-0.18eab483e2d6b000".into(),
            namespace: "shop".into(),
            resource_version: "50117".into(),
            annotations: BTreeMap::from([("team".into(), "payments".into())]),
        },
        involved_object: pod(),
        reason: "BackOff".into(),
        message: "Back-off restarting failed container app".into(),
        source: EventSource::new("my-controller", "node-a"),
        first_timestamp: Time::from(at(T0, 0)),
        last_timestamp: Time::from(at(T0 + 62, 500_000_000)),
        count: 3,
        event_type: EventType::Warning,
        event_time: Some(MicroTime::from(at(T0, 123_456_789))),
        series: Some(EventSeries {
            count: 2,
            last_observed_time: MicroTime::from(at(T0 + 60, 1_000)),
        }),
        action: "Restarting".into(),
        related: Some(
            ObjectReference::new("Node", "", "node-a")
                .with_uid("a1b2")
                .with_api_version("v1"),
        ),
        reporting_controller: "my-controller".into(),
        reporting_instance: "my-controller-7f9c".into(),
    }
}

fn fixture(text: &str) -> (Event, Value) {
    (
        serde_json::from_str(text).unwrap(),
        serde_json::from_str(text).unwrap(),
    )
}

#[test]
fn full_event_serialises_to_core_v1_json() {
    let value = serde_json::to_value(full_event()).unwrap();
    assert_eq!(
        value,
        json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": "web-0.18eab483e2d6b000",
                "namespace": "shop",
                "resourceVersion": "50117",
                "annotations": {"team": "payments"}
            },
            "involvedObject": {
                "kind": "Pod",
                "namespace": "shop",
                "name": "web-0",
                "uid": "5f0f3c52-8a4e-4d4b-9b2e-3c1a2f7d9e10",
                "apiVersion": "v1",
                "resourceVersion": "48211",
                "fieldPath": "spec.containers{app}"
            },
            "reason": "BackOff",
            "message": "Back-off restarting failed container app",
            "source": {"component": "my-controller", "host": "node-a"},
            "firstTimestamp": "2026-11-23T14:58:00Z",
            "lastTimestamp": "2026-11-23T14:59:02Z",
            "count": 3,
            "type": "Warning",
            "eventTime": "2026-11-23T14:58:00.123456Z",
            "series": {"count": 2, "lastObservedTime": "2026-11-23T14:59:00.000001Z"},
            "action": "Restarting",
            "related": {"kind": "Node", "name": "node-a", "uid": "a1b2", "apiVersion": "v1"},
            "reportingComponent": "my-controller",
            "reportingInstance": "my-controller-7f9c"
        })
    );
}

#[test]
fn serialised_fields_come_in_go_order() {
    let text = serde_json::to_string(&full_event()).unwrap();
    let keys = [
        "\"kind\"",
        "\"apiVersion\"",
        "\"metadata\"",
        "\"involvedObject\"",
        "\"reason\"",
        "\"message\"",
        "\"source\"",
        "\"firstTimestamp\"",
        "\"lastTimestamp\"",
        "\"count\"",
        "\"type\"",
        "\"eventTime\"",
        "\"series\"",
        "\"action\"",
        "\"related\"",
        "\"reportingComponent\"",
        "\"reportingInstance\"",
    ];
    let positions: Vec<usize> = keys.iter().map(|k| text.find(k).unwrap()).collect();
    assert!(positions.is_sorted(), "{text}");
}

#[test]
fn empty_optional_fields_are_omitted() {
    let event = Event {
        metadata: ObjectMeta::default(),
        involved_object: ObjectReference::default(),
        reason: String::new(),
        message: String::new(),
        source: EventSource::default(),
        first_timestamp: Time::ZERO,
        last_timestamp: Time::ZERO,
        count: 0,
        event_type: EventType::Normal,
        event_time: None,
        series: None,
        action: String::new(),
        related: None,
        reporting_controller: String::new(),
        reporting_instance: String::new(),
    };
    // What Go's encoding/json writes for the same zero-valued v1.Event:
    // omitempty strings and ints vanish, struct-typed fields stay (`{}` or
    // `null`), and the two non-omitempty reporting fields stay as "".
    assert_eq!(
        serde_json::to_value(&event).unwrap(),
        json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {},
            "involvedObject": {},
            "source": {},
            "firstTimestamp": null,
            "lastTimestamp": null,
            "type": "Normal",
            "eventTime": null,
            "reportingComponent": "",
            "reportingInstance": ""
        })
    );
    assert_eq!(round_trip(&event), event);
}

#[test]
fn partially_empty_parts_omit_only_empty_fields() {
    let reference = ObjectReference::new("Node", "", "node-a");
    assert_eq!(
        serde_json::to_value(&reference).unwrap(),
        json!({"kind": "Node", "name": "node-a"})
    );
    assert_eq!(
        serde_json::to_value(EventSource::new("my-controller", "")).unwrap(),
        json!({"component": "my-controller"})
    );
    let meta = ObjectMeta {
        name: "n".into(),
        namespace: "default".into(),
        ..ObjectMeta::default()
    };
    assert_eq!(
        serde_json::to_value(&meta).unwrap(),
        json!({"name": "n", "namespace": "default"})
    );
    assert_eq!(
        serde_json::to_value(EventSeries::default()).unwrap(),
        json!({"lastObservedTime": null})
    );
}

#[test]
fn event_time_is_null_when_absent() {
    let mut event = full_event();
    event.event_time = None;
    let value = serde_json::to_value(&event).unwrap();
    assert_eq!(value["eventTime"], Value::Null);
    assert!(value.as_object().unwrap().contains_key("eventTime"));
    // Missing or null both read back as None.
    let mut object = value.as_object().unwrap().clone();
    assert_eq!(
        serde_json::from_value::<Event>(Value::Object(object.clone())).unwrap(),
        event
    );
    object.remove("eventTime");
    assert_eq!(
        serde_json::from_value::<Event>(Value::Object(object)).unwrap(),
        event
    );
}

#[test]
fn second_and_microsecond_timestamps_differ_in_format() {
    let value = serde_json::to_value(full_event()).unwrap();
    // lastTimestamp was set from …:02.5 and loses the half second.
    assert_eq!(value["lastTimestamp"], "2026-11-23T14:59:02Z");
    assert_eq!(value["eventTime"], "2026-11-23T14:58:00.123456Z");
    assert_eq!(
        value["series"]["lastObservedTime"],
        "2026-11-23T14:59:00.000001Z"
    );
}

#[test]
fn timestamps_with_offsets_read_as_utc() {
    let mut value = serde_json::to_value(full_event()).unwrap();
    value["firstTimestamp"] = json!("2026-11-23T16:58:00+02:00");
    value["eventTime"] = json!("2026-11-23T09:28:00.123456-05:30");
    let event: Event = serde_json::from_value(value).unwrap();
    assert_eq!(event, full_event());
    let value = serde_json::to_value(&event).unwrap();
    assert_eq!(value["firstTimestamp"], "2026-11-23T14:58:00Z");
    assert_eq!(value["eventTime"], "2026-11-23T14:58:00.123456Z");
}

#[test]
fn unknown_event_type_is_a_serde_error() {
    let mut value = serde_json::to_value(full_event()).unwrap();
    value["type"] = json!("Critical");
    let err = serde_json::from_value::<Event>(value.clone()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("Critical") && text.contains("Normal") && text.contains("Warning"),
        "{text}"
    );
    // Case matters, as for the API server.
    value["type"] = json!("warning");
    assert!(serde_json::from_value::<Event>(value.clone()).is_err());
    // `type` is required.
    value.as_object_mut().unwrap().remove("type");
    let err = serde_json::from_value::<Event>(value).unwrap_err();
    assert!(err.to_string().contains("type"), "{err}");
}

#[test]
fn event_type_parses_and_displays() {
    assert_eq!("Normal".parse::<EventType>(), Ok(EventType::Normal));
    assert_eq!("Warning".parse::<EventType>(), Ok(EventType::Warning));
    let err = "Error".parse::<EventType>().unwrap_err();
    assert_eq!(err, UnknownEventType("Error".into()));
    assert_eq!(
        err.to_string(),
        r#"unknown event type "Error": expected "Normal" or "Warning""#
    );
    assert_eq!(EventType::Warning.to_string(), "Warning");
    assert_eq!(
        serde_json::to_string(&EventType::Normal).unwrap(),
        r#""Normal""#
    );
}

fn round_trip(event: &Event) -> Event {
    serde_json::from_str(&serde_json::to_string(event).unwrap()).unwrap()
}

#[test]
fn round_trips_are_lossless() {
    let full = full_event();
    assert_eq!(round_trip(&full), full);
    let fresh = Event::new(
        pod(),
        EventType::Normal,
        "Pulled",
        "Container image \"nginx:1.27\" already present on machine",
        EventSource::new("kubelet", "node-a"),
        at(T0, 987_654_321),
    );
    assert_eq!(round_trip(&fresh), fresh);
    let pretty: Event =
        serde_json::from_str(&serde_json::to_string_pretty(&full).unwrap()).unwrap();
    assert_eq!(pretty, full);
}

#[test]
fn event_new_fills_fields_like_make_event() {
    let event = Event::new(
        pod(),
        EventType::Warning,
        "BackOff",
        "Back-off restarting failed container app",
        EventSource::new("my-controller", "node-a"),
        at(T0, 987_654_321),
    );
    assert_eq!(event.metadata.name, "web-0.18eab4841db518b1");
    assert_eq!(event.metadata.namespace, "shop");
    assert!(event.metadata.resource_version.is_empty());
    assert!(event.metadata.annotations.is_empty());
    assert_eq!(event.involved_object, pod());
    assert_eq!(event.first_timestamp, Time::from(at(T0, 0)));
    assert_eq!(event.last_timestamp, event.first_timestamp);
    assert_eq!(event.count, 1);
    assert_eq!(event.event_type, EventType::Warning);
    assert_eq!(event.source, EventSource::new("my-controller", "node-a"));
    assert_eq!(event.reporting_controller, "my-controller");
    assert_eq!(event.reporting_instance, "node-a");
    assert_eq!(event.event_time, None);
    assert_eq!(event.series, None);
    assert!(event.action.is_empty());
    assert_eq!(event.related, None);

    let event = event
        .with_annotations(BTreeMap::from([("k".into(), "v".into())]))
        .with_action("Restarting")
        .with_related(ObjectReference::new("Node", "", "node-a"));
    assert_eq!(event.metadata.annotations["k"], "v");
    assert_eq!(event.action, "Restarting");
    assert_eq!(event.related.unwrap().name, "node-a");
}

/// TestEventfNoNamespace: a cluster-scoped object's events go to "default".
#[test]
fn event_new_for_cluster_scoped_object_uses_default_namespace() {
    let event = Event::new(
        ObjectReference::new("Node", "", "node-a"),
        EventType::Normal,
        "NodeReady",
        "Node node-a status is now: NodeReady",
        EventSource::new("kubelet", "node-a"),
        at(T0, 0),
    );
    assert_eq!(event.metadata.namespace, DEFAULT_NAMESPACE);
    assert_eq!(event.metadata.namespace, "default");
    assert!(event.involved_object.namespace.is_empty());
    let value = serde_json::to_value(&event).unwrap();
    assert!(value["involvedObject"].get("namespace").is_none());
}

/// Removes the fields the model does not carry from a server fixture.
fn known_fields_only(mut value: Value) -> Value {
    let metadata = value["metadata"].as_object_mut().unwrap();
    for unknown in ["creationTimestamp", "managedFields", "uid"] {
        metadata.remove(unknown);
    }
    value
}

#[test]
fn reads_api_server_backoff_event() {
    let (event, value) = fixture(include_str!("testdata/backoff_pod.json"));
    assert_eq!(event.metadata.name, "web-7c9d8f6b5-x2x9q.187a9c3e5d2f1b40");
    assert_eq!(event.metadata.namespace, "shop");
    assert_eq!(event.metadata.resource_version, "50117");
    assert_eq!(
        event.involved_object,
        ObjectReference::new("Pod", "shop", "web-7c9d8f6b5-x2x9q")
            .with_uid("5f0f3c52-8a4e-4d4b-9b2e-3c1a2f7d9e10")
            .with_api_version("v1")
            .with_resource_version("48211")
            .with_field_path("spec.containers{app}")
    );
    assert_eq!(event.reason, "BackOff");
    assert!(
        event
            .message
            .starts_with("Back-off restarting failed container app")
    );
    assert_eq!(event.source, EventSource::new("kubelet", "node-a"));
    assert_eq!(event.first_timestamp.to_string(), "2026-11-23T13:40:12Z");
    assert_eq!(event.last_timestamp.to_string(), "2026-11-23T14:52:03Z");
    assert_eq!(event.count, 61);
    assert_eq!(event.event_type, EventType::Warning);
    assert_eq!(event.event_time, None);
    assert_eq!(event.reporting_controller, "kubelet");
    assert_eq!(event.reporting_instance, "node-a");
    // Written back, it is the server's JSON minus the metadata we ignore.
    assert_eq!(
        serde_json::to_value(&event).unwrap(),
        known_fields_only(value)
    );
}

#[test]
fn reads_api_server_events_k8s_io_event() {
    let (event, value) = fixture(include_str!("testdata/failed_scheduling.json"));
    assert_eq!(event.reason, "FailedScheduling");
    assert_eq!(event.action, "Scheduling");
    assert_eq!(event.first_timestamp, Time::ZERO);
    assert_eq!(event.last_timestamp, Time::ZERO);
    assert_eq!(event.count, 0);
    assert_eq!(event.source, EventSource::default());
    assert_eq!(
        event.event_time.unwrap().to_string(),
        "2026-11-23T14:01:02.345678Z"
    );
    let series = event.series.clone().unwrap();
    assert_eq!(series.count, 4);
    assert_eq!(
        series.last_observed_time.to_string(),
        "2026-11-23T14:11:02.901234Z"
    );
    assert_eq!(event.reporting_controller, "default-scheduler");
    assert_eq!(
        serde_json::to_value(&event).unwrap(),
        known_fields_only(value)
    );
}

#[test]
fn unknown_fields_are_ignored() {
    let mut value = serde_json::to_value(full_event()).unwrap();
    value["deprecatedFirstTimestamp"] = json!("2026-11-23T14:58:00Z");
    value["involvedObject"]["extra"] = json!({"nested": [1, 2]});
    value["source"]["zone"] = json!("eu-1");
    value["series"]["state"] = json!("Ongoing");
    assert_eq!(
        serde_json::from_value::<Event>(value).unwrap(),
        full_event()
    );
}
