//! `stop_on_signals`: SIGTERM fires the stop signal (the handler is
//! process-wide, so this file holds one test).

#![cfg(unix)]

use requeue::controller::stop_on_signals;
use std::time::Duration;

#[test]
fn sigterm_fires_the_stop_signal_and_a_second_handler_is_refused() {
    let stop = stop_on_signals().expect("the first handler installs");
    assert!(stop_on_signals().is_err(), "one handler per process");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    assert!(
        stop.wait_timeout(Duration::from_secs(10)),
        "SIGTERM fired the stop"
    );
}
