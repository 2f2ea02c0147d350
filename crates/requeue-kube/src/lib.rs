//! client-go's controller machinery for kube-rs users, on requeue: watch
//! streams feeding requeue's work queues, a reconciler shaped as kube's,
//! events posted to the API server through requeue's correlator, and
//! controllers that scale out over a shared Redis queue without a leader
//! (or with one, through a fenced Lease elector).
//!
//! k8s-openapi builds for one Kubernetes version, chosen by a feature:
//! `latest` (on by default) picks its newest. To pin another, turn this
//! crate's default features off and enable k8s-openapi's `v1_NN` feature
//! in your own `Cargo.toml`, as with kube.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod action;
pub mod codec;
pub mod controller;
pub mod events;
pub mod leader;
pub mod store;
pub mod trigger;

pub use action::Action;
pub use controller::KubeController;
/// The fencing token of the key the calling reconcile holds (a Redis
/// lease's; `None` in memory): see [`requeue::controller::fencing_token`].
pub use requeue::controller::fencing_token;
