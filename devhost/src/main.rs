//! `devhost`: see the library documentation.

use clap::Parser as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_target(false).init();
    devhost::cli::run(devhost::cli::Cli::parse()).await
}
