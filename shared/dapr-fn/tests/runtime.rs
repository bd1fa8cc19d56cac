//! The function runtime as Dapr sees it: subscription discovery, delivery answers, job
//! callbacks, tokens, health, metrics, trace propagation and graceful shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dapr_fn::dapr::{Dapr, Publish};
use dapr_fn::runtime::{Event, Function, HandlerError, HandlerResult, JobCall, RuntimeConfig, Subscription};
use dapr_fn::testing::{StubSidecar, TestApp, cloudevent};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Deserialize)]
struct Ping {
    behaviour: String,
}

/// A handler whose behaviour the event chooses, publishing once when it succeeds (to show the
/// trace context reaching the sidecar).
async fn ping(dapr: Dapr, calls: Arc<AtomicUsize>, event: Event<Ping>) -> HandlerResult {
    calls.fetch_add(1, Ordering::SeqCst);
    match event.data.behaviour.as_str() {
        "ok" => {
            dapr.publish("pubsub", "echo", &json!({"from": event.id}), &Publish::new("test.echo")).await?;
            Ok(())
        }
        "retry" => Err(HandlerError::retry(anyhow::anyhow!("store unavailable"))),
        "drop" => Err(HandlerError::drop("never processable")),
        "slow" => {
            tokio::time::sleep(Duration::from_millis(400)).await;
            Ok(())
        }
        _ => panic!("handler bug"),
    }
}

#[derive(Debug, Deserialize)]
struct Reminder {
    task_id: String,
}

async fn on_job(call: JobCall<Reminder>) -> HandlerResult {
    match call.data.task_id.as_str() {
        "ok" => Ok(()),
        "retry" => Err(HandlerError::retry(anyhow::anyhow!("publish failed"))),
        _ => Err(HandlerError::drop("unknown task")),
    }
}

fn function(dapr: Dapr, calls: Arc<AtomicUsize>) -> Function {
    Function::new("test-fn")
        .subscribe(Subscription::new("pubsub", "task-events").when(
            r#"event.type == "todo.task.completed""#,
            "/events/completed",
            move |event| ping(dapr.clone(), calls.clone(), event),
        ))
        .on_job("reminder-", on_job)
}

async fn start(token: Option<&str>) -> (StubSidecar, TestApp, Arc<AtomicUsize>) {
    let stub = StubSidecar::start().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let config = RuntimeConfig { app_api_token: token.map(str::to_owned), ..RuntimeConfig::default() };
    let app = TestApp::start(function(stub.client(None), calls.clone()), config).await;
    (stub, app, calls)
}

fn event(behaviour: &str) -> Value {
    cloudevent("e-1", "todo.task.completed", "task-events", json!({"behaviour": behaviour}))
}

#[tokio::test]
async fn subscriptions_are_served_in_dapr_v2_format() {
    let (_stub, app, _) = start(None).await;
    let body: Value = serde_json::from_slice(
        &app.http.get(format!("{}/dapr/subscribe", app.url)).send().await.unwrap().bytes().await.unwrap(),
    )
    .unwrap();
    assert_eq!(
        body,
        json!([{
            "pubsubname": "pubsub",
            "topic": "task-events",
            "routes": {
                "rules": [{"match": "event.type == \"todo.task.completed\"", "path": "/events/completed"}],
                "default": "/events/task-events/unmatched"
            },
            "deadLetterTopic": "test-fn-dlq"
        }])
    );
}

#[tokio::test]
async fn handler_results_map_to_dapr_statuses() {
    let (_stub, app, calls) = start(None).await;
    for (behaviour, status) in [("ok", "SUCCESS"), ("retry", "RETRY"), ("drop", "DROP"), ("panic", "RETRY")] {
        let (code, body) = app.deliver("/events/completed", &event(behaviour), None).await;
        assert_eq!((code, body), (200, json!({"status": status})), "behaviour {behaviour}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn malformed_deliveries_are_dropped_never_4xx() {
    let (_stub, app, calls) = start(None).await;
    let not_json = app
        .http
        .post(format!("{}/events/completed", app.url))
        .header("content-type", "application/cloudevents+json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status().as_u16(), 200);
    assert_eq!(serde_json::from_slice::<Value>(&not_json.bytes().await.unwrap()).unwrap(), json!({"status": "DROP"}));

    let mut no_id = event("ok");
    no_id.as_object_mut().unwrap().remove("id");
    assert_eq!(app.deliver("/events/completed", &no_id, None).await, (200, json!({"status": "DROP"})));

    let wrong_data = cloudevent("e-2", "todo.task.completed", "task-events", json!({"behaviour": 42}));
    assert_eq!(app.deliver("/events/completed", &wrong_data, None).await, (200, json!({"status": "DROP"})));
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the handler never sees what cannot be decoded");
}

#[tokio::test]
async fn oversized_deliveries_are_dropped() {
    let stub = StubSidecar::start().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let config = RuntimeConfig { max_body_bytes: 1024, ..RuntimeConfig::default() };
    let app = TestApp::start(function(stub.client(None), calls.clone()), config).await;
    let big =
        cloudevent("e-1", "todo.task.completed", "task-events", json!({"behaviour": "ok", "pad": "x".repeat(4096)}));
    assert_eq!(app.deliver("/events/completed", &big, None).await, (200, json!({"status": "DROP"})));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn unmatched_events_are_acknowledged() {
    let (_stub, app, calls) = start(None).await;
    let other = cloudevent("e-9", "todo.task.created", "task-events", json!({}));
    assert_eq!(app.deliver("/events/task-events/unmatched", &other, None).await, (200, json!({"status": "SUCCESS"})));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn the_trace_continues_into_sidecar_calls() {
    let (stub, app, _) = start(None).await;
    app.deliver("/events/completed", &event("ok"), None).await;
    let published = stub.published("echo");
    assert_eq!(published.len(), 1);
    let traceparent = published[0].header("traceparent").unwrap();
    assert!(traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "{traceparent}");
    assert!(!traceparent.contains("00f067aa0ba902b7"), "the handler gets its own span id");
}

#[tokio::test]
async fn job_callbacks_map_results_to_http_statuses() {
    let (_stub, app, _) = start(None).await;
    assert_eq!(app.trigger_job("reminder-1", &json!({"task_id": "ok"}), None).await, 200);
    assert_eq!(app.trigger_job("reminder-1", &json!({"task_id": "retry"}), None).await, 500);
    assert_eq!(app.trigger_job("reminder-1", &json!({"task_id": "gone"}), None).await, 404);
    assert_eq!(
        app.trigger_job("reminder-1", &json!({"wrong": true}), None).await,
        404,
        "undecodable data is not retried"
    );
    assert_eq!(app.trigger_job("cleanup-1", &json!({"task_id": "ok"}), None).await, 404, "no handler for the name");
}

#[tokio::test]
async fn app_token_guards_everything_but_health() {
    let (_stub, app, calls) = start(Some("app-secret")).await;
    let health = app.http.get(format!("{}/healthz", app.url)).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200, "Dapr's health probe sends no token");

    for token in [None, Some("wrong")] {
        let mut request = app.http.get(format!("{}/dapr/subscribe", app.url));
        if let Some(token) = token {
            request = request.header("dapr-api-token", token);
        }
        assert_eq!(request.send().await.unwrap().status().as_u16(), 401);
        assert_eq!(app.deliver("/events/completed", &event("ok"), token).await.0, 401);
        assert_eq!(app.trigger_job("reminder-1", &json!({"task_id": "ok"}), token).await, 401);
        let metrics = app.http.get(format!("{}/metrics", app.url));
        let metrics = match token {
            Some(token) => metrics.header("dapr-api-token", token),
            None => metrics,
        };
        assert_eq!(metrics.send().await.unwrap().status().as_u16(), 401);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    assert_eq!(
        app.deliver("/events/completed", &event("ok"), Some("app-secret")).await,
        (200, json!({"status": "SUCCESS"}))
    );
    assert_eq!(app.trigger_job("reminder-1", &json!({"task_id": "ok"}), Some("app-secret")).await, 200);
}

#[tokio::test]
async fn metrics_count_outcomes() {
    let (_stub, app, _) = start(None).await;
    app.deliver("/events/completed", &event("drop"), None).await;
    app.deliver("/events/completed", &event("drop"), None).await;
    let text = app.http.get(format!("{}/metrics", app.url)).send().await.unwrap().text().await.unwrap();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("todo_events_total") && l.contains("function=\"test-fn\"") && l.contains("outcome=\"drop\"")
        })
        .unwrap_or_else(|| panic!("no drop counter in:\n{text}"));
    let count: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 2.0, "{line}");
    assert!(text.contains("todo_event_handler_seconds_bucket"), "latency is a histogram");
}

#[tokio::test]
async fn reminder_lateness_gets_wide_buckets() {
    let (_stub, app, _) = start(None).await;
    metrics::histogram!("todo_reminder_lateness_seconds", "function" => "test-fn").record(3600.0);
    let text = app.http.get(format!("{}/metrics", app.url)).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("todo_reminder_lateness_seconds_bucket{function=\"test-fn\",le=\"86400\"}"), "{text}");
}

#[tokio::test]
async fn shutdown_drains_in_flight_work() {
    let stub = StubSidecar::start().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let config = RuntimeConfig { shutdown_timeout_secs: 5, ..RuntimeConfig::default() };
    let server = tokio::spawn(async move {
        dapr_fn::runtime::serve(function(stub.client(None), calls), &config, listener, async {
            let _ = stop_rx.await;
        })
        .await
    });

    let client = reqwest::Client::new();
    let in_flight = tokio::spawn({
        let client = client.clone();
        let url = url.clone();
        async move {
            client
                .post(format!("{url}/events/completed"))
                .header("content-type", "application/cloudevents+json")
                .body(serde_json::to_vec(&event("slow")).unwrap())
                .send()
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop_tx.send(()).unwrap();

    let response = in_flight.await.unwrap().expect("the in-flight delivery is answered");
    assert_eq!(
        serde_json::from_slice::<Value>(&response.bytes().await.unwrap()).unwrap(),
        json!({"status": "SUCCESS"})
    );
    tokio::time::timeout(Duration::from_secs(5), server).await.expect("server stops").unwrap().unwrap();
    assert!(client.get(format!("{url}/healthz")).send().await.is_err(), "no new connections after shutdown");
}

#[tokio::test]
async fn background_tasks_run_beside_the_server_and_stop_with_it() {
    let stub = StubSidecar::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let ticks = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let function = function(stub.client(None), Arc::new(AtomicUsize::new(0)))
        .background("ticker", {
            let (ticks, finished) = (ticks.clone(), finished.clone());
            move |stopping| async move {
                while !stopping.is_stopped() {
                    ticks.fetch_add(1, Ordering::SeqCst);
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(10)) => {}
                        () = stopping.stopped() => {}
                    }
                }
                finished.fetch_add(1, Ordering::SeqCst);
            }
        })
        // A task that ignores the signal is aborted at the deadline instead of holding the
        // process up.
        .background("stubborn", |_stopping| std::future::pending::<()>());
    assert_eq!(function.background_names(), ["ticker", "stubborn"]);
    let config = RuntimeConfig { shutdown_timeout_secs: 1, ..RuntimeConfig::default() };
    let server = tokio::spawn(async move {
        dapr_fn::runtime::serve(function, &config, listener, async {
            let _ = stop_rx.await;
        })
        .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(ticks.load(Ordering::SeqCst) > 3, "the task runs while the server does");
    assert_eq!(finished.load(Ordering::SeqCst), 0);

    let started = std::time::Instant::now();
    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server).await.expect("serve returns").unwrap().unwrap();
    assert_eq!(finished.load(Ordering::SeqCst), 1, "the task saw the stop and returned");
    assert!(started.elapsed() < Duration::from_secs(3), "the stubborn task was cut off at the deadline");
    let after = ticks.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(ticks.load(Ordering::SeqCst), after, "nothing runs after serve returned");
}

/// With `METRICS_PORT`, probes and Prometheus use that port without the app token, so the app
/// port can stay on loopback behind the token.
#[tokio::test]
async fn the_metrics_port_serves_health_and_metrics_without_the_token() {
    let stub = StubSidecar::start().await;
    let metrics_port = system_free_port();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = RuntimeConfig {
        app_api_token: Some("tok".into()),
        metrics_port: Some(metrics_port),
        metrics_host: Some("127.0.0.1".into()),
        ..RuntimeConfig::default()
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        dapr_fn::runtime::serve(function(stub.client(None), Arc::new(AtomicUsize::new(0))), &config, listener, async {
            let _ = stop_rx.await;
        })
        .await
    });
    let client = reqwest::Client::new();
    let metrics = format!("http://127.0.0.1:{metrics_port}");
    let mut health = None;
    for _ in 0..50 {
        if let Ok(answer) = client.get(format!("{metrics}/healthz")).send().await {
            health = Some(answer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let health = health.expect("the metrics port answers");
    assert_eq!(health.status(), 200);
    assert_eq!(serde_json::from_slice::<Value>(&health.bytes().await.unwrap()).unwrap()["app_id"], "test-fn");
    assert_eq!(client.get(format!("{metrics}/metrics")).send().await.unwrap().status(), 200);
    // The app port keeps its Dapr routes behind the token, and no longer serves /metrics.
    assert_eq!(client.get(format!("{url}/dapr/subscribe")).send().await.unwrap().status(), 401);
    assert_eq!(client.get(format!("{url}/metrics")).send().await.unwrap().status(), 401);
    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server).await.expect("server stops").unwrap().unwrap();
}

fn system_free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
