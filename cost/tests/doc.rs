//! docs/cost.md's generated section and docs/cost.svg are what the replay gives today for the
//! settings the cloud overlay renders: a change to a ScaledObject, a Deployment's requests, a
//! price, a measured figure or the model that is not regenerated fails here.
//! `make cost` (or `UPDATE_COST_DOC=1 cargo test -p cost --test doc`) rewrites both.

use std::path::{Path, PathBuf};
use std::process::Command;

use cost::doc::{Report, TIMELINE, section, splice, timeline};
use cost::price::Prices;
use cost::settings::functions_from_documents;
use cost::svg::chart;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `$KUBECTL`, else the pinned one scripts/lint-tools.sh installs, else `kubectl` on PATH (as
/// system-tests/src/kustomize.rs finds it).
fn kubectl() -> PathBuf {
    if let Some(path) = std::env::var_os("KUBECTL") {
        return PathBuf::from(path);
    }
    let pinned = root().join("target/deploy-tools/bin/kubectl");
    if pinned.exists() { pinned } else { PathBuf::from("kubectl") }
}

fn render_cloud() -> Result<String, String> {
    let dir = root().join("manifests/overlays/cloud");
    let kubectl = kubectl();
    let output = Command::new(&kubectl).arg("kustomize").arg(&dir).output().map_err(|e| {
        format!(
            "cannot run `{} kustomize {}` ({e}): the cost report replays the rendered overlay. Run \
             scripts/lint-tools.sh (it installs the pinned kubectl under target/deploy-tools), install kubectl \
             1.27+, or set KUBECTL",
            kubectl.display(),
            dir.display()
        )
    })?;
    if !output.status.success() {
        return Err(format!(
            "`kubectl kustomize {}` failed:\n{}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    String::from_utf8(output.stdout).map_err(|e| format!("kustomize output is not UTF-8: {e}"))
}

#[test]
fn docs_cost_md_and_svg_are_generated_from_the_shipped_settings() -> Result<(), String> {
    let text = render_cloud()?;
    let docs = cost::documents::parse(&text).map_err(|e| e.to_string())?;
    let functions = functions_from_documents(&docs).map_err(|e| e.to_string())?;
    assert_eq!(functions.len(), 6, "one ScaledObject per function in the cloud overlay");
    let report = Report::new(&functions, Prices::fargate_eks());
    let (title, seconds) = timeline(&functions, TIMELINE.0, TIMELINE.1).ok_or("no timeline function")?;
    let svg = chart(&report.rows, &title, &seconds);
    let md_path = root().join("docs/cost.md");
    let svg_path = root().join("docs/cost.svg");
    let md = std::fs::read_to_string(&md_path).map_err(|e| format!("{}: {e}", md_path.display()))?;
    let generated = splice(&md, &section(&functions, &report)).map_err(|e| format!("{}: {e}", md_path.display()))?;
    if std::env::var_os("UPDATE_COST_DOC").is_some() {
        std::fs::write(&md_path, &generated).map_err(|e| format!("{}: {e}", md_path.display()))?;
        std::fs::write(&svg_path, &svg).map_err(|e| format!("{}: {e}", svg_path.display()))?;
        return Ok(());
    }
    let current_svg = std::fs::read_to_string(&svg_path).unwrap_or_default();
    assert!(md == generated, "{} is stale: run `make cost` and commit it", md_path.display());
    assert!(current_svg == svg, "{} is stale: run `make cost` and commit it", svg_path.display());
    Ok(())
}
