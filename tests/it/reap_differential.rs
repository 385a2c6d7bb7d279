//! heapfleet's dominator tree against reap 0.3.3 (`cargo install reap --version 0.3.3
//! --locked`), an independent implementation of dominators and retained sizes for Ruby heap
//! dumps, on the same real dumps: the objects reap lists as retaining the most memory must
//! retain exactly as many objects, and the same bytes (to reap's printed precision), in
//! heapfleet's tree; so must the whole reachable heap.

use std::path::{Path, PathBuf};
use std::process::Command;

use heapfleet_analysis::OwnershipAnalysis;
use heapfleet_dump::ParseOptions;
use heapfleet_tests::{fixture, generated_dir, generated_dump, tool_available};

/// One line of reap's "Objects retaining the most live memory" list.
#[derive(Debug)]
struct ReapObject {
    label: String,
    address: Option<u64>,
    bytes: f64,
    /// Half of the last digit reap printed, in bytes: how far the true size can be from it.
    precision: f64,
    objects: u64,
}

/// Parses `Array[0x7f50ee4cff40][len=5]: 130.3 KB (2201 objects)` (and `root: ...`).
fn parse_line(line: &str) -> Option<ReapObject> {
    let (label, rest) = line.rsplit_once(": ")?;
    let (size, objects) = rest.split_once(" (")?;
    let objects: u64 = objects.strip_suffix(" objects)")?.parse().ok()?;
    let (number, unit) = size.split_once(' ')?;
    let scale = match unit {
        "B" => 1.0,
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        _ => return None,
    };
    let bytes = number.parse::<f64>().ok()? * scale;
    let address = label.find("[0x").and_then(|start| {
        let hex = &label[start + 3..];
        let end = hex.find(']')?;
        u64::from_str_radix(&hex[..end], 16).ok()
    });
    // reap prints one decimal, or whole bytes.
    let precision = if scale == 1.0 { 0.5 } else { 0.05 * scale };
    Some(ReapObject {
        label: label.to_owned(),
        address,
        bytes,
        precision,
        objects,
    })
}

/// Runs reap on `dump` and returns its largest retainers.
fn reap_retainers(dump: &Path) -> Vec<ReapObject> {
    let output = Command::new("reap")
        .args(["--count", "25"])
        .arg(dump)
        .output()
        .expect("reap runs");
    assert!(
        output.status.success(),
        "reap failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let section = text
        .split("Objects retaining the most live memory:")
        .nth(1)
        .expect("reap lists the objects retaining the most memory");
    section
        .lines()
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .filter(|line| !line.starts_with("..."))
        .map(|line| parse_line(line).unwrap_or_else(|| panic!("unexpected reap line {line:?}")))
        .collect()
}

/// Whether `ours` prints as reap's `object` does (decimal units, one decimal).
fn same_size(ours: u64, object: &ReapObject) -> bool {
    (ours as f64 - object.bytes).abs() <= object.precision + 1e-6
}

fn dumps() -> Vec<PathBuf> {
    let medium = generated_dump(
        "large",
        &generated_dir().join("medium"),
        &["--target-mb", "24"],
    )
    .unwrap();
    vec![fixture("dumps/small/heap-1795773583.dump"), medium]
}

#[test]
fn test_retained_sizes_equal_reaps() {
    if !tool_available("reap") || !tool_available("ruby") {
        return;
    }
    for dump in dumps() {
        let reap = reap_retainers(&dump);
        assert!(reap.len() > 5, "{}: reap listed {reap:?}", dump.display());
        let file = std::fs::File::open(&dump).unwrap();
        let mut graph =
            heapfleet_ingest::dump_graph(file, &ParseOptions::default(), u64::MAX, 0).unwrap();
        let analysis = OwnershipAnalysis::new(&mut graph);
        let mut compared = 0;
        for object in &reap {
            let (bytes, objects) = match object.address {
                // reap's root is its own node over the GC roots; ours does not count itself.
                None if object.label == "root" => {
                    let (bytes, objects) = analysis.retained_root();
                    (bytes, objects + 1)
                }
                None => continue,
                Some(address) => {
                    let node = analysis
                        .graph()
                        .node_at(address)
                        .unwrap_or_else(|| panic!("no object at 0x{address:x}"));
                    analysis
                        .retained(node)
                        .unwrap_or_else(|| panic!("0x{address:x} is unreachable in our tree"))
                }
            };
            assert_eq!(
                objects,
                object.objects,
                "{}: retained objects of {}",
                dump.display(),
                object.label
            );
            assert!(
                same_size(bytes, object),
                "{}: {} retains {bytes} bytes here, {} in reap",
                dump.display(),
                object.label,
                object.bytes
            );
            compared += 1;
        }
        assert!(compared > 5, "{}: compared {compared}", dump.display());
    }
}

#[test]
fn test_parse_line_reads_reaps_format() {
    let object = parse_line("Array[0x7f50ee4cff40][len=5]: 130.3 KB (2201 objects)").unwrap();
    assert_eq!(object.address, Some(0x7f50ee4cff40));
    assert_eq!(object.objects, 2201);
    assert!((object.bytes - 130_300.0).abs() < 1e-6);
    let root = parse_line("root: 2.0 MB (7229 objects)").unwrap();
    assert_eq!((root.address, root.label.as_str()), (None, "root"));
    assert!(same_size(130_349, &object));
    assert!(!same_size(130_351, &object));
    assert!(same_size(1_960_382, &root));
}
