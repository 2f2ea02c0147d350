//! controller-runtime's controller series in a `prometheus-client` registry.

use super::prometheus::family;
use super::{ControllerMetrics, ReconcileResult};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
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
#[derive(Clone, Debug, Default)]
struct Families {
    total: Family<ResultLabels, Counter>,
    errors: Family<ControllerLabel, Counter>,
    panics: Family<ControllerLabel, Counter>,
    active: Family<ControllerLabel, Gauge>,
    max_concurrent: Family<ControllerLabel, Gauge>,
}

impl Collector for Families {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        family(
            e,
            "controller_runtime_reconcile",
            "Total number of reconciliations per controller",
            &self.total,
        )?;
        family(
            e,
            "controller_runtime_reconcile_errors",
            "Total number of reconciliation errors per controller",
            &self.errors,
        )?;
        family(
            e,
            "controller_runtime_reconcile_panics",
            "Total number of reconciliation panics per controller",
            &self.panics,
        )?;
        family(
            e,
            "controller_runtime_active_workers",
            "Number of currently used workers per controller",
            &self.active,
        )?;
        family(
            e,
            "controller_runtime_max_concurrent_reconciles",
            "Maximum number of concurrent reconciles per controller",
            &self.max_concurrent,
        )
    }
}

/// controller-runtime's series for one controller: `controller_runtime_reconcile_total{controller, result}`,
/// `controller_runtime_reconcile_errors_total`, `controller_runtime_reconcile_panics_total`,
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
