//! Settings of the workers, read from the environment (and flags of
//! `garden worker`), and the [`Context`] the handlers share: AWS clients and
//! caches.
//!
//! Endpoints are never chosen here: the AWS SDK reads `AWS_ENDPOINT_URL` and its
//! per-service forms, so LocalStack and the local stand-ins are a matter of
//! configuration alone.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use garden_workflows::target;
use garden_workflows::wire::TaskKind;

use crate::error::WorkerError;
use crate::providers::{agent, tool};
use crate::store::Registry;

/// A queue the workers consume: the jobs queue or one step kind's task queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QueueKind {
    Jobs,
    Task(TaskKind),
}

impl QueueKind {
    pub const ALL: [QueueKind; 6] = [
        QueueKind::Jobs,
        QueueKind::Task(TaskKind::Model),
        QueueKind::Task(TaskKind::Tool),
        QueueKind::Task(TaskKind::Agent),
        QueueKind::Task(TaskKind::Approval),
        QueueKind::Task(TaskKind::Control),
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            QueueKind::Jobs => "jobs",
            QueueKind::Task(kind) => kind.as_str(),
        }
    }

    /// The queue's name for a resource prefix (`garden-jobs`, `garden-model`, ...).
    pub fn queue_name(self, prefix: &str) -> String {
        match self {
            QueueKind::Jobs => target::jobs_queue_name(prefix),
            QueueKind::Task(kind) => target::task_queue_name(prefix, kind),
        }
    }

    /// How many messages of this kind one local worker handles at once by
    /// default: Bedrock and agent sessions are quota-bound, tools are cheap.
    pub fn default_concurrency(self) -> usize {
        match self {
            QueueKind::Jobs => 4,
            QueueKind::Task(TaskKind::Model) => 4,
            QueueKind::Task(TaskKind::Tool) => 8,
            QueueKind::Task(TaskKind::Agent) => 4,
            QueueKind::Task(TaskKind::Approval) => 2,
            QueueKind::Task(TaskKind::Control) => 4,
        }
    }
}

impl fmt::Display for QueueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for QueueKind {
    type Err = WorkerError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        QueueKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s.trim())
            .ok_or_else(|| WorkerError::UnknownKind(s.to_owned()))
    }
}

/// What the workers need to know besides the AWS endpoints.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Prefix of every resource name (`GARDEN_PREFIX`, default `garden`).
    pub prefix: String,
    /// The DynamoDB table (`GARDEN_TABLE`, default derived from the prefix).
    pub table: String,
    /// Messages handled at once per queue (`GARDEN_CONCURRENCY_<KIND>`).
    pub concurrency: BTreeMap<QueueKind, usize>,
    /// The queues this worker consumes; all when empty.
    pub only: Vec<QueueKind>,
    /// Visibility timeout given to received messages and renewed while a step
    /// runs (`GARDEN_VISIBILITY_TIMEOUT`, seconds).
    pub visibility_timeout_secs: i32,
    /// Long-poll wait of the local loop (seconds, 1-20).
    pub wait_time_secs: i32,
    /// How long a shutdown waits for in-flight messages before releasing them.
    pub grace: Duration,
    /// How long a workflow registry item is cached.
    pub registry_ttl: Duration,
    /// Default seconds between heartbeats when a step does not set its own.
    pub heartbeat_secs: u64,
    /// Bring a message's visibility down to `visibility_timeout_secs` as its
    /// step starts. A Lambda event source mapping receives with the queue's
    /// visibility, at least the function timeout (up to 15 minutes): without
    /// this, a function that dies before its first heartbeat leaves the step
    /// invisible that long, past most heartbeat timeouts. The local loop
    /// receives with ours already.
    pub visibility_at_start: bool,
    /// Deliveries of a message before SQS moves it to the dead-letter queue
    /// (`GARDEN_MAX_RECEIVES`, the queues' `maxReceiveCount`): a task that
    /// fails on its last one fails its step instead, so that the job hears.
    pub max_receives: u32,
}

/// The `maxReceiveCount` that `garden deploy` gives every queue.
pub const DEFAULT_MAX_RECEIVES: u32 = 5;

impl Default for Settings {
    fn default() -> Self {
        let prefix = target::DEFAULT_PREFIX.to_owned();
        Settings {
            table: target::table_name(&prefix),
            prefix,
            concurrency: QueueKind::ALL
                .into_iter()
                .map(|k| (k, k.default_concurrency()))
                .collect(),
            only: Vec::new(),
            visibility_timeout_secs: 20,
            wait_time_secs: 10,
            grace: Duration::from_secs(30),
            registry_ttl: Duration::from_secs(30),
            heartbeat_secs: 20,
            visibility_at_start: false,
            max_receives: DEFAULT_MAX_RECEIVES,
        }
    }
}

impl Settings {
    /// Settings from `GARDEN_*` variables, defaults for the rest.
    pub fn from_env() -> Result<Self, WorkerError> {
        let mut settings = Settings::default();
        if let Some(prefix) = env("GARDEN_PREFIX") {
            settings.table = target::table_name(&prefix);
            settings.prefix = prefix;
        }
        if let Some(table) = env("GARDEN_TABLE") {
            settings.table = table;
        }
        for kind in QueueKind::ALL {
            let name = format!("GARDEN_CONCURRENCY_{}", kind.as_str().to_uppercase());
            if let Some(n) = parse_env::<usize>(&name)? {
                settings.concurrency.insert(kind, n.max(1));
            }
        }
        if let Some(only) = env("GARDEN_ONLY") {
            settings.only = only.split(',').map(str::parse).collect::<Result<_, _>>()?;
        }
        if let Some(secs) = parse_env::<i32>("GARDEN_VISIBILITY_TIMEOUT")? {
            settings.visibility_timeout_secs = secs.clamp(10, 43_200);
        }
        if let Some(receives) = parse_env::<u32>("GARDEN_MAX_RECEIVES")? {
            settings.max_receives = receives.max(1);
        }
        if let Some(secs) = parse_env::<u64>("GARDEN_SHUTDOWN_GRACE")? {
            settings.grace = Duration::from_secs(secs);
        }
        Ok(settings)
    }

    /// The queues to consume, in a stable order.
    pub fn queues(&self) -> Vec<QueueKind> {
        QueueKind::ALL
            .into_iter()
            .filter(|kind| self.only.is_empty() || self.only.contains(kind))
            .collect()
    }

    pub fn concurrency_of(&self, kind: QueueKind) -> usize {
        self.concurrency
            .get(&kind)
            .copied()
            .unwrap_or(kind.default_concurrency())
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn parse_env<T: FromStr>(name: &str) -> Result<Option<T>, WorkerError> {
    env(name)
        .map(|raw| {
            raw.trim().parse().map_err(|_| WorkerError::Setting {
                name: name.to_owned(),
                message: format!("`{raw}` is not a number"),
            })
        })
        .transpose()
}

/// The AWS clients the handlers use.
#[derive(Debug, Clone)]
pub struct Clients {
    pub sqs: aws_sdk_sqs::Client,
    pub sfn: aws_sdk_sfn::Client,
    pub ddb: aws_sdk_dynamodb::Client,
    pub bedrock: aws_sdk_bedrockruntime::Client,
    pub agentcore: aws_sdk_bedrockagentcore::Client,
    /// The worker's credentials and region, for gateways that want SigV4.
    pub signing: Option<tool::Signing>,
}

impl Clients {
    /// Clients from the usual AWS configuration chain. The provider clients
    /// make one attempt per call: the step's retry policy is the single source
    /// of retries, so attempts are counted honestly (and a bare 500 never runs
    /// an agent three times).
    pub fn from_sdk_config(sdk: &aws_config::SdkConfig) -> Self {
        let once = RetryConfig::standard().with_max_attempts(1);
        Clients {
            sqs: aws_sdk_sqs::Client::new(sdk),
            sfn: aws_sdk_sfn::Client::new(sdk),
            ddb: aws_sdk_dynamodb::Client::new(sdk),
            bedrock: aws_sdk_bedrockruntime::Client::from_conf(
                aws_sdk_bedrockruntime::config::Builder::from(sdk)
                    .retry_config(once.clone())
                    .build(),
            ),
            agentcore: aws_sdk_bedrockagentcore::Client::from_conf(
                aws_sdk_bedrockagentcore::config::Builder::from(sdk)
                    .retry_config(once)
                    .build(),
            ),
            signing: match (sdk.credentials_provider(), sdk.region()) {
                (Some(credentials), Some(region)) => Some(tool::Signing {
                    credentials,
                    region: region.to_string(),
                }),
                _ => None,
            },
        }
    }

    pub async fn from_env() -> Self {
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self::from_sdk_config(&sdk)
    }
}

/// Everything a handler needs: settings, clients and the caches that outlive
/// one message (workflow registry, MCP sessions, OAuth tokens, queue URLs,
/// the outputs the items of a fan-out read).
pub struct Context {
    pub settings: Settings,
    pub clients: Clients,
    pub http: reqwest::Client,
    pub(crate) registry: Registry,
    pub(crate) gateways: tool::Gateways,
    pub(crate) runtimes: agent::Runtimes,
    pub(crate) outputs: crate::render::OutputCache,
    queue_urls: Mutex<HashMap<String, String>>,
}

impl Context {
    pub fn new(settings: Settings, clients: Clients) -> Self {
        let signing = clients.signing.clone();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Context {
            registry: Registry::new(settings.registry_ttl),
            settings,
            clients,
            gateways: tool::Gateways::new(http.clone()).with_signing(signing),
            runtimes: agent::Runtimes::default(),
            outputs: crate::render::OutputCache::default(),
            http,
            queue_urls: Mutex::new(HashMap::new()),
        }
    }

    pub async fn from_env(settings: Settings) -> Self {
        Self::new(settings, Clients::from_env().await)
    }

    /// Remembers a queue's URL, so that messages from it can be kept invisible
    /// while they run.
    pub fn know_queue(&self, name: &str, url: &str) {
        self.lock_queues().insert(name.to_owned(), url.to_owned());
    }

    /// The URL of the queue a message came from (its `eventSourceARN` ends
    /// with the queue name), asking SQS once per queue.
    pub async fn queue_url(&self, source_arn: &str) -> Option<String> {
        let name = source_arn.rsplit(':').next()?.to_owned();
        if let Some(url) = self.lock_queues().get(&name) {
            return Some(url.clone());
        }
        let url = self
            .clients
            .sqs
            .get_queue_url()
            .queue_name(&name)
            .send()
            .await
            .ok()?
            .queue_url?;
        self.know_queue(&name, &url);
        Some(url)
    }

    fn lock_queues(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.queue_urls.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
