//! The request figures: task-api on its real daprd, one request at a time, each timed from
//! sending it to the last byte of its answer, after a few untimed ones on the same connection.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use reqwest::StatusCode;
use serde_json::Value;

/// Requests sent before a figure's timed ones (connections, caches).
pub const WARM_UP: usize = 5;

/// A request of a figure, and what its answer must hold for the figure to count.
#[derive(Debug, Clone)]
pub struct Request {
    /// Path and query, as sent.
    pub path: String,
    pub expect: Expect,
    /// The bearer token of another user than the client's.
    pub token: Option<String>,
}

impl Request {
    pub fn new(path: String, expect: Expect) -> Self {
        Self { path, expect, token: None }
    }
}

/// What a figure's answer must hold: a request that answers something else measured nothing
/// worth reporting (a list that finds nothing is fast).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// `items` has exactly this many entries.
    Items(usize),
    /// `items` has at least one entry.
    SomeItems,
    /// `items` is empty.
    NoItems,
    /// A task (an object with an `id`).
    Task,
}

impl Expect {
    pub fn check(self, body: &Value) -> anyhow::Result<()> {
        let items = body["items"].as_array().map(Vec::len);
        let ok = match self {
            Self::Items(n) => items == Some(n),
            Self::SomeItems => items.is_some_and(|n| n > 0),
            Self::NoItems => items == Some(0),
            Self::Task => body["id"].is_string(),
        };
        if !ok {
            let shown: String = body.to_string().chars().take(300).collect();
            bail!("expected {self:?}, got {} items: {shown}", items.map_or("no".to_owned(), |n| n.to_string()));
        }
        Ok(())
    }
}

/// One timed request's answer.
#[derive(Debug)]
pub struct Answer {
    pub ms: f64,
    pub body: Value,
    /// task-api's `X-Scan-Truncated: true`: the store held more candidates than it read.
    pub truncated: bool,
}

/// A client of task-api acting as one user.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    pub fn new(base: &str, token: &str, timeout: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(timeout).no_proxy().build().context("HTTP client")?;
        Ok(Self { http, base: base.trim_end_matches('/').to_owned(), token: token.to_owned() })
    }

    /// `GET path`, timed to the last byte of the answer, which must be 200.
    pub async fn get(&self, path: &str) -> anyhow::Result<Answer> {
        self.get_as(path, &self.token).await
    }

    /// [`Client::get`] as the user of `token`.
    pub async fn get_as(&self, path: &str, token: &str) -> anyhow::Result<Answer> {
        let started = Instant::now();
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = response.status();
        let truncated = response.headers().get("x-scan-truncated").is_some_and(|v| v == "true");
        let bytes = response.bytes().await.with_context(|| format!("reading the answer to GET {path}"))?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        if status != StatusCode::OK {
            bail!(
                "GET {path} answered {status}: {}",
                String::from_utf8_lossy(&bytes).chars().take(300).collect::<String>()
            );
        }
        let body = serde_json::from_slice(&bytes).with_context(|| format!("the answer to GET {path} is not JSON"))?;
        Ok(Answer { ms, body, truncated })
    }
}

/// A figure's samples.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    pub values_ms: Vec<f64>,
    /// Some answer said the scan was truncated.
    pub truncated: bool,
    /// The figure stopped at its time budget before its count of requests.
    pub cut_short: bool,
}

/// Up to `count` timed requests (cycling through `requests`), after up to [`WARM_UP`] untimed
/// ones (fewer when they take more than a quarter of `budget`), stopping early once `budget` is
/// spent on the timed ones. Every answer is checked.
pub async fn sample(client: &Client, requests: &[Request], count: usize, budget: Duration) -> anyhow::Result<Samples> {
    if requests.is_empty() {
        bail!("a figure without requests");
    }
    let mut samples = Samples::default();
    let mut next = requests.iter().cycle();
    let mut call = async |timed: bool, samples: &mut Samples| -> anyhow::Result<()> {
        let request = next.next().context("no request")?;
        let answer = client.get_as(&request.path, request.token.as_deref().unwrap_or(&client.token)).await?;
        request.expect.check(&answer.body).with_context(|| format!("GET {}", request.path))?;
        samples.truncated |= answer.truncated;
        if timed {
            samples.values_ms.push(answer.ms);
        }
        Ok(())
    };
    let started = Instant::now();
    for n in 0..WARM_UP {
        if n > 0 && started.elapsed() > budget / 4 {
            break;
        }
        call(false, &mut samples).await?;
    }
    let started = Instant::now();
    for n in 0..count {
        if n > 0 && started.elapsed() > budget {
            samples.cut_short = true;
            break;
        }
        call(true, &mut samples).await?;
    }
    Ok(samples)
}

/// The query string of a list request: `pairs` percent-encoded.
pub fn list_path(pairs: &[(&str, &str)]) -> String {
    let mut url = reqwest::Url::parse("http://list.invalid/v1/tasks").unwrap_or_else(|_| unreachable!("a valid URL"));
    if !pairs.is_empty() {
        url.query_pairs_mut().extend_pairs(pairs);
    }
    match url.query() {
        Some(query) => format!("/v1/tasks?{query}"),
        None => "/v1/tasks".to_owned(),
    }
}

/// Follows `next_cursor` from the first page of `pairs` to page `page` (1-based) and returns
/// that page's path, checking that each page before it is full (`limit` items).
pub async fn page_path(
    client: &Client,
    pairs: &[(&str, &str)],
    page: usize,
    limit: usize,
    budget: Duration,
) -> anyhow::Result<String> {
    let started = Instant::now();
    let mut path = list_path(pairs);
    for n in 1..page {
        let answer = client.get(&path).await?;
        Expect::Items(limit).check(&answer.body).with_context(|| format!("page {n} of {path}"))?;
        let cursor = answer.body["next_cursor"].as_str().with_context(|| format!("page {n} has no next_cursor"))?;
        let mut next = pairs.to_vec();
        next.push(("cursor", cursor));
        path = list_path(&next);
        if started.elapsed() > budget {
            bail!("following the cursor to page {page} took longer than {budget:?} (at page {n})");
        }
    }
    Ok(path)
}

/// Every page of the list of `pairs`, first to last, as paths (each with the cursor of the
/// page before): the requests a client makes to read a search to its end.
pub async fn cursor_chain(client: &Client, pairs: &[(&str, &str)], budget: Duration) -> anyhow::Result<Vec<String>> {
    let started = Instant::now();
    let mut paths = vec![list_path(pairs)];
    loop {
        let path = paths.last().context("the chain starts with the first page")?;
        let answer = client.get(path).await?;
        let Some(cursor) = answer.body["next_cursor"].as_str() else {
            return Ok(paths);
        };
        let mut next = pairs.to_vec();
        next.push(("cursor", cursor));
        paths.push(list_path(&next));
        if started.elapsed() > budget {
            bail!("following the cursors of {} took longer than {budget:?}", list_path(pairs));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn list_paths_are_percent_encoded() {
        assert_eq!(list_path(&[]), "/v1/tasks");
        assert_eq!(
            list_path(&[("sort", "-due"), ("due_after", "2026-01-01T00:00:00+01:00")]),
            "/v1/tasks?sort=-due&due_after=2026-01-01T00%3A00%3A00%2B01%3A00"
        );
    }

    #[test]
    fn answers_are_checked() {
        let two = json!({"items": [1, 2], "next_cursor": null});
        assert!(Expect::Items(2).check(&two).is_ok());
        assert!(Expect::Items(3).check(&two).is_err());
        assert!(Expect::SomeItems.check(&two).is_ok());
        assert!(Expect::NoItems.check(&two).is_err());
        assert!(Expect::NoItems.check(&json!({"items": []})).is_ok());
        assert!(Expect::Task.check(&json!({"id": "x"})).is_ok());
        assert!(Expect::Task.check(&json!({"error": "x"})).is_err());
    }
}
