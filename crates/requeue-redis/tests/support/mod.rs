//! Shared fixture: one redis-server per test binary, one queue per test,
//! fake time everywhere, invariants checked after every step.
#![allow(dead_code)] // not every test binary uses every helper

use redis::aio::MultiplexedConnection;
use requeue_redis::inspect::{self, QueueState};
use requeue_redis::keys::QueueKeys;
use requeue_redis::local_server::LocalServer;
use requeue_redis::ops::{self, AddCode, DoneCode, GetArgs, GetReply, Leased, Now};
use requeue_redis::scripts::Scripts;
use std::sync::OnceLock;
use std::time::Duration;

/// A realistic epoch in ms, so microsecond arithmetic in Lua runs at the
/// magnitudes production sees.
pub const T0: u64 = 1_700_000_000_000;

/// The binary's shared server: started on first use, killed by its
/// watchdog when the test process exits (statics are never dropped).
pub fn server() -> &'static LocalServer {
    static SERVER: OnceLock<LocalServer> = OnceLock::new();
    SERVER.get_or_init(|| LocalServer::start().unwrap_or_else(|e| panic!("redis-server: {e}")))
}

/// A fresh connection to `url` with every script loaded. One per test:
/// each `#[tokio::test]` has its own runtime. The response timeout is
/// generous (redis-rs's default is 500 ms): a 1,000-item script on a
/// loaded test machine can take longer.
pub async fn connect(url: &str) -> MultiplexedConnection {
    let client = redis::Client::open(url).unwrap();
    let config =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(10)));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap();
    Scripts::global().load_all(&mut conn).await.unwrap();
    conn
}

/// Lease, batch and reap backoff used by the tests.
pub const ARGS: GetArgs = GetArgs {
    lease_ms: 1_000,
    batch: 1_000,
    reap_base_ms: 5,
    reap_max_ms: 1_000,
};

/// One queue on the shared server, on a fake clock.
pub struct Fx {
    pub conn: MultiplexedConnection,
    pub keys: QueueKeys,
    pub now: u64,
}

impl Fx {
    /// The queue `name` (unique per test) on the shared server.
    pub async fn new(name: &str) -> Fx {
        Fx::on(&server().url(), name).await
    }

    /// The queue `name` on the server at `url`.
    pub async fn on(url: &str, name: &str) -> Fx {
        Fx {
            conn: connect(url).await,
            keys: QueueKeys::new(name).unwrap(),
            now: T0,
        }
    }

    pub fn at(&self) -> Now {
        Now::Fake(self.now)
    }

    pub fn advance(&mut self, ms: u64) {
        self.now += ms;
    }

    /// Panics with every broken invariant.
    pub async fn check(&mut self) {
        if let Err(broken) = inspect::check_invariants(&mut self.conn, &self.keys).await {
            panic!("invariants broken: {broken}");
        }
    }

    pub async fn state(&mut self) -> QueueState {
        inspect::inspect(&mut self.conn, &self.keys, 100)
            .await
            .unwrap()
    }

    pub async fn add(&mut self, item: &str) -> AddCode {
        let reply = ops::add(
            &mut self.conn,
            &self.keys,
            item.as_bytes(),
            Now::Fake(self.now),
        )
        .await
        .unwrap();
        self.check().await;
        reply.code
    }

    pub async fn add_after(&mut self, item: &str, delay_ms: u64) -> AddCode {
        let at = self.at();
        let reply = ops::add_after(&mut self.conn, &self.keys, item.as_bytes(), delay_ms, at)
            .await
            .unwrap();
        self.check().await;
        reply.code
    }

    pub async fn get_with(&mut self, args: &GetArgs) -> GetReply {
        let reply = ops::get(&mut self.conn, &self.keys, args, Now::Fake(self.now))
            .await
            .unwrap();
        assert_eq!(reply.now_ms, self.now);
        self.check().await;
        reply
    }

    pub async fn get(&mut self) -> GetReply {
        self.get_with(&ARGS).await
    }

    /// A get that must hand out `item`.
    pub async fn take(&mut self, item: &str) -> Leased {
        let reply = self.get().await;
        let leased = reply
            .item
            .unwrap_or_else(|| panic!("expected {item}, queue empty"));
        assert_eq!(String::from_utf8_lossy(&leased.item), item);
        leased
    }

    /// A get that must find nothing; returns next_wake_ms.
    pub async fn nothing(&mut self) -> Option<u64> {
        let reply = self.get().await;
        assert!(reply.item.is_none(), "unexpected {:?}", reply.item);
        reply.next_wake_ms
    }

    pub async fn done(&mut self, leased: &Leased) -> DoneCode {
        let at = self.at();
        let reply = ops::done(&mut self.conn, &self.keys, &leased.item, leased.token, at)
            .await
            .unwrap();
        self.check().await;
        reply.code
    }

    pub async fn len(&mut self) -> u64 {
        let at = self.at();
        let depth = ops::len(&mut self.conn, &self.keys, at).await.unwrap();
        self.check().await;
        depth
    }

    pub async fn num_requeues(&mut self, item: &str) -> u64 {
        ops::num_requeues(&mut self.conn, &self.keys, item.as_bytes())
            .await
            .unwrap()
    }
}
