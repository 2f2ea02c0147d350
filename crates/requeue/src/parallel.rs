//! Split work into pieces and process them on several threads until done or
//! stopped (client-go's `workqueue.ParallelizeUntil`).
//!
//! # Usage
//!
//! [`parallelize_until`] calls `work(piece)` once for every piece in
//! `0..pieces`, on up to `workers` threads at a time, and returns when all
//! pieces are done — or as soon as the [`Stop`] signal fires, in which case
//! the pieces not yet started are skipped. `work` may borrow from the
//! caller's stack. [`Parallelizer`] adds upstream's chunk-size option and the
//! choice of [`PanicPolicy`].
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use requeue::parallel::{Parallelizer, parallelize_until};
//! use requeue::wait::Stop;
//!
//! let numbers: Vec<u64> = (1..=1000).collect();
//! let sum = AtomicU64::new(0);
//! let done = parallelize_until(&Stop::never(), 4, numbers.len(), |piece| {
//!     sum.fetch_add(numbers[piece], Ordering::Relaxed);
//! });
//! assert_eq!(sum.load(Ordering::Relaxed), 500_500);
//! assert_eq!(done.completed, 1000);
//! assert!(!done.stopped);
//!
//! // Hand out 100 pieces at a time; a stop signal that has fired runs nothing.
//! let done = Parallelizer::new(4)
//!     .chunk_size(100)
//!     .run(&Stop::stopped_already(), numbers.len(), |_| unreachable!());
//! assert_eq!(done.completed, 0);
//! assert!(done.stopped);
//! ```
//!
//! ## Coming from client-go
//!
//! | client-go | requeue |
//! |---|---|
//! | `ParallelizeUntil(ctx, workers, pieces, doWorkPiece)` | [`parallelize_until(&stop, workers, pieces, work)`](parallelize_until) |
//! | `WithChunkSize(n)` option | [`Parallelizer::chunk_size`] |
//! | `ctx` (nil = never cancelled) | [`Stop`] ([`Stop::never`]) |
//! | worker crash protection (`HandleCrash`) | [`Parallelizer::panics`], [`PanicPolicy::inherit`] by default |
//! | no result | a [`Parallelized`] summary |
//!
//! # Implementation
//!
//! Pieces are grouped into chunks of `chunk_size` consecutive pieces; the
//! workers claim chunk numbers from one shared atomic counter, so every chunk
//! goes to exactly one worker, and check the stop signal before each piece.
//! The workers are scoped threads (`std::thread::scope`): `workers - 1`
//! spawned ones plus the calling thread, which takes part instead of idling
//! until the others finish. If the system refuses to spawn a thread, the
//! threads that do run (at least the calling one) take over its share.

use crate::crash::PanicPolicy;
use crate::wait::Stop;
use std::io;
use std::panic::resume_unwind;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, Scope, ScopedJoinHandle};

/// The panic context reported to [`PanicPolicy`] handlers.
const CONTEXT: &str = "parallelize_until";

/// Calls `work(piece)` once for every piece in `0..pieces` on up to
/// `workers` threads, until all are done or `stop` fires (client-go's
/// `ParallelizeUntil` with a chunk size of 1).
///
/// `stop` is checked before each piece; once it has fired no further piece
/// is started (pieces already running finish). With no pieces or no workers
/// it returns at once without calling `work`. Panics in `work` follow
/// [`PanicPolicy::inherit`]: logged, then re-raised in the caller once the
/// other workers have stopped. Use [`Parallelizer`] for other settings.
pub fn parallelize_until(
    stop: &Stop,
    workers: usize,
    pieces: usize,
    work: impl Fn(usize) + Sync,
) -> Parallelized {
    Parallelizer::new(workers).run(stop, pieces, work)
}

/// What a parallel run did — an addition over client-go, whose
/// `ParallelizeUntil` reports nothing.
///
/// `completed + panicked` pieces ran; if the run was stopped the remaining
/// pieces were skipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Parallelized {
    /// Pieces whose `work` call returned normally.
    pub completed: usize,
    /// Pieces whose `work` call panicked, under a policy that contained the
    /// panic (a re-raised panic ends the run instead).
    pub panicked: usize,
    /// Whether the stop signal kept at least one piece from running.
    pub stopped: bool,
}

impl Parallelized {
    fn merge(self, other: Parallelized) -> Parallelized {
        Parallelized {
            completed: self.completed + other.completed,
            panicked: self.panicked + other.panicked,
            stopped: self.stopped || other.stopped,
        }
    }
}

/// A configured parallel run: worker count, chunk size and panic policy
/// (see the [module documentation](self) for an example).
#[derive(Debug, Clone)]
pub struct Parallelizer {
    workers: usize,
    chunk_size: usize,
    panics: PanicPolicy,
}

impl Parallelizer {
    /// Runs on up to `workers` threads (0 runs nothing), handing out one
    /// piece at a time, with the [`PanicPolicy::inherit`] policy.
    pub fn new(workers: usize) -> Self {
        Parallelizer {
            workers,
            chunk_size: 1,
            panics: PanicPolicy::inherit(),
        }
    }

    /// Hands out `chunk_size` consecutive pieces at a time (client-go's
    /// `WithChunkSize`); 0 counts as 1. Larger chunks cost less
    /// coordination when pieces are small.
    pub fn chunk_size(mut self, chunk_size: usize) -> Self {
        self.chunk_size = chunk_size.max(1);
        self
    }

    /// How a panic in `work` is handled.
    ///
    /// The default, [`PanicPolicy::inherit`], reports the panic and re-raises
    /// it like upstream's `HandleCrash`: the other workers start no further
    /// piece, and once every worker has returned, `run` resumes the original
    /// panic in the caller. With a policy that contains panics (such as
    /// [`PanicPolicy::contain`]) only the panicking piece is lost: it counts
    /// in [`Parallelized::panicked`] and its worker goes on with the rest of
    /// its chunk and further chunks. (Upstream's worker goroutine ends at the
    /// first contained panic, silently skipping the rest of its chunk.)
    pub fn panics(mut self, policy: PanicPolicy) -> Self {
        self.panics = policy;
        self
    }

    /// Calls `work(piece)` once for every piece in `0..pieces` unless `stop`
    /// fires first, and returns when every worker has finished.
    ///
    /// At most `min(workers, chunks)` workers run, where `chunks` is
    /// `pieces / chunk_size` rounded up; the calling thread is one of them.
    /// `stop` is checked before every piece. Each piece runs at most once,
    /// and exactly once unless the run is stopped or a panic is re-raised.
    pub fn run(&self, stop: &Stop, pieces: usize, work: impl Fn(usize) + Sync) -> Parallelized {
        if pieces == 0 || self.workers == 0 {
            return Parallelized::default();
        }
        if stop.is_stopped() {
            return Parallelized {
                stopped: true,
                ..Parallelized::default()
            };
        }
        let chunk_size = self.chunk_size.max(1);
        let chunks = pieces.div_ceil(chunk_size);
        let run = Run {
            next_chunk: AtomicUsize::new(0),
            chunks,
            chunk_size,
            pieces,
            stop,
            crashed: AtomicBool::new(false),
            panics: &self.panics,
            work: &work,
        };
        let workers = self.workers.min(chunks);
        thread::scope(|scope| {
            // Not preallocated: `workers` may be far more than the system can spawn.
            let mut helpers = Vec::new();
            for _ in 1..workers {
                match spawn_worker(scope, || run.run_worker()) {
                    Ok(handle) => helpers.push(handle),
                    Err(error) => {
                        tracing::warn!(
                            %error,
                            spawned = helpers.len(),
                            "parallelize_until could not spawn a worker thread; \
                             the running workers take over its share"
                        );
                        break;
                    }
                }
            }
            // A panic re-raised here unwinds through the scope, which still
            // joins the helpers; `run.crashed` makes them stop early.
            let mut total = run.run_worker();
            let mut first_panic = None;
            for helper in helpers {
                match helper.join() {
                    Ok(tally) => total = total.merge(tally),
                    Err(payload) => {
                        first_panic.get_or_insert(payload);
                    }
                }
            }
            if let Some(payload) = first_panic {
                resume_unwind(payload);
            }
            total
        })
    }
}

/// Spawns one scoped helper worker.
fn spawn_worker<'scope, F>(
    scope: &'scope Scope<'scope, '_>,
    worker: F,
) -> io::Result<ScopedJoinHandle<'scope, Parallelized>>
where
    F: FnOnce() -> Parallelized + Send + 'scope,
{
    #[cfg(test)]
    if tests::REFUSE_SPAWN.with(std::cell::Cell::get) {
        return Err(io::Error::other("spawning refused by the test"));
    }
    thread::Builder::new()
        .name("requeue-parallel".into())
        .spawn_scoped(scope, worker)
}

/// The state the workers of one run share.
struct Run<'a, W> {
    /// The next chunk number to hand out. It only grows past `chunks` by
    /// one per worker, so it cannot wrap for any real run.
    next_chunk: AtomicUsize,
    chunks: usize,
    chunk_size: usize,
    pieces: usize,
    stop: &'a Stop,
    /// Set when a worker unwinds with a re-raised panic.
    crashed: AtomicBool,
    panics: &'a PanicPolicy,
    work: &'a W,
}

impl<W: Fn(usize) + Sync> Run<'_, W> {
    /// One worker: claims chunks until none are left or the run must end.
    fn run_worker(&self) -> Parallelized {
        let _crash_guard = CrashGuard(&self.crashed);
        let mut tally = Parallelized::default();
        loop {
            let chunk = self.next_chunk.fetch_add(1, Ordering::Relaxed);
            if chunk >= self.chunks {
                return tally;
            }
            // chunk < chunks = ceil(pieces / chunk_size): no overflow.
            let start = chunk * self.chunk_size;
            let end = start.saturating_add(self.chunk_size).min(self.pieces);
            for piece in start..end {
                if self.stop.is_stopped() {
                    tally.stopped = true;
                    return tally;
                }
                if self.crashed.load(Ordering::Relaxed) {
                    return tally;
                }
                match self.panics.call(CONTEXT, || (self.work)(piece)) {
                    Some(()) => tally.completed += 1,
                    None => tally.panicked += 1,
                }
            }
        }
    }
}

/// Tells the other workers to stop when its worker unwinds.
struct CrashGuard<'a>(&'a AtomicBool);

impl Drop for CrashGuard<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crash::panic_message;
    use std::cell::Cell;
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::sync::Arc;
    use std::time::Duration;

    thread_local! {
        /// Makes `spawn_worker` fail on this thread, as an exhausted system would.
        pub(super) static REFUSE_SPAWN: Cell<bool> = const { Cell::new(false) };
    }

    /// Runs `also` for every piece and returns how often each piece ran.
    fn count_runs(
        parallelizer: Parallelizer,
        stop: &Stop,
        pieces: usize,
        also: impl Fn(usize) + Sync,
    ) -> (Parallelized, Vec<usize>) {
        let seen: Vec<AtomicUsize> = (0..pieces).map(|_| AtomicUsize::new(0)).collect();
        let done = parallelizer.run(stop, pieces, |piece| {
            seen[piece].fetch_add(1, Ordering::SeqCst);
            also(piece);
        });
        (
            done,
            seen.into_iter().map(AtomicUsize::into_inner).collect(),
        )
    }

    #[test]
    fn parallelize_until_processes_every_piece_exactly_once() {
        // TestParallelizeUntil, plus more workers than chunks and odd chunk sizes.
        let cases = [
            (1000, 10, 1),
            (1000, 10, 10),
            (1000, 10, 100),
            (999, 10, 13),
            (3, 100, 0),
            (5, 2, usize::MAX),
        ];
        for (pieces, workers, chunk) in cases {
            let parallelizer = Parallelizer::new(workers).chunk_size(chunk);
            let (done, seen) = count_runs(parallelizer, &Stop::never(), pieces, |_| {});
            assert_eq!(seen, vec![1; pieces], "{pieces}/{workers}/{chunk}");
            assert_eq!(
                (done.completed, done.panicked, done.stopped),
                (pieces, 0, false)
            );
        }
    }

    #[test]
    fn stop_before_start_runs_nothing() {
        let (done, seen) = count_runs(Parallelizer::new(4), &Stop::stopped_already(), 100, |_| {});
        assert_eq!(seen, vec![0; 100]);
        assert_eq!((done.completed, done.stopped), (0, true));
    }

    #[test]
    fn stop_midway_starts_no_further_piece() {
        // One worker: deterministic. Pieces 0..=10 run, 11.. are skipped.
        let stop = Stop::new();
        let (done, seen) = count_runs(Parallelizer::new(1), &stop, 100, |piece| {
            if piece == 10 {
                stop.stop();
            }
        });
        assert_eq!((done.completed, done.stopped), (11, true));
        assert_eq!(seen, [vec![1; 11], vec![0; 89]].concat());
    }

    #[test]
    fn stop_midway_with_several_workers_lets_only_running_pieces_finish() {
        // Piece 0 stops the run; every other piece waits for that, so each
        // worker finishes at most the one piece it had already started.
        let stop = Stop::new();
        let (done, seen) = count_runs(Parallelizer::new(4), &stop, 1000, |piece| {
            if piece == 0 {
                stop.stop();
            } else {
                stop.wait_timeout(Duration::from_secs(30));
            }
        });
        assert!(done.stopped);
        assert!((1..=4).contains(&done.completed), "{done:?}");
        assert_eq!(seen[0], 1);
        assert_eq!(seen.iter().sum::<usize>(), done.completed);
    }

    #[test]
    fn zero_workers_or_pieces_run_nothing() {
        let done = parallelize_until(&Stop::never(), 0, 100, |_| unreachable!());
        assert_eq!(done, Parallelized::default());
        let done = parallelize_until(&Stop::stopped_already(), 4, 0, |_| unreachable!());
        assert_eq!(done, Parallelized::default());
    }

    #[test]
    fn contained_panic_skips_only_that_piece() {
        let reports = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&reports);
        let policy = PanicPolicy::contain().on_panic(move |report| {
            assert_eq!((report.context(), report.message()), (CONTEXT, "piece 37"));
            counter.fetch_add(1, Ordering::SeqCst);
        });
        let parallelizer = Parallelizer::new(4).chunk_size(10).panics(policy);
        let (done, seen) = count_runs(parallelizer, &Stop::never(), 100, |piece| {
            if piece == 37 {
                panic!("piece {piece}");
            }
        });
        // Piece 37 ran (and panicked) once; the rest of its chunk still ran.
        assert_eq!(seen, vec![1; 100]);
        assert_eq!(
            (done.completed, done.panicked, done.stopped),
            (99, 1, false)
        );
        assert_eq!(reports.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn re_raised_panic_reaches_the_caller_with_its_payload() {
        for workers in [1, 4] {
            let policy = PanicPolicy::inherit().really_crash(true);
            let caught = catch_unwind(AssertUnwindSafe(|| {
                Parallelizer::new(workers)
                    .panics(policy)
                    .run(&Stop::never(), 100, |_| panic!("boom"))
            }));
            let payload = caught.expect_err("the panic is re-raised");
            assert_eq!(panic_message(&*payload), "boom");
        }
    }

    #[test]
    fn refused_spawns_run_on_the_calling_thread() {
        REFUSE_SPAWN.with(|refuse| refuse.set(true));
        let caller = thread::current().id();
        let (done, seen) = count_runs(Parallelizer::new(8), &Stop::never(), 50, |_| {
            assert_eq!(thread::current().id(), caller);
        });
        REFUSE_SPAWN.with(|refuse| refuse.set(false));
        assert_eq!(seen, vec![1; 50]);
        assert_eq!(done.completed, 50);
    }
}
