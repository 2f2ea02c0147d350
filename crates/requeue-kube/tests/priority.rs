//! A big initial list goes in at low priority and does not stand between
//! a later change and its reconcile; fairness still serves the whole list.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Mock, collection, event};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use requeue::controller::Controller;
use requeue::queue::WorkQueue;
use requeue::wait::Stop;
use requeue_kube::{Action, KubeController};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";
const LISTED: usize = 1000;

fn cm(name: &str, rv: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            resource_version: Some(rv.into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

struct Ctx {
    /// Holds the first reconcile until the change is queued.
    gate: Mutex<Option<oneshot::Receiver<()>>>,
    order: mpsc::UnboundedSender<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_initial_list_of_many_objects_does_not_delay_a_later_change() {
    let listed: Vec<ConfigMap> = (0..LISTED)
        .map(|i| cm(&format!("cm-{i:04}"), "1"))
        .collect();
    let mock = Mock::start(vec![collection(CONFIGMAPS, &listed)]);
    let queue: WorkQueue<ObjectRef<ConfigMap>> = WorkQueue::builder().name("configmaps").build();
    // One worker: the order of reconciles is the queue's order.
    let controller = Controller::new(queue.clone(), 1);
    let stop = Stop::new();
    let (open, gate) = oneshot::channel();
    let (order, mut reconciled) = mpsc::unbounded_channel();
    let ctx = Arc::new(Ctx {
        gate: Mutex::new(Some(gate)),
        order,
    });
    let run = tokio::spawn(
        KubeController::new(
            controller,
            Api::default_namespaced(mock.client.clone()),
            watcher::Config::default(),
        )
        .graceful_shutdown_on(stop.clone())
        .run(
            |cm: Arc<ConfigMap>, ctx: Arc<Ctx>| async move {
                let gate = ctx.gate.lock().unwrap().take();
                if let Some(gate) = gate {
                    gate.await.unwrap();
                }
                ctx.order.send(cm.name_any()).unwrap();
                Ok::<_, Never>(Action::await_change())
            },
            |_, _: &Never, _| Action::backoff(),
            ctx,
        ),
    );

    // The whole list is queued and the worker holds its first object…
    tokio::time::timeout(Duration::from_secs(20), async {
        while !(queue.len() == LISTED - 1 && queue.snapshot().processing == 1) {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    // …when a change comes in.
    mock.send(CONFIGMAPS, vec![event("ADDED", &cm("hot", "2"))]);
    tokio::time::timeout(Duration::from_secs(20), async {
        while queue.len() != LISTED {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    open.send(()).unwrap();

    let mut order = Vec::new();
    while order.len() < LISTED + 1 {
        order.push(
            tokio::time::timeout(Duration::from_secs(20), reconciled.recv())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    assert_eq!(order[0], "cm-0000");
    // The change is next, not after the 999 listed objects still queued.
    assert_eq!(order[1], "hot");
    // And every listed object was served, in list order.
    let rest: Vec<String> = (1..LISTED).map(|i| format!("cm-{i:04}")).collect();
    assert_eq!(order[2..], rest[..]);
    stop.stop();
    let summary = run.await.unwrap().unwrap();
    assert_eq!(summary.succeeded, (LISTED + 1) as u64);
}

#[test]
fn fairness_serves_listed_objects_while_changes_keep_coming() {
    use requeue::queue::AddOpts;
    use requeue_kube::trigger::INITIAL_LIST_PRIORITY;

    // The queue's side of the promise, without the API: a steady flow of
    // changes (one new one after every hand-out) never starves the list.
    let queue: WorkQueue<String> = WorkQueue::new();
    for i in 0..100 {
        queue
            .add_with(
                format!("listed-{i}"),
                AddOpts::new().priority(INITIAL_LIST_PRIORITY),
            )
            .unwrap();
    }
    let mut listed_served = 0;
    for i in 0..1000 {
        queue.add(format!("change-{i}")).unwrap();
        let item = queue.try_get().unwrap();
        if item.starts_with("listed-") {
            listed_served += 1;
        }
    }
    assert!(
        listed_served > 0,
        "fairness serves low-priority items among a flood of changes"
    );
    assert!(
        listed_served < 1000 / 2,
        "changes still go first most of the time"
    );
}
