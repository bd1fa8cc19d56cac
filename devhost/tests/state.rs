//! Stage 2: the state API with `state.postgresql` v1 semantics: status codes, ETags,
//! first-write, bulk `data`, atomic transactions, the Query API, `keyPrefix` modes and TTL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod common;

use std::time::Duration;

use common::{FakeApp, Sidecar};
use devhost::{AppSpec, Devhost};
use serde_json::{Value, json};

struct Env {
    devhost: Devhost,
    a: Sidecar,
    b: Sidecar,
    _apps: (FakeApp, FakeApp),
}

async fn env() -> Env {
    let (app_a, app_b) = (FakeApp::start(None).await, FakeApp::start(None).await);
    let resources = [
        common::state_store("shared", ""),
        common::state_store("private", "").replace("keyPrefix, value: name", "keyPrefix, value: appid"),
        common::state_store("raw", "").replace("keyPrefix, value: name", "keyPrefix, value: none"),
        format!("{}scopes: [a]\n", common::state_store("only-a", "")),
    ];
    let mut builder = Devhost::builder().app(AppSpec::new("a", app_a.port)).app(AppSpec::new("b", app_b.port));
    for r in resources {
        builder = builder.resources_yaml(r);
    }
    let devhost = builder.start().await.unwrap();
    let a = Sidecar::new(devhost.sidecar_url("a"));
    let b = Sidecar::new(devhost.sidecar_url("b"));
    Env { devhost, a, b, _apps: (app_a, app_b) }
}

async fn save(s: &Sidecar, store: &str, items: Value) -> common::Resp {
    s.post_json(&format!("/v1.0/state/{store}"), &items).await
}

#[tokio::test]
async fn get_save_and_etags() {
    let e = env().await;
    let missing = e.a.get("/v1.0/state/shared/k").await;
    assert_eq!(missing.status, 204);
    assert!(missing.body.is_empty());

    assert_eq!(save(&e.a, "shared", json!([{"key": "k", "value": {"n": 1}}])).await.status, 204);
    let got = e.a.get("/v1.0/state/shared/k").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json(), json!({"n": 1}));
    let etag = got.header("etag").unwrap().to_owned();
    assert!(etag.parse::<u64>().is_ok(), "integer ETag, got {etag}");

    // A matching ETag succeeds and changes the ETag; the old one is now stale: 409.
    assert_eq!(save(&e.a, "shared", json!([{"key": "k", "value": {"n": 2}, "etag": etag}])).await.status, 204);
    let stale = save(&e.a, "shared", json!([{"key": "k", "value": {"n": 3}, "etag": etag}])).await;
    assert_eq!((stale.status, stale.error_code().as_str()), (409, "ERR_STATE_SAVE"));
    assert_eq!(e.a.get("/v1.0/state/shared/k").await.json(), json!({"n": 2}));

    let invalid = save(&e.a, "shared", json!([{"key": "k", "value": 1, "etag": "not-a-number"}])).await;
    assert_eq!((invalid.status, invalid.error_code().as_str()), (400, "ERR_STATE_SAVE"));
    let on_missing = save(&e.a, "shared", json!([{"key": "nope", "value": 1, "etag": "1"}])).await;
    assert_eq!(on_missing.status, 409);

    // Keys are path segments: reserved characters arrive percent-encoded.
    assert_eq!(save(&e.a, "shared", json!([{"key": "task:a/b c", "value": 5}])).await.status, 204);
    assert_eq!(e.a.get("/v1.0/state/shared/task:a%2Fb%20c").await.json(), json!(5));

    // Values are JSON: a string comes back as a JSON string.
    save(&e.a, "shared", json!([{"key": "s", "value": "text"}])).await;
    assert_eq!(e.a.get("/v1.0/state/shared/s").await.body, b"\"text\"");
    e.devhost.shutdown().await;
}

#[tokio::test]
async fn first_write_without_etag_inserts_only() {
    let e = env().await;
    let insert = json!([{"key": "marker", "value": 1, "options": {"concurrency": "first-write"}}]);
    assert_eq!(save(&e.a, "shared", insert.clone()).await.status, 204);
    let again = save(&e.a, "shared", insert).await;
    assert_eq!((again.status, again.error_code().as_str()), (500, "ERR_STATE_SAVE"));
    // Last-write (the default) overwrites.
    assert_eq!(save(&e.a, "shared", json!([{"key": "marker", "value": 2}])).await.status, 204);
    assert_eq!(e.a.get("/v1.0/state/shared/marker").await.json(), json!(2));
    e.devhost.shutdown().await;
}

#[tokio::test]
async fn delete_with_if_match() {
    let e = env().await;
    save(&e.a, "shared", json!([{"key": "d", "value": 1}])).await;
    let etag = e.a.get("/v1.0/state/shared/d").await.header("etag").unwrap().to_owned();
    let stale = e.a.delete("/v1.0/state/shared/d", Some("999999")).await;
    assert_eq!((stale.status, stale.error_code().as_str()), (409, "ERR_STATE_DELETE"));
    assert_eq!(e.a.delete("/v1.0/state/shared/d", Some("zzz")).await.status, 400);
    assert_eq!(e.a.delete("/v1.0/state/shared/d", Some(&etag)).await.status, 204);
    assert_eq!(e.a.get("/v1.0/state/shared/d").await.status, 204);
    // Deleting what is not there without an ETag is fine.
    assert_eq!(e.a.delete("/v1.0/state/shared/d", None).await.status, 204);
    e.devhost.shutdown().await;
}

#[tokio::test]
async fn bulk_get_answers_data_not_value() {
    let e = env().await;
    save(&e.a, "shared", json!([{"key": "x", "value": {"v": "x"}}, {"key": "y", "value": [1, 2]}])).await;
    let r = e.a.post_json("/v1.0/state/shared/bulk", &json!({"keys": ["x", "missing", "y"], "parallelism": 10})).await;
    assert_eq!(r.status, 200);
    let items = r.json();
    assert_eq!(items[0]["key"], "x");
    assert_eq!(items[0]["data"], json!({"v": "x"}));
    assert!(items[0]["etag"].as_str().unwrap().parse::<u64>().is_ok());
    assert_eq!(items[1], json!({"key": "missing"}));
    assert_eq!(items[2]["data"], json!([1, 2]));
    assert!(items[0].get("value").is_none());
    e.devhost.shutdown().await;
}

#[tokio::test]
async fn transactions_are_atomic_and_fail_with_500() {
    let e = env().await;
    save(&e.a, "shared", json!([{"key": "t1", "value": "old"}, {"key": "gone", "value": 1}])).await;
    let tx = |ops: Value| {
        let a = e.a.clone();
        async move { a.post_json("/v1.0/state/shared/transaction", &json!({"operations": ops})).await }
    };
    // The second op has a stale ETag: nothing is written, and the answer is 500, not 409.
    let failed = tx(json!([
        {"operation": "upsert", "request": {"key": "t1", "value": "new"}},
        {"operation": "upsert", "request": {"key": "t2", "value": "new", "etag": "424242"}},
    ]))
    .await;
    assert_eq!((failed.status, failed.error_code().as_str()), (500, "ERR_STATE_TRANSACTION"));
    assert_eq!(e.a.get("/v1.0/state/shared/t1").await.json(), json!("old"));
    assert_eq!(e.a.get("/v1.0/state/shared/t2").await.status, 204);
    // An existing key under first-write also fails the whole transaction.
    let dup = tx(json!([
        {"operation": "upsert", "request": {"key": "t3", "value": 1}},
        {"operation": "upsert", "request": {"key": "t1", "value": 1, "options": {"concurrency": "first-write"}}},
    ]))
    .await;
    assert_eq!(dup.status, 500);
    assert_eq!(e.a.get("/v1.0/state/shared/t3").await.status, 204);

    let ok = tx(json!([
        {"operation": "upsert", "request": {"key": "t1", "value": "new"}},
        {"operation": "delete", "request": {"key": "gone"}},
    ]))
    .await;
    assert_eq!(ok.status, 204);
    assert_eq!(e.a.get("/v1.0/state/shared/t1").await.json(), json!("new"));
    assert_eq!(e.a.get("/v1.0/state/shared/gone").await.status, 204);

    let bad = tx(json!([{"operation": "merge", "request": {"key": "t1"}}])).await;
    assert_eq!((bad.status, bad.error_code().as_str()), (400, "ERR_NOT_SUPPORTED_STATE_OPERATION"));
    let malformed = e.a.send(http::Method::POST, "/v1.0/state/shared/transaction", &[], Some(b"{nope".to_vec())).await;
    assert_eq!((malformed.status, malformed.error_code().as_str()), (400, "ERR_MALFORMED_REQUEST"));
    e.devhost.shutdown().await;
}

#[tokio::test]
async fn query_filters_sorts_and_pages() {
    let e = env().await;
    let tasks: Vec<Value> = (0..5)
        .map(|i| {
            json!({"key": format!("task:{i}"), "value": {
                "owner": if i % 2 == 0 { "alice" } else { "bob" },
                "status": if i < 3 { "open" } else { "done" },
                "meta": {"rank": format!("r{}", 9 - i)},
            }})
        })
        .collect();
    save(&e.a, "shared", Value::Array(tasks)).await;
    let query = |q: Value| {
        let a = e.a.clone();
        async move { a.post_json("/v1.0-alpha1/state/shared/query", &q).await }
    };
    let keys = |r: &common::Resp| -> Vec<String> {
        r.json()["results"].as_array().unwrap().iter().map(|i| i["key"].as_str().unwrap().to_owned()).collect()
    };

    let eq = query(json!({"filter": {"EQ": {"owner": "alice"}}, "sort": [{"key": "meta.rank", "order": "ASC"}]})).await;
    assert_eq!(eq.status, 200);
    // Keys come back without the `shared||` prefix, sorted by the nested field.
    assert_eq!(keys(&eq), ["task:4", "task:2", "task:0"]);
    let first = &eq.json()["results"][0];
    assert_eq!(first["data"]["owner"], "alice");
    assert!(first["etag"].as_str().unwrap().parse::<u64>().is_ok());
    assert!(eq.json().get("token").is_none(), "no limit, no token");

    let and_or = query(json!({"filter": {"AND": [
        {"EQ": {"status": "open"}},
        {"OR": [{"EQ": {"owner": "bob"}}, {"IN": {"meta.rank": ["r9", "r0"]}}]}
    ]}, "sort": [{"key": "meta.rank", "order": "DESC"}]}))
    .await;
    assert_eq!(keys(&and_or), ["task:0", "task:1"]);

    // Pages of two, following the token until an empty (204) answer.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut q = json!({"sort": [{"key": "meta.rank", "order": "ASC"}], "page": {"limit": 2}});
        if let Some(t) = &token {
            q["page"]["token"] = json!(t);
        }
        let r = query(q).await;
        if r.status == 204 {
            assert!(r.body.is_empty());
            break;
        }
        assert_eq!(r.status, 200);
        seen.extend(keys(&r));
        token = Some(r.json()["token"].as_str().expect("a limit gives a token").to_owned());
    }
    assert_eq!(seen, ["task:4", "task:3", "task:2", "task:1", "task:0"]);

    assert_eq!(query(json!({"filter": {"EQ": {"owner": "nobody"}}})).await.status, 204);
    let bad = query(json!({"filter": {"LIKE": {"owner": "a%"}}})).await;
    // daprd parses the query inside the store call: every failure is `QueryFailed`, a 500.
    assert_eq!((bad.status, bad.error_code().as_str()), (500, "ERR_STATE_QUERY"));
    let string_gt = query(json!({"filter": {"GT": {"owner": "a"}}})).await;
    assert_eq!((string_gt.status, string_gt.error_code().as_str()), (500, "ERR_STATE_QUERY"));

    // Queries see every write since the last query (they are answered from an in-memory mirror).
    let alice = || query(json!({"filter": {"EQ": {"owner": "alice"}}, "sort": [{"key": "meta.rank", "order": "ASC"}]}));
    assert_eq!(keys(&alice().await), ["task:4", "task:2", "task:0"]);
    save(&e.a, "shared", json!([{"key": "task:4", "value": {"owner": "bob", "meta": {"rank": "r5"}}}])).await;
    save(&e.a, "shared", json!([{"key": "task:1", "value": {"owner": "alice", "meta": {"rank": "r0"}}}])).await;
    assert_eq!(e.a.delete("/v1.0/state/shared/task:0", None).await.status, 204);
    let after = alice().await;
    assert_eq!(keys(&after), ["task:1", "task:2"]);
    assert_eq!(after.json()["results"][0]["data"]["meta"]["rank"], "r0");
    e.devhost.shutdown().await;
}

#[tokio::test]
async fn key_prefix_modes_and_scopes() {
    let e = env().await;
    // keyPrefix name: shared between app-ids.
    save(&e.a, "shared", json!([{"key": "k", "value": "from a"}])).await;
    assert_eq!(e.b.get("/v1.0/state/shared/k").await.json(), json!("from a"));
    // keyPrefix appid (the default): private per app-id.
    save(&e.a, "private", json!([{"key": "k", "value": "a's"}])).await;
    assert_eq!(e.b.get("/v1.0/state/private/k").await.status, 204);
    assert_eq!(e.a.get("/v1.0/state/private/k").await.json(), json!("a's"));
    // keyPrefix none: the raw key, shared, and returned as-is by queries.
    save(&e.b, "raw", json!([{"key": "plain", "value": {"x": 1}}])).await;
    assert_eq!(e.a.get("/v1.0/state/raw/plain").await.json(), json!({"x": 1}));

    let bad_key = save(&e.a, "shared", json!([{"key": "a||b", "value": 1}])).await;
    assert_eq!((bad_key.status, bad_key.error_code().as_str()), (400, "ERR_MALFORMED_REQUEST"));
    assert_eq!(e.a.get("/v1.0/state/shared/a%7C%7Cb").await.status, 400);

    let unknown = e.a.get("/v1.0/state/nope/k").await;
    assert_eq!((unknown.status, unknown.error_code().as_str()), (400, "ERR_STATE_STORE_NOT_FOUND"));
    // `only-a` is scoped to app a: app b does not have it.
    assert_eq!(save(&e.a, "only-a", json!([{"key": "k", "value": 1}])).await.status, 204);
    assert_eq!(e.b.get("/v1.0/state/only-a/k").await.status, 400);
    e.devhost.shutdown().await;
}

#[tokio::test]
async fn ttl_in_seconds_expires_values() {
    let e = env().await;
    let r = save(
        &e.a,
        "shared",
        json!([{"key": "short", "value": 1, "metadata": {"ttlInSeconds": "1"}},
                                        {"key": "long", "value": 1, "metadata": {"ttlInSeconds": "3600"}}]),
    )
    .await;
    assert_eq!(r.status, 204);
    let got = e.a.get("/v1.0/state/shared/short").await;
    assert_eq!(got.status, 200);
    assert!(got.header("metadata.ttlexpiretime").is_some());
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while e.a.get("/v1.0/state/shared/short").await.status != 204 {
        assert!(std::time::Instant::now() < deadline, "the value did not expire");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(e.a.get("/v1.0/state/shared/long").await.status, 200);
    // An expired key does not block an insert-if-absent.
    let insert = json!([{"key": "short", "value": 2, "options": {"concurrency": "first-write"}}]);
    assert_eq!(save(&e.a, "shared", insert).await.status, 204);
    e.devhost.shutdown().await;
}
