//! A webhook receiver on loopback, as a person's server would be: it records every request
//! (when, headers, body), answers the status it is told, and can be *down* (every connection
//! closed at once, as a stopped server's port is), for the notifier's end-to-end tests and
//! `make bench`'s "due → webhook received" figure.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, ensure};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use serde_json::Value;
use todo_core::notification::{signature, webhook_secret};

/// A webhook secret for tests (Standard Webhooks' `whsec_` and base64 of 24 bytes).
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: DateTime<Utc>,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> anyhow::Result<&str> {
        self.headers.get(name).with_context(|| format!("no {name} header"))?.to_str().context(name.to_owned())
    }

    /// `webhook-id`.
    pub fn id(&self) -> anyhow::Result<&str> {
        self.header("webhook-id")
    }

    /// Checks the Standard Webhooks signature against `secret` and returns the JSON body.
    pub fn verified(&self, secret: &str) -> anyhow::Result<Value> {
        let id = self.header("webhook-id")?;
        let timestamp: i64 = self.header("webhook-timestamp")?.parse().context("webhook-timestamp")?;
        let key = webhook_secret(secret).map_err(|e| anyhow::anyhow!("{e}"))?;
        let expected = signature(&key, id, timestamp, &self.body);
        let got = self.header("webhook-signature")?;
        ensure!(got.split(' ').any(|s| s == expected), "webhook-signature {got:?} is not {expected:?}");
        let skew = (self.at.timestamp() - timestamp).abs();
        ensure!(skew <= 30, "webhook-timestamp {timestamp} is {skew} s from the time it arrived");
        serde_json::from_slice(&self.body).context("the body is not JSON")
    }
}

#[derive(Debug)]
struct Inner {
    down: AtomicBool,
    status: AtomicU16,
    received: Mutex<Vec<Received>>,
}

/// The receiver; stops when dropped.
#[derive(Debug)]
pub struct Receiver {
    url: String,
    inner: Arc<Inner>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Receiver {
    /// Starts a receiver answering 204 at `http://127.0.0.1:<port>/hook`.
    pub async fn start() -> anyhow::Result<Self> {
        let inner =
            Arc::new(Inner { down: AtomicBool::new(false), status: AtomicU16::new(204), received: Mutex::default() });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding the webhook receiver")?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        let router = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(inner.clone());
        let gate = Gate { listener, inner: inner.clone() };
        let server = tokio::spawn(async move {
            let _ = axum::serve(gate, router).await;
        });
        Ok(Self { url, inner, server })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Down: every connection is closed as soon as it is accepted, nothing is recorded.
    pub fn set_down(&self, down: bool) {
        self.inner.down.store(down, Ordering::SeqCst);
    }

    /// The status every later request is answered with.
    pub fn answer(&self, status: u16) {
        self.inner.status.store(status, Ordering::SeqCst);
    }

    /// Every request so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.inner.received.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

async fn receive(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: axum::body::Bytes) -> StatusCode {
    let at = Utc::now();
    if inner.down.load(Ordering::SeqCst) {
        // A connection opened before the receiver went down (the notifier opens one per
        // attempt, so only other clients have such): not received.
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    if let Ok(mut received) = inner.received.lock() {
        received.push(Received { at, headers, body: body.to_vec() });
    }
    StatusCode::from_u16(inner.status.load(Ordering::SeqCst)).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The listener behind the receiver: closes what it accepts while the receiver is down.
struct Gate {
    listener: tokio::net::TcpListener,
    inner: Arc<Inner>,
}

impl axum::serve::Listener for Gate {
    type Io = tokio::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.listener.accept().await {
                Ok((stream, _)) if self.inner.down.load(Ordering::SeqCst) => drop(stream),
                Ok((stream, addr)) => return (stream, addr),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[tokio::test]
    async fn records_answers_and_goes_down() {
        let receiver = Receiver::start().await.unwrap();
        let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
        let body = br#"{"type":"x"}"#;
        let key = webhook_secret(SECRET).unwrap();
        let now = Utc::now().timestamp();
        let send = || {
            client
                .post(receiver.url())
                .header("webhook-id", "msg_1")
                .header("webhook-timestamp", now.to_string())
                .header("webhook-signature", signature(&key, "msg_1", now, body))
                .body(body.to_vec())
                .send()
        };
        assert_eq!(send().await.unwrap().status(), 204);
        receiver.answer(410);
        assert_eq!(send().await.unwrap().status(), 410);
        receiver.set_down(true);
        assert!(send().await.is_err(), "a down receiver answers nothing");
        let received = receiver.received();
        assert_eq!(received.len(), 2);
        assert_eq!(received[0].verified(SECRET).unwrap()["type"], "x");
        assert!(received[0].verified("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").is_err(), "another key fails");
    }
}
