//! Criterion benches of the workloads W1–W8 (docs/benchmarks.md) on
//! requeue, W1/W3/W4 through an unbounded crossbeam channel (the floor),
//! and W1/W3 with metrics on.
//!
//! Every sample runs the workload function of `requeue-bench` once and
//! reports its own timed span (`iter_custom`), so set-up such as building
//! the keys is never timed.
//!
//! ```text
//! cargo bench -p requeue-bench                       # N = 1,000,000
//! REQUEUE_BENCH_N=100000 cargo bench -p requeue-bench -- --quick
//! cargo bench -p requeue-bench -- W3                 # one group
//! ```

use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput, measurement::WallTime};
use requeue_bench::{BenchError, Case, Engine, Measurement, Scale, Workload};
use std::time::Duration;

/// W5's rate is reported as the time to process this many items at the measured rate.
const W5_NOMINAL: u64 = 100_000;

fn run(case: Case, scale: &Scale) -> Measurement {
    case.run(scale)
        .unwrap_or_else(|e: BenchError| panic!("{case} broke an invariant: {e}"))
}

/// The items a run of `case` counts, known before it runs (W5's varies, so
/// its time is scaled to [`W5_NOMINAL`] items).
fn elements(case: Case, scale: &Scale) -> u64 {
    let n = scale.n as u64;
    match (case.workload, case.engine) {
        (Workload::W1, Engine::Channel) => 2 * n,
        (Workload::W1 | Workload::W7, _) => 3 * n,
        (Workload::W2, _) => (scale.dedup_keys * scale.dedup_rounds + 2 * scale.dedup_keys) as u64,
        (Workload::W5, _) => W5_NOMINAL,
        (Workload::W8, _) => scale.retry_keys as u64,
        _ => n,
    }
}

fn bench_case(group: &mut BenchmarkGroup<'_, WallTime>, case: Case, scale: &Scale) {
    let expected = elements(case, scale);
    group.throughput(Throughput::Elements(expected));
    group.bench_function(case.engine.name(), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let m = run(case, scale);
                total += if case.workload == Workload::W5 {
                    // Time for W5_NOMINAL items at this run's processed/s.
                    m.wall.mul_f64(W5_NOMINAL as f64 / m.ops.max(1) as f64)
                } else {
                    assert_eq!(m.ops, expected, "{case}: unexpected op count");
                    m.wall
                };
            }
            total
        });
    });
}

fn workloads(c: &mut Criterion) {
    let scale = Scale::from_env();
    for workload in Workload::ALL {
        let mut group = c.benchmark_group(format!("{}-{}", workload.id(), workload.name()));
        group
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(500))
            // W5 and W6 spend seconds outside their timed span (the 2 s
            // run, the wait for the last delay): one run per sample.
            .measurement_time(Duration::from_secs(match workload {
                Workload::W5 | Workload::W6 => 1,
                _ => 4,
            }));
        for case in Case::all().into_iter().filter(|c| c.workload == workload) {
            bench_case(&mut group, case, &scale);
        }
        group.finish();
    }
}

fn main() {
    let mut c = Criterion::default().sample_size(10).configure_from_args();
    workloads(&mut c);
    c.final_summary();
}
