//! Turning measurements into the results table (shared by the `report`
//! example and `requeue bench`).

use crate::{Engine, Measurement, Workload};
use std::fmt::Write as _;
use std::time::Duration;

/// The run with the median [`Measurement::ops_per_sec`] (the lower middle
/// one for an even count); `None` for no runs.
pub fn median(mut runs: Vec<Measurement>) -> Option<Measurement> {
    runs.sort_by(|a, b| a.ops_per_sec().total_cmp(&b.ops_per_sec()));
    let middle = runs.len().checked_sub(1)? / 2;
    Some(runs.swap_remove(middle))
}

/// `12.3 M`, `176 k`, `950`.
pub fn si(value: f64) -> String {
    match value {
        v if v >= 1e9 => format!("{:.2} G", v / 1e9),
        v if v >= 1e6 => format!("{:.2} M", v / 1e6),
        v if v >= 1e3 => format!("{:.1} k", v / 1e3),
        v => format!("{v:.0}"),
    }
}

/// `850 ns`, `12.3 us`, `4.56 ms`, `1.234 s`.
pub fn duration(d: Duration) -> String {
    let ns = d.as_nanos();
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => format!("{:.1} us", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.2} ms", ns as f64 / 1e6),
        _ => format!("{:.3} s", d.as_secs_f64()),
    }
}

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or_else(
        || "-".into(),
        |b| format!("{:.0} MiB", b as f64 / (1024.0 * 1024.0)),
    )
}

/// A Markdown table of `results`, one row per measurement: rate, ratio to
/// the floor and to client-go, lateness, CPU, memory and whether the
/// target is met. Floor rows are matched to their workload's requeue row.
pub fn table(results: &[Measurement]) -> String {
    let mut out = String::new();
    out.push_str(
        "| workload | engine | rate | requeue / floor | x client-go | p50 | p99 | max | wall | CPU | RSS | peak RSS | target met |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for m in results {
        let Some(workload) = Workload::parse(m.workload) else {
            continue;
        };
        let requeue = m.engine != Engine::Channel.name();
        let floor = results
            .iter()
            .find(|f| f.workload == m.workload && f.engine == Engine::Channel.name());
        let ratio = match floor {
            Some(f) if requeue => format!("{:.3}", m.ratio_to(f)),
            _ => "-".into(),
        };
        let vs_go = match workload.client_go_rate() {
            Some(go) if requeue => format!("{:.2}", m.ops_per_sec() / go),
            _ => "-".into(),
        };
        let unit = if requeue { workload.unit() } else { "items/s" };
        let rate = if requeue {
            m.ops_per_sec()
        } else {
            m.items_per_sec()
        };
        let lat = |f: fn(&crate::LatencySummary) -> Duration| {
            m.latency
                .as_ref()
                .map_or_else(|| "-".into(), |l| duration(f(l)))
        };
        let met = match (requeue, workload.target().met_by(m)) {
            (true, Some(true)) => "yes",
            (true, Some(false)) => "NO",
            _ => "-",
        };
        let _ = writeln!(
            out,
            "| {} {} | {} | {} {unit} | {ratio} | {vs_go} | {} | {} | {} | {} | {} | {} | {} | {met} |",
            workload.id(),
            workload.name(),
            m.engine,
            si(rate),
            lat(|l| l.p50),
            lat(|l| l.p99),
            lat(|l| l.max),
            duration(m.wall),
            m.cpu.map_or_else(|| "-".into(), duration),
            mib(m.rss_bytes),
            mib(m.peak_rss_bytes),
        );
    }
    out
}

/// A Markdown table of every workload's definition, client-go figure and target.
pub fn references() -> String {
    let mut out = String::from(
        "| id | name | definition | client-go | requeue target |\n|---|---|---|---|---|\n",
    );
    for w in Workload::ALL {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            w.id(),
            w.name(),
            w.definition(),
            w.client_go(),
            w.target_text()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_pairs_requeue_with_its_floor() {
        let requeue = Measurement::new("W1", "requeue", 3_000, 1_000, Duration::from_millis(1));
        let floor = Measurement::new(
            "W1",
            "crossbeam-channel",
            2_000,
            1_000,
            Duration::from_micros(250),
        );
        let t = table(&[requeue, floor]);
        assert!(
            t.contains("| W1 fifo-single | requeue | 3.00 M ops/s | 0.250 | 0.84 |"),
            "{t}"
        );
        assert!(
            t.contains("| W1 fifo-single | crossbeam-channel | 4.00 M items/s | - | - |"),
            "{t}"
        );
        assert_eq!(references().lines().count(), 10);
    }

    #[test]
    fn median_picks_the_middle_rate() {
        let run = |ms| Measurement::new("W2", "requeue", 100, 10, Duration::from_millis(ms));
        let m = median(vec![run(5), run(1), run(3)]).expect("runs");
        assert_eq!(m.wall, Duration::from_millis(3));
        assert_eq!(median(Vec::new()), None);
        assert_eq!(duration(Duration::from_micros(1500)), "1.50 ms");
        assert_eq!(si(176_000.0), "176.0 k");
    }
}
