//! Plan: the dependency DAG in, a tree of sequences and parallel groups out
//! (what Step Functions can express with a chain of states and nested
//! Parallel states).
//!
//! A series-parallel DAG is decomposed exactly: every step waits for its
//! dependencies and for nothing else. A DAG that is not series-parallel (the
//! smallest is the "N": `a → c`, `b → c`, `b → d`) has no such tree; the
//! planner then adds waiting, never removes it: at a point where no exact
//! split exists it cuts the steps into an earlier and a later group at a level
//! boundary, picking the cut that lengthens the critical path least and then
//! adds the fewest edges. The added edges are reported (see [`Plan::added`]).
//! Exact join gates, which would need no added waiting, can later replace such
//! a cut with a gate variant of [`Node`] (a task-token wait released by a
//! counter of finished dependencies) without changing the rest.
//!
//! Cost, for `n` steps and `e` dependencies: ancestor sets as bitsets take
//! `O(n·e/64)` time and `n²/8` bytes; each decomposition level scans
//! prefixes in `O(k²)` bit tests for a group of `k` steps, so a chain or a
//! wide fan-out costs `O(n²)` bit tests in all.

use crate::workflow::Workflow;

/// A structure of steps: what runs after what, and what runs side by side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Step(usize),
    /// One after the other.
    Seq(Vec<Node>),
    /// Side by side; the group ends when every branch has.
    Par(Vec<Node>),
}

/// The plan of a workflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub root: Node,
    /// Waiting the plan adds beyond the dependencies: `(a, b)` means `b` now
    /// waits for `a` although it does not depend on it.
    pub added: Vec<(usize, usize)>,
    /// The longest chain of dependent steps, counting steps.
    pub critical_path: usize,
    /// The longest chain the plan makes steps wait through.
    pub planned_critical_path: usize,
}

impl Node {
    /// The steps in this part of the plan, in the order they are emitted.
    pub fn steps(&self) -> Vec<usize> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect(&self, out: &mut Vec<usize>) {
        match self {
            Node::Step(s) => out.push(*s),
            Node::Seq(items) | Node::Par(items) => items.iter().for_each(|n| n.collect(out)),
        }
    }

    /// The number of steps on the longest path through this part.
    pub fn depth(&self) -> usize {
        match self {
            Node::Step(_) => 1,
            Node::Seq(items) => items.iter().map(Node::depth).sum(),
            Node::Par(items) => items.iter().map(Node::depth).max().unwrap_or(0),
        }
    }

    /// For each step, the steps the structure guarantees are finished before it starts.
    pub fn finished_before(&self, steps: usize) -> Vec<Vec<bool>> {
        let mut out = vec![vec![false; steps]; steps];
        self.walk_before(&[], &mut out);
        out
    }

    fn walk_before(&self, done: &[usize], out: &mut [Vec<bool>]) {
        match self {
            Node::Step(s) => done.iter().for_each(|&d| out[*s][d] = true),
            Node::Par(items) => items.iter().for_each(|n| n.walk_before(done, out)),
            Node::Seq(items) => {
                let mut done = done.to_vec();
                for item in items {
                    item.walk_before(&done, out);
                    done.extend(item.steps());
                }
            }
        }
    }
}

/// Plans the steps of a workflow that run in the main flow (fallback steps
/// run only in place of a failed step and are placed by the emitter).
pub fn plan(wf: &Workflow) -> Plan {
    let steps: Vec<usize> = (0..wf.steps.len())
        .filter(|&i| wf.steps[i].fallback_for.is_none())
        .collect();
    let preds: Vec<Vec<usize>> = wf
        .steps
        .iter()
        .map(|s| {
            s.dep_indices()
                .filter(|&d| wf.steps[d].fallback_for.is_none())
                .collect()
        })
        .collect();
    plan_dag(wf.steps.len(), &steps, &preds)
}

/// Plans a DAG given as the predecessors of each node; only `nodes` are planned.
pub fn plan_dag(count: usize, nodes: &[usize], preds: &[Vec<usize>]) -> Plan {
    let order = topological(count, nodes, preds);
    let mut pos = vec![usize::MAX; count];
    for (p, &v) in order.iter().enumerate() {
        pos[v] = p;
    }
    let mut anc: Vec<BitSet> = vec![BitSet::new(0); count];
    for &v in &order {
        let mut set = BitSet::new(order.len());
        for &u in &preds[v] {
            if pos[u] != usize::MAX {
                set.union_with(&anc[u]);
                set.insert(pos[u]);
            }
        }
        anc[v] = set;
    }
    let mut planner = Planner {
        bits: order.len(),
        preds,
        pos,
        anc,
        stamp: vec![0; count],
        next_stamp: 0,
        added: Vec::new(),
    };
    let root = if order.is_empty() {
        Node::Seq(Vec::new())
    } else {
        planner.decompose(order)
    };
    let critical_path = planner.longest_chain(&nodes_in_order(&root));
    let planned_critical_path = root.depth();
    Plan {
        root,
        added: planner.added,
        critical_path,
        planned_critical_path,
    }
}

fn nodes_in_order(root: &Node) -> Vec<usize> {
    root.steps()
}

/// Kahn's algorithm; ties broken by index so plans are deterministic.
fn topological(count: usize, nodes: &[usize], preds: &[Vec<usize>]) -> Vec<usize> {
    let mut member = vec![false; count];
    nodes.iter().for_each(|&v| member[v] = true);
    let mut indegree = vec![0usize; count];
    let mut succs: Vec<Vec<usize>> = vec![Vec::new(); count];
    for &v in nodes {
        for &u in &preds[v] {
            if member[u] {
                indegree[v] += 1;
                succs[u].push(v);
            }
        }
    }
    let mut ready: std::collections::BTreeSet<usize> = nodes.iter().copied().filter(|&v| indegree[v] == 0).collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(v) = ready.pop_first() {
        order.push(v);
        for &w in &succs[v] {
            indegree[w] -= 1;
            if indegree[w] == 0 {
                ready.insert(w);
            }
        }
    }
    order
}

struct Planner<'p> {
    /// Planned steps: the size of every ancestor set.
    bits: usize,
    preds: &'p [Vec<usize>],
    pos: Vec<usize>,
    anc: Vec<BitSet>,
    stamp: Vec<u32>,
    next_stamp: u32,
    added: Vec<(usize, usize)>,
}

impl Planner<'_> {
    fn is_ancestor(&self, u: usize, v: usize) -> bool {
        self.anc[v].contains(self.pos[u])
    }

    fn mark(&mut self, group: &[usize]) -> u32 {
        self.next_stamp += 1;
        group.iter().for_each(|&v| self.stamp[v] = self.next_stamp);
        self.next_stamp
    }

    /// `group` is in topological order; so is every part returned.
    fn decompose(&mut self, group: Vec<usize>) -> Node {
        if group.len() == 1 {
            return Node::Step(group[0]);
        }
        let components = self.components(&group);
        if components.len() > 1 {
            return Node::Par(components.into_iter().map(|c| self.decompose(c)).collect());
        }
        let cuts = self.series_cuts(&group);
        if !cuts.is_empty() {
            let mut parts = Vec::with_capacity(cuts.len() + 1);
            let mut start = 0;
            for cut in cuts.into_iter().chain([group.len()]) {
                parts.push(self.decompose(group[start..cut].to_vec()));
                start = cut;
            }
            return Node::Seq(parts);
        }
        let (before, after) = self.forced_cut(&group);
        Node::Seq(vec![self.decompose(before), self.decompose(after)])
    }

    /// Weakly connected parts of `group`, each in topological order.
    fn components(&mut self, group: &[usize]) -> Vec<Vec<usize>> {
        let stamp = self.mark(group);
        let index: std::collections::HashMap<usize, usize> = group.iter().enumerate().map(|(i, &v)| (v, i)).collect();
        let mut parent: Vec<usize> = (0..group.len()).collect();
        fn find(parent: &mut [usize], mut x: usize) -> usize {
            while parent[x] != x {
                parent[x] = parent[parent[x]];
                x = parent[x];
            }
            x
        }
        for (i, &v) in group.iter().enumerate() {
            for &u in &self.preds[v] {
                if self.stamp[u] == stamp {
                    let (a, b) = (find(&mut parent, i), find(&mut parent, index[&u]));
                    if a != b {
                        parent[a.max(b)] = a.min(b);
                    }
                }
            }
        }
        let mut parts: Vec<Vec<usize>> = Vec::new();
        let mut root_part: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
        for (i, &v) in group.iter().enumerate() {
            let root = find(&mut parent, i);
            let part = *root_part.entry(root).or_insert_with(|| {
                parts.push(Vec::new());
                parts.len() - 1
            });
            parts[part].push(v);
        }
        parts
    }

    /// Every `k` such that the first `k` steps all precede all the others.
    fn series_cuts(&self, group: &[usize]) -> Vec<usize> {
        let n = group.len();
        // lead[j]: how many leading steps of the group are ancestors of group[j].
        let lead: Vec<usize> = if n < 256 {
            (0..n)
                .map(|j| (0..j).take_while(|&i| self.is_ancestor(group[i], group[j])).count())
                .collect()
        } else {
            self.leads_by_words(group)
        };
        let mut cuts = Vec::new();
        let mut suffix_min = usize::MAX;
        for k in (1..n).rev() {
            suffix_min = suffix_min.min(lead[k]);
            if suffix_min >= k {
                cuts.push(k);
            }
        }
        cuts.reverse();
        cuts
    }

    /// The same as the scan, a word at a time: the first group member that is
    /// not an ancestor is the lowest set bit of `group & !ancestors`.
    fn leads_by_words(&self, group: &[usize]) -> Vec<usize> {
        let positions: Vec<usize> = group.iter().map(|&v| self.pos[v]).collect();
        let mut mask = BitSet::new(self.bits);
        positions.iter().for_each(|&p| mask.insert(p));
        (0..group.len())
            .map(|j| {
                let own = positions[j];
                let anc = &self.anc[group[j]];
                for (w, &m) in mask.words.iter().enumerate().take(own / 64 + 1) {
                    let missing = m & !anc.words.get(w).copied().unwrap_or(0);
                    if missing != 0 {
                        let p = w * 64 + missing.trailing_zeros() as usize;
                        return positions.partition_point(|&q| q < p).min(j);
                    }
                }
                j
            })
            .collect()
    }

    /// No exact split exists: cut at the level boundary that costs least.
    fn forced_cut(&mut self, group: &[usize]) -> (Vec<usize>, Vec<usize>) {
        let stamp = self.mark(group);
        let n = group.len();
        let local: std::collections::HashMap<usize, usize> = group.iter().enumerate().map(|(i, &v)| (v, i)).collect();
        let preds: Vec<Vec<usize>> = group
            .iter()
            .map(|&v| {
                self.preds[v]
                    .iter()
                    .filter(|&&u| self.stamp[u] == stamp)
                    .map(|u| local[u])
                    .collect()
            })
            .collect();
        let mut depth = vec![0usize; n];
        for j in 0..n {
            depth[j] = preds[j].iter().map(|&i| depth[i] + 1).max().unwrap_or(0);
        }
        let mut height = vec![0usize; n];
        for j in (0..n).rev() {
            for &i in &preds[j] {
                height[i] = height[i].max(height[j] + 1);
            }
        }
        let levels = depth.iter().max().copied().unwrap_or(0) + 1;
        let mut best: Option<Cut> = None;
        for t in 1..levels {
            for alap in [false, true] {
                let early: Vec<bool> = (0..n)
                    .map(|j| if alap { levels - 1 - height[j] < t } else { depth[j] < t })
                    .collect();
                if early.iter().all(|&e| e) || !early.iter().any(|&e| e) {
                    continue;
                }
                let cost = chain(&preds, &early, true) + chain(&preds, &early, false);
                if best.as_ref().is_some_and(|b| b.0 < cost) {
                    continue;
                }
                let edges = self.added_edges(group, &preds, &early);
                let better = match &best {
                    None => true,
                    Some(b) => (cost, edges.len()) < (b.0, b.1),
                };
                if better {
                    best = Some((cost, edges.len(), early, edges));
                }
            }
        }
        let (_, _, early, edges) = best.unwrap_or_else(|| {
            let mut early = vec![false; n];
            early[0] = true;
            let edges = self.added_edges(group, &preds, &early);
            (0, 0, early, edges)
        });
        self.added.extend(edges);
        let before = (0..n).filter(|&j| early[j]).map(|j| group[j]).collect();
        let after = (0..n).filter(|&j| !early[j]).map(|j| group[j]).collect();
        (before, after)
    }

    /// Edges from the last steps of the early part to the first of the late part that were not implied.
    fn added_edges(&self, group: &[usize], preds: &[Vec<usize>], early: &[bool]) -> Vec<(usize, usize)> {
        let n = group.len();
        let mut has_early_succ = vec![false; n];
        let mut has_late_pred = vec![false; n];
        for j in 0..n {
            for &i in &preds[j] {
                if early[j] {
                    has_early_succ[i] = true;
                } else if !early[i] {
                    has_late_pred[j] = true;
                }
            }
        }
        let last: Vec<usize> = (0..n).filter(|&j| early[j] && !has_early_succ[j]).collect();
        let first: Vec<usize> = (0..n).filter(|&j| !early[j] && !has_late_pred[j]).collect();
        let mut out = Vec::new();
        for &v in &first {
            for &u in &last {
                if !self.is_ancestor(group[u], group[v]) {
                    out.push((group[u], group[v]));
                }
            }
        }
        out
    }

    /// The longest dependency chain among `steps`, counting steps.
    fn longest_chain(&self, steps: &[usize]) -> usize {
        let mut order: Vec<usize> = steps.to_vec();
        order.sort_by_key(|&v| self.pos[v]);
        let mut best = vec![0usize; self.pos.len()];
        let mut longest = 0;
        for &v in &order {
            let d = self.preds[v]
                .iter()
                .filter(|&&u| self.pos[u] != usize::MAX)
                .map(|&u| best[u])
                .max()
                .unwrap_or(0)
                + 1;
            best[v] = d;
            longest = longest.max(d);
        }
        longest
    }
}

/// A candidate cut: critical path, added edge count, which steps go early, the added edges.
type Cut = (usize, usize, Vec<bool>, Vec<(usize, usize)>);

/// The longest chain inside the early (or late) part, with local predecessors.
fn chain(preds: &[Vec<usize>], early: &[bool], side: bool) -> usize {
    let mut best = vec![0usize; preds.len()];
    let mut longest = 0;
    for j in 0..preds.len() {
        if early[j] != side {
            continue;
        }
        best[j] = preds[j]
            .iter()
            .filter(|&&i| early[i] == side)
            .map(|&i| best[i])
            .max()
            .unwrap_or(0)
            + 1;
        longest = longest.max(best[j]);
    }
    longest
}

/// A fixed-size set of small integers.
#[derive(Debug, Clone)]
struct BitSet {
    words: Vec<u64>,
}

impl BitSet {
    fn new(bits: usize) -> Self {
        BitSet {
            words: vec![0; bits.div_ceil(64)],
        }
    }

    fn insert(&mut self, bit: usize) {
        self.words[bit / 64] |= 1 << (bit % 64);
    }

    fn contains(&self, bit: usize) -> bool {
        self.words.get(bit / 64).is_some_and(|w| w & (1 << (bit % 64)) != 0)
    }

    fn union_with(&mut self, other: &BitSet) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(count: usize, edges: &[(usize, usize)]) -> Plan {
        let mut preds = vec![Vec::new(); count];
        for &(a, b) in edges {
            preds[b].push(a);
        }
        plan_dag(count, &(0..count).collect::<Vec<_>>(), &preds)
    }

    #[test]
    fn a_diamond_is_a_sequence_around_a_parallel() {
        let plan = plan_of(4, &[(0, 1), (0, 2), (1, 3), (2, 3)]);
        let expected = Node::Seq(vec![
            Node::Step(0),
            Node::Par(vec![Node::Step(1), Node::Step(2)]),
            Node::Step(3),
        ]);
        assert_eq!(plan.root, expected);
        assert!(plan.added.is_empty());
        assert_eq!((plan.critical_path, plan.planned_critical_path), (3, 3));
    }

    #[test]
    fn an_n_gets_one_added_edge_and_no_longer_critical_path() {
        // a=0, b=1, c=2, d=3: a → c, b → c, b → d.
        let plan = plan_of(4, &[(0, 2), (1, 2), (1, 3)]);
        assert_eq!(plan.added, vec![(0, 3)]);
        assert_eq!((plan.critical_path, plan.planned_critical_path), (2, 2));
        let before = plan.root.finished_before(4);
        assert!(before[2][0] && before[2][1] && before[3][1]);
    }

    #[test]
    fn large_groups_find_the_same_cuts_a_word_at_a_time() {
        // Stages of a fan-out and a join, with some N shapes, 600 steps.
        let mut edges = Vec::new();
        let mut seed = 7u64;
        for stage in 0..50 {
            let base = stage * 12;
            for t in 1..11 {
                edges.push((base, base + t));
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                if seed >> 60 == 0 && t > 1 {
                    edges.push((base + t - 1, base + t));
                }
                edges.push((base + t, base + 11));
            }
            if stage > 0 {
                edges.push((base - 1, base));
            }
        }
        let n = 600;
        let mut preds = vec![Vec::new(); n];
        for &(a, b) in &edges {
            preds[b].push(a);
        }
        let nodes: Vec<usize> = (0..n).collect();
        let plan = plan_dag(n, &nodes, &preds);
        let order = topological(n, &nodes, &preds);
        let mut pos = vec![0; n];
        order.iter().enumerate().for_each(|(p, &v)| pos[v] = p);
        let mut anc = vec![BitSet::new(n); n];
        for &v in &order {
            for &u in &preds[v] {
                let from = anc[u].clone();
                anc[v].union_with(&from);
                anc[v].insert(pos[u]);
            }
        }
        let planner = Planner {
            bits: n,
            preds: &preds,
            pos,
            anc,
            stamp: vec![0; n],
            next_stamp: 0,
            added: Vec::new(),
        };
        let scanned: Vec<usize> = (0..n)
            .map(|j| (0..j).take_while(|&i| planner.is_ancestor(order[i], order[j])).count())
            .collect();
        assert_eq!(planner.leads_by_words(&order), scanned);
        assert_eq!(plan.critical_path, plan.planned_critical_path);
    }

    #[test]
    fn independent_chains_run_side_by_side() {
        let plan = plan_of(4, &[(0, 1), (2, 3)]);
        let expected = Node::Par(vec![
            Node::Seq(vec![Node::Step(0), Node::Step(1)]),
            Node::Seq(vec![Node::Step(2), Node::Step(3)]),
        ]);
        assert_eq!(plan.root, expected);
    }
}
