//! The README's function is `examples/orders.rs`, word for word, and it does what the README
//! says: SUCCESS and one stored order however often the event comes, DROP for an order of
//! nothing, RETRY while the sidecar fails, and a reminder published when its job fires.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::http::Method;
use dapr_fn::runtime::RuntimeConfig;
use dapr_fn::testing::{StubSidecar, TestApp, cloudevent};
use serde_json::json;

#[allow(dead_code)] // its `main`: the example's binary runs it, this test does not
#[path = "../examples/orders.rs"]
mod orders;

const EXAMPLE: &str = include_str!("../examples/orders.rs");
const README: &str = include_str!("../README.md");

/// The first ```rust block of the README.
fn readme_code() -> &'static str {
    let start = README.find("```rust\n").expect("the README shows a rust block") + "```rust\n".len();
    let length = README[start..].find("```").expect("the rust block ends");
    &README[start..start + length]
}

#[test]
fn the_readme_shows_the_example_as_it_is() {
    // The example's own doc comment (how to run it) is the one difference.
    let code: String =
        EXAMPLE.lines().skip_while(|l| l.starts_with("//!") || l.is_empty()).map(|l| l.to_owned() + "\n").collect();
    assert_eq!(readme_code(), code, "README.md's function and examples/orders.rs differ");
    assert!(code.lines().count() <= 40, "no longer a short example: {} lines", code.lines().count());
}

async fn start() -> (StubSidecar, TestApp) {
    let stub = StubSidecar::start().await;
    let app = TestApp::start(orders::function(stub.client(None)).unwrap(), RuntimeConfig::default()).await;
    (stub, app)
}

fn order(id: &str, quantity: u32) -> serde_json::Value {
    cloudevent(&format!("event-{id}"), "order.placed", "orders", json!({"id": id, "quantity": quantity}))
}

#[tokio::test]
async fn an_order_is_kept_once_however_often_it_comes() {
    let (stub, app) = start().await;
    assert_eq!(app.deliver("/orders", &order("7", 2), None).await, (200, json!({"status": "SUCCESS"})));
    let mut again = order("7", 5);
    again["id"] = json!("event-7-redelivered");
    assert_eq!(app.deliver("/orders", &again, None).await, (200, json!({"status": "SUCCESS"})));
    assert_eq!(stub.state("orders", "order:7"), Some(json!({"id": "7", "quantity": 2})), "the first write won");
}

#[tokio::test]
async fn an_order_of_nothing_is_dropped_and_a_failing_sidecar_retried() {
    let (stub, app) = start().await;
    assert_eq!(app.deliver("/orders", &order("8", 0), None).await, (200, json!({"status": "DROP"})));
    stub.fail(Method::POST, "/v1.0/state/orders", 500, 1);
    assert_eq!(app.deliver("/orders", &order("9", 1), None).await, (200, json!({"status": "RETRY"})));
    assert_eq!(stub.state("orders", "order:8"), None);
    assert_eq!(app.deliver("/orders", &order("9", 1), None).await, (200, json!({"status": "SUCCESS"})));
}

#[tokio::test]
async fn the_job_publishes_a_reminder_with_the_job_name_as_its_id() {
    let (stub, app) = start().await;
    assert_eq!(app.trigger_job("remind-7", &json!({"order": "7"}), None).await, 200);
    let published = stub.published("reminders");
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].body, json!({"order": "7"}));
    assert_eq!(published[0].query["metadata.cloudevent.id"], "remind-7");
    assert_eq!(published[0].query["metadata.cloudevent.type"], "order.reminder");
}
