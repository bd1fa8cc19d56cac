//! Dapr resources from `resourcesPath` (`dapr-components/local/`): Components, Resiliency and
//! Subscriptions, read strictly.
//!
//! Emulated: `state.postgresql` v1 (the Query API exists only in v1; `keyPrefix` and the outbox
//! metadata honoured), `pubsub.kafka` v1 (consumer group, `initialOffset`, consume retry,
//! publishing/subscription scopes), `secretstores.local.env` v1 and `secretstores.local.file` v1
//! ([`crate::secrets`]; a `secretKeyRef` of a field devhost uses is resolved through the store
//! the app loaded, as daprd does), the output bindings
//! `bindings.smtp` v1 and `bindings.http` v1 ([`crate::bindings`]), `Resiliency` retry policies and
//! timeouts for pub/sub inbound delivery, `Subscription` `dapr.io/v2alpha1`.
//!
//! Anything else is a startup error naming the file and the field, never silently ignored.
//! Connection metadata that devhost deliberately does not use (it has no broker or database to
//! connect to: `authType`, `connectionString`, `tableName`, ...) is accepted and listed in
//! [`UNUSED_STATE_METADATA`] and [`UNUSED_KAFKA_METADATA`]; a `secretKeyRef` on such a field is
//! never resolved, so the secret need not exist locally. A Kafka component's `brokers` is not
//! connected to either, but names the cluster whose topics the component shares with every other
//! component on the same brokers ([`PubSubComponent::cluster`]).
//!
//! Each app loads the components in its scope with daprd's metadata templates applied for it
//! ([`Templates`], [`Component::for_app`]): what [`Resources`] holds is the file as written,
//! checked, and what the sidecars use is each app's copy.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use serde_json::Value;

use crate::duration;
use crate::fields::{Fields, is_truthy, yaml_documents};

/// `state.postgresql` v1 metadata accepted and not used: devhost stores everything in its own
/// SQLite file (components-contrib `common/component/postgresql/v1/metadata.go`).
pub const UNUSED_STATE_METADATA: &[&str] = &[
    "connectionString",
    "host",
    "hostaddr",
    "port",
    "user",
    "username",
    "password",
    "database",
    "dbname",
    "sslmode",
    "sslRootCert",
    "tableName",
    "metadataTableName",
    "timeout",
    "timeoutInSeconds",
    "cleanupInterval",
    "cleanupIntervalInSeconds",
    "maxConns",
    "connectionMaxIdleTime",
    "queryExecMode",
    "useAzureAD",
    "useAWSIAM",
    "azureClientId",
    "azureTenantId",
    "azureClientSecret",
    "awsRegion",
    "awsAccessKey",
    "awsSecretKey",
    "awsSessionToken",
    "actorStateStore",
];

/// `pubsub.kafka` metadata accepted and not used: there is no broker (components-contrib
/// `common/component/kafka/metadata.go`).
pub const UNUSED_KAFKA_METADATA: &[&str] = &[
    "authType",
    "authRequired",
    "clientID",
    "consumerID",
    "saslUsername",
    "saslPassword",
    "saslMechanism",
    "initialOffsetReset",
    "maxMessageBytes",
    "caCert",
    "clientCert",
    "clientKey",
    "skipVerify",
    "disableTls",
    "version",
    "heartbeatInterval",
    "sessionTimeout",
    "consumerGroupRebalanceStrategy",
    "channelBufferSize",
    "consumerFetchMin",
    "consumerFetchDefault",
    "compression",
    "escapeHeaders",
    "excludeHeaderMetaRegex",
    "consumeRetryInterval",
    "clientConnectionTopicMetadataRefreshInterval",
    "clientConnectionKeepAliveInterval",
    "oidcTokenEndpoint",
    "oidcClientID",
    "oidcClientSecret",
    "oidcScopes",
    "oidcExtensions",
    "awsRegion",
    "awsAccessKey",
    "awsSecretKey",
    "awsSessionToken",
    "awsIamRoleArn",
    "awsStsSessionName",
    "schemaRegistryURL",
    "schemaRegistryAPIKey",
    "schemaRegistryAPISecret",
    "schemaCachingEnabled",
    "schemaLatestVersionCacheTTL",
    "useAvroJson",
];

/// Everything read from the resources directory.
#[derive(Debug, Clone, Default)]
pub struct Resources {
    pub components: Vec<Component>,
    pub resiliencies: Vec<Resiliency>,
    pub subscriptions: Vec<SubscriptionSpec>,
}

#[derive(Debug, Clone)]
pub struct Component {
    pub name: String,
    /// `state.postgresql`, `pubsub.kafka`, ...
    pub type_name: String,
    pub version: String,
    pub kind: ComponentKind,
    /// App-ids that load the component; empty = all (Dapr `scopes`).
    pub scopes: Vec<String>,
    /// The file it came from, for messages.
    pub source: String,
    /// The `spec` as written, and `auth.secretStore`: what [`Component::for_app`] reads again
    /// with an app's templates.
    spec: Option<Value>,
    secret_store: Option<String>,
}

impl Component {
    /// A component is loaded only by the app-ids in its `scopes` (all when there are none).
    pub fn visible_to(&self, app_id: &str) -> bool {
        self.scopes.is_empty() || self.scopes.iter().any(|s| s == app_id)
    }

    /// The component as the sidecar of `templates.app_id` loads it: read again from the file's
    /// text with every metadata value templated ([`Templates`]), so each load has UUIDs of its
    /// own and a `{podName}` without `POD_NAME` fails it.
    /// `stores`: the secret stores this sidecar loaded, through which a `secretKeyRef` is
    /// resolved.
    pub fn for_app(&self, templates: &Templates, stores: &[Component]) -> anyhow::Result<Component> {
        parse_component(
            self.name.clone(),
            self.spec.clone(),
            self.scopes.clone(),
            self.secret_store.clone(),
            &self.source,
            Some(templates),
            stores,
        )
    }

    /// The secret store this component is, if it is one.
    pub fn secret_store(&self) -> Option<&crate::secrets::SecretStore> {
        match &self.kind {
            ComponentKind::SecretStore(s) => Some(s),
            _ => None,
        }
    }
}

/// The templates daprd fills in every metadata value of a component when a sidecar loads it
/// (dapr/dapr v1.18.2 `pkg/runtime/meta/meta.go` `convertItemsToProps`), in this order:
/// - each `{uuid}`: a new random UUID, one per occurrence and per load (under devhost: per app
///   and devhost start, so `consumerGroup: "{appID}-{uuid}"` is a new consumer group each time);
/// - `{podName}`: the sidecar's `POD_NAME`; a value that mentions it while `POD_NAME` is unset
///   or empty fails the component (`failed to parse metadata: property <name> refers to
///   {podName} but podName is not set`), and daprd with it;
/// - `{namespace}`: `<namespace>.<appID>`, the namespace being `NAMESPACE`, else `default`
///   (`security.CurrentNamespace`; a `NAMESPACE` set empty gives `.<appID>`);
/// - `{appID}`: the app-id.
///
/// Nothing else: `{appId}` and other spellings stay as written. Each replacement is made in the
/// result of those before it, as in Go: a `POD_NAME` with `{appID}` in it gets the app-id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Templates {
    pub app_id: String,
    /// The sidecar's `POD_NAME`.
    pub pod_name: Option<String>,
    /// The sidecar's namespace: `NAMESPACE`, else `default`.
    pub namespace: String,
}

/// The placeholders of [`Templates`].
const TEMPLATE_NAMES: [&str; 4] = ["{uuid}", "{podName}", "{namespace}", "{appID}"];

impl Templates {
    /// The templates of `app_id`'s sidecar with devhost's own environment (`POD_NAME`,
    /// `NAMESPACE`), as every daprd of a `dapr run` inherits it.
    pub fn from_env(app_id: &str) -> Self {
        Self {
            app_id: app_id.to_owned(),
            pod_name: std::env::var("POD_NAME").ok(),
            namespace: crate::sidecar::namespace(),
        }
    }

    /// `value` of metadata property `property` with the templates filled in.
    pub fn apply(&self, property: &str, value: &str) -> anyhow::Result<String> {
        let mut value = value.to_owned();
        while value.contains("{uuid}") {
            value = value.replacen("{uuid}", &uuid::Uuid::new_v4().to_string(), 1);
        }
        if value.contains("{podName}") {
            let Some(pod) = self.pod_name.as_deref().filter(|p| !p.is_empty()) else {
                bail!("failed to parse metadata: property {property} refers to {{podName}} but podName is not set");
            };
            value = value.replace("{podName}", pod);
        }
        value = value.replace("{namespace}", &format!("{}.{}", self.namespace, self.app_id));
        Ok(value.replace("{appID}", &self.app_id))
    }
}

#[derive(Debug, Clone)]
pub enum ComponentKind {
    State(StateComponent),
    PubSub(PubSubComponent),
    /// `secretstores.local.env` or `secretstores.local.file` ([`crate::secrets`]).
    SecretStore(crate::secrets::SecretStore),
    /// An output binding ([`crate::bindings`]).
    Binding(crate::bindings::Binding),
}

/// How state keys are stored (dapr/components-contrib `state/utils` + dapr/dapr
/// `pkg/components/state/state_config.go`): `<prefix>||<key>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPrefix {
    /// Default: the calling app-id.
    AppId,
    /// The component name: lets several app-ids share keys.
    Name,
    /// No prefix at all.
    None,
    /// `namespace`: `<namespace>.<appid>`; standalone has no namespace, so this is the app-id.
    Namespace,
    /// Any other value is used as a static prefix.
    Static(String),
}

#[derive(Debug, Clone)]
pub struct StateComponent {
    pub key_prefix: KeyPrefix,
    pub outbox: Option<Outbox>,
}

/// Transactional outbox settings (dapr/dapr `pkg/runtime/pubsub/outbox.go` `AddOrUpdateOutbox`):
/// enabled only when both `outboxPublishPubsub` and `outboxPublishTopic` are set.
#[derive(Debug, Clone)]
pub struct Outbox {
    pub publish_pubsub: String,
    pub publish_topic: String,
    /// The pub/sub of the internal outbox topic (`<appId><publishTopic>outbox`), the first
    /// phase ([`crate::outbox`]).
    pub outbox_pubsub: String,
    /// Moot in devhost: the internal message commits with the state, so its state is never
    /// missing (Dapr's relay checks a marker key); accepted.
    pub discard_when_missing_state: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialOffset {
    Oldest,
    Newest,
}

#[derive(Debug, Clone)]
pub struct PubSubComponent {
    /// The Kafka cluster the component is a client of: what devhost's log keys topics,
    /// partitions, messages, consumer offsets and wake-ups by, so that every component on the
    /// same cluster publishes to and consumes from the same topics, each consumer group with
    /// offsets of its own, as two daprd Kafka clients of one cluster do.
    ///
    /// `kafka:` and the `brokers` list normalised (split at commas, trimmed, lower-cased, sorted,
    /// duplicates dropped): `localhost:9092, kafka:9092` and `kafka:9092,localhost:9092` are one
    /// cluster. A `brokers` given as a `secretKeyRef` is not resolved (devhost connects to no
    /// broker): the reference names the cluster instead (`kafka-secret:<store>/<name>/<key>`),
    /// so components reading the same secret share topics. A component without `brokers` (which
    /// daprd would refuse; devhost's tests have them) is a cluster of its own, named by the
    /// component name: a Dapr name cannot contain `:`, so it meets no broker list.
    ///
    /// Databases of devhost before clusters keyed everything by the component name; they are
    /// moved once, at startup ([`crate::pubsub::adopt_clusters`]).
    pub cluster: String,
    /// As loaded by an app ([`Component::for_app`]): the consumer group, `consumerGroup`, else
    /// `consumerID` (trimmed), else the app-id, as daprd and components-contrib's Kafka pick it,
    /// with the templates filled in. As read from the file ([`Resources`]), the text as written
    /// (empty for the app-id).
    pub consumer_group: String,
    /// Kafka's default is `newest` (components-contrib `common/component/kafka/metadata.go`).
    pub initial_offset: InitialOffset,
    /// `consumeRetryEnabled`, true by default for `pubsub.kafka` (`DefaultConsumeRetryEnabled`).
    pub consume_retry_enabled: bool,
    /// The component's own retry between redeliveries of a failed message: `backOffDuration`,
    /// default constant 5 s (dapr/kit `retry.DefaultConfig`).
    pub backoff: Duration,
    /// `backOffMaxRetries`, default -1 (forever).
    pub backoff_max_retries: i64,
    /// `publishingScopes`, `subscriptionScopes`, `allowedTopics`, `protectedTopics` (dapr/dapr
    /// `pkg/runtime/pubsub/topics.go`), raw strings, applied by [`PubSubComponent::allowed`].
    pub publishing_scopes: Option<String>,
    pub subscription_scopes: Option<String>,
    pub allowed_topics: Vec<String>,
    pub protected_topics: Vec<String>,
}

impl PubSubComponent {
    /// dapr/dapr `IsOperationAllowed`: a topic outside `allowedTopics` is refused; a protected
    /// topic, or any topic for an app listed in the scopes, needs an explicit grant.
    pub fn allowed(&self, app_id: &str, topic: &str, publishing: bool) -> bool {
        if !self.allowed_topics.is_empty() && !self.allowed_topics.iter().any(|t| t == topic) {
            return false;
        }
        let protected = self.protected_topics.iter().any(|t| t == topic);
        let scopes = if publishing { &self.publishing_scopes } else { &self.subscription_scopes };
        let scoped = scoped_topics(scopes.as_deref(), app_id);
        if !protected && scoped.is_empty() {
            return true;
        }
        scoped.iter().any(|t| t == topic)
    }
}

/// dapr/dapr `GetScopedTopics`: `app1=t1,t2;app2=t3`. `app1=` grants nothing.
fn scoped_topics(scopes: Option<&str>, app_id: &str) -> Vec<String> {
    let Some(scopes) = scopes.filter(|s| !s.is_empty()) else { return Vec::new() };
    let scopes = scopes.replace(' ', "");
    let mut topics = Vec::new();
    for entry in scopes.split(';') {
        let mut parts = entry.splitn(2, '=');
        if parts.next() != Some(app_id) {
            continue;
        }
        if let Some(list) = parts.next() {
            topics.extend(list.split(',').map(str::to_owned));
        }
    }
    topics
}

/// A Resiliency resource (dapr/dapr `pkg/apis/resiliency/v1alpha1/types.go`).
#[derive(Debug, Clone, Default)]
pub struct Resiliency {
    pub name: String,
    pub scopes: Vec<String>,
    pub retries: HashMap<String, RetryPolicy>,
    pub timeouts: HashMap<String, Duration>,
    /// Component name → inbound policy names (retry, timeout).
    pub component_inbound: HashMap<String, (Option<String>, Option<String>)>,
    /// Components with an outbound policy (validated, not applied: see [`Resources::validate`]).
    pub component_outbound: Vec<String>,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Backoff {
    /// `policy: constant`, `duration` (default 5 s).
    Constant(Duration),
    /// `policy: exponential`: 500 ms, ×1.5 per retry, capped at `maxInterval` (default 60 s)
    /// (dapr/dapr `pkg/resiliency/retry.go` → cenkalti/backoff defaults, without the jitter).
    Exponential { max_interval: Duration },
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub backoff: Backoff,
    /// -1 = forever.
    pub max_retries: i64,
    /// `matching.httpStatusCodes` ranges; `None` = every error is retried.
    pub http_status_codes: Option<Vec<(u16, u16)>>,
}

impl RetryPolicy {
    /// The pause before retry number `retry` (0-based).
    pub fn delay(&self, retry: u32) -> Duration {
        match &self.backoff {
            Backoff::Constant(d) => *d,
            Backoff::Exponential { max_interval } => {
                let secs = 0.5 * 1.5f64.powi(retry.min(60) as i32);
                Duration::from_secs_f64(secs.min(max_interval.as_secs_f64()))
            }
        }
    }

    /// Whether retry number `retry` (0-based) is allowed.
    pub fn allows(&self, retry: u32) -> bool {
        self.max_retries < 0 || i64::from(retry) < self.max_retries
    }

    /// Whether an error with this HTTP status is retried (no status: always).
    pub fn matches(&self, status: Option<u16>) -> bool {
        match (&self.http_status_codes, status) {
            (Some(ranges), Some(code)) => ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&code)),
            _ => true,
        }
    }
}

/// Inbound delivery policy for one app and pub/sub component.
#[derive(Debug, Clone, Default)]
pub struct InboundPolicy {
    pub retry: Option<RetryPolicy>,
    pub timeout: Option<Duration>,
}

/// A subscription, declarative (`Subscription` resource) or programmatic (`GET /dapr/subscribe`).
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionSpec {
    pub pubsub: String,
    pub topic: String,
    /// `(match, path)` in order.
    pub rules: Vec<(String, String)>,
    pub default_path: Option<String>,
    pub dead_letter_topic: Option<String>,
    /// `metadata.rawPayload`: deliver a synthesized envelope around the raw bytes.
    pub raw_payload: bool,
    pub metadata: BTreeMap<String, String>,
    pub scopes: Vec<String>,
    /// `bulkSubscribe` when `enabled`: deliveries in batches ([`crate::delivery`]).
    pub bulk: Option<BulkSubscribe>,
    /// `DECLARATIVE` or `PROGRAMMATIC` (as `/v1.0/metadata` reports it).
    pub kind: &'static str,
    pub source: String,
}

impl Resources {
    /// Reads every `*.yaml`/`*.yml` file of `dir` (sorted by name).
    pub fn load_dir(dir: &Path) -> anyhow::Result<Self> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("reading resources directory {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
            .collect();
        files.sort();
        let mut texts = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            texts.push((text, file.display().to_string()));
        }
        let mut resources = Resources::default();
        resources.add_texts(&texts)?;
        Ok(resources)
    }

    /// Adds the resources of one YAML text (several documents allowed). Call
    /// [`Resources::validate`] once everything is added.
    pub fn add_yaml(&mut self, text: &str, file: &str) -> anyhow::Result<()> {
        self.add_texts(&[(text.to_owned(), file.to_owned())])
    }

    /// Adds the resources of several YAML texts (text, file name). The secret stores among them
    /// are read first, so that a `secretKeyRef` of any component of these texts (or of those
    /// added before) can be resolved through them, whatever the order of the files: daprd loads
    /// a component that needs a secret store once that store is loaded
    /// (dapr/dapr `pkg/runtime/processor/components.go:209-256`).
    fn add_texts(&mut self, texts: &[(String, String)]) -> anyhow::Result<()> {
        let mut documents = Vec::new();
        for (text, file) in texts {
            for (index, document) in yaml_documents(text, file)?.into_iter().enumerate() {
                documents.push((document, format!("{file} (document {})", index + 1)));
            }
        }
        let mut stores: Vec<Component> =
            self.components.iter().filter(|c| c.secret_store().is_some()).cloned().collect();
        for (document, at) in &documents {
            let is_store = document.get("kind").and_then(Value::as_str) == Some("Component")
                && document
                    .get("spec")
                    .and_then(|s| s.get("type"))
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.starts_with("secretstores."));
            if is_store {
                let mut scratch = Resources::default();
                scratch.add_document(document.clone(), at, &stores)?;
                stores.extend(scratch.components);
            }
        }
        for (document, at) in documents {
            self.add_document(document, &at, &stores)?;
        }
        Ok(())
    }

    fn add_document(&mut self, document: Value, at: &str, stores: &[Component]) -> anyhow::Result<()> {
        let mut doc = Fields::new(document, at)?;
        let api_version = doc.required_string("apiVersion")?;
        let kind = doc.required_string("kind")?;
        let mut metadata = doc.object("metadata")?.ok_or_else(|| anyhow!("{at}: `metadata.name` is required"))?;
        let name = metadata.required_string("name")?;
        // Standalone Dapr has no namespaces; labels and annotations are Kubernetes bookkeeping.
        metadata.ignore(&["namespace", "labels", "annotations"]);
        metadata.finish()?;
        let at = format!("{at} {kind} {name:?}");
        let scopes = doc.string_list("scopes")?;
        let spec = doc.take("spec");
        match (kind.as_str(), api_version.as_str()) {
            ("Component", "dapr.io/v1alpha1") => {
                let auth = doc.object("auth")?;
                let secret_store = match auth {
                    Some(mut auth) => {
                        let store = auth.string("secretStore")?;
                        auth.finish()?;
                        store
                    }
                    None => None,
                };
                doc.finish()?;
                let component = parse_component(name, spec, scopes, secret_store, &at, None, stores)?;
                self.components.push(component);
            }
            ("Resiliency", "dapr.io/v1alpha1") => {
                doc.finish()?;
                self.resiliencies.push(parse_resiliency(name, spec, scopes, &at)?);
            }
            ("Subscription", "dapr.io/v2alpha1") => {
                doc.finish()?;
                let spec = Fields::new(spec.unwrap_or(Value::Null), format!("{at}: spec"))?;
                let mut sub = parse_subscription(spec, true)?;
                sub.scopes = scopes;
                sub.kind = "DECLARATIVE";
                sub.source = at;
                self.subscriptions.push(sub);
            }
            ("Subscription", other) => {
                bail!("{at}: Subscription {other} is not emulated; use dapr.io/v2alpha1 (v1alpha1 is deprecated)")
            }
            (other_kind, other_version) => bail!(
                "{at}: {other_kind} ({other_version}) is not emulated by devhost (it reads Component, Resiliency \
                 and Subscription resources)"
            ),
        }
        Ok(())
    }

    /// Cross-resource checks: unique names, outbox and subscription references, secrets.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut seen = HashMap::new();
        for c in &self.components {
            if let Some(previous) = seen.insert(c.name.as_str(), c.source.as_str()) {
                bail!("component {:?} is defined twice ({previous} and {})", c.name, c.source);
            }
        }
        for c in &self.components {
            if let ComponentKind::State(StateComponent { outbox: Some(outbox), .. }) = &c.kind {
                for (field, pubsub) in
                    [("outboxPublishPubsub", &outbox.publish_pubsub), ("outboxPubsub", &outbox.outbox_pubsub)]
                {
                    if self.pubsub(pubsub).is_none() {
                        bail!("{}: `{field}` names {pubsub:?}, which is not a pub/sub component", c.source);
                    }
                }
            }
        }
        // An output binding calls a real server, whose failures daprd's outbound policies would
        // retry or time out; devhost does not apply them, so it refuses them rather than
        // ignore them (dapr/dapr `pkg/resiliency` `ComponentOutboundPolicy`).
        const DEFAULT_OUTBOUND: [&str; 3] =
            ["DefaultComponentOutboundRetryPolicy", "DefaultComponentRetryPolicy", "DefaultRetryPolicy"];
        for c in self.components.iter().filter(|c| matches!(c.kind, ComponentKind::Binding(_))) {
            for r in &self.resiliencies {
                if r.component_outbound.contains(&c.name) {
                    bail!("{}: an outbound policy for binding {:?} is not emulated by devhost", r.source, c.name);
                }
                if let Some(default) =
                    DEFAULT_OUTBOUND.iter().find(|d| r.retries.contains_key(**d) || r.timeouts.contains_key(**d))
                {
                    bail!(
                        "{}: {default} would apply to binding {:?}, and devhost does not apply outbound policies",
                        r.source,
                        c.name
                    );
                }
            }
        }
        for s in &self.subscriptions {
            if self.pubsub(&s.pubsub).is_none() {
                bail!("{}: `pubsubname` {:?} is not a pub/sub component", s.source, s.pubsub);
            }
            s.compile_rules()?;
        }
        Ok(())
    }

    /// The components `templates.app_id` loads (its scopes applied), as its sidecar loads them.
    /// Its secret stores are loaded first: a `secretKeyRef` of its other components is resolved
    /// through the stores it loaded (daprd's `ProcessResource`).
    pub fn load_for(&self, templates: &Templates) -> anyhow::Result<Vec<Component>> {
        let load = |c: &Component, stores: &[Component]| {
            c.for_app(templates, stores)
                .with_context(|| format!("app {:?} loading component {:?}", templates.app_id, c.name))
        };
        let visible = || self.components.iter().filter(|c| c.visible_to(&templates.app_id));
        let mut stores = Vec::new();
        for c in visible().filter(|c| c.secret_store().is_some()) {
            let loaded = load(c, &stores)?;
            stores.push(loaded);
        }
        visible()
            .map(|c| match stores.iter().find(|s| s.name == c.name) {
                Some(store) => Ok(store.clone()),
                None => load(c, &stores),
            })
            .collect()
    }

    pub fn component(&self, name: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.name == name)
    }

    pub fn pubsub(&self, name: &str) -> Option<&PubSubComponent> {
        match self.component(name).map(|c| &c.kind) {
            Some(ComponentKind::PubSub(p)) => Some(p),
            _ => None,
        }
    }

    /// The inbound retry policy and timeout for `app_id` on pub/sub `component`
    /// (dapr/dapr `pkg/resiliency` `ComponentInboundPolicy`): the component target first, then
    /// the default policies `DefaultPubsubComponentInboundRetryPolicy`,
    /// `DefaultComponentInboundRetryPolicy`, `DefaultComponentRetryPolicy`, `DefaultRetryPolicy`.
    pub fn inbound_policy(&self, app_id: &str, component: &str) -> InboundPolicy {
        let scoped: Vec<&Resiliency> =
            self.resiliencies.iter().filter(|r| r.scopes.is_empty() || r.scopes.iter().any(|s| s == app_id)).collect();
        let mut policy = InboundPolicy::default();
        for r in &scoped {
            if let Some((retry, timeout)) = r.component_inbound.get(component) {
                if policy.retry.is_none() {
                    policy.retry = retry.as_ref().and_then(|n| r.retries.get(n)).cloned();
                }
                if policy.timeout.is_none() {
                    policy.timeout = timeout.as_ref().and_then(|n| r.timeouts.get(n)).copied();
                }
            }
        }
        if policy.retry.is_none() {
            const DEFAULTS: [&str; 4] = [
                "DefaultPubsubComponentInboundRetryPolicy",
                "DefaultComponentInboundRetryPolicy",
                "DefaultComponentRetryPolicy",
                "DefaultRetryPolicy",
            ];
            policy.retry = DEFAULTS.iter().find_map(|name| scoped.iter().find_map(|r| r.retries.get(*name))).cloned();
        }
        policy
    }
}

/// A subscription's `bulkSubscribe` (dapr/dapr v1.18.2 `pkg/runtime/pubsub/subscription.go`
/// `BulkSubscribe`), with the defaults `pubsub.kafka` applies to a value ≤ 0: 80 messages, 10 s
/// (components-contrib v1.18.3 `pubsub/kafka/kafka.go:62-72`, `common/component/kafka/utils.go:26-31`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkSubscribe {
    pub max_messages: u32,
    pub max_await: Duration,
}

impl SubscriptionSpec {
    /// Compiles every routing rule as daprd does (see [`crate::cel::Rule::compile`]).
    pub fn compile_rules(&self) -> anyhow::Result<Vec<(crate::cel::Rule, String)>> {
        self.rules
            .iter()
            .map(|(expr, path)| {
                crate::cel::Rule::compile(expr)
                    .map(|e| (e, path.clone()))
                    .map_err(|e| anyhow!("{}: routing rule `match: {expr}` does not compile: {e}", self.source))
            })
            .collect()
    }

    pub fn visible_to(&self, app_id: &str) -> bool {
        self.scopes.is_empty() || self.scopes.iter().any(|s| s == app_id)
    }
}

/// One `spec.metadata` item: a value or a secret reference, resolved only when used.
#[derive(Debug, Clone)]
enum MetaValue {
    Plain(String),
    Secret { name: String, key: String },
}

/// Reads a component's `spec`; with `templates`, as an app's sidecar loads it (every metadata
/// value templated), else as written (for the checks done once for all apps).
fn parse_component(
    name: String,
    raw_spec: Option<Value>,
    scopes: Vec<String>,
    secret_store: Option<String>,
    at: &str,
    templates: Option<&Templates>,
    stores: &[Component],
) -> anyhow::Result<Component> {
    let mut spec = Fields::new(raw_spec.clone().unwrap_or(Value::Null), format!("{at}: spec"))?;
    let type_name = spec.required_string("type")?;
    let version = spec.string("version")?.unwrap_or_else(|| "v1".to_owned());
    // initTimeout and ignoreErrors only matter when a component can fail to initialise.
    spec.ignore(&["initTimeout", "ignoreErrors"]);
    let mut meta: BTreeMap<String, MetaValue> = BTreeMap::new();
    // What daprd decides from the values as written: a `{namespace}` anywhere makes a pub/sub
    // namespace-scoped (`meta.ContainsNamespace`).
    let mut mentions_namespace = None;
    let mut templated_brokers = false;
    for (index, item) in spec.list("metadata")?.into_iter().enumerate() {
        let mut item = Fields::new(item, format!("{at}: spec.metadata[{index}]"))?;
        let field = item.required_string("name")?;
        let value = match (item.string("value")?, item.object("secretKeyRef")?) {
            (Some(v), None) => {
                if v.contains("{namespace}") && mentions_namespace.is_none() {
                    mentions_namespace = Some(field.clone());
                }
                templated_brokers |= field == "brokers" && TEMPLATE_NAMES.iter().any(|t| v.contains(t));
                match templates {
                    // Every value, used by devhost or not, as daprd does.
                    Some(t) => MetaValue::Plain(t.apply(&field, &v).map_err(|e| anyhow!("{}: {e}", item.at()))?),
                    None => MetaValue::Plain(v),
                }
            }
            (None, Some(mut secret)) => {
                let secret_name = secret.required_string("name")?;
                let key = secret.string("key")?.unwrap_or_else(|| secret_name.clone());
                secret.finish()?;
                MetaValue::Secret { name: secret_name, key }
            }
            (None, None) => MetaValue::Plain(String::new()),
            (Some(_), Some(_)) => bail!("{}: both `value` and `secretKeyRef`", item.at()),
        };
        item.ignore(&["envRef"]);
        item.finish()?;
        meta.insert(field, value);
    }
    spec.finish()?;

    let at_meta = format!("{at}: spec.metadata");
    let mut get = |key: &str| -> anyhow::Result<Option<String>> {
        match meta.remove(key) {
            None => Ok(None),
            Some(MetaValue::Plain(v)) => Ok(Some(v)),
            Some(MetaValue::Secret { name, key: secret_key }) => {
                let value = resolve_secret(stores, secret_store.as_deref(), &name, &secret_key).with_context(|| {
                    format!("{at_meta}: field `{key}` uses secretKeyRef {name:?}, which devhost must resolve")
                })?;
                // daprd fills the secret in first and then templates it like any value.
                match templates {
                    Some(t) => t.apply(key, &value).map(Some).map_err(|e| anyhow!("{at_meta}: {e}")),
                    None => Ok(Some(value)),
                }
            }
        }
    };
    let kind = match (type_name.as_str(), version.as_str()) {
        ("state.postgresql", "v1") => {
            let key_prefix = match get("keyPrefix")?.as_deref() {
                None | Some("") | Some("appid") => KeyPrefix::AppId,
                Some("name") => KeyPrefix::Name,
                Some("none") => KeyPrefix::None,
                Some("namespace") => KeyPrefix::Namespace,
                Some(other) if other.contains("||") => bail!("{at_meta}: keyPrefix {other:?} may not contain `||`"),
                Some(other) => KeyPrefix::Static(other.to_owned()),
            };
            let publish_pubsub = get("outboxPublishPubsub")?.filter(|s| !s.is_empty());
            let publish_topic = get("outboxPublishTopic")?.filter(|s| !s.is_empty());
            let outbox_pubsub = get("outboxPubsub")?.filter(|s| !s.is_empty());
            let discard = get("outboxDiscardWhenMissingState")?.is_some_and(|v| is_truthy(&v));
            let outbox = match (publish_pubsub, publish_topic) {
                (Some(pubsub), Some(topic)) => Some(Outbox {
                    outbox_pubsub: outbox_pubsub.unwrap_or_else(|| pubsub.clone()),
                    publish_pubsub: pubsub,
                    publish_topic: topic,
                    discard_when_missing_state: discard,
                }),
                (None, None) => None,
                _ => bail!(
                    "{at_meta}: the outbox needs both `outboxPublishPubsub` and `outboxPublishTopic` (Dapr silently \
                     disables it with only one)"
                ),
            };
            for unused in UNUSED_STATE_METADATA {
                meta.remove(*unused);
            }
            ComponentKind::State(StateComponent { key_prefix, outbox })
        }
        ("state.postgresql", other) => bail!(
            "{at}: state.postgresql {other} is not emulated: devhost emulates v1 (the only version with the Query API)"
        ),
        ("pubsub.kafka", "v1") => {
            if let Some(field) = &mentions_namespace {
                bail!(
                    "{at_meta}: field `{field}` mentions {{namespace}}, which makes daprd scope the component's topics \
                     to the namespace (every topic published or subscribed through it prefixed with `<namespace>`, \
                     dapr/dapr `pkg/runtime/pubsub/publisher`); namespace-scoped pub/sub is not emulated by devhost"
                );
            }
            if templated_brokers {
                bail!(
                    "{at_meta}: `brokers` with a template ({{uuid}}, {{podName}}, {{namespace}}, {{appID}}) is not \
                     emulated by devhost: it names the cluster whose topics components share, the same for every app"
                );
            }
            // daprd sets `consumerID` (trimmed) to the app-id when it is empty
            // (`pkg/runtime/processor/pubsub/pubsub.go`), and the Kafka component takes
            // `consumerGroup`, else `consumerID` (components-contrib `kafka/metadata.go`).
            let consumer_group = get("consumerGroup")?
                .filter(|s| !s.is_empty())
                .or(get("consumerID")?.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()))
                .or_else(|| templates.map(|t| t.app_id.clone()))
                .unwrap_or_default();
            let initial_offset = match get("initialOffset")?.as_deref() {
                None | Some("") | Some("newest") => InitialOffset::Newest,
                Some("oldest") => InitialOffset::Oldest,
                Some(other) => bail!("{at_meta}: initialOffset {other:?} must be `oldest` or `newest`"),
            };
            let consume_retry_enabled = get("consumeRetryEnabled")?.is_none_or(|v| is_truthy(&v));
            let backoff = match get("backOffDuration")? {
                None => Duration::from_secs(5),
                Some(v) => duration::parse_go(&v).map_err(|e| anyhow!("{at_meta}: backOffDuration {e}"))?,
            };
            if let Some(policy) = get("backOffPolicy")?
                && policy != "constant"
            {
                bail!("{at_meta}: backOffPolicy {policy:?} is not emulated (only `constant`)");
            }
            let backoff_max_retries = match get("backOffMaxRetries")? {
                None => -1,
                Some(v) => {
                    v.trim().parse().map_err(|_| anyhow!("{at_meta}: backOffMaxRetries {v:?} is not an integer"))?
                }
            };
            let list = |v: Option<String>| -> Vec<String> {
                v.map(|v| v.split(',').map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect())
                    .unwrap_or_default()
            };
            let publishing_scopes = get("publishingScopes")?;
            let subscription_scopes = get("subscriptionScopes")?;
            let allowed_topics = list(get("allowedTopics")?);
            let protected_topics = list(get("protectedTopics")?);
            let pubsub = PubSubComponent {
                cluster: cluster_of(&name, meta.remove("brokers"), secret_store.as_deref()),
                consumer_group,
                initial_offset,
                consume_retry_enabled,
                backoff,
                backoff_max_retries,
                publishing_scopes,
                subscription_scopes,
                allowed_topics,
                protected_topics,
            };
            for unused in UNUSED_KAFKA_METADATA {
                meta.remove(*unused);
            }
            ComponentKind::PubSub(pubsub)
        }
        ("pubsub.kafka", other) => bail!("{at}: pubsub.kafka {other} is not emulated (only v1 exists)"),
        ("bindings.smtp" | "bindings.http", "v1") => {
            // daprd's own binding metadata: devhost emulates output bindings only.
            match get(crate::bindings::BINDING_DIRECTION)?.as_deref().map(str::trim) {
                None | Some("") | Some("output") => {}
                Some(other) => bail!("{at_meta}: direction {other:?}: devhost emulates output bindings only"),
            }
            let binding = if type_name == "bindings.smtp" {
                crate::bindings::Binding::Smtp(
                    crate::bindings::smtp_from_metadata(&mut get).map_err(|e| anyhow!("{at_meta}: {e:#}"))?,
                )
            } else {
                crate::bindings::Binding::Http(
                    crate::bindings::http_from_metadata(&mut get).map_err(|e| anyhow!("{at_meta}: {e:#}"))?,
                )
            };
            ComponentKind::Binding(binding)
        }
        ("bindings.smtp" | "bindings.http", other) => {
            bail!("{at}: {type_name} {other} is not emulated (only v1 exists)")
        }
        // components-contrib `secretstores/local/env/envstore.go:33-37`: `prefix` only.
        ("secretstores.local.env", "v1") => {
            ComponentKind::SecretStore(crate::secrets::SecretStore::Env { prefix: get("prefix")?.unwrap_or_default() })
        }
        // `secretstores/local/file/filestore.go:33-37`: `secretsFile`, `nestedSeparator`,
        // `multiValued` (read with dapr/kit's boolean parsing).
        ("secretstores.local.file", "v1") => {
            let options = crate::secrets::FileOptions {
                secrets_file: get("secretsFile")?.unwrap_or_default(),
                nested_separator: get("nestedSeparator")?,
                multi_valued: get("multiValued")?.is_some_and(|v| is_truthy(&v)),
            };
            ComponentKind::SecretStore(crate::secrets::load_file(&options).map_err(|e| anyhow!("{at_meta}: {e:#}"))?)
        }
        ("secretstores.local.env" | "secretstores.local.file", other) => {
            bail!("{at}: {type_name} {other} is not emulated (only v1 exists)")
        }
        (other, _) => bail!(
            "{at}: component type {other:?} is not emulated by devhost (it emulates state.postgresql v1, \
             pubsub.kafka v1, secretstores.local.env v1, secretstores.local.file v1, bindings.smtp v1 and \
             bindings.http v1)"
        ),
    };
    if let Some(field) = meta.keys().next() {
        bail!(
            "{at_meta}: field `{field}` is not emulated by devhost for {type_name} (it would be silently ignored, so \
             it is an error)"
        );
    }
    Ok(Component { name, type_name, version, kind, scopes, source: at.to_owned(), spec: raw_spec, secret_store })
}

/// [`PubSubComponent::cluster`] of component `name` with `brokers`.
fn cluster_of(name: &str, brokers: Option<MetaValue>, secret_store: Option<&str>) -> String {
    match brokers {
        Some(MetaValue::Plain(list)) => {
            let mut hosts: Vec<String> =
                list.split(',').map(|b| b.trim().to_ascii_lowercase()).filter(|b| !b.is_empty()).collect();
            hosts.sort();
            hosts.dedup();
            if hosts.is_empty() { name.to_owned() } else { format!("kafka:{}", hosts.join(",")) }
        }
        Some(MetaValue::Secret { name: secret, key }) => {
            format!("kafka-secret:{}/{secret}/{key}", secret_store.unwrap_or_default())
        }
        None => name.to_owned(),
    }
}

/// A `secretKeyRef` as daprd resolves it (dapr/dapr `pkg/runtime/processor/secret/secret.go`
/// `ProcessResource`): `GetSecret(name)` of the store named by `auth.secretStore`, which the
/// sidecar must have loaded (`stores`), then its key `key` (default: `name`). Where daprd
/// would load the component without the value (no `auth.secretStore` in standalone mode, the
/// store failing, the key missing or empty) or never load it (a store that is not loaded),
/// devhost refuses to start: the value is one it uses.
fn resolve_secret(stores: &[Component], store: Option<&str>, name: &str, key: &str) -> anyhow::Result<String> {
    let Some(store) = store else {
        bail!(
            "the component has no `auth.secretStore` (daprd in standalone mode has no default store and would load \
             it without this value)"
        );
    };
    let Some(found) = stores.iter().find(|c| c.name == store).and_then(Component::secret_store) else {
        bail!(
            "its `auth.secretStore` {store:?} is not a secret store loaded by this app (daprd would wait for it and \
             never load the component)"
        );
    };
    let secret = found.get(name).map_err(|e| anyhow!("secret store {store:?}: {e}"))?;
    let key = if key.is_empty() { name } else { key };
    match secret.get(key) {
        Some(value) if !value.is_empty() => Ok(value.clone()),
        _ => bail!(
            "secret {name:?} of store {store:?} has no key {key:?} or an empty one (daprd would load the component \
             without this value)"
        ),
    }
}

fn parse_resiliency(name: String, spec: Option<Value>, scopes: Vec<String>, at: &str) -> anyhow::Result<Resiliency> {
    let mut spec = Fields::new(spec.unwrap_or(Value::Null), format!("{at}: spec"))?;
    let mut resiliency = Resiliency { name, scopes, source: at.to_owned(), ..Resiliency::default() };
    if let Some(mut policies) = spec.object("policies")? {
        if let Some(timeouts) = policies.object("timeouts")? {
            let at = timeouts.at().to_owned();
            for (key, value) in fields_into_map(timeouts) {
                let text = crate::fields::scalar_string(&value).unwrap_or_default();
                let d = duration::parse_go(&text).map_err(|e| anyhow!("{at}.{key}: {e}"))?;
                resiliency.timeouts.insert(key, d);
            }
        }
        if let Some(retries) = policies.object("retries")? {
            let at = retries.at().to_owned();
            for (key, value) in fields_into_map(retries) {
                let policy = parse_retry(value, &format!("{at}.{key}"))?;
                resiliency.retries.insert(key, policy);
            }
        }
        if policies.take("circuitBreakers").is_some() {
            bail!("{}: circuitBreakers are not emulated by devhost", policies.at());
        }
        policies.finish()?;
    }
    if let Some(mut targets) = spec.object("targets")? {
        if let Some(components) = targets.object("components")? {
            let at = components.at().to_owned();
            for (component, value) in fields_into_map(components) {
                let mut target = Fields::new(value, format!("{at}.{component}"))?;
                for direction in ["inbound", "outbound"] {
                    let Some(mut d) = target.object(direction)? else { continue };
                    let retry = d.string("retry")?;
                    let timeout = d.string("timeout")?;
                    if d.take("circuitBreaker").is_some() {
                        bail!("{}: circuitBreaker is not emulated by devhost", d.at());
                    }
                    d.finish()?;
                    if let Some(r) = &retry
                        && !resiliency.retries.contains_key(r)
                    {
                        bail!("{at}.{component}.{direction}: retry policy {r:?} is not defined in policies.retries");
                    }
                    if let Some(t) = &timeout
                        && !resiliency.timeouts.contains_key(t)
                    {
                        bail!("{at}.{component}.{direction}: timeout {t:?} is not defined in policies.timeouts");
                    }
                    // Outbound policies wrap calls to the broker and the database. devhost's
                    // components are one local SQLite file with no transient failures, so they
                    // are validated and have nothing to retry.
                    if direction == "inbound" {
                        resiliency.component_inbound.insert(component.clone(), (retry, timeout));
                    } else {
                        resiliency.component_outbound.push(component.clone());
                    }
                }
                target.finish()?;
            }
        }
        for unsupported in ["apps", "actors"] {
            if targets.take(unsupported).is_some() {
                bail!("{}: targets.{unsupported} are not emulated by devhost", targets.at());
            }
        }
        targets.finish()?;
    }
    spec.finish()?;
    Ok(resiliency)
}

/// Every entry of a free-form mapping (policy names, component names, metadata).
fn fields_into_map(mut fields: Fields) -> Vec<(String, Value)> {
    fields.keys().into_iter().filter_map(|key| fields.take(&key).map(|v| (key, v))).collect()
}

fn parse_retry(value: Value, at: &str) -> anyhow::Result<RetryPolicy> {
    let mut f = Fields::new(value, at)?;
    let policy = f.string("policy")?.unwrap_or_else(|| "constant".to_owned());
    let duration_of = |f: &mut Fields, key: &str, default: Duration| -> anyhow::Result<Duration> {
        match f.string(key)? {
            None => Ok(default),
            Some(v) => duration::parse_go(&v).map_err(|e| anyhow!("{at}.{key}: {e}")),
        }
    };
    let backoff = match policy.as_str() {
        "constant" => {
            let d = duration_of(&mut f, "duration", Duration::from_secs(5))?;
            if f.take("maxInterval").is_some() {
                bail!("{at}: `maxInterval` applies to exponential policies only");
            }
            Backoff::Constant(d)
        }
        "exponential" => {
            let max = duration_of(&mut f, "maxInterval", Duration::from_secs(60))?;
            if f.take("duration").is_some() {
                bail!("{at}: `duration` applies to constant policies only");
            }
            Backoff::Exponential { max_interval: max }
        }
        other => bail!("{at}: policy {other:?} must be `constant` or `exponential`"),
    };
    let max_retries = match f.string("maxRetries")? {
        None => -1,
        Some(v) => v.trim().parse::<i64>().map_err(|_| anyhow!("{at}.maxRetries: {v:?} is not an integer"))?,
    };
    let mut http_status_codes = None;
    if let Some(mut matching) = f.object("matching")? {
        if let Some(codes) = matching.string("httpStatusCodes")? {
            http_status_codes = Some(parse_status_ranges(&codes).map_err(|e| anyhow!("{at}.matching: {e}"))?);
        }
        // gRPC status codes never occur on devhost's HTTP app channel.
        matching.ignore(&["gRPCStatusCodes"]);
        matching.finish()?;
    }
    f.finish()?;
    Ok(RetryPolicy { backoff, max_retries, http_status_codes })
}

fn parse_status_ranges(text: &str) -> Result<Vec<(u16, u16)>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|part| {
            let (lo, hi) = part.split_once('-').unwrap_or((part, part));
            let lo: u16 = lo.trim().parse().map_err(|_| format!("bad HTTP status {part:?}"))?;
            let hi: u16 = hi.trim().parse().map_err(|_| format!("bad HTTP status {part:?}"))?;
            if !(100..=599).contains(&lo) || !(100..=599).contains(&hi) || lo > hi {
                return Err(format!("bad HTTP status range {part:?}"));
            }
            Ok((lo, hi))
        })
        .collect()
}

/// Reads a subscription body: the `spec` of a `Subscription` resource (strict), or one entry of
/// `GET /dapr/subscribe` (v1 `route` or v2 `routes`; unknown fields are ignored there, as
/// dapr/dapr `pkg/runtime/pubsub/subscriptions.go` does with `encoding/json`).
pub(crate) fn parse_subscription(mut f: Fields, strict: bool) -> anyhow::Result<SubscriptionSpec> {
    let pubsub = f.required_string("pubsubname")?;
    let topic = f.required_string("topic")?;
    let mut rules = Vec::new();
    let mut default_path = None;
    if let Some(mut routes) = f.object("routes")? {
        for (index, rule) in routes.list("rules")?.into_iter().enumerate() {
            let mut rule = Fields::new(rule, format!("{}.rules[{index}]", routes.at()))?;
            let matcher = rule.string("match")?.unwrap_or_default();
            let path = rule.required_string("path")?;
            rule.finish()?;
            if matcher.trim().is_empty() {
                // An empty match always matches (dapr/dapr `matchRoutingRule`).
                if default_path.is_none() {
                    default_path = Some(path);
                }
                continue;
            }
            rules.push((matcher, path));
        }
        if let Some(default) = routes.string("default")?.filter(|s| !s.is_empty()) {
            default_path = Some(default);
        }
        routes.finish()?;
    }
    if let Some(route) = f.string("route")?.filter(|s| !s.is_empty())
        && default_path.is_none()
    {
        default_path = Some(route);
    }
    let dead_letter_topic = f.string("deadLetterTopic")?.filter(|s| !s.is_empty());
    let mut metadata = BTreeMap::new();
    if let Some(meta) = f.object("metadata")? {
        for (key, value) in fields_into_map(meta) {
            metadata.insert(key, crate::fields::scalar_string(&value).unwrap_or_default());
        }
    }
    let raw_payload = match metadata.get("rawPayload") {
        None => false,
        Some(v) => crate::fields::parse_go_bool(v)
            .ok_or_else(|| anyhow!("{}: metadata.rawPayload {v:?} is not a boolean", f.at()))?,
    };
    let mut bulk = None;
    if let Some(mut fields) = f.object("bulkSubscribe")? {
        let at = fields.at().to_owned();
        let enabled = match fields.string("enabled")? {
            None => false,
            Some(v) => {
                crate::fields::parse_go_bool(&v).ok_or_else(|| anyhow!("{at}: `enabled` {v:?} is not a boolean"))?
            }
        };
        let mut int = |key: &str| -> anyhow::Result<i64> {
            Ok(match fields.string(key)? {
                None => 0,
                Some(v) => v.trim().parse::<i32>().map_err(|_| anyhow!("{at}: `{key}` {v:?} is not an int32"))?.into(),
            })
        };
        let (count, await_ms) = (int("maxMessagesCount")?, int("maxAwaitDurationMs")?);
        if strict {
            fields.finish()?;
        }
        if enabled {
            bulk = Some(BulkSubscribe {
                max_messages: u32::try_from(count).ok().filter(|c| *c > 0).unwrap_or(80),
                max_await: Duration::from_millis(u64::try_from(await_ms).ok().filter(|c| *c > 0).unwrap_or(10_000)),
            });
        }
    }
    let at = f.at().to_owned();
    if strict {
        f.finish()?;
    }
    Ok(SubscriptionSpec {
        pubsub,
        topic,
        rules,
        default_path,
        dead_letter_topic,
        raw_payload,
        metadata,
        bulk,
        scopes: Vec::new(),
        kind: "PROGRAMMATIC",
        source: at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoped_topics_follow_dapr() {
        assert_eq!(scoped_topics(Some("a=t1,t2;b=t3"), "a"), vec!["t1", "t2"]);
        assert_eq!(scoped_topics(Some("a=;b=t3"), "a"), vec![""]);
        assert!(scoped_topics(Some("b=t3"), "a").is_empty());
    }

    fn templates(pod_name: Option<&str>, namespace: &str) -> Templates {
        Templates { app_id: "app".into(), pod_name: pod_name.map(str::to_owned), namespace: namespace.into() }
    }

    #[test]
    fn templates_are_filled_in_as_daprd_does() -> anyhow::Result<()> {
        let t = templates(Some("pod-1"), "default");
        // One UUID per occurrence.
        let two = t.apply("consumerGroup", "{uuid}/{uuid}")?;
        let (a, b) = two.split_once('/').ok_or_else(|| anyhow!("{two}"))?;
        assert_ne!(a, b);
        for u in [a, b] {
            assert_eq!(uuid::Uuid::parse_str(u)?.get_version_num(), 4, "{u}");
        }
        assert_ne!(t.apply("x", "{uuid}")?, t.apply("x", "{uuid}")?, "a new UUID on every load");
        assert_eq!(t.apply("x", "{podName}-{namespace}-{appID}")?, "pod-1-default.app-app");
        // Only daprd's spelling: `{appId}` and `{AppID}` are text.
        assert_eq!(t.apply("x", "{appId}-{AppID}-{appid}")?, "{appId}-{AppID}-{appid}");
        // `NAMESPACE` set empty: `.<appID>`, as Go's `m.namespace + "." + m.id`.
        assert_eq!(templates(None, "").apply("x", "{namespace}")?, ".app");
        // Replacements are made in daprd's order, each over the result of the one before.
        assert_eq!(templates(Some("p-{appID}"), "ns").apply("x", "{podName}")?, "p-app");
        Ok(())
    }

    #[test]
    fn pod_name_templates_need_pod_name() {
        for pod in [None, Some("")] {
            let err = templates(pod, "default").apply("consumerGroup", "g-{podName}").unwrap_err();
            assert_eq!(
                err.to_string(),
                "failed to parse metadata: property consumerGroup refers to {podName} but podName is not set"
            );
        }
        assert!(templates(None, "default").apply("consumerGroup", "no pod").is_ok());
    }

    fn kafka(name: &str, metadata: &str) -> String {
        format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {{name: {name}}}\nspec:\n  type: pubsub.kafka\n  \
             version: v1\n  metadata:\n{metadata}"
        )
    }

    fn pubsub_of(component: &Component) -> &PubSubComponent {
        match &component.kind {
            ComponentKind::PubSub(p) => p,
            other => panic!("not a pub/sub: {other:?}"),
        }
    }

    #[test]
    fn clusters_are_named_by_the_normalised_brokers() -> anyhow::Result<()> {
        let yaml = [
            kafka("a", "    - {name: brokers, value: \"kafka-1:9092, LOCALHOST:9092\"}\n"),
            kafka("b", "    - {name: brokers, value: \"localhost:9092,kafka-1:9092,localhost:9092,\"}\n"),
            kafka("c", "    - {name: brokers, value: \"localhost:9093\"}\n"),
            kafka("d", "    - {name: brokers, value: \" \"}\n"),
            kafka("e", ""),
            // Never resolved: the variable need not exist.
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: f}\nspec:\n  type: pubsub.kafka\n  \
             version: v1\n  metadata:\n    - {name: brokers, secretKeyRef: {name: DEVHOST_TEST_NO_SUCH_VAR}}\n\
             auth: {secretStore: env}\n"
                .to_owned(),
        ]
        .join("---\n");
        let resources = load(&yaml)?;
        let cluster = |name: &str| resources.pubsub(name).map(|p| p.cluster.clone()).unwrap_or_default();
        assert_eq!(cluster("a"), "kafka:kafka-1:9092,localhost:9092");
        assert_eq!(cluster("b"), cluster("a"), "the same brokers in another order and case");
        assert_eq!(cluster("c"), "kafka:localhost:9093");
        assert_eq!((cluster("d").as_str(), cluster("e").as_str()), ("d", "e"), "without brokers: its own name");
        assert_eq!(cluster("f"), "kafka-secret:env/DEVHOST_TEST_NO_SUCH_VAR/DEVHOST_TEST_NO_SUCH_VAR");
        Ok(())
    }

    #[test]
    fn consumer_groups_are_loaded_per_app_with_templates() -> anyhow::Result<()> {
        let yaml = [
            kafka("live", "    - {name: consumerGroup, value: \"{appID}-live-{uuid}\"}\n"),
            kafka("id", "    - {name: consumerID, value: \" {appID}-by-id \"}\n"),
            kafka("plain", ""),
            kafka("literal", "    - {name: consumerGroup, value: \"{appId}\"}\n"),
            kafka("pod", "    - {name: clientID, value: \"{podName}\"}\n"),
        ]
        .join("---\n");
        let resources = load(&yaml)?;
        assert_eq!(resources.pubsub("live").map(|p| p.consumer_group.as_str()), Some("{appID}-live-{uuid}"));
        let t = templates(Some("pod-1"), "default");
        let group = |name: &str| -> anyhow::Result<String> {
            let component = resources.component(name).ok_or_else(|| anyhow!("no {name}"))?;
            Ok(pubsub_of(&component.for_app(&t, &[])?).consumer_group.clone())
        };
        let (first, second) = (group("live")?, group("live")?);
        assert!(first.starts_with("app-live-") && second.starts_with("app-live-"), "{first} {second}");
        assert_ne!(first, second, "every load has a group of its own");
        assert_eq!(group("id")?, "app-by-id", "consumerID, templated and trimmed as daprd does");
        assert_eq!(group("plain")?, "app", "default: the app-id");
        assert_eq!(group("literal")?, "{appId}", "daprd does not replace {{appId}}");
        // A property devhost does not use is templated too, so `{podName}` fails it without
        // POD_NAME, naming the file and the property.
        let pod = resources.component("pod").ok_or_else(|| anyhow!("no pod"))?;
        assert!(pod.for_app(&t, &[]).is_ok());
        let err = format!("{:#}", resources.load_for(&templates(None, "default")).unwrap_err());
        assert!(
            err.contains("app \"app\" loading component \"pod\"")
                && err.contains("bindings.yaml")
                && err.contains("property clientID refers to {podName} but podName is not set"),
            "{err}"
        );
        Ok(())
    }

    #[test]
    fn pubsub_templates_devhost_does_not_emulate_are_refused() {
        let namespaced = error(&kafka("n", "    - {name: consumerGroup, value: \"{namespace}\"}\n"));
        assert!(
            namespaced.contains("`consumerGroup` mentions {namespace}") && namespaced.contains("not emulated"),
            "{namespaced}"
        );
        let brokers = error(&kafka("b", "    - {name: brokers, value: \"{appID}:9092\"}\n"));
        assert!(brokers.contains("`brokers` with a template"), "{brokers}");
        // A state store may use `{namespace}`: daprd fills it in and scopes nothing.
        let state = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: s}\nspec:\n  type: state.postgresql\n  \
                     version: v1\n  metadata:\n    - {name: keyPrefix, value: \"{namespace}\"}\n";
        let resources = load(state).unwrap_or_else(|e| panic!("{e:#}"));
        let loaded = resources.load_for(&templates(None, "ns")).unwrap_or_else(|e| panic!("{e:#}"));
        let ComponentKind::State(store) = &loaded[0].kind else { panic!("not a state store") };
        assert_eq!(store.key_prefix, KeyPrefix::Static("ns.app".into()));
    }

    #[test]
    fn exponential_backoff_is_capped() {
        let p = RetryPolicy {
            backoff: Backoff::Exponential { max_interval: Duration::from_secs(1) },
            max_retries: 3,
            http_status_codes: None,
        };
        assert_eq!(p.delay(0), Duration::from_millis(500));
        assert_eq!(p.delay(1), Duration::from_millis(750));
        assert_eq!(p.delay(5), Duration::from_secs(1));
        assert!(p.allows(2));
        assert!(!p.allows(3));
    }

    fn binding(kind: &str, metadata: &str) -> String {
        format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {{name: out}}\nspec:\n  type: bindings.{kind}\n  \
             version: v1\n  metadata:\n{metadata}scopes: [notifier]\n"
        )
    }

    fn load(yaml: &str) -> anyhow::Result<Resources> {
        let mut resources = Resources::default();
        resources.add_yaml(yaml, "bindings.yaml")?;
        resources.validate()?;
        Ok(resources)
    }

    fn error(yaml: &str) -> String {
        match load(yaml) {
            Ok(_) => panic!("loaded: {yaml}"),
            Err(e) => format!("{e:#}"),
        }
    }

    const SMTP: &str = "    - {name: host, value: mail.example.com}\n    - {name: port, value: \"587\"}\n";

    #[test]
    fn smtp_bindings_are_read_with_their_defaults() -> anyhow::Result<()> {
        let extra = "    - {name: user, value: u}\n    - {name: password, value: p}\n    \
                     - {name: emailFrom, value: a@example.com}\n    - {name: priority, value: \"1\"}\n    \
                     - {name: skipTLSVerify, value: \"true\"}\n    - {name: direction, value: output}\n";
        let resources = load(&binding("smtp", &format!("{SMTP}{extra}")))?;
        let component = resources.component("out").ok_or_else(|| anyhow!("no component"))?;
        assert!(component.visible_to("notifier") && !component.visible_to("task-api"));
        let ComponentKind::Binding(crate::bindings::Binding::Smtp(smtp)) = &component.kind else {
            bail!("not an smtp binding: {:?}", component.kind)
        };
        assert_eq!((smtp.host.as_str(), smtp.port, smtp.user.as_str()), ("mail.example.com", 587, "u"));
        assert!(smtp.skip_tls_verify);
        assert_eq!((smtp.mail.email_from.as_str(), smtp.mail.priority), ("a@example.com", 1));
        let plain = load(&binding("smtp", SMTP))?;
        let Some(ComponentKind::Binding(crate::bindings::Binding::Smtp(smtp))) =
            plain.component("out").map(|c| &c.kind)
        else {
            bail!("not an smtp binding")
        };
        assert_eq!(smtp.mail.priority, 3);
        Ok(())
    }

    #[test]
    fn binding_metadata_is_strict() {
        let unknown = error(&binding("smtp", &format!("{SMTP}    - {{name: emailReplyTo, value: x@example.com}}\n")));
        assert!(unknown.contains("bindings.yaml") && unknown.contains("`emailReplyTo`"), "{unknown}");
        let no_port = error(&binding("smtp", "    - {name: host, value: h}\n"));
        assert!(no_port.contains("host and port fields are required"), "{no_port}");
        let half_auth = error(&binding("smtp", &format!("{SMTP}    - {{name: user, value: u}}\n")));
        assert!(half_auth.contains("both user and password"), "{half_auth}");
        let priority = error(&binding("smtp", &format!("{SMTP}    - {{name: priority, value: \"7\"}}\n")));
        assert!(priority.contains("priority value must be between"), "{priority}");
        let input = error(&binding("smtp", &format!("{SMTP}    - {{name: direction, value: input}}\n")));
        assert!(input.contains("output bindings only"), "{input}");
        let mtls = error(&binding(
            "http",
            "    - {name: url, value: \"http://127.0.0.1:1\"}\n    - {name: mtlsRootCA, value: ca.pem}\n",
        ));
        assert!(mtls.contains("`mtlsRootCA`"), "{mtls}");
        let https = error(&binding("http", "    - {name: url, value: \"https://example.com\"}\n"));
        assert!(https.contains("http:// URLs only"), "{https}");
        let version = error(&binding("http", "").replace("version: v1", "version: v2"));
        assert!(version.contains("bindings.http v2 is not emulated"), "{version}");
    }

    #[test]
    fn outbound_policies_on_bindings_are_refused() {
        let resiliency = |targets: &str, policy: &str| {
            format!(
                "{}---\napiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata: {{name: r}}\nspec:\n  policies:\n    \
                 retries:\n      {policy}: {{policy: constant, duration: 1s}}\n{targets}",
                binding("smtp", SMTP)
            )
        };
        let targeted =
            error(&resiliency("  targets:\n    components:\n      out:\n        outbound: {retry: r1}\n", "r1"));
        assert!(targeted.contains("outbound policy for binding \"out\""), "{targeted}");
        let default = error(&resiliency("", "DefaultRetryPolicy"));
        assert!(default.contains("DefaultRetryPolicy would apply to binding"), "{default}");
    }
}
