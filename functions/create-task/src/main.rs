//! create-task: see the library documentation.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::runtime::run(create_task::function).await
}
