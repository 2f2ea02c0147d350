//! Bounded work per script call: with 200,000 delayed items falling due at
//! once, every script promotes at most its batch, and none shows up in
//! Redis's SLOWLOG (threshold 20 ms, generous for a loaded 2-core machine;
//! a call that walked all 200,000 items takes hundreds of ms).
#![allow(clippy::unwrap_used)]

mod support;

use requeue_redis::local_server::{LocalServer, LocalServerOptions};
use requeue_redis::ops::{self, GetArgs};
use support::{Fx, T0};

const DUE: usize = 200_000;

#[tokio::test]
async fn scripts_are_bounded_when_a_flood_falls_due() {
    // Its own server: the SLOWLOG and its threshold are per server.
    let server = LocalServer::start_with(LocalServerOptions {
        appendonly: false,
        ..LocalServerOptions::default()
    })
    .unwrap();
    let mut q = Fx::on(&server.url(), "flood").await;
    // All due one ms ago, written directly (not through the scripts).
    for chunk in (0..DUE).collect::<Vec<_>>().chunks(10_000) {
        let mut zadd = redis::cmd("ZADD");
        zadd.arg(q.keys.delayed());
        for i in chunk {
            zadd.arg(T0 - 1).arg(format!("item-{i:06}"));
        }
        zadd.query_async::<()>(&mut q.conn).await.unwrap();
    }
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-log-slower-than")
        .arg(20_000)
        .query_async::<()>(&mut q.conn)
        .await
        .unwrap();
    redis::cmd("SLOWLOG")
        .arg("RESET")
        .query_async::<()>(&mut q.conn)
        .await
        .unwrap();

    let args = GetArgs {
        batch: 100,
        ..GetArgs::default()
    };
    // Plain counts (ZCARD, LLEN): the fixture's invariant checks would
    // read all 200,000 items after every step.
    async fn counts(q: &mut Fx) -> (u64, u64) {
        let delayed: u64 = redis::cmd("ZCARD")
            .arg(q.keys.delayed())
            .query_async(&mut q.conn)
            .await
            .unwrap();
        let ready: u64 = redis::cmd("LLEN")
            .arg(q.keys.queue())
            .query_async(&mut q.conn)
            .await
            .unwrap();
        (delayed, ready)
    }
    for round in 0..20 {
        let (_, ready_before) = counts(&mut q).await;
        let at = q.at();
        let reply = ops::get(&mut q.conn, &q.keys, &args, at).await.unwrap();
        assert!(reply.item.is_some());
        // One get: at most `batch` promoted, one handed out.
        assert!(
            reply.depth <= ready_before + 100,
            "round {round}: {} ready after {ready_before}",
            reply.depth
        );
        // An add promotes a bounded number too (its catch-up).
        let (before, _) = counts(&mut q).await;
        ops::add(
            &mut q.conn,
            &q.keys,
            format!("fresh-{round}").as_bytes(),
            at,
        )
        .await
        .unwrap();
        let (after, _) = counts(&mut q).await;
        assert!(before - after <= 100, "an add promoted {}", before - after);
        // So does a batch of the pipeline's largest size (256 gets).
        let (before, _) = counts(&mut q).await;
        let batch = [
            ops::BatchOp::Add(format!("more-{round}").into_bytes()),
            ops::BatchOp::Get(256),
        ];
        ops::batch(&mut q.conn, &q.keys, &args, &batch, true, at)
            .await
            .unwrap();
        let (after, _) = counts(&mut q).await;
        assert!(before - after <= 100, "a batch promoted {}", before - after);
    }
    assert!(counts(&mut q).await.0 >= (DUE - 20 * 300) as u64);
    // len, reap and done_get are bounded the same way.
    let at = q.at();
    ops::len(&mut q.conn, &q.keys, at).await.unwrap();
    let slow: Vec<redis::Value> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(100)
        .query_async(&mut q.conn)
        .await
        .unwrap();
    // Only scripts count: the test's own invariant checks read everything.
    let scripts: Vec<_> = slow
        .iter()
        .filter(|entry| format!("{entry:?}").contains("EVAL"))
        .collect();
    assert!(scripts.is_empty(), "scripts over 20 ms: {scripts:?}");
}
