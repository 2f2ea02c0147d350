//! client-go's correlator tests (docs/behaviour.md §8.4: TestEventCorrelator,
//! TestEventAggregatorByReasonFunc/MessageFunc, TestEventSpamFilter) on a FakeClock.

use super::*;
use crate::clock::FakeClock;
use crate::events::{EventSource, EventType, ObjectReference};
use std::time::SystemTime;

fn pod(field_path: &str) -> ObjectReference {
    ObjectReference::new("Pod", "default", "web-0")
        .with_uid("uid-1")
        .with_api_version("v1")
        .with_field_path(field_path)
}

fn event(reason: &str, message: &str) -> Event {
    event_on(pod(""), reason, message)
}

fn event_on(object: ObjectReference, reason: &str, message: &str) -> Event {
    Event::new(
        object,
        EventType::Warning,
        reason,
        message,
        EventSource::new("kubelet", "node-1"),
        SystemTime::now(),
    )
}

fn correlator(clock: &FakeClock) -> Correlator {
    Correlator::new(CorrelatorOptions {
        clock: Arc::new(clock.clone()),
        ..CorrelatorOptions::default()
    })
}

/// Feeds `events` in order, feeding the server's copy back as a sink would.
fn record(c: &Correlator, events: &[Event]) -> Vec<Correlation> {
    events
        .iter()
        .map(|e| {
            let result = c.correlate(e);
            if !result.skip {
                c.update_state(&result.event);
            }
            result
        })
        .collect()
}

#[test]
fn a_single_event_is_created_with_count_1() {
    let c = correlator(&FakeClock::new());
    let r = c.correlate(&event("BackOff", "restarting"));
    assert_eq!((r.event.count, r.patch.is_none(), r.skip), (1, true, false));
}

#[test]
fn a_duplicate_becomes_a_patch_of_the_same_object_with_count_2() {
    let c = correlator(&FakeClock::new());
    let first = record(&c, &[event("BackOff", "restarting")]).remove(0);
    let second = c.correlate(&event("BackOff", "restarting"));
    assert_eq!(second.event.count, 2);
    assert_eq!(second.event.metadata.name, first.event.metadata.name);
    assert_eq!(second.event.first_timestamp, first.event.first_timestamp);
    let patch = second.patch.expect("a patch");
    assert_eq!(patch["count"], 2);
    assert_eq!(patch["message"], "restarting");
    assert!(patch.get("lastTimestamp").is_some());
}

#[test]
fn eleven_identical_events_count_to_11_without_aggregating() {
    let c = correlator(&FakeClock::new());
    let results = record(&c, &vec![event("BackOff", "same"); 11]);
    let last = results.last().expect("11 results");
    assert_eq!(last.event.count, 11);
    assert!(!last.event.message.starts_with(AGGREGATE_PREFIX));
}

#[test]
fn the_26th_rapid_event_from_one_object_is_skipped_by_the_spam_filter() {
    let c = correlator(&FakeClock::new());
    let results = record(&c, &vec![event("BackOff", "same"); 26]);
    assert!(results[..25].iter().all(|r| !r.skip));
    assert!(results[25].skip);
}

#[test]
fn many_unique_objects_each_count_1() {
    let c = correlator(&FakeClock::new());
    for i in 0..100 {
        let object = ObjectReference::new("Pod", "default", format!("pod-{i}"));
        let r = record(&c, &[event_on(object, "Started", "ok")]).remove(0);
        assert_eq!((r.event.count, r.skip), (1, false));
    }
}

#[test]
fn the_10th_similar_event_is_the_first_aggregate_with_count_1() {
    let c = correlator(&FakeClock::new());
    let similar: Vec<Event> = (0..10)
        .map(|i| event("Failed", &format!("attempt {i}")))
        .collect();
    let results = record(&c, &similar);
    assert!(
        results[..9]
            .iter()
            .all(|r| !r.event.message.starts_with(AGGREGATE_PREFIX))
    );
    let aggregate = &results[9];
    assert_eq!(
        aggregate.event.message,
        format!("{AGGREGATE_PREFIX}attempt 9")
    );
    assert_eq!(aggregate.event.count, 1);
}

#[test]
fn the_11th_similar_event_patches_the_aggregate_to_count_2() {
    let c = correlator(&FakeClock::new());
    let similar: Vec<Event> = (0..11)
        .map(|i| event("Failed", &format!("attempt {i}")))
        .collect();
    let results = record(&c, &similar);
    let last = results.last().expect("11 results");
    assert_eq!(last.event.count, 2);
    assert_eq!(last.event.message, format!("{AGGREGATE_PREFIX}attempt 10"));
    assert_eq!(
        last.event.metadata.name, results[9].event.metadata.name,
        "the same aggregate object"
    );
}

#[test]
fn a_different_field_path_is_not_merged() {
    let c = correlator(&FakeClock::new());
    let a = record(&c, &[event_on(pod("spec.containers{a}"), "BackOff", "x")]).remove(0);
    let b = c.correlate(&event_on(pod("spec.containers{b}"), "BackOff", "x"));
    assert_eq!((a.event.count, b.event.count), (1, 1));
    assert!(b.patch.is_none());
}

#[test]
fn similar_events_spread_beyond_the_window_do_not_aggregate() {
    let clock = FakeClock::new();
    let c = correlator(&clock);
    for i in 0..12 {
        let r = record(&c, &[event("Failed", &format!("attempt {i}"))]).remove(0);
        assert!(
            !r.event.message.starts_with(AGGREGATE_PREFIX),
            "event {i} aggregated"
        );
        clock.advance(DEFAULT_AGGREGATE_INTERVAL + Duration::from_secs(1));
    }
}

#[test]
fn by_reason_keys_differ_only_locally_when_the_message_differs() {
    let a = event("Failed", "one");
    let b = event("Failed", "two");
    let (agg_a, local_a) = aggregate_by_reason(&a);
    let (agg_b, local_b) = aggregate_by_reason(&b);
    assert_eq!(agg_a, agg_b);
    assert_ne!(local_a, local_b);
    assert_eq!(combined_message(&a), "(combined from similar events): one");
}

#[test]
fn the_default_spam_key_ignores_the_reason() {
    let c = Correlator::new(CorrelatorOptions {
        burst_size: 1,
        clock: Arc::new(FakeClock::new()),
        ..CorrelatorOptions::default()
    });
    assert!(!c.correlate(&event("Started", "a")).skip);
    assert!(
        c.correlate(&event("Killing", "b")).skip,
        "same object, other reason: filtered"
    );
}

#[test]
fn a_spam_key_with_the_reason_keeps_reasons_apart_but_not_messages() {
    let c = Correlator::new(CorrelatorOptions {
        burst_size: 1,
        spam_key_fn: Arc::new(|e: &Event| format!("{}{}", spam_key(e), e.reason)),
        clock: Arc::new(FakeClock::new()),
        ..CorrelatorOptions::default()
    });
    assert!(!c.correlate(&event("Started", "a")).skip);
    assert!(!c.correlate(&event("Killing", "b")).skip);
    assert!(
        c.correlate(&event("Killing", "c")).skip,
        "same reason, other message: filtered"
    );
}

#[test]
fn the_spam_filter_can_be_turned_off() {
    let c = Correlator::new(CorrelatorOptions {
        spam_filter: false,
        clock: Arc::new(FakeClock::new()),
        ..CorrelatorOptions::default()
    });
    let results = record(&c, &vec![event("BackOff", "same"); 40]);
    assert!(results.iter().all(|r| !r.skip));
    assert_eq!(results[39].event.count, 40);
}

#[test]
fn filtered_events_still_count_in_the_logger() {
    let c = Correlator::new(CorrelatorOptions {
        burst_size: 1,
        clock: Arc::new(FakeClock::new()),
        ..CorrelatorOptions::default()
    });
    record(&c, &[event("BackOff", "same")]);
    assert!(c.correlate(&event("BackOff", "same")).skip);
    assert_eq!(
        c.correlate(&event("BackOff", "same")).event.count,
        3,
        "the skipped one counted"
    );
}
