//! A password in the Redis URL never shows: not in `Debug` of the queue or
//! its builder, not in error values (`Display`, `Debug`, the cause chain),
//! not in the library's log lines. Each cause of an error shows once.
#![allow(clippy::unwrap_used)]

use requeue_redis::RedisQueue;
use requeue_redis::error::{Chain, Error};
use requeue_redis::local_server::{Fsync, LocalServer, LocalServerOptions};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PASSWORD: &str = "s3cretpass";

/// Every log line of this test binary, as the fmt subscriber writes them.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() -> Captured {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .init();
    captured
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_password_in_the_url_never_shows() {
    let logs = capture_logs();

    // Unreachable: the error names the URL without its password, and the
    // refusal once.
    let url = format!("redis://admin:{PASSWORD}@127.0.0.1:{}/", free_port());
    let builder = RedisQueue::<String>::builder(&url, "q");
    let debug = format!("{builder:?}");
    assert!(
        !debug.contains(PASSWORD) && debug.contains("***"),
        "{debug}"
    );
    let error = builder.build_blocking().unwrap_err();
    assert!(matches!(error, Error::Connect { .. }));
    for text in [
        error.to_string(),
        format!("{error:?}"),
        Chain(&error).to_string(),
    ] {
        assert!(!text.contains(PASSWORD), "{text}");
        assert!(text.contains("redis://***@127.0.0.1:"), "{text}");
    }
    let chain = Chain(&error).to_string();
    assert_eq!(chain.matches("refused").count(), 1, "{chain}");

    // Cluster and Sentinel URLs, unreachable: the same, for every host.
    let (p1, p2) = (free_port(), free_port());
    let cluster = RedisQueue::<String>::cluster_builder(
        [
            format!("redis://admin:{PASSWORD}@127.0.0.1:{p1}/"),
            format!("redis://admin:{PASSWORD}@127.0.0.1:{p2}/"),
        ],
        "q",
    );
    let sentinel = RedisQueue::<String>::builder(
        format!(
            "redis+sentinel://admin:{PASSWORD}@127.0.0.1:{p1},127.0.0.1:{p2}/mymaster?sentinel_password={PASSWORD}"
        ),
        "q",
    );
    let cluster_url = RedisQueue::<String>::builder(
        format!("redis+cluster://admin:{PASSWORD}@127.0.0.1:{p1},127.0.0.1:{p2}"),
        "q",
    );
    for (builder, shown) in [
        (
            cluster,
            format!("redis://***@127.0.0.1:{p1}/,redis://***@127.0.0.1:{p2}/"),
        ),
        (
            sentinel,
            format!(
                "redis+sentinel://***@127.0.0.1:{p1},127.0.0.1:{p2}/mymaster?sentinel_password=***"
            ),
        ),
        (
            cluster_url,
            format!("redis+cluster://***@127.0.0.1:{p1},127.0.0.1:{p2}"),
        ),
    ] {
        let debug = format!("{builder:?}");
        assert!(
            !debug.contains(PASSWORD) && debug.contains(&shown),
            "{debug}"
        );
        let error = builder.build_blocking().unwrap_err();
        assert!(matches!(error, Error::Connect { .. }), "{error:?}");
        for text in [
            error.to_string(),
            format!("{error:?}"),
            Chain(&error).to_string(),
        ] {
            assert!(!text.contains(PASSWORD), "{text}");
            assert!(text.contains(&shown), "{text}");
        }
    }

    // Connected: Redis 7's default user has no password, so AUTH with any
    // password succeeds for it.
    let mut server = LocalServer::start_with(LocalServerOptions {
        appendonly: false,
        appendfsync: Fsync::No,
        ..LocalServerOptions::default()
    })
    .unwrap();
    let url = format!("redis://default:{PASSWORD}@127.0.0.1:{}/", server.port());
    let queue = RedisQueue::<String>::builder(&url, "redacted")
        .lease(Duration::from_millis(300))
        .build_blocking()
        .unwrap();
    let debug = format!("{queue:?}");
    assert!(
        !debug.contains(PASSWORD) && debug.contains("***"),
        "{debug}"
    );

    // The renewer logs the URL when Redis goes away.
    server.kill9().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !logs.text().contains("cannot renew leases") {
        assert!(Instant::now() < deadline, "no warning:\n{}", logs.text());
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(queue);
    let text = logs.text();
    assert!(!text.contains(PASSWORD), "{text}");
    assert!(text.contains("redis://***@127.0.0.1:"), "{text}");
}
