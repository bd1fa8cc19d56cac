//! `GET /v1/tasks` as pure functions: what the store is asked, and what is checked here.
//!
//! Every sort but `title` runs in the store ([`store_query`]): the Query API (`state.postgresql`
//! v1) filters owner, status and priority with equality, the due range and the keyset position
//! with range filters on the stored order keys ([`todo_core::order`]), and sorts and cuts
//! a batch with `ORDER BY … LIMIT`, each served by an index (manifests/base/postgres). Only
//! what the store cannot express runs here ([`matches`]): substring search and "all of these
//! tags", plus an exact re-check of everything the store filtered (owner isolation must not
//! depend on a store honouring a filter). The title order (lower-cased text) fits no
//! fixed-width number: the store orders and range-filters title *groups* (tasks whose titles
//! share their first characters, [`order::title_group`]) with [`title_query`] and
//! [`group_query`], and the list orders each group it read whole by the full title here
//! ([`sort_group`]).

use dapr_fn::dapr::{Query, SortOrder};
use serde_json::{Value, json};
use todo_core::order::{self, FIELD};
use todo_core::task::Task;
use uuid::Uuid;

use crate::params::ListParams;
use crate::search;
use crate::sort::{SortBy, SortField, SortKey, undated_key};

/// The part of a store-sorted list one query reads. `-due` reads dated tasks, then undated
/// ones (last in both directions); every other order is one phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    All,
    Dated,
    Undated,
}

/// The phases of `params`' order from its cursor on. `None` for `sort=title`, which the store
/// cannot order.
pub fn phases(params: &ListParams) -> Option<Vec<Phase>> {
    let sort = params.sort;
    sort.field.order_key()?;
    if !(sort.field == SortField::Due && sort.descending) {
        return Some(vec![Phase::All]);
    }
    // A due-range filter excludes undated tasks.
    let dated_only = params.due_before.is_some() || params.due_after.is_some();
    let resumes_undated = params.cursor.as_ref().is_some_and(|c| sort.in_undated_phase(&c.key));
    Some(match (dated_only, resumes_undated) {
        (_, true) => vec![Phase::Undated],
        (true, false) => vec![Phase::Dated],
        (false, false) => vec![Phase::Dated, Phase::Undated],
    })
}

/// A range operand: the key as the number the Query API compares as its text (see
/// [`todo_core::order`]). Keys here are ours or a checked cursor's.
fn number(key: &str) -> Value {
    order::as_number(key).map_or_else(|| Value::String(key.to_owned()), Value::Number)
}

fn path(name: &str) -> String {
    format!("{FIELD}.{name}")
}

/// The query for one batch of `owner`'s list in `phase`, strictly after `after` (a key and a
/// task id) when given: filters, order (key, tie key, id) and `limit`.
pub fn store_query(owner: &str, params: &ListParams, phase: Phase, after: Option<(&str, Uuid)>, limit: u32) -> Query {
    let sort = params.sort;
    let name = sort.field.order_key().unwrap_or("created");
    let field = path(name);
    let mut clauses = base_clauses(owner, params);
    if params.due_after.is_some() || params.due_before.is_some() {
        // A superset of the exact range (keys have 10 ms steps); `matches` decides.
        if let Some(after) = params.due_after {
            clauses.push(json!({"GTE": {path("due"): number(&order::due_key(after))}}));
        }
        match params.due_before {
            Some(before) => clauses.push(json!({"LTE": {path("due"): number(&order::due_key(before))}})),
            None => clauses.push(json!({"LT": {path("due"): number(&undated_key())}})),
        }
    }
    match phase {
        Phase::All => {}
        Phase::Dated => clauses.push(json!({"LT": {&field: number(&undated_key())}})),
        Phase::Undated => clauses.push(json!({"GTE": {&field: number(&undated_key())}})),
    }
    let (bound, beyond, tie_bound) = if sort.descending { ("LTE", "LT", "LTE") } else { ("GTE", "GT", "GTE") };
    match after {
        // (key, tie) past the cursor's, with the bound repeated outside the OR so that it is
        // an index condition; rows with the cursor's own key and tie are sorted out by id here.
        Some((key, id)) => {
            clauses.push(json!({bound: {&field: number(key)}}));
            clauses.push(json!({"OR": [
                {beyond: {&field: number(key)}},
                {"AND": [{"EQ": {&field: key}}, {tie_bound: {path("tie"): number(&order::tie(id))}}]},
            ]}));
        }
        // Every key is within [100000, 200000): the bound keeps tombstones and records without
        // keys (which have none) out, and states the index's range.
        None => clauses.push(json!({bound: {&field: number(if sort.descending { MAX_KEY } else { MIN_KEY })}})),
    }
    ordered(clauses, &field, sort.descending, limit)
}

/// The query of `clauses` (two or more), ordered by `field`, then the tie key and the id, all in
/// one direction, cut at `limit`.
fn ordered(clauses: Vec<Value>, field: &str, descending: bool, limit: u32) -> Query {
    let order = if descending { SortOrder::Desc } else { SortOrder::Asc };
    Query::new()
        .filter(json!({"AND": clauses}))
        .sort(field, order)
        .sort(&path("tie"), order)
        .sort("id", order)
        .limit(limit)
}

/// The smallest and largest order keys.
const MIN_KEY: &str = "100000";
const MAX_KEY: &str = "199999.999999999";

/// Owner, status and priority: equality and `IN`.
fn base_clauses(owner: &str, params: &ListParams) -> Vec<Value> {
    let mut clauses = vec![json!({"EQ": {"owner": owner}})];
    if let Some(status) = params.status {
        clauses.push(json!({"EQ": {"status": status.as_str()}}));
    }
    if !params.priorities.is_empty() {
        let priorities: Vec<&str> = params.priorities.iter().map(|p| p.as_str()).collect();
        clauses.push(json!({"IN": {"priority": priorities}}));
    }
    clauses
}

/// The query for `owner`'s title groups in the list's direction, from the group `from` on
/// (inclusive when `.1`), at most `limit` rows: ordered by group, then tie key and id (which
/// only make the store's order deterministic; the list re-orders each group by title).
pub fn title_query(owner: &str, params: &ListParams, from: Option<(&str, bool)>, limit: u32) -> Query {
    let field = path("title");
    let descending = params.sort.descending;
    let mut clauses = base_clauses(owner, params);
    let bound = match (descending, from) {
        (false, Some((_, true))) | (false, None) => "GTE",
        (false, Some((_, false))) => "GT",
        (true, Some((_, true))) | (true, None) => "LTE",
        (true, Some((_, false))) => "LT",
    };
    let key = from.map_or(if descending { MAX_KEY } else { MIN_KEY }, |(key, _)| key);
    clauses.push(json!({bound: {&field: number(key)}}));
    ordered(clauses, &field, descending, limit)
}

/// Every task of `owner`'s title group `group` under the store's filters (an equality on the
/// group key, the stored text itself), in a stable order for the continuation tokens.
pub fn group_query(owner: &str, params: &ListParams, group: &str) -> Query {
    let mut clauses = base_clauses(owner, params);
    clauses.push(json!({"EQ": {path("title"): group}}));
    Query::new().filter(json!({"AND": clauses})).sort(&path("tie"), SortOrder::Asc).sort("id", SortOrder::Asc)
}

/// Orders tasks read as whole title groups in the list's order (lower-cased title, then id),
/// each with its sort key.
pub fn sort_group(sort: SortBy, tasks: Vec<Task>) -> Vec<(SortKey, Task)> {
    let mut keyed: Vec<_> = tasks.into_iter().map(|task| (sort.key(&task), task)).collect();
    keyed.sort_by(|(ka, a), (kb, b)| sort.compare((ka, a.id), (kb, b.id)));
    keyed
}

/// Whether a row read in store order, with order key `key`, is past the cursor's point:
/// the store's bound includes the cursor's own (key, tie), so equal keys are decided by id.
pub fn is_after(sort: SortBy, cursor: (&str, Uuid), row: (&str, Uuid)) -> bool {
    let (a, b) = (SortKey::Order(row.0.to_owned()), SortKey::Order(cursor.0.to_owned()));
    sort.compare((&a, row.1), (&b, cursor.1)).is_gt()
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

/// Whether a stored task (as the store returned its JSON) can pass the search and the tags:
/// `false` only when it cannot, so that a search rejects most rows without decoding them;
/// [`matches`] decides for the rest.
pub fn may_match(stored: &Value, params: &ListParams) -> bool {
    if let Some(q) = &params.q {
        let text = |field: &str| stored.get(field).and_then(Value::as_str).unwrap_or_default();
        if !search::contains(text("title"), q) && !search::contains(text("description"), q) {
            return false;
        }
    }
    let tags = stored.get("tags").and_then(Value::as_array);
    params.tags.iter().all(|tag| tags.is_some_and(|tags| tags.iter().any(|t| t.as_str() == Some(tag.as_str()))))
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<Task>,
    /// Present when more items follow.
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::BTreeSet;

    use chrono::{DateTime, Duration, Utc};
    use chrono_tz::Tz;
    use todo_core::task::{Priority, Status};
    use uuid::Uuid;

    use super::*;
    use crate::cursor::Cursor;
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

    /// The list's semantics over tasks in memory (filters, total order, the page after the
    /// cursor): what the store-side paths must agree with.
    pub fn page(candidates: Vec<Task>, owner: &str, params: &ListParams) -> Page {
        let sort = params.sort;
        let keyed = sort_group(sort, candidates.into_iter().filter(|task| matches(task, owner, params)).collect());
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

    fn ids(page: &Page) -> Vec<u128> {
        page.items.iter().map(|t| t.id.as_u128()).collect()
    }

    fn list(tasks: &[Task], query: &str) -> Page {
        page(tasks.to_vec(), "alice", &parse(Some(query)).unwrap())
    }

    #[test]
    fn title_queries_range_over_groups_and_groups_are_read_by_equality() {
        let params = parse(Some("sort=-title&status=open")).unwrap();
        let first = serde_json::to_value(title_query("alice", &params, None, 53)).unwrap();
        assert_eq!(
            first["filter"]["AND"],
            json!([{"EQ": {"owner": "alice"}}, {"EQ": {"status": "open"}}, {"LTE": {"_order.title": 199999.999999999}}])
        );
        assert_eq!(
            first["sort"],
            json!([{"key": "_order.title", "order": "DESC"}, {"key": "_order.tie", "order": "DESC"}, {"key": "id", "order": "DESC"}])
        );
        let group = order::title_group("buy milk");
        let resumed = serde_json::to_value(title_query("alice", &params, Some((&group, true)), 53)).unwrap();
        assert_eq!(resumed["filter"]["AND"][2], json!({"LTE": {"_order.title": number(&group)}}));
        let after =
            serde_json::to_value(title_query("alice", &parse(Some("sort=title")).unwrap(), Some((&group, false)), 9))
                .unwrap();
        assert_eq!(after["filter"]["AND"][1], json!({"GT": {"_order.title": number(&group)}}));
        assert_eq!(after["page"]["limit"], 9);
        let whole = serde_json::to_value(group_query("alice", &parse(Some("priority=high")).unwrap(), &group)).unwrap();
        assert_eq!(
            whole["filter"]["AND"],
            json!([{"EQ": {"owner": "alice"}}, {"IN": {"priority": ["high"]}}, {"EQ": {"_order.title": group}}]),
            "the group as the stored text: EQ takes strings"
        );
    }

    #[test]
    fn may_match_rejects_on_the_stored_json_only_what_matches_would() {
        let mut t = task(1, "Buy OAT milk");
        t.tags = BTreeSet::from(["home".to_owned(), "errand".to_owned()]);
        let stored = serde_json::to_value(&t).unwrap();
        for query in [
            "q=milk",
            "q=oat+milk",
            "tag=home",
            "tag=home&tag=errand&q=buy",
            "q=xylophone",
            "tag=work",
            "tag=home&tag=work",
            "",
        ] {
            let params = parse(Some(query)).unwrap();
            assert_eq!(may_match(&stored, &params), matches(&t, "alice", &params), "{query}");
        }
    }

    #[test]
    fn minus_due_reads_dated_then_undated_tasks() {
        let phases_of = |query: &str| phases(&parse(Some(query)).unwrap());
        assert_eq!(phases_of("sort=title"), None, "the store cannot order titles");
        assert_eq!(phases_of("sort=due"), Some(vec![Phase::All]), "undated keys are above every date");
        assert_eq!(phases_of("sort=-priority"), Some(vec![Phase::All]));
        assert_eq!(phases_of("sort=-due"), Some(vec![Phase::Dated, Phase::Undated]));
        assert_eq!(phases_of("sort=-due&due_after=2026-01-01T00:00:00Z"), Some(vec![Phase::Dated]));
        let mut resumed = parse(Some("sort=-due")).unwrap();
        resumed.cursor = Some(Cursor {
            sort: resumed.sort,
            key: SortKey::Order(undated_key()),
            id: Uuid::nil(),
            query: resumed.fingerprint(),
        });
        assert_eq!(phases(&resumed), Some(vec![Phase::Undated]), "a cursor among undated tasks stays there");
    }

    #[test]
    fn a_batch_query_bounds_the_key_and_orders_by_key_tie_id() {
        let params = parse(Some("sort=-due&due_before=2026-12-01T00:00:00Z")).unwrap();
        let query = serde_json::to_value(store_query("alice", &params, Phase::Dated, None, 52)).unwrap();
        let before = order::due_key("2026-12-01T00:00:00Z".parse().unwrap());
        assert_eq!(
            query["filter"]["AND"],
            json!([
                {"EQ": {"owner": "alice"}},
                {"LTE": {"_order.due": number(&before)}},
                {"LT": {"_order.due": 190000}},
                {"LTE": {"_order.due": 199999.999999999}},
            ])
        );
        assert_eq!(
            query["sort"],
            json!([{"key": "_order.due", "order": "DESC"}, {"key": "_order.tie", "order": "DESC"}, {"key": "id", "order": "DESC"}])
        );
        assert_eq!(query["page"]["limit"], 52);
        // A row with the cursor's own key is new only past the cursor's id, in the sort's direction.
        let asc = SortBy::parse("created").unwrap();
        let desc = SortBy::parse("-created").unwrap();
        let (one, two) = (Uuid::from_u128(1), Uuid::from_u128(2));
        assert!(is_after(asc, ("100001", one), ("100001", two)) && !is_after(asc, ("100001", two), ("100001", one)));
        assert!(is_after(desc, ("100001", two), ("100001", one)) && !is_after(desc, ("100001", one), ("100001", one)));
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
