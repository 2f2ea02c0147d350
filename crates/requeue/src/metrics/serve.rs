//! A minimal `/metrics` endpoint for binaries: one thread, plain HTTP/1.1,
//! `GET /metrics` answered with the registry's OpenMetrics text.

use super::encode_text;
use crate::sync::{Arc, Mutex, lock};
use prometheus_client::registry::Registry;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// A running `/metrics` endpoint; dropping it (or [`stop`](MetricsServer::stop)) ends it.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Serves `registry` at `http://<addr>/metrics` on a thread of its own.
/// Bind to port 0 to get a free port ([`MetricsServer::addr`] tells which).
pub fn serve_metrics(
    addr: impl ToSocketAddrs,
    registry: Arc<Mutex<Registry>>,
) -> std::io::Result<MetricsServer> {
    let listener = TcpListener::bind(addr)?;
    let addr = listener.local_addr()?;
    let stopping = Arc::new(AtomicBool::new(false));
    let flag = stopping.clone();
    let thread = std::thread::Builder::new()
        .name("requeue-metrics".into())
        .spawn(move || {
            for stream in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream
                    && let Err(error) = answer(stream, &registry)
                {
                    tracing::debug!(%error, "a /metrics request failed");
                }
            }
        })?;
    Ok(MetricsServer {
        addr,
        stopping,
        thread: Some(thread),
    })
}

fn answer(stream: TcpStream, registry: &Mutex<Registry>) -> std::io::Result<()> {
    let mut request_line = String::new();
    BufReader::new(&stream).read_line(&mut request_line)?;
    let mut stream = stream;
    let path = request_line.split_whitespace().nth(1).unwrap_or("");
    let (status, content_type, body) = if path == "/metrics" {
        let text = encode_text(&lock(registry));
        (
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            text,
        )
    } else {
        (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found: try /metrics\n".to_string(),
        )
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

impl MetricsServer {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving and waits for the thread.
    pub fn stop(mut self) {
        self.shut();
    }

    fn shut(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.shut();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::PrometheusMetrics;
    use crate::queue::WorkQueue;
    use std::io::Read;

    fn get(addr: SocketAddr, path: &str) -> String {
        let mut stream = TcpStream::connect(addr).expect("connect");
        write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("request");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("response");
        response
    }

    #[test]
    fn scraping_shows_the_client_go_names() {
        let mut registry = Registry::default();
        let metrics = PrometheusMetrics::new(&mut registry);
        let queue: WorkQueue<String> = WorkQueue::builder()
            .name("scraped")
            .metrics(std::sync::Arc::new(metrics))
            .build();
        queue.add("a".to_string()).expect("running");
        let server = serve_metrics("127.0.0.1:0", Arc::new(Mutex::new(registry))).expect("bind");
        let response = get(server.addr(), "/metrics");
        assert!(response.starts_with("HTTP/1.1 200 OK"));
        assert!(response.contains("workqueue_depth{name=\"scraped\"} 1"));
        assert!(response.contains("workqueue_adds_total{name=\"scraped\"} 1"));
        assert!(get(server.addr(), "/other").starts_with("HTTP/1.1 404"));
        server.stop();
    }
}
