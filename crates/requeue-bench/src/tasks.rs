//! Runs a workload's producers and consumers as tokio tasks on a
//! multi-thread runtime with [`TASK_WORKERS`] worker threads: the fair
//! counterpart of Go's goroutines on GOMAXPROCS=2, which is how client-go
//! runs the same workloads on this machine.
//!
//! The runtime is built and its workers are up before the clock starts;
//! the tasks are spawned inside the timed span (as Go starts its
//! goroutines inside it), the clock stops when the last task has finished,
//! and the CPU time is read while the workers are still alive. The
//! watchdog of the threaded flavour applies unchanged: it runs on the
//! calling thread, outside the runtime, so tasks that never yield cannot
//! stop it from firing.

use crate::crew::{Finish, Timing, wait_all};
use crate::{BenchError, cpu_time};
use crossbeam_channel::unbounded;
use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

/// Worker threads of the task flavours' runtime: 2, the GOMAXPROCS that
/// client-go's figures are taken with on this 2-core machine.
pub const TASK_WORKERS: usize = 2;

/// Producer tasks yield to the scheduler (`tokio::task::yield_now`) after
/// every this many adds. A task is never preempted: a producer that never
/// awaited would hold its worker thread until its last add, so that in
/// W3 the two producer tasks would fill the queue with all N keys before
/// any consumer task ran (the workload would stop being producers and
/// consumers at once), and W5's producer would hold a worker for the
/// whole run. Go's scheduler preempts a producer goroutine (and parks it
/// whenever the queue's mutex is contended); a well-behaved task yields.
/// 256 adds take a few microseconds; the yield costs well under one.
pub const TASK_BATCH: usize = 256;

type Job = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// The tasks of one workload run.
pub(crate) struct TaskCrew {
    workload: &'static str,
    jobs: Vec<Job>,
}

impl TaskCrew {
    pub(crate) fn new(workload: &'static str) -> Self {
        TaskCrew {
            workload,
            jobs: Vec::new(),
        }
    }

    /// Adds a task, spawned when the crew runs.
    pub(crate) fn spawn(&mut self, job: impl Future<Output = ()> + Send + 'static) {
        self.jobs.push(Box::pin(job));
    }

    /// Starts the runtime, then (inside the timed span) spawns every task
    /// and waits for all of them. `abort` is called if they have not
    /// finished after [`WATCHDOG`](crate::WATCHDOG) (it should shut the
    /// queue down so they can).
    pub(crate) fn run(self, abort: impl FnOnce()) -> Result<Timing, BenchError> {
        let workload = self.workload;
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(TASK_WORKERS)
            .thread_name(format!("{workload}-worker"))
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                abort();
                return Err(BenchError::Thread {
                    workload,
                    detail: format!("cannot start the tokio runtime: {e}"),
                });
            }
        };
        // Run a task on each worker once, so that they are up and parked
        // before the clock starts.
        runtime.block_on(async {
            for _ in 0..TASK_WORKERS {
                let _ = tokio::spawn(async {}).await;
            }
        });
        let (finished, finished_rx) = unbounded();
        let expected = self.jobs.len();
        let cpu0 = cpu_time();
        let start = Instant::now();
        for job in self.jobs {
            let tx = finished.clone();
            // Detached: the finish report, not the handle, says it ended
            // (a panic drops the task, which reports it).
            drop(runtime.spawn(async move {
                let mut finish = Finish { tx, ok: false };
                job.await;
                finish.ok = true;
            }));
        }
        drop(finished);
        let waited = wait_all(workload, "tasks", expected, &finished_rx, start, abort);
        let wall = start.elapsed();
        let cpu1 = cpu_time();
        let (failures, hang) = match waited {
            Ok(waited) => waited,
            Err(e) => {
                // Tasks that ignore the shutdown are left running.
                runtime.shutdown_background();
                return Err(e);
            }
        };
        drop(runtime); // every task has finished: this returns at once
        if let Some(detail) = hang {
            return Err(BenchError::Hang { workload, detail });
        }
        if let Some(detail) = failures.into_iter().next() {
            let detail = format!("a task {detail}");
            return Err(BenchError::Thread { workload, detail });
        }
        let cpu = cpu0.zip(cpu1).map(|(a, b)| b.saturating_sub(a));
        Ok(Timing { wall, cpu })
    }
}
