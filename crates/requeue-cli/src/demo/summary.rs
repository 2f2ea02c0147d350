//! The end of the demo: what the run did, the events the correlator made
//! of its errors, the invariants, and one machine-readable line.

use super::events::{EVENTS_KEPT, Events};
use super::fleet::Fleet;
use super::sample::{Sample, percent, thousands};
use requeue::controller::Summary;
use requeue::events::Event;
use std::collections::HashMap;
use std::time::Duration;

/// Aggregated events listed.
const TOP_EVENTS: usize = 8;
/// Of those, at most this many with the same message (but for the object).
const PER_KIND: usize = 3;

/// What the final report is made of.
pub struct Report<'a> {
    pub summary: &'a Summary,
    /// The last sample, taken after the controller stopped.
    pub sample: &'a Sample,
    /// Handler calls counted by the reconciler itself.
    pub attempted: u64,
    /// Keys never reconciled that were still queued at the stop (not lost:
    /// the next run's resync lists them again).
    pub unreconciled_but_queued: usize,
    /// Why the run ended.
    pub stopped_by: &'a str,
    pub events: &'a Events,
    pub fleet: &'a Fleet,
    /// Worker processes started (0: the workers ran in this process).
    pub processes: usize,
    /// One line per worker process that did not drain and report cleanly.
    pub problems: &'a [String],
    /// How the run ended, after "stopped by …" in the headline: that the
    /// workers drained their keys, or what went wrong.
    pub ending: &'a str,
    /// More checks under "invariants": the run's health (stalls, Redis,
    /// the queue's state, keys left leased).
    pub checks: &'a [Check],
    /// Said under the figures (e.g. that Redis' are as last read).
    pub notes: &'a [String],
    /// The run time when the stop fired (the sample's is taken after the
    /// workers stopped).
    pub stopped_at: Duration,
}

/// One more line under "invariants".
#[derive(Debug, Clone)]
pub struct Check {
    /// What holds, e.g. "processing never stalled".
    pub label: String,
    /// What was seen.
    pub seen: String,
    pub ok: bool,
}

impl Check {
    pub fn new(label: &str, seen: impl Into<String>, ok: bool) -> Self {
        Check {
            label: label.to_string(),
            seen: seen.into(),
            ok,
        }
    }
}

impl Report<'_> {
    /// Whether processed == succeeded + failed == attempted.
    pub fn counts_add_up(&self) -> bool {
        let s = self.summary;
        s.processed() == s.succeeded + s.failed && s.processed() == self.attempted
    }

    /// Whether every key of the fleet was reconciled at least once, or
    /// (after an early ctrl-c) is still waiting in the queue.
    pub fn no_key_lost(&self) -> bool {
        self.sample.reconciled + self.unreconciled_but_queued == self.sample.objects
    }

    /// Whether every worker process drained and reported.
    pub fn no_worker_lost(&self) -> bool {
        self.problems.is_empty()
    }

    /// Prints the report.
    pub fn print(&self) {
        let (s, x) = (self.summary, self.sample);
        let seconds = x.elapsed.as_secs_f64().max(1e-9);
        let row = |label: &str, value: u64, note: String| {
            println!("  {label:<22} {:>12}   {note}", thousands(value));
        };
        println!();
        // Stopping takes milliseconds; when it took longer (a frozen
        // Redis), say so rather than fold it into the run time.
        let stopping = x.elapsed.saturating_sub(self.stopped_at);
        let ran = if stopping >= Duration::from_millis(500) {
            format!(
                "ran {:.1} s (and {:.1} s to stop)",
                self.stopped_at.as_secs_f64(),
                stopping.as_secs_f64()
            )
        } else {
            format!("ran {:.1} s", x.elapsed.as_secs_f64())
        };
        println!(
            "summary: {ran}, stopped by {}; {}",
            self.stopped_by, self.ending
        );
        row("attempted", self.attempted, "handler calls".into());
        row(
            "succeeded",
            s.succeeded,
            format!("{:.1}%", percent(s.succeeded, s.processed())),
        );
        row(
            "failed",
            s.failed,
            format!(
                "{:.1}%, each retried with its key's backoff",
                percent(s.failed, s.processed())
            ),
        );
        row(
            "  of which panicked",
            s.panicked,
            "contained: the worker lived on, the key was retried".into(),
        );
        row(
            "requeued",
            s.requeued,
            format!(
                "retries + {} requeue-after; {} refused at shutdown",
                thousands(x.requeued_after),
                s.requeues_refused
            ),
        );
        row(
            "processed/s",
            (s.processed() as f64 / seconds) as u64,
            "average over the run".into(),
        );
        row(
            "adds (update stream)",
            x.adds,
            format!("rollouts: {}", x.rollouts),
        );
        row(
            "  deduplicated",
            x.merged,
            format!(
                "{:.1}% collapsed into a pending add: reconciles saved",
                x.dedup_percent()
            ),
        );
        row(
            "resync rounds",
            x.resyncs,
            format!("{} keys each", thousands(x.objects as u64)),
        );
        row(
            "keys reconciled",
            x.reconciled as u64,
            format!(
                "of {} (never reconciled: {})",
                thousands(x.objects as u64),
                x.objects - x.reconciled.min(x.objects)
            ),
        );
        row(
            "left queued",
            s.left_queued as u64,
            "still in the queue at stop".into(),
        );
        row(
            "withdrawn",
            s.withdrawn as u64,
            "delayed keys handed back by the shutdown".into(),
        );
        if let Some(r) = &x.redis {
            row(
                "leases lost",
                r.leases_lost,
                "settled after their lease ran out".into(),
            );
            row(
                "leases reaped",
                r.leases_reaped,
                format!(
                    "expired leases, their keys handed out again ({}'s count)",
                    r.server
                ),
            );
            row(
                if r.server == "Redis" {
                    "retries (Redis)"
                } else {
                    "retries (PostgreSQL)"
                },
                r.retries_total,
                format!("rate-limited re-adds, as {} counted them", r.server),
            );
            if self.processes > 0 {
                let each: Vec<String> = r.processes.iter().map(|p| thousands(p.0)).collect();
                row(
                    "worker processes",
                    self.processes as u64,
                    format!("reconciles each: {}", each.join(" + ")),
                );
            }
        }
        for note in self.notes {
            println!("  ({note})");
        }
        self.print_most_retried();
        self.print_events();
        self.print_invariants();
        let mut engine = String::new();
        if let Some(r) = &x.redis {
            engine = format!(
                " leases_lost={} leases_reaped={} retries_total={} procs={}",
                r.leases_lost,
                r.leases_reaped,
                r.retries_total,
                self.processes.max(1)
            );
        }
        println!(
            "summary: attempted={} processed={} succeeded={} failed={} panicked={} requeued={} keys_reconciled={}/{} left_queued={} withdrawn={} events_recorded={} events_stored={}{engine}",
            self.attempted,
            s.processed(),
            s.succeeded,
            s.failed,
            s.panicked,
            s.requeued,
            x.reconciled,
            x.objects,
            s.left_queued,
            s.withdrawn,
            x.events.recorded,
            x.events.created,
        );
    }

    fn print_most_retried(&self) {
        println!();
        println!("most retried keys (failures over the run; a success clears the backoff)");
        for (key, failures, _) in &self.sample.top {
            println!("  {key:<22} {failures:>12}");
        }
    }

    fn print_events(&self) {
        let e = &self.sample.events;
        let mut top = self.events.stored_events();
        let total = top.len();
        let errors = |e: &Event| {
            let o = &e.involved_object;
            self.fleet.failures(&format!("{}/{}", o.namespace, o.name))
        };
        // Highest count first; among equal counts, the noisiest object.
        top.sort_by_cached_key(|e| {
            (
                std::cmp::Reverse((e.count, errors(e))),
                e.metadata.name.clone(),
            )
        });
        // At most a few of each kind of message, so every kind of error shows.
        let mut per_kind: HashMap<String, usize> = HashMap::new();
        top.retain(|e| {
            let o = &e.involved_object;
            let kind = e.message.replace(&o.name, "").replace(&o.namespace, "");
            let seen = per_kind.entry(kind).or_default();
            *seen += 1;
            *seen <= PER_KIND
        });
        let more = total - top.len().min(TOP_EVENTS);
        top.truncate(TOP_EVENTS);
        println!();
        println!(
            "aggregated events: {} Warning events recorded became {} events in the sink",
            thousands(e.recorded),
            thousands(e.created.max(total as u64))
        );
        if (total as u64) < e.created {
            println!(
                "  (the sink keeps the last {}; the list below is drawn from those)",
                thousands(EVENTS_KEPT as u64)
            );
        }
        println!(
            "  (correlator: {} repeats counted into an existing event, {} skipped by the spam filter, {} dropped)",
            thousands(e.patched),
            thousands(e.filtered()),
            thousands(e.dropped)
        );
        println!(
            "  count: the occurrences one event records (repeats are patched into it, up to the"
        );
        println!(
            "  spam filter's 25 per object, then 1 per 5 min); errors: the object's failed reconciles"
        );
        println!(
            "  {:>5} {:>7}  {:<15} {:<14} message",
            "count", "errors", "reason", "object"
        );
        for event in top {
            let o = &event.involved_object;
            let mut message = event.message.clone();
            if message.chars().count() > 58 {
                message = message.chars().take(57).collect::<String>() + "…";
            }
            let object = format!("{}/{}", o.namespace, o.name);
            println!(
                "  {:>5} {:>7}  {:<15} {:<14} {}",
                event.count,
                errors(&event),
                event.reason,
                object,
                message
            );
        }
        if more > 0 {
            println!("  … and {} more", thousands(more as u64));
        }
    }

    fn print_invariants(&self) {
        let (s, x) = (self.summary, self.sample);
        let mark = |ok: bool| if ok { "ok" } else { "VIOLATED" };
        println!();
        if !self.problems.is_empty() {
            println!("worker processes");
            for problem in self.problems {
                println!("  {problem}");
            }
            println!();
        }
        println!("invariants");
        println!(
            "  processed == succeeded + failed == attempted:  {} == {} + {} == {}  {}",
            s.processed(),
            s.succeeded,
            s.failed,
            self.attempted,
            mark(self.counts_add_up())
        );
        if self.unreconciled_but_queued == 0 {
            println!(
                "  every key reconciled at least once:            {}/{}  {}",
                x.reconciled,
                x.objects,
                mark(self.no_key_lost())
            );
        } else {
            println!(
                "  every key reconciled or still queued:          {} + {} of {}  {}",
                x.reconciled,
                self.unreconciled_but_queued,
                x.objects,
                mark(self.no_key_lost())
            );
        }
        if self.processes > 0 {
            println!(
                "  every worker process drained and reported:     {}/{}  {}",
                self.processes - self.problems.len(),
                self.processes,
                mark(self.no_worker_lost())
            );
        }
        for check in self.checks {
            println!(
                "  {:<46} {}  {}",
                format!("{}:", check.label),
                check.seen,
                mark(check.ok)
            );
        }
    }
}
