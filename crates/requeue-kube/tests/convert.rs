//! Conversions between requeue's events and k8s-openapi's, both ways.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::events::v1 as events;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use proptest::prelude::*;
use requeue::events::{
    Event, EventSeries, EventSource, EventType, MicroTime, ObjectMeta, ObjectReference, Time,
};
use requeue_kube::events::{
    ConvertError, InvolvedExt, from_core_event, from_events_v1, from_object_reference,
    to_core_event, to_events_v1, to_object_reference,
};

fn text() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-z0-9.-]{1,12}"]
}

fn reference() -> impl Strategy<Value = ObjectReference> {
    (text(), text(), text(), text(), text(), text(), text()).prop_map(
        |(kind, namespace, name, uid, api_version, resource_version, field_path)| ObjectReference {
            kind,
            namespace,
            name,
            uid,
            api_version,
            resource_version,
            field_path,
        },
    )
}

/// Times inside jiff's range, at nanosecond precision: the model
/// truncates them to the wire precision itself.
fn instant() -> impl Strategy<Value = SystemTime> {
    (0u64..4_000_000_000, 0u32..1_000_000_000)
        .prop_map(|(s, n)| SystemTime::UNIX_EPOCH + Duration::new(s, n))
}

fn time() -> impl Strategy<Value = Time> {
    prop_oneof![Just(Time::ZERO), instant().prop_map(Time::from)]
}

fn micro() -> impl Strategy<Value = MicroTime> {
    prop_oneof![Just(MicroTime::ZERO), instant().prop_map(MicroTime::from)]
}

fn event() -> impl Strategy<Value = Event> {
    let meta = (
        text(),
        text(),
        text(),
        proptest::collection::btree_map("[a-z]{1,5}", "[a-z ]{0,5}", 0..3),
    )
        .prop_map(
            |(name, namespace, resource_version, annotations)| ObjectMeta {
                name,
                namespace,
                resource_version,
                annotations,
            },
        );
    let head = (
        meta,
        reference(),
        text(),
        text(),
        (text(), text()),
        time(),
        time(),
        any::<i32>(),
    );
    let tail = (
        prop_oneof![Just(EventType::Normal), Just(EventType::Warning)],
        // `Some(ZERO)` is written as `null` and reads as `None` (module docs).
        proptest::option::of(instant().prop_map(MicroTime::from)),
        proptest::option::of((any::<i32>(), micro())),
        text(),
        proptest::option::of(reference()),
        text(),
        text(),
    );
    (head, tail).prop_map(
        |(
            (metadata, involved_object, reason, message, (component, host), first, last, count),
            (event_type, event_time, series, action, related, controller, instance),
        )| Event {
            metadata,
            involved_object,
            reason,
            message,
            source: EventSource { component, host },
            first_timestamp: first,
            last_timestamp: last,
            count,
            event_type,
            event_time,
            series: series.map(|(count, last_observed_time)| EventSeries {
                count,
                last_observed_time,
            }),
            action,
            related,
            reporting_controller: controller,
            reporting_instance: instance,
        },
    )
}

proptest! {
    #[test]
    fn references_round_trip(r in reference()) {
        prop_assert_eq!(from_object_reference(to_object_reference(&r)), r);
    }

    #[test]
    fn core_events_round_trip(e in event()) {
        let k8s = to_core_event(&e);
        prop_assert_eq!(from_core_event(k8s.clone()).unwrap(), e.clone());
        // And back: the k8s-openapi value is already normalised.
        prop_assert_eq!(to_core_event(&from_core_event(k8s.clone()).unwrap()), k8s);
    }

    #[test]
    fn events_v1_round_trip(e in event()) {
        let k8s = to_events_v1(&e);
        prop_assert_eq!(from_events_v1(k8s.clone()).unwrap(), e.clone());
        prop_assert_eq!(to_events_v1(&from_events_v1(k8s.clone()).unwrap()), k8s);
    }

    /// What requeue writes and what k8s-openapi writes for the same event
    /// read back the same.
    #[test]
    fn the_wire_json_agrees(e in event()) {
        let ours: core::Event = serde_json::from_value(serde_json::to_value(&e).unwrap()).unwrap();
        prop_assert_eq!(from_core_event(ours).unwrap(), e.clone());
        let theirs: Event = serde_json::from_value(serde_json::to_value(to_core_event(&e)).unwrap()).unwrap();
        prop_assert_eq!(theirs, e);
    }
}

#[test]
fn empty_strings_and_zero_counts_are_normalised_to_none() {
    let k8s = core::Event {
        involved_object: core::ObjectReference {
            kind: Some("Pod".into()),
            uid: Some(String::new()),
            ..core::ObjectReference::default()
        },
        count: Some(0),
        message: Some(String::new()),
        metadata: kube::api::ObjectMeta {
            annotations: Some(BTreeMap::new()),
            uid: Some("dropped".into()),
            ..kube::api::ObjectMeta::default()
        },
        source: Some(core::EventSource::default()),
        type_: Some("Normal".into()),
        ..core::Event::default()
    };
    let back = to_core_event(&from_core_event(k8s).unwrap());
    assert_eq!(back.involved_object.uid, None);
    assert_eq!((back.count, back.message, back.source), (None, None, None));
    assert_eq!((back.metadata.annotations, back.metadata.uid), (None, None));
}

#[test]
fn an_event_needs_a_known_type() {
    let missing = core::Event::default();
    assert_eq!(from_core_event(missing), Err(ConvertError::MissingType));
    let odd = events::Event {
        type_: Some("Error".into()),
        ..events::Event::default()
    };
    assert!(matches!(
        from_events_v1(odd),
        Err(ConvertError::UnknownType(_))
    ));
}

#[test]
fn dynamic_objects_are_involved_through_their_api_resource() {
    let gvk = GroupVersionKind::gvk("example.com", "v1", "Shop");
    let resource = ApiResource::from_gvk(&gvk);
    let shop = DynamicObject::new("corner", &resource).within("retail");
    let reference = shop.involved_with(&resource);
    assert_eq!(
        reference,
        ObjectReference::new("Shop", "retail", "corner").with_api_version("example.com/v1")
    );
}
