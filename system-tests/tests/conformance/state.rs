//! State: get/save/delete, bulk get, transactions, URL metadata, option values, what Go's decoders refuse, `ttlInSeconds`, the Query API and its parser, errors, the API token on every API.

use super::*;

async fn state_calls(b: &Backend) -> anyhow::Result<Steps> {
    let mut s = Steps::default();
    let post = Method::POST;
    let save = |body: Value| b.call(Method::POST, "/v1.0/state/state", Some(body));
    let get = |key: &str| b.call(Method::GET, format!("/v1.0/state/state/{key}"), None);

    s.answer("get of a missing key", &get("conf:missing").await?);
    s.answer("save", &save(json!([{"key": "conf:a", "value": {"n": 1}}])).await?);
    let first = get("conf:a").await?;
    s.answer("get with ETag", &first);
    let e1 = first.etag();
    let with_etag = |value: i64, etag: &str| json!([{"key": "conf:a", "value": {"n": value}, "etag": etag, "options": {"concurrency": "first-write"}}]);
    s.answer("save with the current ETag", &save(with_etag(2, &e1)).await?);
    s.answer("save with a stale ETag", &save(with_etag(3, &e1)).await?);
    s.answer(
        "save with a stale ETag, last-write",
        &save(json!([{"key": "conf:a", "value": {"n": 3}, "etag": e1}])).await?,
    );
    s.answer(
        "save with an ETag on a missing key",
        &save(json!([{"key": "conf:nokey", "value": 1, "etag": e1, "options": {"concurrency": "first-write"}}]))
            .await?,
    );
    s.answer(
        "save with an invalid ETag",
        &save(
            json!([{"key": "conf:a", "value": 4, "etag": "not-a-number", "options": {"concurrency": "first-write"}}]),
        )
        .await?,
    );
    let first_write = json!([{"key": "conf:fw", "value": {"w": 1}, "options": {"concurrency": "first-write"}}]);
    s.answer("first-write without ETag, new key", &save(first_write.clone()).await?);
    s.answer("first-write without ETag, existing key", &save(first_write).await?);
    s.answer("value after the refused writes", &get("conf:a").await?);

    // Delete.
    let current = get("conf:a").await?.etag();
    let delete = |key: &str, etag: Option<&str>| {
        let path = match etag {
            Some(_) => format!("/v1.0/state/state/{key}?concurrency=first-write"),
            None => format!("/v1.0/state/state/{key}"),
        };
        let etag = etag.map(str::to_owned);
        async move {
            let headers: Vec<(&str, &str)> =
                [("dapr-api-token", API_TOKEN)].into_iter().chain(etag.as_deref().map(|e| ("if-match", e))).collect();
            b.call_with(Method::DELETE, &path, None, &headers).await
        }
    };
    s.answer("delete with a stale ETag", &delete("conf:a", Some(&e1)).await?);
    s.answer("delete with the current ETag", &delete("conf:a", Some(&current)).await?);
    s.answer("get after delete", &get("conf:a").await?);
    s.answer("delete of a missing key", &delete("conf:a", None).await?);
    s.answer("delete of a missing key with an ETag", &delete("conf:a", Some(&current)).await?);

    // Bulk get.
    let bulk = b
        .call(
            post.clone(),
            "/v1.0/state/state/bulk",
            Some(json!({"keys": ["conf:fw", "conf:missing"], "parallelism": 10})),
        )
        .await?;
    s.answer("bulk get", &bulk);

    // Transactions.
    let tx = |operations: Value| {
        b.call(Method::POST, "/v1.0/state/state/transaction", Some(json!({ "operations": operations })))
    };
    s.answer(
        "transaction upsert and delete",
        &tx(json!([
            {"operation": "upsert", "request": {"key": "conf:t1", "value": {"t": 1}}},
            {"operation": "upsert", "request": {"key": "conf:t2", "value": {"t": 2}}},
            {"operation": "delete", "request": {"key": "conf:fw"}}
        ]))
        .await?,
    );
    s.answer("get after the transaction", &get("conf:t1").await?);
    s.answer("get of the key the transaction deleted", &get("conf:fw").await?);
    let t1 = get("conf:t1").await?.etag();
    s.answer(
        "transaction with a stale ETag",
        &tx(json!([
            {"operation": "upsert", "request": {"key": "conf:t3", "value": {"t": 3}}},
            {"operation": "upsert", "request": {"key": "conf:t1", "value": {"t": 10}, "etag": e1, "options": {"concurrency": "first-write"}}}
        ]))
        .await?,
    );
    s.answer("nothing of the failed transaction was written", &get("conf:t3").await?);
    s.answer(
        "transaction with first-write on an existing key",
        &tx(json!([{"operation": "upsert", "request": {"key": "conf:t2", "value": {"t": 20}, "options": {"concurrency": "first-write"}}}]))
            .await?,
    );
    s.answer(
        "transaction deleting with a stale ETag",
        &tx(json!([{"operation": "delete", "request": {"key": "conf:t2", "etag": e1}}])).await?,
    );
    s.answer(
        "transaction with the current ETag",
        &tx(json!([{"operation": "upsert", "request": {"key": "conf:t1", "value": {"t": 11}, "etag": t1, "options": {"concurrency": "first-write"}}}]))
            .await?,
    );

    // The `tasks` store: its own keyspace.
    let saved = b
        .call(post.clone(), "/v1.0/state/tasks", Some(json!([{"key": "task:conf-1", "value": {"id": "conf-1"}}])))
        .await?;
    s.answer("save to tasks", &saved);
    s.answer("get from tasks", &b.call(Method::GET, "/v1.0/state/tasks/task:conf-1", None).await?);
    s.answer("the same key in state", &get("task:conf-1").await?);
    s.answer("get from an unknown store", &b.call(Method::GET, "/v1.0/state/nope/k", None).await?);
    s.answer("save with a key containing ||", &save(json!([{"key": "a||b", "value": 1}])).await?);

    // Query API.
    let items: Vec<Value> =
        [("q1", "alice", 1), ("q2", "bob", 2), ("q3", "alice", 3), ("q4", "carol", 10), ("q5", "alice", 5)]
            .iter()
            .map(|(k, owner, n)| json!({"key": format!("conf:{k}"), "value": {"owner": owner, "n": n, "kind": "q"}}))
            .collect();
    s.answer("save the query items", &save(Value::Array(items)).await?);
    let query = |body: Value| b.call(Method::POST, "/v1.0-alpha1/state/state/query", Some(body));
    s.answer("query EQ", &query(json!({"filter": {"EQ": {"owner": "bob"}}})).await?);
    s.answer(
        "query IN sorted",
        &query(json!({"filter": {"IN": {"owner": ["bob", "carol"]}}, "sort": [{"key": "n", "order": "ASC"}]})).await?,
    );
    s.answer(
        "query AND, sort DESC",
        &query(json!({"filter": {"AND": [{"EQ": {"kind": "q"}}, {"EQ": {"owner": "alice"}}]}, "sort": [{"key": "n", "order": "DESC"}]}))
            .await?,
    );
    let first_page =
        query(json!({"filter": {"EQ": {"kind": "q"}}, "sort": [{"key": "n", "order": "ASC"}], "page": {"limit": 2}}))
            .await?;
    s.answer("query page 1", &first_page);
    let token = first_page.body["token"].as_str().unwrap_or_default().to_owned();
    let second_page = query(
        json!({"filter": {"EQ": {"kind": "q"}}, "sort": [{"key": "n", "order": "ASC"}], "page": {"limit": 2, "token": token}}),
    )
    .await?;
    s.answer("query page 2", &second_page);
    let token = second_page.body["token"].as_str().unwrap_or_default().to_owned();
    s.answer(
        "query page 3",
        &query(json!({"filter": {"EQ": {"kind": "q"}}, "sort": [{"key": "n", "order": "ASC"}], "page": {"limit": 2, "token": token}}))
            .await?,
    );
    // Range filters as the list sends them: order keys stored as strings, compared with
    // numbers, which daprd binds as Go's %v (exponent form from 1e6 up); text comparison.
    let ranged: Vec<Value> = [
        ("r1", "101765.5", "a", "1300000"),
        ("r2", "101765", "b", "999"),
        ("r3", "190000.000000001", "c", "2000000"),
        ("r4", "101765.5", "d", "5"),
    ]
    .iter()
    .map(|(k, key, tie, big)| json!({"key": format!("conf:{k}"), "value": {"kind": "r", "o": {"k": key, "tie": tie}, "big": big, "id": k}}))
    .collect();
    s.answer("save the range items", &save(Value::Array(ranged)).await?);
    let by_key =
        json!([{"key": "o.k", "order": "DESC"}, {"key": "o.tie", "order": "DESC"}, {"key": "id", "order": "DESC"}]);
    s.answer(
        "query GTE a key as a number, three sort keys",
        &query(json!({"filter": {"AND": [{"EQ": {"kind": "r"}}, {"GTE": {"o.k": 101765}}]}, "sort": by_key})).await?,
    );
    s.answer(
        "query a keyset: LTE, then OR of LT and EQ with LTE",
        &query(json!({"filter": {"AND": [
            {"EQ": {"kind": "r"}},
            {"LTE": {"o.k": 190000.000000001}},
            {"LT": {"o.k": 190000}},
            {"OR": [{"LT": {"o.k": 101765.5}}, {"AND": [{"EQ": {"o.k": "101765.5"}}, {"LTE": {"o.tie": 100000}}]}]},
        ]}, "sort": by_key, "page": {"limit": 3}}))
        .await?,
    );
    s.answer(
        "query GT a number of a million or more (bound as 1.234567e+06)",
        &query(json!({"filter": {"AND": [{"EQ": {"kind": "r"}}, {"GT": {"big": 1234567}}]}, "sort": [{"key": "id"}]}))
            .await?,
    );
    s.answer(
        "query GT a string is refused",
        &query(json!({"filter": {"AND": [{"EQ": {"kind": "r"}}, {"GT": {"o.k": "101765"}}]}})).await?,
    );
    s.answer("query without match", &query(json!({"filter": {"EQ": {"owner": "nobody"}}})).await?);
    s.answer("query with an unknown filter", &query(json!({"filter": {"LIKE": {"owner": "a%"}}})).await?);
    let not_json =
        b.call_with(Method::POST, "/v1.0-alpha1/state/state/query", None, &[("dapr-api-token", API_TOKEN)]).await?;
    s.answer("query with an empty body", &not_json);
    s.answer(
        "query of tasks",
        &b.call(post.clone(), "/v1.0-alpha1/state/tasks/query", Some(json!({"filter": {"EQ": {"id": "conf-1"}}})))
            .await?,
    );

    state_edge_calls(b, &mut s).await?;

    // The API token: which paths need it, without one and with a wrong one (Go's `http.Error`,
    // dapr/dapr `pkg/api/http/middlewares.go`); only GET of the two health paths is exempt.
    for (step, method, path) in [
        ("healthz", Method::GET, "/v1.0/healthz"),
        ("healthz/outbound", Method::GET, "/v1.0/healthz/outbound"),
        ("POST healthz", Method::POST, "/v1.0/healthz"),
        ("metadata", Method::GET, "/v1.0/metadata"),
        ("get state", Method::GET, "/v1.0/state/state/conf:t1"),
        ("save state", Method::POST, "/v1.0/state/state"),
        ("query state", Method::POST, "/v1.0-alpha1/state/state/query"),
        ("publish", Method::POST, "/v1.0/publish/pubsub/reminders"),
        ("bulk publish", Method::POST, "/v1.0-alpha1/publish/bulk/pubsub/reminders"),
        ("get job", Method::GET, "/v1.0-alpha1/jobs/conf-none"),
        ("schedule job", Method::POST, "/v1.0-alpha1/jobs/conf-none"),
    ] {
        s.answer(&format!("no token: {step}"), &b.call_with(method.clone(), path, None, &[]).await?);
        s.answer(
            &format!("wrong token: {step}"),
            &b.call_with(method, path, None, &[("dapr-api-token", "wrong")]).await?,
        );
    }
    Ok(s)
}

/// Issue 18's state cases: URL metadata on every item, option values, what Go's decoders refuse,
/// `ttlInSeconds` values, and what the Query API's parser accepts.
async fn state_edge_calls(b: &Backend, s: &mut Steps) -> anyhow::Result<()> {
    let save_at = |query: &str, body: Value| b.call(Method::POST, format!("/v1.0/state/state{query}"), Some(body));
    let get = |key: &str| b.call(Method::GET, format!("/v1.0/state/state/{key}"), None);
    let tx_at = |query: &str, operations: Value| {
        b.call(Method::POST, format!("/v1.0/state/state/transaction{query}"), Some(json!({ "operations": operations })))
    };
    // The URL's `metadata.ttlInSeconds` applies to every item and wins over the item's own.
    s.answer(
        "save with URL metadata ttlInSeconds=1 over the items' -1",
        &save_at(
            "?metadata.ttlInSeconds=1",
            json!([{"key": "conf:url-ttl-1", "value": 1, "metadata": {"ttlInSeconds": "-1"}}, {"key": "conf:url-ttl-2", "value": 2}]),
        )
        .await?,
    );
    let kept = get("conf:url-ttl-1").await?;
    s.add(
        "get of an item saved with the URL TTL",
        json!({"status": kept.status.as_u16(), "ttlexpiretime header": kept.headers.contains_key("metadata.ttlexpiretime")}),
    );
    s.answer(
        "transaction with URL metadata ttlInSeconds=1",
        &tx_at(
            "?metadata.ttlInSeconds=1",
            json!([{"operation": "upsert", "request": {"key": "conf:url-ttl-3", "value": 3}}]),
        )
        .await?,
    );
    for key in ["conf:url-ttl-1", "conf:url-ttl-2", "conf:url-ttl-3"] {
        let gone = system_tests::api::eventually(&format!("{key} expires"), Duration::from_secs(20), || async {
            Ok((get(key).await?.status == StatusCode::NO_CONTENT).then_some(()))
        })
        .await;
        s.add(&format!("{key}, saved with the URL TTL, expires"), json!(gone.is_ok()));
    }
    s.answer(
        "save with URL metadata ttlInSeconds given twice, abc first",
        &save_at(
            "?metadata.ttlInSeconds=abc&metadata.ttlInSeconds=1",
            json!([{"key": "conf:url-ttl-bad", "value": 1}]),
        )
        .await?,
    );
    s.answer(
        "save with URL metadata ttlInSeconds=abc",
        &save_at("?metadata.ttlInSeconds=abc", json!([{"key": "conf:url-ttl-bad", "value": 1}])).await?,
    );

    // Option values: the store checks them when it writes (500), a delete and a get not at all.
    let with_options = |options: Value| json!([{"key": "conf:opt", "value": 1, "options": options}]);
    s.answer("save with consistency strong", &save_at("", with_options(json!({"consistency": "strong"}))).await?);
    s.answer("save with an invalid consistency", &save_at("", with_options(json!({"consistency": "bogus"}))).await?);
    s.answer("save with an invalid concurrency", &save_at("", with_options(json!({"concurrency": "bogus"}))).await?);
    s.answer(
        "transaction with an invalid concurrency",
        &tx_at("", json!([{"operation": "upsert", "request": {"key": "conf:opt", "value": 2, "options": {"concurrency": "bogus"}}}]))
            .await?,
    );
    s.answer(
        "get with an invalid consistency",
        &b.call(Method::GET, "/v1.0/state/state/conf:opt?consistency=bogus", None).await?,
    );
    s.answer(
        "delete with an invalid concurrency and consistency",
        &b.call(Method::DELETE, "/v1.0/state/state/conf:opt?concurrency=bogus&consistency=bogus", None).await?,
    );

    // What Go's decoders refuse: no conversion of numbers into strings.
    s.answer("save with a numeric ETag", &save_at("", json!([{"key": "conf:num", "value": 1, "etag": 5}])).await?);
    s.answer(
        "save with a numeric ttlInSeconds",
        &save_at("", json!([{"key": "conf:num", "value": 1, "metadata": {"ttlInSeconds": 1}}])).await?,
    );
    s.answer(
        "transaction upsert with a numeric ETag",
        &tx_at("", json!([{"operation": "upsert", "request": {"key": "conf:num", "value": 1, "etag": 5}}])).await?,
    );
    s.answer(
        "transaction delete with a numeric ETag",
        &tx_at("", json!([{"operation": "delete", "request": {"key": "conf:num", "etag": 5}}])).await?,
    );
    s.answer(
        "transaction upsert with a numeric ttlInSeconds",
        &tx_at("", json!([{"operation": "upsert", "request": {"key": "conf:num", "value": 1, "metadata": {"ttlInSeconds": 1}}}]))
            .await?,
    );
    s.answer("save of an item without a key", &save_at("", json!([{"value": 1}])).await?);
    s.answer("save of an empty list", &save_at("", json!([])).await?);
    s.answer("save of an object instead of a list", &save_at("", json!({"key": "conf:num", "value": 1})).await?);
    for (step, ttl) in [
        ("save with ttlInSeconds abc", "abc"),
        ("save with ttlInSeconds -2", "-2"),
        ("save with ttlInSeconds -1", "-1"),
        ("save with an empty ttlInSeconds", ""),
    ] {
        s.answer(
            step,
            &save_at("", json!([{"key": "conf:ttl", "value": 1, "metadata": {"ttlInSeconds": ttl}}])).await?,
        );
    }

    // The Query API's parser.
    let query = |body: Value| b.call(Method::POST, "/v1.0-alpha1/state/state/query", Some(body));
    let kind_q = json!({"EQ": {"kind": "q"}});
    for (step, body) in [
        ("query with a lower-case order", json!({"filter": kind_q, "sort": [{"key": "n", "order": "desc"}]})),
        ("query with a mixed-case order", json!({"filter": kind_q, "sort": [{"key": "n", "order": "Asc"}]})),
        ("query with an unknown order", json!({"filter": kind_q, "sort": [{"key": "n", "order": "sideways"}]})),
        ("query with unknown fields", json!({"filter": kind_q, "sort": [{"key": "n", "extra": 1}], "select": ["n"]})),
        ("query with an empty filter", json!({"filter": {}, "sort": [{"key": "n"}], "page": {"limit": 1}})),
        ("query with a negative limit", json!({"filter": kind_q, "sort": [{"key": "n"}], "page": {"limit": -1}})),
        ("query with a token and no limit", json!({"filter": kind_q, "sort": [{"key": "n"}], "page": {"token": "3"}})),
        ("query with a limit as a string", json!({"filter": kind_q, "page": {"limit": "2"}})),
        ("query with a fractional limit", json!({"filter": kind_q, "page": {"limit": 1.5}})),
        ("query with a token that is not a number", json!({"filter": kind_q, "page": {"limit": 2, "token": "abc"}})),
        ("query with a numeric token", json!({"filter": kind_q, "page": {"limit": 2, "token": 2}})),
        ("query with a one-entry AND", json!({"filter": {"AND": [kind_q]}})),
        ("query with a one-entry OR", json!({"filter": {"OR": [kind_q]}})),
        ("query with a filter that is a list", json!({"filter": [kind_q]})),
        ("query with a lower-case operator", json!({"filter": {"eq": {"kind": "q"}}})),
        ("query with two operators in one filter", json!({"filter": {"EQ": {"kind": "q"}, "NEQ": {"n": 1}}})),
        ("query with an empty IN", json!({"filter": {"IN": {"owner": []}}})),
        ("query with IN of a scalar", json!({"filter": {"IN": {"owner": "bob"}}})),
        ("query with a body that is a list", json!([kind_q])),
    ] {
        s.answer(step, &query(body).await?);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_calls_answer_as_daprd_does() -> anyhow::Result<()> {
    differential("state", &[], |b| Box::pin(state_calls(b))).await
}
