//! task-api: serves the API. It takes no arguments (the runtime's command line,
//! `dapr_fn::runtime::cli`), and in particular cannot mint tokens: the development `dev-token`
//! command lives in devhost, which is never shipped in an image, so the image that holds a
//! production secret has no code path that signs with it.

use dapr_fn::runtime::About;

const ABOUT: About = About {
    name: "task-api",
    version: env!("CARGO_PKG_VERSION"),
    summary: "the REST front door of the todo system, and its MCP server at /mcp for AI agents; bearer \
              tokens (JWT) required. Development tokens: `devhost dev-token <user>`",
    env: &[
        ("JWT_SECRET", "HS256 key of bearer tokens, at least 32 bytes (or JWT_JWKS_URL)"),
        ("JWT_SECRET_PREVIOUS", "the key before a rotation, still accepted"),
        ("JWT_JWKS_URL", "an OIDC provider's key set (https); needs JWT_ISSUER and JWT_AUDIENCE"),
        ("JWT_ISSUER", "required iss of tokens"),
        ("JWT_AUDIENCE", "required aud of tokens"),
        ("JWT_MAX_LIFETIME_SECS", "longest accepted token lifetime (86400)"),
        ("JWT_STRICT", "true: refuse to start without JWT_ISSUER and JWT_AUDIENCE"),
        ("LIST_SCAN_LIMIT", "most tasks one list or audit request reads (10000)"),
        ("SEARCH_SCAN_LIMIT", "most tasks one list request with q or tag reads before a short page (1000)"),
        ("LIVE_STREAMS_PER_USER", "live streams (GET /v1/events) of one user on this replica (10)"),
        ("LIVE_STREAMS", "live streams on this replica (5000)"),
        ("LIVE_RESUME_SECS", "how long a change stays resumable with Last-Event-ID (300)"),
        ("LIVE_RESUME_EVENTS", "most changes kept for resuming (20000)"),
        ("RATE_LIMIT_PER_MINUTE", "requests per user per minute on this replica, 0 = off (600)"),
        ("MCP_RESOURCE_URL", "public URL of /mcp (default: from each request's Host)"),
        ("MCP_ALLOWED_HOSTS", "Host values /mcp accepts besides loopback and task-api[.todo[.svc...]]"),
        ("MCP_ALLOWED_ORIGINS", "browser origins /mcp accepts besides loopback"),
        ("NOTIFY_ALLOW_LOOPBACK_HTTP", "true: webhook URLs may be plain http to loopback (development; false)"),
        ("OUTBOX_PUBLISH_TIMEOUT_MS", "wait for a write's own publish before leaving it to the relay (3000)"),
        ("OUTBOX_RELAY_ENABLED", "run the outbox relay (true)"),
        ("OUTBOX_RELAY_INTERVAL_MS", "pause between relay passes (2000)"),
        ("OUTBOX_RELAY_MIN_AGE_MS", "relay only records older than this (5000)"),
        ("OUTBOX_RELAY_BATCH", "records per relay query (100)"),
    ],
    elsewhere: &[(
        "dev-token",
        "task-api cannot mint tokens (it only verifies them): use `devhost dev-token <user>` in development, \
         with the same JWT_SECRET, JWT_ISSUER and JWT_AUDIENCE",
    )],
};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    dapr_fn::runtime::main(&ABOUT, task_api::function).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use dapr_fn::runtime::cli::{Invocation, parse};

    #[test]
    fn main_hands_its_command_line_to_the_runtime() {
        let source = include_str!("main.rs");
        assert!(source.contains(concat!("dapr_fn::runtime::main(&ABOUT, ", "task_api::function)")));
        assert!(matches!(parse(&super::ABOUT, ["--port"]), Invocation::Usage(_)));
    }

    #[test]
    fn help_lists_every_variable_the_configuration_reads() {
        let Invocation::Print(help) = parse(&super::ABOUT, ["--help"]) else { panic!("--help must print") };
        assert!(help.starts_with("task-api "), "{help}");
        // envy reads a field `jwt_secret` from `JWT_SECRET`: each listed variable is a field of
        // the configuration, and each configuration field read from the environment is listed.
        let body = |source: &'static str, name: &str| -> &'static str {
            let start = source.find(&format!("pub struct {name} {{")).expect(name);
            let end = source[start..].find("\n}").expect(name);
            &source[start..start + end]
        };
        let config = [
            body(include_str!("config.rs"), "Config"),
            body(include_str!("../../../shared/dapr-fn/src/outbox.rs"), "OutboxConfig"),
        ];
        let fields: Vec<&str> = config
            .iter()
            .flat_map(|s| s.lines())
            .filter_map(|l| l.trim().strip_prefix("pub ")?.split_once(':').map(|(name, _)| name))
            .filter(|name| !matches!(*name, "jwks_timing" | "outbox"))
            .collect();
        assert!(fields.len() > 10, "{fields:?}");
        for (var, _) in super::ABOUT.env {
            assert!(fields.contains(&var.to_lowercase().as_str()), "{var} is not read by the configuration");
            assert!(help.contains(&format!("  {var} ")), "{var}: {help}");
        }
        for name in fields {
            assert!(help.contains(&format!("  {} ", name.to_uppercase())), "{name} is not in --help");
        }
    }

    #[test]
    fn dev_token_points_at_devhost_and_help_still_helps() {
        let Invocation::Usage(text) = parse(&super::ABOUT, ["dev-token", "alice"]) else { panic!("must refuse") };
        assert!(text.contains("devhost dev-token"), "{text}");
        assert!(matches!(parse(&super::ABOUT, ["dev-token", "--help"]), Invocation::Print(_)));
    }
}
