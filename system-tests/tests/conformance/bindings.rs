//! Output bindings: `bindings.smtp` and `bindings.http`, what they send and their errors.

use super::*;

/// The sender every mail component has.
const MAIL_FROM: &str = "Todo <todo@example.com>";
const MAIL_USER: &str = "todo";
const MAIL_PASSWORD: &str = "s3cret";

/// The HTTP receiver of the `webhook` binding: records every call (the path with its query,
/// the headers, the body as it came) and answers by path: `.../status/<code>` with that status
/// and a text, anything else 200 with a JSON body and a header of its own.
async fn receiver_handler(
    State(recorder): State<Arc<Recorder>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
    let headers: BTreeMap<String, String> = headers
        .iter()
        .filter(|(name, _)| !RECEIVER_TRANSPORT_HEADERS.contains(&name.as_str()))
        .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect();
    let call = Call {
        method: method.to_string(),
        path: path.clone(),
        query: String::new(),
        headers,
        body: Value::String(String::from_utf8_lossy(&body).into_owned()),
        at: Instant::now(),
    };
    recorder.calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(call);
    if uri.path().ends_with("/slow") {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    if uri.path().ends_with("/multi") {
        let mut response = StatusCode::CREATED.into_response();
        for value in ["a", "b"] {
            response.headers_mut().append("x-multi", axum::http::HeaderValue::from_static(value));
        }
        return response;
    }
    if let Some(code) = uri.path().rsplit_once("/status/").and_then(|(_, c)| c.parse::<u16>().ok()) {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (status, format!("answered {code}")).into_response();
    }
    ([("x-answer", "yes")], axum::Json(json!({"received": true}))).into_response()
}

/// Headers the HTTP clients add on their own (Go: `User-Agent: Go-http-client/1.1`,
/// `Accept-Encoding: gzip`): `accept` is the binding's, so it is compared.
const RECEIVER_TRANSPORT_HEADERS: &[&str] = &["host", "content-length", "user-agent", "accept-encoding", "connection"];

/// The binding components, each backend's pointing at its own sink and receiver: `mail` (what
/// the notifier uses), `mail-many` (recipients, CC, BCC and priority per request), `mail-bare`
/// (no request but the one without a subject ever reaches it), `mail-defaults` (every field
/// from the component), `mail-down` (nothing listens on its port), `mail-elsewhere` (scoped to
/// another app-id) and `webhook` (`bindings.http`).
pub(crate) async fn binding_fixtures() -> anyhow::Result<Fixtures> {
    let sink = SmtpSink::start().await?;
    let port = free_port()?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let recorder = Arc::new(Recorder::default());
    let router = axum::Router::new().fallback(receiver_handler).with_state(recorder.clone());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let receiver = TestApp { port, recorder, server };
    let down = free_port()?;
    let component = |name: &str, kind: &str, metadata: &[(&str, String)], scope: &str| {
        let items: String =
            metadata.iter().map(|(k, v)| format!("    - name: {k}\n      value: {}\n", json!(v))).collect();
        format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\nspec:\n  type: bindings.{kind}\n  \
             version: v1\n  metadata:\n{items}scopes:\n  - {scope}\n"
        )
    };
    let smtp = |port: u16, extra: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        let base = [("host", "127.0.0.1".to_owned()), ("port", port.to_string()), ("emailFrom", MAIL_FROM.to_owned())];
        base.into_iter().chain(extra.iter().map(|(k, v)| (*k, (*v).to_owned()))).collect()
    };
    let auth_sink = SmtpSink::start_with_auth(MAIL_USER, MAIL_PASSWORD).await?;
    let auth = |user: &'static str, password: &'static str| [("user", user), ("password", password)];
    let resources = vec![
        ("binding-mail.yaml", component("mail", "smtp", &smtp(sink.port(), &[]), APP_ID)),
        ("binding-mail-many.yaml", component("mail-many", "smtp", &smtp(sink.port(), &[]), APP_ID)),
        ("binding-mail-bare.yaml", component("mail-bare", "smtp", &smtp(sink.port(), &[]), APP_ID)),
        (
            "binding-mail-defaults.yaml",
            component(
                "mail-defaults",
                "smtp",
                &smtp(
                    sink.port(),
                    &[
                        ("emailTo", "ops@example.com"),
                        ("emailCC", "cc@example.com"),
                        ("subject", "Default subject"),
                        ("priority", "5"),
                    ],
                ),
                APP_ID,
            ),
        ),
        ("binding-mail-down.yaml", component("mail-down", "smtp", &smtp(down, &[]), APP_ID)),
        (
            "binding-mail-auth.yaml",
            component("mail-auth", "smtp", &smtp(auth_sink.port(), &auth(MAIL_USER, MAIL_PASSWORD)), APP_ID),
        ),
        (
            "binding-mail-auth-wrong.yaml",
            component("mail-auth-wrong", "smtp", &smtp(auth_sink.port(), &auth(MAIL_USER, "wrong")), APP_ID),
        ),
        (
            "binding-mail-auth-missing.yaml",
            component("mail-auth-missing", "smtp", &smtp(auth_sink.port(), &[]), APP_ID),
        ),
        (
            "binding-mail-auth-unoffered.yaml",
            component("mail-auth-unoffered", "smtp", &smtp(sink.port(), &auth(MAIL_USER, MAIL_PASSWORD)), APP_ID),
        ),
        (
            "binding-webhook-token.yaml",
            component(
                "webhook-token",
                "http",
                &[
                    ("url", format!("http://127.0.0.1:{port}/token/")),
                    ("securityToken", "t0ken".to_owned()),
                    ("securityTokenHeader", "X-Security-Token".to_owned()),
                    ("responseTimeout", "500ms".to_owned()),
                ],
                APP_ID,
            ),
        ),
        ("binding-mail-elsewhere.yaml", component("mail-elsewhere", "smtp", &smtp(sink.port(), &[]), "notifier")),
        (
            "binding-webhook.yaml",
            component("webhook", "http", &[("url", format!("http://127.0.0.1:{port}/base"))], APP_ID),
        ),
    ];
    Ok(Fixtures {
        resources: resources.into_iter().map(|(n, t)| (n.to_owned(), t)).collect(),
        sink: Some(sink),
        auth_sink: Some(auth_sink),
        receiver: Some(receiver),
        ..Fixtures::default()
    })
}

/// Whether the receiver got the caller's trace, the all-zero one, or another.
fn normalise_traceparent(value: &str) -> String {
    match value {
        ZERO_TRACEPARENT => "<zero>".to_owned(),
        v if v == TRACEPARENT => "<the caller's>".to_owned(),
        v if v.split('-').nth(1) == TRACEPARENT.split('-').nth(1) => "<the caller's trace, another span>".to_owned(),
        v => v.to_owned(),
    }
}

/// What a mail is compared by: the envelope and `EHLO` name, and the decoded headers and body.
fn mail_observed(mail: &Mail) -> Value {
    let parsed = mail.parsed();
    json!({
        "helo": mail.helo,
        "user": mail.user,
        "envelope_from": mail.from,
        "envelope_to": mail.to,
        "subject": parsed.subject,
        "from": parsed.from,
        "to": parsed.to,
        "cc": mail.header("cc"),
        "bcc": mail.header("bcc"),
        "x-priority": mail.header("x-priority"),
        "content_type": parsed.content_type,
        "charset": parsed.charset.map(|c| c.to_ascii_lowercase()),
        "transfer_encoding": mail.header("content-transfer-encoding"),
        "body": parsed.body,
    })
}

/// The binding's answer: status, error, body, and the `metadata.*` headers (the `Date` the
/// receiver sent normalised), with the calls the receiver got and the mails the sink got
/// during it.
async fn binding_call(b: &Backend, name: &str, request: Value) -> anyhow::Result<Value> {
    binding_call_with(b, Method::POST, name, request).await
}

async fn binding_call_with(b: &Backend, method: Method, name: &str, request: Value) -> anyhow::Result<Value> {
    let sinks: Vec<&SmtpSink> = [&b.fixtures.sink, &b.fixtures.auth_sink].into_iter().flatten().collect();
    let receiver = &b.fixtures.receiver.as_ref().context("the receiver")?.recorder;
    let mails_before: Vec<usize> = sinks.iter().map(|s| s.mails().len()).collect();
    let calls_before = receiver.calls().len();
    let answer = b.call(method, format!("/v1.0/bindings/{name}"), Some(request)).await?;
    let mut observed = answer.observed();
    if answer.status.is_success() && name.starts_with("mail") {
        // The mail is sent before daprd answers; the sink may still be storing it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && sinks.iter().zip(&mails_before).all(|(s, before)| s.mails().len() == *before)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let metadata: BTreeMap<String, String> = answer
        .headers
        .iter()
        .filter_map(|(k, v)| {
            let key = k.as_str().strip_prefix("metadata.")?;
            let value =
                if key == "date" { "<date>".to_owned() } else { String::from_utf8_lossy(v.as_bytes()).into_owned() };
            Some((key.to_owned(), value))
        })
        .collect();
    if !metadata.is_empty() {
        observed["metadata"] = json!(metadata);
    }
    if let Some(content_type) = answer.headers.get("content-type") {
        observed["content-type"] = json!(String::from_utf8_lossy(content_type.as_bytes()));
    }
    let mails: Vec<Value> = sinks
        .iter()
        .zip(&mails_before)
        .flat_map(|(sink, before)| sink.mails().into_iter().skip(*before).collect::<Vec<_>>())
        .map(|m| mail_observed(&m))
        .collect();
    if !mails.is_empty() {
        observed["mails"] = json!(mails);
    }
    let calls: Vec<Value> = receiver
        .calls()
        .iter()
        .skip(calls_before)
        .map(|c| json!({"method": c.method, "path": c.path, "headers": c.headers, "body": c.body}))
        .collect();
    if !calls.is_empty() {
        observed["calls"] = json!(calls);
    }
    Ok(observed)
}

async fn bindings_calls(b: &Backend) -> anyhow::Result<Steps> {
    let mut s = Steps::default();
    let reminder = "<p>Reminder: <b>Pay rent &amp; bills</b> is due at 09:00 “today”.</p>";
    let notifier = |to: &str, subject: &str| json!({"operation": "create", "data": reminder, "metadata": {"emailTo": to, "subject": subject}});

    // What `/v1.0/metadata` says of them (`mail-elsewhere` is not loaded for this app-id).
    let metadata = b.call(Method::GET, "/v1.0/metadata", None).await?;
    let mut bindings: Vec<Value> = metadata.body["components"]
        .as_array()
        .context("components")?
        .iter()
        .filter(|c| c["type"].as_str().is_some_and(|t| t.starts_with("bindings.")))
        .cloned()
        .collect();
    bindings.sort_by_key(|c| c["name"].as_str().unwrap_or_default().to_owned());
    s.add("metadata lists the bindings", json!(bindings));

    // SMTP: what the notifier sends, then the variations.
    s.add(
        "mail: what the notifier sends",
        binding_call(b, "mail", notifier("ada@example.com", "Reminder: Pay rent")).await?,
    );
    s.add(
        "mail: a non-ASCII subject and a multi-line body",
        binding_call(
            b,
            "mail",
            json!({"operation": "create", "data": format!("<p>Ça va ✓</p>\n<p>{}</p>", "long line ".repeat(12)),
                   "metadata": {"emailTo": "bob@example.com", "subject": "Rappel : échéance ✓"}}),
        )
        .await?,
    );
    s.add(
        "mail: data that is not a string",
        binding_call(
            b,
            "mail",
            json!({"operation": "create", "data": {"b": 1.50, "a": "<x> & y", "n": null, "big": 1e21},
                   "metadata": {"emailTo": "ada@example.com", "subject": "object"}}),
        )
        .await?,
    );
    s.add(
        "mail: two recipients, CC, BCC and priority",
        binding_call(
            b,
            "mail-many",
            json!({"operation": "create", "data": "<p>many</p>",
                   "metadata": {"emailTo": "a@example.com;b@example.com", "emailCC": "c@example.com",
                                "emailBCC": "d@example.com;a@example.com", "subject": "many", "priority": "1",
                                "emailFrom": "Other Sender <other@example.com>"}}),
        )
        .await?,
    );
    s.add(
        "mail: everything from the component",
        binding_call(b, "mail-defaults", json!({"operation": "create", "data": "<p>defaults</p>"})).await?,
    );
    s.add(
        "mail: no subject anywhere",
        binding_call(
            b,
            "mail-bare",
            json!({"operation": "create", "data": "x", "metadata": {"emailTo": "ada@example.com"}}),
        )
        .await?,
    );
    // On daprd the subject of an earlier request to `mail` is still in the component.
    s.add(
        "mail: no subject after requests with one",
        binding_call(
            b,
            "mail",
            json!({"operation": "create", "data": "<p>late</p>", "metadata": {"emailTo": "ada@example.com"}}),
        )
        .await?,
    );
    s.add(
        "mail: a priority out of range",
        binding_call(
            b,
            "mail",
            json!({"operation": "create", "data": "x",
                   "metadata": {"emailTo": "ada@example.com", "subject": "p", "priority": "9"}}),
        )
        .await?,
    );
    s.add(
        "mail: a priority that is not a number",
        binding_call(
            b,
            "mail",
            json!({"operation": "create", "data": "x",
                   "metadata": {"emailTo": "ada@example.com", "subject": "p", "priority": "high"}}),
        )
        .await?,
    );
    s.add("mail: an unsupported operation", binding_call(b, "mail", json!({"operation": "get", "data": "x"})).await?);
    s.add("mail: no operation", binding_call(b, "mail", json!({"data": "x"})).await?);
    s.add(
        "mail: the SMTP server is not listening",
        binding_call(b, "mail-down", notifier("ada@example.com", "down")).await?,
    );
    s.add(
        "mail: an address that is not one",
        binding_call(b, "mail", notifier("not an address", "bad address")).await?,
    );
    s.add("mail: with auth", binding_call(b, "mail-auth", notifier("ada@example.com", "auth")).await?);
    s.add(
        "mail: with a wrong password",
        binding_call(b, "mail-auth-wrong", notifier("ada@example.com", "wrong")).await?,
    );
    s.add(
        "mail: without auth where it is required",
        binding_call(b, "mail-auth-missing", notifier("ada@example.com", "missing")).await?,
    );
    s.add(
        "mail: a user where the server offers no auth",
        binding_call(b, "mail-auth-unoffered", notifier("ada@example.com", "unoffered")).await?,
    );
    s.add("mail: PUT on the API", binding_call_with(b, Method::PUT, "mail", notifier("ada@example.com", "put")).await?);
    s.add("no such binding", binding_call(b, "no-such-binding", notifier("ada@example.com", "none")).await?);
    s.add(
        "a binding scoped to another app",
        binding_call(b, "mail-elsewhere", notifier("ada@example.com", "elsewhere")).await?,
    );
    s.add("a state store is no binding", binding_call(b, "state", notifier("ada@example.com", "state")).await?);
    let malformed = b
        .call_with(
            Method::POST,
            "/v1.0/bindings/mail",
            None,
            &[("dapr-api-token", API_TOKEN), ("content-type", "application/json")],
        )
        .await?;
    s.answer("an empty body", &malformed);
    s.add(
        "a metadata value that is not a string",
        binding_call(b, "mail", json!({"operation": "create", "data": "x", "metadata": {"emailTo": 1}})).await?,
    );

    // HTTP.
    s.add(
        "http: create with a path and headers",
        binding_call(
            b,
            "webhook",
            json!({"operation": "create", "data": {"event": "todo.reminder.due", "id": "e1"},
                   "metadata": {"path": "/hooks/ada", "X-Webhook-Id": "e1", "webhook-signature": "lower-case, not sent",
                                "Content-Type": "application/webhook+json"}}),
        )
        .await?,
    );
    s.add(
        "http: post of a string",
        binding_call(b, "webhook", json!({"operation": "post", "data": "<b>text</b>", "metadata": {"path": "text"}}))
            .await?,
    );
    s.add(
        "http: get with a query",
        binding_call(b, "webhook", json!({"operation": "get", "metadata": {"path": "items?page=2&q=a%20b"}})).await?,
    );
    s.add(
        "http: put without data",
        binding_call(b, "webhook", json!({"operation": "put", "metadata": {"path": "/empty/"}})).await?,
    );
    s.add(
        "http: delete",
        binding_call(b, "webhook", json!({"operation": "delete", "metadata": {"path": "x/1"}})).await?,
    );
    s.add(
        "http: the receiver answers 500",
        binding_call(b, "webhook", json!({"operation": "post", "data": {"n": 1}, "metadata": {"path": "status/500"}}))
            .await?,
    );
    s.add(
        "http: the receiver answers 404",
        binding_call(b, "webhook", json!({"operation": "get", "metadata": {"path": "status/404"}})).await?,
    );
    s.add(
        "http: 404 with errorIfNot2XX false",
        binding_call(
            b,
            "webhook",
            json!({"operation": "get", "metadata": {"path": "status/404", "errorIfNot2XX": "false"}}),
        )
        .await?,
    );
    let traced = b
        .call_with(
            Method::POST,
            "/v1.0/bindings/webhook",
            Some(json!({"operation": "post", "data": 1, "metadata": {"path": "traced"}})),
            &[("dapr-api-token", API_TOKEN), ("traceparent", TRACEPARENT), ("tracestate", TRACESTATE)],
        )
        .await?;
    let receiver = &b.fixtures.receiver.as_ref().context("the receiver")?.recorder;
    let last = receiver.to("/base/traced").pop().context("the traced call")?;
    let mut observed = traced.observed();
    let trace_headers: BTreeMap<String, String> = last
        .headers
        .iter()
        .filter(|(k, _)| k.starts_with("trace"))
        .map(|(k, v)| (k.clone(), if k == "traceparent" { normalise_traceparent(v) } else { v.clone() }))
        .collect();
    observed["trace headers"] = json!(trace_headers);
    s.add("http: with the caller's trace context", observed);
    s.add(
        "http: the security token, a base URL ending in a slash",
        binding_call(b, "webhook-token", json!({"operation": "get", "metadata": {"path": "/checked"}})).await?,
    );
    s.add(
        "http: the response timeout",
        binding_call(b, "webhook-token", json!({"operation": "get", "metadata": {"path": "slow"}})).await?,
    );
    s.add(
        "http: a header with two values in the response",
        binding_call(b, "webhook", json!({"operation": "patch", "data": [1, "two"], "metadata": {"path": "multi"}}))
            .await?,
    );
    s.add(
        "http: an unsupported operation",
        binding_call(b, "webhook", json!({"operation": "connect", "metadata": {"path": "x"}})).await?,
    );
    Ok(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bindings_answer_and_deliver_as_daprd_does() -> anyhow::Result<()> {
    let documented = [
        // smtp.go:179-211 writes each request's metadata into the component: the subject of
        // the request before ("object") is still there on daprd. devhost merges into a copy.
        Documented {
            step: "mail: no subject after requests with one",
            devhost: json!({"body":{"errorCode":"ERR_INVOKE_OUTPUT_BINDING","message":"<message>"},
                "content-type":"application/json","errorCode":"ERR_INVOKE_OUTPUT_BINDING","status":500}),
            daprd: json!({"body":null,"mails":[{"bcc":null,"body":"<p>late</p>","cc":null,"charset":"utf-8",
                "content_type":"text/html","envelope_from":"todo@example.com","envelope_to":["ada@example.com"],
                "from":"Todo <todo@example.com>","helo":"localhost","subject":"object","to":["ada@example.com"],
                "transfer_encoding":"quoted-printable","user":null,"x-priority":"3"}],"status":204}),
        },
    ];
    differential("bindings", &documented, |b| Box::pin(bindings_calls(b))).await
}
