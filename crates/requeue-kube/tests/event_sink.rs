//! core/v1 Events through `recorder`: create, repeats patched, client-go's
//! error rules, bounded retries, aggregation — against a mock API server.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::ObjectMeta;
use requeue::events::{AGGREGATE_PREFIX, BroadcasterOptions, EventType, MAX_TRIES_PER_EVENT};
use requeue_kube::events::{InvolvedExt, RecorderOptions, recorder, recorder_with};
use serde_json::json;
use support::{failure, logs, mock, next, stored};

const EVENTS: &str = "/api/v1/namespaces/shop/events";
const STRATEGIC: &str = "application/strategic-merge-patch+json";

fn pod() -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("web-0".into()),
            namespace: Some("shop".into()),
            uid: Some("5f0f3c52".into()),
            resource_version: Some("42".into()),
            ..ObjectMeta::default()
        },
        ..Pod::default()
    }
}

/// Short retry pauses, so a test never waits 10 s.
fn fast(component: &str) -> RecorderOptions {
    let mut options = RecorderOptions::new(component);
    options.broadcaster = BroadcasterOptions {
        retry_sleep: Duration::from_millis(5),
        ..BroadcasterOptions::default()
    };
    options
}

#[tokio::test]
async fn an_event_is_created_in_the_objects_namespace() {
    logs();
    let (client, mut server) = mock();
    let (recorder, events) = recorder(client, "shop-controller").unwrap();

    recorder.event(
        &pod().involved(),
        EventType::Warning,
        "BackOff",
        "restarting",
    );

    let (seen, answer) = next(&mut server).await;
    assert_eq!((seen.method.as_str(), seen.path.as_str()), ("POST", EVENTS));
    let body = &seen.body;
    assert_eq!(body["apiVersion"], "v1");
    assert_eq!(body["kind"], "Event");
    assert!(
        body["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("web-0.")
    );
    assert_eq!(body["metadata"]["namespace"], "shop");
    assert_eq!(
        body["involvedObject"],
        json!({"kind": "Pod", "apiVersion": "v1", "namespace": "shop", "name": "web-0",
               "uid": "5f0f3c52", "resourceVersion": "42"})
    );
    assert_eq!(body["type"], "Warning");
    assert_eq!(body["reason"], "BackOff");
    assert_eq!(body["message"], "restarting");
    assert_eq!(body["count"], 1);
    assert_eq!(body["source"], json!({"component": "shop-controller"}));
    assert_eq!(body["reportingComponent"], "shop-controller");
    assert!(body["firstTimestamp"].is_string());
    assert_eq!(body["firstTimestamp"], body["lastTimestamp"]);
    stored(answer, 201, body, 1);

    events.shutdown().await;
    assert!(
        server.next_request().await.is_none(),
        "nothing else was sent"
    );
}

#[tokio::test]
async fn a_repeat_is_a_strategic_merge_patch_with_the_count() {
    let (client, mut server) = mock();
    let (recorder, events) = recorder(client, "shop-controller").unwrap();
    let pod = pod().involved();

    recorder.event(&pod, EventType::Warning, "BackOff", "restarting");
    let (created, answer) = next(&mut server).await;
    stored(answer, 201, &created.body, 1);
    let name = created.body["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();

    recorder.event(&pod, EventType::Warning, "BackOff", "restarting");
    let (seen, answer) = next(&mut server).await;
    assert_eq!(seen.method, "PATCH");
    assert_eq!(seen.path, format!("{EVENTS}/{name}"));
    assert_eq!(seen.content_type, STRATEGIC);
    assert_eq!(seen.body["count"], 2);
    assert_eq!(seen.body["message"], "restarting");
    assert!(seen.body["lastTimestamp"].is_string());
    let mut patched = created.body.clone();
    patched["count"] = json!(2);
    stored(answer, 200, &patched, 2);

    events.shutdown().await;
    assert!(server.next_request().await.is_none());
}

/// client-go's `recordEvent` does not retry a create the server refused
/// (409 AlreadyExists included) and does not turn it into a patch; the
/// correlator has seen the event, though, so its next repeat patches the
/// existing object.
#[tokio::test]
async fn a_conflicting_create_is_final_and_the_repeat_patches() {
    let (client, mut server) = mock();
    let (recorder, events) = recorder_with(client, fast("shop-controller")).unwrap();
    let pod = pod().involved();

    recorder.event(&pod, EventType::Warning, "BackOff", "restarting");
    let (created, answer) = next(&mut server).await;
    assert_eq!(created.method, "POST");
    failure(answer, 409, "AlreadyExists");
    let name = created.body["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();

    recorder.event(&pod, EventType::Warning, "BackOff", "restarting");
    let (seen, answer) = next(&mut server).await;
    assert_eq!(
        (seen.method.as_str(), seen.content_type.as_str()),
        ("PATCH", STRATEGIC)
    );
    assert_eq!(seen.path, format!("{EVENTS}/{name}"));
    assert_eq!(seen.body["count"], 2);
    let mut patched = created.body.clone();
    patched["count"] = json!(2);
    stored(answer, 200, &patched, 5);

    events.shutdown().await;
    assert!(
        server.next_request().await.is_none(),
        "the 409 was not retried"
    );
}

#[tokio::test]
async fn a_patch_of_a_vanished_event_becomes_a_create() {
    let (client, mut server) = mock();
    let (recorder, events) = recorder(client, "shop-controller").unwrap();
    let pod = pod().involved();

    recorder.event(&pod, EventType::Normal, "Synced", "synced");
    let (created, answer) = next(&mut server).await;
    stored(answer, 201, &created.body, 7);

    recorder.event(&pod, EventType::Normal, "Synced", "synced");
    let (patch, answer) = next(&mut server).await;
    assert_eq!(patch.method, "PATCH");
    failure(answer, 404, "NotFound");

    let (recreated, answer) = next(&mut server).await;
    assert_eq!(
        (recreated.method.as_str(), recreated.path.as_str()),
        ("POST", EVENTS)
    );
    assert_eq!(
        recreated.body["metadata"]["name"],
        created.body["metadata"]["name"]
    );
    assert_eq!(recreated.body["count"], 2);
    assert!(
        recreated.body["metadata"].get("resourceVersion").is_none(),
        "created with the resource version cleared: {}",
        recreated.body
    );
    stored(answer, 201, &recreated.body, 8);

    events.shutdown().await;
    assert!(server.next_request().await.is_none());
}

#[tokio::test]
async fn transport_errors_are_retried_a_bounded_number_of_times_with_a_pause() {
    let (client, mut server) = mock();
    let (recorder, events) = recorder_with(client, fast("shop-controller")).unwrap();

    recorder.event(
        &pod().involved(),
        EventType::Warning,
        "BackOff",
        "restarting",
    );
    let mut second = None;
    for attempt in 1..=MAX_TRIES_PER_EVENT {
        let (seen, answer) = next(&mut server).await;
        assert_eq!((attempt, seen.method.as_str()), (attempt, "POST"));
        if attempt == 2 {
            second = Some(Instant::now());
        }
        answer.send_error(std::io::Error::other("connection reset"));
    }
    // Attempts 3..=12 each came after a full 5 ms pause.
    let paused = second.unwrap().elapsed();
    assert!(paused >= Duration::from_millis(50), "{paused:?}");

    events.shutdown().await;
    assert!(
        server.next_request().await.is_none(),
        "no attempt after the {MAX_TRIES_PER_EVENT}th"
    );
}

// On a multi-thread runtime too (the others run on a current-thread one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn similar_events_are_aggregated_into_one_patched_event() {
    let (client, mut server) = mock();
    let (recorder, events) = recorder(client, "shop-controller").unwrap();
    let pod = pod().involved();

    // Ten different messages for one object and reason: the tenth is
    // folded into an aggregate event, and the eleventh patches it.
    for i in 1..=11 {
        recorder.eventf(
            &pod,
            EventType::Warning,
            "FailedMount",
            format_args!("volume {i}"),
        );
    }
    for i in 1..=9 {
        let (seen, answer) = next(&mut server).await;
        assert_eq!(
            (seen.method.as_str(), seen.body["message"].as_str()),
            ("POST", Some(&*format!("volume {i}")))
        );
        stored(answer, 201, &seen.body, i);
    }
    let (aggregate, answer) = next(&mut server).await;
    assert_eq!(aggregate.method, "POST");
    assert_eq!(
        aggregate.body["message"],
        format!("{AGGREGATE_PREFIX}volume 10")
    );
    assert_eq!(aggregate.body["count"], 1);
    stored(answer, 201, &aggregate.body, 10);
    let name = aggregate.body["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();

    let (seen, answer) = next(&mut server).await;
    assert_eq!(
        (seen.method.as_str(), seen.content_type.as_str()),
        ("PATCH", STRATEGIC)
    );
    assert_eq!(seen.path, format!("{EVENTS}/{name}"));
    assert_eq!(seen.body["count"], 2);
    assert_eq!(seen.body["message"], format!("{AGGREGATE_PREFIX}volume 11"));
    let mut patched = aggregate.body.clone();
    patched["count"] = json!(2);
    stored(answer, 200, &patched, 11);

    events.shutdown().await;
    assert!(server.next_request().await.is_none());
}

#[tokio::test]
async fn recording_outside_a_runtime_is_an_error() {
    let (client, _server) = mock();
    let outside = std::thread::spawn(move || recorder(client, "c").map(|_| ()));
    assert!(matches!(
        outside.join().unwrap(),
        Err(requeue_kube::events::Error::NoRuntime)
    ));
}
