//! `stop_on_tokio_signals`: SIGTERM fires every stop made with it (it
//! coexists with other tokio signal listeners), and a second signal exits
//! the process with code 130 (checked in a child process: this binary run
//! again).
#![cfg(unix)]
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use requeue::controller::stop_on_tokio_signals;
use std::time::Duration;

const CHILD: &str = "RQ_SIGNAL_CHILD";

fn kill_self(signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &std::process::id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_fires_every_stop_and_leaves_other_listeners_working() {
    if std::env::var_os(CHILD).is_some() {
        return; // the child runs the test below only
    }
    let first = stop_on_tokio_signals().unwrap();
    let second = stop_on_tokio_signals().unwrap();
    let mut own =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
    kill_self("-TERM");
    for stop in [&first, &second] {
        tokio::time::timeout(Duration::from_secs(10), stop.stopped())
            .await
            .expect("SIGTERM fired the stop");
    }
    tokio::time::timeout(Duration::from_secs(10), own.recv())
        .await
        .expect("the program's own listener got it too");
}

#[test]
fn a_second_signal_exits_at_once_with_130() {
    if std::env::var_os(CHILD).is_some() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let stop = stop_on_tokio_signals().unwrap();
            kill_self("-TERM");
            stop.stopped().await;
            kill_self("-TERM");
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        std::process::exit(0); // not reached when the second signal exits
    }
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_second_signal_exits_at_once_with_130",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(130), "{status:?}");
}
