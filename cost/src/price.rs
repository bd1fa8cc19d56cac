//! What a replay costs: the pod's requests (the function's container plus its daprd) times the
//! replica-seconds, in vCPU-hours and GiB-hours, times a price per vCPU-hour and per GiB-hour.
//!
//! Billing by requests is how per-pod platforms charge (GKE Autopilot, EKS on Fargate): a pod
//! pays for what it reserves from its creation to its end, not for what it uses. On a cluster of
//! your own nodes the same figures are the share of nodes the pods reserve.
//!
//! The prices, with their public sources (looked up on 2026-12-07 through stored copies of the
//! pages; the official pages render their rate tables with scripts, so the figures were read from
//! dated transcriptions of them, named here):
//!
//! - AWS Fargate on-demand, Linux/x86, US East (N. Virginia), the platform of EKS on Fargate:
//!   $0.04048 per vCPU-hour and $0.004445 per GB-hour. Official page:
//!   <https://aws.amazon.com/fargate/pricing/> (no date shown). Figures as transcribed by
//!   <https://cloudburn.io/blog/aws-fargate-pricing> ("US East (N. Virginia) pricing as of March
//!   2026", the page dated April 1st, 2026) and
//!   <https://www.factualminds.com/blog/amazon-fargate-ecs-task-pricing-2026/> ("As of June 2026",
//!   dated 2026-06-17); the per-second form on <https://aws.amazon.com/ecs/pricing/> ("$0.000011244
//!   per vCPU second", transcribed 2026-09-20) is the same rate (× 3600 = $0.04048). Fargate sizes
//!   memory in GB that are binary (512 MiB is "0.5 GB" in its table), so the rate is applied per
//!   GiB here.
//! - The smallest pod EKS on Fargate bills:
//!   <https://docs.aws.amazon.com/eks/latest/userguide/fargate-pod-configuration.html> (no date
//!   shown): the pod's requests (the sum of its long-running containers) plus 256 MB for the
//!   kubelet, kube-proxy and containerd, rounded up to the next of its vCPU/memory combinations,
//!   the smallest being 0.25 vCPU with 0.5 GB. Every shipped pod asks for at most 150m and
//!   128 MiB (+ 256 MiB = 384 MiB), so each is billed as exactly 0.25 vCPU and 0.5 GiB:
//!   [`Prices::fargate_eks`]. Billing runs from the image pull to the pod's end, per second
//!   (<https://www.vantage.sh/blog/fargate-pricing> mentions a one-minute minimum per pod: not
//!   modelled, it would add at most a minute per cold start).
//! - GKE Autopilot general-purpose pods, us-central1: $0.0445 per vCPU-hour and $0.0049225 per
//!   GiB-hour as quoted by <https://toolstac.com/tool/gke-enterprise/enterprise-transition-guide>
//!   (no date shown; official page <https://cloud.google.com/kubernetes-engine/pricing>, whose
//!   stored copy says "All Autopilot resources are charged in 1 second increments, there is no
//!   minimum charge" and rounds CPU to ¼-vCPU increments): [`Prices::gke_autopilot`], without its
//!   per-class minimums (not found: an assumption to check).
//!
//! [`Prices::default`] is Fargate's rates on the requests alone (no platform minimum): the share
//! of your own nodes the pods reserve, priced at Fargate's rates.

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
    /// AWS Fargate on-demand, Linux/x86, us-east-1, on the requests alone (see the module doc).
    fn default() -> Self {
        Self { vcpu_hour: 0.04048, gib_hour: 0.004445, min_cpu: Quantity::default(), min_memory: Quantity::default() }
    }
}

/// Where [`Prices::fargate_eks`]'s figures come from, for the report.
pub const FARGATE_SOURCE: &str = "AWS Fargate on-demand Linux/x86 us-east-1 (https://aws.amazon.com/fargate/pricing/, \
    rates as transcribed March and June 2026 by cloudburn.io and factualminds.com); EKS on Fargate pod sizes \
    (https://docs.aws.amazon.com/eks/latest/userguide/fargate-pod-configuration.html)";

impl Prices {
    /// EKS on Fargate: Fargate's rates with its smallest pod, 0.25 vCPU and 0.5 GiB (the shipped
    /// pods' requests plus Fargate's 256 MiB all fit in it: see the module doc).
    pub fn fargate_eks() -> Self {
        Self {
            min_cpu: Quantity::from_milli(250),
            min_memory: Quantity::from_milli(512 * 1024 * 1024 * 1000),
            ..Self::default()
        }
    }

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
