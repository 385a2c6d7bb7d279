//! Retainer paths: why an object is still alive. From the GC roots (the dump's ROOT lines)
//! through the references each object lists, the shortest chain that reaches each object of
//! one allocation site (or one address), clustered by what the chain is made of.
//!
//! The graph is not kept at ingest: it is as large as the dump's references, and paths are an
//! occasional drill-down into one dump. [`GraphBuilder`] is a parser visitor that builds it when
//! asked, from the dump file; [`retainer_paths`] then runs one breadth-first search from every
//! root at once, so each target's path is a shortest one.
//!
//! On a real leak most targets hang off the same chain of containers, at different addresses:
//! a path's *signature* (its root category, then each step's name and allocation site) leaves
//! the addresses out, and the answer counts the targets per signature, every reachable target
//! included, with one example path each.

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
    /// Its own name, for a named CLASS or MODULE.
    pub name: Option<String>,
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

/// One step of a path signature: a [`PathStep`] without its address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SignatureStep {
    /// A CLASS or MODULE's own name, else its class name, else its type.
    pub label: String,
    /// Where it was allocated, when traced.
    pub file: Option<String>,
    /// The line.
    pub line: Option<u32>,
}

/// The target objects whose shortest paths have one signature: the same root category, then
/// step by step the same names and allocation sites.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathCluster {
    /// The root category.
    pub root: String,
    /// One entry per step, root side first; the last is the target.
    pub signature: Vec<SignatureStep>,
    /// Target objects whose shortest path has this signature.
    pub count: u64,
    /// One of those paths, with addresses: the first the search met.
    pub example: RetainerPath,
}

/// The answer of [`retainer_paths`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetainerPaths {
    /// Objects matching the target.
    pub targets: u64,
    /// Of those, how many a root reaches; the counts of all clusters add up to it.
    pub reachable: u64,
    /// Distinct signatures among the reachable targets' paths (clusters before the cut).
    pub signatures: u64,
    /// Up to the requested number of clusters, the largest first, then the shorter.
    pub clusters: Vec<PathCluster>,
}

const NO_NODE: u32 = u32::MAX;

/// The class name of objects whose class is in the dump without a name, as the aggregator
/// names it.
const ANONYMOUS_CLASS: &str = "(anonymous class)";

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
    /// CLASS/MODULE address -> its name (`None`: anonymous).
    class_names: HashMap<u64, Option<String>>,
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
                if matches!(object_type, ObjectType::Class | ObjectType::Module) {
                    // Named as the aggregator names classes, so paths and sites agree.
                    let name = object
                        .name
                        .or(object.real_class_name)
                        .map(|name| name.decode().into_owned());
                    self.graph.class_names.insert(object.address, name);
                }
                let file = object.file.as_ref().map(|file| file.decode().into_owned());
                let file_id = self.file_id(file);
                let graph = &mut self.graph;
                graph.addresses.push(object.address);
                graph.types.push(object_type);
                // As the aggregator: an IMEMO's class slot is VM data, not a class.
                graph.classes.push(if object_type == ObjectType::Imemo {
                    0
                } else {
                    object.class.unwrap_or(0)
                });
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

    /// A CLASS or MODULE's own name.
    fn own_name(&self, node: usize) -> Option<&str> {
        if !matches!(self.types[node], ObjectType::Class | ObjectType::Module) {
            return None;
        }
        self.class_names
            .get(&self.addresses[node])
            .and_then(Option::as_deref)
    }

    /// The name of the node's class, when its class is in the dump.
    fn class_name(&self, node: usize) -> Option<&str> {
        self.class_names
            .get(&self.classes[node])
            .map(|name| name.as_deref().unwrap_or(ANONYMOUS_CLASS))
    }

    /// What a signature calls the node: its own name, else its class name, else its type.
    fn label(&self, node: usize) -> &str {
        self.own_name(node)
            .or_else(|| self.class_name(node))
            .unwrap_or_else(|| self.types[node].as_str())
    }

    /// The node's allocation site as (file id, line), `(NO_NODE, 0)` when not traced.
    fn site(&self, node: usize) -> (u32, u32) {
        match self.files[node] {
            NO_NODE => (NO_NODE, 0),
            file => (file, self.lines[node]),
        }
    }

    fn file_name(&self, file: u32) -> Option<String> {
        self.file_names.get(file as usize).cloned()
    }

    fn step(&self, node: usize) -> PathStep {
        let (file, line) = self.site(node);
        let file = self.file_name(file);
        PathStep {
            address: self.addresses[node],
            object_type: self.types[node],
            class_name: self.class_name(node).map(str::to_owned),
            name: self.own_name(node).map(str::to_owned),
            line: file.as_ref().and(Some(line)).filter(|&line| line > 0),
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

/// One signature entry: a step (or, with no parent, a root category) after the signature
/// `parent`. Borrowing the labels from the graph keeps the table free of copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct SignatureEntry<'graph> {
    parent: u32,
    label: &'graph str,
    file: u32,
    line: u32,
}

/// Signatures interned as a tree, each an entry after its parent's, so equal signatures get
/// the same id and a node's is computed once, from its parent's.
struct Signatures<'graph> {
    graph: &'graph ObjectGraph,
    /// Node -> the signature of its path (`NO_NODE`: not computed yet).
    of_node: Vec<u32>,
    entries: Vec<SignatureEntry<'graph>>,
    /// Steps in each signature (a root category alone has none).
    depths: Vec<u32>,
    ids: HashMap<SignatureEntry<'graph>, u32>,
}

impl<'graph> Signatures<'graph> {
    fn new(graph: &'graph ObjectGraph) -> Signatures<'graph> {
        Signatures {
            graph,
            of_node: vec![NO_NODE; graph.len()],
            entries: Vec::new(),
            depths: Vec::new(),
            ids: HashMap::new(),
        }
    }

    fn intern(&mut self, entry: SignatureEntry<'graph>) -> u32 {
        if let Some(&id) = self.ids.get(&entry) {
            return id;
        }
        let id = self.entries.len() as u32;
        let depth = match entry.parent {
            NO_NODE => 0,
            parent => self.depths[parent as usize] + 1,
        };
        self.entries.push(entry);
        self.depths.push(depth);
        self.ids.insert(entry, id);
        id
    }

    /// The signature of `node`'s path in the search tree (`parent`, `root_of`).
    fn of(&mut self, node: usize, parent: &[u32], root_of: &[u32]) -> u32 {
        // Up to the first node whose signature is known (or the root), then down again: each
        // node is interned once however many targets share its path.
        let mut pending = Vec::new();
        let mut current = node as u32;
        let mut known = NO_NODE;
        while current != NO_NODE {
            known = self.of_node[current as usize];
            if known != NO_NODE {
                break;
            }
            pending.push(current as usize);
            current = parent[current as usize];
        }
        if known == NO_NODE {
            let top = *pending.last().expect("a node not yet interned is pending");
            let root = self
                .graph
                .root_names
                .get(root_of[top] as usize)
                .map_or("", String::as_str);
            known = self.intern(SignatureEntry {
                parent: NO_NODE,
                label: root,
                file: NO_NODE,
                line: 0,
            });
        }
        for &step in pending.iter().rev() {
            let (file, line) = self.graph.site(step);
            known = self.intern(SignatureEntry {
                parent: known,
                label: self.graph.label(step),
                file,
                line,
            });
            self.of_node[step] = known;
        }
        known
    }

    /// The root category and the steps of signature `id`.
    fn resolve(&self, id: u32) -> (String, Vec<SignatureStep>) {
        let mut steps = Vec::new();
        let mut current = id;
        loop {
            let entry = self.entries[current as usize];
            if entry.parent == NO_NODE {
                steps.reverse();
                return (entry.label.to_owned(), steps);
            }
            let file = self.graph.file_name(entry.file);
            steps.push(SignatureStep {
                label: entry.label.to_owned(),
                line: file.as_ref().and(Some(entry.line)).filter(|&line| line > 0),
                file,
            });
            current = entry.parent;
        }
    }
}

/// The shortest path from the GC roots to each object matching `target`, clustered by
/// signature: every reachable target is counted, and up to `max_clusters` clusters are kept,
/// the largest first (then the shorter, then the first met), each with one example path.
pub fn retainer_paths(
    graph: &ObjectGraph,
    target: &PathTarget,
    max_clusters: usize,
) -> RetainerPaths {
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
    let is_target: Vec<bool> = (0..node_count)
        .map(|node| graph.matches(node, target))
        .collect();
    let targets = is_target.iter().filter(|&&matched| matched).count() as u64;
    // Breadth first: targets are met in order of distance, and each one's parent chain is a
    // shortest path.
    let mut reached = Vec::new();
    while let Some(node) = queue.pop_front() {
        let node = node as usize;
        if is_target[node] {
            reached.push(node);
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

    // (signature, targets with it, the first target met with it), in order of first meeting.
    let mut signatures = Signatures::new(graph);
    let mut tallies: Vec<(u32, u64, usize)> = Vec::new();
    let mut tally_of: HashMap<u32, usize> = HashMap::new();
    for &node in &reached {
        let signature = signatures.of(node, &parent, &root_of);
        let tally = *tally_of.entry(signature).or_insert_with(|| {
            tallies.push((signature, 0, node));
            tallies.len() - 1
        });
        tallies[tally].1 += 1;
    }
    // A stable sort: ties keep the order of first meeting, so the answer is deterministic.
    tallies.sort_by_key(|&(signature, count, _)| {
        (
            std::cmp::Reverse(count),
            signatures.depths[signature as usize],
        )
    });
    let distinct = tallies.len() as u64;
    tallies.truncate(max_clusters);
    let clusters = tallies
        .into_iter()
        .map(|(signature, count, example)| {
            let (root, steps) = signatures.resolve(signature);
            PathCluster {
                example: RetainerPath {
                    root: root.clone(),
                    steps: path_to(graph, &parent, example),
                },
                root,
                signature: steps,
                count,
            }
        })
        .collect();
    RetainerPaths {
        targets,
        reachable: reached.len() as u64,
        signatures: distinct,
        clusters,
    }
}

/// The steps from the root to `node` along the search tree.
fn path_to(graph: &ObjectGraph, parent: &[u32], node: usize) -> Vec<PathStep> {
    let mut steps = Vec::new();
    let mut current = node as u32;
    while current != NO_NODE {
        steps.push(graph.step(current as usize));
        current = parent[current as usize];
    }
    steps.reverse();
    steps
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

    fn graph_of(dump: &str) -> ObjectGraph {
        let mut builder = GraphBuilder::new();
        parse_reader(dump.as_bytes(), &ParseOptions::default(), &mut builder).unwrap();
        builder.finish()
    }

    fn graph() -> ObjectGraph {
        graph_of(DUMP)
    }

    fn leak_site() -> PathTarget {
        PathTarget::Site {
            file: "app/jobs/leak.rb".to_owned(),
            line: 7,
        }
    }

    /// Each cluster as (root, labels, count).
    fn shapes(answer: &RetainerPaths) -> Vec<(String, Vec<String>, u64)> {
        answer
            .clusters
            .iter()
            .map(|cluster| {
                (
                    cluster.root.clone(),
                    cluster
                        .signature
                        .iter()
                        .map(|step| step.label.clone())
                        .collect(),
                    cluster.count,
                )
            })
            .collect()
    }

    #[test]
    fn test_retainer_paths_are_shortest_from_the_roots() {
        let answer = retainer_paths(&graph(), &leak_site(), 5);
        assert_eq!(answer.targets, 3);
        assert_eq!(answer.reachable, 2, "0x50 is unreachable garbage");
        let examples: Vec<(String, Vec<u64>)> = answer
            .clusters
            .iter()
            .map(|cluster| {
                (
                    cluster.example.root.clone(),
                    cluster
                        .example
                        .steps
                        .iter()
                        .map(|step| step.address)
                        .collect(),
                )
            })
            .collect();
        // 0x31 is reached from the global list in two steps, before 0x30's three from the vm;
        // one target each, so the shorter path comes first.
        assert_eq!(
            examples,
            vec![
                ("global_list".to_owned(), vec![0x40, 0x31]),
                ("vm".to_owned(), vec![0x10, 0x20, 0x30]),
            ]
        );
        let vm_path = &answer.clusters[1].example;
        assert_eq!(vm_path.steps[0].class_name.as_deref(), Some("Cache"));
        assert_eq!(
            vm_path.steps[0].name, None,
            "an instance has no name of its own"
        );
        assert_eq!(vm_path.steps[1].line, Some(3));
        assert_eq!(
            answer.clusters[1].signature,
            vec![
                SignatureStep {
                    label: "Cache".to_owned(),
                    file: None,
                    line: None,
                },
                SignatureStep {
                    label: "ARRAY".to_owned(),
                    file: Some("/app/app/jobs/leak.rb".to_owned()),
                    line: Some(3),
                },
                SignatureStep {
                    label: "STRING".to_owned(),
                    file: Some("/app/app/jobs/leak.rb".to_owned()),
                    line: Some(7),
                },
            ]
        );
    }

    #[test]
    fn test_retainer_paths_to_one_address_and_limit() {
        let answer = retainer_paths(&graph(), &PathTarget::Address(0x30), 5);
        assert_eq!((answer.targets, answer.reachable), (1, 1));
        assert_eq!(answer.clusters.len(), 1);
        assert_eq!(answer.clusters[0].count, 1);
        let limited = retainer_paths(&graph(), &leak_site(), 1);
        assert_eq!(limited.clusters.len(), 1);
        assert_eq!(limited.reachable, 2);
        assert_eq!(limited.signatures, 2, "the cut clusters are still counted");
        let none = retainer_paths(
            &graph(),
            &PathTarget::Site {
                file: "eak.rb".to_owned(),
                line: 7,
            },
            1,
        );
        assert_eq!(none.targets, 0, "a partial file name does not match");
        assert!(none.clusters.is_empty());
    }

    /// A module's array of hashes and a cache object's array, holding strings of one site.
    const CHAINS: &str = concat!(
        r#"{"type":"ROOT", "root":"vm", "references":["0x100"]}"#,
        "\n",
        r#"{"type":"ROOT", "root":"global_list", "references":["0x500"]}"#,
        "\n",
        r#"{"address":"0x1", "type":"CLASS", "name":"Array", "references":[]}"#,
        "\n",
        r#"{"address":"0x2", "type":"CLASS", "name":"Hash", "references":[]}"#,
        "\n",
        r#"{"address":"0x3", "type":"CLASS", "name":"String", "references":[]}"#,
        "\n",
        r#"{"address":"0x4", "type":"CLASS", "name":"Module", "references":[]}"#,
        "\n",
        r#"{"address":"0x5", "type":"CLASS", "name":"Cache", "references":[]}"#,
        "\n",
        r#"{"address":"0x100", "type":"MODULE", "class":"0x4", "name":"Registry", "references":["0x200", "0x210"]}"#,
        "\n",
        r#"{"address":"0x200", "type":"ARRAY", "class":"0x1", "file":"/app/lib/registry.rb", "line":5, "references":["0x300", "0x301", "0x302"]}"#,
        "\n",
        r#"{"address":"0x210", "type":"ARRAY", "class":"0x1", "file":"/app/lib/registry.rb", "line":6, "references":["0x310"]}"#,
        "\n",
        r#"{"address":"0x300", "type":"HASH", "class":"0x2", "references":["0x400"]}"#,
        "\n",
        r#"{"address":"0x301", "type":"HASH", "class":"0x2", "references":["0x401"]}"#,
        "\n",
        r#"{"address":"0x302", "type":"HASH", "class":"0x2", "references":["0x402"]}"#,
        "\n",
        r#"{"address":"0x310", "type":"HASH", "class":"0x2", "references":["0x406"]}"#,
        "\n",
        r#"{"address":"0x500", "type":"OBJECT", "class":"0x5", "references":["0x600"]}"#,
        "\n",
        r#"{"address":"0x600", "type":"ARRAY", "class":"0x1", "file":"/app/lib/cache.rb", "line":9, "references":["0x402", "0x403", "0x404"]}"#,
        "\n",
        r#"{"address":"0x400", "type":"STRING", "class":"0x3", "file":"/app/app/jobs/leak.rb", "line":7}"#,
        "\n",
        r#"{"address":"0x401", "type":"STRING", "class":"0x3", "file":"/app/app/jobs/leak.rb", "line":7}"#,
        "\n",
        r#"{"address":"0x402", "type":"STRING", "class":"0x3", "file":"/app/app/jobs/leak.rb", "line":7}"#,
        "\n",
        r#"{"address":"0x403", "type":"STRING", "class":"0x3", "file":"/app/app/jobs/leak.rb", "line":7}"#,
        "\n",
        r#"{"address":"0x404", "type":"STRING", "class":"0x3", "file":"/app/app/jobs/leak.rb", "line":7}"#,
        "\n",
        r#"{"address":"0x405", "type":"STRING", "class":"0x3", "file":"/app/app/jobs/leak.rb", "line":7}"#,
        "\n",
        r#"{"address":"0x406", "type":"STRING", "class":"0x3", "file":"/app/app/jobs/leak.rb", "line":7}"#,
        "\n",
    );

    #[test]
    fn test_retainer_paths_cluster_by_signature_with_exact_counts() {
        let answer = retainer_paths(&graph_of(CHAINS), &leak_site(), 5);
        assert_eq!(answer.targets, 7);
        assert_eq!(answer.reachable, 6, "0x405 is garbage");
        assert_eq!(answer.signatures, 3);
        let strings = |labels: &[&str]| labels.iter().map(|&label| label.to_owned()).collect();
        // 0x402 is in both chains; its shortest path (three steps) is the cache's, so the cache
        // chain holds three targets and the registry's array at line 5 two.
        assert_eq!(
            shapes(&answer),
            vec![
                (
                    "global_list".to_owned(),
                    strings(&["Cache", "Array", "String"]),
                    3
                ),
                (
                    "vm".to_owned(),
                    strings(&["Registry", "Array", "Hash", "String"]),
                    2
                ),
                (
                    "vm".to_owned(),
                    strings(&["Registry", "Array", "Hash", "String"]),
                    1
                ),
            ]
        );
        let total: u64 = answer.clusters.iter().map(|cluster| cluster.count).sum();
        assert_eq!(total, answer.reachable);
        // The two registry clusters differ only by their arrays' allocation lines.
        let array_lines: Vec<Option<u32>> = answer.clusters[1..]
            .iter()
            .map(|cluster| cluster.signature[1].line)
            .collect();
        assert_eq!(array_lines, vec![Some(5), Some(6)]);
        // The module is named by its own name, not by its class's, in both forms.
        let registry = &answer.clusters[1].example.steps[0];
        assert_eq!(registry.object_type, ObjectType::Module);
        assert_eq!(registry.name.as_deref(), Some("Registry"));
        assert_eq!(registry.class_name.as_deref(), Some("Module"));
        // Each example is a real path ending at a target with the signature's shape.
        for cluster in &answer.clusters {
            let example = &cluster.example;
            assert_eq!(example.root, cluster.root);
            assert_eq!(example.steps.len(), cluster.signature.len());
            let target = example.steps.last().unwrap();
            assert_eq!(target.line, Some(7));
            for (step, signed) in example.steps.iter().zip(&cluster.signature) {
                assert_eq!((&step.file, step.line), (&signed.file, signed.line));
            }
        }
    }

    #[test]
    fn test_retainer_paths_count_every_target_past_the_cut() {
        let graph = graph_of(CHAINS);
        let all = retainer_paths(&graph, &leak_site(), 5);
        let first = retainer_paths(&graph, &leak_site(), 1);
        assert_eq!(first.clusters, all.clusters[..1]);
        assert_eq!(
            (first.targets, first.reachable, first.signatures),
            (all.targets, all.reachable, all.signatures)
        );
        assert!(retainer_paths(&graph, &leak_site(), 0).clusters.is_empty());
    }

    #[test]
    fn test_retainer_paths_name_anonymous_classes_as_the_aggregator() {
        let dump = concat!(
            r#"{"type":"ROOT", "root":"vm", "references":["0x10"]}"#,
            "\n",
            r#"{"address":"0x8", "type":"CLASS", "references":[]}"#,
            "\n",
            r#"{"address":"0x9", "type":"CLASS", "real_class_name":"Named", "references":[]}"#,
            "\n",
            r#"{"address":"0x10", "type":"OBJECT", "class":"0x8", "references":["0x20"]}"#,
            "\n",
            r#"{"address":"0x20", "type":"OBJECT", "class":"0x9", "file":"a.rb", "line":1}"#,
            "\n",
        );
        let answer = retainer_paths(
            &graph_of(dump),
            &PathTarget::Site {
                file: "a.rb".to_owned(),
                line: 1,
            },
            5,
        );
        assert_eq!(
            shapes(&answer),
            vec![(
                "vm".to_owned(),
                vec!["(anonymous class)".to_owned(), "Named".to_owned()],
                1
            )]
        );
    }
}
