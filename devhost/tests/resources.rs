//! Stage 1: the run file and the resources are read strictly: the repository's own files load,
//! and anything devhost does not emulate is a startup error naming the file and the field.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod common;

use std::path::Path;
use std::time::Duration;

use devhost::resources::{Backoff, ComponentKind, InitialOffset, KeyPrefix, Resources, Templates};
use devhost::runfile::RunFile;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn load(yaml: &str) -> anyhow::Result<Resources> {
    let mut r = Resources::default();
    r.add_yaml(yaml, "test.yaml")?;
    r.validate()?;
    Ok(r)
}

fn error_of(yaml: &str) -> String {
    format!("{:#}", load(yaml).unwrap_err())
}

#[test]
fn the_repository_run_file_and_resources_load() {
    let run = RunFile::load(&repo().join("dapr.yaml")).unwrap();
    let ids: Vec<&str> = run.apps.iter().map(|a| a.app_id.as_str()).collect();
    assert_eq!(ids, ["task-api", "create-task", "on-task-completed", "fire-reminder", "audit-writer", "notifier"]);
    assert_eq!(run.apps[0].app_port, Some(8080));
    assert_eq!(run.apps[0].dapr_http_port, Some(3500));
    assert_eq!(run.apps[0].env.get("RUST_LOG").map(String::as_str), Some("info"));
    assert_eq!(run.resources_paths.len(), 1);

    // connectionString is a secretKeyRef that devhost never resolves: no environment needed.
    let resources = Resources::load_dir(&run.resources_paths[0]).unwrap();
    resources.validate().unwrap();
    let tasks = resources.component("tasks").unwrap();
    let ComponentKind::State(state) = &tasks.kind else { panic!("tasks is a state store") };
    assert_eq!(state.key_prefix, KeyPrefix::Name);
    // The functions use their own outbox (dapr_fn::outbox), not Dapr's.
    assert!(state.outbox.is_none(), "{:?}", state.outbox);
    let pubsub = resources.pubsub("pubsub").unwrap();
    assert_eq!(pubsub.initial_offset, InitialOffset::Oldest);
    assert_eq!(pubsub.cluster, "kafka:localhost:9092");
    let templates = Templates { app_id: "audit-writer".into(), pod_name: None, namespace: "default".into() };
    let loaded = resources.load_for(&templates).unwrap();
    let Some(ComponentKind::PubSub(pubsub)) = loaded.iter().find(|c| c.name == "pubsub").map(|c| &c.kind) else {
        panic!("audit-writer loads pubsub")
    };
    assert_eq!(pubsub.consumer_group, "audit-writer");
    assert_eq!(pubsub.cluster, "kafka:localhost:9092");
    let policy = resources.inbound_policy("audit-writer", "pubsub").retry.unwrap();
    assert_eq!(policy.max_retries, 8);
    assert_eq!(policy.backoff, Backoff::Exponential { max_interval: Duration::from_secs(10) });
    assert!(!resources.component("state").unwrap().visible_to("create-task"));
}

#[test]
fn unknown_metadata_fields_are_named() {
    let err = error_of(&common::state_store("s", "    - {name: keyPrefx, value: name}\n"));
    assert!(err.contains("test.yaml") && err.contains("keyPrefx") && err.contains("\"s\""), "{err}");
}

#[test]
fn unemulated_types_versions_and_kinds_are_errors() {
    let v2 = common::state_store("s", "").replace("version: v1", "version: v2");
    assert!(error_of(&v2).contains("v2 is not emulated"), "{}", error_of(&v2));
    let redis =
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: r}\nspec: {type: state.redis, version: v1}\n";
    assert!(error_of(redis).contains("state.redis"));
    let config = "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata: {name: c}\nspec: {}\n";
    assert!(error_of(config).contains("Configuration"));
    let extra = format!(
        "{}  extraSpecField: 1\n",
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: p}\nspec:\n  type: pubsub.kafka\n  version: v1\n"
    );
    assert!(error_of(&extra).contains("extraSpecField"), "{}", error_of(&extra));
}

#[test]
fn resiliency_is_strict() {
    let with = |policies: &str, targets: &str| {
        format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata: {{name: r}}\nspec:\n  policies:\n{policies}  targets:\n{targets}"
        )
    };
    let breaker = with("    circuitBreakers:\n      cb: {trip: consecutiveFailures > 5}\n", "    components: {}\n");
    assert!(error_of(&breaker).contains("circuitBreakers"));
    let missing = with(
        "    retries:\n      r: {policy: constant, duration: 1s}\n",
        "    components:\n      pubsub:\n        inbound: {retry: nope}\n",
    );
    assert!(error_of(&missing).contains("\"nope\""), "{}", error_of(&missing));
    let typo = with("    retries:\n      r: {policy: constant, duraton: 1s}\n", "    components: {}\n");
    assert!(error_of(&typo).contains("duraton"));
    let apps = with("    retries:\n      r: {policy: constant}\n", "    apps:\n      x: {retry: r}\n");
    assert!(error_of(&apps).contains("targets.apps"));
}

#[test]
fn default_resiliency_policies_apply_when_no_target_names_one() {
    let yaml = format!(
        "{}---\napiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata: {{name: r}}\nscopes: [a]\nspec:\n  policies:\n    retries:\n      DefaultRetryPolicy: {{policy: constant, duration: 10ms, maxRetries: 2}}\n",
        common::PUBSUB
    );
    let r = load(&yaml).unwrap();
    let policy = r.inbound_policy("a", "pubsub").retry.unwrap();
    assert_eq!((policy.backoff, policy.max_retries), (Backoff::Constant(Duration::from_millis(10)), 2));
    assert!(r.inbound_policy("b", "pubsub").retry.is_none(), "the resiliency is scoped to app a");
}

#[test]
fn subscriptions_take_full_cel_and_reject_what_cel_go_does_not_compile() {
    let sub = |pubsub: &str, rule: &str| {
        format!(
            "{}---\napiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata: {{name: s}}\nspec:\n  pubsubname: {pubsub}\n  topic: t\n  routes:\n    rules:\n      - match: '{rule}'\n        path: /x\n",
            common::PUBSUB
        )
    };
    assert!(load(&sub("pubsub", r#"event.type == "a" && event.data.kind != "b""#)).is_ok());
    for rule in [r#"event.type.startsWith("a")"#, "event.data.n > 5", "has(event.data.x) || size(event.data.l) == 2"] {
        assert!(load(&sub("pubsub", rule)).is_ok(), "{rule}");
    }
    // daprd stops at startup on a declarative rule cel-go does not compile.
    let err = error_of(&sub("pubsub", r#"event.type.frobnicate("a")"#));
    assert!(err.contains("frobnicate") && err.contains("does not compile"), "{err}");
    let err = error_of(&sub("pubsub", "event.type == "));
    assert!(err.contains("does not compile"), "{err}");
    assert!(error_of(&sub("nope", r#"event.type == "a""#)).contains("\"nope\""));
    let v1 = "apiVersion: dapr.io/v1alpha1\nkind: Subscription\nmetadata: {name: s}\nspec: {pubsubname: p, topic: t, route: /x}\n";
    assert!(error_of(v1).contains("v2alpha1"));
}

#[test]
fn declarative_bulk_subscriptions_are_read_with_kafka_defaults() {
    let sub = |bulk: &str| {
        format!(
            "{}---\napiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata: {{name: s}}\nspec:\n  pubsubname: pubsub\n  topic: t\n  routes: {{default: /x}}\n  bulkSubscribe: {bulk}\n",
            common::PUBSUB
        )
    };
    let r = load(&sub("{enabled: true, maxMessagesCount: 7, maxAwaitDurationMs: 250}")).unwrap();
    let bulk = r.subscriptions[0].bulk.clone().unwrap();
    assert_eq!((bulk.max_messages, bulk.max_await), (7, Duration::from_millis(250)));
    let r = load(&sub("{enabled: true}")).unwrap();
    let bulk = r.subscriptions[0].bulk.clone().unwrap();
    assert_eq!((bulk.max_messages, bulk.max_await), (80, Duration::from_secs(10)));
    assert_eq!(load(&sub("{enabled: false, maxMessagesCount: 7}")).unwrap().subscriptions[0].bulk, None);
    assert!(error_of(&sub("{enabled: true, maxMesagesCount: 7}")).contains("maxMesagesCount"));
}

#[test]
fn the_outbox_must_name_a_pubsub() {
    let err = error_of(&common::state_store(
        "tasks",
        "    - {name: outboxPublishPubsub, value: missing}\n    - {name: outboxPublishTopic, value: t}\n",
    ));
    assert!(err.contains("outboxPublishPubsub") && err.contains("missing"), "{err}");
    let half = error_of(&common::state_store("tasks", "    - {name: outboxPublishTopic, value: t}\n"));
    assert!(half.contains("both"), "{half}");
}

#[test]
fn used_secret_refs_resolve_from_the_environment() {
    let yaml = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: s}\nspec:\n  type: state.postgresql\n  version: v1\n  metadata:\n    - name: keyPrefix\n      secretKeyRef: {name: DEVHOST_TEST_SURELY_UNSET_VAR, key: DEVHOST_TEST_SURELY_UNSET_VAR}\nauth: {secretStore: env}\n";
    let err = error_of(yaml);
    assert!(err.contains("keyPrefix") && err.contains("DEVHOST_TEST_SURELY_UNSET_VAR"), "{err}");
}
