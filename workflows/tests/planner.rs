//! Property tests of the planner: the compiled structure never starts a step
//! before all its dependencies, and series-parallel DAGs get no added waiting.

mod common;

use std::collections::BTreeSet;

use garden_workflows::plan::{Node, levels, plan_dag};
use proptest::prelude::*;
use serde_json::Value;

/// A random DAG on `n` nodes: edges only from lower to higher index.
fn dag(max: usize) -> impl Strategy<Value = (usize, Vec<Vec<usize>>)> {
    (1..=max).prop_flat_map(|n| {
        let pairs = n * n.saturating_sub(1) / 2;
        proptest::collection::vec(proptest::bool::weighted(0.3), pairs).prop_map(move |bits| {
            let mut preds = vec![Vec::new(); n];
            let mut k = 0;
            for (j, row) in preds.iter_mut().enumerate() {
                for i in 0..j {
                    if bits[k] {
                        row.push(i);
                    }
                    k += 1;
                }
            }
            (n, preds)
        })
    })
}

/// A series-parallel expression; leaves are numbered later.
#[derive(Debug, Clone)]
enum Sp {
    Leaf,
    Seq(Vec<Sp>),
    Par(Vec<Sp>),
}

fn sp() -> impl Strategy<Value = Sp> {
    Just(Sp::Leaf).prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 2..4).prop_map(Sp::Seq),
            proptest::collection::vec(inner, 2..4).prop_map(Sp::Par),
        ]
    })
}

/// Builds the edges of an SP expression; returns (sources, sinks, all nodes) of the part.
fn build(sp: &Sp, preds: &mut Vec<Vec<usize>>) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    match sp {
        Sp::Leaf => {
            preds.push(Vec::new());
            let v = preds.len() - 1;
            (vec![v], vec![v], vec![v])
        }
        Sp::Par(parts) => {
            let (mut sources, mut sinks, mut all) = (Vec::new(), Vec::new(), Vec::new());
            for part in parts {
                let (so, si, a) = build(part, preds);
                sources.extend(so);
                sinks.extend(si);
                all.extend(a);
            }
            (sources, sinks, all)
        }
        Sp::Seq(parts) => {
            let mut result: Option<(Vec<usize>, Vec<usize>, Vec<usize>)> = None;
            for part in parts {
                let (so, si, a) = build(part, preds);
                result = Some(match result {
                    None => (so, si, a),
                    Some((first, last, mut all)) => {
                        for &v in &so {
                            preds[v].extend(last.iter().copied());
                            // A transitive edge now and then: still series-parallel.
                            if let Some(&far) = all.first()
                                && (v + far) % 3 == 0
                                && !preds[v].contains(&far)
                            {
                                preds[v].push(far);
                            }
                        }
                        all.extend(a);
                        (first, si, all)
                    }
                });
            }
            result.unwrap_or_default()
        }
    }
}

fn ancestors(preds: &[Vec<usize>], v: usize) -> BTreeSet<usize> {
    let mut out = BTreeSet::new();
    let mut stack = preds[v].clone();
    while let Some(u) = stack.pop() {
        if out.insert(u) {
            stack.extend(preds[u].iter().copied());
        }
    }
    out
}

fn each_step_once(root: &Node, n: usize) -> bool {
    let mut steps = root.steps();
    steps.sort();
    steps == (0..n).collect::<Vec<_>>()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn every_step_waits_for_its_dependencies_and_nothing_else((n, preds) in dag(14)) {
        let plan = plan_dag(n, &(0..n).collect::<Vec<_>>(), &preds);
        prop_assert!(each_step_once(&plan.root, n));
        prop_assert!(plan.added.is_empty());
        let before = plan.finished_before(n);
        for (v, row) in before.iter().enumerate() {
            let waited: BTreeSet<usize> = (0..n).filter(|&u| row[u]).collect();
            prop_assert_eq!(waited, ancestors(&preds, v), "step {} of {:?}: {:?}", v, preds, plan);
        }
        prop_assert_eq!(plan.planned_critical_path, plan.critical_path);
    }

    #[test]
    fn the_makespan_is_the_critical_path_and_never_more_than_level_by_level(
        (n, preds) in dag(14),
        seed in any::<u64>(),
    ) {
        let nodes: Vec<usize> = (0..n).collect();
        let mut x = seed | 1;
        let durations: Vec<f64> = (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 1000 + 1) as f64
            })
            .collect();
        // The longest path, weighted by the durations.
        let mut finish = vec![0.0f64; n];
        for v in 0..n {
            finish[v] = preds[v].iter().map(|&u| finish[u]).fold(0.0, f64::max) + durations[v];
        }
        let critical = finish.iter().copied().fold(0.0, f64::max);
        let plan = plan_dag(n, &nodes, &preds);
        prop_assert_eq!(plan.makespan(&durations), critical, "{:?}", plan);
        let baseline = levels(n, &nodes, &preds);
        prop_assert!(baseline.makespan(&durations) >= critical);
        // Gates only inside groups the tree cannot split exactly: none for a
        // series-parallel DAG (next test), and never more than one per step.
        prop_assert!(plan.gates.len() < n.max(1));
    }

    #[test]
    fn series_parallel_dags_get_no_added_waiting(expr in sp()) {
        let mut preds = Vec::new();
        build(&expr, &mut preds);
        let n = preds.len();
        let plan = plan_dag(n, &(0..n).collect::<Vec<_>>(), &preds);
        prop_assert!(plan.added.is_empty(), "added {:?} for {:?}", plan.added, preds);
        prop_assert!(plan.gates.is_empty(), "gates {:?} for {:?}", plan.gates, preds);
        prop_assert_eq!(plan.planned_critical_path, plan.critical_path);
        let before = plan.root.finished_before(n);
        for (v, row) in before.iter().enumerate() {
            let waited: BTreeSet<usize> = (0..n).filter(|&u| row[u]).collect();
            prop_assert_eq!(waited, ancestors(&preds, v), "step {} waits for more than it needs", v);
        }
    }
}

/// Walks the emitted state machine along the path where every `when` is true
/// and records, for each step, the steps certainly finished when it starts.
fn simulate(
    states: &Value,
    start: &str,
    mut done: BTreeSet<String>,
    seen: &mut Vec<(String, BTreeSet<String>)>,
) -> BTreeSet<String> {
    let mut current = start.to_owned();
    loop {
        let state = &states[&current];
        match state["Type"].as_str().unwrap_or_default() {
            "Task" => {
                let body = &state["Parameters"]["MessageBody"];
                match (body["step"].as_str(), body["spec"]["kind"].as_str()) {
                    // A join gate lets its step start once the gate's steps have finished.
                    (Some(_), Some("gate")) => {
                        let deps = body["spec"]["deps"].as_array().into_iter().flatten();
                        done.extend(deps.filter_map(Value::as_str).map(str::to_owned));
                    }
                    (Some(_), Some("finished")) => {}
                    (Some(step), _) => {
                        seen.push((step.to_owned(), done.clone()));
                        done.insert(step.to_owned());
                    }
                    (None, _) => {}
                }
            }
            "Parallel" => {
                let branches = state["Branches"].as_array().cloned().unwrap_or_default();
                let mut after = done.clone();
                for b in branches {
                    let out = simulate(
                        &b["States"],
                        b["StartAt"].as_str().unwrap_or_default(),
                        done.clone(),
                        seen,
                    );
                    after.extend(out);
                }
                done = after;
            }
            "Choice" => {
                current = state["Choices"][0]["Next"].as_str().unwrap_or_default().to_owned();
                continue;
            }
            "Succeed" | "Fail" => return done,
            _ => {}
        }
        match state["Next"].as_str() {
            Some(next) => current = next.to_owned(),
            None => return done,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(60))]

    #[test]
    fn the_emitted_state_machine_respects_every_dependency((n, preds) in dag(9)) {
        let mut text = String::from("name: random\nsteps:\n");
        for (v, deps) in preds.iter().enumerate() {
            text.push_str(&format!("  s{v}:\n"));
            if let Some((&first, rest)) = deps.split_first() {
                // One dependency through a `when`, the others through `needs`.
                text.push_str(&format!("    when: \"{{{{ steps.s{first}.output.ok }}}}\"\n"));
                let needs: Vec<String> = rest.iter().map(|u| format!("s{u}")).collect();
                text.push_str(&format!("    needs: [{}]\n", needs.join(", ")));
            }
            text.push_str("    approval: {}\n");
        }
        let compiled = common::compiled(&text);
        let mut seen = Vec::new();
        let start = compiled.asl["StartAt"].as_str().unwrap_or_default().to_owned();
        simulate(&compiled.asl["States"], &start, BTreeSet::new(), &mut seen);
        let steps: BTreeSet<&str> = seen.iter().map(|(s, _)| s.as_str()).filter(|s| s.starts_with('s')).collect();
        prop_assert_eq!(steps.len(), n, "every step runs once: {:?}", seen);
        for (step, before) in &seen {
            let Some(v) = step.strip_prefix('s').and_then(|i| i.parse::<usize>().ok()) else { continue };
            // A finished step's own dependencies finished before it (checked for it in turn).
            let mut finished: BTreeSet<String> = before.clone();
            for w in before {
                if let Some(w) = w.strip_prefix('s').and_then(|i| i.parse::<usize>().ok()) {
                    finished.extend(ancestors(&preds, w).into_iter().map(|u| format!("s{u}")));
                }
            }
            for &u in &preds[v] {
                prop_assert!(finished.contains(&format!("s{u}")), "s{} starts before s{}", v, u);
            }
        }
    }
}

/// A state by name anywhere in a definition, Parallel branches and Map
/// iterations included.
fn find_state<'a>(states: &'a Value, name: &str) -> Option<&'a Value> {
    let states = states.as_object()?;
    if let Some(state) = states.get(name) {
        return Some(state);
    }
    states.values().find_map(|state| {
        let branches = state["Branches"].as_array().into_iter().flatten();
        let nested = branches.chain([&state["ItemProcessor"], &state["Iterator"]]);
        nested
            .into_iter()
            .find_map(|machine| find_state(&machine["States"], name))
    })
}

#[test]
fn a_join_waits_as_long_as_its_dependencies_can_run() {
    let n_shape = |before_a: &str| {
        let text = format!(
            "name: n-wait
steps:
  pause: {{ wait: {{ {before_a} }} }}
  a: {{ needs: [pause], tool: {{ gateway: finance, name: calculate_npv, arguments: {{}} }}, timeout: 1m }}
  b: {{ tool: {{ gateway: finance, name: calculate_irr, arguments: {{}} }}, timeout: 1m }}
  c: {{ needs: [a, b], tool: {{ gateway: finance, name: calculate_npv, arguments: {{}} }}, timeout: 1m }}
  d: {{ needs: [b], tool: {{ gateway: finance, name: calculate_irr, arguments: {{}} }}, timeout: 1m }}
"
        );
        let compiled = common::compiled(&text);
        assert_eq!(compiled.explain.gates.len(), 1, "{}", compiled.explain);
        let join = find_state(&compiled.asl["States"], "Join c").expect("a Join state");
        join["TimeoutSeconds"].as_u64().expect("a timeout")
    };
    // Two days of waiting and four one-minute steps: the gate outlasts them all.
    assert!(n_shape("seconds: 172800") >= 172_800 + 4 * 60);
    // A wait until a date has no bound the compiler knows: the longest there is.
    assert_eq!(n_shape("until: \"2027-01-01T00:00:00Z\""), 365 * 24 * 3600);
}
