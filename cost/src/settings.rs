//! A function's scaling settings as the cluster gets them: its KEDA ScaledObject and its
//! Deployment, read from `serde_json::Value` documents (what `kubectl kustomize
//! manifests/overlays/<x>` renders, converted to JSON, as system-tests/src/kustomize.rs does).
//!
//! Every key KEDA or Kubernetes defaults is optional here and given the default KEDA v2.20.2
//! applies, read from its source (~/go/pkg/mod/github.com/kedacore/keda/v2@v2.20.2):
//! - `pollingInterval` 30 s: `apis/keda/v1alpha1/withtriggers_types.go`, `defaultPollingInterval`
//!   (`GetPollingInterval`);
//! - `cooldownPeriod` 300 s: `pkg/scaling/executor/scale_executor.go`, `defaultCooldownPeriod`
//!   (read in `scaleToZeroOrIdle`);
//! - `minReplicaCount` 0: `pkg/scaling/executor/scale_scaledobjects.go`, `RequestScale` ("if
//!   scaledObject.Spec.MinReplicaCount is not set, then set the default value (0)");
//! - `maxReplicaCount` 100: `apis/keda/v1alpha1/scaledobject_types.go`, `defaultHPAMaxReplicas`
//!   (`GetHPAMaxReplicas`);
//! - kafka `lagThreshold` 10, `activationLagThreshold` 0, `allowIdleConsumers` false,
//!   `limitToPartitionsWithLag` false: the `keda:"…default=…"` tags of `kafkaMetadata` in
//!   `pkg/scalers/kafka_scaler.go`;
//! - postgresql `targetQueryValue` and `activationTargetQueryValue`: optional, so 0 when absent
//!   (`postgreSQLMetadata` in `pkg/scalers/postgresql_scaler.go`);
//! - `advanced.horizontalPodAutoscalerConfig.behavior`: passed to the HPA as written, `nil` when
//!   absent (`newHPAForScaledObject` in `controllers/keda/hpa.go`); the HPA's own defaults are
//!   applied in [`crate::rules`], where they act.
//!
//! The Deployment gives the requests and limits of the function's container (the one named by
//! `kubectl.kubernetes.io/default-container`, else the first) and of the daprd sidecar, which the
//! Dapr injector builds from the `dapr.io/sidecar-{cpu,memory}-{request,limit}` annotations on the
//! pod template. An absent request is zero: Kubernetes schedules and bills (on a per-pod-request
//! platform) nothing for it, and the Dapr injector sets none unless annotated.

use serde_json::Value;

use crate::quantity::{Quantity, QuantityError};

/// KEDA's `pollingInterval` default, seconds.
pub const DEFAULT_POLLING_INTERVAL_S: u32 = 30;
/// KEDA's `cooldownPeriod` default, seconds.
pub const DEFAULT_COOLDOWN_PERIOD_S: u32 = 300;
/// KEDA's `minReplicaCount` default.
pub const DEFAULT_MIN_REPLICAS: u32 = 0;
/// KEDA's `maxReplicaCount` default (the HPA's `maxReplicas`).
pub const DEFAULT_MAX_REPLICAS: u32 = 100;
/// KEDA's kafka `lagThreshold` default.
pub const DEFAULT_LAG_THRESHOLD: i64 = 10;
/// KEDA's kafka `activationLagThreshold` default.
pub const DEFAULT_ACTIVATION_LAG_THRESHOLD: i64 = 0;

/// Why a document could not be read as scaling settings.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingsError {
    #[error("{0}: missing")]
    Missing(String),
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
    #[error("{path}: {source}")]
    Quantity { path: String, source: QuantityError },
    #[error("no Deployment named {0:?} for its ScaledObject")]
    NoDeployment(String),
}

fn invalid(path: &str, reason: impl Into<String>) -> SettingsError {
    SettingsError::Invalid { path: path.to_string(), reason: reason.into() }
}

/// One ScaledObject trigger, as far as scaling decisions go.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// Consumer-group lag on a topic (`pkg/scalers/kafka_scaler.go`).
    Kafka {
        topic: String,
        lag_threshold: i64,
        activation_lag_threshold: i64,
        allow_idle_consumers: bool,
        limit_to_partitions_with_lag: bool,
    },
    /// A query's value (`pkg/scalers/postgresql_scaler.go`).
    Postgresql { target_query_value: f64, activation_target_query_value: f64 },
    /// CPU utilization of a container's request (a Resource metric of the HPA itself).
    Cpu { utilization_percent: u32 },
    /// Any other scaler: kept by name so that a report can say it was not modelled.
    Other { kind: String },
}

/// `selectPolicy` of an HPA scaling rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectPolicy {
    Max,
    Min,
    Disabled,
}

/// One HPA scaling policy: change by `value` pods or percent per `period_s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScalingPolicy {
    pub kind: PolicyKind,
    pub value: u32,
    pub period_s: u32,
}

/// `type` of an HPA scaling policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    Pods,
    Percent,
}

/// An HPA scaling rule as written (every field optional, as in the API).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScalingRulesSpec {
    pub stabilization_window_s: Option<u32>,
    pub select_policy: Option<SelectPolicy>,
    pub policies: Option<Vec<ScalingPolicy>>,
}

/// `advanced.horizontalPodAutoscalerConfig.behavior` as written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BehaviorSpec {
    pub scale_up: Option<ScalingRulesSpec>,
    pub scale_down: Option<ScalingRulesSpec>,
}

/// A ScaledObject with KEDA's defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaledObjectSettings {
    pub name: String,
    /// `scaleTargetRef.name`: the Deployment it scales.
    pub target: String,
    pub polling_interval_s: u32,
    pub cooldown_period_s: u32,
    pub min_replicas: u32,
    pub max_replicas: u32,
    pub triggers: Vec<Trigger>,
    /// `None` when the ScaledObject configures no behavior: the HPA then takes its legacy path.
    pub behavior: Option<BehaviorSpec>,
}

/// Requests and limits of one container (absent: zero / `None`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    pub cpu_request: Quantity,
    pub memory_request: Quantity,
    pub cpu_limit: Option<Quantity>,
    pub memory_limit: Option<Quantity>,
}

impl Resources {
    /// Sum of two containers' requests and limits (a pod's).
    pub fn plus(self, other: Resources) -> Resources {
        let add = |a: Option<Quantity>, b: Option<Quantity>| match (a, b) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        Resources {
            cpu_request: self.cpu_request + other.cpu_request,
            memory_request: self.memory_request + other.memory_request,
            cpu_limit: add(self.cpu_limit, other.cpu_limit),
            memory_limit: add(self.memory_limit, other.memory_limit),
        }
    }
}

/// The resources a function's pod asks for: its own container and its daprd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentSettings {
    pub name: String,
    pub container: String,
    pub app: Resources,
    /// `None` when the pod template is not Dapr-enabled.
    pub sidecar: Option<Resources>,
}

impl DeploymentSettings {
    /// What one pod requests: the function plus its sidecar.
    pub fn pod(&self) -> Resources {
        match self.sidecar {
            Some(sidecar) => self.app.plus(sidecar),
            None => self.app,
        }
    }
}

/// A function: its ScaledObject and the Deployment it scales.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionSettings {
    pub scaled_object: ScaledObjectSettings,
    pub deployment: DeploymentSettings,
}

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, key| v.get(key))
}

fn u32_at(v: &Value, path: &[&str], default: u32) -> Result<u32, SettingsError> {
    match get(v, path) {
        None | Some(Value::Null) => Ok(default),
        Some(x) => x
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| invalid(&path.join("."), format!("not a non-negative integer: {x}"))),
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Result<&'a str, SettingsError> {
    get(v, path).and_then(Value::as_str).ok_or_else(|| SettingsError::Missing(path.join(".")))
}

/// A trigger metadata value: KEDA's metadata are strings (a YAML number is refused by the API).
fn meta<'a>(metadata: &'a Value, key: &str) -> Option<&'a str> {
    metadata.get(key).and_then(Value::as_str).map(str::trim)
}

fn meta_i64(metadata: &Value, key: &str, path: &str, default: i64) -> Result<i64, SettingsError> {
    match meta(metadata, key) {
        None => Ok(default),
        Some(s) => s.parse().map_err(|_| invalid(&format!("{path}.{key}"), format!("not an integer: {s:?}"))),
    }
}

fn meta_f64(metadata: &Value, key: &str, path: &str) -> Result<f64, SettingsError> {
    match meta(metadata, key) {
        None => Ok(0.0),
        Some(s) => s
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .ok_or_else(|| invalid(&format!("{path}.{key}"), format!("not a number: {s:?}"))),
    }
}

/// Go's `strconv.ParseBool`, which KEDA's typed metadata use.
fn meta_bool(metadata: &Value, key: &str, path: &str) -> Result<bool, SettingsError> {
    match meta(metadata, key) {
        None => Ok(false),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
        Some(s) => Err(invalid(&format!("{path}.{key}"), format!("not a boolean: {s:?}"))),
    }
}

fn parse_trigger(t: &Value, index: usize) -> Result<Trigger, SettingsError> {
    let path = format!("spec.triggers[{index}]");
    let kind = t.get("type").and_then(Value::as_str).ok_or_else(|| SettingsError::Missing(format!("{path}.type")))?;
    let empty = Value::Object(Default::default());
    let metadata = t.get("metadata").unwrap_or(&empty);
    let mpath = format!("{path}.metadata");
    Ok(match kind {
        "kafka" => {
            let lag_threshold = meta_i64(metadata, "lagThreshold", &mpath, DEFAULT_LAG_THRESHOLD)?;
            // kafkaMetadata.Validate: "lagThreshold" must be positive, the activation non-negative.
            if lag_threshold <= 0 {
                return Err(invalid(&format!("{mpath}.lagThreshold"), "must be positive"));
            }
            let activation_lag_threshold =
                meta_i64(metadata, "activationLagThreshold", &mpath, DEFAULT_ACTIVATION_LAG_THRESHOLD)?;
            if activation_lag_threshold < 0 {
                return Err(invalid(&format!("{mpath}.activationLagThreshold"), "must be non-negative"));
            }
            Trigger::Kafka {
                topic: meta(metadata, "topic").unwrap_or_default().to_string(),
                lag_threshold,
                activation_lag_threshold,
                allow_idle_consumers: meta_bool(metadata, "allowIdleConsumers", &mpath)?,
                limit_to_partitions_with_lag: meta_bool(metadata, "limitToPartitionsWithLag", &mpath)?,
            }
        }
        "postgresql" => Trigger::Postgresql {
            target_query_value: meta_f64(metadata, "targetQueryValue", &mpath)?,
            activation_target_query_value: meta_f64(metadata, "activationTargetQueryValue", &mpath)?,
        },
        "cpu" => {
            let value = meta(metadata, "value").ok_or_else(|| SettingsError::Missing(format!("{mpath}.value")))?;
            let utilization_percent = value
                .parse()
                .map_err(|_| invalid(&format!("{mpath}.value"), format!("not a percentage: {value:?}")))?;
            Trigger::Cpu { utilization_percent }
        }
        other => Trigger::Other { kind: other.to_string() },
    })
}

fn parse_rules(v: &Value, path: &str) -> Result<ScalingRulesSpec, SettingsError> {
    let stabilization_window_s = match v.get("stabilizationWindowSeconds") {
        None | Some(Value::Null) => None,
        Some(_) => Some(u32_at(v, &["stabilizationWindowSeconds"], 0)?),
    };
    let select_policy = match v.get("selectPolicy").and_then(Value::as_str) {
        None => None,
        Some("Max") => Some(SelectPolicy::Max),
        Some("Min") => Some(SelectPolicy::Min),
        Some("Disabled") => Some(SelectPolicy::Disabled),
        Some(other) => return Err(invalid(&format!("{path}.selectPolicy"), format!("unknown: {other:?}"))),
    };
    let policies = match v.get("policies").and_then(Value::as_array) {
        None => None,
        Some(list) => Some(
            list.iter()
                .enumerate()
                .map(|(i, p)| {
                    let ppath = format!("{path}.policies[{i}]");
                    let kind = match p.get("type").and_then(Value::as_str) {
                        Some("Pods") => PolicyKind::Pods,
                        Some("Percent") => PolicyKind::Percent,
                        other => return Err(invalid(&format!("{ppath}.type"), format!("unknown: {other:?}"))),
                    };
                    let value = u32_at(p, &["value"], 0)?;
                    let period_s = u32_at(p, &["periodSeconds"], 0)?;
                    if period_s == 0 {
                        return Err(invalid(&format!("{ppath}.periodSeconds"), "must be positive"));
                    }
                    Ok(ScalingPolicy { kind, value, period_s })
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    Ok(ScalingRulesSpec { stabilization_window_s, select_policy, policies })
}

impl ScaledObjectSettings {
    /// Reads a `keda.sh/v1alpha1` ScaledObject, applying KEDA's defaults (see the module doc).
    pub fn from_value(doc: &Value) -> Result<Self, SettingsError> {
        let name = str_at(doc, &["metadata", "name"])?.to_string();
        let spec = doc.get("spec").ok_or_else(|| SettingsError::Missing("spec".into()))?;
        let target = str_at(spec, &["scaleTargetRef", "name"])?.to_string();
        let triggers = spec
            .get("triggers")
            .and_then(Value::as_array)
            .ok_or_else(|| SettingsError::Missing("spec.triggers".into()))?
            .iter()
            .enumerate()
            .map(|(i, t)| parse_trigger(t, i))
            .collect::<Result<Vec<_>, _>>()?;
        let behavior = match get(spec, &["advanced", "horizontalPodAutoscalerConfig", "behavior"]) {
            None | Some(Value::Null) => None,
            Some(b) => Some(BehaviorSpec {
                scale_up: b.get("scaleUp").map(|r| parse_rules(r, "behavior.scaleUp")).transpose()?,
                scale_down: b.get("scaleDown").map(|r| parse_rules(r, "behavior.scaleDown")).transpose()?,
            }),
        };
        let min_replicas = u32_at(spec, &["minReplicaCount"], DEFAULT_MIN_REPLICAS)?;
        let max_replicas = u32_at(spec, &["maxReplicaCount"], DEFAULT_MAX_REPLICAS)?;
        if max_replicas == 0 || max_replicas < min_replicas {
            return Err(invalid("spec.maxReplicaCount", format!("{max_replicas} is below minReplicaCount or zero")));
        }
        Ok(Self {
            name,
            target,
            polling_interval_s: u32_at(spec, &["pollingInterval"], DEFAULT_POLLING_INTERVAL_S)?.max(1),
            cooldown_period_s: u32_at(spec, &["cooldownPeriod"], DEFAULT_COOLDOWN_PERIOD_S)?,
            min_replicas,
            max_replicas,
            triggers,
            behavior,
        })
    }
}

fn quantity_at(v: &Value, path: &[&str], where_: &str) -> Result<Option<Quantity>, SettingsError> {
    match get(v, path) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Quantity::parse(s)
            .map(Some)
            .map_err(|source| SettingsError::Quantity { path: format!("{where_}.{}", path.join(".")), source }),
        // A YAML number (`cpu: 1`) arrives as a JSON number.
        Some(Value::Number(n)) => Quantity::parse(&n.to_string())
            .map(Some)
            .map_err(|source| SettingsError::Quantity { path: format!("{where_}.{}", path.join(".")), source }),
        Some(other) => Err(invalid(&format!("{where_}.{}", path.join(".")), format!("not a quantity: {other}"))),
    }
}

impl DeploymentSettings {
    /// Reads an `apps/v1` Deployment: the function container's and the daprd sidecar's resources.
    pub fn from_value(doc: &Value) -> Result<Self, SettingsError> {
        let name = str_at(doc, &["metadata", "name"])?.to_string();
        let template = get(doc, &["spec", "template"]).ok_or_else(|| SettingsError::Missing("spec.template".into()))?;
        let empty = Value::Object(Default::default());
        let annotations = get(template, &["metadata", "annotations"]).unwrap_or(&empty);
        let containers = get(template, &["spec", "containers"])
            .and_then(Value::as_array)
            .filter(|c| !c.is_empty())
            .ok_or_else(|| SettingsError::Missing("spec.template.spec.containers".into()))?;
        let wanted = meta(annotations, "kubectl.kubernetes.io/default-container");
        let container = containers
            .iter()
            .find(|c| wanted.is_some() && c.get("name").and_then(Value::as_str) == wanted)
            .or(containers.first())
            .ok_or_else(|| SettingsError::Missing("spec.template.spec.containers".into()))?;
        let container_name = container.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
        let where_ = format!("containers[{container_name}].resources");
        let app = Resources {
            cpu_request: quantity_at(container, &["resources", "requests", "cpu"], &where_)?.unwrap_or_default(),
            memory_request: quantity_at(container, &["resources", "requests", "memory"], &where_)?.unwrap_or_default(),
            cpu_limit: quantity_at(container, &["resources", "limits", "cpu"], &where_)?,
            memory_limit: quantity_at(container, &["resources", "limits", "memory"], &where_)?,
        };
        let sidecar = if meta(annotations, "dapr.io/enabled") == Some("true") {
            let q = |key: &str| quantity_at(annotations, &[key], "annotations");
            Some(Resources {
                cpu_request: q("dapr.io/sidecar-cpu-request")?.unwrap_or_default(),
                memory_request: q("dapr.io/sidecar-memory-request")?.unwrap_or_default(),
                cpu_limit: q("dapr.io/sidecar-cpu-limit")?,
                memory_limit: q("dapr.io/sidecar-memory-limit")?,
            })
        } else {
            None
        };
        Ok(Self { name, container: container_name, app, sidecar })
    }
}

/// Every function of a rendered overlay: each ScaledObject with the Deployment it targets.
pub fn functions_from_documents(docs: &[Value]) -> Result<Vec<FunctionSettings>, SettingsError> {
    let kind = |d: &Value| d.get("kind").and_then(Value::as_str).map(str::to_string);
    let deployments = docs.iter().filter(|d| kind(d).as_deref() == Some("Deployment")).collect::<Vec<_>>();
    docs.iter()
        .filter(|d| kind(d).as_deref() == Some("ScaledObject"))
        .map(|so| {
            let scaled_object = ScaledObjectSettings::from_value(so)?;
            let deployment = deployments
                .iter()
                .find(|d| get(d, &["metadata", "name"]).and_then(Value::as_str) == Some(scaled_object.target.as_str()))
                .ok_or_else(|| SettingsError::NoDeployment(scaled_object.target.clone()))?;
            Ok(FunctionSettings { deployment: DeploymentSettings::from_value(deployment)?, scaled_object })
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;

    /// keda/audit-writer.yaml as shipped, converted to JSON by hand (bootstrapServers and
    /// version are placeholders the overlays fill in).
    pub(crate) fn audit_writer_scaled_object() -> Value {
        json!({
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": {"name": "audit-writer", "labels": {"app.kubernetes.io/component": "worker"}},
            "spec": {
                "scaleTargetRef": {"name": "audit-writer"},
                "pollingInterval": 15,
                "cooldownPeriod": 300,
                "minReplicaCount": 0,
                "maxReplicaCount": 6,
                "fallback": {"failureThreshold": 3, "replicas": 1},
                "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {"scaleDown": {
                    "stabilizationWindowSeconds": 120,
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]
                }}}},
                "triggers": [{
                    "type": "kafka",
                    "name": "task-events-lag",
                    "metadata": {
                        "bootstrapServers": "KAFKA_BROKERS_SET_BY_OVERLAY",
                        "version": "KAFKA_VERSION_SET_BY_OVERLAY",
                        "consumerGroup": "audit-writer",
                        "topic": "task-events",
                        "lagThreshold": "50",
                        "activationLagThreshold": "0",
                        "offsetResetPolicy": "earliest",
                        "allowIdleConsumers": "false",
                        "scaleToZeroOnInvalidOffset": "false"
                    }
                }]
            }
        })
    }

    /// manifests/base/audit-writer.yaml, the keys the cost model reads.
    pub(crate) fn audit_writer_deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "audit-writer"},
            "spec": {"template": {
                "metadata": {"annotations": {
                    "kubectl.kubernetes.io/default-container": "audit-writer",
                    "dapr.io/enabled": "true",
                    "dapr.io/app-id": "audit-writer",
                    "dapr.io/sidecar-cpu-request": "50m",
                    "dapr.io/sidecar-memory-request": "64Mi",
                    "dapr.io/sidecar-cpu-limit": "500m",
                    "dapr.io/sidecar-memory-limit": "256Mi"
                }},
                "spec": {"containers": [{
                    "name": "audit-writer",
                    "resources": {
                        "requests": {"cpu": "20m", "memory": "32Mi"},
                        "limits": {"cpu": "500m", "memory": "128Mi"}
                    }
                }]}
            }}
        })
    }

    #[test]
    fn the_shipped_audit_writer_scaled_object_is_read_as_written() -> Result<(), SettingsError> {
        let so = ScaledObjectSettings::from_value(&audit_writer_scaled_object())?;
        assert_eq!(so.name, "audit-writer");
        assert_eq!(so.target, "audit-writer");
        assert_eq!((so.polling_interval_s, so.cooldown_period_s, so.min_replicas, so.max_replicas), (15, 300, 0, 6));
        assert_eq!(
            so.triggers,
            vec![Trigger::Kafka {
                topic: "task-events".into(),
                lag_threshold: 50,
                activation_lag_threshold: 0,
                allow_idle_consumers: false,
                limit_to_partitions_with_lag: false,
            }]
        );
        let behavior = so.behavior.unwrap_or_default();
        assert_eq!(behavior.scale_up, None);
        assert_eq!(
            behavior.scale_down,
            Some(ScalingRulesSpec {
                stabilization_window_s: Some(120),
                select_policy: None,
                policies: Some(vec![ScalingPolicy { kind: PolicyKind::Pods, value: 1, period_s: 60 }]),
            })
        );
        Ok(())
    }

    #[test]
    fn keda_defaults_apply_when_keys_are_absent() -> Result<(), SettingsError> {
        let mut doc = audit_writer_scaled_object();
        let spec = doc.get_mut("spec").and_then(Value::as_object_mut).ok_or(SettingsError::Missing("spec".into()))?;
        for key in ["pollingInterval", "cooldownPeriod", "minReplicaCount", "maxReplicaCount", "advanced"] {
            spec.remove(key);
        }
        spec.insert("triggers".into(), json!([{"type": "kafka", "metadata": {"topic": "task-events"}}]));
        let so = ScaledObjectSettings::from_value(&doc)?;
        assert_eq!((so.polling_interval_s, so.cooldown_period_s, so.min_replicas, so.max_replicas), (30, 300, 0, 100));
        assert_eq!(so.behavior, None);
        assert_eq!(
            so.triggers,
            vec![Trigger::Kafka {
                topic: "task-events".into(),
                lag_threshold: 10,
                activation_lag_threshold: 0,
                allow_idle_consumers: false,
                limit_to_partitions_with_lag: false,
            }]
        );
        Ok(())
    }

    #[test]
    fn postgresql_and_cpu_triggers_are_read() -> Result<(), SettingsError> {
        let mut doc = audit_writer_scaled_object();
        if let Some(spec) = doc.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert(
                "triggers".into(),
                json!([
                    {"type": "postgresql", "metadata": {"targetQueryValue": "100", "activationTargetQueryValue": "0"}},
                    {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "70"}},
                    {"type": "cron", "metadata": {}}
                ]),
            );
        }
        let so = ScaledObjectSettings::from_value(&doc)?;
        assert_eq!(
            so.triggers,
            vec![
                Trigger::Postgresql { target_query_value: 100.0, activation_target_query_value: 0.0 },
                Trigger::Cpu { utilization_percent: 70 },
                Trigger::Other { kind: "cron".into() },
            ]
        );
        Ok(())
    }

    #[test]
    fn the_shipped_fire_reminder_has_both_triggers() -> Result<(), SettingsError> {
        // keda/fire-reminder.yaml, its spec's keys that scale (the query shortened).
        let doc = json!({
            "metadata": {"name": "fire-reminder"},
            "spec": {
                "scaleTargetRef": {"name": "fire-reminder"},
                "pollingInterval": 15, "cooldownPeriod": 300, "minReplicaCount": 0, "maxReplicaCount": 3,
                "triggers": [
                    {"type": "kafka", "name": "task-events-lag", "metadata": {
                        "consumerGroup": "fire-reminder", "topic": "task-events", "lagThreshold": "50",
                        "activationLagThreshold": "0", "allowIdleConsumers": "false"}},
                    {"type": "postgresql", "name": "reminders-due", "authenticationRef": {"name": "postgres"},
                     "metadata": {"query": "SELECT count(*) FROM todo_state WHERE …",
                                  "targetQueryValue": "100", "activationTargetQueryValue": "0"}}
                ]
            }
        });
        let so = ScaledObjectSettings::from_value(&doc)?;
        assert_eq!(so.max_replicas, 3);
        assert_eq!(so.triggers.len(), 2);
        assert_eq!(
            so.triggers[1],
            Trigger::Postgresql { target_query_value: 100.0, activation_target_query_value: 0.0 }
        );
        Ok(())
    }

    #[test]
    fn bad_trigger_metadata_is_an_error_not_a_panic() {
        let mut doc = audit_writer_scaled_object();
        if let Some(spec) = doc.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert("triggers".into(), json!([{"type": "kafka", "metadata": {"lagThreshold": "fifty"}}]));
        }
        assert!(matches!(ScaledObjectSettings::from_value(&doc), Err(SettingsError::Invalid { .. })));
        if let Some(spec) = doc.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert("triggers".into(), json!([{"type": "kafka", "metadata": {"lagThreshold": "0"}}]));
        }
        assert!(matches!(ScaledObjectSettings::from_value(&doc), Err(SettingsError::Invalid { .. })));
        assert!(matches!(ScaledObjectSettings::from_value(&json!({})), Err(SettingsError::Missing(_))));
    }

    #[test]
    fn the_pod_requests_add_the_function_and_its_daprd() -> Result<(), SettingsError> {
        let d = DeploymentSettings::from_value(&audit_writer_deployment())?;
        assert_eq!(d.container, "audit-writer");
        assert_eq!(d.app.cpu_request.milli(), 20);
        assert_eq!(d.app.memory_request.value_ceil(), 32 << 20);
        let sidecar = d.sidecar.ok_or(SettingsError::Missing("sidecar".into()))?;
        assert_eq!(sidecar.cpu_request.milli(), 50);
        assert_eq!(sidecar.memory_limit.map(Quantity::value_ceil), Some(256 << 20));
        let pod = d.pod();
        assert_eq!(pod.cpu_request.milli(), 70);
        assert_eq!(pod.memory_request.value_ceil(), 96 << 20);
        assert_eq!(pod.cpu_limit.map(Quantity::milli), Some(1000));
        Ok(())
    }

    #[test]
    fn documents_pair_each_scaled_object_with_its_deployment() -> Result<(), SettingsError> {
        let docs = vec![audit_writer_deployment(), json!({"kind": "Service"}), audit_writer_scaled_object()];
        let functions = functions_from_documents(&docs)?;
        assert_eq!(functions.len(), 1);
        assert_eq!(functions[0].deployment.name, "audit-writer");
        let orphan = vec![audit_writer_scaled_object()];
        assert_eq!(functions_from_documents(&orphan), Err(SettingsError::NoDeployment("audit-writer".into())));
        Ok(())
    }
}
