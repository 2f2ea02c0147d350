//! [`KubeController`]: kube-runtime's `Controller` shape (watch a kind,
//! `owns` its children, `watches` others, `run(reconcile, error_policy,
//! context)`) on requeue's [`Controller`], so it runs on any
//! [`AsyncQueue`] engine: the in-memory `WorkQueue`, or `requeue-redis`
//! for several replicas sharing one queue.
//!
//! # Usage
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use k8s_openapi::api::core::v1::{ConfigMap, Secret};
//! use kube::{Api, Client, runtime::{reflector::ObjectRef, watcher}};
//! use requeue::controller::Controller;
//! use requeue::queue::WorkQueue;
//! use requeue_kube::{Action, KubeController};
//!
//! #[derive(Debug, thiserror::Error)]
//! #[error("failed")]
//! struct Error;
//!
//! async fn reconcile(cm: Arc<ConfigMap>, _ctx: Arc<()>) -> Result<Action, Error> {
//!     println!("reconciling {:?}", cm.metadata.name);
//!     Ok(Action::requeue(Duration::from_secs(300)))
//! }
//! fn error_policy(_cm: Arc<ConfigMap>, _error: &Error, _ctx: Arc<()>) -> Action {
//!     Action::backoff()
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::try_default().await?;
//! let queue: WorkQueue<ObjectRef<ConfigMap>> = WorkQueue::builder().name("configmaps").build();
//! KubeController::new(Controller::new(queue, 4), Api::default_namespaced(client.clone()), watcher::Config::default())
//!     .owns(Api::<Secret>::default_namespaced(client), watcher::Config::default())
//!     .shutdown_on_signal()
//!     .run(reconcile, error_policy, Arc::new(()))
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! (`no_run`: it needs a cluster. `tests/` runs the same wiring against a
//! mock API server.)
//!
//! # Reading objects, and deleted ones
//!
//! The queue carries keys ([`ObjectRef`]), not objects: a key is small,
//! any engine can store it ([`ObjectRefCodec`](crate::codec::ObjectRefCodec)),
//! and the object read at reconcile time is the newest the reflector
//! store holds, however long the key waited. The controller waits for the
//! store's first full list before it starts its workers, so "not in the
//! store" means "gone", never "not listed yet".
//!
//! A key whose object is no longer in the store (it was deleted; the
//! watcher's `Delete` event queues it) cannot be handed to `reconcile`,
//! which takes the object. kube-runtime drops such keys silently, and so
//! does [`run`](KubeController::run): a kube reconciler ports unchanged.
//! A controller that must clean up after deleted objects without a
//! finalizer (external state keyed by name, say) uses
//! [`run_with_cleanup`](KubeController::run_with_cleanup) and gets a
//! separate `cleanup(ObjectRef<K>, Arc<Ctx>)` call with the key. A
//! separate callback rather than an enum argument keeps `reconcile`'s
//! signature kube's, and makes the "object gone" case impossible to
//! forget in a `match` only where it is asked for. (Finalizers remain the
//! reliable way: a watch can miss a deletion, and a cleanup that fails
//! after a restart is never called again.)
//!
//! # Errors and retries
//!
//! `error_policy(object, &error, ctx)` answers with an [`Action`]:
//! [`Action::backoff`] retries with the key's own rate limiter (the
//! queue's, exponential per key by default), which is forgotten as soon
//! as a reconcile succeeds; `Action::requeue(d)` retries after a fixed
//! delay as in kube. A panicking reconcile is contained and retried with
//! backoff. A failed cleanup is retried with backoff (there is no object
//! to hand the error policy). Every failure counts as one in the
//! controller metrics, and with [`record_errors`](KubeController::record_errors)
//! becomes a Warning event about the object, aggregated by requeue's
//! correlator in the recorder's pipeline.

use crate::action::Action;
use crate::store::keys_of;
use crate::trigger::{FeedEnd, Request, feed, trigger_owners, trigger_self, trigger_with};
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt, TryStreamExt};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};
use requeue::controller::{Controller, ControllerMetrics, ErrorPolicy, Failure, Summary};
use requeue::engine::AsyncQueue;
use requeue::events::{ObjectReference, Recorder};
use requeue::wait::Stop;
use serde::de::DeserializeOwned;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Trigger<K> = BoxStream<'static, Result<Request<K>, BoxError>>;
/// What the handler given to requeue's controller returns for a key.
type Handled<E> =
    futures_util::future::BoxFuture<'static, Result<requeue::controller::Action, Failed<E>>>;

/// Why a [`KubeController`] could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The reflector's writer went away (its watch stream ended) before
    /// the store was first filled; reconciling then would take every
    /// object for deleted.
    #[error("the reflector store's writer was dropped before the store was ready")]
    StoreNeverReady,
}

/// A kube-style controller on requeue; see the [module docs](self).
pub struct KubeController<K, Q>
where
    K: Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + fmt::Debug + Send + Sync + 'static,
    Q: AsyncQueue<ObjectRef<K>>,
{
    inner: Controller<ObjectRef<K>, Q>,
    store: Store<K>,
    dyntype: K::DynamicType,
    triggers: Vec<Trigger<K>>,
    resync: Option<Duration>,
    recorder: Option<Recorder>,
    stop: Stop,
}

impl<K, Q> fmt::Debug for KubeController<K, Q>
where
    K: Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + fmt::Debug + Send + Sync + 'static,
    Q: AsyncQueue<ObjectRef<K>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeController")
            .field("controller", &self.inner)
            .field("triggers", &self.triggers.len())
            .field("resync", &self.resync)
            .finish()
    }
}

impl<K, Q> KubeController<K, Q>
where
    K: Resource + Clone + DeserializeOwned + fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Default + fmt::Debug + Send + Sync + 'static,
    Q: AsyncQueue<ObjectRef<K>>,
{
    /// Watches `api` as `config` says, keeps the objects in a reflector
    /// store, and queues each touched object (kube's `Controller::new`).
    /// `controller` says how many workers run over which queue, and
    /// carries requeue's options (metrics, …).
    pub fn new(
        controller: Controller<ObjectRef<K>, Q>,
        api: Api<K>,
        config: watcher::Config,
    ) -> Self {
        let writer = reflector::store::Writer::<K>::default();
        let store = writer.as_reader();
        // Backoff: without it a failing watch is retried in a hot loop.
        let events = reflector::reflector(writer, watcher::watcher(api, config).default_backoff());
        Self::for_stream(controller, events, store, K::DynamicType::default())
    }
}

impl<K, Q> KubeController<K, Q>
where
    K: Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + fmt::Debug + Send + Sync + 'static,
    Q: AsyncQueue<ObjectRef<K>>,
{
    /// Queues the objects of a watch stream that is already reflected
    /// into `store` (kube's `Controller::for_stream`), for dynamic types
    /// or a store shared with other code. `dyntype` is the store's type.
    pub fn for_stream<S, E>(
        controller: Controller<ObjectRef<K>, Q>,
        events: S,
        store: Store<K>,
        dyntype: K::DynamicType,
    ) -> Self
    where
        S: Stream<Item = Result<watcher::Event<K>, E>> + Send + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        let this = KubeController {
            inner: controller,
            store,
            dyntype: dyntype.clone(),
            triggers: Vec::new(),
            resync: None,
            recorder: None,
            stop: Stop::new(),
        };
        this.trigger(trigger_self(events, dyntype))
    }

    /// Also queues the owner (of kind `K`) of every `Child` that changes
    /// (kube's `owns`).
    pub fn owns<Child>(self, api: Api<Child>, config: watcher::Config) -> Self
    where
        Child: Resource + Clone + DeserializeOwned + fmt::Debug + Send + 'static,
        Child::DynamicType: Default,
    {
        let owner_type = self.dyntype.clone();
        self.trigger(trigger_owners::<K, Child, _>(
            watcher::watcher(api, config).default_backoff(),
            owner_type,
        ))
    }

    /// Also queues the objects `mapper` names for every `Other` that
    /// changes (kube's `watches`).
    pub fn watches<Other, I>(
        self,
        api: Api<Other>,
        config: watcher::Config,
        mapper: impl Fn(Other) -> I + Send + 'static,
    ) -> Self
    where
        Other: Resource + Clone + DeserializeOwned + fmt::Debug + Send + 'static,
        Other::DynamicType: Default,
        I: IntoIterator<Item = ObjectRef<K>> + 'static,
    {
        self.trigger(trigger_with(
            watcher::watcher(api, config).default_backoff(),
            mapper,
        ))
    }

    /// Also queues the requests of any stream (see [`crate::trigger`]).
    pub fn trigger<S, E>(mut self, requests: S) -> Self
    where
        S: Stream<Item = Result<Request<K>, E>> + Send + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        self.triggers
            .push(requests.map_err(|e| Box::new(e) as BoxError).boxed());
        self
    }

    /// Re-adds every object of the store every `period`, at low priority
    /// (requeue's [`Controller::resync`], on the queue's clock). The first
    /// round comes a period after the start: the initial list has just
    /// queued every object.
    pub fn resync(mut self, period: Duration) -> Self {
        self.resync = Some(period);
        self
    }

    /// Reports reconciles to `metrics` (requeue's [`Controller::metrics`];
    /// `PrometheusControllerMetrics` labels them with the controller name).
    pub fn metrics(mut self, metrics: Arc<dyn ControllerMetrics>) -> Self {
        self.inner = self.inner.metrics(metrics);
        self
    }

    /// Records a Warning event about the object for every failed
    /// reconcile, through `recorder` (any requeue recorder: its
    /// broadcaster's sinks correlate and aggregate repeats).
    pub fn record_errors(mut self, recorder: Recorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// Stops when `stop` fires: intake ends, each worker finishes its key.
    pub fn graceful_shutdown_on(mut self, stop: Stop) -> Self {
        self.stop = stop;
        self
    }

    /// Stops on ctrl-c or SIGTERM (kube's `shutdown_on_signal`). Call it
    /// inside a tokio runtime; if the signals cannot be listened for, it
    /// says so in the log and the controller runs until stopped otherwise.
    pub fn shutdown_on_signal(self) -> Self {
        match requeue::controller::stop_on_tokio_signals() {
            Ok(signal) => {
                let stop = self.stop.clone();
                tokio::spawn(async move {
                    signal.stopped().await;
                    stop.stop();
                });
            }
            Err(error) => tracing::error!(%error, "cannot listen for shutdown signals"),
        }
        self
    }

    /// The reflector store the objects are read from.
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// The requeue controller underneath (its queue and counts).
    pub fn controller(&self) -> &Controller<ObjectRef<K>, Q> {
        &self.inner
    }

    /// Runs until stopped (see [`graceful_shutdown_on`](Self::graceful_shutdown_on)),
    /// calling `reconcile` for each queued object still in the store and
    /// `error_policy` when it fails (kube's `Controller::run` shape; keys
    /// of deleted objects are dropped, see the [module docs](self)).
    pub async fn run<Ctx, E, RFut>(
        self,
        reconcile: impl Fn(Arc<K>, Arc<Ctx>) -> RFut + Send + Sync + 'static,
        error_policy: impl Fn(Arc<K>, &E, Arc<Ctx>) -> Action + Send + Sync + 'static,
        context: Arc<Ctx>,
    ) -> Result<Summary, RunError>
    where
        Ctx: Send + Sync + 'static,
        E: std::error::Error + Send + Sync + 'static,
        RFut: Future<Output = Result<Action, E>> + Send + 'static,
    {
        let cleanup = |_: ObjectRef<K>, _: Arc<Ctx>| std::future::ready(Ok(Action::await_change()));
        self.run_with_cleanup(reconcile, error_policy, cleanup, context)
            .await
    }

    /// As [`run`](Self::run), and calls `cleanup` with the key of each
    /// queued object that is no longer in the store (deleted); a failed
    /// cleanup is retried with backoff.
    pub async fn run_with_cleanup<Ctx, E, RFut, CFut>(
        self,
        reconcile: impl Fn(Arc<K>, Arc<Ctx>) -> RFut + Send + Sync + 'static,
        error_policy: impl Fn(Arc<K>, &E, Arc<Ctx>) -> Action + Send + Sync + 'static,
        cleanup: impl Fn(ObjectRef<K>, Arc<Ctx>) -> CFut + Send + Sync + 'static,
        context: Arc<Ctx>,
    ) -> Result<Summary, RunError>
    where
        Ctx: Send + Sync + 'static,
        E: std::error::Error + Send + Sync + 'static,
        RFut: Future<Output = Result<Action, E>> + Send + 'static,
        CFut: Future<Output = Result<Action, E>> + Send + 'static,
    {
        let KubeController {
            mut inner,
            store,
            dyntype,
            triggers,
            resync,
            recorder,
            stop,
        } = self;
        if let Some(period) = resync {
            // requeue's resync runs a round as the run starts; here that
            // would only repeat the initial list the watch just queued
            // (at the same low priority), so the first round is skipped.
            let keys = keys_of(store.clone(), dyntype);
            let started = std::sync::atomic::AtomicBool::new(false);
            inner = inner.resync(period, move || {
                if started.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    keys()
                } else {
                    Vec::new()
                }
            });
        }
        if let Some(recorder) = recorder {
            let store = store.clone();
            inner = inner.record_errors(recorder, move |key| object_of(&store, key));
        }
        let queue = inner.queue().clone();
        let feeds: Vec<_> = triggers
            .into_iter()
            .map(|requests| {
                let (queue, stop) = (queue.clone(), stop.clone());
                tokio::spawn(async move {
                    let end = feed(&queue, requests, &stop).await;
                    // A watch stream only ends if its API went away: the
                    // store (or the owner triggers) stop following changes.
                    if end == FeedEnd::StreamEnded {
                        tracing::warn!(
                            queue = queue.name(),
                            "a watch stream ended; its changes no longer reach the queue"
                        );
                    }
                })
            })
            .collect();
        let ready = tokio::select! {
            () = stop.stopped() => Ok(()),
            ready = store.wait_until_ready() => ready,
        };
        if ready.is_err() {
            feeds.iter().for_each(|feed| feed.abort());
            return Err(RunError::StoreNeverReady);
        }
        let handler = handler(store, reconcile, error_policy, cleanup, context);
        let summary = inner.error_policy(Decided).run_async(&stop, handler).await;
        // The feeds end with the stop signal; if the queue was shut down
        // instead, their next add ends them, but a quiet watch may never
        // add again.
        for feed in feeds {
            feed.abort();
            let _ = feed.await;
        }
        Ok(summary)
    }
}

/// The handler requeue's controller runs: the store read, then reconcile
/// or cleanup, with the error policy decided here, where the object is.
fn handler<K, Ctx, E, RFut, CFut>(
    store: Store<K>,
    reconcile: impl Fn(Arc<K>, Arc<Ctx>) -> RFut + Send + Sync + 'static,
    error_policy: impl Fn(Arc<K>, &E, Arc<Ctx>) -> Action + Send + Sync + 'static,
    cleanup: impl Fn(ObjectRef<K>, Arc<Ctx>) -> CFut + Send + Sync + 'static,
    context: Arc<Ctx>,
) -> impl Fn(ObjectRef<K>) -> Handled<E> + Send + Sync + 'static
where
    K: Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Send + Sync + 'static,
    Ctx: Send + Sync + 'static,
    E: Send + 'static,
    RFut: Future<Output = Result<Action, E>> + Send + 'static,
    CFut: Future<Output = Result<Action, E>> + Send + 'static,
{
    let reconcile = Arc::new(reconcile);
    let error_policy = Arc::new(error_policy);
    let cleanup = Arc::new(cleanup);
    move |key: ObjectRef<K>| {
        let (reconcile, error_policy, cleanup, context) = (
            reconcile.clone(),
            error_policy.clone(),
            cleanup.clone(),
            context.clone(),
        );
        // Read now, when the worker takes the key: the newest object.
        let object = store.get(&key);
        Box::pin(async move {
            match object {
                Some(object) => match reconcile(object.clone(), context.clone()).await {
                    Ok(action) => Ok(action.to_requeue()),
                    Err(error) => {
                        let then = error_policy(object, &error, context);
                        Err(Failed { error, then })
                    }
                },
                None => match cleanup(key, context).await {
                    Ok(action) => Ok(action.to_requeue()),
                    Err(error) => Err(Failed {
                        error,
                        then: Action::backoff(),
                    }),
                },
            }
        })
    }
}

/// A failed reconcile, with what the user's error policy answered for it.
struct Failed<E> {
    error: E,
    then: Action,
}

impl<E: fmt::Display> fmt::Display for Failed<E> {
    /// The error's message: what is logged and put in the Warning event.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

/// The requeue error policy that applies what the kube-style policy
/// answered in the handler (it needs the object, which only the handler
/// has); a panic is retried with backoff.
struct Decided;

impl<T, E: 'static> ErrorPolicy<T, Failed<E>> for Decided {
    fn on_failure(
        &self,
        _: &T,
        failure: Failure<'_, Failed<E>>,
        _: u32,
    ) -> requeue::controller::Action {
        match failure {
            Failure::Error(failed) => failed.then.to_requeue(),
            Failure::Panicked(_) => requeue::controller::Action::RequeueRateLimited,
        }
    }
}

/// The object a key's Warning events are about: kind, API version,
/// namespace and name from the key, the uid from the store (a queue's
/// keys do not carry it; see [`crate::codec`]).
fn object_of<K>(store: &Store<K>, key: &ObjectRef<K>) -> ObjectReference
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    let reference = ObjectReference::new(
        K::kind(&key.dyntype).into_owned(),
        key.namespace.clone().unwrap_or_default(),
        key.name.clone(),
    )
    .with_api_version(K::api_version(&key.dyntype).into_owned());
    let uid = store
        .get(key)
        .and_then(|object| object.meta().uid.clone())
        .or_else(|| key.extra.uid.clone());
    match uid {
        Some(uid) => reference.with_uid(uid),
        None => reference,
    }
}
