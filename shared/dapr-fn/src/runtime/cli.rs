//! The command line every function binary shares, written once so that a `main.rs` stays a few
//! lines: `--help` (`-h`) prints what the binary is and the environment variables it reads,
//! `--version` (`-V`) its version, both exiting 0; anything else exits 2 with a message, as
//! command-line tools do, instead of being ignored (a `task-api --help` used to start a server).
//!
//! The functions take no arguments: they are configured by their environment, the way Dapr,
//! Kubernetes and devhost start them. Parsing is the pure [`parse`], tested without a process.

use std::process::ExitCode;

/// What a binary says about itself.
#[derive(Debug, Clone, Copy)]
pub struct About {
    /// The binary's name, which is also its Dapr app-id.
    pub name: &'static str,
    /// Its version (`env!("CARGO_PKG_VERSION")`).
    pub version: &'static str,
    /// What it is and what wakes it, in a sentence or two.
    pub summary: &'static str,
    /// The environment variables it reads beyond the runtime's ([`RUNTIME_ENV`]), with what each
    /// means.
    pub env: &'static [(&'static str, &'static str)],
    /// Arguments people try that belong to another command: (argument, where to go instead).
    /// Refused like any argument, with this pointer.
    pub elsewhere: &'static [(&'static str, &'static str)],
}

/// The variables the runtime and its sidecar client read, for every function.
pub const RUNTIME_ENV: &[(&str, &str)] = &[
    ("APP_PORT", "port the sidecar delivers to (8080)"),
    ("APP_HOST", "bind address (127.0.0.1; 0.0.0.0 in containers)"),
    ("APP_API_TOKEN", "token the sidecar must send as dapr-api-token (required)"),
    ("APP_API_TOKEN_OPTIONAL", "true: start without APP_API_TOKEN (development only)"),
    ("METRICS_PORT", "serve /metrics and /healthz on their own port (unset: the app port)"),
    ("METRICS_HOST", "bind address of METRICS_PORT (APP_HOST)"),
    ("SHUTDOWN_TIMEOUT_SECS", "time in-flight work gets after SIGTERM (15)"),
    ("MAX_BODY_BYTES", "largest request or delivery body (1048576)"),
    ("LOG_FORMAT", "text or json (text)"),
    ("RUST_LOG", "log filter (info)"),
    ("DAPR_HTTP_PORT", "the sidecar's HTTP port (3500)"),
    ("DAPR_HTTP_ENDPOINT", "the sidecar's URL, instead of DAPR_HTTP_PORT"),
    ("DAPR_API_TOKEN", "token sent to the sidecar, when it requires one"),
    ("DAPR_STARTUP_TIMEOUT_MS", "how long to wait for the sidecar at start (30000)"),
    ("DAPR_REQUEST_TIMEOUT_MS", "timeout of one sidecar call (35000)"),
    ("DAPR_JOBS_API", "Jobs API version: v1.0-alpha1 (Dapr 1.16+) or v1.0 (1.18+)"),
];

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// No arguments: serve.
    Serve,
    /// Print this on stdout and exit 0 (`--help`, `--version`).
    Print(String),
    /// Print this on stderr and exit 2: the arguments are wrong.
    Usage(String),
}

/// Reads the arguments after the program name. `--help` anywhere wins, so that help is always
/// one flag away, whatever else was typed (`task-api dev-token --help` included).
pub fn parse<I, S>(about: &About, args: I) -> Invocation
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let args: Vec<S> = args.into_iter().collect();
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    if args.iter().any(|a| matches!(*a, "-h" | "--help" | "help")) {
        return Invocation::Print(help(about));
    }
    if args.iter().any(|a| matches!(*a, "-V" | "--version")) {
        return Invocation::Print(format!("{} {}\n", about.name, about.version));
    }
    let Some(first) = args.first() else {
        return Invocation::Serve;
    };
    let name = about.name;
    let problem = match about.elsewhere.iter().find(|(arg, _)| arg == first) {
        Some((_, instead)) => format!("{name}: {instead}"),
        None if first.starts_with('-') => format!("{name}: unknown option {first:?}"),
        None => format!("{name}: unexpected argument {first:?}: {name} takes no arguments"),
    };
    Invocation::Usage(format!(
        "{problem}\n{name} is configured by its environment; `{name} --help` lists the variables it reads.\n"
    ))
}

/// The `--help` text: what the binary is, how it is started, and every variable it reads.
pub fn help(about: &About) -> String {
    let mut text = format!(
        "{name} {version}: {summary}\n\nUsage: {name}  (no arguments: configured by the environment)\n       \
         {name} --help | --version\n\nEnvironment ({name}):\n",
        name = about.name,
        version = about.version,
        summary = about.summary,
    );
    let width = about.env.iter().chain(RUNTIME_ENV).map(|(name, _)| name.len()).max().unwrap_or(0);
    let own: &[(&str, &str)] = if about.env.is_empty() { &[("(none)", "only those below")] } else { about.env };
    push_vars(&mut text, own, width);
    text.push_str("\nEnvironment (every function):\n");
    push_vars(&mut text, RUNTIME_ENV, width);
    text
}

fn push_vars(text: &mut String, vars: &[(&str, &str)], width: usize) {
    for (var, what) in vars {
        text.push_str(&format!("  {var:<width$}  {what}\n"));
    }
}

/// What a binary's `main` does with its command line: print and leave, or go on to serve.
/// `Some(code)` means exit with it now.
pub fn handle_args(about: &About) -> Option<ExitCode> {
    let args: Result<Vec<String>, _> = std::env::args_os().skip(1).map(|a| a.into_string()).collect();
    let invocation = match args {
        Ok(args) => parse(about, args),
        Err(arg) => Invocation::Usage(format!("{}: argument {arg:?} is not valid UTF-8\n", about.name)),
    };
    match invocation {
        Invocation::Serve => None,
        Invocation::Print(text) => {
            print!("{text}");
            Some(ExitCode::SUCCESS)
        }
        Invocation::Usage(text) => {
            eprint!("{text}");
            Some(ExitCode::from(2))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const ABOUT: About = About {
        name: "demo-fn",
        version: "1.2.3",
        summary: "answers demo events",
        env: &[("DEMO_LIMIT", "how many (10)")],
        elsewhere: &[("mint", "cannot mint: use `devhost mint`")],
    };

    #[test]
    fn no_arguments_serve() {
        assert_eq!(parse(&ABOUT, Vec::<String>::new()), Invocation::Serve);
    }

    #[test]
    fn help_says_what_it_is_and_every_variable_and_wins_over_everything_else() {
        for args in [&["--help"][..], &["-h"], &["help"], &["mint", "--help"], &["--bogus", "-h"]] {
            let Invocation::Print(text) = parse(&ABOUT, args) else { panic!("{args:?}") };
            assert!(text.starts_with("demo-fn 1.2.3: answers demo events\n"), "{text}");
            assert!(text.contains("  DEMO_LIMIT "), "{text}");
            for (var, _) in RUNTIME_ENV {
                assert!(text.contains(&format!("  {var} ")), "{var} missing from\n{text}");
            }
        }
    }

    #[test]
    fn version_prints_the_name_and_version() {
        assert_eq!(parse(&ABOUT, ["--version"]), Invocation::Print("demo-fn 1.2.3\n".into()));
        assert_eq!(parse(&ABOUT, ["-V"]), Invocation::Print("demo-fn 1.2.3\n".into()));
    }

    #[test]
    fn anything_else_is_a_usage_error_that_names_it() {
        let usage = |args: &[&str]| match parse(&ABOUT, args) {
            Invocation::Usage(text) => text,
            other => panic!("{args:?}: {other:?}"),
        };
        assert!(usage(&["--port", "80"]).starts_with("demo-fn: unknown option \"--port\"\n"));
        assert!(usage(&["serve"]).starts_with("demo-fn: unexpected argument \"serve\": demo-fn takes no arguments\n"));
        assert!(usage(&["mint", "alice"]).starts_with("demo-fn: cannot mint: use `devhost mint`\n"));
        assert!(usage(&["serve"]).contains("`demo-fn --help` lists the variables"));
    }

    #[test]
    fn the_runtime_variables_are_the_ones_its_settings_read() {
        // Every variable RuntimeConfig and DaprConfig read is listed, so --help cannot drift
        // from the code: each listed one changes what the settings parse to.
        let base = [("APP_API_TOKEN", "t")];
        let config = |extra: (&str, &str)| {
            let vars = base.iter().chain([&extra]).map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
            format!("{:?}", super::super::RuntimeConfig::from_vars(vars).unwrap())
        };
        let listed: Vec<&str> = RUNTIME_ENV.iter().map(|(name, _)| *name).collect();
        for var in ["APP_PORT", "APP_HOST", "METRICS_PORT", "METRICS_HOST", "SHUTDOWN_TIMEOUT_SECS", "MAX_BODY_BYTES"] {
            assert!(listed.contains(&var), "{var}");
            assert_ne!(config((var, "7")), config(("UNRELATED", "7")), "{var} is read by RuntimeConfig");
        }
    }
}
