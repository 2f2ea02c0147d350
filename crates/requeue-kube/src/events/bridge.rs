//! How a synchronous requeue [`EventSink`](requeue::events::EventSink)
//! call reaches the asynchronous kube client.
//!
//! requeue calls a sink from threads of its own: the broadcaster's
//! watcher thread (with client-go's retry loop, `record_to_sink`), the
//! series recorder's periodic jobs, and the recording thread this crate
//! starts for series events. None of them is a runtime thread, so they may
//! block. Each call spawns the request onto the runtime the sink was made
//! on and waits for its answer on a channel. Spawning, rather than
//! `Handle::block_on`, runs the request where the runtime's I/O and timers
//! are driven, which `Handle::block_on` cannot do on a current-thread
//! runtime (the flavour of `#[tokio::test]`).
//!
//! Keeping requeue's trait synchronous (rather than adding an async twin
//! to the core crate) reuses `record_to_sink` and the series rules as they
//! are, with their tests, instead of a second async copy that could drift
//! from client-go's semantics; the price is one thread per sink, which
//! the broadcaster already pays.

use std::future::Future;
use std::sync::mpsc;

use requeue::events::{Event, SinkError};
use tokio::runtime::Handle;

/// Runs sink requests on a tokio runtime for blocking callers.
#[derive(Debug, Clone)]
pub(crate) struct Bridge {
    runtime: Handle,
}

impl Bridge {
    pub(crate) fn new(runtime: Handle) -> Self {
        Bridge { runtime }
    }

    /// Runs `request` on the runtime and waits for its result, blocking
    /// the calling thread: call it from a thread of your own (or from
    /// `spawn_blocking`), never from an async task, which would stall (on
    /// a current-thread runtime, deadlock) the runtime it waits for.
    pub(crate) fn run<F>(&self, request: F) -> Result<Event, SinkError>
    where
        F: Future<Output = Result<Event, SinkError>> + Send + 'static,
    {
        let (answer, result) = mpsc::sync_channel(1);
        self.runtime.spawn(async move {
            // The caller waits for this; if it is gone, nobody needs it.
            let _ = answer.send(request.await);
        });
        result.recv().unwrap_or_else(|_| {
            Err(SinkError::Transport(
                "the tokio runtime shut down before the request finished".into(),
            ))
        })
    }
}

/// Maps a kube error onto requeue's retry classes, as client-go's
/// `recordEvent` sorts its errors.
pub(crate) fn sink_error(error: kube::Error) -> SinkError {
    match error {
        // An answer with an error status: final (a 404 patch falls back
        // to a create in requeue's rules).
        kube::Error::Api(status) => SinkError::Status {
            code: status.code,
            message: status.message,
        },
        // The request could not be built: it would not build next time.
        kube::Error::BuildRequest(error) => SinkError::RequestConstruction(error.to_string()),
        kube::Error::HttpError(error) => SinkError::RequestConstruction(error.to_string()),
        // An answer that is not an event: retried.
        kube::Error::SerdeError(error) => SinkError::UnexpectedObject(error.to_string()),
        kube::Error::FromUtf8(error) => SinkError::UnexpectedObject(error.to_string()),
        // Connection, TLS, auth, timeouts: retried.
        other => SinkError::Transport(other.to_string()),
    }
}
