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

/// The directories whose absolute paths name a machine: homes (`/home` and `/Users`, then a
/// user name), the superuser's home and the build machine's work directory, and Windows homes.
/// Spelled in parts so that this file does not hold what it looks for.
const HOMES: [&str; 2] = ["home", "Users"];
const FIXED: [&str; 2] = ["root", "work"];

/// The machine path starting at `at` in `text`, if one starts there at the start of a word
/// (`../../x/`, a traversal, is not one).
fn machine_path_at(text: &str, at: usize) -> Option<String> {
    let before = text[..at].chars().next_back();
    if before.is_some_and(|character| character.is_alphanumeric() || ".-_/\\".contains(character)) {
        return None;
    }
    let rest = &text[at..];
    let named = |top: &str| {
        let prefix = format!("/{top}/");
        let name = rest.strip_prefix(prefix.as_str())?;
        let end = name.find('/')?;
        let valid = end > 0
            && name[..end]
                .chars()
                .all(|c| c.is_alphanumeric() || "._-".contains(c));
        valid.then(|| rest[..prefix.len() + end + 1].to_owned())
    };
    let fixed = |top: &str| {
        let prefix = format!("/{top}/");
        rest.starts_with(prefix.as_str()).then_some(prefix)
    };
    let windows = format!("C:\\{}\\", HOMES[1]);
    HOMES
        .iter()
        .find_map(|top| named(top))
        .or_else(|| FIXED.iter().find_map(|top| fixed(top)))
        .or_else(|| rest.starts_with(windows.as_str()).then_some(windows))
}

fn machine_paths(text: &str) -> Vec<String> {
    text.char_indices()
        .filter(|(_, character)| matches!(character, '/' | 'C'))
        .filter_map(|(at, _)| machine_path_at(text, at))
        .collect()
}

#[test]
fn test_machine_path_detection() {
    let [home, users] = HOMES;
    let [root, work] = FIXED;
    assert_eq!(
        machine_paths(&format!("see /{home}/alice/src/x.rs")),
        vec![format!("/{home}/alice/")]
    );
    assert_eq!(
        machine_paths(&format!("\"/{users}/bob/dev\"")),
        vec![format!("/{users}/bob/")]
    );
    assert_eq!(
        machine_paths(&format!("cd /{root}/.cargo && ls /{work}/main")),
        vec![format!("/{root}/"), format!("/{work}/")]
    );
    assert_eq!(
        machine_paths(&format!("C:\\{users}\\carol\\x")),
        vec![format!("C:\\{users}\\")]
    );
    assert!(
        machine_paths(&format!(
            "../../../{root}/.ssh and app/{home}/x/ and /etc/passwd"
        ))
        .is_empty()
    );
}

#[test]
fn test_no_tracked_file_names_a_machine_path() {
    let root = workspace_root();
    let listing = std::process::Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(&root)
        .output()
        .expect("git lists the tracked files");
    assert!(listing.status.success(), "git ls-files failed");
    let files: Vec<String> = String::from_utf8(listing.stdout)
        .unwrap()
        .split('\0')
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect();
    assert!(files.len() > 50, "git lists only {} files", files.len());
    let mut found = Vec::new();
    for name in &files {
        let Ok(bytes) = std::fs::read(root.join(name)) else {
            continue;
        };
        // Text only: dumps written by Ruby may hold anything in their strings.
        if bytes.contains(&0) {
            continue;
        }
        let text = String::from_utf8_lossy(&bytes);
        for path in machine_paths(&text) {
            found.push(format!("{name}: {path}"));
        }
    }
    assert!(found.is_empty(), "machine-specific paths: {found:?}");
}
