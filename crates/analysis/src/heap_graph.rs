//! A dump's whole object graph in compact form, for the ownership pass: one node per heap
//! object plus a virtual root (node 0) whose successors are the objects the GC roots hold, in
//! the order of the dump's ROOT lines.
//!
//! Per object the graph keeps its address, its allocation site (an id into a site table, class
//! names resolved through the dump's own CLASS/MODULE objects as the aggregator resolves them)
//! and its memsize; references are one flat `u32` list in CSR form. While the dump streams in,
//! references are kept as addresses (8 bytes each) and resolved to node ids at
//! [`HeapGraphBuilder::finish`]: by binary search over the addresses, which Ruby writes in
//! ascending order (heap pages sorted by address), or over a sorted permutation when a dump
//! does not. No hash map over objects is ever built.

use std::hash::Hash;

use foldhash::fast::FixedState;
use hashbrown::HashMap;
use heapfleet_dump::{ObjectRecord, ObjectType, Record, Visitor};

use crate::dominators::Csr;
use crate::site::SiteKey;

/// Marks an absent file or line in scan-time keys.
const ABSENT: u32 = u32::MAX;

/// Why a dump's graph was not built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeapGraphError {
    /// The dump holds more objects than the configured limit.
    #[error(
        "the dump holds more than {limit} objects (max_retention_objects); its ownership pass is skipped"
    )]
    TooManyObjects {
        /// The limit.
        limit: u64,
    },
    /// The dump holds more references than a `u32` can count.
    #[error("the dump holds more than 4 billion references; its ownership pass is skipped")]
    TooManyReferences,
}

/// The scan-time site key: file by interned id, class by address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ScanSite {
    file: u32,
    line: u32,
    object_type: ObjectType,
    class: u64,
}

/// The visitor that builds a [`HeapGraph`] while a dump is parsed.
#[derive(Debug)]
pub struct HeapGraphBuilder {
    max_objects: u64,
    too_many_objects: bool,
    addresses: Vec<u64>,
    scan_site_of: Vec<u32>,
    memsizes: Vec<u64>,
    /// Per object, where its references start in `references`.
    reference_starts: Vec<u64>,
    references: Vec<u64>,
    /// Root name id and address, in dump order.
    roots: Vec<(u16, u64)>,
    root_names: Vec<String>,
    scan_sites: Vec<ScanSite>,
    scan_site_ids: HashMap<ScanSite, u32, FixedState>,
    file_names: Vec<Box<[u8]>>,
    file_ids: HashMap<Box<[u8]>, u32, FixedState>,
    /// CLASS/MODULE address -> name (`None`: anonymous).
    class_names: HashMap<u64, Option<Box<str>>, FixedState>,
    /// Object index -> own name, for CLASS/MODULE objects.
    module_objects: Vec<(u32, u64)>,
    ascending: bool,
}

impl HeapGraphBuilder {
    /// An empty builder that refuses dumps of more than `max_objects` heap objects.
    pub fn new(max_objects: u64) -> HeapGraphBuilder {
        HeapGraphBuilder {
            max_objects,
            too_many_objects: false,
            addresses: Vec::new(),
            scan_site_of: Vec::new(),
            memsizes: Vec::new(),
            reference_starts: Vec::new(),
            references: Vec::new(),
            roots: Vec::new(),
            root_names: Vec::new(),
            scan_sites: Vec::new(),
            scan_site_ids: HashMap::with_hasher(FixedState::default()),
            file_names: Vec::new(),
            file_ids: HashMap::with_hasher(FixedState::default()),
            class_names: HashMap::with_hasher(FixedState::default()),
            module_objects: Vec::new(),
            ascending: true,
        }
    }

    fn add_object(&mut self, object: &ObjectRecord<'_>) {
        if self.too_many_objects {
            return;
        }
        if self.addresses.len() as u64 >= self.max_objects {
            // Stop growing: the rest of the dump is read and ignored, and finish() says why.
            self.too_many_objects = true;
            self.addresses = Vec::new();
            self.scan_site_of = Vec::new();
            self.memsizes = Vec::new();
            self.reference_starts = Vec::new();
            self.references = Vec::new();
            return;
        }
        let object_type = object.object_type.unwrap_or(ObjectType::Unknown);
        let index = self.addresses.len() as u32;
        if matches!(object_type, ObjectType::Class | ObjectType::Module) {
            let name = object
                .name
                .or(object.real_class_name)
                .map(|name| name.decode().into());
            self.class_names.insert(object.address, name);
            self.module_objects.push((index, object.address));
        }
        let file = match object.file {
            Some(file) => self.file_id(file.raw()),
            None => ABSENT,
        };
        let key = ScanSite {
            file,
            line: object.line.unwrap_or(ABSENT),
            object_type,
            // As the aggregator: an IMEMO's class slot is VM data, not a class.
            class: if object_type == ObjectType::Imemo {
                0
            } else {
                object.class.unwrap_or(0)
            },
        };
        let scan_site = match self.scan_site_ids.get(&key) {
            Some(&id) => id,
            None => {
                let id = self.scan_sites.len() as u32;
                self.scan_sites.push(key);
                self.scan_site_ids.insert(key, id);
                id
            }
        };
        if let Some(&last) = self.addresses.last()
            && last >= object.address
        {
            self.ascending = false;
        }
        self.addresses.push(object.address);
        self.scan_site_of.push(scan_site);
        self.memsizes.push(object.memsize);
        self.reference_starts.push(self.references.len() as u64);
        self.references.extend(object.references.addresses());
    }

    fn file_id(&mut self, raw: &[u8]) -> u32 {
        if let Some(&id) = self.file_ids.get(raw) {
            return id;
        }
        let id = self.file_names.len() as u32;
        self.file_names.push(raw.into());
        self.file_ids.insert(raw.into(), id);
        id
    }

    /// Resolves references and sites and returns the graph. A reference to an address the
    /// dump does not hold is dropped; of two objects at one address (a broken dump) the first
    /// keeps the references made to it.
    pub fn finish(self) -> Result<HeapGraph, HeapGraphError> {
        if self.too_many_objects {
            return Err(HeapGraphError::TooManyObjects {
                limit: self.max_objects,
            });
        }
        let HeapGraphBuilder {
            addresses,
            scan_site_of,
            memsizes,
            reference_starts,
            references,
            roots,
            root_names,
            scan_sites,
            file_names,
            class_names,
            module_objects,
            ascending,
            ..
        } = self;
        if references.len() + roots.len() >= u32::MAX as usize {
            return Err(HeapGraphError::TooManyReferences);
        }
        let resolver = AddressResolver::new(&addresses, ascending);
        let object_count = addresses.len();
        // Node 0 is the virtual root; object `i` is node `i + 1`.
        let mut starts = Vec::with_capacity(object_count + 2);
        let mut targets = Vec::with_capacity(references.len() + roots.len());
        let mut root_kinds = Vec::with_capacity(roots.len());
        starts.push(0u32);
        for &(kind, address) in &roots {
            if let Some(index) = resolver.find(address) {
                targets.push(index + 1);
                root_kinds.push(kind);
            }
        }
        for index in 0..object_count {
            starts.push(targets.len() as u32);
            let begin = reference_starts[index] as usize;
            let end = reference_starts
                .get(index + 1)
                .map_or(references.len(), |&end| end as usize);
            targets.extend(
                references[begin..end]
                    .iter()
                    .filter_map(|&address| resolver.find(address))
                    .map(|target| target + 1),
            );
        }
        starts.push(targets.len() as u32);
        drop(references);
        drop(reference_starts);
        drop(resolver);

        let (sites, site_of_scan) = resolve_sites(&scan_sites, &file_names, &class_names);
        let mut site_of = scan_site_of;
        for site in &mut site_of {
            *site = site_of_scan[*site as usize];
        }
        let module_names = module_objects
            .into_iter()
            .map(|(index, address)| {
                let name = class_names
                    .get(&address)
                    .and_then(|name| name.as_deref())
                    .unwrap_or("(anonymous class)");
                (index + 1, name.to_owned())
            })
            .collect();
        Ok(HeapGraph {
            addresses,
            site_of,
            memsizes,
            starts,
            targets,
            root_kinds,
            root_names,
            sites,
            module_names,
        })
    }
}

impl Visitor for HeapGraphBuilder {
    fn record(&mut self, _line_number: u64, record: &Record<'_>) {
        match record {
            Record::Object(object) => self.add_object(object),
            Record::Root(root) => {
                let name = root.root.decode();
                let kind = match self.root_names.iter().position(|known| *known == name) {
                    Some(kind) => kind as u16,
                    None => {
                        // Ruby has a dozen root categories; a dump naming more is broken, and
                        // the rest share the last name rather than grow without bound.
                        if self.root_names.len() < usize::from(u16::MAX) {
                            self.root_names.push(name.into_owned());
                        }
                        (self.root_names.len() - 1) as u16
                    }
                };
                self.roots
                    .extend(root.references.addresses().map(|address| (kind, address)));
            }
            Record::Shape(_) => {}
        }
    }
}

/// Resolves sites as the aggregator does (class addresses to names, files decoded) and merges
/// scan sites that resolve alike. Returns the site table and each scan site's id in it.
fn resolve_sites(
    scan_sites: &[ScanSite],
    file_names: &[Box<[u8]>],
    class_names: &HashMap<u64, Option<Box<str>>, FixedState>,
) -> (Vec<SiteKey>, Vec<u32>) {
    let decoded_files: Vec<String> = file_names
        .iter()
        .map(|raw| {
            heapfleet_dump::JsonStr::from_raw(raw, raw.contains(&b'\\'))
                .decode()
                .into_owned()
        })
        .collect();
    let mut sites: Vec<SiteKey> = Vec::new();
    let mut ids: std::collections::HashMap<SiteKey, u32> = std::collections::HashMap::new();
    let mut site_of_scan = Vec::with_capacity(scan_sites.len());
    for scan in scan_sites {
        let site = SiteKey {
            file: (scan.file != ABSENT).then(|| decoded_files[scan.file as usize].clone()),
            line: (scan.line != ABSENT).then_some(scan.line),
            object_type: scan.object_type,
            class_name: class_names.get(&scan.class).map(|name| {
                name.as_deref()
                    .map_or_else(|| "(anonymous class)".to_owned(), str::to_owned)
            }),
        };
        let id = match ids.get(&site) {
            Some(&id) => id,
            None => {
                let id = sites.len() as u32;
                ids.insert(site.clone(), id);
                sites.push(site);
                id
            }
        };
        site_of_scan.push(id);
    }
    (sites, site_of_scan)
}

/// Finds an object's index by address.
struct AddressResolver<'a> {
    addresses: &'a [u64],
    /// Object indexes sorted by address, when the dump's own order is not ascending.
    sorted_opt: Option<Vec<u32>>,
}

impl<'a> AddressResolver<'a> {
    fn new(addresses: &'a [u64], ascending: bool) -> AddressResolver<'a> {
        let sorted_opt = (!ascending).then(|| {
            let mut sorted: Vec<u32> = (0..addresses.len() as u32).collect();
            // Stable, so the first of two objects at one address comes first.
            sorted.sort_by_key(|&index| addresses[index as usize]);
            sorted
        });
        AddressResolver {
            addresses,
            sorted_opt,
        }
    }

    fn find(&self, address: u64) -> Option<u32> {
        match &self.sorted_opt {
            None => self
                .addresses
                .binary_search(&address)
                .ok()
                .map(|index| index as u32),
            Some(sorted) => {
                let position =
                    sorted.partition_point(|&index| self.addresses[index as usize] < address);
                sorted
                    .get(position)
                    .filter(|&&index| self.addresses[index as usize] == address)
                    .copied()
            }
        }
    }
}

/// A dump's object graph (see the module docs). Node 0 is the virtual root.
#[derive(Debug)]
pub struct HeapGraph {
    addresses: Vec<u64>,
    site_of: Vec<u32>,
    memsizes: Vec<u64>,
    starts: Vec<u32>,
    targets: Vec<u32>,
    /// The root name id of each of node 0's successors, in order.
    root_kinds: Vec<u16>,
    root_names: Vec<String>,
    sites: Vec<SiteKey>,
    /// Node -> own name, for CLASS/MODULE objects, sorted by node.
    module_names: Vec<(u32, String)>,
}

impl HeapGraph {
    /// Heap objects in the graph (the virtual root not counted).
    pub fn object_count(&self) -> usize {
        self.addresses.len()
    }

    /// Nodes, the virtual root included.
    pub fn node_count(&self) -> usize {
        self.addresses.len() + 1
    }

    /// References between objects and from the roots, resolved.
    pub fn edge_count(&self) -> usize {
        self.targets.len()
    }

    /// The graph's edges, node 0 being the virtual root.
    pub fn csr(&self) -> Csr<'_> {
        Csr {
            starts: &self.starts,
            targets: &self.targets,
        }
    }

    /// The address of an object node (not the root).
    pub fn address(&self, node: u32) -> u64 {
        self.addresses[node as usize - 1]
    }

    /// The site id of an object node (an index into [`HeapGraph::sites`]).
    pub fn site_id(&self, node: u32) -> u32 {
        self.site_of[node as usize - 1]
    }

    /// The memsize of an object node.
    pub fn memsize(&self, node: u32) -> u64 {
        self.memsizes[node as usize - 1]
    }

    /// The site table.
    pub fn sites(&self) -> &[SiteKey] {
        &self.sites
    }

    /// The name of a CLASS or MODULE node, `None` for other nodes.
    pub fn module_name(&self, node: u32) -> Option<&str> {
        self.module_names
            .binary_search_by_key(&node, |(module, _)| *module)
            .ok()
            .map(|position| self.module_names[position].1.as_str())
    }

    /// The node of the object at `address`, if the dump holds one.
    pub fn node_at(&self, address: u64) -> Option<u32> {
        self.addresses
            .iter()
            .position(|&candidate| candidate == address)
            .map(|index| index as u32 + 1)
    }

    /// The name of the root category behind node 0's `edge`-th successor.
    pub(crate) fn root_kind_of_edge(&self, edge: usize) -> &str {
        self.root_names[usize::from(self.root_kinds[edge])].as_str()
    }

    /// Bytes the graph's own arrays take, for the memory budget.
    pub fn heap_bytes(&self) -> usize {
        self.addresses.capacity() * 8
            + self.site_of.capacity() * 4
            + self.memsizes.capacity() * 8
            + self.starts.capacity() * 4
            + self.targets.capacity() * 4
            + self.root_kinds.capacity() * 2
    }
}
