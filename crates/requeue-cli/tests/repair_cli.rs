//! `requeue inspect` says what is broken in a queue's stored state, and
//! `requeue repair` fixes it (dry run by default), against a real
//! redis-server; `inspect --watch` survives a Redis restart.
#![allow(clippy::unwrap_used)]

use requeue_redis::RedisQueue;
use requeue_redis::local_server::LocalServer;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn requeue() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_requeue"));
    command.env_remove("REDIS_URL").env_remove("RUST_LOG");
    command
}

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A queue `name` with 20 items queued and one of them leased.
fn queue_with_work(server: &LocalServer, name: &str) -> redis::Connection {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let queue: RedisQueue<String> = RedisQueue::builder(server.url(), name)
            .build()
            .await
            .unwrap();
        for i in 0..20 {
            queue.add(format!("ns/obj-{i}")).await.unwrap();
        }
        let held = queue.get().await.unwrap();
        held.detach();
        queue.shut_down();
    });
    redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap()
}

#[test]
fn a_deleted_ready_list_is_reported_by_inspect_and_fixed_by_repair() {
    let server = LocalServer::start().unwrap();
    let mut conn = queue_with_work(&server, "broken");
    let _: () = redis::cmd("DEL")
        .arg("rq:{broken}:queue")
        .query(&mut conn)
        .unwrap();

    // inspect: the impossible combination is named; exit 3.
    let inspect = requeue()
        .args(["inspect", "--redis", &server.url(), "--queue", "broken"])
        .output()
        .unwrap();
    let out = text(&inspect);
    assert_eq!(inspect.status.code(), Some(3), "{out}");
    assert!(
        out.contains("ready 0   parked 19   delayed 0   processing 1"),
        "{out}"
    );
    assert!(out.contains("PROBLEMS (19"), "{out}");
    assert!(
        out.contains("\"ns/obj-5\" is dirty but neither queued nor leased (stranded)"),
        "{out}"
    );

    // repair, dry run: says what it would do, changes nothing; exit 3.
    let dry = requeue()
        .args(["repair", "--redis", &server.url(), "--queue", "broken"])
        .output()
        .unwrap();
    let out = text(&dry);
    assert_eq!(dry.status.code(), Some(3), "{out}");
    assert!(out.contains("repair: queue it at the tail"), "{out}");
    assert!(out.contains("dry run: nothing changed"), "{out}");
    let depth: u64 = redis::cmd("LLEN")
        .arg("rq:{broken}:queue")
        .query(&mut conn)
        .unwrap();
    assert_eq!(depth, 0);

    // repair --apply: the items are queued again; exit 0; healthy after.
    let apply = requeue()
        .args([
            "repair",
            "--redis",
            &server.url(),
            "--queue",
            "broken",
            "--apply",
        ])
        .output()
        .unwrap();
    let out = text(&apply);
    assert!(apply.status.success(), "{out}");
    assert!(out.contains("repaired, 19 changes"), "{out}");
    let depth: u64 = redis::cmd("LLEN")
        .arg("rq:{broken}:queue")
        .query(&mut conn)
        .unwrap();
    assert_eq!(depth, 19);
    let again = requeue()
        .args(["repair", "--redis", &server.url(), "--queue", "broken"])
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("every rule holds"));
    let clean = requeue()
        .args(["inspect", "--redis", &server.url(), "--queue", "broken"])
        .output()
        .unwrap();
    assert!(clean.status.success(), "{}", text(&clean));
    assert!(!text(&clean).contains("PROBLEMS"));
}

#[test]
fn inspect_reads_a_queue_with_a_key_of_the_wrong_type() {
    let server = LocalServer::start().unwrap();
    let mut conn = queue_with_work(&server, "garbled");
    let _: () = redis::cmd("SET")
        .arg("rq:{garbled}:owners")
        .arg("garbage")
        .query(&mut conn)
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg("rq:{garbled}:failures")
        .arg("ns/obj-3")
        .arg("x")
        .query(&mut conn)
        .unwrap();
    let inspect = requeue()
        .args(["inspect", "--redis", &server.url(), "--queue", "garbled"])
        .output()
        .unwrap();
    let out = text(&inspect);
    assert_eq!(inspect.status.code(), Some(3), "{out}");
    assert!(
        out.contains("rq:{garbled}:owners is a string where a hash belongs"),
        "{out}"
    );
    assert!(
        out.contains("rq:{garbled}:failures field \"ns/obj-3\" is not a number"),
        "{out}"
    );
    assert!(out.contains("is leased to nobody"), "{out}");
    let apply = requeue()
        .args([
            "repair",
            "--redis",
            &server.url(),
            "--queue",
            "garbled",
            "--apply",
        ])
        .output()
        .unwrap();
    let out = text(&apply);
    assert!(apply.status.success(), "{out}");
    assert!(
        out.contains("deleted rq:{garbled}:owners (a string)"),
        "{out}"
    );
    assert!(
        out.contains("gave back \"ns/obj-0\" (leased to nobody)"),
        "{out}"
    );
    let depth: u64 = redis::cmd("LLEN")
        .arg("rq:{garbled}:queue")
        .query(&mut conn)
        .unwrap();
    assert_eq!(depth, 20, "the item leased to nobody is queued again");
}

#[test]
fn inspect_watch_survives_a_redis_restart() {
    let mut server = LocalServer::start().unwrap();
    let _conn = queue_with_work(&server, "watched");
    let mut child = requeue()
        .args([
            "inspect",
            "--redis",
            &server.url(),
            "--queue",
            "watched",
            "--watch",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines, seen) = std::sync::mpsc::channel::<String>();
    let out_lines = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = out_lines.send(format!("out: {line}"));
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(format!("err: {line}"));
        }
    });
    let wait_for = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut log = Vec::new();
        while Instant::now() < deadline {
            if let Ok(line) = seen.recv_timeout(Duration::from_millis(200)) {
                let hit = line.contains(what);
                log.push(line);
                if hit {
                    return;
                }
            }
        }
        panic!("no line with {what:?} within 20 s: {log:#?}");
    };
    wait_for("ready 19");
    server.restart(true).unwrap();
    wait_for("retrying every second");
    wait_for("answers again");
    wait_for("ready 19");
    assert!(child.try_wait().unwrap().is_none(), "still watching");
    child.kill().unwrap();
    let _ = child.wait();
}
