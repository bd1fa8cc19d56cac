//! notifier: see the library documentation. The command line is the runtime's
//! (`dapr_fn::runtime::cli`): `--help` lists the variables below and the runtime's own.

use dapr_fn::runtime::About;

const ABOUT: About = About {
    name: "notifier",
    version: env!("CARGO_PKG_VERSION"),
    summary: "delivers due reminders by webhook and email, once per channel, retrying with backoff",
    env: &[
        (
            "NOTIFIER_TASK_LINK_BASE",
            "public base URL of task-api, for the link in each reminder (http://localhost:8080)",
        ),
        ("NOTIFIER_MAX_ATTEMPTS", "attempts per channel before it is failed and dead-lettered (10)"),
        ("NOTIFIER_FIRST_BACKOFF_MS", "wait before the second attempt, doubling after (1000)"),
        ("NOTIFIER_MAX_BACKOFF_MS", "longest wait between attempts (300000)"),
        ("NOTIFIER_WEBHOOK_TIMEOUT_MS", "one webhook call, connect to last byte (10000)"),
        ("NOTIFIER_CONNECT_TIMEOUT_MS", "connecting to a webhook (3000)"),
        ("NOTIFY_ALLOW_LOOPBACK_HTTP", "development only: webhooks may be plain http to this host (false)"),
    ],
    elsewhere: &[],
};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    dapr_fn::runtime::main(&ABOUT, notifier::function).await
}

#[cfg(test)]
mod tests {
    use dapr_fn::runtime::cli::{Invocation, parse};

    #[test]
    fn main_hands_its_command_line_to_the_runtime() {
        let source = include_str!("main.rs");
        assert!(source.contains(concat!("dapr_fn::runtime::main(&ABOUT, ", "notifier::function)")));
        let Invocation::Print(help) = parse(&super::ABOUT, ["--help"]) else { panic!("--help must print") };
        assert!(help.starts_with("notifier ") && help.contains("NOTIFIER_MAX_ATTEMPTS"), "{help}");
        assert!(matches!(parse(&super::ABOUT, ["--bogus"]), Invocation::Usage(_)));
    }
}
