//! Join gates: a step that depends on steps in other branches waits on a task
//! token that is released when all its dependencies have finished.
//!
//! A gate is one item per job and waiting step, `PK=JOB#<job>`,
//! `SK=GATE#<step>` (`GATE#<step>#<index:06>` for one `for_each` item):
//!
//! | attribute | meaning |
//! |---|---|
//! | `deps` (SS) | every dependency of the waiting step (absent when there are none) |
//! | `remaining` (N) | dependencies not finished yet |
//! | `done` (SS) | dependencies already counted |
//! | `token`, `token_attempt` | the waiting Task's token and its `$$.State.RetryCount` |
//! | `opened` (BOOL), `opened_at` | the token was claimed for sending, and when |
//! | `sent` (BOOL) | the answer was delivered (or the waiting Task was gone) |
//! | `failed`, `failed_error`, `failed_cause` | the first dependency that failed |
//! | `wanted` (SS) | state ids of the dependencies whose values the opening returns |
//! | `value_<id>` (S) | a finished dependency's exported values (JSON), kept from its first report |
//!
//! Both sides pass the full dependency list, so whichever comes first creates
//! the item: [`register`] (the waiting Task, with its token) and [`finish`] (a
//! dependency, once its outcome is final). Each is one conditional
//! `UpdateItem` returning the item as written, so the write that makes the
//! gate ready (token present, and `remaining = 0` or a failure recorded) sees
//! it: [`GateState::ready`]. Then [`open_if_ready`] claims the gate with
//! `SET opened` under `attribute_not_exists(opened) AND attribute_exists(token)
//! AND (remaining = 0 OR attribute_exists(failed))`; only the winner sends the
//! token back (`SendTaskSuccess`, or `SendTaskFailure` with
//! [`DEPENDENCY_FAILED`] and the failed dependency's cause, for `on_error`).
//! The success output is `{"v": {<id>: values}}` for the `wanted` ids whose
//! values were stored, or `{}` when the gate wants none ([`GateState::output`]).
//!
//! The three orders, each safe when both sides call [`open_if_ready`]:
//! - the gate registers after the last dependency finished: `remaining` is
//!   already 0, so [`register`] returns ready and its caller opens;
//! - the gate registers before: the last [`finish`] brings `remaining` to 0
//!   with the token present and its caller opens;
//! - both at once: single-item writes are serialized, so whichever write lands
//!   second sees both the token and `remaining = 0`; if both callers try to
//!   open, the conditional claim lets exactly one through.
//!
//! A duplicate [`finish`] for a dependency already in `done` fails its
//! condition and changes nothing; it reads the gate and reports it ready when a
//! first delivery counted but died before opening. A failed dependency opens
//! the gate at once; later finishes are still counted but the gate stays open.
//! A newer attempt of the waiting Task (a higher `token_attempt`) replaces the
//! token and re-arms the gate; an older one is ignored. If sending fails, the
//! claim is released so that a retry of the caller's message can open again.
//! A claim is a lease of [`CLAIM_LEASE_SECS`]: a caller that dies between
//! the claim and the send leaves its message to come back, and that delivery
//! finds the claim stale and opens the gate itself. A caller that finds a
//! fresh claim without `sent` waits briefly for it, then leaves its message to
//! come back ([`Retryable::Held`](crate::error::Retryable::Held)). Sending the
//! same answer twice is harmless: Step Functions takes the first answer to a
//! token and refuses the rest, which counts as delivered.
//!
//! Wiring ([`crate::join`]): the compiler puts a `Join <step>` Task on the
//! control queue before the joining step (its message carries
//! `Action::Gate`, answered by [`register_wanting`] then [`open_if_ready`]),
//! and a `Finished <dep>` notice after every way out of each dependency
//! (`Action::Finished`, counted by [`finish_with_values`] in each gate, then
//! [`open_if_ready`]).

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use serde_json::{Map, Value};

use crate::error::StoreError;
use crate::store::attr::{Item, conditional, get_s, get_ss};
use crate::store::{expires_at, job_pk, now_rfc3339, step_suffix};

mod open;

pub use open::{Opening, claim, open_if_ready};

/// How long a claim to open a gate holds before another delivery may take it
/// over; keep queue visibility timeouts above it, so that a message coming
/// back after a crash finds the claim stale.
pub const CLAIM_LEASE_SECS: i64 = 10;

/// The error a gate fails its waiting Task with when a dependency failed.
pub const DEPENDENCY_FAILED: &str = "Garden.DependencyFailed";

/// The attribute holding a dependency's exported values is this prefix and
/// the dependency's state id.
const VALUE_PREFIX: &str = "value_";

/// Which gate: the job and the waiting step (or one `for_each` item of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateKey {
    pub job_id: String,
    pub step: String,
    pub item: Option<u64>,
}

impl GateKey {
    pub fn new(job_id: impl Into<String>, step: impl Into<String>, item: Option<u64>) -> Self {
        GateKey {
            job_id: job_id.into(),
            step: step.into(),
            item,
        }
    }

    pub fn sk(&self) -> String {
        format!("GATE#{}", step_suffix(&self.step, self.item))
    }

    fn describe(&self) -> String {
        format!("{}/{}", job_pk(&self.job_id), self.sk())
    }
}

/// How a dependency finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DepOutcome {
    Ok,
    /// The dependency's error name and the cause it sent to Step Functions.
    Failed {
        error: String,
        cause: String,
    },
}

/// The first failed dependency of a gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepFailure {
    pub dependency: String,
    pub error: String,
    pub cause: String,
}

/// A gate as stored after a write.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GateState {
    pub deps: BTreeSet<String>,
    pub done: BTreeSet<String>,
    pub remaining: i64,
    pub token: Option<String>,
    pub token_attempt: Option<u32>,
    pub opened: bool,
    /// When the claim was taken (RFC 3339).
    pub opened_at: Option<String>,
    /// The answer was delivered.
    pub sent: bool,
    pub failed: Option<DepFailure>,
    /// State ids of the dependencies whose values the opening returns.
    pub wanted: BTreeSet<String>,
    /// Stored values by state id, as JSON text.
    pub values: BTreeMap<String, String>,
}

impl GateState {
    /// Whether the gate can be opened now: a token waits, every dependency
    /// finished or one failed, no answer was sent, and nobody holds a claim
    /// younger than [`CLAIM_LEASE_SECS`].
    pub fn ready(&self) -> bool {
        self.due() && (!self.opened || self.claim_is_stale())
    }

    /// A token waits, every dependency finished or one failed, and no answer
    /// went out yet, whoever holds the claim.
    pub fn due(&self) -> bool {
        !self.sent && self.token.is_some() && (self.remaining <= 0 || self.failed.is_some())
    }

    /// A claim older than the lease; a claim without a time never is.
    fn claim_is_stale(&self) -> bool {
        self.opened_at.as_deref().is_some_and(|at| at < stale_before().as_str())
    }

    /// What a successful opening sends: `{"v": {<id>: values}}` with the
    /// stored values of each wanted dependency, or `{}` when none is wanted.
    /// A wanted dependency that sent no values is left out.
    pub fn output(&self) -> Value {
        if self.wanted.is_empty() {
            return Value::Object(Map::new());
        }
        let values: Map<String, Value> = self
            .wanted
            .iter()
            .filter_map(|id| {
                let raw = self.values.get(id)?;
                let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.clone()));
                Some((id.clone(), value))
            })
            .collect();
        serde_json::json!({ "v": values })
    }

    fn from_item(key: &GateKey, item: &Item) -> Result<Self, StoreError> {
        let remaining = match item.get("remaining") {
            Some(AttributeValue::N(n)) => n.parse().ok(),
            _ => None,
        }
        .ok_or_else(|| StoreError::Data {
            key: key.describe(),
            message: "gate has no `remaining` count".into(),
        })?;
        let failed = get_s(item, "failed").map(|dependency| DepFailure {
            dependency,
            error: get_s(item, "failed_error").unwrap_or_default(),
            cause: get_s(item, "failed_cause").unwrap_or_default(),
        });
        Ok(GateState {
            deps: get_ss(item, "deps"),
            done: get_ss(item, "done"),
            remaining,
            token: get_s(item, "token"),
            token_attempt: match item.get("token_attempt") {
                Some(AttributeValue::N(n)) => n.parse().ok(),
                _ => None,
            },
            opened: matches!(item.get("opened"), Some(AttributeValue::Bool(true))),
            opened_at: get_s(item, "opened_at"),
            sent: matches!(item.get("sent"), Some(AttributeValue::Bool(true))),
            failed,
            wanted: get_ss(item, "wanted"),
            values: item
                .iter()
                .filter_map(|(name, value)| match value {
                    AttributeValue::S(raw) => Some((name.strip_prefix(VALUE_PREFIX)?.to_owned(), raw.clone())),
                    _ => None,
                })
                .collect(),
        })
    }
}

/// The waiting Task registers its token. `deps` is the waiting step's full
/// dependency list (the same on every call); `attempt` is the Task's
/// `$$.State.RetryCount`.
pub async fn register(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    key: &GateKey,
    deps: &[String],
    token: &str,
    attempt: u32,
) -> Result<GateState, StoreError> {
    register_wanting(ddb, table, key, deps, &[], token, attempt).await
}

/// [`register`] for a gate that answers with the values of some dependencies:
/// `wanted` are their state ids (see [`GateState::output`]).
pub async fn register_wanting(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    key: &GateKey,
    deps: &[String],
    wanted: &[String],
    token: &str,
    attempt: u32,
) -> Result<GateState, StoreError> {
    let deps: BTreeSet<String> = deps.iter().cloned().collect();
    let wanted_clause = if wanted.is_empty() { "" } else { "wanted = :wanted, " };
    let set = format!(
        "SET #token = :token, token_attempt = :attempt, {wanted_clause}remaining = if_not_exists(remaining, :count), {}",
        create_clauses(&deps)
    );
    // The same attempt again (or the first one): keep whatever was opened.
    let same = "attribute_not_exists(token_attempt) OR token_attempt = :attempt";
    let update = |expression: String, condition: &'static str| {
        let builder = write(ddb, table, key, &deps)
            .update_expression(expression)
            .condition_expression(condition)
            .expression_attribute_names("#token", "token")
            .expression_attribute_values(":token", AttributeValue::S(token.to_owned()))
            .expression_attribute_values(":attempt", AttributeValue::N(attempt.to_string()));
        if wanted.is_empty() {
            builder
        } else {
            builder.expression_attribute_values(":wanted", AttributeValue::Ss(wanted.to_vec()))
        }
    };
    if let Some(item) = conditional(update(set.clone(), same).send().await)? {
        return checked(key, &deps, item);
    }
    // A newer attempt: its token replaces the old one and the gate re-arms.
    let newer = format!("{set} REMOVE opened, opened_at, sent");
    if let Some(item) = conditional(update(newer, "token_attempt < :attempt").send().await)? {
        tracing::info!(gate = %key.describe(), attempt, "a newer attempt re-armed the gate");
        return checked(key, &deps, item);
    }
    // An older attempt: its token is dead. Opening still sends the newer token.
    tracing::info!(gate = %key.describe(), attempt, "stale gate registration ignored");
    read(ddb, table, key).await
}

/// A dependency of the waiting step finished (its outcome is final). Counts it
/// once however often it is reported.
pub async fn finish(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    key: &GateKey,
    deps: &[String],
    dep: &str,
    outcome: &DepOutcome,
) -> Result<GateState, StoreError> {
    finish_with_values(ddb, table, key, deps, dep, outcome, &Map::new()).await
}

/// [`finish`], also keeping the dependency's exported values by state id
/// (`{<id>: values}`) for the opening to return. They are written with the
/// count, so a report that is not counted (a duplicate) changes nothing.
pub async fn finish_with_values(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    key: &GateKey,
    deps: &[String],
    dep: &str,
    outcome: &DepOutcome,
    values: &Map<String, Value>,
) -> Result<GateState, StoreError> {
    let deps: BTreeSet<String> = deps.iter().cloned().collect();
    if !deps.contains(dep) {
        return Err(StoreError::Data {
            key: key.describe(),
            message: format!("`{dep}` is not a dependency of this gate (it waits on {deps:?})"),
        });
    }
    let mut expression = format!(
        "SET remaining = if_not_exists(remaining, :count) - :one, {}",
        create_clauses(&deps)
    );
    let mut builder = write(ddb, table, key, &deps)
        .condition_expression("NOT contains(done, :dep)")
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .expression_attribute_values(":dep", AttributeValue::S(dep.to_owned()))
        .expression_attribute_values(":done", AttributeValue::Ss(vec![dep.to_owned()]));
    if let DepOutcome::Failed { error, cause } = outcome {
        // The first failure is the one the waiting step hears about.
        expression.push_str(
            ", failed = if_not_exists(failed, :dep), failed_error = if_not_exists(failed_error, :error), \
             failed_cause = if_not_exists(failed_cause, :cause)",
        );
        builder = builder
            .expression_attribute_values(":error", AttributeValue::S(error.clone()))
            .expression_attribute_values(":cause", AttributeValue::S(cause.clone()));
    }
    for (n, (id, value)) in values.iter().enumerate() {
        expression.push_str(&format!(", #value{n} = if_not_exists(#value{n}, :value{n})"));
        builder = builder
            .expression_attribute_names(format!("#value{n}"), format!("{VALUE_PREFIX}{id}"))
            .expression_attribute_values(format!(":value{n}"), AttributeValue::S(value.to_string()));
    }
    expression.push_str(" ADD done :done");
    match conditional(builder.update_expression(expression).send().await)? {
        Some(item) => checked(key, &deps, item),
        None => {
            tracing::debug!(gate = %key.describe(), dep, "dependency already counted");
            read(ddb, table, key).await
        }
    }
}

/// Reads a gate (strongly consistent); an absent gate is an error.
pub async fn read(ddb: &aws_sdk_dynamodb::Client, table: &str, key: &GateKey) -> Result<GateState, StoreError> {
    let out = ddb
        .get_item()
        .table_name(table)
        .key("PK", AttributeValue::S(job_pk(&key.job_id)))
        .key("SK", AttributeValue::S(key.sk()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| StoreError::aws("GetItem", e))?;
    let item = out.item.ok_or_else(|| StoreError::Data {
        key: key.describe(),
        message: "gate is missing".into(),
    })?;
    GateState::from_item(key, &item)
}

/// Claims taken before this time (RFC 3339, as `opened_at` is written) are stale.
fn stale_before() -> String {
    (chrono::Utc::now() - chrono::Duration::seconds(CLAIM_LEASE_SECS))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The update every gate write starts from: the key and the values that
/// create the gate when it is absent.
fn write(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    key: &GateKey,
    deps: &BTreeSet<String>,
) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
    let mut builder = ddb
        .update_item()
        .table_name(table)
        .key("PK", AttributeValue::S(job_pk(&key.job_id)))
        .key("SK", AttributeValue::S(key.sk()))
        .expression_attribute_values(":count", AttributeValue::N(deps.len().to_string()))
        .expression_attribute_values(":now", AttributeValue::S(now_rfc3339()))
        .expression_attribute_values(":expires", AttributeValue::N(expires_at().to_string()))
        .return_values(ReturnValue::AllNew);
    if !deps.is_empty() {
        builder = builder.expression_attribute_values(":deps", AttributeValue::Ss(deps.iter().cloned().collect()));
    }
    builder
}

/// The `SET` clauses of every write that may create the gate.
fn create_clauses(deps: &BTreeSet<String>) -> String {
    let deps_clause = if deps.is_empty() {
        ""
    } else {
        "deps = if_not_exists(deps, :deps), "
    };
    format!("{deps_clause}created_at = if_not_exists(created_at, :now), updated_at = :now, expires_at = :expires")
}

/// Reads the written gate and checks that both sides agree on its dependencies.
fn checked(key: &GateKey, deps: &BTreeSet<String>, item: Item) -> Result<GateState, StoreError> {
    let state = GateState::from_item(key, &item)?;
    if &state.deps != deps {
        return Err(StoreError::Data {
            key: key.describe(),
            message: format!(
                "gate waits on {:?} but was called with {:?}: pass the same dependency list on every call",
                state.deps, deps
            ),
        });
    }
    Ok(state)
}

#[cfg(test)]
mod tests;
