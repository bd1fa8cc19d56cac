//! `GET /v1.0/metadata`: the app's components, subscriptions and connection, in daprd's shape.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Ctx;
use crate::resources::ComponentKind;

pub(super) async fn metadata(State(ctx): State<Ctx>) -> Response {
    let host = &ctx.host;
    let components: Vec<Value> = host
        .components_for(&ctx.app_id)
        .iter()
        .map(|c| {
            let capabilities: Vec<&str> = match &c.kind {
                ComponentKind::State(_) => vec!["ETAG", "TRANSACTIONAL", "QUERY_API", "TTL"],
                // dapr/dapr `pkg/runtime/runtime.go:1663-1669`: an output binding says so.
                ComponentKind::Binding(_) => vec!["OUTPUT_BINDING"],
                _ => vec![],
            };
            json!({"name": c.name, "type": c.type_name, "version": c.version, "capabilities": capabilities})
        })
        .collect();
    let app = host.apps.get(&*ctx.app_id);
    let subscriptions: Vec<Value> = app
        .map(|a| a.subscriptions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone())
        .unwrap_or_default()
        .iter()
        .map(|s| {
            let mut rules: Vec<Value> = s.rules.iter().map(|(m, p)| json!({"match": m, "path": p})).collect();
            if let Some(default) = &s.default_path {
                rules.push(json!({"match": "", "path": default}));
            }
            let mut v = json!({
                "pubsubname": s.pubsub,
                "topic": s.topic,
                "metadata": s.metadata,
                "rules": {"rules": rules},
                "type": s.kind,
            });
            if let (Some(dlq), Value::Object(m)) = (&s.dead_letter_topic, &mut v) {
                m.insert("deadLetterTopic".into(), json!(dlq));
            }
            // protojson leaves an empty map out, as daprd's answer does.
            if let (true, Value::Object(m)) = (s.metadata.is_empty(), &mut v) {
                m.remove("metadata");
            }
            v
        })
        .collect();
    let mut body = json!({
        "id": &*ctx.app_id,
        "runtimeVersion": concat!("devhost-", env!("CARGO_PKG_VERSION")),
        "enabledFeatures": [],
        "actorRuntime": {"runtimeStatus": "DISABLED"},
        "components": components,
        "subscriptions": subscriptions,
        "httpEndpoints": [],
        "extended": {"devhost": "true"},
    });
    if let (Some(app), Value::Object(m)) = (app, &mut body) {
        let mut properties = json!({"port": app.app_port, "protocol": "http", "channelAddress": "127.0.0.1"});
        // Only with app health checks enabled (dapr/dapr v1.18.2 `pkg/api/universal/metadata.go:54-64`).
        if let (Some(check), Value::Object(p)) = (&app.health_check, &mut properties) {
            p.insert(
                "health".into(),
                json!({"healthCheckPath": check.path, "healthProbeInterval": crate::duration::go_string(check.interval),
                       "healthProbeTimeout": crate::duration::go_string(check.timeout),
                       "healthThreshold": check.threshold}),
            );
        }
        m.insert("appConnectionProperties".into(), properties);
    }
    axum::Json(body).into_response()
}
