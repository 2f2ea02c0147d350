//! The same controller on the Redis engine: `ObjectRef` keys stored with
//! `ObjectRefCodec`, objects read from the store, a deleted object's key
//! reaching cleanup. Needs `redis-server` on the PATH (as
//! `requeue-redis`'s own tests do).
#![allow(clippy::unwrap_used)]

mod common;

use common::{Mock, collection, event};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use requeue::controller::Controller;
use requeue::wait::Stop;
use requeue_kube::codec::ObjectRefCodec;
use requeue_kube::{Action, KubeController};
use requeue_redis::RedisQueue;
use requeue_redis::local_server::LocalServer;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

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
async fn the_controller_runs_on_the_redis_engine_with_object_ref_keys() {
    let server = tokio::task::spawn_blocking(LocalServer::start)
        .await
        .unwrap()
        .unwrap();
    let queue: RedisQueue<ObjectRef<ConfigMap>> = RedisQueue::builder_with_codec(
        server.url(),
        format!("kube-{}", std::process::id()),
        Arc::new(ObjectRefCodec::<ConfigMap>::new()),
    )
    .build()
    .await
    .unwrap();
    let mock = Mock::start(vec![collection(CONFIGMAPS, &[cm("a", "1"), cm("b", "1")])]);
    let stop = Stop::new();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let run = tokio::spawn(
        KubeController::new(
            Controller::new(queue, 2),
            Api::default_namespaced(mock.client.clone()),
            watcher::Config::default(),
        )
        .graceful_shutdown_on(stop.clone())
        .run_with_cleanup(
            |cm: Arc<ConfigMap>, tx: Arc<mpsc::UnboundedSender<String>>| async move {
                tx.send(format!("reconcile {}", cm.name_any())).unwrap();
                Ok::<_, Never>(Action::await_change())
            },
            |_, _: &Never, _| Action::backoff(),
            |key: ObjectRef<ConfigMap>, tx: Arc<mpsc::UnboundedSender<String>>| async move {
                tx.send(format!("cleanup {key}")).unwrap();
                Ok::<_, Never>(Action::await_change())
            },
            Arc::new(tx),
        ),
    );
    assert_eq!(next(&mut rx, 2).await, ["reconcile a", "reconcile b"]);
    mock.send(CONFIGMAPS, vec![event("DELETED", &cm("a", "2"))]);
    assert_eq!(next(&mut rx, 1).await, ["cleanup ConfigMap.v1./a.default"]);
    stop.stop();
    let summary = run.await.unwrap().unwrap();
    assert_eq!((summary.succeeded, summary.failed), (3, 0));
    drop(server);
}
