//! A Redis ACL user limited to one queue's keys (`~rq:{orders}:*`): the
//! queue works with exactly that, a queue outside the pattern is refused
//! with Redis's no-permission (NOPERM) reason, and a wrong password is a connect error;
//! the password shows in none of the messages.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;

use requeue::engine::Then;
use requeue_redis::RedisQueue;
use requeue_redis::error::{Chain, Error};
use requeue_redis::local_server::{LocalServer, LocalServerOptions};

const PASSWORD: &str = "s3cret-acl-pass";

async fn server_with_user() -> LocalServer {
    let server = LocalServer::start_with(LocalServerOptions {
        appendonly: false,
        ..LocalServerOptions::default()
    })
    .unwrap();
    let mut admin = support::connect(&server.url()).await;
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("orders-worker")
        .arg("on")
        .arg(format!(">{PASSWORD}"))
        .arg("resetkeys")
        .arg("~rq:{orders}:*")
        .arg("resetchannels")
        .arg("+@all")
        .arg("-@dangerous")
        .query_async(&mut admin)
        .await
        .unwrap();
    server
}

fn url(server: &LocalServer, password: &str) -> String {
    format!(
        "redis://orders-worker:{password}@127.0.0.1:{}/",
        server.port()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_limited_to_the_queues_keys_runs_the_queue() {
    let server = server_with_user().await;
    let queue: RedisQueue<String> = RedisQueue::builder(url(&server, PASSWORD), "orders")
        .build()
        .await
        .unwrap();
    queue.add("order-1".to_string()).await.unwrap();
    queue
        .add_after("order-2".to_string(), std::time::Duration::from_millis(1))
        .await
        .unwrap();
    for _ in 0..2 {
        let item = queue.get().await.unwrap();
        assert!(item.end_async(Then::Retry).await.unwrap().released);
    }
    for _ in 0..2 {
        let item = queue.get().await.unwrap();
        assert!(item.end_async(Then::Forget).await.unwrap().released);
    }
    assert_eq!(queue.len().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_outside_the_users_keys_is_refused_with_the_reason() {
    let server = server_with_user().await;
    let queue: RedisQueue<String> = RedisQueue::builder(url(&server, PASSWORD), "payments")
        .build()
        .await
        .unwrap();
    let refused = queue.add("p-1".to_string()).await.unwrap_err();
    let text = Chain(&refused).to_string();
    assert!(text.to_lowercase().contains("noperm"), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
    assert_eq!(refused.into_inner(), "p-1", "the item is handed back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_a_connect_error_that_does_not_show_it() {
    let server = server_with_user().await;
    let wrong = "not-the-password";
    let refused = RedisQueue::<String>::builder(url(&server, wrong), "orders")
        .build()
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::Connect { .. }), "{refused:?}");
    let text = Chain(&refused).to_string();
    assert!(!text.contains(wrong), "{text}");
    assert!(!format!("{refused:?}").contains(wrong));
}
