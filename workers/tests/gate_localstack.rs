//! Join gates racing against LocalStack DynamoDB: the waiting step registers
//! after, during and before its last dependency finishes, with every finish
//! reported twice and every side trying to open the gate afterwards. Each
//! trial must open the gate exactly once, never before all dependencies
//! finished (or one failed), and count no dependency twice. The worker side
//! ([`garden_workers::join`]) is raced the same way, its gate messages and
//! finished notices each delivered twice, with Step Functions replaced by a
//! recorder of the answers.
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

mod common;

use std::collections::BTreeSet;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsMessage;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use futures::FutureExt;
use garden_workers::gate::{self, DepOutcome, GateKey, GateState, Opening};
use garden_workers::{Clients, Context, Settings};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream as AsyncTcpStream};

use common::{create_table, sdk_config};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gate_opens_with_the_values_it_wants() {
    with_table(|ddb, table| async move { values(&ddb, &table).await }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn notices_delivered_twice_open_the_gate_once() {
    with_serial_table(|port, table| async move { notices(port, table).await }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_claim_left_by_a_crash_is_taken_over_once_stale() {
    with_table(|ddb, table| async move { crashed_claim(&ddb, &table).await }).await;
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

/// Every dependency reports its values twice, each time different, while
/// the gate registers: the opening returns the values of the wanted
/// dependencies only, those of the report that was counted.
async fn values(ddb: &Client, table: &str) {
    let deps: Vec<String> = DEPS.iter().map(|d| (*d).to_owned()).collect();
    let wanted = vec!["a".to_owned(), "c".to_owned()];
    for n in 0..TRIALS / 2 {
        let key = GateKey::new(format!("values-{n}"), "join", None);
        let openings: Openings = Arc::default();
        let mut runs = Vec::new();
        for (dep, report) in DEPS.iter().flat_map(|dep| [(*dep, 0), (*dep, 1)]) {
            let (ddb, table, key, deps, openings) = (
                ddb.clone(),
                table.to_owned(),
                key.clone(),
                deps.clone(),
                openings.clone(),
            );
            runs.push(tokio::spawn(async move {
                jitter().await;
                let values = serde_json::json!({ dep: {"trial": n, "report": report} });
                let values = values.as_object().expect("an object");
                let state = gate::finish_with_values(&ddb, &table, &key, &deps, dep, &DepOutcome::Ok, values)
                    .await
                    .expect("finish");
                open_wanting(&ddb, &table, &key, &state, &openings).await;
            }));
        }
        let (ddb2, table2, key2, deps2, wanted2, openings2) = (
            ddb.clone(),
            table.to_owned(),
            key.clone(),
            deps.clone(),
            wanted.clone(),
            openings.clone(),
        );
        runs.push(tokio::spawn(async move {
            jitter().await;
            let state = gate::register_wanting(&ddb2, &table2, &key2, &deps2, &wanted2, "token-1", 0)
                .await
                .expect("register");
            open_wanting(&ddb2, &table2, &key2, &state, &openings2).await;
        }));
        for run in futures::future::join_all(runs).await {
            run.expect("trial task");
        }

        let openings = openings.lock().unwrap().clone();
        assert_eq!(openings.len(), 1, "values trial {n} opened {} times", openings.len());
        let output = openings[0].state.output();
        assert_eq!(output["v"].as_object().map(|v| v.len()), Some(2), "{output}");
        let stored = gate::read(ddb, table, &key).await.expect("read");
        assert_eq!(stored.values.len(), 3, "every dependency's values are kept: {stored:?}");
        assert_eq!(stored.remaining, 0);
        for id in ["a", "c"] {
            assert_eq!(output["v"][id]["trial"], n, "{output}");
            let kept: serde_json::Value = serde_json::from_str(&stored.values[id]).expect("JSON values");
            assert_eq!(output["v"][id], kept, "the values counted with the dependency are sent");
        }
        // A late report is a duplicate: the values stay those sent.
        let late = serde_json::json!({"a": {"trial": n, "report": 2}});
        let late = gate::finish_with_values(ddb, table, &key, &deps, "a", &DepOutcome::Ok, late.as_object().unwrap())
            .await
            .expect("late finish");
        assert_eq!(late.values, stored.values);
    }
}

type Openings = Arc<std::sync::Mutex<Vec<Opening>>>;

/// Claims the gate when `state` says it is ready, keeping what was claimed.
async fn open_wanting(ddb: &Client, table: &str, key: &GateKey, state: &GateState, openings: &Openings) {
    if state.ready()
        && let Some(opening) = gate::claim(ddb, table, key).await.expect("claim")
    {
        openings.lock().unwrap().push(opening);
    }
}

/// The worker side: the gate message and every finished notice delivered
/// twice, in three orders; one answer per token, with the wanted values.
async fn notices(port: u16, table: String) {
    let answers = Answers::start().await;
    let mut clients = Clients::from_sdk_config(&sdk_config(port).await);
    clients.sfn = aws_sdk_sfn::Client::new(&sdk_config(answers.port).await);
    let settings = Settings {
        table: table.clone(),
        ..Settings::default()
    };
    let ctx = Arc::new(Context::new(settings, clients));
    let ddb = client(port).await;
    let deliver = |body: String| {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            jitter().await;
            let mut record = SqsMessage::default();
            record.message_id = Some(format!("m-{}", fastrand::u64(..)));
            record.body = Some(body);
            garden_workers::step::process(&ctx, &record)
                .await
                .expect("the message is handled");
        })
    };
    let deps = serde_json::json!(DEPS);
    for n in 0..TRIALS / 2 {
        let job = format!("notices-{n}");
        let token = format!("token-{n}");
        let gate_message = serde_json::json!({
            "token": token, "job_id": job, "workflow": "w", "step": "join", "attempt": 0,
            "spec": {"kind": "gate", "deps": deps, "values": ["a"]},
        })
        .to_string();
        let notice = |dep: &str| {
            let mut spec = serde_json::json!({"kind": "finished", "gates": [{"step": "join", "deps": deps}]});
            if dep == "a" {
                spec["values"] = serde_json::json!({"a": {"trial": n}});
            }
            serde_json::json!({"job_id": job, "workflow": "w", "step": dep, "spec": spec}).to_string()
        };
        let twice = |body: String| [deliver(body.clone()), deliver(body)];
        let key = GateKey::new(&job, "join", None);
        match n % 3 {
            // The gate waits first; the last dependency's two notices open it.
            0 => {
                futures::future::join_all(twice(gate_message.clone())).await;
                futures::future::join_all(DEPS[..2].iter().flat_map(|dep| twice(notice(dep)))).await;
                assert!(answers.to(&token).is_empty(), "opened before `c` finished");
                let state = gate::read(&ddb, &table, &key).await.expect("read");
                assert_eq!(
                    state.remaining, 1,
                    "a notice delivered twice was counted twice: {state:?}"
                );
                futures::future::join_all(twice(notice("c"))).await;
            }
            // Every dependency finished first; the gate message opens it.
            1 => {
                futures::future::join_all(DEPS.iter().flat_map(|dep| twice(notice(dep)))).await;
                assert!(answers.to(&token).is_empty(), "opened with no token");
                futures::future::join_all(twice(gate_message.clone())).await;
            }
            // All at once.
            _ => {
                let runs = DEPS
                    .iter()
                    .flat_map(|dep| twice(notice(dep)))
                    .chain(twice(gate_message.clone()));
                futures::future::join_all(runs).await;
            }
        }
        let sent = answers.to(&token);
        assert_eq!(sent.len(), 1, "trial {n} answered {} times: {sent:?}", sent.len());
        assert_eq!(sent[0], serde_json::json!({"v": {"a": {"trial": n}}}));
    }
}

/// A delivery claims the ready gate and dies before it sends: a delivery
/// that comes while the claim is fresh leaves its message to come back; one
/// that comes after the lease sends the answer, once.
async fn crashed_claim(ddb: &Client, table: &str) {
    let answers = Answers::start().await;
    let sfn = aws_sdk_sfn::Client::new(&sdk_config(answers.port).await);
    let key = GateKey::new("crashed-claim", "join", None);
    let deps: Vec<String> = DEPS.iter().map(|d| (*d).to_owned()).collect();
    gate::register(ddb, table, &key, &deps, "token-crash", 0)
        .await
        .expect("register");
    for dep in DEPS {
        gate::finish(ddb, table, &key, &deps, dep, &DepOutcome::Ok)
            .await
            .expect("finish");
    }
    assert!(gate::claim(ddb, table, &key).await.expect("claim").is_some());

    let held = gate::open_if_ready(ddb, &sfn, table, &key).await;
    assert!(
        matches!(held, Err(garden_workers::error::Retryable::Held(_))),
        "a fresh claim without an answer must bring the message back: {held:?}"
    );
    assert!(answers.to("token-crash").is_empty());

    // Age the claim past the lease rather than wait for it.
    let long_ago = (chrono::Utc::now() - chrono::Duration::seconds(gate::CLAIM_LEASE_SECS + 5))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    ddb.update_item()
        .table_name(table)
        .key("PK", AttributeValue::S("JOB#crashed-claim".into()))
        .key("SK", AttributeValue::S(key.sk()))
        .update_expression("SET opened_at = :at")
        .expression_attribute_values(":at", AttributeValue::S(long_ago))
        .send()
        .await
        .expect("the claim is aged");
    assert!(
        gate::open_if_ready(ddb, &sfn, table, &key).await.expect("open"),
        "the stale claim is taken over"
    );
    assert_eq!(answers.to("token-crash"), vec![serde_json::json!({})]);
    assert!(gate::read(ddb, table, &key).await.expect("read").sent);

    assert!(!gate::open_if_ready(ddb, &sfn, table, &key).await.expect("open again"));
    assert_eq!(
        answers.to("token-crash").len(),
        1,
        "an answered gate sends nothing more"
    );
}

/// Stands in for Step Functions: records each `SendTaskSuccess` (token and
/// output) and answers every call with `{}`.
struct Answers {
    port: u16,
    sent: Arc<std::sync::Mutex<Vec<(String, serde_json::Value)>>>,
}

impl Answers {
    async fn start() -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("the recorder binds");
        let port = listener.local_addr().expect("the recorder has an address").port();
        let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = sent.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let record = record.clone();
                tokio::spawn(async move {
                    let mut client = BufReader::new(client);
                    while let Some(request) = read_message(&mut client).await {
                        let text = String::from_utf8_lossy(&request).into_owned();
                        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
                        assert!(
                            head.to_ascii_lowercase()
                                .contains("x-amz-target: awsstepfunctions.sendtasksuccess"),
                            "only SendTaskSuccess is expected: {head}"
                        );
                        let call: serde_json::Value = serde_json::from_str(body).expect("a JSON request");
                        let output = call["output"].as_str().map(serde_json::from_str).map(Result::ok);
                        let token = call["taskToken"].as_str().unwrap_or_default().to_owned();
                        record
                            .lock()
                            .unwrap()
                            .push((token, output.flatten().unwrap_or_default()));
                        let response = "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\n\
                                        content-length: 2\r\n\r\n{}";
                        if client.get_mut().write_all(response.as_bytes()).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Answers { port, sent }
    }

    /// The outputs sent with `token`.
    fn to(&self, token: &str) -> Vec<serde_json::Value> {
        let sent = self.sent.lock().unwrap();
        sent.iter()
            .filter(|(t, _)| t == token)
            .map(|(_, output)| output.clone())
            .collect()
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
    with_serial_table(|port, table| async move { body(client(port).await, table).await }).await;
}

/// Like [`with_table`], giving the port of the [`Serial`] proxy instead of a
/// client.
async fn with_serial_table<F, Fut>(body: F)
where
    F: FnOnce(u16, String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    assert!(
        TcpStream::connect(("127.0.0.1", 4566)).is_ok(),
        "LocalStack is not running on 127.0.0.1:4566: start it with `bash localstack/up.sh`"
    );
    let ddb = client(4566).await;
    let table = format!("garden-gate-test-{}", fastrand::u64(..));
    create_table(&ddb, &table).await;
    let serial = Serial::start().await;
    let outcome = std::panic::AssertUnwindSafe(body(serial, table.clone()))
        .catch_unwind()
        .await;
    let _ = ddb.delete_table().table_name(&table).send().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn client(port: u16) -> Client {
    Client::new(&sdk_config(port).await)
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
