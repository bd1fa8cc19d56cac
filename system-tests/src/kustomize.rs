//! The Kubernetes manifests as the clusters get them: `kubectl kustomize manifests/<target>`,
//! parsed, for the tests that check the rendered overlays against the code
//! (`tests/manifests.rs`, `tests/least_privilege.rs`).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context as _, ensure};
use serde::Deserialize as _;
use serde_json::Value;

use crate::workspace_root;

/// The kubectl to render with: `$KUBECTL`, else the pinned one scripts/lint-tools.sh installs
/// (`make check-manifests`), else `kubectl` on PATH.
pub fn kubectl() -> PathBuf {
    if let Some(path) = std::env::var_os("KUBECTL") {
        return PathBuf::from(path);
    }
    let pinned = workspace_root().join("target/deploy-tools/bin/kubectl");
    if pinned.exists() { pinned } else { PathBuf::from("kubectl") }
}

/// `kubectl kustomize manifests/<target>`, one JSON value per document.
pub fn render(target: &str) -> anyhow::Result<Vec<Value>> {
    let dir = workspace_root().join("manifests").join(target);
    let kubectl = kubectl();
    let output = Command::new(&kubectl).arg("kustomize").arg(&dir).output().with_context(|| {
        format!(
            "cannot run `{} kustomize {}`. The overlays are rendered with kubectl (1.27+, which embeds \
             kustomize): install it (https://kubernetes.io/docs/tasks/tools/), run scripts/lint-tools.sh (installs \
             a pinned one under target/deploy-tools), or set KUBECTL",
            kubectl.display(),
            dir.display()
        )
    })?;
    ensure!(
        output.status.success(),
        "`kubectl kustomize {}` failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).context("kustomize output is not UTF-8")?;
    let mut docs = Vec::new();
    for doc in serde_norway::Deserializer::from_str(&text) {
        let doc = Value::deserialize(doc).context("kustomize output is not valid YAML")?;
        if !doc.is_null() {
            docs.push(doc);
        }
    }
    Ok(docs)
}
