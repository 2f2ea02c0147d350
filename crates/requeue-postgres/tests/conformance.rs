//! The engine conformance checks of `requeue::engine::conformance` — the
//! same bodies the in-memory `WorkQueue` and the Redis engine pass — on
//! `PostgresQueue` against a real PostgreSQL, with the statements on the
//! test's fake clock; then what only this engine has (transactional adds)
//! and its refusals.
#![allow(clippy::unwrap_used)]

mod support;

use requeue::clock::FakeClock;
use requeue::engine::conformance::{self, unique_name};
use requeue::engine::{QueueError, Then};
use requeue::limiter::LimiterSpec;
use requeue::queue::Added;
use requeue_postgres::PostgresQueue;
use sqlx::Connection;
use std::time::Duration;

async fn fresh() -> (PostgresQueue<String>, FakeClock) {
    let clock = FakeClock::new();
    let queue = PostgresQueue::builder(support::server().url(), unique_name("conf"))
        .fake_time(clock.clone())
        .build()
        .await
        .unwrap();
    (queue, clock)
}

async fn fresh_rate_limited(limiter: LimiterSpec) -> (PostgresQueue<String>, FakeClock) {
    let clock = FakeClock::new();
    let queue = PostgresQueue::builder(support::server().url(), unique_name("conf-rl"))
        .fake_time(clock.clone())
        .limiter(limiter)
        .build()
        .await
        .unwrap();
    (queue, clock)
}

requeue::conformance_tests!(fresh, rate_limited: fresh_rate_limited);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transactional_add_is_seen_only_after_commit_and_never_after_rollback() {
    let queue: PostgresQueue<String> =
        PostgresQueue::builder(support::server().url(), unique_name("tx"))
            .build()
            .await
            .unwrap();
    let mut conn = sqlx::PgConnection::connect(&support::server().url())
        .await
        .unwrap();
    // Rolled back: nothing left behind.
    let mut tx = conn.begin().await.unwrap();
    assert_eq!(
        queue.add_in(&mut tx, "lost".into()).await.unwrap(),
        Added::Queued
    );
    tx.rollback().await.unwrap();
    assert_eq!(queue.len().await.unwrap(), 0);
    assert!(queue.try_get().await.unwrap().is_none());
    // Committed: invisible until the commit, then handed out, and an idle
    // getter is woken by the commit's notification.
    let mut tx = conn.begin().await.unwrap();
    queue.add_in(&mut tx, "kept".into()).await.unwrap();
    assert_eq!(queue.len().await.unwrap(), 0, "not visible before commit");
    let waiting = tokio::spawn({
        let queue = queue.clone();
        async move { queue.get().await.map(|item| (*item).clone()) }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiting.is_finished(), "handed out before the commit");
    tx.commit().await.unwrap();
    let got = conformance::within("the woken get", waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, "kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_is_not_text_is_refused_and_nothing_is_written() {
    use requeue_postgres::queue::Raw;
    let queue: PostgresQueue<Vec<u8>> =
        PostgresQueue::builder(support::server().url(), unique_name("raw"))
            .codec(std::sync::Arc::new(Raw))
            .build()
            .await
            .unwrap();
    for bad in [vec![0xff, 0xfe], b"a\0b".to_vec()] {
        let error = queue.add(bad.clone()).await.unwrap_err();
        assert_eq!(error.item, bad, "the item comes back");
        assert!(
            error.error.to_string().contains("PostgreSQL text"),
            "{}",
            error.error
        );
    }
    assert_eq!(queue.len().await.unwrap(), 0);
    queue.add(b"fine".to_vec()).await.unwrap();
    assert_eq!(queue.len().await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_is_reaped_with_backoff_and_the_old_holder_is_fenced() {
    let clock = FakeClock::new();
    let name = unique_name("reap");
    let build = || {
        PostgresQueue::<String>::builder(support::server().url(), &name)
            .fake_time(clock.clone())
            .lease(Duration::from_millis(300))
            .build()
    };
    let (a, b) = (build().await.unwrap(), build().await.unwrap());
    a.add("k".into()).await.unwrap();
    let held = a.get().await.unwrap().detach();
    // Process `a` stops renewing (as if frozen): drop it entirely.
    drop(a);
    clock.advance(Duration::from_millis(400));
    assert!(
        b.try_get().await.unwrap().is_none(),
        "reaped into a backoff"
    );
    assert_eq!(b.leases_reaped(), 1);
    assert_eq!(
        b.num_requeues(&held).await.unwrap(),
        1,
        "a reap counts a failure"
    );
    clock.advance(Duration::from_millis(10));
    let again = b.get().await.unwrap();
    assert_eq!(*again, "k");
    assert_eq!(again.requeues(), Some(1));
    conformance::end(again, Then::Forget).await;
    assert_eq!(b.num_requeues(&held).await.unwrap(), 0);
}

#[tokio::test]
async fn unreachable_postgres_is_a_clear_error_without_the_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://app:s3cretpass@127.0.0.1:{port}/app");
    let error = PostgresQueue::<String>::builder(&url, "q")
        .connect_timeout(Duration::from_secs(1))
        .build()
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(!text.contains("s3cretpass"), "{text}");
    assert!(!format!("{error:?}").contains("s3cretpass"));
    assert!(matches!(error, requeue_postgres::Error::Connect { .. }));
}

#[tokio::test]
async fn bad_configuration_is_refused() {
    let url = support::server().url();
    for (builder, what) in [
        (PostgresQueue::<String>::builder(&url, ""), "name"),
        (
            PostgresQueue::<String>::builder(&url, "ok").lease(Duration::from_millis(1)),
            "lease",
        ),
        (
            PostgresQueue::<String>::builder(&url, "ok").batch(0),
            "batch",
        ),
        (
            PostgresQueue::<String>::builder(&url, "ok").max_connections(1),
            "pool size",
        ),
    ] {
        assert!(builder.build().await.is_err(), "a bad {what} was accepted");
    }
    let error = PostgresQueue::<String>::builder(&url, "x".repeat(201))
        .build()
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        requeue_postgres::Error::InvalidQueueName(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_get_gives_its_item_back() {
    let (queue, _clock) = fresh().await;
    // A get that is cancelled while its statement runs: whatever it took
    // is given back, so the next get finds the item.
    let mut cancelled = 0;
    for _ in 0..40 {
        queue.add("only".into()).await.unwrap();
        let item = match tokio::time::timeout(Duration::from_micros(50), queue.get()).await {
            // Quick enough: not cancelled after all.
            Ok(item) => item.unwrap(),
            Err(_) => {
                cancelled += 1;
                conformance::next(&queue).await
            }
        };
        assert_eq!(*item, "only");
        conformance::end(item, Then::Forget).await;
    }
    assert!(
        cancelled > 0,
        "no get was cancelled: the test proved nothing"
    );
    assert!(matches!(queue.try_get().await, Ok(None)));
    assert!(matches!(
        queue.add_after("x".into(), Duration::ZERO).await,
        Ok(Added::Queued)
    ));
    queue.shut_down();
    assert!(matches!(queue.get().await, Err(QueueError::ShutDown)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_open_transaction_stalls_only_its_own_key() {
    let queue: PostgresQueue<String> =
        PostgresQueue::builder(support::server().url(), unique_name("open-tx"))
            .build()
            .await
            .unwrap();
    let mut conn = sqlx::PgConnection::connect(&support::server().url())
        .await
        .unwrap();
    let mut tx = conn.begin().await.unwrap();
    queue.add_in(&mut tx, "held-by-tx".into()).await.unwrap();
    // Meanwhile the queue serves every other key ...
    for round in 0..3 {
        queue.add(format!("other-{round}")).await.unwrap();
        let item = conformance::next(&queue).await;
        assert_eq!(*item, format!("other-{round}"));
        conformance::end(item, Then::Forget).await;
    }
    // ... while an add of the transaction's key waits for its commit (the
    // batch it went in gave up after its lock timeout and ran it alone).
    let waiting = tokio::spawn({
        let queue = queue.clone();
        async move { queue.add("held-by-tx".into()).await }
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        !waiting.is_finished(),
        "the add did not wait for the open transaction"
    );
    let item_meanwhile = {
        queue.add("during".into()).await.unwrap();
        conformance::next(&queue).await
    };
    assert_eq!(*item_meanwhile, "during");
    conformance::end(item_meanwhile, Then::Forget).await;
    tx.commit().await.unwrap();
    let added = conformance::within("the waiting add", waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        added,
        Added::Merged,
        "queued by the transaction: deduplicated"
    );
    let item = conformance::next(&queue).await;
    assert_eq!(*item, "held-by-tx");
    conformance::end(item, Then::Forget).await;
}

#[tokio::test]
async fn a_batch_with_bad_arguments_writes_nothing() {
    let queue: PostgresQueue<String> =
        PostgresQueue::builder(support::server().url(), unique_name("bad-batch"))
            .build()
            .await
            .unwrap();
    queue.add("a".into()).await.unwrap();
    let mut conn = sqlx::PgConnection::connect(&support::server().url())
        .await
        .unwrap();
    let id: i32 = sqlx::query_scalar("SELECT requeue.open_queue($1)")
        .bind(queue.name())
        .fetch_one(&mut conn)
        .await
        .unwrap();
    // An add to write, a claim to make, and dones whose arrays differ in length.
    let error = sqlx::query(
        "SELECT * FROM requeue.batch($1, NULL, ARRAY['b'], ARRAY['a'], ARRAY[1, 2]::bigint[], \
         ARRAY[1]::bigint[], ARRAY[false], 1, 30000000, 1, 0, 5000, 1000000, NULL, 32, 0, 100)",
    )
    .bind(id)
    .fetch_all(&mut conn)
    .await
    .unwrap_err();
    assert!(
        error.to_string().contains("as long as each other"),
        "{error}"
    );
    // Nothing happened: 'b' was not added and 'a' was not claimed.
    assert_eq!(queue.len().await.unwrap(), 1);
    let item = queue.try_get().await.unwrap().unwrap();
    assert_eq!(*item, "a");
    conformance::end(item, Then::Forget).await;
    assert!(queue.try_get().await.unwrap().is_none());
}

/// The batch statement's answers, row by row: the set-based paths (new
/// keys inserted at once, plain dones deleted at once) and the one-by-one
/// transitions give the codes `add` and `done` would.
#[tokio::test]
async fn a_batch_answers_as_its_operations_one_by_one_would() {
    let mut conn = sqlx::PgConnection::connect(&support::server().url())
        .await
        .unwrap();
    requeue_postgres::schema::migrate(&mut conn, &Default::default())
        .await
        .unwrap();
    let name = unique_name("batch-sql");
    let id: i32 = sqlx::query_scalar("SELECT requeue.open_queue($1)")
        .bind(&name)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    type Row = (String, Option<String>, Option<i64>, Option<i32>);
    let batch = "SELECT out_kind::text, out_item, out_token, out_code FROM requeue.batch(\
                 $1, 1000000, $2, $3, $4, $5, $6, $7, 30000000, 7, 0, 5000, 1000000, NULL, 32, 0, 100)";
    let none: Vec<String> = Vec::new();
    // x twice and y: x queued once (its second add deduplicated), y
    // queued; two claims take x then y (FIFO).
    let rows: Vec<Row> = sqlx::query_as(batch)
        .bind(id)
        .bind(vec!["x", "x", "y"])
        .bind(&none)
        .bind(Vec::<i64>::new())
        .bind(Vec::<i64>::new())
        .bind(Vec::<bool>::new())
        .bind(2)
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let codes: Vec<_> = rows.iter().filter(|r| r.0 == "a").map(|r| r.3).collect();
    assert_eq!(codes, [Some(1), Some(0), Some(1)]);
    let claimed: Vec<_> = rows
        .iter()
        .filter(|r| r.0 == "c")
        .map(|r| (r.1.clone().unwrap(), r.2.unwrap()))
        .collect();
    assert_eq!(
        claimed.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(),
        ["x", "y"]
    );
    let (x, y) = (claimed[0].1, claimed[1].1);
    // x re-added while held (parks: 2), then: x done under its token
    // (requeued: 2), y done under a wrong token (-1), z never held (-2).
    let rows: Vec<Row> = sqlx::query_as(batch)
        .bind(id)
        .bind(vec!["x"])
        .bind(vec!["x", "y", "z"])
        .bind(vec![x, y + 1000, 1])
        .bind(vec![7_i64, 7, 7])
        .bind(vec![false, false, false])
        .bind(0)
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let codes: Vec<_> = rows
        .iter()
        .filter(|r| r.0 != "m")
        .map(|r| (r.0.clone(), r.3))
        .collect();
    assert_eq!(
        codes,
        [
            ("a".to_string(), Some(2)),
            ("d".to_string(), Some(2)),
            ("d".to_string(), Some(-1)),
            ("d".to_string(), Some(-2))
        ]
    );
    // y done under its token: deleted by the set-based path (1).
    let rows: Vec<Row> = sqlx::query_as(batch)
        .bind(id)
        .bind(&none)
        .bind(vec!["y"])
        .bind(vec![y])
        .bind(vec![7_i64])
        .bind(vec![true])
        .bind(0)
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows[0].3, Some(1));
    let left: Vec<(String, String)> = sqlx::query_as(
        "SELECT key, state::text FROM requeue.items WHERE queue_id = $1 ORDER BY key",
    )
    .bind(id)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        left,
        [("x".to_string(), "q".to_string())],
        "only the requeued x is left"
    );
}

/// Idle getters are woken one per item that became ready, and each that
/// finds one wakes the next: every item of a transaction that added many
/// reaches a getter, with no timer to fall back on (fake time never
/// passes here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_getters_are_woken_for_every_item_a_commit_makes_ready() {
    let (queue, _clock) = fresh().await;
    let getters: Vec<_> = (0..8)
        .map(|_| {
            let queue = queue.clone();
            tokio::spawn(async move {
                let item = queue.get().await.unwrap();
                let key = (*item).clone();
                conformance::end(item, Then::Forget).await;
                key
            })
        })
        .collect();
    let mut conn = sqlx::PgConnection::connect(&support::server().url())
        .await
        .unwrap();
    // One transaction: one notification for all of them.
    let mut tx = conn.begin().await.unwrap();
    for n in 0..8 {
        queue.add_in(&mut tx, format!("k{n}")).await.unwrap();
    }
    tx.commit().await.unwrap();
    let mut got = Vec::new();
    for getter in getters {
        got.push(conformance::within("a woken getter", getter).await.unwrap());
    }
    got.sort();
    assert_eq!(got, (0..8).map(|n| format!("k{n}")).collect::<Vec<_>>());
}

/// Priorities with the in-memory queue's fairness: the highest priority
/// first, FIFO within one; after `fairness` hand-outs in a row that passed
/// over an older, lower-priority item, that oldest item goes next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priorities_are_served_highest_first_with_fairness_for_the_oldest() {
    use requeue::queue::AddOpts;
    let clock = FakeClock::new();
    let queue: PostgresQueue<String> =
        PostgresQueue::builder(support::server().url(), unique_name("fair"))
            .fake_time(clock.clone())
            .fairness(Some(3))
            .build()
            .await
            .unwrap();
    for n in 0..2 {
        queue
            .add_with(format!("low{n}"), AddOpts::new().priority(-1))
            .await
            .unwrap();
    }
    for n in 0..8 {
        queue
            .add_with(format!("high{n}"), AddOpts::new().priority(5))
            .await
            .unwrap();
    }
    let mut order = Vec::new();
    while let Some(item) = queue.try_get().await.unwrap() {
        order.push((*item).clone());
        conformance::end(item, Then::Forget).await;
    }
    assert_eq!(
        order,
        [
            "high0", "high1", "high2", "low0", "high3", "high4", "high5", "low1", "high6", "high7"
        ]
    );
    // The in-memory queue, with the same budget, serves the same order.
    let memory: requeue::queue::WorkQueue<String> = requeue::queue::WorkQueue::builder()
        .fairness(Some(3))
        .build();
    for n in 0..2 {
        memory
            .add_with(format!("low{n}"), AddOpts::new().priority(-1))
            .unwrap();
    }
    for n in 0..8 {
        memory
            .add_with(format!("high{n}"), AddOpts::new().priority(5))
            .unwrap();
    }
    let mut in_memory = Vec::new();
    while !memory.is_empty() {
        let item = conformance::next(&memory).await;
        in_memory.push((*item).clone());
        conformance::end(item, Then::Forget).await;
    }
    assert_eq!(in_memory, order);
    // Strict order without fairness.
    let strict: PostgresQueue<String> =
        PostgresQueue::builder(support::server().url(), unique_name("strict"))
            .fake_time(clock)
            .fairness(None)
            .build()
            .await
            .unwrap();
    strict
        .add_with("low".into(), AddOpts::new().priority(-1))
        .await
        .unwrap();
    for n in 0..5 {
        strict
            .add_with(format!("high{n}"), AddOpts::new().priority(1))
            .await
            .unwrap();
    }
    let mut order = Vec::new();
    while let Some(item) = strict.try_get().await.unwrap() {
        order.push((*item).clone());
        conformance::end(item, Then::Forget).await;
    }
    assert_eq!(order, ["high0", "high1", "high2", "high3", "high4", "low"]);
}
