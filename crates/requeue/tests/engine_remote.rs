//! The remote-engine toolkit (`requeue::engine::remote`) on a scripted
//! backend: what every remote engine gets for free, checked once, on a
//! fake clock. The Redis engine's own tests cover the same rules against
//! a real server.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use requeue::clock::{FakeClock, SharedClock};
use requeue::engine::remote::{self, EndReply, Fenced, LeaseEngine, LeaseKeeper, NextLease};
use requeue::engine::{BoxFuture, QueueError, Then};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const LEASE: Duration = Duration::from_secs(30);

/// One call the toolkit made to the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Call {
    Extend(Vec<String>),
    Release(String),
    End(String, Then),
    EndThenGet(String, Then),
}

type Reply<R> = Result<R, QueueError>;

/// A backend whose replies the test scripts, and which reports every call.
struct Scripted {
    keeper: LeaseKeeper<u64>,
    extends: Mutex<VecDeque<Reply<Vec<Vec<u8>>>>>,
    ends: Mutex<VecDeque<Reply<Fenced>>>,
    /// What each `end_then_get` leases next (key, token); none when empty.
    nexts: Mutex<VecDeque<(String, u64)>>,
    calls: mpsc::UnboundedSender<Call>,
}

fn text(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

impl LeaseEngine<String> for Scripted {
    type Token = u64;

    fn keeper(&self) -> &LeaseKeeper<u64> {
        &self.keeper
    }

    fn extend(
        self: Arc<Self>,
        held: Vec<(Vec<u8>, u64)>,
    ) -> BoxFuture<'static, Result<Vec<Vec<u8>>, QueueError>> {
        let keys = held.iter().map(|(raw, _)| text(raw)).collect();
        let _ = self.calls.send(Call::Extend(keys));
        let reply = self
            .extends
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Ok(vec![]));
        Box::pin(async move { reply })
    }

    fn release(self: Arc<Self>, raw: Vec<u8>, _: u64) -> BoxFuture<'static, Reply<bool>> {
        let _ = self.calls.send(Call::Release(text(&raw)));
        Box::pin(async { Ok(true) })
    }

    fn end(
        self: Arc<Self>,
        raw: Vec<u8>,
        _: u64,
        then: Then,
        _: Option<Duration>,
    ) -> BoxFuture<'static, Reply<EndReply>> {
        let _ = self.calls.send(Call::End(text(&raw), then));
        let reply = self
            .ends
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Ok(Fenced::Ended));
        Box::pin(async move {
            reply.map(|fenced| EndReply {
                fenced,
                added: None,
            })
        })
    }

    fn end_then_get(
        self: Arc<Self>,
        raw: Vec<u8>,
        _: u64,
        then: Then,
    ) -> BoxFuture<'static, Reply<(EndReply, Option<NextLease<String, u64>>)>> {
        let _ = self.calls.send(Call::EndThenGet(text(&raw), then));
        let reply = self
            .ends
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Ok(Fenced::Ended));
        let sent_ms = self.keeper.local_ms();
        // A failed call leases nothing.
        let next = match reply {
            Ok(_) => self.nexts.lock().unwrap().pop_front(),
            Err(_) => None,
        };
        Box::pin(async move {
            let fenced = reply?;
            let next = next.map(|(key, token)| NextLease {
                raw: key.as_bytes().to_vec(),
                item: key,
                token,
                sent_ms,
                requeues: None,
            });
            Ok((
                EndReply {
                    fenced,
                    added: None,
                },
                next,
            ))
        })
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) {
        tokio::spawn(task);
    }

    /// Backoff takes no time here: the scripts are finite.
    fn pause(&self, _: Duration) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

struct Rig {
    clock: Arc<FakeClock>,
    engine: Arc<Scripted>,
    calls: mpsc::UnboundedReceiver<Call>,
}

fn rig() -> Rig {
    let clock = Arc::new(FakeClock::new());
    let shared: SharedClock = clock.clone();
    let (tx, calls) = mpsc::unbounded_channel();
    let engine = Arc::new(Scripted {
        keeper: LeaseKeeper::new("scripted", LEASE, shared),
        extends: Mutex::new(VecDeque::new()),
        ends: Mutex::new(VecDeque::new()),
        nexts: Mutex::new(VecDeque::new()),
        calls: tx,
    });
    Rig {
        clock,
        engine,
        calls,
    }
}

fn backend_error() -> QueueError {
    QueueError::backend("connection reset")
}

impl Rig {
    fn hand_out(&self, key: &str, token: u64) -> requeue::queue::Item<String> {
        let sent = self.engine.keeper().local_ms();
        remote::hand_out(
            &self.engine,
            key.to_string(),
            key.as_bytes().to_vec(),
            token,
            sent,
        )
    }

    /// Starts the renewer and waits until it sleeps on the fake clock.
    async fn start_renewer(&self, cancel: &CancellationToken) {
        tokio::spawn(remote::renew(self.engine.clone(), cancel.clone()));
        self.wait_for_sleeper().await;
    }

    async fn wait_for_sleeper(&self) {
        while !self.clock.has_waiters() {
            tokio::task::yield_now().await;
        }
    }

    async fn next_call(&mut self) -> Call {
        self.calls.recv().await.expect("the engine lives")
    }
}

#[tokio::test]
async fn the_renewer_extends_every_held_lease_each_third_of_a_lease() {
    let mut rig = rig();
    let cancel = CancellationToken::new();
    let item = rig.hand_out("a", 1);
    let _other = rig.hand_out("b", 2);
    rig.start_renewer(&cancel).await;

    // Just before the lease's margin runs out the guard would turn
    // invalid; the renewal a third in keeps it valid.
    rig.clock.advance(LEASE / 3);
    let Call::Extend(mut keys) = rig.next_call().await else {
        panic!("a renewal first")
    };
    keys.sort();
    assert_eq!(keys, ["a", "b"]);
    rig.wait_for_sleeper().await;
    rig.clock.advance(LEASE - LEASE / 3);
    assert!(matches!(rig.next_call().await, Call::Extend(_)));
    assert!(item.is_valid(), "renewed past its first deadline");
    assert!(rig.engine.keeper().is_healthy());
    cancel.cancel();
}

#[tokio::test]
async fn a_lease_the_backend_reports_lost_turns_its_guard_invalid() {
    let mut rig = rig();
    let cancel = CancellationToken::new();
    let lost = rig.hand_out("lost", 1);
    let kept = rig.hand_out("kept", 2);
    rig.engine
        .extends
        .lock()
        .unwrap()
        .push_back(Ok(vec![b"lost".to_vec()]));
    rig.start_renewer(&cancel).await;
    rig.clock.advance(LEASE / 3);
    assert!(matches!(rig.next_call().await, Call::Extend(_)));
    rig.wait_for_sleeper().await;
    assert!(!lost.is_valid());
    assert!(kept.is_valid());

    // Ending it finds someone else holds it: counted, and out of the table.
    rig.engine
        .ends
        .lock()
        .unwrap()
        .push_back(Ok(Fenced::LeaseLost));
    assert!(matches!(
        lost.end_async(Then::Forget).await,
        Err(QueueError::LeaseLost)
    ));
    assert_eq!(rig.engine.keeper().lease_lost(), 1);
    assert_eq!(rig.engine.keeper().table().len(), 1);
    cancel.cancel();
}

#[tokio::test]
async fn after_a_connection_failure_getters_wait_until_a_renewal_succeeds() {
    let mut rig = rig();
    let cancel = CancellationToken::new();
    let _item = rig.hand_out("a", 1);
    {
        let mut extends = rig.engine.extends.lock().unwrap();
        extends.push_back(Err(backend_error()));
        extends.push_back(Err(backend_error()));
    }
    rig.start_renewer(&cancel).await;
    // A call failed on the connection: the renewer runs at once, without
    // waiting for its period, and retries until a renewal succeeds.
    rig.engine.keeper().connection_failed();
    assert!(!rig.engine.keeper().is_healthy());
    for _ in 0..3 {
        assert!(matches!(rig.next_call().await, Call::Extend(_)));
    }
    rig.engine.keeper().wait_healthy().await;
    assert!(rig.engine.keeper().is_healthy());
    cancel.cancel();
}

#[tokio::test]
async fn a_corrupt_backend_does_not_mark_the_connection_unhealthy() {
    let mut rig = rig();
    let cancel = CancellationToken::new();
    let _item = rig.hand_out("a", 1);
    rig.engine
        .extends
        .lock()
        .unwrap()
        .push_back(Err(QueueError::Corrupt {
            key: "q:leases".into(),
            field: None,
            problem: "is a string".into(),
        }));
    rig.start_renewer(&cancel).await;
    rig.clock.advance(LEASE / 3);
    assert!(matches!(rig.next_call().await, Call::Extend(_)));
    assert!(rig.engine.keeper().is_healthy(), "gets go on");
    assert!(matches!(rig.next_call().await, Call::Extend(_)), "retried");
    cancel.cancel();
}

#[tokio::test]
async fn an_end_is_retried_on_backend_errors_and_then_given_up() {
    let mut rig = rig();
    let item = rig.hand_out("a", 1);
    {
        let mut ends = rig.engine.ends.lock().unwrap();
        for _ in 0..remote::END_ATTEMPTS + 5 {
            ends.push_back(Err(backend_error()));
        }
    }
    assert!(matches!(
        item.end_async(Then::Retry).await,
        Err(QueueError::Backend(_))
    ));
    let mut attempts = 0;
    while let Ok(call) = rig.calls.try_recv() {
        assert_eq!(call, Call::End("a".into(), Then::Retry));
        attempts += 1;
    }
    assert_eq!(attempts, remote::END_ATTEMPTS);
    assert!(
        rig.engine.keeper().table().is_empty(),
        "no longer renewed: the lease runs out and the item comes back"
    );
}

#[tokio::test]
async fn a_retried_end_that_finds_the_key_held_by_nobody_has_ended_it() {
    let rig = rig();
    let item = rig.hand_out("a", 1);
    {
        let mut ends = rig.engine.ends.lock().unwrap();
        ends.push_back(Err(backend_error()));
        ends.push_back(Ok(Fenced::NotHeld));
    }
    let ended = item.end_async(Then::Done).await.expect("the first try ran");
    assert!(ended.released);
    assert_eq!(rig.engine.keeper().lease_lost(), 0);
}

#[tokio::test]
async fn an_end_on_corrupt_state_gives_the_key_back_at_once() {
    let mut rig = rig();
    let item = rig.hand_out("a", 1);
    rig.engine
        .ends
        .lock()
        .unwrap()
        .push_back(Err(QueueError::Corrupt {
            key: "q:meta".into(),
            field: Some("seq".into()),
            problem: "is not an integer".into(),
        }));
    assert!(matches!(
        item.end_async(Then::Forget).await,
        Err(QueueError::Corrupt { .. })
    ));
    assert_eq!(rig.next_call().await, Call::End("a".into(), Then::Forget));
    assert_eq!(rig.next_call().await, Call::Release("a".into()));
    assert!(rig.engine.keeper().table().is_empty());
}

#[tokio::test]
async fn a_dropped_guard_ends_its_lease_in_the_background() {
    let mut rig = rig();
    let item = rig.hand_out("a", 1);
    drop(item);
    assert_eq!(rig.next_call().await, Call::End("a".into(), Then::Done));
    rig.engine.keeper().drained().await;
}

#[tokio::test]
async fn an_ending_that_takes_the_next_key_hands_it_out_under_its_own_lease() {
    let mut rig = rig();
    let item = rig.hand_out("a", 1);
    rig.engine.nexts.lock().unwrap().push_back(("b".into(), 2));
    let (ended, next) = item.end_then_next(Then::Forget).await;
    assert!(ended.unwrap().released);
    let next = next.expect("the next key came with the ending");
    assert_eq!(*next, "b");
    assert_eq!(next.token().as_deref(), Some("2"));
    assert!(next.is_valid());
    assert_eq!(
        rig.next_call().await,
        Call::EndThenGet("a".into(), Then::Forget)
    );
    assert!(rig.calls.try_recv().is_err(), "one trip for both");
    let held = rig.engine.keeper().table().snapshot();
    assert_eq!(held, vec![(b"b".to_vec(), 2)], "only the next key is held");
    // The next key ends like any other.
    next.end_async(Then::Done).await.unwrap();
    assert!(rig.engine.keeper().table().is_empty());
}

#[tokio::test]
async fn a_fused_ending_that_fails_is_retried_as_a_plain_end_without_a_next_key() {
    let mut rig = rig();
    let item = rig.hand_out("a", 1);
    rig.engine
        .ends
        .lock()
        .unwrap()
        .push_back(Err(backend_error()));
    rig.engine.nexts.lock().unwrap().push_back(("b".into(), 2));
    let (ended, next) = item.end_then_next(Then::Done).await;
    assert!(ended.unwrap().released);
    assert!(next.is_none());
    assert_eq!(
        rig.next_call().await,
        Call::EndThenGet("a".into(), Then::Done)
    );
    assert_eq!(rig.next_call().await, Call::End("a".into(), Then::Done));
    assert!(rig.engine.keeper().table().is_empty());
}

#[tokio::test]
async fn an_ending_that_re_adds_never_takes_a_next_key() {
    let mut rig = rig();
    let item = rig.hand_out("a", 1);
    rig.engine.nexts.lock().unwrap().push_back(("b".into(), 2));
    let (ended, next) = item.end_then_next(Then::Retry).await;
    assert!(ended.unwrap().released);
    assert!(next.is_none());
    assert_eq!(rig.next_call().await, Call::End("a".into(), Then::Retry));
    assert!(rig.calls.try_recv().is_err());
}

#[tokio::test]
async fn a_lost_lease_still_hands_over_the_next_key_it_took() {
    let rig = rig();
    let item = rig.hand_out("a", 1);
    rig.engine
        .ends
        .lock()
        .unwrap()
        .push_back(Ok(Fenced::LeaseLost));
    rig.engine.nexts.lock().unwrap().push_back(("b".into(), 2));
    let (ended, next) = item.end_then_next(Then::Done).await;
    assert!(matches!(ended, Err(QueueError::LeaseLost)));
    assert_eq!(rig.engine.keeper().lease_lost(), 1);
    // The next key is this holder's all the same: held, renewed, ended.
    let next = next.expect("leased in the same trip");
    assert!(next.is_valid());
    assert_eq!(
        rig.engine.keeper().table().snapshot(),
        vec![(b"b".to_vec(), 2)]
    );
    drop(next);
}
