//! `devhost`: see the library documentation.

use clap::Parser as _;

/// devhost is one process with a thread per reader, a writer, the runtime's workers and every
/// sidecar's HTTP server, all allocating and freeing small buffers per message: `make bench`
/// found a fifth of its CPU in glibc's malloc and free. mimalloc's per-thread heaps cut that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    // Colours only for a terminal: a log file or a pipe gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_ansi(ansi).init();
    devhost::cli::run(devhost::cli::Cli::parse()).await
}
