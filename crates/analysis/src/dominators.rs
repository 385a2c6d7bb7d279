//! Immediate dominators of a directed graph, by SEMI-NCA (Georgiadis, "Linear-Time Algorithms
//! for Dominators and Related Problems", 2005): the semidominators of Lengauer and Tarjan, then
//! each immediate dominator as the nearest common ancestor of a vertex's DFS parent and its
//! semidominator in the tree built so far.
//!
//! Heap graphs have millions of nodes and chains thousands deep (linked lists, long arrays of
//! arrays), so everything here is flat `u32` arrays indexed by node or by DFS preorder number,
//! and every walk is iterative: no recursion, no hash maps, no per-node allocation. The
//! simpler iterative algorithm of Cooper, Harvey and Kennedy is quadratic on such graphs.
//!
//! Memory at peak: the successor lists given (released before the semidominators when the
//! caller hands them over, [`DominatorTree::compute_releasing`]), the predecessor lists (4 bytes
//! per reachable edge and per node) and five `u32` arrays over the nodes.

/// A directed graph in compressed sparse row form: the successors of node `v` are
/// `targets[starts[v]..starts[v + 1]]`.
#[derive(Debug, Clone, Copy)]
pub struct Csr<'a> {
    /// `node_count + 1` offsets into `targets`, non-decreasing, the last equal to its length.
    pub starts: &'a [u32],
    /// Successor node ids, each below `node_count`.
    pub targets: &'a [u32],
}

impl Csr<'_> {
    /// The number of nodes.
    pub fn node_count(&self) -> usize {
        self.starts.len().saturating_sub(1)
    }

    /// The successors of `node`.
    pub fn successors(&self, node: u32) -> &[u32] {
        let node = node as usize;
        &self.targets[self.starts[node] as usize..self.starts[node + 1] as usize]
    }
}

/// Marks a node that the root does not reach.
pub const UNREACHED: u32 = u32::MAX;

/// The dominator tree of the nodes a root reaches, in DFS preorder: preorder number 0 is the
/// root, and a node's immediate dominator always has a smaller number than the node, so a pass
/// in reverse preorder visits every node before its dominator (how retained sizes are summed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DominatorTree {
    /// Node id -> preorder number, [`UNREACHED`] for nodes the root does not reach.
    preorder: Vec<u32>,
    /// Preorder number -> node id.
    nodes: Vec<u32>,
    /// Preorder number -> preorder number of the immediate dominator (the root's is itself).
    idom: Vec<u32>,
    /// The root's children in the depth-first spanning tree, in preorder: (their number, the
    /// index among the root's successors of the edge that reached them). Each one's DFS
    /// subtree is the range of numbers up to the next one's.
    root_branches: Vec<(u32, u32)>,
}

/// The depth-first numbering of the nodes a root reaches.
struct Numbering {
    preorder: Vec<u32>,
    nodes: Vec<u32>,
    /// Preorder number -> the number of the DFS parent.
    parents: Vec<u32>,
    root_branches: Vec<(u32, u32)>,
}

impl DominatorTree {
    /// Computes the dominator tree of `graph` from `root`.
    ///
    /// # Panics
    /// When `root` is not a node of `graph`, or an edge names a node outside it.
    pub fn compute(graph: Csr<'_>, root: u32) -> DominatorTree {
        let (numbering, predecessors) = number_and_reverse(graph, root);
        finish(numbering, &predecessors)
    }

    /// [`DominatorTree::compute`] over successor lists given in CSR form (`starts`,
    /// `targets`), which it releases as soon as it has the predecessor lists, so that the two
    /// never add up with the semidominator arrays.
    ///
    /// # Panics
    /// As [`DominatorTree::compute`].
    pub fn compute_releasing(starts: Vec<u32>, targets: Vec<u32>, root: u32) -> DominatorTree {
        let graph = Csr {
            starts: &starts,
            targets: &targets,
        };
        let (numbering, predecessors) = number_and_reverse(graph, root);
        drop(starts);
        drop(targets);
        finish(numbering, &predecessors)
    }

    /// How many nodes the root reaches, itself included.
    pub fn reachable_count(&self) -> usize {
        self.nodes.len()
    }

    /// The node id of preorder number `number`.
    pub fn node(&self, number: u32) -> u32 {
        self.nodes[number as usize]
    }

    /// The preorder number of `node`, `None` when the root does not reach it.
    pub fn number(&self, node: u32) -> Option<u32> {
        self.preorder
            .get(node as usize)
            .copied()
            .filter(|&number| number != UNREACHED)
    }

    /// The preorder number of the immediate dominator of preorder number `number`.
    pub fn idom_number(&self, number: u32) -> u32 {
        self.idom[number as usize]
    }

    /// The immediate dominator of `node`, `None` for the root and unreached nodes.
    pub fn immediate_dominator(&self, node: u32) -> Option<u32> {
        let number = self.number(node)?;
        (number != 0).then(|| self.nodes[self.idom[number as usize] as usize])
    }

    /// The index among the root's successors of the edge through which the depth-first
    /// numbering reached preorder number `number` (the first edge to its DFS ancestor among
    /// the root's successors); `None` for the root itself.
    pub fn root_edge(&self, number: u32) -> Option<u32> {
        if number == 0 {
            return None;
        }
        let position = self
            .root_branches
            .partition_point(|&(first, _)| first <= number);
        position
            .checked_sub(1)
            .map(|position| self.root_branches[position].1)
    }

    /// Preorder number -> preorder number of the immediate dominator.
    pub fn idom_numbers(&self) -> &[u32] {
        &self.idom
    }

    /// Preorder number -> node id.
    pub fn nodes(&self) -> &[u32] {
        &self.nodes
    }
}

/// The depth-first numbering of what `root` reaches and its predecessor lists.
fn number_and_reverse(graph: Csr<'_>, root: u32) -> (Numbering, (Vec<u32>, Vec<u32>)) {
    let node_count = graph.node_count();
    assert!(
        (root as usize) < node_count,
        "the root is a node of the graph"
    );
    let numbering = depth_first(graph, root);
    let predecessors = predecessors_in_preorder(graph, &numbering.preorder, &numbering.nodes);
    (numbering, predecessors)
}

/// The semidominators and dominators of a numbering. The node -> number map is set aside
/// meanwhile (rebuilt from number -> node after), so it never adds up with the
/// semidominator arrays.
fn finish(numbering: Numbering, predecessors: &(Vec<u32>, Vec<u32>)) -> DominatorTree {
    let Numbering {
        preorder,
        nodes,
        parents,
        root_branches,
    } = numbering;
    let node_count = preorder.len();
    drop(preorder);
    let idom = semi_nca(parents, predecessors);
    let mut preorder = vec![UNREACHED; node_count];
    for (number, &node) in nodes.iter().enumerate() {
        preorder[node as usize] = number as u32;
    }
    DominatorTree {
        preorder,
        nodes,
        idom,
        root_branches,
    }
}

/// Numbers the nodes `root` reaches in depth-first preorder, successors in order.
fn depth_first(graph: Csr<'_>, root: u32) -> Numbering {
    let mut preorder = vec![UNREACHED; graph.node_count()];
    let mut nodes = Vec::new();
    let mut parents = Vec::new();
    let mut root_branches = Vec::new();
    let root_start = graph.starts[root as usize];
    // Each stack entry is a node and the offset of the next successor to look at.
    let mut stack: Vec<(u32, u32)> = vec![(root, root_start)];
    preorder[root as usize] = 0;
    nodes.push(root);
    parents.push(0);
    while let Some(top) = stack.last_mut() {
        let (node, next_edge) = *top;
        if next_edge == graph.starts[node as usize + 1] {
            stack.pop();
            continue;
        }
        top.1 += 1;
        let successor = graph.targets[next_edge as usize];
        if preorder[successor as usize] != UNREACHED {
            continue;
        }
        let number = u32::try_from(nodes.len()).expect("fewer than 2^32 - 1 nodes");
        preorder[successor as usize] = number;
        nodes.push(successor);
        let parent = preorder[node as usize];
        parents.push(parent);
        if node == root {
            root_branches.push((number, next_edge - root_start));
        }
        stack.push((successor, graph.starts[successor as usize]));
    }
    Numbering {
        preorder,
        nodes,
        parents,
        root_branches,
    }
}

/// The predecessors of every reached node, as preorder numbers, indexed by preorder number.
/// Edges from unreached nodes are left out: they play no part in dominance.
fn predecessors_in_preorder(
    graph: Csr<'_>,
    preorder: &[u32],
    nodes: &[u32],
) -> (Vec<u32>, Vec<u32>) {
    let reached = nodes.len();
    // Counts at `starts[target + 1]`, summed; then each list is filled through `starts[target]`
    // as its cursor, which leaves `starts[target]` at the list's end: one shift restores it.
    let mut starts = vec![0u32; reached + 1];
    for &node in nodes {
        for &successor in graph.successors(node) {
            let number = preorder[successor as usize];
            if number != UNREACHED {
                starts[number as usize + 1] += 1;
            }
        }
    }
    for index in 0..reached {
        starts[index + 1] += starts[index];
    }
    let mut sources = vec![0u32; starts[reached] as usize];
    for (number, &node) in nodes.iter().enumerate() {
        for &successor in graph.successors(node) {
            let target = preorder[successor as usize];
            if target != UNREACHED {
                let slot = &mut starts[target as usize];
                sources[*slot as usize] = number as u32;
                *slot += 1;
            }
        }
    }
    starts.copy_within(0..reached, 1);
    starts[0] = 0;
    (starts, sources)
}

/// SEMI-NCA over preorder numbers: returns each number's immediate dominator's number, in
/// the array of DFS parents given.
fn semi_nca(parents: Vec<u32>, predecessors: &(Vec<u32>, Vec<u32>)) -> Vec<u32> {
    let (starts, sources) = predecessors;
    let reached = parents.len();
    let mut semi: Vec<u32> = (0..reached as u32).collect();
    // `label[v]`: the vertex of smallest semidominator on the compressed path above `v`.
    let mut label: Vec<u32> = (0..reached as u32).collect();
    // `ancestor[v]`: `v`'s parent in the forest of processed vertices, UNREACHED if none yet.
    let mut ancestor = vec![UNREACHED; reached];
    let mut path = Vec::new();
    for vertex in (1..reached).rev() {
        let mut smallest = semi[vertex];
        for &source in &sources[starts[vertex] as usize..starts[vertex + 1] as usize] {
            let evaluated = eval(source, &mut ancestor, &mut label, &semi, &mut path);
            smallest = smallest.min(semi[evaluated as usize]);
        }
        semi[vertex] = smallest;
        // Link: the vertex joins its DFS parent's tree in the forest.
        ancestor[vertex] = parents[vertex];
    }
    drop(label);
    drop(ancestor);
    // The NCA step, in preorder: a vertex's dominator is an ancestor of its DFS parent, the
    // first one numbered at or below its semidominator. Starting from the parents, each
    // vertex reads only the final dominators of smaller numbers.
    let mut idom = parents;
    for vertex in 1..reached {
        let mut candidate = idom[vertex];
        while candidate > semi[vertex] {
            candidate = idom[candidate as usize];
        }
        idom[vertex] = candidate;
    }
    idom
}

/// Lengauer and Tarjan's EVAL with simple path compression, iterative: returns the vertex of
/// smallest semidominator on the forest path from `vertex` up to (not including) its tree's
/// root, or `vertex` itself when it is a root of the forest.
fn eval(
    vertex: u32,
    ancestor: &mut [u32],
    label: &mut [u32],
    semi: &[u32],
    path: &mut Vec<u32>,
) -> u32 {
    if ancestor[vertex as usize] == UNREACHED {
        return vertex;
    }
    // Collect the vertices whose ancestor is not a forest root, deepest first...
    path.clear();
    let mut current = vertex;
    while ancestor[ancestor[current as usize] as usize] != UNREACHED {
        path.push(current);
        current = ancestor[current as usize];
    }
    // ...then compress from the top down, so each takes its ancestor's updated label.
    while let Some(next) = path.pop() {
        let above = ancestor[next as usize];
        if semi[label[above as usize] as usize] < semi[label[next as usize] as usize] {
            label[next as usize] = label[above as usize];
        }
        ancestor[next as usize] = ancestor[above as usize];
    }
    label[vertex as usize]
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Builds the CSR form of an edge list over `node_count` nodes.
    fn csr(node_count: usize, edges: &[(u32, u32)]) -> (Vec<u32>, Vec<u32>) {
        let mut starts = vec![0u32; node_count + 1];
        for &(source, _) in edges {
            starts[source as usize + 1] += 1;
        }
        for index in 0..node_count {
            starts[index + 1] += starts[index];
        }
        let mut fill = starts.clone();
        let mut targets = vec![0u32; edges.len()];
        for &(source, target) in edges {
            targets[fill[source as usize] as usize] = target;
            fill[source as usize] += 1;
        }
        (starts, targets)
    }

    /// Dominators by the textbook data-flow equations, iterated to a fixed point over sets:
    /// dom(root) = {root}, dom(v) = {v} + the intersection of dom(p) over v's reachable
    /// predecessors. Returns each node's immediate dominator (None for the root and for
    /// unreached nodes).
    fn naive_idoms(node_count: usize, edges: &[(u32, u32)], root: u32) -> Vec<Option<u32>> {
        let mut reachable = vec![false; node_count];
        reachable[root as usize] = true;
        let mut changed = true;
        while changed {
            changed = false;
            for &(source, target) in edges {
                if reachable[source as usize] && !reachable[target as usize] {
                    reachable[target as usize] = true;
                    changed = true;
                }
            }
        }
        let all: Vec<bool> = vec![true; node_count];
        let mut dominators: Vec<Vec<bool>> = (0..node_count)
            .map(|node| {
                if node == root as usize {
                    (0..node_count).map(|other| other == node).collect()
                } else {
                    all.clone()
                }
            })
            .collect();
        let mut changed = true;
        while changed {
            changed = false;
            for node in 0..node_count {
                if node == root as usize || !reachable[node] {
                    continue;
                }
                let mut meet = all.clone();
                for &(source, target) in edges {
                    if target as usize == node && reachable[source as usize] {
                        for other in 0..node_count {
                            meet[other] &= dominators[source as usize][other];
                        }
                    }
                }
                meet[node] = true;
                if meet != dominators[node] {
                    dominators[node] = meet;
                    changed = true;
                }
            }
        }
        // The immediate dominator is the strict dominator that every other strict dominator
        // dominates: the one with the most dominators of its own.
        (0..node_count)
            .map(|node| {
                if node == root as usize || !reachable[node] {
                    return None;
                }
                (0..node_count)
                    .filter(|&other| other != node && dominators[node][other])
                    .max_by_key(|&other| dominators[other].iter().filter(|&&is| is).count())
                    .map(|other| other as u32)
            })
            .collect()
    }

    fn idoms(node_count: usize, edges: &[(u32, u32)], root: u32) -> Vec<Option<u32>> {
        let (starts, targets) = csr(node_count, edges);
        let tree = DominatorTree::compute(
            Csr {
                starts: &starts,
                targets: &targets,
            },
            root,
        );
        // The variant that releases the successor lists computes the same tree.
        assert_eq!(
            DominatorTree::compute_releasing(starts.clone(), targets.clone(), root),
            tree
        );
        // Every reached node's root edge is the first edge from the root to its DFS branch:
        // an edge from the root to a node of that branch.
        let root_successors =
            &targets[starts[root as usize] as usize..starts[root as usize + 1] as usize];
        for number in 1..tree.reachable_count() as u32 {
            let edge = tree
                .root_edge(number)
                .expect("a reached node has a root edge");
            let branch_head = tree.number(root_successors[edge as usize]).unwrap();
            assert!(
                branch_head <= number,
                "the branch starts at or before the node"
            );
        }
        assert_eq!(tree.root_edge(0), None);
        (0..node_count as u32)
            .map(|node| tree.immediate_dominator(node))
            .collect()
    }

    #[test]
    fn test_dominator_tree_of_the_lengauer_tarjan_example() {
        // The flow graph of Lengauer and Tarjan's paper (R=0, A..L = 1..12).
        let (r, a, b, c, d, e, f, g, h, i, j, k, l) = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12);
        let edges = [
            (r, a),
            (r, b),
            (r, c),
            (a, d),
            (b, a),
            (b, d),
            (b, e),
            (c, f),
            (c, g),
            (d, l),
            (e, h),
            (f, i),
            (g, i),
            (g, j),
            (h, e),
            (h, k),
            (i, k),
            (j, i),
            (k, i),
            (k, r),
            (l, h),
        ];
        let expected = [
            None,
            Some(r),
            Some(r),
            Some(r),
            Some(r),
            Some(r),
            Some(c),
            Some(c),
            Some(r),
            Some(r),
            Some(g),
            Some(r),
            Some(d),
        ];
        assert_eq!(idoms(13, &edges, r), expected);
    }

    #[test]
    fn test_dominator_tree_leaves_unreached_nodes_out() {
        let edges = [(0, 1), (2, 1), (2, 3)];
        let (starts, targets) = csr(4, &edges);
        let tree = DominatorTree::compute(
            Csr {
                starts: &starts,
                targets: &targets,
            },
            0,
        );
        assert_eq!(tree.reachable_count(), 2);
        assert_eq!(tree.number(2), None);
        assert_eq!(tree.immediate_dominator(1), Some(0));
        assert_eq!(tree.immediate_dominator(3), None);
    }

    #[test]
    fn test_dominator_tree_of_a_long_chain_does_not_recurse() {
        // A million-node chain with a back edge to the root: every node dominates the next.
        let node_count = 1_000_000u32;
        let mut edges: Vec<(u32, u32)> = (0..node_count - 1).map(|n| (n, n + 1)).collect();
        edges.push((node_count - 1, 0));
        let (starts, targets) = csr(node_count as usize, &edges);
        let tree = DominatorTree::compute(
            Csr {
                starts: &starts,
                targets: &targets,
            },
            0,
        );
        assert_eq!(
            tree.immediate_dominator(node_count - 1),
            Some(node_count - 2)
        );
        assert_eq!(tree.reachable_count(), node_count as usize);
    }

    fn graphs() -> impl Strategy<Value = (usize, Vec<(u32, u32)>)> {
        (1usize..24).prop_flat_map(|node_count| {
            let edge = (0..node_count as u32, 0..node_count as u32);
            (
                Just(node_count),
                proptest::collection::vec(edge, 0..node_count * 3),
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn test_semi_nca_equals_the_data_flow_dominators((node_count, edges) in graphs()) {
            prop_assert_eq!(idoms(node_count, &edges, 0), naive_idoms(node_count, &edges, 0));
        }
    }
}
