//! Sort orders of `GET /v1/tasks` and the total order behind keyset pagination.
//!
//! Every order is total: ties on the sort key are broken by task id, so a page boundary is a
//! single point in the order and a cursor (the last item's key and id) resumes exactly after it,
//! whatever was inserted or removed in between.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::domain::task::{Priority, Task};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    Due,
    Priority,
    Created,
    Updated,
    Title,
}

impl SortField {
    pub const ALL: [SortField; 5] = [Self::Due, Self::Priority, Self::Created, Self::Updated, Self::Title];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Due => "due",
            Self::Priority => "priority",
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Title => "title",
        }
    }
}

/// A sort order as written in the query string: `due`, `-due`, `priority`, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortBy {
    pub field: SortField,
    pub descending: bool,
}

impl Default for SortBy {
    /// Newest first: what a person opening their list expects.
    fn default() -> Self {
        Self { field: SortField::Created, descending: true }
    }
}

impl SortBy {
    /// Every accepted value, for error messages and the OpenAPI document.
    pub fn all_names() -> Vec<String> {
        SortField::ALL.iter().flat_map(|f| [f.as_str().to_owned(), format!("-{}", f.as_str())]).collect()
    }

    pub fn parse(value: &str) -> Option<Self> {
        let (descending, name) = match value.strip_prefix('-') {
            Some(name) => (true, name),
            None => (false, value),
        };
        let field = SortField::ALL.into_iter().find(|f| f.as_str() == name)?;
        Some(Self { field, descending })
    }

    pub fn name(self) -> String {
        format!("{}{}", if self.descending { "-" } else { "" }, self.field.as_str())
    }

    /// The value `task` is sorted on.
    pub fn key(self, task: &Task) -> SortKey {
        match self.field {
            SortField::Due => SortKey::Due(task.due.map(|d| d.with_timezone(&Utc))),
            SortField::Priority => SortKey::Priority(task.priority),
            SortField::Created => SortKey::Created(task.created_at),
            SortField::Updated => SortKey::Updated(task.updated_at),
            SortField::Title => SortKey::Title(task.title.to_lowercase()),
        }
    }

    /// The total order: the key in this direction, then the id (always ascending).
    pub fn compare(self, a: (&SortKey, Uuid), b: (&SortKey, Uuid)) -> Ordering {
        self.compare_keys(a.0, b.0).then_with(|| a.1.cmp(&b.1))
    }

    fn compare_keys(self, a: &SortKey, b: &SortKey) -> Ordering {
        let directed = |ordering: Ordering| if self.descending { ordering.reverse() } else { ordering };
        match (a, b) {
            // A task without a due time has no place on a timeline: it goes last in both
            // directions, so `-due` means "latest deadline first", not "undated first".
            (SortKey::Due(a), SortKey::Due(b)) => match (a, b) {
                (Some(a), Some(b)) => directed(a.cmp(b)),
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
            },
            (SortKey::Priority(a), SortKey::Priority(b)) => directed(a.cmp(b)),
            (SortKey::Created(a), SortKey::Created(b)) | (SortKey::Updated(a), SortKey::Updated(b)) => {
                directed(a.cmp(b))
            }
            (SortKey::Title(a), SortKey::Title(b)) => directed(a.cmp(b)),
            // Keys of different fields are never compared: cursors are checked against the
            // sort first. Any consistent answer keeps sorting total.
            _ => a.rank().cmp(&b.rank()),
        }
    }
}

/// The value a task is sorted on, as a cursor carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortKey {
    Due(Option<DateTime<Utc>>),
    Priority(Priority),
    Created(DateTime<Utc>),
    Updated(DateTime<Utc>),
    /// Lower-cased, so that "apple" and "Banana" sort the way people read them.
    Title(String),
}

impl SortKey {
    pub fn field(&self) -> SortField {
        match self {
            Self::Due(_) => SortField::Due,
            Self::Priority(_) => SortField::Priority,
            Self::Created(_) => SortField::Created,
            Self::Updated(_) => SortField::Updated,
            Self::Title(_) => SortField::Title,
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Self::Due(_) => 0,
            Self::Priority(_) => 1,
            Self::Created(_) => 2,
            Self::Updated(_) => 3,
            Self::Title(_) => 4,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn at(s: &str) -> Option<DateTime<Utc>> {
        Some(DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc))
    }

    #[test]
    fn names_round_trip() {
        for name in SortBy::all_names() {
            assert_eq!(SortBy::parse(&name).unwrap().name(), name);
        }
        assert_eq!(SortBy::all_names().len(), 10);
        for bad in ["", "-", "due ", "DUE", "--due", "+due", "status"] {
            assert_eq!(SortBy::parse(bad), None, "{bad:?}");
        }
        assert_eq!(SortBy::default().name(), "-created");
    }

    #[test]
    fn undated_tasks_go_last_in_both_directions() {
        let early = SortKey::Due(at("2026-01-01T00:00:00Z"));
        let late = SortKey::Due(at("2026-02-01T00:00:00+05:00"));
        let none = SortKey::Due(None);
        let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let asc = SortBy::parse("due").unwrap();
        let desc = SortBy::parse("-due").unwrap();
        assert_eq!(asc.compare((&early, a), (&late, b)), Ordering::Less);
        assert_eq!(desc.compare((&early, a), (&late, b)), Ordering::Greater);
        assert_eq!(asc.compare((&none, c), (&late, b)), Ordering::Greater);
        assert_eq!(desc.compare((&none, c), (&late, b)), Ordering::Greater);
    }

    #[test]
    fn due_compares_instants_not_local_times() {
        // 10:00+05:00 is 05:00Z, before 06:00Z.
        let a = SortKey::Due(at("2026-01-01T10:00:00+05:00"));
        let b = SortKey::Due(at("2026-01-01T06:00:00Z"));
        assert_eq!(
            SortBy::parse("due").unwrap().compare((&a, Uuid::from_u128(9)), (&b, Uuid::from_u128(1))),
            Ordering::Less
        );
    }

    #[test]
    fn ties_break_on_id_ascending_in_both_directions() {
        let key = SortKey::Priority(Priority::High);
        for sort in ["priority", "-priority"] {
            let sort = SortBy::parse(sort).unwrap();
            assert_eq!(sort.compare((&key, Uuid::from_u128(1)), (&key, Uuid::from_u128(2))), Ordering::Less);
        }
    }

    #[test]
    fn priority_descending_puts_urgent_first() {
        let urgent = SortKey::Priority(Priority::Urgent);
        let low = SortKey::Priority(Priority::Low);
        let desc = SortBy::parse("-priority").unwrap();
        assert_eq!(desc.compare((&urgent, Uuid::from_u128(2)), (&low, Uuid::from_u128(1))), Ordering::Less);
    }

    #[test]
    fn titles_sort_case_insensitively() {
        let a = SortKey::Title("apple".into());
        let b = SortKey::Title("Banana".to_lowercase());
        assert_eq!(SortBy::parse("title").unwrap().compare((&a, Uuid::nil()), (&b, Uuid::nil())), Ordering::Less);
    }
}
