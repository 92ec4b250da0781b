//! The dependency graph of a workflow as Mermaid or Graphviz DOT, for
//! `garden graph`. Conditional steps are drawn dashed, fan-outs are marked,
//! and fallbacks hang off the step they stand in for.

use std::fmt::Write;

use crate::workflow::{OnError, Workflow};

/// A Mermaid flowchart, top to bottom.
pub fn mermaid(wf: &Workflow) -> String {
    let mut out = String::from("flowchart TD\n");
    for step in &wf.steps {
        let mut label = format!("{}<br/><i>{}</i>", step.name, step.kind_name());
        if let Some(fe) = &step.for_each {
            let _ = write!(label, "<br/>for each of {}", wf.steps[fe.source].name);
        }
        let shape = if step.when.is_some() { ("{{", "}}") } else { ("[", "]") };
        let _ = writeln!(out, "    {}{}\"{}\"{}", step.id, shape.0, label, shape.1);
    }
    for step in &wf.steps {
        for d in step.dep_indices() {
            let _ = writeln!(out, "    {} --> {}", wf.steps[d].id, step.id);
        }
        if let OnError::Fallback(f) = step.on_error {
            let _ = writeln!(out, "    {} -. on error .-> {}", step.id, wf.steps[f].id);
        }
        if let Some(when) = &step.when {
            let _ = writeln!(out, "    %% {} runs when {}", step.name, when.text.replace('\n', " "));
        }
    }
    out
}

/// A Graphviz digraph.
pub fn dot(wf: &Workflow) -> String {
    let mut out = format!(
        "digraph \"{}\" {{\n    rankdir=TB;\n    node [shape=box, fontname=\"Helvetica\"];\n",
        wf.name
    );
    for step in &wf.steps {
        let mut label = format!("{}\\n({})", step.name, step.kind_name());
        if step.for_each.is_some() {
            label.push_str("\\nfor_each");
        }
        let mut attrs = format!("label=\"{label}\"");
        if let Some(when) = &step.when {
            let _ = write!(
                attrs,
                ", style=dashed, tooltip=\"when {}\"",
                when.text.replace('"', "'")
            );
        }
        if step.fallback_for.is_some() {
            attrs.push_str(", color=orange");
        }
        let _ = writeln!(out, "    \"{}\" [{attrs}];", step.name);
    }
    for step in &wf.steps {
        for d in step.dep_indices() {
            let _ = writeln!(out, "    \"{}\" -> \"{}\";", wf.steps[d].name, step.name);
        }
        if let OnError::Fallback(f) = step.on_error {
            let _ = writeln!(
                out,
                "    \"{}\" -> \"{}\" [style=dotted, label=\"on error\"];",
                step.name, wf.steps[f].name
            );
        }
    }
    out.push_str("}\n");
    out
}
