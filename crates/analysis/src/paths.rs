//! Retainer paths: why an object is still alive. From the GC roots (the dump's ROOT lines)
//! through the references each object lists, the shortest chains that reach sample objects of
//! one allocation site (or one address).
//!
//! The graph is not kept at ingest: it is as large as the dump's references, and paths are an
//! occasional drill-down into one dump. [`GraphBuilder`] is a parser visitor that builds it when
//! asked, from the dump file; [`retainer_paths`] then runs one breadth-first search from every
//! root at once, so each target's path is a shortest one.

use std::collections::{HashMap, VecDeque};

use heapfleet_dump::{ObjectType, Record, Visitor};
use serde::{Deserialize, Serialize};

/// What the paths should reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathTarget {
    /// Objects allocated at this line of a file whose path is `file` or ends with `/file`.
    Site {
        /// The file, or a trailing part of its path.
        file: String,
        /// The line.
        line: u32,
    },
    /// The object at this address.
    Address(u64),
}

/// One object along a path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathStep {
    /// Its address in this dump.
    pub address: u64,
    /// Its type.
    pub object_type: ObjectType,
    /// Its class name, when the dump names it.
    pub class_name: Option<String>,
    /// Where it was allocated, when traced.
    pub file: Option<String>,
    /// The line.
    pub line: Option<u32>,
}

/// A chain from a GC root to a target object: `steps[0]` is held by the root, each step holds
/// the next, the last is the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetainerPath {
    /// The root category (`vm`, `global_list`, `machine_context`, ...).
    pub root: String,
    /// The objects, root side first.
    pub steps: Vec<PathStep>,
}

/// The answer of [`retainer_paths`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetainerPaths {
    /// Objects matching the target.
    pub targets: u64,
    /// Of those, how many a root reaches.
    pub reachable: u64,
    /// Up to the requested number of paths, shortest first.
    pub paths: Vec<RetainerPath>,
}

const NO_NODE: u32 = u32::MAX;

/// A dump's object graph, compact: one entry per object, references as one flat list.
#[derive(Debug, Default)]
pub struct ObjectGraph {
    addresses: Vec<u64>,
    types: Vec<ObjectType>,
    classes: Vec<u64>,
    files: Vec<u32>,
    lines: Vec<u32>,
    /// `edges[edge_starts[i]..edge_starts[i + 1]]` are node `i`'s references (addresses until
    /// [`GraphBuilder::finish`] resolves them to node indexes).
    edge_starts: Vec<u64>,
    edges: Vec<u64>,
    roots: Vec<(u32, u64)>,
    root_names: Vec<String>,
    file_names: Vec<String>,
    class_names: HashMap<u64, String>,
    index_of: HashMap<u64, u32>,
}

/// The visitor that builds an [`ObjectGraph`] while a dump is parsed.
#[derive(Debug, Default)]
pub struct GraphBuilder {
    graph: ObjectGraph,
    file_ids: HashMap<String, u32>,
    root_ids: HashMap<String, u32>,
}

impl GraphBuilder {
    /// An empty graph.
    pub fn new() -> GraphBuilder {
        GraphBuilder::default()
    }

    /// The finished graph, references resolved (a reference to an address the dump does not
    /// hold is dropped).
    pub fn finish(self) -> ObjectGraph {
        let mut graph = self.graph;
        graph.edge_starts.push(graph.edges.len() as u64);
        let index_of = &graph.index_of;
        for edge in &mut graph.edges {
            *edge = index_of
                .get(edge)
                .map_or(u64::from(NO_NODE), |&index| u64::from(index));
        }
        for root in &mut graph.roots {
            root.1 = index_of
                .get(&root.1)
                .map_or(u64::from(NO_NODE), |&index| u64::from(index));
        }
        graph
    }

    fn file_id(&mut self, file: Option<String>) -> u32 {
        let Some(file) = file else { return NO_NODE };
        if let Some(&id) = self.file_ids.get(&file) {
            return id;
        }
        let id = self.graph.file_names.len() as u32;
        self.graph.file_names.push(file.clone());
        self.file_ids.insert(file, id);
        id
    }
}

impl Visitor for GraphBuilder {
    fn record(&mut self, _line_number: u64, record: &Record<'_>) {
        match record {
            Record::Object(object) => {
                let index = self.graph.addresses.len() as u32;
                // A repeated address (a broken dump) keeps naming the first object.
                self.graph.index_of.entry(object.address).or_insert(index);
                let object_type = object.object_type.unwrap_or(ObjectType::Unknown);
                if matches!(object_type, ObjectType::Class | ObjectType::Module)
                    && let Some(name) = &object.name
                {
                    self.graph
                        .class_names
                        .insert(object.address, name.decode().into_owned());
                }
                let file = object.file.as_ref().map(|file| file.decode().into_owned());
                let file_id = self.file_id(file);
                let graph = &mut self.graph;
                graph.addresses.push(object.address);
                graph.types.push(object_type);
                graph.classes.push(object.class.unwrap_or(0));
                graph.files.push(file_id);
                graph.lines.push(object.line.unwrap_or(0));
                graph.edge_starts.push(graph.edges.len() as u64);
                graph.edges.extend(object.references.addresses());
            }
            Record::Root(root) => {
                let name = root.root.decode().into_owned();
                let id = match self.root_ids.get(&name) {
                    Some(&id) => id,
                    None => {
                        let id = self.graph.root_names.len() as u32;
                        self.graph.root_names.push(name.clone());
                        self.root_ids.insert(name, id);
                        id
                    }
                };
                self.graph
                    .roots
                    .extend(root.references.addresses().map(|address| (id, address)));
            }
            Record::Shape(_) => {}
        }
    }
}

impl ObjectGraph {
    /// Objects in the graph.
    pub fn len(&self) -> usize {
        self.addresses.len()
    }

    /// Whether the graph holds no object.
    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty()
    }

    fn step(&self, node: usize) -> PathStep {
        let file = self.file_names.get(self.files[node] as usize).cloned();
        PathStep {
            address: self.addresses[node],
            object_type: self.types[node],
            class_name: self.class_names.get(&self.classes[node]).cloned(),
            line: file
                .as_ref()
                .and(Some(self.lines[node]))
                .filter(|&line| line > 0),
            file,
        }
    }

    fn matches(&self, node: usize, target: &PathTarget) -> bool {
        match target {
            PathTarget::Address(address) => self.addresses[node] == *address,
            PathTarget::Site { file, line } => {
                self.lines[node] == *line
                    && self
                        .file_names
                        .get(self.files[node] as usize)
                        .is_some_and(|path| crate::site::path_matches(path, file))
            }
        }
    }
}

/// Up to `max_paths` shortest paths from the GC roots to objects matching `target`, one per
/// target object, the shortest first.
pub fn retainer_paths(graph: &ObjectGraph, target: &PathTarget, max_paths: usize) -> RetainerPaths {
    let node_count = graph.len();
    let mut parent = vec![NO_NODE; node_count];
    let mut root_of = vec![NO_NODE; node_count];
    let mut seen = vec![false; node_count];
    let mut queue = VecDeque::new();
    for &(root, node) in &graph.roots {
        let node = node as u32;
        if node != NO_NODE && !seen[node as usize] {
            seen[node as usize] = true;
            root_of[node as usize] = root;
            queue.push_back(node);
        }
    }
    let targets: Vec<usize> = (0..node_count)
        .filter(|&node| graph.matches(node, target))
        .collect();
    let mut is_target = vec![false; node_count];
    for &node in &targets {
        is_target[node] = true;
    }
    // Breadth first: targets are met in order of distance.
    let mut found = Vec::new();
    let mut reachable = 0u64;
    while let Some(node) = queue.pop_front() {
        let node = node as usize;
        if is_target[node] {
            reachable += 1;
            if found.len() < max_paths {
                found.push(node);
            }
        }
        let start = graph.edge_starts[node] as usize;
        let end = graph.edge_starts[node + 1] as usize;
        for &next in &graph.edges[start..end] {
            let next = next as u32;
            if next == NO_NODE || seen[next as usize] {
                continue;
            }
            seen[next as usize] = true;
            parent[next as usize] = node as u32;
            root_of[next as usize] = root_of[node];
            queue.push_back(next);
        }
    }
    let paths = found
        .into_iter()
        .map(|target_node| {
            let mut steps = Vec::new();
            let mut node = target_node as u32;
            while node != NO_NODE {
                steps.push(graph.step(node as usize));
                node = parent[node as usize];
            }
            steps.reverse();
            RetainerPath {
                root: graph
                    .root_names
                    .get(root_of[target_node] as usize)
                    .cloned()
                    .unwrap_or_default(),
                steps,
            }
        })
        .collect();
    RetainerPaths {
        targets: targets.len() as u64,
        reachable,
        paths,
    }
}

#[cfg(test)]
mod tests {
    use heapfleet_dump::{ParseOptions, parse_reader};

    use super::*;

    const DUMP: &str = concat!(
        r#"{"type":"ROOT", "root":"vm", "references":["0x10"]}"#,
        "\n",
        r#"{"type":"ROOT", "root":"global_list", "references":["0x40"]}"#,
        "\n",
        r#"{"address":"0x8", "type":"CLASS", "name":"Cache", "references":[], "memsize":40}"#,
        "\n",
        r#"{"address":"0x10", "type":"OBJECT", "class":"0x8", "references":["0x20"], "memsize":40}"#,
        "\n",
        r#"{"address":"0x20", "type":"ARRAY", "references":["0x30", "0x31"], "file":"/app/app/jobs/leak.rb", "line":3, "memsize":40}"#,
        "\n",
        r#"{"address":"0x30", "type":"STRING", "file":"/app/app/jobs/leak.rb", "line":7, "memsize":40}"#,
        "\n",
        r#"{"address":"0x31", "type":"STRING", "file":"/app/app/jobs/leak.rb", "line":7, "memsize":40}"#,
        "\n",
        r#"{"address":"0x40", "type":"HASH", "references":["0x31"], "memsize":40}"#,
        "\n",
        r#"{"address":"0x50", "type":"STRING", "file":"/app/app/jobs/leak.rb", "line":7, "memsize":40}"#,
        "\n",
    );

    fn graph() -> ObjectGraph {
        let mut builder = GraphBuilder::new();
        parse_reader(DUMP.as_bytes(), &ParseOptions::default(), &mut builder).unwrap();
        builder.finish()
    }

    #[test]
    fn test_retainer_paths_are_shortest_from_the_roots() {
        let target = PathTarget::Site {
            file: "app/jobs/leak.rb".to_owned(),
            line: 7,
        };
        let answer = retainer_paths(&graph(), &target, 5);
        assert_eq!(answer.targets, 3);
        assert_eq!(answer.reachable, 2, "0x50 is unreachable garbage");
        let shapes: Vec<(String, Vec<u64>)> = answer
            .paths
            .iter()
            .map(|path| {
                (
                    path.root.clone(),
                    path.steps.iter().map(|step| step.address).collect(),
                )
            })
            .collect();
        // 0x31 is reached from the global list in two steps, before 0x30's three from the vm.
        assert_eq!(
            shapes,
            vec![
                ("global_list".to_owned(), vec![0x40, 0x31]),
                ("vm".to_owned(), vec![0x10, 0x20, 0x30]),
            ]
        );
        let vm_path = &answer.paths[1];
        assert_eq!(vm_path.steps[0].class_name.as_deref(), Some("Cache"));
        assert_eq!(vm_path.steps[1].line, Some(3));
    }

    #[test]
    fn test_retainer_paths_to_one_address_and_limit() {
        let answer = retainer_paths(&graph(), &PathTarget::Address(0x30), 5);
        assert_eq!((answer.targets, answer.reachable), (1, 1));
        let limited = retainer_paths(
            &graph(),
            &PathTarget::Site {
                file: "leak.rb".to_owned(),
                line: 7,
            },
            1,
        );
        assert_eq!(limited.paths.len(), 1);
        assert_eq!(limited.reachable, 2);
        let none = retainer_paths(
            &graph(),
            &PathTarget::Site {
                file: "eak.rb".to_owned(),
                line: 7,
            },
            1,
        );
        assert_eq!(none.targets, 0, "a partial file name does not match");
    }
}
