//! What a replay costs: the pod's requests (the function's container plus its daprd) times the
//! replica-seconds, in vCPU-hours and GiB-hours, times a price per vCPU-hour and per GiB-hour.
//!
//! Billing by requests is how per-pod platforms charge (GKE Autopilot, EKS on Fargate): a pod
//! pays for what it reserves from its creation to its end, not for what it uses. On a cluster of
//! your own nodes the same figures are the share of nodes the pods reserve.
//!
//! The default prices are assumptions to be checked, not quotes: this crate was written without
//! access to the price pages. They are the on-demand Linux/x86 figures of AWS Fargate in
//! us-east-1 as we remember them from <https://aws.amazon.com/fargate/pricing/>: $0.04048 per
//! vCPU-hour and $0.004445 per GB-hour (we apply it per GiB: check the page's unit). GKE
//! Autopilot's general-purpose pods in us-central1
//! (<https://cloud.google.com/kubernetes-engine/pricing>) were, as we remember them, $0.0445 per
//! vCPU-hour and $0.0049225 per GiB-hour: [`Prices::gke_autopilot`]. Both platforms round a
//! pod up to a minimum size (Fargate: 0.25 vCPU and 0.5 GB per task; Autopilot: its own minimums
//! per compute class), which matters here because the shipped pods ask for 70m and 96 MiB: set
//! [`Prices::min_cpu`] and [`Prices::min_memory`] to the platform's minimums to apply them.

use crate::quantity::{GIB, Quantity};
use crate::settings::Resources;

/// Days in an average month (365.25 / 12), for monthly figures.
pub const DAYS_PER_MONTH: f64 = 365.25 / 12.0;

/// Prices of pod requests, and the smallest pod the platform bills.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prices {
    /// Dollars per vCPU-hour requested.
    pub vcpu_hour: f64,
    /// Dollars per GiB-hour requested.
    pub gib_hour: f64,
    /// A pod's CPU request is billed as at least this.
    pub min_cpu: Quantity,
    /// A pod's memory request is billed as at least this.
    pub min_memory: Quantity,
}

impl Default for Prices {
    /// AWS Fargate on-demand, Linux/x86, us-east-1, no minimum (see the module doc: to check).
    fn default() -> Self {
        Self { vcpu_hour: 0.04048, gib_hour: 0.004445, min_cpu: Quantity::default(), min_memory: Quantity::default() }
    }
}

impl Prices {
    /// GKE Autopilot general-purpose pods, us-central1, no minimum (see the module doc: to check).
    pub fn gke_autopilot() -> Self {
        Self { vcpu_hour: 0.0445, gib_hour: 0.004_922_5, ..Self::default() }
    }
}

/// The cost of some replica-seconds of one pod shape.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cost {
    pub vcpu_hours: f64,
    pub gib_hours: f64,
    pub dollars: f64,
}

impl Cost {
    /// The same rate over an average month, when `self` is one day's cost.
    pub fn per_month_from_day(self) -> Cost {
        Cost {
            vcpu_hours: self.vcpu_hours * DAYS_PER_MONTH,
            gib_hours: self.gib_hours * DAYS_PER_MONTH,
            dollars: self.dollars * DAYS_PER_MONTH,
        }
    }
}

/// The cost of `replica_seconds` of pods requesting `pod` (the function plus its daprd: see
/// [`crate::settings::DeploymentSettings::pod`]).
pub fn cost(pod: &Resources, replica_seconds: u64, prices: &Prices) -> Cost {
    let cpu = pod.cpu_request.max(prices.min_cpu).as_f64();
    let memory_gib = pod.memory_request.max(prices.min_memory).as_f64() / GIB;
    let hours = replica_seconds as f64 / 3600.0;
    let vcpu_hours = cpu * hours;
    let gib_hours = memory_gib * hours;
    Cost { vcpu_hours, gib_hours, dollars: vcpu_hours * prices.vcpu_hour + gib_hours * prices.gib_hour }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(cpu: &str, memory: &str) -> Resources {
        Resources {
            cpu_request: Quantity::parse(cpu).unwrap_or_default(),
            memory_request: Quantity::parse(memory).unwrap_or_default(),
            cpu_limit: None,
            memory_limit: None,
        }
    }

    #[test]
    fn a_day_of_the_shipped_pod_always_on() {
        // audit-writer: 20m + 50m CPU, 32Mi + 64Mi memory, 86400 replica-seconds.
        let c = cost(&pod("70m", "96Mi"), 86_400, &Prices::default());
        assert!((c.vcpu_hours - 1.68).abs() < 1e-9, "{}", c.vcpu_hours);
        assert!((c.gib_hours - 2.25).abs() < 1e-9, "{}", c.gib_hours);
        let dollars = 1.68 * 0.04048 + 2.25 * 0.004445;
        assert!((c.dollars - dollars).abs() < 1e-12);
        let month = c.per_month_from_day();
        assert!((month.dollars - dollars * 30.4375).abs() < 1e-9);
    }

    #[test]
    fn platform_minimums_round_a_small_pod_up() {
        let prices = Prices {
            min_cpu: Quantity::from_milli(250),
            min_memory: Quantity::from_milli(512 * 1024 * 1024 * 1000),
            ..Prices::default()
        };
        let c = cost(&pod("70m", "96Mi"), 3600, &prices);
        assert!((c.vcpu_hours - 0.25).abs() < 1e-12);
        assert!((c.gib_hours - 0.5).abs() < 1e-12);
        assert_eq!(cost(&pod("70m", "96Mi"), 0, &prices), Cost::default());
    }
}
