//! Sort orders of `GET /v1/tasks` and the total order behind keyset pagination.
//!
//! Every order is total: ties on the sort key are broken by task id, so a page boundary is a
//! single point in the order and a cursor (the last item's key and id) resumes exactly after it,
//! whatever was inserted or removed in between. A descending order is the exact reverse of the
//! ascending one (ties included), which lets PostgreSQL read one index either way; the one
//! exception is `-due`, where tasks without a due time still go last.
//!
//! The keys are the stored order keys of [`todo_core::order`] for every field but the
//! title: `due` to 10 ms, then (undated) by creation; `priority` by rank, then by creation;
//! `created` and `updated` to the millisecond.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use todo_core::order::{self, OrderKeys};
use todo_core::task::Task;
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
        match self.field.order_key() {
            Some(name) => SortKey::Order(order_key(&OrderKeys::of(task), name).to_owned()),
            None => SortKey::Title(task.title.to_lowercase()),
        }
    }

    /// Whether `key` is in the second phase of this order: a task without a due time when
    /// sorting by `-due` (it goes last in both directions).
    pub fn in_undated_phase(self, key: &SortKey) -> bool {
        self.field == SortField::Due
            && self.descending
            && matches!(key, SortKey::Order(key) if key.as_str() >= undated_key().as_str())
    }

    /// The total order: (key, id) ascending, or exactly reversed for a descending sort, except
    /// that undated tasks stay last under `-due`.
    pub fn compare(self, a: (&SortKey, Uuid), b: (&SortKey, Uuid)) -> Ordering {
        let ascending = a.0.cmp(b.0).then_with(|| a.1.cmp(&b.1));
        self.in_undated_phase(a.0).cmp(&self.in_undated_phase(b.0)).then(if self.descending {
            ascending.reverse()
        } else {
            ascending
        })
    }
}

impl SortField {
    /// The name of the stored order key under `_order` for the fields the store sorts itself
    /// (every field but `title`, whose order a fixed-width number cannot carry).
    pub fn order_key(self) -> Option<&'static str> {
        match self {
            Self::Due => Some("due"),
            Self::Priority => Some("priority"),
            Self::Created => Some("created"),
            Self::Updated => Some("updated"),
            Self::Title => None,
        }
    }
}

/// The key named `name` of `keys`.
pub fn order_key<'k>(keys: &'k OrderKeys, name: &str) -> &'k str {
    match name {
        "due" => &keys.due,
        "priority" => &keys.priority,
        "updated" => &keys.updated,
        _ => &keys.created,
    }
}

/// The `due` key of every task without a due time.
pub fn undated_key() -> String {
    order::encode(order::UNDATED_DUE)
}

/// The value a task is sorted on, as a cursor carries it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortKey {
    /// The stored order key of the sort's field ([`todo_core::order`]).
    Order(String),
    /// Lower-cased, so that "apple" and "Banana" sort the way people read them.
    Title(String),
}

impl SortKey {
    /// Whether this is a key of `field`'s kind, well formed.
    pub fn fits(&self, field: SortField) -> bool {
        match self {
            Self::Order(key) => field.order_key().is_some() && order::as_number(key).is_some(),
            Self::Title(_) => field == SortField::Title,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use chrono::{DateTime, Utc};
    use todo_core::order::due_key;

    use super::*;

    fn due(s: &str) -> SortKey {
        SortKey::Order(due_key(s.parse::<DateTime<Utc>>().unwrap()))
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
        let early = due("2026-01-01T00:00:00Z");
        let late = due("2026-02-01T00:00:00+05:00");
        let none = SortKey::Order(undated_key());
        let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let asc = SortBy::parse("due").unwrap();
        let desc = SortBy::parse("-due").unwrap();
        assert_eq!(asc.compare((&early, a), (&late, b)), Ordering::Less);
        assert_eq!(desc.compare((&early, a), (&late, b)), Ordering::Greater);
        assert_eq!(asc.compare((&none, c), (&late, b)), Ordering::Greater);
        assert_eq!(desc.compare((&none, c), (&late, b)), Ordering::Greater);
        assert!(desc.in_undated_phase(&none) && !desc.in_undated_phase(&late) && !asc.in_undated_phase(&none));
    }

    #[test]
    fn due_compares_instants_not_local_times() {
        // 10:00+05:00 is 05:00Z, before 06:00Z.
        let a = due("2026-01-01T10:00:00+05:00");
        let b = due("2026-01-01T06:00:00Z");
        assert_eq!(
            SortBy::parse("due").unwrap().compare((&a, Uuid::from_u128(9)), (&b, Uuid::from_u128(1))),
            Ordering::Less
        );
    }

    #[test]
    fn descending_is_the_exact_reverse_ties_included() {
        let key = SortKey::Order("100000.5".into());
        let (one, two) = (Uuid::from_u128(1), Uuid::from_u128(2));
        assert_eq!(SortBy::parse("priority").unwrap().compare((&key, one), (&key, two)), Ordering::Less);
        assert_eq!(SortBy::parse("-priority").unwrap().compare((&key, one), (&key, two)), Ordering::Greater);
    }

    #[test]
    fn the_key_is_the_stored_order_key_or_the_lower_cased_title() {
        use todo_core::task::Priority;
        let mut task: Task = serde_json::from_value(serde_json::json!({
            "id": Uuid::from_u128(7), "owner": "alice", "title": "Banana", "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-02T00:00:00Z", "version": 1
        }))
        .unwrap();
        task.priority = Priority::Urgent;
        let keys = OrderKeys::of(&task);
        assert_eq!(SortBy::parse("-priority").unwrap().key(&task), SortKey::Order(keys.priority));
        assert_eq!(SortBy::parse("updated").unwrap().key(&task), SortKey::Order(keys.updated));
        assert_eq!(SortBy::parse("due").unwrap().key(&task), SortKey::Order(keys.due));
        assert_eq!(SortBy::parse("title").unwrap().key(&task), SortKey::Title("banana".into()));
    }

    #[test]
    fn titles_sort_case_insensitively() {
        let a = SortKey::Title("apple".into());
        let b = SortKey::Title("Banana".to_lowercase());
        assert_eq!(SortBy::parse("title").unwrap().compare((&a, Uuid::nil()), (&b, Uuid::nil())), Ordering::Less);
    }

    #[test]
    fn keys_fit_only_their_kind_of_sort() {
        assert!(SortKey::Order("101765.5".into()).fits(SortField::Due));
        assert!(!SortKey::Order("101765.5".into()).fits(SortField::Title));
        assert!(!SortKey::Order("1.5e+06".into()).fits(SortField::Created), "not a key");
        assert!(SortKey::Title("x".into()).fits(SortField::Title));
        assert!(!SortKey::Title("x".into()).fits(SortField::Priority));
    }
}
