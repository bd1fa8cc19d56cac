//! fire-reminder: see the library documentation. The command line is the runtime's
//! (`dapr_fn::runtime::cli`): `--help` lists the variables below and the runtime's own.

use dapr_fn::runtime::About;

const ABOUT: About = About {
    name: "fire-reminder",
    version: env!("CARGO_PKG_VERSION"),
    summary: "schedules a Dapr job per reminder from task-events and, when it fires, publishes todo.reminder.due on reminders",
    env: &[
        ("REMINDER_MISSED_AFTER_SECS", "a reminder later than this is recorded missed, not sent (86400)"),
        ("REMINDER_JOB_RETRY_INTERVAL_SECS", "seconds between retries of a failed job callback (5)"),
        ("REMINDER_JOB_MAX_RETRIES", "retries of a failed job callback (12)"),
    ],
    elsewhere: &[],
};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    dapr_fn::runtime::main(&ABOUT, fire_reminder::function).await
}

#[cfg(test)]
mod tests {
    use dapr_fn::runtime::cli::{Invocation, parse};

    #[test]
    fn main_hands_its_command_line_to_the_runtime() {
        let source = include_str!("main.rs");
        assert!(source.contains(concat!("dapr_fn::runtime::main(&ABOUT, ", "fire_reminder::function)")));
        let Invocation::Print(help) = parse(&super::ABOUT, ["--help"]) else { panic!("--help must print") };
        assert!(help.starts_with("fire-reminder "), "{help}");
        assert!(help.contains("  REMINDER_MISSED_AFTER_SECS "), "REMINDER_MISSED_AFTER_SECS: {help}");
        assert!(help.contains("  REMINDER_JOB_RETRY_INTERVAL_SECS "), "REMINDER_JOB_RETRY_INTERVAL_SECS: {help}");
        assert!(help.contains("  REMINDER_JOB_MAX_RETRIES "), "REMINDER_JOB_MAX_RETRIES: {help}");
        assert!(matches!(parse(&super::ABOUT, ["--bogus"]), Invocation::Usage(_)));
    }
}
