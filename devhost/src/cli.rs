//! The `devhost` command: read `dapr.yaml`, serve a sidecar per app, start the apps, run until
//! Ctrl-C or SIGTERM (or until an app exits), then stop the apps (SIGTERM, grace period, kill)
//! and exit.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use tracing::{error, info};

use crate::system::{Settings, System};

/// An embedded Dapr-compatible host: runs every app of a Dapr multi-app run file with a
/// sidecar emulated over HTTP and one SQLite file, without daprd, Kafka or Postgres.
///
/// Tokens come from devhost's own environment: `DAPR_API_TOKEN` is enforced on every sidecar
/// and `APP_API_TOKEN` is sent to the apps; both are passed to the apps.
#[derive(Debug, Parser)]
#[command(name = "devhost", version)]
pub struct Cli {
    /// The Dapr multi-app run file.
    #[arg(long, default_value = "dapr.yaml")]
    pub run_file: PathBuf,
    /// The SQLite database (state, pub/sub log, jobs); kept across restarts.
    #[arg(long, default_value = ".devhost/devhost.sqlite")]
    pub db: String,
    /// Deliver every message twice, to test that handlers are idempotent.
    #[arg(long)]
    pub duplicate_delivery: bool,
    /// Partitions of each new topic.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub partitions: u32,
    /// Seconds each app gets to stop after SIGTERM before it is killed.
    #[arg(long, default_value_t = 10)]
    pub grace_secs: u64,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print every message of a topic (a dead-letter topic, `reminders`, ...) as JSON lines and
    /// exit, without consuming anything. Works while devhost runs.
    Peek {
        topic: String,
        /// The pub/sub component (the topic of its cluster is read, whichever component
        /// published to it).
        #[arg(long, default_value = "pubsub")]
        pubsub: String,
    },
    /// Print each consumer group's lag per topic (messages not yet processed) and exit. Works
    /// while devhost runs.
    Lag {
        /// The pub/sub component (every consumer group of its cluster is listed).
        #[arg(long, default_value = "pubsub")]
        pubsub: String,
    },
    /// Print a development bearer token for USER, signed with JWT_SECRET (and carrying
    /// JWT_ISSUER / JWT_AUDIENCE when set), and exit. Lives here, not in task-api, so that no
    /// shipped image can mint tokens with a production secret.
    #[command(after_help = DEV_TOKEN_ENV)]
    DevToken {
        /// The token's `sub`: the user whose tasks it opens.
        user: String,
        /// Lifetime in hours, at most task-api's default lifetime cap (JWT_MAX_LIFETIME_SECS).
        #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u64).range(1..=task_api::dev_token::MAX_TTL_HOURS))]
        ttl_hours: u64,
    },
}

/// The variables `dev-token` reads: the ones task-api checks tokens with, so that the token
/// opens the system they configure (`make run` keeps its secret in `.devhost/jwt-secret`).
const DEV_TOKEN_ENV: &str = "Environment:
  JWT_SECRET    the HS256 key task-api verifies with, at least 32 bytes (required;
                `make run` keeps it in .devhost/jwt-secret)
  JWT_ISSUER    the token's iss, when task-api requires one
  JWT_AUDIENCE  the token's aud, when task-api requires one

Example:
  JWT_SECRET=\"$(cat .devhost/jwt-secret)\" devhost dev-token alice";

fn env_token(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|t| !t.is_empty())
}

/// Runs devhost until a shutdown signal.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Some(Command::Peek { topic, pubsub }) => {
            for message in crate::peek::messages(&cli.db, pubsub, topic)? {
                println!("{}", serde_json::to_string(&message)?);
            }
            return Ok(());
        }
        Some(Command::Lag { pubsub }) => {
            println!("{:<24} {:<32} {:>8}", "GROUP", "TOPIC", "LAG");
            for lag in crate::peek::lag(&cli.db, pubsub)? {
                println!("{:<24} {:<32} {:>8}", lag.group, lag.topic, lag.lag);
            }
            return Ok(());
        }
        Some(Command::DevToken { user, ttl_hours }) => {
            println!("{}", task_api::dev_token::run(user, Duration::from_secs(ttl_hours * 3600))?);
            return Ok(());
        }
        None => {}
    }
    let settings = Settings {
        database: cli.db.clone(),
        partitions: cli.partitions,
        duplicate_delivery: cli.duplicate_delivery,
        api_token: env_token("DAPR_API_TOKEN"),
        app_token: env_token("APP_API_TOKEN"),
        grace: Duration::from_secs(cli.grace_secs),
        ready_timeout: None,
    };
    println!(
        "devhost: run file {}, database {}{}",
        cli.run_file.display(),
        cli.db,
        if cli.duplicate_delivery { " (duplicate delivery ON)" } else { "" }
    );
    let mut system = tokio::select! {
        s = System::start(&cli.run_file, &settings) => s?,
        () = shutdown_signal() => anyhow::bail!("interrupted during startup"),
    };
    for app in &system.apps {
        let port = if app.app_port == crate::NO_APP_PORT { "none".to_owned() } else { app.app_port.to_string() };
        println!("devhost: {:<20} app port {port:<6} sidecar http://127.0.0.1:{}", app.app_id, app.sidecar_port);
    }
    println!("devhost: all {} apps are ready (Ctrl-C to stop)", system.apps.len());
    tokio::select! {
        () = shutdown_signal() => info!("shutting down"),
        exited = system.app_exited() => error!(app = %exited, "an app exited; shutting down"),
    }
    system.stop().await;
    Ok(())
}

/// Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use clap::error::ErrorKind;

    #[test]
    fn dev_token_help_names_the_variables_it_reads_and_exits_0() {
        let error = Cli::try_parse_from(["devhost", "dev-token", "--help"]).unwrap_err();
        assert_eq!((error.kind(), error.exit_code()), (ErrorKind::DisplayHelp, 0));
        let help = error.render().to_string();
        assert!(help.contains("Print a development bearer token for USER"), "{help}");
        for var in ["JWT_SECRET", "JWT_ISSUER", "JWT_AUDIENCE", ".devhost/jwt-secret", "--ttl-hours"] {
            assert!(help.contains(var), "{var} missing from\n{help}");
        }
    }

    #[test]
    fn unknown_options_and_missing_users_exit_2() {
        for args in
            [&["devhost", "dev-token", "alice", "--bogus"][..], &["devhost", "dev-token"], &["devhost", "--nope"]]
        {
            let error = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(error.exit_code(), 2, "{args:?}: {error}");
        }
        let cli = Cli::try_parse_from(["devhost", "dev-token", "alice"]).unwrap();
        assert!(matches!(cli.command, Some(Command::DevToken { ref user, ttl_hours: 12 }) if user == "alice"));
    }
}
