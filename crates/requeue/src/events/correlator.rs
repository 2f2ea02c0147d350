//! The event correlator: aggregator → logger (dedup) → spam filter, as
//! client-go's `EventCorrelator` (docs/behaviour.md §7.4).
//!
//! - The **aggregator** groups events that differ only in their message
//!   (same source, object, type and reason): once `max_events` distinct
//!   messages arrive within `max_interval` of each other, it emits one
//!   aggregate event, "(combined from similar events): …".
//! - The **logger** deduplicates identical events: the first is created,
//!   each repeat becomes a patch of the same object with `count + 1`, a new
//!   `lastTimestamp` and the message.
//! - The **spam filter** allows `burst` events per source and object, then
//!   one per `1/qps` seconds. It runs last, so skipped events still count in
//!   the aggregator and the logger, as upstream.
//!
//! All three caches are LRUs of `lru_cache_size` keys, driven by the injected clock.

use super::lru::Lru;
use super::reference::unique_event_time;
use super::spam::{DEFAULT_SPAM_BURST, DEFAULT_SPAM_QPS, SpamFilter};
use super::{Event, Time, event_name};
use crate::clock::{self, Clock, SharedClock};
use crate::sync::{Mutex, lock};
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// client-go's `maxLruCacheEntries`.
pub const DEFAULT_LRU_CACHE_SIZE: usize = 4096;
/// client-go's `defaultAggregateMaxEvents`.
pub const DEFAULT_AGGREGATE_MAX_EVENTS: usize = 10;
/// client-go's `defaultAggregateIntervalInSeconds`.
pub const DEFAULT_AGGREGATE_INTERVAL: Duration = Duration::from_secs(600);
/// The prefix of an aggregate event's message.
pub const AGGREGATE_PREFIX: &str = "(combined from similar events): ";

/// Splits an event into (aggregate key, local key): events with the same
/// aggregate key and different local keys are "similar".
pub type KeyFn = Arc<dyn Fn(&Event) -> (String, String) + Send + Sync>;
/// Builds the message of an aggregate event from the event that triggered it.
pub type MessageFn = Arc<dyn Fn(&Event) -> String + Send + Sync>;
/// The key the spam filter keeps a bucket for.
pub type SpamKeyFn = Arc<dyn Fn(&Event) -> String + Send + Sync>;

/// Configures a [`Correlator`] (client-go's `CorrelatorOptions`).
#[derive(Clone)]
pub struct CorrelatorOptions {
    /// Entries in each of the three LRU caches.
    pub lru_cache_size: usize,
    /// Events per spam key allowed at once.
    pub burst_size: u32,
    /// Events per second per spam key after the burst.
    pub qps: f64,
    /// Whether the spam filter runs at all.
    pub spam_filter: bool,
    /// The aggregator's key function ([`aggregate_by_reason`] by default).
    pub key_fn: KeyFn,
    /// The aggregate message ([`combined_message`] by default).
    pub message_fn: MessageFn,
    /// Distinct messages that trigger aggregation.
    pub max_events: usize,
    /// The sliding window of the aggregator, measured from the last similar event.
    pub max_interval: Duration,
    /// The spam filter's key ([`spam_key`] by default).
    pub spam_key_fn: SpamKeyFn,
    /// Time for windows, buckets and the aggregate event's timestamps.
    pub clock: SharedClock,
}

impl Default for CorrelatorOptions {
    fn default() -> Self {
        CorrelatorOptions {
            lru_cache_size: DEFAULT_LRU_CACHE_SIZE,
            burst_size: DEFAULT_SPAM_BURST,
            qps: DEFAULT_SPAM_QPS,
            spam_filter: true,
            key_fn: Arc::new(aggregate_by_reason),
            message_fn: Arc::new(combined_message),
            max_events: DEFAULT_AGGREGATE_MAX_EVENTS,
            max_interval: DEFAULT_AGGREGATE_INTERVAL,
            spam_key_fn: Arc::new(spam_key),
            clock: clock::real(),
        }
    }
}

impl fmt::Debug for CorrelatorOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CorrelatorOptions")
            .field("lru_cache_size", &self.lru_cache_size)
            .field("burst_size", &self.burst_size)
            .field("qps", &self.qps)
            .field("spam_filter", &self.spam_filter)
            .field("max_events", &self.max_events)
            .field("max_interval", &self.max_interval)
            .finish_non_exhaustive()
    }
}

fn concat(parts: &[&str]) -> String {
    parts.concat()
}

/// client-go's `getEventKey`: everything that makes two events identical.
pub fn event_key(e: &Event) -> String {
    let o = &e.involved_object;
    concat(&[
        &e.source.component,
        &e.source.host,
        &o.kind,
        &o.namespace,
        &o.name,
        &o.field_path,
        &o.uid,
        &o.api_version,
        e.event_type.as_str(),
        &e.reason,
        &e.message,
    ])
}

/// client-go's `getSpamKey`: source, object and type (no reason, field path or message).
pub fn spam_key(e: &Event) -> String {
    let o = &e.involved_object;
    concat(&[
        &e.source.component,
        &e.source.host,
        &o.kind,
        &o.namespace,
        &o.name,
        &o.uid,
        &o.api_version,
        e.event_type.as_str(),
    ])
}

/// client-go's `EventAggregatorByReasonFunc`: events with the same source,
/// object, type and reason are similar; the message tells them apart.
pub fn aggregate_by_reason(e: &Event) -> (String, String) {
    let o = &e.involved_object;
    let key = concat(&[
        &e.source.component,
        &e.source.host,
        &o.kind,
        &o.namespace,
        &o.name,
        &o.uid,
        &o.api_version,
        e.event_type.as_str(),
        &e.reason,
        &e.reporting_controller,
        &e.reporting_instance,
    ]);
    (key, e.message.clone())
}

/// client-go's `EventAggregatorByReasonMessageFunc`.
pub fn combined_message(e: &Event) -> String {
    format!("{AGGREGATE_PREFIX}{}", e.message)
}

/// What the correlator decided about one event.
#[derive(Debug, Clone, PartialEq)]
pub struct Correlation {
    /// The event to write: the input, an aggregate, or a repeat with its count raised.
    pub event: Event,
    /// For a repeat, the patch to send instead of a create (`count`,
    /// `lastTimestamp`, `message`).
    pub patch: Option<serde_json::Value>,
    /// The spam filter dropped it: write nothing.
    pub skip: bool,
}

#[derive(Debug)]
struct Aggregate {
    /// At most `max_events`: cut back to `max_events - 1` each time it
    /// reaches it (the aggregate is emitted then).
    local_keys: HashSet<String>,
    last: Instant,
}

#[derive(Debug, Clone)]
struct Observation {
    count: i32,
    first_timestamp: Time,
    name: String,
    resource_version: String,
}

/// Correlates events before they reach a sink: aggregator, then logger
/// (dedup), then spam filter (see the [`events`](crate::events) module docs).
pub struct Correlator {
    options: CorrelatorOptions,
    /// At most `lru_cache_size` keys (client-go's 4096): the least recently
    /// used is evicted, as upstream, and a similar event seen again starts
    /// a fresh aggregate.
    aggregates: Mutex<Lru<String, Aggregate>>,
    /// At most `lru_cache_size` keys, evicting as above: a repeat of an
    /// evicted event is created anew instead of patched.
    observations: Mutex<Lru<String, Observation>>,
    /// At most `lru_cache_size` buckets, evicting as above.
    spam: Mutex<SpamFilter>,
}

impl fmt::Debug for Correlator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Correlator")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Default for Correlator {
    fn default() -> Self {
        Self::new(CorrelatorOptions::default())
    }
}

impl Correlator {
    /// A correlator with `options`.
    pub fn new(options: CorrelatorOptions) -> Self {
        let size = options.lru_cache_size;
        Correlator {
            aggregates: Mutex::new(Lru::new(size)),
            observations: Mutex::new(Lru::new(size)),
            spam: Mutex::new(SpamFilter::new(
                size,
                options.qps,
                options.burst_size,
                options.clock.clone(),
            )),
            options,
        }
    }

    /// Runs `event` through aggregator, logger and spam filter.
    pub fn correlate(&self, event: &Event) -> Correlation {
        let (event, key) = self.aggregate(event);
        let (event, patch) = self.observe(event, key);
        let skip =
            self.options.spam_filter && lock(&self.spam).skip(&(self.options.spam_key_fn)(&event));
        Correlation { event, patch, skip }
    }

    /// Records what the server stored for `event` (its name, resource
    /// version and count), so the next repeat patches that object.
    pub fn update_state(&self, event: &Event) {
        lock(&self.observations).add(
            event_key(event),
            Observation {
                count: event.count,
                first_timestamp: event.first_timestamp,
                name: event.metadata.name.clone(),
                resource_version: event.metadata.resource_version.clone(),
            },
        );
    }

    fn aggregate(&self, new: &Event) -> (Event, String) {
        let now = self.options.clock.now();
        let (aggregate_key, local_key) = (self.options.key_fn)(new);
        let full_key = event_key(new);
        let mut aggregates = lock(&self.aggregates);
        let fresh = || Aggregate {
            local_keys: HashSet::new(),
            last: now,
        };
        if aggregates.get(&aggregate_key).is_none() {
            aggregates.add(aggregate_key.clone(), fresh());
        }
        let Some(record) = aggregates.get(&aggregate_key) else {
            return (new.clone(), full_key);
        };
        if now.saturating_duration_since(record.last) > self.options.max_interval {
            *record = fresh();
        }
        record.local_keys.insert(local_key);
        record.last = now;
        if record.local_keys.len() < self.options.max_events {
            return (new.clone(), full_key);
        }
        // Keep the set at max_events - 1: the next new message aggregates again.
        if let Some(any) = record.local_keys.iter().next().cloned() {
            record.local_keys.remove(&any);
        }
        drop(aggregates);
        let at = unique_event_time(self.options.clock.wall_now());
        let mut aggregate = Event::new(
            new.involved_object.clone(),
            new.event_type,
            new.reason.clone(),
            (self.options.message_fn)(new),
            new.source.clone(),
            at,
        );
        aggregate.metadata.name = event_name(&new.involved_object.name, at);
        aggregate.metadata.namespace = new.metadata.namespace.clone();
        // As upstream, the aggregate carries no reporting fields of its own.
        aggregate.reporting_controller.clear();
        aggregate.reporting_instance.clear();
        (aggregate, aggregate_key)
    }

    fn observe(&self, event: Event, key: String) -> (Event, Option<serde_json::Value>) {
        let mut event = event;
        let mut patch = None;
        let mut observations = lock(&self.observations);
        if let Some(seen) = observations.get(&key).filter(|seen| seen.count > 0) {
            event.metadata.name = seen.name.clone();
            event.metadata.resource_version = seen.resource_version.clone();
            event.first_timestamp = seen.first_timestamp;
            event.count = seen.count.saturating_add(1);
            patch = Some(repeat_patch(&event));
        }
        observations.add(
            key,
            Observation {
                count: event.count,
                first_timestamp: event.first_timestamp,
                name: event.metadata.name.clone(),
                resource_version: event.metadata.resource_version.clone(),
            },
        );
        (event, patch)
    }
}

/// The two-way merge patch from an event with no count, time or message
/// to `event`: what upstream sends for a repeat.
fn repeat_patch(event: &Event) -> serde_json::Value {
    let mut patch = serde_json::Map::new();
    if event.count != 0 {
        patch.insert("count".into(), event.count.into());
    }
    if !event.last_timestamp.is_zero()
        && let Ok(time) = serde_json::to_value(event.last_timestamp)
    {
        patch.insert("lastTimestamp".into(), time);
    }
    if !event.message.is_empty() {
        patch.insert("message".into(), event.message.clone().into());
    }
    serde_json::Value::Object(patch)
}

#[cfg(test)]
#[path = "correlator_tests.rs"]
mod tests;
