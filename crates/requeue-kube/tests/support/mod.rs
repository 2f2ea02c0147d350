//! A mock API server for the event tests: the test itself plays the
//! server, asserting each request and answering it.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock::{Handle, SendResponse};

/// The server side of the mock.
pub type Server = Handle<Request<Body>, Response<Body>>;

/// A client talking to a mock server.
pub fn mock() -> (kube::Client, Server) {
    let (service, server) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (kube::Client::new(service, "default"), server)
}

/// One request as the server saw it.
#[derive(Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub content_type: String,
    pub body: Value,
}

/// The next request; fails the test if none comes within 10 s (a hang
/// guard, not a wait for a condition).
pub async fn next(server: &mut Server) -> (Seen, SendResponse<Response<Body>>) {
    let (request, answer) = tokio::time::timeout(Duration::from_secs(10), server.next_request())
        .await
        .expect("a request within 10 s")
        .expect("the client is still there");
    let content_type = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let bytes = request.into_body().collect_bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (
        Seen {
            method,
            path,
            content_type,
            body,
        },
        answer,
    )
}

/// Answers with `status` and the JSON `body`.
pub fn reply(answer: SendResponse<Response<Body>>, status: u16, body: &Value) {
    answer.send_response(
        Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap(),
    );
}

/// Answers as the API server stores an object: the body with this
/// resource version.
pub fn stored(answer: SendResponse<Response<Body>>, status: u16, body: &Value, version: u32) {
    let mut body = body.clone();
    body["metadata"]["resourceVersion"] = json!(version.to_string());
    reply(answer, status, &body);
}

/// Answers with a `Status` failure, as the API server does.
pub fn failure(answer: SendResponse<Response<Body>>, code: u16, reason: &str) {
    let status = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": format!("test: {reason}"),
        "reason": reason, "code": code,
    });
    reply(answer, code, &status);
}

/// Logs through `tracing` to the test output (`RUST_LOG` to choose).
pub fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
