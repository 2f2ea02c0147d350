//! A queue that shows its errors to someone. The controller keeps going
//! after a failed get (it pauses and tries again) and the update stream
//! skips a failed add, as they should; but then a queue whose state is
//! corrupt fails every call while the demo looks merely idle. Wrapped in
//! [`Watched`], every error a get or an add returns is also handed to a
//! listener: [`Health`](super::super::health::Health) in the main process,
//! the next report line in a worker process.

use requeue::clock::SharedClock;
use requeue::engine::{AddError, AsyncQueue, QueueError};
use requeue::queue::{AddOpts, Added, Item};
use requeue::wait::Stop;
use std::future::Future;
use std::sync::Arc;

/// Hears every error a get or an add returned.
pub type Listener = Arc<dyn Fn(&QueueError) + Send + Sync>;

/// `Q`, with its get and add errors heard by a listener.
#[derive(Clone)]
pub struct Watched<Q> {
    inner: Q,
    listener: Listener,
}

impl<Q> Watched<Q> {
    /// Wraps `inner`.
    pub fn new(inner: Q, listener: Listener) -> Self {
        Watched { inner, listener }
    }

    fn heard<T>(&self, result: &Result<T, QueueError>) {
        if let Err(error) = result {
            (self.listener)(error);
        }
    }
}

impl<Q> std::fmt::Debug for Watched<Q> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Watched")
    }
}

impl<Q: AsyncQueue<String>> AsyncQueue<String> for Watched<Q> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn clock(&self) -> &SharedClock {
        self.inner.clock()
    }

    fn add_with(
        &self,
        item: String,
        opts: AddOpts,
    ) -> impl Future<Output = Result<Added, AddError<String>>> + Send {
        let add = self.inner.add_with(item, opts);
        let listener = self.listener.clone();
        async move {
            let result = add.await;
            if let Err(refused) = &result {
                listener(&refused.error);
            }
            result
        }
    }

    async fn get(&self) -> Result<Item<String>, QueueError> {
        let result = self.inner.get().await;
        self.heard(&result);
        result
    }

    async fn get_until(&self, stop: &Stop) -> Result<Item<String>, QueueError> {
        let result = self.inner.get_until(stop).await;
        self.heard(&result);
        result
    }

    fn done(&self, item: &String) -> impl Future<Output = Result<bool, QueueError>> + Send {
        self.inner.done(item)
    }

    fn forget(&self, item: &String) -> impl Future<Output = Result<(), QueueError>> + Send {
        self.inner.forget(item)
    }

    fn num_requeues(&self, item: &String) -> impl Future<Output = Result<u32, QueueError>> + Send {
        self.inner.num_requeues(item)
    }

    fn len(&self) -> impl Future<Output = Result<usize, QueueError>> + Send {
        self.inner.len()
    }

    fn shut_down(&self) -> Vec<String> {
        self.inner.shut_down()
    }

    fn shut_down_with_drain(&self) -> impl Future<Output = Vec<String>> + Send {
        self.inner.shut_down_with_drain()
    }

    fn is_shutting_down(&self) -> bool {
        self.inner.is_shutting_down()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use requeue::queue::WorkQueue;
    use std::sync::Mutex;

    #[test]
    fn errors_of_gets_and_adds_are_heard() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let heard = Arc::new(Mutex::new(Vec::new()));
        let sink = heard.clone();
        let queue = Watched::new(
            WorkQueue::<String>::new(),
            Arc::new(move |e: &QueueError| {
                sink.lock().expect("lock").push(e.to_string());
            }),
        );
        runtime.block_on(async {
            queue.add("a".to_string()).await.expect("added");
            let item = queue.get().await.expect("an item");
            assert_eq!(*item, "a");
            item.done();
            queue.shut_down();
            assert!(queue.add("b".to_string()).await.is_err());
            assert!(queue.get().await.is_err());
        });
        let heard = heard.lock().expect("lock");
        assert_eq!(heard.len(), 2, "{heard:?}");
        assert!(heard.iter().all(|e| e.contains("shutting down")));
    }
}
