//! `GET /v1/tasks` as pure functions: the store-side filter, then the in-memory filter, sort
//! and keyset page over the candidates the store returned.
//!
//! The Query API (`state.postgresql` v1) can do equality and `IN` on JSON fields, so owner,
//! status and priority are pushed down to the store; substring search, "all of these tags" and
//! time ranges over offsets it cannot express, so they run here. Tombstones are filtered here
//! too: the Query API has no "field is null".

use serde_json::{Value, json};
use shared::domain::task::Task;

use crate::cursor::Cursor;
use crate::params::ListParams;
use crate::search;

/// The Query API filter for the candidates of `owner`'s list.
///
/// `AND` only with two or more operands: Dapr rejects an `AND` of one ("AND filter must contain
/// at least two entries", components-contrib `state/query/filter.go`).
pub fn store_filter(owner: &str, params: &ListParams) -> Value {
    let mut clauses = vec![json!({"EQ": {"owner": owner}})];
    if let Some(status) = params.status {
        clauses.push(json!({"EQ": {"status": status.as_str()}}));
    }
    if !params.priorities.is_empty() {
        let priorities: Vec<&str> = params.priorities.iter().map(|p| p.as_str()).collect();
        clauses.push(json!({"IN": {"priority": priorities}}));
    }
    match clauses.len() {
        1 => clauses.swap_remove(0),
        _ => json!({"AND": clauses}),
    }
}

/// Whether `task` belongs in `owner`'s list under `params`. Re-checks what the store filtered
/// (owner, status, priority): owner isolation must not depend on a store honouring a filter.
pub fn matches(task: &Task, owner: &str, params: &ListParams) -> bool {
    if task.owner != owner || task.is_deleted() {
        return false;
    }
    if params.status.is_some_and(|status| task.status != status) {
        return false;
    }
    if !params.priorities.is_empty() && !params.priorities.contains(&task.priority) {
        return false;
    }
    if !params.tags.iter().all(|tag| task.tags.contains(tag)) {
        return false;
    }
    if let Some(q) = &params.q
        && !search::contains(&task.title, q)
        && !search::contains(&task.description, q)
    {
        return false;
    }
    if params.due_before.is_some() || params.due_after.is_some() {
        let Some(due) = task.due else {
            return false;
        };
        if params.due_before.is_some_and(|before| due >= before) || params.due_after.is_some_and(|after| due <= after) {
            return false;
        }
    }
    true
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<Task>,
    /// Present when more items follow.
    pub next_cursor: Option<String>,
}

/// Filters, sorts (stable, ties broken by id) and cuts the page after `params.cursor`.
pub fn page(candidates: Vec<Task>, owner: &str, params: &ListParams) -> Page {
    let sort = params.sort;
    let mut keyed: Vec<_> = candidates
        .into_iter()
        .filter(|task| matches(task, owner, params))
        .map(|task| (sort.key(&task), task))
        .collect();
    keyed.sort_by(|(ka, a), (kb, b)| sort.compare((ka, a.id), (kb, b.id)));
    let start = match &params.cursor {
        // The first item strictly after the cursor's point in the order.
        Some(cursor) => {
            keyed.partition_point(|(key, task)| sort.compare((key, task.id), (&cursor.key, cursor.id)).is_le())
        }
        None => 0,
    };
    let rest = keyed.len().saturating_sub(start);
    let items: Vec<_> = keyed.into_iter().skip(start).take(params.limit).collect();
    let next_cursor = match items.last() {
        Some((key, task)) if rest > params.limit => {
            Some(Cursor { sort, key: key.clone(), id: task.id, query: params.fingerprint() }.encode())
        }
        _ => None,
    };
    Page { items: items.into_iter().map(|(_, task)| task).collect(), next_cursor }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::BTreeSet;

    use chrono::{DateTime, Duration, Utc};
    use chrono_tz::Tz;
    use shared::domain::task::{Priority, Status};
    use uuid::Uuid;

    use super::*;
    use crate::params::parse;

    fn t0() -> DateTime<Utc> {
        "2026-11-22T10:00:00Z".parse().unwrap()
    }

    fn task(n: u128, title: &str) -> Task {
        Task {
            id: Uuid::from_u128(n),
            owner: "alice".into(),
            title: title.into(),
            description: String::new(),
            priority: Priority::Medium,
            tags: BTreeSet::new(),
            status: Status::Open,
            due: None,
            time_zone: Tz::UTC,
            reminder: None,
            recurrence: None,
            series: None,
            created_at: t0() + Duration::minutes(n as i64),
            updated_at: t0() + Duration::minutes(n as i64),
            completed_at: None,
            deleted_at: None,
            version: 1,
            request_digest: None,
        }
    }

    fn ids(page: &Page) -> Vec<u128> {
        page.items.iter().map(|t| t.id.as_u128()).collect()
    }

    fn list(tasks: &[Task], query: &str) -> Page {
        page(tasks.to_vec(), "alice", &parse(Some(query)).unwrap())
    }

    #[test]
    fn store_filter_shapes() {
        assert_eq!(store_filter("alice", &parse(None).unwrap()), json!({"EQ": {"owner": "alice"}}));
        assert_eq!(
            store_filter("alice", &parse(Some("status=completed&priority=high&priority=low")).unwrap()),
            json!({"AND": [{"EQ": {"owner": "alice"}}, {"EQ": {"status": "completed"}}, {"IN": {"priority": ["high", "low"]}}]})
        );
        assert_eq!(
            store_filter("alice", &parse(Some("priority=urgent")).unwrap()),
            json!({"AND": [{"EQ": {"owner": "alice"}}, {"IN": {"priority": ["urgent"]}}]})
        );
    }

    #[test]
    fn other_owners_and_tombstones_never_match() {
        let mut bobs = task(1, "bob's");
        bobs.owner = "bob".into();
        let mut deleted = task(2, "gone");
        deleted.deleted_at = Some(t0());
        assert_eq!(ids(&list(&[bobs, deleted, task(3, "mine")], "")), vec![3]);
    }

    #[test]
    fn search_is_case_insensitive_over_title_and_description() {
        let mut described = task(2, "Errand");
        described.description = "Buy OAT milk".into();
        let tasks = [task(1, "MILK the cow"), described, task(3, "Walk")];
        assert_eq!(ids(&list(&tasks, "q=milk&sort=created")), vec![1, 2]);
        assert_eq!(ids(&list(&tasks, "q=oat+MILK")), vec![2]);
    }

    #[test]
    fn search_is_unicode_caseless() {
        let mut described = task(3, "Errand");
        described.description = "Pick up the parcel at Cafe\u{301} Müller".into();
        let tasks = [task(1, "Hauptstraße 5"), task(2, "Μουσακάς"), described];
        assert_eq!(ids(&list(&tasks, "q=STRASSE")), vec![1]);
        assert_eq!(ids(&list(&tasks, "q=%CE%9C%CE%9F%CE%A5%CE%A3")), vec![2], "ΜΟΥΣ");
        assert_eq!(ids(&list(&tasks, "q=caf%C3%A9+M%C3%BCller")), vec![3], "NFC query, NFD text");
    }

    #[test]
    fn tags_are_all_of() {
        let mut both = task(1, "both");
        both.tags = BTreeSet::from(["home".to_owned(), "urgent".to_owned()]);
        let mut one = task(2, "one");
        one.tags = BTreeSet::from(["home".to_owned()]);
        let tasks = [both, one];
        assert_eq!(ids(&list(&tasks, "tag=home&sort=created")), vec![1, 2]);
        assert_eq!(ids(&list(&tasks, "tag=home&tag=urgent")), vec![1]);
    }

    #[test]
    fn due_range_is_exclusive_and_excludes_undated() {
        let mut tasks = vec![task(1, "undated")];
        for (n, due) in
            [(2, "2026-12-01T00:00:00Z"), (3, "2026-12-02T00:00:00+00:00"), (4, "2026-12-03T01:00:00+01:00")]
        {
            let mut t = task(n, "dated");
            t.due = Some(DateTime::parse_from_rfc3339(due).unwrap());
            tasks.push(t);
        }
        // Task 4 is due at 2026-12-03T00:00Z.
        assert_eq!(ids(&list(&tasks, "due_after=2026-12-01T00:00:00Z&sort=due")), vec![3, 4]);
        assert_eq!(ids(&list(&tasks, "due_before=2026-12-03T00:00:00Z&sort=due")), vec![2, 3]);
        assert_eq!(ids(&list(&tasks, "due_after=2026-12-01T00:00:00Z&due_before=2026-12-03T00:00:00Z")), vec![3]);
    }

    #[test]
    fn status_and_priority_are_rechecked() {
        let mut done = task(1, "done");
        done.status = Status::Completed;
        let mut high = task(2, "high");
        high.priority = Priority::High;
        let tasks = [done, high, task(3, "medium")];
        assert_eq!(ids(&list(&tasks, "status=completed")), vec![1]);
        assert_eq!(ids(&list(&tasks, "status=open&sort=created")), vec![2, 3]);
        assert_eq!(ids(&list(&tasks, "priority=high")), vec![2]);
    }

    #[test]
    fn every_sort_order() {
        let mut a = task(1, "banana");
        a.priority = Priority::Low;
        a.due = Some(DateTime::parse_from_rfc3339("2026-12-02T00:00:00Z").unwrap());
        a.updated_at = t0() + Duration::hours(5);
        let mut b = task(2, "Apple");
        b.priority = Priority::Urgent;
        b.due = Some(DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z").unwrap());
        let mut c = task(3, "cherry");
        c.priority = Priority::High;
        let tasks = [a, b, c];
        let cases = [
            ("sort=due", vec![2, 1, 3]),
            ("sort=-due", vec![1, 2, 3]),
            ("sort=priority", vec![1, 3, 2]),
            ("sort=-priority", vec![2, 3, 1]),
            ("sort=created", vec![1, 2, 3]),
            ("sort=-created", vec![3, 2, 1]),
            ("", vec![3, 2, 1]),
            ("sort=updated", vec![2, 3, 1]),
            ("sort=-updated", vec![1, 3, 2]),
            ("sort=title", vec![2, 1, 3]),
            ("sort=-title", vec![3, 1, 2]),
        ];
        for (query, expected) in cases {
            assert_eq!(ids(&list(&tasks, query)), expected, "{query}");
        }
    }

    #[test]
    fn keyset_pages_have_no_duplicates_or_gaps_even_with_inserts_between_pages() {
        // Equal priorities everywhere: only the id tie-break orders them.
        let mut tasks: Vec<Task> = (1..=7).map(|n| task(n * 10, "t")).collect();
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        for round in 0.. {
            let query = match &cursor {
                Some(c) => format!("sort=priority&limit=3&cursor={c}"),
                None => "sort=priority&limit=3".to_owned(),
            };
            let page = list(&tasks, &query);
            seen.extend(ids(&page));
            if round == 0 {
                // Inserted before the cursor (must not appear) and after it (must appear).
                tasks.push(task(5, "before"));
                tasks.push(task(65, "after"));
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, vec![10, 20, 30, 40, 50, 60, 65, 70]);
    }

    #[test]
    fn the_last_page_has_no_cursor() {
        let tasks: Vec<Task> = (1..=4).map(|n| task(n, "t")).collect();
        let first = list(&tasks, "limit=2&sort=created");
        assert_eq!(ids(&first), vec![1, 2]);
        let second = list(&tasks, &format!("limit=2&sort=created&cursor={}", first.next_cursor.unwrap()));
        assert_eq!(ids(&second), vec![3, 4]);
        assert_eq!(second.next_cursor, None, "exactly `limit` left: no empty extra page");
        assert_eq!(list(&[], "").items.len(), 0);
    }
}
