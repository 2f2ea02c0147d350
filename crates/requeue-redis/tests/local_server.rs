//! LocalServer: crash and restart with AOF keeps every acknowledged write.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;

use requeue_redis::local_server::{LocalServer, LocalServerOptions};
use requeue_redis::ops::{self, DoneCode};
use std::path::PathBuf;
use support::Fx;

#[tokio::test]
async fn kill9_restart_with_aof_always_keeps_the_queue() {
    let mut server = LocalServer::start().unwrap();
    let port = server.port();
    let mut q = Fx::on(&server.url(), "aof").await;
    let items: Vec<String> = (0..100).map(|i| format!("i{i}")).collect();
    let at = q.at();
    ops::add_batch(&mut q.conn, &q.keys, &items, at)
        .await
        .unwrap();
    let held = q.take("i0").await;
    q.add("i0").await; // parked
    q.add_after("late", 1_000).await;
    let before = q.state().await;

    let old_pid = server.pid().unwrap();
    server.restart(true).unwrap();
    assert_eq!(server.port(), port);
    assert_ne!(server.pid(), Some(old_pid));
    assert!(!alive(old_pid), "the old server is gone");

    let mut q = Fx::on(&server.url(), "aof").await;
    q.check().await;
    let mut after = q.state().await;
    after.server_now_ms = before.server_now_ms;
    assert_eq!(after, before);
    assert_eq!(
        q.done(&held).await,
        DoneCode::Requeued,
        "the lease survived"
    );

    server.kill9().unwrap();
    assert!(server.pid().is_none());
    server.restart(false).unwrap();
    let mut q = Fx::on(&server.url(), "aof").await;
    assert_eq!(q.len().await, 100);
    let pid = server.pid().unwrap();
    let dir = server.dir().to_path_buf();
    drop(server);
    assert!(!alive(pid), "dropping stops the server");
    assert!(!dir.exists(), "and removes its directory");
}

#[test]
fn a_missing_executable_is_a_clear_error() {
    let options = LocalServerOptions {
        program: Some(PathBuf::from("/nonexistent/redis-server")),
        ..LocalServerOptions::default()
    };
    let error = LocalServer::start_with(options).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::NotFound);
}

#[test]
fn a_bad_option_fails_fast_with_the_log() {
    let options = LocalServerOptions {
        extra_args: vec!["--no-such-option".into(), "1".into()],
        ..LocalServerOptions::default()
    };
    let error = LocalServer::start_with(options).unwrap_err().to_string();
    assert!(error.contains("exited during startup"), "{error}");
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}
