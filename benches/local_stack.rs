//! What the engine costs on the local stack, as ratios against bare Step
//! Functions calls measured in the same run, never as timed assertions.
//!
//! 1. Per step: a workflow of four tool steps (`benches/definitions/bench-chain.yaml`,
//!    the local MCP tool server, no model) run job after job through `garden worker`,
//!    against the bare task-token round trip: a state machine of Task states on
//!    `sqs:sendMessage.waitForTaskToken` and a loop that answers each task message
//!    with SendTaskSuccess at once.
//! 2. Admission: job messages turned into executions by the dispatcher alone
//!    (`garden worker --only jobs`), against a bare StartExecution loop on a
//!    Pass-only state machine, sequential and four at a time.
//!
//! Everything is made under a prefix of its own and removed at the end. The
//! local stack must be up, or `localstack/up.sh` is run.
//!
//! Run: `cargo bench -p garden --bench local_stack [-- --jobs N --admit M]`.

#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sfn::types::ExecutionStatus;
use aws_sdk_sqs::error::DisplayErrorContext;
use serde_json::{Value, json};

const LOCALSTACK: &str = "http://127.0.0.1:4566";
const STANDIN: &str = "http://127.0.0.1:4610";
const TOOLS: &str = "http://127.0.0.1:4620/mcp";
const WORKFLOW: &str = "bench-chain";
/// The tool steps of the workflow, in order; the output task comes after them.
const TOOL_STEPS: [&str; 4] = ["first", "second", "third", "fourth"];
const TASKS: usize = TOOL_STEPS.len() + 1;
/// How often job items and executions are polled; the same for both sides.
const POLL: Duration = Duration::from_millis(20);
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
const ADMIT_TIMEOUT: Duration = Duration::from_secs(300);
const ROLE: &str = "arn:aws:iam::000000000000:role/garden-bench-baseline";

type Outcome<T> = Result<T, String>;

fn main() -> ExitCode {
    let options = Options::from_args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    if let Err(message) = stack_up() {
        eprintln!("local stack: {message}");
        return ExitCode::FAILURE;
    }
    let aws = runtime.block_on(Aws::new());
    let prefix = format!("bench{:05x}", fastrand::u32(..0xf_ffff));
    println!(
        "local stack benchmark: prefix {prefix}, {} jobs per series, {} admissions, garden at {}",
        options.jobs,
        options.admit,
        garden_bin().display()
    );

    let mut baseline = Baseline::new(&prefix);
    let mut deployment = Deployment::new(&prefix);
    let result = runtime.block_on(run(&aws, &mut baseline, &mut deployment, &options));

    deployment.stop_workers();
    runtime.block_on(stop_running(&aws, &deployment));
    deployment.destroy();
    runtime.block_on(baseline.delete(&aws));

    match result {
        Ok(figures) => {
            figures.print();
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("benchmark failed: {message}");
            eprintln!("worker logs: {}", deployment.log_dir().display());
            ExitCode::FAILURE
        }
    }
}

/// `--jobs N` (jobs per series) and `--admit M` (admissions); anything else
/// (cargo's own `--bench`) is ignored.
struct Options {
    jobs: usize,
    admit: usize,
}

impl Options {
    fn from_args() -> Self {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let value = |flag: &str, default: usize, max: usize| {
            args.iter()
                .position(|a| a == flag)
                .and_then(|i| args.get(i + 1))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(default)
                .clamp(1, max)
        };
        Options {
            jobs: value("--jobs", 20, 500),
            admit: value("--admit", 100, 1_000),
        }
    }
}

async fn run(aws: &Aws, baseline: &mut Baseline, deployment: &mut Deployment, options: &Options) -> Outcome<Figures> {
    baseline.create(aws).await?;
    deployment.deploy()?;
    deployment.jobs_queue = aws
        .sqs
        .get_queue_url()
        .queue_name(garden_workflows::target::jobs_queue_name(&deployment.prefix))
        .send()
        .await
        .map_err(failed("GetQueueUrl"))?
        .queue_url
        .unwrap_or_default();
    deployment.start_worker("dispatcher", &["--only", "jobs"])?;
    deployment.start_worker("steps", &["--only", "tool,control"])?;

    println!("\n[1/4] bare task-token round trip: 1 task and {TASKS} tasks per execution");
    let bare_one = bare_round_trips(aws, baseline, &baseline.one_task.clone(), 1, options.jobs).await?;
    let bare_chain = bare_round_trips(aws, baseline, &baseline.chain.clone(), TASKS, options.jobs).await?;

    println!(
        "[2/4] engine: {} jobs of {WORKFLOW} ({} tool steps + output)",
        options.jobs,
        TOOL_STEPS.len()
    );
    let engine = engine_jobs(aws, deployment, options.jobs).await?;

    // The step worker goes away: what follows measures the dispatcher alone,
    // and its executions wait at their first task until they are stopped.
    deployment.stop_worker("steps");

    println!(
        "[3/4] bare StartExecution on a Pass state machine: {} executions",
        options.admit
    );
    let pass = baseline.pass.clone();
    let start_seq = start_executions(aws, &pass, "{}", options.admit, 1).await?;
    let start_par = start_executions(aws, &pass, "{}", options.admit, 4).await?;

    println!("[4/4] dispatcher admission: {} job messages", options.admit);
    let admission = admit_jobs(aws, deployment, options.admit).await?;

    // The same StartExecution loop on the workflow's own state machine: its
    // executions run to their first task like the dispatcher's do.
    let machine = deployment
        .machine_arn(aws)
        .await
        .ok_or("no state machine ARN in the workflow registry item")?;
    let input = json!({"job": {"id": "bare", "workflow": WORKFLOW}, "v": {}}).to_string();
    let start_workflow = start_executions(aws, &machine, &input, options.admit, 4).await?;

    Ok(Figures {
        jobs: options.jobs,
        admit: options.admit,
        bare_one,
        bare_chain,
        engine,
        start_seq,
        start_par,
        admission,
        start_workflow,
    })
}

// ---------------------------------------------------------------------------
// Per step: bare round trip

/// What one series of bare executions measured.
struct BareRun {
    /// StartExecution called → DescribeExecution says SUCCEEDED, per execution.
    execution: Vec<f64>,
    /// Task message received → the next task message received, per task.
    round_trip: Vec<f64>,
}

/// Runs `runs` executions one after another (plus one to warm the state
/// machine), answering every task message at once from a loop of its own.
async fn bare_round_trips(
    aws: &Aws,
    baseline: &Baseline,
    machine: &str,
    tasks: usize,
    runs: usize,
) -> Outcome<BareRun> {
    let received: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let answerer = tokio::spawn(answer_tasks(
        aws.clone(),
        baseline.queue_url.clone(),
        received.clone(),
        stop.clone(),
    ));

    let mut result = BareRun {
        execution: Vec::new(),
        round_trip: Vec::new(),
    };
    let mut failure = None;
    for run in 0..=runs {
        received.lock().unwrap().clear();
        let started = Instant::now();
        let ended = match run_execution(aws, machine).await {
            Ok(ended) => ended,
            Err(message) => {
                failure = Some(message);
                break;
            }
        };
        let times = received.lock().unwrap().clone();
        if times.len() != tasks {
            failure = Some(format!(
                "expected {tasks} task messages in one execution, saw {}",
                times.len()
            ));
            break;
        }
        if run == 0 {
            continue;
        }
        result.execution.push(ms(ended - started));
        result.round_trip.extend(times.windows(2).map(|w| ms(w[1] - w[0])));
    }
    stop.store(true, Ordering::Relaxed);
    let _ = answerer.await;
    match failure {
        Some(message) => Err(message),
        None => Ok(result),
    }
}

/// The bare worker: receive, SendTaskSuccess at once, delete.
async fn answer_tasks(aws: Aws, queue_url: String, received: Arc<Mutex<Vec<Instant>>>, stop: Arc<AtomicBool>) {
    let deadline = Instant::now() + Duration::from_secs(1_800);
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let Ok(out) = aws
            .sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
        else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        for message in out.messages.unwrap_or_default() {
            received.lock().unwrap().push(Instant::now());
            let body: Value = serde_json::from_str(message.body().unwrap_or("{}")).unwrap_or_default();
            let token = body["token"].as_str().unwrap_or_default();
            let _ = aws.sfn.send_task_success().task_token(token).output("{}").send().await;
            if let Some(receipt) = message.receipt_handle() {
                let _ = aws
                    .sqs
                    .delete_message()
                    .queue_url(&queue_url)
                    .receipt_handle(receipt)
                    .send()
                    .await;
            }
        }
    }
}

/// Starts one execution and polls it to SUCCEEDED; returns when that was seen.
async fn run_execution(aws: &Aws, machine: &str) -> Outcome<Instant> {
    let arn = aws
        .sfn
        .start_execution()
        .state_machine_arn(machine)
        .input("{}")
        .send()
        .await
        .map_err(failed("StartExecution"))?
        .execution_arn;
    let started = Instant::now();
    while started.elapsed() < RUN_TIMEOUT {
        let out = aws
            .sfn
            .describe_execution()
            .execution_arn(&arn)
            .send()
            .await
            .map_err(failed("DescribeExecution"))?;
        match out.status {
            ExecutionStatus::Succeeded => return Ok(Instant::now()),
            ExecutionStatus::Running => tokio::time::sleep(POLL).await,
            other => return Err(format!("bare execution {arn} ended {other:?}: {:?}", out.cause)),
        }
    }
    Err(format!("bare execution {arn} still running after {RUN_TIMEOUT:?}"))
}

// ---------------------------------------------------------------------------
// Per step: the engine

/// What one series of engine jobs measured, per job.
struct EngineRun {
    /// Job message sent → job item SUCCEEDED.
    job: Vec<f64>,
    /// Job message sent → job item has its execution ARN (the dispatcher).
    admitted: Vec<f64>,
    /// One tool step's start → the next one's start (step items' `started_at`).
    cycle: Vec<f64>,
    /// Provider time of a tool step (`duration_ms`).
    provider: Vec<f64>,
}

async fn engine_jobs(aws: &Aws, deployment: &Deployment, runs: usize) -> Outcome<EngineRun> {
    let mut result = EngineRun {
        job: Vec::new(),
        admitted: Vec::new(),
        cycle: Vec::new(),
        provider: Vec::new(),
    };
    // The first job warms the worker's clients, caches and the state machine.
    for run in 0..=runs {
        let job_id = format!("{}-c{run:04}", deployment.prefix);
        let sent = Instant::now();
        send_jobs(aws, deployment, std::slice::from_ref(&job_id)).await?;
        let mut admitted = None;
        let done = loop {
            if sent.elapsed() > RUN_TIMEOUT {
                return Err(format!("job {job_id} not finished after {RUN_TIMEOUT:?}"));
            }
            if let Some(job) = job_item(aws, deployment, &job_id).await? {
                if admitted.is_none() && job.contains_key("execution_arn") {
                    admitted = Some(Instant::now());
                }
                match text(&job, "status").as_str() {
                    "SUCCEEDED" => break Instant::now(),
                    "RUNNING" | "" => {}
                    other => {
                        return Err(format!(
                            "job {job_id} ended {other}: {} {} (step {})",
                            text(&job, "error"),
                            text(&job, "cause"),
                            text(&job, "failed_step")
                        ));
                    }
                }
            }
            tokio::time::sleep(POLL).await;
        };
        if run == 0 {
            continue;
        }
        result.job.push(ms(done - sent));
        result.admitted.push(ms(admitted.unwrap_or(done) - sent));
        let steps = step_items(aws, deployment, &job_id).await?;
        let mut starts = Vec::new();
        for name in TOOL_STEPS {
            let step = steps
                .iter()
                .find(|s| text(s, "SK") == format!("STEP#{name}"))
                .ok_or_else(|| format!("job {job_id} has no item for step {name}"))?;
            let started = chrono::DateTime::parse_from_rfc3339(&text(step, "started_at"))
                .map_err(|e| format!("step {name} of {job_id}: started_at: {e}"))?;
            starts.push(started);
            let duration: f64 = number(step, "duration_ms").ok_or_else(|| format!("step {name} has no duration_ms"))?;
            result.provider.push(duration);
        }
        result.cycle.extend(
            starts
                .windows(2)
                .map(|w| (w[1] - w[0]).num_microseconds().unwrap_or(0) as f64 / 1e3),
        );
    }
    Ok(result)
}

async fn send_jobs(aws: &Aws, deployment: &Deployment, job_ids: &[String]) -> Outcome<()> {
    for chunk in job_ids.chunks(10) {
        let entries = chunk.iter().enumerate().map(|(i, job_id)| {
            let body = json!({"workflow": WORKFLOW, "input": {}, "job_id": job_id}).to_string();
            aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(body)
                .build()
                .expect("id and body are set")
        });
        let out = aws
            .sqs
            .send_message_batch()
            .queue_url(&deployment.jobs_queue)
            .set_entries(Some(entries.collect()))
            .send()
            .await
            .map_err(failed("SendMessageBatch"))?;
        if !out.failed.is_empty() {
            return Err(format!("job messages refused: {:?}", out.failed));
        }
    }
    Ok(())
}

type Item = std::collections::HashMap<String, AttributeValue>;

async fn job_item(aws: &Aws, deployment: &Deployment, job_id: &str) -> Outcome<Option<Item>> {
    let out = aws
        .ddb
        .get_item()
        .table_name(&deployment.table)
        .key("PK", AttributeValue::S(format!("JOB#{job_id}")))
        .key("SK", AttributeValue::S("JOB".into()))
        .consistent_read(true)
        .send()
        .await
        .map_err(failed("GetItem"))?;
    Ok(out.item)
}

async fn step_items(aws: &Aws, deployment: &Deployment, job_id: &str) -> Outcome<Vec<Item>> {
    let out = aws
        .ddb
        .query()
        .table_name(&deployment.table)
        .key_condition_expression("PK = :pk AND begins_with(SK, :step)")
        .expression_attribute_values(":pk", AttributeValue::S(format!("JOB#{job_id}")))
        .expression_attribute_values(":step", AttributeValue::S("STEP#".into()))
        .consistent_read(true)
        .send()
        .await
        .map_err(failed("Query"))?;
    Ok(out.items.unwrap_or_default())
}

fn text(item: &Item, name: &str) -> String {
    item.get(name).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
}

fn number(item: &Item, name: &str) -> Option<f64> {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok())
}

// ---------------------------------------------------------------------------
// Admission

/// A series of admissions: how many, and how long from the first send (or
/// call) until the last was in.
struct Rate {
    count: usize,
    seconds: f64,
}

impl Rate {
    fn per_second(&self) -> f64 {
        self.count as f64 / self.seconds.max(1e-9)
    }
}

/// StartExecution on the Pass machine, `count` times, `concurrency` at once.
async fn start_executions(aws: &Aws, machine: &str, input: &str, count: usize, concurrency: usize) -> Outcome<Rate> {
    let next = Arc::new(AtomicUsize::new(0));
    let tag = fastrand::u32(..);
    let started = Instant::now();
    let mut loops: tokio::task::JoinSet<Outcome<()>> = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (aws, machine, input, next) = (aws.clone(), machine.to_owned(), input.to_owned(), next.clone());
        loops.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    return Ok(());
                }
                aws.sfn
                    .start_execution()
                    .state_machine_arn(&machine)
                    .name(format!("s{tag:08x}-{concurrency}-{n}"))
                    .input(&input)
                    .send()
                    .await
                    .map_err(failed("StartExecution"))?;
            }
        });
    }
    while let Some(joined) = loops.join_next().await {
        joined.map_err(|e| format!("a StartExecution loop panicked: {e}"))??;
    }
    Ok(Rate {
        count,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// What the dispatcher's series measured.
struct Admission {
    rate: Rate,
    /// Jobs per second over the first and the last quarter of the series.
    first_quarter: f64,
    last_quarter: f64,
}

/// Sends `count` job messages (after one to wake the dispatcher) and waits
/// until every job item carries its execution ARN. The end is read from the
/// job items' `updated_at` (written with the ARN), so the slow poll that
/// waits for them adds no load to the measured span.
async fn admit_jobs(aws: &Aws, deployment: &Deployment, count: usize) -> Outcome<Admission> {
    let warm = format!("{}-awarm", deployment.prefix);
    send_jobs(aws, deployment, std::slice::from_ref(&warm)).await?;
    let started = Instant::now();
    while admitted(aws, deployment, "-awarm").await?.is_empty() {
        if started.elapsed() > RUN_TIMEOUT {
            return Err("the dispatcher did not admit the warm-up job".into());
        }
        tokio::time::sleep(POLL).await;
    }

    let ids: Vec<String> = (0..count).map(|n| format!("{}-a{n:05}", deployment.prefix)).collect();
    let sent = chrono::Utc::now();
    let started = Instant::now();
    send_jobs(aws, deployment, &ids).await?;
    let mut times = Vec::new();
    while times.len() < count {
        if started.elapsed() > ADMIT_TIMEOUT {
            return Err(format!(
                "{} of {count} jobs admitted after {ADMIT_TIMEOUT:?}",
                times.len()
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        times = admitted(aws, deployment, "-a0").await?;
    }
    let mut offsets: Vec<f64> = times
        .iter()
        .map(|t| (*t - sent).num_microseconds().unwrap_or(0) as f64 / 1e6)
        .collect();
    offsets.sort_by(f64::total_cmp);
    let quarter = (count / 4).max(1);
    let last = offsets[count - 1];
    let before_last_quarter = if count > quarter {
        offsets[count - quarter - 1]
    } else {
        0.0
    };
    Ok(Admission {
        rate: Rate { count, seconds: last },
        first_quarter: quarter as f64 / offsets[quarter - 1].max(1e-9),
        last_quarter: quarter as f64 / (last - before_last_quarter).max(1e-9),
    })
}

/// When each job of this deployment whose id starts with `<prefix><infix>`
/// got its execution ARN (the job item's `updated_at`).
async fn admitted(aws: &Aws, deployment: &Deployment, infix: &str) -> Outcome<Vec<chrono::DateTime<chrono::Utc>>> {
    let mut times = Vec::new();
    let mut start = None;
    for _ in 0..1_000 {
        let out = aws
            .ddb
            .scan()
            .table_name(&deployment.table)
            .filter_expression("begins_with(PK, :pk) AND SK = :job AND attribute_exists(execution_arn)")
            .expression_attribute_values(":pk", AttributeValue::S(format!("JOB#{}{infix}", deployment.prefix)))
            .expression_attribute_values(":job", AttributeValue::S("JOB".into()))
            .projection_expression("updated_at")
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(failed("Scan"))?;
        for item in out.items.unwrap_or_default() {
            let at = chrono::DateTime::parse_from_rfc3339(&text(&item, "updated_at"))
                .map_err(|e| format!("a job item's updated_at: {e}"))?;
            times.push(at.with_timezone(&chrono::Utc));
        }
        start = out.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    Ok(times)
}

/// Stops the executions the admission series left waiting at their first task.
async fn stop_running(aws: &Aws, deployment: &Deployment) {
    let Some(machine) = deployment.machine_arn(aws).await else {
        return;
    };
    let mut token = None;
    for _ in 0..100 {
        let Ok(out) = aws
            .sfn
            .list_executions()
            .state_machine_arn(&machine)
            .status_filter(ExecutionStatus::Running)
            .set_next_token(token)
            .send()
            .await
        else {
            return;
        };
        for execution in out.executions {
            let _ = aws
                .sfn
                .stop_execution()
                .execution_arn(execution.execution_arn)
                .send()
                .await;
        }
        token = out.next_token;
        if token.is_none() {
            return;
        }
    }
}

// ---------------------------------------------------------------------------
// Resources: SDK clients, the bare state machines, the deployment

#[derive(Clone)]
struct Aws {
    sqs: aws_sdk_sqs::Client,
    sfn: aws_sdk_sfn::Client,
    ddb: aws_sdk_dynamodb::Client,
}

impl Aws {
    async fn new() -> Self {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(LOCALSTACK)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "test", "test", None, None, "bench",
            ))
            .load()
            .await;
        Aws {
            sqs: aws_sdk_sqs::Client::new(&config),
            sfn: aws_sdk_sfn::Client::new(&config),
            ddb: aws_sdk_dynamodb::Client::new(&config),
        }
    }
}

/// The bare side: one queue, and state machines of 1 and `TASKS` Task states
/// and of one Pass state.
struct Baseline {
    prefix: String,
    queue_url: String,
    one_task: String,
    chain: String,
    pass: String,
}

impl Baseline {
    fn new(prefix: &str) -> Self {
        Baseline {
            prefix: prefix.to_owned(),
            queue_url: String::new(),
            one_task: String::new(),
            chain: String::new(),
            pass: String::new(),
        }
    }

    async fn create(&mut self, aws: &Aws) -> Outcome<()> {
        self.queue_url = aws
            .sqs
            .create_queue()
            .queue_name(format!("{}-baseline", self.prefix))
            .send()
            .await
            .map_err(failed("CreateQueue"))?
            .queue_url
            .unwrap_or_default();
        self.one_task = self.machine(aws, "task1", tasks_asl(&self.queue_url, 1)).await?;
        self.chain = self.machine(aws, "chain", tasks_asl(&self.queue_url, TASKS)).await?;
        let pass = json!({"StartAt": "Pass", "States": {"Pass": {"Type": "Pass", "End": true}}});
        self.pass = self.machine(aws, "pass", pass).await?;
        Ok(())
    }

    async fn machine(&self, aws: &Aws, name: &str, asl: Value) -> Outcome<String> {
        Ok(aws
            .sfn
            .create_state_machine()
            .name(format!("{}-baseline-{name}", self.prefix))
            .definition(asl.to_string())
            .role_arn(ROLE)
            .send()
            .await
            .map_err(failed("CreateStateMachine"))?
            .state_machine_arn)
    }

    async fn delete(&self, aws: &Aws) {
        for machine in [&self.one_task, &self.chain, &self.pass] {
            if !machine.is_empty() {
                let _ = aws.sfn.delete_state_machine().state_machine_arn(machine).send().await;
            }
        }
        if !self.queue_url.is_empty() {
            let _ = aws.sqs.delete_queue().queue_url(&self.queue_url).send().await;
        }
    }
}

/// Task states on `sqs:sendMessage.waitForTaskToken` one after another.
fn tasks_asl(queue_url: &str, tasks: usize) -> Value {
    let mut states = serde_json::Map::new();
    for n in 0..tasks {
        let mut state = json!({
            "Type": "Task",
            "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            "Parameters": {"QueueUrl": queue_url, "MessageBody": {"token.$": "$$.Task.Token", "task": n}},
        });
        if n + 1 < tasks {
            state["Next"] = json!(format!("T{}", n + 1));
        } else {
            state["End"] = json!(true);
        }
        states.insert(format!("T{n}"), state);
    }
    json!({"StartAt": "T0", "States": states})
}

/// The engine side: `bench-chain` deployed under the prefix, and the worker
/// processes (stopped when dropped).
struct Deployment {
    prefix: String,
    table: String,
    jobs_queue: String,
    deployed: bool,
    workers: Vec<(String, Child)>,
}

impl Deployment {
    fn new(prefix: &str) -> Self {
        Deployment {
            prefix: prefix.to_owned(),
            table: garden_workflows::target::table_name(prefix),
            jobs_queue: String::new(),
            deployed: false,
            workers: Vec::new(),
        }
    }

    fn deploy(&mut self) -> Outcome<()> {
        self.deployed = true;
        let definition = repo().join("benches/definitions/bench-chain.yaml");
        let out = self
            .garden()
            .args(["deploy", "--task-visibility", "30"])
            .arg(definition)
            .output()
            .map_err(|e| format!("garden deploy: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "garden deploy failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }

    fn start_worker(&mut self, name: &str, args: &[&str]) -> Outcome<()> {
        std::fs::create_dir_all(self.log_dir()).map_err(|e| format!("log folder: {e}"))?;
        let log = std::fs::File::create(self.log_dir().join(format!("{name}.log"))).map_err(|e| format!("log: {e}"))?;
        let child = self
            .garden()
            .arg("worker")
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("garden worker: {e}"))?;
        self.workers.push((name.to_owned(), child));
        Ok(())
    }

    fn stop_worker(&mut self, name: &str) {
        let mut kept = Vec::new();
        for (worker, mut child) in self.workers.drain(..) {
            if worker == name {
                let _ = child.kill();
                let _ = child.wait();
            } else {
                kept.push((worker, child));
            }
        }
        self.workers = kept;
    }

    fn stop_workers(&mut self) {
        for (_, mut child) in self.workers.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn destroy(&mut self) {
        if self.deployed && std::env::var_os("GARDEN_KEEP_DEPLOYMENTS").is_none() {
            match self.garden().arg("destroy").output() {
                Ok(out) if out.status.success() => {}
                Ok(out) => eprintln!("garden destroy failed:\n{}", String::from_utf8_lossy(&out.stderr)),
                Err(e) => eprintln!("garden destroy: {e}"),
            }
            self.deployed = false;
        }
    }

    async fn machine_arn(&self, aws: &Aws) -> Option<String> {
        let out = aws
            .ddb
            .get_item()
            .table_name(&self.table)
            .key("PK", AttributeValue::S(format!("WORKFLOW#{WORKFLOW}")))
            .key("SK", AttributeValue::S("WORKFLOW".into()))
            .send()
            .await
            .ok()?;
        Some(text(&out.item?, "state_machine_arn")).filter(|arn| !arn.is_empty())
    }

    fn log_dir(&self) -> PathBuf {
        std::env::temp_dir().join(format!("{}-logs", self.prefix))
    }

    /// `garden` with the local stack's environment, run from the repository.
    fn garden(&self) -> Command {
        let mut cmd = Command::new(garden_bin());
        cmd.current_dir(repo())
            .env("GARDEN_PREFIX", &self.prefix)
            .env("AWS_ENDPOINT_URL", LOCALSTACK)
            .env("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", STANDIN)
            .env("AWS_ENDPOINT_URL_BEDROCK_AGENTCORE", STANDIN)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("GARDEN_GATEWAY_URL_FINANCE", TOOLS)
            .env_remove("GARDEN_LOG");
        cmd
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        self.stop_workers();
        self.destroy();
    }
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn garden_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_garden"))
}

/// Runs `localstack/up.sh` unless LocalStack and the tool server answer.
fn stack_up() -> Outcome<()> {
    let up = |port: u16| {
        std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).is_ok()
    };
    if up(4566) && up(4620) {
        return Ok(());
    }
    let status = Command::new("bash")
        .arg(repo().join("localstack/up.sh"))
        .status()
        .map_err(|e| format!("localstack/up.sh: {e}"))?;
    if !status.success() {
        return Err("localstack/up.sh failed: see localstack/.run/*.log".into());
    }
    Ok(())
}

fn failed<E: std::error::Error>(call: &'static str) -> impl FnOnce(E) -> String {
    move |e| format!("{call}: {}", DisplayErrorContext(&e))
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

// ---------------------------------------------------------------------------
// Report

struct Figures {
    jobs: usize,
    admit: usize,
    bare_one: BareRun,
    bare_chain: BareRun,
    engine: EngineRun,
    start_seq: Rate,
    start_par: Rate,
    admission: Admission,
    start_workflow: Rate,
}

impl Figures {
    fn print(&self) {
        let tasks = TASKS as f64;
        let round_trip = median(&self.bare_chain.round_trip);
        let bare_per_task = median(&self.bare_chain.execution) / tasks;
        let engine_job = median(&self.engine.job);
        let engine_per_step = engine_job / tasks;
        let cycle = median(&self.engine.cycle);
        let provider = median(&self.engine.provider);

        println!("\nper step ({} runs each, medians and p90 in ms)", self.jobs);
        row("bare execution, 1 task (start → SUCCEEDED)", &self.bare_one.execution);
        row(&format!("bare execution, {TASKS} tasks"), &self.bare_chain.execution);
        row(
            "bare round trip per task (message → next message)",
            &self.bare_chain.round_trip,
        );
        row("engine job (message sent → job SUCCEEDED)", &self.engine.job);
        row("engine admission (message sent → execution ARN)", &self.engine.admitted);
        row("engine step cycle (step start → next step start)", &self.engine.cycle);
        row(
            "engine provider time per tool step (duration_ms)",
            &self.engine.provider,
        );

        println!("\nadmission ({} each)", self.admit);
        rate("bare StartExecution, sequential", &self.start_seq);
        rate("bare StartExecution, 4 at once", &self.start_par);
        rate(
            "dispatcher (garden worker --only jobs, 4 at once)",
            &self.admission.rate,
        );
        println!(
            "  {:<52} {:>8.1}/s first quarter, {:.1}/s last quarter",
            "dispatcher, by quarter of the series", self.admission.first_quarter, self.admission.last_quarter
        );

        println!("\nsummary");
        println!("{:<58} {:>10}", "figure", "value");
        let line = |name: &str, value: String| println!("{name:<58} {value:>10}");
        line("bare round trip per task, median", format!("{round_trip:.1} ms"));
        line(
            &format!("bare {TASKS}-task execution / {TASKS}, median"),
            format!("{bare_per_task:.1} ms"),
        );
        line(
            &format!("engine per step = job / {TASKS} tasks, median"),
            format!("{engine_per_step:.1} ms"),
        );
        line(
            "overhead per step = engine per step - bare round trip",
            format!("{:.1} ms", engine_per_step - round_trip),
        );
        line(
            "ratio engine per step / bare round trip",
            format!("{:.2}x", engine_per_step / round_trip),
        );
        line(
            &format!("ratio engine per step / bare {TASKS}-task execution per task"),
            format!("{:.2}x", engine_per_step / bare_per_task),
        );
        line(
            "engine step cycle - bare round trip",
            format!("{:.1} ms", cycle - round_trip),
        );
        line(
            "  of which provider call (tool duration_ms)",
            format!("{provider:.1} ms"),
        );
        line(
            "  of which worker, DynamoDB and queue overhead",
            format!("{:.1} ms", cycle - round_trip - provider),
        );
        line(
            "bare StartExecution, sequential",
            format!("{:.1}/s", self.start_seq.per_second()),
        );
        line(
            "bare StartExecution, 4 at once",
            format!("{:.1}/s", self.start_par.per_second()),
        );
        line(
            "bare StartExecution on bench-chain's machine, 4 at once",
            format!("{:.1}/s", self.start_workflow.per_second()),
        );
        line(
            "dispatcher admission",
            format!("{:.1}/s", self.admission.rate.per_second()),
        );
        line(
            "ratio dispatcher / bare sequential",
            format!("{:.2}x", self.admission.rate.per_second() / self.start_seq.per_second()),
        );
        line(
            "ratio dispatcher / bare 4 at once on bench-chain's machine",
            format!(
                "{:.2}x",
                self.admission.rate.per_second() / self.start_workflow.per_second()
            ),
        );
        line(
            "ratio dispatcher / bare 4 at once",
            format!("{:.2}x", self.admission.rate.per_second() / self.start_par.per_second()),
        );
    }
}

fn row(name: &str, values: &[f64]) {
    println!(
        "  {name:<52} median {:>8.1}  p90 {:>8.1}  (n={})",
        median(values),
        percentile(values, 0.9),
        values.len()
    );
}

fn rate(name: &str, rate: &Rate) {
    println!(
        "  {name:<52} {:>8.1}/s  ({} in {:.2} s)",
        rate.per_second(),
        rate.count,
        rate.seconds
    );
}

fn median(values: &[f64]) -> f64 {
    percentile(values, 0.5)
}

/// The nearest-rank percentile; NaN for no values.
fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}
