//! Stopping on ctrl-c or SIGTERM.

#![cfg(feature = "signal")]

use crate::wait::Stop;

/// Why [`stop_on_signals`] could not install its handler.
#[derive(Debug, thiserror::Error)]
#[error("cannot install the ctrl-c/SIGTERM handler: {0}")]
pub struct SignalError(#[from] ctrlc::Error);

/// A stop signal that fires on the first ctrl-c (SIGINT) or SIGTERM, so a
/// controller finishes the keys in hand and returns its summary. A second
/// signal exits the process at once (code 130), for a user who does not
/// want to wait. The handler is process-wide: a second call fails.
pub fn stop_on_signals() -> Result<Stop, SignalError> {
    let stop = Stop::new();
    let fire = stop.clone();
    ctrlc::set_handler(move || {
        if !fire.stop() {
            std::process::exit(130);
        }
        tracing::info!("stop requested; finishing the work in hand");
    })?;
    Ok(stop)
}
