//! The report's rows: every function, every profile, the shipped settings beside always-on and
//! a CPU HPA, in replica-seconds, cold starts, waits and money. Pure: the caller reads the
//! manifests and prints.

use std::fmt::Write as _;

use crate::measured;
use crate::price::{Cost, Prices, cost};
use crate::replay::{DEFAULT_CPU_TARGET_PERCENT, Measured, ReplayConfig, Strategy, WaitStats, replay};
use crate::settings::FunctionSettings;
use crate::traffic::{Profile, TopicTraces, generate};

/// The seed of the report's days: fixed, so that every report shows the same traffic.
pub const SEED: u64 = 24;

/// One function, one profile, one way of scaling it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub function: String,
    pub profile: Profile,
    pub strategy: &'static str,
    pub replica_seconds: u64,
    pub cold_starts: u32,
    pub waits: WaitStats,
    pub peak_backlog: u64,
    pub day: Cost,
    pub month: Cost,
}

/// The rows for `functions` over `profiles`, with the measured defaults of [`crate::measured`].
pub fn rows(functions: &[FunctionSettings], profiles: &[Profile], prices: &Prices) -> Vec<Row> {
    let days: Vec<(Profile, TopicTraces)> = profiles.iter().map(|p| (*p, generate(*p, SEED))).collect();
    rows_for_days(functions, &days, prices)
}

/// The rows for `functions` over days already generated (a profile and its traffic), so that a
/// caller replaying the same days again (the sweeps) generates them once.
pub fn rows_for_days(functions: &[FunctionSettings], days: &[(Profile, TopicTraces)], prices: &Prices) -> Vec<Row> {
    rows_for_days_with(functions, days, prices, measured::COLD_START_S)
}

/// [`rows_for_days`] with another cold start than the measured one (for example
/// [`measured::CLUSTER_COLD_START_S`], to see what a cluster's pod start does to the waits).
pub fn rows_for_days_with(
    functions: &[FunctionSettings],
    days: &[(Profile, TopicTraces)],
    prices: &Prices,
    cold_start_s: u32,
) -> Vec<Row> {
    let mut out = vec![];
    for (profile, day) in days {
        for f in functions {
            let name = f.deployment.name.as_str();
            let Some(trace) = day.function(name) else { continue };
            let config = ReplayConfig::new(&f.scaled_object, Measured { cold_start_s, ..measured::for_function(name) });
            let pod = f.deployment.pod();
            for (label, strategy) in [
                ("shipped (KEDA)", Strategy::Keda),
                ("always-on", Strategy::AlwaysOn),
                ("CPU HPA min 1", Strategy::CpuHpa { target_utilization_percent: DEFAULT_CPU_TARGET_PERCENT }),
            ] {
                let r = replay(&config, &trace, strategy);
                let day_cost = cost(&pod, r.replica_seconds, prices);
                out.push(Row {
                    function: name.to_string(),
                    profile: *profile,
                    strategy: label,
                    replica_seconds: r.replica_seconds,
                    cold_starts: r.cold_starts,
                    waits: r.waits,
                    peak_backlog: r.peak_backlog,
                    day: day_cost,
                    month: day_cost.per_month_from_day(),
                });
            }
        }
    }
    out
}

/// The rows as a Markdown table.
pub fn markdown(rows: &[Row]) -> String {
    let mut s = String::from(
        "| profile | function | scaling | replica-s/day | cold starts | wait p50 s | wait p99 s | wait max s | peak backlog | vCPU-h/month | GiB-h/month | $/month |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} |",
            r.profile.name(),
            r.function,
            r.strategy,
            r.replica_seconds,
            r.cold_starts,
            r.waits.p50_s,
            r.waits.p99_s,
            r.waits.max_s,
            r.peak_backlog,
            r.month.vcpu_hours,
            r.month.gib_hours,
            r.month.dollars,
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{DeploymentSettings, ScaledObjectSettings};

    #[test]
    fn scale_to_zero_saves_on_a_quiet_day_and_pays_in_cold_starts() -> Result<(), crate::settings::SettingsError> {
        let f = FunctionSettings {
            scaled_object: ScaledObjectSettings::from_value(&crate::settings::tests::audit_writer_scaled_object())?,
            deployment: DeploymentSettings::from_value(&crate::settings::tests::audit_writer_deployment())?,
        };
        let rows = rows(&[f], &[Profile::QuietTeam], &Prices::default());
        assert_eq!(rows.len(), 3);
        let (keda, always, cpu) = (&rows[0], &rows[1], &rows[2]);
        assert_eq!(always.replica_seconds, 86_400);
        assert_eq!(always.cold_starts, 0);
        assert!(cpu.replica_seconds >= 86_400);
        assert!(keda.replica_seconds < always.replica_seconds / 2, "{}", keda.replica_seconds);
        assert!(keda.cold_starts > 0);
        assert!(keda.waits.p99_s > always.waits.p99_s);
        // Every message is processed under each strategy.
        assert!(rows.iter().all(|r| r.waits.messages == keda.waits.messages));
        assert!(markdown(&rows).lines().count() == 5);
        Ok(())
    }
}
