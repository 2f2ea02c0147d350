//! `requeue inspect` against a real redis-server: the snapshot names what
//! the queue holds, and an unreachable Redis is one clear line and exit 1.
#![allow(clippy::unwrap_used)]

use requeue_redis::RedisQueue;
use requeue_redis::local_server::LocalServer;
use std::process::Command;
use std::time::Duration;

/// The binary, with no `REDIS_URL` or `RUST_LOG` from the caller's
/// environment (they would change what it runs and logs).
fn requeue() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_requeue"));
    command.env_remove("REDIS_URL").env_remove("RUST_LOG");
    command
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

const PASSWORD: &str = "s3cretpass";

/// Everything the command printed, stdout and stderr.
fn printed(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn inspect_never_prints_the_password_from_the_flag_or_redis_url() {
    let url = format!("redis://admin:{PASSWORD}@127.0.0.1:1/");
    let by_flag = requeue()
        .args(["inspect", "--redis", &url, "--queue", "x"])
        .output()
        .unwrap();
    let by_env = requeue()
        .env("REDIS_URL", &url)
        .args(["inspect", "--queue", "x"])
        .output()
        .unwrap();
    for output in [by_flag, by_env] {
        let text = printed(&output);
        assert_eq!(output.status.code(), Some(1), "{text}");
        assert!(!text.contains(PASSWORD), "{text}");
        assert!(text.contains("redis://***@127.0.0.1:1/"), "{text}");
    }
    // clap's own errors quote the argument they reject.
    let misplaced = requeue()
        .args(["inspect", "--queue", "x", &url])
        .output()
        .unwrap();
    let text = printed(&misplaced);
    assert_eq!(misplaced.status.code(), Some(2), "{text}");
    assert!(!text.contains(PASSWORD) && text.contains("***"), "{text}");
    // --help names the variable, never its value.
    let help = requeue()
        .env("REDIS_URL", &url)
        .args(["inspect", "--help"])
        .output()
        .unwrap();
    let text = printed(&help);
    assert!(
        text.contains("REDIS_URL") && !text.contains(PASSWORD),
        "{text}"
    );
}

#[test]
fn inspect_with_credentials_shows_the_server_without_them() {
    let server = LocalServer::start().unwrap();
    // Redis 7's default user has no password: AUTH with any one succeeds.
    let accepted = format!("redis://default:{PASSWORD}@127.0.0.1:{}/", server.port());
    let output = requeue()
        .args(["inspect", "--redis", &accepted, "--queue", "shop"])
        .output()
        .unwrap();
    let text = printed(&output);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "queue shop at redis://***@127.0.0.1:{}/",
            server.port()
        )),
        "{text}"
    );
    assert!(!text.contains(PASSWORD), "{text}");
    // A password the server refuses: its error does not echo it either.
    let refused = format!("redis://:{PASSWORD}@127.0.0.1:{}/", server.port());
    let output = requeue()
        .args(["inspect", "--redis", &refused, "--queue", "shop"])
        .output()
        .unwrap();
    let text = printed(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
}

#[test]
fn each_cause_of_an_error_is_printed_once() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = requeue()
        .args(["inspect", "--redis", &format!("redis://127.0.0.1:{port}/")])
        .args(["--queue", "q"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.matches("Connection refused").count(), 1, "{stderr}");
}

#[test]
fn a_long_queue_name_is_echoed_once_and_short() {
    let name = "Q".repeat(10_000);
    let output = requeue()
        .args([
            "inspect",
            "--redis",
            "redis://127.0.0.1:1/",
            "--queue",
            &name,
        ])
        .output()
        .unwrap();
    let text = printed(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("invalid queue name"), "{text}");
    assert_eq!(text.matches(&"Q".repeat(50)).count(), 1, "{text}");
    assert!(text.matches('Q').count() <= 100, "{text}");
}

#[test]
fn a_frozen_redis_is_a_timeout_naming_the_server() {
    // Accepts connections (the kernel's backlog) and never answers.
    let frozen = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://127.0.0.1:{}/", frozen.local_addr().unwrap().port());
    let output = requeue()
        .args(["inspect", "--redis", &url, "--queue", "q"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("Redis at {url} did not answer within")),
        "{stderr}"
    );
    assert!(!stderr.contains("os error"), "{stderr}");
}
