//! Every workload at a tiny size: it finishes and its invariants hold.

use crate::*;
use std::time::Duration;

fn check(m: &Measurement, workload: &str, engine: &str, ops: u64) {
    assert_eq!(
        (m.workload, m.engine, m.ops),
        (workload, engine, ops),
        "{m:?}"
    );
    assert!(m.wall > Duration::ZERO && m.ops_per_sec() > 0.0, "{m:?}");
    if cfg!(target_os = "linux") {
        assert!(m.peak_rss_bytes.is_some(), "{m:?}");
        assert_eq!(m.cpu.is_some(), m.workload != "W2", "{m:?}");
    }
}

#[test]
fn keys_are_kubernetes_object_keys_and_parse_back() {
    assert_eq!(keys(3), ["ns-0/obj-0", "ns-1/obj-1", "ns-2/obj-2"]);
    assert_eq!(key(1234), "ns-34/obj-1234");
    assert_eq!(key_index(&key(1234)), Some(1234));
    assert_eq!(key_index("nope"), None);
}

#[test]
fn splitmix64_matches_the_reference_sequence() {
    // Reference values of splitmix64 from seed 0 (Vigna's C implementation).
    let mut rng = SplitMix64::new(0);
    assert_eq!(rng.next(), 0xE220_A839_7B1D_CDAF);
    assert_eq!(rng.next(), 0x6E78_9E6A_A1B9_65F4);
    let delays: Vec<u64> = delayed_ms(1000);
    assert!(delays.iter().all(|&d| d <= 1000));
    assert!(delays.iter().any(|&d| d > 900) && delays.iter().any(|&d| d < 100));
}

fn delayed_ms(n: usize) -> Vec<u64> {
    crate::w6_delays_ms(n).collect()
}

#[test]
fn w1_gets_every_key_once() {
    let m = w1_fifo_single(5_000).expect("W1");
    check(&m, "W1", "requeue", 15_000);
    let m = w1_fifo_single_metered(5_000).expect("W1 metered");
    check(&m, "W1", "requeue+metrics", 15_000);
    let floor = floor_w1(5_000).expect("W1 floor");
    check(&floor, "W1", "crossbeam-channel", 10_000);
    assert!(m.ratio_to(&floor) > 0.0);
}

#[test]
fn w2_drains_with_exactly_1000_gets() {
    let m = w2_dedup(1_000, 10).expect("W2");
    check(&m, "W2", "requeue", 10_000 + 2 * 1_000);
    assert_eq!(m.items, 1_000);
}

#[test]
fn w3_and_w4_deliver_every_item() {
    check(&w3_mpmc(10_000, 2, 2).expect("W3"), "W3", "requeue", 10_000);
    check(
        &w3_mpmc(1_001, 3, 1).expect("W3 3x1"),
        "W3",
        "requeue",
        1_001,
    );
    check(
        &w3_mpmc_metered(10_000).expect("W3 metered"),
        "W3",
        "requeue+metrics",
        10_000,
    );
    check(
        &w4_mpmc_oversub(10_000).expect("W4"),
        "W4",
        "requeue",
        10_000,
    );
    check(
        &floor_w3(10_000).expect("W3 floor"),
        "W3",
        "crossbeam-channel",
        10_000,
    );
    check(
        &floor_w4(10_000).expect("W4 floor"),
        "W4",
        "crossbeam-channel",
        10_000,
    );
}

#[test]
fn w5_never_hands_a_key_to_two_consumers() {
    // A double hand-out fails the workload with BenchError::Duplicate.
    let m = w5_hot_requeue(Duration::from_millis(100)).unwrap_or_else(|e| panic!("W5: {e}"));
    assert_eq!((m.workload, m.items), ("W5", HOT_KEYS as u64));
    assert!(m.ops > 0);
    // Two consumers spinning 10 µs each cannot beat 200k/s (allow timer slack).
    assert!(m.ops_per_sec() < 250_000.0, "{m:?}");
}

#[test]
fn task_flavours_deliver_every_item_and_never_hand_a_key_out_twice() {
    check(
        &w3_mpmc_tasks(10_000, 2, 2).expect("W3 tasks"),
        "W3",
        "requeue-tasks",
        10_000,
    );
    check(
        &w3_mpmc_tasks(1_001, 3, 1).expect("W3 tasks 3x1"),
        "W3",
        "requeue-tasks",
        1_001,
    );
    assert_eq!(
        w3_mpmc_tasks(0, 2, 2).expect("W3 tasks, nothing to do").ops,
        0
    );
    check(
        &w4_mpmc_oversub_tasks(10_000).expect("W4 tasks"),
        "W4",
        "requeue-tasks",
        10_000,
    );
    let m = w5_hot_requeue_tasks(Duration::from_millis(100)).unwrap_or_else(|e| panic!("W5: {e}"));
    assert_eq!(
        (m.workload, m.engine, m.items),
        ("W5", "requeue-tasks", HOT_KEYS as u64)
    );
    assert!(
        m.ops > 0 && m.cpu.is_some() == cfg!(target_os = "linux"),
        "{m:?}"
    );
    // The producer yields after every batch, so the consumers get to work.
    assert!(m.ops_per_sec() < 250_000.0, "{m:?}");
}

#[test]
fn w6_hands_out_nothing_early_and_reports_lateness() {
    let m = w6_delayed(2_000).unwrap_or_else(|e| panic!("W6: {e}"));
    check(&m, "W6", "requeue", 2_000);
    let lat = m.latency.expect("lateness recorded");
    assert!(lat.p50 <= lat.p99 && lat.p99 <= lat.max, "{lat:?}");
}

#[test]
fn w7_tracks_n_keys_then_none() {
    let m = w7_limiter_when(10_000).expect("W7");
    check(&m, "W7", "requeue", 30_000);
    assert!(m.rss_bytes.is_some() || !cfg!(target_os = "linux"));
}

#[test]
fn w8_every_key_succeeds_once_after_exactly_4_attempts() {
    let m = w8_ratelimited_queue(300).unwrap_or_else(|e| panic!("W8: {e}"));
    check(&m, "W8", "requeue", 300);
    // Three backoffs of 1 + 2 + 4 ms come before any key's fourth attempt.
    assert!(m.wall >= Duration::from_millis(7), "{m:?}");
}

#[test]
fn every_case_runs_by_name_and_its_result_survives_encoding() {
    let scale = Scale {
        n: 2_000,
        dedup_keys: 100,
        dedup_rounds: 5,
        hot_duration: Duration::from_millis(20),
        retry_keys: 50,
    };
    let cases = Case::all();
    assert_eq!(cases.len(), 16);
    for case in cases {
        assert_eq!(Case::parse(&case.id()), Some(case));
        let m = case.run(&scale).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(
            (m.workload, m.engine),
            (case.workload.id(), case.engine.name())
        );
        assert_eq!(Measurement::decode(&m.encode()), Some(m.clone()), "{case}");
        let _ = case.workload.target().met_by(&m);
    }
    assert_eq!(Case::parse("W2/floor"), None);
    assert_eq!(Case::parse("W1/tasks"), None);
    assert_eq!(
        Case::parse("hot-requeue/tasks").map(|c| c.id()),
        Some("W5/tasks".into())
    );
    assert_eq!(
        Case::parse("mpmc/metrics").map(|c| c.id()),
        Some("W3/metrics".into())
    );
}

#[test]
fn targets_read_the_right_figures() {
    let mut m = Measurement::new("W8", "requeue", 10, 10, Duration::from_millis(40));
    m.cpu = Some(Duration::from_millis(15));
    assert_eq!(Workload::W8.target().met_by(&m), Some(true));
    m.cpu = Some(Duration::from_millis(25));
    assert_eq!(Workload::W8.target().met_by(&m), Some(false));
    let fast = Measurement::new("W2", "requeue", 80_000_000, 1_000, Duration::from_secs(1));
    assert_eq!(Workload::W2.target().met_by(&fast), Some(true));
    assert_eq!(Scale::from_env().dedup_keys, 1_000);
}
