//! `rediss://`: the queue over TLS to a real redis-server on loopback,
//! with certificates the test makes (a CA, a server certificate for
//! 127.0.0.1 and a client certificate, all signed by that CA): server
//! verified against the CA, refused without it, and mutual TLS.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use requeue::engine::Then;
use requeue_redis::RedisQueue;
use requeue_redis::error::Error;
use requeue_redis::local_server::{LocalServer, LocalServerOptions};
use std::path::Path;

struct Pki {
    ca_pem: String,
    server: (String, String),
    client: (String, String),
}

fn pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Distinct names: OpenSSL (the server's side) takes a certificate whose
    // subject equals its issuer for self-signed.
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "requeue test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = |names: Vec<String>| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names.clone()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, names[0].as_str());
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    Pki {
        ca_pem: ca_cert.pem(),
        server: leaf(vec!["127.0.0.1".into(), "localhost".into()]),
        client: leaf(vec!["requeue-test-client".into()]),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A redis-server that also listens with TLS; returns it and `rediss://…`.
fn tls_server(pki: &Pki, dir: &Path, clients_need_certs: bool) -> (LocalServer, String) {
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    };
    let port = free_port();
    let args = [
        "--tls-port".to_string(),
        port.to_string(),
        "--tls-cert-file".into(),
        write("server.crt", &pki.server.0),
        "--tls-key-file".into(),
        write("server.key", &pki.server.1),
        "--tls-ca-cert-file".into(),
        write("ca.crt", &pki.ca_pem),
        "--tls-auth-clients".into(),
        if clients_need_certs { "yes" } else { "no" }.into(),
    ];
    let server = LocalServer::start_with(LocalServerOptions {
        appendonly: false,
        extra_args: args.to_vec(),
        ..LocalServerOptions::default()
    })
    .unwrap();
    (server, format!("rediss://127.0.0.1:{port}/"))
}

async fn round_trip(queue: &RedisQueue<String>) {
    queue.add("over-tls".to_string()).await.unwrap();
    let item = queue.get().await.unwrap();
    assert_eq!(*item, "over-tls");
    assert!(item.end_async(Then::Forget).await.unwrap().released);
    assert_eq!(queue.len().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_works_over_tls_with_the_servers_ca() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let (_server, url) = tls_server(&pki, dir.path(), false);
    let queue: RedisQueue<String> = RedisQueue::builder(&url, "tls")
        .tls_root_cert(pki.ca_pem.clone())
        .build()
        .await
        .unwrap();
    round_trip(&queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_the_client_cannot_verify_is_a_connect_error_naming_it() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let (_server, url) = tls_server(&pki, dir.path(), false);
    // The system's roots do not know the test CA.
    let refused = RedisQueue::<String>::builder(&url, "tls-unknown-ca")
        .build()
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::Connect { .. }), "{refused:?}");
    let text = requeue_redis::error::Chain(&refused).to_string();
    assert!(text.contains(&url), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_needs_the_client_certificate() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let (_server, url) = tls_server(&pki, dir.path(), true);
    let without = RedisQueue::<String>::builder(&url, "mtls-without")
        .tls_root_cert(pki.ca_pem.clone())
        .build()
        .await;
    assert!(without.is_err(), "the server asks for a client certificate");
    let queue: RedisQueue<String> = RedisQueue::builder(&url, "mtls")
        .tls_root_cert(pki.ca_pem.clone())
        .tls_client_cert(pki.client.0.clone(), pki.client.1.clone())
        .build()
        .await
        .unwrap();
    round_trip(&queue).await;
}
