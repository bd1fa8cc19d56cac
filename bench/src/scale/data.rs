//! The data of `bench scale`: users, their tasks, each task's audit trail, reminder records
//! and delivery records, generated from a seed.
//!
//! Everything is built with the project's own types and rules, so that a loaded row is what the
//! functions would have written: [`Task`] (stored through `TaskStore::item`, which adds the
//! `_order` keys), [`AuditEntry::new`] with the event id [`task_event_id`] (what audit-writer
//! writes for each version), [`ReminderRecord`] (fire-reminder) and [`DeliveryRecord`] (the
//! notifier).
//!
//! Deterministic: the same [`Spec`] and `now` give the same data, user by user, so one user's
//! tasks (the heavy user the figures read) can be generated again without the other 999,999.
//!
//! What the data looks like, per task (the shares are of all tasks):
//!
//! - titles of 2 to 5 and descriptions of 6 to 14 words drawn from [`WORDS`] (120 words), so a
//!   `q` of one word finds about one task in ten ([`Q_HIT`]), and [`Q_MISS`] finds none;
//! - 0 to 3 tags from [`TAGS`] (12), priorities low 25 %, medium 45 %, high 20 %, urgent 10 %;
//! - created in the year before `now`, 60 % with a due time 1 hour to 300 days after creation
//!   (so from a year ago to ten months ahead), 30 % completed;
//! - one audit entry per version: open tasks are at version 1 (85 %) or 2 (an update), completed
//!   ones at 2 (created, completed) or 3 (created, updated, completed); the heavy user's first
//!   task has [`Spec::trail`] versions (the long trail the audit figure reads);
//! - a reminder on a quarter of the tasks with a due time (15 minutes or an hour before it), and
//!   its record: `scheduled` if it is still ahead, `fired` if it passed, `cancelled` once the task
//!   was completed; one webhook delivery per fired reminder (97 % delivered, 1.5 % retrying,
//!   1.5 % failed);
//! - 2 % are recurring (weekly), with their series.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, FixedOffset, Utc};
use chrono_tz::Tz;
use todo_core::audit::AuditEntry;
use todo_core::delivery::{Channel, DeliveryRecord, DeliveryStatus};
use todo_core::events::{TaskChange, reminder_event_id, task_event_id};
use todo_core::recurrence::{Mode, Rule};
use todo_core::reminder::{ReminderRecord, ReminderStatus};
use todo_core::task::{Priority, Recurrence, Reminder, Series, Status, Task};
use uuid::Uuid;

/// Title and description words. None contains [`Q_MISS`].
pub const WORDS: [&str; 120] = [
    "invoice",
    "report",
    "meeting",
    "groceries",
    "dentist",
    "budget",
    "review",
    "draft",
    "email",
    "call",
    "plan",
    "book",
    "flight",
    "hotel",
    "garden",
    "paint",
    "fence",
    "garage",
    "laundry",
    "dishes",
    "vacuum",
    "insurance",
    "taxes",
    "receipt",
    "contract",
    "lawyer",
    "doctor",
    "vet",
    "school",
    "homework",
    "birthday",
    "gift",
    "party",
    "cake",
    "dinner",
    "lunch",
    "recipe",
    "bakery",
    "market",
    "bank",
    "transfer",
    "rent",
    "mortgage",
    "repair",
    "plumber",
    "electrician",
    "heating",
    "window",
    "roof",
    "bicycle",
    "tyres",
    "oil",
    "service",
    "car",
    "train",
    "ticket",
    "passport",
    "visa",
    "renew",
    "license",
    "cancel",
    "subscription",
    "update",
    "backup",
    "laptop",
    "printer",
    "router",
    "password",
    "photos",
    "album",
    "letter",
    "parcel",
    "post",
    "return",
    "order",
    "shoes",
    "jacket",
    "tailor",
    "haircut",
    "gym",
    "run",
    "swim",
    "yoga",
    "doctoral",
    "thesis",
    "chapter",
    "slides",
    "presentation",
    "client",
    "proposal",
    "quarterly",
    "summary",
    "agenda",
    "minutes",
    "follow",
    "up",
    "check",
    "prepare",
    "submit",
    "sign",
    "scan",
    "print",
    "file",
    "archive",
    "sort",
    "clean",
    "fix",
    "buy",
    "sell",
    "pick",
    "drop",
    "collect",
    "visit",
    "grandma",
    "neighbours",
    "volunteer",
    "donate",
    "library",
    "novel",
    "podcast",
];

/// Tags, 0 to 3 per task.
pub const TAGS: [&str; 12] =
    ["work", "home", "errands", "health", "finance", "family", "kids", "someday", "reading", "travel", "garden", "car"];

/// A `q` with hits: one of [`WORDS`], in about one task in ten.
pub const Q_HIT: &str = "invoice";
/// A `q` without hits: in no title or description.
pub const Q_MISS: &str = "xylophone";
/// The tag the tag figure filters on.
pub const TAG: &str = "work";

/// How much data, and from which seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// Tasks in all.
    pub tasks: u64,
    /// Users in all, the heavy ones included.
    pub users: u64,
    /// Users with [`Spec::heavy_tasks`] tasks each; the others share the rest.
    pub heavy_users: u64,
    pub heavy_tasks: u64,
    /// Versions (audit entries) of the heavy user's first task.
    pub trail: u64,
    pub seed: u64,
}

impl Spec {
    /// The task counts of the users, in order: the heavy ones first, then the others, each about
    /// the same (±40 %, in pairs that cancel out), summing to [`Spec::tasks`].
    pub fn task_counts(&self) -> anyhow::Result<Vec<u64>> {
        let light_users = self.users.saturating_sub(self.heavy_users);
        let heavy_total = self.heavy_users * self.heavy_tasks;
        if self.heavy_users > self.users || self.tasks < heavy_total + light_users {
            anyhow::bail!(
                "{} tasks cannot give {} of {} users {} tasks each and every other user at least one",
                self.tasks,
                self.heavy_users,
                self.users,
                self.heavy_tasks
            );
        }
        if self.heavy_users == 0 || self.heavy_tasks < self.trail.max(1) {
            anyhow::bail!("the heavy user's first task needs {} versions: at least one heavy user", self.trail);
        }
        let mut counts = vec![self.heavy_tasks; usize::try_from(self.heavy_users)?];
        let light_total = self.tasks - heavy_total;
        if light_users == 0 {
            if light_total > 0 {
                anyhow::bail!("{light_total} tasks left over with no user to own them");
            }
            return Ok(counts);
        }
        let (base, remainder) = (light_total / light_users, light_total % light_users);
        let mut rng = Rng::new(self.seed ^ 0x5eed_c0de);
        let mut light: Vec<u64> = (0..light_users).map(|i| base + u64::from(i < remainder)).collect();
        // Pairs that move the same amount each way keep the sum.
        let spread = (base * 2 / 5).min(base.saturating_sub(1));
        for pair in light.chunks_exact_mut(2) {
            let d = rng.below(spread + 1);
            pair[0] += d;
            pair[1] -= d;
        }
        counts.extend(light);
        Ok(counts)
    }

    /// The user id (JWT `sub`) of user `n`: `heavy-00`, ... then `user-00010`, ...
    pub fn user(&self, n: u64) -> String {
        if n < self.heavy_users { format!("heavy-{n:02}") } else { format!("user-{n:05}") }
    }
}

/// SplitMix64: small, fast, and the same everywhere (a benchmark's data must not change with
/// a dependency's version).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// True `per_mille` times in a thousand.
    pub fn per_mille(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[usize::try_from(self.below(items.len() as u64)).unwrap_or(0)]
    }

    /// A random (version 4) UUID from this generator.
    pub fn uuid(&mut self) -> Uuid {
        let bits = (u128::from(self.next_u64()) << 64) | u128::from(self.next_u64());
        uuid::Builder::from_random_bytes(bits.to_be_bytes()).into_uuid()
    }

    /// A duration uniform in `0..max`, to the millisecond.
    pub fn within(&mut self, max: Duration) -> Duration {
        Duration::milliseconds(
            i64::try_from(self.below(u64::try_from(max.num_milliseconds()).unwrap_or(0))).unwrap_or(0),
        )
    }
}

/// The generator of one user's tasks: seeded by the spec's seed and the user's number.
fn user_rng(spec: &Spec, user: u64) -> Rng {
    let mut seeder = Rng::new(spec.seed ^ user.wrapping_mul(0xA24B_AED4_963E_E407));
    Rng::new(seeder.next_u64())
}

fn words(rng: &mut Rng, min: u64, max: u64) -> String {
    let n = min + rng.below(max - min + 1);
    (0..n).map(|_| *rng.pick(&WORDS)).collect::<Vec<_>>().join(" ")
}

fn capitalised(text: String) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => text,
    }
}

/// The tasks of user `user` (of [`Spec::task_counts`]), oldest first.
pub fn user_tasks(spec: &Spec, now: DateTime<Utc>, user: u64, count: u64) -> Vec<Task> {
    let mut rng = user_rng(spec, user);
    let owner = spec.user(user);
    let zones = [Tz::UTC, Tz::UTC, Tz::Europe__Berlin, Tz::America__New_York, Tz::Asia__Tokyo];
    let year = Duration::days(365);
    let weekly = Rule::parse("FREQ=WEEKLY").ok();
    let mut tasks: Vec<Task> = (0..count)
        .map(|_| {
            let id = rng.uuid();
            let created_at = now - year + rng.within(year - Duration::hours(1));
            let priority = match rng.below(100) {
                0..25 => Priority::Low,
                25..70 => Priority::Medium,
                70..90 => Priority::High,
                _ => Priority::Urgent,
            };
            let tags: BTreeSet<String> = (0..rng.below(4)).map(|_| (*rng.pick(&TAGS)).to_owned()).collect();
            let due: Option<DateTime<FixedOffset>> = rng
                .per_mille(600)
                .then(|| (created_at + Duration::hours(1) + rng.within(Duration::days(300))).fixed_offset());
            let reminder = match due {
                Some(_) if rng.per_mille(250) => Some(Reminder::BeforeDueSeconds(*rng.pick(&[900, 3600]))),
                _ => None,
            };
            let recurrence = match (due, &weekly) {
                (Some(due), Some(rule)) if rng.per_mille(33) => Some((
                    Recurrence { rule: rule.clone(), mode: Mode::Strict, exdates: vec![] },
                    Series::start(id, due),
                )),
                _ => None,
            };
            let completed = rng.per_mille(300);
            let updated = rng.per_mille(if completed { 300 } else { 150 });
            let version = 1 + u64::from(completed) + u64::from(updated);
            let age = now - created_at;
            let updated_at = if version > 1 { created_at + rng.within(age) } else { created_at };
            Task {
                id,
                owner: owner.clone(),
                title: capitalised(words(&mut rng, 2, 5)),
                description: words(&mut rng, 6, 14),
                priority,
                tags,
                status: if completed { Status::Completed } else { Status::Open },
                due,
                time_zone: *rng.pick(&zones),
                reminder,
                series: recurrence.as_ref().map(|(_, series)| *series),
                recurrence: recurrence.map(|(recurrence, _)| recurrence),
                created_at,
                updated_at,
                completed_at: completed.then_some(updated_at),
                deleted_at: None,
                version,
                request_digest: None,
            }
        })
        .collect();
    if user == 0
        && spec.trail > 1
        && let Some(first) = tasks.first_mut()
    {
        // The long trail: open, changed `trail - 1` times since its creation.
        first.status = Status::Open;
        first.completed_at = None;
        first.version = spec.trail;
        first.updated_at = (now - Duration::hours(2)).max(first.created_at);
    }
    tasks.sort_by_key(|t| t.created_at);
    tasks
}

/// The task with the long audit trail: the heavy user's one at version [`Spec::trail`].
pub fn long_trail_task(spec: &Spec, now: DateTime<Utc>) -> Option<Task> {
    user_tasks(spec, now, 0, spec.heavy_tasks).into_iter().find(|t| t.version == spec.trail && spec.trail > 1)
}

/// Every task, user by user; `each` gets the user's number and its tasks.
pub fn for_each_user(
    spec: &Spec,
    now: DateTime<Utc>,
    mut each: impl FnMut(u64, Vec<Task>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    for (user, count) in spec.task_counts()?.into_iter().enumerate() {
        let user = user as u64;
        each(user, user_tasks(spec, now, user, count))?;
    }
    Ok(())
}

/// The audit trail of `task`: one entry per version, as audit-writer records each event (the
/// task as it was after that change; `created` first, `completed` last for a completed task,
/// `updated` between), each recorded 40 ms after its change.
pub fn trail(task: &Task) -> Vec<AuditEntry> {
    let versions = task.version.max(1);
    (1..=versions)
        .map(|version| {
            let mut snapshot = task.clone();
            snapshot.version = version;
            let span = task.updated_at - task.created_at;
            let steps = i32::try_from(versions - 1).unwrap_or(i32::MAX).max(1);
            let step = i32::try_from(version - 1).unwrap_or(i32::MAX);
            snapshot.updated_at =
                if version == versions { task.updated_at } else { task.created_at + span / steps * step };
            let change = if version == 1 {
                TaskChange::Created
            } else if version == versions && task.status == Status::Completed {
                TaskChange::Completed
            } else {
                TaskChange::Updated
            };
            if change != TaskChange::Completed {
                snapshot.status = Status::Open;
                snapshot.completed_at = None;
            }
            let occurred = snapshot.updated_at;
            AuditEntry::new(
                &task_event_id(task.id, version),
                change,
                Some(occurred),
                snapshot,
                occurred + Duration::milliseconds(40),
            )
        })
        .collect()
}

/// When `task`'s reminder is (or was) due, whatever its status.
fn remind_at(task: &Task) -> Option<DateTime<Utc>> {
    match task.reminder? {
        Reminder::At(at) => Some(at.to_utc()),
        Reminder::BeforeDueSeconds(seconds) => {
            task.due.map(|due| (due - Duration::seconds(i64::from(seconds))).to_utc())
        }
    }
}

/// fire-reminder's record of `task`'s reminder, as it stands at `now`: `scheduled` while
/// ahead, `fired` (a few milliseconds late) once passed, `cancelled` for a completed task.
pub fn reminder_record(task: &Task, now: DateTime<Utc>) -> Option<ReminderRecord> {
    let at = remind_at(task)?;
    let late_by_ms = 2 + (task.id.as_u128() % 19) as u64;
    let (status, updated_at, fired_at, late_by_ms) = if task.status == Status::Completed {
        (ReminderStatus::Cancelled, task.completed_at.unwrap_or(task.updated_at), None, None)
    } else if at > now {
        (ReminderStatus::Scheduled, task.updated_at, None, None)
    } else {
        let fired = at + Duration::milliseconds(i64::try_from(late_by_ms).unwrap_or(0));
        (ReminderStatus::Fired, fired, Some(fired), Some(late_by_ms))
    };
    Some(ReminderRecord {
        task_id: task.id,
        status,
        remind_at: Some(at),
        task_version: task.version,
        updated_at,
        fired_at,
        late_by_ms,
    })
}

/// The notifier's webhook delivery of a fired reminder: delivered (97 %), retrying with its
/// next attempt due, or failed for good.
pub fn delivery_record(record: &ReminderRecord) -> Option<DeliveryRecord> {
    if record.status != ReminderStatus::Fired {
        return None;
    }
    let (at, fired) = (record.remind_at?, record.fired_at?);
    let event_id = reminder_event_id(record.task_id, at);
    let roll = (record.task_id.as_u128() >> 64) % 1000;
    let sent = fired + Duration::milliseconds(5);
    let (status, attempts, delivered_at, next_attempt_at, last_error) = match roll {
        0..15 => (
            DeliveryStatus::Retrying,
            3,
            None,
            Some(sent + Duration::seconds(7)),
            Some("503 Service Unavailable".to_owned()),
        ),
        15..30 => (DeliveryStatus::Failed, 1, None, None, Some("410 Gone".to_owned())),
        _ => (DeliveryStatus::Delivered, 1, Some(sent + Duration::milliseconds(3)), None, None),
    };
    Some(DeliveryRecord {
        event_id,
        task_id: record.task_id,
        channel: Channel::Webhook,
        status,
        attempts,
        attempted_at: sent,
        delivered_at,
        next_attempt_at,
        last_error,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-12-06T12:00:00Z".parse().unwrap()
    }

    fn small() -> Spec {
        Spec { tasks: 3_000, users: 30, heavy_users: 2, heavy_tasks: 1_000, trail: 100, seed: 7 }
    }

    #[test]
    fn counts_sum_to_the_tasks_and_heavy_users_come_first() {
        let counts = small().task_counts().unwrap();
        assert_eq!(counts.len(), 30);
        assert_eq!(counts.iter().sum::<u64>(), 3_000);
        assert_eq!(&counts[..2], &[1_000, 1_000]);
        assert!(counts[2..].iter().all(|&c| (20..=50).contains(&c)), "{counts:?}");
        let full = Spec { tasks: 1_000_000, users: 10_000, heavy_users: 10, heavy_tasks: 10_000, trail: 100, seed: 1 };
        let counts = full.task_counts().unwrap();
        assert_eq!(counts.iter().sum::<u64>(), 1_000_000);
        assert!(counts[10..].iter().all(|&c| (54..=127).contains(&c)));
        assert!(Spec { tasks: 100, ..small() }.task_counts().is_err());
        assert!(Spec { heavy_users: 0, ..small() }.task_counts().is_err());
    }

    #[test]
    fn the_same_spec_gives_the_same_data() {
        let spec = small();
        let a = user_tasks(&spec, now(), 5, 40);
        assert_eq!(a, user_tasks(&spec, now(), 5, 40));
        assert_ne!(a, user_tasks(&spec, now(), 6, 40), "another user, other tasks");
        assert_ne!(a, user_tasks(&Spec { seed: 8, ..spec }, now(), 5, 40), "another seed, other tasks");
        assert!(a.iter().all(|t| t.owner == "user-00005"));
        assert!(a.windows(2).all(|w| w[0].created_at <= w[1].created_at));
    }

    #[test]
    fn tasks_are_varied_and_searchable() {
        let spec = small();
        let tasks = user_tasks(&spec, now(), 0, 1_000);
        let share = |f: &dyn Fn(&Task) -> bool| tasks.iter().filter(|t| f(t)).count();
        let hits = share(&|t| t.title.to_lowercase().contains(Q_HIT) || t.description.contains(Q_HIT));
        assert!((50..200).contains(&hits), "q hits {hits}");
        assert_eq!(share(&|t| t.title.to_lowercase().contains(Q_MISS) || t.description.contains(Q_MISS)), 0);
        assert!(WORDS.iter().all(|w| !w.contains(Q_MISS)));
        assert!((60..200).contains(&share(&|t| t.tags.contains(TAG))));
        assert!((500..700).contains(&share(&|t| t.due.is_some())));
        assert!((230..370).contains(&share(&|t| t.status == Status::Completed)));
        assert!(share(&|t| t.recurrence.is_some()) > 0 && share(&|t| t.reminder.is_some()) > 50);
        for task in &tasks {
            assert!(task.created_at <= task.updated_at && task.updated_at <= now(), "{task:?}");
            assert!(!task.title.is_empty() && task.title.chars().count() <= 200);
            assert!(todo_core::validate::check(task).is_ok(), "{task:?}");
        }
        let long = tasks.iter().filter(|t| t.version == 100).count();
        assert_eq!(long, 1, "one task with the long trail");
        assert_eq!(long_trail_task(&spec, now()).map(|t| t.version), Some(100));
    }

    #[test]
    fn a_trail_has_one_entry_per_version_ending_with_the_task() {
        let spec = small();
        let task = long_trail_task(&spec, now()).unwrap();
        let entries = trail(&task);
        assert_eq!(entries.len(), 100);
        assert_eq!(entries[0].change, TaskChange::Created);
        assert!(entries[1..].iter().all(|e| e.change == TaskChange::Updated));
        assert_eq!(entries[99].task, task);
        assert_eq!(entries[41].key(), format!("audit:{}:task:{}:v42", task.id, task.id));
        assert!(entries.windows(2).all(|w| w[0].occurred_at <= w[1].occurred_at));
        let done = user_tasks(&spec, now(), 3, 40).into_iter().find(|t| t.status == Status::Completed).unwrap();
        let entries = trail(&done);
        assert_eq!(entries.last().map(|e| e.change), Some(TaskChange::Completed));
        assert_eq!(entries.last().map(|e| &e.task), Some(&done));
        assert!(entries[..entries.len() - 1].iter().all(|e| e.task.status == Status::Open));
    }

    #[test]
    fn reminder_and_delivery_records_follow_the_task() {
        let spec = small();
        let tasks = user_tasks(&spec, now(), 0, 1_000);
        let records: Vec<ReminderRecord> = tasks.iter().filter_map(|t| reminder_record(t, now())).collect();
        let count = |s| records.iter().filter(|r| r.status == s).count();
        assert!(count(ReminderStatus::Scheduled) > 0 && count(ReminderStatus::Fired) > 0, "{records:?}");
        assert!(count(ReminderStatus::Cancelled) > 0);
        for r in records.iter().filter(|r| r.status != ReminderStatus::Cancelled) {
            assert_eq!(r.status == ReminderStatus::Scheduled, r.remind_at.unwrap() > now(), "{r:?}");
            assert_eq!(r.status == ReminderStatus::Fired, r.fired_at.is_some(), "{r:?}");
        }
        let deliveries: Vec<DeliveryRecord> = records.iter().filter_map(delivery_record).collect();
        assert_eq!(deliveries.len(), count(ReminderStatus::Fired));
        assert!(deliveries.iter().all(|d| d.event_id.starts_with("reminder:")));
    }
}
