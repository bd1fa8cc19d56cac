//! `GET /v1.0/metadata` and `PUT /v1.0/metadata/{key}`, in daprd's shape (dapr/dapr v1.18.2
//! `pkg/api/http/metadata.go`, `pkg/api/universal/metadata.go`): Go's `encoding/json` of
//! `metadataResponse`, so empty lists and maps are left out (`omitempty`): no `enabledFeatures`
//! (daprd lists its default features, `HotReload` and `WorkflowsRemoteActivityReminder`, which
//! devhost does not have), `httpEndpoints` or `capabilities` when there are none, no `health`
//! without app health checks; `actorRuntime` as daprd without placement says it,
//! `scheduler.connected_addresses` naming devhost itself. `extended` holds what `PUT /v1.0/metadata/{key}` set (the body is the value; an
//! empty key sets nothing) and `daprRuntimeVersion`; subscription `rules` are one flat list,
//! the default route last as a rule without `match` (`metadataConvertPubSubSubscriptionRules`).
//! Component capabilities are daprd's (`pkg/runtime/runtime.go:1640-1677`
//! `getComponentsCapabilitesMap`): the store's features plus `ACTOR` for a state store with
//! ETags and transactions, the pub/sub's features, `OUTPUT_BINDING`, a secret store's features.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::Ctx;
use crate::resources::ComponentKind;
use crate::secrets::SecretStore;

/// The version devhost reports for `runtimeVersion` and `extended.daprRuntimeVersion`.
const RUNTIME_VERSION: &str = concat!("devhost-", env!("CARGO_PKG_VERSION"));
/// What `scheduler.connected_addresses` lists: devhost is its own Scheduler.
const SCHEDULER: &str = "devhost (in-process)";

fn capabilities(kind: &ComponentKind) -> Vec<&'static str> {
    match kind {
        // components-contrib `common/component/postgresql/v1/postgresql.go:187-194` and
        // `postgresql_query.go:51-53`, then daprd's `ACTOR`.
        ComponentKind::State(_) => vec!["ETAG", "TRANSACTIONAL", "TTL", "KEYS_LIKE", "QUERY_API", "ACTOR"],
        // `pubsub/kafka/kafka.go:166-168`.
        ComponentKind::PubSub(_) => vec!["BULK_PUBSUB"],
        ComponentKind::Binding(_) => vec!["OUTPUT_BINDING"],
        // `secretstores/local/file/filestore.go:93-100`: a multi-valued file store says so.
        ComponentKind::SecretStore(SecretStore::File { multi_valued: true, .. }) => {
            vec!["MULTIPLE_KEY_VALUES_PER_SECRET"]
        }
        ComponentKind::SecretStore(_) => vec![],
    }
}

pub(super) async fn metadata(State(ctx): State<Ctx>) -> Response {
    let host = &ctx.host;
    let components: Vec<Value> = host
        .components_for(&ctx.app_id)
        .iter()
        .map(|c| {
            let mut v = json!({"name": c.name, "type": c.type_name, "version": c.version});
            let capabilities = capabilities(&c.kind);
            if !capabilities.is_empty() {
                v["capabilities"] = json!(capabilities);
            }
            v
        })
        .collect();
    let app = host.apps.get(&*ctx.app_id);
    let subscriptions: Vec<Value> = app
        .map(|a| a.subscriptions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone())
        .unwrap_or_default()
        .iter()
        .map(|s| {
            let mut rules: Vec<Value> = s.rules.iter().map(|(m, p)| rule(m, p)).collect();
            if let Some(default) = &s.default_path {
                rules.push(rule("", default));
            }
            let mut v = Map::new();
            v.insert("pubsubname".into(), json!(s.pubsub));
            v.insert("topic".into(), json!(s.topic));
            if !s.metadata.is_empty() {
                v.insert("metadata".into(), json!(s.metadata));
            }
            if !rules.is_empty() {
                v.insert("rules".into(), Value::Array(rules));
            }
            v.insert("deadLetterTopic".into(), json!(s.dead_letter_topic.clone().unwrap_or_default()));
            v.insert("type".into(), json!(s.kind));
            Value::Object(v)
        })
        .collect();
    let mut extended: Map<String, Value> = app
        .map(|a| a.extended_metadata.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone())
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    extended.insert("daprRuntimeVersion".into(), json!(RUNTIME_VERSION));
    let mut body = Map::new();
    body.insert("id".into(), json!(&*ctx.app_id));
    body.insert("runtimeVersion".into(), json!(RUNTIME_VERSION));
    if !components.is_empty() {
        body.insert("components".into(), Value::Array(components));
    }
    body.insert("extended".into(), Value::Object(extended));
    if !subscriptions.is_empty() {
        body.insert("subscriptions".into(), Value::Array(subscriptions));
    }
    if let Some(app) = app {
        let mut properties = Map::new();
        if app.app_port != crate::NO_APP_PORT {
            properties.insert("port".into(), json!(app.app_port));
        }
        properties.insert("protocol".into(), json!("http"));
        properties.insert("channelAddress".into(), json!("127.0.0.1"));
        // Only with app health checks enabled (dapr/dapr v1.18.2 `pkg/api/universal/metadata.go:54-64`).
        if let Some(check) = &app.health_check {
            properties.insert(
                "health".into(),
                json!({"healthCheckPath": check.path, "healthProbeInterval": crate::duration::go_string(check.interval),
                       "healthProbeTimeout": crate::duration::go_string(check.timeout),
                       "healthThreshold": check.threshold}),
            );
        }
        body.insert("appConnectionProperties".into(), Value::Object(properties));
    }
    // Actors are not emulated: daprd without a placement address says the same.
    body.insert(
        "actorRuntime".into(),
        json!({"runtimeStatus": "DISABLED", "hostReady": false, "placement": "placement: disconnected"}),
    );
    // devhost's jobs run in-process; daprd lists the Scheduler instances it is connected to.
    body.insert("scheduler".into(), json!({"connected_addresses": [SCHEDULER]}));
    let resiliencies: Vec<Value> = host
        .resources
        .resiliencies
        .iter()
        .filter(|r| r.scopes.is_empty() || r.scopes.iter().any(|s| **s == *ctx.app_id))
        .map(|r| json!({"name": r.name}))
        .collect();
    if !resiliencies.is_empty() {
        body.insert("resiliencies".into(), Value::Array(resiliencies));
    }
    axum::Json(Value::Object(body)).into_response()
}

fn rule(matching: &str, path: &str) -> Value {
    let mut v = Map::new();
    if !matching.is_empty() {
        v.insert("match".into(), json!(matching));
    }
    if !path.is_empty() {
        v.insert("path".into(), json!(path));
    }
    Value::Object(v)
}

/// `PUT /v1.0/metadata/{key}`: the body, as text, is the value (`onPutMetadata`); 204.
pub(super) async fn put_metadata(State(ctx): State<Ctx>, Path(key): Path<String>, body: Bytes) -> StatusCode {
    if let (Some(app), false) = (ctx.host.apps.get(&*ctx.app_id), key.is_empty()) {
        app.extended_metadata
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key, String::from_utf8_lossy(&body).into_owned());
    }
    StatusCode::NO_CONTENT
}
