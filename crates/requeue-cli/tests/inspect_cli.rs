//! `requeue inspect` against a real redis-server: the snapshot names what
//! the queue holds, and an unreachable Redis is one clear line and exit 1.
#![allow(clippy::unwrap_used)]

use requeue_redis::RedisQueue;
use requeue_redis::local_server::LocalServer;
use std::process::Command;
use std::time::Duration;

fn requeue() -> Command {
    Command::new(env!("CARGO_BIN_EXE_requeue"))
}

#[test]
fn inspect_shows_ready_parked_delayed_and_leases() {
    let server = LocalServer::start().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let queue: RedisQueue<String> = runtime
        .block_on(RedisQueue::builder(server.url(), "shop").build())
        .unwrap();
    let held = runtime.block_on(async {
        for key in ["ns/web", "ns/db", "ns/cache"] {
            queue.add(key.to_string()).await.unwrap();
        }
        let held = queue.get().await.unwrap(); // ns/web, leased
        queue.add("ns/web".to_string()).await.unwrap(); // parked behind it
        queue
            .add_after("ns/later".to_string(), Duration::from_secs(60))
            .await
            .unwrap();
        queue
            .add_rate_limited("ns/flaky".to_string())
            .await
            .unwrap();
        held
    });
    let output = requeue()
        .args(["inspect", "--redis", &server.url(), "--queue", "shop"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("ready 2   parked 1   delayed 2   processing 1"),
        "{stdout}"
    );
    assert!(stdout.contains("next due: ns/flaky"), "{stdout}");
    assert!(stdout.contains("in flight"), "{stdout}");
    assert!(stdout.contains("ns/web"), "{stdout}");
    assert!(stdout.contains(&held.token().unwrap()), "{stdout}");
    assert!(stdout.contains("most failures:"), "{stdout}");
    drop(held);
}

#[test]
fn inspect_unreachable_redis_is_one_line_and_exit_1() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}/");
    let output = requeue()
        .args(["inspect", "--redis", &url, "--queue", "q"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&url), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn inspect_needs_its_flags() {
    let output = requeue()
        .args(["inspect", "--queue", "q"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}
