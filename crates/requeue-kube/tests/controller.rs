//! `KubeController` against a mock API server: objects read from the
//! store, deleted ones reaching cleanup, per-key backoff reset on
//! success, metrics labelled with the controller, Warning events.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Mock, collection, event};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use requeue::clock::{Clock, FakeClock};
use requeue::controller::Controller;
use requeue::queue::WorkQueue;
use requeue::wait::Stop;
use requeue_kube::{Action, KubeController};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";

#[derive(Debug, thiserror::Error)]
#[error("boom on try {0}")]
struct Boom(u32);

fn cm(name: &str, rv: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            resource_version: Some(rv.into()),
            uid: Some(format!("uid-{name}")),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn key(name: &str) -> ObjectRef<ConfigMap> {
    ObjectRef::new(name).within("default")
}

/// Waits (yielding, never sleeping) until `done` holds, within a deadline.
async fn until(done: impl Fn() -> bool) {
    tokio::time::timeout(Duration::from_secs(20), async {
        while !done() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("condition never held");
}

/// The next `n` messages, sorted (workers run in any order).
async fn next(rx: &mut mpsc::UnboundedReceiver<String>, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        let message = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("timed out")
            .unwrap();
        out.push(message);
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_come_from_the_store_and_deleted_ones_reach_cleanup() {
    let mock = Mock::start(vec![collection(CONFIGMAPS, &[cm("a", "1"), cm("b", "1")])]);
    let queue: WorkQueue<ObjectRef<ConfigMap>> = WorkQueue::builder().name("configmaps").build();
    let controller = Controller::new(queue, 2);
    let counts = controller.clone();
    let stop = Stop::new();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let run = tokio::spawn(
        KubeController::new(
            controller,
            Api::default_namespaced(mock.client.clone()),
            watcher::Config::default(),
        )
        .graceful_shutdown_on(stop.clone())
        .run_with_cleanup(
            |cm: Arc<ConfigMap>, tx: Arc<mpsc::UnboundedSender<String>>| async move {
                let data = cm.data.clone().unwrap_or_default();
                tx.send(format!("reconcile {} {data:?}", cm.name_any()))
                    .unwrap();
                Ok::<_, Boom>(Action::await_change())
            },
            |_, _: &Boom, _| Action::backoff(),
            |key: ObjectRef<ConfigMap>, tx: Arc<mpsc::UnboundedSender<String>>| async move {
                tx.send(format!("cleanup {}", key.name)).unwrap();
                Ok::<_, Boom>(Action::await_change())
            },
            Arc::new(tx),
        ),
    );
    assert_eq!(next(&mut rx, 2).await, ["reconcile a {}", "reconcile b {}"]);

    // `a` deleted, `b` changed: the reconcile sees b's newest data.
    let mut b = cm("b", "3");
    b.data = Some([("k".to_string(), "v".to_string())].into());
    mock.send(
        CONFIGMAPS,
        vec![event("DELETED", &cm("a", "2")), event("MODIFIED", &b)],
    );
    assert_eq!(
        next(&mut rx, 2).await,
        ["cleanup a", r#"reconcile b {"k": "v"}"#]
    );
    until(|| counts.counts().succeeded == 4).await;
    stop.stop();
    let summary = run.await.unwrap().unwrap();
    assert_eq!((summary.succeeded, summary.failed), (4, 0));
    assert!(mock.unexpected().is_empty(), "{:?}", mock.unexpected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_cleanup_a_deleted_objects_key_is_dropped_as_kube_does() {
    let mock = Mock::start(vec![collection(CONFIGMAPS, &[cm("a", "1")])]);
    let queue: WorkQueue<ObjectRef<ConfigMap>> = WorkQueue::new();
    let controller = Controller::new(queue, 1);
    let counts = controller.clone();
    let stop = Stop::new();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let run = tokio::spawn(
        KubeController::new(
            controller,
            Api::default_namespaced(mock.client.clone()),
            watcher::Config::default(),
        )
        .graceful_shutdown_on(stop.clone())
        .run(
            |cm: Arc<ConfigMap>, tx: Arc<mpsc::UnboundedSender<String>>| async move {
                tx.send(cm.name_any()).unwrap();
                Ok::<_, Boom>(Action::await_change())
            },
            |_, _: &Boom, _| Action::backoff(),
            Arc::new(tx),
        ),
    );
    assert_eq!(next(&mut rx, 1).await, ["a"]);
    mock.send(CONFIGMAPS, vec![event("DELETED", &cm("a", "2"))]);
    until(|| counts.counts().succeeded == 2).await;
    stop.stop();
    run.await.unwrap().unwrap();
    assert!(
        rx.try_recv().is_err(),
        "the reconciler never sees the deleted key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_key_backoff_grows_with_failures_and_is_forgotten_on_success() {
    let mock = Mock::start(vec![collection(CONFIGMAPS, &[cm("flaky", "1")])]);
    let clock = FakeClock::new();
    let queue: WorkQueue<ObjectRef<ConfigMap>> = WorkQueue::builder()
        .name("configmaps")
        .clock(clock.clone())
        .build();
    let controller = Controller::new(queue.clone(), 1);
    let counts = controller.clone();
    let stop = Stop::new();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let tries = Arc::new(AtomicU32::new(0));
    let run = tokio::spawn(
        KubeController::new(
            controller,
            Api::default_namespaced(mock.client.clone()),
            watcher::Config::default(),
        )
        .graceful_shutdown_on(stop.clone())
        .run(
            move |_cm: Arc<ConfigMap>, tx: Arc<mpsc::UnboundedSender<String>>| {
                let attempt = tries.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    tx.send(format!("try {attempt}")).unwrap();
                    match attempt {
                        1 | 2 | 4 => Err(Boom(attempt)),
                        3 => Ok(Action::requeue(Duration::from_secs(3600))),
                        _ => Ok(Action::await_change()),
                    }
                }
            },
            |_, _: &Boom, _| Action::backoff(),
            Arc::new(tx),
        ),
    );
    let flaky = key("flaky");
    // After each try: the retries counted for the key, and the delay
    // before the next try (the queue's timer on the fake clock).
    let mut seen = Vec::new();
    for (attempt, then) in [(1, 5u64), (2, 10), (3, 3_600_000), (4, 5)] {
        assert_eq!(next(&mut rx, 1).await, [format!("try {attempt}")]);
        // The key is counted before it is settled; its next due time
        // (set by the settling's add) says the settling is over.
        until(|| {
            counts.counts().processed() == attempt
                && clock.next_deadline().is_some_and(|due| due > clock.now())
        })
        .await;
        let delay = clock.next_deadline().unwrap() - clock.now();
        seen.push((queue.num_requeues(&flaky), delay));
        clock.advance(Duration::from_millis(then));
    }
    assert_eq!(
        seen,
        [
            (1, Duration::from_millis(5)),
            (2, Duration::from_millis(10)),
            // Success: the history is forgotten; the requeue is a plain delay.
            (0, Duration::from_secs(3600)),
            // The next failure starts over at the base delay.
            (1, Duration::from_millis(5)),
        ]
    );
    assert_eq!(next(&mut rx, 1).await, ["try 5"]);
    until(|| counts.counts().processed() == 5 && queue.num_requeues(&flaky) == 0).await;
    stop.stop();
    let summary = run.await.unwrap().unwrap();
    assert_eq!((summary.succeeded, summary.failed), (2, 3));
}

#[cfg(feature = "prometheus")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_carry_the_controller_label_and_failures_become_warning_events() {
    use prometheus_client::registry::Registry;
    use requeue::events::{Broadcaster, BroadcasterOptions, EventSource, EventType};
    use requeue::metrics::{PrometheusControllerMetrics, PrometheusMetrics, encode_text};

    let mock = Mock::start(vec![collection(
        CONFIGMAPS,
        &[cm("good", "1"), cm("bad", "1")],
    )]);
    let mut registry = Registry::default();
    let queue_metrics = PrometheusMetrics::with_controller_label(&mut registry);
    let queue: WorkQueue<ObjectRef<ConfigMap>> = WorkQueue::builder()
        .name("configmaps")
        .metrics(Arc::new(queue_metrics))
        .build();
    let controller_metrics = PrometheusControllerMetrics::new(&mut registry, "configmaps");
    let broadcaster = Broadcaster::new(BroadcasterOptions::default());
    let events = broadcaster.watch().unwrap();
    let recorder = broadcaster.recorder(EventSource::new("configmap-controller", ""));

    let controller = Controller::new(queue, 1);
    let counts = controller.clone();
    let stop = Stop::new();
    let failed_once = Arc::new(AtomicU32::new(0));
    let run = tokio::spawn(
        KubeController::new(
            controller,
            Api::default_namespaced(mock.client.clone()),
            watcher::Config::default(),
        )
        .metrics(Arc::new(controller_metrics))
        .record_errors(recorder)
        .graceful_shutdown_on(stop.clone())
        .run(
            move |cm: Arc<ConfigMap>, _: Arc<()>| {
                let fail =
                    cm.name_any() == "bad" && failed_once.fetch_add(1, Ordering::SeqCst) == 0;
                async move {
                    if fail {
                        Err(Boom(1))
                    } else {
                        Ok(Action::await_change())
                    }
                }
            },
            |_, _: &Boom, _| Action::backoff(),
            Arc::new(()),
        ),
    );
    until(|| counts.counts().processed() == 3).await;
    stop.stop();
    run.await.unwrap().unwrap();

    let text = encode_text(&registry);
    for line in [
        r#"controller_runtime_reconcile_total{controller="configmaps",result="success"} 2"#,
        r#"controller_runtime_reconcile_total{controller="configmaps",result="error"} 1"#,
        r#"controller_runtime_reconcile_errors_total{controller="configmaps"} 1"#,
        r#"workqueue_adds_total{controller="configmaps",name="configmaps"} 3"#,
        r#"workqueue_retries_total{controller="configmaps",name="configmaps"} 1"#,
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }

    let event = tokio::task::spawn_blocking(move || events.recv_timeout(Duration::from_secs(20)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.event_type, EventType::Warning);
    assert_eq!(event.reason, "ReconcileError");
    assert_eq!(event.message, "boom on try 1");
    let object = &event.involved_object;
    assert_eq!(
        (
            object.kind.as_str(),
            object.api_version.as_str(),
            object.namespace.as_str(),
            object.name.as_str(),
            object.uid.as_str()
        ),
        ("ConfigMap", "v1", "default", "bad", "uid-bad")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_re_adds_every_object_of_the_store_each_period() {
    let mock = Mock::start(vec![collection(CONFIGMAPS, &[cm("a", "1"), cm("b", "1")])]);
    let clock = FakeClock::new();
    let queue: WorkQueue<ObjectRef<ConfigMap>> = WorkQueue::builder().clock(clock.clone()).build();
    let controller = Controller::new(queue.clone(), 1);
    let counts = controller.clone();
    let stop = Stop::new();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let run = tokio::spawn(
        KubeController::new(
            controller,
            Api::default_namespaced(mock.client.clone()),
            watcher::Config::default(),
        )
        .resync(Duration::from_secs(60))
        .graceful_shutdown_on(stop.clone())
        .run(
            |cm: Arc<ConfigMap>, tx: Arc<mpsc::UnboundedSender<String>>| async move {
                tx.send(cm.name_any()).unwrap();
                Ok::<_, Boom>(Action::await_change())
            },
            |_, _: &Boom, _| Action::backoff(),
            Arc::new(tx),
        ),
    );
    // The initial list, once: no resync round repeats it at the start.
    assert_eq!(next(&mut rx, 2).await, ["a", "b"]);
    for round in 1..=2u64 {
        // The resync loop sleeps on the fake clock until a period from
        // its last round: advance only once it does.
        until(|| {
            counts.counts().processed() == 2 * round
                && clock.next_deadline().is_some_and(|due| due > clock.now())
        })
        .await;
        assert_eq!(queue.len(), 0);
        clock.advance(Duration::from_secs(60));
        assert_eq!(next(&mut rx, 2).await, ["a", "b"]);
    }
    stop.stop();
    let summary = run.await.unwrap().unwrap();
    assert_eq!(summary.succeeded, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_reconcile_is_contained_and_retried_with_backoff() {
    let mock = Mock::start(vec![collection(CONFIGMAPS, &[cm("a", "1")])]);
    let queue: WorkQueue<ObjectRef<ConfigMap>> = WorkQueue::new();
    let controller = Controller::new(queue.clone(), 1);
    let counts = controller.clone();
    let stop = Stop::new();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let tries = Arc::new(AtomicU32::new(0));
    let run = tokio::spawn(
        KubeController::new(
            controller,
            Api::default_namespaced(mock.client.clone()),
            watcher::Config::default(),
        )
        .graceful_shutdown_on(stop.clone())
        .run(
            move |_cm: Arc<ConfigMap>, tx: Arc<mpsc::UnboundedSender<String>>| {
                let attempt = tries.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    tx.send(format!("try {attempt}")).unwrap();
                    assert!(attempt > 1, "the first try panics");
                    Ok::<_, Boom>(Action::await_change())
                }
            },
            |_, _: &Boom, _| Action::await_change(),
            Arc::new(tx),
        ),
    );
    assert_eq!(next(&mut rx, 1).await, ["try 1"]);
    assert_eq!(next(&mut rx, 1).await, ["try 2"]);
    // Counted before it is settled: wait for the forget, not the count.
    until(|| counts.counts().processed() == 2 && queue.num_requeues(&key("a")) == 0).await;
    stop.stop();
    let summary = run.await.unwrap().unwrap();
    assert_eq!(
        (summary.succeeded, summary.failed, summary.panicked),
        (1, 1, 1)
    );
}
