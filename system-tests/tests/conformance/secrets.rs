//! Secrets: `GET /v1.0/secrets/{store}/{key}` and `/bulk` of `secretstores.local.env` (the
//! repository's `local-env`, and one with a `prefix`) and `secretstores.local.file` (a JSON
//! file, single- and multi-valued), scoped to the app, and their errors. Environment secrets
//! are the test process's own environment, which both sidecars see (devhost is in it; the
//! platform's daprd inherits it): `CARGO_PKG_*`, set by cargo for the test.

use super::*;

/// The secrets file both backends' file stores read (one name: rewritten by every run, not
/// left behind by each).
fn secrets_file() -> anyhow::Result<PathBuf> {
    let path = std::env::temp_dir().join("todo-conformance-secrets.json");
    let text = json!({
        "plain": "s3cret",
        "db": {"user": "admin", "port": 5432, "tls": true, "ca": null, "ratio": 0.5},
        "hosts": ["a.example", "b.example"],
        "big": 1234567.0,
        "empty": ""
    });
    std::fs::write(&path, text.to_string())?;
    Ok(path)
}

pub(super) async fn secret_fixtures() -> anyhow::Result<Fixtures> {
    let file = secrets_file()?;
    let store = |name: &str, kind: &str, metadata: &str, scopes: &str| {
        format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\nspec:\n  type: \
             secretstores.local.{kind}\n  version: v1\n  metadata:\n{metadata}scopes: [{scopes}]\n"
        )
    };
    let file_meta = |extra: &str| format!("    - name: secretsFile\n      value: \"{}\"\n{extra}", file.display());
    Ok(Fixtures {
        resources: vec![
            ("conf-file.yaml".into(), store("conf-file", "file", &file_meta(""), APP_ID)),
            (
                "conf-file-multi.yaml".into(),
                store(
                    "conf-file-multi",
                    "file",
                    &file_meta(
                        "    - name: multiValued\n      value: \"true\"\n    - name: nestedSeparator\n      value: \".\"\n",
                    ),
                    APP_ID,
                ),
            ),
            ("conf-env.yaml".into(), store("conf-env", "env", "    - name: prefix\n      value: CARGO_PKG_\n", APP_ID)),
            ("conf-hidden.yaml".into(), store("conf-hidden", "env", "    []\n", "someone-else")),
        ],
        ..Fixtures::default()
    })
}

async fn secrets_calls(b: &Backend) -> anyhow::Result<Steps> {
    let mut s = Steps::default();
    let get = |path: &str| b.call(Method::GET, format!("/v1.0/secrets/{path}"), None);
    for key in ["plain", "db:user", "db:port", "db:tls", "db:ca", "db:ratio", "hosts:1", "big", "empty"] {
        s.answer(&format!("file get {key}"), &get(&format!("conf-file/{key}")).await?);
    }
    s.answer("file get a missing key", &get("conf-file/nope").await?);
    s.answer("file get a nested object", &get("conf-file/db").await?);
    s.answer("file get with metadata", &get("conf-file/plain?metadata.version_id=2&metadata.x=y").await?);
    s.answer("file bulk", &get("conf-file/bulk").await?);
    s.answer("file bulk with metadata", &get("conf-file/bulk?metadata.namespace=x").await?);
    s.answer("multi-valued get db", &get("conf-file-multi/db").await?);
    s.answer("multi-valued get plain", &get("conf-file-multi/plain").await?);
    s.answer("multi-valued get an array", &get("conf-file-multi/hosts").await?);
    s.answer("multi-valued bulk", &get("conf-file-multi/bulk").await?);
    s.answer("env get with prefix", &get("conf-env/NAME").await?);
    s.answer("env get a missing variable", &get("conf-env/NO_SUCH_VARIABLE_HERE").await?);
    s.answer("env bulk with prefix", &get("conf-env/bulk").await?);
    s.answer("local-env get", &get("local-env/CARGO_PKG_NAME").await?);
    s.answer("local-env get DAPR_API_TOKEN", &get("local-env/DAPR_API_TOKEN").await?);
    s.answer("local-env get APP_API_TOKEN", &get("local-env/APP_API_TOKEN").await?);
    s.answer("local-env get lower-case dapr_ variable", &get("local-env/dapr_api_token").await?);
    s.answer("unknown store", &get("no-such-store/x").await?);
    s.answer("unknown store bulk", &get("no-such-store/bulk").await?);
    s.answer("store scoped to another app", &get("conf-hidden/CARGO_PKG_NAME").await?);
    s.answer("a state store is no secret store", &get("state/x").await?);
    s.answer("without the API token", &b.call_with(Method::GET, "/v1.0/secrets/conf-file/plain", None, &[]).await?);
    // The error texts, which clients may match on.
    let mut messages = Vec::new();
    for path in ["conf-file/nope", "no-such-store/x", "no-such-store/bulk"] {
        messages.push(get(path).await?.body["message"].clone());
    }
    s.add("error messages", json!(messages));
    let metadata = b.call(Method::GET, "/v1.0/metadata", None).await?;
    let mut stores: Vec<Value> = metadata.body["components"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c["type"].as_str().is_some_and(|t| t.starts_with("secretstores.")))
        .collect();
    stores.sort_by_key(|c| c["name"].as_str().unwrap_or_default().to_owned());
    s.add("secret stores in the metadata", json!(stores));
    Ok(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_as_daprd_answers_them() -> anyhow::Result<()> {
    differential("secrets", &[], |b| Box::pin(secrets_calls(b))).await
}
