//! `GET /v1/tasks`: isolation, the Query API request, every filter and sort, Unicode search,
//! keyset pagination across pages, and parameter errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use axum::http::Method;
use chrono::{DateTime, Duration};
use common::{Harness, ids, now, task};
use dapr_fn::clock::Clock;
use dapr_fn::runtime::RuntimeConfig;
use serde_json::{Value, json};
use todo_core::task::{Priority, Status, Task};
use uuid::Uuid;

fn tagged(mut t: Task, tags: &[&str]) -> Task {
    t.tags = tags.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>();
    t
}

fn due(mut t: Task, at: &str) -> Task {
    t.due = Some(DateTime::parse_from_rfc3339(at).unwrap());
    t
}

/// A small but varied list for alice, plus noise that must never show: bob's task and a tombstone.
fn seed(h: &Harness) {
    let mut t1 = due(tagged(task(1, "alice", "Pay rent"), &["home", "money"]), "2026-12-01T09:00:00+01:00");
    t1.priority = Priority::High;
    let mut t2 = tagged(task(2, "alice", "buy milk"), &["home", "errand"]);
    t2.description = "Oat MILK, not cow".into();
    t2.priority = Priority::Low;
    let mut t3 = due(task(3, "alice", "Call mum"), "2026-11-25T18:00:00Z");
    t3.status = Status::Completed;
    t3.completed_at = Some(now());
    t3.priority = Priority::Urgent;
    t3.updated_at = now() + Duration::days(1);
    let t4 = due(tagged(task(4, "alice", "Dentist"), &["health"]), "2026-12-10T08:00:00Z");
    let mut bobs = task(5, "bob", "bob's milk");
    bobs.priority = Priority::High;
    let mut gone = task(6, "alice", "deleted milk");
    gone.deleted_at = Some(now());
    for t in [t1, t2, t3, t4, bobs, gone] {
        h.put_task(&t);
    }
}

async fn list(h: &Harness, query: &str) -> Value {
    let answer = h.get(&format!("/v1/tasks{query}")).user("alice").send().await;
    assert_eq!(answer.status, 200, "{query}: {:?}", answer.body);
    answer.body
}

/// A listed task is the same document, field for field and in the same order, as its GET.
#[tokio::test]
async fn a_listed_task_reads_exactly_like_its_get() {
    let h = Harness::start().await;
    seed(&h);
    let listed = h.get("/v1/tasks?limit=50").user("alice").send().await;
    assert_eq!(listed.status, 200);
    for item in listed.body["items"].as_array().unwrap() {
        let got = h.get(&format!("/v1/tasks/{}", item["id"].as_str().unwrap())).user("alice").send().await;
        assert_eq!(got.status, 200);
        assert!(listed.text.contains(&got.text), "GET {} not found verbatim in {}", got.text, listed.text);
    }
}

#[tokio::test]
async fn only_the_callers_live_tasks_newest_first() {
    let h = Harness::start().await;
    seed(&h);
    let body = list(&h, "").await;
    assert_eq!(ids(&body), vec![4, 3, 2, 1], "default sort is -created; bob's and the tombstone never show");
    assert_eq!(body["next_cursor"], Value::Null);
    assert!(body["items"].as_array().unwrap().iter().all(|t| t["owner"] == "alice"));
    let bob = h.get("/v1/tasks").user("bob").send().await;
    assert_eq!(ids(&bob.body), vec![5]);
    let nobody = h.get("/v1/tasks").user("carol").send().await;
    assert_eq!(nobody.body, json!({"items": [], "next_cursor": null}));
}

#[tokio::test]
async fn owner_status_and_priority_are_pushed_down_to_the_query_api() {
    let h = Harness::start().await;
    seed(&h);
    list(&h, "").await;
    list(&h, "?status=open&priority=high&priority=low").await;
    list(&h, "?sort=title").await;
    let queries = h.stub.requests_to(Method::POST, "/v1.0-alpha1/state/tasks/query");
    assert_eq!(queries.len(), 3);
    // The default order, newest first: the store sorts on the order key and cuts the page.
    assert_eq!(
        queries[0].body["filter"],
        json!({"AND": [{"EQ": {"owner": "alice"}}, {"LTE": {"_order.created": 199999.999999999}}]})
    );
    assert_eq!(
        queries[0].body["sort"],
        json!([{"key": "_order.created", "order": "DESC"}, {"key": "_order.tie", "order": "DESC"}, {"key": "id", "order": "DESC"}])
    );
    assert_eq!(queries[0].body["page"]["limit"], 52, "the page, one to know more follow, one spare");
    assert_eq!(
        queries[1].body["filter"],
        json!({"AND": [{"EQ": {"owner": "alice"}}, {"EQ": {"status": "open"}}, {"IN": {"priority": ["high", "low"]}},
                       {"LTE": {"_order.created": 199999.999999999}}]})
    );
    // Titles: the store orders and bounds title groups; the page is ordered by title here.
    assert_eq!(
        queries[2].body["filter"],
        json!({"AND": [{"EQ": {"owner": "alice"}}, {"GTE": {"_order.title": 100000}}]})
    );
    assert_eq!(
        queries[2].body["sort"],
        json!([{"key": "_order.title", "order": "ASC"}, {"key": "_order.tie", "order": "ASC"}, {"key": "id", "order": "ASC"}])
    );
    assert_eq!(queries[2].body["page"]["limit"], 53, "the page, its spare, and one to see a cut group");
}

#[tokio::test]
async fn a_cursor_resumes_with_a_range_on_the_order_key_and_its_tie() {
    let h = Harness::start().await;
    seed(&h);
    let first = list(&h, "?sort=due&limit=1").await;
    assert_eq!(ids(&first), vec![3]);
    h.stub.clear_requests();
    let cursor = first["next_cursor"].as_str().unwrap();
    assert_eq!(ids(&list(&h, &format!("?sort=due&limit=1&cursor={cursor}")).await), vec![1]);
    let queries = h.stub.requests_to(Method::POST, "/v1.0-alpha1/state/tasks/query");
    let stored = h.stub.state("tasks", &format!("task:{}", Uuid::from_u128(3))).unwrap();
    let (key, tie) = (stored["_order"]["due"].as_str().unwrap(), stored["_order"]["tie"].as_str().unwrap());
    let number = |k: &str| json!(todo_core::order::as_number(k).unwrap());
    assert_eq!(
        queries[0].body["filter"]["AND"],
        json!([
            {"EQ": {"owner": "alice"}},
            {"GTE": {"_order.due": number(key)}},
            {"OR": [{"GT": {"_order.due": number(key)}},
                    {"AND": [{"EQ": {"_order.due": key}}, {"GTE": {"_order.tie": number(tie)}}]}]},
        ])
    );
}

#[tokio::test]
async fn each_filter() {
    let h = Harness::start().await;
    seed(&h);
    let cases: [(&str, Vec<u128>); 12] = [
        ("?status=open&sort=created", vec![1, 2, 4]),
        ("?status=completed", vec![3]),
        ("?priority=high", vec![1]),
        ("?priority=high&priority=urgent&sort=created", vec![1, 3]),
        ("?priority=low,medium&sort=created", vec![2, 4]),
        ("?q=MILK", vec![2]),
        ("?q=oat+milk", vec![2]),
        ("?q=rent&status=completed", vec![]),
        ("?tag=home&sort=created", vec![1, 2]),
        ("?tag=home&tag=money", vec![1]),
        ("?due_after=2026-11-30T00:00:00Z&sort=due", vec![1, 4]),
        ("?due_before=2026-12-01T08:00:00Z&due_after=2026-11-01T00:00:00%2B01:00&sort=due", vec![3]),
    ];
    for (query, expected) in cases {
        assert_eq!(ids(&list(&h, query).await), expected, "{query}");
    }
    // Task 1 is due 2026-12-01T08:00Z exactly: `due_before` is exclusive.
    assert_eq!(ids(&list(&h, "?due_before=2026-12-01T08:00:00.001Z&sort=due").await), vec![3, 1]);
}

/// `q` is a compatibility caseless match (src/search.rs): full case folding and Unicode
/// normalisation of both sides, so spelling, case and encoding of the same text do not matter.
#[tokio::test]
async fn search_is_unicode_caseless() {
    let h = Harness::start().await;
    let mut cafe_nfd = task(3, "alice", "Errand");
    cafe_nfd.description = "Beans from Cafe\u{301} Central".into();
    let tasks = [
        task(1, "alice", "Hauptstraße 5"),
        task(2, "alice", "Café order"),
        cafe_nfd,
        task(4, "alice", "STRASSENFEST planen"),
        task(5, "bob", "Hauptstraße 7"),
    ];
    for t in &tasks {
        h.put_task(t);
    }
    let cases: [(&str, Vec<u128>); 5] = [
        ("?q=STRASSE&sort=created", vec![1, 4]),
        ("?q=stra%C3%9Fe&sort=created", vec![1, 4]),
        ("?q=Hauptstrasse+5", vec![1]),
        // "Café" sent decomposed (e + U+0301) and precomposed: each finds both spellings.
        ("?q=Cafe%CC%81&sort=created", vec![2, 3]),
        ("?q=CAF%C3%89&sort=created", vec![2, 3]),
    ];
    for (query, expected) in cases {
        assert_eq!(ids(&list(&h, query).await), expected, "{query}");
    }
    // One search however it is spelled: a cursor from `STRASSE` pages on under `straße`.
    let first = list(&h, "?q=STRASSE&sort=created&limit=1").await;
    assert_eq!(ids(&first), vec![1]);
    let cursor = first["next_cursor"].as_str().unwrap();
    assert_eq!(ids(&list(&h, &format!("?q=stra%C3%9Fe&sort=created&limit=1&cursor={cursor}")).await), vec![4]);
}

#[tokio::test]
async fn each_sort_order() {
    let h = Harness::start().await;
    seed(&h);
    let cases: [(&str, Vec<u128>); 10] = [
        ("due", vec![3, 1, 4, 2]),
        ("-due", vec![4, 1, 3, 2]),
        ("priority", vec![2, 4, 1, 3]),
        ("-priority", vec![3, 1, 4, 2]),
        ("created", vec![1, 2, 3, 4]),
        ("-created", vec![4, 3, 2, 1]),
        ("updated", vec![1, 2, 4, 3]),
        ("-updated", vec![3, 4, 2, 1]),
        ("title", vec![2, 3, 4, 1]),
        ("-title", vec![1, 4, 3, 2]),
    ];
    for (sort, expected) in cases {
        assert_eq!(ids(&list(&h, &format!("?sort={sort}")).await), expected, "sort={sort}");
    }
}

#[tokio::test]
async fn pages_follow_the_cursor_without_duplicates_or_gaps_across_inserts() {
    let h = Harness::start().await;
    for n in 1..=25 {
        let mut t = task(n * 10, "alice", &format!("task {n}"));
        t.priority = if n % 2 == 0 { Priority::High } else { Priority::Low };
        h.put_task(&t);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &cursor {
            Some(c) => format!("?sort=-priority&limit=10&cursor={c}"),
            None => "?sort=-priority&limit=10".to_owned(),
        };
        let body = list(&h, &query).await;
        pages += 1;
        assert!(ids(&body).len() <= 10);
        seen.extend(ids(&body));
        if pages == 1 {
            // Inserted between pages: one sorts before the cursor (never shows), one after.
            let mut early = task(5, "alice", "new high");
            early.priority = Priority::Urgent;
            h.put_task(&early);
            let mut late = task(255, "alice", "new low");
            late.priority = Priority::Low;
            h.put_task(&late);
        }
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    // Urgent first; within a priority, the exact reverse of `priority`: newest first.
    let high: Vec<u128> = (1..=25).rev().filter(|n| n % 2 == 0).map(|n| n * 10).collect();
    let mut low: Vec<u128> = (1..=25).rev().filter(|n| n % 2 == 1).map(|n| n * 10).collect();
    low.insert(0, 255);
    let expected: Vec<u128> = high.into_iter().chain(low).collect();
    assert_eq!(seen, expected);
    assert_eq!(pages, 3);
}

#[tokio::test]
async fn bad_parameters_are_400_naming_the_parameter_and_read_nothing() {
    let h = Harness::start().await;
    let other_sort_cursor = {
        for n in 1..=3 {
            h.put_task(&task(n, "alice", "t"));
        }
        let first = list(&h, "?sort=title&limit=1").await;
        first["next_cursor"].as_str().unwrap().to_owned()
    };
    h.stub.clear_requests();
    let cases = [
        ("?sort=name".to_owned(), "sort"),
        ("?limit=0".to_owned(), "limit"),
        ("?limit=201".to_owned(), "limit"),
        ("?limit=many".to_owned(), "limit"),
        ("?cursor=garbage!".to_owned(), "cursor"),
        (format!("?cursor={other_sort_cursor}&sort=-title"), "cursor"),
        (format!("?cursor={other_sort_cursor}"), "cursor"),
        ("?status=done".to_owned(), "status"),
        ("?priority=meh".to_owned(), "priority"),
        ("?due_before=next+week".to_owned(), "due_before"),
        ("?due_after=2026-12-01".to_owned(), "due_after"),
        ("?tags=home".to_owned(), "tags"),
    ];
    for (query, field) in cases {
        let answer = h.get(&format!("/v1/tasks{query}")).user("alice").send().await;
        assert_eq!((answer.status, answer.field()), (400, Some(field)), "{query}: {:?}", answer.body);
    }
    assert!(h.state_requests().is_empty(), "no query for a bad request");
    let ok = list(&h, &format!("?sort=title&limit=1&cursor={other_sort_cursor}")).await;
    assert_eq!(ids(&ok), vec![2], "the same cursor with its own sort works");
}

#[tokio::test]
async fn a_title_group_larger_than_a_query_page_is_read_whole() {
    let h = Harness::start().await;
    // One title group (the same first seven characters) of more than one Query API page.
    for n in 1..=task_api::scan::PAGE_SIZE as u128 + 1 {
        h.put_task(&task(n, "alice", &format!("Weekly {}", 9999 - n)));
    }
    let mut seen = Vec::new();
    let mut query = "?limit=200&sort=title".to_owned();
    loop {
        let answer = h.get(&format!("/v1/tasks{query}")).user("alice").send().await;
        assert_eq!(answer.header("x-scan-truncated"), None);
        seen.extend(ids(&answer.body));
        match answer.body["next_cursor"].as_str() {
            Some(next) => query = format!("?limit=200&sort=title&cursor={next}"),
            None => break,
        }
    }
    let expected: Vec<u128> = (1..=task_api::scan::PAGE_SIZE as u128 + 1).rev().collect();
    assert_eq!(seen, expected, "ordered by the whole title, each task once");
    let tokens = h
        .stub
        .requests_to(Method::POST, "/v1.0-alpha1/state/tasks/query")
        .into_iter()
        .filter(|r| {
            r.body["filter"]["AND"][1]["EQ"].get("_order.title").is_some() && r.body["page"].get("token").is_some()
        })
        .count();
    assert!(tokens > 0, "the group's continuation token is followed");
}

/// Titles across many groups, some sharing their first seven characters, in both directions,
/// with inserts between pages: every page continues exactly after the last.
#[tokio::test]
async fn title_pages_cross_groups_without_duplicates_or_gaps() {
    let h = Harness::start().await;
    let titles = [
        "Weekly report 3",
        "weekly report 10",
        "Weekly report 2",
        "Buy milk",
        "buy Milk",
        "Äpfel kaufen",
        "äpfel",
        "Zebra",
        "zebra crossing",
        "Call mum",
        "call",
        "Weekly",
        "Weekly rep",
        "Ωmega",
        "1st",
        "weekly report 2",
    ];
    let tasks: Vec<Task> = titles.iter().enumerate().map(|(n, title)| task(n as u128 + 1, "alice", title)).collect();
    for t in &tasks {
        h.put_task(t);
    }
    let mut expected: Vec<(String, u128)> = tasks.iter().map(|t| (t.title.to_lowercase(), t.id.as_u128())).collect();
    expected.sort();
    for sort in ["title", "-title"] {
        let mut want: Vec<u128> = expected.iter().map(|(_, id)| *id).collect();
        if sort == "-title" {
            want.reverse();
        }
        let mut seen = Vec::new();
        let mut query = format!("?sort={sort}&limit=3");
        let mut pages = 0;
        loop {
            let body = list(&h, &query).await;
            seen.extend(ids(&body));
            pages += 1;
            if pages == 2 && sort == "title" {
                // Before the cursor (never shows) and after it (shows in place).
                h.put_task(&task(100, "alice", "Aardvark"));
                h.put_task(&task(101, "alice", "weekly report 25"));
            }
            match body["next_cursor"].as_str() {
                Some(next) => query = format!("?sort={sort}&limit=3&cursor={next}"),
                None => break,
            }
        }
        if sort == "title" {
            // "weekly report 25" goes after both "weekly report 2" (3, then 16 by id).
            let at = want.iter().position(|id| *id == 16).unwrap();
            want.insert(at + 1, 101);
            assert_eq!(seen, want, "sort={sort}");
            // Both inserted tasks exist from here on.
            expected.push(("aardvark".into(), 100));
            expected.push(("weekly report 25".into(), 101));
            expected.sort();
        } else {
            assert_eq!(seen, want, "sort={sort}: the exact reverse");
        }
    }
}

#[tokio::test]
async fn the_scan_limit_shortens_a_page_but_loses_nothing() {
    let mut config = common::config();
    config.list_scan_limit = 3;
    config.search_scan_limit = 3;
    let small = Harness::custom(config, RuntimeConfig::default(), |_| Clock::fixed(now())).await;
    for n in 1..=7 {
        let mut t = task(n, "alice", "t");
        t.priority = if n <= 3 { Priority::High } else { Priority::Low };
        if n == 7 {
            t.title = "the needle".into();
        }
        small.put_task(&t);
    }
    // Sorted by the store: a search reads 3 tasks per request, and each answer resumes after
    // the last one read, so the match is found however far it is.
    let mut found = Vec::new();
    let mut requests = 0;
    let mut query = "?sort=created&q=needle".to_owned();
    loop {
        let answer = small.get(&format!("/v1/tasks{query}")).user("alice").send().await;
        requests += 1;
        found.extend(ids(&answer.body));
        match answer.body["next_cursor"].as_str() {
            Some(next) => {
                assert_eq!(answer.header("x-scan-truncated"), Some("true"), "a short page says why");
                query = format!("?sort=created&q=needle&cursor={next}");
            }
            None => break,
        }
    }
    assert_eq!((found, requests), (vec![7], 3));
    let exact = small.get("/v1/tasks?priority=high&sort=created").user("alice").send().await;
    assert_eq!(exact.header("x-scan-truncated"), None, "the page filled before the bound: complete");
    assert_eq!(ids(&exact.body), vec![1, 2, 3]);

    // A title group larger than the bound (six tasks named "t") is ordered from its first
    // rows only, and the answer says so.
    let answer = small.get("/v1/tasks?sort=title").user("alice").send().await;
    assert_eq!(answer.header("x-scan-truncated"), Some("true"));
    assert_eq!(ids(&answer.body).len(), 3);
    let exact = small.get("/v1/tasks?priority=high&sort=title").user("alice").send().await;
    assert_eq!(exact.header("x-scan-truncated"), None, "exactly the limit matched: complete");
}

#[tokio::test]
async fn an_undecodable_stored_task_is_skipped_not_fatal() {
    let h = Harness::start().await;
    h.put_task(&task(1, "alice", "fine"));
    h.stub.put_state("tasks", "task:broken", json!({"owner": "alice", "title": 42}));
    let body = list(&h, "").await;
    assert_eq!(ids(&body), vec![1]);
}

#[tokio::test]
async fn pages_through_a_tie_group_larger_than_a_batch() {
    let h = Harness::start().await;
    // Same creation time and, ids being small, the same tie key: one group of 30 equal keys.
    for n in 1..=30 {
        let mut t = task(n, "alice", "same");
        t.created_at = now();
        h.put_task(&t);
    }
    for sort in ["created", "-created"] {
        let mut seen = Vec::new();
        let mut query = format!("?sort={sort}&limit=4");
        loop {
            let body = list(&h, &query).await;
            seen.extend(ids(&body));
            match body["next_cursor"].as_str() {
                Some(next) => query = format!("?sort={sort}&limit=4&cursor={next}"),
                None => break,
            }
        }
        let mut expected: Vec<u128> = (1..=30).collect();
        if sort.starts_with('-') {
            expected.reverse();
        }
        assert_eq!(seen, expected, "sort={sort}: ties by id, every task once");
    }
}
