//! A controller for a small custom resource, `Document`, that owns a
//! ConfigMap holding the document's content: kube-rs's controller-rs,
//! on requeue's work queue.
//!
//! Run it against a cluster where the CRD is installed (print it with
//! `cargo run --example document_controller -- crd`):
//!
//! ```text
//! cargo run -p requeue-kube --example document_controller
//! ```
//!
//! # From `kube::runtime::Controller`
//!
//! The same controller on kube-runtime differs in 19 lines (this diff,
//! checked by compiling both): the imports, the queue, the run's tail, and
//! the error policy's answer (`Action::backoff()`, per-key exponential
//! backoff, where kube can only give a fixed delay). `reconcile` is
//! unchanged.
//!
//! ```text
//! -use futures_util::StreamExt;
//! -use kube::runtime::controller::{Action, Controller};
//! +use requeue::controller::{Controller, Summary};
//! +use requeue::queue::WorkQueue;
//! +use requeue_kube::controller::RunError;
//! +use requeue_kube::{Action, KubeController};
//!  …
//! -    Action::requeue(Duration::from_secs(5))
//! +    Action::backoff()
//!  …
//! -pub async fn run(client: Client, stop: Stop) {
//! +pub async fn run(client: Client, stop: Stop) -> Result<Summary, RunError> {
//!      let docs = Api::<Document>::all(client.clone());
//! -    Controller::new(docs, watcher::Config::default())
//! +    let queue = WorkQueue::builder().name("documents").build();
//! +    KubeController::new(Controller::new(queue, 4), docs, watcher::Config::default())
//!          .owns(Api::<ConfigMap>::all(client.clone()), watcher::Config::default())
//! -        .graceful_shutdown_on(async move { stop.stopped().await })
//! +        .graceful_shutdown_on(stop)
//!          .run(reconcile, error_policy, Arc::new(Context { client }))
//! -        .for_each(|_| std::future::ready(()))
//!          .await
//!  …
//! -    run(client, stop).await;
//! +    let summary = run(client, stop).await?;
//! +    println!("stopped: {summary:?}");
//! ```
//!
//! To share the queue between replicas, build a `requeue-redis` queue of
//! `ObjectRef<Document>` with `requeue_kube::codec::ObjectRefCodec` instead
//! of the `WorkQueue`; nothing else changes
//! (`examples/document_controller_replicas.rs` runs three such replicas).

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ObjectMeta, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, CustomResource, Resource, ResourceExt};
use requeue::controller::{Controller, Summary};
use requeue::queue::WorkQueue;
use requeue::wait::Stop;
use requeue_kube::controller::RunError;
use requeue_kube::{Action, KubeController};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The `Document` custom resource: a title and content, published as a
/// ConfigMap unless hidden.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema)]
#[kube(kind = "Document", group = "kube.rs", version = "v1", namespaced)]
#[kube(shortname = "doc")]
pub struct DocumentSpec {
    /// The document's title.
    pub title: String,
    /// Whether to withhold the content (the ConfigMap is emptied).
    pub hide: bool,
    /// The content.
    pub content: String,
}

/// What the reconciler needs.
pub struct Context {
    /// The API client.
    pub client: Client,
}

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or could not be reached.
    #[error("kube API error: {0}")]
    Kube(#[from] kube::Error),
    /// The document has no namespace (it is a namespaced kind).
    #[error("document {0} has no namespace")]
    MissingNamespace(String),
    /// The document cannot own anything (it has no uid yet).
    #[error("document {0} has no uid")]
    MissingUid(String),
}

/// The field manager of the server-side applies.
pub const MANAGER: &str = "document-controller";

/// The ConfigMap a document publishes to.
pub fn configmap_name(doc: &Document) -> String {
    format!("doc-{}", doc.name_any())
}

/// Applies the document's ConfigMap (owned by the document, so deleting
/// the document deletes it, and a change to it triggers the document).
pub async fn reconcile(doc: Arc<Document>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = doc
        .namespace()
        .ok_or_else(|| Error::MissingNamespace(doc.name_any()))?;
    let owner = doc
        .controller_owner_ref(&())
        .ok_or_else(|| Error::MissingUid(doc.name_any()))?;
    let content = if doc.spec.hide {
        String::new()
    } else {
        doc.spec.content.clone()
    };
    let configmap = ConfigMap {
        metadata: ObjectMeta {
            name: Some(configmap_name(&doc)),
            namespace: Some(namespace.clone()),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([
            ("title".to_string(), doc.spec.title.clone()),
            ("content".to_string(), content),
        ])),
        ..ConfigMap::default()
    };
    Api::<ConfigMap>::namespaced(ctx.client.clone(), &namespace)
        .patch(
            &configmap_name(&doc),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&configmap),
        )
        .await?;
    // Look again in five minutes even if nothing changes (drift repair).
    Ok(Action::requeue(Duration::from_secs(5 * 60)))
}

/// What to do when a reconcile fails: retry with the document's own
/// exponential backoff (reset by its next success).
pub fn error_policy(doc: Arc<Document>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(document = %ObjectRef::from_obj(&*doc), %error, "reconcile failed");
    Action::backoff()
}

/// Runs the controller until `stop` fires.
pub async fn run(client: Client, stop: Stop) -> Result<Summary, RunError> {
    let docs = Api::<Document>::all(client.clone());
    let queue = WorkQueue::builder().name("documents").build();
    KubeController::new(Controller::new(queue, 4), docs, watcher::Config::default())
        .owns(
            Api::<ConfigMap>::all(client.clone()),
            watcher::Config::default(),
        )
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, Arc::new(Context { client }))
        .await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().nth(1).as_deref() == Some("crd") {
        use kube::CustomResourceExt;
        println!("{}", serde_json::to_string_pretty(&Document::crd())?);
        return Ok(());
    }
    let client = Client::try_default().await?;
    let stop = requeue::controller::stop_on_tokio_signals()?;
    let summary = run(client, stop).await?;
    println!("stopped: {summary:?}");
    Ok(())
}
