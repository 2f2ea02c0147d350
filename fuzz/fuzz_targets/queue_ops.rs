//! `queue_ops`: the input bytes are a little operation language over the
//! public API of `WorkQueue<u8>` on a `FakeClock`.
//!
//! Byte 0 configures the queue (fairness, metrics on/off, rate limiter);
//! every following byte picks an operation (`op % OPS`) and the operation
//! takes its arguments from the next bytes (missing bytes read as 0). Keys
//! are `byte % 16`, so collisions (dedup, re-adds while processing) are common.
//!
//! There is no reference model of the queue's order. The harness only keeps
//! what it can know for sure from the outside — which keys its guards and
//! detached items hold, which of its streams are pending and whether they
//! were woken, the rate limiter's per-key counts, whether it shut the
//! queue down, the latest delay the queue reported — and after every
//! operation checks:
//!
//! - no item is ever held by two live hand-outs (guards or detached items);
//! - `snapshot().processing` equals the live guards plus detached items;
//! - `len() == snapshot().ready` and `is_empty() == (len() == 0)`;
//! - `added_while_processing <= processing`; ready + delayed <= 16 and
//!   ready + processing <= 16 (16 distinct keys);
//! - each add's `Added` agrees with the counts (Queued: ready + 1 and the key
//!   was not processing; AfterDone: the key was processing; Merged: nothing
//!   moved; Delayed { at }: `at == now + delay` for a plain delay);
//! - after shutdown every add returns `Err(ShutDown(item))` with the same
//!   item and changes nothing; `shut_down` hands back exactly the delayed
//!   items (none the second time); nothing stays delayed;
//! - a stray `queue.done(&k)` returns false; a `done` of a held item returns
//!   true once, after which its guard's own `done` returns false and its drop
//!   does not end a later hand-out of the same key;
//! - `try_get`: an item is taken only if one was ready (every due item was
//!   already promoted by the clock's timer); `Err(Empty)` only while
//!   running, `Err(ShutDown)` only after shutdown with nothing ready;
//! - once the clock has passed the latest reported delay, nothing is delayed;
//! - `num_requeues(k)` counts rate-limited adds of `k` since its last
//!   `forget`; `tracked_items()` counts the keys with a non-zero count;
//! - waiting streams: `waiting_gets` equals the pending streams that were
//!   not woken, and at least min(ready, pending streams) pending streams
//!   were woken (no lost wake-up);
//! - with metrics: depth == ready + added_while_processing, and the retries
//!   counter counts accepted adds with a delay or rate limiting;
//! - and no panic anywhere. At the end everything is dropped, a new
//!   `try_get` must not panic, and the clock firing after the queue is gone
//!   must not either.
#![no_main]

use futures_core::Stream;
use libfuzzer_sys::fuzz_target;
use requeue::clock::{Clock, FakeClock, deadline_after};
use requeue::limiter::{ItemExponential, RateLimiter};
use requeue::metrics::{InMemoryMetrics, QueueRecord};
use requeue::queue::{
    AddOpts, Added, Item, ItemStream, QueueSnapshot, ShutDown, TryGetError, WorkQueue,
};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

/// Number of distinct keys.
const KEYS: u8 = 16;
/// Upper bound on operations per input, to keep every run short.
const MAX_OPS: usize = 2048;

/// The input, read one byte at a time; reads past the end give 0.
struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Input<'_> {
    fn next(&mut self) -> Option<u8> {
        let b = self.data.get(self.pos).copied();
        self.pos += 1;
        b
    }
    fn byte(&mut self) -> u8 {
        self.next().unwrap_or(0)
    }
    fn key(&mut self) -> u8 {
        self.byte() % KEYS
    }
    /// A duration: `a << (b % 24)` ms, or ZERO / MAX for two special values.
    fn duration(&mut self) -> Duration {
        let (a, b) = (self.byte(), self.byte());
        match b {
            0xff => Duration::MAX,
            0xfe => Duration::ZERO,
            _ => Duration::from_millis(u64::from(a) << (b % 24)),
        }
    }
    fn priority(&mut self) -> i32 {
        match self.byte() {
            0xff => i32::MAX,
            0xfe => i32::MIN,
            0xfd => -100,
            b => i32::from(b as i8) / 32,
        }
    }
}

/// A waker that counts its wake-ups.
#[derive(Default)]
struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

struct Held {
    guard: Item<u8>,
    /// Still the live hand-out of its key (false once `queue.done(&k)` ended it).
    live: bool,
}

struct Waiter {
    stream: ItemStream<u8>,
    wakes: Arc<Counter>,
    /// The last poll returned `Pending`.
    pending: bool,
    /// Wake-ups seen at that poll.
    seen: usize,
}

impl Waiter {
    fn woken(&self) -> bool {
        self.wakes.0.load(Ordering::SeqCst) > self.seen
    }
}

struct Harness {
    clock: FakeClock,
    queue: WorkQueue<u8>,
    metrics: Option<Arc<QueueRecord>>,
    held: Vec<Held>,
    detached: Vec<u8>,
    waiters: Vec<Waiter>,
    shut: bool,
    requeues: [u32; KEYS as usize],
    retries: u64,
    max_at: Option<Instant>,
    prioritized: bool,
}

/// Which add method to call.
#[derive(Clone, Copy)]
enum Via {
    Add,
    AddRef,
    AddAfter,
    AddRateLimited,
    AddWith,
    AddRefWith,
}

impl Harness {
    fn new(config: u8) -> Self {
        let clock = FakeClock::new();
        let mut builder = WorkQueue::builder()
            .clock(clock.clone())
            .fairness(match config & 3 {
                0 => Some(requeue::queue::DEFAULT_FAIRNESS),
                1 => None,
                2 => Some(1),
                _ => Some(0),
            });
        let mut metrics = None;
        if config & 4 != 0 {
            let provider = Arc::new(InMemoryMetrics::new());
            builder = builder.name("q").metrics(provider.clone());
            metrics = Some(provider);
        }
        if config & 8 != 0 {
            builder = builder.rate_limiter(ItemExponential::new(
                Duration::from_millis(1),
                Duration::from_secs(1),
            ));
        }
        let queue = builder.build();
        let metrics = metrics.map(|m| {
            m.queue("q")
                .expect("the named queue registered its metrics")
        });
        Harness {
            clock,
            queue,
            metrics,
            held: Vec::new(),
            detached: Vec::new(),
            waiters: Vec::new(),
            shut: false,
            requeues: [0; KEYS as usize],
            retries: 0,
            max_at: None,
            prioritized: false,
        }
    }

    fn live_keys(&self) -> impl Iterator<Item = u8> + '_ {
        self.held
            .iter()
            .filter(|h| h.live)
            .map(|h| *h.guard)
            .chain(self.detached.iter().copied())
    }

    fn processing(&self, k: u8) -> bool {
        self.live_keys().any(|x| x == k)
    }

    fn note_delay(&mut self, added: &Added) {
        if let Added::Delayed { at } = *added {
            self.max_at = Some(self.max_at.map_or(at, |m| m.max(at)));
        }
    }

    /// The invariants that hold between any two operations.
    fn check(&self) -> QueueSnapshot {
        let s = self.queue.snapshot();
        let len = self.queue.len();
        assert_eq!(len, s.ready, "len() != snapshot().ready: {s:?}");
        assert_eq!(self.queue.is_empty(), len == 0);
        assert_eq!(s.shutting_down, self.shut, "{s:?}");
        assert_eq!(self.queue.is_shutting_down(), self.shut);

        let mut seen = [false; KEYS as usize];
        let mut live = 0;
        for k in self.live_keys() {
            assert!(k < KEYS, "handed out a key never added: {k}");
            assert!(!seen[k as usize], "key {k} held by two hand-outs at once");
            seen[k as usize] = true;
            live += 1;
        }
        assert_eq!(
            s.processing, live,
            "processing != live guards + detached: {s:?}"
        );
        assert!(s.added_while_processing <= s.processing, "{s:?}");
        assert!(s.ready + s.processing <= KEYS as usize, "{s:?}");
        assert!(s.ready + s.delayed <= KEYS as usize, "{s:?}");
        if self.shut {
            assert_eq!(s.delayed, 0, "delayed items after shutdown: {s:?}");
            assert_eq!(s.waiting_gets, 0, "get waiters after shutdown: {s:?}");
        }
        if self.max_at.is_some_and(|at| self.clock.now() >= at) {
            assert_eq!(s.delayed, 0, "items still delayed after their time: {s:?}");
        }

        // Waiting streams.
        let pending = self.waiters.iter().filter(|w| w.pending).count();
        let woken = self
            .waiters
            .iter()
            .filter(|w| w.pending && w.woken())
            .count();
        assert_eq!(
            s.waiting_gets,
            pending - woken,
            "waiting_gets != pending streams not yet woken: {s:?}"
        );
        assert!(
            woken >= s.ready.min(pending),
            "lost wake-up: {woken} of {pending} pending streams woken, {} ready",
            s.ready
        );

        // The rate limiter's counts.
        let limiter: &dyn RateLimiter<u8> = self.queue.rate_limiter();
        for k in 0..KEYS {
            assert_eq!(
                self.queue.num_requeues(&k),
                self.requeues[k as usize],
                "num_requeues({k})"
            );
        }
        assert_eq!(
            limiter.tracked_items(),
            self.requeues.iter().filter(|&&n| n > 0).count(),
            "tracked_items"
        );

        if let Some(m) = &self.metrics {
            assert_eq!(
                m.depth(),
                (s.ready + s.added_while_processing) as i64,
                "depth metric: {s:?}"
            );
            assert_eq!(m.retries(), self.retries, "retries metric");
        }
        s
    }

    fn add(&mut self, k: u8, opts: AddOpts, via: Via) {
        let before = self.check();
        let was_processing = self.processing(k);
        let now = self.clock.now();
        let result = match via {
            Via::Add => self.queue.add(k),
            Via::AddRef => self.queue.add_ref(&k),
            Via::AddAfter => self.queue.add_after(k, opts.after.unwrap_or_default()),
            Via::AddRateLimited => self.queue.add_rate_limited(k),
            Via::AddWith => self.queue.add_with(k, opts),
            Via::AddRefWith => self.queue.add_ref_with(&k, opts),
        };
        let after = self.queue.snapshot();
        if opts.rate_limited {
            // The limiter is asked before the queue looks at its state,
            // as client-go's AddRateLimited does: refused adds count too.
            let n = &mut self.requeues[k as usize];
            *n = n.saturating_add(1);
        }
        let added = match result {
            Err(ShutDown(back)) => {
                assert!(self.shut, "add refused by a running queue");
                assert_eq!(back, k, "ShutDown handed back another item");
                assert_eq!(after, before, "a refused add changed the queue");
                return;
            }
            Ok(added) => added,
        };
        assert!(!self.shut, "add accepted after shutdown: {added:?}");
        if opts.priority != 0 {
            self.prioritized = true;
        }
        if opts.after.is_some() || opts.rate_limited {
            self.retries += 1;
        }
        self.note_delay(&added);
        let delay = opts.after.filter(|d| !d.is_zero());
        let immediate = !opts.rate_limited && delay.is_none();
        let msg = format!("add({k}, {opts:?}) -> {added:?}: {before:?} -> {after:?}");
        match added {
            Added::Queued => {
                assert!(!was_processing, "{msg}");
                assert_eq!(after.ready, before.ready + 1, "{msg}");
                assert!(
                    after.delayed == before.delayed || after.delayed + 1 == before.delayed,
                    "{msg}"
                );
                assert_eq!(after.processing, before.processing, "{msg}");
                assert_eq!(
                    after.added_while_processing, before.added_while_processing,
                    "{msg}"
                );
            }
            Added::AfterDone => {
                assert!(was_processing, "{msg}");
                assert_eq!(after.ready, before.ready, "{msg}");
                assert_eq!(
                    after.added_while_processing,
                    before.added_while_processing + 1,
                    "{msg}"
                );
                assert!(
                    after.delayed == before.delayed || after.delayed + 1 == before.delayed,
                    "{msg}"
                );
            }
            Added::Merged => {
                assert_eq!(after.ready, before.ready, "{msg}");
                assert_eq!(after.delayed, before.delayed, "{msg}");
                assert_eq!(after.processing, before.processing, "{msg}");
                assert_eq!(
                    after.added_while_processing, before.added_while_processing,
                    "{msg}"
                );
            }
            Added::Delayed { at } => {
                assert!(!immediate, "{msg}");
                assert!(at >= now, "{msg}");
                if let Some(d) = delay {
                    let asked = deadline_after(now, d);
                    if opts.rate_limited {
                        assert!(at <= asked, "{msg}");
                    } else {
                        assert_eq!(at, asked, "{msg}");
                    }
                }
                if at > now {
                    assert_eq!(after.ready, before.ready, "{msg}");
                    assert!(
                        after.delayed == before.delayed || after.delayed == before.delayed + 1,
                        "{msg}"
                    );
                }
            }
            // Only remote engines hand an add to a background task.
            Added::Sent => panic!("the in-memory queue answered Sent: {msg}"),
        }
        if immediate {
            let ok = if was_processing {
                matches!(added, Added::AfterDone | Added::Merged)
            } else {
                matches!(added, Added::Queued | Added::Merged)
            };
            assert!(ok, "{msg}");
        } else if !opts.rate_limited {
            assert!(
                matches!(added, Added::Delayed { .. } | Added::Merged),
                "{msg}"
            );
        }
    }

    /// Records a hand-out (from `try_get`, `get` or a stream).
    fn took(&mut self, item: Item<u8>, before: &QueueSnapshot) {
        let k = *item;
        assert!(k < KEYS, "handed out a key never added: {k}");
        assert!(!self.processing(k), "key {k} handed out while already held");
        let after = self.queue.snapshot();
        assert_eq!(after.ready + 1, before.ready, "{before:?} -> {after:?}");
        assert_eq!(
            after.processing,
            before.processing + 1,
            "{before:?} -> {after:?}"
        );
        assert_eq!(
            after.delayed, before.delayed,
            "a due item was left for the consumer to promote"
        );
        if !self.prioritized {
            assert_eq!(item.priority(), 0);
        }
        self.held.push(Held {
            guard: item,
            live: true,
        });
    }

    fn try_get(&mut self, blocking: bool) {
        let before = self.check();
        if blocking {
            // `get` only where it cannot block: something ready, or shut down.
            if before.ready > 0 {
                let item = self
                    .queue
                    .get()
                    .expect("get returned None with items ready");
                self.took(item, &before);
            } else if self.shut {
                assert!(self.queue.get().is_none());
            }
            return;
        }
        match self.queue.try_get() {
            Ok(item) => self.took(item, &before),
            Err(TryGetError::Empty) => {
                assert!(!self.shut, "try_get: Empty after shutdown");
                assert_eq!(before.ready, 0, "try_get: Empty with items ready");
                assert_eq!(self.queue.snapshot(), before);
            }
            Err(TryGetError::ShutDown) => {
                assert!(self.shut, "try_get: ShutDown on a running queue");
                assert_eq!(before.ready, 0, "try_get: ShutDown with items ready");
            }
        }
    }

    fn readd_result(&mut self, k: u8, result: Result<Added, ShutDown<u8>>, retry: bool) {
        match result {
            Ok(added) => {
                assert!(!self.shut, "re-add accepted after shutdown");
                if retry {
                    self.retries += 1;
                }
                self.note_delay(&added);
            }
            Err(ShutDown(back)) => {
                assert!(self.shut, "re-add refused by a running queue");
                assert_eq!(back, k);
            }
        }
    }

    fn guard_op(&mut self, pick: u8, action: u8, input: &mut Input<'_>) {
        if self.held.is_empty() {
            return;
        }
        let before = self.check();
        let Held { guard, live } = self.held.remove(pick as usize % self.held.len());
        let k = *guard;
        match action % 8 {
            0 => assert_eq!(guard.done(), live, "Item::done"),
            1 => drop(guard),
            2 => {
                assert_eq!(guard.forget(), live, "Item::forget");
                self.requeues[k as usize] = 0;
            }
            3 => {
                let n = &mut self.requeues[k as usize];
                *n = n.saturating_add(1);
                let result = guard.retry();
                self.readd_result(k, result, true);
            }
            4 => {
                let d = input.duration();
                let result = guard.retry_after(d);
                self.readd_result(k, result, true);
            }
            5 => {
                let result = guard.requeue();
                self.readd_result(k, result, false);
                if live && !self.shut {
                    let after = self.queue.snapshot();
                    assert_eq!(
                        after.ready,
                        before.ready + 1,
                        "requeue: {before:?} -> {after:?}"
                    );
                }
            }
            6 => {
                assert_eq!(guard.detach(), k);
                if live {
                    self.detached.push(k);
                }
            }
            _ => {
                // Look, don't touch.
                let _ = guard.priority();
                self.held.push(Held { guard, live });
                return;
            }
        }
        let after = self.queue.snapshot();
        let ended = usize::from(live && action % 8 != 6);
        assert_eq!(
            after.processing + ended,
            before.processing,
            "guard op {}: {before:?} -> {after:?}",
            action % 8
        );
    }

    fn stray_done(&mut self, k: u8) {
        let before = self.check();
        let expected = self.processing(k);
        assert_eq!(self.queue.done(&k), expected, "queue.done({k})");
        if expected {
            if let Some(h) = self.held.iter_mut().find(|h| h.live && *h.guard == k) {
                h.live = false;
            } else if let Some(i) = self.detached.iter().position(|&x| x == k) {
                self.detached.swap_remove(i);
            }
            assert_eq!(self.queue.snapshot().processing + 1, before.processing);
        } else {
            assert_eq!(
                self.queue.snapshot(),
                before,
                "a stray done changed the queue"
            );
        }
    }

    fn forget(&mut self, k: u8) {
        self.queue.forget(&k);
        self.requeues[k as usize] = 0;
    }

    fn shut_down(&mut self, drain: bool) {
        let before = self.check();
        let drain = drain && before.ready == 0 && before.processing == 0;
        let withdrawn = if drain {
            self.queue.shut_down_with_drain()
        } else {
            self.queue.shut_down()
        };
        if self.shut {
            assert!(
                withdrawn.is_empty(),
                "a second shut_down withdrew {withdrawn:?}"
            );
        } else {
            assert_eq!(
                withdrawn.len(),
                before.delayed,
                "withdrew {withdrawn:?} of {before:?}"
            );
            let mut seen = [false; KEYS as usize];
            for &k in &withdrawn {
                assert!(k < KEYS && !seen[k as usize], "withdrew {withdrawn:?}");
                seen[k as usize] = true;
            }
        }
        self.shut = true;
        let after = self.queue.snapshot();
        assert_eq!(after.ready, before.ready);
        assert_eq!(after.processing, before.processing);
        assert_eq!(after.delayed, 0);
        assert_eq!(after.waiting_gets, 0);
    }

    fn poll_stream(&mut self, pick: u8) {
        if self.waiters.is_empty() {
            return;
        }
        let before = self.check();
        let i = pick as usize % self.waiters.len();
        let w = &mut self.waiters[i];
        let waker = Waker::from(w.wakes.clone());
        let seen = w.wakes.0.load(Ordering::SeqCst);
        let mut cx = Context::from_waker(&waker);
        match Pin::new(&mut w.stream).poll_next(&mut cx) {
            Poll::Ready(Some(item)) => {
                w.pending = false;
                self.took(item, &before);
            }
            Poll::Ready(None) => {
                w.pending = false;
                assert!(self.shut, "stream ended on a running queue");
                assert_eq!(before.ready, 0, "stream ended with items ready");
            }
            Poll::Pending => {
                w.pending = true;
                w.seen = seen;
                assert!(!self.shut, "stream pending after shutdown");
                assert_eq!(before.ready, 0, "stream pending with items ready");
            }
        }
    }

    fn advance(&mut self, d: Duration) {
        self.check();
        self.clock.advance(d);
    }

    /// Drops everything the harness holds, then checks the queue is still usable.
    fn finish(mut self) {
        let s = self.check();
        self.held.clear();
        self.waiters.clear();
        let after = self.queue.snapshot();
        assert_eq!(after.processing, self.detached.len(), "{s:?} -> {after:?}");
        assert_eq!(after.waiting_gets, 0);
        match self.queue.try_get() {
            Ok(item) => assert!(!self.detached.contains(&*item)),
            Err(TryGetError::Empty) => assert!(!self.shut && after.ready == 0),
            Err(TryGetError::ShutDown) => assert!(self.shut && after.ready == 0),
        }
        let clock = self.clock.clone();
        drop(self);
        // Timers whose queue is gone must fire harmlessly.
        clock.advance(Duration::MAX);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input { data, pos: 0 };
    let mut h = Harness::new(input.byte());
    for _ in 0..MAX_OPS {
        let Some(op) = input.next() else { break };
        match op % 20 {
            0 => {
                let k = input.key();
                let via = if input.byte() & 1 == 0 {
                    Via::Add
                } else {
                    Via::AddRef
                };
                h.add(k, AddOpts::new(), via);
            }
            1 => {
                let k = input.key();
                let d = input.duration();
                h.add(k, AddOpts::new().after(d), Via::AddAfter);
            }
            2 => {
                let k = input.key();
                let flags = input.byte();
                let mut opts = AddOpts::new().priority(input.priority());
                if flags & 1 != 0 {
                    opts = opts.after(input.duration());
                }
                if flags & 2 != 0 {
                    opts = opts.rate_limited();
                }
                let via = if flags & 4 == 0 {
                    Via::AddWith
                } else {
                    Via::AddRefWith
                };
                h.add(k, opts, via);
            }
            3 => {
                let k = input.key();
                h.add(k, AddOpts::new().rate_limited(), Via::AddRateLimited);
            }
            4 | 5 => h.try_get(false),
            6 => h.try_get(true),
            7 | 8 => {
                let (pick, action) = (input.byte(), input.byte());
                h.guard_op(pick, action, &mut input);
            }
            9 => {
                let k = input.key();
                h.stray_done(k);
            }
            10 => {
                // A done for a detached item (or a stray one if none).
                let k = h.detached.first().copied().unwrap_or(KEYS - 1);
                h.stray_done(k);
            }
            11 => {
                let k = input.key();
                h.forget(k);
            }
            12 => {
                let drain = input.byte() & 1 != 0;
                h.shut_down(drain);
            }
            13 => {
                let d = input.duration();
                h.advance(d);
            }
            14 => {
                // Jump exactly to the clock's next deadline.
                h.check();
                if let Some(at) = h.clock.next_deadline() {
                    h.clock.set(at);
                }
            }
            15 => {
                // Time going backwards (FakeClock allows it).
                h.check();
                let d = input.duration();
                let now = h.clock.now();
                h.clock.set(now.checked_sub(d).unwrap_or(now));
            }
            16 => {
                if h.waiters.len() < 8 {
                    let wakes = Arc::new(Counter::default());
                    h.waiters.push(Waiter {
                        stream: h.queue.stream(),
                        wakes,
                        pending: false,
                        seen: 0,
                    });
                }
            }
            17 => {
                let pick = input.byte();
                h.poll_stream(pick);
            }
            18 => {
                let pick = input.byte();
                if !h.waiters.is_empty() {
                    let i = pick as usize % h.waiters.len();
                    drop(h.waiters.remove(i));
                }
            }
            _ => {
                // Snapshot (every op checks it too) and a drop of a queue handle.
                h.check();
                drop(h.queue.clone());
            }
        }
        h.check();
    }
    h.finish();
});
