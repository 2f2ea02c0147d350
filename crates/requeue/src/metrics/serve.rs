//! A hardened `/metrics` endpoint for binaries: HTTP/1.1 served by hyper on
//! a small tokio runtime of its own, answering `GET /metrics` with the
//! registry's OpenMetrics text.
//!
//! # Usage
//!
//! Call [`serve_metrics`] from ordinary (blocking or async) code with the
//! registry the providers were registered in; it binds at once (bind errors
//! come back from the call) and serves on a thread named `requeue-metrics`
//! until the returned [`MetricsServer`] is stopped or dropped.
//!
//! ```
//! use std::io::{Read, Write};
//! use std::net::TcpStream;
//! use std::sync::{Arc, Mutex};
//! use std::time::Duration;
//!
//! use prometheus_client::registry::Registry;
//! use requeue::metrics::{PrometheusMetrics, serve_metrics};
//! use requeue::queue::WorkQueue;
//!
//! let mut registry = Registry::default();
//! let metrics = Arc::new(PrometheusMetrics::new(&mut registry));
//! let queue: WorkQueue<String> = WorkQueue::builder().name("pods").metrics(metrics).build();
//! queue.add("default/web".to_string()).expect("the queue is running");
//!
//! // Port 0: any free port; `addr()` tells which.
//! let server = serve_metrics("127.0.0.1:0", Arc::new(Mutex::new(registry)))?;
//! let mut scrape = TcpStream::connect(server.addr())?;
//! scrape.set_read_timeout(Some(Duration::from_secs(5)))?;
//! scrape.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
//! let mut response = String::new();
//! scrape.read_to_string(&mut response)?; // the server closes after one answer
//! assert!(response.starts_with("HTTP/1.1 200 OK"));
//! assert!(response.contains("workqueue_depth{name=\"pods\"} 1"));
//! server.stop();
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! [`serve_metrics_with`] takes a [`ServeOptions`] to change the limits.
//!
//! # Limits, and why
//!
//! The endpoint is usually reachable by more than the Prometheus server
//! that scrapes it, so no client may keep it from answering the others.
//! The first version read request lines one connection at a time with no
//! timeout: a single connection that sent `GET /metr` and stopped blocked
//! every scrape. Now each connection is a task of its own, and:
//!
//! - **Header-read timeout** ([`ServeOptions::DEFAULT_HEADER_TIMEOUT`], 5 s):
//!   the whole request head must arrive within it, counted from the
//!   connection's acceptance, so an idle connection or one trickling a
//!   byte at a time (slow loris) is closed. Scrapers send their few
//!   hundred bytes at once; 5 s is generous for them.
//! - **Request timeout** ([`ServeOptions::DEFAULT_REQUEST_TIMEOUT`], 10 s):
//!   a bound on the whole connection (head, encoding, writing the answer),
//!   so a client that never reads its answer cannot hold a slot either.
//!   10 s is Prometheus' default scrape timeout: a scrape slower than
//!   that has already failed on the scraper's side.
//! - **Connection limit** ([`ServeOptions::DEFAULT_MAX_CONNECTIONS`], 128):
//!   at most this many connections are served at once, which bounds the
//!   descriptors and buffers a flood of connections can take. Over the
//!   limit a new connection is not refused: the server stops accepting, so
//!   it waits in the kernel's listen backlog until a slot frees, and then
//!   is served in arrival order. Since every slot is freed within the
//!   timeouts above, a scrape queued behind idle connections is delayed,
//!   not lost (by about one header timeout per `max_connections` idle
//!   connections ahead of it). 128 is far above the handful of scrapers
//!   an endpoint has, so stray connections below it cost scrapes nothing.
//! - **No keep-alive**: one request per connection, answered with
//!   `connection: close`, so a finished connection never sits idle on a
//!   slot. A scrape every few seconds gains nothing from reusing it.
//! - **Only `/metrics`**: `GET` and `HEAD` get `200` with the OpenMetrics
//!   content type, other methods `405` (with `allow: GET, HEAD`), other
//!   paths `404`. Request bodies are never read.
//!
//! A client that misbehaves only loses its own connection: the failure is
//! logged at `debug` level through `tracing`, nothing panics.
//!
//! # Implementation
//!
//! The runtime is tokio's `current_thread` one, on one thread: encoding is
//! quick and scrapes are rare, so one thread serves every connection. The
//! registry lock is taken and released while the answer is built, before
//! hyper writes it, never held across an await. Stopping ends the accept
//! loop and drops the runtime, which closes every open connection at once.

use super::encode_text;
use crate::sync::{Arc, Mutex, lock};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use std::convert::Infallible;
use std::net::{SocketAddr, ToSocketAddrs};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::{Semaphore, oneshot};

/// The content type of the OpenMetrics text `encode_text` produces.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How long the accept loop pauses after an accept error that is not about
/// one connection (typically running out of file descriptors): retrying at
/// once would spin on the same error, and a short pause lets connections
/// close and give descriptors back.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The longest timeout [`ServeOptions`] accepts: far above any sensible
/// value, and far enough below the clock's range that adding it to "now"
/// cannot overflow.
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// The limits [`serve_metrics_with`] serves under; [`Default`] gives the
/// ones [`serve_metrics`] uses, and each default's docs say why it is what
/// it is.
///
/// Together they keep the endpoint answering whatever other clients do:
/// a connection that sends nothing, or its request head a byte at a time,
/// is closed after `header_timeout`; one that does not read its answer
/// after `request_timeout`; and over `max_connections` new connections
/// wait to be accepted (in the kernel's listen backlog, served in arrival
/// order) instead of taking more descriptors and memory. Each connection
/// carries one request (no keep-alive).
///
/// ```
/// use std::time::Duration;
/// use requeue::metrics::ServeOptions;
///
/// let mut options = ServeOptions::default();
/// options.max_connections = 16;
/// options.header_timeout = Duration::from_secs(2);
/// assert_eq!(options.request_timeout, ServeOptions::DEFAULT_REQUEST_TIMEOUT);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeOptions {
    /// The time a connection has, from its acceptance, to send its whole
    /// request head; then it is closed. Catches idle and slow-loris
    /// connections.
    pub header_timeout: Duration,
    /// The time a connection has, from its acceptance, to be done: request
    /// read, answer written. Catches clients that do not read the answer.
    pub request_timeout: Duration,
    /// How many connections are served at once. Over it, new connections
    /// wait (unaccepted, in the listen backlog) until one ends.
    pub max_connections: usize,
}

impl ServeOptions {
    /// 5 s: a scraper sends its request head at once, so even a slow
    /// network is done well within it, while an idle or slow-loris
    /// connection gives its slot back soon.
    pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(5);
    /// 10 s: Prometheus' default `scrape_timeout`; by then the scraper has
    /// given up on the answer anyway.
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
    /// 128: far above the few scrapers an endpoint has (each scrape is one
    /// connection), so stray connections below it delay nothing, while
    /// still bounding the descriptors and buffers (a few KiB each) that a
    /// flood of connections can take.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 128;

    fn check(&self) -> std::io::Result<()> {
        let invalid = |what: &str| {
            Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("metrics server: {what}"),
            ))
        };
        for (name, timeout) in [
            ("header_timeout", self.header_timeout),
            ("request_timeout", self.request_timeout),
        ] {
            if timeout.is_zero() || timeout > MAX_TIMEOUT {
                return invalid(&format!(
                    "{name} must be more than zero and at most {MAX_TIMEOUT:?}, not {timeout:?}"
                ));
            }
        }
        if self.max_connections == 0 || self.max_connections > Semaphore::MAX_PERMITS {
            return invalid(&format!(
                "max_connections must be between 1 and {}, not {}",
                Semaphore::MAX_PERMITS,
                self.max_connections
            ));
        }
        Ok(())
    }
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_timeout: Self::DEFAULT_HEADER_TIMEOUT,
            request_timeout: Self::DEFAULT_REQUEST_TIMEOUT,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// A running `/metrics` endpoint; dropping it (or [`stop`](MetricsServer::stop)) ends it.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Serves `registry` at `http://<addr>/metrics` on a thread of its own,
/// with the default [`ServeOptions`]: a request head must arrive within
/// 5 s, a connection is done within 10 s, at most 128 connections are
/// served at once, one request each. `GET` and `HEAD` of `/metrics` are
/// answered with the OpenMetrics text, other methods with 405 and other
/// paths with 404. A client that misbehaves loses its connection (logged
/// at `debug`), never the others theirs.
///
/// Binds before returning, so an address in use is this call's error.
/// Bind to port 0 to get a free port ([`MetricsServer::addr`] tells which).
/// Callable from blocking code and from inside a tokio runtime alike: the
/// server runs its own.
pub fn serve_metrics(
    addr: impl ToSocketAddrs,
    registry: Arc<Mutex<Registry>>,
) -> std::io::Result<MetricsServer> {
    serve_metrics_with(addr, registry, ServeOptions::default())
}

/// [`serve_metrics`] with other limits. Fails with
/// [`InvalidInput`](std::io::ErrorKind::InvalidInput) if a timeout is zero
/// or longer than a day, or `max_connections` is zero or more than a tokio
/// semaphore can count.
pub fn serve_metrics_with(
    addr: impl ToSocketAddrs,
    registry: Arc<Mutex<Registry>>,
    options: ServeOptions,
) -> std::io::Result<MetricsServer> {
    options.check()?;
    let listener = std::net::TcpListener::bind(addr)?;
    let addr = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    let (stop, stopped) = oneshot::channel::<()>();
    // The runtime is built, and dropped, on the server's thread only: a
    // runtime dropped in the caller's async context would panic.
    let (ready, started) = std::sync::mpsc::sync_channel::<std::io::Result<()>>(1);
    let thread = std::thread::Builder::new()
        .name("requeue-metrics".into())
        .spawn(move || {
            let setup = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .enable_time()
                .build()
                .and_then(|runtime| {
                    let listener = {
                        let _entered = runtime.enter();
                        tokio::net::TcpListener::from_std(listener)?
                    };
                    Ok((runtime, listener))
                });
            let (runtime, listener) = match setup {
                Ok(set_up) => set_up,
                Err(error) => {
                    let _ = ready.send(Err(error));
                    return;
                }
            };
            let _ = ready.send(Ok(()));
            runtime.block_on(async move {
                // The accept loop is a task, not this future, so that it
                // ends with the runtime below, together with every
                // connection task.
                tokio::spawn(accept_loop(listener, registry, options));
                // A dropped sender means stop too.
                let _ = stopped.await;
            });
            // Dropping the runtime cancels the accept loop and closes every
            // open connection.
            drop(runtime);
        })?;
    let server = MetricsServer {
        addr,
        stop: Some(stop),
        thread: Some(thread),
    };
    match started.recv() {
        Ok(Ok(())) => Ok(server),
        Ok(Err(error)) => Err(error),
        // The thread ended without a word: it panicked while setting up.
        Err(_) => Err(std::io::Error::other("the metrics server's thread died")),
    }
}

/// Accepts connections while a slot is free and serves each on a task.
async fn accept_loop(
    listener: tokio::net::TcpListener,
    registry: Arc<Mutex<Registry>>,
    options: ServeOptions,
) {
    let slots = Arc::new(Semaphore::new(options.max_connections));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        .keep_alive(false);
    loop {
        // A slot first, then accept: over the limit, connections wait in
        // the listen backlog rather than being accepted and dropped.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return; // never closed; nothing left to do if it were
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::debug!(%error, "the /metrics server could not accept a connection");
                if !is_connection_error(&error) {
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
                continue;
            }
        };
        let registry = registry.clone();
        let connection = http.serve_connection(
            TokioIo::new(stream),
            service_fn(move |request| {
                let response = respond(&request, &registry);
                std::future::ready(Ok::<_, Infallible>(response))
            }),
        );
        let request_timeout = options.request_timeout;
        tokio::spawn(async move {
            let _slot = slot; // given back when this connection ends
            match tokio::time::timeout(request_timeout, connection).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "a /metrics connection failed");
                }
                Err(_elapsed) => {
                    tracing::debug!(%peer, ?request_timeout, "a /metrics connection took too long; closed");
                }
            }
        });
    }
}

/// Accept errors that concern one connection (it went away before it was
/// accepted), after which accepting again at once is right.
fn is_connection_error(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    )
}

/// The answer to one request. Synchronous: the registry lock is released
/// before the answer goes back to hyper.
fn respond<B>(request: &Request<B>, registry: &Mutex<Registry>) -> Response<Full<Bytes>> {
    if request.uri().path() != "/metrics" {
        return text(StatusCode::NOT_FOUND, "not found: try /metrics\n");
    }
    match *request.method() {
        Method::GET | Method::HEAD => {
            // The guard is a temporary, dropped at the end of this statement.
            let body = encode_text(&lock(registry));
            let mut response = Response::new(Full::new(Bytes::from(body)));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS));
            response
        }
        _ => {
            let mut response = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed: /metrics answers GET and HEAD\n",
            );
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            response
        }
    }
}

/// A plain-text answer with `status`.
fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

impl MetricsServer {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving, closes every open connection (a scrape in progress
    /// is cut off) and waits for the server's thread.
    pub fn stop(mut self) {
        self.shut();
    }

    fn shut(&mut self) {
        if let Some(stop) = self.stop.take() {
            // Err: the thread is already gone.
            let _ = stop.send(());
        }
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
    use std::io::{ErrorKind, Read, Write};
    use std::net::TcpStream;
    use std::time::Instant;

    /// How long a test client waits for an answer before the test fails:
    /// a regression fails instead of hanging.
    const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

    /// Short limits, so that tests about them are quick.
    fn short(
        header_timeout_ms: u64,
        request_timeout_ms: u64,
        max_connections: usize,
    ) -> ServeOptions {
        ServeOptions {
            header_timeout: Duration::from_millis(header_timeout_ms),
            request_timeout: Duration::from_millis(request_timeout_ms),
            max_connections,
        }
    }

    /// A registry with one queue named `name` holding one item; the queue
    /// is returned so that it lives as long as the test.
    fn registry_with_queue(name: &str) -> (Arc<Mutex<Registry>>, WorkQueue<String>) {
        let mut registry = Registry::default();
        let metrics = PrometheusMetrics::new(&mut registry);
        let queue: WorkQueue<String> = WorkQueue::builder()
            .name(name)
            .metrics(std::sync::Arc::new(metrics))
            .build();
        queue.add("a".to_string()).expect("running");
        (Arc::new(Mutex::new(registry)), queue)
    }

    fn connect(addr: SocketAddr) -> TcpStream {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(CLIENT_TIMEOUT))
            .expect("read timeout");
        stream
            .set_write_timeout(Some(CLIENT_TIMEOUT))
            .expect("write timeout");
        stream
    }

    /// Sends `method path` and reads the whole answer (the server closes
    /// the connection after it); fails after [`CLIENT_TIMEOUT`].
    fn request(addr: SocketAddr, method: &str, path: &str) -> String {
        let mut stream = connect(addr);
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"
        )
        .expect("request");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .expect("response in time");
        response
    }

    fn get(addr: SocketAddr, path: &str) -> String {
        request(addr, "GET", path)
    }

    /// Reads (and ignores) whatever comes until the server closes the
    /// connection; returns how long that took from `since`. Each read
    /// waits for the next event, bounded by `limit`.
    fn wait_closed(stream: &mut TcpStream, since: Instant, limit: Duration) -> Duration {
        let deadline = since + limit;
        let mut buf = [0u8; 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "still open after {limit:?}");
            stream.set_read_timeout(Some(left)).expect("read timeout");
            match stream.read(&mut buf) {
                Ok(0) => return since.elapsed(),
                Ok(_) => continue, // e.g. an error answer before the close
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    panic!("still open after {limit:?}")
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_reset) => return since.elapsed(),
            }
        }
    }

    fn assert_scrape(addr: SocketAddr, name: &str) {
        let response = get(addr, "/metrics");
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
        assert!(
            response.contains(&format!("workqueue_depth{{name=\"{name}\"}} 1")),
            "{response}"
        );
    }

    #[test]
    fn scraping_shows_the_client_go_names() {
        let (registry, _queue) = registry_with_queue("scraped");
        let server = serve_metrics("127.0.0.1:0", registry).expect("bind");
        let response = get(server.addr(), "/metrics");
        assert!(response.starts_with("HTTP/1.1 200 OK"));
        assert!(
            response
                .to_ascii_lowercase()
                .contains(&format!("content-type: {OPENMETRICS}"))
        );
        assert!(response.contains("workqueue_depth{name=\"scraped\"} 1"));
        assert!(response.contains("workqueue_adds_total{name=\"scraped\"} 1"));
        assert!(response.trim_end().ends_with("# EOF"));
        assert!(get(server.addr(), "/other").starts_with("HTTP/1.1 404"));
        server.stop();
    }

    #[test]
    fn only_get_and_head_on_metrics_are_answered() {
        let (registry, _queue) = registry_with_queue("methods");
        let server = serve_metrics("127.0.0.1:0", registry).expect("bind");
        let addr = server.addr();

        for path in ["/", "/metrics/", "/metricsx", "/other"] {
            let response = get(addr, path);
            assert!(response.starts_with("HTTP/1.1 404"), "{path}: {response}");
        }
        assert!(get(addr, "/metrics?name=x").starts_with("HTTP/1.1 200"));

        for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
            let response = request(addr, method, "/metrics");
            assert!(response.starts_with("HTTP/1.1 405"), "{method}: {response}");
            assert!(
                response.to_ascii_lowercase().contains("allow: get, head"),
                "{method}: {response}"
            );
        }
        // Another path stays a 404 whatever the method.
        assert!(request(addr, "POST", "/other").starts_with("HTTP/1.1 404"));

        let head = request(addr, "HEAD", "/metrics");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let (headers, body) = head.split_once("\r\n\r\n").expect("a head");
        assert!(body.is_empty(), "HEAD has no body: {body}");
        assert!(
            headers.to_ascii_lowercase().contains("content-length: "),
            "{headers}"
        );
        server.stop();
    }

    #[test]
    fn scrapes_succeed_while_100_idle_connections_are_open() {
        let (registry, _queue) = registry_with_queue("idle");
        let server = serve_metrics("127.0.0.1:0", registry).expect("bind");
        let idle: Vec<TcpStream> = (0..100).map(|_| connect(server.addr())).collect();
        for _ in 0..5 {
            assert_scrape(server.addr(), "idle");
        }
        drop(idle);
        server.stop();
    }

    #[test]
    fn scrapes_succeed_while_100_slow_loris_connections_are_open() {
        let (registry, _queue) = registry_with_queue("loris");
        let server = serve_metrics("127.0.0.1:0", registry).expect("bind");
        let mut loris: Vec<TcpStream> = (0..100).map(|_| connect(server.addr())).collect();
        for stream in &mut loris {
            stream.write_all(b"GET /metr").expect("partial request");
        }
        assert_scrape(server.addr(), "loris");
        // Each trickles a little more of its head; scrapes still get through.
        for byte in [b"i", b"c", b"s"] {
            for stream in &mut loris {
                stream.write_all(byte).expect("a byte more");
            }
            assert_scrape(server.addr(), "loris");
        }
        drop(loris);
        server.stop();
    }

    #[test]
    fn an_idle_connection_is_closed_after_the_header_timeout() {
        let (registry, _queue) = registry_with_queue("timeout");
        let options = short(200, 10_000, 8);
        let server = serve_metrics_with("127.0.0.1:0", registry, options).expect("bind");

        let started = Instant::now();
        let mut idle = connect(server.addr());
        let took = wait_closed(&mut idle, started, Duration::from_secs(3));
        assert!(
            took >= Duration::from_millis(100),
            "closed too soon: {took:?}"
        );

        // Sending part of a head does not restart the clock.
        let started = Instant::now();
        let mut partial = connect(server.addr());
        partial.write_all(b"GET /metr").expect("partial request");
        let took = wait_closed(&mut partial, started, Duration::from_secs(3));
        assert!(
            took >= Duration::from_millis(100),
            "closed too soon: {took:?}"
        );

        assert_scrape(server.addr(), "timeout");
        server.stop();
    }

    #[test]
    fn a_trickling_head_is_closed_after_the_header_timeout() {
        let (registry, _queue) = registry_with_queue("trickle");
        let options = short(300, 10_000, 8);
        let server = serve_metrics_with("127.0.0.1:0", registry, options).expect("bind");
        let started = Instant::now();
        let mut loris = connect(server.addr());
        // One byte every 20 ms keeps the connection busy, never complete;
        // the whole head has 300 ms.
        let head = b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        let mut refused = false;
        for byte in head {
            if loris.write_all(&[*byte]).is_err() {
                refused = true; // the server closed it: what we wait for
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
            if started.elapsed() > Duration::from_secs(3) {
                break;
            }
        }
        let took = if refused {
            started.elapsed()
        } else {
            wait_closed(&mut loris, started, Duration::from_secs(3))
        };
        assert!(took < Duration::from_secs(3), "took {took:?}");
        assert!(
            took >= Duration::from_millis(150),
            "closed too soon: {took:?}"
        );
        server.stop();
    }

    #[test]
    fn the_request_timeout_bounds_a_connection_as_a_whole() {
        let (registry, _queue) = registry_with_queue("whole");
        // The head may take 30 s, the whole connection only 200 ms.
        let options = short(30_000, 200, 8);
        let server = serve_metrics_with("127.0.0.1:0", registry, options).expect("bind");
        let started = Instant::now();
        let mut idle = connect(server.addr());
        let took = wait_closed(&mut idle, started, Duration::from_secs(3));
        assert!(
            took >= Duration::from_millis(100),
            "closed too soon: {took:?}"
        );
        assert_scrape(server.addr(), "whole");
        server.stop();
    }

    #[test]
    fn over_the_limit_a_connection_waits_until_a_slot_frees() {
        let (registry, _queue) = registry_with_queue("limit");
        // Timeouts far longer than the test: slots free only when we close.
        let options = short(30_000, 60_000, 4);
        let server = serve_metrics_with("127.0.0.1:0", registry, options).expect("bind");
        let mut held: Vec<TcpStream> = (0..4).map(|_| connect(server.addr())).collect();

        let mut fifth = connect(server.addr());
        fifth
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .expect("request");
        fifth
            .set_read_timeout(Some(Duration::from_millis(500)))
            .expect("read timeout");
        let mut buf = [0u8; 64];
        match fifth.read(&mut buf) {
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            other => panic!("the fifth connection was answered over the limit: {other:?}"),
        }

        // Closing one of the four frees its slot: the fifth is served.
        drop(held.pop());
        fifth
            .set_read_timeout(Some(CLIENT_TIMEOUT))
            .expect("read timeout");
        let mut response = String::new();
        fifth
            .read_to_string(&mut response)
            .expect("answered once a slot freed");
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
        drop(held);
        server.stop();
    }

    #[test]
    fn over_the_limit_idle_connections_only_delay_a_scrape() {
        let (registry, _queue) = registry_with_queue("queued");
        let options = short(200, 10_000, 4);
        let server = serve_metrics_with("127.0.0.1:0", registry, options).expect("bind");
        // Twice the limit: the scrape waits for two rounds of header
        // timeouts at most.
        let idle: Vec<TcpStream> = (0..8).map(|_| connect(server.addr())).collect();
        let started = Instant::now();
        assert_scrape(server.addr(), "queued");
        assert!(started.elapsed() < Duration::from_secs(3));
        drop(idle);
        server.stop();
    }

    #[test]
    fn stopping_closes_open_connections_and_the_listener() {
        let (registry, _queue) = registry_with_queue("stopped");
        let server = serve_metrics("127.0.0.1:0", registry).expect("bind");
        let addr = server.addr();
        let mut idle = connect(addr);
        let mut partial = connect(addr);
        partial.write_all(b"GET /metr").expect("partial request");
        assert_scrape(addr, "stopped"); // both are accepted by now
        let started = Instant::now();
        server.stop();
        wait_closed(&mut idle, started, Duration::from_secs(3));
        wait_closed(&mut partial, started, Duration::from_secs(3));
        assert!(TcpStream::connect(addr).is_err(), "still listening");
    }

    #[test]
    fn invalid_options_are_refused() {
        let (registry, _queue) = registry_with_queue("invalid");
        for options in [
            short(0, 1_000, 4),
            short(1_000, 0, 4),
            short(1_000, 1_000, 0),
            ServeOptions {
                header_timeout: Duration::MAX,
                ..ServeOptions::default()
            },
        ] {
            let error =
                serve_metrics_with("127.0.0.1:0", registry.clone(), options).expect_err("refused");
            assert_eq!(error.kind(), ErrorKind::InvalidInput, "{options:?}");
        }
    }

    #[test]
    fn serving_from_inside_a_tokio_runtime_works() {
        let (registry, _queue) = registry_with_queue("nested");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let server = runtime
            .block_on(async { serve_metrics("127.0.0.1:0", registry) })
            .expect("bind");
        assert_scrape(server.addr(), "nested");
        runtime.block_on(async move { drop(server) });
    }
}
