//! How long a job takes as compiled, against the critical path of its DAG:
//! the planner with join gates, and a level-by-level plan (every step of a
//! level waits for the whole level before it, as planners without gates run
//! graphs that are not series-parallel), on random and real-shaped DAGs.
//!
//! For each DAG, step durations are drawn once (seeded) and both plans are
//! timed with them by [`Plan::makespan`]: a step starts when the structure
//! and its gate let it. Printed per DAG: the makespan divided by the critical
//! path for each plan, and the state transitions per job of each (from the
//! emitted state machine's `--explain` counts; gates and their notices
//! included). Durations are log-uniform from 1 to 100 seconds. The first two
//! ratios count the engine's own overhead as zero: what the structure costs.
//! The `+oh` ratios add [`OVERHEAD`] per step and again per gated step (the
//! gate's own round trip, counted in full although it mostly overlaps the
//! wait): what a job would take. The local-stack test `tests/e2e/dags.rs`
//! measures the real thing.
//!
//! Run with `cargo bench -p garden-workflows --bench makespan`.

#![allow(clippy::print_stdout)]

use garden_workflows::plan::{self, Plan};
use garden_workflows::workflow::Workflow;
use garden_workflows::{explain, load_str};

/// Seconds the engine adds to a step through LocalStack (measured by the
/// `local_stack` bench: 274 ms per step beyond the work).
const OVERHEAD: f64 = 0.274;

/// A small xorshift generator: the same DAGs and durations on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, p: f64) -> bool {
        (self.next() % 10_000) as f64 / 10_000.0 < p
    }
}

/// A DAG as the predecessors of each step (edges from lower to higher index).
struct Dag {
    name: String,
    preds: Vec<Vec<usize>>,
}

fn random(name: &str, n: usize, p: f64, rng: &mut Rng) -> Dag {
    let preds = (0..n).map(|j| (0..j).filter(|_| rng.chance(p)).collect()).collect();
    Dag {
        name: name.into(),
        preds,
    }
}

/// Two pipelines that check each other at every stage: `a_i → a_{i+1}`,
/// `b_i → b_{i+1}`, `a_i → b_{i+1}` (a ladder; not series-parallel).
fn ladder(stages: usize) -> Dag {
    let mut preds = Vec::new();
    for i in 0..stages {
        let (a, b) = (2 * i, 2 * i + 1);
        preds.push(if i == 0 { vec![] } else { vec![a - 2] });
        preds.push(if i == 0 { vec![] } else { vec![b - 2, a - 2] });
    }
    Dag {
        name: format!("ladder x{stages}"),
        preds,
    }
}

/// Research-shaped: a plan, sources searched per section, a draft per section
/// needing its own sources and the glossary, a review needing every draft,
/// and a fact check per draft needing that draft and one source.
fn research(sections: usize) -> Dag {
    let mut preds: Vec<Vec<usize>> = vec![vec![]]; // 0: plan
    preds.push(vec![0]); // 1: glossary
    let search: Vec<usize> = (0..sections)
        .map(|_| {
            preds.push(vec![0]);
            preds.len() - 1
        })
        .collect();
    let drafts: Vec<usize> = (0..sections)
        .map(|i| {
            preds.push(vec![search[i], 1]);
            preds.len() - 1
        })
        .collect();
    for (i, &d) in drafts.iter().enumerate() {
        preds.push(vec![d, search[(i + 1) % sections]]);
    }
    preds.push(drafts.clone());
    Dag {
        name: format!("research x{sections}"),
        preds,
    }
}

/// Triage-shaped: classify, then lookups that feed different actions.
fn triage() -> Dag {
    // 0 classify, 1 customer, 2 history, 3 entitlements(1), 4 draft(0,1,2),
    // 5 ticket(0,3), 6 reply(4,5), 7 escalate(2,3)
    let preds = vec![
        vec![],
        vec![],
        vec![1],
        vec![1],
        vec![0, 1, 2],
        vec![0, 3],
        vec![4, 5],
        vec![2, 3],
    ];
    Dag {
        name: "triage".into(),
        preds,
    }
}

/// The definition of a DAG: one tool step per node, edges through `needs`.
fn definition(dag: &Dag) -> String {
    let mut text =
        String::from("name: bench\nresources:\n  gateways:\n    t: { url: \"http://127.0.0.1:1/mcp\" }\nsteps:\n");
    for (v, deps) in dag.preds.iter().enumerate() {
        text.push_str(&format!("  s{v}:\n    tool: {{ gateway: t, name: work }}\n"));
        if !deps.is_empty() {
            let needs: Vec<String> = deps.iter().map(|u| format!("s{u}")).collect();
            text.push_str(&format!("    needs: [{}]\n", needs.join(", ")));
        }
    }
    text
}

struct Row {
    name: String,
    steps: usize,
    edges: usize,
    gates: usize,
    gated: f64,
    levels: f64,
    gated_overhead: f64,
    levels_overhead: f64,
    gated_transitions: u64,
    level_transitions: u64,
}

fn measure(dag: &Dag, rng: &mut Rng) -> Row {
    let wf: Workflow = load_str("bench.yaml", &definition(dag), None)
        .unwrap_or_else(|d| panic!("{}: {:?}", dag.name, miette::Report::new(d)));
    let n = wf.steps.len();
    let preds: Vec<Vec<usize>> = wf.steps.iter().map(|s| s.dep_indices().collect()).collect();
    let nodes: Vec<usize> = (0..n).collect();
    // Log-uniform durations from 1 to 100 units: a few slow steps among fast ones.
    let durations: Vec<f64> = (0..n).map(|_| 10f64.powf(rng.below(2_000) as f64 / 1_000.0)).collect();
    let mut finish = vec![0.0f64; n];
    for v in 0..n {
        finish[v] = preds[v].iter().map(|&u| finish[u]).fold(0.0, f64::max) + durations[v];
    }
    let critical = finish.iter().copied().fold(0.0, f64::max);
    let gated: Plan = plan::plan(&wf);
    let baseline: Plan = plan::levels(n, &nodes, &preds);
    let plus = |gate: &dyn Fn(usize) -> bool| -> Vec<f64> {
        (0..n)
            .map(|v| durations[v] + OVERHEAD * if gate(v) { 2.0 } else { 1.0 })
            .collect()
    };
    let gated_overhead = gated.makespan(&plus(&|v| gated.gates.contains_key(&v))) / critical;
    let levels_overhead = baseline.makespan(&plus(&|_| false)) / critical;
    Row {
        gated_overhead,
        levels_overhead,
        name: dag.name.clone(),
        steps: n,
        edges: preds.iter().map(Vec::len).sum(),
        gates: gated.gates.len(),
        gated: gated.makespan(&durations) / critical,
        levels: baseline.makespan(&durations) / critical,
        gated_transitions: explain::explain(&wf, &gated).counts.transitions,
        level_transitions: explain::explain(&wf, &baseline).counts.transitions,
    }
}

fn main() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut dags = vec![
        Dag {
            name: "n-shape".into(),
            preds: vec![vec![], vec![], vec![0, 1], vec![1]],
        },
        triage(),
        research(4),
        research(12),
        ladder(5),
        ladder(20),
    ];
    for (n, p) in [(10, 0.3), (20, 0.2), (40, 0.1), (80, 0.05), (80, 0.15), (200, 0.02)] {
        let p: f64 = p;
        for k in 0..2 {
            dags.push(random(&format!("random {n} p={p} #{k}"), n, p, &mut rng));
        }
    }
    println!(
        "{:<22} {:>5} {:>5} {:>5} {:>9} {:>9} {:>10} {:>10} {:>7} {:>7}",
        "DAG", "steps", "edges", "gates", "gated/CP", "levels/CP", "gated+oh", "levels+oh", "trans", "trans"
    );
    println!("{:<82} {:>7} {:>7}", "", "gated", "levels");
    let mut rows = Vec::new();
    for dag in &dags {
        let row = measure(dag, &mut rng);
        println!(
            "{:<22} {:>5} {:>5} {:>5} {:>9.3} {:>9.3} {:>10.3} {:>10.3} {:>7} {:>7}",
            row.name,
            row.steps,
            row.edges,
            row.gates,
            row.gated,
            row.levels,
            row.gated_overhead,
            row.levels_overhead,
            row.gated_transitions,
            row.level_transitions
        );
        rows.push(row);
    }
    let geo = |f: &dyn Fn(&Row) -> f64| (rows.iter().map(|r| f(r).ln()).sum::<f64>() / rows.len() as f64).exp();
    println!();
    println!(
        "geometric mean over {} DAGs: makespan / critical path {:.3} with gates, {:.3} level by level \
         ({:.2}x longer); with overhead {:.3} and {:.3}; transitions per job x{:.3} with gates",
        rows.len(),
        geo(&|r| r.gated),
        geo(&|r| r.levels),
        geo(&|r| r.levels / r.gated),
        geo(&|r| r.gated_overhead),
        geo(&|r| r.levels_overhead),
        geo(&|r| r.gated_transitions as f64 / r.level_transitions as f64),
    );
}
