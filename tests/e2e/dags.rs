//! Random DAGs of timed tool steps, run as the compiler plans them: no step
//! starts before all of its dependencies finished, and a job takes about its
//! critical path, not the sum of its levels.
//!
//! Every step calls the stand-in tool `pause` for 200-1500 ms. The DAGs are
//! the same on every run: the "N" (a -> c, b -> c, b -> d), the smallest
//! shape that is not series-parallel; a braid of three chains linked across;
//! and random ones of 6 to 10 steps from fixed seeds, whose edges are
//! written either as `needs` or as template references to a dependency's
//! output. Each DAG is deployed as a workflow and run as one job at a time,
//! so the steps do not wait for each other's workers. The figures come from
//! the step items (`started_at`, `finished_at`) that `garden status --json`
//! shows. A last test checks that a gate hands a joining step the value it
//! decides on when that value was exported in another branch.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::common::*;

/// Random DAGs besides the fixed ones: seeds of dense DAGs (an edge between
/// two steps with probability 0.3) and of sparse, wider ones (0.15).
const DENSE: [u64; 4] = [3, 7, 11, 19];
const SPARSE: [u64; 4] = [5, 13, 29, 42];
/// The most the engine may add per step on a path: taking the task message,
/// the worker's bookkeeping, the answer, Step Functions moving on, and for a
/// gated step also the finished notices and the gate's own Task. Measured
/// on a 2-core machine with a shared LocalStack: 60-350 ms per step over a
/// whole critical path when nothing else runs, 200-740 ms while another
/// end-to-end test runs, and up to 1.35 s for one gated step.
const ALLOWANCE_MS: i64 = 1000;
/// A typical cost per step, a little above the one measured when nothing
/// else runs: a DAG whose critical path, with this added per step, is
/// shorter than its levels must beat a level-by-level schedule.
const TYPICAL_MS: i64 = 500;
/// Runs of a DAG whose timing may miss before the test fails: the machine
/// and LocalStack are shared, and one slow moment should not decide. The
/// order of steps is checked on every run.
const RUNS: usize = 2;
/// The time one plain step takes to follow another (a three-step chain, run
/// first and before a DAG is run again) above which the stack counts as
/// busy: 100-250 ms when nothing else runs, 1-3 s while the load tests of
/// this suite run. The figures of a busy stack would measure the others.
const BUSY_HOP_MS: i64 = 400;
/// How long the test waits, in all, for a busy stack to calm down; after
/// that the DAGs run and are judged anyway.
const PATIENCE: Duration = Duration::from_secs(150);

#[test]
fn random_dags_run_no_step_early_and_within_their_critical_path() {
    let _alone = alone();
    let dags = dags();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let probe = chain();
    let mut files = write_definitions(dir.path(), &dags);
    files.extend(write_definitions(dir.path(), std::slice::from_ref(&probe)));
    let refs: Vec<&std::path::Path> = files.iter().map(PathBuf::as_path).collect();
    let mut deployment = Deployment::with_files("dag", &refs);
    deployment.worker_env = vec![
        ("GARDEN_CONCURRENCY_TOOL".into(), "16".into()),
        ("GARDEN_CONCURRENCY_CONTROL".into(), "16".into()),
    ];
    deployment.start_worker();

    let (mut report, mut misses, mut must_beat) = (String::new(), Vec::new(), 0);
    let mut patience = PATIENCE;
    let mut hop = settle(&deployment, &probe, &mut patience);
    for dag in &dags {
        let mut missed = Vec::new();
        for attempt in 0..RUNS {
            if attempt > 0 {
                hop = settle(&deployment, &probe, &mut patience);
            }
            let run = run_job(&deployment, dag);
            let figures = Figures::of(dag, &run);
            writeln!(report, "{}  (plain hop before: {hop} ms)", figures.line(dag)).unwrap();
            match figures.miss(dag) {
                None => {
                    must_beat += usize::from(figures.must_beat);
                    missed.clear();
                    break;
                }
                Some(miss) => missed.push(format!("{miss}\n{}\n{}", dag.describe(), run.describe(dag))),
            }
        }
        misses.extend(missed);
    }
    eprintln!("{report}");
    assert!(misses.is_empty(), "{}\n\n{report}", misses.join("\n\n"));
    // The N is built to beat levels; how many random DAGs also have to
    // depends on how busy the stack was while they ran.
    assert!(
        must_beat >= 2,
        "only {must_beat} DAG(s) had a critical path short enough to have to beat a level-by-level schedule:\n{report}"
    );
}

/// Runs one job of the DAG and checks that it succeeded and that no step
/// started early.
fn run_job(deployment: &Deployment, dag: &Dag) -> Run {
    let job = deployment.submit(&dag.name, &json!({}));
    let status = deployment.wait_done(&job, Duration::from_secs(60));
    assert_eq!(status["job"]["status"], "SUCCEEDED", "{}: {status:#}", dag.name);
    let run = Run::measure(dag, &status);
    run.assert_in_order(dag);
    run
}

/// Runs the probe chain until one plain step follows another within
/// [`BUSY_HOP_MS`], or the patience is spent; returns the last hop time.
fn settle(deployment: &Deployment, probe: &Dag, patience: &mut Duration) -> i64 {
    loop {
        let started = std::time::Instant::now();
        let run = run_job(deployment, probe);
        let hops = (probe.steps.len() - 1) as i64;
        let hop = (run.makespan() - run.durations().iter().sum::<i64>()) / hops;
        if hop <= BUSY_HOP_MS || patience.is_zero() {
            return hop;
        }
        eprintln!("the stack is busy (a plain step follows another after {hop} ms): waiting");
        std::thread::sleep(Duration::from_secs(3).min(*patience));
        *patience = patience.saturating_sub(started.elapsed());
    }
}

/// The timing of one run of a DAG, from the measured step durations.
struct Figures {
    makespan: i64,
    /// The critical path and its number of steps.
    critical: (i64, usize),
    /// The heaviest path with [`ALLOWANCE_MS`] added per step.
    bound: (i64, usize),
    level_by_level: i64,
    /// Whether the critical path, with [`TYPICAL_MS`] per step, is shorter
    /// than the levels.
    must_beat: bool,
}

impl Figures {
    fn of(dag: &Dag, run: &Run) -> Self {
        let durations = run.durations();
        let level_by_level = dag.level_by_level(&durations);
        Figures {
            makespan: run.makespan(),
            critical: dag.longest_path(&durations, 0),
            bound: dag.longest_path(&durations, ALLOWANCE_MS),
            level_by_level,
            must_beat: dag.longest_path(&durations, TYPICAL_MS).0 < level_by_level,
        }
    }

    /// What is wrong with the timing, if anything.
    fn miss(&self, dag: &Dag) -> Option<String> {
        if self.makespan > self.bound.0 {
            return Some(format!(
                "{}: the job took {} ms, more than its critical path of {} ms plus {ALLOWANCE_MS} ms for each of \
                 the {} steps of its heaviest path ({} ms)",
                dag.name, self.makespan, self.critical.0, self.bound.1, self.bound.0
            ));
        }
        if self.must_beat && self.makespan >= self.level_by_level {
            return Some(format!(
                "{}: {} ms, not better than level by level ({} ms)",
                dag.name, self.makespan, self.level_by_level
            ));
        }
        None
    }

    fn line(&self, dag: &Dag) -> String {
        format!(
            "{:<10} {:>2} steps  makespan {:>5} ms  critical path {:>5} ms ({} steps, {:>4} ms/step over it)  \
             bound {:>5} ms  level by level {:>5} ms{}",
            dag.name,
            dag.steps.len(),
            self.makespan,
            self.critical.0,
            self.critical.1,
            (self.makespan - self.critical.0) / self.critical.1.max(1) as i64,
            self.bound.0,
            self.level_by_level,
            if self.must_beat { " (must beat)" } else { "" },
        )
    }
}

/// `c` and `e` join `b` from another branch and decide on its output in a
/// `when`: the gate must hand them `b`'s exported value.
const GATE_VALUES: &str = r#"name: gate-values
description: An N whose joining steps decide on a value exported in another branch.
input: { type: object }
defaults: { timeout: 1m }
steps:
  a:
    tool: { gateway: timing, name: pause, arguments: { ms: 300, tag: a } }
  b:
    tool: { gateway: timing, name: pause, arguments: { ms: 600, tag: b } }
  c:
    needs: [a]
    when: "{{ steps.b.output.paused_ms == 600 }}"
    tool: { gateway: timing, name: pause, arguments: { ms: 200, tag: c } }
  e:
    needs: [a]
    when: "{{ steps.b.output.paused_ms != 600 }}"
    tool: { gateway: timing, name: pause, arguments: { ms: 200, tag: e } }
  d:
    needs: [b]
    tool: { gateway: timing, name: pause, arguments: { ms: 300, tag: d } }
output:
  c: "{{ steps.c.output.tag }}"
"#;

#[test]
fn a_joining_step_decides_on_a_value_exported_in_another_branch() {
    let _alone = alone();
    let dir = tempfile::tempdir().expect("a temporary folder");
    write_definitions(dir.path(), &[]);
    let file = dir.path().join("gate-values.yaml");
    std::fs::write(&file, GATE_VALUES).expect("the definition is written");
    let mut deployment = Deployment::with_files("gv", &[&file]);
    deployment.start_worker();

    let job = deployment.submit("gate-values", &json!({}));
    let status = deployment.wait_done(&job, Duration::from_secs(60));

    assert_eq!(status["job"]["status"], "SUCCEEDED", "{status:#}");
    assert_eq!(
        step_of(&status, "c").expect("c ran")["status"],
        "SUCCEEDED",
        "{status:#}"
    );
    assert!(
        step_of(&status, "e").is_none_or(|e| e["status"] == "SKIPPED"),
        "e runs only when b paused for another time: {status:#}"
    );
    assert_eq!(status["job"]["output"]["c"], "c");
}

/// An N whose shared dependency `b` fails (the tool refuses a pause that
/// long), with `b`'s `on_error` put in: `c` joins `a` and `b` at a gate.
const GATE_FAILURE: &str = r#"name: gate-ON_ERROR
description: An N whose shared dependency fails, handled by its on_error.
input: { type: object }
defaults: { timeout: 1m }
steps:
  a:
    tool: { gateway: timing, name: pause, arguments: { ms: 2500, tag: a } }
  b:
    on_error: ON_ERROR
    tool: { gateway: timing, name: pause, arguments: { ms: 600001, tag: b } }
  c:
    needs: [a, b]
    tool: { gateway: timing, name: pause, arguments: { ms: 100, tag: c } }
  d:
    needs: [b]
    tool: { gateway: timing, name: pause, arguments: { ms: 100, tag: d } }
output:
  c: "{{ steps.c.output.tag }}"
  d: "{{ steps.d.output.tag }}"
"#;

/// A dependency that fails across a gate ends the job at once with its own
/// error under `on_error: fail` (the gate does not keep the job waiting), and
/// under `on_error: continue` opens the gate like a finished one.
#[test]
fn a_failed_dependency_across_a_gate_is_handled_by_its_on_error() {
    let _alone = alone();
    let dir = tempfile::tempdir().expect("a temporary folder");
    write_definitions(dir.path(), &[]);
    let files: Vec<PathBuf> = ["fail", "continue"]
        .iter()
        .map(|on_error| {
            let file = dir.path().join(format!("gate-{on_error}.yaml"));
            std::fs::write(&file, GATE_FAILURE.replace("ON_ERROR", on_error)).expect("the definition is written");
            file
        })
        .collect();
    let refs: Vec<&std::path::Path> = files.iter().map(PathBuf::as_path).collect();
    let mut deployment = Deployment::with_files("gf", &refs);
    deployment.start_worker();
    let out = dir.path().join("build");
    let compiled = deployment.garden(&[
        "compile",
        &files[0].to_string_lossy(),
        "-o",
        &out.to_string_lossy(),
        "--explain",
    ]);
    assert!(
        String::from_utf8_lossy(&compiled.stdout).contains("c waits for"),
        "the N needs a gate: {}",
        String::from_utf8_lossy(&compiled.stdout)
    );

    let failing = deployment.submit("gate-fail", &json!({}));
    let continuing = deployment.submit("gate-continue", &json!({}));

    let status = deployment.wait_done(&failing, Duration::from_secs(60));
    assert_eq!(status["job"]["status"], "FAILED", "{status:#}");
    assert_eq!(status["job"]["failed_step"], "b", "{status:#}");
    assert_eq!(status["job"]["error"], "Garden.ToolError", "{status:#}");
    assert!(step_of(&status, "c").is_none(), "c joins a failed step: {status:#}");
    assert!(step_of(&status, "d").is_none(), "d needs a failed step: {status:#}");

    let status = deployment.wait_done(&continuing, Duration::from_secs(60));
    assert_eq!(status["job"]["status"], "SUCCEEDED", "{status:#}");
    assert_eq!(step_of(&status, "b").expect("b ran")["status"], "FAILED");
    let started = |step: &str| {
        step_of(&status, step)
            .and_then(|s| s["started_at"].as_str())
            .map(str::to_owned)
    };
    let finished = |step: &str| {
        step_of(&status, step)
            .and_then(|s| s["finished_at"].as_str())
            .map(str::to_owned)
    };
    assert!(
        started("c") >= finished("a") && finished("a").is_some(),
        "c started before a finished: {status:#}"
    );
    assert_eq!(status["job"]["output"]["c"], "c");
    assert_eq!(status["job"]["output"]["d"], "d");
}

/// A step of a generated DAG.
struct Step {
    name: String,
    ms: u64,
    /// Indices of the steps it depends on (all earlier in the list).
    deps: Vec<usize>,
    /// For each dependency, whether the edge is a template reference
    /// (`steps.<dep>.output`) rather than an entry of `needs`.
    by_reference: Vec<bool>,
}

struct Dag {
    name: String,
    steps: Vec<Step>,
}

fn dags() -> Vec<Dag> {
    let mut dags = vec![n_shape(), braid()];
    dags.extend(DENSE.iter().map(|seed| random_dag(*seed, 0.3)));
    dags.extend(SPARSE.iter().map(|seed| random_dag(*seed, 0.15)));
    dags
}

/// a -> c, b -> c, b -> d, with the long steps on different branches: run
/// level by level it takes a + d; its critical path is a + c.
fn n_shape() -> Dag {
    let step = |name: &str, ms, deps: Vec<usize>| Step {
        name: name.into(),
        ms,
        by_reference: deps.iter().map(|d| d % 2 == 0).collect(),
        deps,
    };
    Dag {
        name: "dag-n".into(),
        steps: vec![
            step("a", 1500, vec![]),
            step("b", 200, vec![]),
            step("c", 300, vec![0, 1]),
            step("d", 1500, vec![1]),
        ],
    }
}

/// Three chains of three steps, each with its long step at another level,
/// and short steps linked across chains (b1 -> c2, c1 -> c2, c1 -> a2 is an
/// N; a2 -> b3 another edge across). Level by level: three long steps;
/// critical path: one.
fn braid() -> Dag {
    let names = ["a1", "a2", "a3", "b1", "b2", "b3", "c1", "c2", "c3"];
    let index = |name: &str| names.iter().position(|n| *n == name).expect("a step of the braid");
    let edges = [
        ("a1", "a2"),
        ("a2", "a3"),
        ("b1", "b2"),
        ("b2", "b3"),
        ("c1", "c2"),
        ("c2", "c3"),
        ("b1", "c2"),
        ("c1", "a2"),
        ("a2", "b3"),
    ];
    let long = ["a1", "b2", "c3"];
    // In an order where every dependency comes first.
    let order = ["a1", "b1", "c1", "a2", "b2", "c2", "a3", "b3", "c3"];
    let position = |name: &str| order.iter().position(|n| *n == name).expect("ordered");
    let steps = order
        .iter()
        .map(|name| {
            let deps: Vec<usize> = (edges.iter())
                .filter(|(_, to)| to == name)
                .map(|(from, _)| position(from))
                .collect();
            Step {
                name: (*name).into(),
                ms: if long.contains(name) { 1500 } else { 200 },
                by_reference: deps.iter().map(|d| index(order[*d]) % 2 == 0).collect(),
                deps,
            }
        })
        .collect();
    Dag {
        name: "dag-braid".into(),
        steps,
    }
}

/// Three 200 ms steps in a row: what a plain step costs right now.
fn chain() -> Dag {
    let step = |i: usize| Step {
        name: format!("p{i}"),
        ms: 200,
        deps: if i == 0 { vec![] } else { vec![i - 1] },
        by_reference: vec![false; usize::from(i > 0)],
    };
    Dag {
        name: "dag-probe".into(),
        steps: (0..3).map(step).collect(),
    }
}

/// 6 to 10 steps in a random topological order; each step depends on each
/// earlier one with probability `edge`, and durations are 200-1500 ms.
fn random_dag(seed: u64, edge: f64) -> Dag {
    let mut rng = fastrand::Rng::with_seed(seed);
    let count = rng.usize(6..=10);
    let steps = (0..count)
        .map(|i| {
            let deps: Vec<usize> = (0..i).filter(|_| rng.f64() < edge).collect();
            Step {
                name: format!("s{i}"),
                ms: rng.u64(200..=1500),
                by_reference: deps.iter().map(|_| rng.bool()).collect(),
                deps,
            }
        })
        .collect();
    Dag {
        name: format!("dag-{}{seed}", if edge < 0.2 { "s" } else { "d" }),
        steps,
    }
}

impl Dag {
    /// The workflow definition: one `pause` tool call per step.
    fn yaml(&self) -> String {
        let mut out = format!(
            "name: {}\ndescription: A generated DAG of timed steps.\ninput: {{ type: object }}\n\
             defaults: {{ timeout: 1m }}\nsteps:\n",
            self.name
        );
        for step in &self.steps {
            writeln!(out, "  {}:", step.name).unwrap();
            let needs: Vec<&str> = (step.deps.iter().zip(&step.by_reference))
                .filter(|(_, by_reference)| !**by_reference)
                .map(|(d, _)| self.steps[*d].name.as_str())
                .collect();
            if !needs.is_empty() {
                writeln!(out, "    needs: [{}]", needs.join(", ")).unwrap();
            }
            let references: Vec<String> = (step.deps.iter().zip(&step.by_reference))
                .filter(|(_, by_reference)| **by_reference)
                .map(|(d, _)| {
                    let dep = &self.steps[*d].name;
                    format!("{dep}: \"{{{{ steps.{dep}.output.paused_ms }}}}\"")
                })
                .collect();
            writeln!(
                out,
                "    tool:\n      gateway: timing\n      name: pause\n      arguments:\n        ms: {}\n        \
                 lane: {}\n        tag: {{ {} }}",
                step.ms,
                self.name,
                references.join(", ")
            )
            .unwrap();
        }
        out
    }

    /// The heaviest path, weighing each step by its duration plus `extra`:
    /// its weight and how many steps it has.
    fn longest_path(&self, durations: &[i64], extra: i64) -> (i64, usize) {
        let mut best: Vec<(i64, usize)> = Vec::with_capacity(self.steps.len());
        for (i, step) in self.steps.iter().enumerate() {
            let before = step.deps.iter().map(|d| best[*d]).max().unwrap_or((0, 0));
            best.push((before.0 + durations[i] + extra, before.1 + 1));
        }
        best.into_iter().max().unwrap_or((0, 0))
    }

    /// What waiting for each level to finish before the next starts would
    /// take: the sum over levels (longest distance from a root, in steps) of
    /// the longest step in the level.
    fn level_by_level(&self, durations: &[i64]) -> i64 {
        let mut level = Vec::with_capacity(self.steps.len());
        let mut longest = BTreeMap::<usize, i64>::new();
        for (i, step) in self.steps.iter().enumerate() {
            let l = step.deps.iter().map(|d| level[*d] + 1).max().unwrap_or(0);
            level.push(l);
            let slot = longest.entry(l).or_default();
            *slot = (*slot).max(durations[i]);
        }
        longest.values().sum()
    }

    fn describe(&self) -> String {
        let edges: Vec<String> = (self.steps.iter())
            .flat_map(|s| {
                s.deps
                    .iter()
                    .map(move |d| format!("{}->{}", self.steps[*d].name, s.name))
            })
            .collect();
        let times: Vec<String> = self.steps.iter().map(|s| format!("{}={}ms", s.name, s.ms)).collect();
        format!("edges: {}; pauses: {}", edges.join(" "), times.join(" "))
    }
}

/// When each step of one job started and finished (ms since the first start).
struct Run {
    started: Vec<i64>,
    finished: Vec<i64>,
}

impl Run {
    fn measure(dag: &Dag, status: &Value) -> Self {
        let times: Vec<(DateTime<Utc>, DateTime<Utc>)> = (dag.steps.iter())
            .map(|step| {
                let item = step_of(status, &step.name)
                    .unwrap_or_else(|| panic!("{}: no record of step {}: {status:#}", dag.name, step.name));
                assert_eq!(item["status"], "SUCCEEDED", "{item:#}");
                let at = |field: &str| {
                    item[field]
                        .as_str()
                        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                        .unwrap_or_else(|| panic!("{}: step {} has no {field}: {item:#}", dag.name, step.name))
                        .with_timezone(&Utc)
                };
                (at("started_at"), at("finished_at"))
            })
            .collect();
        let origin = times.iter().map(|(s, _)| *s).min().expect("a step");
        let ms = |t: DateTime<Utc>| (t - origin).num_milliseconds();
        Run {
            started: times.iter().map(|(s, _)| ms(*s)).collect(),
            finished: times.iter().map(|(_, f)| ms(*f)).collect(),
        }
    }

    /// No step started before all of its dependencies finished.
    fn assert_in_order(&self, dag: &Dag) {
        for (s, step) in dag.steps.iter().enumerate() {
            for &d in &step.deps {
                assert!(
                    self.started[s] >= self.finished[d],
                    "{}: {} started at {} ms before its dependency {} finished at {} ms\n{}\n{}",
                    dag.name,
                    step.name,
                    self.started[s],
                    dag.steps[d].name,
                    self.finished[d],
                    dag.describe(),
                    self.describe(dag),
                );
            }
        }
    }

    fn durations(&self) -> Vec<i64> {
        self.started.iter().zip(&self.finished).map(|(s, f)| f - s).collect()
    }

    fn makespan(&self) -> i64 {
        self.finished.iter().max().copied().unwrap_or(0) - self.started.iter().min().copied().unwrap_or(0)
    }

    fn describe(&self, dag: &Dag) -> String {
        let rows: Vec<String> = (dag.steps.iter().enumerate())
            .map(|(i, s)| format!("{} {}..{}", s.name, self.started[i], self.finished[i]))
            .collect();
        format!("steps (ms from the first start): {}", rows.join(", "))
    }
}

/// Writes each DAG's definition and the shared resources beside them.
fn write_definitions(dir: &std::path::Path, dags: &[Dag]) -> Vec<PathBuf> {
    let resources = "gateways:\n  timing:\n    url: http://127.0.0.1:4620/mcp\n";
    std::fs::write(dir.join("resources.yaml"), resources).expect("resources.yaml is written");
    dags.iter()
        .map(|dag| {
            let path = dir.join(format!("{}.yaml", dag.name));
            std::fs::write(&path, dag.yaml()).expect("a definition is written");
            path
        })
        .collect()
}

#[test]
fn the_generator_is_deterministic_and_makes_non_series_parallel_dags() {
    let (first, second) = (dags(), dags());
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(a.yaml(), b.yaml());
    }
    for dag in &first {
        assert!((4..=10).contains(&dag.steps.len()), "{}", dag.describe());
        assert!(dag.steps.iter().all(|s| (200..=1500).contains(&s.ms)));
    }
    for dag in &first {
        let durations: Vec<i64> = dag.steps.iter().map(|s| s.ms as i64).collect();
        let (critical, steps) = dag.longest_path(&durations, 0);
        let levels = dag.level_by_level(&durations);
        eprintln!(
            "{:<9} {:>2} steps, N: {:<5}  critical path {critical:>5} ms ({steps} steps)  level by level {levels:>5} ms  \
             gain per step {:>4} ms  {}",
            dag.name,
            dag.steps.len(),
            has_n(dag),
            (levels - critical) / steps as i64,
            dag.describe()
        );
    }
    let n = &first[0];
    let durations: Vec<i64> = n.steps.iter().map(|s| s.ms as i64).collect();
    assert_eq!(n.longest_path(&durations, 0), (1800, 2), "a then c");
    assert_eq!(n.level_by_level(&durations), 3000, "max(a, b) + max(c, d)");
    let braid = &first[1];
    let durations: Vec<i64> = braid.steps.iter().map(|s| s.ms as i64).collect();
    assert_eq!(braid.longest_path(&durations, 0), (1900, 3));
    assert_eq!(braid.level_by_level(&durations), 4500);
    assert!(has_n(n) && has_n(braid));
    assert!(
        first.iter().filter(|dag| has_n(dag)).count() >= 5,
        "too few DAGs hold an N, the smallest shape that is not series-parallel"
    );
}

/// Whether the direct edges hold an N: x -> z, y -> z, y -> w, with neither
/// x and w nor z and w linked directly.
fn has_n(dag: &Dag) -> bool {
    let edge = |from: usize, to: usize| dag.steps[to].deps.contains(&from);
    let n = dag.steps.len();
    (0..n).any(|x| {
        (0..n).any(|y| {
            (0..n).any(|z| {
                (0..n).any(|w| {
                    x != y
                        && z != w
                        && edge(x, z)
                        && edge(y, z)
                        && edge(y, w)
                        && !edge(x, w)
                        && !edge(w, z)
                        && !edge(z, w)
                        && x != w
                })
            })
        })
    })
}
