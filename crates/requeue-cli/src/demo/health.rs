//! What went wrong while the demo ran, told when it happens and counted
//! for the summary: Redis unreachable (once per outage, and when it is
//! back), the queue's state corrupt (once per distinct error, naming the
//! key and field), and processing stalled (keys waiting or in flight, yet
//! no reconcile completed for [`STALL_WINDOW`]; and when it resumes).
//!
//! Anything may report (the poller, the queue wrapper, the worker
//! processes' readers); the lines wait in a short queue until the view's
//! loop prints them on stderr, so they never tear the live block.

use super::sample::Sample;
use requeue::engine::QueueError;
use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Keys waiting or in flight with no reconcile completed for this long is a stall.
pub const STALL_WINDOW: Duration = Duration::from_secs(5);
/// Lines waiting to be printed; past this the oldest are dropped (counted).
/// The view's loop empties the queue several times a second.
const NOTICES_KEPT: usize = 64;
/// Distinct messages remembered so that each is told once; past this the
/// oldest is forgotten (and might be told again).
const TOLD_KEPT: usize = 32;

/// The run's health, shared by whoever reports.
#[derive(Debug)]
pub struct Health {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Run time 0 (see [`Health::begin`]).
    start: Instant,
    notices: VecDeque<String>,
    notices_dropped: u64,
    told: VecDeque<String>,
    /// Since when Redis has been unreachable, and the first error.
    down: Option<Instant>,
    outages: u32,
    outage_time: Duration,
    /// Connections cut and made anew at once (no outage).
    cuts: u32,
    /// The first corruption reported (for the summary).
    corrupt: Option<String>,
    /// The last completed count, and when it last changed.
    progress: Option<(u64, Instant)>,
    stalled: Option<Instant>,
    stalls: u32,
}

/// What the summary and the exit code are made of.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verdict {
    /// Stalls seen (recovered or not).
    pub stalls: u32,
    /// Still stalled at the stop: since when (run time).
    pub stalled_since: Option<Duration>,
    /// Outages that ended.
    pub outages: u32,
    /// Their total length.
    pub outage_time: Duration,
    /// Still unreachable: since when (run time).
    pub down_since: Option<Duration>,
    /// Connections cut and made anew at once.
    pub cuts: u32,
    /// The first corruption reported.
    pub corrupt: Option<String>,
}

impl Health {
    /// Nothing wrong yet; times are told relative to now until [`begin`](Health::begin).
    pub fn new() -> Self {
        Health {
            state: Mutex::new(State {
                start: Instant::now(),
                notices: VecDeque::new(),
                notices_dropped: 0,
                told: VecDeque::new(),
                down: None,
                outages: 0,
                outage_time: Duration::ZERO,
                cuts: 0,
                corrupt: None,
                progress: None,
                stalled: None,
                stalls: 0,
            }),
        }
    }

    /// Sets run time 0: the samples' `elapsed` counts from `start`.
    pub fn begin(&self, start: Instant) {
        self.lock().start = start;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An error a queue call returned. Corruption is told (once per
    /// distinct error) and fails the run; a key that cannot be decoded is
    /// told once; connection errors are the poller's to tell (it sees
    /// every outage, and when it ends); the rest are expected (a lost
    /// lease, the shutdown).
    pub fn queue_error(&self, error: &QueueError) {
        match error {
            QueueError::Corrupt { .. } => self.corrupt(&error.to_string(), None),
            QueueError::Decode { .. } => self.warn_once(format!("warning: {error}")),
            _ => {}
        }
    }

    /// The queue's state is corrupt: `text` names the key (and field);
    /// `who` says who saw it, if not this process.
    pub fn corrupt(&self, text: &str, who: Option<&str>) {
        let mut state = self.lock();
        state.corrupt.get_or_insert_with(|| text.to_string());
        let by = who.map_or_else(String::new, |w| format!(" (seen by {w})"));
        let line = format!(
            "error: {text}{by}; the workers pause and retry, but nothing moves until it is repaired"
        );
        Self::tell_once(&mut state, text, line);
    }

    /// Tells `line` unless it was told already.
    pub fn warn_once(&self, line: String) {
        let mut state = self.lock();
        let key = line.clone();
        Self::tell_once(&mut state, &key, line);
    }

    fn tell_once(state: &mut State, key: &str, line: String) {
        if state.told.iter().any(|t| t == key) {
            return;
        }
        if state.told.len() == TOLD_KEPT {
            state.told.pop_front();
        }
        state.told.push_back(key.to_string());
        Self::push(state, line);
    }

    fn push(state: &mut State, line: String) {
        if state.notices.len() == NOTICES_KEPT {
            state.notices.pop_front();
            state.notices_dropped += 1;
        }
        state.notices.push_back(line);
    }

    /// A call of this process to Redis, made at `since`, failed for want
    /// of Redis (refused, dropped, timed out): the first of an outage is
    /// told, dated from that call (a timeout is told only when it ends).
    pub fn redis_failed(&self, error: &str, since: Instant) {
        let mut state = self.lock();
        if state.down.is_none() {
            let now = since.max(state.start);
            state.down = Some(now);
            let line = format!(
                "warning: Redis unreachable at {} ({error}); retrying, the run goes on",
                state.at(now)
            );
            Self::push(&mut state, line);
        }
    }

    /// This process's connection to Redis was cut (`CLIENT KILL`, a
    /// restarted server) and made anew at once: told once, counted.
    pub fn connection_cut(&self) {
        let now = Instant::now();
        let mut state = self.lock();
        state.cuts += 1;
        if state.cuts == 1 {
            let line = format!(
                "note: the connection to Redis was cut at {} and made anew",
                state.at(now)
            );
            Self::push(&mut state, line);
        }
    }

    /// A call of this process to Redis succeeded: an outage, if any, ended.
    pub fn redis_ok(&self) {
        let now = Instant::now();
        let mut state = self.lock();
        if let Some(since) = state.down.take() {
            let lasted = now.duration_since(since);
            state.outages += 1;
            state.outage_time += lasted;
            let line = format!(
                "note: Redis reachable again at {}, after {:.1} s",
                state.at(now),
                lasted.as_secs_f64()
            );
            Self::push(&mut state, line);
        }
    }

    /// Watches `sample` for a stall: keys ready or in flight, and the
    /// completed count unchanged for [`STALL_WINDOW`].
    pub fn observe(&self, sample: &Sample) {
        let done = sample.counts.processed();
        let waiting = sample.queue.ready + sample.queue.processing;
        let mut state = self.lock();
        let now = state.start + sample.elapsed;
        let moved = match state.progress {
            Some((last, _)) => last != done,
            None => true,
        };
        if moved {
            state.progress = Some((done, now));
            if let Some(since) = state.stalled.take() {
                let line = format!(
                    "note: processing resumed at {}, after a {:.1} s stall",
                    state.at(now),
                    now.duration_since(since).as_secs_f64()
                );
                Self::push(&mut state, line);
            }
            return;
        }
        let Some((_, since)) = state.progress else {
            return;
        };
        if waiting == 0 || state.stalled.is_some() || now.duration_since(since) < STALL_WINDOW {
            return;
        }
        state.stalled = Some(since);
        state.stalls += 1;
        let line = format!(
            "warning: processing stalled at {}: {} keys ready and {} in flight, but no reconcile completed for {} s",
            state.at(since),
            sample.queue.ready,
            sample.queue.processing,
            STALL_WINDOW.as_secs()
        );
        Self::push(&mut state, line);
    }

    /// The lines to print now (oldest first).
    pub fn take_notices(&self) -> Vec<String> {
        let mut state = self.lock();
        let mut lines: Vec<String> = state.notices.drain(..).collect();
        let dropped = std::mem::take(&mut state.notices_dropped);
        if dropped > 0 {
            lines.insert(0, format!("({dropped} earlier messages were dropped)"));
        }
        lines
    }

    /// What happened, as of now.
    pub fn verdict(&self) -> Verdict {
        let now = Instant::now();
        let state = self.lock();
        let since = |t: Instant| t.duration_since(state.start);
        Verdict {
            stalls: state.stalls,
            stalled_since: state.stalled.map(since),
            outages: state.outages,
            outage_time: state.outage_time
                + state.down.map_or(Duration::ZERO, |t| now.duration_since(t)),
            down_since: state.down.map(since),
            cuts: state.cuts,
            corrupt: state.corrupt.clone(),
        }
    }
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl State {
    fn at(&self, when: Instant) -> String {
        format!("t={:.1}s", when.duration_since(self.start).as_secs_f64())
    }
}

impl Verdict {
    /// Why the run counts as unhealthy (exit code 3), if it does: one
    /// phrase per cause.
    pub fn problems(&self) -> Vec<String> {
        let mut why = Vec::new();
        if let Some(text) = &self.corrupt {
            why.push(text.clone());
        }
        if let Some(since) = self.down_since {
            why.push(format!(
                "Redis unreachable since t={:.1}s",
                since.as_secs_f64()
            ));
        }
        if let Some(since) = self.stalled_since {
            why.push(format!(
                "processing stalled at t={:.1}s and did not recover",
                since.as_secs_f64()
            ));
        }
        why
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use requeue::controller::Counts;
    use requeue::queue::QueueSnapshot;

    fn sample(at_ms: u64, processed: u64, ready: usize) -> Sample {
        Sample {
            elapsed: Duration::from_millis(at_ms),
            counts: Counts {
                succeeded: processed,
                ..Counts::default()
            },
            queue: QueueSnapshot {
                ready,
                processing: 0,
                added_while_processing: 0,
                delayed: 0,
                waiting_gets: 0,
                shutting_down: false,
            },
            adds: 0,
            merged: 0,
            rollouts: 0,
            requeued_after: 0,
            resyncs: 0,
            reconciled: 0,
            objects: 0,
            rate_now: 0.0,
            rate_avg: 0.0,
            events: Default::default(),
            last_panic: None,
            top: Vec::new(),
            redis: None,
        }
    }

    #[test]
    fn a_stall_is_told_once_and_so_is_the_recovery() {
        let health = Health::new();
        health.observe(&sample(0, 10, 5));
        health.observe(&sample(4_000, 10, 5));
        assert!(health.take_notices().is_empty(), "not yet 5 s");
        health.observe(&sample(5_000, 10, 5));
        health.observe(&sample(6_000, 10, 5));
        let told = health.take_notices();
        assert_eq!(told.len(), 1, "{told:?}");
        assert!(told[0].contains("processing stalled at t=0.0s: 5 keys ready"));
        assert_eq!(
            health.verdict().problems(),
            ["processing stalled at t=0.0s and did not recover"]
        );
        health.observe(&sample(7_000, 11, 5));
        let told = health.take_notices();
        assert!(
            told[0].contains("resumed at t=7.0s, after a 7.0 s stall"),
            "{told:?}"
        );
        let verdict = health.verdict();
        assert_eq!((verdict.stalls, verdict.problems().len()), (1, 0));
    }

    #[test]
    fn an_idle_queue_is_not_a_stall() {
        let health = Health::new();
        health.observe(&sample(0, 10, 0));
        health.observe(&sample(60_000, 10, 0));
        assert!(health.take_notices().is_empty());
        assert_eq!(health.verdict(), Verdict::default());
    }

    #[test]
    fn an_outage_is_told_once_and_its_end_too() {
        let health = Health::new();
        health.redis_failed("timed out", Instant::now());
        health.redis_failed("connection refused", Instant::now());
        assert!(health.verdict().down_since.is_some());
        assert_eq!(health.verdict().problems().len(), 1);
        health.redis_ok();
        health.redis_ok();
        let told = health.take_notices();
        assert_eq!(told.len(), 2, "{told:?}");
        assert!(told[0].contains("Redis unreachable") && told[0].contains("timed out"));
        assert!(told[1].contains("Redis reachable again"));
        assert_eq!(health.verdict().outages, 1);
        assert!(health.verdict().problems().is_empty());
    }

    #[test]
    fn corruption_is_told_once_by_name_and_fails_the_run() {
        let health = Health::new();
        let error = QueueError::Corrupt {
            key: "rq:{q}:owners".into(),
            field: None,
            problem: "is a string where a hash belongs".into(),
        };
        for _ in 0..3 {
            health.queue_error(&error);
        }
        health.queue_error(&QueueError::LeaseLost);
        let told = health.take_notices();
        assert_eq!(told.len(), 1, "{told:?}");
        assert!(told[0].starts_with("error: queue state is corrupt: rq:{q}:owners is a string"));
        assert_eq!(health.verdict().problems().len(), 1);
    }

    #[test]
    fn the_notice_queue_is_bounded() {
        let health = Health::new();
        for i in 0..(NOTICES_KEPT + 10) {
            health.warn_once(format!("warning: {i}"));
        }
        let told = health.take_notices();
        assert_eq!(told.len(), NOTICES_KEPT + 1);
        assert_eq!(told[0], "(10 earlier messages were dropped)");
    }
}
