//! Watch streams as queue adds: which objects a watch event asks to
//! reconcile ([`trigger_self`], [`trigger_owners`], [`trigger_with`]) and
//! the loop that adds them to a queue ([`feed`]).
//!
//! # Usage
//!
//! ```
//! use futures_util::stream;
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use kube::api::ObjectMeta;
//! use kube::runtime::{reflector::ObjectRef, watcher::Event};
//! use requeue::queue::WorkQueue;
//! use requeue::wait::Stop;
//! use requeue_kube::trigger::{INITIAL_LIST_PRIORITY, feed, trigger_self};
//!
//! let cm = |name: &str| ConfigMap {
//!     metadata: ObjectMeta { name: Some(name.into()), namespace: Some("ns".into()), ..Default::default() },
//!     ..Default::default()
//! };
//! // What a watcher yields: the initial list, then live changes.
//! let events = stream::iter([
//!     Event::Init,
//!     Event::InitApply(cm("listed")),
//!     Event::InitDone,
//!     Event::Apply(cm("changed")),
//! ].map(Ok::<_, kube::runtime::watcher::Error>));
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let queue: WorkQueue<ObjectRef<ConfigMap>> = WorkQueue::new();
//! feed(&queue, trigger_self(events, ()), &Stop::new()).await;
//! // The change is served first: the listed object waits at low priority.
//! let first = queue.get().unwrap();
//! assert_eq!(first.name, "changed");
//! assert_eq!(first.priority(), 0);
//! let second = queue.get().unwrap();
//! assert_eq!(second.name, "listed");
//! assert_eq!(second.priority(), INITIAL_LIST_PRIORITY);
//! # });
//! ```
//!
//! # Priorities
//!
//! Objects of an initial list (the watcher's `InitApply` events, after
//! every start and every re-list) are added at [`INITIAL_LIST_PRIORITY`],
//! controller-runtime's `LowPriority`; live changes (`Apply`, `Delete`)
//! at 0. A controller that starts, or re-lists after a long disconnect,
//! queues every object it watches at once; at low priority they do not
//! stand between a user's edit and its reconcile. Nor are they starved by
//! a steady flow of changes: requeue's queue serves the longest-waiting
//! ready item after a bounded run of hand-outs that passed it over
//! ([`WorkQueueBuilder::fairness`](requeue::queue::WorkQueueBuilder::fairness)).
//! A listed object that changes while it waits is raised to the change's
//! priority (the queue keeps the higher one), so it is not served late.
//!
//! Engines without priorities ignore them and serve in order.
//!
//! # Errors
//!
//! A watch error is logged and skipped: kube's watcher recovers by itself
//! (wrap it in `default_backoff()` so it does not retry in a hot loop),
//! and a missed change is caught by the next re-list or resync.

use futures_util::{Stream, StreamExt, TryStream, TryStreamExt, stream};
use kube::Resource;
use kube::runtime::reflector::{Lookup, ObjectRef};
use kube::runtime::watcher::Event;
use requeue::engine::AsyncQueue;
use requeue::queue::AddOpts;
use requeue::wait::Stop;
use std::fmt;
use std::hash::Hash;

/// The priority of the adds of an initial list: controller-runtime's
/// `LowPriority`, the same as a resync's
/// ([`RESYNC_PRIORITY`](requeue::controller::RESYNC_PRIORITY)).
pub const INITIAL_LIST_PRIORITY: i32 = requeue::controller::RESYNC_PRIORITY;

/// An object to reconcile, and whether an initial list asked for it.
pub struct Request<K: Lookup> {
    /// The object.
    pub object: ObjectRef<K>,
    /// Whether it came from an initial list (added at
    /// [`INITIAL_LIST_PRIORITY`]) rather than a live change.
    pub initial: bool,
}

impl<K: Lookup> Request<K> {
    /// The priority the request is added at.
    pub fn priority(&self) -> i32 {
        if self.initial {
            INITIAL_LIST_PRIORITY
        } else {
            0
        }
    }
}

// Not derived: derives would bound `K` instead of its dynamic type.
impl<K: Lookup> Clone for Request<K>
where
    K::DynamicType: Clone,
{
    fn clone(&self) -> Self {
        Request {
            object: self.object.clone(),
            initial: self.initial,
        }
    }
}

impl<K: Lookup> fmt::Debug for Request<K>
where
    K::DynamicType: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("object", &self.object)
            .field("initial", &self.initial)
            .finish()
    }
}

impl<K: Lookup> PartialEq for Request<K>
where
    K::DynamicType: PartialEq,
{
    fn eq(&self, other: &Self) -> bool {
        self.object == other.object && self.initial == other.initial
    }
}

/// The object a watch event touched, and whether it was listed.
fn touched<K>(event: Event<K>) -> Option<(K, bool)> {
    match event {
        Event::Apply(object) | Event::Delete(object) => Some((object, false)),
        Event::InitApply(object) => Some((object, true)),
        Event::Init | Event::InitDone => None,
    }
}

/// Maps each touched object of a watch stream to the requests `f` makes.
fn requests<S, O, K, I>(
    events: S,
    f: impl Fn(O) -> I + Send + 'static,
) -> impl Stream<Item = Result<Request<K>, S::Error>> + Send
where
    S: TryStream<Ok = Event<O>> + Send,
    S::Error: Send,
    O: Send,
    K: Lookup + Send,
    K::DynamicType: Send,
    I: IntoIterator<Item = ObjectRef<K>>,
{
    events.into_stream().flat_map(move |event| {
        let out: Vec<Result<Request<K>, S::Error>> = match event {
            Err(error) => vec![Err(error)],
            Ok(event) => match touched(event) {
                None => Vec::new(),
                Some((object, initial)) => f(object)
                    .into_iter()
                    .map(|object| Ok(Request { object, initial }))
                    .collect(),
            },
        };
        stream::iter(out)
    })
}

/// The watched objects themselves (kube's `trigger_self`): every applied,
/// deleted or listed object asks for its own reconcile.
pub fn trigger_self<K, S>(
    events: S,
    dyntype: K::DynamicType,
) -> impl Stream<Item = Result<Request<K>, S::Error>> + Send
where
    S: TryStream<Ok = Event<K>> + Send,
    S::Error: Send,
    K: Lookup + Send + 'static,
    K::DynamicType: Clone + Send + Sync + 'static,
{
    requests(events, move |object: K| {
        Some(ObjectRef::from_obj_with(&object, dyntype.clone()))
    })
}

/// The owners of the watched objects (kube's `trigger_owners`): a change
/// to a child asks to reconcile each owner of kind `K` its owner
/// references name (matched by API version and kind, in the child's
/// namespace).
pub fn trigger_owners<K, Child, S>(
    events: S,
    owner_type: K::DynamicType,
) -> impl Stream<Item = Result<Request<K>, S::Error>> + Send
where
    S: TryStream<Ok = Event<Child>> + Send,
    S::Error: Send,
    Child: Resource + Send + 'static,
    K: Lookup + Send + 'static,
    K::DynamicType: Clone + Send + Sync + 'static,
{
    requests(events, move |child: Child| {
        let meta = child.meta();
        let namespace = meta.namespace.as_deref();
        meta.owner_references
            .iter()
            .flatten()
            .filter_map(|owner| ObjectRef::from_owner_ref(namespace, owner, owner_type.clone()))
            .collect::<Vec<_>>()
    })
}

/// The objects `mapper` names for each watched object (kube's `watches`
/// mapping): for relations owner references do not express.
pub fn trigger_with<K, Other, S, I>(
    events: S,
    mapper: impl Fn(Other) -> I + Send + 'static,
) -> impl Stream<Item = Result<Request<K>, S::Error>> + Send
where
    S: TryStream<Ok = Event<Other>> + Send,
    S::Error: Send,
    Other: Send,
    K: Lookup + Send,
    K::DynamicType: Send,
    I: IntoIterator<Item = ObjectRef<K>>,
{
    requests(events, mapper)
}

/// How a [`feed`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedEnd {
    /// The stream ended.
    StreamEnded,
    /// The stop signal fired.
    Stopped,
    /// The queue shut down and refused an add.
    QueueShutDown,
}

/// Adds every request of `requests` to `queue` at its
/// [priority](Request::priority) until the stream ends, `stop` fires or
/// the queue shuts down. Watch errors are logged and skipped (see the
/// [module docs](self)), as are adds an engine fails (the next re-list or
/// resync brings the key back).
pub async fn feed<K, Q, S, E>(queue: &Q, requests: S, stop: &Stop) -> FeedEnd
where
    K: Lookup + 'static,
    K::DynamicType: Eq + Hash + Clone + Send + Sync,
    Q: AsyncQueue<ObjectRef<K>>,
    S: Stream<Item = Result<Request<K>, E>>,
    E: fmt::Display,
{
    let mut requests = std::pin::pin!(requests.fuse());
    loop {
        let next = tokio::select! {
            // Stop first: a busy stream must not keep a stopped feed going.
            biased;
            () = stop.stopped() => return FeedEnd::Stopped,
            next = requests.next() => next,
        };
        let request = match next {
            None => return FeedEnd::StreamEnded,
            Some(Err(error)) => {
                tracing::warn!(queue = queue.name(), %error, "watch error; the watcher retries");
                continue;
            }
            Some(Ok(request)) => request,
        };
        let opts = AddOpts::new().priority(request.priority());
        if let Err(refused) = queue.add_with(request.object, opts).await {
            if queue.is_shutting_down() {
                return FeedEnd::QueueShutDown;
            }
            tracing::warn!(queue = queue.name(), key = %refused.item, error = %refused.error, "an add failed; a re-list or resync brings the key back");
        }
    }
}
