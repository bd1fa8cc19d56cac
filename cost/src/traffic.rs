//! Deterministic traffic: one day at 1 s resolution, per topic, for four profiles, and the
//! trace each function gets from them.
//!
//! The topology (shared/DESIGN.md, "The functions" and "Topics and events"): every task change
//! through task-api is one `task-events` message, consumed by on-task-completed, fire-reminder
//! and audit-writer (one consumer group each: each sees every message); completing a recurring
//! task makes on-task-completed publish a `task-create` request, which create-task turns into a
//! task and so into one more `task-events` message; imports (and other asynchronous creates)
//! are `task-create` requests too; a reminder coming due is work for fire-reminder (its
//! postgresql trigger sees it ahead of time), which publishes one `reminders` message for the
//! notifier. task-api is always on (minReplicaCount 1); its trace is the changes people make.
//!
//! Each hop is placed at the second of the action that causes it, plus one second per hop: the
//! delay a hop's own scaling adds (a cold start of on-task-completed before create-task sees a
//! recurrence) is not fed forward into the next function's trace. A cascade replay is left for
//! later.
//!
//! The profiles' sizes and shapes are assumptions (named in [`Profile`]), not measurements:
//! randomness comes from a fixed-seed LCG so that every run of the report gives the same day.

use crate::replay::FunctionTrace;

/// Seconds in the replayed day.
pub const DAY_S: usize = 86_400;
/// create-task's throughput when an import arrives, messages per second: 30,000 creations in
/// 60 s drained 14.93 s after the load (BENCHMARKS.md, "Sustained creations through
/// create-task", platform: 30000 / 74.93 s ≈ 400/s). Import `created` events follow at this rate.
pub const IMPORT_CREATE_RATE: u32 = 400;

/// A 64-bit linear congruential generator (Knuth's MMIX constants): tiny, deterministic, and
/// good enough to scatter arrivals.
#[derive(Debug, Clone)]
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.0
    }

    /// Uniform in [0, 1), from the high 53 bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A uniform integer in [0, n) (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.uniform() * n as f64) as u64).min(n.saturating_sub(1))
    }

    /// A Poisson count of mean `lambda`: Knuth's product method below 30, a rounded normal above.
    pub fn poisson(&mut self, lambda: f64) -> u32 {
        if lambda <= 0.0 {
            return 0;
        }
        if lambda < 30.0 {
            let limit = (-lambda).exp();
            let mut k = 0u32;
            let mut p = 1.0;
            loop {
                p *= self.uniform();
                if p <= limit {
                    return k;
                }
                k += 1;
            }
        }
        // Box–Muller.
        let (u1, u2) = (self.uniform().max(f64::MIN_POSITIVE), self.uniform());
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        (lambda + lambda.sqrt() * z).round().max(0.0) as u32
    }
}

/// The four days the report replays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// A handful of people (assumed 5): 300 task changes on average, 09:00–17:00 only.
    QuietTeam,
    /// 10,000 users making 8 changes each on average (80,000), a diurnal curve peaking at 14:00
    /// with about 19 times the rate of 02:00.
    Diurnal10k,
    /// The quiet team, plus three imports of 2,000 (10:30), 5,000 (13:15) and 3,000 (16:00)
    /// tasks, each published to `task-create` in the same second.
    BurstyImport,
    /// 1,000 users (8,000 changes, diurnal) and 20,000 reminders set on earlier days coming due
    /// between 07:00 and 22:00, half of them on the hour, half on a whole minute.
    ReminderHeavy,
}

impl Profile {
    pub const ALL: [Profile; 4] =
        [Profile::QuietTeam, Profile::Diurnal10k, Profile::BurstyImport, Profile::ReminderHeavy];

    pub fn name(self) -> &'static str {
        match self {
            Profile::QuietTeam => "quiet team",
            Profile::Diurnal10k => "10k-user diurnal",
            Profile::BurstyImport => "bursty import",
            Profile::ReminderHeavy => "reminder-heavy",
        }
    }
}

/// What a task change is (assumed mix): 40 % creates, 30 % updates, 25 % completions, 5 % deletes.
const CREATE_SHARE: f64 = 0.40;
const COMPLETE_SHARE: f64 = 0.25;
/// Share of completions whose task recurs (assumed): each asks create-task for the next one.
const RECURRING_SHARE: f64 = 0.20;
/// Share of creates that set a reminder due later the same day (assumed), 1 to 8 hours ahead,
/// on a whole minute.
const REMINDER_SHARE: f64 = 0.20;

/// Messages per second on each topic, for one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicTraces {
    /// Task changes people make through task-api (its requests that change a task).
    pub user_changes: Vec<u32>,
    /// `task-create`: recurrences' next occurrences and imports.
    pub task_create: Vec<u32>,
    /// `task-events`: every task change (people's and create-task's).
    pub task_events: Vec<u32>,
    /// Reminders coming due (fire-reminder's postgresql trigger and its job callbacks).
    pub reminders_due: Vec<u32>,
    /// `reminders`: one `todo.reminder.due` per reminder fired.
    pub reminders: Vec<u32>,
}

impl TopicTraces {
    fn empty() -> Self {
        Self {
            user_changes: vec![0; DAY_S],
            task_create: vec![0; DAY_S],
            task_events: vec![0; DAY_S],
            reminders_due: vec![0; DAY_S],
            reminders: vec![0; DAY_S],
        }
    }

    /// The trace of the function named `name` (its app-id), or `None` for an unknown one.
    pub fn function(&self, name: &str) -> Option<FunctionTrace> {
        let kafka = |v: &Vec<u32>| FunctionTrace { kafka: v.clone(), due: vec![] };
        Some(match name {
            "task-api" => kafka(&self.user_changes),
            "create-task" => kafka(&self.task_create),
            "on-task-completed" | "audit-writer" => kafka(&self.task_events),
            "fire-reminder" => FunctionTrace { kafka: self.task_events.clone(), due: self.reminders_due.clone() },
            "notifier" => kafka(&self.reminders),
            _ => return None,
        })
    }
}

fn add(v: &mut [u32], t: usize, n: u32) {
    if let Some(x) = v.get_mut(t) {
        *x = x.saturating_add(n);
    }
}

/// The rate of people's task changes at second `t`, per second.
fn change_rate(profile: Profile, t: usize) -> f64 {
    let hour = t as f64 / 3600.0;
    let office = |total: f64| if (9.0..17.0).contains(&hour) { total / (8.0 * 3600.0) } else { 0.0 };
    // 1 + 0.9 cos(…) peaks at 14:00 (1.9) and bottoms at 02:00 (0.1); its mean over a day is 1.
    let diurnal =
        |total: f64| total / DAY_S as f64 * (1.0 + 0.9 * (2.0 * std::f64::consts::PI * (hour - 14.0) / 24.0).cos());
    match profile {
        Profile::QuietTeam | Profile::BurstyImport => office(300.0),
        Profile::Diurnal10k => diurnal(80_000.0),
        Profile::ReminderHeavy => diurnal(8_000.0),
    }
}

/// One day of `profile`, the same for the same `seed`.
pub fn generate(profile: Profile, seed: u64) -> TopicTraces {
    let mut rng = Lcg::new(seed);
    let mut out = TopicTraces::empty();
    for t in 0..DAY_S {
        let n = rng.poisson(change_rate(profile, t));
        if n == 0 {
            continue;
        }
        add(&mut out.user_changes, t, n);
        add(&mut out.task_events, t, n);
        for _ in 0..n {
            let kind = rng.uniform();
            if kind < CREATE_SHARE {
                if rng.uniform() < REMINDER_SHARE {
                    // 1 to 8 hours ahead, on a whole minute.
                    let due = (t + 3600 + rng.below(7 * 3600) as usize) / 60 * 60;
                    add(&mut out.reminders_due, due, 1);
                }
            } else if kind < CREATE_SHARE + COMPLETE_SHARE && rng.uniform() < RECURRING_SHARE && t + 2 < DAY_S {
                // on-task-completed asks for the next occurrence; create-task creates it.
                add(&mut out.task_create, t + 1, 1);
                add(&mut out.task_events, t + 2, 1);
            }
        }
    }
    if profile == Profile::BurstyImport {
        for (at, tasks) in [(10 * 3600 + 1800, 2_000u32), (13 * 3600 + 900, 5_000), (16 * 3600, 3_000)] {
            add(&mut out.task_create, at, tasks);
            // Their `created` events, at create-task's throughput.
            let mut left = tasks;
            let mut t = at + 1;
            while left > 0 {
                let n = left.min(IMPORT_CREATE_RATE);
                add(&mut out.task_events, t, n);
                left -= n;
                t += 1;
            }
        }
    }
    if profile == Profile::ReminderHeavy {
        for i in 0..20_000u32 {
            let hour = 7 + rng.below(15) as usize;
            let due = if i % 2 == 0 { hour * 3600 } else { hour * 3600 + 60 * rng.below(60) as usize };
            add(&mut out.reminders_due, due, 1);
        }
    }
    // fire-reminder publishes one `reminders` message per reminder, the second it fires.
    out.reminders = out.reminders_due.iter().enumerate().fold(vec![0; DAY_S], |mut r, (t, n)| {
        add(&mut r, t + 1, *n);
        r
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(v: &[u32]) -> u64 {
        v.iter().map(|n| u64::from(*n)).sum()
    }

    #[test]
    fn the_same_seed_gives_the_same_day_and_another_seed_another() {
        assert_eq!(generate(Profile::Diurnal10k, 7), generate(Profile::Diurnal10k, 7));
        assert_ne!(generate(Profile::QuietTeam, 7).user_changes, generate(Profile::QuietTeam, 8).user_changes);
    }

    #[test]
    fn a_quiet_team_works_office_hours_only() {
        let day = generate(Profile::QuietTeam, 1);
        let changes = total(&day.user_changes);
        assert!((240..=360).contains(&changes), "{changes}");
        assert_eq!(total(&day.user_changes[..9 * 3600]), 0);
        assert_eq!(total(&day.user_changes[17 * 3600..]), 0);
        assert!(day.user_changes.len() == DAY_S && day.reminders_due.len() == DAY_S);
    }

    #[test]
    fn every_task_change_is_one_task_event_and_recurrences_add_one_each() {
        for profile in Profile::ALL {
            let day = generate(profile, 3);
            let imported = if profile == Profile::BurstyImport { 10_000 } else { 0 };
            let recurrences = total(&day.task_create) - imported;
            assert_eq!(total(&day.task_events), total(&day.user_changes) + recurrences + imported, "{profile:?}");
            assert_eq!(total(&day.reminders), total(&day.reminders_due), "{profile:?}");
        }
    }

    #[test]
    fn the_diurnal_day_peaks_in_the_afternoon() {
        let day = generate(Profile::Diurnal10k, 5);
        let changes = total(&day.user_changes);
        assert!((78_000..=82_000).contains(&changes), "{changes}");
        let at = |h: usize| total(&day.user_changes[h * 3600..(h + 1) * 3600]);
        assert!(at(14) > 10 * at(2), "{} vs {}", at(14), at(2));
    }

    #[test]
    fn reminders_of_the_reminder_heavy_day_fall_on_the_hour_and_the_minute() {
        let day = generate(Profile::ReminderHeavy, 9);
        assert!(day.reminders_due.iter().enumerate().all(|(t, n)| *n == 0 || t % 60 == 0));
        let on_the_hour: u64 = (0..24).map(|h| u64::from(day.reminders_due[h * 3600])).sum();
        assert!(on_the_hour >= 10_000, "{on_the_hour}");
    }

    #[test]
    fn each_function_gets_its_topics() {
        let day = generate(Profile::BurstyImport, 2);
        let trace = |name| day.function(name).unwrap_or_default();
        assert_eq!(trace("create-task").kafka, day.task_create);
        assert_eq!(trace("audit-writer").kafka, day.task_events);
        assert_eq!(trace("on-task-completed").kafka, day.task_events);
        assert_eq!(trace("fire-reminder").due, day.reminders_due);
        assert_eq!(trace("notifier").kafka, day.reminders);
        assert_eq!(day.function("nobody"), None);
        assert_eq!(total(&day.task_create[10 * 3600 + 1800..10 * 3600 + 1801]), 2_000);
    }

    #[test]
    fn poisson_counts_have_the_asked_mean() {
        let mut rng = Lcg::new(11);
        for lambda in [0.01, 2.0, 50.0] {
            let n = 20_000;
            let mean = (0..n).map(|_| f64::from(rng.poisson(lambda))).sum::<f64>() / f64::from(n);
            assert!((mean - lambda).abs() < 0.05 * lambda.max(1.0), "{lambda}: {mean}");
        }
    }
}
