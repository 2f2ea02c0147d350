//! One test per rule of the scripts (docs/redis.md §3), against a real
//! redis-server with fake time; invariants are checked after every step.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;

use requeue_redis::inspect;
use requeue_redis::ops::{
    self, AddCode, DoneCode, GetArgs, LimiterSpec, Now, ReapArgs, ReleaseCode, Token,
};
use support::{ARGS, Fx, T0};

#[tokio::test]
async fn dedup_while_queued() {
    let mut q = Fx::new("dedup").await;
    assert_eq!(q.add("a").await, AddCode::Queued);
    assert_eq!(q.add("a").await, AddCode::Deduplicated);
    assert_eq!(q.len().await, 1);
    let leased = q.take("a").await;
    assert_eq!(
        q.nothing().await,
        Some(T0 + ARGS.lease_ms),
        "next wake = lease deadline"
    );
    assert_eq!(q.done(&leased).await, DoneCode::Done);
    assert_eq!(q.nothing().await, None);
}

#[tokio::test]
async fn fifo_order() {
    let mut q = Fx::new("fifo").await;
    for item in ["a", "b", "c"] {
        q.add(item).await;
    }
    for item in ["a", "b", "c"] {
        q.take(item).await;
    }
}

#[tokio::test]
async fn add_while_processing_parks_and_is_not_handed_out_twice() {
    let mut q = Fx::new("park").await;
    q.add("a").await;
    let leased = q.take("a").await;
    assert_eq!(q.add("a").await, AddCode::Parked);
    assert_eq!(q.add("a").await, AddCode::Deduplicated);
    assert_eq!(q.len().await, 0);
    q.nothing().await;
    let state = q.state().await;
    assert_eq!(
        (state.dirty, state.parked, state.processing_count),
        (1, 1, 1)
    );
    assert_eq!(q.done(&leased).await, DoneCode::Requeued);
    assert_eq!(q.len().await, 1);
    let again = q.take("a").await;
    assert_ne!(again.token, leased.token);
    assert!(again.token.epoch() > leased.token.epoch());
    assert_eq!(q.done(&again).await, DoneCode::Done);
}

#[tokio::test]
async fn wrong_token_is_rejected_and_the_lease_untouched() {
    let mut q = Fx::new("wrong-token").await;
    q.add("a").await;
    let leased = q.take("a").await;
    let forged = [
        Token::new(leased.token.epoch(), leased.token.nonce() ^ 1),
        Token::new(leased.token.epoch() + 1, leased.token.nonce()),
    ];
    for token in forged {
        let mut fake = leased.clone();
        fake.token = token;
        assert_eq!(q.done(&fake).await, DoneCode::LeaseLost);
        let at = q.at();
        let released = ops::release(&mut q.conn, &q.keys, b"a", token, at)
            .await
            .unwrap();
        assert_eq!(released.code, ReleaseCode::LeaseLost);
    }
    let state = q.state().await;
    assert_eq!(state.processing.len(), 1);
    assert_eq!(state.processing[0].token, Some(leased.token));
    assert_eq!(state.processing[0].deadline_ms, T0 + ARGS.lease_ms);
    assert_eq!(q.done(&leased).await, DoneCode::Done);
    assert_eq!(
        q.done(&leased).await,
        DoneCode::NotHeld,
        "a repeated done is harmless, and told apart from another holder"
    );
}

#[tokio::test]
async fn stale_token_cannot_finish_the_new_lease() {
    let mut q = Fx::new("stale").await;
    q.add("a").await;
    let first = q.take("a").await;
    assert_eq!(q.done(&first).await, DoneCode::Done);
    q.add("a").await;
    let second = q.take("a").await;
    assert_eq!(q.done(&first).await, DoneCode::LeaseLost);
    assert_eq!(q.state().await.processing[0].token, Some(second.token));
    assert_eq!(q.done(&second).await, DoneCode::Done);
}

#[tokio::test]
async fn add_after_earliest_wins_and_next_wake_is_its_due() {
    let mut q = Fx::new("earliest").await;
    assert_eq!(q.add_after("a", 500).await, AddCode::Delayed);
    assert_eq!(
        q.add_after("a", 200).await,
        AddCode::Delayed,
        "moved earlier"
    );
    assert_eq!(
        q.add_after("a", 300).await,
        AddCode::Deduplicated,
        "later: ignored"
    );
    assert_eq!(
        q.add_after("a", 200).await,
        AddCode::Deduplicated,
        "equal: ignored"
    );
    assert_eq!(q.add_after("b", 400).await, AddCode::Delayed);
    assert_eq!(q.nothing().await, Some(T0 + 200));
    let state = q.state().await;
    assert_eq!(state.delayed, 2);
    assert_eq!(state.next_due, Some((b"a".to_vec(), T0 + 200)));
}

#[tokio::test]
async fn delayed_items_are_promoted_when_due() {
    let mut q = Fx::new("promote").await;
    q.add_after("a", 100).await;
    q.add_after("b", 150).await;
    q.advance(99);
    assert_eq!(q.nothing().await, Some(T0 + 100));
    q.advance(1);
    q.take("a").await;
    assert_eq!(q.nothing().await, Some(T0 + 150));
    q.advance(50);
    q.take("b").await;
}

#[tokio::test]
async fn a_due_item_is_queued_before_a_later_add() {
    // In memory the timer queues x at its due time, before y is added;
    // every script promotes first, so Redis agrees.
    let mut q = Fx::new("due-before-add").await;
    q.add_after("x", 10).await;
    q.advance(20);
    assert_eq!(q.add("y").await, AddCode::Queued);
    assert_eq!(q.state().await.delayed, 0, "the add promoted x first");
    for item in ["x", "y"] {
        let leased = q.take(item).await;
        q.done(&leased).await;
    }
    // The same through add_after, add_rate_limited and add_batch.
    q.add_after("x", 10).await;
    q.advance(10);
    assert_eq!(q.add_after("y", 0).await, AddCode::Queued);
    q.add_after("z", 5).await;
    q.advance(5);
    let at = q.at();
    ops::add_rate_limited(&mut q.conn, &q.keys, b"w", &LimiterSpec::default(), at)
        .await
        .unwrap();
    q.add_after("v", 1).await;
    q.advance(1);
    let at = q.at();
    ops::add_batch(&mut q.conn, &q.keys, &["u"], at)
        .await
        .unwrap();
    q.check().await;
    for item in ["x", "y", "z", "w", "v", "u"] {
        q.take(item).await;
    }
}

#[tokio::test]
async fn a_due_item_is_queued_before_the_requeue_of_a_later_done() {
    let mut q = Fx::new("due-before-done").await;
    q.add("a").await;
    let a = q.take("a").await;
    assert_eq!(q.add("a").await, AddCode::Parked);
    q.add_after("x", 10).await;
    q.advance(20);
    assert_eq!(q.done(&a).await, DoneCode::Requeued);
    q.take("x").await;
    q.take("a").await;
    // done_get and release too.
    q.add("b").await;
    let b = q.take("b").await;
    q.add("b").await;
    q.add_after("y", 10).await;
    q.advance(10);
    let at = q.at();
    let reply = ops::done_get(&mut q.conn, &q.keys, &b.item, b.token, &ARGS, at)
        .await
        .unwrap();
    q.check().await;
    assert_eq!(reply.done, DoneCode::Requeued);
    let y = reply.get.item.unwrap();
    assert_eq!(y.item, b"y");
    q.add_after("z", 10).await;
    q.advance(10);
    let at = q.at();
    ops::release(&mut q.conn, &q.keys, &y.item, y.token, at)
        .await
        .unwrap();
    q.check().await;
    // Release puts y at the head, but z was queued first at its due time
    // and b before it: the head is y, then b, then z.
    q.take("y").await;
    q.take("b").await;
    q.take("z").await;
}

#[tokio::test]
async fn len_counts_items_once_due() {
    let mut q = Fx::new("len-due").await;
    q.add_after("x", 10).await;
    q.add_after("y", 20).await;
    q.advance(9);
    assert_eq!(q.len().await, 0);
    q.advance(1);
    assert_eq!(q.len().await, 1, "x is ready at its due time");
    let state = q.state().await;
    assert_eq!((state.depth, state.delayed), (1, 1));
    q.advance(100);
    assert_eq!(q.len().await, 2);
}

#[tokio::test]
async fn get_queues_due_items_before_reaped_ones() {
    let mut q = Fx::new("due-before-reaped").await;
    q.add("a").await;
    let _dead = q.take("a").await;
    q.add_after("x", 10).await;
    q.advance(ARGS.lease_ms);
    // No reap backoff: the reaped item is added at once, behind x.
    let args = GetArgs {
        reap_base_ms: 0,
        ..ARGS
    };
    let reply = q.get_with(&args).await;
    assert_eq!(reply.reaped, 1);
    assert_eq!(reply.item.unwrap().item, b"x");
    q.take("a").await;
}

#[tokio::test]
async fn items_due_at_the_same_ms_are_promoted_in_byte_order() {
    // A documented difference: in memory, insertion order.
    let mut q = Fx::new("due-ties").await;
    q.add_after("b", 10).await;
    q.add_after("a", 10).await;
    q.add_after("c", 10).await;
    q.advance(10);
    for item in ["a", "b", "c"] {
        q.take(item).await;
    }
}

#[tokio::test]
async fn promotion_outside_get_is_bounded() {
    let mut q = Fx::new("promote-bounded").await;
    let items: Vec<String> = (0..250).map(|i| format!("d{i:03}")).collect();
    for item in &items {
        let at = q.at();
        ops::add_after(&mut q.conn, &q.keys, item.as_bytes(), 10, at)
            .await
            .unwrap();
    }
    q.advance(10);
    assert_eq!(q.len().await, 100, "100 per call");
    assert_eq!(q.add("y").await, AddCode::Queued);
    assert_eq!(q.len().await, 251, "the last 50, behind y");
    for item in &items[..200] {
        q.take(item).await;
    }
    q.take("y").await;
    for item in &items[200..] {
        q.take(item).await;
    }
}

#[tokio::test]
async fn add_after_zero_is_an_immediate_add() {
    let mut q = Fx::new("after-zero").await;
    assert_eq!(q.add_after("a", 0).await, AddCode::Queued);
    assert_eq!(q.state().await.delayed, 0);
}

#[tokio::test]
async fn an_immediate_add_cancels_the_pending_delay() {
    let mut q = Fx::new("add-cancels-delay").await;
    let five_hours = 5 * 3600 * 1000;
    assert_eq!(q.add_after("x", five_hours).await, AddCode::Delayed);
    assert_eq!(q.add("x").await, AddCode::Queued);
    assert_eq!(q.state().await.delayed, 0);
    let leased = q.take("x").await;
    q.done(&leased).await;
    q.advance(five_hours);
    assert_eq!(
        q.nothing().await,
        None,
        "processed once, not again after 5 h"
    );
    // A delay for an item already due is ignored: queued…
    assert_eq!(q.add("y").await, AddCode::Queued);
    assert_eq!(q.add_after("y", 1).await, AddCode::Deduplicated);
    // …or parked behind its processing.
    let y = q.take("y").await;
    assert_eq!(q.add("y").await, AddCode::Parked);
    assert_eq!(q.add_after("y", 1).await, AddCode::Deduplicated);
    assert_eq!(q.state().await.delayed, 0);
    assert_eq!(q.done(&y).await, DoneCode::Requeued);
}

#[tokio::test]
async fn a_delay_while_processing_parks_when_due() {
    let mut q = Fx::new("delay-while-processing").await;
    q.add("a").await;
    let leased = q.take("a").await;
    assert_eq!(q.add_after("a", 10).await, AddCode::Delayed);
    q.advance(10);
    q.nothing().await;
    assert_eq!(q.state().await.parked, 1);
    assert_eq!(q.done(&leased).await, DoneCode::Requeued);
    q.take("a").await;
}

#[tokio::test]
async fn expired_lease_is_reaped_with_backoff_and_handed_to_another_get() {
    let mut q = Fx::new("reap").await;
    q.add("a").await;
    let dead = q.take("a").await;
    q.advance(ARGS.lease_ms - 1);
    assert_eq!(q.nothing().await, Some(T0 + ARGS.lease_ms));
    q.advance(1);
    let reply = q.get().await;
    assert_eq!((reply.item.is_none(), reply.reaped), (true, 1));
    assert_eq!(
        reply.next_wake_ms,
        Some(q.now + 5),
        "first failure: base backoff"
    );
    assert_eq!(q.num_requeues("a").await, 1);
    q.advance(5);
    let second = q.take("a").await;
    assert_eq!(
        q.done(&dead).await,
        DoneCode::LeaseLost,
        "the dead holder is fenced off"
    );
    assert_eq!(q.state().await.lease_expired_total, 1);
    // Crashing again doubles the backoff.
    q.advance(ARGS.lease_ms);
    assert_eq!(q.get().await.next_wake_ms, Some(q.now + 10));
    assert_eq!(
        q.done(&second).await,
        DoneCode::NotHeld,
        "reaped, held by nobody"
    );
}

#[tokio::test]
async fn a_reaped_parked_item_is_not_lost() {
    let mut q = Fx::new("reap-parked").await;
    q.add("a").await;
    let _dead = q.take("a").await;
    assert_eq!(q.add("a").await, AddCode::Parked);
    q.advance(ARGS.lease_ms);
    let reply = q.get().await;
    assert_eq!(reply.reaped, 1);
    let state = q.state().await;
    assert_eq!(
        (state.dirty, state.delayed),
        (0, 1),
        "the add rides on the delay"
    );
    assert_eq!(q.add("a").await, AddCode::Queued, "not deduplicated away");
    assert_eq!(q.state().await.delayed, 0);
    q.take("a").await;
}

#[tokio::test]
async fn reap_script_alone_counts_and_is_bounded() {
    let mut q = Fx::new("reap-script").await;
    for item in ["a", "b", "c"] {
        q.add(item).await;
        q.take(item).await;
    }
    q.advance(ARGS.lease_ms);
    let args = ReapArgs {
        batch: 2,
        base_ms: 0,
        max_ms: 0,
    };
    let at = q.at();
    assert_eq!(ops::reap(&mut q.conn, &q.keys, &args, at).await.unwrap(), 2);
    q.check().await;
    assert_eq!(q.len().await, 2, "no backoff: queued at once");
    assert_eq!(ops::reap(&mut q.conn, &q.keys, &args, at).await.unwrap(), 1);
    assert_eq!(ops::reap(&mut q.conn, &q.keys, &args, at).await.unwrap(), 0);
    q.check().await;
    assert_eq!(q.len().await, 3);
}

#[tokio::test]
async fn extend_renews_and_reports_lost_items() {
    let mut q = Fx::new("extend").await;
    q.add("a").await;
    q.add("b").await;
    let a = q.take("a").await;
    let b = q.take("b").await;
    q.advance(900);
    let held = [(a.item.clone(), a.token), (b.item.clone(), b.token)];
    let at = q.at();
    let lost = ops::extend(&mut q.conn, &q.keys, 1_000, &held, at)
        .await
        .unwrap();
    assert!(lost.is_empty());
    q.advance(900);
    q.nothing().await; // nothing expired: 1,800 < 900 + 1,000
    assert_eq!(q.done(&b).await, DoneCode::Done);
    // A shorter renewal never shortens a lease.
    let at = q.at();
    ops::extend(&mut q.conn, &q.keys, 1, &held[..1], at)
        .await
        .unwrap();
    assert_eq!(q.state().await.processing[0].deadline_ms, T0 + 1_900);
    let lost = ops::extend(&mut q.conn, &q.keys, 1_000, &held, at)
        .await
        .unwrap();
    assert_eq!(lost, vec![b"b".to_vec()]);
    q.check().await;
    q.advance(999);
    assert_eq!(q.get().await.reaped, 0, "renewed to {}", T0 + 2_800);
    q.advance(1);
    assert_eq!(q.get().await.reaped, 1);
    let at = q.at();
    let lost = ops::extend(&mut q.conn, &q.keys, 1_000, &held[..1], at)
        .await
        .unwrap();
    assert_eq!(lost, vec![b"a".to_vec()]);
}

#[tokio::test]
async fn release_puts_the_item_at_the_head_without_a_failure() {
    let mut q = Fx::new("release").await;
    for item in ["a", "b", "c"] {
        q.add(item).await;
    }
    let a = q.take("a").await;
    let at = q.at();
    let reply = ops::release(&mut q.conn, &q.keys, &a.item, a.token, at)
        .await
        .unwrap();
    assert_eq!((reply.code, reply.depth), (ReleaseCode::Released, 3));
    q.check().await;
    assert_eq!(q.num_requeues("a").await, 0);
    assert_eq!(
        q.done(&a).await,
        DoneCode::NotHeld,
        "released: no longer held"
    );
    q.take("a").await;
    q.take("b").await;
}

#[tokio::test]
async fn release_of_a_parked_item_queues_it_once_and_cancels_its_delay() {
    let mut q = Fx::new("release-parked").await;
    q.add("z").await;
    q.add("a").await;
    q.take("z").await;
    let a = q.take("a").await;
    q.add("a").await; // parked
    let at = q.at();
    ops::release(&mut q.conn, &q.keys, &a.item, a.token, at)
        .await
        .unwrap();
    q.check().await;
    assert_eq!(q.len().await, 1);
    let a = q.take("a").await;
    q.add_after("a", 1_000).await; // delayed while held
    let at = q.at();
    ops::release(&mut q.conn, &q.keys, &a.item, a.token, at)
        .await
        .unwrap();
    q.check().await;
    let state = q.state().await;
    assert_eq!((state.depth, state.delayed), (1, 0));
}

#[tokio::test]
async fn done_get_finishes_and_fetches_in_one_call() {
    let mut q = Fx::new("done-get").await;
    q.add("a").await;
    q.add("b").await;
    let a = q.take("a").await;
    q.add("a").await; // parked: requeued behind b
    let at = q.at();
    let reply = ops::done_get(&mut q.conn, &q.keys, &a.item, a.token, &ARGS, at)
        .await
        .unwrap();
    q.check().await;
    assert_eq!(reply.done, DoneCode::Requeued);
    let b = reply.get.item.unwrap();
    assert_eq!((b.item.as_slice(), reply.get.depth), (&b"b"[..], 1));
    let reply = ops::done_get(&mut q.conn, &q.keys, &b.item, b.token, &ARGS, at)
        .await
        .unwrap();
    assert_eq!(reply.done, DoneCode::Done);
    let a = reply.get.item.unwrap();
    let reply = ops::done_get(&mut q.conn, &q.keys, &a.item, a.token, &ARGS, at)
        .await
        .unwrap();
    assert_eq!(
        (reply.done, reply.get.item, reply.get.next_wake_ms),
        (DoneCode::Done, None, None)
    );
    q.check().await;
}

#[tokio::test]
async fn add_batch_counts_each_outcome() {
    let mut q = Fx::new("add-batch").await;
    q.add("held").await;
    q.take("held").await;
    q.add_after("late", 1_000).await;
    let items: Vec<String> = (0..2_500)
        .map(|i| format!("i{i}"))
        .chain(["i0".into(), "held".into(), "late".into()])
        .collect();
    let at = q.at();
    let reply = ops::add_batch(&mut q.conn, &q.keys, &items, at)
        .await
        .unwrap();
    assert_eq!(
        (reply.queued, reply.deduplicated, reply.parked, reply.depth),
        (2_501, 1, 1, 2_501)
    );
    q.check().await;
    assert_eq!(
        q.state().await.delayed,
        0,
        "an immediate add cancels the delay"
    );
    let none: [&[u8]; 0] = [];
    let reply = ops::add_batch(&mut q.conn, &q.keys, &none, at)
        .await
        .unwrap();
    assert_eq!(reply.depth, 2_501);
}

#[tokio::test]
async fn work_per_call_is_bounded_by_batch() {
    let mut q = Fx::new("bounded").await;
    for i in 0..2_500 {
        let at = q.at();
        ops::add_after(&mut q.conn, &q.keys, format!("d{i}").as_bytes(), 10, at)
            .await
            .unwrap();
    }
    q.check().await;
    q.advance(10);
    let reply = q.get().await;
    assert_eq!(reply.depth, 999, "1,000 promoted, one leased");
    assert_eq!(q.state().await.delayed, 1_500);
    let small = GetArgs { batch: 10, ..ARGS };
    assert_eq!(q.get_with(&small).await.depth, 1_008);
    assert_eq!(q.state().await.delayed, 1_490);
}

#[tokio::test]
async fn queue_time_starts_at_the_add_also_when_parked() {
    let mut q = Fx::new("queue-time").await;
    q.add("a").await;
    q.advance(7);
    let a = q.take("a").await;
    assert_eq!(a.queue_ms, 7);
    q.advance(3);
    q.add("a").await; // parked at T0+10
    q.advance(20);
    q.done(&a).await;
    q.advance(5);
    assert_eq!(q.take("a").await.queue_ms, 25);
}

#[tokio::test]
async fn forget_and_num_requeues() {
    let mut q = Fx::new("forget").await;
    q.add("a").await;
    q.take("a").await;
    q.advance(ARGS.lease_ms);
    q.get().await;
    assert_eq!(q.num_requeues("a").await, 1);
    assert!(ops::forget(&mut q.conn, &q.keys, b"a").await.unwrap());
    assert!(!ops::forget(&mut q.conn, &q.keys, b"a").await.unwrap());
    assert_eq!(q.num_requeues("a").await, 0);
}

#[tokio::test]
async fn inspect_reports_a_consistent_snapshot() {
    let mut q = Fx::new("inspect").await;
    for item in ["a", "b", "c"] {
        q.add(item).await;
    }
    let a = q.take("a").await;
    q.add("a").await;
    q.add_after("d", 50).await;
    q.take("b").await;
    q.advance(ARGS.lease_ms);
    q.add("c").await;
    let at = q.at();
    ops::extend(
        &mut q.conn,
        &q.keys,
        10_000,
        &[(a.item.clone(), a.token)],
        at,
    )
    .await
    .unwrap();
    q.get().await; // reaps b, leases c
    let s = q.state().await;
    // d was promoted (queued), a is parked, b waits out its backoff.
    assert_eq!((s.depth, s.dirty, s.parked, s.delayed), (1, 2, 1, 1));
    assert_eq!(s.processing_count, 2);
    assert_eq!(s.processing[0].item, b"c");
    assert_eq!(s.processing[0].deadline_ms, q.now + ARGS.lease_ms);
    assert_eq!(s.processing[1].item, b"a");
    assert_eq!(s.processing[1].token, Some(a.token));
    assert_eq!(s.top_failures, vec![(b"b".to_vec(), 1)]);
    assert_eq!(s.failures_tracked, 1);
    assert_eq!((s.seq, s.lease_expired_total, s.retries_total), (3, 1, 0));
    assert_eq!(s.next_due, Some((b"b".to_vec(), q.now + 5)));
    let s = inspect::inspect(&mut q.conn, &q.keys, 1).await.unwrap();
    assert_eq!(s.processing.len(), 1);
    let s = inspect::inspect(&mut q.conn, &q.keys, usize::MAX)
        .await
        .unwrap();
    assert_eq!(s.processing.len(), 2);
}

#[tokio::test]
async fn server_time_is_used_without_a_fake_clock() {
    let mut q = Fx::new("server-time").await;
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    ops::add_after(&mut q.conn, &q.keys, b"a", 60_000, Now::Server)
        .await
        .unwrap();
    let reply = ops::get(&mut q.conn, &q.keys, &ARGS, Now::Server)
        .await
        .unwrap();
    assert!(
        reply.now_ms.abs_diff(wall) < 5_000,
        "{} vs {wall}",
        reply.now_ms
    );
    let due = reply.next_wake_ms.unwrap();
    assert!(due >= wall + 60_000 - 5_000 && due <= reply.now_ms + 60_000);
}

#[tokio::test]
async fn scripts_are_reloaded_after_a_script_flush() {
    let mut q = Fx::new("noscript").await;
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut q.conn)
        .await
        .unwrap();
    assert_eq!(
        q.add("a").await,
        AddCode::Queued,
        "EVALSHA falls back to EVAL"
    );
}

#[tokio::test]
async fn done_can_forget_in_the_same_step_but_only_for_the_holder() {
    let mut q = Fx::new("done-forget").await;
    q.add("a").await;
    let leased = q.take("a").await;
    // Two failures recorded for `a`.
    for _ in 0..2 {
        let at = q.at();
        ops::add_rate_limited(
            &mut q.conn,
            &q.keys,
            b"a",
            &requeue_redis::ops::LimiterSpec::default_item_based(),
            at,
        )
        .await
        .unwrap();
    }
    assert_eq!(q.num_requeues("a").await, 2);
    // A stale token clears nothing.
    let stale = Token::new(leased.token.epoch(), leased.token.nonce() ^ 1);
    let at = q.at();
    let refused = ops::done_forgetting(&mut q.conn, &q.keys, b"a", stale, true, at)
        .await
        .unwrap();
    assert_eq!(refused.code, DoneCode::LeaseLost);
    assert_eq!(q.num_requeues("a").await, 2);
    // The holder's done forgets in the same step.
    let at = q.at();
    let reply = ops::done_forgetting(&mut q.conn, &q.keys, b"a", leased.token, true, at)
        .await
        .unwrap();
    assert!(!reply.code.is_lost());
    assert_eq!(q.num_requeues("a").await, 0);
    q.check().await;
}
