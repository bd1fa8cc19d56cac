//! The metadata API and shutdown: `GET /v1.0/metadata` (its whole shape: components and their
//! capabilities, subscriptions and their `rules`, `extended`, the app connection, the actor
//! runtime), `PUT /v1.0/metadata/{key}` then `GET`, and last `POST /v1.0/shutdown`: 204, then the
//! sidecar is gone.

use super::*;

/// The metadata body with what differs by run or backend masked: versions, the app port, the
/// Scheduler's address; components and subscriptions in name order.
fn shape(body: &Value) -> Value {
    let mut body = normalise(body);
    for key in ["runtimeVersion"] {
        if body.get(key).is_some() {
            body[key] = json!(format!("<{key}>"));
        }
    }
    if body["extended"].get("daprRuntimeVersion").is_some() {
        body["extended"]["daprRuntimeVersion"] = json!("<version>");
    }
    if body["appConnectionProperties"].get("port").is_some() {
        body["appConnectionProperties"]["port"] = json!("<port>");
    }
    if let Some(Value::Array(addresses)) = body.pointer_mut("/scheduler/connected_addresses") {
        *addresses = vec![json!("<address>")];
    }
    for list in ["components", "subscriptions"] {
        if let Some(Value::Array(items)) = body.get_mut(list) {
            items.sort_by_key(|c| format!("{}{}", c["name"], c["topic"]));
        }
    }
    body
}

async fn metadata_calls(b: &Backend) -> anyhow::Result<Steps> {
    let mut s = Steps::default();
    let get = b.call(Method::GET, "/v1.0/metadata", None).await?;
    let mut body = shape(&get.body);
    let features = body.as_object_mut().and_then(|m| m.remove("enabledFeatures"));
    s.add("get", json!({"status": get.status.as_u16(), "body": body}));
    s.add("enabledFeatures", json!(features));
    let put = |key: &str, body: &str| {
        let request = b.http.put(format!("{}/v1.0/metadata/{key}", b.sidecar)).header("dapr-api-token", API_TOKEN);
        request.body(body.to_owned()).send()
    };
    for (key, value) in [("conf-key", "conf value"), ("conf-json", "{\"a\": 1}"), ("conf-empty", "")] {
        let r = put(key, value).await?;
        s.add(&format!("put {key}"), json!({"status": r.status().as_u16(), "body": r.text().await?}));
    }
    let r = put("conf-key", "replaced").await?;
    s.add("put again", json!({"status": r.status().as_u16()}));
    let after = b.call(Method::GET, "/v1.0/metadata", None).await?;
    s.add("extended after put", shape(&after.body)["extended"].clone());
    s.answer("put without the API token", &b.call_with(Method::PUT, "/v1.0/metadata/x", None, &[]).await?);
    s.answer("shutdown without the API token", &b.call_with(Method::POST, "/v1.0/shutdown", None, &[]).await?);
    let down = b.call(Method::POST, "/v1.0/shutdown", None).await?;
    s.add("shutdown", json!({"status": down.status.as_u16(), "body": down.body}));
    let gone = system_tests::api::eventually("the sidecar to stop", Duration::from_secs(30), || async {
        let reached = b.http.get(format!("{}/v1.0/healthz", b.sidecar)).send().await;
        Ok(reached.is_err().then_some(true))
    })
    .await?;
    s.add("sidecar gone after shutdown", json!(gone));
    Ok(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_and_shutdown_as_daprd_does() -> anyhow::Result<()> {
    let documented = [Documented {
        step: "enabledFeatures",
        devhost: Value::Null,
        daprd: json!(["HotReload", "WorkflowsRemoteActivityReminder"]),
    }];
    differential("metadata", &documented, |b| Box::pin(metadata_calls(b))).await
}
