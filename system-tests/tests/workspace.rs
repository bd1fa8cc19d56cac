//! Dependency hygiene that the lint tools leave out. cargo-shear (`make lint`) finds each
//! crate's dependencies that nothing imports and test-only ones outside `[dev-dependencies]`,
//! but not an entry of the workspace's `[workspace.dependencies]` that no member uses any more:
//! such an entry pins a version nobody builds and misleads whoever reads the table. And the
//! boundaries between the crates of `shared/`, which no lint knows.

use system_tests::workspace_root;

/// The lines of `text` from the one after `[header]` to the next table.
fn table<'a>(text: &'a str, header: &str) -> Vec<&'a str> {
    text.lines()
        .skip_while(|line| line.trim() != header)
        .skip(1)
        .take_while(|line| !line.trim_start().starts_with('['))
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect()
}

#[test]
fn every_workspace_dependency_is_used_by_a_member() -> anyhow::Result<()> {
    let root = workspace_root();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml"))?;
    let declared: Vec<&str> = table(&manifest, "[workspace.dependencies]")
        .iter()
        .filter_map(|line| line.split_once('='))
        .map(|(k, _)| k.trim())
        .collect();
    anyhow::ensure!(declared.len() > 10, "read {} workspace dependencies: the table moved?", declared.len());

    let members: Vec<String> = manifest
        .lines()
        .skip_while(|line| !line.starts_with("members = ["))
        .skip(1)
        .take_while(|line| line.trim() != "]")
        .filter_map(|line| line.trim().trim_end_matches(',').strip_prefix('"')?.strip_suffix('"').map(str::to_owned))
        .collect();
    anyhow::ensure!(members.iter().any(|m| m == "devhost"), "read the members {members:?}: the list moved?");
    let mut uses = String::new();
    for member in &members {
        uses.push_str(&std::fs::read_to_string(root.join(member).join("Cargo.toml"))?);
    }
    let used = |name: &str| {
        uses.lines().map(str::trim_start).any(|line| {
            line.strip_prefix(name).is_some_and(|rest| {
                let rest = rest.trim_start();
                rest.starts_with(".workspace") || (rest.starts_with('=') && rest.contains("workspace = true"))
            })
        })
    };
    let unused: Vec<&str> = declared.into_iter().filter(|name| !used(name)).collect();
    assert!(unused.is_empty(), "[workspace.dependencies] that no member uses (remove them): {unused:?}");
    Ok(())
}

/// Every package `root` builds on outside tests: its normal and build dependencies, and theirs,
/// by name, as Cargo resolves the workspace (`cargo metadata`).
fn builds_on(metadata: &serde_json::Value, root: &str) -> anyhow::Result<std::collections::BTreeSet<String>> {
    use anyhow::Context as _;
    let packages = metadata["packages"].as_array().context("packages")?;
    let name_of =
        |id: &str| packages.iter().find(|p| p["id"] == id).and_then(|p| p["name"].as_str()).map(str::to_owned);
    let nodes = metadata["resolve"]["nodes"].as_array().context("resolve.nodes")?;
    let root_id =
        packages.iter().find(|p| p["name"] == root).and_then(|p| p["id"].as_str()).context("no such package")?;
    let (mut seen, mut todo) = (std::collections::BTreeSet::new(), vec![root_id.to_owned()]);
    while let Some(id) = todo.pop() {
        let node = nodes.iter().find(|n| n["id"] == id.as_str()).with_context(|| format!("no node {id}"))?;
        for dep in node["deps"].as_array().into_iter().flatten() {
            let not_dev = dep["dep_kinds"].as_array().into_iter().flatten().any(|k| k["kind"] != "dev");
            let dep_id = dep["pkg"].as_str().context("pkg")?;
            if not_dev
                && let Some(name) = name_of(dep_id)
                && seen.insert(name)
            {
                todo.push(dep_id.to_owned());
            }
        }
    }
    Ok(seen)
}

/// The split of `shared/` holds: the Dapr runtime knows no todo code, and the domain needs no
/// async runtime, HTTP client or server, in what they build on, not only in what they name.
#[test]
fn dapr_fn_knows_no_todo_code_and_todo_core_no_io() -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .current_dir(workspace_root())
        .output()?;
    anyhow::ensure!(output.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)?;

    let runtime = builds_on(&metadata, "dapr-fn")?;
    anyhow::ensure!(runtime.contains("reqwest") && runtime.contains("axum"), "read dapr-fn's graph: {runtime:?}");
    let todo: Vec<&String> = runtime.iter().filter(|name| name.starts_with("todo-")).collect();
    assert!(todo.is_empty(), "dapr-fn builds on todo code: {todo:?}");

    let domain = builds_on(&metadata, "todo-core")?;
    anyhow::ensure!(domain.contains("rrule"), "read todo-core's graph: {domain:?}");
    let io: Vec<&str> =
        ["tokio", "reqwest", "axum", "hyper", "dapr-fn"].into_iter().filter(|name| domain.contains(*name)).collect();
    assert!(io.is_empty(), "todo-core builds on {io:?}");
    Ok(())
}
