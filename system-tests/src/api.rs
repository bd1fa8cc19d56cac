//! A small client of task-api, as a user of the REST API sees it.

use std::time::Duration;

use anyhow::{Context as _, bail};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

/// An answer: status and JSON body (`Null` when empty).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

/// A plain HTTP client for what [`Api`] does not send (publishes, sidecar calls, requests with
/// headers of their own). Its 5 s timeout turns a system that is down into an answer that is
/// lost, which the fault tests count, rather than a hang.
pub fn client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder().timeout(Duration::from_secs(5)).no_proxy().build().context("HTTP client")
}

impl Api {
    pub fn new(base: &str, token: &str) -> anyhow::Result<Self> {
        let http =
            reqwest::Client::builder().timeout(Duration::from_secs(10)).no_proxy().build().context("HTTP client")?;
        Ok(Self { base: base.trim_end_matches('/').to_owned(), token: token.to_owned(), http })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The bearer token this client sends.
    pub fn token(&self) -> &str {
        &self.token
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<Answer> {
        let mut request = self.http.request(method.clone(), format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = json_body(request, body);
        }
        let response = request.send().await.with_context(|| format!("{method} {path}"))?;
        let status = response.status();
        let bytes = response.bytes().await.with_context(|| format!("reading the answer to {method} {path}"))?;
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        Ok(Answer { status, body })
    }

    /// `GET path`, expecting 200.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let answer = self.call(Method::GET, path, None).await?;
        if answer.status != StatusCode::OK {
            bail!("GET {path} answered {}: {}", answer.status, answer.body);
        }
        Ok(answer.body)
    }

    /// `GET path?query`, expecting 200; the query is percent-encoded here.
    pub async fn get_query(&self, path: &str, query: &[(&str, &str)]) -> anyhow::Result<Value> {
        let mut url = reqwest::Url::parse("http://query.invalid/").context("placeholder URL")?;
        url.query_pairs_mut().extend_pairs(query);
        self.get(&format!("{path}?{}", url.query().unwrap_or_default())).await
    }

    /// `POST path`, expecting `expected`.
    pub async fn post(&self, path: &str, body: Option<&Value>, expected: StatusCode) -> anyhow::Result<Value> {
        let answer = self.call(Method::POST, path, body).await?;
        if answer.status != expected {
            bail!("POST {path} answered {} (expected {expected}): {}", answer.status, answer.body);
        }
        Ok(answer.body)
    }

    /// The changes of a task's audit trail (`created`, `completed`, ...), oldest first.
    pub async fn audit_changes(&self, task_id: &str) -> anyhow::Result<Vec<String>> {
        self.audit_field(task_id, "change").await
    }

    /// One text field of every entry of a task's audit trail (`change`, `event_id`, ...),
    /// oldest first.
    pub async fn audit_field(&self, task_id: &str, field: &str) -> anyhow::Result<Vec<String>> {
        let trail = self.get(&format!("/v1/tasks/{task_id}/audit")).await?;
        Ok(trail["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e[field].as_str().map(str::to_owned))
            .collect())
    }

    /// Every task a list query returns, following `next_cursor` page by page.
    pub async fn list_all(&self, query: &[(&str, &str)]) -> anyhow::Result<Vec<Value>> {
        let mut tasks = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut page_query = query.to_vec();
            if let Some(c) = &cursor {
                page_query.push(("cursor", c.as_str()));
            }
            let page = self.get_query("/v1/tasks", &page_query).await?;
            tasks.extend(page["items"].as_array().into_iter().flatten().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return Ok(tasks),
            }
        }
    }

    /// Waits until task-api answers its health check.
    pub async fn wait_healthy(&self, timeout: Duration) -> anyhow::Result<()> {
        eventually("task-api to be up", timeout, || async { Ok(self.healthy().await.then_some(())) }).await
    }

    /// Whether task-api answers its health check.
    pub async fn healthy(&self) -> bool {
        matches!(self.http.get(format!("{}/healthz", self.base)).send().await, Ok(r) if r.status().is_success())
    }
}

/// `body` as the request's JSON body (the workspace builds reqwest without its `json` feature).
pub fn json_body(request: RequestBuilder, body: &Value) -> RequestBuilder {
    request.header("content-type", "application/json").body(body.to_string())
}

/// Polls `probe` every 200 ms until it returns `Some`, or fails after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match probe().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(error) => last_error = Some(error),
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(match last_error {
                Some(error) => error.context(format!("{what}: not within {timeout:?}")),
                None => anyhow::anyhow!("{what}: not within {timeout:?}"),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
