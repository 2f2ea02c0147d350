//! Turning measurements into the results table (shared by the `report`
//! example and `requeue bench`).

use crate::{CLIENT_GO, Engine, Figure, GO_CHANNEL, LatencySummary, Measurement, Workload};
use std::fmt::Write as _;
use std::time::Duration;

/// The median of `runs`, figure by figure: ops, items and wall come from
/// the run with the median [`Measurement::ops_per_sec`] (the lower middle
/// one for an even count), CPU, lateness (p50, p99 and max each) and
/// memory are the medians of those figures over the runs that have them.
/// `None` for no runs.
pub fn median(mut runs: Vec<Measurement>) -> Option<Measurement> {
    fn middle<T: Ord + Copy>(values: impl Iterator<Item = T>) -> Option<T> {
        let mut values: Vec<T> = values.collect();
        values.sort_unstable();
        values.get(values.len().checked_sub(1)? / 2).copied()
    }
    let cpu = middle(runs.iter().filter_map(|m| m.cpu));
    let latency = match (
        middle(runs.iter().filter_map(|m| m.latency.map(|l| l.p50))),
        middle(runs.iter().filter_map(|m| m.latency.map(|l| l.p99))),
        middle(runs.iter().filter_map(|m| m.latency.map(|l| l.max))),
    ) {
        (Some(p50), Some(p99), Some(max)) => Some(LatencySummary { p50, p99, max }),
        _ => None,
    };
    let rss = middle(runs.iter().filter_map(|m| m.rss_bytes));
    let peak = middle(runs.iter().filter_map(|m| m.peak_rss_bytes));
    runs.sort_by(|a, b| a.ops_per_sec().total_cmp(&b.ops_per_sec()));
    let at = runs.len().checked_sub(1)? / 2;
    let mut m = runs.swap_remove(at);
    m.cpu = cpu;
    m.latency = latency;
    m.rss_bytes = rss;
    m.peak_rss_bytes = peak;
    Some(m)
}

/// Whether `engine` is a floor: a channel with no dedup, requeue's
/// (crossbeam) or Go's.
pub fn is_floor(engine: &str) -> bool {
    engine == Engine::Channel.name() || engine == GO_CHANNEL
}

/// Whether `engine` is one of requeue's queue engines (not a floor, not Go).
pub fn is_requeue(engine: &str) -> bool {
    !is_floor(engine) && engine != CLIENT_GO
}

/// The floor that a measurement on `engine` is compared with: Go's channel
/// for client-go, the crossbeam channel for requeue.
fn floor_of(engine: &str) -> &'static str {
    if engine == CLIENT_GO {
        GO_CHANNEL
    } else {
        Engine::Channel.name()
    }
}

/// The measurement in `results` of `workload` on `engine`.
pub fn find<'a>(
    results: &'a [Measurement],
    workload: &str,
    engine: &str,
) -> Option<&'a Measurement> {
    results
        .iter()
        .find(|m| m.workload == workload && m.engine == engine)
}

/// A queue engine's items/s over its floor's from the same run (requeue
/// over the crossbeam channel, client-go over the Go channel); `None` for
/// floors and where no floor was measured.
pub fn ratio_to_floor(results: &[Measurement], m: &Measurement) -> Option<f64> {
    if is_floor(m.engine) {
        return None;
    }
    find(results, m.workload, floor_of(m.engine)).map(|f| m.ratio_to(f))
}

/// requeue's advantage over client-go measured in the same run, on each
/// of the workload's [`compared figures`](Workload::compared_figures) (see
/// [`Figure::advantage`]); empty unless `m` is a requeue engine and
/// `results` hold client-go's figure for its workload.
pub fn x_client_go(results: &[Measurement], m: &Measurement) -> Vec<(Figure, Option<f64>)> {
    let (Some(workload), Some(go)) = (
        Workload::parse(m.workload),
        find(results, m.workload, CLIENT_GO),
    ) else {
        return Vec::new();
    };
    if !is_requeue(m.engine) {
        return Vec::new();
    }
    workload
        .compared_figures()
        .iter()
        .map(|&f| (f, f.advantage(m, go)))
        .collect()
}

fn ratio_text(ratio: Option<f64>, digits: usize) -> String {
    ratio.map_or_else(|| "-".into(), |r| format!("{r:.digits$}"))
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
/// the floor, lateness, CPU, memory and whether the target is met. Queue
/// rows are matched to their workload's floor (requeue to the crossbeam
/// channel, client-go to the Go channel). When `results` hold client-go
/// measurements, an "x client-go" column gives each requeue row's
/// advantage on its workload's headline figure (the first of
/// [`Workload::compared_figures`]); [`comparison`] has all of them.
pub fn table(results: &[Measurement]) -> String {
    let with_go = results.iter().any(|m| m.engine == CLIENT_GO);
    let go_column = if with_go { " x client-go |" } else { "" };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| workload | engine | rate | queue / floor |{go_column} p50 | p99 | max | wall | CPU | RSS | peak RSS | target met |"
    );
    let _ = writeln!(
        out,
        "|---|---|---|---|{}---|---|---|---|---|---|---|---|",
        if with_go { "---|" } else { "" }
    );
    for m in results {
        let Some(workload) = Workload::parse(m.workload) else {
            continue;
        };
        let ratio = ratio_text(ratio_to_floor(results, m), 3);
        let vs_go = if with_go {
            let headline = x_client_go(results, m).first().and_then(|&(_, r)| r);
            format!(" {} |", ratio_text(headline, 2))
        } else {
            String::new()
        };
        let floor = is_floor(m.engine);
        let unit = if floor { "items/s" } else { workload.unit() };
        let rate = if floor {
            m.items_per_sec()
        } else {
            m.ops_per_sec()
        };
        let lat = |f: fn(&LatencySummary) -> Duration| {
            m.latency
                .as_ref()
                .map_or_else(|| "-".into(), |l| duration(f(l)))
        };
        let met = match (is_requeue(m.engine), workload.target().met_by(m)) {
            (true, Some(true)) => "yes",
            (true, Some(false)) => "NO",
            _ => "-",
        };
        let _ = writeln!(
            out,
            "| {} {} | {} | {} {unit} | {ratio} |{vs_go} {} | {} | {} | {} | {} | {} | {} | {met} |",
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

/// A Markdown table setting each requeue figure beside client-go's from
/// the same run, figure by figure ([`Workload::compared_figures`]), with
/// requeue's advantage ("x client-go": above 1, requeue did better). Empty
/// when `results` hold no client-go measurement.
pub fn comparison(results: &[Measurement]) -> String {
    if !results.iter().any(|m| m.engine == CLIENT_GO) {
        return String::new();
    }
    let mut out = String::from(
        "| workload | engine | figure | requeue | client-go | x client-go |\n|---|---|---|---|---|---|\n",
    );
    for m in results {
        let (Some(workload), Some(go)) = (
            Workload::parse(m.workload),
            find(results, m.workload, CLIENT_GO),
        ) else {
            continue;
        };
        for (figure, ratio) in x_client_go(results, m) {
            let show = |v: &Measurement| {
                figure
                    .value(v)
                    .map_or_else(|| "-".into(), |x| figure.format(workload, x))
            };
            let _ = writeln!(
                out,
                "| {} {} | {} | {} | {} | {} | {} |",
                workload.id(),
                workload.name(),
                m.engine,
                figure.label(workload),
                show(m),
                show(go),
                ratio_text(ratio, 2),
            );
        }
    }
    out
}

/// A Markdown table of every workload's definition, client-go's stored
/// reference figure (docs/benchmarks.md §6; not measured here) and
/// requeue's target.
pub fn references() -> String {
    let mut out = String::from(
        "| id | name | definition | client-go (stored reference) | requeue target |\n|---|---|---|---|---|\n",
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
        let t = table(&[requeue.clone(), floor.clone()]);
        assert!(
            t.contains("| W1 fifo-single | requeue | 3.00 M ops/s | 0.250 | - |"),
            "{t}"
        );
        assert!(
            t.contains("| W1 fifo-single | crossbeam-channel | 4.00 M items/s | - | - |"),
            "{t}"
        );
        assert!(!t.contains("client-go"), "no stored client-go figure: {t}");
        assert_eq!(comparison(&[requeue, floor]), "");
        assert_eq!(references().lines().count(), 10);
    }

    #[test]
    fn measured_client_go_gets_its_own_floor_and_the_ratio_column() {
        let mut requeue = Measurement::new("W3", "requeue", 1_000, 1_000, Duration::from_millis(1));
        requeue.peak_rss_bytes = Some(100 << 20);
        let mut tasks = requeue.clone();
        tasks.engine = "requeue-tasks";
        tasks.wall = Duration::from_millis(2);
        let floor = Measurement::new(
            "W3",
            "crossbeam-channel",
            1_000,
            1_000,
            Duration::from_micros(100),
        );
        let mut go = Measurement::new("W3", CLIENT_GO, 1_000, 1_000, Duration::from_millis(4));
        go.peak_rss_bytes = Some(150 << 20);
        let go_floor = Measurement::new("W3", GO_CHANNEL, 1_000, 1_000, Duration::from_millis(1));
        let results = [go_floor, floor, go, requeue, tasks];
        let t = table(&results);
        assert!(
            t.contains("| requeue | 1.00 M items/s | 0.100 | 4.00 |"),
            "{t}"
        );
        assert!(
            t.contains("| requeue-tasks | 500.0 k items/s | 0.050 | 2.00 |"),
            "{t}"
        );
        assert!(
            t.contains("| client-go | 250.0 k items/s | 0.250 | - |"),
            "{t}"
        );
        assert!(t.contains("| go-channel | 1.00 M items/s | - | - |"), "{t}");
        let c = comparison(&results);
        assert!(
            c.contains("| W3 mpmc | requeue | items/s | 1.00 M items/s | 250.0 k items/s | 4.00 |"),
            "{c}"
        );
        assert!(
            c.contains("| W3 mpmc | requeue-tasks | peak RSS | 100 MiB | 150 MiB | 1.50 |"),
            "{c}"
        );
        assert_eq!(c.lines().count(), 2 + 4, "{c}");
    }

    #[test]
    fn median_takes_each_figure_s_median() {
        let run = |ms, peak, cpu| {
            let mut m = Measurement::new("W3", "requeue", 100, 100, Duration::from_millis(ms));
            m.peak_rss_bytes = Some(peak);
            m.cpu = Some(Duration::from_millis(cpu));
            m
        };
        let m = median(vec![run(5, 30, 1), run(1, 10, 9), run(3, 20, 5)]).expect("runs");
        assert_eq!(m.wall, Duration::from_millis(3));
        assert_eq!(
            (m.peak_rss_bytes, m.cpu),
            (Some(20), Some(Duration::from_millis(5)))
        );
        let m = median(vec![run(5, 10, 3), run(1, 30, 1), run(3, 20, 2)]).expect("runs");
        assert_eq!(
            (m.wall, m.peak_rss_bytes),
            (Duration::from_millis(3), Some(20))
        );
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
