//! One controller, any engine: the same handler and `Controller` run on
//! the in-memory `WorkQueue`, on Redis or on PostgreSQL; only the line
//! that builds the queue differs.
//!
//! ```text
//! cargo run -p requeue-postgres --example any_engine -- memory
//! cargo run -p requeue-postgres --example any_engine -- redis [redis://127.0.0.1:6379/]
//! cargo run -p requeue-postgres --example any_engine -- postgres [postgres://user@127.0.0.1/db]
//! ```
//!
//! Without a URL the Redis run starts a throwaway `redis-server`, and the
//! PostgreSQL run a throwaway cluster (`initdb`), on loopback.

use requeue::controller::{Action, Controller, Summary};
use requeue::engine::AsyncQueue;
use requeue::queue::WorkQueue;
use requeue::wait::Stop;
use requeue_postgres::PostgresQueue;
use requeue_redis::RedisQueue;
use std::time::Duration;

/// Reconciles 200 objects (every 20th fails once) on `queue`, whatever the engine.
async fn reconcile_fleet<Q: AsyncQueue<String>>(queue: Q) -> Summary {
    for n in 0..200 {
        let key = format!("ns-{}/obj-{n}", n % 4);
        if let Err(refused) = queue.add(key).await {
            eprintln!("add refused: {refused}");
        }
    }
    let controller = Controller::new(queue.clone(), 4);
    let stop = Stop::new();
    let run = {
        let (controller, stop, queue) = (controller.clone(), stop.clone(), queue.clone());
        tokio::spawn(async move {
            controller
                .run_async(&stop, move |key: String| {
                    let queue = queue.clone();
                    async move {
                        let failures = queue.num_requeues(&key).await.unwrap_or(0);
                        let n: u32 = key
                            .rsplit('-')
                            .next()
                            .and_then(|n| n.parse().ok())
                            .unwrap_or(0);
                        if n.is_multiple_of(20) && failures == 0 {
                            return Err(format!("{key}: upstream timed out"));
                        }
                        Ok(Action::Done)
                    }
                })
                .await
        })
    };
    while controller.counts().succeeded < 200 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.stop();
    run.await.expect("the controller task")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let engine = args.next().unwrap_or_else(|| "memory".into());
    let summary = match engine.as_str() {
        // The only engine-specific lines: how the queue is built.
        "memory" => reconcile_fleet(WorkQueue::<String>::new()).await,
        "redis" => {
            let mut local = None;
            let url = match args.next() {
                Some(url) => url,
                None => local
                    .insert(requeue_redis::local_server::LocalServer::start()?)
                    .url(),
            };
            let queue: RedisQueue<String> =
                RedisQueue::builder(&url, format!("any-{}", std::process::id()))
                    .build()
                    .await?;
            reconcile_fleet(queue).await
        }
        "postgres" => {
            let mut local = None;
            let url = match args.next() {
                Some(url) => url,
                None => local
                    .insert(requeue_postgres::local_server::LocalServer::start()?)
                    .url(),
            };
            let queue: PostgresQueue<String> =
                PostgresQueue::builder(&url, format!("any-{}", std::process::id()))
                    .build()
                    .await?;
            reconcile_fleet(queue).await
        }
        other => {
            return Err(format!("unknown engine `{other}` (memory, redis or postgres)").into());
        }
    };
    println!("{engine}: {summary:?}");
    Ok(())
}
