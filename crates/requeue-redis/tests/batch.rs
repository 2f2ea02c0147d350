//! `ops::batch` against the same calls one after the other: on two
//! queues of one server, random rounds of adds, fenced dones (current and
//! stale tokens, with and without forget) and gets are applied to one
//! queue as a single batch and to the other call by call, on the same
//! fake clock, with short leases so that reaping and backoff join in.
//! Every answer and the whole stored state (but the wake-up marker and
//! the tokens' random halves) must match after every round.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;

use redis::aio::MultiplexedConnection;
use requeue_redis::inspect;
use requeue_redis::keys::QueueKeys;
use requeue_redis::ops::{self, BatchOp, BatchResult, GetArgs, Now, Token};
use std::collections::HashMap;
use support::{T0, connect, server};

const ARGS: GetArgs = GetArgs {
    lease_ms: 40,
    batch: 100,
    reap_base_ms: 5,
    reap_max_ms: 80,
};

/// The state that must match: every key but the marker, tokens by epoch.
async fn state(conn: &mut MultiplexedConnection, keys: &QueueKeys) -> Vec<String> {
    let mut out = Vec::new();
    let queue: Vec<String> = redis::cmd("LRANGE")
        .arg(keys.queue())
        .arg(0)
        .arg(-1)
        .query_async(conn)
        .await
        .unwrap();
    out.push(format!("queue {queue:?}"));
    let mut dirty: Vec<String> = redis::cmd("SMEMBERS")
        .arg(keys.dirty())
        .query_async(conn)
        .await
        .unwrap();
    dirty.sort();
    out.push(format!("dirty {dirty:?}"));
    for zset in [keys.processing(), keys.delayed()] {
        let members: Vec<(String, u64)> = redis::cmd("ZRANGE")
            .arg(zset)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query_async(conn)
            .await
            .unwrap();
        out.push(format!("zset {members:?}"));
    }
    for hash in [keys.failures(), keys.added_at(), keys.owners(), keys.meta()] {
        let mut fields: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(hash)
            .query_async(conn)
            .await
            .unwrap();
        if hash == keys.owners() {
            for (_, token) in &mut fields {
                *token = token.parse::<Token>().unwrap().epoch().to_string();
            }
        }
        fields.sort();
        out.push(format!("hash {fields:?}"));
    }
    out
}

/// One queue and the tokens it handed out, by item.
struct Side {
    keys: QueueKeys,
    held: HashMap<String, Token>,
}

/// What an operation or its sequence of calls answered, comparable across
/// the two queues (tokens by epoch).
fn answer(result: &BatchResult) -> String {
    match result {
        BatchResult::Add(code) => format!("add {code:?}"),
        BatchResult::Done(code) => format!("done {code:?}"),
        BatchResult::Get(items) => {
            let items: Vec<String> = items
                .iter()
                .map(|l| {
                    format!(
                        "{}@{}+{}",
                        String::from_utf8_lossy(&l.item),
                        l.token.epoch(),
                        l.queue_ms
                    )
                })
                .collect();
            format!("get {items:?}")
        }
    }
}

/// A random operation (item names shared by both sides; `Done` names an
/// item and whether to use its current token, resolved per side).
#[derive(Debug, Clone)]
enum Plan {
    Add(String),
    Done(String, bool, bool),
    Get(u32),
}

fn plan(rng: &mut fastrand::Rng) -> Vec<Plan> {
    (0..rng.usize(1..10))
        .map(|_| {
            let item = format!("k{}", rng.u8(0..8));
            match rng.u8(0..10) {
                0..=3 => Plan::Add(item),
                4..=6 => Plan::Done(item, rng.u8(0..5) > 0, rng.bool()),
                _ => Plan::Get(rng.u32(1..4)),
            }
        })
        .collect()
}

fn resolve(side: &Side, plan: &[Plan]) -> Vec<BatchOp> {
    plan.iter()
        .map(|p| match p {
            Plan::Add(item) => BatchOp::Add(item.as_bytes().to_vec()),
            Plan::Done(item, current, forget) => BatchOp::Done {
                item: item.as_bytes().to_vec(),
                token: match side.held.get(item) {
                    Some(token) if *current => *token,
                    _ => Token::new(1, 7),
                },
                forget: *forget,
            },
            Plan::Get(n) => BatchOp::Get(*n),
        })
        .collect()
}

fn remember(side: &mut Side, results: &[BatchResult]) {
    for result in results {
        if let BatchResult::Get(items) = result {
            for leased in items {
                side.held.insert(
                    String::from_utf8_lossy(&leased.item).into_owned(),
                    leased.token,
                );
            }
        }
    }
}

/// The same operations as single calls, one after the other.
async fn one_by_one(
    conn: &mut MultiplexedConnection,
    keys: &QueueKeys,
    ops_: &[BatchOp],
    now: Now,
) -> Vec<BatchResult> {
    let mut out = Vec::new();
    for op in ops_ {
        out.push(match op {
            BatchOp::Add(item) => {
                BatchResult::Add(ops::add(conn, keys, item, now).await.unwrap().code)
            }
            BatchOp::Done {
                item,
                token,
                forget,
            } => BatchResult::Done(
                ops::done_forgetting(conn, keys, item, *token, *forget, now)
                    .await
                    .unwrap()
                    .code,
            ),
            BatchOp::Get(n) => {
                let mut items = Vec::new();
                for _ in 0..*n {
                    match ops::get(conn, keys, &ARGS, now).await.unwrap().item {
                        Some(leased) => items.push(leased),
                        None => break,
                    }
                }
                BatchResult::Get(items)
            }
        });
    }
    out
}

#[tokio::test]
async fn a_batch_does_what_the_same_calls_one_after_the_other_do() {
    let mut conn = connect(&server().url()).await;
    let tag = fastrand::u64(..);
    let mut batched = Side {
        keys: QueueKeys::new(&format!("batched-{tag}")).unwrap(),
        held: HashMap::new(),
    };
    let mut single = Side {
        keys: QueueKeys::new(&format!("single-{tag}")).unwrap(),
        held: HashMap::new(),
    };
    let mut rng = fastrand::Rng::with_seed(0x5eed_ba7c);
    let mut clock = T0;
    for round in 0..300 {
        clock += rng.u64(0..25);
        let now = Now::Fake(clock);
        if rng.u8(0..8) == 0 {
            // A delayed add on both, outside the batch, for promotion.
            let item = format!("k{}", rng.u8(0..8));
            let delay = rng.u64(0..60);
            for side in [&batched, &single] {
                ops::add_after(&mut conn, &side.keys, item.as_bytes(), delay, now)
                    .await
                    .unwrap();
            }
        }
        let plan = plan(&mut rng);
        let ops_a = resolve(&batched, &plan);
        let reply = ops::batch(&mut conn, &batched.keys, &ARGS, &ops_a, true, now)
            .await
            .unwrap();
        let ops_b = resolve(&single, &plan);
        let sequential = one_by_one(&mut conn, &single.keys, &ops_b, now).await;
        let got: Vec<String> = reply.results.iter().map(answer).collect();
        let want: Vec<String> = sequential.iter().map(answer).collect();
        assert_eq!(got, want, "round {round}: {plan:?}");
        assert_eq!(
            reply.depth,
            Some(ops::len(&mut conn, &single.keys, now).await.unwrap()),
            "round {round}"
        );
        remember(&mut batched, &reply.results);
        remember(&mut single, &sequential);
        assert_eq!(
            state(&mut conn, &batched.keys).await,
            state(&mut conn, &single.keys).await,
            "round {round}: {plan:?}"
        );
        inspect::check_invariants(&mut conn, &batched.keys)
            .await
            .unwrap_or_else(|broken| panic!("round {round}: {broken}"));
    }
}

#[tokio::test]
async fn a_malformed_batch_is_refused_before_anything_is_sent_or_written() {
    let mut conn = connect(&server().url()).await;
    let keys = QueueKeys::new(&format!("batch-limits-{}", fastrand::u64(..))).unwrap();
    let too_many = vec![BatchOp::Get(600), BatchOp::Get(600)];
    let refused = ops::batch(&mut conn, &keys, &ARGS, &too_many, false, Now::Fake(T0)).await;
    assert!(matches!(
        refused,
        Err(requeue_redis::error::Error::Protocol(_))
    ));
    let zero = [BatchOp::Add(b"a".to_vec()), BatchOp::Get(0)];
    assert!(
        ops::batch(&mut conn, &keys, &ARGS, &zero, false, Now::Fake(T0))
            .await
            .is_err()
    );
    assert_eq!(
        ops::len(&mut conn, &keys, Now::Fake(T0)).await.unwrap(),
        0,
        "the add before it did not land"
    );
}
