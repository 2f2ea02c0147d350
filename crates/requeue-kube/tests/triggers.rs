//! Watch events from a (mock) API server turned into reconcile requests
//! and queue adds: `trigger_self`, `trigger_owners`, `trigger_with`, `feed`.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Mock, collection, event};
use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Api;
use kube::api::ObjectMeta;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::watcher;
use requeue::queue::WorkQueue;
use requeue::wait::Stop;
use requeue_kube::trigger::{
    FeedEnd, INITIAL_LIST_PRIORITY, Request, feed, trigger_owners, trigger_self, trigger_with,
};
use std::collections::BTreeMap;
use std::time::Duration;

const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";
const SECRETS: &str = "/api/v1/namespaces/default/secrets";

fn meta(name: &str, rv: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some("default".into()),
        resource_version: Some(rv.into()),
        ..Default::default()
    }
}

fn cm(name: &str, rv: &str) -> ConfigMap {
    ConfigMap {
        metadata: meta(name, rv),
        ..Default::default()
    }
}

fn owner(kind: &str, api_version: &str, name: &str) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        ..Default::default()
    }
}

/// The names and origins of requests, for compact assertions.
fn summary<K: kube::Resource>(requests: &[Request<K>]) -> Vec<(String, bool)>
where
    K::DynamicType: Eq + std::hash::Hash,
{
    requests
        .iter()
        .map(|r| (r.object.name.clone(), r.initial))
        .collect()
}

/// Runs `f` with a deadline: a broken trigger fails the test instead of
/// hanging it.
async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("timed out")
}

#[tokio::test]
async fn trigger_self_turns_the_list_and_every_change_into_requests() {
    let mock = Mock::start(vec![collection(CONFIGMAPS, &[cm("a", "1"), cm("b", "1")])]);
    mock.send(
        CONFIGMAPS,
        vec![
            event("ADDED", &cm("c", "2")),
            event("MODIFIED", &cm("a", "3")),
            event("DELETED", &cm("b", "4")),
        ],
    );
    let api: Api<ConfigMap> = Api::default_namespaced(mock.client.clone());
    let (store, writer) = reflector::store();
    let events = reflector::reflector(writer, watcher::watcher(api, watcher::Config::default()));
    let requests: Vec<Request<ConfigMap>> =
        within(trigger_self(events, ()).take(5).try_collect::<Vec<_>>())
            .await
            .unwrap();
    assert_eq!(
        summary(&requests),
        [
            ("a".into(), true),
            ("b".into(), true),
            ("c".into(), false),
            ("a".into(), false),
            ("b".into(), false),
        ]
    );
    assert!(
        requests
            .iter()
            .all(|r| r.object.namespace.as_deref() == Some("default"))
    );
    // The reflector applied each event before the trigger saw it: a
    // reconcile of `b` would find it gone.
    assert!(store.get(&ObjectRef::new("b").within("default")).is_none());
    assert!(store.get(&ObjectRef::new("c").within("default")).is_some());
    let seen = mock.seen();
    assert!(
        seen[0].starts_with(&format!("GET {CONFIGMAPS}?&limit=500")),
        "{seen:?}"
    );
    assert!(
        seen[1].contains("watch=true") && seen[1].contains("resourceVersion=1"),
        "{seen:?}"
    );
    assert!(mock.unexpected().is_empty(), "{:?}", mock.unexpected());
}

#[tokio::test]
async fn trigger_owners_requests_each_owner_of_the_owners_kind() {
    let mut owned = cm("owned", "1");
    owned.metadata.owner_references = Some(vec![owner("Deployment", "apps/v1", "web")]);
    let mut two = cm("two-owners", "1");
    two.metadata.owner_references = Some(vec![
        owner("Deployment", "apps/v1", "api"),
        owner("ReplicaSet", "apps/v1", "api-123"),
        // Same kind, other group: not a Deployment of apps/v1.
        owner("Deployment", "example.com/v1", "impostor"),
    ]);
    let orphan = cm("orphan", "1");
    let mock = Mock::start(vec![collection(CONFIGMAPS, &[owned, two, orphan])]);
    let mut later = cm("later", "2");
    later.metadata.owner_references = Some(vec![owner("Deployment", "apps/v1", "web")]);
    mock.send(CONFIGMAPS, vec![event("ADDED", &later)]);

    let api: Api<ConfigMap> = Api::default_namespaced(mock.client.clone());
    let events = watcher::watcher(api, watcher::Config::default());
    let requests: Vec<Request<Deployment>> = within(
        trigger_owners::<Deployment, ConfigMap, _>(events, ())
            .take(3)
            .try_collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    assert_eq!(
        summary(&requests),
        [
            ("web".into(), true),
            ("api".into(), true),
            ("web".into(), false)
        ]
    );
    assert_eq!(requests[0].object.namespace.as_deref(), Some("default"));
    assert_eq!(requests[0].object.extra.uid.as_deref(), Some("uid-web"));
}

#[tokio::test]
async fn trigger_with_maps_other_objects_to_keys() {
    // Secrets name the config maps that use them in an annotation.
    let secret = |name: &str, users: &str, rv: &str| Secret {
        metadata: ObjectMeta {
            annotations: Some(BTreeMap::from([("uses".to_string(), users.to_string())])),
            ..meta(name, rv)
        },
        ..Default::default()
    };
    let mock = Mock::start(vec![collection(SECRETS, &[secret("s1", "x,y", "1")])]);
    mock.send(SECRETS, vec![event("MODIFIED", &secret("s1", "z", "2"))]);
    let api: Api<Secret> = Api::default_namespaced(mock.client.clone());
    let mapper = |secret: Secret| {
        let namespace = secret.metadata.namespace.clone().unwrap_or_default();
        secret
            .metadata
            .annotations
            .unwrap_or_default()
            .get("uses")
            .map(|users| {
                users
                    .split(',')
                    .map(|name| ObjectRef::<ConfigMap>::new(name).within(&namespace))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    let requests = within(
        trigger_with(watcher::watcher(api, watcher::Config::default()), mapper)
            .take(3)
            .try_collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    assert_eq!(
        summary(&requests),
        [("x".into(), true), ("y".into(), true), ("z".into(), false)]
    );
}

#[tokio::test]
async fn feed_adds_listed_objects_at_low_priority_and_changes_at_zero() {
    let mock = Mock::start(vec![collection(CONFIGMAPS, &[cm("a", "1"), cm("b", "1")])]);
    mock.send(CONFIGMAPS, vec![event("ADDED", &cm("c", "2"))]);
    let api: Api<ConfigMap> = Api::default_namespaced(mock.client.clone());
    let requests = trigger_self(watcher::watcher(api, watcher::Config::default()), ()).take(3);
    let queue: WorkQueue<ObjectRef<ConfigMap>> = WorkQueue::new();
    assert_eq!(
        within(feed(&queue, requests, &Stop::new())).await,
        FeedEnd::StreamEnded
    );
    let order: Vec<(String, i32)> = (0..3)
        .map(|_| {
            let item = queue.try_get().unwrap();
            (item.name.clone(), item.priority())
        })
        .collect();
    assert_eq!(
        order,
        [
            ("c".into(), 0),
            ("a".into(), INITIAL_LIST_PRIORITY),
            ("b".into(), INITIAL_LIST_PRIORITY)
        ]
    );
}

#[tokio::test]
async fn feed_ends_when_stopped_or_when_the_queue_shuts_down() {
    let mock = Mock::start(vec![collection(CONFIGMAPS, &[cm("a", "1")])]);
    let api: Api<ConfigMap> = Api::default_namespaced(mock.client.clone());
    let queue: WorkQueue<ObjectRef<ConfigMap>> = WorkQueue::new();
    let stop = Stop::new();
    stop.stop();
    let requests = trigger_self(
        watcher::watcher(api.clone(), watcher::Config::default()),
        (),
    );
    assert_eq!(
        within(feed(&queue, requests, &stop)).await,
        FeedEnd::Stopped
    );

    queue.shut_down();
    let requests = trigger_self(watcher::watcher(api, watcher::Config::default()), ());
    assert_eq!(
        within(feed(&queue, requests, &Stop::new())).await,
        FeedEnd::QueueShutDown
    );
}

#[tokio::test]
async fn a_listed_object_that_changes_while_queued_is_raised_to_the_changes_priority() {
    let mock = Mock::start(vec![collection(CONFIGMAPS, &[cm("a", "1"), cm("b", "1")])]);
    mock.send(CONFIGMAPS, vec![event("MODIFIED", &cm("b", "2"))]);
    let api: Api<ConfigMap> = Api::default_namespaced(mock.client.clone());
    let requests = trigger_self(watcher::watcher(api, watcher::Config::default()), ()).take(3);
    let queue: WorkQueue<ObjectRef<ConfigMap>> = WorkQueue::new();
    assert_eq!(
        within(feed(&queue, requests, &Stop::new())).await,
        FeedEnd::StreamEnded
    );
    assert_eq!(queue.len(), 2, "the change collapsed into the listed add");
    let first = queue.try_get().unwrap();
    assert_eq!((first.name.as_str(), first.priority()), ("b", 0));
    let second = queue.try_get().unwrap();
    assert_eq!(
        (second.name.as_str(), second.priority()),
        ("a", INITIAL_LIST_PRIORITY)
    );
}
