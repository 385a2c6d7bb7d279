//! Source hygiene the compiler does not check: every Rust file opens with a `//!` comment that
//! says what it owns, and no file names a machine-specific path.

use std::path::{Path, PathBuf};

use heapfleet_tests::workspace_root;

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !matches!(
                name.as_str(),
                "target" | ".git" | "generated" | "corpus" | "artifacts"
            ) {
                rust_files(&path, found);
            }
        } else if name.ends_with(".rs") {
            found.push(path);
        }
    }
}

#[test]
fn test_every_rust_file_opens_with_a_module_doc_comment() {
    let root = workspace_root();
    let mut files = Vec::new();
    for top in ["crates", "services", "tests"] {
        rust_files(&root.join(top), &mut files);
    }
    assert!(files.len() > 20, "found only {} files", files.len());
    let missing: Vec<String> = files
        .iter()
        .filter(|path| {
            let text = std::fs::read_to_string(path).unwrap();
            let first = text
                .lines()
                .find(|line| !line.trim().is_empty())
                .unwrap_or_default();
            !first.starts_with("//!")
        })
        .map(|path| path.strip_prefix(&root).unwrap().display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a leading `//!` comment: {missing:?}"
    );
}
