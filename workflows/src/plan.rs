//! Plan: the dependency DAG in; out, a tree of sequences and parallel groups
//! (what Step Functions expresses with a chain of states and nested Parallel
//! states), plus join gates where the tree alone cannot be exact.
//!
//! A series-parallel DAG is decomposed exactly: every step waits for its
//! dependencies and for nothing else. A DAG that is not series-parallel (the
//! smallest is the "N": `a → c`, `b → c`, `b → d`) has no such tree. Where a
//! group of steps has neither a series nor a parallel split, the group runs
//! as parallel chains that follow dependency edges (a path cover, chosen so
//! that steps with one dependency in the group continue its chain), and a
//! step that also depends on steps in other chains waits on a join gate for
//! them (see [`Gate`]): a task token released when they have finished. Every
//! step still waits for its dependencies and nothing else, so the makespan is
//! the critical path; gates are used only inside such groups, and plain
//! nested Parallel states everywhere else.
//!
//! [`levels`] plans the same DAG level by level, the way tools without gates
//! do, as a baseline for comparison.
//!
//! Cost, for `n` steps and `e` dependencies: ancestor sets as bitsets take
//! `O(n·e/64)` time and `n²/8` bytes; each decomposition level scans
//! prefixes in `O(k²)` bit tests for a group of `k` steps, so a chain or a
//! wide fan-out costs `O(n²)` bit tests in all; chains and gates cost
//! `O(k·e/64)` for a group of `k` steps.

use std::collections::BTreeMap;

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
    /// The steps that wait on a join gate, and for what.
    pub gates: BTreeMap<usize, Gate>,
    /// Waiting the plan adds beyond the dependencies: `(a, b)` means `b` now
    /// waits for `a` although it does not depend on it. Empty except for the
    /// [`levels`] baseline.
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

/// A join gate: before its step starts, it waits for `deps`, which its place
/// in the tree does not already guarantee (they run in other branches).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Gate {
    pub deps: Vec<usize>,
    /// The dependencies whose exported values the step reads (in a `when` or
    /// a `for_each`) and which its branch does not carry: the gate returns them.
    pub values: Vec<usize>,
}

impl Plan {
    /// Start and finish times of every planned step, for step durations given
    /// per step, each step starting as soon as the structure and its gate let
    /// it. Unplanned steps get `(0, 0)`.
    pub fn schedule(&self, durations: &[f64]) -> Vec<(f64, f64)> {
        let mut times = vec![(0.0, 0.0); durations.len()];
        // Gate waits only grow the times; a pass per gate settles them.
        for _ in 0..=self.gates.len() {
            let before = times.clone();
            self.root.time(0.0, durations, &self.gates, &mut times);
            if times == before {
                break;
            }
        }
        times
    }

    /// When the last step finishes (see [`Plan::schedule`]).
    pub fn makespan(&self, durations: &[f64]) -> f64 {
        self.schedule(durations).iter().map(|t| t.1).fold(0.0, f64::max)
    }

    /// For each step, every step certainly finished when it starts, by the
    /// structure, the gates, and what those steps waited for in turn.
    /// `O(n³)` at worst: for tests and explanations of small plans.
    pub fn finished_before(&self, steps: usize) -> Vec<Vec<bool>> {
        let mut before = self.root.finished_before(steps);
        for (&s, gate) in &self.gates {
            gate.deps.iter().for_each(|&d| before[s][d] = true);
        }
        loop {
            let mut changed = false;
            for s in 0..steps {
                for t in 0..steps {
                    if before[s][t] {
                        let waited = before[t].clone();
                        for (mine, theirs) in before[s].iter_mut().zip(waited) {
                            changed |= theirs && !*mine;
                            *mine |= theirs;
                        }
                    }
                }
            }
            if !changed {
                return before;
            }
        }
    }
}

impl Node {
    /// Sets the times of the steps in this part started at `start`; returns its end.
    fn time(&self, start: f64, durations: &[f64], gates: &BTreeMap<usize, Gate>, out: &mut [(f64, f64)]) -> f64 {
        match self {
            Node::Step(s) => {
                let gate = gates
                    .get(s)
                    .map(|g| g.deps.iter().map(|&d| out[d].1).fold(0.0, f64::max))
                    .unwrap_or(0.0);
                let begin = start.max(gate);
                out[*s] = (begin, begin + durations[*s]);
                out[*s].1
            }
            Node::Seq(items) => items.iter().fold(start, |at, n| n.time(at, durations, gates, out)),
            Node::Par(items) => items
                .iter()
                .map(|n| n.time(start, durations, gates, out))
                .fold(start, f64::max),
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
    let reads: Vec<Vec<usize>> = wf.steps.iter().map(|s| s.reads().collect()).collect();
    plan_reading(wf.steps.len(), &steps, &preds, &reads)
}

/// Plans a DAG given as the predecessors of each node; only `nodes` are planned.
pub fn plan_dag(count: usize, nodes: &[usize], preds: &[Vec<usize>]) -> Plan {
    plan_reading(count, nodes, preds, &[])
}

/// [`plan_dag`], where `reads[v]` are the dependencies whose exported values
/// `v` reads from the state: a gate returns those its branch does not carry.
pub fn plan_reading(count: usize, nodes: &[usize], preds: &[Vec<usize>], reads: &[Vec<usize>]) -> Plan {
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
        reads,
        gates: BTreeMap::new(),
    };
    let root = if order.is_empty() {
        Node::Seq(Vec::new())
    } else {
        planner.decompose(order)
    };
    let critical_path = planner.longest_chain(&nodes_in_order(&root));
    let mut plan = Plan {
        root,
        gates: planner.gates,
        added: Vec::new(),
        critical_path,
        planned_critical_path: 0,
    };
    plan.planned_critical_path = plan.makespan(&vec![1.0; count]) as usize;
    plan
}

/// The level-by-level plan of a DAG: every step of a level (its longest chain
/// of dependencies) waits for the whole level before. What planners without
/// gates do with any DAG; a baseline to compare with.
pub fn levels(count: usize, nodes: &[usize], preds: &[Vec<usize>]) -> Plan {
    let order = topological(count, nodes, preds);
    let mut level = vec![usize::MAX; count];
    let mut by_level: Vec<Vec<usize>> = Vec::new();
    for &v in &order {
        let l = preds[v]
            .iter()
            .filter(|&&u| level[u] != usize::MAX)
            .map(|&u| level[u] + 1)
            .max()
            .unwrap_or(0);
        level[v] = l;
        if by_level.len() <= l {
            by_level.resize(l + 1, Vec::new());
        }
        by_level[l].push(v);
    }
    let mut added = Vec::new();
    for pair in by_level.windows(2) {
        for &v in &pair[1] {
            added.extend(pair[0].iter().filter(|u| !preds[v].contains(u)).map(|&u| (u, v)));
        }
    }
    let critical_path = by_level.len();
    let root = Node::Seq(
        by_level
            .into_iter()
            .map(|l| match l.as_slice() {
                [one] => Node::Step(*one),
                _ => Node::Par(l.into_iter().map(Node::Step).collect()),
            })
            .collect(),
    );
    Plan {
        root,
        gates: BTreeMap::new(),
        added,
        critical_path,
        planned_critical_path: critical_path,
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
    reads: &'p [Vec<usize>],
    gates: BTreeMap<usize, Gate>,
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
        self.join(group)
    }

    /// No exact split exists: parallel chains along dependency edges, and a
    /// gate for each step that depends on steps of other chains.
    fn join(&mut self, group: Vec<usize>) -> Node {
        let stamp = self.mark(&group);
        let local: std::collections::HashMap<usize, usize> = group.iter().enumerate().map(|(i, &v)| (v, i)).collect();
        let inner: Vec<Vec<usize>> = group
            .iter()
            .map(|&v| {
                let mut p: Vec<usize> = self.preds[v]
                    .iter()
                    .filter(|&&u| self.stamp[u] == stamp)
                    .map(|u| local[u])
                    .collect();
                p.sort_unstable();
                p.dedup();
                p
            })
            .collect();
        // Chain links `next[i] = j`: j runs right after i in i's chain. Steps
        // with a single dependency in the group take it first (no gate then),
        // the others continue the chain of their latest dependency.
        let n = group.len();
        let (mut next, mut prev) = (vec![usize::MAX; n], vec![usize::MAX; n]);
        for single in [true, false] {
            for j in 0..n {
                if prev[j] != usize::MAX || inner[j].is_empty() || single != (inner[j].len() == 1) {
                    continue;
                }
                if let Some(&i) = inner[j].iter().rev().find(|&&i| next[i] == usize::MAX) {
                    next[i] = j;
                    prev[j] = i;
                }
            }
        }
        let mut branches = Vec::new();
        for head in (0..n).filter(|&j| prev[j] == usize::MAX) {
            let mut chain = Vec::new();
            let mut before = BitSet::new(self.bits);
            let mut carried: Vec<usize> = Vec::new();
            let mut j = head;
            loop {
                let v = group[j];
                let reads: &[usize] = self.reads.get(v).map(Vec::as_slice).unwrap_or(&[]);
                let mut deps: Vec<usize> = inner[j]
                    .iter()
                    .map(|&i| group[i])
                    .filter(|&u| !before.contains(self.pos[u]))
                    .collect();
                // A dependency of another waited-for one is implied by it.
                let implied: Vec<usize> = deps
                    .iter()
                    .copied()
                    .filter(|&u| deps.iter().any(|&w| w != u && self.is_ancestor(u, w)))
                    .collect();
                deps.retain(|u| !implied.contains(u));
                // Values read from a step of another chain come back through the gate.
                let values: Vec<usize> = reads
                    .iter()
                    .copied()
                    .filter(|&u| local.contains_key(&u) && !chain.contains(&u) && !carried.contains(&u))
                    .collect();
                for &u in &values {
                    if !deps.contains(&u) {
                        deps.push(u);
                    }
                }
                if !deps.is_empty() {
                    deps.sort_by_key(|&u| self.pos[u]);
                    for &u in &deps {
                        before.union_with(&self.anc[u]);
                        before.insert(self.pos[u]);
                    }
                    carried.extend(&values);
                    self.gates.insert(v, Gate { deps, values });
                }
                before.union_with(&self.anc[v]);
                before.insert(self.pos[v]);
                chain.push(v);
                if next[j] == usize::MAX {
                    break;
                }
                j = next[j];
            }
            branches.push(match chain.as_slice() {
                [one] => Node::Step(*one),
                _ => Node::Seq(chain.into_iter().map(Node::Step).collect()),
            });
        }
        Node::Par(branches)
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
    fn an_n_gets_one_gate_and_no_added_waiting() {
        // a=0, b=1, c=2, d=3: a → c, b → c, b → d.
        let plan = plan_of(4, &[(0, 2), (1, 2), (1, 3)]);
        assert!(plan.added.is_empty());
        assert_eq!(plan.gates.len(), 1, "{plan:?}");
        let before = plan.finished_before(4);
        assert!(before[2][0] && before[2][1] && before[3][1]);
        assert!(
            !before[3][0] && !before[2][3],
            "d must not wait for a, nor c for d: {plan:?}"
        );
        // b takes long: c waits for it through the gate, d only for b.
        let times = plan.schedule(&[1.0, 5.0, 1.0, 1.0]);
        assert_eq!(times[2], (5.0, 6.0));
        assert_eq!(times[3], (5.0, 6.0));
        assert_eq!((plan.critical_path, plan.planned_critical_path), (2, 2));
    }

    #[test]
    fn a_level_by_level_plan_waits_for_whole_levels() {
        let edges = [(0, 2), (1, 2), (1, 3)];
        let mut preds = vec![Vec::new(); 4];
        edges.iter().for_each(|&(a, b)| preds[b].push(a));
        let nodes: Vec<usize> = (0..4).collect();
        let baseline = levels(4, &nodes, &preds);
        assert_eq!(baseline.added, vec![(0, 3)]);
        // a takes long: d waits for it although it does not depend on it;
        // with the gate, d runs right after b.
        let slow_a = [5.0, 1.0, 1.0, 1.0];
        assert_eq!(baseline.schedule(&slow_a)[3], (5.0, 6.0));
        assert_eq!(plan_dag(4, &nodes, &preds).schedule(&slow_a)[3], (1.0, 2.0));
        // With slow a and slow d the whole job waits.
        let slow_a_d = [5.0, 1.0, 1.0, 5.0];
        assert_eq!(baseline.makespan(&slow_a_d), 10.0);
        assert_eq!(plan_dag(4, &nodes, &preds).makespan(&slow_a_d), 6.0);
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
            reads: &[],
            gates: BTreeMap::new(),
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
