//! The pub/sub trust boundary: each topic has exactly the publishers that need it
//! (`shared::events::authority`), the functions subscribe to what the table says, and both
//! pub/sub components (`dapr-components/local` for devhost and `dapr run`, `dapr-components/k8s`
//! for the clusters) carry the scope strings derived from it, so that Dapr refuses the rest.

use std::collections::BTreeSet;

use anyhow::Context as _;
use serde_norway::Value;
use shared::clock::Clock;
use shared::events::authority;
use shared::runtime::Function;

async fn functions() -> Vec<Function> {
    let dapr = shared::testing::unreachable_client().await;
    vec![
        task_api::build(dapr.clone(), task_api::Config::with_secret("x".repeat(32)), Clock::system()),
        create_task::build(dapr.clone(), Clock::system()),
        on_task_completed::build(dapr.clone()),
        fire_reminder::build(dapr.clone(), fire_reminder::Config::default(), Clock::system()),
        audit_writer::build(dapr, Clock::system()),
    ]
}

#[tokio::test]
async fn every_function_subscribes_to_what_the_authority_table_grants_it() {
    let functions = functions().await;
    let ids: BTreeSet<&str> = functions.iter().map(Function::app_id).collect();
    assert_eq!(ids, authority::APPS.into_iter().collect(), "the table names every function, and only those");
    for f in &functions {
        let app = f.app_id();
        let subscribed: BTreeSet<String> = f.subscriptions().iter().map(|s| s.topic().to_owned()).collect();
        let granted: BTreeSet<String> = authority::subscribes(app).into_iter().collect();
        assert_eq!(subscribed, granted, "{app} subscribes to topics subscriptionScopes would refuse or not use");
        for s in f.subscriptions() {
            assert_eq!(s.pubsub(), shared::events::components::PUBSUB, "{app}");
            if let Some(dlq) = s.dead_letter() {
                assert!(
                    authority::may_publish(app, dlq),
                    "{app} dead-letters to {dlq}, which its publishingScopes do not grant: daprd would refuse it"
                );
            }
        }
    }
}

/// The value of metadata item `name` of the pub/sub component in `path`.
fn metadata(path: &str, name: &str) -> anyhow::Result<String> {
    let file = system_tests::workspace_root().join(path);
    let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let component: Value = serde_norway::from_str(&text).with_context(|| format!("parsing {path}"))?;
    let items = component["spec"]["metadata"].as_sequence().with_context(|| format!("{path}: no spec.metadata"))?;
    let item = items
        .iter()
        .find(|item| item["name"].as_str() == Some(name))
        .with_context(|| format!("{path} sets no {name}: every app could use every topic"))?;
    Ok(item["value"].as_str().with_context(|| format!("{path}: {name} is not a plain string"))?.to_owned())
}

#[test]
fn both_pubsub_components_carry_the_scopes_of_the_table() -> anyhow::Result<()> {
    for path in ["dapr-components/local/pubsub.yaml", "dapr-components/k8s/pubsub.yaml"] {
        assert_eq!(metadata(path, "publishingScopes")?, authority::publishing_scopes(), "{path}");
        assert_eq!(metadata(path, "subscriptionScopes")?, authority::subscription_scopes(), "{path}");
    }
    Ok(())
}
