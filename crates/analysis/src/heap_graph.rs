//! A dump's whole object graph in compact form, for the ownership pass: one node per heap
//! object plus a virtual root (node 0) whose successors are the objects the GC roots hold, in
//! the order of the dump's ROOT lines.
//!
//! Per object the graph keeps its address, its allocation site (an id into a site table, class
//! names resolved through the dump's own CLASS/MODULE objects as the aggregator resolves them)
//! and its memsize (4 bytes; the rare object of 4 GiB or more in a side table); references are
//! one flat `u32` list in CSR form: 20 bytes per object and 4 per reference. While the dump
//! streams in, references are kept as addresses (8 bytes each) and resolved to node ids at
//! [`HeapGraphBuilder::finish`]: Ruby writes objects in ascending address order (heap pages
//! sorted by address), so a table of where each 64 KiB of the address space starts narrows
//! each lookup to a page's objects before a binary search; a dump in another order is
//! searched through a sorted permutation. No hash map over objects is ever built.

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
    memsizes: Vec<u32>,
    /// (object index, memsize) of the objects whose memsize does not fit `memsizes`.
    large_memsizes: Vec<(u32, u64)>,
    /// Per object, where its references start in `references` (saturated: `finish` refuses
    /// more than `u32::MAX` references).
    reference_starts: Vec<u32>,
    references: AddressChunks,
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
            large_memsizes: Vec::new(),
            reference_starts: Vec::new(),
            references: AddressChunks::default(),
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

    /// Reserves room for `objects` objects up front (the count the aggregate ingest found),
    /// so that the per-object arrays are allocated once, at their size, instead of growing
    /// by doubling. Counts beyond the limit are not reserved.
    pub fn expect_objects(&mut self, objects: u64) {
        let objects = objects.min(self.max_objects).min(u64::from(u32::MAX)) as usize;
        self.addresses.reserve_exact(objects);
        self.scan_site_of.reserve_exact(objects);
        self.memsizes.reserve_exact(objects);
        self.reference_starts.reserve_exact(objects);
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
            self.references = AddressChunks::default();
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
        match u32::try_from(object.memsize) {
            Ok(memsize) if memsize != u32::MAX => self.memsizes.push(memsize),
            _ => {
                self.memsizes.push(u32::MAX);
                self.large_memsizes.push((index, object.memsize));
            }
        }
        self.reference_starts
            .push(u32::try_from(self.references.len()).unwrap_or(u32::MAX));
        for address in object.references.addresses() {
            self.references.push(address);
        }
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
            large_memsizes,
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
            // (`reference_starts` saturated at this point, so it is never read.)
            return Err(HeapGraphError::TooManyReferences);
        }
        let resolver = AddressResolver::new(&addresses, ascending);
        let object_count = addresses.len();
        // Node 0 is the virtual root; object `i` is node `i + 1`.
        let mut starts = Vec::with_capacity(object_count + 2);
        // Dropped references (to addresses the dump does not hold) are rare: at most the
        // unused tail of this is wasted.
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
                (begin..end)
                    .filter_map(|at| resolver.find(references.get(at)))
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
        let edges = targets.len();
        Ok(HeapGraph {
            addresses,
            site_of,
            memsizes,
            large_memsizes,
            edges,
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

/// The references' addresses while a dump streams in, in chunks of fixed size: the list
/// grows without ever being copied, and without a doubled array's slack.
#[derive(Debug, Default)]
struct AddressChunks {
    chunks: Vec<Vec<u64>>,
    len: usize,
}

impl AddressChunks {
    const CHUNK_SHIFT: u32 = 16;
    const CHUNK: usize = 1 << Self::CHUNK_SHIFT;

    fn push(&mut self, address: u64) {
        match self.chunks.last_mut() {
            Some(chunk) if chunk.len() < Self::CHUNK => chunk.push(address),
            _ => {
                let mut chunk = Vec::with_capacity(Self::CHUNK);
                chunk.push(address);
                self.chunks.push(chunk);
            }
        }
        self.len += 1;
    }

    fn len(&self) -> usize {
        self.len
    }

    fn get(&self, at: usize) -> u64 {
        self.chunks[at >> Self::CHUNK_SHIFT][at & (Self::CHUNK - 1)]
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
    order: Order,
}

enum Order {
    /// Addresses ascending: `pages[k]` is the index of the first object at or above
    /// `base + (k << shift)`, the last entry `addresses.len()`.
    Ascending {
        base: u64,
        shift: u32,
        pages: Vec<u32>,
    },
    /// Object indexes sorted by address, when the dump's own order is not ascending.
    Sorted(Vec<u32>),
}

impl<'a> AddressResolver<'a> {
    /// Ruby's heap pages are 64 KiB.
    const PAGE_SHIFT: u32 = 16;

    fn new(addresses: &'a [u64], ascending: bool) -> AddressResolver<'a> {
        if !ascending {
            let mut sorted: Vec<u32> = (0..addresses.len() as u32).collect();
            // Stable, so the first of two objects at one address comes first.
            sorted.sort_by_key(|&index| addresses[index as usize]);
            return AddressResolver {
                addresses,
                order: Order::Sorted(sorted),
            };
        }
        let (Some(&base), Some(&last)) = (addresses.first(), addresses.last()) else {
            return AddressResolver {
                addresses,
                order: Order::Sorted(Vec::new()),
            };
        };
        // Pages of 64 KiB, or coarser when the objects are spread so thinly that the table
        // would outgrow the objects themselves.
        let mut shift = Self::PAGE_SHIFT;
        while ((last - base) >> shift) as usize > addresses.len().max(1024) {
            shift += 1;
        }
        let page_count = ((last - base) >> shift) as usize + 1;
        let mut pages = Vec::with_capacity(page_count + 1);
        let mut index = 0usize;
        for page in 0..page_count as u64 {
            let start = base + (page << shift);
            while index < addresses.len() && addresses[index] < start {
                index += 1;
            }
            pages.push(index as u32);
        }
        pages.push(addresses.len() as u32);
        AddressResolver {
            addresses,
            order: Order::Ascending { base, shift, pages },
        }
    }

    fn find(&self, address: u64) -> Option<u32> {
        match &self.order {
            Order::Ascending { base, shift, pages } => {
                let page = (address.checked_sub(*base)? >> shift) as usize;
                let begin = *pages.get(page)? as usize;
                let end = *pages.get(page + 1)? as usize;
                let within = &self.addresses[begin..end];
                // The first of two objects at one address, as over the sorted permutation.
                let position = within.partition_point(|&candidate| candidate < address);
                (within.get(position) == Some(&address)).then_some((begin + position) as u32)
            }
            Order::Sorted(sorted) => {
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
    memsizes: Vec<u32>,
    /// (object index, memsize) for the memsizes of `u32::MAX` bytes or more, by index.
    large_memsizes: Vec<(u32, u64)>,
    /// The number of resolved references, kept when the lists are released.
    edges: usize,
    /// Empty once released ([`HeapGraph::release_successors`]).
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
        self.edges
    }

    /// The graph's edges, node 0 being the virtual root; empty once released.
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
        let index = node as usize - 1;
        match self.memsizes[index] {
            u32::MAX => self
                .large_memsizes
                .binary_search_by_key(&(index as u32), |&(object, _)| object)
                .map_or(u64::from(u32::MAX), |position| {
                    self.large_memsizes[position].1
                }),
            memsize => u64::from(memsize),
        }
    }

    /// Hands over the successor lists (`starts`, `targets`) and leaves the graph without
    /// them: the dominator computation needs them once, and nothing after it does.
    pub(crate) fn release_successors(&mut self) -> (Vec<u32>, Vec<u32>) {
        (
            std::mem::take(&mut self.starts),
            std::mem::take(&mut self.targets),
        )
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
            + self.memsizes.capacity() * 4
            + self.large_memsizes.capacity() * 16
            + self.starts.capacity() * 4
            + self.targets.capacity() * 4
            + self.root_kinds.capacity() * 2
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The resolver's answer for every probe equals a linear search's (the first object at
    /// the address), in ascending dumps with pages far apart and in dumps in any order.
    fn check(addresses: &[u64], probes: &[u64]) {
        let ascending = addresses.windows(2).all(|pair| pair[0] < pair[1]);
        let resolver = AddressResolver::new(addresses, ascending);
        for &probe in probes.iter().chain(addresses) {
            let expected = addresses
                .iter()
                .position(|&address| address == probe)
                .map(|index| index as u32);
            assert_eq!(resolver.find(probe), expected, "address {probe:#x}");
        }
    }

    #[test]
    fn test_resolver_finds_objects_across_sparse_pages() {
        let mut addresses: Vec<u64> = (0..500).map(|slot| 0x7f00_0000_0000 + slot * 40).collect();
        // A second heap region gigabytes away, and one object at the very top.
        addresses.extend((0..300).map(|slot| 0x7f90_0000_0000 + slot * 40));
        addresses.push(u64::MAX - 7);
        let probes = [
            0,
            8,
            0x7f00_0000_0000 - 40,
            0x7f00_0000_0008,
            0x7f90_0000_0000 + 12_000,
            u64::MAX,
        ];
        check(&addresses, &probes);
        let mut shuffled = addresses.clone();
        shuffled.swap(3, 700);
        shuffled.push(addresses[10]);
        check(&shuffled, &probes);
    }

    proptest! {
        #[test]
        fn test_resolver_equals_a_linear_search(
            mut addresses in proptest::collection::vec(0u64..1 << 24, 0..200),
            probes in proptest::collection::vec(0u64..1 << 24, 0..50),
            sort in any::<bool>(),
        ) {
            if sort {
                addresses.sort_unstable();
                addresses.dedup();
            }
            check(&addresses, &probes);
        }
    }
}
