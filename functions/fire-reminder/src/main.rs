//! fire-reminder: see the library documentation.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::runtime::run(fire_reminder::function).await
}
