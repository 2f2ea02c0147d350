//! The Prometheus exporter, checked through its parsed OpenMetrics text.

use super::*;
use crate::clock::FakeClock;
use crate::queue::WorkQueue;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// One sample line: `metric{labels} value`.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed exposition: samples plus the `# HELP` and `# TYPE` lines.
#[derive(Debug, Default)]
struct Exposition {
    samples: Vec<Sample>,
    help: HashMap<String, String>,
    types: HashMap<String, String>,
    eof: bool,
}

/// Parses `{k="v",k2="v2"}` (without the braces), honouring `\"` and `\\`.
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        if key.is_empty() {
            return labels;
        }
        assert_eq!(
            chars.next(),
            Some('"'),
            "label {key} must be quoted in {text:?}"
        );
        let mut value = String::new();
        loop {
            match chars.next().expect("unterminated label value") {
                '\\' => value.push(chars.next().expect("escape")),
                '"' => break,
                c => value.push(c),
            }
        }
        labels.insert(key.trim().to_string(), value);
        match chars.next() {
            None => return labels,
            Some(',') => {}
            Some(c) => panic!("unexpected {c:?} after a label in {text:?}"),
        }
    }
}

fn parse(text: &str) -> Exposition {
    let mut out = Exposition::default();
    for line in text.lines() {
        assert!(!out.eof, "nothing may follow # EOF");
        if line == "# EOF" {
            out.eof = true;
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("# HELP name text");
            assert!(
                out.help.insert(name.into(), help.into()).is_none(),
                "{name} twice"
            );
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name type");
            assert!(
                out.types.insert(name.into(), kind.into()).is_none(),
                "{name} twice"
            );
        } else if line.starts_with('#') || line.is_empty() {
            continue;
        } else {
            let (name, labels, value) = match line.split_once('{') {
                Some((name, rest)) => {
                    let (labels, value) = rest.rsplit_once("} ").expect("closing brace");
                    (name, parse_labels(labels), value)
                }
                None => {
                    let (name, value) = line.split_once(' ').expect("metric value");
                    (name, BTreeMap::new(), value)
                }
            };
            let value = value.trim();
            assert!(!value.contains(' '), "no timestamps or exemplars: {line:?}");
            let value = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v
                    .parse()
                    .unwrap_or_else(|e| panic!("bad value in {line:?}: {e}")),
            };
            out.samples.push(Sample {
                name: name.to_string(),
                labels,
                value,
            });
        }
    }
    out
}

impl Exposition {
    /// The value of `name` for queue `queue`, with no other labels.
    fn value(&self, name: &str, queue: &str) -> f64 {
        let found: Vec<_> = self
            .samples
            .iter()
            .filter(|s| {
                s.name == name
                    && s.labels.len() == 1
                    && s.labels.get("name").map(String::as_str) == Some(queue)
            })
            .collect();
        assert_eq!(
            found.len(),
            1,
            "exactly one {name}{{name={queue:?}}} sample"
        );
        found[0].value
    }

    /// The `(le, cumulative count)` buckets of histogram `name` for `queue`, in order.
    fn buckets(&self, name: &str, queue: &str) -> Vec<(f64, f64)> {
        let bucket = format!("{name}_bucket");
        self.samples
            .iter()
            .filter(|s| s.name == bucket && s.labels.get("name").map(String::as_str) == Some(queue))
            .map(|s| {
                assert_eq!(s.labels.len(), 2, "name and le: {s:?}");
                let le = s.labels.get("le").expect("le label");
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().expect("le")
                };
                (le, s.value)
            })
            .collect()
    }

    /// Asserts a histogram's count, sum and cumulative bucket counts
    /// (one per client-go bucket 1e-8 … 10, then +Inf).
    fn assert_histogram(
        &self,
        name: &str,
        queue: &str,
        count: u64,
        sum: f64,
        cumulative: [u64; 11],
    ) {
        assert_eq!(
            self.value(&format!("{name}_count"), queue),
            count as f64,
            "{name}_count"
        );
        assert_eq!(self.value(&format!("{name}_sum"), queue), sum, "{name}_sum");
        let buckets = self.buckets(name, queue);
        assert_eq!(buckets.len(), 11, "{name}: 10 buckets and +Inf");
        for (i, ((le, got), want)) in buckets.iter().zip(cumulative).enumerate() {
            if i == 10 {
                assert_eq!(*le, f64::INFINITY);
            } else {
                let bound = 1e-8 * 10f64.powi(i as i32);
                assert!(
                    (le - bound).abs() <= bound * 1e-9,
                    "{name} bucket {i}: le {le}"
                );
            }
            assert_eq!(*got, want as f64, "{name} bucket le={le}");
        }
    }
}

fn demo() -> (Registry, FakeClock, WorkQueue<String>) {
    let mut registry = Registry::default();
    let provider = PrometheusMetrics::new(&mut registry);
    let clock = FakeClock::new();
    let queue = WorkQueue::<String>::builder()
        .name("demo")
        .metrics(Arc::new(provider))
        .clock(clock.clone())
        .build();
    (registry, clock, queue)
}

fn scrape(registry: &Registry) -> Exposition {
    let parsed = parse(&encode_text(registry));
    assert!(parsed.eof, "the exposition ends with # EOF");
    parsed
}

const D: &str = "workqueue_depth";
const ADDS_TOTAL: &str = "workqueue_adds_total";
const RETRIES_TOTAL: &str = "workqueue_retries_total";
const QD: &str = "workqueue_queue_duration_seconds";
const WD: &str = "workqueue_work_duration_seconds";
const UW: &str = "workqueue_unfinished_work_seconds";
const LR: &str = "workqueue_longest_running_processor_seconds";

#[test]
fn a_scripted_sequence_is_exposed_with_exact_values() {
    let (registry, clock, q) = demo();
    q.add("a".into()).expect("running");
    q.add("b".into()).expect("running");
    q.add("a".into()).expect("running"); // collapsed: not counted
    let m = scrape(&registry);
    assert_eq!(
        (m.value(D, "demo"), m.value(ADDS_TOTAL, "demo")),
        (2.0, 2.0)
    );
    assert_eq!(m.value(RETRIES_TOTAL, "demo"), 0.0);
    m.assert_histogram(QD, "demo", 0, 0.0, [0; 11]);
    assert_eq!((m.value(UW, "demo"), m.value(LR, "demo")), (0.0, 0.0));

    clock.advance(Duration::from_millis(250)); // t = 0.25 s
    let a = q.get().expect("a");
    assert_eq!(*a, "a");
    clock.advance(Duration::from_secs(2)); // t = 2.25 s: one tick for the whole step
    let m = scrape(&registry);
    assert_eq!(m.value(UW, "demo"), 2.0, "a in flight since 0.25 s");
    assert_eq!(m.value(LR, "demo"), 2.0);
    assert!(a.done()); // worked 2 s
    let b = q.get().expect("b"); // waited 2.25 s
    assert_eq!(*b, "b");
    q.add_after("c".into(), Duration::from_secs(1))
        .expect("running"); // due at 3.25 s
    q.add_after("d".into(), Duration::ZERO).expect("running"); // added at once
    let d = q.get().expect("d"); // waited 0 s
    assert_eq!(*d, "d");
    let m = scrape(&registry);
    assert_eq!(m.value(D, "demo"), 0.0);
    assert_eq!(m.value(ADDS_TOTAL, "demo"), 3.0, "a, b and d; c is not due");
    assert_eq!(m.value(RETRIES_TOTAL, "demo"), 2.0);
    // Waits 0.25, 2.25 and 0: cumulative per le 1e-8 … 10, +Inf.
    m.assert_histogram(QD, "demo", 3, 2.5, [1, 1, 1, 1, 1, 1, 1, 1, 2, 3, 3]);
    m.assert_histogram(WD, "demo", 1, 2.0, [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1]);

    // The ticker re-armed at 2.25 s fires at 2.75 s: b and d in flight 0.5 s each.
    clock.advance(Duration::from_millis(500));
    let m = scrape(&registry);
    assert_eq!(m.value(UW, "demo"), 1.0);
    assert_eq!(m.value(LR, "demo"), 0.5);

    assert!(b.done()); // worked 0.5 s
    clock.advance(Duration::from_millis(250)); // t = 3.0 s
    assert!(d.done()); // worked 0.75 s
    let m = scrape(&registry);
    m.assert_histogram(WD, "demo", 3, 3.25, [0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 3]);
    assert_eq!(m.value(UW, "demo"), 1.0, "gauges only move on a tick");

    // t = 3.25 s: a tick with nothing in flight, and c is due.
    clock.advance(Duration::from_millis(250));
    let m = scrape(&registry);
    assert_eq!((m.value(UW, "demo"), m.value(LR, "demo")), (0.0, 0.0));
    assert_eq!(
        (m.value(D, "demo"), m.value(ADDS_TOTAL, "demo")),
        (1.0, 4.0)
    );
    assert_eq!(m.value(RETRIES_TOTAL, "demo"), 2.0);
    q.shut_down();
    let _ = q.add_after("e".into(), Duration::from_secs(1));
    assert_eq!(
        scrape(&registry).value(RETRIES_TOTAL, "demo"),
        2.0,
        "refused: not counted"
    );
}

#[test]
fn help_and_type_lines_carry_client_go_names_and_texts() {
    let (registry, _clock, _q) = demo();
    let m = scrape(&registry);
    // OpenMetrics names a counter family without `_total`; its samples carry it.
    let expected = [
        ("workqueue_depth", "gauge", "Current depth of workqueue"),
        (
            "workqueue_adds",
            "counter",
            "Total number of adds handled by workqueue",
        ),
        (
            "workqueue_queue_duration_seconds",
            "histogram",
            "How long in seconds an item stays in workqueue before being requested.",
        ),
        (
            "workqueue_work_duration_seconds",
            "histogram",
            "How long in seconds processing an item from workqueue takes.",
        ),
        (
            "workqueue_unfinished_work_seconds",
            "gauge",
            "How many seconds of work has done that is in progress and hasn't been observed by \
             work_duration. Large values indicate stuck threads. One can deduce the number of \
             stuck threads by observing the rate at which this increases.",
        ),
        (
            "workqueue_longest_running_processor_seconds",
            "gauge",
            "How many seconds has the longest running processor for workqueue been running.",
        ),
        (
            "workqueue_retries",
            "counter",
            "Total number of retries handled by workqueue",
        ),
    ];
    for (name, kind, help) in expected {
        assert_eq!(
            m.help.get(name).map(String::as_str),
            Some(help),
            "# HELP {name}"
        );
        assert_eq!(
            m.types.get(name).map(String::as_str),
            Some(kind),
            "# TYPE {name}"
        );
    }
    assert_eq!(
        (m.help.len(), m.types.len()),
        (7, 7),
        "nothing else: {:?}",
        m.types
    );
    let mut names: Vec<_> = m.samples.iter().map(|s| s.name.as_str()).collect();
    names.dedup();
    assert_eq!(
        names,
        [
            "workqueue_depth",
            "workqueue_adds_total",
            "workqueue_queue_duration_seconds_sum",
            "workqueue_queue_duration_seconds_count",
            "workqueue_queue_duration_seconds_bucket",
            "workqueue_work_duration_seconds_sum",
            "workqueue_work_duration_seconds_count",
            "workqueue_work_duration_seconds_bucket",
            "workqueue_unfinished_work_seconds",
            "workqueue_longest_running_processor_seconds",
            "workqueue_retries_total",
        ]
    );
}

#[test]
fn queues_are_told_apart_by_the_name_label() {
    let mut registry = Registry::default();
    let provider = Arc::new(PrometheusMetrics::new(&mut registry));
    assert!(
        parse(&encode_text(&registry)).samples.is_empty(),
        "no queue yet: no samples"
    );
    let pods: WorkQueue<u32> = WorkQueue::builder()
        .name("pods")
        .metrics(provider.clone())
        .clock(FakeClock::new())
        .build();
    let nodes: WorkQueue<u32> = WorkQueue::builder()
        .name("nodes")
        .metrics(provider)
        .clock(FakeClock::new())
        .build();
    pods.add(1).expect("running");
    nodes.add(1).expect("running");
    nodes.add(2).expect("running");
    nodes.add_rate_limited(3).expect("running");
    let m = scrape(&registry);
    assert_eq!(
        (m.value(D, "pods"), m.value(ADDS_TOTAL, "pods")),
        (1.0, 1.0)
    );
    assert_eq!(
        (m.value(D, "nodes"), m.value(ADDS_TOTAL, "nodes")),
        (2.0, 2.0)
    );
    assert_eq!(
        (
            m.value(RETRIES_TOTAL, "pods"),
            m.value(RETRIES_TOTAL, "nodes")
        ),
        (0.0, 1.0)
    );
}

#[test]
fn the_parser_reads_labels_values_and_escapes() {
    let m = parse(
        "# HELP x_total Some help.\n# TYPE x counter\nx_total{a=\"1\",b=\"q\\\"uote\"} 2.5\n\
         y 7\nz_bucket{le=\"+Inf\"} 3\n# EOF\n",
    );
    assert!(m.eof);
    assert_eq!(
        m.help.get("x_total").map(String::as_str),
        Some("Some help.")
    );
    assert_eq!(m.samples.len(), 3);
    assert_eq!(
        m.samples[0].labels.get("b").map(String::as_str),
        Some("q\"uote")
    );
    assert_eq!((m.samples[0].value, m.samples[1].value), (2.5, 7.0));
    assert_eq!(
        m.samples[2].labels.get("le").map(String::as_str),
        Some("+Inf")
    );
}

#[test]
fn with_the_controller_label_every_series_carries_it_as_controller_runtime_does() {
    let mut registry = Registry::default();
    let metrics = PrometheusMetrics::with_controller_label(&mut registry);
    let queue = crate::queue::WorkQueue::builder()
        .name("pods")
        .metrics(std::sync::Arc::new(metrics))
        .build();
    queue.add("default/web".to_string()).expect("running");
    let text = encode_text(&registry);
    assert!(
        text.contains("workqueue_adds_total{controller=\"pods\",name=\"pods\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("workqueue_depth{controller=\"pods\",name=\"pods\"} 1\n"),
        "{text}"
    );
    assert!(
        !text.contains("{name=\"pods\"}"),
        "no series without it: {text}"
    );
}
