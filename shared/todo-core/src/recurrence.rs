//! Recurrence engine: which due time the next instance of a recurring task gets.
//!
//! # Model
//!
//! A recurring task is a *series* of task instances. Each instance knows its place in the series
//! ([`Series`]): its occurrence `index`, and an *anchor* — the due time of occurrence
//! `anchor_index`. Occurrence `n` is always computed from the anchor by evaluating the rule, never
//! by adding an interval to the previous instance: chaining is what turns "monthly on the 31st"
//! into "the 28th forever" (Taskwarrior) or "the 3rd of March" (Vikunja), and what makes
//! "daily at 09:00" drift by an hour at every DST change. Because the index is part of the model,
//! the next instance's id can be derived from `(series id, index)`, so a duplicated completion
//! event creates it only once.
//!
//! # Wall-clock evaluation
//!
//! People mean "09:00 where I live", not "every 86 400 seconds". The rule is therefore evaluated
//! on local wall-clock time in the task's IANA zone: the anchor is converted to its local time in
//! that zone, the rule is expanded in a floating calendar with no DST (the `rrule` crate in UTC,
//! with the local wall time written as if it were UTC), and only then is each local time mapped
//! to an instant with [`resolve_local`]. A local time that falls into a DST gap moves forward by
//! the length of the gap, one that falls into an overlap takes the earlier instant (RFC 5545
//! §3.3.5, the Temporal/`whenever` default). Dates that do not exist (the 31st of a 30-day
//! month, Feb 29 in a common year) are skipped and not counted, as RFC 5545 requires.
//!
//! # Numbering and end conditions
//!
//! Occurrence `anchor_index` is the anchor itself — even if it does not match the rule, as
//! RFC 5545 counts DTSTART — and occurrences `anchor_index + 1, + 2, …` are the rule's instances
//! strictly after the anchor, in order. `COUNT` bounds the global index (occurrences
//! `0..COUNT` exist), `UNTIL` bounds the instant (an occurrence exists only if it is at or before
//! `UNTIL`).
//!
//! # Modes
//!
//! * [`Mode::Strict`] (org-mode `++`, Todoist `every`): the next instance is the first occurrence
//!   of the series after both the previous due time and the completion. Completing three periods
//!   late yields one next instance, not three, and the series keeps its anchor.
//! * [`Mode::AfterCompletion`] (org-mode `.+`, Todoist `every!`): the rule restarts on the day of
//!   the completion (in the task's zone, at the series' time of day); the result becomes the new
//!   anchor.
//!
//! # Skipped occurrences (EXDATE)
//!
//! A series may list instants to skip, as RFC 5545's EXDATE does. A skipped occurrence keeps its
//! index (COUNT still counts it, as in RFC 5545 where EXDATE is applied after COUNT), so the ids
//! of the other occurrences do not move; [`next`] simply passes over it. Skipped instants are
//! compared as instants, whatever offset they were written with.
//!
//! # Bounds
//!
//! Everything here is a pure function of its arguments (no clock reads, no I/O), and every walk
//! over a series is capped at [`MAX_STEPS`] occurrences: a rule with a tiny interval and an
//! ancient anchor must cost an error, not a CPU (Vikunja GHSA-r4fg-73rc-hhh7). Index arithmetic
//! is checked, never wrapping.

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, Duration, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone,
    Timelike, Utc, Weekday,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::task::Series;

/// The most occurrences a single call walks through before giving up with
/// [`RecurrenceError::TooManyIterations`]. A daily series reaches it after about 270 years.
pub const MAX_STEPS: u32 = 100_000;

/// The years (of local dates, and of the anchor and completion instants) the engine evaluates.
/// RFC 5545 dates have four digits, and the `rrule` crate's calendar arithmetic panics far
/// outside this range; a series simply ends at the end of year 9999.
pub const YEARS: RangeInclusive<i32> = 1..=9999;

/// Longest rule text accepted; real rules are a few dozen characters, and error messages echo
/// parts of the input.
pub const MAX_RULE_LEN: usize = 1024;

/// Largest `INTERVAL` accepted. Larger values are almost certainly mistakes, and keeping it small
/// keeps the `rrule` crate's month arithmetic far away from its limits.
pub const MAX_INTERVAL: u16 = 1000;

/// Largest `COUNT` accepted: a series longer than this is better expressed without an end.
pub const MAX_COUNT: u32 = 10_000;

/// The rule parts this engine understands, in their canonical order.
const SUPPORTED_PARTS: &str = "FREQ, INTERVAL, BYMONTH, BYMONTHDAY, BYDAY, BYSETPOS, WKST, COUNT, UNTIL";

/// How the next instance of a recurring task is placed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The next occurrence of the fixed schedule after the previous due time, skipping those
    /// already in the past at completion ("pay rent on the 1st").
    #[default]
    Strict,
    /// The schedule restarts from the day of completion ("water the plants 3 days after I last
    /// did").
    AfterCompletion,
}

/// `FREQ` values this engine supports. Sub-daily frequencies are rejected: a to-do list with a
/// task every minute is a denial of service, not a use case, and the time of day always comes
/// from the task's due time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Frequency {
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl Frequency {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Daily => "DAILY",
            Self::Weekly => "WEEKLY",
            Self::Monthly => "MONTHLY",
            Self::Yearly => "YEARLY",
        }
    }

    fn to_rrule(self) -> rrule::Frequency {
        match self {
            Self::Daily => rrule::Frequency::Daily,
            Self::Weekly => rrule::Frequency::Weekly,
            Self::Monthly => rrule::Frequency::Monthly,
            Self::Yearly => rrule::Frequency::Yearly,
        }
    }

    /// Largest `|n|` of a `BYSETPOS` value for this frequency. Mirrors the `rrule` crate's
    /// validator so that a rule accepted here is never rejected at evaluation time.
    fn max_set_pos(self) -> i16 {
        match self {
            Self::Daily | Self::Yearly => 366,
            Self::Monthly => 31,
            Self::Weekly => 53,
        }
    }

    /// Accepted range of a `BYDAY` ordinal (`2MO`, `-1FR`) for this frequency, mirroring the
    /// `rrule` crate's validator (which, unlike RFC 5545, stops at -4 for MONTHLY and -52 for
    /// YEARLY). `None`: ordinals are not allowed (RFC 5545: only MONTHLY and YEARLY).
    fn by_day_ordinal_range(self) -> Option<(i8, i8)> {
        match self {
            Self::Daily | Self::Weekly => None,
            Self::Monthly => Some((-4, 5)),
            Self::Yearly => Some((-52, 53)),
        }
    }
}

impl fmt::Display for Frequency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `BYDAY` entry: a weekday, optionally with an ordinal within the month or year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ByDay {
    ordinal: Option<i8>,
    weekday: Weekday,
}

impl ByDay {
    /// Canonical order: by weekday (Monday first), then plain before negative before positive
    /// ordinals.
    fn sort_key(self) -> (u32, Option<i8>) {
        (self.weekday.num_days_from_monday(), self.ordinal)
    }
}

impl fmt::Display for ByDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = self.ordinal {
            write!(f, "{n}")?;
        }
        f.write_str(weekday_str(self.weekday))
    }
}

/// A validated RFC 5545 RRULE without DTSTART (the task's due time is the start).
///
/// Lists are sorted and deduplicated and defaults are normalised (`INTERVAL=1`, `WKST=MO`), so
/// two rules that mean the same schedule compare equal and print the same canonical text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    freq: Frequency,
    interval: u16,
    by_month: Vec<u8>,
    by_month_day: Vec<i8>,
    by_day: Vec<ByDay>,
    by_set_pos: Vec<i16>,
    week_start: Weekday,
    count: Option<u32>,
    until: Option<DateTime<Utc>>,
}

/// Why a rule text was rejected. `part` names the offending rule part (`FREQ`, `BYDAY`, …, or
/// `RRULE` for the text as a whole) so an API can point the user at it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{part}: {message}")]
pub struct RuleError {
    pub part: String,
    pub message: String,
}

fn rule_err(part: &str, message: impl Into<String>) -> RuleError {
    RuleError { part: part.to_owned(), message: message.into() }
}

/// Why evaluating a (valid) rule failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecurrenceError {
    /// The walk from the anchor needed more than the cap; the payload is the cap.
    #[error("evaluating the rule needed more than {0} iterations")]
    TooManyIterations(u32),
    /// An occurrence index would not fit in a `u32`.
    #[error("occurrence index overflows")]
    IndexOverflow,
    /// The anchor, the completion time or the local date evaluation would start from lies
    /// outside [`YEARS`]; the payload names which.
    #[error("the {0} is outside the years 1 to 9999 that recurrence supports")]
    OutOfRange(&'static str),
    /// The `rrule` crate refused the rule for this anchor. [`Rule::parse`] validates against the
    /// same checks, so this indicates a bug rather than bad input.
    #[error("the recurrence engine rejected the rule: {0}")]
    Engine(String),
}

/// The next instance of a series, as computed by [`next`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Next {
    /// Occurrence index of the new instance (its id derives from the series id and this).
    pub index: u32,
    /// Its due time, with the zone's actual UTC offset at that instant.
    pub due: DateTime<FixedOffset>,
    /// The anchor the new instance's [`Series`] carries.
    pub anchor: DateTime<FixedOffset>,
    /// The index of `anchor`.
    pub anchor_index: u32,
}

impl Rule {
    /// Parses RRULE text (`FREQ=MONTHLY;BYDAY=-1FR`, optionally prefixed with `RRULE:`; part
    /// names and values are case-insensitive).
    ///
    /// Everything that could make evaluation fail later is rejected here, with the offending
    /// part named: a rule that parses can always be evaluated.
    pub fn parse(s: &str) -> Result<Rule, RuleError> {
        let text = s.trim();
        if text.len() > MAX_RULE_LEN {
            return Err(rule_err("RRULE", format!("longer than {MAX_RULE_LEN} characters")));
        }
        let body = match text.get(..6) {
            Some(prefix) if prefix.eq_ignore_ascii_case("RRULE:") => &text[6..],
            _ => text,
        };
        // A trailing `;` is common in generated rules and harmless.
        let body = body.strip_suffix(';').unwrap_or(body);
        if body.is_empty() {
            return Err(rule_err("RRULE", "empty rule; expected at least FREQ=DAILY, WEEKLY, MONTHLY or YEARLY"));
        }

        let raw = RawParts::split(body)?;
        let freq_text = raw
            .freq
            .ok_or_else(|| rule_err("FREQ", "missing; every rule needs FREQ=DAILY, WEEKLY, MONTHLY or YEARLY"))?;
        let freq = parse_freq(freq_text)?;

        let interval = match raw.interval {
            None => 1,
            Some(v) => {
                let n = parse_int("INTERVAL", v, false)?;
                if !(1..=i64::from(MAX_INTERVAL)).contains(&n) {
                    return Err(rule_err("INTERVAL", format!("must be between 1 and {MAX_INTERVAL}, got {n}")));
                }
                u16::try_from(n).map_err(|_| rule_err("INTERVAL", "out of range"))?
            }
        };

        let mut by_month = Vec::new();
        if let Some(v) = raw.by_month {
            for item in split_list("BYMONTH", v)? {
                let n = parse_int("BYMONTH", item, false)?;
                let month = u8::try_from(n)
                    .ok()
                    .filter(|m| (1..=12).contains(m))
                    .ok_or_else(|| rule_err("BYMONTH", format!("must be 1 to 12, got {item}")))?;
                by_month.push(month);
            }
        }
        by_month.sort_unstable();
        by_month.dedup();

        let mut by_month_day = Vec::new();
        if let Some(v) = raw.by_month_day {
            if freq == Frequency::Weekly {
                return Err(rule_err("BYMONTHDAY", "must not be used with FREQ=WEEKLY (RFC 5545)"));
            }
            for item in split_list("BYMONTHDAY", v)? {
                let n = parse_int("BYMONTHDAY", item, true)?;
                let day = i8::try_from(n)
                    .ok()
                    .filter(|d| *d != 0 && (-31..=31).contains(d))
                    .ok_or_else(|| rule_err("BYMONTHDAY", format!("must be 1 to 31 or -31 to -1, got {item}")))?;
                by_month_day.push(day);
            }
        }
        by_month_day.sort_unstable();
        by_month_day.dedup();

        let mut by_day = Vec::new();
        if let Some(v) = raw.by_day {
            for item in split_list("BYDAY", v)? {
                by_day.push(parse_by_day(freq, item)?);
            }
        }
        by_day.sort_unstable_by_key(|d| d.sort_key());
        by_day.dedup();

        let mut by_set_pos = Vec::new();
        if let Some(v) = raw.by_set_pos {
            if by_month.is_empty() && by_month_day.is_empty() && by_day.is_empty() {
                return Err(rule_err("BYSETPOS", "must be used together with BYDAY, BYMONTHDAY or BYMONTH (RFC 5545)"));
            }
            let max = freq.max_set_pos();
            for item in split_list("BYSETPOS", v)? {
                let n = parse_int("BYSETPOS", item, true)?;
                let pos = i16::try_from(n).ok().filter(|p| *p != 0 && (-max..=max).contains(p)).ok_or_else(|| {
                    rule_err("BYSETPOS", format!("must be 1 to {max} or -{max} to -1 with FREQ={freq}, got {item}"))
                })?;
                by_set_pos.push(pos);
            }
        }
        by_set_pos.sort_unstable();
        by_set_pos.dedup();

        let week_start = match raw.week_start {
            None => Weekday::Mon,
            Some(v) => parse_weekday(&v.to_ascii_uppercase())
                .ok_or_else(|| rule_err("WKST", format!("expected one of MO, TU, WE, TH, FR, SA, SU, got {v:?}")))?,
        };

        let count = match raw.count {
            None => None,
            Some(v) => {
                let n = parse_int("COUNT", v, false)?;
                if !(1..=i64::from(MAX_COUNT)).contains(&n) {
                    return Err(rule_err("COUNT", format!("must be between 1 and {MAX_COUNT}, got {n}")));
                }
                Some(u32::try_from(n).map_err(|_| rule_err("COUNT", "out of range"))?)
            }
        };

        let until = raw.until.map(parse_until).transpose()?;
        if count.is_some() && until.is_some() {
            return Err(rule_err("UNTIL", "COUNT and UNTIL must not both be given (RFC 5545); use one end condition"));
        }

        if !by_month.is_empty() && !by_month_day.is_empty() {
            // A rule like "Feb 30" parses but never produces a date; the engine would search for
            // one until its limits. Reject the common mistake up front (BYDAY only narrows the
            // days further when BYMONTHDAY is present).
            let possible = by_month.iter().any(|m| {
                let days = max_days_in_month(*m);
                by_month_day.iter().any(|d| d.unsigned_abs() <= days)
            });
            if !possible {
                return Err(rule_err(
                    "BYMONTHDAY",
                    "no listed day exists in any month listed in BYMONTH, so the rule never occurs",
                ));
            }
        }

        let rule = Rule { freq, interval, by_month, by_month_day, by_day, by_set_pos, week_start, count, until };
        // Belt and braces: the checks above mirror the `rrule` crate's validator; confirm it
        // agrees so that evaluation can never fail on a parsed rule. Its checks do not depend on
        // DTSTART once UNTIL and COUNT are left out (we apply those ourselves).
        rule.to_rrule()
            .validate(rrule::Tz::UTC.from_utc_datetime(&NaiveDateTime::default()))
            .map_err(|e| rule_err("RRULE", e.to_string()))?;
        Ok(rule)
    }

    pub fn freq(&self) -> Frequency {
        self.freq
    }

    pub fn interval(&self) -> u16 {
        self.interval
    }

    /// `COUNT`: the series has occurrences `0..count`.
    pub fn count(&self) -> Option<u32> {
        self.count
    }

    /// `UNTIL`: no occurrence after this instant (a DATE value means the end of that UTC day).
    pub fn until(&self) -> Option<DateTime<Utc>> {
        self.until
    }

    /// The rule for the `rrule` crate, without COUNT and UNTIL: those are applied here, to the
    /// global occurrence index and to the resolved instant, which the crate cannot know about.
    fn to_rrule(&self) -> rrule::RRule<rrule::Unvalidated> {
        let mut r = rrule::RRule::new(self.freq.to_rrule()).interval(self.interval).week_start(self.week_start);
        if !self.by_month.is_empty() {
            let months: Vec<chrono::Month> =
                self.by_month.iter().filter_map(|m| chrono::Month::try_from(*m).ok()).collect();
            r = r.by_month(&months);
        }
        if !self.by_month_day.is_empty() {
            r = r.by_month_day(self.by_month_day.clone());
        }
        if !self.by_day.is_empty() {
            r = r.by_weekday(
                self.by_day.iter().map(|d| rrule::NWeekday::new(d.ordinal.map(i16::from), d.weekday)).collect(),
            );
        }
        if !self.by_set_pos.is_empty() {
            r = r.by_set_pos(self.by_set_pos.iter().map(|p| i32::from(*p)).collect());
        }
        r
    }
}

impl FromStr for Rule {
    type Err = RuleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Rule::parse(s)
    }
}

/// Canonical text: `FREQ` first, then `INTERVAL`, `BYMONTH`, `BYMONTHDAY`, `BYDAY`, `BYSETPOS`,
/// `WKST`, `COUNT`, `UNTIL`; defaults omitted; `UNTIL` always as `YYYYMMDDTHHMMSSZ`.
impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn list<T: fmt::Display>(f: &mut fmt::Formatter<'_>, name: &str, items: &[T]) -> fmt::Result {
            if items.is_empty() {
                return Ok(());
            }
            write!(f, ";{name}=")?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                write!(f, "{item}")?;
            }
            Ok(())
        }
        write!(f, "FREQ={}", self.freq)?;
        if self.interval != 1 {
            write!(f, ";INTERVAL={}", self.interval)?;
        }
        list(f, "BYMONTH", &self.by_month)?;
        list(f, "BYMONTHDAY", &self.by_month_day)?;
        list(f, "BYDAY", &self.by_day)?;
        list(f, "BYSETPOS", &self.by_set_pos)?;
        if self.week_start != Weekday::Mon {
            write!(f, ";WKST={}", weekday_str(self.week_start))?;
        }
        if let Some(count) = self.count {
            write!(f, ";COUNT={count}")?;
        }
        if let Some(until) = self.until {
            write!(f, ";UNTIL={}", until.format("%Y%m%dT%H%M%SZ"))?;
        }
        Ok(())
    }
}

impl Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Rule::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The raw values of the supported parts, before interpretation.
#[derive(Default)]
struct RawParts<'a> {
    freq: Option<&'a str>,
    interval: Option<&'a str>,
    by_month: Option<&'a str>,
    by_month_day: Option<&'a str>,
    by_day: Option<&'a str>,
    by_set_pos: Option<&'a str>,
    week_start: Option<&'a str>,
    count: Option<&'a str>,
    until: Option<&'a str>,
}

impl<'a> RawParts<'a> {
    /// Splits `NAME=VALUE;…`, rejecting malformed, duplicate and unsupported parts (in input
    /// order, so the first problem is the one reported).
    fn split(body: &'a str) -> Result<Self, RuleError> {
        let mut raw = RawParts::default();
        for segment in body.split(';') {
            let (name, value) = segment.split_once('=').unwrap_or((segment, ""));
            let name = name.to_ascii_uppercase();
            let well_formed = !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && segment.contains('=');
            if !well_formed {
                if name.starts_with("DTSTART") {
                    return Err(dtstart_err());
                }
                return Err(rule_err(
                    "RRULE",
                    format!("malformed part {:?}; expected NAME=VALUE separated by ';'", shorten(segment)),
                ));
            }
            let slot = match name.as_str() {
                "FREQ" => &mut raw.freq,
                "INTERVAL" => &mut raw.interval,
                "BYMONTH" => &mut raw.by_month,
                "BYMONTHDAY" => &mut raw.by_month_day,
                "BYDAY" => &mut raw.by_day,
                "BYSETPOS" => &mut raw.by_set_pos,
                "WKST" => &mut raw.week_start,
                "COUNT" => &mut raw.count,
                "UNTIL" => &mut raw.until,
                "BYHOUR" | "BYMINUTE" | "BYSECOND" => {
                    return Err(rule_err(
                        &name,
                        "not supported: the time of day of every occurrence is the time of day of the task's due time",
                    ));
                }
                "DTSTART" => return Err(dtstart_err()),
                "BYWEEKNO" | "BYYEARDAY" => {
                    return Err(rule_err(&name, format!("not supported; supported parts are {SUPPORTED_PARTS}")));
                }
                _ => {
                    return Err(rule_err(
                        &shorten(&name),
                        format!("unknown rule part, not supported; supported parts are {SUPPORTED_PARTS}"),
                    ));
                }
            };
            if slot.is_some() {
                return Err(rule_err(&name, "given more than once"));
            }
            *slot = Some(value);
        }
        Ok(raw)
    }
}

fn dtstart_err() -> RuleError {
    rule_err("DTSTART", "not supported inside the rule: the series starts at the task's due time")
}

/// Keeps echoed input short in error messages.
fn shorten(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head}…")
    }
}

fn parse_freq(v: &str) -> Result<Frequency, RuleError> {
    match v.to_ascii_uppercase().as_str() {
        "DAILY" => Ok(Frequency::Daily),
        "WEEKLY" => Ok(Frequency::Weekly),
        "MONTHLY" => Ok(Frequency::Monthly),
        "YEARLY" => Ok(Frequency::Yearly),
        other @ ("HOURLY" | "MINUTELY" | "SECONDLY") => Err(rule_err(
            "FREQ",
            format!("{other} is not supported; supported frequencies are DAILY, WEEKLY, MONTHLY and YEARLY"),
        )),
        _ => Err(rule_err(
            "FREQ",
            format!("unknown frequency {:?}; supported frequencies are DAILY, WEEKLY, MONTHLY and YEARLY", shorten(v)),
        )),
    }
}

/// An RFC 5545 integer: optional sign (only where `signed`), then 1 to 9 ASCII digits. Stricter
/// than `str::parse`, which would also take `+` for unsigned parts.
fn parse_int(part: &str, v: &str, signed: bool) -> Result<i64, RuleError> {
    let digits = match v.strip_prefix(['+', '-']) {
        Some(rest) if signed => rest,
        _ => v,
    };
    if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(rule_err(part, format!("expected an integer, got {:?}", shorten(v))));
    }
    v.parse::<i64>().map_err(|_| rule_err(part, format!("expected an integer, got {:?}", shorten(v))))
}

fn split_list<'a>(part: &str, v: &'a str) -> Result<Vec<&'a str>, RuleError> {
    let items: Vec<&str> = v.split(',').collect();
    if items.iter().any(|i| i.is_empty()) {
        return Err(rule_err(part, format!("expected a comma-separated list, got {:?}", shorten(v))));
    }
    Ok(items)
}

fn parse_weekday(s: &str) -> Option<Weekday> {
    match s {
        "MO" => Some(Weekday::Mon),
        "TU" => Some(Weekday::Tue),
        "WE" => Some(Weekday::Wed),
        "TH" => Some(Weekday::Thu),
        "FR" => Some(Weekday::Fri),
        "SA" => Some(Weekday::Sat),
        "SU" => Some(Weekday::Sun),
        _ => None,
    }
}

fn weekday_str(w: Weekday) -> &'static str {
    match w {
        Weekday::Mon => "MO",
        Weekday::Tue => "TU",
        Weekday::Wed => "WE",
        Weekday::Thu => "TH",
        Weekday::Fri => "FR",
        Weekday::Sat => "SA",
        Weekday::Sun => "SU",
    }
}

/// `BYDAY` item: `[+|-][n]XX`.
fn parse_by_day(freq: Frequency, item: &str) -> Result<ByDay, RuleError> {
    let upper = item.to_ascii_uppercase();
    let bad = || {
        rule_err(
            "BYDAY",
            format!(
                "expected a weekday (MO, TU, WE, TH, FR, SA, SU), optionally with an ordinal like 2MO or -1FR, got {:?}",
                shorten(item)
            ),
        )
    };
    let split = upper.len().checked_sub(2).filter(|i| upper.is_char_boundary(*i)).ok_or_else(bad)?;
    let (ordinal_text, day_text) = upper.split_at(split);
    let weekday = parse_weekday(day_text).ok_or_else(bad)?;
    if ordinal_text.is_empty() {
        return Ok(ByDay { ordinal: None, weekday });
    }
    let n = parse_int("BYDAY", ordinal_text, true).map_err(|_| bad())?;
    let Some((lo, hi)) = freq.by_day_ordinal_range() else {
        return Err(rule_err("BYDAY", format!("an ordinal like {item} needs FREQ=MONTHLY or FREQ=YEARLY (RFC 5545)")));
    };
    let ordinal = i8::try_from(n).ok().filter(|o| *o != 0 && (lo..=hi).contains(o)).ok_or_else(|| {
        rule_err("BYDAY", format!("ordinal of {item} must be 1 to {hi} or {lo} to -1 with FREQ={freq}"))
    })?;
    Ok(ByDay { ordinal: Some(ordinal), weekday })
}

/// `UNTIL`: `YYYYMMDDTHHMMSSZ` (UTC) or a DATE `YYYYMMDD`, meaning the end of that UTC day. A
/// floating local time is refused: the rule does not know the task's zone, and guessing would
/// silently end a series an offset's worth of hours early or late.
fn parse_until(v: &str) -> Result<DateTime<Utc>, RuleError> {
    let upper = v.to_ascii_uppercase();
    let bad = || {
        rule_err(
            "UNTIL",
            format!("expected a UTC date-time like 20261231T235959Z or a date like 20261231, got {:?}", shorten(v)),
        )
    };
    let num = |s: &str| -> Result<u32, RuleError> {
        if s.bytes().all(|b| b.is_ascii_digit()) { s.parse().map_err(|_| bad()) } else { Err(bad()) }
    };
    let field = |range: std::ops::Range<usize>| upper.get(range).ok_or_else(bad).and_then(num);
    let date = || -> Result<NaiveDate, RuleError> {
        let year = i32::try_from(field(0..4)?).map_err(|_| bad())?;
        NaiveDate::from_ymd_opt(year, field(4..6)?, field(6..8)?).ok_or_else(bad)
    };
    match upper.len() {
        8 => {
            let end_of_day = NaiveTime::from_hms_opt(23, 59, 59).ok_or_else(bad)?;
            Ok(date()?.and_time(end_of_day).and_utc())
        }
        16 if upper.as_bytes()[8] == b'T' && upper.ends_with('Z') => {
            let time = NaiveTime::from_hms_opt(field(9..11)?, field(11..13)?, field(13..15)?).ok_or_else(bad)?;
            Ok(date()?.and_time(time).and_utc())
        }
        15 if upper.as_bytes()[8] == b'T' => Err(rule_err(
            "UNTIL",
            "a floating local time is not supported; give it in UTC with a trailing Z, or as a date",
        )),
        _ => Err(bad()),
    }
}

/// The most days month `m` can have (February counts 29: a leap year will come).
fn max_days_in_month(m: u8) -> u8 {
    match m {
        2 => 29,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Maps a local wall-clock time in `tz` to an instant, carrying the zone's actual offset.
///
/// A time that does not exist (skipped by a DST gap) moves forward by the length of the gap:
/// it is read with the offset in force just before the gap, as RFC 5545 §3.3.5 prescribes, so
/// 02:30 on a spring-forward day in New York becomes 03:30 EDT. A time that exists twice (DST
/// overlap) takes the earlier instant, so a reminder never fires an hour late.
pub fn resolve_local(tz: Tz, local: NaiveDateTime) -> DateTime<FixedOffset> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(dt) => dt.fixed_offset(),
        LocalResult::Ambiguous(a, b) => {
            if a <= b {
                a.fixed_offset()
            } else {
                b.fixed_offset()
            }
        }
        LocalResult::None => {
            // The offset in force a day earlier is the one before the gap: transitions are never
            // a day apart, and no offset exceeds ±14 h.
            let shifted = local
                .checked_sub_signed(Duration::days(1))
                .map(|day_before| tz.offset_from_utc_datetime(&day_before).fix())
                .and_then(|before| local.checked_sub_signed(Duration::seconds(i64::from(before.local_minus_utc()))))
                .map(|instant_utc| tz.from_utc_datetime(&instant_utc).fixed_offset());
            // Only reachable at the very ends of chrono's range, where no zone has transitions.
            shifted.unwrap_or_else(|| local.and_utc().fixed_offset())
        }
    }
}

/// The rule's local wall times strictly after `start`, in order, in a floating (DST-free)
/// calendar, with `start` itself excluded. Counts what it produces so no caller can walk past
/// [`MAX_STEPS`].
struct LocalWalk {
    iter: rrule::RRuleSetIter,
    start: NaiveDateTime,
    /// Sub-second part of `start`: the `rrule` crate works in whole seconds, so it is removed
    /// before and added back to every instance to keep the series' exact time of day.
    nanos: i64,
    produced: u32,
    pulled: u32,
}

impl LocalWalk {
    fn new(rule: &Rule, start: NaiveDateTime) -> Result<Self, RecurrenceError> {
        if !YEARS.contains(&start.year()) {
            return Err(RecurrenceError::OutOfRange("local start date"));
        }
        let nanos = start.nanosecond();
        let whole = start.with_nanosecond(0).unwrap_or(start);
        let dt_start = rrule::Tz::UTC.from_utc_datetime(&whole);
        let validated = rule.to_rrule().validate(dt_start).map_err(|e| RecurrenceError::Engine(e.to_string()))?;
        // `limit()` bounds the crate's own search for the next instance (100 000 periods), so a
        // rule whose remaining instances are out of reach ends instead of spinning.
        let set = rrule::RRuleSet::new(dt_start).rrule(validated).limit();
        Ok(Self { iter: (&set).into_iter(), start, nanos: i64::from(nanos), produced: 0, pulled: 0 })
    }

    fn next_local(&mut self) -> Result<Option<NaiveDateTime>, RecurrenceError> {
        loop {
            if self.produced >= MAX_STEPS || self.pulled > MAX_STEPS {
                return Err(RecurrenceError::TooManyIterations(MAX_STEPS));
            }
            self.pulled += 1;
            let Some(instance) = self.iter.next() else {
                return Ok(None);
            };
            let Some(local) = instance.naive_utc().checked_add_signed(Duration::nanoseconds(self.nanos)) else {
                return Ok(None);
            };
            if local.year() > *YEARS.end() {
                return Ok(None);
            }
            if local > self.start {
                self.produced += 1;
                return Ok(Some(local));
            }
        }
    }
}

/// The occurrences of a series, `(index, instant)`, starting with the anchor, ending where
/// COUNT or UNTIL end the series.
struct Occurrences {
    tz: Tz,
    walk: LocalWalk,
    /// The anchor, until it has been yielded.
    pending_anchor: Option<DateTime<FixedOffset>>,
    next_index: Option<u32>,
    count: Option<u32>,
    until: Option<DateTime<Utc>>,
    ended: bool,
}

impl Occurrences {
    fn new(rule: &Rule, tz: Tz, anchor: DateTime<FixedOffset>, anchor_index: u32) -> Result<Self, RecurrenceError> {
        let anchor_local = in_zone(anchor.to_utc(), tz, "anchor")?;
        Ok(Self {
            tz,
            walk: LocalWalk::new(rule, anchor_local.naive_local())?,
            pending_anchor: Some(anchor_local.fixed_offset()),
            next_index: Some(anchor_index),
            count: rule.count,
            until: rule.until,
            ended: false,
        })
    }

    fn next_occurrence(&mut self) -> Result<Option<(u32, DateTime<FixedOffset>)>, RecurrenceError> {
        if self.ended {
            return Ok(None);
        }
        let index = self.next_index.ok_or(RecurrenceError::IndexOverflow)?;
        if self.count.is_some_and(|count| index >= count) {
            self.ended = true;
            return Ok(None);
        }
        let at = match self.pending_anchor.take() {
            Some(anchor) => anchor,
            None => match self.walk.next_local()? {
                Some(local) => resolve_local(self.tz, local),
                None => {
                    self.ended = true;
                    return Ok(None);
                }
            },
        };
        // Instances come in increasing order, so the first one past UNTIL ends the series.
        if self.until.is_some_and(|until| at.to_utc() > until) {
            self.ended = true;
            return Ok(None);
        }
        self.next_index = index.checked_add(1);
        Ok(Some((index, at)))
    }
}

/// `t` in `tz`, refusing instants outside [`YEARS`] (whose local time might not even be
/// representable).
fn in_zone(t: DateTime<Utc>, tz: Tz, what: &'static str) -> Result<DateTime<Tz>, RecurrenceError> {
    if YEARS.contains(&t.year()) { Ok(t.with_timezone(&tz)) } else { Err(RecurrenceError::OutOfRange(what)) }
}

/// Occurrence `n` of the series whose occurrence `anchor_index` is `anchor`, or `None` if it
/// does not exist (`n < anchor_index`, or the series has ended by then).
pub fn occurrence(
    rule: &Rule,
    tz: Tz,
    anchor: DateTime<FixedOffset>,
    anchor_index: u32,
    n: u32,
) -> Result<Option<DateTime<FixedOffset>>, RecurrenceError> {
    if n < anchor_index || rule.count.is_some_and(|count| n >= count) {
        return Ok(None);
    }
    // Fail fast rather than walk 100 000 steps to find out.
    if n - anchor_index > MAX_STEPS {
        return Err(RecurrenceError::TooManyIterations(MAX_STEPS));
    }
    let mut occurrences = Occurrences::new(rule, tz, anchor, anchor_index)?;
    while let Some((index, at)) = occurrences.next_occurrence()? {
        if index == n {
            return Ok(Some(at));
        }
    }
    Ok(None)
}

/// The first of `instants` that is not an occurrence of the series (after the anchor), or `None`
/// when all of them are. Instants at or before the anchor are not checked: they belong to the
/// series' past, which an edit re-anchors away from. One bounded walk for all of them.
pub fn first_non_occurrence(
    rule: &Rule,
    tz: Tz,
    anchor: DateTime<FixedOffset>,
    anchor_index: u32,
    instants: &[DateTime<FixedOffset>],
) -> Result<Option<DateTime<FixedOffset>>, RecurrenceError> {
    let mut wanted: Vec<DateTime<Utc>> =
        instants.iter().map(DateTime::to_utc).filter(|at| *at > anchor.to_utc()).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let mut wanted = wanted.into_iter().peekable();
    let mut occurrences = Occurrences::new(rule, tz, anchor, anchor_index)?;
    while let Some(&at) = wanted.peek() {
        match occurrences.next_occurrence()? {
            Some((_, occurrence)) if occurrence.to_utc() < at => {}
            Some((_, occurrence)) if occurrence.to_utc() == at => {
                wanted.next();
            }
            _ => break,
        }
    }
    let missing = wanted.next();
    Ok(missing.and_then(|at| instants.iter().copied().find(|i| i.to_utc() == at)))
}

/// The instance that follows instance `series.index` (due at `due`) completed at
/// `completed_at`, or `None` if the series has ended.
///
/// * [`Mode::Strict`]: the first occurrence with an index above `series.index` that is strictly
///   after both `completed_at` and `due`. Missed periods are skipped, so a late completion
///   yields one instance that is not already overdue; requiring it to be after `due` as well
///   keeps a series moving forward even if this instance's due time was edited by hand. The
///   series keeps its anchor.
/// * [`Mode::AfterCompletion`]: the rule restarts at `base` = the local date of `completed_at`
///   in `tz` at the series' local time of day; the next due is the rule's first instance
///   strictly after `base` when `base` is the start (so "every 3 days" completed on Tuesday,
///   at any hour, is due Friday). The index is `series.index + 1` and the result becomes the
///   new anchor, since later occurrences must count from it.
///
/// `COUNT` limits the index and `UNTIL` the instant in both modes; occurrences at an instant in
/// `skipped` (EXDATE) are passed over in both.
pub fn next(
    rule: &Rule,
    mode: Mode,
    tz: Tz,
    series: &Series,
    due: DateTime<FixedOffset>,
    completed_at: DateTime<Utc>,
    skipped: &[DateTime<FixedOffset>],
) -> Result<Option<Next>, RecurrenceError> {
    let is_skipped = |at: DateTime<FixedOffset>| skipped.contains(&at);
    let index = series.index.checked_add(1).ok_or(RecurrenceError::IndexOverflow)?;
    if rule.count.is_some_and(|count| index >= count) {
        return Ok(None);
    }
    match mode {
        Mode::Strict => {
            let after = completed_at.max(due.to_utc());
            let mut occurrences = Occurrences::new(rule, tz, series.anchor, series.anchor_index)?;
            while let Some((k, at)) = occurrences.next_occurrence()? {
                if k > series.index && at.to_utc() > after && !is_skipped(at) {
                    return Ok(Some(Next {
                        index: k,
                        due: at,
                        anchor: series.anchor,
                        anchor_index: series.anchor_index,
                    }));
                }
            }
            Ok(None)
        }
        Mode::AfterCompletion => {
            let time_of_day = in_zone(series.anchor.to_utc(), tz, "anchor")?.time();
            let base = in_zone(completed_at, tz, "completion time")?.date_naive().and_time(time_of_day);
            let mut walk = LocalWalk::new(rule, base)?;
            loop {
                let Some(local) = walk.next_local()? else {
                    return Ok(None);
                };
                let due = resolve_local(tz, local);
                if rule.until.is_some_and(|until| due.to_utc() > until) {
                    return Ok(None);
                }
                if !is_skipped(due) {
                    return Ok(Some(Next { index, due, anchor: due, anchor_index: index }));
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn parse_err(s: &str) -> RuleError {
        Rule::parse(s).expect_err(s)
    }

    fn at(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    fn local(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").unwrap()
    }

    /// Same instant *and* same offset (`DateTime`'s `==` only compares instants).
    fn assert_same(actual: DateTime<FixedOffset>, expected: &str) {
        assert_eq!(actual.to_rfc3339(), at(expected).to_rfc3339());
    }

    #[test]
    fn parses_all_supported_parts() {
        let rule = Rule::parse(
            "rrule:freq=monthly;interval=2;bymonth=1,7;bymonthday=-1,15;byday=mo,2tu,-1fr;bysetpos=1,-1;wkst=su;count=10",
        )
        .unwrap();
        assert_eq!(rule.freq(), Frequency::Monthly);
        assert_eq!(rule.interval(), 2);
        assert_eq!(rule.count(), Some(10));
        assert_eq!(rule.until(), None);
        assert_eq!(
            rule.to_string(),
            "FREQ=MONTHLY;INTERVAL=2;BYMONTH=1,7;BYMONTHDAY=-1,15;BYDAY=MO,2TU,-1FR;BYSETPOS=-1,1;WKST=SU;COUNT=10"
        );
    }

    #[test]
    fn until_forms() {
        let r = Rule::parse("FREQ=DAILY;UNTIL=20261231T120000Z").unwrap();
        assert_eq!(r.until(), Some(Utc.with_ymd_and_hms(2026, 12, 31, 12, 0, 0).unwrap()));
        let r = Rule::parse("FREQ=DAILY;UNTIL=20261231").unwrap();
        assert_eq!(r.until(), Some(Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).unwrap()));
        assert_eq!(r.to_string(), "FREQ=DAILY;UNTIL=20261231T235959Z");
    }

    #[test]
    fn errors_name_the_part() {
        let cases: &[(&str, &str, &str)] = &[
            ("", "RRULE", "empty"),
            ("RRULE:", "RRULE", "empty"),
            ("INTERVAL=2", "FREQ", "missing"),
            ("FREQ=HOURLY", "FREQ", "DAILY, WEEKLY, MONTHLY and YEARLY"),
            ("FREQ=MINUTELY", "FREQ", "MINUTELY is not supported"),
            ("FREQ=SECONDLY", "FREQ", "not supported"),
            ("FREQ=FORTNIGHTLY", "FREQ", "unknown frequency"),
            ("FREQ=DAILY;FREQ=WEEKLY", "FREQ", "more than once"),
            ("FREQ=DAILY;INTERVAL=0", "INTERVAL", "between 1 and 1000"),
            ("FREQ=DAILY;INTERVAL=1001", "INTERVAL", "between 1 and 1000"),
            ("FREQ=DAILY;INTERVAL=+2", "INTERVAL", "integer"),
            ("FREQ=DAILY;INTERVAL=two", "INTERVAL", "integer"),
            ("FREQ=DAILY;COUNT=0", "COUNT", "between 1 and 10000"),
            ("FREQ=DAILY;COUNT=10001", "COUNT", "between 1 and 10000"),
            ("FREQ=DAILY;COUNT=3;UNTIL=20261231", "UNTIL", "COUNT and UNTIL"),
            ("FREQ=DAILY;UNTIL=20261231T120000", "UNTIL", "floating"),
            ("FREQ=DAILY;UNTIL=20261331", "UNTIL", "expected"),
            ("FREQ=DAILY;UNTIL=2026-12-31", "UNTIL", "expected"),
            ("FREQ=WEEKLY;BYDAY=XX", "BYDAY", "expected a weekday"),
            ("FREQ=WEEKLY;BYDAY=MO,", "BYDAY", "comma-separated"),
            ("FREQ=WEEKLY;BYDAY=2MO", "BYDAY", "MONTHLY or FREQ=YEARLY"),
            ("FREQ=MONTHLY;BYDAY=0MO", "BYDAY", "ordinal"),
            ("FREQ=MONTHLY;BYDAY=6MO", "BYDAY", "ordinal"),
            ("FREQ=MONTHLY;BYMONTHDAY=0", "BYMONTHDAY", "1 to 31"),
            ("FREQ=MONTHLY;BYMONTHDAY=32", "BYMONTHDAY", "1 to 31"),
            ("FREQ=MONTHLY;BYMONTHDAY=-32", "BYMONTHDAY", "1 to 31"),
            ("FREQ=WEEKLY;BYMONTHDAY=1", "BYMONTHDAY", "WEEKLY"),
            ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "BYMONTHDAY", "never occurs"),
            ("FREQ=YEARLY;BYMONTH=13", "BYMONTH", "1 to 12"),
            ("FREQ=YEARLY;BYMONTH=0", "BYMONTH", "1 to 12"),
            ("FREQ=MONTHLY;BYSETPOS=1", "BYSETPOS", "together with"),
            ("FREQ=MONTHLY;BYDAY=MO;BYSETPOS=0", "BYSETPOS", "1 to 31"),
            ("FREQ=MONTHLY;BYDAY=MO;BYSETPOS=32", "BYSETPOS", "1 to 31"),
            ("FREQ=WEEKLY;WKST=XY", "WKST", "expected one of"),
            ("FREQ=DAILY;BYHOUR=9", "BYHOUR", "not supported"),
            ("FREQ=DAILY;BYMINUTE=30", "BYMINUTE", "not supported"),
            ("FREQ=DAILY;BYSECOND=0", "BYSECOND", "not supported"),
            ("FREQ=YEARLY;BYWEEKNO=20", "BYWEEKNO", "not supported"),
            ("FREQ=YEARLY;BYYEARDAY=100", "BYYEARDAY", "not supported"),
            ("FREQ=DAILY;DTSTART=20260101T090000Z", "DTSTART", "not supported"),
            ("DTSTART:20260101T090000Z\nRRULE:FREQ=DAILY", "DTSTART", "not supported"),
            ("FREQ=DAILY;X-NAME=1", "X-NAME", "not supported"),
            ("FREQ=DAILY;BYEASTER=0", "BYEASTER", "not supported"),
            ("FREQ=DAILY;;COUNT=2", "RRULE", "malformed"),
            ("FREQ=DAILY;COUNT", "RRULE", "malformed"),
            ("FREQ", "RRULE", "malformed"),
        ];
        for (input, part, needle) in cases {
            let e = parse_err(input);
            assert_eq!(e.part, *part, "{input:?}: {e}");
            assert!(e.message.contains(needle), "{input:?}: {e} should mention {needle:?}");
            assert_eq!(e.to_string(), format!("{}: {}", e.part, e.message));
        }
        assert_eq!(parse_err(&format!("FREQ=DAILY;X={}", "1".repeat(MAX_RULE_LEN))).part, "RRULE");
    }

    #[test]
    fn display_is_canonical_and_round_trips() {
        let cases = [
            ("FREQ=DAILY", "FREQ=DAILY"),
            ("RRULE:FREQ=DAILY;INTERVAL=1;WKST=MO;", "FREQ=DAILY"),
            ("COUNT=5;FREQ=weekly;BYDAY=FR,MO,MO;interval=2", "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,FR;COUNT=5"),
            ("FREQ=MONTHLY;BYDAY=-1FR,+2MO,MO", "FREQ=MONTHLY;BYDAY=MO,2MO,-1FR"),
            ("FREQ=YEARLY;BYMONTHDAY=31,-1,1;BYMONTH=12,2", "FREQ=YEARLY;BYMONTH=2,12;BYMONTHDAY=-1,1,31"),
            ("FREQ=MONTHLY;BYSETPOS=-1;BYDAY=MO,TU,WE,TH,FR", "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1"),
            ("FREQ=WEEKLY;WKST=su;UNTIL=20270101t000000z", "FREQ=WEEKLY;WKST=SU;UNTIL=20270101T000000Z"),
        ];
        for (input, canonical) in cases {
            let rule = Rule::parse(input).unwrap();
            assert_eq!(rule.to_string(), canonical, "{input}");
            let again: Rule = canonical.parse().unwrap();
            assert_eq!(again, rule, "{input}");
            assert_eq!(again.to_string(), canonical);
            let json = serde_json::to_string(&rule).unwrap();
            assert_eq!(json, format!("\"{canonical}\""));
            assert_eq!(serde_json::from_str::<Rule>(&json).unwrap(), rule);
        }
        assert!(serde_json::from_str::<Rule>("\"FREQ=HOURLY\"").is_err());
    }

    #[test]
    fn mode_serde_names() {
        assert_eq!(serde_json::to_string(&Mode::Strict).unwrap(), "\"strict\"");
        assert_eq!(serde_json::to_string(&Mode::AfterCompletion).unwrap(), "\"after_completion\"");
        assert_eq!(serde_json::from_str::<Mode>("\"after_completion\"").unwrap(), Mode::AfterCompletion);
        assert_eq!(Mode::default(), Mode::Strict);
    }

    #[test]
    fn resolve_local_plain_gap_and_overlap() {
        let ny: Tz = "America/New_York".parse().unwrap();
        assert_same(resolve_local(ny, local("2026-03-07T09:00:00")), "2026-03-07T09:00:00-05:00");
        assert_same(resolve_local(ny, local("2026-03-09T09:00:00")), "2026-03-09T09:00:00-04:00");
        // Spring forward: 02:00 EST jumps to 03:00 EDT; 02:30 moves forward by the hour.
        assert_same(resolve_local(ny, local("2026-03-08T02:30:00")), "2026-03-08T03:30:00-04:00");
        assert_same(resolve_local(ny, local("2026-03-08T02:00:00")), "2026-03-08T03:00:00-04:00");
        // Fall back: 01:30 happens twice; the earlier is EDT.
        assert_same(resolve_local(ny, local("2026-11-01T01:30:00")), "2026-11-01T01:30:00-04:00");
        assert_same(resolve_local(ny, local("2026-11-01T02:30:00")), "2026-11-01T02:30:00-05:00");

        let london: Tz = "Europe/London".parse().unwrap();
        assert_same(resolve_local(london, local("2026-03-29T01:30:00")), "2026-03-29T02:30:00+01:00");
        assert_same(resolve_local(london, local("2026-10-25T01:30:00")), "2026-10-25T01:30:00+01:00");

        let sydney: Tz = "Australia/Sydney".parse().unwrap();
        assert_same(resolve_local(sydney, local("2026-10-04T02:30:00")), "2026-10-04T03:30:00+11:00");
        assert_same(resolve_local(sydney, local("2026-04-05T02:30:00")), "2026-04-05T02:30:00+11:00");

        // A 30-minute DST shift (Lord Howe Island) moves a gap time by 30 minutes.
        let lord_howe: Tz = "Australia/Lord_Howe".parse().unwrap();
        assert_same(resolve_local(lord_howe, local("2026-10-04T02:15:00")), "2026-10-04T02:45:00+11:00");

        // Samoa skipped 30 December 2011 entirely: a 24-hour gap.
        let apia: Tz = "Pacific/Apia".parse().unwrap();
        assert_same(resolve_local(apia, local("2011-12-30T09:00:00")), "2011-12-31T09:00:00+14:00");

        assert_same(resolve_local(Tz::UTC, local("2026-03-08T02:30:00")), "2026-03-08T02:30:00+00:00");
    }

    #[test]
    fn occurrence_counts_the_anchor_even_off_rule() {
        let rule = Rule::parse("FREQ=WEEKLY;BYDAY=MO").unwrap();
        let anchor = at("2026-06-03T10:00:00+02:00"); // a Wednesday
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        assert_same(occurrence(&rule, tz, anchor, 4, 4).unwrap().unwrap(), "2026-06-03T10:00:00+02:00");
        assert_same(occurrence(&rule, tz, anchor, 4, 5).unwrap().unwrap(), "2026-06-08T10:00:00+02:00");
        assert_same(occurrence(&rule, tz, anchor, 4, 6).unwrap().unwrap(), "2026-06-15T10:00:00+02:00");
        assert_eq!(occurrence(&rule, tz, anchor, 4, 3).unwrap(), None);
    }

    #[test]
    fn anchor_is_returned_with_the_zone_offset() {
        let rule = Rule::parse("FREQ=DAILY").unwrap();
        let ny: Tz = "America/New_York".parse().unwrap();
        let anchor = at("2026-07-01T13:00:00Z");
        assert_same(occurrence(&rule, ny, anchor, 0, 0).unwrap().unwrap(), "2026-07-01T09:00:00-04:00");
        assert_same(occurrence(&rule, ny, anchor, 0, 1).unwrap().unwrap(), "2026-07-02T09:00:00-04:00");
    }

    #[test]
    fn sub_second_time_of_day_is_kept() {
        let rule = Rule::parse("FREQ=DAILY").unwrap();
        let anchor = at("2026-07-01T09:00:00.250+00:00");
        let second = occurrence(&rule, Tz::UTC, anchor, 0, 1).unwrap().unwrap();
        assert_eq!(second, at("2026-07-02T09:00:00.250+00:00"));
    }

    #[test]
    fn walks_are_bounded() {
        let rule = Rule::parse("FREQ=DAILY").unwrap();
        let anchor = at("2026-01-01T09:00:00+00:00");
        assert_eq!(
            occurrence(&rule, Tz::UTC, anchor, 0, MAX_STEPS + 1),
            Err(RecurrenceError::TooManyIterations(MAX_STEPS))
        );
        assert!(occurrence(&rule, Tz::UTC, anchor, 0, 1000).unwrap().is_some());

        // Completing an ancient daily series walks from the anchor: past the cap is an error.
        let series =
            Series { id: uuid::Uuid::nil(), index: 0, anchor: at("1700-01-01T09:00:00+00:00"), anchor_index: 0 };
        let completed = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(
            next(&rule, Mode::Strict, Tz::UTC, &series, series.anchor, completed, &[]),
            Err(RecurrenceError::TooManyIterations(MAX_STEPS))
        );
        // After completion does not walk from the anchor, so it is cheap however old the series.
        let n = next(&rule, Mode::AfterCompletion, Tz::UTC, &series, series.anchor, completed, &[]).unwrap().unwrap();
        assert_same(n.due, "2026-01-02T09:00:00+00:00");
    }

    #[test]
    fn far_dates_are_errors_not_panics() {
        let rule = Rule::parse("FREQ=YEARLY").unwrap();
        let ny: Tz = "America/New_York".parse().unwrap();
        let far = Utc.with_ymd_and_hms(20_000, 1, 1, 0, 0, 0).unwrap().fixed_offset();
        assert_eq!(occurrence(&rule, ny, far, 0, 1), Err(RecurrenceError::OutOfRange("anchor")));
        let anchor = at("2026-01-01T09:00:00-05:00");
        let series = Series { id: uuid::Uuid::nil(), index: 0, anchor, anchor_index: 0 };
        for completed in [DateTime::<Utc>::MAX_UTC, DateTime::<Utc>::MIN_UTC] {
            assert_eq!(
                next(&rule, Mode::AfterCompletion, ny, &series, anchor, completed, &[]),
                Err(RecurrenceError::OutOfRange("completion time"))
            );
        }
        // A series runs out at the end of year 9999 instead of wandering into year 10000.
        let late = at("9998-06-01T09:00:00+00:00");
        assert_same(occurrence(&rule, Tz::UTC, late, 0, 1).unwrap().unwrap(), "9999-06-01T09:00:00+00:00");
        assert_eq!(occurrence(&rule, Tz::UTC, late, 0, 2), Ok(None));
        // resolve_local is total, even at the ends of chrono's range.
        for tz in [Tz::UTC, ny] {
            resolve_local(tz, NaiveDateTime::MAX);
            resolve_local(tz, NaiveDateTime::MIN);
        }
    }

    #[test]
    fn index_overflow_is_an_error_not_a_wrap() {
        let rule = Rule::parse("FREQ=DAILY").unwrap();
        let anchor = at("2026-01-01T09:00:00+00:00");
        let series = Series { id: uuid::Uuid::nil(), index: u32::MAX, anchor, anchor_index: u32::MAX };
        let completed = Utc.with_ymd_and_hms(2026, 1, 1, 10, 0, 0).unwrap();
        for mode in [Mode::Strict, Mode::AfterCompletion] {
            assert_eq!(
                next(&rule, mode, Tz::UTC, &series, anchor, completed, &[]),
                Err(RecurrenceError::IndexOverflow)
            );
        }
        assert_eq!(occurrence(&rule, Tz::UTC, anchor, u32::MAX, u32::MAX).unwrap(), Some(anchor));
    }
}
