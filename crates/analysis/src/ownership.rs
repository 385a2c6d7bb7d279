//! Who holds what, and how much: a dump's dominator tree, the retained size of every object,
//! and per site, class and type the bytes that would be freed with them and the objects that
//! hold them (their owners).
//!
//! An object's *retained size* is its own memsize plus that of every object it dominates. A
//! group's (a site's, a class's, a type's) retained size counts each object once: the union of
//! the subtrees its objects dominate, which is the sum over its *topmost* objects (those no
//! other object of the group dominates).
//!
//! An object's *owner* is its accumulation point, after Eclipse MAT: walking up the dominator
//! tree from the object, the first ancestor outside the object's site that dominates a
//! substantial share of the site's objects ([`owner_threshold`]). So a leaked Hash built in a
//! shared helper, and the Strings inside it, name the container that accumulates the Hashes,
//! not the Hash that holds three of the Strings. When no ancestor qualifies, the owner is the
//! nearest ancestor outside the site, or the GC root itself when a root holds the object
//! directly. Without allocation tracing a site is only a type and class (every Array of the
//! dump), so there an ancestor of the site itself can be the owner: the Array that
//! accumulates leaked Arrays.

use std::collections::HashMap;

use heapfleet_dump::ObjectType;
use serde::{Deserialize, Serialize};

use crate::dominators::DominatorTree;
use crate::heap_graph::HeapGraph;
use crate::site::SiteKey;
use crate::views::NO_CLASS;

/// How much of the analysis to keep.
#[derive(Debug, Clone)]
pub struct OwnershipOptions {
    /// Owners kept per site: this many with the most bytes, then up to this many more with
    /// the most objects.
    pub owners_per_site: usize,
    /// Sites kept, the largest retained sizes first (every site with an owner of note is kept
    /// up to this many).
    pub max_sites: usize,
    /// Children kept per node of the stored top of the dominator tree.
    pub tree_children: usize,
    /// Levels of the stored top of the dominator tree.
    pub tree_depth: u32,
}

impl Default for OwnershipOptions {
    fn default() -> Self {
        OwnershipOptions {
            owners_per_site: 5,
            max_sites: 20_000,
            tree_children: 10,
            tree_depth: 4,
        }
    }
}

/// Sizes of a group of objects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retained {
    /// The group's reachable objects.
    pub objects: u64,
    /// Their own memsize.
    pub shallow_bytes: u64,
    /// Objects freed with the group: its objects and all they dominate.
    pub retained_objects: u64,
    /// Bytes freed with the group.
    pub retained_bytes: u64,
}

/// The object that holds some of a site's objects, described without its address so that
/// owners compare across dumps and processes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OwnerSite {
    /// The owner's allocation file, when traced.
    pub file: Option<String>,
    /// The owner's allocation line.
    pub line: Option<u32>,
    /// The owner's type.
    pub object_type: ObjectType,
    /// The owner's class name, or for a CLASS or MODULE owner its own name.
    pub class_name: Option<String>,
}

/// Who holds a share of a site's objects in one dump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteOwner {
    /// The owner; `None` when GC roots hold the objects directly.
    pub owner: Option<OwnerSite>,
    /// The address of the owner holding the most of these objects (`None` for a root).
    pub address: Option<u64>,
    /// How many distinct owner objects this entry merges (same site, root and path).
    pub owner_objects: u64,
    /// The GC root category that reaches the owner (`vm`, `global_list`, ...).
    pub root: String,
    /// The owner's signature from its root: the root category, then along the dominator tree
    /// the names of the CLASS/MODULE objects and the classes (or types) of the others, the
    /// owner last. A middle part of a long chain is shown as `…`.
    pub path: Vec<String>,
    /// The site's objects it holds.
    pub objects: u64,
    /// The bytes of the site it holds: the retained size of those objects, each counted once.
    pub bytes: u64,
    /// The owner objects' own retained objects (summed over the merged owners; 0 for a root).
    #[serde(default)]
    pub owner_retained_objects: u64,
    /// The owner objects' own retained bytes (summed over the merged owners; 0 for a root):
    /// everything freed with them, of this site or not.
    #[serde(default)]
    pub owner_retained_bytes: u64,
}

/// One site's sizes and owners in one dump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetainedSite {
    /// The site.
    pub site: SiteKey,
    /// Its sizes.
    #[serde(flatten)]
    pub retained: Retained,
    /// Its largest owners: those holding the most bytes, most first, then of the others those
    /// holding the most objects.
    pub owners: Vec<SiteOwner>,
}

/// One class's or type's sizes in one dump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetainedGroup {
    /// The class name or type name.
    pub key: String,
    /// Its sizes.
    #[serde(flatten)]
    pub retained: Retained,
}

/// One node of a dominator tree listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DominatorNode {
    /// Its position in the listing's parent order: the index of its parent in the listing,
    /// `None` at the listing's top level.
    pub parent: Option<u32>,
    /// Depth below the listing's top (0 at the top).
    pub depth: u32,
    /// The object's address in this dump.
    pub address: u64,
    /// Its type.
    pub object_type: ObjectType,
    /// Its class name (for a CLASS or MODULE, its own name).
    pub class_name: Option<String>,
    /// Allocation file, when traced.
    pub file: Option<String>,
    /// Allocation line.
    pub line: Option<u32>,
    /// The GC root category that reaches it.
    pub root: String,
    /// Its own memsize.
    pub shallow_bytes: u64,
    /// Objects it dominates, itself included.
    pub retained_objects: u64,
    /// Bytes it dominates, itself included.
    pub retained_bytes: u64,
}

/// A dump's ownership results: what the ownership pass stores per dump.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpOwnership {
    /// Heap objects in the dump.
    pub objects: u64,
    /// Of those, reachable from a GC root.
    pub reachable_objects: u64,
    /// Bytes of the reachable objects.
    pub reachable_bytes: u64,
    /// Per site, most retained bytes first (at most [`OwnershipOptions::max_sites`]).
    pub sites: Vec<RetainedSite>,
    /// Per class name, most retained bytes first.
    pub classes: Vec<RetainedGroup>,
    /// Per object type, most retained bytes first.
    pub types: Vec<RetainedGroup>,
    /// The top of the dominator tree: the largest objects and, a few levels deep, what they
    /// hold.
    pub tree: Vec<DominatorNode>,
}

/// The number of a site's objects an ancestor must dominate to be their owner: 1% of them,
/// but at least 10 and never more than 100; for a site of fewer than 10 objects, all of them.
/// A container that accumulates a leak soon dominates far more than that, while the Hash or
/// Array that holds a handful of one site's objects as one of many copies does not.
pub fn owner_threshold(site_objects: u64) -> u64 {
    if site_objects < 10 {
        return site_objects.max(1);
    }
    site_objects.div_ceil(100).clamp(10, 100)
}

/// The dominator tree of a [`HeapGraph`] with every object's retained size: computed once per
/// dump, asked for summaries ([`OwnershipAnalysis::summary`]) and subtrees.
#[derive(Debug)]
pub struct OwnershipAnalysis<'a> {
    graph: &'a HeapGraph,
    tree: DominatorTree,
    /// By preorder number.
    retained_bytes: Vec<u64>,
    /// By preorder number.
    retained_objects: Vec<u32>,
    /// Dominator-tree children by preorder number, in CSR form.
    child_starts: Vec<u32>,
    children: Vec<u32>,
}

impl<'a> OwnershipAnalysis<'a> {
    /// Computes the dominator tree and retained sizes of `graph`. The graph's references are
    /// released on the way (nothing after the dominators needs them), so that the pass stays
    /// within its memory budget; its objects, sites and roots stay.
    pub fn new(graph: &'a mut HeapGraph) -> OwnershipAnalysis<'a> {
        let (starts, targets) = graph.release_successors();
        let tree = DominatorTree::compute_releasing(starts, targets, 0);
        let graph: &'a HeapGraph = graph;
        let reached = tree.reachable_count();
        let idom = tree.idom_numbers();
        let mut retained_bytes = vec![0u64; reached];
        let mut retained_objects = vec![0u32; reached];
        for number in 1..reached {
            retained_bytes[number] = graph.memsize(tree.node(number as u32));
            retained_objects[number] = 1;
        }
        // A node's dominator has a smaller preorder number: reverse preorder sums children first.
        for number in (1..reached).rev() {
            let parent = idom[number] as usize;
            retained_bytes[parent] += retained_bytes[number];
            retained_objects[parent] += retained_objects[number];
        }
        let mut child_starts = vec![0u32; reached + 1];
        for &parent in &idom[1..] {
            child_starts[parent as usize + 1] += 1;
        }
        for number in 0..reached {
            child_starts[number + 1] += child_starts[number];
        }
        // Filled through `child_starts[parent]` as its cursor, which leaves it at the end of
        // the parent's list: one shift restores the starts.
        let mut children = vec![0u32; reached.saturating_sub(1)];
        for number in 1..reached {
            let slot = &mut child_starts[idom[number] as usize];
            children[*slot as usize] = number as u32;
            *slot += 1;
        }
        child_starts.copy_within(0..reached, 1);
        child_starts[0] = 0;
        OwnershipAnalysis {
            graph,
            tree,
            retained_bytes,
            retained_objects,
            child_starts,
            children,
        }
    }

    /// The graph analysed (without its references, which [`OwnershipAnalysis::new`] released).
    pub fn graph(&self) -> &HeapGraph {
        self.graph
    }

    /// The dominator tree.
    pub fn tree(&self) -> &DominatorTree {
        &self.tree
    }

    /// The retained bytes and objects of `node`, `None` when no root reaches it.
    pub fn retained(&self, node: u32) -> Option<(u64, u64)> {
        let number = self.tree.number(node)? as usize;
        Some((
            self.retained_bytes[number],
            u64::from(self.retained_objects[number]),
        ))
    }

    /// The reachable heap's bytes and objects (what the virtual root dominates, itself not
    /// counted).
    pub fn retained_root(&self) -> (u64, u64) {
        (self.retained_bytes[0], u64::from(self.retained_objects[0]))
    }

    fn children_of(&self, number: u32) -> &[u32] {
        &self.children[self.child_starts[number as usize] as usize
            ..self.child_starts[number as usize + 1] as usize]
    }

    fn root_name(&self, number: u32) -> &str {
        self.tree
            .root_edge(number)
            .map_or("", |edge| self.graph.root_kind_of_edge(edge as usize))
    }

    /// The label of a node in owner paths: a CLASS or MODULE's own name, else its class name,
    /// else its type.
    fn label(&self, number: u32) -> String {
        let node = self.tree.node(number);
        if let Some(name) = self.graph.module_name(node) {
            return name.to_owned();
        }
        let site = &self.graph.sites()[self.graph.site_id(node) as usize];
        site.class_name
            .clone()
            .unwrap_or_else(|| site.object_type.as_str().to_owned())
    }

    fn owner_site(&self, number: u32) -> OwnerSite {
        let node = self.tree.node(number);
        let site = &self.graph.sites()[self.graph.site_id(node) as usize];
        OwnerSite {
            file: site.file.clone(),
            line: site.line,
            object_type: site.object_type,
            class_name: self
                .graph
                .module_name(node)
                .map(str::to_owned)
                .or_else(|| site.class_name.clone()),
        }
    }

    /// The signature of `number` from its root (see [`SiteOwner::path`]).
    fn path(&self, number: u32) -> Vec<String> {
        const HEAD: usize = 2;
        const TAIL: usize = 5;
        let idom = self.tree.idom_numbers();
        let mut chain = Vec::new();
        let mut current = number;
        while current != 0 {
            chain.push(current);
            current = idom[current as usize];
        }
        chain.reverse();
        let mut path = vec![self.root_name(number).to_owned()];
        if chain.len() > HEAD + TAIL + 1 {
            path.extend(chain[..HEAD].iter().map(|&step| self.label(step)));
            path.push("…".to_owned());
            path.extend(
                chain[chain.len() - TAIL..]
                    .iter()
                    .map(|&step| self.label(step)),
            );
        } else {
            path.extend(chain.iter().map(|&step| self.label(step)));
        }
        path
    }

    fn dominator_node(&self, number: u32, parent: Option<u32>, depth: u32) -> DominatorNode {
        let node = self.tree.node(number);
        let owner = self.owner_site(number);
        DominatorNode {
            parent,
            depth,
            address: self.graph.address(node),
            object_type: owner.object_type,
            class_name: owner.class_name,
            file: owner.file,
            line: owner.line,
            root: self.root_name(number).to_owned(),
            shallow_bytes: self.graph.memsize(node),
            retained_objects: u64::from(self.retained_objects[number as usize]),
            retained_bytes: self.retained_bytes[number as usize],
        }
    }

    /// The dominator tree below `from` (an object node; `None`: the roots), `depth` levels deep,
    /// the `top` largest children of each node, in depth-first order. `None` when `from` is
    /// not reachable.
    pub fn subtree(&self, from: Option<u32>, depth: u32, top: usize) -> Option<Vec<DominatorNode>> {
        let (start, start_depth) = match from {
            Some(node) => (self.tree.number(node)?, 0),
            None => (0, 0),
        };
        let mut listing = Vec::new();
        // (number, parent index in the listing, depth); the virtual root is never listed.
        let mut stack: Vec<(u32, Option<u32>, u32)> = Vec::new();
        if start == 0 {
            for child in self.largest_children(0, top).into_iter().rev() {
                stack.push((child, None, start_depth));
            }
        } else {
            stack.push((start, None, start_depth));
        }
        while let Some((number, parent, level)) = stack.pop() {
            let index = listing.len() as u32;
            listing.push(self.dominator_node(number, parent, level));
            if level + 1 < depth {
                for child in self.largest_children(number, top).into_iter().rev() {
                    stack.push((child, Some(index), level + 1));
                }
            }
        }
        Some(listing)
    }

    fn largest_children(&self, number: u32, top: usize) -> Vec<u32> {
        let mut children = self.children_of(number).to_vec();
        let by_size = |child: &u32| std::cmp::Reverse(self.retained_bytes[*child as usize]);
        if children.len() > top && top > 0 {
            children.select_nth_unstable_by_key(top - 1, by_size);
            children.truncate(top);
        }
        children.sort_by_key(by_size);
        children
    }

    /// The per-dump results: sizes and owners per site, sizes per class and type, and the top
    /// of the tree.
    pub fn summary(&self, options: &OwnershipOptions) -> DumpOwnership {
        let graph = self.graph;
        let sites = graph.sites();
        let reached = self.tree.reachable_count();
        // Class and type ids per site.
        let mut class_ids: HashMap<&str, u32> = HashMap::new();
        let mut class_keys: Vec<&str> = Vec::new();
        let class_of_site: Vec<u32> = sites
            .iter()
            .map(|site| {
                let key = site.class_name.as_deref().unwrap_or(NO_CLASS);
                *class_ids.entry(key).or_insert_with(|| {
                    class_keys.push(key);
                    class_keys.len() as u32 - 1
                })
            })
            .collect();
        let mut site_sizes = vec![Retained::default(); sites.len()];
        let mut class_sizes = vec![Retained::default(); class_keys.len()];
        let mut type_sizes = vec![Retained::default(); ObjectType::ALL.len()];
        let mut site_active = vec![0u32; sites.len()];
        let mut class_active = vec![0u32; class_keys.len()];
        let mut type_active = vec![0u32; ObjectType::ALL.len()];
        // Dominator-tree preorder position and subtree end, by preorder number; and each
        // site's objects in dominator-tree preorder.
        let mut position = vec![0u32; reached];
        let mut order: Vec<u32> = Vec::with_capacity(reached);
        let mut stack: Vec<(u32, u32)> = vec![(0, 0)];
        order.push(0);
        while let Some(top) = stack.last_mut() {
            let (number, next_child) = *top;
            let children = self.children_of(number);
            if let Some(&child) = children.get(next_child as usize) {
                top.1 += 1;
                position[child as usize] = order.len() as u32;
                order.push(child);
                let node = self.tree.node(child);
                let site = graph.site_id(node) as usize;
                let class = class_of_site[site] as usize;
                let kind = sites[site].object_type.code() as usize;
                let bytes = self.retained_bytes[child as usize];
                let objects = u64::from(self.retained_objects[child as usize]);
                let shallow = graph.memsize(node);
                for (sizes, active) in [
                    (&mut site_sizes[site], &mut site_active[site]),
                    (&mut class_sizes[class], &mut class_active[class]),
                    (&mut type_sizes[kind], &mut type_active[kind]),
                ] {
                    sizes.objects += 1;
                    sizes.shallow_bytes += shallow;
                    if *active == 0 {
                        sizes.retained_bytes += bytes;
                        sizes.retained_objects += objects;
                    }
                    *active += 1;
                }
                stack.push((child, 0));
            } else {
                stack.pop();
                if number != 0 {
                    let node = self.tree.node(number);
                    let site = graph.site_id(node) as usize;
                    site_active[site] -= 1;
                    class_active[class_of_site[site] as usize] -= 1;
                    type_active[sites[site].object_type.code() as usize] -= 1;
                }
            }
        }
        drop(site_active);
        drop(class_active);
        drop(type_active);

        // Each site's objects, in dominator-tree preorder (a counting sort by site).
        let mut member_starts = vec![0u32; sites.len() + 1];
        for &number in &order[1..] {
            member_starts[graph.site_id(self.tree.node(number)) as usize + 1] += 1;
        }
        for site in 0..sites.len() {
            member_starts[site + 1] += member_starts[site];
        }
        let mut fill = member_starts.clone();
        let mut members = vec![0u32; order.len() - 1];
        for &number in &order[1..] {
            let slot = &mut fill[graph.site_id(self.tree.node(number)) as usize];
            members[*slot as usize] = number;
            *slot += 1;
        }
        drop(fill);
        drop(order);

        let mut kept_sites: Vec<u32> = (0..sites.len() as u32)
            .filter(|&site| site_sizes[site as usize].objects > 0)
            .collect();
        kept_sites.sort_by_key(|&site| {
            (
                std::cmp::Reverse(site_sizes[site as usize].retained_bytes),
                &sites[site as usize],
            )
        });
        kept_sites.truncate(options.max_sites);
        let context = OwnerContext {
            analysis: self,
            position: &position,
        };
        let retained_sites = kept_sites
            .iter()
            .map(|&site| {
                let site_members = &members[member_starts[site as usize] as usize
                    ..member_starts[site as usize + 1] as usize];
                RetainedSite {
                    site: sites[site as usize].clone(),
                    retained: site_sizes[site as usize],
                    owners: context.owners(site, site_members, options.owners_per_site),
                }
            })
            .collect();

        let groups = |keys: Vec<String>, sizes: Vec<Retained>| {
            let mut groups: Vec<RetainedGroup> = keys
                .into_iter()
                .zip(sizes)
                .filter(|(_, retained)| retained.objects > 0)
                .map(|(key, retained)| RetainedGroup { key, retained })
                .collect();
            groups.sort_by(|left, right| {
                (std::cmp::Reverse(left.retained.retained_bytes), &left.key)
                    .cmp(&(std::cmp::Reverse(right.retained.retained_bytes), &right.key))
            });
            groups
        };
        let reachable_objects = reached as u64 - 1;
        DumpOwnership {
            objects: graph.object_count() as u64,
            reachable_objects,
            reachable_bytes: self.retained_bytes[0],
            sites: retained_sites,
            classes: groups(
                class_keys.iter().map(|key| (*key).to_owned()).collect(),
                class_sizes,
            ),
            types: groups(
                ObjectType::ALL
                    .iter()
                    .map(|kind| kind.as_str().to_owned())
                    .collect(),
                type_sizes,
            ),
            tree: self
                .subtree(None, options.tree_depth, options.tree_children)
                .unwrap_or_default(),
        }
    }
}

/// An owner object's preorder number, or 0 and a root's name for objects a root holds.
type HolderKey<'a> = (u32, &'a str);

/// What the owner search reads.
struct OwnerContext<'a, 'b> {
    analysis: &'b OwnershipAnalysis<'a>,
    position: &'b [u32],
}

impl OwnerContext<'_, '_> {
    /// Where `number`'s subtree ends in dominator-tree preorder: a subtree holds exactly the
    /// objects its top retains (the virtual root, all the others).
    fn subtree_end(&self, number: u32) -> u32 {
        if number == 0 {
            self.analysis.retained_objects[0] + 1
        } else {
            self.position[number as usize] + self.analysis.retained_objects[number as usize]
        }
    }

    /// How many of `members` (in dominator-tree preorder) `number` dominates, itself included.
    fn dominated(&self, number: u32, members: &[u32]) -> u64 {
        let begin = self.position[number as usize];
        let end = self.subtree_end(number);
        let first = members.partition_point(|&member| self.position[member as usize] < begin);
        let last = members.partition_point(|&member| self.position[member as usize] < end);
        (last - first) as u64
    }

    /// The owners of a site's objects (see the module docs), merged by owner site, root and
    /// path, the largest `keep` by bytes.
    fn owners(&self, site: u32, members: &[u32], keep: usize) -> Vec<SiteOwner> {
        let analysis = self.analysis;
        let graph = analysis.graph;
        let idom = analysis.tree.idom_numbers();
        let threshold = owner_threshold(members.len() as u64);
        // An untraced site is a whole type (and class): its own objects may be the owners.
        let traced = graph.sites()[site as usize].file.is_some();
        let in_site = |number: u32| traced && graph.site_id(analysis.tree.node(number)) == site;
        // Ancestor -> the owner found at or above it (0: none qualifies).
        let mut found: HashMap<u32, u32> = HashMap::new();
        // (owner number, or 0 and the root's name for objects a root holds) -> (objects, bytes).
        let mut holdings: HashMap<HolderKey<'_>, (u64, u64)> = HashMap::new();
        let mut walked = Vec::new();
        // A member inside another member's subtree adds objects but no bytes: the topmost
        // member's retained size already counts it.
        let mut topmost_end = 0u32;
        for &member in members {
            let is_topmost = self.position[member as usize] >= topmost_end;
            if is_topmost {
                topmost_end = self.subtree_end(member);
            }
            walked.clear();
            let mut ancestor = idom[member as usize];
            let accumulation = loop {
                if ancestor == 0 {
                    break 0;
                }
                if let Some(&owner) = found.get(&ancestor) {
                    break owner;
                }
                walked.push(ancestor);
                if !in_site(ancestor) && self.dominated(ancestor, members) >= threshold {
                    break ancestor;
                }
                ancestor = idom[ancestor as usize];
            };
            for &step in &walked {
                found.insert(step, accumulation);
            }
            let owner = if accumulation != 0 {
                accumulation
            } else {
                // No accumulation point: the nearest ancestor outside the site, else a root.
                let mut nearest = idom[member as usize];
                while nearest != 0 && in_site(nearest) {
                    nearest = idom[nearest as usize];
                }
                nearest
            };
            let root = if owner == 0 {
                analysis.root_name(member)
            } else {
                ""
            };
            let entry = holdings.entry((owner, root)).or_default();
            entry.0 += 1;
            if is_topmost {
                entry.1 += analysis.retained_bytes[member as usize];
            }
        }
        // Merge owner objects that look alike from outside (same site, root and path), the
        // largest first so that its address represents them.
        let mut holdings: Vec<(HolderKey<'_>, (u64, u64))> = holdings.into_iter().collect();
        holdings.sort_by_key(|&((owner, root), (objects, bytes))| {
            (
                std::cmp::Reverse(bytes),
                std::cmp::Reverse(objects),
                owner,
                root,
            )
        });
        let mut merged: HashMap<(Option<OwnerSite>, String, Vec<String>), SiteOwner> =
            HashMap::new();
        for ((owner, root), (objects, bytes)) in holdings {
            let (owner_site, address, root, path) = if owner == 0 {
                (None, None, root.to_owned(), vec![root.to_owned()])
            } else {
                (
                    Some(analysis.owner_site(owner)),
                    Some(graph.address(analysis.tree.node(owner))),
                    analysis.root_name(owner).to_owned(),
                    analysis.path(owner),
                )
            };
            let (owner_bytes, owner_objects) = if owner == 0 {
                (0, 0)
            } else {
                (
                    analysis.retained_bytes[owner as usize],
                    u64::from(analysis.retained_objects[owner as usize]),
                )
            };
            let entry = merged
                .entry((owner_site.clone(), root.clone(), path.clone()))
                .or_insert_with(|| SiteOwner {
                    owner: owner_site,
                    address,
                    owner_objects: 0,
                    root,
                    path,
                    objects: 0,
                    bytes: 0,
                    owner_retained_objects: 0,
                    owner_retained_bytes: 0,
                });
            entry.owner_objects += 1;
            entry.objects += objects;
            entry.bytes += bytes;
            entry.owner_retained_objects += owner_objects;
            entry.owner_retained_bytes += owner_bytes;
        }
        let mut owners: Vec<SiteOwner> = merged.into_values().collect();
        owners.sort_by(|left, right| {
            (
                std::cmp::Reverse(left.bytes),
                std::cmp::Reverse(left.objects),
                &left.path,
            )
                .cmp(&(
                    std::cmp::Reverse(right.bytes),
                    std::cmp::Reverse(right.objects),
                    &right.path,
                ))
        });
        // The `keep` largest by bytes, then the `keep` largest by objects of the others: a
        // container of many small objects (a leak of short strings) is as much an owner as one
        // of a few large ones.
        let mut rest = owners.split_off(keep.min(owners.len()));
        rest.sort_by(|left, right| {
            right
                .objects
                .cmp(&left.objects)
                .then_with(|| left.path.cmp(&right.path))
        });
        rest.truncate(keep);
        owners.extend(rest);
        owners
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use heapfleet_dump::{ParseOptions, parse_reader};

    use super::*;
    use crate::heap_graph::HeapGraphBuilder;

    /// A dump where one helper (`helper.rb`) builds Hashes of three Strings for everybody: a
    /// job keeps 30 of them in an Array held by the constant `Workload::LEAK`, a cache keeps 5.
    /// Plus one unreachable String.
    fn helper_dump() -> String {
        let mut dump = String::new();
        let mut line = |text: String| {
            dump.push_str(&text);
            dump.push('\n');
        };
        line(r#"{"type":"ROOT", "root":"vm", "references":["0x100", "0x200"]}"#.to_owned());
        line(
            r#"{"address":"0x10", "type":"CLASS", "name":"Array", "references":[], "memsize":100}"#
                .to_owned(),
        );
        line(
            r#"{"address":"0x11", "type":"CLASS", "name":"Hash", "references":[], "memsize":100}"#
                .to_owned(),
        );
        line(r#"{"address":"0x12", "type":"CLASS", "name":"String", "references":[], "memsize":100}"#.to_owned());
        line(r#"{"address":"0x100", "type":"CLASS", "name":"Workload", "references":["0xa00"], "memsize":1000}"#.to_owned());
        line(r#"{"address":"0x200", "type":"CLASS", "name":"Cache", "references":["0xb00"], "memsize":1000}"#.to_owned());
        let leaked: Vec<String> = (0..30)
            .map(|n| format!("\"0x{:x}\"", 0x1000 + n * 0x10))
            .collect();
        line(format!(
            r#"{{"address":"0xa00", "type":"ARRAY", "class":"0x10", "references":[{}], "file":"/app/jobs/job.rb", "line":3, "memsize":400}}"#,
            leaked.join(", ")
        ));
        let cached: Vec<String> = (0..5)
            .map(|n| format!("\"0x{:x}\"", 0x5000 + n * 0x10))
            .collect();
        line(format!(
            r#"{{"address":"0xb00", "type":"HASH", "class":"0x11", "references":[{}], "file":"/app/lib/cache.rb", "line":9, "memsize":300}}"#,
            cached.join(", ")
        ));
        for base in (0..30)
            .map(|n| 0x1000 + n * 0x10)
            .chain((0..5).map(|n| 0x5000 + n * 0x10))
        {
            let strings: Vec<String> = (1..=3)
                .map(|k| format!("\"0x{:x}\"", base * 0x100 + k))
                .collect();
            line(format!(
                r#"{{"address":"0x{base:x}", "type":"HASH", "class":"0x11", "references":[{}], "file":"/app/lib/helper.rb", "line":5, "memsize":200}}"#,
                strings.join(", ")
            ));
            for k in 1..=3 {
                let mut text = String::new();
                write!(
                    text,
                    r#"{{"address":"0x{:x}", "type":"STRING", "class":"0x12", "bytesize":10, "file":"/app/lib/helper.rb", "line":6, "memsize":40}}"#,
                    base * 0x100 + k
                )
                .unwrap();
                line(text);
            }
        }
        line(r#"{"address":"0x9999999", "type":"STRING", "class":"0x12", "file":"/app/lib/helper.rb", "line":6, "memsize":40}"#.to_owned());
        dump
    }

    fn analyse(dump: &str) -> DumpOwnership {
        let mut builder = HeapGraphBuilder::new(u64::MAX);
        parse_reader(dump.as_bytes(), &ParseOptions::default(), &mut builder).unwrap();
        let mut graph = builder.finish().unwrap();
        OwnershipAnalysis::new(&mut graph).summary(&OwnershipOptions::default())
    }

    fn site<'a>(ownership: &'a DumpOwnership, file: &str, line: u32) -> &'a RetainedSite {
        ownership
            .sites
            .iter()
            .find(|row| row.site.file.as_deref() == Some(file) && row.site.line == Some(line))
            .unwrap()
    }

    #[test]
    fn test_owner_threshold_rule() {
        assert_eq!(owner_threshold(0), 1);
        assert_eq!(owner_threshold(3), 3);
        assert_eq!(owner_threshold(10), 10);
        assert_eq!(owner_threshold(999), 10);
        assert_eq!(owner_threshold(2_500), 25);
        assert_eq!(owner_threshold(1_000_000), 100);
    }

    #[test]
    fn test_retained_sizes_count_each_object_once() {
        let ownership = analyse(&helper_dump());
        // 3 classes + Workload + Cache + the Array + the cache Hash + 35 Hashes + 105 Strings.
        assert_eq!(ownership.objects, 148);
        assert_eq!(
            ownership.reachable_objects,
            148 - 4,
            "built-in classes and one string are unreachable"
        );
        let strings = site(&ownership, "/app/lib/helper.rb", 6);
        assert_eq!(strings.retained.objects, 105);
        assert_eq!(strings.retained.retained_bytes, 105 * 40);
        let hashes = site(&ownership, "/app/lib/helper.rb", 5);
        assert_eq!(hashes.retained.objects, 35);
        assert_eq!(hashes.retained.shallow_bytes, 35 * 200);
        assert_eq!(hashes.retained.retained_bytes, 35 * (200 + 3 * 40));
        assert_eq!(hashes.retained.retained_objects, 35 * 4);
        let array = site(&ownership, "/app/jobs/job.rb", 3);
        assert_eq!(array.retained.retained_bytes, 400 + 30 * (200 + 3 * 40));
        let string_type = ownership
            .types
            .iter()
            .find(|row| row.key == "STRING")
            .unwrap();
        assert_eq!(string_type.retained.objects, 105);
        let workload = &ownership.tree[0];
        assert_eq!(workload.class_name.as_deref(), Some("Workload"));
        assert_eq!(workload.retained_bytes, 1000 + 400 + 30 * 320);
        assert_eq!(workload.root, "vm");
        assert_eq!(
            ownership.tree[1].parent,
            Some(0),
            "the listing goes depth first"
        );
    }

    #[test]
    fn test_owners_are_accumulation_points_not_the_nearest_holder() {
        let ownership = analyse(&helper_dump());
        let strings = site(&ownership, "/app/lib/helper.rb", 6);
        let leak = &strings.owners[0];
        let owner = leak.owner.as_ref().unwrap();
        assert_eq!(
            (
                owner.file.as_deref(),
                owner.line,
                owner.class_name.as_deref()
            ),
            (Some("/app/jobs/job.rb"), Some(3), Some("Array")),
            "the Strings name the Array that accumulates the Hashes, not the Hashes"
        );
        assert_eq!((leak.objects, leak.bytes), (90, 90 * 40));
        assert_eq!(leak.address, Some(0xa00));
        assert_eq!(leak.path, vec!["vm", "Workload", "Array"]);
        let cache = &strings.owners[1];
        assert_eq!(cache.owner.as_ref().unwrap().line, Some(9));
        assert_eq!(cache.objects, 15);
        let hashes = site(&ownership, "/app/lib/helper.rb", 5);
        assert_eq!(hashes.owners[0].objects, 30);
        assert_eq!(hashes.owners[0].owner.as_ref().unwrap().line, Some(3));
        // Five Hashes are too few for an accumulation point: their nearest holder owns them.
        assert_eq!(hashes.owners[1].objects, 5);
        assert_eq!(hashes.owners[1].owner.as_ref().unwrap().line, Some(9));
        let array = site(&ownership, "/app/jobs/job.rb", 3);
        assert_eq!(
            array.owners[0]
                .owner
                .as_ref()
                .unwrap()
                .class_name
                .as_deref(),
            Some("Workload")
        );
    }

    #[test]
    fn test_objects_held_by_a_root_directly_are_owned_by_the_root() {
        let dump = concat!(
            r#"{"type":"ROOT", "root":"global_list", "references":["0x20"]}"#,
            "\n",
            r#"{"address":"0x20", "type":"STRING", "file":"/app/a.rb", "line":1, "memsize":40}"#,
            "\n",
        );
        let ownership = analyse(dump);
        let owner = &ownership.sites[0].owners[0];
        assert_eq!(owner.owner, None);
        assert_eq!(owner.root, "global_list");
        assert_eq!(owner.path, vec!["global_list"]);
    }

    #[test]
    fn test_subtree_from_an_address() {
        let mut builder = HeapGraphBuilder::new(u64::MAX);
        parse_reader(
            helper_dump().as_bytes(),
            &ParseOptions::default(),
            &mut builder,
        )
        .unwrap();
        let mut graph = builder.finish().unwrap();
        let analysis = OwnershipAnalysis::new(&mut graph);
        let node = analysis.graph().node_at(0xa00).unwrap();
        let listing = analysis.subtree(Some(node), 2, 3).unwrap();
        assert_eq!(listing.len(), 4, "the Array and its three largest Hashes");
        assert_eq!(listing[0].address, 0xa00);
        assert!(
            listing[1..]
                .iter()
                .all(|child| child.parent == Some(0) && child.depth == 1)
        );
        let unreachable = analysis.graph().node_at(0x9999999).unwrap();
        assert_eq!(analysis.subtree(Some(unreachable), 2, 3), None);
    }

    #[test]
    fn test_graph_builder_refuses_too_many_objects() {
        let mut builder = HeapGraphBuilder::new(10);
        parse_reader(
            helper_dump().as_bytes(),
            &ParseOptions::default(),
            &mut builder,
        )
        .unwrap();
        assert!(matches!(
            builder.finish(),
            Err(crate::heap_graph::HeapGraphError::TooManyObjects { limit: 10 })
        ));
    }
}
