//! What moving one setting does: a function's shipped ScaledObject replayed with one of
//! `cooldownPeriod`, `pollingInterval`, the kafka `lagThreshold`, the postgresql
//! `targetQueryValue` or `minReplicaCount` set to each of a few values, everything else as
//! shipped, on every profile. Pure, like the rest of the crate.

use crate::measured;
use crate::price::{Cost, Prices, cost};
use crate::replay::{ReplayConfig, Strategy, WaitStats, replay};
use crate::settings::{FunctionSettings, ScaledObjectSettings, Trigger};
use crate::traffic::{Profile, TopicTraces};

/// A setting the sweep varies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Knob {
    CooldownPeriod,
    PollingInterval,
    /// Every kafka trigger's `lagThreshold`.
    LagThreshold,
    /// Every postgresql trigger's `targetQueryValue`.
    TargetQueryValue,
    MinReplicas,
}

impl Knob {
    pub const ALL: [Knob; 5] =
        [Knob::CooldownPeriod, Knob::PollingInterval, Knob::LagThreshold, Knob::TargetQueryValue, Knob::MinReplicas];

    /// The key as the ScaledObject spells it.
    pub fn key(self) -> &'static str {
        match self {
            Knob::CooldownPeriod => "cooldownPeriod",
            Knob::PollingInterval => "pollingInterval",
            Knob::LagThreshold => "lagThreshold",
            Knob::TargetQueryValue => "targetQueryValue",
            Knob::MinReplicas => "minReplicaCount",
        }
    }

    /// The shipped value, or `None` when the ScaledObject has nothing this knob moves.
    pub fn shipped(self, so: &ScaledObjectSettings) -> Option<u64> {
        match self {
            Knob::CooldownPeriod => Some(u64::from(so.cooldown_period_s)),
            Knob::PollingInterval => Some(u64::from(so.polling_interval_s)),
            Knob::MinReplicas => Some(u64::from(so.min_replicas)),
            Knob::LagThreshold => so.triggers.iter().find_map(|t| match t {
                Trigger::Kafka { lag_threshold, .. } => u64::try_from(*lag_threshold).ok(),
                _ => None,
            }),
            Knob::TargetQueryValue => so.triggers.iter().find_map(|t| match t {
                Trigger::Postgresql { target_query_value, .. } => Some(target_query_value.max(0.0).round() as u64),
                _ => None,
            }),
        }
    }

    /// The values tried, the shipped one among them, ascending.
    pub fn values(self, so: &ScaledObjectSettings) -> Vec<u64> {
        let Some(shipped) = self.shipped(so) else { return vec![] };
        let mut v: Vec<u64> = match self {
            Knob::CooldownPeriod => vec![60, 300, 900, 1800, 3600],
            Knob::PollingInterval => vec![5, 15, 30],
            Knob::LagThreshold => vec![5, 20, 50, 200],
            Knob::TargetQueryValue => vec![100, 1000, 10_000],
            Knob::MinReplicas => vec![0, 1],
        };
        v.push(shipped);
        v.sort_unstable();
        v.dedup();
        v
    }

    /// `so` with this knob set to `value`.
    pub fn apply(self, so: &ScaledObjectSettings, value: u64) -> ScaledObjectSettings {
        let mut so = so.clone();
        let as_u32 = u32::try_from(value).unwrap_or(u32::MAX);
        match self {
            Knob::CooldownPeriod => so.cooldown_period_s = as_u32,
            Knob::PollingInterval => so.polling_interval_s = as_u32.max(1),
            Knob::MinReplicas => {
                so.min_replicas = as_u32;
                so.max_replicas = so.max_replicas.max(as_u32);
            }
            Knob::LagThreshold => {
                for t in &mut so.triggers {
                    if let Trigger::Kafka { lag_threshold, .. } = t {
                        *lag_threshold = i64::try_from(value).unwrap_or(i64::MAX).max(1);
                    }
                }
            }
            Knob::TargetQueryValue => {
                for t in &mut so.triggers {
                    if let Trigger::Postgresql { target_query_value, .. } = t {
                        *target_query_value = value as f64;
                    }
                }
            }
        }
        so
    }
}

/// One function, one knob at one value, one profile, under KEDA.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepRow {
    pub function: String,
    pub knob: Knob,
    pub value: u64,
    pub shipped: bool,
    pub profile: Profile,
    pub replica_seconds: u64,
    pub cold_starts: u32,
    pub waits: WaitStats,
    pub month: Cost,
}

/// Every knob of every function that can scale to zero (shipped `minReplicaCount` 0), on every
/// day in `days` (a profile and its traffic, as [`crate::traffic::generate`] gives it).
pub fn sweep(functions: &[FunctionSettings], days: &[(Profile, TopicTraces)], prices: &Prices) -> Vec<SweepRow> {
    let mut out = vec![];
    for f in functions.iter().filter(|f| f.scaled_object.min_replicas == 0) {
        let name = f.deployment.name.as_str();
        let pod = f.deployment.pod();
        for knob in Knob::ALL {
            let shipped = knob.shipped(&f.scaled_object);
            for value in knob.values(&f.scaled_object) {
                let so = knob.apply(&f.scaled_object, value);
                let config = ReplayConfig::new(&so, measured::for_function(name));
                for (profile, day) in days {
                    let Some(trace) = day.function(name) else { continue };
                    let r = replay(&config, &trace, Strategy::Keda);
                    out.push(SweepRow {
                        function: name.to_string(),
                        knob,
                        value,
                        shipped: shipped == Some(value),
                        profile: *profile,
                        replica_seconds: r.replica_seconds,
                        cold_starts: r.cold_starts,
                        waits: r.waits,
                        month: cost(&pod, r.replica_seconds, prices).per_month_from_day(),
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::DeploymentSettings;
    use crate::settings::tests::{audit_writer_deployment, audit_writer_scaled_object};
    use crate::traffic::generate;

    #[test]
    fn values_include_the_shipped_one_and_knobs_without_a_trigger_are_skipped()
    -> Result<(), crate::settings::SettingsError> {
        let so = ScaledObjectSettings::from_value(&audit_writer_scaled_object())?;
        assert_eq!(Knob::CooldownPeriod.values(&so), vec![60, 300, 900, 1800, 3600]);
        assert_eq!(Knob::LagThreshold.values(&so), vec![5, 20, 50, 200]);
        assert_eq!(Knob::TargetQueryValue.values(&so), Vec::<u64>::new());
        let slow = Knob::PollingInterval.apply(&so, 5);
        assert_eq!(slow.polling_interval_s, 5);
        assert_eq!(
            Knob::LagThreshold.apply(&so, 200).triggers[0],
            Trigger::Kafka {
                topic: "task-events".into(),
                lag_threshold: 200,
                activation_lag_threshold: 0,
                allow_idle_consumers: false,
                limit_to_partitions_with_lag: false,
            }
        );
        Ok(())
    }

    #[test]
    fn a_longer_cooldown_pays_fewer_cold_starts_and_more_replica_seconds() -> Result<(), crate::settings::SettingsError>
    {
        let f = FunctionSettings {
            scaled_object: ScaledObjectSettings::from_value(&audit_writer_scaled_object())?,
            deployment: DeploymentSettings::from_value(&audit_writer_deployment())?,
        };
        let days = [(Profile::QuietTeam, generate(Profile::QuietTeam, 24))];
        let rows = sweep(&[f], &days, &Prices::default());
        let cooldown: Vec<&SweepRow> = rows.iter().filter(|r| r.knob == Knob::CooldownPeriod).collect();
        assert_eq!(cooldown.len(), 5);
        assert!(cooldown.windows(2).all(|w| w[0].cold_starts >= w[1].cold_starts));
        assert!(cooldown.windows(2).all(|w| w[0].replica_seconds <= w[1].replica_seconds));
        assert_eq!(rows.iter().filter(|r| r.shipped).count(), 4, "one shipped value per knob present");
        let always = rows.iter().find(|r| r.knob == Knob::MinReplicas && r.value == 1);
        assert_eq!(always.map(|r| r.cold_starts), Some(0));
        Ok(())
    }
}
