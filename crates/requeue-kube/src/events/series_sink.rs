//! [`KubeSeriesSink`]: requeue's [`EventSink`] writing events.k8s.io/v1
//! Events, for the series path ([`SeriesRecorder`](requeue::events::SeriesRecorder)).

use k8s_openapi::api::events::v1 as events;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use requeue::events::{Event, EventSink, SinkError};
use tokio::runtime::Handle;

use super::bridge::{Bridge, sink_error};
use super::convert::{from_events_v1, to_events_v1};
use super::sink::current_runtime;

/// Writes events.k8s.io/v1 Events through a [`kube::Client`]: creates
/// (`POST /apis/events.k8s.io/v1/namespaces/{ns}/events`), updates (`PUT`)
/// and JSON merge patches (`PATCH` with `application/merge-patch+json`, as
/// client-go's `tools/events` sink sends the `series` patch).
///
/// Like [`KubeEventSink`](super::KubeEventSink): async methods for one
/// request each, blocking [`EventSink`] methods for requeue's threads
/// (never call those from an async task). [`series_recorder`](super::series_recorder)
/// is the usual way to use it.
#[derive(Clone)]
pub struct KubeSeriesSink {
    client: Client,
    bridge: Bridge,
}

impl std::fmt::Debug for KubeSeriesSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeSeriesSink").finish_non_exhaustive()
    }
}

impl KubeSeriesSink {
    /// A sink on `client` whose blocking methods run their requests on the
    /// current tokio runtime; fails outside one.
    pub fn new(client: Client) -> Result<Self, super::Error> {
        Ok(Self::with_runtime(client, current_runtime()?))
    }

    /// A sink whose blocking methods run their requests on `runtime`.
    pub fn with_runtime(client: Client, runtime: Handle) -> Self {
        KubeSeriesSink {
            client,
            bridge: Bridge::new(runtime),
        }
    }

    /// Creates `event` as an events.k8s.io/v1 Event.
    pub async fn create_event(&self, event: &Event) -> Result<Event, SinkError> {
        create(self.client.clone(), event.clone()).await
    }

    /// Replaces the stored `event`.
    pub async fn update_event(&self, event: &Event) -> Result<Event, SinkError> {
        update(self.client.clone(), event.clone()).await
    }

    /// Applies the JSON merge `patch` (e.g. `{"series": …}`) to the stored
    /// `event`.
    pub async fn patch_event(
        &self,
        event: &Event,
        patch: &serde_json::Value,
    ) -> Result<Event, SinkError> {
        self::patch(self.client.clone(), event.clone(), patch.clone()).await
    }
}

fn api(client: Client, event: &Event) -> Api<events::Event> {
    if event.metadata.namespace.is_empty() {
        Api::default_namespaced(client)
    } else {
        Api::namespaced(client, &event.metadata.namespace)
    }
}

fn stored(answer: Result<events::Event, kube::Error>) -> Result<Event, SinkError> {
    let stored = answer.map_err(sink_error)?;
    from_events_v1(stored).map_err(|error| SinkError::UnexpectedObject(error.to_string()))
}

async fn create(client: Client, event: Event) -> Result<Event, SinkError> {
    tracing::debug!(name = %event.metadata.name, reason = %event.reason, "creating event (events.k8s.io/v1)");
    let api = api(client, &event);
    stored(
        api.create(&PostParams::default(), &to_events_v1(&event))
            .await,
    )
}

async fn update(client: Client, event: Event) -> Result<Event, SinkError> {
    tracing::debug!(name = %event.metadata.name, reason = %event.reason, "updating event (events.k8s.io/v1)");
    let api = api(client, &event);
    let name = &event.metadata.name;
    stored(
        api.replace(name, &PostParams::default(), &to_events_v1(&event))
            .await,
    )
}

async fn patch(client: Client, event: Event, patch: serde_json::Value) -> Result<Event, SinkError> {
    tracing::debug!(name = %event.metadata.name, "patching event series (events.k8s.io/v1)");
    let api = api(client, &event);
    let name = &event.metadata.name;
    stored(
        api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await,
    )
}

impl EventSink for KubeSeriesSink {
    fn create(&self, event: &Event) -> Result<Event, SinkError> {
        self.bridge.run(create(self.client.clone(), event.clone()))
    }

    fn update(&self, event: &Event) -> Result<Event, SinkError> {
        self.bridge.run(update(self.client.clone(), event.clone()))
    }

    fn patch(&self, event: &Event, patch: &serde_json::Value) -> Result<Event, SinkError> {
        self.bridge.run(self::patch(
            self.client.clone(),
            event.clone(),
            patch.clone(),
        ))
    }
}
