//! controller-runtime's controller series in a `prometheus-client` registry.

use super::names::*;
use super::prometheus::family;
use super::{ControllerMetrics, ReconcileResult};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabel {
    controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    controller: String,
    result: String,
}

/// One series per controller name (times the four results for `total`),
/// never removed, as in controller-runtime: the program's controllers bound them.
#[derive(Clone, Debug)]
struct Families {
    total: Family<ResultLabels, Counter>,
    errors: Family<ControllerLabel, Counter>,
    panics: Family<ControllerLabel, Counter>,
    active: Family<ControllerLabel, Gauge>,
    max_concurrent: Family<ControllerLabel, Gauge>,
    terminal: Family<ControllerLabel, Counter>,
    time: Family<ControllerLabel, Histogram, fn() -> Histogram>,
}

impl Default for Families {
    fn default() -> Self {
        Families {
            total: Family::default(),
            errors: Family::default(),
            panics: Family::default(),
            active: Family::default(),
            max_concurrent: Family::default(),
            terminal: Family::default(),
            time: Family::new_with_constructor(reconcile_time_histogram),
        }
    }
}

fn reconcile_time_histogram() -> Histogram {
    Histogram::new(RECONCILE_TIME_BUCKETS)
}

impl Collector for Families {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        family(e, RECONCILE, RECONCILE_HELP, &self.total)?;
        family(e, RECONCILE_ERRORS, RECONCILE_ERRORS_HELP, &self.errors)?;
        family(e, RECONCILE_PANICS, RECONCILE_PANICS_HELP, &self.panics)?;
        family(e, TERMINAL_ERRORS, TERMINAL_ERRORS_HELP, &self.terminal)?;
        family(e, RECONCILE_TIME, RECONCILE_TIME_HELP, &self.time)?;
        family(e, ACTIVE_WORKERS, ACTIVE_WORKERS_HELP, &self.active)?;
        family(e, MAX_CONCURRENT, MAX_CONCURRENT_HELP, &self.max_concurrent)
    }
}

/// controller-runtime's series for one controller: `controller_runtime_reconcile_total{controller, result}`,
/// `controller_runtime_reconcile_errors_total`, `controller_runtime_reconcile_panics_total`,
/// `controller_runtime_terminal_reconcile_errors_total`,
/// `controller_runtime_reconcile_time_seconds` (controller-runtime's buckets),
/// `controller_runtime_active_workers` and `controller_runtime_max_concurrent_reconciles`.
#[derive(Debug, Clone)]
pub struct PrometheusControllerMetrics {
    families: Families,
    controller: String,
}

impl PrometheusControllerMetrics {
    /// Registers the series of controller `name` in `registry`.
    pub fn new(registry: &mut Registry, name: &str) -> Self {
        let families = Families::default();
        registry.register_collector(Box::new(families.clone()));
        let this = PrometheusControllerMetrics {
            families,
            controller: name.to_string(),
        };
        // Every result label exists from the start, as controller-runtime does.
        for result in [
            ReconcileResult::Success,
            ReconcileResult::Error,
            ReconcileResult::Requeue,
            ReconcileResult::RequeueAfter,
        ] {
            let _ = this.families.total.get_or_create(&this.result(result));
        }
        let _ = this.families.errors.get_or_create(&this.label());
        let _ = this.families.panics.get_or_create(&this.label());
        let _ = this.families.terminal.get_or_create(&this.label());
        let _ = this.families.active.get_or_create(&this.label());
        this
    }

    fn label(&self) -> ControllerLabel {
        ControllerLabel {
            controller: self.controller.clone(),
        }
    }

    fn result(&self, result: ReconcileResult) -> ResultLabels {
        ResultLabels {
            controller: self.controller.clone(),
            result: result.as_str().to_string(),
        }
    }
}

impl ControllerMetrics for PrometheusControllerMetrics {
    fn reconciled(&self, result: ReconcileResult) {
        self.families
            .total
            .get_or_create(&self.result(result))
            .inc();
        if result == ReconcileResult::Error {
            self.families.errors.get_or_create(&self.label()).inc();
        }
    }
    fn panicked(&self) {
        self.families.panics.get_or_create(&self.label()).inc();
    }
    fn reconcile_time(&self, seconds: f64) {
        self.families
            .time
            .get_or_create(&self.label())
            .observe(seconds);
    }
    fn terminal_error(&self) {
        self.families.terminal.get_or_create(&self.label()).inc();
    }
    fn active_workers(&self, delta: i64) {
        self.families
            .active
            .get_or_create(&self.label())
            .inc_by(delta);
    }
    fn max_concurrent_reconciles(&self, workers: usize) {
        let workers = i64::try_from(workers).unwrap_or(i64::MAX);
        self.families
            .max_concurrent
            .get_or_create(&self.label())
            .set(workers);
    }
}
