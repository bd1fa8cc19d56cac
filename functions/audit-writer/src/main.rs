//! audit-writer: see the library documentation.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::runtime::run(audit_writer::function).await
}
