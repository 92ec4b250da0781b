//! How compile time and memory grow with the size of a workflow.
//!
//! Generates workflows of 100, 1,000 and 10,000 steps (stages of a model step
//! fanning out to eight tool steps, with `when` conditions, `for_each` fan-outs
//! and an N-shaped, not series-parallel, join in every stage), then measures,
//! in one run: parse + resolve + validate, plan, and emit (ASL, policy,
//! explanation, serialisation), and the peak heap in use, counted by a global
//! allocator. Prints the growth ratio for each tenfold step. Times are the
//! fastest of three runs.
//!
//! Run with `cargo bench -p garden-workflows --bench compile`.

#![allow(clippy::print_stdout)]

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use garden_workflows::{Target, asl, explain, load_str, plan, policy};
use peak_alloc::PeakAlloc;

#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

const SIZES: [usize; 3] = [100, 1_000, 10_000];
const RUNS: usize = 3;
/// Steps per stage: a model step, eight tools, two N-shaped joins.
const STAGE: usize = 11;

fn main() {
    let mut rows = Vec::new();
    for &size in &SIZES {
        // The fastest of a few runs: the machine may be busy with other work.
        let runs: Vec<Row> = (0..RUNS).map(|_| measure(size)).collect();
        rows.push(fastest(runs));
    }
    println!(
        "{:>8} {:>10} {:>14} {:>10} {:>10} {:>12} {:>12}",
        "steps", "edges", "validate", "plan", "emit", "peak heap", "ASL bytes"
    );
    for r in &rows {
        println!(
            "{:>8} {:>10} {:>14} {:>10} {:>10} {:>9.1} MB {:>12}",
            r.steps,
            r.edges,
            ms(r.validate),
            ms(r.plan),
            ms(r.emit),
            r.peak as f64 / 1e6,
            r.asl_bytes
        );
    }
    println!();
    println!("growth per 10x steps (1 = constant, 10 = linear, 100 = quadratic):");
    for pair in rows.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        println!(
            "  {:>6} -> {:<6} validate x{:.1}  plan x{:.1}  emit x{:.1}  peak heap x{:.1}  added waits {} -> {}",
            a.steps,
            b.steps,
            ratio(b.validate, a.validate),
            ratio(b.plan, a.plan),
            ratio(b.emit, a.emit),
            b.peak as f64 / a.peak.max(1) as f64,
            a.added,
            b.added
        );
    }
}

struct Row {
    steps: usize,
    edges: usize,
    validate: Duration,
    plan: Duration,
    emit: Duration,
    peak: usize,
    asl_bytes: usize,
    added: usize,
}

fn measure(size: usize) -> Row {
    let text = generate(size);
    let base = HEAP.current_usage();
    HEAP.reset_peak_usage();

    let started = Instant::now();
    let wf = load_str("bench.yaml", &text, None).unwrap_or_else(|d| panic!("{:?}", miette::Report::new(d)));
    let validate = started.elapsed();
    if std::env::var_os("GARDEN_BENCH_PASSES").is_some() {
        passes(&text);
    }

    let started = Instant::now();
    let planned = plan::plan(&wf);
    let plan_time = started.elapsed();

    let started = Instant::now();
    let target = Target::local();
    let machine = asl::emit(&wf, &planned, &target);
    let _policy = policy::policy(&wf, &target);
    let _explain = explain::explain(&wf, &planned).to_string();
    let asl_bytes = serde_json::to_string(&machine).map_or(0, |s| s.len());
    let emit = started.elapsed();

    let peak = HEAP.peak_usage().saturating_sub(base);
    Row {
        steps: wf.steps.len(),
        edges: wf.steps.iter().map(|s| s.deps.len()).sum(),
        validate,
        plan: plan_time,
        emit,
        peak,
        asl_bytes,
        added: planned.added.len(),
    }
}

/// Times each pass of `load_str` on its own.
fn passes(text: &str) {
    use garden_workflows::{definition, error, graph, parse, resolve};
    let started = Instant::now();
    let file = error::SourceFile::new("bench.yaml", text);
    let mut diags = error::Diagnostics::default();
    let def: definition::Definition = parse::parse_definition(&file, &mut diags).expect("parses");
    let parsed = started.elapsed();
    let started = Instant::now();
    let wf = resolve::resolve(&def, &mut diags);
    let resolved = started.elapsed();
    let started = Instant::now();
    graph::validate(&wf, &def, &mut diags);
    let checked = started.elapsed();
    println!(
        "  {} steps: parse {} resolve {} graph {}",
        wf.steps.len(),
        ms(parsed),
        ms(resolved),
        ms(checked)
    );
}

fn fastest(runs: Vec<Row>) -> Row {
    let best = runs.into_iter().reduce(|a, b| Row {
        validate: a.validate.min(b.validate),
        plan: a.plan.min(b.plan),
        emit: a.emit.min(b.emit),
        peak: a.peak.max(b.peak),
        ..a
    });
    best.unwrap_or_else(|| measure(SIZES[0]))
}

/// A definition of about `size` steps.
fn generate(size: usize) -> String {
    let mut out = String::from(
        "name: bench
resources:
  models: { fast: anthropic.claude-3-5-haiku-20241022-v1:0 }
  gateways: { search: { url: \"http://127.0.0.1:4620/mcp\" } }
defaults: { model: fast, timeout: 5m, heartbeat: 30s }
steps:
",
    );
    let stages = size.div_ceil(STAGE);
    for s in 0..stages {
        let previous = if s == 0 {
            String::new()
        } else {
            format!(
                "    needs: [x{p}, y{p}, t{p}_3, t{p}_4, t{p}_5, t{p}_6, t{p}_7]\n",
                p = s - 1
            )
        };
        let _ = write!(
            out,
            "  plan{s}:\n{previous}    model:\n      prompt: \"Plan stage {s} of {{{{ input.topic }}}}\"\n      output_schema: {{ type: object, required: [items, score] }}\n"
        );
        for t in 0..8 {
            let _ = writeln!(out, "  t{s}_{t}:");
            match t {
                0 => {
                    let _ = writeln!(
                        out,
                        "    for_each: \"{{{{ steps.plan{s}.output.items }}}}\"\n    max_concurrency: 5"
                    );
                }
                1 => {
                    let _ = writeln!(out, "    when: \"{{{{ steps.plan{s}.output.score > 0.5 }}}}\"");
                }
                _ => {}
            }
            let _ = writeln!(
                out,
                "    tool: {{ gateway: search, name: web_search, arguments: {{ query: \"{{{{ steps.plan{s}.output.items }}}} {t}\" }} }}"
            );
        }
        // An N: x waits for t0 and t1, y for t1 and t2.
        let _ = writeln!(
            out,
            "  x{s}:\n    needs: [t{s}_0, t{s}_1]\n    model: {{ prompt: join }}"
        );
        let _ = writeln!(
            out,
            "  y{s}:\n    needs: [t{s}_1, t{s}_2]\n    model: {{ prompt: join }}"
        );
    }
    out
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn ratio(b: Duration, a: Duration) -> f64 {
    b.as_secs_f64() / a.as_secs_f64().max(1e-9)
}
