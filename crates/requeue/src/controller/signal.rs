//! Stopping on ctrl-c or SIGTERM: through tokio's signal handling in
//! async programs ([`stop_on_tokio_signals`], feature `tokio`), or through
//! a process-wide handler for blocking ones ([`stop_on_signals`], feature
//! `signal`).

#[cfg(feature = "signal")]
use crate::wait::Stop;

#[cfg(feature = "signal")]
/// Why [`stop_on_signals`] could not install its handler.
#[derive(Debug, thiserror::Error)]
#[error("cannot install the ctrl-c/SIGTERM handler: {0}")]
pub struct SignalError(#[from] ctrlc::Error);

/// A stop signal that fires on the first ctrl-c (SIGINT) or SIGTERM, so a
/// controller finishes the keys in hand and returns its summary. A second
/// signal exits the process at once (code 130), for a user who does not
/// want to wait. The handler is process-wide: a second call fails. For
/// blocking programs; under tokio use [`stop_on_tokio_signals`], which
/// does not take the signals away from tokio (or from kube's shutdown).
#[cfg(feature = "signal")]
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

/// As [`stop_on_signals`], through `tokio::signal`, so that it coexists
/// with the program's own tokio signal handling (kube-runtime's shutdown,
/// `tokio::signal::ctrl_c` elsewhere): a task on the current runtime
/// waits for ctrl-c or (on Unix) SIGTERM and fires the stop; a second
/// signal exits the process at once (code 130). May be called more than
/// once; each stop fires.
///
/// # Errors
///
/// When tokio cannot listen for SIGTERM (the signal driver is missing:
/// build the runtime with `enable_io`, or `enable_all`).
///
/// # Panics
///
/// Outside a tokio runtime.
#[cfg(feature = "tokio")]
pub fn stop_on_tokio_signals() -> std::io::Result<crate::wait::Stop> {
    let stop = crate::wait::Stop::new();
    let fire = stop.clone();
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::spawn(async move {
        let mut first = true;
        loop {
            #[cfg(unix)]
            let received = tokio::select! {
                r = tokio::signal::ctrl_c() => r.is_ok(),
                r = term.recv() => r.is_some(),
            };
            #[cfg(not(unix))]
            let received = tokio::signal::ctrl_c().await.is_ok();
            if !received {
                tracing::warn!("signal handling ended; stop_on_tokio_signals no longer fires");
                return;
            }
            if !first {
                std::process::exit(130);
            }
            first = false;
            fire.stop();
            tracing::info!("stop requested; finishing the work in hand");
        }
    });
    Ok(stop)
}
