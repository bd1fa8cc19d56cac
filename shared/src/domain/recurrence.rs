//! Recurrence engine (placeholder interface; being implemented).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, FixedOffset, NaiveDateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::task::Series;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Strict,
    AfterCompletion,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{part}: {message}")]
pub struct RuleError {
    pub part: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecurrenceError {
    #[error("evaluating the rule needed more than {0} iterations")]
    TooManyIterations(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Next {
    pub index: u32,
    pub due: DateTime<FixedOffset>,
    pub anchor: DateTime<FixedOffset>,
    pub anchor_index: u32,
}

impl Rule {
    pub fn parse(s: &str) -> Result<Rule, RuleError> {
        Ok(Rule { text: s.to_owned() })
    }
    pub fn count(&self) -> Option<u32> {
        None
    }
    pub fn until(&self) -> Option<DateTime<Utc>> {
        None
    }
}

impl FromStr for Rule {
    type Err = RuleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Rule::parse(s)
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
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

pub fn resolve_local(tz: Tz, local: NaiveDateTime) -> DateTime<FixedOffset> {
    let _ = (tz, local);
    unimplemented!()
}

pub fn occurrence(
    rule: &Rule,
    tz: Tz,
    anchor: DateTime<FixedOffset>,
    anchor_index: u32,
    n: u32,
) -> Result<Option<DateTime<FixedOffset>>, RecurrenceError> {
    let _ = (rule, tz, anchor, anchor_index, n);
    unimplemented!()
}

pub fn next(
    rule: &Rule,
    mode: Mode,
    tz: Tz,
    series: &Series,
    due: DateTime<FixedOffset>,
    completed_at: DateTime<Utc>,
) -> Result<Option<Next>, RecurrenceError> {
    let _ = (rule, mode, tz, series, due, completed_at);
    unimplemented!()
}
