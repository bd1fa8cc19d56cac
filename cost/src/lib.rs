//! What scale-to-zero costs and saves (issue 24): a pure replay of a day of traffic through the
//! scaling rules KEDA and the HPA apply, read from their source, for the settings the manifests
//! ship.
//!
//! # Layout
//!
//! - [`quantity`]: Kubernetes quantities ("100m", "64Mi"), parsed exactly as the API server does.
//! - [`settings`]: a function's ScaledObject and Deployment as the cluster gets them, with KEDA's
//!   defaults applied.
//! - [`rules`]: the scaling decisions of KEDA's executor and scalers and of the HPA, as pure
//!   functions and small state machines, each citing the source it follows.
//! - [`replay`]: one function's trace replayed second by second through those rules (or kept
//!   always on, or under a CPU HPA): replica-seconds, cold starts, message waits, peak backlog.
//! - [`traffic`]: four deterministic days (quiet team, 10k-user diurnal, bursty import,
//!   reminder-heavy) per topic, and the trace each function gets from the topology.
//! - [`price`]: replica-seconds of a pod (function + daprd requests) in vCPU-hours, GiB-hours
//!   and dollars, at prices that are inputs.
//! - [`measured`]: the measured defaults (cold start, per-replica rate, partitions), each with
//!   its source in BENCHMARKS.md or the manifests.
//! - [`report`]: every function and profile, shipped settings beside always-on and CPU HPA, as
//!   rows and a Markdown table.
//! - [`sweep`]: one setting of a function moved at a time, replayed on every profile.
//! - [`doc`]: the generated section of docs/cost.md (inputs, tables, flags, sweeps) and its splice
//!   between two marker lines; [`svg`]: docs/cost.svg.
//! - [`documents`]: a rendered overlay's text (YAML as kustomize prints it, or JSON) as values.
pub mod doc;
pub mod documents;
pub mod measured;
pub mod price;
pub mod quantity;
pub mod replay;
pub mod report;
pub mod rules;
pub mod settings;
pub mod svg;
pub mod sweep;
pub mod traffic;
