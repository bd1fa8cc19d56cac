//! The subscriber side for any Dapr app: an app without `/healthz` (as an SDK's `DaprServer`)
//! subscribed and called back for its jobs,
//! a bulk subscription (the request, per-entry statuses, retries, dead letters), routing rules
//! in full CEL, and statuses matched case-sensitively.
//!
//! The app serves no `/healthz` (it answers 404) and subscribes programmatically to
//! `task-create` in bulk (dead-letter topic `create-task-dlq`, batches of [`BULK_SIZE`]) and to
//! `reminders` with CEL rules the old hand-written subset refused.

use super::*;

/// The bulk batches' entries, [`BULK_SIZE`] per batch: all published with one partition key
/// (one partition), so each batch is flushed when its last entry arrives (the await time is far
/// longer than the test), one after the other. `data.answer` tells the app how to answer.
fn bulk_cases() -> Vec<(String, Value)> {
    let mut cases: Vec<(String, Value)> = [
        ("bulk-success", json!({"answer": "success"})),
        ("bulk-retry-once", json!({"answer": "retry-once"})),
        ("bulk-drop", json!({"answer": "drop"})),
        ("bulk-missing", json!({"answer": "missing"})),
        // Not DROP (statuses are case-sensitive): an unknown status, retried, then dead-lettered.
        ("bulk-lowercase-drop", json!({"answer": "drop-lowercase"})),
        // The second batch: three answered 404 together, one routed by a rule to a path of its
        // own, one whose rule fails to evaluate (`startsWith` on a number).
        ("b2-404-a", json!({"answer": "batch-404"})),
        ("b2-404-b", json!({"answer": "batch-404"})),
        ("b2-routed", json!({"answer": "success", "route": "other"})),
        ("b2-rule-error", json!({"answer": "success", "route": 5})),
        ("b2-404-c", json!({"answer": "batch-404"})),
    ]
    .into_iter()
    .map(|(id, data)| (id.to_owned(), data))
    .collect();
    // The third batch answered 500, the fourth 200 with an empty body.
    for (batch, answer) in [("b3-500", "batch-500"), ("b4-empty", "batch-empty")] {
        for n in 0..BULK_SIZE {
            cases.push((format!("{batch}-{n}"), json!({"answer": answer})));
        }
    }
    cases
}

/// Settled on the dead-letter topic once every batch is done.
const BULK_DEAD: &[&str] = &["bulk-drop", "bulk-missing", "bulk-lowercase-drop", "b2-rule-error"];
const BULK_SIZE: usize = 5;
const BULK_KEY: &str = "conf-bulk";

/// Events on `reminders` and the route each must take: (id, data, path).
fn routing_cases() -> Vec<(&'static str, Value, &'static str)> {
    vec![
        ("route-big", json!({"n": 7}), "/events/big"),
        ("route-tagged", json!({"n": 1, "tag": "xyz"}), "/events/tagged"),
        ("route-pair", json!({"n": 2, "items": [1, 2]}), "/events/pair"),
        ("route-plain", json!({"n": 3, "tag": "abc"}), "/events/plain"),
        ("route-lowercase-drop", json!({"n": 0, "answer": "drop-lowercase-once"}), "/events/plain"),
    ]
}

/// Area `subscribe-bad-rule`: a programmatic rule that does not compile beside a valid
/// programmatic subscription and a declarative one.
pub(crate) fn bad_rule_fixtures() -> Fixtures {
    let subscriptions = json!([
        {"pubsubname": "pubsub", "topic": TOPIC_DLQ, "routes": {"rules": [{"match": "event.type ==", "path": "/events/bad"}], "default": "/events/with-dlq"}},
    ]);
    let declarative = format!(
        "apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata:\n  name: conformance-reminders\nspec:\n  \
         pubsubname: pubsub\n  topic: {TOPIC_PLAIN}\n  routes:\n    default: /events/plain\nscopes:\n  - {APP_ID}\n"
    );
    Fixtures {
        resources: vec![("subscription.yaml".to_owned(), declarative)],
        app: AppBehaviour { subscriptions, healthz: true },
        ..Fixtures::default()
    }
}

pub(crate) fn fixtures() -> Fixtures {
    let subscriptions = json!([
        {
            "pubsubname": "pubsub",
            "topic": TOPIC_DLQ,
            "routes": {
                "rules": [{"match": "has(event.data.route) && event.data.route.startsWith(\"other\")", "path": "/bulk/other"}],
                "default": "/bulk/in"
            },
            "deadLetterTopic": DEAD_LETTERS,
            "bulkSubscribe": {"enabled": true, "maxMessagesCount": BULK_SIZE, "maxAwaitDurationMs": 600_000}
        },
        {
            "pubsubname": "pubsub",
            "topic": TOPIC_PLAIN,
            "routes": {
                "rules": [
                    {"match": "event.data.n > 5", "path": "/events/big"},
                    {"match": "has(event.data.tag) && event.data.tag.startsWith(\"x\")", "path": "/events/tagged"},
                    {"match": "has(event.data.items) && size(event.data.items) >= 2 || event.type == \"nope\"", "path": "/events/pair"}
                ],
                "default": "/events/plain"
            }
        }
    ]);
    Fixtures { app: AppBehaviour { subscriptions, healthz: false }, ..Fixtures::default() }
}

/// The test app's answer to a bulk delivery: 404, 500 or an empty 200 when an entry asks for
/// that (`batch-...`), else per entry as its event's `data.answer` asks (`missing`: no status for
/// it; `retry-once`: RETRY the first time that event comes).
pub(crate) fn bulk_answer(recorder: &Recorder, request: &Value) -> Response {
    let answers: Vec<&str> = request["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["event"]["data"]["answer"].as_str())
        .collect();
    if answers.contains(&"batch-404") {
        return StatusCode::NOT_FOUND.into_response();
    }
    if answers.contains(&"batch-500") {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    if answers.contains(&"batch-empty") {
        return StatusCode::OK.into_response();
    }
    let calls = recorder.to("/bulk/");
    let statuses: Vec<Value> = request["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let id = &entry["event"]["id"];
            // This request is recorded already.
            let earlier = calls.iter().filter(|c| bulk_event_ids(&c.body).iter().any(|i| i == id)).count() - 1;
            let status = match entry["event"]["data"]["answer"].as_str().unwrap_or("success") {
                "missing" => return None,
                "drop" => "DROP",
                "retry-once" if earlier == 0 => "RETRY",
                "drop-lowercase" => "drop",
                _ => "SUCCESS",
            };
            Some(json!({"entryId": entry["entryId"], "status": status}))
        })
        .collect();
    axum::Json(json!({ "statuses": statuses })).into_response()
}

/// The CloudEvent ids of a bulk request's entries.
fn bulk_event_ids(body: &Value) -> Vec<Value> {
    body["entries"].as_array().into_iter().flatten().map(|e| e["event"]["id"].clone()).collect()
}

/// A bulk request with what varies between runs normalised: the envelope id, and per entry its
/// Kafka partition, offset and timestamp; the events as the delivered CloudEvents are.
fn normalise_bulk(body: &Value) -> Value {
    let mut body = normalise(body);
    if let Some(id) = body.get_mut("id") {
        *id = json!(if id.as_str().is_some_and(|s| uuid::Uuid::parse_str(s).is_ok()) {
            "<uuid>"
        } else {
            "<not a uuid>"
        });
    }
    if let Some(entries) = body.get_mut("entries").and_then(Value::as_array_mut) {
        for entry in entries {
            if let Some(Value::Object(metadata)) = entry.get_mut("metadata") {
                for key in ["__partition", "__offset", "__timestamp"] {
                    if let Some(v) = metadata.get_mut(key) {
                        *v = json!(format!("<{}>", key.trim_start_matches('_')));
                    }
                }
            }
        }
    }
    body
}

async fn subscribe_calls(b: &Backend) -> anyhow::Result<Steps> {
    let mut s = Steps::default();
    let rec = &b.app.recorder;

    // Readiness: subscribed without a /healthz route (the sidecar answered healthy, so it is up).
    let subscribe = system_tests::api::eventually("the subscriptions read", Duration::from_secs(60), || async {
        let calls = rec.to("/dapr/subscribe");
        Ok((!calls.is_empty()).then_some(calls))
    })
    .await?;
    s.add(
        "subscriptions read from an app without /healthz",
        json!({"calls": subscribe.len(), "method": subscribe.first().map(|c| c.method.clone()),
               "health probes": rec.to("/healthz").len()}),
    );
    let metadata = b.call(Method::GET, "/v1.0/metadata", None).await?;
    let bulk_sub = metadata.body["subscriptions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|sub| sub["topic"] == TOPIC_DLQ)
        .cloned()
        .unwrap_or(Value::Null);
    let mut keys: Vec<&String> = bulk_sub.as_object().map(|o| o.keys().collect()).unwrap_or_default();
    keys.sort();
    s.add(
        "metadata of a bulk subscription and of an app without health checks",
        json!({"status": metadata.status.as_u16(), "subscription fields": keys, "type": bulk_sub["type"],
               "deadLetterTopic": bulk_sub["deadLetterTopic"],
               "app health shown": metadata.body["appConnectionProperties"].get("health").is_some()}),
    );

    // A job callback reaches the app without /healthz too.
    let offset = chrono::FixedOffset::east_opt(0).context("offset")?;
    let due = (chrono::Utc::now() + chrono::Duration::seconds(2))
        .with_timezone(&offset)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let scheduled = b
        .call(Method::POST, "/v1.0-alpha1/jobs/conf-no-healthz", Some(json!({"dueTime": due, "data": {"n": 1}})))
        .await?;
    s.answer("schedule a job for an app without /healthz", &scheduled);
    let callback = system_tests::api::eventually("the job callback", Duration::from_secs(60), || async {
        Ok(rec.to("/job/conf-no-healthz").first().cloned())
    })
    .await?;
    s.add("job callback to an app without /healthz", json!({"method": callback.method, "body": callback.body}));

    // The bulk batch: one partition key, so one partition and one batch.
    let publish = |topic: &str, id: &str, key: &str, data: Value| {
        let path = format!("/v1.0/publish/pubsub/{topic}?metadata.partitionKey={key}&metadata.cloudevent.id={id}");
        async move { b.call(Method::POST, &path, Some(data)).await }
    };
    for (id, data) in bulk_cases() {
        let answered = publish(TOPIC_DLQ, &id, BULK_KEY, data).await?;
        s.add(&format!("publish {id}"), json!({"status": answered.status.as_u16()}));
    }
    for (id, data, _) in routing_cases() {
        let answered = publish(TOPIC_PLAIN, id, id, data).await?;
        s.add(&format!("publish {id}"), json!({"status": answered.status.as_u16()}));
    }

    // Routing by CEL rules, and a lowercase "drop" (an unknown status: retried, so delivered
    // again, where DROP would have been the end of it).
    for (id, _, path) in routing_cases() {
        let delivered =
            system_tests::api::eventually(&format!("the delivery of {id}"), Duration::from_secs(60), || async {
                Ok(rec.deliveries(id).first().cloned())
            })
            .await?;
        s.add(&format!("routed {id}"), json!({"path": delivered.path, "expected": delivered.path == path}));
    }
    system_tests::api::eventually("the lowercase drop delivered again", Duration::from_secs(60), || async {
        Ok((rec.deliveries("route-lowercase-drop").len() >= 2).then_some(()))
    })
    .await?;

    // The bulk request and the settling of each entry.
    let first = system_tests::api::eventually("the bulk delivery", Duration::from_secs(60), || async {
        Ok(rec.to("/bulk/").first().cloned())
    })
    .await?;
    s.add(
        "bulk delivery request",
        json!({"method": first.method, "path": first.path, "headers": delivery_headers(&first)}),
    );
    s.add("bulk delivery body", normalise_bulk(&first.body));
    let mut expected_dead: Vec<String> = BULK_DEAD.iter().map(|id| (*id).to_owned()).collect();
    expected_dead.extend((0..BULK_SIZE).flat_map(|n| [format!("b3-500-{n}"), format!("b4-empty-{n}")]));
    system_tests::api::eventually("the bulk entries settled", Duration::from_secs(240), || async {
        let dead = b.topic(DEAD_LETTERS).await?;
        let settled = expected_dead.iter().all(|id| dead.iter().any(|(_, ce)| ce["id"] == *id.as_str()));
        Ok(settled.then_some(()))
    })
    .await?;
    // Anything still on its way (a redelivery too many) arrives meanwhile.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let bulk_calls = rec.to("/bulk/");
    // Sorted: the requests of one batch to two paths come in any order from daprd (a Go map).
    let mut requests: Vec<String> = bulk_calls
        .iter()
        .map(|c| {
            let entries: Vec<Value> = c.body["entries"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| json!([e["entryId"], e["event"]["id"]]))
                .collect();
            json!({"path": c.path, "entries": entries}).to_string()
        })
        .collect();
    requests.sort();
    s.add("bulk requests: path and entries of each", json!(requests));
    let dead = b.topic(DEAD_LETTERS).await?;
    for (id, data) in bulk_cases() {
        let id = id.as_str();
        let with_it: Vec<&Call> =
            bulk_calls.iter().filter(|c| bulk_event_ids(&c.body).iter().any(|i| i == id)).collect();
        let mut paths: Vec<&str> = with_it.iter().map(|c| c.path.as_str()).collect();
        paths.dedup();
        let letters: Vec<&(Option<String>, Value)> = dead.iter().filter(|(_, ce)| ce["id"] == id).collect();
        let mut observed =
            json!({"data": data, "requests": with_it.len(), "paths": paths, "dead letters": letters.len()});
        let event = with_it
            .first()
            .and_then(|c| c.body["entries"].as_array().into_iter().flatten().find(|e| e["event"]["id"] == id));
        if let Some((key, letter)) = letters.first() {
            observed["dead letter key"] = json!(key);
            if let Some(entry) = event {
                observed["dead letter is the delivered event"] = json!(normalise(letter) == normalise(&entry["event"]));
            }
        }
        s.add(&format!("bulk entry {id}"), observed);
    }
    let lowercase = rec.deliveries("route-lowercase-drop");
    s.add(
        "lowercase drop status",
        json!({"deliveries": lowercase.len(), "dead letters": dead.iter().filter(|(_, ce)| ce["id"] == "route-lowercase-drop").count()}),
    );
    Ok(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_side_answers_as_daprd_does() -> anyhow::Result<()> {
    differential("subscribe", &[], |b| Box::pin(subscribe_calls(b))).await
}

async fn bad_rule_calls(b: &Backend) -> anyhow::Result<Steps> {
    let mut s = Steps::default();
    let rec = &b.app.recorder;
    system_tests::api::eventually("the subscriptions read", Duration::from_secs(60), || async {
        Ok((!rec.to("/dapr/subscribe").is_empty()).then_some(()))
    })
    .await?;
    s.answer("the sidecar stays up", &b.call(Method::GET, "/v1.0/healthz", None).await?);
    let metadata = b.call(Method::GET, "/v1.0/metadata", None).await?;
    let mut listed: Vec<Value> = metadata.body["subscriptions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|sub| json!({"topic": sub["topic"], "type": sub["type"]}))
        .collect();
    listed.sort_by_key(Value::to_string);
    s.add("metadata lists", json!(listed));
    for (topic, id) in [(TOPIC_DLQ, "bad-rule-programmatic"), (TOPIC_PLAIN, "bad-rule-declarative")] {
        let path = format!("/v1.0/publish/pubsub/{topic}?metadata.cloudevent.id={id}");
        s.answer(&format!("publish {id}"), &b.call(Method::POST, &path, Some(json!({"n": 1}))).await?);
    }
    // Nothing to await: a running subscription (oldest offsets) delivers within a second or two.
    tokio::time::sleep(Duration::from_secs(10)).await;
    s.add("deliveries", json!(rec.to("/events/").len()));
    Ok(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_programmatic_rule_that_does_not_compile_starts_no_subscription() -> anyhow::Result<()> {
    differential("subscribe-bad-rule", &[], |b| Box::pin(bad_rule_calls(b))).await
}
