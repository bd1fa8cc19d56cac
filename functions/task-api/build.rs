//! Packed relative relocations (`-z pack-relative-relocs`, DT_RELR) for the task-api binary.
//!
//! task-api is a position-independent executable, and its read-only data hold ~39,000 pointers
//! (nearly all chrono-tz's, to its zones' names and abbreviations). As RELA entries that is 24
//! bytes each, 0.92 MB of the binary, which the loader also reads at every start; packed (RELR),
//! 18 kB. The release binary must stay within the 8 MB `make
//! bench` holds it to (workspace Cargo.toml, above the release profile's package settings).
//!
//! The loader must know DT_RELR: glibc 2.36 or later (the linker then makes the binary require
//! `GLIBC_ABI_DT_RELR`, so an older glibc refuses it by name at start, never runs it half
//! relocated), or musl 1.2.4 or later, which is what the images' static musl binaries carry
//! (Rust 1.93 and later bundle musl 1.2.5; the Dockerfile pins Rust 1.95). An older musl ignores
//! DT_RELR and the binary would crash at start, so for musl the flag needs Rust 1.93 or later;
//! on a glibc host older than 2.36 building for itself it is left out (the binary is then
//! larger, and starts there).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let env = |name: &str| std::env::var(name).unwrap_or_default();
    if env("CARGO_CFG_TARGET_OS") != "linux" {
        return;
    }
    let supported = match env("CARGO_CFG_TARGET_ENV").as_str() {
        "musl" => rustc_minor().is_some_and(|minor| minor >= 93),
        // Another target's glibc cannot be asked; the host's can, when it is the target.
        "gnu" => env("HOST") != env("TARGET") || host_glibc().is_none_or(|version| version >= (2, 36)),
        _ => false,
    };
    if supported {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    } else {
        println!(
            "cargo:warning=task-api is linked without packed relative relocations (needs glibc 2.36 / Rust 1.93's musl): the binary is ~0.9 MB larger"
        );
    }
}

/// The minor version of the compiler cargo builds with (`rustc 1.95.0 (...)` → 95).
fn rustc_minor() -> Option<u32> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let output = Command::new(rustc).arg("--version").output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    text.split_whitespace().nth(1)?.split('.').nth(1)?.parse().ok()
}

/// The host's glibc version (`getconf GNU_LIBC_VERSION`: `glibc 2.41`), if it says.
fn host_glibc() -> Option<(u32, u32)> {
    let output = Command::new("getconf").arg("GNU_LIBC_VERSION").output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let mut numbers = text.split_whitespace().nth(1)?.split('.').map(str::parse::<u32>);
    Some((numbers.next()?.ok()?, numbers.next()?.ok()?))
}
