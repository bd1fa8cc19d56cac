//! `mail-sink`: the SMTP server `make run` points devhost's `bindings.smtp` at. Listens on
//! `--listen` (default 127.0.0.1:2525), keeps nothing on disk, and prints one line per mail
//! received (its recipients and subject) followed by its body as text, so that the reminders
//! the notifier sends can be read in the terminal. Ctrl-C stops it.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use system_tests::smtp::SmtpSink;

const USAGE: &str = "usage: mail-sink [--listen ADDRESS:PORT]   (default 127.0.0.1:2525)";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("mail-sink: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn listen_address() -> anyhow::Result<SocketAddr> {
    let mut listen = "127.0.0.1:2525".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next().context(USAGE)?,
            other if other.starts_with("--listen=") => listen = other["--listen=".len()..].to_owned(),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    listen.parse().with_context(|| format!("--listen {listen:?} is not ADDRESS:PORT"))
}

async fn run() -> anyhow::Result<()> {
    let sink = SmtpSink::bind(listen_address()?).await?;
    println!("mail-sink: listening on {} (SMTP, no TLS, no auth)", sink.addr());
    let mut seen = 0;
    loop {
        tokio::select! {
            mail = sink.nth(seen) => {
                seen += 1;
                let parsed = mail.parsed();
                println!(
                    "mail-sink: mail to {} subject {:?}",
                    mail.to.join(", "),
                    parsed.subject.unwrap_or_default()
                );
                for line in parsed.text.lines() {
                    println!("    {line}");
                }
            }
            signal = tokio::signal::ctrl_c() => {
                signal.context("waiting for Ctrl-C")?;
                return Ok(());
            }
        }
    }
}
