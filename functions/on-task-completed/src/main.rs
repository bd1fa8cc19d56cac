//! on-task-completed: see the library documentation. The command line is the runtime's
//! (`dapr_fn::runtime::cli`): `--help` lists the variables below and the runtime's own.

use dapr_fn::runtime::About;

const ABOUT: About = About {
    name: "on-task-completed",
    version: env!("CARGO_PKG_VERSION"),
    summary: "when an occurrence of a recurring task is completed or skipped, asks create-task for the next one",
    env: &[],
    elsewhere: &[],
};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    dapr_fn::runtime::main(&ABOUT, on_task_completed::function).await
}

#[cfg(test)]
mod tests {
    use dapr_fn::runtime::cli::{Invocation, parse};

    #[test]
    fn main_hands_its_command_line_to_the_runtime() {
        let source = include_str!("main.rs");
        assert!(source.contains(concat!("dapr_fn::runtime::main(&ABOUT, ", "on_task_completed::function)")));
        let Invocation::Print(help) = parse(&super::ABOUT, ["--help"]) else { panic!("--help must print") };
        assert!(help.starts_with("on-task-completed "), "{help}");
        assert!(matches!(parse(&super::ABOUT, ["--bogus"]), Invocation::Usage(_)));
    }
}
