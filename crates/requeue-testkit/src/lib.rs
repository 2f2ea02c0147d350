//! The multi-process crash-test harness of requeue's remote engines
//! (`requeue-redis`, `requeue-postgres`): worker processes that run a
//! queue of the engine against a shared server and report what they did
//! in a log, the parent's handle on them, and the checks on what they
//! reported. Each engine's `tests/processes.rs` keeps only what is its own:
//! how to start a server, open a queue, number events across processes,
//! read or disturb the stored queue.
//!
//! It is a workspace crate that is never published, used only as a path
//! dev-dependency, rather than part of `requeue::engine::conformance`:
//! its workers are the calling test binary run again under libtest's
//! command line (`--exact <entry>`), and it signals them with `kill` and
//! reads `/proc`, which is test plumbing for Linux CI, not an interface to
//! promise to other engines' authors.
//!
//! # The worker's log
//!
//! A worker is the test binary run again (`current_exe() --exact
//! <entry> …`, see [`Worker::spawn`]) with its [`Config`], as JSON, in the
//! [`ENV`] environment variable. It runs the engine's queue on its own
//! tokio runtime ([`run_if_worker`]) and appends one line per event to its
//! log file:
//!
//! | line | meaning |
//! |---|---|
//! | `S key token seq` | processing of `key` (lease `token`) started |
//! | `D key token seq` | its processing is over; its end is sent next |
//! | `E key token seq rc req` | it ended (`seq` as its `D`'s); `rc` = `ok` \| `lost` \| `err` \| `unreleased`; `req` = the seq of its re-add (`Then::Requeue`, and with [`ReAdds::Any`] `Retry`, `RetryAfter`), or `-` |
//! | `A key seq` | the worker added `key` (while processing) |
//! | `V key token valid` | hold mode: `item.is_valid()` just before ending |
//! | `C lost reaped` | the worker's counters, at exit |
//!
//! # Ordering across processes
//!
//! `Instant` cannot be compared across processes, and reading
//! `CLOCK_MONOTONIC` directly needs `unsafe` (forbidden here). Every `seq`
//! above is instead taken from one counter per queue in the engine's
//! server ([`Seq`]: a Redis `INCR`, a PostgreSQL `nextval`), which hands
//! out numbers one at a time, so the numbers are a total order consistent
//! with real time across all processes: a number taken after another was
//! returned is larger. A worker takes `S` after its `get` returned and `D`
//! before it calls `end_async`, so `[S, D]` lies inside its lease; the
//! parent (and a worker) takes `A` before it sends the add. So:
//!
//! * two intervals of a key overlap in seq order exactly when those spans
//!   really overlapped in time, so an overlap is never a clock artefact;
//! * a processing whose `get` ran after an add has `S > A`, so "the last
//!   add is followed by a processing with a later `S`" cannot fail for a
//!   correct queue. It is slightly weaker than the guarantee: a `get` that
//!   ran between `A` and the add also passes (its `S` comes after `A`).
//!   Exact would need the add and the hand-out numbered by one counter
//!   inside the engine, which a black-box test of the client cannot do.
//!
//! A worker stops when its stdin closes: the parent closes it, or dies.
#![allow(clippy::unwrap_used)] // a test harness: a failed unwrap is a failed test

mod history;
mod holder;
mod log;
mod parent;
mod run;
mod worker;

pub use history::{History, Interval};
pub use holder::{HOLD_LEASE_MS, Holder, Store};
pub use log::{Line, read_log};
pub use parent::{Worker, poll_until, signal};
pub use run::{Adders, Seen, add_numbered, drain, ms, temp_dir, wait_started_after};
pub use worker::{Config, ENTRY, ENV, Engine, Mode, ReAdds, Seq, run_if_worker};
