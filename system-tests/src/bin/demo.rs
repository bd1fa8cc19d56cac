//! `make demo`: plays the demo scenario and prints each step; exits non-zero if a step does not
//! happen.
//!
//! When task-api answers at `TASK_API_URL` (default `http://127.0.0.1:8080`), the demo plays
//! against that system, with `TOKEN` (a bearer token, as `make run` prints) or a token minted from
//! its JWT secret (`JWT_SECRET`, else `.devhost/jwt-secret`, where `make run` keeps it). If it
//! has neither, or the system refuses the token, it says so and exits 1: quietly starting a
//! private system instead would show a demo the user's own system never played. Only when nothing
//! answers there does it start a private system of its own and stop it after.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use reqwest::{Method, StatusCode};
use system_tests::api::Api;
use system_tests::host::Setup;
use system_tests::{scenario, workspace_root};

/// The user `make run` prints a token for, so that the demo's tasks show up in their list.
const USER: &str = "alice";
const REMINDER_IN: Duration = Duration::from_secs(5);
/// Where `make run` keeps the JWT secret it starts the system with.
const SECRET_FILE: &str = ".devhost/jwt-secret";

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

/// How the demo can call a running task-api, and where that came from (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Credential {
    /// `TOKEN`: a bearer token as given.
    Token(String),
    /// A secret to mint a token for [`USER`] with; `from` is `JWT_SECRET` or the file.
    Secret { secret: String, from: String },
}

impl Credential {
    fn source(&self) -> &str {
        match self {
            Self::Token(_) => "TOKEN",
            Self::Secret { from, .. } => from,
        }
    }
}

/// What the demo plays against.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Plan {
    /// The system answering at the URL, with this credential.
    Running(Credential),
    /// Nothing answers: a private system of its own.
    Private,
}

/// The choice, from whether task-api answers at `url` and the credential found. A system that
/// answers but cannot be called is an error that says what is missing and how to provide it.
fn plan(url: &str, answers: bool, credential: Option<Credential>) -> Result<Plan, String> {
    match (answers, credential) {
        (false, _) => Ok(Plan::Private),
        (true, Some(credential)) => Ok(Plan::Running(credential)),
        (true, None) => Err(format!(
            "a task-api answers at {url}, but there is no token or JWT secret to call it with: JWT_SECRET and \
             TOKEN are unset and {SECRET_FILE} does not exist. Set JWT_SECRET to the secret that system was \
             started with (`make run` keeps it in {SECRET_FILE}), or TOKEN to a bearer token for it (`make run` \
             prints one: export TOKEN=...); or stop that system, or set TASK_API_URL to a free address, to let \
             the demo start a private one"
        )),
    }
}

/// The message for a running system that refuses the demo's token.
fn refused(url: &str, credential: &Credential, status: StatusCode, error: &str) -> String {
    let fix = match credential {
        Credential::Token(_) => "TOKEN is not a token this system accepts (expired, or from another secret): \
             unset it, or take a fresh one from `make run`'s output or `devhost dev-token alice`"
            .to_owned(),
        Credential::Secret { from, .. } => format!(
            "the system was started with another secret than {from}: set JWT_SECRET to its secret (and \
             JWT_ISSUER / JWT_AUDIENCE if it requires them), or TOKEN to a token it accepts"
        ),
    };
    format!("the task-api at {url} refuses the token from {}: {status} {error:?}; {fix}", credential.source())
}

async fn run() -> anyhow::Result<()> {
    let url = std::env::var("TASK_API_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".to_owned());
    let answers = Api::new(&url, "")?.healthy().await;
    match plan(&url, answers, credential()?).map_err(anyhow::Error::msg)? {
        Plan::Running(credential) => {
            let token = match &credential {
                Credential::Token(token) => token.clone(),
                Credential::Secret { secret, from } => {
                    task_api::auth::mint(secret.as_bytes(), USER, Duration::from_secs(3600))
                        .with_context(|| format!("minting a token for {USER} with the secret from {from}"))?
                }
            };
            let api = Api::new(&url, &token)?;
            let answer = api.call(Method::GET, "/v1/tasks?limit=1", None).await?;
            if answer.status == StatusCode::UNAUTHORIZED {
                let error = answer.body["error"].as_str().unwrap_or_default();
                anyhow::bail!(refused(&url, &credential, answer.status, error));
            }
            println!("demo: using the running system at {url} (token from {})", credential.source());
            play(&api).await
        }
        Plan::Private => {
            println!("demo: no system at {url}; starting one of its own (devhost and the five functions)");
            let setup = Setup::new(&[])?;
            let system = setup.start(false).await?;
            println!("demo: task-api at {}", setup.api_url);
            let result = play(&setup.api(USER)?).await;
            system.stop().await;
            result
        }
    }
}

async fn play(api: &Api) -> anyhow::Result<()> {
    // Beside the scenario: the user's live stream (GET /v1/events), each change as it arrives.
    let live = tokio::spawn(print_live(api.base().to_owned(), api.token().to_owned()));
    let mut step = 0;
    let played = scenario::run(api, REMINDER_IN, |line| {
        if line.starts_with(' ') {
            println!("      {}", line.trim_start());
        } else {
            step += 1;
            println!("  {step}. {line}");
        }
    })
    .await
    .map(|_| ());
    // Changes still on their way to the stream (the audit trail's last step reads what the
    // stream has already shown).
    tokio::time::sleep(Duration::from_millis(500)).await;
    live.abort();
    played
}

/// Prints `[live]` and each change on the user's stream: its type, the task's title (or the
/// fired reminder's) and version. A stream that cannot be opened is said once, not fatal: the
/// scenario is the demo.
async fn print_live(base: String, token: String) {
    let opened = async {
        let http = reqwest::Client::builder().no_proxy().build()?;
        let response = http.get(format!("{base}/v1/events")).bearer_auth(&token).send().await?.error_for_status()?;
        anyhow::Ok(response)
    };
    let mut response = match opened.await {
        Ok(response) => response,
        Err(error) => return println!("      [live] no stream: {error:#}"),
    };
    let (mut pending, mut kind) = (String::new(), String::new());
    while let Ok(Some(chunk)) = response.chunk().await {
        pending.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = pending.find('\n') {
            let line: String = pending.drain(..=end).collect();
            if let Some(event) = line.trim_end().strip_prefix("event: ") {
                kind = event.trim_start_matches("todo.").to_owned();
            } else if let Some(data) = line.trim_end().strip_prefix("data: ") {
                let data: serde_json::Value = serde_json::from_str(data).unwrap_or_default();
                let version = data["version"].as_u64().map(|v| format!(" (v{v})")).unwrap_or_default();
                println!("      [live] {kind}: {}{version}", data["title"].as_str().unwrap_or_default());
            }
        }
    }
}

/// The credential for a running system: `TOKEN`, else `JWT_SECRET`, else `make run`'s secret
/// file. Empty values count as unset.
fn credential() -> anyhow::Result<Option<Credential>> {
    let var = |name: &str| std::env::var(name).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    if let Some(token) = var("TOKEN") {
        return Ok(Some(Credential::Token(token)));
    }
    if let Some(secret) = var("JWT_SECRET") {
        return Ok(Some(Credential::Secret { secret, from: "JWT_SECRET".into() }));
    }
    let path = workspace_root().join(SECRET_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let secret = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let secret = secret.trim().to_owned();
    Ok((!secret.is_empty()).then(|| Credential::Secret { secret, from: path.display().to_string() }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const URL: &str = "http://127.0.0.1:8080";

    #[test]
    fn nothing_answering_means_a_private_system_whatever_the_credentials() {
        assert_eq!(plan(URL, false, None), Ok(Plan::Private));
        assert_eq!(plan(URL, false, Some(Credential::Token("t".into()))), Ok(Plan::Private));
    }

    #[test]
    fn a_running_system_without_credentials_is_an_error_saying_what_is_missing_and_how_to_provide_it() {
        let message = plan(URL, true, None).unwrap_err();
        for says in [
            "a task-api answers at http://127.0.0.1:8080",
            "no token or JWT secret",
            "Set JWT_SECRET",
            ".devhost/jwt-secret",
            "TOKEN",
        ] {
            assert!(message.contains(says), "{says:?} missing from {message}");
        }
    }

    #[test]
    fn a_running_system_with_credentials_is_used() {
        let credential = Credential::Secret { secret: "s".into(), from: "JWT_SECRET".into() };
        assert_eq!(plan(URL, true, Some(credential.clone())), Ok(Plan::Running(credential)));
    }

    #[test]
    fn a_refused_token_names_its_source_and_the_fix() {
        let secret = Credential::Secret { secret: "s".into(), from: "JWT_SECRET".into() };
        let message = refused(URL, &secret, StatusCode::UNAUTHORIZED, "bad signature");
        assert!(message.contains("refuses the token from JWT_SECRET: 401 Unauthorized \"bad signature\""), "{message}");
        assert!(message.contains("started with another secret"), "{message}");
        assert!(!message.contains("\"s\""), "the secret is never shown: {message}");
        let message = refused(URL, &Credential::Token("t".into()), StatusCode::UNAUTHORIZED, "token expired");
        assert!(message.contains("from TOKEN") && message.contains("devhost dev-token"), "{message}");
    }
}
