//! task-api: serves the API. It takes no arguments, and in particular cannot mint tokens: the
//! development `dev-token` command lives in devhost, which is never shipped in an image, so the
//! image that holds a production secret has no code path that signs with it.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => shared::runtime::run(task_api::function).await,
        Some("dev-token") => anyhow::bail!(
            "task-api cannot mint tokens (it only verifies them): use `devhost dev-token <user>` \
             in development, with the same JWT_SECRET, JWT_ISSUER and JWT_AUDIENCE"
        ),
        Some(other) => {
            anyhow::bail!("task-api takes no arguments (got {other:?}); it is configured by its environment")
        }
    }
}
