//! The scripts on a Redis in cluster mode. A cluster node refuses any script
//! whose keys hash to different slots (`CROSSSLOT`) or that touches keys it
//! was not given, so running the engine's conformance checks against a
//! cluster-enabled node (owning every slot) proves each script declares
//! all its keys and that a queue's keys share one hash tag.
#![allow(clippy::unwrap_used)]

use requeue::clock::FakeClock;
use requeue_redis::RedisQueue;
use requeue_redis::local_server::{LocalServer, LocalServerOptions};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// One cluster-mode node per test binary, owning all 16,384 slots.
fn cluster_node() -> &'static LocalServer {
    static NODE: OnceLock<LocalServer> = OnceLock::new();
    NODE.get_or_init(|| {
        let node = LocalServer::start_with(LocalServerOptions {
            appendonly: false,
            extra_args: vec!["--cluster-enabled".into(), "yes".into()],
            ..LocalServerOptions::default()
        })
        .unwrap();
        let client = redis::Client::open(node.url()).unwrap();
        let mut conn = client.get_connection().unwrap();
        redis::cmd("CLUSTER")
            .arg("ADDSLOTSRANGE")
            .arg(0)
            .arg(16383)
            .query::<()>(&mut conn)
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut conn).unwrap();
            if info.contains("cluster_state:ok") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster never became ok: {info}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        node
    })
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), fastrand::u32(..))
}

async fn fresh() -> (RedisQueue<String>, FakeClock) {
    let clock = FakeClock::new();
    let queue = RedisQueue::builder(cluster_node().url(), unique("cluster"))
        .fake_time(clock.clone())
        .build()
        .await
        .unwrap();
    (queue, clock)
}

requeue::conformance_tests!(fresh);

#[test]
fn the_node_does_refuse_cross_slot_scripts() {
    let client = redis::Client::open(cluster_node().url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let refused = redis::cmd("EVAL")
        .arg("return 1")
        .arg(2)
        .arg("rq:{a}:queue")
        .arg("rq:{b}:queue")
        .query::<i64>(&mut conn)
        .unwrap_err();
    assert!(
        refused.to_string().to_lowercase().contains("crossslot"),
        "{refused}"
    );
}
