//! The offline verbs: validate, compile, graph, schema. No AWS call is made.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use garden_workflows::{Diagnostics, Target, Workflow, compile as compile_workflow, load_file};
use miette::{IntoDiagnostic, Report, WrapErr};

#[derive(clap::Args)]
pub struct ValidateArgs {
    /// Definition files (YAML), or folders of them; `resources.yaml` is checked as shared resources.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(clap::Args)]
pub struct CompileArgs {
    /// The definition file (YAML).
    pub file: PathBuf,
    /// Where to write `<name>.asl.json`, `<name>.policy.json` and `<name>.resources.json`.
    #[arg(short, long, default_value = "build")]
    pub out: PathBuf,
    /// Print the plan: parallel groups, added waiting, transitions and cost per 1,000 jobs.
    #[arg(long)]
    pub explain: bool,
    /// The AWS region the state machine runs in.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    pub region: String,
    /// The AWS account id (LocalStack's by default).
    #[arg(long, default_value = "000000000000")]
    pub account: String,
    /// The prefix of every resource name.
    #[arg(long, default_value = garden_workflows::target::DEFAULT_PREFIX)]
    pub prefix: String,
}

#[derive(clap::Args)]
pub struct GraphArgs {
    /// The definition file (YAML).
    pub file: PathBuf,
    #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
    pub format: GraphFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum GraphFormat {
    Mermaid,
    Dot,
}

#[derive(clap::Args)]
pub struct SchemaArgs {
    /// Write the schema to this file instead of standard output.
    #[arg(short, long)]
    pub out: Option<PathBuf>,
}

/// Checks each file and prints every problem; exit code 1 when any file has an error.
pub fn validate(args: ValidateArgs) -> miette::Result<ExitCode> {
    let mut failed = false;
    for file in &expand(&args.files)? {
        if file.file_name().and_then(|n| n.to_str()) == Some(garden_workflows::compile::SHARED_RESOURCES_FILE) {
            match garden_workflows::SharedResources::load(file) {
                Ok(_) => out(&format!("ok  {} (shared resources)", file.display()))?,
                Err(diags) => {
                    failed = true;
                    report(diags);
                }
            }
            continue;
        }
        match load(file) {
            Ok(wf) => {
                print_warnings(&wf);
                out(&format!(
                    "ok  {} ({}, {} steps)",
                    file.display(),
                    wf.name,
                    wf.steps.len()
                ))?;
            }
            Err(diags) => {
                failed = true;
                report(diags);
            }
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Compiles one definition and writes its artifacts.
pub fn compile(args: CompileArgs) -> miette::Result<ExitCode> {
    let Ok(wf) = load(&args.file).map_err(report) else {
        return Ok(ExitCode::FAILURE);
    };
    print_warnings(&wf);
    let target = Target::aws(&args.region, &args.account, &args.prefix);
    let compiled = match compile_workflow(&wf, &target) {
        Ok(c) => c,
        Err(diags) => {
            report(diags);
            return Ok(ExitCode::FAILURE);
        }
    };
    std::fs::create_dir_all(&args.out)
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot create `{}`", args.out.display()))?;
    let write = |suffix: &str, value: &serde_json::Value| -> miette::Result<PathBuf> {
        let path = args.out.join(format!("{}.{suffix}.json", compiled.name));
        let mut text = serde_json::to_string_pretty(value).into_diagnostic()?;
        text.push('\n');
        std::fs::write(&path, text)
            .into_diagnostic()
            .wrap_err_with(|| format!("cannot write `{}`", path.display()))?;
        Ok(path)
    };
    let asl = write("asl", &compiled.asl)?;
    let policy = write("policy", &compiled.policy)?;
    let mut resources = compiled.resources.clone();
    resources["definition_hash"] = compiled.hash.clone().into();
    resources["input_schema"] = compiled.input_schema.clone();
    let resources = write("resources", &resources)?;
    for path in [asl, policy, resources] {
        out(&format!("wrote {}", path.display()))?;
    }
    out(&format!("definition hash {}", compiled.hash))?;
    if args.explain {
        out("")?;
        out(&compiled.explain.to_string())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the dependency graph.
pub fn graph(args: GraphArgs) -> miette::Result<ExitCode> {
    let Ok(wf) = load(&args.file).map_err(report) else {
        return Ok(ExitCode::FAILURE);
    };
    let text = match args.format {
        GraphFormat::Mermaid => garden_workflows::diagram::mermaid(&wf),
        GraphFormat::Dot => garden_workflows::diagram::dot(&wf),
    };
    out(text.trim_end())?;
    Ok(ExitCode::SUCCESS)
}

/// Prints (or writes) the JSON Schema of definitions.
pub fn schema(args: SchemaArgs) -> miette::Result<ExitCode> {
    let text = garden_workflows::schema::definition_schema();
    match args.out {
        Some(path) => std::fs::write(&path, text)
            .into_diagnostic()
            .wrap_err_with(|| format!("cannot write `{}`", path.display()))?,
        None => out(text.trim_end())?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Files as given, with each directory replaced by the YAML files in it.
fn expand(paths: &[PathBuf]) -> miette::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if !path.is_dir() {
            files.push(path.clone());
            continue;
        }
        let mut found: Vec<PathBuf> = std::fs::read_dir(path)
            .into_diagnostic()
            .wrap_err_with(|| format!("cannot read `{}`", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        found.sort();
        files.extend(found);
    }
    Ok(files)
}

fn load(file: &Path) -> Result<Workflow, Diagnostics> {
    load_file(file)
}

fn print_warnings(wf: &Workflow) {
    if wf.warnings.is_empty() {
        return;
    }
    let diags = Diagnostics {
        problems: wf.warnings.clone(),
    };
    report(diags);
}

/// Prints a definition's problems: the first fifty in full, then a count.
/// Past that many the rest mostly echo the first ones, and rendering each
/// with its source costs more than it tells.
fn report(mut diags: Diagnostics) {
    const SHOWN: usize = 50;
    let hidden = diags.problems.len().saturating_sub(SHOWN);
    diags.problems.truncate(SHOWN);
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{:?}", Report::new(diags));
    if hidden > 0 {
        let _ = writeln!(err, "... and {hidden} more problems: fix these first");
    }
}

/// Writes a line to standard output; a closed pipe (`garden graph ... | head`) is not an error.
pub(crate) fn out(line: &str) -> miette::Result<()> {
    match writeln!(std::io::stdout().lock(), "{line}") {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).into_diagnostic(),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn definitions() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("definitions")
    }

    #[test]
    fn a_folder_expands_to_its_yaml_files_in_order() {
        let files = expand(&[definitions()]).unwrap();
        let names: Vec<String> = files
            .iter()
            .filter_map(|f| f.file_name()?.to_str().map(str::to_owned))
            .collect();
        assert!(names.contains(&"research-brief.yaml".to_owned()), "{names:?}");
        assert!(names.contains(&"resources.yaml".to_owned()), "{names:?}");
        assert!(names.windows(2).all(|w| w[0] <= w[1]), "{names:?}");
    }

    #[test]
    fn validate_fails_on_a_bad_definition_and_passes_the_examples() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, "name: bad\nsteps:\n  a:\n    approvl: {}\n").unwrap();
        let code = validate(ValidateArgs { files: vec![bad] }).unwrap();
        assert_eq!(code, ExitCode::FAILURE);
        let code = validate(ValidateArgs {
            files: vec![definitions()],
        })
        .unwrap();
        assert_eq!(code, ExitCode::SUCCESS);
    }

    #[test]
    fn compile_writes_the_three_artifacts() {
        let dir = tempfile::tempdir().unwrap();
        let args = CompileArgs {
            file: definitions().join("finance-analysis.yaml"),
            out: dir.path().to_path_buf(),
            explain: false,
            region: "eu-west-1".into(),
            account: "123456789012".into(),
            prefix: "garden".into(),
        };
        assert_eq!(compile(args).unwrap(), ExitCode::SUCCESS);
        for suffix in ["asl", "policy", "resources"] {
            let path = dir.path().join(format!("finance-analysis.{suffix}.json"));
            let text = std::fs::read_to_string(&path).unwrap();
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert!(value.is_object(), "{suffix}");
        }
        let policy = std::fs::read_to_string(dir.path().join("finance-analysis.policy.json")).unwrap();
        assert!(
            policy.contains("arn:aws:sqs:eu-west-1:123456789012:garden-tool"),
            "{policy}"
        );
        assert!(!policy.contains("\"*\""), "no wildcard resources: {policy}");
    }
}
