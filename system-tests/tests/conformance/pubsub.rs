//! Publish and subscriptions: publish metadata and errors, message TTLs and `expiration`, the CloudEvent and the delivery, an own CloudEvent's trace context and id, bulk publish and its errors, routing, statuses, dead letters, trace context.

use super::*;

/// `/v1.0/publish/pubsub/<topic>?metadata.<k>=<v>...`, percent-encoded.
fn publish_path(topic: &str, metadata: &[(&str, &str)]) -> String {
    let path = format!("/v1.0/publish/pubsub/{topic}");
    let Ok(mut url) = reqwest::Url::parse("http://sidecar/") else { return path };
    for (k, v) in metadata {
        url.query_pairs_mut().append_pair(&format!("metadata.{k}"), v);
    }
    match url.query() {
        Some(query) if !query.is_empty() => format!("{path}?{query}"),
        _ => path,
    }
}

/// The cases of the subscription answers: (id = partition key, topic, answer).
const ANSWER_CASES: &[(&str, &str, &str)] = &[
    ("conf-success", TOPIC_DLQ, "success"),
    ("conf-empty", TOPIC_DLQ, "empty"),
    ("conf-drop", TOPIC_DLQ, "drop"),
    ("conf-404", TOPIC_DLQ, "404"),
    ("conf-retry", TOPIC_DLQ, "retry"),
    ("conf-500", TOPIC_DLQ, "500"),
    ("conf-unknown", TOPIC_DLQ, "unknown"),
    ("conf-retry-once", TOPIC_DLQ, "retry-once"),
    ("conf-plain-drop", TOPIC_PLAIN, "drop"),
    ("conf-plain-retry-9", TOPIC_PLAIN, "retry-9"),
];

async fn pubsub_calls(b: &Backend) -> anyhow::Result<Steps> {
    let mut s = Steps::default();
    let rec = &b.app.recorder;
    let subscribe = rec.to("/dapr/subscribe");
    s.add(
        "subscription discovery",
        json!({"calls": subscribe.len(), "method": subscribe.first().map(|c| c.method.clone()),
               "headers": subscribe.first().map(delivery_headers)}),
    );

    // A publish with every metadata the functions send.
    let metadata = [
        ("partitionKey", "conf-key-1"),
        ("cloudevent.id", "conf-envelope"),
        ("cloudevent.type", "conformance.event"),
        ("cloudevent.subject", "conf-subject"),
    ];
    let publish = |topic: &str, metadata: &[(&str, &str)], data: Value| {
        let path = publish_path(topic, metadata);
        async move { b.call(Method::POST, &path, Some(data)).await }
    };
    s.answer("publish with metadata", &publish(TOPIC_DLQ, &metadata, json!({"answer": "success", "n": 1})).await?);
    s.answer(
        "publish to an unknown pubsub",
        &b.call(Method::POST, "/v1.0/publish/nope/task-create", Some(json!({}))).await?,
    );
    let started = Instant::now();
    // Scoping: daprd refuses a topic outside the app's publishingScopes before the broker.
    let forbidden = publish(FORBIDDEN_TOPIC, &[], json!({"n": 0})).await?;
    anyhow::ensure!(
        forbidden.status == StatusCode::FORBIDDEN,
        "{}: a forbidden publish answered {:?}",
        b.name,
        forbidden
    );
    s.answer("publish to a topic outside publishingScopes", &forbidden);
    let unknown_topic = publish("conformance-no-such-topic", &[], json!({"n": 1})).await?;
    s.answer("publish to a topic the broker does not have", &unknown_topic);
    println!("{}: publish to a missing topic answered after {:.1?}", b.name, started.elapsed());
    s.answer(
        "publish with a non-boolean rawPayload",
        &publish(TOPIC_PLAIN, &[("rawPayload", "maybe")], json!({"n": 1})).await?,
    );
    s.answer(
        "publish routed by a rule",
        &publish(TOPIC_DLQ, &[("cloudevent.id", "conf-routed"), ("cloudevent.type", ROUTED_TYPE)], json!({"n": 2}))
            .await?,
    );
    let traced = b
        .http
        .post(format!("{}{}", b.sidecar, publish_path(TOPIC_PLAIN, &[("cloudevent.id", "conf-traced")])))
        .header("dapr-api-token", API_TOKEN)
        .header("content-type", "application/json")
        .header("traceparent", TRACEPARENT)
        .header("tracestate", TRACESTATE)
        .body("{}")
        .send()
        .await?;
    s.add("publish with a traceparent", json!({"status": traced.status().as_u16()}));
    let own_event =
        json!({"specversion": "1.0", "type": "conformance.own", "subject": "mine", "data": {"answer": "success"}});
    let own = b
        .http
        .post(format!("{}{}", b.sidecar, publish_path(TOPIC_PLAIN, &[])))
        .header("dapr-api-token", API_TOKEN)
        .header("content-type", "application/cloudevents+json")
        .body(own_event.to_string())
        .send()
        .await?;
    s.add("publish an own CloudEvent", json!({"status": own.status().as_u16()}));
    let broken = b
        .call_with(
            Method::POST,
            publish_path(TOPIC_PLAIN, &[]),
            None,
            &[("dapr-api-token", API_TOKEN), ("content-type", "application/cloudevents+json")],
        )
        .await?;
    s.answer("publish an own CloudEvent that is not JSON", &broken);
    let plain = b
        .http
        .post(format!("{}{}", b.sidecar, publish_path(TOPIC_PLAIN, &[("cloudevent.id", "conf-text")])))
        .header("dapr-api-token", API_TOKEN)
        .body("plain text")
        .send()
        .await?;
    s.add("publish without a content type", json!({"status": plain.status().as_u16()}));
    for (id, topic, answer) in ANSWER_CASES {
        let answer = publish(topic, &[("partitionKey", id), ("cloudevent.id", id)], json!({"answer": answer})).await?;
        s.add(&format!("publish {id}"), json!({"status": answer.status.as_u16()}));
    }

    let issue18 = issue18_publishes(b, &mut s).await?;

    // The envelope and the delivery request.
    let delivered = system_tests::api::eventually("the envelope's delivery", Duration::from_secs(60), || async {
        Ok(rec.deliveries("conf-envelope").first().cloned())
    })
    .await?;
    s.add(
        "delivery request",
        json!({"method": delivered.method, "path": delivered.path, "headers": delivery_headers(&delivered)}),
    );
    s.add("delivered CloudEvent", normalise(&delivered.body));
    let traced = system_tests::api::eventually("the traced delivery", Duration::from_secs(60), || async {
        Ok(rec.deliveries("conf-traced").first().cloned())
    })
    .await?;
    let as_sent = |value: &Value, sent: &str| if value == sent { json!("<as sent>") } else { value.clone() };
    s.add(
        "trace context of a publish with a traceparent",
        json!({
            "envelope traceparent": as_sent(&traced.body["traceparent"], TRACEPARENT),
            "envelope traceid": as_sent(&traced.body["traceid"], TRACEPARENT),
            "envelope tracestate": as_sent(&traced.body["tracestate"], TRACESTATE),
            "delivery traceparent": traced.headers.get("traceparent").map(|h| as_sent(&json!(h), TRACEPARENT)),
            "delivery tracestate": traced.headers.get("tracestate"),
        }),
    );
    s.add(
        "trace context of a publish without one",
        json!({
            "envelope traceparent": delivered.body["traceparent"],
            "delivery traceparent": delivered.headers.get("traceparent"),
        }),
    );
    let own = system_tests::api::eventually("the own CloudEvent's delivery", Duration::from_secs(60), || async {
        Ok(rec.to("/events/").into_iter().find(|c| c.body["type"] == "conformance.own"))
    })
    .await?;
    s.add("delivered CloudEvent of an own CloudEvent", normalise(&own.body));
    let routed = system_tests::api::eventually("the routed delivery", Duration::from_secs(60), || async {
        Ok(rec.deliveries("conf-routed").first().cloned())
    })
    .await?;
    s.add("routed delivery", json!({"path": routed.path, "type": routed.body["type"]}));
    let text = system_tests::api::eventually("the text delivery", Duration::from_secs(60), || async {
        Ok(rec.deliveries("conf-text").first().cloned())
    })
    .await?;
    s.add("delivered CloudEvent of a text publish", normalise(&text.body));

    // Every case settled: what reached the dead-letter topic, and the last retry of the blocked
    // partition without one.
    let expected_dead = ["conf-drop", "conf-404", "conf-retry", "conf-500", "conf-unknown"];
    system_tests::api::eventually("every case settled", Duration::from_secs(150), || async {
        let dead = b.topic(DEAD_LETTERS).await?;
        let all_dead = expected_dead.iter().all(|id| dead.iter().any(|(_, ce)| ce["id"] == *id));
        let unblocked = rec.deliveries("conf-plain-retry-9").len() >= 10;
        Ok((all_dead && unblocked).then_some(()))
    })
    .await?;
    // Anything still on its way (a redelivery too many) arrives meanwhile.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let dead = b.topic(DEAD_LETTERS).await?;
    for (id, _, answer) in ANSWER_CASES {
        let deliveries = rec.deliveries(id);
        let letters: Vec<&(Option<String>, Value)> = dead.iter().filter(|(_, ce)| ce["id"] == *id).collect();
        let mut observed = json!({
            "answer": answer,
            "deliveries": deliveries.len(),
            "dead letters": letters.len(),
        });
        if let (Some(first), Some((key, letter))) = (deliveries.first(), letters.first()) {
            observed["dead letter is the delivered event"] = json!(normalise(letter) == normalise(&first.body));
            observed["dead letter key"] = json!(key);
        }
        s.add(&format!("subscription answer {id}"), observed);
    }
    issue18_deliveries(b, &mut s, issue18).await?;
    let blocked = rec.deliveries("conf-plain-retry-9");
    let gaps: Vec<Duration> = blocked.windows(2).map(|w| w[1].at.duration_since(w[0].at)).collect();
    // Eight exponential inbound retries (0.5 s doubling by 1.5 up to 10 s: about 25 s; daprd
    // randomises each by ±50 %, devhost does not), then Kafka's consume retry 5 s later.
    let inbound: Duration = gaps.iter().take(8).sum();
    let component_retry = gaps.len() == 9 && gaps[8] >= Duration::from_secs(4);
    s.add(
        "without a dead-letter topic, after the inbound retries",
        json!({
            "inbound retries took 12 to 50 s": (Duration::from_secs(12)..Duration::from_secs(50)).contains(&inbound),
            "component retry after about 5 s": component_retry,
        }),
    );
    println!("{}: retry gaps of the blocked partition: {gaps:.1?}", b.name);
    let other_topics = b.topic(TOPIC_DLQ).await?.len();
    s.add("messages on task-create", json!(other_topics));
    Ok(s)
}

/// Every message of [`issue18_publishes`] goes to [`TOPIC_PLAIN`] with this key, so they share a
/// partition and arrive in order, the sentinel last.
const ISSUE18_KEY: &str = "conf-issue18";
const SENTINEL_ID: &str = "conf-issue18-sentinel";
/// A trace context of an event's own, unlike the caller's [`TRACEPARENT`].
const OWN_TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// What the delivery checks of issue 18 need from the publishes.
struct Issue18 {
    /// (step, CloudEvent id) of each publish with a TTL or an `expiration`.
    expiring: Vec<(String, String)>,
}

/// `/v1.0-alpha1/publish/bulk/<pubsub>/<topic>?metadata.<k>=<v>...`.
fn bulk_path(pubsub: &str, topic: &str, metadata: &[(&str, &str)]) -> String {
    publish_path(topic, metadata).replacen("/v1.0/publish/pubsub/", &format!("/v1.0-alpha1/publish/bulk/{pubsub}/"), 1)
}

/// Issue 18's publishes: message TTLs (`ttlInSeconds`/`ttl` and a CloudEvent's own
/// `expiration`), an own CloudEvent's trace context and id, and bulk publish with its errors.
async fn issue18_publishes(b: &Backend, s: &mut Steps) -> anyhow::Result<Issue18> {
    let mut expiring = Vec::new();
    // Message TTLs: daprd sets `expiration` from `ttl`/`ttlInSeconds` (a Go duration, else whole
    // seconds above 0; anything else ignored) and drops an expired event on delivery.
    for (id, key, ttl) in [
        ("conf-ttl-60", "ttlInSeconds", "60"),
        ("conf-ttl-0", "ttlInSeconds", "0"),
        ("conf-ttl-minus-1", "ttlInSeconds", "-1"),
        ("conf-ttl-abc", "ttlInSeconds", "abc"),
        ("conf-ttl-duration", "ttl", "2m"),
        ("conf-ttl-negative-duration", "ttl", "-5s"),
    ] {
        let path = publish_path(TOPIC_PLAIN, &[("partitionKey", ISSUE18_KEY), ("cloudevent.id", id), (key, ttl)]);
        let step = format!("publish with {key}={ttl}");
        s.answer(&step, &b.call(Method::POST, &path, Some(json!({"answer": "success"}))).await?);
        expiring.push((step, id.to_owned()));
    }
    // Content types as components-contrib tells them apart: only `application/json` (in any
    // case) is JSON data; a `+json` type is a string.
    for (id, content_type) in
        [("conf-ct-problem-json", "application/problem+json"), ("conf-ct-upper-json", "Application/JSON")]
    {
        let path = publish_path(TOPIC_PLAIN, &[("partitionKey", ISSUE18_KEY), ("cloudevent.id", id)]);
        let status = b
            .http
            .post(format!("{}{path}", b.sidecar))
            .header("dapr-api-token", API_TOKEN)
            .header("content-type", content_type)
            .body(r#"{"answer":"success","n":1}"#)
            .send()
            .await?
            .status();
        s.add(&format!("publish as {content_type}"), json!({"status": status.as_u16()}));
    }
    // An own CloudEvent's `expiration`, and a TTL that replaces it.
    let own = |event: Value, metadata: &[(&str, &str)], traceparent: Option<&str>| {
        let mut pairs = vec![("partitionKey", ISSUE18_KEY)];
        pairs.extend_from_slice(metadata);
        let path = publish_path(TOPIC_PLAIN, &pairs);
        let mut request = b
            .http
            .post(format!("{}{path}", b.sidecar))
            .header("dapr-api-token", API_TOKEN)
            .header("content-type", "application/cloudevents+json")
            .body(event.to_string());
        if let Some(traceparent) = traceparent {
            request = request.header("traceparent", traceparent);
        }
        async move { anyhow::Ok(request.send().await?.status().as_u16()) }
    };
    let event = |id: &str, expiration: &str| {
        json!({"specversion": "1.0", "type": "conformance.expiring", "source": "conformance", "id": id,
               "expiration": expiration, "data": {"answer": "success"}})
    };
    for (step, id, expiration, metadata) in [
        ("publish an own CloudEvent that has expired", "conf-ce-expired", "2020-01-01T00:00:00Z", &[][..]),
        ("publish an own CloudEvent that expires in 2099", "conf-ce-fresh", "2099-01-01T00:00:00Z", &[][..]),
        (
            "publish an expired own CloudEvent with ttlInSeconds=60",
            "conf-ce-expired-ttl",
            "2020-01-01T00:00:00Z",
            &[("ttlInSeconds", "60")][..],
        ),
    ] {
        s.add(step, json!({"status": own(event(id, expiration), metadata, None).await?}));
        expiring.push((step.to_owned(), id.to_owned()));
    }
    // An own CloudEvent keeps its trace context when it has a `traceid`, gets the caller's when
    // it has only a `traceparent`, and gets no id where it has none.
    let traced = |kind: &str, fields: Value| {
        let mut event =
            json!({"specversion": "1.0", "type": kind, "source": "conformance", "data": {"answer": "success"}});
        if let (Some(event), Value::Object(fields)) = (event.as_object_mut(), fields) {
            event.extend(fields);
        }
        event
    };
    let with_traceid = traced(
        "conformance.own-traceid",
        json!({"traceparent": OWN_TRACEPARENT, "traceid": OWN_TRACEPARENT, "tracestate": "own=1"}),
    );
    s.add(
        "publish an own CloudEvent with its traceparent and traceid, no id",
        json!({"status": own(with_traceid, &[], Some(TRACEPARENT)).await?}),
    );
    let only_traceparent = traced("conformance.own-traceparent", json!({"traceparent": OWN_TRACEPARENT}));
    s.add(
        "publish an own CloudEvent with only a traceparent",
        json!({"status": own(only_traceparent, &[], Some(TRACEPARENT)).await?}),
    );

    // Bulk publish.
    let bulk = |pubsub: &str, topic: &str, metadata: &[(&str, &str)], body: Value| {
        let path = bulk_path(pubsub, topic, metadata);
        async move { b.call(Method::POST, &path, Some(body)).await }
    };
    let keyed = |id: &str| json!({"partitionKey": ISSUE18_KEY, "cloudevent.id": id});
    s.answer(
        "bulk publish",
        &bulk(
            "pubsub",
            TOPIC_PLAIN,
            &[("cloudevent.type", "conformance.bulk"), ("cloudevent.subject", "from-the-url")],
            json!([
                {"entryId": "1", "event": {"answer": "success", "n": 1}, "contentType": "application/json",
                 "metadata": {"partitionKey": ISSUE18_KEY, "cloudevent.id": "conf-bulk-json", "cloudevent.subject": "own"}},
                {"entryId": "2", "event": "hello", "contentType": "text/plain", "metadata": keyed("conf-bulk-text")},
                {"entryId": "3", "event": "aGVsbG8=", "contentType": "application/octet-stream", "metadata": keyed("conf-bulk-binary")},
                {"entryId": "4", "event": {"answer": "success", "bulk": "without metadata"}, "contentType": "application/json"}
            ]),
        )
        .await?,
    );
    // Raw payloads go to the broker as they are, keyed by the request's `partitionKey` over the
    // entry's (the Kafka component copies the request's metadata over each entry's). The
    // dead-letter topic has no subscriber: what arrived is read from the broker.
    s.answer(
        "bulk publish with rawPayload",
        &bulk(
            "pubsub",
            DEAD_LETTERS,
            &[("rawPayload", "true"), ("partitionKey", "conf-raw-url-key")],
            json!([
                {"entryId": "r1", "event": {"raw": "conf-bulk-raw-1"}, "contentType": "application/json",
                 "metadata": {"partitionKey": "conf-raw-entry-key"}},
                {"entryId": "r2", "event": "conf-bulk-raw-2 as text", "contentType": "text/plain"}
            ]),
        )
        .await?,
    );
    let one = |entry_id: &str, event: Value, content_type: &str| json!({"entryId": entry_id, "event": event, "contentType": content_type, "metadata": keyed("conf-bulk-error")});
    let good = || one("a", json!({"n": 1}), "application/json");
    for (step, pubsub, topic, metadata, body) in [
        ("bulk publish of an empty list", "pubsub", TOPIC_PLAIN, &[][..], json!([])),
        ("bulk publish to an unknown pubsub", "nope", TOPIC_PLAIN, &[][..], json!([good()])),
        ("bulk publish to a topic outside publishingScopes", "pubsub", FORBIDDEN_TOPIC, &[][..], json!([good()])),
        (
            "bulk publish with a non-boolean rawPayload",
            "pubsub",
            TOPIC_PLAIN,
            &[("rawPayload", "maybe")][..],
            json!([good()]),
        ),
        ("bulk publish of an object instead of a list", "pubsub", TOPIC_PLAIN, &[][..], good()),
        (
            "bulk publish with a numeric entryId",
            "pubsub",
            TOPIC_PLAIN,
            &[][..],
            json!([{"entryId": 1, "event": {}, "contentType": "application/json"}]),
        ),
        ("bulk publish with a duplicate entryId", "pubsub", TOPIC_PLAIN, &[][..], json!([good(), good()])),
        (
            "bulk publish without an entryId",
            "pubsub",
            TOPIC_PLAIN,
            &[][..],
            json!([one("", json!({}), "application/json")]),
        ),
        (
            "bulk publish of an object as text/plain",
            "pubsub",
            TOPIC_PLAIN,
            &[][..],
            json!([one("a", json!({}), "text/plain")]),
        ),
        ("bulk publish without a content type", "pubsub", TOPIC_PLAIN, &[][..], json!([one("a", json!({}), "")])),
        (
            "bulk publish of invalid base64",
            "pubsub",
            TOPIC_PLAIN,
            &[][..],
            json!([one("a", json!("%%%"), "application/octet-stream")]),
        ),
        (
            "bulk publish of a string as a CloudEvent",
            "pubsub",
            TOPIC_PLAIN,
            &[][..],
            json!([one("a", json!("x"), "application/cloudevents+json")]),
        ),
        (
            "bulk publish: a bad event before a duplicate entryId",
            "pubsub",
            TOPIC_PLAIN,
            &[][..],
            json!([good(), one("a", json!({}), "text/plain")]),
        ),
    ] {
        s.answer(step, &bulk(pubsub, topic, metadata, body).await?);
    }
    s.answer(
        "bulk publish to a topic the broker does not have",
        &bulk(
            "pubsub",
            "conformance-no-such-topic",
            &[],
            json!([good(), one("b", json!({"n": 2}), "application/json")]),
        )
        .await?,
    );
    s.answer(
        "bulk publish on /v1.0 to an unknown pubsub",
        &b.call(Method::POST, "/v1.0/publish/bulk/nope/reminders", Some(json!([good()]))).await?,
    );
    // Last on the partition: once it is delivered, everything before it was settled.
    let sentinel = publish_path(TOPIC_PLAIN, &[("partitionKey", ISSUE18_KEY), ("cloudevent.id", SENTINEL_ID)]);
    s.answer("publish the sentinel", &b.call(Method::POST, &sentinel, Some(json!({"answer": "success"}))).await?);
    Ok(Issue18 { expiring })
}

/// What reached the app of [`issue18_publishes`], once the sentinel behind it all arrived.
async fn issue18_deliveries(b: &Backend, s: &mut Steps, issue18: Issue18) -> anyhow::Result<()> {
    let rec = &b.app.recorder;
    system_tests::api::eventually("the sentinel's delivery", Duration::from_secs(150), || async {
        Ok((!rec.deliveries(SENTINEL_ID).is_empty()).then_some(()))
    })
    .await?;
    for (step, id) in &issue18.expiring {
        let delivered = rec.deliveries(id);
        s.add(
            &format!("{step}: delivered"),
            json!({"deliveries": delivered.len(),
                   "has an expiration": delivered.first().map(|c| c.body.get("expiration").is_some())}),
        );
    }
    let by_type = |kind: &str| rec.to("/events/").into_iter().find(|c| c.body["type"] == kind);
    let trace = |value: &Value| match value.as_str() {
        Some(OWN_TRACEPARENT) => json!("<own>"),
        Some(TRACEPARENT) => json!("<caller's>"),
        _ => value.clone(),
    };
    for (step, kind) in [
        ("own CloudEvent with traceparent and traceid", "conformance.own-traceid"),
        ("own CloudEvent with only a traceparent", "conformance.own-traceparent"),
    ] {
        let delivered = by_type(kind);
        s.add(
            &format!("delivery of an {step}"),
            json!(delivered.map(|c| json!({
                "traceparent": trace(&c.body["traceparent"]),
                "traceid": trace(&c.body["traceid"]),
                "tracestate": c.body["tracestate"],
                "has an id": c.body.get("id").is_some(),
                "traceparent header": c.headers.get("traceparent").map(|h| trace(&json!(h))),
            }))),
        );
    }
    for id in ["conf-ct-problem-json", "conf-ct-upper-json", "conf-bulk-json", "conf-bulk-text", "conf-bulk-binary"] {
        let delivered = rec.deliveries(id);
        s.add(
            &format!("{id}: delivered CloudEvent"),
            json!({"deliveries": delivered.len(), "event": delivered.first().map(|c| normalise(&c.body))}),
        );
    }
    let without =
        rec.to("/events/").into_iter().filter(|c| c.body["data"]["bulk"] == "without metadata").collect::<Vec<_>>();
    s.add(
        "bulk-published entry without metadata: delivered CloudEvent",
        json!({"deliveries": without.len(), "event": without.first().map(|c| {
            let mut event = normalise(&c.body);
            event["id"] = json!(if c.body["id"].as_str().is_some_and(|id| !id.is_empty()) { "<generated>" } else { "<none>" });
            event
        })}),
    );
    s.add("bulk publish errors published nothing", json!(rec.deliveries("conf-bulk-error").len()));
    let raw = system_tests::api::eventually("the raw bulk entries on the broker", Duration::from_secs(30), || async {
        let raw: Vec<Value> = b
            .topic(DEAD_LETTERS)
            .await?
            .into_iter()
            .filter(|(_, body)| {
                body.get("raw").is_some() || body.as_str().is_some_and(|t| t.starts_with("conf-bulk-raw"))
            })
            .map(|(key, body)| json!({"key": key, "value": body}))
            .collect();
        Ok((raw.len() >= 2).then_some(raw))
    })
    .await?;
    s.add("raw bulk entries as the broker has them", json!(raw));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_and_subscription_answers_as_daprd_does() -> anyhow::Result<()> {
    let documented = [
        // devhost creates a topic on its first publish; the platform's broker, like the
        // clusters', has auto-creation off and only the topics of `topics.txt`.
        Documented {
            step: "publish to a topic the broker does not have",
            devhost: json!({"body": null, "status": 204}),
            daprd: json!({
                "status": 500,
                "errorCode": "ERR_PUBSUB_PUBLISH_MESSAGE",
                "body": {
                    "errorCode": "ERR_PUBSUB_PUBLISH_MESSAGE",
                    "message": "<message>",
                    "details": [
                        {"@type": "type.googleapis.com/google.rpc.ResourceInfo", "resource_type": "pubsub",
                         "resource_name": "pubsub", "owner": "", "description": "<description>"},
                        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "DAPR_PUBSUB_PUBLISH_MESSAGE",
                         "domain": "dapr.io", "metadata": {"topic": "conformance-no-such-topic", "error": "<error>"}}
                    ]
                }
            }),
        },
        // The same for a bulk publish: daprd answers with every entry failed (Kafka's bulk
        // produce), devhost commits them all.
        Documented {
            step: "bulk publish to a topic the broker does not have",
            devhost: json!({"body": null, "status": 204}),
            daprd: json!({
                "status": 500,
                "errorCode": "ERR_PUBSUB_PUBLISH_MESSAGE",
                "body": {
                    "errorCode": "ERR_PUBSUB_PUBLISH_MESSAGE",
                    "failedEntries": [{"entryId": "a", "error": "<error>"}, {"entryId": "b", "error": "<error>"}]
                }
            }),
        },
    ];
    differential("pubsub", &documented, |b| Box::pin(pubsub_calls(b))).await
}
