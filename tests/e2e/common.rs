//! What the end-to-end tests share: the local stack (started with the
//! project's own script), a deployment under a prefix of its own per test, a
//! `garden worker` child process, and the `garden` command itself.
//!
//! Every test deploys under its own prefix, so tests run in parallel against
//! one LocalStack without seeing each other's queues, table or jobs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Held by the tests that time the engine (the DAGs) and by those that load
/// the stack most (the wide fan-outs), so that timings measure the engine and
/// not the other tests.
static HEAVY_OR_TIMED: Mutex<()> = Mutex::new(());

/// Runs the rest of the calling test without the other heavy or timed tests.
pub fn alone() -> MutexGuard<'static, ()> {
    HEAVY_OR_TIMED.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub const LOCALSTACK: &str = "http://127.0.0.1:4566";
pub const STANDIN: &str = "http://127.0.0.1:4610";
pub const TOOLS: &str = "http://127.0.0.1:4620/mcp";

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn garden_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_garden"))
}

/// The stand-ins binary sits beside `garden` in the same target folder.
pub fn standins_bin() -> PathBuf {
    garden_bin().with_file_name("garden-standins")
}

/// Brings the local stack up once per test binary (the script is idempotent).
pub fn stack() {
    static UP: OnceLock<()> = OnceLock::new();
    UP.get_or_init(|| {
        assert!(
            standins_bin().exists(),
            "{} is missing: run `cargo build --workspace --bins` (tests/run.sh does)",
            standins_bin().display()
        );
        let status = Command::new("bash")
            .arg(repo().join("localstack/up.sh"))
            .env("GARDEN_STANDINS_BIN", standins_bin())
            .status()
            .expect("localstack/up.sh runs");
        assert!(status.success(), "localstack/up.sh failed: see localstack/.run/*.log");
    });
}

/// The environment of every process that talks to the local stack.
pub fn local_env(cmd: &mut Command) -> &mut Command {
    cmd.env("AWS_ENDPOINT_URL", LOCALSTACK)
        .env("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", STANDIN)
        .env("AWS_ENDPOINT_URL_BEDROCK_AGENTCORE", STANDIN)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("GARDEN_GATEWAY_URL_RESEARCH", TOOLS)
        .env("GARDEN_GATEWAY_URL_FINANCE", TOOLS)
        .env("GARDEN_GATEWAY_URL_SUPPORT", TOOLS)
        .env_remove("GARDEN_LOG")
}

/// One deployment of the example workflows under a prefix of its own.
pub struct Deployment {
    pub prefix: String,
    /// Extra environment for the workers (another stand-in, say).
    pub worker_env: Vec<(String, String)>,
    worker: Option<Child>,
}

impl Deployment {
    /// Deploys every definition in `definitions/` under a new prefix.
    pub fn new(tag: &str) -> Self {
        Self::with_files(tag, &[])
    }

    pub fn with_files(tag: &str, files: &[&Path]) -> Self {
        stack();
        let prefix = format!("e{tag}{:05x}", fastrand::u32(..0xf_ffff));
        let deployment = Deployment {
            prefix,
            worker_env: Vec::new(),
            worker: None,
        };
        let mut args = vec!["deploy", "--schedule-rules", "--task-visibility", "8"];
        let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        args.extend(files.iter().map(String::as_str));
        let out = deployment.garden(&args);
        assert!(out.status.success(), "garden deploy failed:\n{}", stderr(&out));
        deployment
    }

    /// Runs `garden ARGS` against this deployment and waits for it.
    pub fn garden(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(garden_bin());
        local_env(&mut cmd)
            .args(args)
            .current_dir(repo())
            .env("GARDEN_PREFIX", &self.prefix)
            .output()
            .expect("garden runs")
    }

    /// Starts `garden worker` for this deployment (stopped when dropped).
    pub fn start_worker(&mut self) {
        let log = std::fs::File::create(std::env::temp_dir().join(format!("{}-worker.log", self.prefix)))
            .expect("worker log file");
        let mut cmd = Command::new(garden_bin());
        local_env(&mut cmd)
            .arg("worker")
            .current_dir(repo())
            .env("GARDEN_PREFIX", &self.prefix)
            .envs(self.worker_env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log);
        self.worker = Some(cmd.spawn().expect("garden worker starts"));
    }

    /// Kills the worker with SIGKILL: no chance to release anything.
    pub fn kill_worker(&mut self) {
        if let Some(mut child) = self.worker.take() {
            child.kill().expect("SIGKILL the worker");
            child.wait().ok();
        }
    }

    pub fn worker_log(&self) -> String {
        std::fs::read_to_string(std::env::temp_dir().join(format!("{}-worker.log", self.prefix))).unwrap_or_default()
    }

    /// Submits a job and returns its id.
    pub fn submit(&self, workflow: &str, input: &Value) -> String {
        let input = input.to_string();
        let out = self.garden(&["submit", workflow, "--input", &input]);
        assert!(out.status.success(), "garden submit failed:\n{}", stderr(&out));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// `garden status JOB --json`, or `None` while the job is not recorded.
    pub fn status(&self, job_id: &str) -> Option<Value> {
        let out = self.garden(&["status", job_id, "--json"]);
        serde_json::from_slice(&out.stdout).ok()
    }

    /// Waits until the job is no longer RUNNING, and returns its status JSON.
    pub fn wait_done(&self, job_id: &str, timeout: Duration) -> Value {
        let started = Instant::now();
        loop {
            if let Some(status) = self.status(job_id)
                && status["job"]["status"] != "RUNNING"
            {
                return status;
            }
            assert!(
                started.elapsed() < timeout,
                "job {job_id} not finished after {timeout:?}; last status: {:?}\nworker log:\n{}",
                self.status(job_id),
                tail(&self.worker_log(), 40)
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Waits until a step of the job reaches the given status.
    pub fn wait_step(&self, job_id: &str, step: &str, wanted: &str, timeout: Duration) -> Value {
        let started = Instant::now();
        loop {
            if let Some(status) = self.status(job_id)
                && let Some(found) = step_of(&status, step)
                && found["status"] == wanted
            {
                return found.clone();
            }
            assert!(
                started.elapsed() < timeout,
                "step {step} of {job_id} not {wanted} after {timeout:?}; status: {:?}\nworker log:\n{}",
                self.status(job_id),
                tail(&self.worker_log(), 40)
            );
            std::thread::sleep(Duration::from_millis(400));
        }
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        if let Some(mut child) = self.worker.take() {
            child.kill().ok();
            child.wait().ok();
        }
        if std::env::var_os("GARDEN_KEEP_DEPLOYMENTS").is_none() {
            let _ = self.garden(&["destroy"]);
        }
    }
}

/// A step record of a `garden status --json` answer.
pub fn step_of<'v>(status: &'v Value, step: &str) -> Option<&'v Value> {
    status["steps"]
        .as_array()?
        .iter()
        .find(|s| s["step"] == step && s["item"].is_null())
}

/// All records of a step (one per item for a `for_each` step).
pub fn items_of<'v>(status: &'v Value, step: &str) -> Vec<&'v Value> {
    status["steps"]
        .as_array()
        .map(|steps| steps.iter().filter(|s| s["step"] == step).collect())
        .unwrap_or_default()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// AWS SDK configuration for the local stack, for tests that call AWS directly.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(LOCALSTACK)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .load()
        .await
}

/// A stand-in of our own on a free port, for a test that changes its
/// behaviour (throttling) or counts its calls.
pub struct OwnStandin {
    pub url: String,
    child: Child,
}

impl OwnStandin {
    pub fn start(extra: &[&str]) -> Self {
        let port = free_port();
        let child = Command::new(standins_bin())
            .args([
                "converse",
                "--port",
                &port.to_string(),
                "--agent-url",
                "http://127.0.0.1:4630",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("garden-standins starts");
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "stand-in on {port} did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        OwnStandin { url, child }
    }

    pub fn stats(&self) -> Value {
        http_get_json(&format!("{}/_standin/stats", self.url))
    }
}

impl Drop for OwnStandin {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A plain HTTP/1.1 GET on loopback, read to the end, body parsed as JSON.
pub fn http_get_json(url: &str) -> Value {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let mut stream = std::net::TcpStream::connect(host).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{url} answered no JSON ({e}): {response}"))
}

/// Runs a future to completion on a runtime of its own (the tests are sync).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(future)
}

impl Deployment {
    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&block_on(sdk_config()))
    }

    pub fn queue_url(&self, name: &str) -> String {
        block_on(self.sqs().get_queue_url().queue_name(name).send())
            .unwrap_or_else(|e| panic!("queue {name}: {e:?}"))
            .queue_url
            .unwrap()
    }

    /// Sends message bodies to the jobs queue as they are, ten at a time;
    /// returns the SQS message id of each.
    pub fn send_raw(&self, bodies: &[String]) -> Vec<String> {
        let url = self.queue_url(&format!("{}-jobs", self.prefix));
        let sqs = self.sqs();
        block_on(async {
            let mut ids = Vec::new();
            for chunk in bodies.chunks(10) {
                let entries = chunk.iter().enumerate().map(|(i, body)| {
                    aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .build()
                        .unwrap()
                });
                let out = sqs
                    .send_message_batch()
                    .queue_url(&url)
                    .set_entries(Some(entries.collect()))
                    .send()
                    .await
                    .expect("send_message_batch");
                assert!(out.failed.is_empty(), "messages refused: {:?}", out.failed);
                let mut sent = out.successful;
                sent.sort_by_key(|s| s.id.parse::<usize>().unwrap());
                ids.extend(sent.into_iter().map(|s| s.message_id));
            }
            ids
        })
    }

    /// Messages still on a queue, visible or in flight.
    pub fn queue_depth(&self, name: &str) -> u64 {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let url = self.queue_url(name);
        let attributes = block_on(
            self.sqs()
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(A::ApproximateNumberOfMessages)
                .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
                .send(),
        )
        .unwrap()
        .attributes
        .unwrap_or_default();
        [A::ApproximateNumberOfMessages, A::ApproximateNumberOfMessagesNotVisible]
            .iter()
            .map(|a| attributes.get(a).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0))
            .sum()
    }

    /// `garden jobs --json` with extra arguments.
    pub fn jobs(&self, args: &[&str]) -> Vec<Value> {
        let mut all = vec!["jobs", "--json", "--limit", "5000"];
        all.extend_from_slice(args);
        let out = self.garden(&all);
        assert!(out.status.success(), "garden jobs failed:\n{}", stderr(&out));
        serde_json::from_slice(&out.stdout).expect("garden jobs --json prints JSON")
    }

    /// Approves (or rejects) a step once it waits for approval.
    pub fn answer(&self, job_id: &str, step: &str, approve: bool) {
        self.wait_step(job_id, step, "WAITING_APPROVAL", Duration::from_secs(60));
        let mut args = vec!["approve", job_id, step, "--reason", "checked by the tests"];
        if !approve {
            args.push("--reject");
        }
        let out = self.garden(&args);
        assert!(out.status.success(), "garden approve failed:\n{}", stderr(&out));
    }
}

/// The job id the dispatcher gives a message (the same rule it uses).
pub fn job_id_of(body: &str, message_id: &str) -> String {
    let message: garden_workflows::wire::JobMessage = serde_json::from_str(body).expect("a job message");
    garden_workers::dispatcher::job_id(&message, message_id)
}

pub fn test_definition(name: &str) -> PathBuf {
    repo().join("tests/definitions").join(format!("{name}.yaml"))
}
