//! events.k8s.io/v1 Events with series through `series_recorder`, against
//! a mock API server.
#![allow(clippy::unwrap_used)]

mod support;

use requeue::events::{EventType, ObjectReference};
use requeue_kube::events::{SeriesOptions, series_recorder_with};
use serde_json::json;
use support::{failure, mock, next, stored};

const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/shop/events";
const MERGE: &str = "application/merge-patch+json";

fn options() -> SeriesOptions {
    SeriesOptions {
        // The test runs the jobs itself, in order.
        periodic_jobs: false,
        ..SeriesOptions::new("example.com/shop-controller", "shop-controller-0")
    }
}

#[tokio::test]
async fn the_first_occurrence_is_created_and_repeats_patch_the_series() {
    let (client, mut server) = mock();
    let (recorder, series) = series_recorder_with(client, options()).unwrap();
    let pod = ObjectReference::new("Pod", "shop", "web-0").with_api_version("v1");
    let node = ObjectReference::new("Node", "", "node-a");
    let back_off = || {
        recorder.eventf(
            &pod,
            Some(&node),
            EventType::Warning,
            "BackOff",
            "Restarting",
            format_args!("back-off restarting"),
        );
    };

    back_off();
    let (created, answer) = next(&mut server).await;
    assert_eq!(
        (created.method.as_str(), created.path.as_str()),
        ("POST", EVENTS)
    );
    let body = &created.body;
    assert_eq!(body["apiVersion"], "events.k8s.io/v1");
    assert_eq!(body["kind"], "Event");
    assert_eq!(
        body["regarding"],
        json!({"kind": "Pod", "apiVersion": "v1", "namespace": "shop", "name": "web-0"})
    );
    assert_eq!(body["related"], json!({"kind": "Node", "name": "node-a"}));
    assert_eq!(body["note"], "back-off restarting");
    assert_eq!(
        (body["reason"].as_str(), body["action"].as_str()),
        (Some("BackOff"), Some("Restarting"))
    );
    assert_eq!(body["type"], "Warning");
    assert_eq!(body["reportingController"], "example.com/shop-controller");
    assert_eq!(body["reportingInstance"], "shop-controller-0");
    assert!(body["eventTime"].as_str().unwrap().ends_with('Z'));
    assert!(body.get("series").is_none());
    assert!(
        body.get("deprecatedCount").is_none(),
        "no core/v1 fields: {body}"
    );
    stored(answer, 201, body, 1);
    let name = body["metadata"]["name"].as_str().unwrap().to_owned();

    back_off();
    let (seen, answer) = next(&mut server).await;
    assert_eq!(
        (seen.method.as_str(), seen.content_type.as_str()),
        ("PATCH", MERGE)
    );
    assert_eq!(seen.path, format!("{EVENTS}/{name}"));
    let observed = seen.body["series"]["lastObservedTime"].clone();
    assert!(observed.is_string());
    assert_eq!(
        seen.body,
        json!({"series": {"count": 2, "lastObservedTime": observed}})
    );
    let mut patched = created.body.clone();
    patched["series"] = seen.body["series"].clone();
    stored(answer, 200, &patched, 2);

    // A third occurrence only counts; the refresh job writes it.
    back_off();
    series.refresh();
    let (seen, answer) = next(&mut server).await;
    assert_eq!(
        (seen.method.as_str(), seen.content_type.as_str()),
        ("PATCH", MERGE)
    );
    assert_eq!(seen.body["series"]["count"], 3);
    patched["series"] = seen.body["series"].clone();
    stored(answer, 200, &patched, 3);

    series.shutdown().await;
    assert!(
        server.next_request().await.is_none(),
        "nothing else was sent"
    );
}

#[tokio::test]
async fn a_series_patch_of_a_vanished_event_becomes_a_create() {
    let (client, mut server) = mock();
    let (recorder, series) = series_recorder_with(client, options()).unwrap();
    let pod = ObjectReference::new("Pod", "shop", "web-0");

    for _ in 0..2 {
        recorder.event(
            &pod,
            EventType::Normal,
            "Pulled",
            "Pulling",
            "pulled the image",
        );
    }
    let (created, answer) = next(&mut server).await;
    stored(answer, 201, &created.body, 1);
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
    assert_eq!(recreated.body["series"]["count"], 2);
    assert!(recreated.body["metadata"].get("resourceVersion").is_none());
    stored(answer, 201, &recreated.body, 2);

    series.shutdown().await;
    assert!(server.next_request().await.is_none());
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_new_events() {
    let (client, mut server) = mock();
    let options = SeriesOptions {
        queue_capacity: 1,
        ..options()
    };
    let (recorder, series) = series_recorder_with(client, options).unwrap();
    let note = |n: u32| {
        let pod = ObjectReference::new("Pod", "shop", format!("web-{n}"));
        recorder.event(&pod, EventType::Normal, "Started", "Starting", "started");
    };

    note(0);
    // The recording thread now waits for the server: one event fits in
    // the queue behind it, the next is dropped.
    let (first, answer) = next(&mut server).await;
    note(1);
    note(2);
    assert_eq!(series.dropped(), 1);
    stored(answer, 201, &first.body, 1);
    let (second, answer) = next(&mut server).await;
    assert_eq!(second.body["regarding"]["name"], "web-1");
    stored(answer, 201, &second.body, 2);

    series.shutdown().await;
    assert!(server.next_request().await.is_none());
}
