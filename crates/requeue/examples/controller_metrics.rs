//! A blocking controller that serves its queue's metrics at `/metrics`
//! with client-go's names, then scrapes itself and prints them.
//!
//! Run with `cargo run -p requeue --features prometheus --example controller_metrics [addr]`
//! (default `127.0.0.1:9090`; while it runs, `curl http://127.0.0.1:9090/metrics`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::registry::Registry;
use requeue::controller::{Action, Controller};
use requeue::limiter::ItemExponential;
use requeue::metrics::{PrometheusMetrics, serve_metrics};
use requeue::queue::WorkQueue;
use requeue::wait::Stop;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9090".to_string());
    let mut registry = Registry::default();
    let metrics = PrometheusMetrics::new(&mut registry);
    let server = serve_metrics(addr.as_str(), Arc::new(Mutex::new(registry)))?;
    println!("serving http://{}/metrics", server.addr());

    let queue: WorkQueue<String> = WorkQueue::builder()
        .name("widgets")
        .metrics(Arc::new(metrics))
        .rate_limiter(ItemExponential::new(
            Duration::from_millis(2),
            Duration::from_millis(100),
        ))
        .build();
    for i in 0..200 {
        queue.add(format!("shop/widget-{i}"))?;
    }
    let controller = Controller::new(queue.clone(), 4);
    let stop = Stop::new();
    let summary = std::thread::scope(|s| {
        let run = s.spawn(|| {
            controller.run(&stop, |key: &String| -> Result<Action, String> {
                std::thread::sleep(Duration::from_micros(200)); // "work"
                if key.ends_with('3') && queue.num_requeues(key) == 0 {
                    return Err(format!("{key}: conflict"));
                }
                Ok(Action::Done)
            })
        });
        while controller.counts().succeeded < 200 {
            std::thread::sleep(Duration::from_millis(5));
        }
        stop.stop();
        run.join()
    });
    println!("{:?}", summary.map_err(|_| "the runner panicked")?);

    let mut stream = TcpStream::connect(server.addr())?;
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    for line in response
        .lines()
        .filter(|l| l.starts_with("workqueue_") && !l.contains("_bucket"))
    {
        println!("{line}");
    }
    Ok(())
}
