//! Kubernetes events from a kube-rs controller, through requeue's event
//! machinery: the correlator (repeats counted, similar events aggregated,
//! spam filtered), client-go's retry rules, and the events.k8s.io/v1
//! series recorder.
//!
//! | client-go | here |
//! |---|---|
//! | `record.NewBroadcaster` + `StartRecordingToSink` + `NewRecorder` | [`recorder`], [`recorder_with`] → ([`Recorder`](requeue::events::Recorder), [`EventsHandle`]) |
//! | `typedcorev1.EventSinkImpl` | [`KubeEventSink`] |
//! | `tools/events.NewBroadcaster` + `NewRecorder` | [`series_recorder`], [`series_recorder_with`] → ([`SeriesEventRecorder`], [`SeriesHandle`]) |
//! | `tools/events.EventSinkImpl` | [`KubeSeriesSink`] |
//! | `ref.GetReference` | [`InvolvedExt::involved`] |
//! | (conversions) | [`to_core_event`], [`from_core_event`], [`to_events_v1`], [`from_events_v1`], [`to_object_reference`], [`from_object_reference`] |
//!
//! Record a Warning about any `kube::Resource` in one line; repeats of it
//! become one event whose `count` goes up:
//!
//! ```
//! # use http::{Request, Response};
//! # use kube::client::Body;
//! use k8s_openapi::api::apps::v1::Deployment;
//! use kube::api::ObjectMeta;
//! use requeue::events::EventType;
//! use requeue_kube::events::InvolvedExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let (service, mut server) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
//! # let server = tokio::spawn(async move {
//! #     for method in ["POST", "PATCH"] {
//! #         let (request, answer) = server.next_request().await.unwrap();
//! #         assert_eq!(request.method().as_str(), method);
//! #         let body = request.into_body().collect_bytes().await.unwrap();
//! #         let mut event: serde_json::Value = serde_json::from_slice(&body).unwrap();
//! #         if method == "PATCH" { // answer with the patched event
//! #             event = serde_json::json!({"metadata": {"name": "web.1", "namespace": "shop"},
//! #                 "involvedObject": {"kind": "Deployment"}, "type": "Warning", "count": event["count"]});
//! #         }
//! #         answer.send_response(Response::builder().body(Body::from(serde_json::to_vec(&event).unwrap())).unwrap());
//! #     }
//! # });
//! # let client = kube::Client::new(service, "default");
//! // let client = kube::Client::try_default().await?;
//! let (recorder, events) = requeue_kube::events::recorder(client, "shop-controller")?;
//!
//! let web = Deployment { metadata: ObjectMeta { name: Some("web".into()),
//!     namespace: Some("shop".into()), ..ObjectMeta::default() }, ..Deployment::default() };
//! for _ in 0..2 {
//!     recorder.event(&web.involved(), EventType::Warning, "ImagePullBackOff", "cannot pull web:1.2");
//! }
//! # server.await?;
//! events.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod bridge;
mod convert;
mod involved;
mod recorder;
mod series;
mod sink;

pub use convert::{
    ConvertError, from_core_event, from_events_v1, from_object_reference, to_core_event,
    to_events_v1, to_object_reference,
};
pub use involved::InvolvedExt;
pub use recorder::{EventsHandle, RecorderOptions, recorder, recorder_with};
pub use series::{
    DEFAULT_SERIES_QUEUE_CAPACITY, SeriesEventRecorder, SeriesHandle, SeriesOptions,
    series_recorder, series_recorder_with,
};
pub use sink::{ApiSink, CoreV1, EventApi, EventsV1, KubeEventSink, KubeSeriesSink};

/// Why an event recorder or sink could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not called on a tokio runtime: the API requests need one.
    #[error("event recorders and sinks must be created on a tokio runtime")]
    NoRuntime,
    /// The OS would not start a thread.
    #[error("could not start an event thread: {0}")]
    Thread(#[from] std::io::Error),
}
