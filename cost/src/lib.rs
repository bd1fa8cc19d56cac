//! What scale-to-zero costs and saves (issue 24): a pure replay of a day of traffic through the
//! scaling rules KEDA and the HPA apply, read from their source, for the settings the manifests
//! ship.
//!
//! # Layout
//!
//! - [`quantity`]: Kubernetes quantities ("100m", "64Mi"), parsed exactly as the API server does.
//! - [`settings`]: a function's ScaledObject and Deployment as the cluster gets them, with KEDA's
//!   defaults applied.
pub mod quantity;
pub mod settings;
