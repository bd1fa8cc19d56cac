//! The state shared by every sidecar, delivery loop and the scheduler: resources, database,
//! the registered apps and their readiness, and the HTTP client used to call apps.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::db::Db;
use crate::pubsub::{NewMessage, Notifier};
use crate::resources::{Component, ComponentKind, PubSubComponent, Resources, StateComponent, SubscriptionSpec};

/// Settings that do not come from resources.
#[derive(Debug, Clone)]
pub struct Options {
    /// Partitions of a topic created from now on.
    pub partitions: u32,
    /// Deliver every message twice (at-least-once testing).
    pub duplicate_delivery: bool,
    /// `DAPR_API_TOKEN`: required on every sidecar API call but the health checks.
    pub api_token: Option<String>,
    /// `APP_API_TOKEN`: sent to apps as `dapr-api-token`.
    pub app_token: Option<String>,
}

/// One app-id: where it listens and whether it is ready for deliveries and job triggers.
#[derive(Debug)]
pub struct App {
    pub app_id: String,
    pub app_port: u16,
    /// daprd's app health check, when enabled ([`crate::runfile::HealthCheck`]).
    pub health_check: Option<crate::runfile::HealthCheck>,
    /// True once the app accepts connections (and, with a health check, is healthy) and its
    /// subscriptions are read; false again while a health check finds it unhealthy: deliveries
    /// and job triggers wait meanwhile, as daprd stops its subscriptions and jobs then.
    pub ready: watch::Sender<bool>,
    /// Declarative and programmatic subscriptions in effect, for `/v1.0/metadata`.
    pub subscriptions: Mutex<Vec<SubscriptionSpec>>,
    /// `PUT /v1.0/metadata/{key}`: the sidecar's extended metadata.
    pub extended_metadata: Mutex<std::collections::BTreeMap<String, String>>,
    /// Cancelled by `POST /v1.0/shutdown` (and with devhost): this app's sidecar stops serving.
    pub stopped: CancellationToken,
    /// This app's delivery loops, aborted when its sidecar is shut down.
    pub tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl App {
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.app_port)
    }

    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Waits until the app is ready; `false` if devhost shuts down first.
    pub async fn wait_ready(&self, shutdown: &CancellationToken) -> bool {
        let mut rx = self.ready.subscribe();
        tokio::select! {
            r = rx.wait_for(|ready| *ready) => r.is_ok(),
            () = shutdown.cancelled() => false,
        }
    }
}

#[derive(Debug)]
pub struct Host {
    /// The resources as written (subscriptions, resiliency; components before templating).
    pub resources: Resources,
    /// The components each app-id loaded, with its templates ([`Resources::load_for`]).
    pub loaded: HashMap<String, Vec<Component>>,
    pub db: Db,
    /// Wakes delivery loops; shared with the database thread, which calls it after a commit.
    pub notifier: Arc<Notifier>,
    pub options: Options,
    /// Calls to apps: deliveries, job triggers, health checks (connections are pooled).
    pub http: reqwest::Client,
    /// Calls of `bindings.http` components: Go's dial timeout (15 s, components-contrib
    /// `bindings/http/http.go:126-137`), redirects followed, no total timeout.
    pub bindings_http: reqwest::Client,
    pub apps: HashMap<String, Arc<App>>,
    /// Wakes the job scheduler when jobs change or an app becomes ready.
    pub jobs_changed: Arc<Notify>,
    pub shutdown: CancellationToken,
    /// (group, cluster, topic) with a running consumer, and who runs it (app-id, pub/sub
    /// component): two subscriptions in one consumer group on one topic (of two app-ids, or of
    /// one app-id through two components on one cluster) would be competing consumers, which
    /// devhost does not emulate.
    pub consumers: Mutex<HashMap<Consumer, (String, String)>>,
}

/// A consumer group on a topic of a cluster: (group, cluster, topic).
pub type Consumer = (String, String, String);

impl Host {
    pub fn new(
        resources: Resources,
        loaded: HashMap<String, Vec<Component>>,
        db: Db,
        options: Options,
        apps: Vec<App>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Arc<Self>> {
        // Calls to apps are plain HTTP on loopback: the client is built without TLS.
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| anyhow::anyhow!("building the HTTP client: {e}"))?;
        let bindings_http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| anyhow::anyhow!("building the bindings' HTTP client: {e}"))?;
        let apps = apps.into_iter().map(|a| (a.app_id.clone(), Arc::new(a))).collect();
        Ok(Arc::new(Self {
            resources,
            loaded,
            db,
            notifier: Arc::default(),
            options,
            http,
            bindings_http,
            apps,
            jobs_changed: Arc::default(),
            shutdown,
            consumers: Mutex::default(),
        }))
    }

    /// The components `app_id` loaded (its scopes applied, its templates filled in).
    pub fn components_for(&self, app_id: &str) -> &[Component] {
        self.loaded.get(app_id).map(Vec::as_slice).unwrap_or_default()
    }

    /// The component `name` as loaded by `app_id`.
    pub fn component_for(&self, app_id: &str, name: &str) -> Option<&Component> {
        self.components_for(app_id).iter().find(|c| c.name == name)
    }

    pub fn state_store_for(&self, app_id: &str, name: &str) -> Option<&StateComponent> {
        match self.component_for(app_id, name).map(|c| &c.kind) {
            Some(ComponentKind::State(s)) => Some(s),
            _ => None,
        }
    }

    pub fn pubsub_for(&self, app_id: &str, name: &str) -> Option<&PubSubComponent> {
        match self.component_for(app_id, name).map(|c| &c.kind) {
            Some(ComponentKind::PubSub(p)) => Some(p),
            _ => None,
        }
    }

    pub fn binding_for(&self, app_id: &str, name: &str) -> Option<&crate::bindings::Binding> {
        match self.component_for(app_id, name).map(|c| &c.kind) {
            Some(ComponentKind::Binding(b)) => Some(b),
            _ => None,
        }
    }

    pub fn has_kind_for(&self, app_id: &str, state: bool) -> bool {
        self.components_for(app_id).iter().any(|c| match c.kind {
            ComponentKind::State(_) => state,
            ComponentKind::PubSub(_) => !state,
            ComponentKind::SecretStore(_) | ComponentKind::Binding(_) => false,
        })
    }

    /// Appends messages in one committed transaction, then wakes their consumers.
    pub async fn publish(&self, messages: Vec<NewMessage>) -> Result<(), crate::state::StateError> {
        self.apply("", Vec::new(), messages).await
    }

    /// Applies state operations on `store` and appends `messages` (its outbox) in one
    /// transaction ([`crate::state::apply`]); once it has committed, the consumers of every
    /// topic it appended to are woken, even if the caller has stopped waiting by then.
    pub async fn apply(
        &self,
        store: &str,
        ops: Vec<crate::state::Op>,
        messages: Vec<NewMessage>,
    ) -> Result<(), crate::state::StateError> {
        let (store, partitions, notifier) = (store.to_owned(), self.options.partitions, self.notifier.clone());
        self.db
            .call_then(
                move |inner| crate::state::apply(inner, &store, &ops, &messages, partitions),
                move |touched| notifier.notify(touched),
            )
            .await?;
        Ok(())
    }
}
