//! The Kubernetes artifacts agree with the code.
//!
//! Renders `manifests/overlays/minikube` and `manifests/overlays/cloud` with `kubectl kustomize`
//! (the Deployments, the Dapr components from `dapr-components/k8s`, the KEDA objects from
//! `keda/` and the Kafka topic list) and checks them against what the function crates
//! themselves declare: app-ids, subscriptions (pub/sub, topic, dead-letter topic), job
//! prefixes, and the component and topic names of `todo_core::events`. A broken link fails with a
//! message naming both sides: the code's value and where it comes from, and the manifest's.
//!
//! `kubectl` must be on PATH: without it the test fails (it never skips).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use dapr_fn::clock::Clock;
use dapr_fn::runtime::Function;
use serde_json::Value;
use todo_core::events::{authority, components, topics};

const OVERLAYS: [&str; 2] = ["overlays/minikube", "overlays/cloud"];

/// Component metadata of Dapr's own transactional outbox. The project has its own outbox
/// (`dapr_fn::outbox`, docs/architecture.md): configured on a store, Dapr's would also publish
/// every outbox record and task upsert a second time, with random ids.
const DAPR_OUTBOX_METADATA: [&str; 4] =
    ["outboxPublishPubsub", "outboxPublishTopic", "outboxPubsub", "outboxDiscardWhenMissingState"];

fn root() -> PathBuf {
    system_tests::workspace_root()
}

/// Every function, built the way its `main` builds it (with a sidecar client that is never
/// called and default configuration).
async fn functions() -> Vec<Function> {
    let dapr = dapr_fn::testing::unreachable_client().await;
    vec![
        task_api::build(dapr.clone(), task_api::Config::with_secret("x".repeat(32)), Clock::system()),
        create_task::build(dapr.clone(), Clock::system()),
        on_task_completed::build(dapr.clone()),
        fire_reminder::build(dapr.clone(), fire_reminder::Config::default(), Clock::system()),
        audit_writer::build(dapr.clone(), Clock::system()),
        notifier::build(dapr, notifier::Config::default(), Clock::system()).expect("the notifier's defaults build"),
    ]
}

/// App-id -> the topics it subscribes to through `pubsub` (the crates' own subscriptions): the
/// work the app-id's consumer group shares, which KEDA scales on. task-api's live streams read
/// through `pubsub-live`, a group per pod (checked on their own).
fn subscriptions_of(functions: &[Function]) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in functions {
        out.entry(f.app_id().to_owned()).or_default().extend(shared_work(f).map(|s| s.topic().to_owned()));
    }
    out
}

/// `f`'s subscriptions through `pubsub`.
fn shared_work(f: &Function) -> impl Iterator<Item = &dapr_fn::runtime::Subscription> {
    f.subscriptions().iter().filter(|s| s.pubsub() == components::PUBSUB)
}

/// The crates under functions/: each must be one of the functions above.
fn function_crates() -> BTreeSet<String> {
    std::fs::read_dir(root().join("functions"))
        .expect("functions/ directory")
        .filter_map(|entry| {
            let entry = entry.ok()?;
            entry.path().join("Cargo.toml").exists().then(|| entry.file_name().to_string_lossy().into_owned())
        })
        .collect()
}

/// `kubectl kustomize manifests/<target>`, parsed into one JSON value per document.
fn render(target: &str) -> Vec<Value> {
    system_tests::kustomize::render(target).unwrap_or_else(|e| panic!("{e:#}"))
}

/// One rendered overlay, indexed.
struct Overlay {
    name: &'static str,
    docs: Vec<Value>,
}

impl Overlay {
    fn load(name: &'static str) -> Self {
        Self { name, docs: render(name) }
    }

    fn all<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.docs.iter().filter(move |d| d["kind"] == kind)
    }

    fn get(&self, kind: &str, name: &str) -> Option<&Value> {
        self.docs.iter().find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
    }

    /// The `platform-settings` ConfigMap's data.
    fn settings(&self) -> BTreeMap<String, String> {
        let cm = self
            .get("ConfigMap", "platform-settings")
            .unwrap_or_else(|| panic!("manifests/{} renders no ConfigMap platform-settings", self.name));
        cm["data"].as_object().map(|m| m.iter().map(|(k, v)| (k.clone(), str_of(v))).collect()).unwrap_or_default()
    }

    /// The Kafka topics of the kafka-topics Job: name -> partitions.
    fn topics(&self) -> BTreeMap<String, u32> {
        let cm = self
            .get("ConfigMap", "kafka-topics")
            .unwrap_or_else(|| panic!("manifests/{} renders no ConfigMap kafka-topics (the topic list)", self.name));
        let list = cm["data"]["topics.txt"].as_str().expect("kafka-topics has topics.txt");
        list.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                let mut fields = l.split_whitespace();
                let name = fields.next().unwrap().to_owned();
                let partitions = fields
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or_else(|| panic!("topics.txt: `{l}` has no partition count"));
                (name, partitions)
            })
            .collect()
    }
}

fn str_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A Dapr component's metadata item `name`: its value, or `None` when absent.
fn component_meta(component: &Value, name: &str) -> Option<Value> {
    component["spec"]["metadata"].as_array()?.iter().find(|m| m["name"] == name).cloned()
}

fn component_value(component: &Value, name: &str) -> Option<String> {
    component_meta(component, name).map(|m| str_of(&m["value"]))
}

fn annotations(deployment: &Value) -> BTreeMap<String, String> {
    deployment["spec"]["template"]["metadata"]["annotations"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), str_of(v))).collect())
        .unwrap_or_default()
}

fn container<'a>(deployment: &'a Value, name: &str) -> Option<&'a Value> {
    deployment["spec"]["template"]["spec"]["containers"].as_array()?.iter().find(|c| c["name"] == name)
}

fn env(container: &Value, name: &str) -> Option<Value> {
    container["env"].as_array()?.iter().find(|e| e["name"] == name).cloned()
}

fn env_value(container: &Value, name: &str) -> Option<String> {
    env(container, name).map(|e| str_of(&e["value"]))
}

/// Parses a Go duration like `20s` or `1m30s` into seconds.
fn go_duration_secs(text: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            unit.push(chars.next()?);
        }
        let value: f64 = number.parse().ok()?;
        number.clear();
        total += value
            * match unit.as_str() {
                "h" => 3600.0,
                "m" => 60.0,
                "s" => 1.0,
                "ms" => 0.001,
                _ => return None,
            };
    }
    number.is_empty().then_some(total)
}

/// The failures of one check, reported together.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn check(&mut self, ok: bool, message: impl FnOnce() -> String) {
        if !ok {
            self.0.push(message());
        }
    }

    fn assert_none(self, what: &str) {
        if !self.0.is_empty() {
            let mut text = format!("{what}: {} problem(s)\n", self.0.len());
            for m in &self.0 {
                let _ = writeln!(text, "  - {m}");
            }
            panic!("{text}");
        }
    }
}

fn overlays() -> Vec<Overlay> {
    OVERLAYS.into_iter().map(Overlay::load).collect()
}

#[tokio::test]
async fn every_function_crate_has_a_deployment_whose_app_id_is_the_crate_name() {
    let functions = functions().await;
    let ids: BTreeSet<String> = functions.iter().map(|f| f.app_id().to_owned()).collect();
    let crates = function_crates();
    assert_eq!(
        crates, ids,
        "the crates under functions/ and the functions this test builds differ: add the new crate's build(..) to \
         functions() in system-tests/tests/manifests.rs"
    );
    let mut failures = Failures::default();
    let all: Vec<&str> = functions.iter().map(Function::app_id).collect();
    for overlay in overlays() {
        for &id in &all {
            let Some(d) = overlay.get("Deployment", id) else {
                failures.0.push(format!(
                    "crate functions/{id} (app-id `{id}`) has no Deployment `{id}` in manifests/{}",
                    overlay.name
                ));
                continue;
            };
            let a = annotations(d);
            failures.check(a.get("dapr.io/enabled").map(String::as_str) == Some("true"), || {
                format!("Deployment {id} in manifests/{}: dapr.io/enabled is not \"true\"", overlay.name)
            });
            failures.check(a.get("dapr.io/app-id").map(String::as_str) == Some(id), || {
                format!(
                    "crate functions/{id} declares app-id `{id}` (Function::new), but Deployment {id} in manifests/{} \
                     has dapr.io/app-id {:?}",
                    overlay.name,
                    a.get("dapr.io/app-id")
                )
            });
            let Some(c) = container(d, id) else {
                failures.0.push(format!("Deployment {id} in manifests/{} has no container named `{id}`", overlay.name));
                continue;
            };
            let image = str_of(&c["image"]);
            failures.check(image.rsplit('/').next().is_some_and(|last| last.starts_with(&format!("{id}:"))), || {
                format!(
                    "Deployment {id} in manifests/{} runs image `{image}`, not the image of crate functions/{id}",
                    overlay.name
                )
            });
            // The app port Dapr calls is the one the binary listens on.
            let app_port = a.get("dapr.io/app-port").cloned().unwrap_or_default();
            failures.check(env_value(c, "APP_PORT").as_deref() == Some(app_port.as_str()), || {
                format!(
                    "Deployment {id} in manifests/{}: dapr.io/app-port {app_port} but APP_PORT {:?}",
                    overlay.name,
                    env_value(c, "APP_PORT")
                )
            });
            // task-api is reached through its Service; every other function only by its own
            // sidecar (127.0.0.1 in the pod), so it listens on loopback and the kubelet probes
            // /healthz on the metrics port.
            let (host, why) = if id == task_api::APP_ID {
                ("0.0.0.0", "its Service and the ingress controller reach it")
            } else {
                ("127.0.0.1", "its sidecar is its only caller")
            };
            failures.check(env_value(c, "APP_HOST").as_deref() == Some(host), || {
                format!(
                    "Deployment {id} in manifests/{}: APP_HOST must be {host} ({why}), is {:?}",
                    overlay.name,
                    env_value(c, "APP_HOST")
                )
            });
            if id != task_api::APP_ID {
                // The metrics port binds METRICS_HOST (APP_HOST when unset): it must face the
                // kubelet and Prometheus even though the app port does not.
                failures.check(env_value(c, "METRICS_HOST").as_deref() == Some("0.0.0.0"), || {
                    format!(
                        "Deployment {id} in manifests/{}: METRICS_HOST must be 0.0.0.0 (probes and scrapes come from \
                         outside the pod; APP_HOST is loopback), is {:?}",
                        overlay.name,
                        env_value(c, "METRICS_HOST")
                    )
                });
                for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
                    let get = &c[probe]["httpGet"];
                    failures.check(get["path"] == "/healthz" && get["port"] == "metrics", || {
                        format!(
                            "Deployment {id} in manifests/{}: {probe} must GET /healthz on port `metrics` (the app \
                             port listens on loopback), has {get}",
                            overlay.name
                        )
                    });
                }
                let declares_app_port =
                    c["ports"].as_array().is_some_and(|ps| ps.iter().any(|p| str_of(&p["containerPort"]) == app_port));
                failures.check(!declares_app_port, || {
                    format!(
                        "Deployment {id} in manifests/{}: containerPort {app_port} is declared, but the app port \
                         listens on loopback only",
                        overlay.name
                    )
                });
            }
            let metrics_port = env_value(c, "METRICS_PORT");
            let metrics_container_port = c["ports"]
                .as_array()
                .and_then(|ps| ps.iter().find(|p| p["name"] == "metrics"))
                .map(|p| str_of(&p["containerPort"]));
            failures.check(metrics_port.is_some() && metrics_port == metrics_container_port, || {
                format!(
                    "Deployment {id} in manifests/{}: METRICS_PORT {metrics_port:?} must equal the `metrics` \
                     containerPort {metrics_container_port:?} the PodMonitor scrapes",
                    overlay.name
                )
            });
        }
    }
    failures.assert_none("Deployments vs function crates");
}

#[tokio::test]
async fn scaled_objects_follow_the_subscriptions_in_the_code() {
    let functions = functions().await;
    let mut failures = Failures::default();
    for overlay in overlays() {
        let topics = overlay.topics();
        let pubsub = overlay.get("Component", components::PUBSUB).unwrap_or_else(|| {
            panic!(
                "manifests/{} has no Dapr Component `{}` (todo_core::events::components::PUBSUB)",
                overlay.name,
                components::PUBSUB
            )
        });
        let brokers = component_value(pubsub, "brokers").unwrap_or_default();
        let dapr_version = component_value(pubsub, "version").unwrap_or_default();
        let initial_offset = component_value(pubsub, "initialOffset").unwrap_or_else(|| "newest".into());
        let expected_reset = match initial_offset.as_str() {
            "oldest" => "earliest",
            _ => "latest",
        };
        for (id, subscribed) in &subscriptions_of(&functions) {
            let id = id.as_str();
            let subscribed: BTreeSet<&str> = subscribed.iter().map(String::as_str).collect();
            let so = overlay.get("ScaledObject", id);
            if subscribed.is_empty() {
                continue;
            }
            let Some(so) = so else {
                failures.0.push(format!(
                    "crate functions/{id} subscribes to {subscribed:?} but manifests/{} has no ScaledObject `{id}`",
                    overlay.name
                ));
                continue;
            };
            failures.check(so["spec"]["scaleTargetRef"]["name"] == id, || {
                format!(
                    "ScaledObject {id} in manifests/{} scales {:?}, not Deployment {id}",
                    overlay.name, so["spec"]["scaleTargetRef"]["name"]
                )
            });
            let max = so["spec"]["maxReplicaCount"].as_u64().unwrap_or(100);
            let triggers = so["spec"]["triggers"].as_array().cloned().unwrap_or_default();
            let kafka: Vec<&Value> = triggers.iter().filter(|t| t["type"] == "kafka").collect();
            let trigger_topics: BTreeSet<String> = kafka.iter().map(|t| str_of(&t["metadata"]["topic"])).collect();

            for topic in &subscribed {
                failures.check(trigger_topics.contains(*topic), || {
                    format!(
                        "crate functions/{id} subscribes to topic `{topic}` (build().subscriptions()), but ScaledObject \
                         {id} in manifests/{} has kafka triggers only on {trigger_topics:?}",
                        overlay.name
                    )
                });
            }
            for topic in &trigger_topics {
                failures.check(subscribed.contains(topic.as_str()), || {
                    format!(
                        "ScaledObject {id} in manifests/{} scales on topic `{topic}`, which crate functions/{id} does \
                         not consume (its subscriptions: {subscribed:?})",
                        overlay.name
                    )
                });
                match topics.get(topic) {
                    None => failures.0.push(format!(
                        "ScaledObject {id} in manifests/{} scales on topic `{topic}`, which is not in the topic list \
                         (manifests/base/kafka-topics/topics.txt)",
                        overlay.name
                    )),
                    Some(&partitions) => failures.check(max <= u64::from(partitions), || {
                        format!(
                            "ScaledObject {id} in manifests/{}: maxReplicaCount {max} exceeds the {partitions} \
                             partitions of `{topic}` (topics.txt); the extra consumers would sit idle",
                            overlay.name
                        )
                    }),
                }
            }
            for t in &kafka {
                let m = &t["metadata"];
                failures.check(m["consumerGroup"] == id, || {
                    format!(
                        "ScaledObject {id} in manifests/{}: kafka trigger on `{}` has consumerGroup `{}`, but Dapr's \
                         consumer group is the app-id `{id}` (pubsub consumerGroup \"{{appID}}\")",
                        overlay.name,
                        str_of(&m["topic"]),
                        str_of(&m["consumerGroup"])
                    )
                });
                failures.check(str_of(&m["offsetResetPolicy"]) == expected_reset, || {
                    format!(
                        "ScaledObject {id} in manifests/{}: kafka trigger offsetResetPolicy {:?} does not match Dapr \
                         pubsub initialOffset `{initial_offset}` (expected `{expected_reset}`)",
                        overlay.name, m["offsetResetPolicy"]
                    )
                });
                failures.check(str_of(&m["bootstrapServers"]) == brokers, || {
                    format!(
                        "ScaledObject {id} in manifests/{}: bootstrapServers {:?} differ from the Dapr pubsub brokers \
                         `{brokers}`",
                        overlay.name, m["bootstrapServers"]
                    )
                });
                failures.check(str_of(&m["version"]) == dapr_version, || {
                    format!(
                        "ScaledObject {id} in manifests/{}: Kafka protocol version {:?} differs from the Dapr pubsub \
                         version `{dapr_version}`",
                        overlay.name, m["version"]
                    )
                });
            }
        }
        // task-api is the front door: never scaled to zero.
        if let Some(so) = overlay.get("ScaledObject", task_api::APP_ID) {
            failures.check(so["spec"]["minReplicaCount"].as_u64().unwrap_or(0) >= 1, || {
                format!("ScaledObject task-api in manifests/{}: minReplicaCount must be at least 1", overlay.name)
            });
        }
        // A background task (task-api's outbox relay) runs only while a replica does: a function
        // that has one must never scale to zero, or what its task should do would wait.
        for f in &functions {
            let background = f.background_names();
            if background.is_empty() {
                continue;
            }
            let id = f.app_id();
            let min = overlay.get("ScaledObject", id).map(|so| so["spec"]["minReplicaCount"].as_u64().unwrap_or(0));
            let replicas = overlay.get("Deployment", id).and_then(|d| d["spec"]["replicas"].as_u64());
            failures.check(min.map_or(replicas.unwrap_or(1) >= 1, |min| min >= 1), || {
                format!(
                    "crate functions/{id} runs background tasks {background:?} (build().background_names()), but \
                     manifests/{} lets it scale to zero (ScaledObject minReplicaCount {min:?}, Deployment replicas \
                     {replicas:?}): they would stop with the last replica",
                    overlay.name
                )
            });
        }
    }
    failures.assert_none("KEDA ScaledObjects vs subscriptions");
}

/// The kafka-topics Job gives each consumer group a committed offset on every partition where it
/// has none (consumers.txt says why; tests/kafka_offsets.rs shows it on real Kafka). A group
/// missing from its list would be kept awake by expired messages: the list must be exactly the
/// (topic, app-id) pairs the functions subscribe with.
#[tokio::test]
async fn the_topics_job_knows_every_consumer_group_the_code_subscribes_with() {
    let functions = functions().await;
    let expected: BTreeSet<(String, String)> = subscriptions_of(&functions)
        .into_iter()
        .flat_map(|(app, topics)| topics.into_iter().map(move |topic| (topic, app.clone())))
        .collect();
    assert!(expected.len() >= 4, "the functions subscribe with {expected:?}");
    for overlay in overlays() {
        let cm = overlay.get("ConfigMap", "kafka-topics").expect("the kafka-topics ConfigMap");
        let list = cm["data"]["consumers.txt"]
            .as_str()
            .unwrap_or_else(|| panic!("manifests/{}: the kafka-topics ConfigMap has no consumers.txt", overlay.name));
        let listed: BTreeSet<(String, String)> = list
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .flat_map(|l| {
                let mut fields = l.split_whitespace();
                let topic = fields.next().unwrap_or_default().to_owned();
                fields.map(move |group| (topic.clone(), group.to_owned())).collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(
            listed, expected,
            "manifests/{}: consumers.txt (manifests/base/kafka-topics) vs the functions' subscriptions",
            overlay.name
        );
    }
}

#[tokio::test]
async fn every_topic_the_code_uses_exists_with_its_dead_letter_topics() {
    let functions = functions().await;
    let mut failures = Failures::default();
    for overlay in overlays() {
        let topics = overlay.topics();
        let mut needed: Vec<(String, String)> = vec![
            (topics::TASK_CREATE.into(), "todo_core::events::topics::TASK_CREATE".into()),
            (topics::TASK_EVENTS.into(), "todo_core::events::topics::TASK_EVENTS".into()),
            (topics::REMINDERS.into(), "todo_core::events::topics::REMINDERS".into()),
        ];
        for f in &functions {
            let id = f.app_id();
            for s in f.subscriptions() {
                // The live streams' subscriptions have no dead-letter topic (a fan-out that
                // never drops; functions/task-api/src/live/feed.rs).
                let live = id == "task-api" && s.pubsub() == components::LIVE_PUBSUB;
                needed.push((s.topic().into(), format!("crate functions/{id} subscribes to it")));
                match s.dead_letter() {
                    Some(dlq) => needed
                        .push((dlq.into(), format!("crate functions/{id}'s dead-letter topic for `{}`", s.topic()))),
                    None if live => {}
                    None => failures.0.push(format!(
                        "crate functions/{id}: the subscription to `{}` has no dead-letter topic",
                        s.topic()
                    )),
                }
                // The live streams' component is task-api's alone (its consumer group per pod).
                failures.check(s.pubsub() == components::PUBSUB || live, || {
                    format!(
                        "crate functions/{id} subscribes through pub/sub `{}`, not `{}`",
                        s.pubsub(),
                        components::PUBSUB
                    )
                });
            }
        }
        let needed_names: BTreeSet<String> = needed.iter().map(|(topic, _)| topic.clone()).collect();
        for (topic, why) in needed {
            failures.check(topics.contains_key(&topic), || {
                format!(
                    "topic `{topic}` ({why}) is missing from the topic list of manifests/{} \
                     (manifests/base/kafka-topics/topics.txt); brokers do not auto-create topics",
                    overlay.name
                )
            });
        }
        // And nothing else: a topic no code uses (say, an internal topic of Dapr's outbox, which
        // the project no longer uses) only costs partitions and misleads readers.
        for topic in topics.keys() {
            failures.check(needed_names.contains(topic), || {
                format!(
                    "topic `{topic}` in the topic list of manifests/{} (manifests/base/kafka-topics/topics.txt) is \
                     used by no function, subscription or dead-letter topic of the code",
                    overlay.name
                )
            });
        }
    }
    failures.assert_none("Kafka topics vs code");
}

#[test]
fn dapr_components_match_the_names_and_the_state_contract_of_the_code() {
    let mut failures = Failures::default();
    for overlay in overlays() {
        let pubsub = overlay.get("Component", components::PUBSUB);
        failures.check(pubsub.is_some_and(|p| p["spec"]["type"] == "pubsub.kafka"), || {
            format!(
                "manifests/{}: no pubsub.kafka Component `{}` (todo_core::events::components::PUBSUB)",
                overlay.name,
                components::PUBSUB
            )
        });
        if let Some(p) = pubsub {
            failures.check(component_value(p, "consumerGroup").as_deref() == Some("{appID}"), || {
                format!(
                    "Component pubsub in manifests/{}: consumerGroup must be \"{{appID}}\" (the KEDA triggers name the \
                     app-id), not {:?}",
                    overlay.name,
                    component_value(p, "consumerGroup")
                )
            });
            failures.check(component_value(p, "initialOffset").as_deref() == Some("oldest"), || {
                format!("Component pubsub in manifests/{}: initialOffset must be `oldest`", overlay.name)
            });
        }
        // The live component: the same cluster and client settings as `pubsub`, a group per pod
        // (never the app-id's: it would take partitions from another replica), task-api only.
        let live = overlay.get("Component", components::LIVE_PUBSUB);
        failures.check(live.is_some_and(|p| p["spec"]["type"] == "pubsub.kafka"), || {
            format!("manifests/{}: no pubsub.kafka Component `{}`", overlay.name, components::LIVE_PUBSUB)
        });
        if let (Some(p), Some(live)) = (pubsub, live) {
            for name in ["brokers", "authType", "disableTls", "version", "saslMechanism", "saslUsername"] {
                failures.check(component_value(p, name) == component_value(live, name), || {
                    format!(
                        "Component pubsub-live in manifests/{}: `{name}` is {:?}, pubsub's {:?}",
                        overlay.name,
                        component_value(live, name),
                        component_value(p, name)
                    )
                });
            }
            failures.check(component_value(live, "consumerGroup").as_deref() == Some("{appID}-live-{podName}"), || {
                format!("Component pubsub-live in manifests/{}: consumerGroup must be one per pod", overlay.name)
            });
            failures.check(component_value(live, "initialOffset").as_deref() == Some("newest"), || {
                format!("Component pubsub-live in manifests/{}: initialOffset must be `newest`", overlay.name)
            });
            failures.check(live["scopes"] == serde_json::json!(["task-api"]), || {
                format!("Component pubsub-live in manifests/{}: scopes must be [task-api]", overlay.name)
            });
        }
        let mut tables = BTreeMap::new();
        let mut metadata_tables = BTreeMap::new();
        for name in [
            components::TASKS_STORE,
            components::STATE_STORE,
            components::AUDIT_STORE,
            components::NOTIFY_STORE,
            components::DELIVERIES_STORE,
        ] {
            let Some(c) = overlay.get("Component", name) else {
                failures.0.push(format!(
                    "manifests/{}: no state store Component `{name}` (todo_core::events::components)",
                    overlay.name
                ));
                continue;
            };
            failures.check(c["spec"]["type"] == "state.postgresql" && c["spec"]["version"] == "v1", || {
                format!(
                    "Component {name} in manifests/{}: must be state.postgresql v1 (the Query API), is {} {}",
                    overlay.name, c["spec"]["type"], c["spec"]["version"]
                )
            });
            failures.check(component_value(c, "keyPrefix").as_deref() == Some("name"), || {
                format!(
                    "Component {name} in manifests/{}: keyPrefix must be `name` (keys shared by every app-id), is {:?}",
                    overlay.name,
                    component_value(c, "keyPrefix")
                )
            });
            let table = component_value(c, "tableName").unwrap_or_else(|| "state".into());
            if let Some(other) = tables.insert(table.clone(), name) {
                failures.0.push(format!(
                    "Components {other} and {name} in manifests/{} share tableName `{table}` (the Query API scans a whole table)",
                    overlay.name
                ));
            }
            let meta = component_value(c, "metadataTableName").unwrap_or_else(|| "dapr_metadata".into());
            if let Some(other) = metadata_tables.insert(meta.clone(), name) {
                failures.0.push(format!(
                    "Components {other} and {name} in manifests/{} share metadataTableName `{meta}`: state.postgresql v1 \
                     records its schema version under one key there, so the second store's table would never be created",
                    overlay.name
                ));
            }
        }
        for component in overlay.all("Component") {
            for key in DAPR_OUTBOX_METADATA {
                failures.check(component_meta(component, key).is_none(), || {
                    format!(
                        "Component {} in manifests/{}: `{key}` enables Dapr's transactional outbox, which the project \
                         replaced with its own (dapr_fn::outbox): it would publish every outbox record and task write \
                         a second time, with random event ids",
                        str_of(&component["metadata"]["name"]),
                        overlay.name
                    )
                });
            }
        }
    }
    failures.assert_none("Dapr components vs todo_core::events");
}

#[tokio::test]
async fn only_fire_reminder_talks_to_the_scheduler() {
    let functions = functions().await;
    let mut failures = Failures::default();
    for overlay in overlays() {
        for f in &functions {
            let id = f.app_id();
            let Some(d) = overlay.get("Deployment", id) else { continue };
            let address = annotations(d).get("dapr.io/scheduler-host-address").cloned();
            let blank =
                address.as_deref().is_some_and(|a| a.trim().trim_matches(|c| c == '"' || c == '\'').trim().is_empty());
            if f.job_prefixes().is_empty() {
                failures.check(blank, || {
                    format!(
                        "crate functions/{id} handles no Dapr jobs (job_prefixes() is empty), so Deployment {id} in \
                         manifests/{} must set dapr.io/scheduler-host-address blank; it has {address:?}",
                        overlay.name
                    )
                });
            } else {
                failures.check(!blank, || {
                    format!(
                        "crate functions/{id} handles jobs {:?}, but Deployment {id} in manifests/{} blanks \
                         dapr.io/scheduler-host-address, so its sidecar never receives them",
                        f.job_prefixes(),
                        overlay.name
                    )
                });
            }
        }
    }
    failures.assert_none("Scheduler connections vs job handlers");
}

#[test]
fn sidecar_tokens_and_shutdown_timing_are_consistent() {
    let mut failures = Failures::default();
    for overlay in overlays() {
        for d in overlay.all("Deployment") {
            let id = str_of(&d["metadata"]["name"]);
            let a = annotations(d);
            if a.get("dapr.io/enabled").map(String::as_str) != Some("true") {
                continue;
            }
            let Some(c) = container(d, &id) else { continue };
            // The injector gives daprd the Secrets' key `token`; the app must read the same ones.
            for (annotation, var) in
                [("dapr.io/api-token-secret", "DAPR_API_TOKEN"), ("dapr.io/app-token-secret", "APP_API_TOKEN")]
            {
                let secret = a.get(annotation).cloned();
                // One pair per app: a leaked token opens one sidecar, not all of them.
                let own = format!("{id}-{}", if var == "DAPR_API_TOKEN" { "dapr-api-token" } else { "app-api-token" });
                failures.check(secret.as_deref() == Some(own.as_str()), || {
                    format!(
                        "Deployment {id} in manifests/{}: {annotation} must name the app's own Secret `{own}`, is \
                         {secret:?}",
                        overlay.name
                    )
                });
                let from = env(c, var).map(|e| e["valueFrom"]["secretKeyRef"].clone());
                failures.check(
                    secret.is_some()
                        && from.as_ref().is_some_and(|r| r["name"] == secret.clone().unwrap_or_default().as_str() && r["key"] == "token"),
                    || {
                        format!(
                            "Deployment {id} in manifests/{}: {annotation} is {secret:?}, so container {id} must read {var} \
                             from that Secret, key `token`; it reads {from:?}",
                            overlay.name
                        )
                    },
                );
            }
            let grace = d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"].as_f64().unwrap_or(30.0);
            let graceful = a.get("dapr.io/graceful-shutdown-seconds").and_then(|s| s.parse::<f64>().ok());
            let block = a.get("dapr.io/block-shutdown-duration").and_then(|s| go_duration_secs(s));
            let app = env_value(c, "SHUTDOWN_TIMEOUT_SECS").and_then(|s| s.parse::<f64>().ok()).unwrap_or(15.0);
            match graceful {
                None => failures.0.push(format!(
                    "Deployment {id} in manifests/{}: no dapr.io/graceful-shutdown-seconds (Dapr's default of 5 s is \
                     below the app's drain time)",
                    overlay.name
                )),
                Some(graceful) => {
                    failures.check(app < graceful, || {
                        format!(
                            "Deployment {id} in manifests/{}: SHUTDOWN_TIMEOUT_SECS {app} must be below \
                             dapr.io/graceful-shutdown-seconds {graceful}",
                            overlay.name
                        )
                    });
                    let sidecar_total = graceful + block.unwrap_or(0.0);
                    failures.check(sidecar_total < grace, || {
                        format!(
                            "Deployment {id} in manifests/{}: the sidecar may take {sidecar_total} s to stop \
                             (block-shutdown-duration + graceful-shutdown-seconds), not below \
                             terminationGracePeriodSeconds {grace}",
                            overlay.name
                        )
                    });
                }
            }
        }
    }
    failures.assert_none("tokens and graceful shutdown");
}

#[test]
fn fire_reminders_wake_up_query_reads_the_state_store_the_code_writes() {
    let mut failures = Failures::default();
    let key_prefix = todo_core::reminder::reminder_key(uuid::Uuid::nil()).replace(&uuid::Uuid::nil().to_string(), "");
    let scheduled = serde_json::to_value(todo_core::reminder::ReminderStatus::Scheduled).expect("status serializes");
    let scheduled = str_of(&scheduled);
    for overlay in overlays() {
        let Some(state) = overlay.get("Component", components::STATE_STORE) else { continue };
        let table = component_value(state, "tableName").unwrap_or_else(|| "state".into());
        let so = overlay.get("ScaledObject", fire_reminder::APP_ID);
        let query = so
            .and_then(|so| so["spec"]["triggers"].as_array())
            .and_then(|ts| ts.iter().find(|t| t["type"] == "postgresql"))
            .map(|t| str_of(&t["metadata"]["query"]));
        let Some(query) = query else {
            failures.0.push(format!(
                "ScaledObject fire-reminder in manifests/{} has no postgresql trigger: nothing would wake fire-reminder \
                 for a reminder coming due",
                overlay.name
            ));
            continue;
        };
        // keyPrefix `name`: `<component>||<key>`.
        let key = format!("'{}||{key_prefix}%'", components::STATE_STORE);
        for (needle, source) in [
            (format!(" {table}"), format!("Component state's tableName `{table}`")),
            (
                key.clone(),
                format!("reminder keys `{key_prefix}<task id>` (todo_core::reminder::reminder_key) in store `state`"),
            ),
            (format!("'{scheduled}'"), "ReminderStatus::Scheduled".to_owned()),
            ("remind_at".to_owned(), "ReminderRecord::remind_at".to_owned()),
        ] {
            failures.check(query.contains(&needle), || {
                format!(
                    "fire-reminder's postgresql trigger in manifests/{} must use {source} ({needle}); its query is: {query}",
                    overlay.name
                )
            });
        }
    }
    failures.assert_none("fire-reminder's wake-up query vs the state store");
}

/// The notifier's retries wake it from zero the way fire-reminder's reminders do: a postgresql
/// trigger over the deliveries table, counting `retrying` records by `next_attempt_at`.
#[test]
fn the_notifiers_wake_up_query_reads_the_delivery_records_the_code_writes() {
    use todo_core::delivery::{Channel, DeliveryStatus, delivery_key};
    let mut failures = Failures::default();
    let key_prefix = delivery_key("", Channel::Webhook).replace(":webhook", "");
    let retrying = str_of(&serde_json::to_value(DeliveryStatus::Retrying).expect("status serializes"));
    for overlay in overlays() {
        // The table of the `deliveries` store once its component is in the overlay; the agreed
        // name until then.
        let table = overlay
            .get("Component", components::DELIVERIES_STORE)
            .and_then(|c| component_value(c, "tableName"))
            .unwrap_or_else(|| "todo_deliveries".into());
        let so = overlay.get("ScaledObject", NOTIFIER);
        let trigger = so
            .and_then(|so| so["spec"]["triggers"].as_array())
            .and_then(|ts| ts.iter().find(|t| t["type"] == "postgresql"));
        let Some(trigger) = trigger else {
            failures.0.push(format!(
                "ScaledObject notifier in manifests/{} has no postgresql trigger: nothing would wake the notifier for \
                 a delivery retry coming due",
                overlay.name
            ));
            continue;
        };
        let query = str_of(&trigger["metadata"]["query"]);
        let key = format!("'{}||{key_prefix}%'", components::DELIVERIES_STORE);
        for (needle, source) in [
            (format!(" {table}"), format!("the deliveries store's table `{table}`")),
            (key.clone(), format!("delivery keys `{key_prefix}<event id>:<channel>` in store `deliveries`")),
            (format!("'{retrying}'"), "DeliveryStatus::Retrying".to_owned()),
            ("next_attempt_at".to_owned(), "DeliveryRecord::next_attempt_at".to_owned()),
        ] {
            failures.check(query.contains(&needle), || {
                format!(
                    "the notifier's postgresql trigger in manifests/{} must use {source} ({needle}); its query is: {query}",
                    overlay.name
                )
            });
        }
        // The same read-only KEDA role as fire-reminder's trigger.
        failures.check(trigger["authenticationRef"]["name"] == "postgres", || {
            format!(
                "the notifier's postgresql trigger in manifests/{} must authenticate with TriggerAuthentication \
                 `postgres` (role keda_reminders), has {}",
                overlay.name, trigger["authenticationRef"]
            )
        });
    }
    failures.assert_none("the notifier's wake-up query vs the delivery records");
}

#[test]
fn no_image_uses_latest_and_no_secret_value_is_in_the_manifests() {
    let mut failures = Failures::default();
    let sensitive = |name: &str| {
        let n = name.to_ascii_lowercase();
        ["password", "secret", "token", "connectionstring", "apikey", "privatekey", "credentials"]
            .iter()
            .any(|s| n.contains(s))
    };
    for overlay in overlays() {
        for doc in &overlay.docs {
            let kind = str_of(&doc["kind"]);
            let name = str_of(&doc["metadata"]["name"]);
            failures.check(kind != "Secret", || {
                format!("manifests/{} renders Secret {name}: secrets are created by the deploy scripts, never kept in the repo", overlay.name)
            });
            let pod = match kind.as_str() {
                "Deployment" | "Job" | "StatefulSet" | "DaemonSet" => &doc["spec"]["template"]["spec"],
                _ => &Value::Null,
            };
            for c in pod["containers"].as_array().into_iter().chain(pod["initContainers"].as_array()).flatten() {
                let image = str_of(&c["image"]);
                let last = image.rsplit('/').next().unwrap_or_default();
                let tagged = last.contains(':') || image.contains("@sha256:");
                failures.check(tagged && !image.ends_with(":latest"), || {
                    format!(
                        "{kind} {name} in manifests/{}: image `{image}` must have an explicit tag that is not `latest`",
                        overlay.name
                    )
                });
                for e in c["env"].as_array().into_iter().flatten() {
                    let var = str_of(&e["name"]);
                    failures.check(!sensitive(&var) || e.get("value").is_none() || e["value"] == "", || {
                        format!(
                            "{kind} {name} in manifests/{}: env {var} holds a literal value; read it from a Secret",
                            overlay.name
                        )
                    });
                }
            }
            if kind == "Component" {
                for m in doc["spec"]["metadata"].as_array().into_iter().flatten() {
                    let key = str_of(&m["name"]);
                    // A secretKeyRef (resolved by the Dapr operator) or an envRef (the sidecar's
                    // environment, filled from a Secret by dapr.io/env-from-secret).
                    failures.check(!sensitive(&key) || m.get("secretKeyRef").is_some() || m.get("envRef").is_some(), || {
                        format!(
                            "Component {name} in manifests/{}: metadata `{key}` must come from a secretKeyRef or an envRef",
                            overlay.name
                        )
                    });
                }
            }
            if kind == "ConfigMap" {
                for (key, value) in doc["data"].as_object().into_iter().flatten() {
                    failures.check(!sensitive(key), || {
                        format!(
                            "ConfigMap {name} in manifests/{}: key `{key}` looks like a secret ({value})",
                            overlay.name
                        )
                    });
                }
            }
        }
    }
    // Secret-looking text anywhere in the deployment files.
    let patterns: [(&str, LineCheck); 4] = [
        ("a private key", |l| l.contains("PRIVATE KEY-----")),
        ("an AWS access key id", |l| {
            l.match_indices("AKIA").any(|(i, _)| {
                let rest: Vec<char> = l[i + 4..].chars().take(16).collect();
                rest.len() == 16 && rest.iter().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            })
        }),
        ("a JWT", |l| {
            l.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
                .any(|w| w.starts_with("eyJ") && w.matches('.').count() == 2 && w.len() > 40)
        }),
        ("a password in a connection string", |l| {
            let lower = l.to_ascii_lowercase();
            lower.match_indices("password=").any(|(i, m)| {
                // A variable, a placeholder or an escape sequence is fine; a literal is not.
                let value = l[i + m.len()..].trim_start_matches(['"', '\\', '\'']);
                // So is a Secret reference of `dapr.io/env-from-secret` (`KAFKA_PASSWORD=<secret>:<key>`).
                let token: String =
                    value.chars().take_while(|c| !matches!(c, ',' | '"' | '\'') && !c.is_whitespace()).collect();
                let secret_ref = token.split_once(':').is_some_and(|(secret, key)| {
                    !secret.is_empty()
                        && secret.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                        && !key.is_empty()
                        && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                });
                !(value.is_empty()
                    || secret_ref
                    || value.starts_with(['$', '<', '%', '.', '{'])
                    || value.starts_with(char::is_whitespace))
            })
        }),
    ];
    for dir in ["manifests", "dapr-components/k8s", "keda", ".github", "scripts", "schemas"] {
        for file in files_under(&root().join(dir)) {
            let Ok(text) = std::fs::read_to_string(&file) else { continue };
            for (n, line) in text.lines().enumerate() {
                for (what, matches) in &patterns {
                    failures.check(!matches(line), || {
                        format!(
                            "{}:{}: looks like {what}; keep secrets out of the repository",
                            file.strip_prefix(root()).unwrap_or(&file).display(),
                            n + 1
                        )
                    });
                }
            }
        }
    }
    failures.assert_none("images and secrets");
}

#[test]
fn cloud_kafka_sasl_settings_agree_between_dapr_keda_and_the_topics_job() {
    let overlay = Overlay::load("overlays/cloud");
    let settings = overlay.settings();
    let mut failures = Failures::default();
    let mechanism = settings.get("kafka-sasl-mechanism").cloned().unwrap_or_default();
    let (dapr, keda) = match mechanism.as_str() {
        "SCRAM-SHA-512" => ("SHA-512", "scram_sha512"),
        "SCRAM-SHA-256" => ("SHA-256", "scram_sha256"),
        "PLAIN" => ("PLAINTEXT", "plaintext"),
        other => panic!(
            "platform-settings kafka-sasl-mechanism `{other}` in manifests/overlays/cloud is not one of SCRAM-SHA-512, SCRAM-SHA-256, PLAIN"
        ),
    };
    let pubsub = overlay.get("Component", components::PUBSUB).expect("pubsub component");
    failures.check(component_value(pubsub, "saslMechanism").as_deref() == Some(dapr), || {
        format!(
            "the topics Job uses SASL {mechanism}, so Dapr's saslMechanism must be {dapr}, not {:?}",
            component_value(pubsub, "saslMechanism")
        )
    });
    failures.check(component_value(pubsub, "authType").as_deref() == Some("password"), || {
        "Dapr pubsub authType must be `password` in the cloud".into()
    });
    // The user from a Secret, or each app's own user named by its app-id; the password from a
    // Secret, directly or through the sidecar's environment.
    failures.check(
        component_meta(pubsub, "saslUsername")
            .is_some_and(|m| m.get("secretKeyRef").is_some() || m["value"] == "{appID}"),
        || "Dapr pubsub saslUsername must come from a Secret or be \"{appID}\" (per-app Kafka users)".into(),
    );
    failures.check(
        component_meta(pubsub, "saslPassword")
            .is_some_and(|m| m.get("secretKeyRef").is_some() || m.get("envRef").is_some()),
        || "Dapr pubsub saslPassword must come from a Secret (secretKeyRef or envRef)".into(),
    );
    for so in overlay.all("ScaledObject") {
        for t in so["spec"]["triggers"].as_array().into_iter().flatten().filter(|t| t["type"] == "kafka") {
            let name = str_of(&so["metadata"]["name"]);
            failures.check(str_of(&t["metadata"]["sasl"]) == keda && t["metadata"]["tls"] == "enable", || {
                format!(
                    "ScaledObject {name}: kafka trigger needs sasl `{keda}` and tls `enable` (as Dapr), has {:?}/{:?}",
                    t["metadata"]["sasl"], t["metadata"]["tls"]
                )
            });
            failures.check(t["authenticationRef"]["name"].is_string(), || {
                format!("ScaledObject {name}: kafka trigger without authenticationRef")
            });
        }
    }
    failures.assert_none("cloud Kafka SASL/TLS settings");
}

/// Whether a line of a file looks like it holds a secret.
type LineCheck = fn(&str) -> bool;

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn go_durations_parse() {
    assert_eq!(go_duration_secs("20s"), Some(20.0));
    assert_eq!(go_duration_secs("1m30s"), Some(90.0));
    assert_eq!(go_duration_secs("500ms"), Some(0.5));
    assert_eq!(go_duration_secs("20"), None);
}

/// Dapr's `publishingScopes` / `subscriptionScopes` syntax: `app=topic,topic;app=;...`.
fn parse_scopes(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    text.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|entry| {
            let (app, topics) = entry.split_once('=').unwrap_or((entry, ""));
            let topics = topics.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect();
            (app.trim().to_owned(), topics)
        })
        .collect()
}

/// The topics each app produces (beside its dead letters), from the system's authority table
/// (`todo_core::events::authority`, from which both pubsub components' scope strings are derived).
/// `publishes_in_source` keeps the table honest for the direct publishes.
fn producers() -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    authority::APPS
        .into_iter()
        .map(|app| (app, authority::TOPICS.iter().filter(|t| t.publishers.contains(&app)).map(|t| t.name).collect()))
        .collect()
}

/// The todo_core::events topics a function's own source publishes to directly (`publish(` with
/// `topics::NAME` on the same line).
fn publishes_in_source(id: &str) -> BTreeSet<&'static str> {
    let mut found = BTreeSet::new();
    for file in files_under(&root().join("functions").join(id).join("src")) {
        let Ok(text) = std::fs::read_to_string(&file) else { continue };
        for line in text.lines().filter(|l| l.contains("publish(")) {
            for (name, topic) in [
                ("TASK_CREATE", topics::TASK_CREATE),
                ("TASK_EVENTS", topics::TASK_EVENTS),
                ("REMINDERS", topics::REMINDERS),
            ] {
                if line.contains(&format!("topics::{name}")) {
                    found.insert(topic);
                }
            }
        }
    }
    found
}

#[tokio::test]
async fn pubsub_grants_each_topic_only_to_its_producers_and_consumers() {
    let functions = functions().await;
    let producers = producers();
    let mut failures = Failures::default();
    let mut publishing = BTreeMap::new();
    let mut subscribing = BTreeMap::new();
    for f in &functions {
        let id = f.app_id();
        let own = producers.get(id).cloned().unwrap_or_default();
        for topic in publishes_in_source(id) {
            failures.check(own.contains(topic), || {
                format!(
                    "functions/{id}/src publishes to `{topic}`, but producers() in system-tests/tests/manifests.rs does \
                     not grant it: add it there and to publishingScopes (both pubsub components)"
                )
            });
        }
        let mut publishes: BTreeSet<String> = own.iter().map(|t| (*t).to_owned()).collect();
        publishes.extend(shared_work(f).filter_map(|s| s.dead_letter()).map(str::to_owned));
        publishing.insert(id.to_owned(), publishes);
        subscribing.insert(id.to_owned(), shared_work(f).map(|s| s.topic().to_owned()).collect::<BTreeSet<_>>());
    }
    let (publishing_scopes, subscription_scopes) = (authority::publishing_scopes(), authority::subscription_scopes());
    failures.check(parse_scopes(&publishing_scopes) == publishing, || {
        format!(
            "authority::publishing_scopes() {publishing_scopes:?} differs from what the code publishes: {publishing:?}"
        )
    });
    failures.check(parse_scopes(&subscription_scopes) == subscribing, || {
        format!(
            "authority::subscription_scopes() {subscription_scopes:?} differs from what the code subscribes to: \
             {subscribing:?}"
        )
    });
    // The local component (devhost, `dapr run`) carries exactly the same strings.
    let local = std::fs::read_to_string(root().join("dapr-components/local/pubsub.yaml")).expect("local pubsub.yaml");
    let local: Value = serde_norway::from_str(&local).expect("local pubsub.yaml is YAML");
    for (key, expected) in [("publishingScopes", &publishing_scopes), ("subscriptionScopes", &subscription_scopes)] {
        let value = component_value(&local, key);
        failures.check(value.as_ref() == Some(expected), || {
            format!("dapr-components/local/pubsub.yaml: {key} is {value:?}, the authority table says {expected:?}")
        });
    }
    for overlay in overlays() {
        let Some(pubsub) = overlay.get("Component", components::PUBSUB) else { continue };
        let loaded: BTreeSet<String> = pubsub["spec"]["scopes"].as_array().into_iter().flatten().map(str_of).collect();
        for (key, expected) in [("publishingScopes", &publishing), ("subscriptionScopes", &subscribing)] {
            let value = component_value(pubsub, key);
            let Some(value) = value else {
                failures.0.push(format!(
                    "Component pubsub in manifests/{}: no {key}, so every app may use every topic",
                    overlay.name
                ));
                continue;
            };
            let granted = parse_scopes(&value);
            failures.check(&granted == expected, || {
                format!(
                    "Component pubsub in manifests/{}: {key} grants {granted:?}; the code needs exactly {expected:?}",
                    overlay.name
                )
            });
            // An app missing from the scopes may use every topic (Dapr's default).
            let listed: BTreeSet<String> = granted.keys().cloned().collect();
            failures.check(loaded.iter().all(|app| listed.contains(app)), || {
                format!(
                    "Component pubsub in manifests/{}: scoped to {loaded:?}, but {key} lists only {listed:?}; an app \
                     not listed may use every topic",
                    overlay.name
                )
            });
        }
        // Each topic: exactly its producers.
        for topic in [topics::TASK_CREATE, topics::TASK_EVENTS, topics::REMINDERS] {
            let granted: BTreeSet<String> = component_value(pubsub, "publishingScopes")
                .map(|v| parse_scopes(&v))
                .unwrap_or_default()
                .into_iter()
                .filter(|(_, ts)| ts.contains(topic))
                .map(|(app, _)| app)
                .collect();
            let expected: BTreeSet<String> =
                producers.iter().filter(|(_, ts)| ts.contains(topic)).map(|(app, _)| (*app).to_owned()).collect();
            failures.check(granted == expected, || {
                format!(
                    "Component pubsub in manifests/{}: `{topic}` may be published by {granted:?}, its producers are \
                     {expected:?}",
                    overlay.name
                )
            });
        }
    }
    failures.assert_none("pub/sub scopes vs the code");
}

#[test]
fn service_invocation_is_denied_and_nothing_uses_it() {
    let mut failures = Failures::default();
    for overlay in overlays() {
        let Some(config) = overlay.get("Configuration", "todo-config") else {
            failures.0.push(format!("manifests/{}: no Dapr Configuration todo-config", overlay.name));
            continue;
        };
        let acl = &config["spec"]["accessControl"];
        failures.check(acl["defaultAction"] == "deny", || {
            format!("Configuration todo-config in manifests/{}: accessControl.defaultAction must be deny", overlay.name)
        });
        failures.check(acl["trustDomain"].as_str().is_some_and(|t| !t.is_empty()), || {
            format!("Configuration todo-config in manifests/{}: accessControl needs a trustDomain", overlay.name)
        });
        failures.check(acl["policies"].as_array().is_none_or(Vec::is_empty), || {
            format!(
                "Configuration todo-config in manifests/{}: accessControl.policies {} allow an invocation no function makes",
                overlay.name, acl["policies"]
            )
        });
    }
    // No function calls another through Dapr: the deny costs nothing.
    for dir in ["functions", "shared"] {
        for file in files_under(&root().join(dir)) {
            if file.extension().is_none_or(|e| e != "rs") || file.components().any(|c| c.as_os_str() == "tests") {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            failures.check(!text.contains("/v1.0/invoke"), || {
                format!(
                    "{} calls Dapr service invocation, which the Configuration denies",
                    file.strip_prefix(root()).unwrap_or(&file).display()
                )
            });
        }
    }
    failures.assert_none("service invocation");
}

#[test]
fn no_pod_carries_a_kubernetes_api_token_it_has_no_rights_for() {
    let mut failures = Failures::default();
    for overlay in overlays() {
        // Accounts some (Cluster)RoleBinding grants something to.
        let bound: BTreeSet<String> = overlay
            .docs
            .iter()
            .filter(|d| d["kind"] == "RoleBinding" || d["kind"] == "ClusterRoleBinding")
            .flat_map(|b| b["subjects"].as_array().cloned().unwrap_or_default())
            .filter(|s| s["kind"] == "ServiceAccount")
            .map(|s| str_of(&s["name"]))
            .collect();
        for sa in overlay.all("ServiceAccount") {
            let name = str_of(&sa["metadata"]["name"]);
            failures.check(bound.contains(&name) || sa["automountServiceAccountToken"] == false, || {
                format!(
                    "ServiceAccount {name} in manifests/{}: no RBAC is bound to it, so automountServiceAccountToken must \
                     be false",
                    overlay.name
                )
            });
        }
        for doc in overlay.docs.iter().filter(|d| d["kind"] == "Deployment" || d["kind"] == "Job") {
            let name = str_of(&doc["metadata"]["name"]);
            let pod = &doc["spec"]["template"]["spec"];
            let account = pod["serviceAccountName"].as_str().unwrap_or("default").to_owned();
            let sa_off =
                overlay.get("ServiceAccount", &account).is_some_and(|sa| sa["automountServiceAccountToken"] == false);
            let off = pod["automountServiceAccountToken"] == false
                || (pod["automountServiceAccountToken"].is_null() && sa_off);
            failures.check(bound.contains(&account) || off, || {
                format!(
                    "{} {name} in manifests/{}: runs as {account}, which has no RBAC, with a mounted API token",
                    str_of(&doc["kind"]),
                    overlay.name
                )
            });
        }
        // Nothing loads a secret store in the sidecars (it would need that token).
        for c in overlay.all("Component") {
            failures.check(!str_of(&c["spec"]["type"]).starts_with("secretstores.kubernetes"), || {
                format!(
                    "Component {} in manifests/{}: a Kubernetes secret store in the sidecars needs an API token; the \
                     Dapr operator resolves the components' secrets without one",
                    str_of(&c["metadata"]["name"]),
                    overlay.name
                )
            });
        }
    }
    failures.assert_none("service account tokens");
}

#[test]
fn task_api_takes_its_token_settings_from_platform_settings_and_the_jwt_secret() {
    let mut failures = Failures::default();
    for overlay in overlays() {
        let settings = overlay.settings();
        let Some(c) = overlay.get("Deployment", task_api::APP_ID).and_then(|d| container(d, task_api::APP_ID)) else {
            failures.0.push(format!("manifests/{}: no task-api container", overlay.name));
            continue;
        };
        for (var, key) in [
            ("JWT_JWKS_URL", "jwt-jwks-url"),
            ("JWT_ISSUER", "jwt-issuer"),
            ("JWT_AUDIENCE", "jwt-audience"),
            ("JWT_STRICT", "jwt-strict"),
            ("JWT_MAX_LIFETIME_SECS", "jwt-max-lifetime-secs"),
        ] {
            let from = env(c, var).map(|e| e["valueFrom"]["configMapKeyRef"].clone());
            failures.check(
                from.as_ref().is_some_and(|r| r["name"] == "platform-settings" && r["key"] == key)
                    && settings.contains_key(key),
                || {
                    format!(
                        "task-api in manifests/{}: {var} must come from platform-settings key `{key}` (which must \
                         exist), reads {from:?}",
                        overlay.name
                    )
                },
            );
        }
        failures.check(
            settings.get("jwt-max-lifetime-secs").and_then(|s| s.parse::<u64>().ok()).is_some_and(|s| s > 0),
            || {
                format!(
                    "platform-settings in manifests/{}: jwt-max-lifetime-secs must be a positive number",
                    overlay.name
                )
            },
        );
        for (var, key) in [("JWT_SECRET", "secret"), ("JWT_SECRET_PREVIOUS", "previous")] {
            let from = env(c, var).map(|e| e["valueFrom"]["secretKeyRef"].clone());
            failures.check(
                from.as_ref().is_some_and(|r| r["name"] == "jwt" && r["key"] == key && r["optional"] == true),
                || {
                    format!(
                        "task-api in manifests/{}: {var} must come from Secret `jwt` key `{key}`, optional (a JWKS-only \
                         deployment has no HS256 key), reads {from:?}",
                        overlay.name
                    )
                },
            );
        }
    }
    // The cloud checks who issued a token and for whom, and refuses to start otherwise.
    let cloud = Overlay::load("overlays/cloud").settings();
    for key in ["jwt-issuer", "jwt-audience"] {
        failures.check(cloud.get(key).is_some_and(|v| !v.trim().is_empty()), || {
            format!("platform-settings in manifests/overlays/cloud: `{key}` must not be empty (deploy-cloud sets it)")
        });
    }
    failures.check(cloud.get("jwt-strict").map(String::as_str) == Some("true"), || {
        "platform-settings in manifests/overlays/cloud: jwt-strict must be \"true\"".into()
    });
    failures.assert_none("task-api token settings");
}

/// The numeric ports of a NetworkPolicy rule.
fn ports_of(rule: &Value) -> BTreeSet<u64> {
    rule["ports"].as_array().into_iter().flatten().filter_map(|p| p["port"].as_u64()).collect()
}

/// The notifier's app-id (its crate is to come: `notifier::APP_ID` then).
const NOTIFIER: &str = "notifier";

/// The IPv4 ranges that a webhook egress rule to 0.0.0.0/0 must except: those that reach the
/// cluster, the node or the cloud's metadata service (todo_core::notification::check_address
/// refuses the same).
const INTERNAL_V4: [&str; 7] =
    ["0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16"];
/// Likewise for ::/0: the IPv4-compatible form, NAT64, unique local, link-local, 6to4, Teredo.
/// (Not ::ffff:0:0/96: Kubernetes parses IPv4-mapped ranges as IPv4 and refuses them under ::/0;
/// such an address is judged by the IPv4 exceptions.)
const INTERNAL_V6: [&str; 7] = ["::/96", "64:ff9b::/96", "fc00::/7", "fe80::/10", "2002::/16", "2001::/32", "ff00::/8"];

/// The `app.kubernetes.io/name` values a pod selector picks (matchLabels or an `In` expression).
fn selected_names(selector: &Value) -> BTreeSet<String> {
    let mut names: BTreeSet<String> =
        selector["matchLabels"]["app.kubernetes.io/name"].as_str().map(str::to_owned).into_iter().collect();
    for e in selector["matchExpressions"].as_array().into_iter().flatten() {
        if e["key"] == "app.kubernetes.io/name" && e["operator"] == "In" {
            names.extend(e["values"].as_array().into_iter().flatten().map(str_of));
        }
    }
    names
}

#[tokio::test]
async fn egress_is_narrowed_to_the_services_and_ports_the_pods_use() {
    let functions = functions().await;
    let mut failures = Failures::default();
    for overlay in overlays() {
        for np in overlay.all("NetworkPolicy") {
            let name = str_of(&np["metadata"]["name"]);
            for rule in np["spec"]["egress"].as_array().into_iter().flatten() {
                // Every egress rule names both where and which ports: no "anywhere" and no "any port".
                failures.check(rule["to"].as_array().is_some_and(|t| !t.is_empty()), || {
                    format!(
                        "NetworkPolicy {name} in manifests/{}: an egress rule without `to` allows every address",
                        overlay.name
                    )
                });
                failures.check(!ports_of(rule).is_empty(), || {
                    format!(
                        "NetworkPolicy {name} in manifests/{}: an egress rule without ports allows every port",
                        overlay.name
                    )
                });
                for peer in rule["to"].as_array().into_iter().flatten() {
                    let cidr = str_of(&peer["ipBlock"]["cidr"]);
                    // Everywhere only with the inside excepted, and only for the notifier's
                    // webhooks (checked below).
                    let excepts = peer["ipBlock"]["except"].as_array().is_some_and(|e| !e.is_empty());
                    failures.check((cidr != "0.0.0.0/0" && cidr != "::/0") || excepts, || {
                        format!(
                            "NetworkPolicy {name} in manifests/{}: egress to {cidr}, nothing excepted",
                            overlay.name
                        )
                    });
                    // Control plane: only the services and ports the sidecars use.
                    if peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] == "dapr-system" {
                        let app = str_of(&peer["podSelector"]["matchLabels"]["app"]);
                        let allowed: &[u64] = match app.as_str() {
                            "dapr-sentry" => &[50001, 443],
                            "dapr-operator" => &[6500, 443],
                            "dapr-scheduler-server" => &[50006, 443],
                            _ => &[],
                        };
                        failures.check(ports_of(rule).iter().all(|p| allowed.contains(p)) && !allowed.is_empty(), || {
                            format!(
                                "NetworkPolicy {name} in manifests/{}: egress to dapr-system pods {app:?} on {:?}; only \
                                 Sentry (50001/443), the operator (6500/443) and the Scheduler (50006/443) are needed",
                                overlay.name,
                                ports_of(rule)
                            )
                        });
                    }
                }
            }
        }
        // The Scheduler only for the functions that own jobs (fire-reminder's reminders, the
        // notifier's retries).
        let scheduler = overlay.get("NetworkPolicy", "allow-dapr-scheduler");
        let selected = scheduler.map(|np| selected_names(&np["spec"]["podSelector"])).unwrap_or_default();
        let with_jobs: BTreeSet<String> =
            functions.iter().filter(|f| !f.job_prefixes().is_empty()).map(|f| f.app_id().to_owned()).collect();
        failures.check(with_jobs.contains(fire_reminder::APP_ID) && selected == with_jobs, || {
            format!(
                "manifests/{}: the Scheduler egress policy selects {selected:?}; the functions with jobs are {with_jobs:?}",
                overlay.name
            )
        });
        // Egress to every public address: only the notifier's webhooks, on 443, never inside.
        for np in overlay.all("NetworkPolicy") {
            let name = str_of(&np["metadata"]["name"]);
            for rule in np["spec"]["egress"].as_array().into_iter().flatten() {
                for peer in rule["to"].as_array().into_iter().flatten() {
                    let cidr = str_of(&peer["ipBlock"]["cidr"]);
                    if cidr != "0.0.0.0/0" && cidr != "::/0" {
                        continue;
                    }
                    let except: BTreeSet<String> =
                        peer["ipBlock"]["except"].as_array().into_iter().flatten().map(str_of).collect();
                    let inside: &[&str] = if cidr == "0.0.0.0/0" { &INTERNAL_V4 } else { &INTERNAL_V6 };
                    let missing: Vec<&str> = inside.iter().copied().filter(|r| !except.contains(*r)).collect();
                    failures.check(
                        name == "allow-notifier-webhooks"
                            && selected_names(&np["spec"]["podSelector"]) == BTreeSet::from([NOTIFIER.to_owned()])
                            && np["spec"]["podSelector"]["matchExpressions"].is_null()
                            && ports_of(rule) == BTreeSet::from([443])
                            && missing.is_empty(),
                        || {
                            format!(
                                "NetworkPolicy {name} in manifests/{}: egress to {cidr} is only for the notifier's \
                                 webhooks (policy allow-notifier-webhooks, the notifier's pods only, port 443), and \
                                 must except the ranges inside (missing: {missing:?})",
                                overlay.name
                            )
                        },
                    );
                }
            }
        }
    }
    // The cloud: Kafka and PostgreSQL only at their configured ranges and ports.
    let cloud = Overlay::load("overlays/cloud");
    let settings = cloud.settings();
    for (policy, service) in
        [("allow-managed-kafka", "kafka"), ("allow-managed-postgres", "postgres"), ("allow-smtp-relay", "smtp")]
    {
        let cidr = settings.get(&format!("{service}-egress-cidr")).cloned().unwrap_or_default();
        let port: Option<u64> = settings.get(&format!("{service}-egress-port")).and_then(|p| p.parse().ok());
        let Some(np) = cloud.get("NetworkPolicy", policy) else {
            failures.0.push(format!("manifests/overlays/cloud: no NetworkPolicy {policy}"));
            continue;
        };
        let rules = np["spec"]["egress"].as_array().cloned().unwrap_or_default();
        let ok = !rules.is_empty()
            && rules.iter().all(|r| {
                r["to"].as_array().is_some_and(|to| to.iter().all(|p| str_of(&p["ipBlock"]["cidr"]) == cidr))
                    && port.is_some_and(|port| ports_of(r) == BTreeSet::from([port]))
            });
        failures.check(ok && !cidr.is_empty(), || {
            format!(
                "NetworkPolicy {policy} in manifests/overlays/cloud must allow only {service}-egress-cidr {cidr:?} on \
                 {service}-egress-port {port:?} (platform-settings), has {}",
                np["spec"]["egress"]
            )
        });
    }
    failures.assert_none("egress NetworkPolicies");
}

#[test]
fn traces_leave_the_cloud_over_tls_only() {
    let mut failures = Failures::default();
    for overlay in overlays() {
        let Some(config) = overlay.get("Configuration", "todo-config") else { continue };
        let secure = &config["spec"]["tracing"]["otel"]["isSecure"];
        let expected = overlay.name == "overlays/cloud";
        failures.check(secure.as_bool() == Some(expected), || {
            format!(
                "Configuration todo-config in manifests/{}: tracing.otel.isSecure must be {expected} (TLS to the \
                 collector in the cloud; minikube's in-cluster collector is plaintext), is {secure}",
                overlay.name
            )
        });
    }
    failures.assert_none("trace export");
}

#[test]
fn scopes_parse() {
    let parsed = parse_scopes("a=x,y;b=;c=z");
    assert_eq!(parsed["a"], BTreeSet::from(["x".to_owned(), "y".to_owned()]));
    assert!(parsed["b"].is_empty());
    assert_eq!(parsed.len(), 3);
}

/// Paths a client of task-api uses from outside the cluster: every path of the REST API's
/// OpenAPI document, and the MCP server's (`/mcp` and its protected-resource metadata).
fn public_paths() -> Vec<String> {
    let file = root().join("functions/task-api/openapi.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&file).expect("openapi.json")).expect("JSON");
    let mut paths: Vec<String> = doc["paths"]
        .as_object()
        .expect("openapi.json has paths")
        .keys()
        .map(|p| p.replace("{id}", "0190c1f0-0000-7000-8000-000000000000"))
        .collect();
    paths.extend(
        [task_api::mcp::PATH, task_api::mcp::METADATA_PATH, task_api::mcp::METADATA_PATH_FOR_MCP].map(str::to_owned),
    );
    paths
}

/// How well an Ingress path rule matches `path` (Kubernetes semantics: `Exact`, or `Prefix`
/// by whole path elements; the longest match wins, `Exact` before `Prefix`): `None` if not.
fn ingress_match(rule: &Value, path: &str) -> Option<(usize, bool)> {
    let rule_path = str_of(&rule["path"]);
    let elements = |p: &str| p.split('/').filter(|s| !s.is_empty()).map(str::to_owned).collect::<Vec<_>>();
    match rule["pathType"].as_str() {
        Some("Exact") => (rule_path == path).then_some((rule_path.len(), true)),
        Some("Prefix") => elements(path).starts_with(&elements(&rule_path)).then_some((rule_path.len(), false)),
        // ImplementationSpecific depends on the controller: not a route this test can vouch for.
        _ => None,
    }
}

#[test]
fn the_ingress_routes_every_public_path_to_task_api_and_mcp_knows_its_public_url() {
    let mut failures = Failures::default();
    for overlay in overlays() {
        let settings = overlay.settings();
        let Some(c) = overlay.get("Deployment", task_api::APP_ID).and_then(|d| container(d, task_api::APP_ID)) else {
            failures.0.push(format!("manifests/{}: no task-api container", overlay.name));
            continue;
        };
        let app_port = env_value(c, "APP_PORT").and_then(|p| p.parse::<u64>().ok());
        // The ingress controller may reach the app port (the REST API and /mcp share it).
        let admitted = overlay
            .get("NetworkPolicy", "allow-task-api-ingress")
            .and_then(|np| np["spec"]["ingress"].as_array().cloned())
            .unwrap_or_default();
        let namespace = settings.get("ingress-namespace").cloned().unwrap_or_default();
        failures.check(
            admitted.iter().any(|rule| {
                app_port.is_some_and(|p| ports_of(rule).contains(&p))
                    && rule["from"].to_string().contains(&format!("\"{namespace}\""))
            }),
            || {
                format!(
                    "manifests/{}: NetworkPolicy allow-task-api-ingress must admit the ingress controller's namespace \
                     `{namespace}` on task-api's APP_PORT {app_port:?}, has {admitted:?}",
                    overlay.name
                )
            },
        );
        let resource_url = env_value(c, "MCP_RESOURCE_URL").filter(|v| !v.is_empty());
        let Some(ingress) = overlay.get("Ingress", task_api::APP_ID) else {
            // No Ingress (minikube: kubectl port-forward): MCP derives its URL from the Host.
            failures.check(resource_url.is_none(), || {
                format!(
                    "manifests/{}: MCP_RESOURCE_URL {resource_url:?} is set but there is no Ingress: the URL clients \
                     reach /mcp by is the port-forward's, derived from each request's Host",
                    overlay.name
                )
            });
            continue;
        };
        let host = settings.get("api-host").cloned().unwrap_or_default();
        failures.check(
            resource_url.as_deref() == Some(format!("https://{host}{}", task_api::mcp::PATH).as_str()),
            || {
                format!(
                    "task-api in manifests/{}: MCP_RESOURCE_URL must be https://{host}{} (the Ingress host, TLS), is \
                 {resource_url:?}",
                    overlay.name,
                    task_api::mcp::PATH
                )
            },
        );
        failures.check(ingress["spec"]["tls"].to_string().contains(&format!("\"{host}\"")), || {
            format!("Ingress task-api in manifests/{}: no TLS for host {host}", overlay.name)
        });
        let service = overlay.get("Service", task_api::APP_ID);
        let http_port = service
            .and_then(|s| s["spec"]["ports"].as_array().cloned())
            .unwrap_or_default()
            .into_iter()
            .find(|p| p["targetPort"] == "http" || p["targetPort"].as_u64() == app_port);
        let container_http = c["ports"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == "http"))
            .and_then(|p| p["containerPort"].as_u64());
        failures.check(http_port.is_some() && container_http.is_some() && container_http == app_port, || {
            format!(
                "manifests/{}: Service task-api must have a port targeting the container port `http` ({container_http:?}), \
                 which must be APP_PORT ({app_port:?}); ports {:?}",
                overlay.name,
                service.map(|s| s["spec"]["ports"].clone())
            )
        });
        let rules: Vec<Value> = ingress["spec"]["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["host"] == host.as_str())
            .flat_map(|r| r["http"]["paths"].as_array().cloned().unwrap_or_default())
            .collect();
        for path in public_paths() {
            let best = rules.iter().filter_map(|r| ingress_match(r, &path).map(|m| (m, r))).max_by_key(|(m, _)| *m);
            let backend = best.map(|(_, r)| r["backend"]["service"].clone());
            let ok = backend.as_ref().is_some_and(|b| {
                b["name"] == task_api::APP_ID
                    && http_port.as_ref().is_some_and(|p| {
                        (b["port"]["name"].is_string() && b["port"]["name"] == p["name"])
                            || (b["port"]["number"].is_u64() && b["port"]["number"] == p["port"])
                    })
            });
            failures.check(ok, || {
                format!(
                    "Ingress task-api in manifests/{}: {path} (served by task-api) must route to Service task-api, port \
                     {:?}, on host {host}; routes to {backend:?}",
                    overlay.name,
                    http_port.as_ref().map(|p| p["name"].clone())
                )
            });
        }
    }
    failures.assert_none("the public paths of task-api");
}

#[test]
fn ingress_paths_match_like_kubernetes() {
    let rule = |path: &str, kind: &str| serde_json::json!({"path": path, "pathType": kind});
    assert!(ingress_match(&rule("/", "Prefix"), "/mcp").is_some());
    assert!(ingress_match(&rule("/v1", "Prefix"), "/v1/tasks").is_some());
    assert!(ingress_match(&rule("/v1/", "Prefix"), "/v1").is_some());
    assert!(ingress_match(&rule("/mc", "Prefix"), "/mcp").is_none());
    assert!(ingress_match(&rule("/mcp", "Exact"), "/mcp").is_some());
    assert!(ingress_match(&rule("/mcp", "Exact"), "/mcp/x").is_none());
    assert!(ingress_match(&rule("/", "ImplementationSpecific"), "/mcp").is_none());
}

/// Where task-api serves its MCP tools (issue 22: Streamable HTTP at `/mcp`).
const MCP_PATH: &str = "/mcp";

/// `http://host[:port]/path` of an MCPServer URL: (host, port, path). Only `http`: the URL is
/// inside the cluster or on this machine.
fn split_http_url(url: &str) -> Option<(String, u16, String)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = rest.find('/').map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().ok()?),
        None => (authority, 80),
    };
    Some((host.to_owned(), port, path.to_owned()))
}

/// The Dapr `MCPServer` for task-api's `/mcp` (dapr-components/k8s/mcpserver.yaml): it names
/// task-api's Service, in the namespace task-api is deployed to, on a port that reaches the
/// container port task-api's sidecar knows as the app port; its credential comes from the
/// sidecar's environment, never from the manifest; and no function's sidecar loads it (daprd connects to the server
/// when it starts and exits if that fails: only the agent app it is scoped to loads it).
#[tokio::test]
async fn the_mcp_server_resource_points_at_task_apis_service_and_mcp_path() {
    let functions = functions().await;
    let task_api_id = functions[0].app_id().to_owned();
    assert_eq!(task_api_id, "task-api", "functions()[0] is task-api");
    let app_ids: BTreeSet<String> = functions.iter().map(|f| f.app_id().to_owned()).collect();
    let mut failures = Failures::default();
    for overlay in overlays() {
        let servers: Vec<&Value> = overlay.all("MCPServer").collect();
        failures.check(servers.len() == 1, || {
            format!("manifests/{}: renders {} MCPServer(s), expected 1 (todo-tasks)", overlay.name, servers.len())
        });
        let Some(server) = servers.first() else { continue };
        let name = str_of(&server["metadata"]["name"]);
        failures.check(!name.is_empty() && !name.contains('.'), || {
            format!("MCPServer {name:?} in manifests/{}: daprd splits workflow names on `.`", overlay.name)
        });
        let http = &server["spec"]["endpoint"]["streamableHTTP"];
        let url = str_of(&http["url"]);
        let Some((host, port, path)) = split_http_url(&url) else {
            failures.0.push(format!(
                "MCPServer {name} in manifests/{}: url {url:?} is not http://host[:port]/path",
                overlay.name
            ));
            continue;
        };
        failures.check(path == MCP_PATH, || {
            format!("MCPServer {name} in manifests/{}: path {path:?}, task-api serves MCP at {MCP_PATH}", overlay.name)
        });
        // The Deployment whose sidecar is app-id task-api, and the container port it calls the app.
        let deployment = overlay
            .all("Deployment")
            .find(|d| annotations(d).get("dapr.io/app-id").map(String::as_str) == Some(task_api_id.as_str()));
        let Some(deployment) = deployment else {
            failures.0.push(format!("manifests/{}: no Deployment with dapr.io/app-id {task_api_id}", overlay.name));
            continue;
        };
        let app_port: Option<u64> = annotations(deployment).get("dapr.io/app-port").and_then(|p| p.parse().ok());
        let pod_labels = deployment["spec"]["template"]["metadata"]["labels"].as_object().cloned().unwrap_or_default();
        let namespace = str_of(&deployment["metadata"]["namespace"]);
        // The Service the URL names: same namespace, selecting task-api's pods.
        let service = overlay.all("Service").find(|s| {
            format!("{}.{}.svc.cluster.local", str_of(&s["metadata"]["name"]), str_of(&s["metadata"]["namespace"]))
                == host
        });
        let Some(service) = service else {
            failures.0.push(format!(
                "MCPServer {name} in manifests/{}: host {host} is no rendered Service's <name>.<namespace>.svc.cluster.local",
                overlay.name
            ));
            continue;
        };
        failures.check(str_of(&service["metadata"]["namespace"]) == namespace, || {
            format!(
                "MCPServer {name} in manifests/{}: Service {host} is not in task-api's namespace {namespace}",
                overlay.name
            )
        });
        let selector = service["spec"]["selector"].as_object().cloned().unwrap_or_default();
        failures.check(!selector.is_empty() && selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)), || {
            format!("MCPServer {name} in manifests/{}: Service {host} does not select task-api's pods", overlay.name)
        });
        // The Service port the URL uses, and the container port it forwards to.
        let target = service["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["port"].as_u64() == Some(u64::from(port)))
            .map(|p| p["targetPort"].clone());
        let container_port = match &target {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(port_name)) => container(deployment, &task_api_id)
                .and_then(|c| c["ports"].as_array())
                .into_iter()
                .flatten()
                .find(|p| p["name"] == port_name.as_str())
                .and_then(|p| p["containerPort"].as_u64()),
            _ => None,
        };
        failures.check(container_port.is_some() && container_port == app_port, || {
            format!(
                "MCPServer {name} in manifests/{}: port {port} of Service {host} reaches container port {container_port:?}, \
                 task-api's app port (dapr.io/app-port) is {app_port:?}",
                overlay.name
            )
        });
        // The credential: from the sidecar's environment, never written here, and never a
        // secretKeyRef the Dapr operator would resolve for every sidecar of the namespace (one
        // missing Secret would then keep every function's sidecar from starting).
        for header in http["headers"].as_array().into_iter().flatten() {
            failures.check(
                header.get("value").is_none() && header.get("secretKeyRef").is_none() && header["envRef"].is_string(),
                || {
                    format!(
                        "MCPServer {name} in manifests/{}: header {} must come from an envRef (not a value, not a \
                         secretKeyRef)",
                        overlay.name, header["name"]
                    )
                },
            );
        }
        let scopes: BTreeSet<String> = server["scopes"].as_array().into_iter().flatten().map(str_of).collect();
        failures.check(!scopes.is_empty() && scopes.is_disjoint(&app_ids), || {
            format!(
                "MCPServer {name} in manifests/{}: scopes {scopes:?} must be non-empty and name no function \
                 ({app_ids:?}): every sidecar in scope connects to /mcp at start and exits if it cannot",
                overlay.name
            )
        });
    }

    // The self-hosted twin (dapr-components/local-agent/): task-api's app port of dapr.yaml.
    let local = std::fs::read_to_string(root().join("dapr-components/local-agent/mcpserver.yaml"))
        .expect("dapr-components/local-agent/mcpserver.yaml");
    let local: Value = serde_norway::from_str(&local).expect("the local MCPServer is YAML");
    let run: Value = serde_norway::from_str(&std::fs::read_to_string(root().join("dapr.yaml")).expect("dapr.yaml"))
        .expect("dapr.yaml is YAML");
    let run_port = run["apps"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["appID"] == task_api_id.as_str())
        .and_then(|a| a["appPort"].as_u64());
    let url = str_of(&local["spec"]["endpoint"]["streamableHTTP"]["url"]);
    let parsed = split_http_url(&url);
    failures.check(
        parsed.as_ref().is_some_and(|(host, port, path)| {
            host == "localhost" && Some(u64::from(*port)) == run_port && path == MCP_PATH
        }),
        || {
            format!(
                "dapr-components/local-agent/mcpserver.yaml: url {url:?}, expected http://localhost:<task-api's appPort in \
                 dapr.yaml, {run_port:?}>{MCP_PATH}"
            )
        },
    );
    let local_scopes: BTreeSet<String> = local["scopes"].as_array().into_iter().flatten().map(str_of).collect();
    failures.check(!local_scopes.is_empty() && local_scopes.is_disjoint(&app_ids), || {
        format!(
            "dapr-components/local-agent/mcpserver.yaml: scopes {local_scopes:?} must be non-empty and name no function"
        )
    });
    failures.assert_none("MCPServer vs task-api");
}

#[test]
fn http_urls_split() {
    assert_eq!(
        split_http_url("http://a.b.svc.cluster.local/mcp"),
        Some(("a.b.svc.cluster.local".into(), 80, "/mcp".into()))
    );
    assert_eq!(split_http_url("http://localhost:8080/mcp"), Some(("localhost".into(), 8080, "/mcp".into())));
    assert_eq!(split_http_url("https://x/mcp"), None);
}
