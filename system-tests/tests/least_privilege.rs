//! Least privilege in the rendered Kubernetes manifests (`kubectl kustomize`, as
//! tests/manifests.rs renders them): each function's sidecar reaches PostgreSQL and Kafka with
//! credentials of its own, and each Kafka user may do exactly what the pub/sub scopes of the code
//! let its app do (`todo_core::events::authority`). tests/privileges.rs proves on the real platform
//! that the PostgreSQL roles behind those credentials are enough and no more.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;
use todo_core::events::authority::{APPS, publishes, subscribes};
use todo_core::events::components;

fn root() -> PathBuf {
    system_tests::workspace_root()
}

/// `kubectl kustomize manifests/<target>`, one JSON value per document.
fn render(target: &str) -> Vec<Value> {
    system_tests::kustomize::render(target).unwrap_or_else(|e| panic!("{e:#}"))
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendered manifests"))
}

fn meta<'a>(component: &'a Value, name: &str) -> &'a Value {
    component["spec"]["metadata"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["name"] == name))
        .unwrap_or_else(|| panic!("Component {} has no metadata {name}", component["metadata"]["name"]))
}

fn scopes(component: &Value) -> BTreeSet<String> {
    component["scopes"].as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_owned)).collect()
}

/// `dapr.io/env-from-secret` of `app`'s Deployment: variable → (Secret, key), parsed as the
/// injector does (`VAR=secret:key,...`; pkg/injector/patcher/sidecar_container.go).
fn env_from_secret(docs: &[Value], app: &str) -> BTreeMap<String, (String, String)> {
    let deployment = find(docs, "Deployment", app);
    let annotation = deployment["spec"]["template"]["metadata"]["annotations"]["dapr.io/env-from-secret"]
        .as_str()
        .unwrap_or_else(|| panic!("Deployment {app} has no dapr.io/env-from-secret annotation"));
    annotation
        .split(',')
        .map(|pair| {
            let (var, source) = pair.trim().split_once('=').unwrap();
            let (secret, key) = source.split_once(':').unwrap();
            (var.to_owned(), (secret.to_owned(), key.to_owned()))
        })
        .collect()
}

fn pair(secret: String, key: &str) -> (String, String) {
    (secret, key.to_owned())
}

#[test]
fn every_state_store_connects_as_the_sidecars_own_postgres_role() {
    for overlay in ["overlays/minikube", "overlays/cloud"] {
        let docs = render(overlay);
        let stores: Vec<&Value> = docs.iter().filter(|d| d["spec"]["type"] == "state.postgresql").collect();
        let names: BTreeSet<&str> = stores.iter().filter_map(|c| c["metadata"]["name"].as_str()).collect();
        assert_eq!(
            names,
            BTreeSet::from([
                components::TASKS_STORE,
                components::STATE_STORE,
                components::AUDIT_STORE,
                components::NOTIFY_STORE,
                components::DELIVERIES_STORE
            ]),
            "{overlay}"
        );
        for store in &stores {
            let name = &store["metadata"]["name"];
            let connection = meta(store, "connectionString");
            assert_eq!(connection["envRef"], "PG_CONNECTION_STRING", "{overlay}: {name}'s connectionString");
            assert!(connection.get("secretKeyRef").is_none() && connection.get("value").is_none(), "{overlay}: {name}");
            // roles.sql gives the functions CREATE on this schema only (daprd's start runs
            // CREATE TABLE IF NOT EXISTS on its metadata table).
            let metadata_table = meta(store, "metadataTableName")["value"].as_str().unwrap_or_default();
            assert!(
                metadata_table.starts_with("dapr_metadata."),
                "{overlay}: {name}'s metadataTableName {metadata_table}"
            );
            // TTL cleanup would need DELETE and a metadata write from every role.
            assert_eq!(meta(store, "cleanupInterval")["value"], "0", "{overlay}: {name}'s cleanupInterval");
            for app in scopes(store) {
                let env = env_from_secret(&docs, &app);
                assert_eq!(
                    env.get("PG_CONNECTION_STRING"),
                    Some(&pair(format!("{app}-postgres"), "connectionString")),
                    "{overlay}: {app} loads {name}, so its sidecar needs its own connection string"
                );
            }
        }
        for app in APPS {
            let env = env_from_secret(&docs, app);
            assert!(env.contains_key("PG_CONNECTION_STRING"), "{overlay}: {app}");
        }
        let keda = find(&docs, "TriggerAuthentication", "postgres");
        assert_eq!(keda["spec"]["secretTargetRef"][0]["name"], "keda-postgres", "{overlay}: KEDA has its own role");
    }
}

#[test]
fn audit_entries_are_written_by_audit_writer_alone_and_read_by_task_api() {
    for overlay in ["overlays/minikube", "overlays/cloud"] {
        let docs = render(overlay);
        let of = |name: &str| scopes(find(&docs, "Component", name));
        assert_eq!(
            of(components::AUDIT_STORE),
            BTreeSet::from(["task-api".into(), "audit-writer".into()]),
            "{overlay}"
        );
        assert_eq!(
            of(components::STATE_STORE),
            BTreeSet::from(["task-api".into(), "fire-reminder".into()]),
            "{overlay}"
        );
        assert_eq!(meta(find(&docs, "Component", components::AUDIT_STORE), "tableName")["value"], "todo_audit");
    }
}

/// People's addresses and webhook secrets (`notify`) and the delivery records (`deliveries`)
/// are loadable by task-api and the notifier only, each in a table of its own (roles.sql grants
/// per table: task-api alone writes channels, the notifier alone writes deliveries).
#[test]
fn channels_and_deliveries_are_loaded_by_task_api_and_the_notifier_only() {
    for overlay in ["overlays/minikube", "overlays/cloud"] {
        let docs = render(overlay);
        for (store, table) in
            [(components::NOTIFY_STORE, "todo_notify"), (components::DELIVERIES_STORE, "todo_deliveries")]
        {
            let component = find(&docs, "Component", store);
            assert_eq!(scopes(component), BTreeSet::from(["task-api".into(), "notifier".into()]), "{overlay}: {store}");
            assert_eq!(meta(component, "tableName")["value"], table, "{overlay}: {store}");
            assert_eq!(
                meta(component, "metadataTableName")["value"],
                format!("dapr_metadata.{table}_metadata"),
                "{overlay}: {store}"
            );
        }
    }
    // The local components (devhost, `dapr run`, the real-platform tests) are scoped the same.
    for (store, file) in [(components::NOTIFY_STORE, "notify.yaml"), (components::DELIVERIES_STORE, "deliveries.yaml")]
    {
        let text = std::fs::read_to_string(root().join("dapr-components/local").join(file)).unwrap();
        let doc: Value = serde_norway::from_str(&text).unwrap();
        assert_eq!(doc["metadata"]["name"], store);
        assert_eq!(scopes(&doc), BTreeSet::from(["task-api".into(), "notifier".into()]), "local {store}");
    }
}

/// The pub/sub component is loaded by every app of the topic authority and no other: an app
/// left out of `scopes` gets no component, so daprd ignores its subscriptions and the topic's
/// messages wait forever (the notifier's were, until this test).
#[test]
fn the_pubsub_component_is_loaded_by_exactly_the_apps_of_the_topic_authority() {
    let apps: BTreeSet<String> = APPS.iter().map(|a| (*a).to_owned()).collect();
    for overlay in ["overlays/minikube", "overlays/cloud"] {
        let docs = render(overlay);
        assert_eq!(scopes(find(&docs, "Component", components::PUBSUB)), apps, "{overlay}");
    }
    let text = std::fs::read_to_string(root().join("dapr-components/local/pubsub.yaml")).unwrap();
    let doc: Value = serde_norway::from_str(&text).unwrap();
    assert_eq!(scopes(&doc), apps, "dapr-components/local/pubsub.yaml");
}

/// Where the postgres-roles Job mounts its ConfigMap.
const MOUNT: &str = "/etc/postgres-roles";

#[test]
fn the_roles_job_applies_roles_sql_and_indexes_sql_with_every_roles_password() {
    let sql = std::fs::read_to_string(root().join("manifests/base/postgres/roles.sql")).unwrap();
    let indexes = std::fs::read_to_string(root().join("manifests/base/postgres/indexes.sql")).unwrap();
    for overlay in ["overlays/minikube", "overlays/cloud"] {
        let docs = render(overlay);
        let config = &find(&docs, "ConfigMap", "postgres-roles")["data"];
        assert_eq!(config["roles.sql"], sql.as_str(), "{overlay}");
        assert_eq!(config["indexes.sql"], indexes.as_str(), "{overlay}");
        let job = find(&docs, "Job", "postgres-roles");
        // Both files, roles.sql first (it creates the tables and the function the indexes are on),
        // in one psql run that stops at the first error.
        let container = &job["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["volumeMounts"][0]["mountPath"], MOUNT, "{overlay}");
        let script = container["command"][2].as_str().unwrap();
        let files = format!("-f {MOUNT}/roles.sql -f {MOUNT}/indexes.sql");
        assert!(script.contains(&files) && script.contains("ON_ERROR_STOP=1"), "{overlay}: {script}");
        let env: BTreeMap<String, (String, String)> = container["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let r = &e["valueFrom"]["secretKeyRef"];
                (
                    e["name"].as_str().unwrap().to_owned(),
                    pair(r["name"].as_str().unwrap().to_owned(), r["key"].as_str().unwrap()),
                )
            })
            .collect();
        assert_eq!(env.get("POSTGRES_ADMIN_CONNECTION"), Some(&pair("postgres-admin".into(), "connectionString")));
        for (role, secret) in APPS
            .iter()
            .map(|a| (a.replace('-', "_"), format!("{a}-postgres")))
            .chain([("keda_reminders".into(), "keda-postgres".into())])
        {
            let var = format!("{}_PASSWORD", role.to_uppercase());
            assert_eq!(env.get(&var), Some(&pair(secret, "password")), "{overlay}: {var}");
            // roles.sql reads the variable psql `\getenv`s for it.
            assert!(
                sql.contains(&format!("\\getenv {role}_password {var}")),
                "roles.sql sets {role}'s password from {var}"
            );
        }
    }
}

#[test]
fn cloud_sidecars_authenticate_to_kafka_as_their_own_user() {
    let docs = render("overlays/cloud");
    let pubsub = find(&docs, "Component", components::PUBSUB);
    assert_eq!(meta(pubsub, "saslUsername")["value"], "{appID}");
    assert_eq!(meta(pubsub, "saslPassword")["envRef"], "KAFKA_PASSWORD");
    for app in APPS {
        assert_eq!(
            env_from_secret(&docs, app).get("KAFKA_PASSWORD"),
            Some(&pair(format!("{app}-kafka"), "password")),
            "cloud: {app}"
        );
    }
    // minikube's broker has no authentication: no Kafka Secret is required there.
    let minikube = render("overlays/minikube");
    for app in APPS {
        assert!(!env_from_secret(&minikube, app).contains_key("KAFKA_PASSWORD"), "minikube: {app}");
    }
}

/// (resource type, name, pattern, operation) of a KafkaUser's ACLs.
fn acls(user: &Value) -> BTreeSet<(String, String, String, String)> {
    let mut set = BTreeSet::new();
    for acl in user["spec"]["authorization"]["acls"].as_array().unwrap() {
        let r = &acl["resource"];
        for op in acl["operations"].as_array().unwrap() {
            set.insert((
                r["type"].as_str().unwrap().to_owned(),
                r["name"].as_str().unwrap().to_owned(),
                r["patternType"].as_str().unwrap_or("literal").to_owned(),
                op.as_str().unwrap().to_owned(),
            ));
        }
    }
    set
}

fn acl(kind: &str, name: &str, op: &str) -> (String, String, String, String) {
    (kind.into(), name.into(), "literal".into(), op.into())
}

#[test]
fn kafka_users_have_exactly_the_acls_of_the_pubsub_scopes() {
    let docs = render("kafka-users");
    for app in APPS {
        let user = find(&docs, "KafkaUser", app);
        assert_eq!(user["spec"]["authentication"]["type"], "scram-sha-512", "{app}");
        assert_eq!(user["spec"]["authorization"]["type"], "simple", "{app}");
        let mut expected = BTreeSet::new();
        for topic in subscribes(app) {
            expected.insert(acl("topic", &topic, "Read"));
            expected.insert(acl("topic", &topic, "Describe"));
        }
        if !subscribes(app).is_empty() {
            // Dapr's consumerGroup is "{appID}".
            expected.insert(acl("group", app, "Read"));
        }
        for topic in publishes(app) {
            expected.insert(acl("topic", &topic, "Write"));
            expected.insert(acl("topic", &topic, "Describe"));
        }
        if app == "task-api" {
            // Its live streams (dapr-components/k8s/pubsub-live.yaml): both topics, in a group
            // per pod, "{appID}-live-{podName}".
            for topic in [todo_core::events::topics::TASK_EVENTS, todo_core::events::topics::REMINDERS] {
                expected.insert(acl("topic", topic, "Read"));
                expected.insert(acl("topic", topic, "Describe"));
            }
            expected.insert(("group".to_owned(), "task-api-live-".to_owned(), "prefix".to_owned(), "Read".to_owned()));
        }
        assert_eq!(acls(user), expected, "{app}'s ACLs");
    }
    let admin = acls(find(&docs, "KafkaUser", "todo-admin"));
    let allowed = ["Create", "Alter", "AlterConfigs", "Describe", "DescribeConfigs"];
    assert!(!admin.is_empty());
    for (kind, _, _, op) in &admin {
        assert!(kind == "topic" && allowed.contains(&op.as_str()), "the topics admin may not {op} on a {kind}");
    }
    for (_, _, _, op) in acls(find(&docs, "KafkaUser", "keda")) {
        assert_eq!(op, "Describe", "KEDA reads lag only");
    }
    let users: BTreeSet<&str> =
        docs.iter().filter(|d| d["kind"] == "KafkaUser").filter_map(|d| d["metadata"]["name"].as_str()).collect();
    let expected: BTreeSet<&str> = APPS.into_iter().chain(["todo-admin", "keda"]).collect();
    assert_eq!(users, expected, "one KafkaUser per app, the topics admin and KEDA");
}
