//! Graph and validate: the dependency graph of a [`Workflow`] (`petgraph`),
//! and the checks that need it: cycles (with their path), fallback steps that
//! others depend on, and resources nobody uses.
//!
//! Cost: building the graph and finding cycles (Tarjan) are linear in steps
//! plus dependencies; the fallback check walks ancestors, linear per fallback.

use petgraph::Direction;
use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::definition::Definition;
use crate::error::{Diagnostics, Problem};
use crate::wire::Action;
use crate::workflow::{OnError, StepBody, Workflow};

/// Steps as nodes (weights are step indices), an edge from each dependency to its dependent.
pub fn dependency_graph(wf: &Workflow) -> DiGraph<usize, ()> {
    let mut graph = DiGraph::with_capacity(wf.steps.len(), wf.steps.iter().map(|s| s.deps.len()).sum());
    for i in 0..wf.steps.len() {
        graph.add_node(i);
    }
    for (i, step) in wf.steps.iter().enumerate() {
        for d in step.dep_indices() {
            graph.add_edge(NodeIndex::new(d), NodeIndex::new(i), ());
        }
    }
    graph
}

/// Every check that needs the graph. Returns true when the graph has no cycle.
pub fn validate(wf: &Workflow, def: &Definition, diags: &mut Diagnostics) -> bool {
    let graph = dependency_graph(wf);
    let acyclic = check_cycles(wf, &graph, diags);
    check_fallbacks(wf, &graph, diags);
    check_unused(wf, def, diags);
    acyclic
}

fn check_cycles(wf: &Workflow, graph: &DiGraph<usize, ()>, diags: &mut Diagnostics) -> bool {
    let mut acyclic = true;
    for scc in tarjan_scc(graph) {
        let self_loop = scc.len() == 1 && graph.contains_edge(scc[0], scc[0]);
        if scc.len() < 2 && !self_loop {
            continue;
        }
        acyclic = false;
        let cycle = cycle_in(graph, &scc);
        let names: Vec<&str> = cycle.iter().map(|&i| wf.steps[i].name.as_str()).collect();
        let path = names
            .iter()
            .chain(names.first())
            .copied()
            .collect::<Vec<_>>()
            .join(" → ");
        let first = &wf.steps[cycle[0]];
        // Point at where each step of the cycle names the one before it.
        let mut problem = Problem::error("garden::cycle", format!("these steps wait for each other: {path}"));
        for (k, &i) in cycle.iter().enumerate() {
            let prev = cycle[(k + cycle.len() - 1) % cycle.len()];
            let step = &wf.steps[i];
            if let Some((_, span)) = step.deps.iter().find(|(d, _)| *d == prev) {
                let label = format!("`{}` waits for `{}`", step.name, wf.steps[prev].name);
                problem = if problem.span.is_none() {
                    problem.at(&wf.file, *span, label)
                } else {
                    problem.note(*span, label)
                };
            }
        }
        if problem.span.is_none() {
            problem = problem.at(&wf.file, first.name_span, "in this cycle");
        }
        diags.push(
            problem
                .help("a step can only use the output of steps that finish before it: remove one of these references"),
        );
    }
    acyclic
}

/// A cycle through the nodes of a strongly connected component, in dependency order.
fn cycle_in(graph: &DiGraph<usize, ()>, scc: &[NodeIndex]) -> Vec<usize> {
    let inside = |n: NodeIndex| scc.contains(&n);
    let start = *scc.iter().min().unwrap_or(&scc[0]);
    // Walk forward inside the component until a node repeats.
    let mut path = vec![start];
    loop {
        let current = *path.last().unwrap_or(&start);
        let Some(next) = graph
            .neighbors_directed(current, Direction::Outgoing)
            .filter(|n| inside(*n))
            .min()
        else {
            break;
        };
        if let Some(pos) = path.iter().position(|&n| n == next) {
            path.drain(..pos);
            break;
        }
        path.push(next);
    }
    path.into_iter().map(|n| graph[n]).collect()
}

fn check_fallbacks(wf: &Workflow, graph: &DiGraph<usize, ()>, diags: &mut Diagnostics) {
    for (f, fallback) in wf.steps.iter().enumerate() {
        let Some(owner) = fallback.fallback_for else {
            continue;
        };
        for dependent in graph.neighbors_directed(NodeIndex::new(f), Direction::Outgoing) {
            let step = &wf.steps[graph[dependent]];
            if let Some((_, span)) = step.deps.iter().find(|(d, _)| *d == f) {
                let problem = Problem::error(
                    "garden::fallback",
                    format!(
                        "`{}` only runs when `{}` fails, so nothing can wait for it",
                        fallback.name, wf.steps[owner].name
                    ),
                )
                .at(&wf.file, *span, "depends on a fallback")
                .help(format!("depend on `{}` instead", wf.steps[owner].name));
                diags.push(problem);
            }
        }
        if !fallback.exports.is_empty() {
            let problem = Problem::error(
                "garden::fallback",
                "a `when` or `for_each` cannot read a fallback step's output",
            )
            .at(&wf.file, fallback.name_span, "read elsewhere")
            .help(format!("read `{}` instead", wf.steps[owner].name));
            diags.push(problem);
        }
        if fallback.when.is_some() || fallback.for_each.is_some() || fallback.on_error != OnError::Fail {
            let problem = Problem::error(
                "garden::fallback",
                "a fallback step cannot have `when`, `for_each` or `on_error`",
            )
            .at(&wf.file, fallback.name_span, "fallback")
            .help("keep fallbacks simple: one task that stands in for the failed step");
            diags.push(problem);
        }
        let owner_ancestors = ancestors(graph, owner);
        for (d, span) in &fallback.deps {
            if !owner_ancestors.contains(d) {
                let problem = Problem::error(
                    "garden::fallback",
                    format!(
                        "fallback `{}` needs `{}`, which may not have finished when `{}` fails",
                        fallback.name, wf.steps[*d].name, wf.steps[owner].name
                    ),
                )
                .at(&wf.file, *span, "not finished yet")
                .help(format!(
                    "make `{}` depend on it too, or drop this reference",
                    wf.steps[owner].name
                ));
                diags.push(problem);
            }
        }
    }
}

fn ancestors(graph: &DiGraph<usize, ()>, step: usize) -> Vec<usize> {
    let mut seen = vec![false; graph.node_count()];
    let mut stack = vec![NodeIndex::new(step)];
    while let Some(n) = stack.pop() {
        for p in graph.neighbors_directed(n, Direction::Incoming) {
            if !seen[p.index()] {
                seen[p.index()] = true;
                stack.push(p);
            }
        }
    }
    (0..seen.len()).filter(|&i| seen[i]).collect()
}

/// Resources the definition itself names but no step uses (shared ones are fine unused).
fn check_unused(wf: &Workflow, def: &Definition, diags: &mut Diagnostics) {
    let mut gateways = Vec::new();
    let mut runtimes = Vec::new();
    let mut models = Vec::new();
    for step in &wf.steps {
        match &step.body {
            StepBody::Task(Action::Model(m)) => {
                models.push(m.model_id.clone());
                gateways.extend(m.tools.iter().map(|t| t.gateway.name.clone()));
            }
            StepBody::Task(Action::Tool(t)) => gateways.push(t.gateway.name.clone()),
            StepBody::Task(Action::Agent(a)) => runtimes.push(a.runtime.name.clone()),
            _ => {}
        }
    }
    let own = |span: crate::error::Span| !span.is_empty();
    for (name, g) in &def.resources.gateways {
        if own(g.span) && !gateways.contains(name) {
            diags.push(unused(wf, "gateway", name, g.span));
        }
    }
    for (name, r) in &def.resources.runtimes {
        if own(r.span) && !runtimes.contains(name) {
            diags.push(unused(wf, "runtime", name, r.span));
        }
    }
    for (alias, m) in &def.resources.models {
        if own(m.span) && !models.contains(&m.value.id) {
            diags.push(unused(wf, "model", alias, m.span));
        }
    }
}

fn unused(wf: &Workflow, what: &str, name: &str, span: crate::error::Span) -> Problem {
    Problem::warning("garden::unused", format!("{what} `{name}` is never used"))
        .at(&wf.file, span, "unused")
        .help("remove it, or move it to the shared `resources.yaml`")
}
