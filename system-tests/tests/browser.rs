//! task-api's `/live` page in a real browser: Debian's headless Chromium (package
//! `chromium-headless-shell`; `CHROMIUM` names another binary) opens it on a devhost system
//! with a user's token in the fragment, changes are made through the REST API, and the page's
//! list shows them. The page is driven and read over the DevTools protocol (a WebSocket to the
//! browser, `Runtime.evaluate`), so the test reads the DOM a person would see.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use futures_util::{SinkExt as _, StreamExt as _};
use reqwest::StatusCode;
use serde_json::{Value, json};
use system_tests::host::Setup;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio_tungstenite::tungstenite::Message;

/// The browser binary: `$CHROMIUM`, else Debian's headless shell.
/// Every process below `pid`, found through `/proc`.
fn descendants(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut todo = vec![pid];
    while let Some(parent) = todo.pop() {
        for child in system_tests::host::children_of(parent).unwrap_or_default() {
            found.push(child);
            todo.push(child);
        }
    }
    found
}

fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium-headless-shell".to_owned())
}

/// A page of a headless browser, driven over the DevTools protocol.
struct Page {
    socket: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    next_id: u64,
}

impl Page {
    /// The value of `expression` evaluated in the page.
    async fn eval(&mut self, expression: &str) -> anyhow::Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let call = json!({"id": id, "method": "Runtime.evaluate", "params": {"expression": expression, "returnByValue": true}});
        self.socket.send(Message::text(call.to_string())).await?;
        loop {
            let message = self.socket.next().await.context("the browser closed the connection")??;
            let Message::Text(text) = message else { continue };
            let answer: Value = serde_json::from_str(&text)?;
            if answer["id"] == id {
                ensure!(answer["result"]["exceptionDetails"].is_null(), "{expression} threw: {answer}");
                return Ok(answer["result"]["result"]["value"].clone());
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_page_shows_changes_as_they_happen() -> anyhow::Result<()> {
    let setup = Setup::new(&[])?;
    let system = setup.start(false).await?;
    let profile = tempfile::tempdir()?;
    let mut browser = tokio::process::Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| {
            format!("starting {}: apt-get install chromium-headless-shell, or set CHROMIUM", chromium())
        })?;
    let result = drive(&setup, browser.stderr.take().context("the browser's stderr")?).await;
    // Debian's `chromium-headless-shell` is a shell script that runs the browser as its child,
    // which runs its own helpers: killing the script alone would leave them all running (and
    // holding whatever descriptors the test inherited).
    let descendants = browser.id().map(descendants).unwrap_or_default();
    let _ = browser.kill().await;
    if !descendants.is_empty() {
        let _ = std::process::Command::new("kill")
            .arg("-KILL")
            .args(descendants.iter().map(u32::to_string))
            .stderr(Stdio::null())
            .status();
    }
    system.stop().await;
    result
}

async fn drive(setup: &Setup, stderr: tokio::process::ChildStderr) -> anyhow::Result<()> {
    // "DevTools listening on ws://127.0.0.1:<port>/devtools/browser/<id>"
    let mut lines = BufReader::new(stderr).lines();
    let endpoint = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(url) = line.strip_prefix("DevTools listening on ") {
                return anyhow::Ok(url.trim().to_owned());
            }
        }
        bail!("the browser exited without a DevTools endpoint")
    })
    .await
    .context("the browser's DevTools endpoint within 30 s")??;
    let port = endpoint.split(':').nth(2).and_then(|rest| rest.split('/').next()).context("a port")?;

    let alice = setup.api("alice")?;
    let url = format!("{}/live#token={}", alice.base(), alice.token());
    // A page target of its own, at the page's URL; its WebSocket takes Runtime.* calls directly.
    let http = system_tests::api::client()?;
    // The whole URL is the query: its `#` escaped, or the HTTP client would drop the fragment.
    let new = format!("http://127.0.0.1:{port}/json/new?{}", url.replace('#', "%23"));
    let answer = http.put(new).send().await?.error_for_status()?;
    let target: Value = serde_json::from_slice(&answer.bytes().await?).context("the new target")?;
    let ws = target["webSocketDebuggerUrl"].as_str().context("the page's DevTools WebSocket")?;
    let (socket, _) = tokio_tungstenite::connect_async(ws).await.context("connecting to the page")?;
    let mut page = Page { socket, next_id: 0 };

    let status = "document.getElementById('status') && document.getElementById('status').textContent";
    let started = Instant::now();
    while page.eval(status).await? != "connected" {
        ensure!(started.elapsed() < Duration::from_secs(30), "the page never connected: {}", page.eval(status).await?);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The replica's live group joins at the newest offset when its sidecar subscribes: create
    // until one change shows, then the one under test.
    let items = "Array.from(document.querySelectorAll('#changes li')).map((li) => li.textContent)";
    let started = Instant::now();
    loop {
        alice.post("/v1/tasks", Some(&json!({"title": "warm-up"})), StatusCode::CREATED).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        if page.eval(items).await?.as_array().is_some_and(|i| !i.is_empty()) {
            break;
        }
        ensure!(started.elapsed() < Duration::from_secs(60), "no change showed on the page within 60 s");
    }
    let task = alice.post("/v1/tasks", Some(&json!({"title": "Seen in a browser"})), StatusCode::CREATED).await?;
    let id = task["id"].as_str().context("id")?;
    alice.post(&format!("/v1/tasks/{id}/complete"), None, StatusCode::OK).await?;
    let started = Instant::now();
    loop {
        let shown = page.eval(items).await?;
        let lines: Vec<&str> = shown.as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        // Newest first.
        let created = lines.iter().position(|l| l.contains("task.created: Seen in a browser v1"));
        let completed = lines.iter().position(|l| l.contains("task.completed: Seen in a browser v2"));
        if let (Some(created), Some(completed)) = (created, completed) {
            ensure!(completed < created, "the completion is listed above the creation: {lines:?}");
            return Ok(());
        }
        ensure!(started.elapsed() < Duration::from_secs(30), "the page shows {lines:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
