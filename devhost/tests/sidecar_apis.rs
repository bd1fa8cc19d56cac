//! The APIs issue 18 added, where a run file has more than one app (which the differential test
//! against one daprd cannot show): invocation of another app, a sidecar without secret
//! stores, `POST /v1.0/shutdown` stopping one sidecar, and a `secretKeyRef` resolved through a
//! loaded `secretstores.local.file` store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use axum::http::Method;
use devhost::resources::{ComponentKind, KeyPrefix, Resources, Templates};
use devhost::{AppSpec, Devhost};

use common::{FakeApp, Sidecar};

#[tokio::test]
async fn apps_invoke_each_other_and_shut_their_own_sidecar_down() {
    let a = FakeApp::start(None).await;
    let b = FakeApp::start(None).await;
    b.respond(|r| (202, format!("\"{} {}\"", r.method, r.path)));
    let d = Devhost::builder()
        .resources_yaml(common::PUBSUB)
        .app(AppSpec::new("a", a.port))
        .app(AppSpec::new("b", b.port))
        .app_token(Some("app-token"))
        .start()
        .await
        .unwrap();
    let sidecar_a = Sidecar::new(d.sidecar_url("a"));
    let sidecar_b = Sidecar::new(d.sidecar_url("b"));

    let r = sidecar_a
        .send(
            Method::PATCH,
            "/v1.0/invoke/b/method/items/7?x=1",
            &[("x-mine", "1"), ("dapr-api-token", "caller")],
            Some(b"{}".to_vec()),
        )
        .await;
    assert_eq!(r.status, 202);
    assert_eq!(r.json(), serde_json::json!("PATCH /items/7"));
    let got = b.all().into_iter().find(|c| c.path == "/items/7").expect("b was invoked");
    assert_eq!(got.header("dapr-caller-app-id"), Some("a"));
    assert_eq!(got.header("dapr-callee-app-id"), Some("b"));
    assert_eq!(got.header("dapr-api-token"), Some("app-token"));
    assert_eq!(got.header("x-mine"), Some("1"));
    assert_eq!(got.header("dapr-caller-namespace"), Some("default"));
    assert_eq!(got.header("x-forwarded-for"), Some("127.0.0.1"));
    assert!(got.header("forwarded").unwrap().starts_with("for=127.0.0.1;by=127.0.0.1"));
    assert_eq!(got.header("traceparent"), Some("00-00000000000000000000000000000000-0000000000000000-00"));
    assert!(a.all().iter().all(|c| c.path != "/items/7"), "a itself was not called");

    // Without secret stores, the Secrets API says none is configured.
    let r = sidecar_a.get("/v1.0/secrets/any/key").await;
    assert_eq!((r.status, r.error_code().as_str()), (500, "ERR_SECRET_STORES_NOT_CONFIGURED"));
    let r = sidecar_a.get("/v1.0/invoke/nobody/method/x").await;
    assert_eq!((r.status, r.error_code().as_str()), (500, "ERR_DIRECT_INVOKE"));

    // b's sidecar shuts down; a's keeps serving, and still reaches b's app.
    let r = sidecar_b.send(Method::POST, "/v1.0/shutdown", &[], None).await;
    assert_eq!(r.status, 204);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while client.get(format!("{}/v1.0/healthz", d.sidecar_url("b"))).send().await.is_ok() {
        assert!(std::time::Instant::now() < deadline, "b's sidecar still serves after shutdown");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sidecar_a.get("/v1.0/healthz").await.status, 204);
    assert_eq!(sidecar_a.send(Method::GET, "/v1.0/invoke/b/method/after", &[], None).await.status, 202);
    // An app that does not accept the connection.
    drop(b);
    let r = sidecar_a.get("/v1.0/invoke/b/method/gone").await;
    assert_eq!((r.status, r.error_code().as_str()), (500, "ERR_DIRECT_INVOKE"));
    assert!(r.json()["message"].as_str().unwrap().starts_with("failed to invoke, id: b, err: "));
    d.shutdown().await;
}

fn file_store(name: &str, file: &std::path::Path, scopes: &str) -> String {
    format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {{name: {name}}}\nspec:\n  type: secretstores.local.file\n  \
         version: v1\n  metadata:\n    - {{name: secretsFile, value: \"{}\"}}\nscopes: [{scopes}]\n",
        file.display()
    )
}

const STATE_WITH_SECRET: &str = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: s}\nspec:\n  type: \
     state.postgresql\n  version: v1\n  metadata:\n    - name: keyPrefix\n      secretKeyRef: {name: prefix}\n\
     auth: {secretStore: files}\n";

#[test]
fn secret_key_refs_are_resolved_through_the_loaded_store() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secrets.json");
    std::fs::write(&file, r#"{"prefix": "from-the-file"}"#).unwrap();
    // The store comes after the component that needs it, as daprd waits for it.
    let mut resources = Resources::default();
    resources.add_yaml(&format!("{STATE_WITH_SECRET}---\n{}", file_store("files", &file, "a")), "r.yaml").unwrap();
    resources.validate().unwrap();
    let templates = |app: &str| Templates { app_id: app.into(), pod_name: None, namespace: "default".into() };
    let loaded = resources.load_for(&templates("a")).unwrap();
    let Some(ComponentKind::State(state)) = loaded.iter().find(|c| c.name == "s").map(|c| &c.kind) else {
        panic!("a loads s")
    };
    assert_eq!(state.key_prefix, KeyPrefix::Static("from-the-file".into()));
    // An app outside the store's scopes has no such store: daprd would never load `s` for it.
    let error = format!("{:#}", resources.load_for(&templates("b")).unwrap_err());
    assert!(error.contains("not a secret store loaded by this app"), "{error}");
    // A missing secret is a startup error naming it (daprd would load `s` without the value).
    std::fs::write(&file, r#"{"other": "x"}"#).unwrap();
    let mut resources = Resources::default();
    let error = format!(
        "{:#}",
        resources
            .add_yaml(&format!("{}---\n{STATE_WITH_SECRET}", file_store("files", &file, "a")), "r.yaml")
            .unwrap_err()
    );
    assert!(error.contains("secret prefix not found"), "{error}");
}
