//! The `document_controller` example's logic, run against the mock API
//! server: documents are published as owned ConfigMaps, and a change to
//! an owned ConfigMap or a document triggers the document again.
#![allow(clippy::unwrap_used)]

mod common;

#[allow(dead_code)]
#[path = "../examples/document_controller.rs"]
mod example;

use common::{Mock, collection, event};
use example::{Document, DocumentSpec};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Resource;
use requeue::wait::Stop;
use serde_json::Value;
use std::time::Duration;

const DOCUMENTS: &str = "/apis/kube.rs/v1/documents";
const CONFIGMAPS: &str = "/api/v1/configmaps";

fn doc(name: &str, content: &str, hide: bool, rv: &str) -> Document {
    let mut doc = Document::new(
        name,
        DocumentSpec {
            title: format!("{name}'s title"),
            hide,
            content: content.into(),
        },
    );
    doc.metadata.namespace = Some("default".into());
    doc.metadata.uid = Some(format!("uid-{name}"));
    doc.metadata.resource_version = Some(rv.into());
    doc
}

/// Waits (yielding, never sleeping) until the mock has seen `n` writes.
async fn writes(mock: &Mock, n: usize) -> Vec<(String, Value)> {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let writes = mock.writes();
            if writes.len() >= n {
                return writes;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the writes never came")
}

fn applied(write: &(String, Value)) -> (&str, &str) {
    let (request, body) = write;
    assert!(
        request.contains("force=true") && request.contains("fieldManager=document-controller"),
        "{request}"
    );
    let path = request.split('?').next().unwrap();
    (path, body["data"]["content"].as_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_are_published_as_owned_configmaps_and_changes_retrigger_them() {
    let mock = Mock::start(vec![
        collection(
            DOCUMENTS,
            &[doc("a", "hello", false, "1"), doc("b", "secret", true, "1")],
        ),
        collection::<ConfigMap>(CONFIGMAPS, &[]),
    ]);
    let stop = Stop::new();
    let run = tokio::spawn(example::run(mock.client.clone(), stop.clone()));

    let mut first = writes(&mock, 2).await;
    first.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        first.iter().map(applied).collect::<Vec<_>>(),
        [
            ("PATCH /api/v1/namespaces/default/configmaps/doc-a", "hello"),
            ("PATCH /api/v1/namespaces/default/configmaps/doc-b", ""),
        ]
    );
    let owner = &first[0].1["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "Document");
    assert_eq!(owner["apiVersion"], "kube.rs/v1");
    assert_eq!(owner["uid"], "uid-a");
    assert_eq!(owner["controller"], true);

    // Someone edits the owned ConfigMap: its owner is reconciled again.
    let mut edited: ConfigMap = serde_json::from_value(first[0].1.clone()).unwrap();
    edited.metadata.resource_version = Some("2".into());
    mock.send(CONFIGMAPS, vec![event("MODIFIED", &edited)]);
    let after_edit = writes(&mock, 3).await;
    assert_eq!(
        applied(&after_edit[2]),
        ("PATCH /api/v1/namespaces/default/configmaps/doc-a", "hello")
    );

    // The hidden document is published.
    mock.send(
        DOCUMENTS,
        vec![event("MODIFIED", &doc("b", "world", false, "3"))],
    );
    let after_publish = writes(&mock, 4).await;
    assert_eq!(
        applied(&after_publish[3]),
        ("PATCH /api/v1/namespaces/default/configmaps/doc-b", "world")
    );

    stop.stop();
    let summary = run.await.unwrap().unwrap();
    assert_eq!((summary.succeeded, summary.failed), (4, 0));
    assert!(mock.unexpected().is_empty(), "{:?}", mock.unexpected());
    // The controller's owner reference names the document's kind.
    assert_eq!(Document::kind(&()), "Document");
}
