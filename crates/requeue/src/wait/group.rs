//! [`Group`]: start functions on threads or tasks and wait for all of them.

use super::Stop;
use crate::exec;
use crate::sync::{Arc, Mutex, lock};
use crate::waker_set::WakerSet;
use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::task::Poll;

/// Starts functions on their own threads (or tokio tasks) and waits for all
/// of them (apimachinery's `wait.Group`).
///
/// A panic in a member does not take the process down by itself: the first
/// panic is kept and re-raised by [`wait`](Group::wait) once every member
/// has finished. Clones share the same group.
///
/// ```
/// use std::sync::{Arc, atomic::{AtomicUsize, Ordering}};
/// use requeue::wait::Group;
///
/// let group = Group::new();
/// let total = Arc::new(AtomicUsize::new(0));
/// for i in 1..=3 {
///     let total = total.clone();
///     group.start(move || { total.fetch_add(i, Ordering::SeqCst); }).unwrap();
/// }
/// group.wait();
/// assert_eq!(total.load(Ordering::SeqCst), 6);
/// ```
#[derive(Clone, Default)]
pub struct Group {
    shared: Arc<Mutex<Members>>,
}

#[derive(Default)]
struct Members {
    running: usize,
    /// One per `wait` pending now (each withdraws its own when dropped).
    waiters: WakerSet,
    panic: Option<Box<dyn Any + Send>>,
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("running", &self.running())
            .finish()
    }
}

/// Counts one running member; leaving (normally or by panic) is recorded on drop.
struct Member {
    shared: Arc<Mutex<Members>>,
}

impl Member {
    fn finish(self, outcome: Result<(), Box<dyn Any + Send>>) {
        if let Err(payload) = outcome {
            let mut members = lock(&self.shared);
            if members.panic.is_none() {
                members.panic = Some(payload);
            }
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let mut members = lock(&self.shared);
        members.running -= 1;
        if members.running == 0 {
            let wakers = members.waiters.drain();
            drop(members);
            wakers.into_iter().for_each(|w| w.wake());
        }
    }
}

impl Group {
    /// An empty group.
    pub fn new() -> Self {
        Self::default()
    }

    fn join(&self) -> Member {
        lock(&self.shared).running += 1;
        Member {
            shared: self.shared.clone(),
        }
    }

    /// Runs `f` on a new thread. Fails only if the OS cannot create one.
    pub fn start(&self, f: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
        let member = self.join();
        std::thread::Builder::new()
            .name("requeue-group".into())
            .spawn(move || member.finish(catch_unwind(AssertUnwindSafe(f))))
            .map(drop)
    }

    /// Runs `f` on a new thread, handing it a clone of `stop`.
    pub fn start_with_stop(
        &self,
        stop: &Stop,
        f: impl FnOnce(Stop) + Send + 'static,
    ) -> std::io::Result<()> {
        let stop = stop.clone();
        self.start(move || f(stop))
    }

    /// Runs `fut` as a task on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, like `tokio::spawn`.
    #[cfg(feature = "tokio")]
    pub fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        let member = self.join();
        tokio::spawn(async move {
            let mut fut = std::pin::pin!(fut);
            let outcome = std::future::poll_fn(|cx| {
                match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
                    Ok(Poll::Pending) => Poll::Pending,
                    Ok(Poll::Ready(())) => Poll::Ready(Ok(())),
                    Err(payload) => Poll::Ready(Err(payload)),
                }
            })
            .await;
            member.finish(outcome);
        });
    }

    /// How many members are still running.
    pub fn running(&self) -> usize {
        lock(&self.shared).running
    }

    /// Blocks until every member has finished; then re-raises the first
    /// member panic, if any (only one waiter receives it).
    pub fn wait(&self) {
        exec::block_on(self.wait_async())
    }

    /// Async [`wait`](Group::wait). Cancellation safe.
    pub async fn wait_async(&self) {
        let panic = AllFinished {
            shared: &self.shared,
            key: None,
        }
        .await;
        if let Some(payload) = panic {
            resume_unwind(payload);
        }
    }
}

/// Completes once no member is running; withdraws its waker when dropped.
struct AllFinished<'a> {
    shared: &'a Mutex<Members>,
    key: Option<u64>,
}

impl Future for AllFinished<'_> {
    type Output = Option<Box<dyn Any + Send>>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Self::Output> {
        let mut members = lock(self.shared);
        if members.running == 0 {
            return Poll::Ready(members.panic.take());
        }
        let key = members.waiters.register(self.key, cx.waker());
        drop(members);
        self.key = Some(key);
        Poll::Pending
    }
}

impl Drop for AllFinished<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            lock(self.shared).waiters.remove(key);
        }
    }
}
