//! devhost: an embedded, Dapr-compatible local host.
//!
//! devhost runs a multi-app system on one machine with nothing but Rust: it reads `dapr.yaml`
//! (Dapr's multi-app run file) and the resources directory, starts every app as its own process,
//! and plays the Dapr sidecar for each one over HTTP, persisting state, the pub/sub log and jobs
//! in one SQLite file. Like the emulators cloud vendors ship, it is a faithful stand-in for the
//! sidecar's HTTP API for *any* app using the subset below, with Dapr's status codes, body
//! shapes and delivery semantics; it knows nothing about the apps' domain. Clusters run the real
//! Dapr, Kafka and Postgres.
//!
//! Emulated API (per app, on its own sidecar port):
//! - `POST /v1.0/publish/{pubsub}/{topic}` (CloudEvent wrapping, `rawPayload`, `partitionKey`,
//!   `cloudevent.*` overrides, topic scoping; message TTLs as daprd reads them: `ttl`, else
//!   `ttlInSeconds`, a Go duration or whole seconds above 0, `0` expiring at once, anything else
//!   ignored; an expired event, by TTL or by its own `expiration`, is dropped on delivery);
//! - bulk publish (`POST`/`PUT /v1.0-alpha1/publish/bulk/{pubsub}/{topic}` and `/v1.0/...`):
//!   `entryId`, `event`, `contentType`, per-entry `metadata` with the request's filling in,
//!   `rawPayload`, daprd's entry conversion and errors;
//! - delivery to the app: consumer groups as daprd picks them (`consumerGroup`, else
//!   `consumerID`, else the app-id), per-partition ordering, routing rules in full CEL (the `cel`
//!   crate, over the CloudEvent as daprd's cel-go sees it), SUCCESS/RETRY/DROP/404 (statuses are
//!   case-sensitive: `drop` is an unknown status, retried), Resiliency retries, dead-letter
//!   topics, durable offsets;
//! - bulk subscriptions (`bulkSubscribe`, programmatic and declarative): batches of up to
//!   `maxMessagesCount` messages of a partition (default 80, else flushed after
//!   `maxAwaitDurationMs`, default 10 s), daprd's bulk request (`entries` with `entryId`,
//!   `event`, `metadata`, `contentType`; `pubsubName` header), per-entry `SUCCESS`/`RETRY`/`DROP`
//!   (a missing status is RETRY), the failed entries retried alone under the inbound policy, then
//!   dead-lettered one by one; 404 settles the whole batch;
//! - app readiness as daprd's: the app port accepting connections; with `enableAppHealthCheck`,
//!   probes of `appHealthCheckPath` every `appHealthProbeInterval` (`appHealthProbeTimeout`,
//!   `appHealthThreshold`), deliveries and job triggers paused while the app is unhealthy;
//! - Kafka clusters: pub/sub components on the same `brokers` are clients of one cluster and
//!   share its topics (published through one, consumed through another), each consumer group
//!   with offsets of its own, as with daprd and Kafka; components on other brokers share nothing;
//! - component metadata templates, filled in per app as each daprd does when it loads its
//!   components: `{uuid}` (a new UUID per occurrence and start), `{podName}` (`POD_NAME`, else the
//!   app fails to start), `{namespace}` (`<namespace>.<appID>`), `{appID}`;
//! - state (`state.postgresql` v1): get, save, delete, bulk get, transactions with the
//!   transactional outbox, the Query API, ETags, first-write, TTL, `keyPrefix`; URL
//!   `metadata.*` applied to every item (the URL winning), items decoded as daprd decodes them
//!   (no number-to-string conversion), option values and `ttlInSeconds` checked as v1 checks
//!   them, the Query API body parsed as components-contrib parses it;
//! - jobs (`/v1.0-alpha1/jobs/{name}`, `/v1.0/jobs/{name}`) with `POST /job/{name}` triggers;
//! - output bindings (`POST`/`PUT /v1.0/bindings/{name}`): `bindings.smtp` v1 with a real
//!   SMTP client (STARTTLS or implicit TLS, auth) and `bindings.http` v1 with real HTTP calls,
//!   with daprd's request shape, data encoding, `metadata.*` response headers and errors;
//! - secrets (`GET /v1.0/secrets/{store}/{key}`, `GET /v1.0/secrets/{store}/bulk`) of
//!   `secretstores.local.env` v1 (`prefix`) and `secretstores.local.file` v1 (`secretsFile`,
//!   `nestedSeparator`, `multiValued`), scoped like every component; a `secretKeyRef` of another
//!   component resolved through the store its `auth.secretStore` names, as daprd does;
//! - service invocation over HTTP: `/v1.0/invoke/{app-id}/method/{method}` with any HTTP method,
//!   and the `dapr-app-id` header (or Basic auth `dapr-app-id:<id>`) on any other path, to every
//!   app of the run file, itself included: daprd's request (path, query, headers, app token,
//!   trace context, caller/callee and forwarding headers) and the app's answer streamed back;
//! - `/v1.0/healthz`, `/v1.0/healthz/outbound`, `GET /v1.0/metadata` in daprd's shape (component
//!   capabilities, flat subscription rules, `extended`), `PUT /v1.0/metadata/{key}`,
//!   `POST /v1.0/shutdown` (that app's sidecar stops; its app and the other apps keep running);
//!   `DAPR_API_TOKEN` and `APP_API_TOKEN`.
//!
//! Everything else answers 404 `ERR_DEVHOST_NOT_EMULATED`, and a resource or field devhost does
//! not emulate is a startup error naming the file and the field.
//!
//! # Layout
//!
//! - [`runfile`]: `dapr.yaml`, the multi-app run file.
//! - [`resources`]: Components, Resiliency and Subscription resources, read strictly; each
//!   app's copy of the components it loads, with daprd's metadata templates filled in for it
//!   ([`resources::Templates`]); the Kafka cluster of each pub/sub component.
//! - `fields`: strict reading of YAML objects (every field consumed or reported).
//! - [`duration`]: Go and protobuf duration syntaxes.
//! - [`db`]: the SQLite file (schema, WAL), one connection on its own thread with group
//!   commit and after-commit hooks (wake-ups that outlive a caller who gave up), reader
//!   connections, background checkpoints; `:memory:` for tests.
//! - [`state`]: state stores with `state.postgresql` v1 semantics.
//! - [`query`]: the Query API, answered from an in-memory mirror of each queried store.
//!   Its semantics are the crate `query-model` (`devhost/query-model`), a pure model of how
//!   `state.postgresql` v1 parses, filters and orders a request, which the functions' test
//!   stub answers from too.
//! - [`outbox`]: Dapr's transactional outbox of a state store: the internal topic written in
//!   the state's SQLite transaction, and the relay that moves it on, 1 s per message.
//! - [`pubsub`]: the log of each Kafka cluster (shared by the components on its brokers):
//!   topics, partitions, offsets, consumer-group positions, wake-ups, all keyed by cluster and
//!   topic; at startup, the move of a log an older devhost kept by component name to the
//!   clusters (once, idempotent: [`pubsub::adopt_clusters`]).
//! - [`peek`]: reading a topic (a dead-letter topic, say) without consuming it (`devhost peek`),
//!   and consumer lag (`devhost lag`), by component name, on its cluster.
//! - [`cloudevent`]: CloudEvent envelopes as Dapr builds them.
//! - [`delivery`]: per app/topic/partition delivery loops, retries, dead letters; bulk
//!   subscriptions in `delivery/bulk.rs`.
//! - [`cel`]: routing rules in CEL (the `cel` crate), compiled as daprd's cel-go accepts them.
//! - [`schedule`]: job schedules (`@every`, `@daily`, 6-field cron).
//! - [`jobs`]: the Jobs API and the scheduler that triggers `POST /job/{name}`.
//! - [`bindings`]: `bindings.smtp` and `bindings.http` output bindings (lettre, reqwest), and
//!   Go's re-encoding of a request's `data`.
//! - [`secrets`]: the `secretstores.local.env` and `secretstores.local.file` stores.
//! - [`sidecar`]: the axum HTTP API served per app, one file per API (`publish`, `state`,
//!   `jobs`, `bindings`, `secrets`, `invoke`, `metadata`, `shutdown`) and the error bodies, the
//!   API token and the answer to what is not emulated in `sidecar/mod.rs`.
//! - `host`: what all of the above share (resources, each app's loaded components, database,
//!   apps, HTTP client).
//! - [`apps`]: app processes, readiness (port, optional health checks), subscription discovery,
//!   shutdown.
//! - [`system`]: a whole run file (sidecars + app processes) as one handle, for the CLI and
//!   system tests.
//! - [`cli`]: the `devhost` command, and `devhost dev-token`: development bearer tokens for
//!   task-api (the shipped task-api cannot mint them).
//!
//! # Where devhost differs from Dapr
//!
//! On purpose or as a simplification; everything else follows the dapr/dapr and
//! components-contrib sources cited in each module, and `system-tests/tests/conformance/`
//! holds devhost to a real daprd 1.18 call by call (status, `errorCode`, body shape, what the
//! app receives). The differences it can see are asserted there on both sides.
//!
//! - **Outbox: same two phases and timing, first phase inside the transaction.** As in Dapr, a
//!   transaction on an outbox store appends each upsert's event to the writer's internal topic
//!   `<appId><topic>outbox` (no namespace), and a relay per app-id and internal partition
//!   moves it to the destination **one message at a time, waiting 1 s per message** (Dapr's
//!   `defaultStateScanDelay`): every event arrives ≥ 1 s after its commit, and one internal
//!   partition relays about one event per second. Unlike Dapr, the internal message is written
//!   in the same SQLite transaction as the state (Dapr publishes it before the transaction and
//!   checks a marker key later), so a failed transaction leaves nothing behind and cannot stall
//!   a partition, and `outboxDiscardWhenMissingState` is moot. An upsert without
//!   `contentType: application/json` is published as its JSON text (a string) where Dapr would
//!   publish Go's `%v` formatting.
//! - **Partitioner.** FNV-1a of the key instead of Sarama's hash: the same key keeps one
//!   partition (ordering is the same), but its partition number differs from a real cluster's.
//!   Messages are kept forever (no retention); a topic's partition count is fixed when created.
//! - **Kafka clusters are told apart by their `brokers` list**, normalised (split at commas,
//!   trimmed, lower-cased, sorted, without duplicates): two lists that reach one cluster through
//!   other brokers (a subset, an alias, an IP address) are two clusters to devhost, since it
//!   connects to none to find out. A `brokers` given as a `secretKeyRef` is not resolved (so the
//!   secret need not exist locally): the reference names the cluster. A component without
//!   `brokers` (daprd refuses it) is a cluster of its own. A template in `brokers` is a startup
//!   error: the cluster must be the same for every app.
//! - **Competing consumers** (two subscriptions in one consumer group on one topic of one
//!   cluster: of two app-ids, or of one app-id through two components on the cluster) are a
//!   startup error; Kafka would share the partitions out between them.
//! - **Consumer-group offsets are kept forever.** Kafka drops those of a group without members
//!   after `offsets.retention.minutes` (7 days by default); devhost keeps them, so a group that
//!   is new on every start (`{uuid}`) leaves one behind per start, listed by `devhost lag` with
//!   the lag it keeps accumulating.
//! - **Namespace-scoped pub/sub** is not emulated: a `{namespace}` in any metadata value of a
//!   pub/sub component is a startup error. daprd then prefixes every topic published or
//!   subscribed through that component with the namespace (and its outbox relay subscribes to
//!   the internal topic without it); `{namespace}` in other components is filled in.
//! - **`POD_NAME` and `NAMESPACE`** for metadata templates are devhost's own environment, the
//!   same for every sidecar (each daprd reads its own); `DevhostBuilder::pod_name` sets it for
//!   tests.
//! - **Topics are created on first use**, as a broker with `auto.create.topics.enable` does. The
//!   real platform and the clusters turn that off and create the topics of
//!   `manifests/base/kafka-topics/topics.txt`: there a publish to any other topic answers 500
//!   `ERR_PUBSUB_PUBLISH_MESSAGE` (devhost: 204; the conformance test asserts both), and a
//!   subscription to one fails the app's whole consumer session.
//! - **Offsets** are committed after each batch of up to 64 settled messages of a partition
//!   (Kafka commits marked offsets periodically; either way a crash redelivers what was
//!   processed since the last commit). A commit the store refused is made again with the next
//!   batch, or within a second once the partition is idle.
//! - **Query API** compares and sorts the *text* of values, as `state.postgresql` v1 does, but in
//!   byte order rather than the database collation; it spans the whole component (every app's
//!   keys, as v1 spans its table).
//! - **App health checks**, when enabled, pause deliveries and job triggers while the app is
//!   unhealthy; daprd stops its subscriptions and starts them again from the committed offsets
//!   (a delivery in flight is redelivered). Without them (the default) devhost, like daprd, only
//!   waits for the app port.
//! - **Bulk batches** are flushed `maxAwaitDurationMs` after their first message (or when full);
//!   `pubsub.kafka`'s ticker runs from the start of the partition claim, so a lone message there
//!   waits anywhere up to that long. A batch's requests to several routes go in the order of their
//!   first entries (daprd: a Go map's order); a status the app answers for an entry of another
//!   route's request is ignored.
//! - **CEL rules**: cel-go also type-checks a rule when it compiles it, so a rule with literal
//!   operands of the wrong type (`size(1)`, `"a" + 1`) is refused by daprd and fails at
//!   evaluation on devhost (then handled as any evaluation error: dead letter or retry). A rule
//!   calling a function cel-go does not have is refused by devhost; daprd 1.18.2 loops forever
//!   compiling it (`pkg/expr/expr.go` declares the unknown name as a variable and compiles again).
//! - **Jobs** run on UTC; retries of a trigger live in memory (a restart during them triggers the
//!   tick again).
//! - **Inbound retries** wait exactly the exponential policy's intervals; Dapr randomises each
//!   by ±50 % (the total stays of the same order; the conformance test checks the window).
//! - **Tracing** is daprd's without a tracing `Configuration` (none are emulated): no spans of
//!   its own, the caller's trace context passed through unchanged (see [`cloudevent`]). A
//!   sampled daprd would put its own span ids into envelopes and deliveries.
//! - **Error texts** (`message`, and the descriptions inside `details`) are daprd's on the paths
//!   the conformance test compared them (state decoding, options and TTL, the Query API's parser,
//!   bulk publish, secrets, service invocation), elsewhere devhost's own words; `errorCode`,
//!   status and the `details` shape are daprd's everywhere. The namespace in error details is
//!   `NAMESPACE`, else `default`, as daprd's. Go's JSON decoder also matches field names in any
//!   case (`"Key"` for `key`); devhost does not.
//! - **Bulk publish is all or nothing**: every entry is committed to the log in one
//!   transaction, so devhost answers 204 or an error, never a partial `failedEntries` list. To a
//!   topic the broker lacks, daprd answers 500 `ERR_PUBSUB_PUBLISH_MESSAGE` with every entry in
//!   `failedEntries`; devhost creates the topic (204; the conformance test asserts both).
//! - **`kill -9` of devhost** leaves its app processes running (devhost uses no `unsafe`, so no
//!   parent-death signal); stop them before starting devhost again.
//! - **`bindings.smtp` merges a request's metadata into a copy.** components-contrib's
//!   `bindings/smtp/smtp.go:179-211` writes every request's `emailTo`, `subject`, `emailCC`,
//!   `emailBCC`, `emailFrom` and `priority` into the component itself: on daprd they stay for
//!   every later request that does not set them (a request without `subject` after one with it
//!   is sent with the earlier subject where devhost answers 500: the conformance test asserts
//!   both), and concurrent requests race on them (docs/notifier.md: 2 of 968 mails mixed).
//!   devhost keeps the component's own values.
//! - **`bindings.smtp` on the wire**: lettre, not gomail, driven as gomail drives Go's
//!   net/smtp (STARTTLS when offered, AUTH only when offered), but where a server offers
//!   CRAM-MD5, gomail's first choice, devhost uses PLAIN or LOGIN (lettre has no CRAM-MD5); headers come in another order, with a `Message-ID`, and
//!   a non-ASCII subject in base64 encoded-words where gomail uses Q-encoding (decoded, the
//!   same); the data ends with one more empty line. Addresses are parsed by lettre (RFC 5322
//!   `name-addr`/`addr-spec`), not Go's `net/mail`: comments or groups may be read otherwise.
//!   Envelope, `EHLO localhost`, `From`, `To`, `Cc`, `Subject`, `X-priority`,
//!   `text/html; charset=utf-8` and the quoted-printable body are gomail's (the conformance test
//!   compares them through an SMTP sink).
//! - **`bindings.http`** calls `http://` URLs only (no TLS, so no `mtls*` metadata: a startup
//!   error), ignores `HTTP_PROXY` (Go honours it), sends no `User-Agent` and no
//!   `Accept-Encoding: gzip` (Go asks for gzip and decompresses), and passes a `baggage`
//!   header on without validating it.
//! - **Outbound resiliency** policies that would apply to a binding are a startup error (daprd
//!   retries and times out binding calls with them; devhost does not).
//! - **Secrets.** A `secretKeyRef` on a field devhost uses that cannot be resolved (no
//!   `auth.secretStore` (standalone daprd has no default store), a store this app does not load,
//!   a missing secret or an empty value) is a startup error; daprd loads the component without
//!   the value, or (store not loaded) never loads it. Two leaves of a secrets file with the same
//!   flattened name are a startup error (daprd drops an arbitrary part of the file). The env store
//!   reads devhost's environment for every sidecar (as each daprd of `dapr run -f` inherits the
//!   CLI's; an app's `env` is the app's only). Secret scoping through a `Configuration` is not
//!   emulated.
//! - **Service invocation** reaches only the apps of the run file, in devhost's namespace (no
//!   name resolution): an unknown app-id is daprd's 500 `ERR_DIRECT_INVOKE` with devhost's own
//!   error text. Forwarding headers to another app name `127.0.0.1` where daprd puts its host's
//!   address. Resiliency policies are not applied to invocation (`targets.apps` is a startup
//!   error; a `Default*` policy that daprd would apply to apps is not applied); an SSE request
//!   gets the app's headers where daprd sets its own SSE headers.
//! - **Metadata API**: no `enabledFeatures` (daprd lists its defaults, `HotReload` and
//!   `WorkflowsRemoteActivityReminder`, neither of which devhost has); `runtimeVersion` and
//!   `extended.daprRuntimeVersion` are `devhost-<version>`; `scheduler.connected_addresses` is
//!   `["devhost (in-process)"]`.
//! - **`POST /v1.0/shutdown`** stops that app's sidecar for the rest of the run (devhost keeps
//!   running even when every sidecar is down); its delivery loops and outbox relays are aborted, so
//!   up to one batch of processed, uncommitted offsets is redelivered on the next start;
//!   `dapr-force-shutdown: true` is treated as the graceful request.
//! - **Not emulated**, answered 404 `ERR_DEVHOST_NOT_EMULATED` with a message naming the API
//!   (an unknown component type or field is a startup error naming it): the gRPC API (devhost
//!   serves no gRPC port: an app must use an SDK's HTTP protocol), actors, workflows, the
//!   configuration API and `Configuration` resources, distributed locks, cryptography,
//!   conversation, streaming subscriptions, input bindings and other output bindings, other
//!   secret stores, HTTPEndpoint resources and `http://` invocation targets, circuit breakers,
//!   outbound resiliency policies (validated; devhost's components have no transient failures to
//!   retry).
//!
//! # Embedding (tests)
//!
//! ```no_run
//! # async fn f() -> anyhow::Result<()> {
//! use devhost::{AppSpec, Devhost};
//! let host = Devhost::builder()
//!     .resources_yaml("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: pubsub}\nspec: {type: pubsub.kafka, version: v1}\n")
//!     .app(AppSpec::new("my-app", 8080))
//!     .database(":memory:")
//!     .start()
//!     .await?;
//! let url = host.sidecar_url("my-app");
//! host.shutdown().await;
//! # Ok(()) }
//! ```

pub mod apps;
pub mod bindings;
pub mod cel;
pub mod cli;
pub mod cloudevent;
pub mod db;
pub mod delivery;
pub mod duration;
mod fields;
mod host;
pub mod jobs;
pub mod outbox;
pub mod peek;
pub mod pubsub;
pub mod query;
pub mod resources;
pub mod runfile;
pub mod schedule;
pub mod secrets;
pub mod sidecar;
pub mod state;
pub mod system;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::watch;
use tracing::info;

pub use host::Options;
use host::{App, Host};
use resources::Resources;

/// The `app_port` of an app without one (a run-file app without `appPort`): as daprd without
/// `--app-port` (v1.18.2 `pkg/runtime/runtime.go` `blockUntilAppIsReady`, and
/// `processor/subscriber/subscriber.go` "app channel not initialized"), devhost waits for
/// nothing, reads no subscriptions and delivers nothing; a call to it fails.
pub const NO_APP_PORT: u16 = 0;

/// An app devhost plays the sidecar for.
#[derive(Debug, Clone)]
pub struct AppSpec {
    pub app_id: String,
    /// Where the app listens (on 127.0.0.1); [`NO_APP_PORT`] for an app that serves nothing
    /// (only calls its sidecar), as daprd without `--app-port`.
    pub app_port: u16,
    /// The sidecar port to serve; 0 = any free port.
    pub sidecar_port: u16,
    /// daprd's app health check; `None` (daprd's default): the app only has to accept
    /// connections.
    pub health_check: Option<runfile::HealthCheck>,
}

impl AppSpec {
    pub fn new(app_id: impl Into<String>, app_port: u16) -> Self {
        Self { app_id: app_id.into(), app_port, sidecar_port: 0, health_check: None }
    }

    pub fn sidecar_port(mut self, port: u16) -> Self {
        self.sidecar_port = port;
        self
    }
}

/// Configures and starts devhost in-process.
#[derive(Debug)]
pub struct DevhostBuilder {
    resource_dirs: Vec<PathBuf>,
    resource_yaml: Vec<String>,
    apps: Vec<AppSpec>,
    database: String,
    options: Options,
    ready_timeout: Option<Duration>,
    pod_name: Option<String>,
}

impl DevhostBuilder {
    /// Reads every YAML file of `dir` at start.
    pub fn resources_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.resource_dirs.push(dir.into());
        self
    }

    /// Adds resources from a YAML text (several documents allowed).
    pub fn resources_yaml(mut self, yaml: impl Into<String>) -> Self {
        self.resource_yaml.push(yaml.into());
        self
    }

    pub fn app(mut self, app: AppSpec) -> Self {
        self.apps.push(app);
        self
    }

    /// SQLite file path, or `:memory:` (the default).
    pub fn database(mut self, path: impl Into<String>) -> Self {
        self.database = path.into();
        self
    }

    /// Partitions of new topics (default 4).
    pub fn partitions(mut self, n: u32) -> Self {
        self.options.partitions = n.max(1);
        self
    }

    pub fn duplicate_delivery(mut self, on: bool) -> Self {
        self.options.duplicate_delivery = on;
        self
    }

    /// `DAPR_API_TOKEN`: enforced on the sidecar API.
    pub fn api_token(mut self, token: Option<impl Into<String>>) -> Self {
        self.options.api_token = token.map(Into::into).filter(|t: &String| !t.is_empty());
        self
    }

    /// `APP_API_TOKEN`: sent to the apps.
    pub fn app_token(mut self, token: Option<impl Into<String>>) -> Self {
        self.options.app_token = token.map(Into::into).filter(|t: &String| !t.is_empty());
        self
    }

    /// The sidecars' `POD_NAME`, which a `{podName}` in component metadata is replaced by
    /// (default: devhost's own `POD_NAME`; `None`: unset, and such a component fails to load).
    pub fn pod_name(mut self, name: Option<impl Into<String>>) -> Self {
        self.pod_name = name.map(Into::into);
        self
    }

    /// How long [`DevhostBuilder::start`] waits for each app to be healthy (default 30 s;
    /// `None` = forever).
    pub fn ready_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Starts the sidecars, then waits for every app to be healthy and subscribed.
    pub async fn start(self) -> anyhow::Result<Devhost> {
        self.start_sidecars().await?.attach_apps().await
    }

    /// Loads everything and serves every sidecar, without waiting for the apps (the CLI starts
    /// the app processes in between, since they need their sidecar port).
    pub async fn start_sidecars(self) -> anyhow::Result<Starting> {
        let mut resources = Resources::default();
        for dir in &self.resource_dirs {
            let loaded = Resources::load_dir(dir)?;
            resources.components.extend(loaded.components);
            resources.resiliencies.extend(loaded.resiliencies);
            resources.subscriptions.extend(loaded.subscriptions);
        }
        for (i, yaml) in self.resource_yaml.iter().enumerate() {
            resources.add_yaml(yaml, &format!("<resources #{}>", i + 1))?;
        }
        resources.validate()?;
        // Each sidecar loads its components with its own templates (UUIDs of its own): before
        // anything is opened, so that a component that fails to load stops nothing but startup.
        let mut loaded = HashMap::new();
        for app in &self.apps {
            let templates =
                resources::Templates { pod_name: self.pod_name.clone(), ..resources::Templates::from_env(&app.app_id) };
            loaded.insert(app.app_id.clone(), resources.load_for(&templates)?);
        }
        let db = db::Db::open(&self.database)?;
        let clusters: Vec<(String, String)> = resources
            .components
            .iter()
            .filter_map(|c| match &c.kind {
                resources::ComponentKind::PubSub(p) => Some((c.name.clone(), p.cluster.clone())),
                _ => None,
            })
            .collect();
        let adopted = db
            .call(move |inner| -> anyhow::Result<pubsub::Adopted> {
                let tx = inner.conn.savepoint()?;
                let adopted = pubsub::adopt_clusters(&tx, &mut inner.cache, &clusters)?;
                tx.commit()?;
                Ok(adopted)
            })
            .await
            .context("moving the pub/sub log of an older devhost to its clusters")?;
        for (component, topic) in &adopted.moved {
            info!(component, topic, "topic of an older devhost moved to its component's cluster");
        }
        for (component, topic) in &adopted.kept {
            tracing::warn!(
                component,
                topic,
                "an older devhost kept this topic apart from another component's on the same cluster: its \
                 messages and offsets stay where they were, unread (the cluster's own topic is used)"
            );
        }
        let host_shutdown = tokio_util::sync::CancellationToken::new();
        let apps = self
            .apps
            .iter()
            .map(|a| App {
                app_id: a.app_id.clone(),
                app_port: a.app_port,
                health_check: a.health_check.clone(),
                ready: watch::channel(false).0,
                subscriptions: Mutex::new(Vec::new()),
                extended_metadata: Mutex::default(),
                stopped: host_shutdown.child_token(),
                tasks: Mutex::default(),
            })
            .collect();
        let host = Host::new(resources, loaded, db, self.options, apps, host_shutdown)?;
        let mut sidecars = HashMap::new();
        let mut tasks = Vec::new();
        for app in &self.apps {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", app.sidecar_port))
                .await
                .with_context(|| format!("binding the sidecar port {} of app {:?}", app.sidecar_port, app.app_id))?;
            let addr = listener.local_addr().context("sidecar address")?;
            let router = sidecar::router(host.clone(), &app.app_id);
            // This app's own token: `POST /v1.0/shutdown` stops its sidecar alone.
            let stop = host.apps.get(&app.app_id).map_or_else(|| host.shutdown.clone(), |a| a.stopped.clone());
            // TCP_NODELAY, as daprd's Go listeners have it by default: an answer written in
            // pieces (an SSE stream, a large state page) is sent at once, not after the app's
            // delayed ACK. A socket that refuses the option is served as it is.
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            tasks.push(tokio::spawn(async move {
                let _ =
                    axum::serve(listener, router).with_graceful_shutdown(async move { stop.cancelled().await }).await;
            }));
            info!(app_id = %app.app_id, app_port = app.app_port, sidecar = %addr, "sidecar listening");
            sidecars.insert(app.app_id.clone(), addr);
        }
        tasks.push(tokio::spawn(jobs::run_scheduler(host.clone())));
        match outbox::start_relays(&host).await {
            Ok(relays) => tasks.extend(relays),
            Err(e) => {
                host.shutdown.cancel();
                return Err(e.context("starting the outbox relays"));
            }
        }
        let purger = host.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(60)) => {}
                    () = purger.shutdown.cancelled() => return,
                }
                let _ = purger
                    .db
                    .call(|inner| -> Result<usize, state::StateError> { Ok(state::purge_expired(inner)?) })
                    .await;
            }
        }));
        Ok(Starting { devhost: Devhost { host, sidecars, tasks }, ready_timeout: self.ready_timeout })
    }
}

/// Sidecars are serving; the apps are not attached yet.
#[derive(Debug)]
pub struct Starting {
    devhost: Devhost,
    ready_timeout: Option<Duration>,
}

impl Starting {
    pub fn sidecar_addr(&self, app_id: &str) -> Option<SocketAddr> {
        self.devhost.sidecars.get(app_id).copied()
    }

    /// Waits for every app to be healthy, reads subscriptions, starts delivery.
    pub async fn attach_apps(self) -> anyhow::Result<Devhost> {
        let Starting { mut devhost, ready_timeout } = self;
        let mut pending = Vec::new();
        for app in devhost.host.apps.values() {
            pending.push((app.clone(), tokio::spawn(apps::attach(devhost.host.clone(), app.clone(), ready_timeout))));
        }
        let mut failure = None;
        for (app, handle) in pending {
            match handle.await {
                Ok(Ok(tasks)) => {
                    // Kept by the app too, for `POST /v1.0/shutdown` of its sidecar.
                    app.tasks
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .extend(tasks.iter().map(tokio::task::JoinHandle::abort_handle));
                    devhost.tasks.extend(tasks);
                }
                Ok(Err(e)) => failure = failure.or(Some(e)),
                Err(e) => failure = failure.or(Some(anyhow::anyhow!("app attach task failed: {e}"))),
            }
        }
        if let Some(e) = failure {
            devhost.shutdown().await;
            return Err(e);
        }
        Ok(devhost)
    }
}

/// A running devhost.
#[derive(Debug)]
pub struct Devhost {
    host: Arc<Host>,
    sidecars: HashMap<String, SocketAddr>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Devhost {
    pub fn builder() -> DevhostBuilder {
        DevhostBuilder {
            resource_dirs: Vec::new(),
            resource_yaml: Vec::new(),
            apps: Vec::new(),
            database: ":memory:".to_owned(),
            options: Options { partitions: 4, duplicate_delivery: false, api_token: None, app_token: None },
            ready_timeout: Some(Duration::from_secs(30)),
            pod_name: std::env::var("POD_NAME").ok(),
        }
    }

    /// `http://127.0.0.1:<port>` of the app's sidecar (empty if the app is unknown).
    pub fn sidecar_url(&self, app_id: &str) -> String {
        self.sidecars.get(app_id).map(|a| format!("http://{a}")).unwrap_or_default()
    }

    pub fn sidecar_addr(&self, app_id: &str) -> Option<SocketAddr> {
        self.sidecars.get(app_id).copied()
    }

    /// Stops serving and delivering (unsettled messages stay unsettled), then waits for the
    /// background tasks.
    pub async fn shutdown(self) {
        self.host.shutdown.cancel();
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }

    /// Resolves when shutdown was requested.
    pub async fn cancelled(&self) {
        self.host.shutdown.cancelled().await;
    }
}
