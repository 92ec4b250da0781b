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
