//! Shared recurrence test vectors (`tests/vectors/recurrence.json`) and properties of the engine.
//!
//! The vectors are data, not code, so that any other implementation (a client, a script) can be
//! checked against the same calendar facts. Their expected values were worked out from the
//! calendar and the zones' published DST rules, not copied from this engine's output.
//!
//! Schema: a JSON array of cases. Every case has `name`, `rule` (RRULE text), `tz` (IANA name),
//! `anchor` (RFC 3339), an optional `anchor_index` (default 0) and optional `exdates` (RFC 3339
//! instants to skip, used by `next`), plus at least one of
//! - `occurrences`: `[{ "n": u32, "expect": RFC 3339 | null }]`, checked with `occurrence`;
//! - `next`: `{ "mode"?: "strict" | "after_completion", "index", "due", "completed_at",
//!   "expect": null | { "index", "due" } }`, checked with `next` on the series
//!   `{ index, anchor, anchor_index }`.
//!
//! Expected instants must match exactly, offset included (`DateTime`'s `==` ignores the offset).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Datelike, Duration, FixedOffset, LocalResult, NaiveDate, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;
use serde::Deserialize;
use todo_core::recurrence::{Mode, Rule, next, occurrence, resolve_local};
use todo_core::task::Series;
use uuid::Uuid;

const VECTORS: &str = include_str!("vectors/recurrence.json");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    rule: String,
    tz: Tz,
    anchor: DateTime<FixedOffset>,
    #[serde(default)]
    anchor_index: u32,
    /// Skipped occurrences (EXDATE), passed to `next`.
    #[serde(default)]
    exdates: Vec<DateTime<FixedOffset>>,
    #[serde(default)]
    occurrences: Vec<OccurrenceCheck>,
    #[serde(default)]
    next: Option<NextCheck>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OccurrenceCheck {
    n: u32,
    expect: Option<DateTime<FixedOffset>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NextCheck {
    #[serde(default)]
    mode: Mode,
    index: u32,
    due: DateTime<FixedOffset>,
    completed_at: DateTime<Utc>,
    expect: Option<Expected>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    index: u32,
    due: DateTime<FixedOffset>,
}

/// Instant and offset, so a right instant with a wrong offset still fails.
fn show(t: Option<DateTime<FixedOffset>>) -> Option<String> {
    t.map(|t| t.to_rfc3339())
}

/// Checks one case; returns the problems found.
fn check(case: &Case) -> Vec<String> {
    let mut problems = Vec::new();
    let rule = match Rule::parse(&case.rule) {
        Ok(rule) => rule,
        Err(e) => return vec![format!("rule does not parse: {e}")],
    };
    if case.occurrences.is_empty() && case.next.is_none() {
        problems.push("case checks nothing (needs `occurrences` or `next`)".to_owned());
    }
    for check in &case.occurrences {
        match occurrence(&rule, case.tz, case.anchor, case.anchor_index, check.n) {
            Ok(actual) if show(actual) == show(check.expect) => {}
            Ok(actual) => problems.push(format!(
                "occurrence {}: expected {:?}, got {:?}",
                check.n,
                show(check.expect),
                show(actual)
            )),
            Err(e) => problems.push(format!("occurrence {}: error {e}", check.n)),
        }
    }
    if let Some(check) = &case.next {
        let series =
            Series { id: Uuid::nil(), index: check.index, anchor: case.anchor, anchor_index: case.anchor_index };
        match next(&rule, check.mode, case.tz, &series, check.due, check.completed_at, &case.exdates) {
            Err(e) => problems.push(format!("next: error {e}")),
            Ok(actual) => {
                let got = actual.map(|n| (n.index, n.due.to_rfc3339()));
                let want = check.expect.as_ref().map(|e| (e.index, e.due.to_rfc3339()));
                if got != want {
                    problems.push(format!("next: expected {want:?}, got {got:?}"));
                }
                if let Some(n) = actual {
                    // Where the new instance's series is anchored depends on the mode.
                    let (anchor, anchor_index) = match check.mode {
                        Mode::Strict => (case.anchor, case.anchor_index),
                        Mode::AfterCompletion => (n.due, n.index),
                    };
                    if (n.anchor.to_rfc3339(), n.anchor_index) != (anchor.to_rfc3339(), anchor_index) {
                        problems.push(format!(
                            "next: anchor should be {} #{anchor_index}, got {} #{}",
                            anchor.to_rfc3339(),
                            n.anchor.to_rfc3339(),
                            n.anchor_index
                        ));
                    }
                }
            }
        }
    }
    problems
}

#[test]
fn recurrence_vectors() {
    let cases: Vec<Case> = serde_json::from_str(VECTORS).expect("vectors/recurrence.json is valid");
    assert!(cases.len() >= 40, "expected at least 40 vectors, found {}", cases.len());
    let mut names = std::collections::BTreeSet::new();
    let mut failures = Vec::new();
    let mut failed_cases = 0;
    for case in &cases {
        assert!(names.insert(case.name.as_str()), "duplicate vector name {:?}", case.name);
        let problems = check(case);
        failed_cases += usize::from(!problems.is_empty());
        for problem in problems {
            failures.push(format!("[{}] {} ({} in {})", case.name, problem, case.rule, case.tz));
        }
    }
    assert!(
        failures.is_empty(),
        "{failed_cases} of {} recurrence vectors failed:\n{}",
        cases.len(),
        failures.join("\n")
    );
}

/// The runner must be able to fail: a wrong expectation is reported with the case's name.
#[test]
fn runner_reports_a_wrong_expectation() {
    let case: Case = serde_json::from_value(serde_json::json!({
        "name": "deliberately wrong",
        "rule": "FREQ=DAILY",
        "tz": "UTC",
        "anchor": "2026-06-01T09:00:00Z",
        "occurrences": [{ "n": 1, "expect": "2026-06-02T09:00:00+01:00" }],
        "next": { "index": 0, "due": "2026-06-01T09:00:00Z", "completed_at": "2026-06-01T10:00:00Z",
                  "expect": null }
    }))
    .unwrap();
    let problems = check(&case);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].starts_with("occurrence 1"), "{problems:?}");
    assert!(problems[1].starts_with("next"), "{problems:?}");
}

// ---------------------------------------------------------------------------------------------
// Properties

const ZONES: [&str; 7] = [
    "UTC",
    "America/New_York",
    "Europe/London",
    "Australia/Sydney",
    "Australia/Lord_Howe", // 30-minute DST shift
    "America/Santiago",    // DST changes at midnight
    "Asia/Kolkata",        // no DST, half-hour offset
];

fn rule_strategy() -> impl Strategy<Value = String> {
    let by_day = proptest::sample::subsequence(vec!["MO", "TU", "WE", "TH", "FR", "SA", "SU"], 0..=3);
    let month_day = proptest::sample::select(vec![0i8, 1, 15, 28, 29, 30, 31, -1]);
    (0..3usize, 1..=4u16, by_day, month_day).prop_map(|(freq, interval, days, month_day)| {
        let mut rule = match freq {
            0 => format!("FREQ=DAILY;INTERVAL={interval}"),
            1 => format!("FREQ=WEEKLY;INTERVAL={interval}"),
            _ => format!("FREQ=MONTHLY;INTERVAL={interval}"),
        };
        if freq == 1 && !days.is_empty() {
            rule.push_str(&format!(";BYDAY={}", days.join(",")));
        }
        if freq == 2 && month_day != 0 {
            rule.push_str(&format!(";BYMONTHDAY={month_day}"));
        }
        rule
    })
}

/// An anchor between 2000 and 2040, expressed in the zone's own offset, as stored tasks are.
fn anchor_strategy() -> impl Strategy<Value = (Tz, DateTime<FixedOffset>)> {
    (proptest::sample::select(ZONES.to_vec()), 946_684_800i64..2_208_988_800i64).prop_map(|(zone, secs)| {
        let tz: Tz = zone.parse().unwrap();
        let anchor = Utc.timestamp_opt(secs, 0).unwrap().with_timezone(&tz).fixed_offset();
        (tz, anchor)
    })
}

fn occurrences(rule: &Rule, tz: Tz, anchor: DateTime<FixedOffset>, len: u32) -> Vec<DateTime<FixedOffset>> {
    (0..len).map(|n| occurrence(rule, tz, anchor, 0, n).unwrap().expect("rule without end")).collect()
}

/// DST transitions in 2026 (zone, local date of the change): gaps and overlaps of one hour,
/// half an hour (Lord Howe) and at midnight (Santiago).
const TRANSITIONS: [(&str, &str); 10] = [
    ("America/New_York", "2026-03-08"),
    ("America/New_York", "2026-11-01"),
    ("Europe/London", "2026-03-29"),
    ("Europe/London", "2026-10-25"),
    ("Australia/Sydney", "2026-04-05"),
    ("Australia/Sydney", "2026-10-04"),
    ("Australia/Lord_Howe", "2026-04-05"),
    ("Australia/Lord_Howe", "2026-10-04"),
    ("America/Santiago", "2026-04-04"),
    ("America/Santiago", "2026-09-06"),
];

/// Whether `t` (not the anchor) is an instance of `rule` (one of [`rule_strategy`]'s shapes)
/// from `anchor`, checked on local dates without the engine: the interval divides the distance
/// in periods, the day is one the rule names, and the wall time is the anchor's (or later by a
/// DST gap that swallowed it).
fn matches_rule(rule: &str, tz: Tz, anchor: DateTime<FixedOffset>, t: DateTime<FixedOffset>) -> Result<(), String> {
    let part = |name: &str| rule.split(';').find_map(|p| p.strip_prefix(&format!("{name}=")).map(str::to_owned));
    let interval: i64 = part("INTERVAL").map_or(1, |i| i.parse().unwrap());
    let (a, l) = (anchor.with_timezone(&tz).naive_local(), t.with_timezone(&tz).naive_local());
    let (ad, ld) = (a.date(), l.date());
    let why = |what: &str| Err(format!("{t} ({l} local) is not on the rule's {what} for {rule} from {a}"));
    match part("FREQ").as_deref() {
        Some("DAILY") => {
            if (ld - ad).num_days() % interval != 0 {
                return why("days");
            }
        }
        Some("WEEKLY") => {
            let days: Vec<String> = part("BYDAY").map_or_else(
                || vec![format!("{:?}", ad.weekday()).to_uppercase()[..2].to_owned()],
                |d| d.split(',').map(str::to_owned).collect(),
            );
            if !days.contains(&format!("{:?}", ld.weekday()).to_uppercase()[..2].to_owned()) {
                return why("weekdays");
            }
            let monday = |d: NaiveDate| d - Duration::days(i64::from(d.weekday().num_days_from_monday()));
            if ((monday(ld) - monday(ad)).num_days() / 7) % interval != 0 {
                return why("weeks");
            }
        }
        _ => {
            let months = i64::from(ld.year() - ad.year()) * 12 + i64::from(ld.month()) - i64::from(ad.month());
            if months % interval != 0 {
                return why("months");
            }
            let last = NaiveDate::from_ymd_opt(ld.year(), ld.month(), 1)
                .and_then(|first| first.checked_add_months(chrono::Months::new(1)))
                .map(|next| (next - Duration::days(1)).day())
                .unwrap();
            let day = match part("BYMONTHDAY").as_deref() {
                None => ad.day(),
                Some("-1") => last,
                Some(d) => d.parse().unwrap(),
            };
            if ld.day() != day {
                return why("day of the month");
            }
        }
    }
    let wall = ld.and_time(a.time());
    let in_gap = matches!(tz.from_local_datetime(&wall), LocalResult::None);
    if l != wall && !(in_gap && l > wall && l - wall <= Duration::hours(1)) {
        return why("time of day");
    }
    Ok(())
}

/// The property below is only as good as its checker: it must refuse wrong instances.
#[test]
fn the_rule_checker_refuses_wrong_instances() {
    let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap();
    let monday = at("2026-06-01T09:00:00Z");
    let check = |rule: &str, t: &str| matches_rule(rule, Tz::UTC, monday, at(t));
    assert!(check("FREQ=DAILY;INTERVAL=2", "2026-06-02T09:00:00Z").is_err(), "interval");
    assert!(check("FREQ=WEEKLY;BYDAY=TU", "2026-06-03T09:00:00Z").is_err(), "weekday");
    assert!(check("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO", "2026-06-08T09:00:00Z").is_err(), "week interval");
    assert!(check("FREQ=MONTHLY;BYMONTHDAY=-1", "2026-06-29T09:00:00Z").is_err(), "last day");
    assert!(check("FREQ=DAILY", "2026-06-02T10:00:00Z").is_err(), "time of day");
    assert!(check("FREQ=MONTHLY;BYMONTHDAY=-1", "2026-06-30T09:00:00Z").is_ok());
    assert!(check("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH", "2026-06-18T09:00:00Z").is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn every_occurrence_matches_the_rule(rule in rule_strategy(), (tz, anchor) in anchor_strategy()) {
        let parsed = Rule::parse(&rule).unwrap();
        for t in occurrences(&parsed, tz, anchor, 16).into_iter().skip(1) {
            if let Err(why) = matches_rule(&rule, tz, anchor, t) {
                prop_assert!(false, "{}", why);
            }
        }
    }

    /// Occurrence n computed from the anchor is where n strict completions, each on time, lead.
    #[test]
    fn occurrence_n_from_the_anchor_equals_walking_n_steps(
        rule in rule_strategy(),
        (tz, anchor) in anchor_strategy(),
        n in 1u32..24,
    ) {
        let rule = Rule::parse(&rule).unwrap();
        let mut series = Series { id: Uuid::nil(), index: 0, anchor, anchor_index: 0 };
        let mut due = anchor;
        for _ in 0..n {
            let step = next(&rule, Mode::Strict, tz, &series, due, due.to_utc(), &[]).unwrap().unwrap();
            prop_assert_eq!(step.index, series.index + 1);
            series.index = step.index;
            due = step.due;
        }
        let direct = occurrence(&rule, tz, anchor, 0, n).unwrap().unwrap();
        prop_assert_eq!(direct.to_rfc3339(), due.to_rfc3339());
    }

    /// Daily series that cross a DST change keep their wall-clock time of day; only on a day
    /// where that time does not exist does the instance move forward (by the gap).
    #[test]
    fn daily_series_keep_their_wall_clock_time_across_dst(
        (zone, date) in proptest::sample::select(TRANSITIONS.to_vec()),
        days_before in 0i64..10,
        hour in proptest::sample::select(vec![0u32, 1, 2, 3, 22, 23]),
        minute in proptest::sample::select(vec![0u32, 15, 30, 45]),
        interval in 1i64..=2,
    ) {
        let tz: Tz = zone.parse().unwrap();
        let start = NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap() - Duration::days(days_before);
        let anchor = resolve_local(tz, start.and_hms_opt(hour, minute, 0).unwrap());
        let anchor_wall = anchor.with_timezone(&tz).naive_local();
        let rule = Rule::parse(&format!("FREQ=DAILY;INTERVAL={interval}")).unwrap();
        let occ = occurrences(&rule, tz, anchor, 16);
        for (k, t) in (0i64..).zip(&occ) {
            let wall = anchor_wall + Duration::days(k * interval);
            let actual_wall = t.with_timezone(&tz).naive_local();
            if matches!(tz.from_local_datetime(&wall), LocalResult::None) {
                prop_assert!(actual_wall > wall && actual_wall - wall <= Duration::hours(1),
                    "#{k}: {wall} is in a gap but became {t}");
            } else {
                prop_assert_eq!(actual_wall, wall, "#{} is {}", k, t);
            }
            prop_assert_eq!(t.to_rfc3339(), resolve_local(tz, wall).to_rfc3339());
        }
        for pair in occ.windows(2) {
            prop_assert!(pair[0] < pair[1], "{} then {}", pair[0], pair[1]);
        }
    }

    #[test]
    fn occurrences_strictly_increase_and_carry_the_zone_offset(
        rule in rule_strategy(),
        (tz, anchor) in anchor_strategy(),
    ) {
        let rule = Rule::parse(&rule).unwrap();
        let occ = occurrences(&rule, tz, anchor, 16);
        prop_assert_eq!(occ[0], anchor);
        for pair in occ.windows(2) {
            prop_assert!(pair[0] < pair[1], "{} then {}", pair[0], pair[1]);
        }
        for t in &occ {
            let offset = tz.offset_from_utc_datetime(&t.naive_utc()).fix();
            prop_assert_eq!(*t.offset(), offset, "{} has the wrong offset for {}", t, tz);
        }
    }

    #[test]
    fn strict_next_is_the_first_occurrence_after_due_and_completion(
        rule in rule_strategy(),
        (tz, anchor) in anchor_strategy(),
        index in 0u32..8,
        completed_after_due_minutes in -3 * 24 * 60i64..90 * 24 * 60,
    ) {
        let rule = Rule::parse(&rule).unwrap();
        let due = occurrence(&rule, tz, anchor, 0, index).unwrap().unwrap();
        let completed_at = due.to_utc() + Duration::minutes(completed_after_due_minutes);
        let series = Series { id: Uuid::nil(), index, anchor, anchor_index: 0 };
        let n = next(&rule, Mode::Strict, tz, &series, due, completed_at, &[]).unwrap().unwrap();
        prop_assert!(n.due > due, "next {} not after previous due {}", n.due, due);
        prop_assert!(n.due.to_utc() > completed_at, "next {} not after completion {}", n.due, completed_at);
        prop_assert!(n.index > index);
        prop_assert_eq!((n.anchor, n.anchor_index), (anchor, 0));
        // Consistent with `occurrence`, and nothing between was skipped that was still ahead.
        prop_assert_eq!(Some(n.due), occurrence(&rule, tz, anchor, 0, n.index).unwrap());
        if n.index > index + 1 {
            let before = occurrence(&rule, tz, anchor, 0, n.index - 1).unwrap().unwrap();
            prop_assert!(before.to_utc() <= completed_at.max(due.to_utc()));
        }
    }

    /// Skipping occurrences (EXDATE) never yields a skipped one, and yields the first
    /// occurrence that is not skipped of what the series would give without them.
    #[test]
    fn strict_next_passes_over_skipped_occurrences(
        rule in rule_strategy(),
        (tz, anchor) in anchor_strategy(),
        index in 0u32..4,
        skip in proptest::collection::btree_set(1u32..12, 0..6),
    ) {
        let rule = Rule::parse(&rule).unwrap();
        let due = occurrence(&rule, tz, anchor, 0, index).unwrap().unwrap();
        let skipped: Vec<_> =
            skip.iter().map(|n| occurrence(&rule, tz, anchor, 0, index + n).unwrap().unwrap()).collect();
        let series = Series { id: Uuid::nil(), index, anchor, anchor_index: 0 };
        let n = next(&rule, Mode::Strict, tz, &series, due, due.to_utc(), &skipped).unwrap().unwrap();
        let first_kept = (1..).find(|k| !skip.contains(k)).unwrap();
        prop_assert_eq!(n.index, index + first_kept);
        prop_assert_eq!(Some(n.due), occurrence(&rule, tz, anchor, 0, n.index).unwrap());
        prop_assert!(!skipped.contains(&n.due));
    }

    #[test]
    fn after_completion_next_is_after_the_completion(
        rule in rule_strategy(),
        (tz, anchor) in anchor_strategy(),
        index in 0u32..8,
        completed_after_anchor_minutes in 0i64..400 * 24 * 60,
    ) {
        let rule = Rule::parse(&rule).unwrap();
        let completed_at = anchor.to_utc() + Duration::minutes(completed_after_anchor_minutes);
        let series = Series { id: Uuid::nil(), index, anchor, anchor_index: 0 };
        let n = next(&rule, Mode::AfterCompletion, tz, &series, anchor, completed_at, &[]).unwrap().unwrap();
        prop_assert!(n.due.to_utc() > completed_at, "next {} not after completion {}", n.due, completed_at);
        prop_assert_eq!(n.index, index + 1);
        prop_assert_eq!((n.anchor, n.anchor_index), (n.due, n.index));
        // Not more than one period (plus the skipped short months/weeks) away.
        prop_assert!(n.due.to_utc() - completed_at < Duration::days(4 * 31 * 4 + 2));
    }
}
