//! on-task-completed: see the library documentation.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::runtime::run(on_task_completed::function).await
}
