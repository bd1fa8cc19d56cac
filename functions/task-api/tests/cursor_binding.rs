//! A cursor is bound to the query that produced it: page 2 asked with other filters or another
//! sort is a 400 naming `cursor`, never a page of a list that page 1 did not show.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Harness, ids, task};
use todo_core::task::Priority;

#[tokio::test]
async fn page_two_with_other_filters_or_sort_is_refused() {
    let h = Harness::start().await;
    for n in 1..=6 {
        let mut t = task(n, "alice", &format!("task {n}"));
        t.priority = if n % 2 == 0 { Priority::High } else { Priority::Low };
        if n <= 4 {
            t.tags.insert("home".into());
        }
        h.put_task(&t);
    }
    let query = "tag=home&priority=high,low&sort=-due&limit=2";
    let first = h.get(&format!("/v1/tasks?{query}")).user("alice").send().await;
    assert_eq!(first.status, 200);
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();

    // The same query (parameters in another order, another page size) pages on.
    let same = h.get(&format!("/v1/tasks?limit=5&sort=-due&priority=low&priority=high&tag=home&cursor={cursor}"));
    let same = same.user("alice").send().await;
    assert_eq!(same.status, 200, "{:?}", same.body);
    assert_eq!(ids(&same.body).len(), 2, "tasks 1..=4 carry the tag; two were on page 1");

    for changed in [
        "priority=high,low&sort=-due&limit=2",
        "tag=home&sort=-due&limit=2",
        "tag=home&priority=high,low&sort=due&limit=2",
        "tag=home&priority=high,low&sort=-due&limit=2&q=task",
        "tag=home&priority=high,low&sort=-due&limit=2&status=open",
    ] {
        let answer = h.get(&format!("/v1/tasks?{changed}&cursor={cursor}")).user("alice").send().await;
        assert_eq!(answer.status, 400, "{changed}: {:?}", answer.body);
        assert_eq!(answer.field(), Some("cursor"), "{changed}");
        let error = answer.body["error"].as_str().unwrap();
        assert!(
            error.starts_with("made for a different query (filters or sort changed); start again without cursor"),
            "{changed}: {error}"
        );
    }
}
