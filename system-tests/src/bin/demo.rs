//! `make demo`: plays the demo scenario and prints each step; exits non-zero if a step does not
//! happen.
//!
//! Against the system `make run` started when task-api answers at `TASK_API_URL` (default
//! `http://127.0.0.1:8080`), with a token minted from its JWT secret (`JWT_SECRET`, else
//! `.devhost/jwt-secret`); otherwise it starts a private system of its own and stops it after.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use system_tests::api::Api;
use system_tests::host::Setup;
use system_tests::{scenario, workspace_root};

/// The user `make run` prints a token for, so that the demo's tasks show up in their list.
const USER: &str = "alice";
const REMINDER_IN: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => {
            println!("demo: every step happened");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("demo FAILED: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let url = std::env::var("TASK_API_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".to_owned());
    if let Some(secret) = running_system_secret()? {
        let token = task_api::auth::mint(secret.as_bytes(), USER, Duration::from_secs(3600))?;
        let api = Api::new(&url, &token)?;
        if api.healthy().await {
            println!("demo: using the running system at {url}");
            return play(&api).await;
        }
    }
    println!("demo: no system at {url}; starting one of its own (devhost and the five functions)");
    let setup = Setup::new(&[])?;
    let system = setup.start(false).await?;
    println!("demo: task-api at {}", setup.api_url);
    let result = play(&setup.api(USER)?).await;
    system.stop().await;
    result
}

async fn play(api: &Api) -> anyhow::Result<()> {
    let mut step = 0;
    scenario::run(api, REMINDER_IN, |line| {
        if line.starts_with(' ') {
            println!("      {}", line.trim_start());
        } else {
            step += 1;
            println!("  {step}. {line}");
        }
    })
    .await
    .map(|_| ())
}

/// The JWT secret of a system `make run` started: `JWT_SECRET`, else `.devhost/jwt-secret`.
fn running_system_secret() -> anyhow::Result<Option<String>> {
    if let Ok(secret) = std::env::var("JWT_SECRET") {
        return Ok(Some(secret));
    }
    let path = workspace_root().join(".devhost/jwt-secret");
    if !path.exists() {
        return Ok(None);
    }
    let secret = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Some(secret.trim().to_owned()))
}
