//! The scaling decisions, as pure functions of the metrics and the past decisions, read from
//! the source of KEDA v2.20.2 (~/go/pkg/mod/github.com/kedacore/keda/v2@v2.20.2) and of the
//! HPA of Kubernetes v1.34.4 (~/go/pkg/mod/k8s.io/kubernetes@v1.34.4). Each item cites the
//! file and function it follows. Time is whole seconds since the start of the replay.
//!
//! Who decides what, for a ScaledObject: KEDA's scale loop polls every `pollingInterval`
//! (`pkg/scaling/scale_handler.go`, `startScaleLoop`: a timer of `pollingInterval` started before
//! each `checkScalers`), asks every scaler whether it is active, and its executor alone moves the
//! Deployment between 0 and 1 (`pkg/scaling/executor/scale_scaledobjects.go`, `RequestScale`).
//! Between 1 and `maxReplicaCount` the HPA KEDA created decides, every 15 s, from the metrics
//! KEDA's metrics server serves (the scalers' `GetMetricsAndActivity`, queried when the HPA asks).
//!
//! Left out, because they do not move cost or latency for healthy traffic, or cannot be known
//! from the manifests: the fallback (`fallback.replicas` when a scaler errors: scalers never fail
//! here), idle replicas (`idleReplicaCount`: not used by the shipped ScaledObjects), the paused
//! and force-activation annotations, `initialCooldownPeriod` (0 by default: only the first scale
//! to zero after creation), the metrics server's own caching and lag (KEDA queries the scaler
//! when the HPA asks unless `useCachedMetrics`, off by default), the HPA's treatment of unready
//! and missing pods for CPU (`groupPods` in `replica_calculator.go`: a new pod counts 0 % on a
//! scale-up until ready), the HPA's per-direction `tolerance` field (alpha in 1.33, not set here),
//! `excludePersistentLag` and the per-partition view of Kafka lag (the replay keeps one total),
//! and the few milliseconds between a poll's start and the moment KEDA stamps `lastActiveTime`.

use crate::settings::{BehaviorSpec, PolicyKind, ScalingPolicy, ScalingRulesSpec, SelectPolicy};

/// The HPA controller's sync period: `--horizontal-pod-autoscaler-sync-period`, 15 s by default
/// (`pkg/controller/podautoscaler/config/v1alpha1/defaults.go`).
pub const HPA_SYNC_PERIOD_S: u64 = 15;
/// The HPA's tolerance: `--horizontal-pod-autoscaler-tolerance`, 0.1 by default (same file).
pub const HPA_TOLERANCE: f64 = 0.1;
/// The HPA's default scale-down stabilization window: `--horizontal-pod-autoscaler-downscale-
/// stabilization`, 5 minutes (same file); applied where a behavior leaves it unset
/// (`maybeInitScaleDownStabilizationWindow` in `horizontal.go`) and on the legacy path.
pub const HPA_DOWNSCALE_STABILIZATION_S: u32 = 300;

/// Whether a kafka trigger is active: `totalLagWithPersistent > activationLagThreshold`
/// (`pkg/scalers/kafka_scaler.go`, `GetMetricsAndActivity`). Strictly greater: with the default
/// threshold 0, one message of lag activates.
pub fn kafka_is_active(total_lag: u64, activation_lag_threshold: i64) -> bool {
    i128::from(total_lag) > i128::from(activation_lag_threshold)
}

/// The lag a kafka trigger reports to the HPA (`kafka_scaler.go`, `getTotalLag`): the total
/// lag, but when `allowIdleConsumers` is false (or `limitToPartitionsWithLag` is set) no more than
/// `upperBound × lagThreshold`, so that the HPA never asks for more consumers than there are
/// partitions. `upperBound` is the topic's partition count, or the partitions that have lag when
/// `limitToPartitionsWithLag` is set: note that `allowIdleConsumers: false` alone caps at all the
/// partitions, not at those with lag. The comparison is Go's integer division.
pub fn kafka_metric(
    total_lag: u64,
    partitions: u64,
    partitions_with_lag: u64,
    lag_threshold: i64,
    allow_idle_consumers: bool,
    limit_to_partitions_with_lag: bool,
) -> u64 {
    let threshold = lag_threshold.max(1).unsigned_abs();
    if !allow_idle_consumers || limit_to_partitions_with_lag {
        let upper_bound = if limit_to_partitions_with_lag { partitions_with_lag } else { partitions };
        if total_lag / threshold > upper_bound {
            return upper_bound.saturating_mul(threshold);
        }
    }
    total_lag
}

/// Whether a postgresql trigger is active: `num > activationTargetQueryValue`
/// (`pkg/scalers/postgresql_scaler.go`, `GetMetricsAndActivity`).
pub fn postgresql_is_active(value: f64, activation_target_query_value: f64) -> bool {
    value > activation_target_query_value
}

/// KEDA's executor for one ScaledObject: the `lastActiveTime` it keeps in the status, and the
/// moves between 0 and `minReplicaCount`/1 it makes at each poll.
#[derive(Debug, Clone, Default)]
pub struct KedaExecutor {
    /// `status.lastActiveTime`: the last poll that found a trigger active.
    pub last_active: Option<u64>,
}

impl KedaExecutor {
    /// One poll (`scale_scaledobjects.go`, `RequestScale`, with no idle replica count, no
    /// scaler error and no pause or forced activation). Returns the replica count KEDA sets on
    /// the Deployment, if it sets one.
    ///
    /// - Active at 0 replicas: `scaleFromZeroOrIdle` sets `minReplicaCount` if above 0, else 1,
    ///   and stamps `lastActiveTime`.
    /// - Active above 0: only stamps `lastActiveTime`; the HPA owns the count.
    /// - Inactive above 0 with `minReplicaCount` 0: `scaleToZeroOrIdle` sets 0 once
    ///   `lastActiveTime + cooldownPeriod` is *before* now (strictly), or at once if there was
    ///   never an active poll. With a cooldown a multiple of the polling interval, the poll at
    ///   exactly `lastActiveTime + cooldownPeriod` does not scale in, and the next one does (on a
    ///   cluster `lastActiveTime` is stamped a few milliseconds after the poll started, so the
    ///   same holds there).
    /// - Inactive below `minReplicaCount`: sets `minReplicaCount`.
    pub fn poll(&mut self, now: u64, is_active: bool, current: u32, min_replicas: u32, cooldown_s: u32) -> Option<u32> {
        if is_active {
            self.last_active = Some(now);
            return (current == 0).then_some(min_replicas.max(1));
        }
        if current > 0 && min_replicas == 0 {
            let cooled = match self.last_active {
                None => true,
                Some(t) => t + u64::from(cooldown_s) < now,
            };
            return cooled.then_some(0);
        }
        (current < min_replicas).then_some(min_replicas)
    }
}

/// `isWithin` of `Tolerances` (`replica_calculator.go`): no change while the usage ratio is
/// within [1 − tolerance, 1 + tolerance], bounds included.
pub fn within_tolerance(usage_ratio: f64, tolerance: f64) -> bool {
    (1.0 - tolerance) <= usage_ratio && usage_ratio <= (1.0 + tolerance)
}

/// Replicas for an External metric with an AverageValue target, as KEDA's triggers give them
/// (`replica_calculator.go`, `GetExternalPerPodMetricReplicas`): the ratio is the metric over
/// `target × statusReplicas`; inside the tolerance the count stays, else it becomes
/// `ceil(metric / target)`.
pub fn external_average_value_replicas(usage: f64, target: f64, status_replicas: u32, tolerance: f64) -> u32 {
    if target <= 0.0 {
        return status_replicas;
    }
    let ratio = usage / (target * f64::from(status_replicas));
    if within_tolerance(ratio, tolerance) {
        return status_replicas;
    }
    clamp_u32((usage / target).ceil())
}

/// Replicas for a CPU Utilization target (`replica_calculator.go`, `GetResourceReplicas`, with
/// every pod ready and reporting): the ratio is the pods' mean utilization over the target;
/// inside the tolerance the count stays, else `ceil(ratio × ready pods)`.
pub fn cpu_utilization_replicas(utilization: f64, target_utilization: f64, ready: u32, tolerance: f64) -> u32 {
    if target_utilization <= 0.0 || ready == 0 {
        return ready;
    }
    let ratio = utilization / target_utilization;
    if within_tolerance(ratio, tolerance) {
        return ready;
    }
    clamp_u32((ratio * f64::from(ready)).ceil())
}

fn clamp_u32(x: f64) -> u32 {
    if x.is_nan() || x <= 0.0 {
        0
    } else if x >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        x as u32
    }
}

/// One direction's scaling rules with every default filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalingRules {
    pub stabilization_window_s: u32,
    pub select_policy: SelectPolicy,
    pub policies: Vec<ScalingPolicy>,
}

/// How the HPA normalizes a recommendation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HpaBehavior {
    /// No behavior on the HPA (`horizontal.go`, `normalizeDesiredReplicas`): a scale-down takes
    /// the highest recommendation of the last 5 minutes (`stabilizeRecommendation`), a scale-up
    /// at most max(2 × current, 4) per sync (`calculateScaleUpLimit`).
    Legacy { downscale_window_s: u32 },
    /// A behavior, with the API's defaults for what it leaves out.
    Configured { scale_up: ScalingRules, scale_down: ScalingRules },
}

/// The HPA behavior a ScaledObject's `advanced.horizontalPodAutoscalerConfig.behavior` gives.
/// The defaults are `GenerateHPAScaleUpRules`/`GenerateHPAScaleDownRules` and
/// `copyHPAScalingRules` (`pkg/apis/autoscaling/v2/defaults.go`): scale-up with no
/// stabilization, `Max` of 4 pods and 100 % per 15 s; scale-down `Max` of 100 % per 15 s, and its
/// stabilization window from the controller's 300 s when unset.
pub fn resolve_behavior(spec: Option<&BehaviorSpec>) -> HpaBehavior {
    let Some(spec) = spec else {
        return HpaBehavior::Legacy { downscale_window_s: HPA_DOWNSCALE_STABILIZATION_S };
    };
    let default_up = ScalingRules {
        stabilization_window_s: 0,
        select_policy: SelectPolicy::Max,
        policies: vec![
            ScalingPolicy { kind: PolicyKind::Pods, value: 4, period_s: 15 },
            ScalingPolicy { kind: PolicyKind::Percent, value: 100, period_s: 15 },
        ],
    };
    let default_down = ScalingRules {
        stabilization_window_s: HPA_DOWNSCALE_STABILIZATION_S,
        select_policy: SelectPolicy::Max,
        policies: vec![ScalingPolicy { kind: PolicyKind::Percent, value: 100, period_s: 15 }],
    };
    let copy = |from: Option<&ScalingRulesSpec>, mut to: ScalingRules| {
        if let Some(from) = from {
            if let Some(w) = from.stabilization_window_s {
                to.stabilization_window_s = w;
            }
            if let Some(p) = from.select_policy {
                to.select_policy = p;
            }
            if let Some(p) = &from.policies {
                to.policies = p.clone();
            }
        }
        to
    };
    HpaBehavior::Configured {
        scale_up: copy(spec.scale_up.as_ref(), default_up),
        scale_down: copy(spec.scale_down.as_ref(), default_down),
    }
}

/// The HPA controller's memory of one HPA: its recent recommendations and scale events
/// (`HorizontalController.recommendations`, `scaleUpEvents`, `scaleDownEvents`).
#[derive(Debug, Clone)]
pub struct Hpa {
    pub behavior: HpaBehavior,
    pub min_replicas: u32,
    pub max_replicas: u32,
    recommendations: Vec<(u64, u32)>,
    up_events: Vec<(u64, u32)>,
    down_events: Vec<(u64, u32)>,
}

impl Hpa {
    /// An HPA with no history (the controller's state after it first sees the HPA).
    pub fn new(behavior: HpaBehavior, min_replicas: u32, max_replicas: u32) -> Self {
        Self { behavior, min_replicas, max_replicas, recommendations: vec![], up_events: vec![], down_events: vec![] }
    }

    /// One sync (`horizontal.go`, `reconcileAutoscaler`): `current` is the scale's
    /// `spec.replicas`, `metric_desired` the highest proposal over its metrics
    /// (`computeReplicasForMetrics`). Returns the replica count it sets (the same when it does
    /// not rescale). At 0 replicas with a minimum above 0 scaling is disabled ("ScalingDisabled"):
    /// that is how KEDA's 0 survives the HPA.
    pub fn sync(&mut self, now: u64, current: u32, metric_desired: u32) -> u32 {
        let (min, max) = (self.min_replicas, self.max_replicas);
        let desired = if current == 0 && min != 0 {
            return 0;
        } else if current > max {
            max
        } else if current < min {
            min
        } else {
            match self.behavior.clone() {
                HpaBehavior::Legacy { downscale_window_s } => {
                    let stabilized = self.stabilize_legacy(now, metric_desired, downscale_window_s);
                    // convertDesiredReplicasWithRules
                    let scale_up_limit = (current.saturating_mul(2)).max(4);
                    let max_allowed = max.min(scale_up_limit);
                    stabilized.clamp(min, max_allowed.max(min))
                }
                HpaBehavior::Configured { scale_up, scale_down } => {
                    let stabilized =
                        self.stabilize_with_behaviors(now, current, metric_desired, &scale_up, &scale_down);
                    self.limit_rate(now, current, stabilized, &scale_up, &scale_down)
                }
            }
        };
        if desired != current && matches!(self.behavior, HpaBehavior::Configured { .. }) {
            self.store_scale_event(now, current, desired);
        }
        desired
    }

    /// `stabilizeRecommendation`: the highest recommendation not older than the window,
    /// including this one, which is then recorded.
    fn stabilize_legacy(&mut self, now: u64, desired: u32, window_s: u32) -> u32 {
        let cutoff = now.saturating_sub(u64::from(window_s));
        // A record is used unless it is `Before(cutoff)`.
        let stabilized =
            self.recommendations.iter().filter(|(t, _)| *t >= cutoff).map(|(_, r)| *r).fold(desired, u32::max);
        self.recommendations.retain(|(t, _)| *t >= cutoff);
        self.recommendations.push((now, desired));
        stabilized
    }

    /// `stabilizeRecommendationWithBehaviors`: the count moves toward the recommendation only as
    /// far as every recommendation inside each window allows: up to the lowest of the scale-up
    /// window, down to the highest of the scale-down window. Records are used when `After` the
    /// cutoff (strictly newer).
    fn stabilize_with_behaviors(
        &mut self,
        now: u64,
        current: u32,
        desired: u32,
        up: &ScalingRules,
        down: &ScalingRules,
    ) -> u32 {
        let up_cutoff = now as i64 - i64::from(up.stabilization_window_s);
        let down_cutoff = now as i64 - i64::from(down.stabilization_window_s);
        let mut up_rec = desired;
        let mut down_rec = desired;
        for &(t, r) in &self.recommendations {
            if t as i64 > up_cutoff {
                up_rec = up_rec.min(r);
            }
            if t as i64 > down_cutoff {
                down_rec = down_rec.max(r);
            }
        }
        let mut recommendation = current;
        if recommendation < up_rec {
            recommendation = up_rec;
        }
        if recommendation > down_rec {
            recommendation = down_rec;
        }
        let oldest_used = up_cutoff.min(down_cutoff);
        self.recommendations.retain(|(t, _)| *t as i64 > oldest_used);
        self.recommendations.push((now, desired));
        recommendation
    }

    /// `convertDesiredReplicasWithBehaviorRate`: clamp to what the policies allow in their
    /// periods, and to min/max.
    fn limit_rate(&self, now: u64, current: u32, desired: u32, up: &ScalingRules, down: &ScalingRules) -> u32 {
        let (min, max) = (self.min_replicas, self.max_replicas);
        if desired > current {
            let limit = scale_limit(now, current, &self.up_events, &self.down_events, up, true).max(i64::from(current));
            let max_allowed = i64::from(max).min(limit);
            if i64::from(desired) > max_allowed {
                return u32::try_from(max_allowed).unwrap_or(max);
            }
        } else if desired < current {
            let limit =
                scale_limit(now, current, &self.up_events, &self.down_events, down, false).min(i64::from(current));
            let min_allowed = i64::from(min).max(limit);
            if i64::from(desired) < min_allowed {
                return u32::try_from(min_allowed).unwrap_or(min);
            }
        }
        desired
    }

    /// `storeScaleEvent`. Events older than every policy period are dropped: no period can
    /// count them again.
    fn store_scale_event(&mut self, now: u64, previous: u32, new: u32) {
        let longest = match &self.behavior {
            HpaBehavior::Configured { scale_up, scale_down } => {
                scale_up.policies.iter().chain(&scale_down.policies).map(|p| p.period_s).max().unwrap_or(0)
            }
            HpaBehavior::Legacy { .. } => 0,
        };
        let cutoff = now.saturating_sub(u64::from(longest));
        self.up_events.retain(|(t, _)| *t > cutoff);
        self.down_events.retain(|(t, _)| *t > cutoff);
        if new > previous {
            self.up_events.push((now, new - previous));
        } else {
            self.down_events.push((now, previous - new));
        }
    }
}

/// `getReplicasChangePerPeriod`: the replicas changed by events strictly newer than the period.
fn change_in_period(now: u64, period_s: u32, events: &[(u64, u32)]) -> i64 {
    let cutoff = now as i64 - i64::from(period_s);
    events.iter().filter(|(t, _)| *t as i64 > cutoff).map(|(_, n)| i64::from(*n)).sum()
}

/// `calculateScaleUpLimitWithScalingRules` (`up`) and `calculateScaleDownLimitWithBehaviors`:
/// for each policy, the count at the start of its period plus (minus) what it allows; `Max`
/// picks the largest change, `Min` the smallest, `Disabled` none.
fn scale_limit(
    now: u64,
    current: u32,
    up_events: &[(u64, u32)],
    down_events: &[(u64, u32)],
    rules: &ScalingRules,
    up: bool,
) -> i64 {
    if rules.select_policy == SelectPolicy::Disabled {
        return i64::from(current);
    }
    let mut result: Option<i64> = None;
    for policy in &rules.policies {
        let added = change_in_period(now, policy.period_s, up_events);
        let deleted = change_in_period(now, policy.period_s, down_events);
        let period_start = i64::from(current) - added + deleted;
        let value = i64::from(policy.value);
        let proposed = match (policy.kind, up) {
            (PolicyKind::Pods, true) => period_start + value,
            (PolicyKind::Percent, true) => ((period_start as f64) * (1.0 + value as f64 / 100.0)).ceil() as i64,
            (PolicyKind::Pods, false) => period_start - value,
            // Go's int32(float64) conversion truncates toward zero.
            (PolicyKind::Percent, false) => ((period_start as f64) * (1.0 - value as f64 / 100.0)).trunc() as i64,
        };
        // Up: Max policy takes the highest limit; down: Max policy takes the lowest.
        let take_larger = (rules.select_policy == SelectPolicy::Max) == up;
        result = Some(match result {
            None => proposed,
            Some(r) if take_larger => r.max(proposed),
            Some(r) => r.min(proposed),
        });
    }
    result.unwrap_or(i64::from(current))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_is_strictly_above_the_threshold() {
        assert!(!kafka_is_active(0, 0));
        assert!(kafka_is_active(1, 0));
        assert!(!kafka_is_active(5, 5));
        assert!(!postgresql_is_active(0.0, 0.0));
        assert!(postgresql_is_active(1.0, 0.0));
    }

    #[test]
    fn kafka_lag_is_capped_at_one_consumer_per_partition() {
        // 6 partitions, threshold 50: 1000 lag would ask for 20 replicas; capped at 6 × 50.
        assert_eq!(kafka_metric(1000, 6, 2, 50, false, false), 300);
        // Exactly at the bound (integer division 349 / 50 = 6, not above 6): not capped.
        assert_eq!(kafka_metric(349, 6, 2, 50, false, false), 349);
        // allowIdleConsumers: no cap.
        assert_eq!(kafka_metric(1000, 6, 2, 50, true, false), 1000);
        // limitToPartitionsWithLag: capped at the partitions with lag.
        assert_eq!(kafka_metric(1000, 6, 2, 50, false, true), 100);
    }

    #[test]
    fn keda_activates_on_the_first_active_poll_and_cools_down_strictly_after_the_cooldown() {
        let mut keda = KedaExecutor::default();
        assert_eq!(keda.poll(0, false, 0, 0, 300), None);
        assert_eq!(keda.poll(15, true, 0, 0, 300), Some(1));
        assert_eq!(keda.last_active, Some(15));
        assert_eq!(keda.poll(30, true, 3, 0, 300), None, "above 0 the HPA owns the count");
        assert_eq!(keda.last_active, Some(30));
        // lastActiveTime + cooldown = 330: not *before* 330, so no scale-in at 330.
        assert_eq!(keda.poll(330, false, 1, 0, 300), None);
        assert_eq!(keda.poll(345, false, 1, 0, 300), Some(0));
        // minReplicaCount 2: activation sets 2, and never scales in below it.
        let mut keda = KedaExecutor::default();
        assert_eq!(keda.poll(0, true, 0, 2, 300), Some(2));
        assert_eq!(keda.poll(1000, false, 2, 2, 300), None);
        assert_eq!(keda.poll(1000, false, 1, 2, 300), Some(2));
    }

    #[test]
    fn the_tolerance_keeps_the_count_within_ten_percent() {
        // 1.05 × target per replica: no change.
        assert_eq!(external_average_value_replicas(105.0, 50.0, 2, HPA_TOLERANCE), 2);
        // 1.11 × target: ceil(111 / 50) = 3.
        assert_eq!(external_average_value_replicas(111.0, 50.0, 2, HPA_TOLERANCE), 3);
        // The bound itself is inside: 1.1 × 50 × 2 = 110.
        assert_eq!(external_average_value_replicas(110.0, 50.0, 2, HPA_TOLERANCE), 2);
        assert_eq!(external_average_value_replicas(0.0, 50.0, 2, HPA_TOLERANCE), 0);
        assert_eq!(cpu_utilization_replicas(73.5, 70.0, 4, HPA_TOLERANCE), 4);
        assert_eq!(cpu_utilization_replicas(140.0, 70.0, 4, HPA_TOLERANCE), 8);
        assert_eq!(cpu_utilization_replicas(10.0, 70.0, 4, HPA_TOLERANCE), 1);
    }

    /// The shipped workers' behavior (keda/*.yaml): scale-down only, a 120 s window, 1 pod per 60 s.
    fn shipped_scale_down() -> BehaviorSpec {
        BehaviorSpec {
            scale_up: None,
            scale_down: Some(ScalingRulesSpec {
                stabilization_window_s: Some(120),
                select_policy: None,
                policies: Some(vec![ScalingPolicy { kind: PolicyKind::Pods, value: 1, period_s: 60 }]),
            }),
        }
    }

    #[test]
    fn a_behavior_without_scale_up_takes_the_api_defaults() {
        let spec = shipped_scale_down();
        let HpaBehavior::Configured { scale_up, scale_down } = resolve_behavior(Some(&spec)) else {
            panic!("a behavior was given");
        };
        assert_eq!(scale_up.stabilization_window_s, 0);
        assert_eq!(scale_up.policies.len(), 2);
        assert_eq!(scale_down.stabilization_window_s, 120);
        assert_eq!(scale_down.select_policy, SelectPolicy::Max);
        assert_eq!(resolve_behavior(None), HpaBehavior::Legacy { downscale_window_s: 300 });
        // scaleDown given without a window: the controller's 300 s.
        let spec = BehaviorSpec { scale_up: None, scale_down: Some(ScalingRulesSpec::default()) };
        let HpaBehavior::Configured { scale_down, .. } = resolve_behavior(Some(&spec)) else {
            panic!("a behavior was given");
        };
        assert_eq!(scale_down.stabilization_window_s, 300);
    }

    #[test]
    fn default_scale_up_adds_at_most_max_of_4_pods_and_100_percent_per_15_s() {
        let behavior = resolve_behavior(Some(&BehaviorSpec::default()));
        let mut hpa = Hpa::new(behavior, 1, 100);
        assert_eq!(hpa.sync(0, 1, 50), 5, "1 + 4 pods beats 1 + 100 %");
        assert_eq!(hpa.sync(15, 5, 50), 10, "5 + 100 % beats 5 + 4 once the first event is 15 s old");
        // At 29 s the event of 15 s is inside the period: it started at 5, and 5 × 2 = 10.
        assert_eq!(hpa.sync(29, 10, 50), 10);
        assert_eq!(hpa.sync(30, 10, 50), 20);
    }

    #[test]
    fn no_scale_down_inside_the_stabilization_window() {
        // The shipped scale-down: 120 s window, 1 pod per 60 s.
        let spec = shipped_scale_down();
        let mut hpa = Hpa::new(resolve_behavior(Some(&spec)), 1, 6);
        assert_eq!(hpa.sync(0, 1, 3), 3);
        // From 15 s on the metric asks for 1; the recommendation of 3 at 0 s holds until it is
        // 120 s old (used while strictly newer than now − 120).
        for t in (15..=105).step_by(15) {
            assert_eq!(hpa.sync(t, 3, 1), 3, "at {t} s");
        }
        assert_eq!(hpa.sync(120, 3, 1), 2, "one pod per 60 s");
        assert_eq!(hpa.sync(135, 2, 1), 2, "the last 60 s already removed one");
        assert_eq!(hpa.sync(180, 2, 1), 1);
    }

    #[test]
    fn the_legacy_path_keeps_the_highest_recommendation_of_five_minutes() {
        let mut hpa = Hpa::new(resolve_behavior(None), 1, 100);
        assert_eq!(hpa.sync(0, 1, 20), 4, "max(2 × 1, 4)");
        assert_eq!(hpa.sync(15, 4, 20), 8);
        // The metric drops, but the highest recommendation of the window (20) holds, limited to
        // 2 × 8 per sync.
        assert_eq!(hpa.sync(30, 8, 1), 16);
    }

    #[test]
    fn scaling_is_disabled_at_zero() {
        let mut hpa = Hpa::new(resolve_behavior(None), 1, 6);
        assert_eq!(hpa.sync(0, 0, 5), 0);
    }
}
