//! The job verbs: `submit`, `status`, `jobs` and `approve`. They read job and
//! step items straight from DynamoDB, so they never need the Step Functions
//! execution history.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use garden_workers::approval::{self, Decision};
use garden_workers::store::{self, JobItem, JobStatus, StepItem, StepStatus};
use garden_workflows::wire::JobMessage;
use miette::{IntoDiagnostic, WrapErr, miette};
use serde_json::{Value, json};

use crate::deploy::TargetArgs;
use crate::failure::failed;
use crate::offline::out;

#[derive(clap::Args)]
pub struct SubmitArgs {
    /// The workflow to run, as deployed.
    pub workflow: String,
    /// The job input: JSON text, or `@FILE` to read it from a file.
    #[arg(long, default_value = "{}")]
    pub input: String,
    /// Use this job id instead of a new one.
    #[arg(long, conflicts_with = "idempotency_key")]
    pub job_id: Option<String>,
    /// Messages with the same key make one job.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Show the steps as they progress and exit with the job's outcome.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    #[command(flatten)]
    pub target: TargetArgs,
}

#[derive(clap::Args)]
pub struct StatusArgs {
    pub job_id: String,
    /// Print the job and its steps as JSON.
    #[arg(long, conflicts_with = "wait")]
    pub json: bool,
    /// Follow the steps as they progress and exit with the job's outcome.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    #[command(flatten)]
    pub target: TargetArgs,
}

#[derive(clap::Args)]
pub struct JobsArgs {
    /// Only jobs of this workflow (`_rejected` for messages naming no known workflow).
    #[arg(long)]
    pub workflow: Option<String>,
    /// Only jobs in this state: RUNNING, SUCCEEDED, FAILED, TIMED_OUT or REJECTED.
    #[arg(long)]
    pub status: Option<String>,
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub target: TargetArgs,
}

#[derive(clap::Args)]
pub struct ApproveArgs {
    pub job_id: String,
    pub step: String,
    /// Reject instead of approve: the step fails with `Garden.Rejected`.
    #[arg(long)]
    pub reject: bool,
    /// Why, recorded on the step.
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub target: TargetArgs,
}

/// The largest message body SQS takes (256 KiB), as the dispatcher enforces it.
const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// AWS clients and the table, for one command.
struct Session {
    ddb: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    sfn: aws_sdk_sfn::Client,
    table: String,
    prefix: String,
}

impl Session {
    async fn new(target: &TargetArgs) -> Self {
        let config = target.sdk_config().await;
        Session {
            ddb: aws_sdk_dynamodb::Client::new(&config),
            sqs: aws_sdk_sqs::Client::new(&config),
            sfn: aws_sdk_sfn::Client::new(&config),
            table: garden_workflows::target::table_name(&target.prefix),
            prefix: target.prefix.clone(),
        }
    }

    async fn job(&self, job_id: &str) -> miette::Result<JobItem> {
        store::get_job(&self.ddb, &self.table, job_id)
            .await
            .map_err(|e| failed(&format!("cannot read job `{job_id}`"), &self.table, &e.to_string()))?
            .ok_or_else(|| {
                miette!(
                    help = "list recent jobs with `garden jobs`",
                    "no job `{job_id}` in table `{}`",
                    self.table
                )
            })
    }

    /// The job's steps in the order they started (not yet started last).
    async fn steps(&self, job_id: &str) -> miette::Result<Vec<StepItem>> {
        let mut steps = store::list_steps(&self.ddb, &self.table, job_id).await.map_err(|e| {
            failed(
                &format!("cannot read the steps of job `{job_id}`"),
                &self.table,
                &e.to_string(),
            )
        })?;
        steps.sort_by(|a, b| {
            let started = |s: &StepItem| s.started_at.clone().unwrap_or_else(|| "~".to_owned());
            (started(a), &a.step, a.item).cmp(&(started(b), &b.step, b.item))
        });
        Ok(steps)
    }
}

pub async fn submit(args: SubmitArgs) -> miette::Result<ExitCode> {
    let input = read_input(&args.input)?;
    let session = Session::new(&args.target).await;
    let deployed = store::get_workflow(&session.ddb, &session.table, &args.workflow)
        .await
        .map_err(|e| failed("cannot read the workflow registry", &session.table, &e.to_string()))?;
    let Some(deployed) = deployed else {
        return Err(miette!(
            help = format!("deploy it first: `garden deploy definitions/{}.yaml`", args.workflow),
            "workflow `{}` is not deployed in table `{}`",
            args.workflow,
            session.table
        ));
    };
    // The dispatcher checks the input too; checking here tells the person
    // who typed it at once instead of in a REJECTED job later.
    if let Some(schema) = &deployed.input_schema
        && let Err(problems) = garden_workers::schema::check(schema, &input)
    {
        return Err(miette!(
            help = "fix the input; `garden compile --explain` and the definition's `input` show what it takes",
            "the input does not match the input schema of `{}`: {}",
            args.workflow,
            problems.join("; ")
        ));
    }
    let job_id = match (&args.job_id, &args.idempotency_key) {
        (Some(id), _) => id.clone(),
        (None, Some(key)) => garden_workers::dispatcher::derive_job_id(&args.workflow, key),
        (None, None) => format!("j-{}", uuid::Uuid::new_v4().simple()),
    };
    let message = JobMessage {
        workflow: args.workflow.clone(),
        input,
        job_id: args.idempotency_key.is_none().then(|| job_id.clone()),
        idempotency_key: args.idempotency_key.clone(),
    };
    let body = serde_json::to_string(&message).into_diagnostic()?;
    if body.len() > MAX_MESSAGE_BYTES {
        return Err(miette!(
            help = "keep large inputs in S3 or DynamoDB and pass a reference to them",
            "the job message is {} bytes, more than the {MAX_MESSAGE_BYTES} an SQS message may carry",
            body.len()
        ));
    }
    let queue = garden_workflows::target::jobs_queue_name(&session.prefix);
    let queue_url = session
        .sqs
        .get_queue_url()
        .queue_name(&queue)
        .send()
        .await
        .map_err(|e| {
            failed(
                &format!("cannot find the jobs queue `{queue}`"),
                &session.table,
                &garden_infra::error_message(&e),
            )
        })?
        .queue_url
        .unwrap_or_default();
    session
        .sqs
        .send_message()
        .queue_url(&queue_url)
        .message_body(body)
        .send()
        .await
        .map_err(|e| {
            failed(
                "cannot send the job message",
                &session.table,
                &garden_infra::error_message(&e),
            )
        })?;
    eprintln!("submitted job {job_id} ({}) to {queue}", args.workflow);
    if !args.wait {
        out(&job_id)?;
        return Ok(ExitCode::SUCCESS);
    }
    wait_for(&session, &job_id, Duration::from_secs(args.timeout)).await
}

fn read_input(text: &str) -> miette::Result<Value> {
    let (source, text) = match text.strip_prefix('@') {
        Some(path) => {
            let path = PathBuf::from(path);
            let text = std::fs::read_to_string(&path)
                .into_diagnostic()
                .wrap_err_with(|| format!("cannot read the input file {}", path.display()))?;
            (path.display().to_string(), text)
        }
        None => ("--input".to_owned(), text.to_owned()),
    };
    serde_json::from_str(&text).map_err(|e| {
        miette!(
            help = r#"pass JSON, for example --input '{"topic": "tides"}', or @file.json"#,
            "{source} is not JSON: {e}"
        )
    })
}

/// Polls the job and its steps, printing each step as its state changes,
/// until the job ends; the exit code is the job's outcome.
async fn wait_for(session: &Session, job_id: &str, timeout: Duration) -> miette::Result<ExitCode> {
    let started = Instant::now();
    let mut seen: BTreeMap<String, (StepStatus, u32)> = BTreeMap::new();
    loop {
        let job = store::get_job(&session.ddb, &session.table, job_id)
            .await
            .map_err(|e| failed(&format!("cannot read job `{job_id}`"), &session.table, &e.to_string()))?;
        if let Some(job) = &job {
            for step in session.steps(job_id).await? {
                let key = step_label(&step);
                if seen.get(&key) != Some(&(step.status, step.attempts)) {
                    eprintln!("  {:>6.1}s  {}", started.elapsed().as_secs_f64(), step_line(&step));
                    seen.insert(key, (step.status, step.attempts));
                }
            }
            if job.status != JobStatus::Running {
                print_job(job, &session.steps(job_id).await?);
                return Ok(exit_code(job.status));
            }
        }
        if started.elapsed() > timeout {
            return Err(miette!(
                help = format!("it may still finish: `garden status {job_id}`"),
                "job `{job_id}` did not finish within {}s",
                timeout.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn exit_code(status: JobStatus) -> ExitCode {
    if status == JobStatus::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

pub async fn status(args: StatusArgs) -> miette::Result<ExitCode> {
    let session = Session::new(&args.target).await;
    if args.wait {
        return wait_for(&session, &args.job_id, Duration::from_secs(args.timeout)).await;
    }
    let job = session.job(&args.job_id).await?;
    let steps = session.steps(&args.job_id).await?;
    if args.json {
        let shown = json!({"job": job, "steps": steps});
        out(&serde_json::to_string_pretty(&shown).into_diagnostic()?)?;
    } else {
        print_job(&job, &steps);
    }
    Ok(exit_code(job.status))
}

fn print_job(job: &JobItem, steps: &[StepItem]) {
    // What a person reads goes to standard output, so that it can be piped.
    macro_rules! show {
        ($($arg:tt)*) => { let _ = out(&format!($($arg)*)); };
    }
    let workflow = if job.workflow.is_empty() {
        "-"
    } else {
        job.workflow.as_str()
    };
    show!("job {}  workflow {workflow}  {}", job.job_id, job.status.as_str());
    show!("  created {}  updated {}", job.created_at, job.updated_at);
    if let Some(reason) = &job.reason {
        show!("  rejected: {reason}");
    }
    if let Some(error) = &job.error {
        let step = job.failed_step.as_deref().unwrap_or("-");
        show!(
            "  failed at step {step}: {error}: {}",
            job.cause.as_deref().unwrap_or("")
        );
    }
    for step in steps {
        show!("  {}", step_line(step));
    }
    if !steps.is_empty() {
        show!("  {}", tokens_line(steps));
    }
    if let Some(output) = &job.output {
        let _ = out(&serde_json::to_string_pretty(output).unwrap_or_default());
    }
}

/// The job's model tokens and, where the definition priced its models, what
/// they cost; tokens of unpriced models are named, not guessed at.
fn tokens_line(steps: &[StepItem]) -> String {
    let (mut input, mut output, mut cost, mut unpriced) = (0, 0, 0.0, 0);
    for step in steps {
        let (i, o) = (step.input_tokens.unwrap_or(0), step.output_tokens.unwrap_or(0));
        (input, output) = (input + i, output + o);
        match step.cost_usd {
            Some(dollars) => cost += dollars,
            None => unpriced += i + o,
        }
    }
    let mut line = format!("model tokens: {input} in, {output} out");
    if unpriced < input + output {
        line.push_str(&format!(", ${cost:.4}"));
    }
    if unpriced > 0 {
        line.push_str(&format!(
            "; {unpriced} tokens of models without prices (add `price_per_million_tokens` to the model in resources)"
        ));
    }
    line
}

fn step_label(step: &StepItem) -> String {
    match step.item {
        Some(item) => format!("{}[{item}]", step.step),
        None => step.step.clone(),
    }
}

fn step_line(step: &StepItem) -> String {
    let mut line = format!("{:<24} {:<16}", step_label(step), step.status.as_str());
    line.push_str(&format!(" attempts {}", step.attempts));
    if step.runs > 1 {
        line.push_str(&format!(" (run {} times)", step.runs));
    }
    if let Some(ms) = step.duration_ms {
        line.push_str(&format!("  {:.2}s", ms as f64 / 1000.0));
    }
    if let (Some(i), Some(o)) = (step.input_tokens, step.output_tokens)
        && i + o > 0
    {
        line.push_str(&format!("  tokens {i}/{o}"));
        if let Some(dollars) = step.cost_usd {
            line.push_str(&format!(" ${dollars:.4}"));
        }
    }
    if let Some(error) = &step.error {
        line.push_str(&format!("  {error}: {}", step.cause.as_deref().unwrap_or("")));
    }
    line
}

pub async fn list(args: JobsArgs) -> miette::Result<ExitCode> {
    let session = Session::new(&args.target).await;
    let wanted_status = match &args.status {
        Some(text) => Some(JobStatus::parse(&text.to_uppercase()).ok_or_else(|| {
            miette!(
                help = "use RUNNING, SUCCEEDED, FAILED, TIMED_OUT or REJECTED",
                "unknown job status `{text}`"
            )
        })?),
        None => None,
    };
    let workflows = match &args.workflow {
        Some(name) => vec![name.clone()],
        None => {
            let mut names = store::list_workflows(&session.ddb, &session.table)
                .await
                .map_err(|e| failed("cannot list the deployed workflows", &session.table, &e.to_string()))?;
            names.push("_rejected".into());
            names
        }
    };
    let mut jobs = Vec::new();
    for workflow in &workflows {
        let found = store::list_jobs_by_workflow(&session.ddb, &session.table, workflow, args.limit.min(10_000) as i32)
            .await
            .map_err(|e| {
                failed(
                    &format!("cannot list jobs of `{workflow}`"),
                    &session.table,
                    &e.to_string(),
                )
            })?;
        jobs.extend(
            found
                .into_iter()
                .filter(|job| wanted_status.is_none_or(|s| job.status == s)),
        );
    }
    jobs.sort_by(|a, b| b.created_at.cmp(&a.created_at));
    jobs.truncate(args.limit);
    if args.json {
        out(&serde_json::to_string_pretty(&jobs).into_diagnostic()?)?;
        return Ok(ExitCode::SUCCESS);
    }
    out(&format!(
        "{:<40} {:<20} {:<10} {:<24}  REASON / ERROR",
        "JOB", "WORKFLOW", "STATUS", "CREATED"
    ))?;
    for job in &jobs {
        let note = job.reason.as_deref().or(job.error.as_deref()).unwrap_or("");
        let workflow = if job.workflow.is_empty() {
            "-"
        } else {
            job.workflow.as_str()
        };
        out(&format!(
            "{:<40} {:<20} {:<10} {:<24}  {note}",
            job.job_id,
            workflow,
            job.status.as_str(),
            job.created_at
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn approve(args: ApproveArgs) -> miette::Result<ExitCode> {
    let session = Session::new(&args.target).await;
    session.job(&args.job_id).await?;
    let by = std::env::var("USER").ok();
    let decision = if args.reject {
        Decision::Reject {
            reason: args.reason.clone().unwrap_or_else(|| "rejected".to_owned()),
            by,
        }
    } else {
        Decision::Approve {
            comment: args.reason.clone(),
            by,
        }
    };
    approval::answer(
        &session.ddb,
        &session.sfn,
        &session.table,
        &args.job_id,
        &args.step,
        decision,
    )
    .await
    .map_err(|e| miette!("{e}"))?;
    let verb = if args.reject { "rejected" } else { "approved" };
    eprintln!("{verb} step {} of job {}", args.step, args.job_id);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use garden_workers::store::{StepItem, StepStatus};

    use super::*;

    fn model_step(name: &str, tokens: (u64, u64), cost_usd: Option<f64>) -> StepItem {
        StepItem {
            step: name.into(),
            item: None,
            status: StepStatus::Succeeded,
            attempts: 1,
            runs: 1,
            started_at: None,
            finished_at: None,
            duration_ms: Some(1200),
            input_tokens: Some(tokens.0),
            output_tokens: Some(tokens.1),
            cost_usd,
            error: None,
            cause: None,
            output: None,
            result: None,
            task_token: None,
        }
    }

    #[test]
    fn the_token_line_prices_what_it_can_and_names_what_it_cannot() {
        let priced = model_step("plan", (1_000, 500), Some(0.0028));
        let tool = model_step("search", (0, 0), None);
        let unpriced = model_step("draft", (300, 100), None);
        assert_eq!(
            tokens_line(&[priced.clone(), tool.clone()]),
            "model tokens: 1000 in, 500 out, $0.0028"
        );
        let mixed = tokens_line(&[priced.clone(), unpriced.clone()]);
        assert!(mixed.starts_with("model tokens: 1300 in, 600 out, $0.0028; 400 tokens of models without prices"));
        let none = tokens_line(&[unpriced]);
        assert!(none.starts_with("model tokens: 300 in, 100 out; 400 tokens"), "{none}");
        assert_eq!(tokens_line(std::slice::from_ref(&tool)), "model tokens: 0 in, 0 out");
        assert!(
            step_line(&priced).ends_with("tokens 1000/500 $0.0028"),
            "{}",
            step_line(&priced)
        );
        assert!(!step_line(&tool).contains("tokens"));
    }
}
