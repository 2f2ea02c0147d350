//! What the demo shows while it runs: a live block redrawn in place when
//! stdout is a terminal, otherwise one plain line per second.

use super::sample::{Sample, TOP, thousands};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::Duration;

/// The view while the demo runs.
pub enum View {
    /// Redrawn in place (~4 times a second).
    Live(Box<Live>),
    /// One line per whole second of run time.
    Plain { next_second: u64 },
}

impl View {
    /// A live view with `header` on top, or a plain one that prints it once.
    pub fn new(live: bool, header: &str, duration: Duration) -> Self {
        if live {
            View::Live(Box::new(Live::new(header, duration)))
        } else {
            println!("{header}");
            View::Plain { next_second: 1 }
        }
    }

    /// How often the demo should sample.
    pub fn period(&self) -> Duration {
        match self {
            View::Live(_) => Duration::from_millis(250),
            View::Plain { .. } => Duration::from_millis(100),
        }
    }

    /// Shows `sample`.
    pub fn show(&mut self, sample: &Sample) {
        match self {
            View::Live(live) => live.show(sample),
            View::Plain { next_second } => {
                if sample.elapsed.as_secs() >= *next_second {
                    *next_second = sample.elapsed.as_secs() + 1;
                    println!("{}", plain_line(sample));
                }
            }
        }
    }

    /// Prints `line` on stderr: above the live block (which is redrawn
    /// below it), or between the plain lines.
    pub fn notice(&self, line: &str) {
        match self {
            View::Live(live) => live.multi.suspend(|| eprintln!("{line}")),
            View::Plain { .. } => eprintln!("{line}"),
        }
    }

    /// Removes the live block (the summary follows).
    pub fn finish(self) {
        if let View::Live(live) = self {
            live.title.finish_and_clear();
            live.bar.finish_and_clear();
            for line in &live.lines {
                line.finish_and_clear();
            }
            let _ = live.multi.clear();
        }
    }
}

/// The plain progress line, e.g.
/// `t=3s processed=12345 rate=4100/s depth=12 in_flight=4 delayed=37 retries=210 dedup=41% panics=3 keys_reconciled=500/500`,
/// on Redis followed by `leases_lost=0 leases_reaped=0`, and `procs=3/3`
/// (running/started) with worker processes.
pub fn plain_line(s: &Sample) -> String {
    let mut line = format!(
        "t={}s processed={} rate={:.0}/s depth={} in_flight={} delayed={} retries={} dedup={:.0}% panics={} keys_reconciled={}/{}",
        s.elapsed.as_secs(),
        s.counts.processed(),
        s.rate_now,
        s.queue.ready,
        s.queue.processing,
        s.queue.delayed,
        s.counts.failed,
        s.dedup_percent(),
        s.counts.panicked,
        s.reconciled,
        s.objects,
    );
    if let Some(r) = &s.redis {
        line += &format!(
            " leases_lost={} leases_reaped={}",
            r.leases_lost, r.leases_reaped
        );
        if !r.processes.is_empty() {
            let running = r.processes.iter().filter(|p| p.1).count();
            line += &format!(" procs={running}/{}", r.processes.len());
        }
    }
    line
}

/// The live block: a header, a progress bar and a fixed number of lines.
pub struct Live {
    multi: MultiProgress,
    text: ProgressStyle,
    title: ProgressBar,
    bar: ProgressBar,
    lines: Vec<ProgressBar>,
    duration: Duration,
}

impl Live {
    fn new(header: &str, duration: Duration) -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout_with_hz(8));
        // `wide_msg` cuts a line at the terminal's width, so nothing wraps.
        let text = ProgressStyle::with_template("{wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        let title = multi.add(ProgressBar::new(1).with_style(text.clone()));
        title.set_message(header.to_string());
        let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        let bar = multi.add(ProgressBar::new(millis.max(1)));
        bar.set_style(
            ProgressStyle::with_template(" {bar:48.cyan/blue} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("█▓░"),
        );
        Live {
            multi,
            text,
            title,
            bar,
            lines: Vec::new(),
            duration,
        }
    }

    fn show(&mut self, s: &Sample) {
        self.bar
            .set_position(u64::try_from(s.elapsed.as_millis()).unwrap_or(u64::MAX));
        self.bar.set_message(format!(
            "{:>5.1}s / {}s   ctrl-c: drain & stop",
            s.elapsed.as_secs_f64(),
            self.duration.as_secs_f64()
        ));
        let texts = live_lines(s);
        // The first sample creates the lines; their number never changes.
        while self.lines.len() < texts.len() {
            let line = self
                .multi
                .add(ProgressBar::new(1).with_style(self.text.clone()));
            self.lines.push(line);
        }
        for (line, text) in self.lines.iter().zip(texts) {
            line.set_message(text);
        }
    }
}

/// The block's lines for `s`; always the same number of them.
fn live_lines(s: &Sample) -> Vec<String> {
    let (c, q, e) = (&s.counts, &s.queue, &s.events);
    let n = thousands;
    let last_panic = s.last_panic.as_deref().unwrap_or("none yet");
    let mut lines = vec![
        " ".to_string(),
        format!(
            " processed  {:>9}   now {}/s   average {}/s",
            n(c.processed()),
            n(s.rate_now as u64),
            n(s.rate_avg as u64)
        ),
        format!(
            " depth      {:>9}   ready; {} in flight, {} delayed (in backoff or RequeueAfter)",
            n(q.ready as u64),
            q.processing,
            n(q.delayed as u64)
        ),
        format!(
            " retries    {:>9}   failed reconciles, each back after its key's backoff (5 ms, doubling)",
            n(c.failed)
        ),
        format!(
            " requeue    {:>9}   reconciles that asked to look again in 1-5 s (RequeueAfter)",
            n(s.requeued_after)
        ),
        format!(
            " dedup      {:>9}   of {} adds collapsed into a pending one ({:.1}%); rollouts: {}",
            n(s.merged),
            n(s.adds),
            s.dedup_percent(),
            s.rollouts
        ),
        format!(
            " panics     {:>9}   contained; last: {last_panic}",
            n(c.panicked)
        ),
        format!(
            " resync     {:>9}   {} of all {} keys; keys reconciled: {}/{}",
            s.resyncs,
            if s.resyncs == 1 { "round" } else { "rounds" },
            n(s.objects as u64),
            n(s.reconciled as u64),
            n(s.objects as u64)
        ),
        format!(
            " events     {:>9}   Warnings → {} events ({} repeats counted, {} spam-filtered)",
            n(e.recorded),
            n(e.created),
            n(e.patched),
            n(e.filtered())
        ),
    ];
    if let Some(r) = &s.redis {
        lines.push(format!(
            " leases     {:>9}   lost (settled after the lease ran out); {} expired and reaped",
            n(r.leases_lost),
            n(r.leases_reaped)
        ));
        if !r.processes.is_empty() {
            let each: Vec<String> = r
                .processes
                .iter()
                .map(|&(calls, running)| {
                    if running {
                        n(calls)
                    } else {
                        format!("{} (gone)", n(calls))
                    }
                })
                .collect();
            lines.push(format!(
                " processes  {:>9}   reconciles each: {}",
                r.processes.len(),
                each.join(" · ")
            ));
        }
    }
    lines.push(" ".to_string());
    lines.push(format!(
        " {:<31} {:>8} {:>14}",
        "most retried keys", "retries", "num_requeues"
    ));
    for i in 0..TOP {
        lines.push(match s.top.get(i) {
            Some((key, failures, now)) => format!("   {key:<29} {failures:>8} {now:>14}"),
            None => " ".to_string(),
        });
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::super::sample::RedisNumbers;
    use super::*;
    use requeue::queue::QueueSnapshot;

    fn sample(top: usize) -> Sample {
        Sample {
            elapsed: Duration::from_millis(3_400),
            counts: Default::default(),
            queue: QueueSnapshot {
                ready: 12,
                processing: 4,
                added_while_processing: 0,
                delayed: 37,
                waiting_gets: 0,
                shutting_down: false,
            },
            adds: 100,
            merged: 41,
            rollouts: 1,
            requeued_after: 2,
            resyncs: 1,
            reconciled: 500,
            objects: 500,
            rate_now: 4_100.4,
            rate_avg: 4_000.0,
            events: Default::default(),
            last_panic: None,
            top: (0..top as u32)
                .map(|i| (format!("ns-0/obj-{i}"), 9 - i, 1))
                .collect(),
            redis: None,
        }
    }

    #[test]
    fn the_live_block_keeps_its_height() {
        assert_eq!(live_lines(&sample(0)).len(), live_lines(&sample(TOP)).len());
    }

    #[test]
    fn on_redis_the_block_and_the_line_say_more() {
        let mut s = sample(TOP);
        s.redis = Some(RedisNumbers {
            server: "Redis",
            leases_lost: 1,
            leases_reaped: 2,
            retries_total: 3,
            processes: vec![(10, true), (20, false)],
        });
        assert_eq!(live_lines(&s).len(), live_lines(&sample(TOP)).len() + 2);
        assert!(live_lines(&s).iter().any(|l| l.contains("10 · 20 (gone)")));
        assert!(
            plain_line(&s)
                .ends_with("keys_reconciled=500/500 leases_lost=1 leases_reaped=2 procs=1/2"),
            "{}",
            plain_line(&s)
        );
    }

    #[test]
    fn the_plain_line_has_the_documented_fields() {
        assert_eq!(
            plain_line(&sample(0)),
            "t=3s processed=0 rate=4100/s depth=12 in_flight=4 delayed=37 retries=0 dedup=41% panics=0 keys_reconciled=500/500"
        );
    }
}
