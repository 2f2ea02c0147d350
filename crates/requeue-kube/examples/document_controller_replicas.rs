//! The `document_controller` example scaled out without a leader: three
//! replicas of the same controller share one Redis queue. Each replica
//! watches every `Document` and adds its key; the queue collapses the
//! three adds into one item, hands each key to one replica at a time, and
//! gives the keys of a replica that dies to the others after one lease.
//!
//! No Kubernetes cluster is needed to watch it work: each replica talks
//! to its own in-process mock API server (the one the tests use,
//! `tests/common/mod.rs`) serving the same documents, and the queue lives
//! in a throwaway `redis-server` on 127.0.0.1 (`redis-server` must be on
//! the PATH, as for `requeue-redis`'s tests):
//!
//! ```text
//! cargo run -p requeue-kube --example document_controller_replicas
//! ```
//!
//! It lists six documents, changes two of them on every replica's mock
//! (as a real API server's watch would tell every replica), waits until
//! each document's last version is reconciled, and prints which replica
//! reconciled what. Against a real cluster, each replica is one process
//! (or pod) running [`replica_controller`] with the cluster's client and
//! the same Redis URL and queue name; `tests/scale_out.rs` runs exactly
//! that as three processes, one killed with `kill -9` mid-run.

#[allow(dead_code)]
#[path = "document_controller.rs"]
pub mod document_controller;
// The tests' mock API server, shared rather than copied (it allows its
// own dead code and, being test support, its unwraps).
#[path = "../tests/common/mod.rs"]
pub mod mock;

use document_controller::{Context, Document, DocumentSpec};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use requeue::controller::Controller;
use requeue::wait::Stop;
use requeue_kube::KubeController;
use requeue_kube::codec::ObjectRefCodec;
use requeue_redis::RedisQueue;
use requeue_redis::local_server::LocalServer;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where the mock serves documents (all namespaces, as `Api::all` asks).
pub const DOCUMENTS: &str = "/apis/kube.rs/v1/documents";
/// Where the mock serves ConfigMaps (the owned kind).
pub const CONFIGMAPS: &str = "/api/v1/configmaps";

/// The queue every replica shares: `ObjectRef<Document>` keys in Redis
/// (`ObjectRefCodec`), with leases of `lease`.
pub async fn replica_queue(
    url: &str,
    name: &str,
    lease: Duration,
) -> Result<RedisQueue<ObjectRef<Document>>, requeue_redis::error::Error> {
    RedisQueue::builder_with_codec(url, name, Arc::new(ObjectRefCodec::<Document>::new()))
        .lease(lease)
        .build()
        .await
}

/// One replica: the Document controller (documents watched, ConfigMaps
/// owned) on the shared `queue`, two workers, until `stop`. The same for
/// every replica; nothing elects anyone.
pub fn replica_controller(
    client: Client,
    queue: RedisQueue<ObjectRef<Document>>,
    stop: Stop,
) -> KubeController<Document, RedisQueue<ObjectRef<Document>>> {
    KubeController::new(
        Controller::new(queue, 2),
        Api::<Document>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(Api::<ConfigMap>::all(client), watcher::Config::default())
    .graceful_shutdown_on(stop)
}

/// A document as the API server would send it (with the uid and
/// resourceVersion the controller needs).
pub fn document(name: &str, content: &str, rv: u64) -> Document {
    let mut doc = Document::new(
        name,
        DocumentSpec {
            title: format!("{name}'s title"),
            hide: false,
            content: content.into(),
        },
    );
    doc.metadata.namespace = Some("default".into());
    doc.metadata.uid = Some(format!("uid-{name}"));
    doc.metadata.resource_version = Some(rv.to_string());
    doc
}

/// What one replica's reconciler sees: the example's context, and where
/// to note what it reconciled.
struct Replica {
    name: String,
    inner: Arc<Context>,
    reconciled: Arc<Mutex<Vec<(String, String, String)>>>,
}

async fn reconcile(
    doc: Arc<Document>,
    replica: Arc<Replica>,
) -> Result<requeue_kube::Action, document_controller::Error> {
    let version = doc.resource_version().unwrap_or_default();
    if let Ok(mut reconciled) = replica.reconciled.lock() {
        reconciled.push((replica.name.clone(), doc.name_any(), version));
    }
    // The mock answers at once; a real API call takes a while, and while
    // one replica holds a key the others take the rest.
    tokio::time::sleep(Duration::from_millis(100)).await;
    document_controller::reconcile(doc, replica.inner.clone()).await
}

fn error_policy(
    doc: Arc<Document>,
    error: &document_controller::Error,
    replica: Arc<Replica>,
) -> requeue_kube::Action {
    document_controller::error_policy(doc, error, replica.inner.clone())
}

/// Polls `done` every 20 ms until it holds, for at most `timeout`.
async fn wait_until(
    timeout: Duration,
    what: &str,
    mut done: impl FnMut() -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() >= deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Starting redis-server blocks until it answers: off the runtime.
    let server = tokio::task::spawn_blocking(LocalServer::start).await??;
    let queue_name = format!("documents-{}", std::process::id());
    let docs: Vec<Document> = (0..6)
        .map(|i| document(&format!("doc-{i}"), "v1", 1))
        .collect();
    let no_configmaps: &[ConfigMap] = &[];
    let reconciled = Arc::new(Mutex::new(Vec::new()));
    let stop = Stop::new();
    let mut mocks = Vec::new();
    let mut runs = Vec::new();
    for r in 0..3 {
        let mock = mock::Mock::start(vec![
            mock::collection(DOCUMENTS, &docs),
            mock::collection(CONFIGMAPS, no_configmaps),
        ]);
        let queue = replica_queue(&server.url(), &queue_name, Duration::from_secs(2)).await?;
        let replica = Arc::new(Replica {
            name: format!("replica-{r}"),
            inner: Arc::new(Context {
                client: mock.client.clone(),
            }),
            reconciled: reconciled.clone(),
        });
        let controller = replica_controller(mock.client.clone(), queue, stop.clone());
        runs.push(tokio::spawn(controller.run(
            reconcile,
            error_policy,
            replica,
        )));
        mocks.push(mock);
    }
    let seen = |name: &str, version: &str| {
        reconciled.lock().is_ok_and(|reconciled| {
            reconciled
                .iter()
                .any(|(_, doc, rv)| doc == name && rv == version)
        })
    };
    wait_until(Duration::from_secs(30), "the initial list", || {
        docs.iter().all(|doc| seen(&doc.name_any(), "1"))
    })
    .await?;
    // A change reaches every replica's watch, as it would from one API server.
    for name in ["doc-1", "doc-4"] {
        for mock in &mocks {
            let event = mock::event("MODIFIED", &document(name, "v2", 2));
            mock.send(DOCUMENTS, vec![event]);
        }
    }
    wait_until(Duration::from_secs(30), "the changes", || {
        seen("doc-1", "2") && seen("doc-4", "2")
    })
    .await?;
    stop.stop();
    for run in runs {
        let summary = run.await??;
        println!(
            "replica stopped: {} succeeded, {} failed",
            summary.succeeded, summary.failed
        );
    }
    let mut by_replica: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Ok(reconciled) = reconciled.lock() {
        for (replica, doc, rv) in reconciled.iter() {
            by_replica
                .entry(replica.clone())
                .or_default()
                .push(format!("{doc}@{rv}"));
        }
    }
    for (replica, docs) in &by_replica {
        println!("{replica} reconciled {}", docs.join(", "));
    }
    let total: usize = by_replica.values().map(Vec::len).sum();
    // Each replica lists and adds all six documents and sees both changes:
    // 24 adds. A key's adds while it is queued collapse into one item; an
    // add while it is being processed queues it once more afterwards.
    println!("{total} reconciles for 24 adds (6 listed and 2 changed, seen by 3 replicas)");
    drop(server);
    Ok(())
}
