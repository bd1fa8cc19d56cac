//! Job schedules as the Dapr Scheduler reads them (diagridio/go-etcd-cron, robfig/cron with
//! seconds): `@every <Go duration>`, `@hourly`, `@daily`/`@midnight`, `@weekly`, `@monthly`,
//! `@yearly`/`@annually`, and 6-field cron `sec min hour day-of-month month day-of-week` with
//! `*`, `?`, lists, ranges and steps (numbers only). Times are UTC, like a Scheduler pod.

use std::time::Duration;

use chrono::{DateTime, Datelike as _, Duration as ChronoDuration, TimeZone as _, Timelike as _, Utc};

#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    Every(Duration),
    Cron(Cron),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cron {
    seconds: u64,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    day_star: bool,
    weekday_star: bool,
}

impl Schedule {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Some(every) = text.strip_prefix("@every ") {
            let d = crate::duration::parse_go(every.trim())?;
            if d.is_zero() {
                return Err("@every needs a positive duration".to_owned());
            }
            return Ok(Self::Every(d));
        }
        let expanded = match text {
            "@hourly" => "0 0 * * * *",
            "@daily" | "@midnight" => "0 0 0 * * *",
            "@weekly" => "0 0 0 * * 0",
            "@monthly" => "0 0 0 1 * *",
            "@yearly" | "@annually" => "0 0 0 1 1 *",
            other if other.starts_with('@') => return Err(format!("unsupported schedule {other:?}")),
            other => other,
        };
        Cron::parse(expanded).map(Self::Cron)
    }

    /// The first tick strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Every(d) => ChronoDuration::from_std(*d).ok().map(|d| after + d),
            Self::Cron(c) => c.next_after(after),
        }
    }
}

fn parse_field(text: &str, min: u32, max: u32, name: &str) -> Result<(u64, bool), String> {
    let mut bits = 0u64;
    let star = text == "*" || text == "?";
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().map_err(|_| format!("bad step in {name} field {text:?}"))?),
            None => (part, 1),
        };
        if step == 0 {
            return Err(format!("zero step in {name} field {text:?}"));
        }
        let (lo, hi) = if range == "*" || range == "?" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let a = a.parse::<u32>().map_err(|_| format!("bad {name} field {text:?}"))?;
            let b = b.parse::<u32>().map_err(|_| format!("bad {name} field {text:?}"))?;
            (a, b)
        } else {
            let a = range.parse::<u32>().map_err(|_| format!("bad {name} field {text:?} (numbers only)"))?;
            (a, if part.contains('/') { max } else { a })
        };
        if lo < min || hi > max || lo > hi {
            return Err(format!("{name} field {text:?} is outside {min}-{max}"));
        }
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok((bits, star))
}

impl Cron {
    pub fn parse(text: &str) -> Result<Self, String> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        if fields.len() != 6 {
            return Err(format!(
                "schedule {text:?}: expected 6 cron fields (sec min hour day-of-month month day-of-week), @every <duration> \
                 or @hourly/@daily/@weekly/@monthly/@yearly"
            ));
        }
        let (seconds, _) = parse_field(fields[0], 0, 59, "second")?;
        let (minutes, _) = parse_field(fields[1], 0, 59, "minute")?;
        let (hours, _) = parse_field(fields[2], 0, 23, "hour")?;
        let (days, day_star) = parse_field(fields[3], 1, 31, "day-of-month")?;
        let (months, _) = parse_field(fields[4], 1, 12, "month")?;
        let (mut weekdays, weekday_star) = parse_field(fields[5], 0, 7, "day-of-week")?;
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1;
        }
        Ok(Self { seconds, minutes, hours, days, months, weekdays, day_star, weekday_star })
    }

    fn day_matches(&self, t: DateTime<Utc>) -> bool {
        let dom = self.days & (1 << t.day()) != 0;
        let dow = self.weekdays & (1 << t.weekday().num_days_from_sunday()) != 0;
        if self.day_star || self.weekday_star { dom && dow } else { dom || dow }
    }

    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut t = after.with_nanosecond(0)? + ChronoDuration::seconds(1);
        for _ in 0..1_000_000 {
            if self.months & (1 << t.month()) == 0 {
                let (y, m) = if t.month() == 12 { (t.year() + 1, 1) } else { (t.year(), t.month() + 1) };
                t = Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single()?;
                continue;
            }
            if !self.day_matches(t) {
                t = Utc.with_ymd_and_hms(t.year(), t.month(), t.day(), 0, 0, 0).single()? + ChronoDuration::days(1);
                continue;
            }
            if self.hours & (1 << t.hour()) == 0 {
                t = t.with_minute(0)?.with_second(0)? + ChronoDuration::hours(1);
                continue;
            }
            if self.minutes & (1 << t.minute()) == 0 {
                t = t.with_second(0)? + ChronoDuration::minutes(1);
                continue;
            }
            if self.seconds & (1 << t.second()) == 0 {
                t += ChronoDuration::seconds(1);
                continue;
            }
            return Some(t);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn cron_and_shortcuts() {
        let t = at("2026-01-31T10:15:30Z");
        assert_eq!(Schedule::parse("@hourly").unwrap().next_after(t), Some(at("2026-01-31T11:00:00Z")));
        assert_eq!(Schedule::parse("@daily").unwrap().next_after(t), Some(at("2026-02-01T00:00:00Z")));
        assert_eq!(Schedule::parse("@monthly").unwrap().next_after(t), Some(at("2026-02-01T00:00:00Z")));
        assert_eq!(Schedule::parse("*/10 * * * * *").unwrap().next_after(t), Some(at("2026-01-31T10:15:40Z")));
        assert_eq!(Schedule::parse("0 30 9 * * 1-5").unwrap().next_after(t), Some(at("2026-02-02T09:30:00Z")));
        assert_eq!(Schedule::parse("@every 90s").unwrap().next_after(t), Some(at("2026-01-31T10:17:00Z")));
        assert!(Schedule::parse("* * * * *").is_err());
        assert!(Schedule::parse("@sometimes").is_err());
    }
}
