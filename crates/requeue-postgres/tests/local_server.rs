//! The throwaway cluster: it serves, keeps committed data across a crash,
//! listens on loopback only, and leaves nothing behind — also when its
//! owner is killed.
#![allow(clippy::unwrap_used)]

use requeue_postgres::local_server::{LocalServer, LocalServerOptions};
use sqlx::{Connection, PgConnection};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Set in the child process of `a_killed_owner_leaves_no_server_behind`.
const CHILD_ENV: &str = "REQUEUE_PG_TEST_CHILD";

async fn connect(server: &LocalServer) -> PgConnection {
    PgConnection::connect(&server.url()).await.unwrap()
}

async fn setting(conn: &mut PgConnection, name: &str) -> String {
    sqlx::query_scalar(&format!("SHOW {name}"))
        .fetch_one(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn serves_on_loopback_with_fsync_and_keeps_commits_across_kill9() {
    let mut server = LocalServer::start().unwrap();
    let mut conn = connect(&server).await;
    assert_eq!(setting(&mut conn, "listen_addresses").await, "127.0.0.1");
    assert_eq!(setting(&mut conn, "fsync").await, "on");
    assert_eq!(setting(&mut conn, "port").await, server.port().to_string());
    sqlx::query("CREATE TABLE t (n int)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO t SELECT generate_series(1, 100)")
        .execute(&mut conn)
        .await
        .unwrap();
    let old_pid = server.pid().unwrap();
    let port = server.port();

    server.restart(true).unwrap();
    assert_ne!(server.pid().unwrap(), old_pid);
    assert!(!alive(old_pid), "the killed postmaster is gone");
    assert_eq!(server.port(), port, "a restart keeps the port");
    // The old connection died with the server.
    assert!(sqlx::query("SELECT 1").execute(&mut conn).await.is_err());
    let mut conn = connect(&server).await;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM t")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(count, 100, "committed rows survive a crash");
    let log = std::fs::read_to_string(server.log_path()).unwrap();
    assert!(
        log.contains("not properly shut down"),
        "it ran crash recovery"
    );
}

#[tokio::test]
async fn kill9_leaves_it_down_and_stop_restart_works() {
    let mut server = LocalServer::start_with(LocalServerOptions {
        fsync: false,
        settings: vec![("max_connections".into(), "20".into())],
        ..LocalServerOptions::default()
    })
    .unwrap();
    let mut conn = connect(&server).await;
    assert_eq!(setting(&mut conn, "fsync").await, "off");
    assert_eq!(setting(&mut conn, "max_connections").await, "20");
    drop(conn);
    let pid = server.pid().unwrap();
    server.kill9().unwrap();
    assert_eq!(server.pid(), None);
    assert!(!alive(pid));
    assert!(PgConnection::connect(&server.url()).await.is_err());
    server.restart(false).unwrap();
    connect(&server).await;
    server.stop().unwrap();
    assert!(PgConnection::connect(&server.url()).await.is_err());
    server.restart(false).unwrap();
    connect(&server).await;
}

#[test]
fn drop_stops_the_server_and_removes_its_directory() {
    let server = LocalServer::start_with(LocalServerOptions {
        fsync: false,
        ..LocalServerOptions::default()
    })
    .unwrap();
    let dir = server.dir().to_path_buf();
    let pid = server.pid().unwrap();
    assert!(server.data_dir().join("PG_VERSION").is_file());
    drop(server);
    assert!(!alive(pid));
    assert!(!dir.exists());
}

#[test]
fn a_missing_bin_dir_is_a_clear_error() {
    let error = LocalServer::start_with(LocalServerOptions {
        bin_dir: Some("/nonexistent/pg/bin".into()),
        ..LocalServerOptions::default()
    })
    .unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::NotFound);
    assert!(error.to_string().contains("/nonexistent/pg/bin"), "{error}");
}

#[test]
fn a_bad_setting_fails_fast_with_the_log() {
    let started = Instant::now();
    let error = LocalServer::start_with(LocalServerOptions {
        fsync: false,
        settings: vec![("no_such_setting".into(), "1".into())],
        ..LocalServerOptions::default()
    })
    .unwrap_err();
    assert!(error.to_string().contains("no_such_setting"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// The child half of `a_killed_owner_leaves_no_server_behind`: starts a
/// server, prints where it is, and waits to be killed.
#[test]
fn child_holds_a_server_until_killed() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let server = LocalServer::start_with(LocalServerOptions {
        fsync: false,
        ..LocalServerOptions::default()
    })
    .unwrap();
    println!(
        "SERVER {} {}",
        server.pid().unwrap(),
        server.dir().display()
    );
    std::thread::sleep(Duration::from_secs(120));
}

#[test]
fn a_killed_owner_leaves_no_server_behind() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_holds_a_server_until_killed",
            "--nocapture",
        ])
        .env(CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (pid, dir) = loop {
        let line = lines.next().unwrap().unwrap();
        if let Some(rest) = line.strip_prefix("SERVER ") {
            let (pid, dir) = rest.split_once(' ').unwrap();
            break (pid.parse::<u32>().unwrap(), std::path::PathBuf::from(dir));
        }
    };
    assert!(alive(pid));
    child.kill().unwrap(); // SIGKILL: no destructor runs
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while (alive(pid) || dir.exists()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(pid), "the supervisor stopped the server");
    assert!(!dir.exists(), "the supervisor removed the directory");
}

/// Whether `pid` runs (a zombie does not count).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}
