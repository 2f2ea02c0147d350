//! `--metrics-addr`: client-go's workqueue series and controller-runtime's
//! controller series in one registry, served over HTTP while the demo runs.

use prometheus_client::registry::Registry;
use requeue::metrics::{
    MetricsServer, PrometheusControllerMetrics, PrometheusMetrics, serve_metrics,
};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// The server and the providers to hand to the queue and the controller.
pub struct Served {
    pub server: MetricsServer,
    pub queue: Arc<PrometheusMetrics>,
    pub controller: PrometheusControllerMetrics,
}

/// Registers both families for the queue `name` and serves them at `addr`.
pub fn serve(addr: SocketAddr, name: &str) -> anyhow::Result<Served> {
    let mut registry = Registry::default();
    let queue = Arc::new(PrometheusMetrics::new(&mut registry));
    let controller = PrometheusControllerMetrics::new(&mut registry, name);
    let server = serve_metrics(addr, Arc::new(Mutex::new(registry)))
        .map_err(|e| anyhow::anyhow!("cannot serve metrics on {addr}: {e}"))?;
    Ok(Served {
        server,
        queue,
        controller,
    })
}
