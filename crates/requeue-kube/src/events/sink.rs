//! The sinks that write requeue's events to the API server: one generic
//! [`ApiSink`], for the two Event APIs ([`KubeEventSink`] for core/v1, as
//! client-go's `EventSinkImpl`; [`KubeSeriesSink`] for events.k8s.io/v1,
//! as `tools/events`' sink). They differ only in the stored type and the
//! patch flavour ([`EventApi`]).

use std::fmt;
use std::marker::PhantomData;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::events::v1 as events;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use requeue::events::{Event, EventSink, SinkError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::runtime::Handle;

use super::ConvertError;
use super::bridge::{Bridge, sink_error};
use super::convert::{from_core_event, from_events_v1, to_core_event, to_events_v1};

/// One Kubernetes Event API: the object an event is stored as, and how a
/// stored one is patched. Implemented by [`CoreV1`] and [`EventsV1`].
pub trait EventApi: Send + Sync + 'static {
    /// The stored object.
    type Object: kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + fmt::Debug
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static;
    /// The API, for logs.
    const NAME: &'static str;
    /// `event` as the API stores it.
    fn to_object(event: &Event) -> Self::Object;
    /// A stored object as requeue's event.
    fn from_object(object: Self::Object) -> Result<Event, ConvertError>;
    /// The patch request carrying `patch`.
    fn patch(patch: serde_json::Value) -> Patch<serde_json::Value>;
}

/// core/v1 Events, patched with a strategic merge patch (client-go's
/// `PatchWithEventNamespace`).
#[derive(Debug, Clone, Copy)]
pub struct CoreV1;

impl EventApi for CoreV1 {
    type Object = core::Event;
    const NAME: &'static str = "core/v1";
    fn to_object(event: &Event) -> core::Event {
        to_core_event(event)
    }
    fn from_object(object: core::Event) -> Result<Event, ConvertError> {
        from_core_event(object)
    }
    fn patch(patch: serde_json::Value) -> Patch<serde_json::Value> {
        Patch::Strategic(patch)
    }
}

/// events.k8s.io/v1 Events, patched with a JSON merge patch (as
/// client-go's `tools/events` sink sends the `series` patch).
#[derive(Debug, Clone, Copy)]
pub struct EventsV1;

impl EventApi for EventsV1 {
    type Object = events::Event;
    const NAME: &'static str = "events.k8s.io/v1";
    fn to_object(event: &Event) -> events::Event {
        to_events_v1(event)
    }
    fn from_object(object: events::Event) -> Result<Event, ConvertError> {
        from_events_v1(object)
    }
    fn patch(patch: serde_json::Value) -> Patch<serde_json::Value> {
        Patch::Merge(patch)
    }
}

/// Writes core/v1 Events through a [`kube::Client`]: creates (`POST`),
/// updates (`PUT`) and strategic-merge patches (`PATCH`, as client-go's
/// `PatchWithEventNamespace`) in the event's namespace.
///
/// The async methods ([`create_event`](Self::create_event), …) make one
/// request each. The [`EventSink`] methods do the same for requeue's
/// blocking callers (the broadcaster's sink thread applies client-go's
/// retry rules around them); see [`recorder`](super::recorder) for the
/// usual way to use it. They block the calling thread until the request is
/// answered, so they must not be called from an async task (which would
/// stall, or on a current-thread runtime deadlock, the runtime the request
/// runs on).
///
/// Errors map onto requeue's retry classes as client-go sorts them: an
/// error status is final (a `404` on a patch falls back to a create in
/// requeue's rules; a `409` on a create is final, as client-go's), an
/// unreadable answer or a transport error is retried.
///
/// ```
/// # use http::{Request, Response};
/// # use kube::client::Body;
/// use requeue::events::{Event, EventSource, EventType, ObjectReference};
/// use requeue_kube::events::KubeEventSink;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let (service, mut server) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
/// # tokio::spawn(async move {
/// #     while let Some((request, answer)) = server.next_request().await {
/// #         let body = request.into_body().collect_bytes().await.unwrap();
/// #         answer.send_response(Response::builder().status(201).body(Body::from(body.to_vec())).unwrap());
/// #     }
/// # });
/// # let client = kube::Client::new(service, "default");
/// // let client = kube::Client::try_default().await?;
/// let sink = KubeEventSink::new(client)?;
/// let pod = ObjectReference::new("Pod", "shop", "web-0");
/// let event = Event::new(pod, EventType::Normal, "Started", "started",
///     EventSource::new("shop-controller", ""), std::time::SystemTime::now());
/// let stored = sink.create_event(&event).await?;
/// assert_eq!(stored.metadata.name, event.metadata.name);
/// # Ok(())
/// # }
/// ```
pub type KubeEventSink = ApiSink<CoreV1>;

/// Writes events.k8s.io/v1 Events through a [`kube::Client`]: creates
/// (`POST /apis/events.k8s.io/v1/namespaces/{ns}/events`), updates (`PUT`)
/// and JSON merge patches (`PATCH` with `application/merge-patch+json`, as
/// client-go's `tools/events` sink sends the `series` patch).
///
/// Like [`KubeEventSink`](super::KubeEventSink): async methods for one
/// request each, blocking [`EventSink`] methods for requeue's threads
/// (never call those from an async task). [`series_recorder`](super::series_recorder)
/// is the usual way to use it.
pub type KubeSeriesSink = ApiSink<EventsV1>;

/// Writes requeue's events through a [`kube::Client`] to the Event API
/// `A`: creates (`POST`), updates (`PUT`) and patches (`PATCH`) in the
/// event's namespace (the client's default for an event without one).
///
/// The async methods ([`create_event`](Self::create_event), …) make one
/// request each. The [`EventSink`] methods do the same for requeue's
/// blocking callers (the broadcaster's sink thread applies client-go's
/// retry rules around them). They block the calling thread until the
/// request is answered, so they must not be called from an async task
/// (which would stall, or on a current-thread runtime deadlock, the
/// runtime the request runs on).
///
/// Errors map onto requeue's retry classes as client-go sorts them: an
/// error status is final (a `404` on a patch falls back to a create in
/// requeue's rules; a `409` on a create is final, as client-go's), an
/// unreadable answer or a transport error is retried.
pub struct ApiSink<A: EventApi> {
    client: Client,
    bridge: Bridge,
    api: PhantomData<fn() -> A>,
}

impl<A: EventApi> Clone for ApiSink<A> {
    fn clone(&self) -> Self {
        ApiSink {
            client: self.client.clone(),
            bridge: self.bridge.clone(),
            api: PhantomData,
        }
    }
}

impl<A: EventApi> fmt::Debug for ApiSink<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiSink")
            .field("api", &A::NAME)
            .finish_non_exhaustive()
    }
}

/// The tokio runtime the caller is on, or [`Error::NoRuntime`](super::Error::NoRuntime).
pub(crate) fn current_runtime() -> Result<Handle, super::Error> {
    Handle::try_current().map_err(|_| super::Error::NoRuntime)
}

impl<A: EventApi> ApiSink<A> {
    /// A sink on `client` whose blocking methods run their requests on the
    /// current tokio runtime; fails outside one.
    pub fn new(client: Client) -> Result<Self, super::Error> {
        Ok(Self::with_runtime(client, current_runtime()?))
    }

    /// A sink whose blocking methods run their requests on `runtime`.
    pub fn with_runtime(client: Client, runtime: Handle) -> Self {
        ApiSink {
            client,
            bridge: Bridge::new(runtime),
            api: PhantomData,
        }
    }

    /// Creates `event` (`POST …/namespaces/{ns}/events`).
    pub async fn create_event(&self, event: &Event) -> Result<Event, SinkError> {
        create::<A>(self.client.clone(), event.clone()).await
    }

    /// Replaces the stored `event` (`PUT …/events/{name}`).
    pub async fn update_event(&self, event: &Event) -> Result<Event, SinkError> {
        update::<A>(self.client.clone(), event.clone()).await
    }

    /// Applies `patch` to the stored `event` (`PATCH …/events/{name}`, in
    /// the API's patch flavour).
    pub async fn patch_event(
        &self,
        event: &Event,
        patch: &serde_json::Value,
    ) -> Result<Event, SinkError> {
        self::patch::<A>(self.client.clone(), event.clone(), patch.clone()).await
    }
}

/// The events API of the event's namespace (the client's default for an
/// event without one).
fn api<A: EventApi>(client: Client, event: &Event) -> Api<A::Object> {
    if event.metadata.namespace.is_empty() {
        Api::default_namespaced(client)
    } else {
        Api::namespaced(client, &event.metadata.namespace)
    }
}

/// The server's answer as a requeue event; an answer that does not read
/// as one is retried, as client-go's `UnexpectedObjectError`.
fn stored<A: EventApi>(answer: Result<A::Object, kube::Error>) -> Result<Event, SinkError> {
    let stored = answer.map_err(sink_error)?;
    A::from_object(stored).map_err(|error| SinkError::UnexpectedObject(error.to_string()))
}

async fn create<A: EventApi>(client: Client, event: Event) -> Result<Event, SinkError> {
    tracing::debug!(api = A::NAME, name = %event.metadata.name, reason = %event.reason, "creating event");
    let api = api::<A>(client, &event);
    stored::<A>(
        api.create(&PostParams::default(), &A::to_object(&event))
            .await,
    )
}

async fn update<A: EventApi>(client: Client, event: Event) -> Result<Event, SinkError> {
    tracing::debug!(api = A::NAME, name = %event.metadata.name, reason = %event.reason, "updating event");
    let api = api::<A>(client, &event);
    let name = &event.metadata.name;
    stored::<A>(
        api.replace(name, &PostParams::default(), &A::to_object(&event))
            .await,
    )
}

async fn patch<A: EventApi>(
    client: Client,
    event: Event,
    patch: serde_json::Value,
) -> Result<Event, SinkError> {
    tracing::debug!(api = A::NAME, name = %event.metadata.name, count = event.count, "patching event");
    let api = api::<A>(client, &event);
    let name = &event.metadata.name;
    stored::<A>(
        api.patch(name, &PatchParams::default(), &A::patch(patch))
            .await,
    )
}

impl<A: EventApi> EventSink for ApiSink<A> {
    fn create(&self, event: &Event) -> Result<Event, SinkError> {
        self.bridge
            .run(create::<A>(self.client.clone(), event.clone()))
    }

    fn update(&self, event: &Event) -> Result<Event, SinkError> {
        self.bridge
            .run(update::<A>(self.client.clone(), event.clone()))
    }

    fn patch(&self, event: &Event, patch: &serde_json::Value) -> Result<Event, SinkError> {
        self.bridge.run(self::patch::<A>(
            self.client.clone(),
            event.clone(),
            patch.clone(),
        ))
    }
}
