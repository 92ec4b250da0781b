//! Every compiled definition checked by an independent ASL validator, the npm
//! package `asl-validator` (installed with
//! `npm ci --prefix workflows/tests/asl-validator`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn validator() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/asl-validator");
    let bin = dir.join("node_modules/.bin/asl-validator");
    assert!(
        bin.exists(),
        "the ASL validator is not installed: run `npm ci --prefix workflows/tests/asl-validator` first"
    );
    bin
}

fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("garden-asl-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// Runs the validator on one file; `Ok` when it accepts it, else its report.
fn check(bin: &Path, file: &Path) -> Result<(), String> {
    let out = Command::new(bin)
        .arg("--json-path")
        .arg(file)
        .output()
        .expect("node runs the validator");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[test]
fn every_compiled_definition_is_valid_asl() {
    let bin = validator();
    let dir = scratch_dir("all");
    let mut all: Vec<(String, String)> = common::EXAMPLES
        .iter()
        .map(|name| (name.to_string(), common::compiled_example(name).asl_json()))
        .collect();
    all.extend(
        common::SHAPES
            .iter()
            .map(|(name, text)| (name.to_string(), common::compiled(text).asl_json())),
    );
    let mut failures = Vec::new();
    for (name, asl) in &all {
        let file = dir.join(format!("{name}.asl.json"));
        std::fs::write(&file, asl).expect("the definition is written");
        if let Err(report) = check(&bin, &file) {
            failures.push(format!("{name}: {report}"));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "invalid state machines:\n{}", failures.join("\n"));
}

#[test]
fn the_validator_does_reject_a_broken_definition() {
    let bin = validator();
    let dir = scratch_dir("broken");
    let mut asl = common::compiled_example("finance-analysis").asl;
    asl["StartAt"] = "No such state".into();
    let file = dir.join("broken.asl.json");
    std::fs::write(&file, asl.to_string()).expect("written");
    let result = check(&bin, &file);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(result.is_err(), "a dangling StartAt must be refused");
}
