//! Every key and number field of the Redis layout, corrupted on a live
//! queue holding items in every state, against every script: a script
//! either works or fails with `Error::Corrupt` naming the key (and field)
//! having written nothing; once the corruption is undone, every invariant
//! holds again. Before the scripts checked before writing, `get` popped
//! items and then failed on a bad `meta.seq`, and those items were gone.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;

use redis::aio::MultiplexedConnection;
use requeue_redis::error::Error;
use requeue_redis::inspect;
use requeue_redis::keys::QueueKeys;
use requeue_redis::ops::{
    self, BatchOp, Bucket, Exponential, FastSlow, GetArgs, Leased, LimiterSpec, Now, ReapArgs,
};
use support::{T0, connect, server};

/// A stored key: its type and its content in a canonical order.
type KeyDump = (String, Vec<Vec<u8>>);

/// Everything the queue holds, key by key.
async fn dump(conn: &mut MultiplexedConnection, keys: &QueueKeys) -> Vec<KeyDump> {
    let mut all = Vec::new();
    for key in keys.all() {
        let kind: String = redis::cmd("TYPE").arg(key).query_async(conn).await.unwrap();
        let mut cmd = match kind.as_str() {
            "list" => redis::cmd("LRANGE"),
            "set" => redis::cmd("SMEMBERS"),
            "zset" => redis::cmd("ZRANGE"),
            "hash" => redis::cmd("HGETALL"),
            "string" => redis::cmd("GET"),
            _ => {
                all.push((kind, Vec::new()));
                continue;
            }
        };
        cmd.arg(key);
        match kind.as_str() {
            "list" => {
                cmd.arg(0).arg(-1);
            }
            "zset" => {
                cmd.arg(0).arg(-1).arg("WITHSCORES");
            }
            _ => {}
        }
        let mut content: Vec<Vec<u8>> = if kind == "string" {
            vec![cmd.query_async(conn).await.unwrap()]
        } else {
            cmd.query_async(conn).await.unwrap()
        };
        match kind.as_str() {
            "set" => content.sort(),
            "hash" => {
                let mut pairs: Vec<Vec<u8>> = content.chunks(2).map(|pair| pair.concat()).collect();
                pairs.sort();
                content = pairs;
            }
            _ => {}
        }
        all.push((kind, content));
    }
    all
}

/// One way to break the queue's state.
#[derive(Clone, Debug)]
enum Corruption {
    /// Key `part` replaced by a string.
    WrongType(&'static str),
    /// Field `field` of hash `part` set to a value that is not a number.
    NotANumber(&'static str, &'static str),
    /// Key `part` deleted.
    Missing(&'static str),
}

impl Corruption {
    fn part(&self) -> &'static str {
        match self {
            Corruption::WrongType(part)
            | Corruption::NotANumber(part, _)
            | Corruption::Missing(part) => part,
        }
    }

    fn field(&self) -> Option<&'static str> {
        match self {
            Corruption::WrongType(_) | Corruption::Missing(_) => None,
            Corruption::NotANumber(_, field) => Some(field),
        }
    }
}

fn key_of(keys: &QueueKeys, part: &str) -> String {
    format!("rq:{{{}}}:{part}", keys.name())
}

const LONG: GetArgs = GetArgs {
    lease_ms: 60_000,
    batch: 100,
    reap_base_ms: 5,
    reap_max_ms: 1_000,
};

const SHORT: GetArgs = GetArgs {
    lease_ms: 100,
    ..LONG
};

fn limiter() -> LimiterSpec {
    LimiterSpec {
        exponential: Some(Exponential {
            base_ms: 5,
            max_ms: 1_000,
        }),
        fast_slow: Some(FastSlow {
            fast_ms: 1,
            slow_ms: 50,
            max_fast: 3,
        }),
        bucket: Some(Bucket {
            qps: 10.0,
            burst: 2,
        }),
    }
}

/// The queue `name` with items in every state, at `T0 + 500`:
/// `a`, `b` queued; `c` held and re-added (parked); `d` delayed; `e` held;
/// `f` held with its lease expired (not yet reaped); `g` delayed by the
/// limiter (a failure counted, the bucket used); `h` reaped once (a failure
/// and `lease_expired_total` counted), delayed. Returns the leases of `c`
/// and `e`.
async fn populated(conn: &mut MultiplexedConnection, keys: &QueueKeys) -> (Leased, Leased) {
    let at = |ms: u64| Now::Fake(T0 + ms);
    for item in ["h", "c", "e", "f"] {
        ops::add(conn, keys, item.as_bytes(), at(0)).await.unwrap();
    }
    let take = async |conn: &mut MultiplexedConnection, args: &GetArgs, now: Now| {
        ops::get(conn, keys, args, now).await.unwrap().item.unwrap()
    };
    let h = take(conn, &SHORT, at(0)).await;
    assert_eq!(h.item, b"h");
    let c = take(conn, &LONG, at(200)).await; // reaps h (expired at 100)
    let e = take(conn, &LONG, at(200)).await;
    let f = take(conn, &SHORT, at(200)).await;
    assert_eq!(
        (c.item.as_slice(), e.item.as_slice(), f.item.as_slice()),
        (&b"c"[..], &b"e"[..], &b"f"[..])
    );
    ops::add(conn, keys, b"c", at(300)).await.unwrap(); // parked
    ops::add_after(conn, keys, b"d", 10_000, at(300))
        .await
        .unwrap();
    ops::add_rate_limited(conn, keys, b"g", &limiter(), at(300))
        .await
        .unwrap();
    ops::add(conn, keys, b"a", at(300)).await.unwrap();
    ops::add(conn, keys, b"b", at(300)).await.unwrap();
    inspect::check_invariants(conn, keys).await.unwrap();
    (c, e)
}

/// The parts of a queue's keys.
const PARTS: [&str; 10] = [
    "queue",
    "dirty",
    "processing",
    "owners",
    "delayed",
    "failures",
    "limiter",
    "meta",
    "marker",
    "added_at",
];

/// The corruptions: every key of the layout of the wrong type, and
/// missing, and every number a script reads or increments not a number.
fn corruptions() -> Vec<Corruption> {
    let mut all: Vec<Corruption> = [
        "queue",
        "dirty",
        "processing",
        "owners",
        "delayed",
        "failures",
        "limiter",
        "meta",
        "marker",
        "added_at",
    ]
    .into_iter()
    .map(Corruption::WrongType)
    .collect();
    all.extend(PARTS.map(Corruption::Missing));
    all.extend([
        Corruption::NotANumber("meta", "seq"),
        Corruption::NotANumber("meta", "lease_expired_total"),
        Corruption::NotANumber("meta", "retries_total"),
        Corruption::NotANumber("failures", "f"),
        Corruption::NotANumber("failures", "a"),
        Corruption::NotANumber("limiter", "tat_us"),
        Corruption::NotANumber("limiter", "zero_used"),
    ]);
    all
}

async fn corrupt(conn: &mut MultiplexedConnection, keys: &QueueKeys, how: &Corruption) {
    let key = key_of(keys, how.part());
    match how {
        Corruption::WrongType(_) => {
            let _: () = redis::pipe()
                .atomic()
                .cmd("DEL")
                .arg(&key)
                .cmd("SET")
                .arg(&key)
                .arg("garbage")
                .query_async(conn)
                .await
                .unwrap();
        }
        Corruption::Missing(_) => {
            let _: () = redis::cmd("DEL").arg(&key).query_async(conn).await.unwrap();
        }
        Corruption::NotANumber(_, field) => {
            let _: () = redis::cmd("HSET")
                .arg(&key)
                .arg(*field)
                .arg("x1")
                .query_async(conn)
                .await
                .unwrap();
        }
    }
}

/// Puts back what `corrupt` changed, from the dump taken before.
async fn undo(
    conn: &mut MultiplexedConnection,
    keys: &QueueKeys,
    how: &Corruption,
    before: &[KeyDump],
) {
    let key = key_of(keys, how.part());
    let index = keys.all().iter().position(|k| *k == key).unwrap();
    match how {
        Corruption::WrongType(_) | Corruption::Missing(_) => {
            let _: () = redis::cmd("DEL").arg(&key).query_async(conn).await.unwrap();
            let (kind, content) = &before[index];
            let mut cmd = match kind.as_str() {
                "list" => redis::cmd("RPUSH"),
                "set" => redis::cmd("SADD"),
                "zset" => redis::cmd("ZADD"),
                "hash" => redis::cmd("HSET"),
                _ => return, // did not exist
            };
            cmd.arg(&key);
            match kind.as_str() {
                // Dumped as member, score: ZADD wants score, member.
                "zset" => {
                    for pair in content.chunks(2) {
                        cmd.arg(&pair[1]).arg(&pair[0]);
                    }
                }
                // Dumped as field‖value, which cannot be split back: read
                // the hash case through HGETALL instead (see below).
                "hash" => unreachable!("hashes are restored field by field"),
                _ => {
                    for member in content {
                        cmd.arg(member);
                    }
                }
            }
            let _: () = cmd.query_async(conn).await.unwrap();
        }
        Corruption::NotANumber(..) => unreachable!("restored field by field"),
    }
}

/// The fields of a hash, read before it is corrupted, so it can be put back.
async fn hash_fields(conn: &mut MultiplexedConnection, key: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    redis::cmd("HGETALL")
        .arg(key)
        .query_async(conn)
        .await
        .unwrap()
}

async fn restore_hash(conn: &mut MultiplexedConnection, key: &str, fields: &[(Vec<u8>, Vec<u8>)]) {
    let _: () = redis::cmd("DEL").arg(key).query_async(conn).await.unwrap();
    if !fields.is_empty() {
        let mut cmd = redis::cmd("HSET");
        cmd.arg(key);
        for (field, value) in fields {
            cmd.arg(field).arg(value);
        }
        let _: () = cmd.query_async(conn).await.unwrap();
    }
}

/// What one script call did: nothing (corrupt), or something.
enum Outcome {
    Corrupt { key: String, field: Option<String> },
    Worked,
}

fn outcome<R>(script: &str, result: Result<R, Error>) -> Outcome {
    match result {
        Ok(_) => Outcome::Worked,
        Err(Error::Corrupt { key, field, .. }) => Outcome::Corrupt { key, field },
        Err(other) => panic!("{script}: expected success or Error::Corrupt, got {other}"),
    }
}

/// Runs every script once, in turn, checking after each that a failure
/// changed nothing. Returns the corruption errors seen.
async fn every_script(
    conn: &mut MultiplexedConnection,
    keys: &QueueKeys,
    (c, e): &(Leased, Leased),
) -> Vec<(String, Option<String>)> {
    let now = Now::Fake(T0 + 500);
    let mut seen = Vec::new();
    for script in [
        "add",
        "add_old",
        "add_after",
        "add_batch",
        "add_rate_limited",
        "get",
        "done",
        "done_get",
        "batch",
        "batch_adds",
        "batch_dones",
        "batch_gets",
        "extend",
        "release",
        "reap",
        "len",
        "num_requeues",
        "forget",
    ] {
        let before = dump(conn, keys).await;
        let result = match script {
            "add" => outcome(script, ops::add(conn, keys, b"x", now).await),
            "add_old" => outcome(script, ops::add(conn, keys, b"a", now).await),
            "add_after" => outcome(script, ops::add_after(conn, keys, b"y", 5, now).await),
            "add_batch" => outcome(
                script,
                ops::add_batch(conn, keys, &[&b"z"[..], b"a"], now).await,
            ),
            "add_rate_limited" => outcome(
                script,
                ops::add_rate_limited(conn, keys, b"a", &limiter(), now).await,
            ),
            "get" => outcome(script, ops::get(conn, keys, &LONG, now).await),
            "done" => outcome(script, ops::done(conn, keys, &c.item, c.token, now).await),
            "done_get" => outcome(
                script,
                ops::done_get(conn, keys, &e.item, e.token, &LONG, now).await,
            ),
            "batch" => {
                let ops = [
                    BatchOp::Add(b"x".to_vec()),
                    BatchOp::Done {
                        item: c.item.clone(),
                        token: c.token,
                        forget: true,
                    },
                    BatchOp::Get(2),
                    BatchOp::Add(b"a".to_vec()),
                ];
                outcome(script, ops::batch(conn, keys, &LONG, &ops, true, now).await)
            }
            "batch_adds" => {
                let ops = [BatchOp::Add(b"v".to_vec()), BatchOp::Add(b"w".to_vec())];
                outcome(
                    script,
                    ops::batch(conn, keys, &LONG, &ops, false, now).await,
                )
            }
            "batch_dones" => {
                let ops = [
                    BatchOp::Done {
                        item: e.item.clone(),
                        token: e.token,
                        forget: true,
                    },
                    BatchOp::Done {
                        item: c.item.clone(),
                        token: c.token,
                        forget: false,
                    },
                ];
                outcome(
                    script,
                    ops::batch(conn, keys, &LONG, &ops, false, now).await,
                )
            }
            "batch_gets" => {
                let ops = [BatchOp::Get(3)];
                outcome(
                    script,
                    ops::batch(conn, keys, &LONG, &ops, false, now).await,
                )
            }
            "extend" => outcome(
                script,
                ops::extend(
                    conn,
                    keys,
                    60_000,
                    &[(c.item.clone(), c.token), (e.item.clone(), e.token)],
                    now,
                )
                .await,
            ),
            "release" => outcome(
                script,
                ops::release(conn, keys, &e.item, e.token, now).await,
            ),
            "reap" => outcome(
                script,
                ops::reap(conn, keys, &ReapArgs::default(), now).await,
            ),
            "len" => outcome(script, ops::len(conn, keys, now).await),
            "num_requeues" => outcome(script, ops::num_requeues(conn, keys, b"a").await),
            "forget" => outcome(script, ops::forget(conn, keys, b"g").await),
            _ => unreachable!(),
        };
        if let Outcome::Corrupt { key, field } = result {
            let after = dump(conn, keys).await;
            assert_eq!(before, after, "{script} failed on {key} but wrote");
            seen.push((key, field));
        }
    }
    seen
}

#[tokio::test]
async fn every_corruption_of_every_key_leaves_the_state_as_it_was() {
    let url = server().url();
    for (n, how) in corruptions().into_iter().enumerate() {
        let mut conn = connect(&url).await;
        let keys = QueueKeys::new(&format!("corrupt-{n}")).unwrap();
        let leases = populated(&mut conn, &keys).await;
        let key = key_of(&keys, how.part());
        let before = dump(&mut conn, &keys).await;
        let was_hash = before[keys.all().iter().position(|k| *k == key).unwrap()].0 == "hash";
        let saved_hash = if was_hash {
            hash_fields(&mut conn, &key).await
        } else {
            Vec::new()
        };
        corrupt(&mut conn, &keys, &how).await;

        let seen = every_script(&mut conn, &keys, &leases).await;
        // A missing key is an empty one to the scripts: nothing to refuse
        // (what it breaks, `diagnose` finds and `repair` fixes).
        assert!(
            !seen.is_empty() || matches!(how, Corruption::Missing(_)),
            "{how:?}: no script noticed the corruption"
        );
        for (k, field) in &seen {
            assert_eq!(*k, key, "{how:?}: the error names another key");
            if let Some(expected) = how.field() {
                assert_eq!(field.as_deref(), Some(expected), "{how:?}");
            }
        }

        // Undone, the queue is whole: every rule holds.
        if matches!(how, Corruption::Missing(_)) {
            // The scripts that worked built on the empty key: putting the
            // old one back cannot make a whole state. `repair` does (below).
            continue;
        }
        if let Corruption::NotANumber(_, field) = &how {
            // Only the field: the scripts that worked moved the others on.
            let old = saved_hash.iter().find(|(f, _)| f == field.as_bytes());
            let mut cmd = redis::cmd(if old.is_some() { "HSET" } else { "HDEL" });
            cmd.arg(&key).arg(*field);
            if let Some((_, value)) = old {
                cmd.arg(value);
            }
            let _: () = cmd.query_async(&mut conn).await.unwrap();
        } else if was_hash {
            restore_hash(&mut conn, &key, &saved_hash).await;
        } else {
            undo(&mut conn, &keys, &how, &before).await;
        }
        if let Err(broken) = inspect::check_invariants(&mut conn, &keys).await {
            panic!("{how:?}: after undoing it, invariants broken: {broken}");
        }
    }
}

#[tokio::test]
async fn a_corrupt_meta_seq_no_longer_swallows_ready_items() {
    // The reported case: `HSET meta seq abc` on a live queue.
    let mut conn = connect(&server().url()).await;
    let keys = QueueKeys::new("corrupt-seq").unwrap();
    for i in 0..28 {
        ops::add(
            &mut conn,
            &keys,
            format!("ns-1/obj-{i}").as_bytes(),
            Now::Fake(T0),
        )
        .await
        .unwrap();
    }
    let _: () = redis::cmd("HSET")
        .arg(keys.meta())
        .arg("seq")
        .arg("abc")
        .query_async(&mut conn)
        .await
        .unwrap();
    for _ in 0..5 {
        match ops::get(&mut conn, &keys, &LONG, Now::Fake(T0)).await {
            Err(Error::Corrupt {
                key,
                field,
                problem,
            }) => {
                assert_eq!(key, keys.meta());
                assert_eq!(field.as_deref(), Some("seq"));
                assert_eq!(problem, "is not an integer");
            }
            other => panic!("expected Error::Corrupt, got {other:?}"),
        }
    }
    let depth: u64 = redis::cmd("LLEN")
        .arg(keys.queue())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(depth, 28, "every item is still queued");
    let _: () = redis::cmd("HSET")
        .arg(keys.meta())
        .arg("seq")
        .arg("7")
        .query_async(&mut conn)
        .await
        .unwrap();
    let got = ops::get(&mut conn, &keys, &LONG, Now::Fake(T0))
        .await
        .unwrap();
    assert_eq!(got.item.map(|l| l.item), Some(b"ns-1/obj-0".to_vec()));
    assert_eq!(got.depth, 27);
    inspect::check_invariants(&mut conn, &keys).await.unwrap();
}

/// A unique queue name per test run.
fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), fastrand::u32(..))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_whose_retry_cannot_be_recorded_gives_the_item_back_and_says_so() {
    // The reported case: `HSET failures <key> x` while the key is held. The
    // holder used to retry the failing re-add for as long as its lease was
    // valid, and the renewer kept the lease valid: held forever.
    use requeue::engine::{QueueError, Then};
    use requeue_redis::queue::RedisQueue;
    let clock = requeue::clock::FakeClock::new();
    let queue: RedisQueue<String> = RedisQueue::builder(server().url(), unique("corrupt-held"))
        .fake_time(clock.clone())
        .build()
        .await
        .unwrap();
    let keys = QueueKeys::new(queue.name()).unwrap();
    let mut conn = connect(&server().url()).await;
    queue.add("ns-2/obj-56".to_string()).await.unwrap();
    let item = queue.get().await.unwrap();
    let _: () = redis::cmd("HSET")
        .arg(keys.failures())
        .arg("ns-2/obj-56")
        .arg("x")
        .query_async(&mut conn)
        .await
        .unwrap();
    match item.end_async(Then::Retry).await {
        Err(QueueError::Corrupt {
            key,
            field,
            problem,
        }) => {
            assert_eq!(key, keys.failures());
            assert_eq!(field.as_deref(), Some("ns-2/obj-56"));
            assert_eq!(problem, "is not an integer");
        }
        other => panic!("expected QueueError::Corrupt, got {other:?}"),
    }
    assert_eq!(queue.held(), 0, "no lease is kept (or renewed) for it");
    let (depth, leased): (u64, u64) = redis::pipe()
        .cmd("LLEN")
        .arg(keys.queue())
        .cmd("ZCARD")
        .arg(keys.processing())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        (depth, leased),
        (1, 0),
        "given back to the queue, not leased"
    );
    assert_eq!(
        inspect::diagnose(&mut conn, &keys).await.unwrap().problems,
        vec![inspect::Problem::NotANumber {
            key: keys.failures().to_owned(),
            field: b"ns-2/obj-56".to_vec()
        }],
        "the bad count is the only thing wrong"
    );
    // A success clears the bad count with the forget (client-go's Forget).
    let again = queue.get().await.unwrap();
    assert_eq!(*again, "ns-2/obj-56");
    again.end_async(Then::Forget).await.unwrap();
    assert_eq!(
        queue
            .num_requeues(&"ns-2/obj-56".to_string())
            .await
            .unwrap(),
        0
    );
    queue.shut_down();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_on_corrupt_state_returns_the_error_and_takes_nothing() {
    use requeue::engine::QueueError;
    use requeue_redis::queue::RedisQueue;
    let clock = requeue::clock::FakeClock::new();
    let queue: RedisQueue<String> = RedisQueue::builder(server().url(), unique("corrupt-get"))
        .fake_time(clock.clone())
        .build()
        .await
        .unwrap();
    let keys = QueueKeys::new(queue.name()).unwrap();
    let mut conn = connect(&server().url()).await;
    for i in 0..3 {
        queue.add(format!("k{i}")).await.unwrap();
    }
    let _: () = redis::cmd("SET")
        .arg(keys.owners())
        .arg("garbage")
        .query_async(&mut conn)
        .await
        .unwrap();
    match queue.get().await {
        Err(QueueError::Corrupt {
            key,
            field: None,
            problem,
        }) => {
            assert_eq!(key, keys.owners());
            assert_eq!(problem, "is a string where a hash belongs");
        }
        other => panic!(
            "expected QueueError::Corrupt, got {:?}",
            other.map(|i| i.clone())
        ),
    }
    let depth: u64 = redis::cmd("LLEN")
        .arg(keys.queue())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(depth, 3);
    queue.shut_down();
}

#[tokio::test]
async fn repair_fixes_every_corruption_so_that_every_script_works_again() {
    let url = server().url();
    for (n, how) in corruptions().into_iter().enumerate() {
        let mut conn = connect(&url).await;
        let keys = QueueKeys::new(&format!("repair-{n}")).unwrap();
        let leases = populated(&mut conn, &keys).await;
        corrupt(&mut conn, &keys, &how).await;
        // A diagnosis names it and changes nothing.
        let before = dump(&mut conn, &keys).await;
        let found = inspect::diagnose(&mut conn, &keys).await.unwrap();
        if found.is_healthy() {
            // Deleting these loses what they held (delays, counts, the
            // limiter's state, wake-ups) but breaks no rule.
            assert!(
                matches!(
                    how,
                    Corruption::Missing("delayed" | "failures" | "limiter" | "marker")
                ),
                "{how:?}: not found"
            );
            assert!(every_script(&mut conn, &keys, &leases).await.is_empty());
            inspect::check_invariants(&mut conn, &keys).await.unwrap();
            continue;
        }
        let key = key_of(&keys, how.part());
        assert!(
            matches!(how, Corruption::Missing(_))
                || found.problems.iter().any(|p| p.to_string().contains(&key)),
            "{how:?}: {:?}",
            found.problems
        );
        assert_eq!(
            before,
            dump(&mut conn, &keys).await,
            "{how:?}: diagnose wrote"
        );
        // So does the cheap overview.
        let overview = inspect::inspect(&mut conn, &keys, 10).await.unwrap();
        if !matches!(
            how,
            Corruption::NotANumber("failures" | "limiter", _) | Corruption::Missing(_)
        ) {
            assert!(
                !overview.problems.is_empty(),
                "{how:?}: overview saw nothing"
            );
        }

        let report = inspect::repair(&mut conn, &keys).await.unwrap();
        assert!(!report.actions.is_empty(), "{how:?}");
        if let Err(broken) = inspect::check_invariants(&mut conn, &keys).await {
            panic!("{how:?}: after repair ({:?}): {broken}", report.actions);
        }
        assert!(
            inspect::diagnose(&mut conn, &keys)
                .await
                .unwrap()
                .is_healthy()
        );
        let seen = every_script(&mut conn, &keys, &leases).await;
        assert!(
            seen.is_empty(),
            "{how:?}: still corrupt after repair: {seen:?}"
        );
        inspect::check_invariants(&mut conn, &keys).await.unwrap();
    }
}

#[tokio::test]
async fn a_deleted_ready_list_strands_dirty_items_until_repair_queues_them() {
    // The reported case: `DEL rq:{Q}:queue` left 649 keys dirty forever,
    // every later add collapsed into them, and inspect showed "parked 649"
    // beside "processing 11" without a word.
    let mut conn = connect(&server().url()).await;
    let keys = QueueKeys::new("repair-deleted-queue").unwrap();
    let now = Now::Fake(T0);
    for i in 0..20 {
        ops::add(&mut conn, &keys, format!("k{i}").as_bytes(), now)
            .await
            .unwrap();
    }
    let held = ops::get(&mut conn, &keys, &LONG, now)
        .await
        .unwrap()
        .item
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg(keys.queue())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        ops::add(&mut conn, &keys, b"k5", now).await.unwrap().code,
        ops::AddCode::Deduplicated,
        "an add collapses into the stranded item"
    );
    let overview = inspect::inspect(&mut conn, &keys, 10).await.unwrap();
    assert_eq!((overview.parked, overview.processing_count), (19, 1));
    assert_eq!(
        overview.problems,
        vec![inspect::Problem::MoreParkedThanLeased {
            parked: 19,
            leased: 1
        }]
    );
    let found = inspect::diagnose(&mut conn, &keys).await.unwrap();
    let stranded = found
        .problems
        .iter()
        .filter(|p| matches!(p, inspect::Problem::Stranded { .. }))
        .count();
    assert_eq!(stranded, 19);
    let report = inspect::repair(&mut conn, &keys).await.unwrap();
    assert_eq!(
        report
            .actions
            .iter()
            .filter(|a| a.starts_with("queued stranded"))
            .count(),
        19
    );
    inspect::check_invariants(&mut conn, &keys).await.unwrap();
    let mut got = 0;
    while let Some(item) = ops::get(&mut conn, &keys, &LONG, now).await.unwrap().item {
        assert_ne!(item.item, held.item);
        got += 1;
    }
    assert_eq!(got, 19, "every stranded item is handed out again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_that_meets_corrupt_state_does_not_stall_gets() {
    // A failed renewal used to mark the connection unhealthy, and gets
    // wait for a healthy connection: with corrupt state that never came,
    // so every get hung in silence. Now gets go on and report it.
    use requeue::engine::QueueError;
    use requeue_redis::queue::RedisQueue;
    use std::time::Duration;
    let clock = requeue::clock::FakeClock::new();
    let queue: RedisQueue<String> = RedisQueue::builder(server().url(), unique("corrupt-renew"))
        .fake_time(clock.clone())
        .lease(Duration::from_secs(3))
        .build()
        .await
        .unwrap();
    let keys = QueueKeys::new(queue.name()).unwrap();
    let mut conn = connect(&server().url()).await;
    queue.add("held".to_string()).await.unwrap();
    queue.add("next".to_string()).await.unwrap();
    let _held = queue.get().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg(keys.owners())
        .arg("garbage")
        .query_async(&mut conn)
        .await
        .unwrap();
    // Renewals run every lease/3 on the queue's clock.
    for _ in 0..5 {
        clock.advance(Duration::from_millis(1_100));
        match tokio::time::timeout(Duration::from_secs(5), queue.get()).await {
            Ok(Err(QueueError::Corrupt { key, .. })) => assert_eq!(key, keys.owners()),
            Ok(other) => panic!("expected Corrupt, got {:?}", other.map(|i| i.clone())),
            Err(_) => panic!("get stalled after a renewal met corrupt state"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await; // let the renewer run
    }
    queue.shut_down();
}
