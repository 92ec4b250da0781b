//! `garden deploy` and `garden destroy`: the core resources and the workflows,
//! to the account and region the standard AWS configuration names, or to
//! LocalStack when `AWS_ENDPOINT_URL` (or `--endpoint-url`) points there.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use garden_infra::deploy::{CoreOutputs, ScheduleDeployment, WorkflowDeployment};
use garden_infra::{CoreSpec, Deployer, Report, ScheduleRoute};
use miette::{IntoDiagnostic, WrapErr, miette};

use crate::failure::deploy_failed;

#[derive(clap::Args)]
pub struct DeployArgs {
    /// Definitions to deploy; every `*.yaml` in `definitions/` when none is given.
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Also deliver UTC schedules through EventBridge rules. LocalStack keeps
    /// Scheduler schedules but never fires them; it does fire rules.
    #[arg(long)]
    pub schedule_rules: bool,
    /// Visibility timeout of the task queues, in seconds: how long a crashed
    /// worker's task stays hidden before another worker takes it.
    #[arg(long)]
    pub task_visibility: Option<u32>,
    /// Also deploy the dispatcher and worker Lambda functions, from the zips
    /// `cargo lambda build --release --arm64 --output-format zip` leaves under
    /// this target folder. Without it, run the handlers with `garden worker`.
    #[arg(long, value_name = "TARGET_DIR", num_args = 0..=1, default_missing_value = "target")]
    pub functions: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct DestroyArgs {
    #[command(flatten)]
    pub target: TargetArgs,
}

/// Where to deploy: the standard AWS configuration, with two overrides.
#[derive(clap::Args, Clone)]
pub struct TargetArgs {
    /// Prefix of every resource name.
    #[arg(long, env = "GARDEN_PREFIX", default_value = garden_workflows::target::DEFAULT_PREFIX)]
    pub prefix: String,
    /// Send every AWS call to this endpoint (LocalStack: http://127.0.0.1:4566).
    #[arg(long)]
    pub endpoint_url: Option<String>,
}

impl TargetArgs {
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(url) = &self.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        loader.load().await
    }
}

pub async fn deploy(args: DeployArgs) -> miette::Result<ExitCode> {
    let files = if args.files.is_empty() {
        definition_files(Path::new("definitions"))?
    } else {
        args.files
    };
    // Compile offline first with a placeholder target: a definition with
    // errors must stop the deploy before anything is created.
    let mut workflows = Vec::new();
    for file in &files {
        workflows.push(garden_workflows::load_file(file).map_err(miette::Report::new)?);
    }

    let route = if args.schedule_rules {
        ScheduleRoute::SchedulerAndRules
    } else {
        ScheduleRoute::Scheduler
    };
    let mut spec = CoreSpec::new(&args.target.prefix, route);
    if let Some(secs) = args.task_visibility {
        spec = spec.with_task_visibility(secs);
    }
    if args.functions.is_some() {
        // SQS wants a queue's visibility timeout at least its function's timeout.
        let longest = garden_infra::functions::LONGEST_TIMEOUT_SECS as u32 + 60;
        spec = spec.with_task_visibility(args.task_visibility.unwrap_or(0).max(longest));
    }
    let config = args.target.sdk_config().await;
    let deployer = Deployer::new(&config);
    let (core, mut report) = deployer.deploy_core(&spec).await.map_err(deploy_failed)?;
    let functions = match &args.functions {
        Some(dir) => {
            let artifacts = garden_infra::functions::Artifacts::in_target(dir);
            let done = garden_infra::functions::FunctionDeployer::new(&config)
                .deploy(&core, &artifacts)
                .await
                .map_err(deploy_failed)?;
            report.extend(done);
            true
        }
        None => false,
    };
    let target = core.target();
    for workflow in &workflows {
        let compiled = garden_workflows::compile(workflow, &target).map_err(miette::Report::new)?;
        let deployment = deployment_of(&compiled);
        let done = deployer
            .deploy_workflow(&core, &deployment)
            .await
            .map_err(deploy_failed)
            .wrap_err_with(|| format!("deploying workflow `{}`", deployment.name))?;
        report.extend(done);
    }
    print_report("deploy", &core, &report, functions);
    Ok(ExitCode::SUCCESS)
}

pub async fn destroy(args: DestroyArgs) -> miette::Result<ExitCode> {
    let spec = CoreSpec::new(&args.target.prefix, ScheduleRoute::SchedulerAndRules);
    let deployer = Deployer::new(&args.target.sdk_config().await);
    let report = deployer.destroy(&spec).await.map_err(deploy_failed)?;
    eprintln!("garden destroy: {} resources deleted", report.entries.len());
    eprint!("{report}");
    Ok(ExitCode::SUCCESS)
}

/// Every definition in a folder, in name order; `resources.yaml` is the shared
/// resources file, not a workflow.
pub fn definition_files(dir: &Path) -> miette::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_diagnostic()
        .wrap_err_with(|| {
            format!(
                "cannot read {}: run from the project folder or name the files",
                dir.display()
            )
        })?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.extension().is_some_and(|ext| ext == "yaml" || ext == "yml")
                && path.file_stem().is_some_and(|stem| stem != "resources")
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(miette!(
            "no definitions in {}: add a NAME.yaml there or name the files",
            dir.display()
        ));
    }
    Ok(files)
}

fn deployment_of(compiled: &garden_workflows::Compiled) -> WorkflowDeployment {
    WorkflowDeployment {
        name: compiled.name.clone(),
        asl: serde_json::to_string_pretty(&compiled.asl).expect("ASL is JSON"),
        policy: compiled.policy.clone(),
        input_schema: compiled.input_schema.clone(),
        hash: compiled.hash.clone(),
        schedules: compiled
            .schedules
            .iter()
            .map(|s| ScheduleDeployment {
                name: s.name.clone(),
                expression: s.expression.clone(),
                timezone: s.timezone.clone(),
                input: s.input.clone(),
            })
            .collect(),
    }
}

fn print_report(verb: &str, core: &CoreOutputs, report: &Report, functions: bool) {
    use garden_infra::Change;
    let changed = [Change::Created, Change::Updated, Change::Deleted]
        .iter()
        .map(|c| report.count(c))
        .sum::<usize>();
    eprintln!(
        "garden {verb}: account {} region {}, {} resources, {changed} changed",
        core.account,
        core.region,
        report.entries.len()
    );
    eprint!("{report}");
    if !functions {
        eprintln!(
            "  functions      {:<44} skipped: run the handlers with `garden worker`, or deploy with --functions",
            "dispatcher, workers"
        );
    }
    eprintln!("jobs queue: {}", core.jobs_queue_url());
}
