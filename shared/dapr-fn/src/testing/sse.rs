//! A client of a Server-Sent Events stream (task-api's `GET /v1/events`), for tests: it reads
//! the answer chunk by chunk and hands out one event at a time, comments and `retry:` skipped.

use std::time::Duration;

use anyhow::{Context as _, bail};

/// One event as received.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `id:` field: what a reconnecting client sends back as `Last-Event-ID` to resume.
    pub id: Option<String>,
    /// The `event:` field, the event's type; `None` means the SSE default, `message`.
    pub event: Option<String>,
    /// The `data:` lines, joined with `\n` (empty when the event had none).
    pub data: String,
}

/// An open stream.
#[derive(Debug)]
pub struct EventStream {
    response: reqwest::Response,
    buffer: String,
}

/// What opening a stream answered when it was not a stream: the status and the body.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    /// The HTTP status, never 200.
    pub status: u16,
    /// The JSON body (task-api's `{"error": ...}`), `Null` when empty or not JSON.
    pub body: serde_json::Value,
}

impl EventStream {
    /// `GET url` with `bearer`, and `Last-Event-ID` when given. `Ok(Err(_))` when the answer is
    /// not 200 (a refusal the caller may expect); `Err` when it could not be asked at all or is
    /// 200 without `text/event-stream`.
    pub async fn open(
        http: &reqwest::Client,
        url: &str,
        bearer: &str,
        last_event_id: Option<&str>,
    ) -> anyhow::Result<Result<Self, Refused>> {
        let mut request = http.get(url).bearer_auth(bearer);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.with_context(|| format!("GET {url}"))?;
        let status = response.status().as_u16();
        if status != 200 {
            let body = response.bytes().await.unwrap_or_default();
            return Ok(Err(Refused { status, body: serde_json::from_slice(&body).unwrap_or_default() }));
        }
        let kind = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
        if kind != "text/event-stream" {
            bail!("GET {url}: 200 with content-type {kind:?}, not text/event-stream");
        }
        Ok(Ok(Self { response, buffer: String::new() }))
    }

    /// The next event within `within`; `Ok(None)` when the stream ended, `Err` when nothing
    /// came in time.
    pub async fn next(&mut self, within: Duration) -> anyhow::Result<Option<SseEvent>> {
        tokio::time::timeout(within, self.read())
            .await
            .with_context(|| format!("no event and no end of the stream within {within:?}"))?
    }

    async fn read(&mut self) -> anyhow::Result<Option<SseEvent>> {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse(&block) {
                    return Ok(Some(event));
                }
            }
            match self.response.chunk().await.context("reading the stream")? {
                Some(bytes) => self.buffer.push_str(std::str::from_utf8(&bytes).context("the stream is not UTF-8")?),
                None => return Ok(None),
            }
        }
    }
}

/// The event of one block of lines; `None` for a block of comments and `retry:` only.
pub fn parse(block: &str) -> Option<SseEvent> {
    let mut event = SseEvent::default();
    let mut any = false;
    for line in block.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => event.id = Some(value.to_owned()),
            "event" => event.event = Some(value.to_owned()),
            "data" => {
                if !event.data.is_empty() {
                    event.data.push('\n');
                }
                event.data.push_str(value);
            }
            _ => continue,
        }
        any = true;
    }
    any.then_some(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_become_events_and_comments_are_skipped() {
        assert_eq!(parse(": keep-alive\n\n"), None);
        assert_eq!(parse("retry: 1000\n: live\n\n"), None);
        assert_eq!(
            parse("id: task:1:v2\nevent: todo.task.updated\ndata: {\"a\":1}\n\n"),
            Some(SseEvent {
                id: Some("task:1:v2".into()),
                event: Some("todo.task.updated".into()),
                data: "{\"a\":1}".into()
            })
        );
        assert_eq!(parse("data: a\ndata: b\n\n").map(|e| e.data), Some("a\nb".into()));
    }
}
