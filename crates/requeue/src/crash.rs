//! Panic handling for code requeue runs on your behalf (apimachinery's
//! `HandleCrash`, `PanicHandlers` and `ReallyCrash`).
//!
//! # Usage
//!
//! When a loop body, a poll condition or a worker panics, requeue catches the
//! panic, calls every registered handler with a [`PanicReport`], and then —
//! by default, like Kubernetes — re-raises it. Turn that last step off for a
//! loop with [`PanicPolicy::really_crash`] (or process-wide with
//! [`set_really_crash`]) and the loop logs the panic and carries on, as if
//! the call had returned normally.
//!
//! ```
//! use std::sync::{Arc, atomic::{AtomicUsize, Ordering}};
//! use requeue::crash::PanicPolicy;
//!
//! let seen = Arc::new(AtomicUsize::new(0));
//! let counter = seen.clone();
//! let policy = PanicPolicy::inherit()
//!     .really_crash(false)
//!     .on_panic(move |report| {
//!         assert_eq!(report.message(), "boom");
//!         counter.fetch_add(1, Ordering::SeqCst);
//!     });
//! let result = policy.call("example", || -> u32 { panic!("boom") });
//! assert_eq!(result, None);
//! assert_eq!(seen.load(Ordering::SeqCst), 1);
//! ```
//!
//! # Implementation
//!
//! `catch_unwind` around the call (and around each poll of a future), the
//! process-wide handlers first, then the policy's own, then
//! `resume_unwind` with the original payload unless crashing is off.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

/// What a panic handler is told about a caught panic.
#[derive(Debug)]
pub struct PanicReport<'a> {
    context: &'static str,
    payload: &'a (dyn Any + Send),
}

impl<'a> PanicReport<'a> {
    /// Which requeue facility caught the panic (for example `"until"`, `"poll"`).
    pub fn context(&self) -> &'static str {
        self.context
    }

    /// The panic message when the payload is a string, `"<non-string panic payload>"` otherwise.
    pub fn message(&self) -> &'a str {
        panic_message(self.payload)
    }

    /// The raw panic payload.
    pub fn payload(&self) -> &'a (dyn Any + Send) {
        self.payload
    }
}

/// The message of a panic payload when it is a string.
pub fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "<non-string panic payload>"
    }
}

/// A function called with every caught panic.
pub type PanicHandler = Arc<dyn Fn(&PanicReport<'_>) + Send + Sync>;

static REALLY_CRASH: AtomicBool = AtomicBool::new(true);
/// One per [`add_panic_handler`] call: a program installs a few at start-up
/// (as with Kubernetes' `PanicHandlers`), never per event.
static HANDLERS: RwLock<Vec<PanicHandler>> = RwLock::new(Vec::new());

/// Sets the process-wide default for re-raising caught panics (Kubernetes'
/// `ReallyCrash`, `true` unless changed). Policies that set their own value
/// with [`PanicPolicy::really_crash`] ignore it.
pub fn set_really_crash(really_crash: bool) {
    REALLY_CRASH.store(really_crash, Ordering::SeqCst);
}

/// The process-wide default set by [`set_really_crash`].
pub fn really_crash() -> bool {
    REALLY_CRASH.load(Ordering::SeqCst)
}

/// Adds a handler that every policy calls for every caught panic, before the
/// policy's own handlers (Kubernetes' `PanicHandlers`). Every caught panic is
/// also logged through `tracing` at error level.
pub fn add_panic_handler(handler: impl Fn(&PanicReport<'_>) + Send + Sync + 'static) {
    HANDLERS
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(Arc::new(handler));
}

/// How a loop treats a panic in the code it runs.
#[derive(Clone, Default)]
pub struct PanicPolicy {
    really_crash: Option<bool>,
    /// One per [`on_panic`](PanicPolicy::on_panic) call while the policy is built.
    handlers: Vec<PanicHandler>,
}

impl fmt::Debug for PanicPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PanicPolicy")
            .field("really_crash", &self.really_crash)
            .field("handlers", &self.handlers.len())
            .finish()
    }
}

impl PanicPolicy {
    /// Follow the process-wide settings: log, call the global handlers, and
    /// re-raise unless [`set_really_crash`]`(false)` was called.
    pub fn inherit() -> Self {
        Self::default()
    }

    /// Log, call the handlers, and carry on: the panicking call counts as a
    /// normal return (a condition as "not done yet").
    pub fn contain() -> Self {
        Self::default().really_crash(false)
    }

    /// Whether to re-raise after handling, overriding the process-wide value.
    pub fn really_crash(mut self, really_crash: bool) -> Self {
        self.really_crash = Some(really_crash);
        self
    }

    /// Adds a handler called (after the global ones) for every panic this policy sees.
    pub fn on_panic(mut self, handler: impl Fn(&PanicReport<'_>) + Send + Sync + 'static) -> Self {
        self.handlers.push(Arc::new(handler));
        self
    }

    /// Whether a caught panic is re-raised under this policy right now.
    pub fn crashes(&self) -> bool {
        self.really_crash.unwrap_or_else(really_crash)
    }

    /// Reports a caught panic and re-raises it unless crashing is off.
    pub fn handle(&self, context: &'static str, payload: Box<dyn Any + Send>) {
        let report = PanicReport {
            context,
            payload: &*payload,
        };
        tracing::error!(context, message = report.message(), "observed a panic");
        let global = HANDLERS
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        for handler in global.iter().chain(&self.handlers) {
            handler(&report);
        }
        if self.crashes() {
            resume_unwind(payload);
        }
    }

    /// Runs `f`; on a panic reports it and either re-raises or returns `None`.
    pub fn call<R>(&self, context: &'static str, f: impl FnOnce() -> R) -> Option<R> {
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(value) => Some(value),
            Err(payload) => {
                self.handle(context, payload);
                None
            }
        }
    }

    /// Runs the future `make` builds; a panic while building or polling it
    /// is reported and either re-raised or turned into `None`.
    pub async fn call_async<Fut: Future>(
        &self,
        context: &'static str,
        make: impl FnOnce() -> Fut,
    ) -> Option<Fut::Output> {
        let fut = self.call(context, make)?;
        let mut fut = std::pin::pin!(fut);
        let outcome = std::future::poll_fn(|cx: &mut Context<'_>| {
            match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
                Ok(Poll::Pending) => Poll::Pending,
                Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
                Err(payload) => Poll::Ready(Err(payload)),
            }
        })
        .await;
        match outcome {
            Ok(value) => Some(value),
            Err(payload) => {
                self.handle(context, payload);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn a_contained_panic_reaches_every_handler_and_returns_none() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let policy = PanicPolicy::contain().on_panic(move |r| {
            assert_eq!(r.context(), "test");
            assert_eq!(r.message(), "formatted 7");
            counter.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(
            policy.call("test", || -> () { panic!("formatted {}", 7) }),
            None
        );
        assert_eq!(policy.call("test", || 5), Some(5));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn really_crash_re_raises_the_original_payload() {
        let policy = PanicPolicy::inherit().really_crash(true);
        let caught = catch_unwind(AssertUnwindSafe(|| {
            policy.call("test", || panic!("original"))
        }));
        let payload = caught.expect_err("re-raised");
        assert_eq!(panic_message(&*payload), "original");
    }

    #[test]
    fn a_panic_inside_a_polled_future_is_contained() {
        let policy = PanicPolicy::contain();
        let out = crate::exec::block_on(policy.call_async("test", || async {
            if true {
                panic!("in poll");
            }
            1
        }));
        assert_eq!(out, None);
        let ok = crate::exec::block_on(policy.call_async("test", || async { 2 }));
        assert_eq!(ok, Some(2));
    }

    #[test]
    fn non_string_payloads_have_a_placeholder_message() {
        let payload: Box<dyn Any + Send> = Box::new(42_u8);
        assert_eq!(panic_message(&*payload), "<non-string panic payload>");
    }
}
