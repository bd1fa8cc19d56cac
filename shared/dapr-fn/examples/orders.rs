//! The README's function: it keeps each order published to the topic `orders`, once however
//! often Kafka redelivers it, and publishes a reminder when the Dapr job `remind-<order id>`
//! fires. `tests/readme.rs` holds the README to this file and drives the function through the
//! stub sidecar. Beside a sidecar:
//! `dapr run --app-id orders --app-port 8080 -- cargo run -p dapr-fn --example orders`.

use dapr_fn::{About, Dapr, Event, Function, HandlerError, HandlerResult, JobCall, Subscription, dapr::Publish};

#[derive(Debug, serde::Deserialize, serde::Serialize)]
pub struct Order {
    id: String,
    quantity: u32,
}

pub async fn on_order(dapr: Dapr, event: Event<Order>) -> HandlerResult {
    if event.data.quantity == 0 {
        return Err(HandlerError::drop("an order of nothing")); // DROP: to the dead-letter topic now
    }
    dapr.insert_state("orders", &format!("order:{}", event.data.id), &event.data).await?; // sidecar error: RETRY
    Ok(()) // SUCCESS, also for a redelivery: the first write won
}

pub async fn on_remind(dapr: Dapr, job: JobCall<serde_json::Value>) -> HandlerResult {
    Ok(dapr.publish("pubsub", "reminders", &job.data, &Publish::new("order.reminder").id(&job.name)).await?)
}

pub fn function(dapr: Dapr) -> anyhow::Result<Function> {
    let orders = dapr.clone();
    Ok(Function::new("orders")
        .subscribe(Subscription::new("pubsub", "orders").route("/orders", move |e| on_order(orders.clone(), e)))
        .on_job("remind-", move |job| on_remind(dapr.clone(), job)))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let about = About { name: "orders", version: "0.1.0", summary: "keeps orders", env: &[], elsewhere: &[] };
    dapr_fn::runtime::main(&about, function).await
}
