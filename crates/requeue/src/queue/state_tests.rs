//! The state machine driven through random operations, invariants checked at every step.

use super::*;
use std::time::Duration;

/// Drives the state machine through a long pseudo-random sequence of
/// operations and checks every invariant after each step.
#[test]
fn invariants_hold_through_random_operations() {
    let mut rng = fastrand::Rng::with_seed(0x5EED);
    let mut state: State<u8> = State::new(Some(3), None);
    let start = Instant::now();
    let mut now = start;
    let mut held: Vec<(u8, u32, u64)> = Vec::new();
    for _ in 0..20_000 {
        let key = rng.u8(0..16);
        match rng.u8(0..8) {
            0 | 1 => {
                let _ = state.add(KeyArg::Owned(key), rng.i32(-2..3), None, None);
            }
            2 => {
                let at = now + Duration::from_millis(rng.u64(1..50));
                let _ = state.add(KeyArg::Borrowed(&key), rng.i32(-2..3), Some(at), None);
            }
            3 | 4 => {
                if let Some(out) = state.pop(None) {
                    assert!(
                        held.iter().all(|(k, _, _)| *k != out.item),
                        "handed out twice"
                    );
                    held.push((out.item, out.slot, out.token));
                }
            }
            5 if !held.is_empty() => {
                let (item, slot, token) = held.swap_remove(rng.usize(..held.len()));
                if rng.bool() {
                    assert!(state.done(slot, Some(token), None).was_processing);
                } else {
                    assert!(state.done_item(&item, None).was_processing);
                }
            }
            6 => {
                let stray = state.index.find(&key);
                let stray = stray.map(|s| state.done(s, Some(u64::MAX), None));
                assert!(!stray.is_some_and(|f| f.was_processing), "stray done");
                if held.iter().all(|(k, _, _)| *k != key) {
                    assert!(!state.done_item(&key, None).was_processing, "stray done");
                }
            }
            _ => {
                now += Duration::from_millis(rng.u64(0..20));
                let mut wake = Vec::new();
                while state.promote_due(now, 4, &mut wake) {}
            }
        }
        state.check();
    }
}
