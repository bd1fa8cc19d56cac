//! create-task: see the library documentation. The command line is the runtime's
//! (`dapr_fn::runtime::cli`): `--help` lists the variables below and the runtime's own.

use dapr_fn::runtime::About;

const ABOUT: About = About {
    name: "create-task",
    version: env!("CARGO_PKG_VERSION"),
    summary: "creates the tasks asked for on the task-create topic (recurrence, imports), once per request id",
    env: &[(
        "OUTBOX_PUBLISH_TIMEOUT_MS",
        "how long a write waits for its own publish before leaving it to the relay (3000)",
    )],
    elsewhere: &[],
};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    dapr_fn::runtime::main(&ABOUT, create_task::function).await
}

#[cfg(test)]
mod tests {
    use dapr_fn::runtime::cli::{Invocation, parse};

    #[test]
    fn main_hands_its_command_line_to_the_runtime() {
        let source = include_str!("main.rs");
        assert!(source.contains(concat!("dapr_fn::runtime::main(&ABOUT, ", "create_task::function)")));
        let Invocation::Print(help) = parse(&super::ABOUT, ["--help"]) else { panic!("--help must print") };
        assert!(help.starts_with("create-task "), "{help}");
        assert!(help.contains("  OUTBOX_PUBLISH_TIMEOUT_MS "), "OUTBOX_PUBLISH_TIMEOUT_MS: {help}");
        assert!(matches!(parse(&super::ABOUT, ["--bogus"]), Invocation::Usage(_)));
    }
}
