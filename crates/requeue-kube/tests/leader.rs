//! The Lease elector against a mock API server, on a fake clock.
#![allow(clippy::unwrap_used)]

use http::{Method, Request, Response};
use kube::client::Body;
use requeue::clock::{Clock, FakeClock};
use requeue::wait::Stop;
use requeue_kube::leader::{
    ConfigError, FencingToken, LeaderElector, LeaderError, Leadership, Loss, Released,
};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tower_test::mock::{Handle, SendResponse};

const LEASE_PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/default/leases/lead";
const LEASES_PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/default/leases";

type ApiHandle = Handle<Request<Body>, Response<Body>>;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// An elector for the Lease `default/lead` on a mock client, and the mock's other end.
fn candidate(identity: &str, clock: &FakeClock) -> (LeaderElector, ApiHandle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let elector = LeaderElector::builder(client, "default", "lead", identity)
        .clock(clock.clone())
        .build()
        .unwrap();
    (elector, handle)
}

/// One request as the API server sees it.
struct Call {
    method: Method,
    path: String,
    body: Value,
    send: SendResponse<Response<Body>>,
}

impl Call {
    fn spec(&self) -> &Value {
        &self.body["spec"]
    }

    fn respond(self, status: u16, body: &Value) {
        self.send.send_response(
            Response::builder()
                .status(status)
                .body(Body::from(serde_json::to_vec(body).unwrap()))
                .unwrap(),
        );
    }

    /// Stores the written Lease as version `rv` and echoes it back.
    fn accept(self, rv: &str) -> Value {
        let mut lease = self.body.clone();
        lease["metadata"]["resourceVersion"] = rv.into();
        self.respond(200, &lease);
        lease
    }

    fn fail(self, code: u16, reason: &str) {
        self.respond(
            code,
            &json!({"kind": "Status", "status": "Failure", "code": code, "reason": reason, "message": reason}),
        );
    }
}

/// The next request, guarded so a missing one fails the test instead of hanging it.
async fn next(api: &mut ApiHandle) -> Call {
    let (request, send) = tokio::time::timeout(secs(5), api.next_request())
        .await
        .expect("the elector made no request")
        .expect("the client is gone");
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let bytes = request.into_body().collect_bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    Call {
        method,
        path,
        body,
        send,
    }
}

async fn expect(api: &mut ApiHandle, method: Method, path: &str) -> Call {
    let call = next(api).await;
    assert_eq!((&call.method, call.path.as_str()), (&method, path));
    call
}

/// No request is waiting (the elector is idle, or gone).
fn assert_quiet(api: &mut ApiHandle) {
    assert!(
        !matches!(api.poll_request(), std::task::Poll::Ready(Some(_))),
        "unexpected request"
    );
}

/// Lets every task run until the fake clock's next timer is `at`, so time
/// moves only once the elector waits for it; then moves the clock there.
async fn advance_to(clock: &FakeClock, at: Instant) {
    for _ in 0..10_000 {
        if clock.next_deadline() == Some(at) {
            clock.set(at);
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!(
        "the elector never waited for {:?} from now (next timer: {:?})",
        at - clock.now(),
        clock
            .next_deadline()
            .map(|d| d.saturating_duration_since(clock.now()))
    );
}

async fn advance(clock: &FakeClock, by: Duration) {
    advance_to(clock, clock.now() + by).await;
}

/// A Lease as the API server would return it.
fn lease(holder: &str, transitions: i32, rv: &str, renew: &str) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "lead", "namespace": "default", "resourceVersion": rv},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": 15,
            "leaseTransitions": transitions,
            "acquireTime": "2026-01-01T00:00:00.000000Z",
            "renewTime": renew,
        }
    })
}

/// Answers the acquisition of a missing Lease (GET 404, POST accepted as version 1).
async fn grant_new_lease(api: &mut ApiHandle, identity: &str) {
    expect(api, Method::GET, LEASE_PATH)
        .await
        .fail(404, "NotFound");
    let create = expect(api, Method::POST, LEASES_PATH).await;
    assert_eq!(create.spec()["holderIdentity"], identity);
    assert_eq!(create.spec()["leaseTransitions"], 0);
    assert_eq!(create.spec()["leaseDurationSeconds"], 15);
    assert!(create.body["metadata"].get("resourceVersion").is_none());
    create.accept("1");
}

async fn yield_until(mut condition: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if condition() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("condition never held");
}

#[tokio::test(flavor = "current_thread")]
async fn creates_a_missing_lease_renews_it_and_releases_it() {
    let clock = FakeClock::new();
    let (elector, mut api) = candidate("a", &clock);
    let shutdown = Stop::new();
    let acquiring = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { elector.acquire(&shutdown).await }
    });
    expect(&mut api, Method::GET, LEASE_PATH)
        .await
        .fail(404, "NotFound");
    let create = expect(&mut api, Method::POST, LEASES_PATH).await;
    assert_eq!(create.spec()["holderIdentity"], "a");
    assert_eq!(create.spec()["leaseTransitions"], 0);
    assert_eq!(create.spec()["leaseDurationSeconds"], 15);
    assert_eq!(create.spec()["acquireTime"], create.spec()["renewTime"]);
    let created = create.accept("1");
    let leadership = acquiring.await.unwrap().unwrap();
    assert_eq!(leadership.token(), &FencingToken::new(0, "a"));
    assert!(leadership.is_leading() && !leadership.stop().is_stopped());

    // Every retry period: a replace on the version last written.
    let mut previous = created;
    for rv in ["2", "3"] {
        advance(&clock, secs(2)).await;
        let renew = expect(&mut api, Method::PUT, LEASE_PATH).await;
        assert_eq!(
            renew.body["metadata"]["resourceVersion"],
            previous["metadata"]["resourceVersion"]
        );
        assert_eq!(renew.spec()["holderIdentity"], "a");
        assert_eq!(renew.spec()["leaseTransitions"], 0);
        assert_eq!(renew.spec()["acquireTime"], previous["spec"]["acquireTime"]);
        assert_ne!(renew.spec()["renewTime"], previous["spec"]["renewTime"]);
        previous = renew.accept(rv);
    }
    assert_quiet(&mut api);

    // Shutdown: the work stops first, then the holder is cleared.
    shutdown.stop();
    assert!(
        leadership.stop().is_stopped(),
        "a child of the shutdown signal"
    );
    assert!(leadership.is_leading(), "still held until released");
    let stop = leadership.stop().clone();
    let releasing = tokio::spawn(leadership.release());
    let release = expect(&mut api, Method::PUT, LEASE_PATH).await;
    assert!(stop.is_stopped());
    assert_eq!(release.body["metadata"]["resourceVersion"], "3");
    assert_eq!(release.spec()["holderIdentity"], "");
    assert_eq!(
        release.spec()["leaseTransitions"],
        0,
        "kept: the next holder counts on"
    );
    assert_eq!(release.spec()["leaseDurationSeconds"], 1);
    release.accept("4");
    assert_eq!(releasing.await.unwrap().unwrap(), Released::Cleared);
    assert_quiet(&mut api);
}

#[tokio::test(flavor = "current_thread")]
async fn takes_an_expired_lease_only_after_the_lease_duration_on_its_own_clock() {
    let clock = FakeClock::new();
    let (elector, mut api) = candidate("a", &clock);
    let acquiring = tokio::spawn(async move { elector.acquire(&Stop::never()).await });
    let start = clock.now();
    // The renewTime is years old: it is not compared with our clock.
    let held = lease("b", 3, "7", "2020-01-01T00:00:00.000000Z");
    expect(&mut api, Method::GET, LEASE_PATH)
        .await
        .respond(200, &held);
    // b renews once, 4 s in: the wait starts again from when we saw that.
    let mut renewed_seen = None;
    loop {
        advance(&clock, secs(2)).await;
        let get = expect(&mut api, Method::GET, LEASE_PATH).await;
        let elapsed = clock.now() - start;
        if elapsed == secs(4) {
            renewed_seen = Some(clock.now());
        }
        let current = if renewed_seen.is_some() {
            lease("b", 3, "8", "2020-01-01T00:00:04.000000Z")
        } else {
            held.clone()
        };
        get.respond(200, &current);
        let seen = renewed_seen.unwrap_or(start);
        if clock.now() - seen >= secs(15) {
            break;
        }
        // Not yet expired: no write follows.
        yield_until(|| clock.next_deadline() == Some(clock.now() + secs(2))).await;
        assert_quiet(&mut api);
    }
    assert_eq!(
        clock.now() - start,
        secs(20),
        "4 s + 16 s (the first retry past 15 s)"
    );
    let take = expect(&mut api, Method::PUT, LEASE_PATH).await;
    assert_eq!(take.body["metadata"]["resourceVersion"], "8");
    assert_eq!(take.spec()["holderIdentity"], "a");
    assert_eq!(take.spec()["leaseTransitions"], 4);
    assert_ne!(take.spec()["acquireTime"], "2026-01-01T00:00:00.000000Z");
    take.accept("9");
    let leadership = acquiring.await.unwrap().unwrap();
    assert_eq!(leadership.token(), &FencingToken::new(4, "a"));
    assert!(leadership.token().supersedes(&FencingToken::new(3, "b")));
}

#[tokio::test(flavor = "current_thread")]
async fn a_conflict_on_acquiring_means_another_candidate_won() {
    let clock = FakeClock::new();
    let (elector, mut api) = candidate("a", &clock);
    let shutdown = Stop::new();
    let acquiring = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { elector.acquire(&shutdown).await }
    });
    // Two create at once: the other one's POST landed first.
    expect(&mut api, Method::GET, LEASE_PATH)
        .await
        .fail(404, "NotFound");
    expect(&mut api, Method::POST, LEASES_PATH)
        .await
        .fail(409, "AlreadyExists");
    // A released Lease is free at once, but the replace loses the race.
    advance(&clock, secs(2)).await;
    let released = lease("", 2, "5", "2026-01-01T00:00:00.000000Z");
    expect(&mut api, Method::GET, LEASE_PATH)
        .await
        .respond(200, &released);
    let take = expect(&mut api, Method::PUT, LEASE_PATH).await;
    assert_eq!(take.body["metadata"]["resourceVersion"], "5");
    assert_eq!(take.spec()["leaseTransitions"], 3);
    take.fail(409, "Conflict");
    // Next round: the winner holds it, freshly.
    advance(&clock, secs(2)).await;
    let won = lease("c", 3, "6", "2026-01-01T00:00:02.000000Z");
    expect(&mut api, Method::GET, LEASE_PATH)
        .await
        .respond(200, &won);
    yield_until(|| clock.next_deadline() == Some(clock.now() + secs(2))).await;
    assert_quiet(&mut api);
    assert!(!acquiring.is_finished());
    shutdown.stop();
    assert!(matches!(
        acquiring.await.unwrap(),
        Err(LeaderError::Stopped)
    ));
}

/// Acquires a new Lease for `identity` (token 0), returning the leadership
/// and when it was acquired.
async fn lead_new(
    elector: LeaderElector,
    api: &mut ApiHandle,
    clock: &FakeClock,
) -> (Leadership, Instant) {
    let identity = elector.identity().to_owned();
    let acquiring = tokio::spawn(async move { elector.acquire(&Stop::never()).await });
    let at = clock.now();
    grant_new_lease(api, &identity).await;
    (acquiring.await.unwrap().unwrap(), at)
}

#[tokio::test(flavor = "current_thread")]
async fn a_conflict_on_renewing_with_another_holder_ends_the_term_at_once() {
    let clock = FakeClock::new();
    let (elector, mut api) = candidate("a", &clock);
    let (leadership, _) = lead_new(elector, &mut api, &clock).await;
    advance(&clock, secs(2)).await;
    expect(&mut api, Method::PUT, LEASE_PATH)
        .await
        .fail(409, "Conflict");
    expect(&mut api, Method::GET, LEASE_PATH)
        .await
        .respond(200, &lease("b", 1, "3", "2026-01-01T00:00:02.000000Z"));
    leadership.stop().stopped().await;
    assert_eq!(leadership.loss(), Some(Loss::Superseded(Some("b".into()))));
    assert!(!leadership.is_leading());
    assert_eq!(leadership.release().await.unwrap(), Released::NotHeld);
    assert_quiet(&mut api);
}

#[tokio::test(flavor = "current_thread")]
async fn a_conflict_on_renewing_that_left_our_term_intact_is_retried() {
    let clock = FakeClock::new();
    let (elector, mut api) = candidate("a", &clock);
    let (leadership, _) = lead_new(elector, &mut api, &clock).await;
    advance(&clock, secs(2)).await;
    expect(&mut api, Method::PUT, LEASE_PATH)
        .await
        .fail(409, "Conflict");
    // Someone labelled the object: same holder, same term, new version.
    let mut labelled = lease("a", 0, "2", "2026-01-01T00:00:00.000000Z");
    labelled["metadata"]["labels"] = json!({"team": "x"});
    expect(&mut api, Method::GET, LEASE_PATH)
        .await
        .respond(200, &labelled);
    let retry = expect(&mut api, Method::PUT, LEASE_PATH).await;
    assert_eq!(retry.body["metadata"]["resourceVersion"], "2");
    assert_eq!(retry.body["metadata"]["labels"]["team"], "x");
    retry.accept("3");
    advance(&clock, secs(2)).await;
    expect(&mut api, Method::PUT, LEASE_PATH).await.accept("4");
    assert!(leadership.is_leading() && !leadership.stop().is_stopped());
}

#[tokio::test(flavor = "current_thread")]
async fn failing_renewals_end_the_term_at_the_renew_deadline_before_the_lease_expires() {
    let clock = FakeClock::new();
    let (elector, mut api) = candidate("a", &clock);
    let (leadership, acquired_at) = lead_new(elector, &mut api, &clock).await;
    // One good renewal, sent at +2 s: others may take over from +17 s at
    // the earliest; we must stop leading by +12 s.
    advance(&clock, secs(2)).await;
    expect(&mut api, Method::PUT, LEASE_PATH).await.accept("2");
    let renewed_at = clock.now();
    for _ in 0..2 {
        advance(&clock, secs(2)).await;
        expect(&mut api, Method::PUT, LEASE_PATH)
            .await
            .fail(500, "InternalError");
    }
    // The next request hangs; the term still ends on time.
    advance(&clock, secs(2)).await;
    let _hanging = expect(&mut api, Method::PUT, LEASE_PATH).await;
    assert!(leadership.is_leading() && !leadership.stop().is_stopped());
    let lose_at = renewed_at + secs(10);
    yield_until(|| clock.next_deadline() == Some(lose_at)).await;
    clock.set(lose_at - Duration::from_millis(1));
    tokio::task::yield_now().await;
    assert!(
        !leadership.stop().is_stopped(),
        "leading until the renew deadline"
    );
    advance_to(&clock, lose_at).await;
    leadership.stop().stopped().await;
    assert_eq!(clock.now(), lose_at);
    assert!(
        clock.now() < renewed_at + secs(15),
        "ended before the lease could expire for others"
    );
    assert_eq!(clock.now() - acquired_at, secs(12));
    assert_eq!(leadership.loss(), Some(Loss::RenewDeadlineExceeded));
    assert_eq!(leadership.release().await.unwrap(), Released::NotHeld);
    assert_quiet(&mut api);
}

/// A tiny API server holding one Lease, with resourceVersion checks.
#[derive(Clone, Default)]
struct LeaseServer {
    lease: Arc<Mutex<Option<Value>>>,
    version: Arc<Mutex<u64>>,
}

impl LeaseServer {
    /// Serves one candidate's requests until its client is gone.
    fn serve(&self, mut api: ApiHandle) -> tokio::task::JoinHandle<()> {
        let server = self.clone();
        tokio::spawn(async move {
            while let Some((request, send)) = api.next_request().await {
                let method = request.method().clone();
                let bytes = request.into_body().collect_bytes().await.unwrap();
                let call = Call {
                    method,
                    path: String::new(),
                    body: if bytes.is_empty() {
                        Value::Null
                    } else {
                        serde_json::from_slice(&bytes).unwrap()
                    },
                    send,
                };
                server.answer(call);
            }
        })
    }

    fn answer(&self, call: Call) {
        let mut stored = self.lease.lock().unwrap();
        let current_rv = stored
            .as_ref()
            .map(|l| l["metadata"]["resourceVersion"].clone());
        let fits = match call.method {
            Method::GET => {
                match &*stored {
                    Some(lease) => call.respond(200, lease),
                    None => call.fail(404, "NotFound"),
                }
                return;
            }
            Method::POST => stored.is_none(),
            Method::PUT => current_rv.as_ref() == Some(&call.body["metadata"]["resourceVersion"]),
            _ => panic!("unexpected {}", call.method),
        };
        if !fits {
            return call.fail(409, "Conflict");
        }
        let mut version = self.version.lock().unwrap();
        *version += 1;
        *stored = Some(call.accept(&version.to_string()));
    }

    fn spec(&self) -> Value {
        self.lease.lock().unwrap().as_ref().unwrap()["spec"].clone()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_fencing_token_grows_with_every_term_across_holders() {
    let clock = FakeClock::new();
    let server = LeaseServer::default();
    let (a, api_a) = candidate("a", &clock);
    let (b, api_b) = candidate("b", &clock);
    server.serve(api_a);
    server.serve(api_b);

    // a creates the Lease: term 0.
    let first = a.acquire(&Stop::never()).await.unwrap();
    assert_eq!(first.token(), &FencingToken::new(0, "a"));
    // b waits; a releases; b takes it at its next attempt: term 1.
    let b_acquiring = tokio::spawn({
        let b = b.clone();
        async move { b.acquire(&Stop::never()).await }
    });
    yield_until(|| {
        clock
            .next_deadline()
            .is_some_and(|d| d == clock.now() + secs(2))
    })
    .await;
    assert_eq!(first.release().await.unwrap(), Released::Cleared);
    assert_eq!(server.spec()["holderIdentity"], "");
    advance(&clock, secs(2)).await;
    let second = b_acquiring.await.unwrap().unwrap();
    assert_eq!(second.token(), &FencingToken::new(1, "b"));
    assert!(FencingToken::new(0, "a").is_stale_against(second.token()));

    // b's process dies without releasing: a takes over once the Lease has
    // not changed for 15 s on a's clock: term 2.
    drop(second);
    let a_acquiring = tokio::spawn({
        let a = a.clone();
        async move { a.acquire(&Stop::never()).await }
    });
    let third = loop {
        if a_acquiring.is_finished() {
            break a_acquiring.await.unwrap().unwrap();
        }
        advance(&clock, secs(2)).await;
    };
    assert_eq!(third.token(), &FencingToken::new(2, "a"));
    assert!(third.token().supersedes(&FencingToken::new(1, "b")));
    assert_eq!(server.spec()["leaseTransitions"], 2);
}

#[tokio::test(flavor = "current_thread")]
async fn two_candidates_racing_for_a_free_lease_cannot_both_win() {
    let clock = FakeClock::new();
    let server = LeaseServer::default();
    let (a, api_a) = candidate("a", &clock);
    let (b, api_b) = candidate("b", &clock);
    server.serve(api_a);
    server.serve(api_b);
    let shutdown = Stop::new();
    let racing: Vec<_> = [a, b]
        .into_iter()
        .map(|elector| {
            let shutdown = shutdown.clone();
            tokio::spawn(async move { elector.acquire(&shutdown).await })
        })
        .collect();
    // Run both through several rounds well within the lease duration.
    for _ in 0..5 {
        yield_until(|| racing.iter().any(|t| t.is_finished()) && clock.waiters() >= 1).await;
        advance(&clock, secs(2)).await;
    }
    shutdown.stop();
    let mut leaders = Vec::new();
    for task in racing {
        if let Ok(leadership) = task.await.unwrap() {
            leaders.push(leadership);
        }
    }
    assert_eq!(leaders.len(), 1, "exactly one candidate leads");
    assert_eq!(leaders[0].token().transitions(), 0);
}

#[test]
fn unsafe_timings_are_refused() {
    let (service, _api) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let client = kube::Client::new(service, "default");
    let error = LeaderElector::builder(client.clone(), "default", "lead", "a")
        .lease_duration(secs(10))
        .renew_deadline(secs(10))
        .build()
        .unwrap_err();
    assert!(matches!(
        error,
        ConfigError::RenewDeadlineNotBelowLeaseDuration { .. }
    ));
    let error = LeaderElector::builder(client.clone(), "default", "lead", "")
        .build()
        .unwrap_err();
    assert_eq!(error, ConfigError::Empty("identity"));
    let error = LeaderElector::builder(client, "default", "lead", "a")
        .retry_period(secs(10))
        .build()
        .unwrap_err();
    assert!(matches!(error, ConfigError::RetryPeriod { .. }));
}

#[tokio::test(flavor = "current_thread")]
async fn a_stop_fired_before_leading_ends_the_wait() {
    let clock = FakeClock::new();
    let (elector, _api) = candidate("a", &clock);
    assert!(matches!(
        elector.acquire(&Stop::stopped_already()).await,
        Err(LeaderError::Stopped)
    ));
}

#[tokio::test(flavor = "current_thread")]
async fn a_controller_runs_only_while_leading_and_stamps_its_writes() {
    use requeue::controller::{Action, Controller};
    use requeue::queue::WorkQueue;

    let clock = FakeClock::new();
    let (elector, mut api) = candidate("a", &clock);
    let (leadership, _) = lead_new(elector, &mut api, &clock).await;
    let queue: WorkQueue<String> = WorkQueue::new();
    queue.add("shop/web".to_owned()).unwrap();
    let writes = Arc::new(Mutex::new(Vec::new()));
    let running = tokio::spawn({
        let (stop, token, writes) = (
            leadership.stop().clone(),
            leadership.token().clone(),
            writes.clone(),
        );
        let controller = Controller::new(queue.clone(), 1);
        async move {
            controller
                .run_async(&stop, move |key: String| {
                    let (token, writes) = (token.clone(), writes.clone());
                    async move {
                        // A downstream write carries the term's token.
                        writes.lock().unwrap().push(format!("{key} by {token}"));
                        Ok::<_, std::io::Error>(Action::Done)
                    }
                })
                .await
        }
    });
    yield_until(|| writes.lock().unwrap().len() == 1).await;
    assert_eq!(*writes.lock().unwrap(), ["shop/web by 0/a"]);
    assert!(!running.is_finished());
    // Another candidate has taken the Lease: the controller stops.
    advance(&clock, secs(2)).await;
    expect(&mut api, Method::PUT, LEASE_PATH)
        .await
        .fail(409, "Conflict");
    expect(&mut api, Method::GET, LEASE_PATH)
        .await
        .respond(200, &lease("b", 1, "3", "2026-01-01T00:00:02.000000Z"));
    let summary = tokio::time::timeout(secs(5), running)
        .await
        .expect("the controller kept running after leadership was lost")
        .unwrap();
    assert_eq!(summary.succeeded, 1);
    assert_eq!(leadership.loss(), Some(Loss::Superseded(Some("b".into()))));
}

#[tokio::test(flavor = "current_thread")]
async fn run_releases_on_cancel_only_after_the_work_has_returned() {
    let clock = FakeClock::new();
    let (service, mut api) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let elector = LeaderElector::builder(
        kube::Client::new(service, "default"),
        "default",
        "lead",
        "a",
    )
    .clock(clock.clone())
    .release_on_cancel(true)
    .build()
    .unwrap();
    let shutdown = Stop::new();
    let work_done = Arc::new(Mutex::new(false));
    let running = tokio::spawn({
        let (shutdown, work_done) = (shutdown.clone(), work_done.clone());
        async move {
            elector
                .run(&shutdown, |stop, token| async move {
                    assert_eq!(token, FencingToken::new(0, "a"));
                    stop.stopped().await;
                    // Draining in-flight work: the Lease is still held.
                    tokio::task::yield_now().await;
                    *work_done.lock().unwrap() = true;
                })
                .await
        }
    });
    grant_new_lease(&mut api, "a").await;
    advance(&clock, secs(2)).await;
    expect(&mut api, Method::PUT, LEASE_PATH).await.accept("2");
    shutdown.stop();
    let release = expect(&mut api, Method::PUT, LEASE_PATH).await;
    assert!(
        *work_done.lock().unwrap(),
        "released only after the work returned"
    );
    assert_eq!(release.spec()["holderIdentity"], "");
    release.accept("3");
    let ended = running.await.unwrap().unwrap();
    assert_eq!(ended.token, FencingToken::new(0, "a"));
    assert_eq!(ended.loss, None);
    assert_eq!(ended.released, Some(Released::Cleared));
}
