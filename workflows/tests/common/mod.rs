//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::path::PathBuf;

use garden_workflows::{Compiled, SharedResources, Target, Workflow, compile, load_file, load_str};

pub const EXAMPLES: [&str; 3] = ["research-brief", "support-triage", "finance-analysis"];

pub fn definitions_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../definitions")
}

pub fn shared() -> SharedResources {
    SharedResources::load(&definitions_dir().join("resources.yaml")).expect("the shared resources load")
}

pub fn example(name: &str) -> Workflow {
    let path = definitions_dir().join(format!("{name}.yaml"));
    load_file(&path).unwrap_or_else(|d| panic!("{name} loads: {:?}", miette::Report::new(d)))
}

pub fn load(text: &str) -> Workflow {
    load_str("test.yaml", text, Some(&shared())).unwrap_or_else(|d| panic!("loads: {:?}", miette::Report::new(d)))
}

pub fn compiled(text: &str) -> Compiled {
    compile(&load(text), &Target::local()).unwrap_or_else(|d| panic!("compiles: {:?}", miette::Report::new(d)))
}

pub fn compiled_example(name: &str) -> Compiled {
    compile(&example(name), &Target::local()).unwrap_or_else(|d| panic!("compiles: {:?}", miette::Report::new(d)))
}

/// Definitions with shapes worth pinning: name and YAML.
pub const SHAPES: [(&str, &str); 7] = [
    (
        "diamond",
        "name: diamond
steps:
  plan:
    model: { model: haiku, prompt: \"plan {{ input.topic }}\", output_schema: { type: object } }
  left:
    tool: { gateway: research, name: web_search, arguments: { query: \"{{ steps.plan.output.left }}\" } }
  right:
    model: { model: haiku, prompt: \"score {{ steps.plan.output }}\" }
  join:
    when: \"{{ steps.right.output.score >= 3 }}\"
    needs: [left]
    approval: { message: \"{{ steps.left.output }}\" }
output: \"{{ steps.right.output }}\"
",
    ),
    (
        "n-shape",
        "name: n-shape
description: a → c, b → c, b → d is not series-parallel.
steps:
  a:
    tool: { gateway: finance, name: calculate_npv, arguments: { cash_flows: [1, 2], discount_rate: 0.1 } }
  b:
    tool: { gateway: finance, name: calculate_irr, arguments: { cash_flows: [1, 2] } }
  c:
    needs: [a, b]
    model: { model: haiku, prompt: compare }
  d:
    needs: [b]
    model: { model: haiku, prompt: explain }
",
    ),
    (
        "gate-with-values",
        "name: gate-with-values
description: c reads b's verdict, which another branch produced; the gate brings it.
steps:
  a:
    model: { model: haiku, prompt: draft, output_schema: { type: object } }
  b:
    model: { model: haiku, prompt: check, output_schema: { type: object } }
  c:
    needs: [a]
    when: \"{{ steps.b.output.ok }}\"
    model: { model: haiku, prompt: \"publish {{ steps.a.output }}\" }
  d:
    needs: [b]
    model: { model: haiku, prompt: explain }
",
    ),
    (
        "wide-fan-out",
        "name: wide-fan-out
steps:
  items:
    tool: { gateway: research, name: web_search, arguments: { query: \"{{ input.topic }}\" } }
  each:
    for_each: \"{{ steps.items.output.results }}\"
    wide: true
    max_concurrency: 50
    model: { model: haiku, prompt: \"summarise {{ item }}\" }
  report:
    model: { model: haiku, prompt: \"report on {{ steps.each.output }}\" }
",
    ),
    (
        "nested-fan-out",
        "name: nested-fan-out
steps:
  outline:
    model: { model: haiku, prompt: outline, output_schema: { type: object, required: [sections] } }
  gather:
    for_each: \"{{ steps.outline.output.sections }}\"
    max_concurrency: 3
    tool: { gateway: research, name: web_search, arguments: { query: \"{{ item }}\" } }
  refine:
    for_each: \"{{ steps.gather.output }}\"
    max_concurrency: 2
    model: { model: haiku, prompt: \"refine {{ item }}\" }
  side:
    for_each: \"{{ steps.outline.output.sections }}\"
    agent: { runtime: writer, session: per-step, payload: { section: \"{{ item }}\" } }
  merge:
    needs: [refine, side]
    model: { model: haiku, prompt: merge }
",
    ),
    (
        "branch-conditions",
        "name: branch-conditions
steps:
  classify:
    model: { model: haiku, prompt: classify, output_schema: { type: object } }
  lookup:
    tool: { gateway: support, name: lookup_customer, arguments: { email: \"{{ input.email }}\" } }
  vip:
    when: \"{{ steps.lookup.output.tier == 'gold' && steps.lookup.output.open_tickets > 2 }}\"
    approval: { notify: leads }
  urgent:
    when: \"{{ steps.classify.output.urgent }}\"
    on_error: continue
    model: { model: haiku, prompt: urgent }
  answer:
    needs: [vip, urgent]
    when: \"{{ !steps.classify.output.urgent || steps.classify.output.category != steps.lookup.output.tier }}\"
    model: { model: haiku, prompt: answer }
",
    ),
    (
        "errors-and-waits",
        "name: errors-and-waits
defaults: { timeout: 1m, heartbeat: 20s }
steps:
  fetch:
    on_error: { fallback: cached }
    tool: { gateway: research, name: web_search, arguments: { query: \"{{ input.q }}\" } }
  cached:
    tool: { gateway: research, name: web_search, arguments: { query: cached } }
  pause:
    needs: [fetch]
    wait: { seconds: 30 }
  child:
    needs: [pause]
    workflow: { name: finance-analysis, input: { project: child } }
schedules:
  - { name: daily, rate: 1 day, input: { q: tides } }
",
    ),
];
