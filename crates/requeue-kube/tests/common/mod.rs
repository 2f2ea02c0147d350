//! A mock Kubernetes API server for the tests, the way kube-rs tests its
//! runtime: a `tower-test` mock service behind a real `kube::Client`, and
//! a verifier task that checks each request and answers it.
//!
//! Collections are registered with their path and initial objects. A
//! list request (`GET <path>` without `watch=true`) gets the objects at
//! resourceVersion 1; a watch request (`watch=true`, which must carry the
//! resourceVersion the list returned) waits for the next batch of events
//! the test [`send`](Mock::send)s and gets it as newline-delimited JSON,
//! after which kube's watcher asks again. Other requests (PATCH, POST)
//! are echoed back, as a server-side apply returns the applied object.
//! Anything the mock does not know is recorded and answered 404;
//! [`Mock::unexpected`] lists those for the test to assert on.

#![allow(dead_code, clippy::unwrap_used)]

use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

type Batches = Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Vec<Value>>>>;

/// The mock API server; see the module docs.
pub struct Mock {
    /// A client talking to it.
    pub client: Client,
    senders: HashMap<String, mpsc::UnboundedSender<Vec<Value>>>,
    seen: Arc<Mutex<Vec<String>>>,
    unexpected: Arc<Mutex<Vec<String>>>,
    writes: Arc<Mutex<Vec<(String, Value)>>>,
}

/// A collection the mock serves: its path and initial objects.
pub struct Collection {
    path: String,
    items: Vec<Value>,
}

/// `path`'s collection, listing `items` (serialised with their
/// apiVersion and kind, as the API server sends them).
pub fn collection<T: Serialize>(path: &str, items: &[T]) -> Collection {
    Collection {
        path: path.to_string(),
        items: items
            .iter()
            .map(|item| serde_json::to_value(item).unwrap())
            .collect(),
    }
}

/// A watch event of `type_` (`ADDED`, `MODIFIED`, `DELETED`) for `object`.
pub fn event<T: Serialize>(type_: &str, object: &T) -> Value {
    json!({ "type": type_, "object": serde_json::to_value(object).unwrap() })
}

impl Mock {
    /// Starts the verifier task (inside a tokio runtime) for `collections`.
    pub fn start(collections: Vec<Collection>) -> Mock {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let mut senders = HashMap::new();
        let mut routes: HashMap<String, (Arc<Vec<Value>>, Batches)> = HashMap::new();
        for Collection { path, items } in collections {
            let (tx, rx) = mpsc::unbounded_channel();
            senders.insert(path.clone(), tx);
            routes.insert(
                path,
                (Arc::new(items), Arc::new(tokio::sync::Mutex::new(rx))),
            );
        }
        let seen = Arc::new(Mutex::new(Vec::new()));
        let unexpected = Arc::new(Mutex::new(Vec::new()));
        let writes = Arc::new(Mutex::new(Vec::new()));
        let (seen2, unexpected2, writes2) = (seen.clone(), unexpected.clone(), writes.clone());
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let (parts, body) = request.into_parts();
                let path = parts.uri.path().to_string();
                let query = parts.uri.query().unwrap_or("").to_string();
                seen2
                    .lock()
                    .unwrap()
                    .push(format!("{} {}?{}", parts.method, path, query));
                let route = routes.get(&path).cloned();
                let unexpected = unexpected2.clone();
                let writes = writes2.clone();
                // One task per request: a watch waits for its events
                // without holding up the other requests.
                tokio::spawn(async move {
                    let body = body.collect_bytes().await.unwrap().to_vec();
                    if parts.method != Method::GET {
                        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        writes
                            .lock()
                            .unwrap()
                            .push((format!("{} {path}?{query}", parts.method), json));
                    }
                    let reply = answer(&parts.method, &query, body, route).await;
                    let response = match reply {
                        Some(bytes) => Response::builder().body(Body::from(bytes)).unwrap(),
                        None => {
                            unexpected
                                .lock()
                                .unwrap()
                                .push(format!("{} {path}?{query}", parts.method));
                            let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not mocked"});
                            Response::builder()
                                .status(StatusCode::NOT_FOUND)
                                .body(Body::from(serde_json::to_vec(&status).unwrap()))
                                .unwrap()
                        }
                    };
                    send.send_response(response);
                });
            }
        });
        Mock {
            client,
            senders,
            seen,
            unexpected,
            writes,
        }
    }

    /// Every write (PATCH, POST, PUT) so far: `METHOD path?query` and its body.
    pub fn writes(&self) -> Vec<(String, Value)> {
        self.writes.lock().unwrap().clone()
    }

    /// Answers the next watch request on `path` with `events`.
    pub fn send(&self, path: &str, events: Vec<Value>) {
        self.senders[path].send(events).unwrap();
    }

    /// Every request so far, as `METHOD path?query`.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    /// The requests the mock could not answer.
    pub fn unexpected(&self) -> Vec<String> {
        self.unexpected.lock().unwrap().clone()
    }
}

/// The reply to one request; `None` if it is not one the mock serves.
async fn answer(
    method: &Method,
    query: &str,
    body: Vec<u8>,
    route: Option<(Arc<Vec<Value>>, Batches)>,
) -> Option<Vec<u8>> {
    let params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    match (method, route) {
        (&Method::GET, Some((items, batches))) if params.contains(&"watch=true") => {
            // The watcher resumes from what the list (or the last watch)
            // returned: never a fresh unversioned watch.
            if !params.iter().any(|p| p.starts_with("resourceVersion=")) {
                return None;
            }
            let _ = items;
            let batch = batches.lock().await.recv().await;
            match batch {
                Some(events) => {
                    let mut out = Vec::new();
                    for event in events {
                        out.extend(serde_json::to_vec(&event).unwrap());
                        out.push(b'\n');
                    }
                    Some(out)
                }
                // No more events will come: keep the watch open for good,
                // as a quiet API server does.
                None => std::future::pending().await,
            }
        }
        (&Method::GET, Some((items, _))) => {
            if !params.iter().any(|p| p.starts_with("limit=")) {
                return None; // kube's watcher lists in pages
            }
            let list = json!({
                "apiVersion": "v1",
                "kind": "List",
                "metadata": { "resourceVersion": "1" },
                "items": *items,
            });
            Some(serde_json::to_vec(&list).unwrap())
        }
        (&Method::PATCH | &Method::POST | &Method::PUT, _) => Some(body),
        _ => None,
    }
}
