//! Join gates racing against LocalStack DynamoDB: the waiting step registers
//! after, during and before its last dependency finishes, with every finish
//! reported twice and every side trying to open the gate afterwards. Each
//! trial must open the gate exactly once, never before all dependencies
//! finished (or one failed), and count no dependency twice.
//!
//! Needs LocalStack on 127.0.0.1:4566 (`bash localstack/up.sh`). Each test
//! makes its own table and deletes it at the end.
//!
//! DynamoDB applies the writes to one item one after another. The local stack
//! serves DynamoDB from moto, which does not: two updates of one item that
//! arrive together can interleave, losing a decrement or letting a duplicate
//! pass its condition. So the racing sides reach LocalStack through
//! [`Serial`], a proxy that forwards one request at a time; which side gets
//! there first is still left to chance (the `during` test checks that both
//! sides win some trials).

use std::collections::BTreeSet;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType};
use futures::FutureExt;
use garden_workers::gate::{self, DepOutcome, GateKey, GateState, Opening};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream as AsyncTcpStream};

const TRIALS: usize = 50;
const DEPS: [&str; 3] = ["a", "b", "c"];

#[derive(Debug, Clone, Copy)]
enum Order {
    /// Every dependency finished before the gate registers.
    After,
    /// The gate registers while the last dependency finishes.
    During,
    /// The gate registers before the last dependency finishes.
    Before,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gate_registered_after_its_last_dependency_opens_once() {
    with_table(|ddb, table| async move { races(&ddb, &table, Order::After).await }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gate_registered_during_its_last_dependency_opens_once() {
    with_table(|ddb, table| async move { races(&ddb, &table, Order::During).await }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gate_registered_before_its_last_dependency_opens_once() {
    with_table(|ddb, table| async move { races(&ddb, &table, Order::Before).await }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_dependency_opens_the_gate_once_with_its_failure() {
    with_table(|ddb, table| async move { failures(&ddb, &table).await }).await;
}

/// One side of a trial: its write, then an attempt to open the gate.
#[derive(Clone)]
struct Trial {
    ddb: Client,
    table: String,
    key: GateKey,
    deps: Vec<String>,
    /// Who opened the gate (`register` or `finish`), and what they got.
    openings: Arc<std::sync::Mutex<Vec<(&'static str, Opening)>>>,
    saw_ready: Arc<AtomicUsize>,
}

impl Trial {
    fn new(ddb: &Client, table: &str, job: String) -> Self {
        Trial {
            ddb: ddb.clone(),
            table: table.to_owned(),
            key: GateKey::new(job, "join", None),
            deps: DEPS.iter().map(|d| (*d).to_owned()).collect(),
            openings: Arc::default(),
            saw_ready: Arc::default(),
        }
    }

    async fn register(self) -> GateState {
        jitter().await;
        let state = gate::register(&self.ddb, &self.table, &self.key, &self.deps, "token-1", 0)
            .await
            .expect("register");
        self.open("register", &state).await;
        state
    }

    async fn finish(self, dep: &'static str, outcome: DepOutcome) -> GateState {
        jitter().await;
        let state = gate::finish(&self.ddb, &self.table, &self.key, &self.deps, dep, &outcome)
            .await
            .expect("finish");
        self.open("finish", &state).await;
        state
    }

    /// Both sides try to open whatever their write returned; the state they
    /// saw only tells whether they were meant to.
    async fn open(&self, side: &'static str, state: &GateState) {
        if state.ready() {
            self.saw_ready.fetch_add(1, Ordering::SeqCst);
        }
        if let Some(opening) = gate::claim(&self.ddb, &self.table, &self.key).await.expect("claim") {
            self.openings.lock().unwrap().push((side, opening));
        }
    }

    async fn finish_all(&self, deps: &[&'static str]) {
        let runs = deps
            .iter()
            .flat_map(|dep| [*dep, *dep])
            .map(|dep| tokio::spawn(self.clone().finish(dep, DepOutcome::Ok)));
        for run in futures::future::join_all(runs).await {
            run.expect("finish task");
        }
    }

    fn opened(&self) -> Vec<(&'static str, Opening)> {
        self.openings.lock().unwrap().clone()
    }

    async fn stored(&self) -> GateState {
        gate::read(&self.ddb, &self.table, &self.key).await.expect("read")
    }
}

async fn races(ddb: &Client, table: &str, order: Order) {
    let all: BTreeSet<String> = DEPS.iter().map(|d| (*d).to_owned()).collect();
    let mut winners = std::collections::BTreeMap::<&str, usize>::new();
    for n in 0..TRIALS {
        let trial = Trial::new(ddb, table, format!("{order:?}-{n}"));
        match order {
            Order::After => {
                trial.finish_all(&DEPS).await;
                assert!(trial.opened().is_empty(), "opened before the gate registered");
                let state = trial.clone().register().await;
                assert!(
                    state.ready(),
                    "registering after the last finish must open the gate: {state:?}"
                );
            }
            Order::During => {
                trial.finish_all(&DEPS[..2]).await;
                let register = tokio::spawn(trial.clone().register());
                trial.finish_all(&DEPS[2..]).await;
                register.await.expect("register task");
            }
            Order::Before => {
                let state = trial.clone().register().await;
                assert!(
                    !state.ready() && trial.opened().is_empty(),
                    "opened with no dependency finished"
                );
                trial.finish_all(&DEPS[..2]).await;
                assert!(trial.opened().is_empty(), "opened before the last dependency finished");
                trial.finish_all(&DEPS[2..]).await;
            }
        }

        let opened = trial.opened();
        assert_eq!(
            opened.len(),
            1,
            "trial {n} ({order:?}) opened {} times; gate: {:?}",
            opened.len(),
            trial.stored().await
        );
        let (side, opening) = &opened[0];
        *winners.entry(side).or_default() += 1;
        assert_eq!(opening.token, "token-1");
        assert_eq!(opening.failed, None);
        assert_eq!(opening.state.done, all, "opened before every dependency finished");
        assert_eq!(opening.state.remaining, 0);
        assert!(
            trial.saw_ready.load(Ordering::SeqCst) >= 1,
            "no side was told to open the gate"
        );

        let stored = trial.stored().await;
        assert_eq!(stored.remaining, 0, "a duplicate finish was counted twice: {stored:?}");
        assert_eq!(stored.done, all);
        assert!(stored.opened && !stored.ready());
    }
    if let Order::During = order {
        // Both interleavings happened, so the race was real.
        assert!(winners.len() == 2, "only one side ever opened the gate: {winners:?}");
    }
}

async fn failures(ddb: &Client, table: &str) {
    let cause = r#"{"step":"b","message":"the tool broke"}"#;
    for n in 0..TRIALS {
        let trial = Trial::new(ddb, table, format!("failed-{n}"));
        let failed = || DepOutcome::Failed {
            error: "Garden.ToolError".into(),
            cause: cause.into(),
        };
        // `c` never finishes: the failure alone must open the gate.
        let runs = vec![
            tokio::spawn(trial.clone().register()),
            tokio::spawn(trial.clone().finish("a", DepOutcome::Ok)),
            tokio::spawn(trial.clone().finish("b", failed())),
            tokio::spawn(trial.clone().finish("b", failed())),
        ];
        for run in futures::future::join_all(runs).await {
            run.expect("trial task");
        }

        let opened = trial.opened();
        assert_eq!(opened.len(), 1, "failure trial {n} opened {} times", opened.len());
        let failure = opened[0].1.failed.clone().expect("the gate opens with the failure");
        assert_eq!(failure.dependency, "b");
        assert_eq!(failure.error, "Garden.ToolError");
        assert_eq!(failure.cause, cause);

        let stored = trial.stored().await;
        assert_eq!(stored.remaining, 1, "only `c` is left, counted once each: {stored:?}");
        assert_eq!(stored.done, ["a", "b"].iter().map(|d| (*d).to_owned()).collect());
        let late = trial.clone().finish("c", DepOutcome::Ok).await;
        assert!(
            !late.ready() && late.remaining == 0,
            "a late finish does not reopen: {late:?}"
        );
        assert_eq!(trial.opened().len(), 1);
    }
}

async fn jitter() {
    tokio::time::sleep(Duration::from_micros(fastrand::u64(0..3_000))).await;
}

async fn with_table<F, Fut>(body: F)
where
    F: FnOnce(Client, String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    assert!(
        TcpStream::connect(("127.0.0.1", 4566)).is_ok(),
        "LocalStack is not running on 127.0.0.1:4566: start it with `bash localstack/up.sh`"
    );
    let ddb = client(4566).await;
    let table = format!("garden-gate-test-{}", fastrand::u64(..));
    create_table(&ddb, &table).await;
    let serial = client(Serial::start().await).await;
    let outcome = std::panic::AssertUnwindSafe(body(serial, table.clone()))
        .catch_unwind()
        .await;
    let _ = ddb.delete_table().table_name(&table).send().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn client(port: u16) -> Client {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .load()
        .await;
    Client::new(&sdk)
}

/// An HTTP/1.1 proxy to LocalStack that forwards one request at a time, so
/// that every write is applied whole before the next one is looked at.
struct Serial;

impl Serial {
    /// Starts the proxy on a free loopback port and returns the port.
    async fn start() -> u16 {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("the proxy binds");
        let port = listener.local_addr().expect("the proxy has an address").port();
        let turn = Arc::new(tokio::sync::Mutex::new(()));
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let turn = turn.clone();
                tokio::spawn(async move {
                    let mut client = BufReader::new(client);
                    while let Some(request) = read_message(&mut client).await {
                        let response = {
                            let _turn = turn.lock().await;
                            forward(&request).await
                        };
                        if client.get_mut().write_all(&response).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        port
    }
}

async fn forward(request: &[u8]) -> Vec<u8> {
    let mut upstream = AsyncTcpStream::connect(("127.0.0.1", 4566))
        .await
        .expect("LocalStack accepts a connection");
    upstream
        .write_all(request)
        .await
        .expect("the request reaches LocalStack");
    read_message(&mut BufReader::new(upstream))
        .await
        .expect("LocalStack answers")
}

/// One HTTP/1.1 message (head and `Content-Length` body); `None` at the end
/// of the connection.
async fn read_message<R: tokio::io::AsyncRead + Unpin>(reader: &mut BufReader<R>) -> Option<Vec<u8>> {
    let mut message = Vec::new();
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(value) = lower.strip_prefix("content-length:") {
            length = value.trim().parse().expect("a numeric content length");
        }
        assert!(
            !lower.starts_with("transfer-encoding:"),
            "the test proxy reads Content-Length bodies only"
        );
        message.extend_from_slice(line.as_bytes());
        if line == "\r\n" {
            break;
        }
    }
    let start = message.len();
    message.resize(start + length, 0);
    reader.read_exact(&mut message[start..]).await.ok()?;
    Some(message)
}

async fn create_table(ddb: &Client, table: &str) {
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    };
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    ddb.create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("PK", KeyType::Hash))
        .key_schema(key("SK", KeyType::Range))
        .attribute_definitions(attr("PK"))
        .attribute_definitions(attr("SK"))
        .send()
        .await
        .expect("the table is created");
    ddb.wait_until_table_exists()
        .table_name(table)
        .wait(Duration::from_secs(30))
        .await
        .expect("the table becomes active");
}
