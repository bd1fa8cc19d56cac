//! Service invocation over HTTP: the test app invokes itself through its own sidecar
//! (`/v1.0/invoke/task-api/method/...` and the `dapr-app-id` header form) with every method,
//! query strings, headers and bodies; what the app receives (method, path, query, headers,
//! body), the answer passed back (status, headers, body) for 2xx, 4xx and 5xx answers, and the
//! errors (no app-id, an unknown app-id).

use super::*;

/// The test app's answer to `/invoked/...`: the status asked for in `status=`, a header of its
/// own, a text body naming the call.
pub(super) fn invoked_answer(method: &Method, path: &str, query: &str) -> Response {
    let status = query
        .split('&')
        .find_map(|p| p.strip_prefix("status="))
        .and_then(|s| s.parse().ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let headers = [("x-invoked", "yes"), ("content-type", "text/plain; charset=utf-8")];
    (status, headers, format!("{method} {path}")).into_response()
}

/// An invocation answer: status, the app's headers that came back, the body, the error code.
fn answered(a: &Answer) -> Value {
    let header = |name: &str| a.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut out = a.observed();
    out["x-invoked"] = json!(header("x-invoked"));
    out["content-type"] = json!(header("content-type"));
    out
}

/// What the app got for the last call to `path`.
fn received(rec: &Recorder, path: &str) -> Value {
    match rec.to(path).last() {
        None => json!("nothing"),
        Some(c) => json!({"method": c.method, "path": c.path, "query": c.query,
                          "headers": delivery_headers(c), "body": c.body,
                          "traceparent as sent": c.headers.get("traceparent").map(|t| t == TRACEPARENT)}),
    }
}

async fn invoke_calls(b: &Backend) -> anyhow::Result<Steps> {
    let mut s = Steps::default();
    let rec = &b.app.recorder;
    let token = ("dapr-api-token", API_TOKEN);
    let trace = [token, ("traceparent", TRACEPARENT), ("tracestate", TRACESTATE), ("x-custom", "custom value")];
    for method in [Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::PATCH, Method::OPTIONS] {
        let path = format!("/invoked/{}", method.as_str().to_lowercase());
        let body = (method != Method::GET).then(|| json!({"n": 1, "text": "hello"}));
        let answer = b
            .call_with(
                method.clone(),
                format!("/v1.0/invoke/{APP_ID}/method{path}?a=1&b=two%20words&a=3"),
                body,
                &trace,
            )
            .await?;
        s.add(&format!("{method} answer"), answered(&answer));
        s.add(&format!("{method} received"), received(rec, &path));
    }
    b.call_with(Method::DELETE, format!("/v1.0/invoke/{APP_ID}/method/invoked/delete-empty"), None, &[token]).await?;
    for status in [201, 204, 400, 404, 500, 503] {
        let path = format!("/invoked/status-{status}");
        let answer = b
            .call_with(Method::POST, format!("/v1.0/invoke/{APP_ID}/method{path}?status={status}"), None, &[token])
            .await?;
        s.add(&format!("app answers {status}"), answered(&answer));
    }
    s.add("a POST without a body received", received(rec, "/invoked/status-201"));
    // No resiliency policy targets the app: an error answer is not retried.
    s.add(
        "calls for a 500 and a 503 answer",
        json!([rec.to("/invoked/status-500").len(), rec.to("/invoked/status-503").len()]),
    );
    s.add("a DELETE without a body received", received(rec, "/invoked/delete-empty"));
    let answer = b
        .call_with(Method::POST, "/invoked/by-header?x=1", Some(json!({"h": true})), &[token, ("dapr-app-id", APP_ID)])
        .await?;
    s.add("dapr-app-id header answer", answered(&answer));
    s.add("dapr-app-id header received", received(rec, "/invoked/by-header"));
    let answer = b
        .call_with(Method::GET, format!("/v1.0/invoke/{APP_ID}/method/invoked/a/../dotted/./x"), None, &[token])
        .await?;
    s.add("dot segments answer", answered(&answer));
    s.add("dot segments received", received(rec, "/invoked/dotted/x"));
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("dapr-app-id:{APP_ID}"))
    );
    let answer = b.call_with(Method::PUT, "/invoked/by-basic-auth", None, &[token, ("authorization", &basic)]).await?;
    s.add("basic auth answer", answered(&answer));
    s.add("basic auth received", received(rec, "/invoked/by-basic-auth"));
    let answer = b.call_with(Method::GET, format!("/v1.0/invoke/{APP_ID}/method/"), None, &[token]).await?;
    s.add("empty method", json!({"status": answer.status.as_u16(), "errorCode": answer.body.get("errorCode")}));
    s.answer(
        "a method with a forbidden character",
        &b.call(Method::GET, format!("/v1.0/invoke/{APP_ID}/method/invoked/a%23b"), None).await?,
    );
    let answer = b.call_with(Method::GET, "/invoked/not-found-route", None, &[token]).await?;
    s.add("an unknown route without dapr-app-id", json!({"status": answer.status.as_u16()}));
    let no_app = b.call(Method::GET, "/v1.0/invoke/method/x", None).await?;
    s.answer("no app-id", &no_app);
    s.add("no app-id message", no_app.body["message"].clone());
    s.answer("unknown app-id", &b.call(Method::GET, "/v1.0/invoke/conformance-nobody/method/x", None).await?);
    s.answer(
        "without the API token",
        &b.call_with(Method::GET, format!("/v1.0/invoke/{APP_ID}/method/invoked/x"), None, &[]).await?,
    );
    Ok(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invocation_as_daprd_does_it() -> anyhow::Result<()> {
    differential("invoke", &[], |b| Box::pin(invoke_calls(b))).await
}
