//! task-api: `task-api` serves the API; `task-api dev-token <user> [--ttl-hours N]` prints a
//! development bearer token.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("dev-token") {
        println!("{}", task_api::dev_token::run(&args[1..])?);
        return Ok(());
    }
    shared::runtime::run(task_api::function).await
}
