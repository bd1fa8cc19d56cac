//! Dependency hygiene that the lint tools leave out. cargo-shear (`make lint`) finds each
//! crate's dependencies that nothing imports and test-only ones outside `[dev-dependencies]`,
//! but not an entry of the workspace's `[workspace.dependencies]` that no member uses any more:
//! such an entry pins a version nobody builds and misleads whoever reads the table.

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
