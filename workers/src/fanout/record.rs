//! The fan-out's items in DynamoDB, all single-item conditional writes.
//!
//! `PK=JOB#<job>`, `SK=FANOUT#<step>`: the fan-out.
//!
//! | attribute | meaning |
//! |---|---|
//! | `total`, `concurrency` | items, and items in flight at most |
//! | `remaining` (N) | items not counted yet (decremented a whole shard at a time) |
//! | `done_shards` (NS) | shards already counted into `remaining` |
//! | `token`, `token_attempt` | the fan-out Task's token and its `$$.State.RetryCount` |
//! | `opened` (BOOL), `outcome` | claimed for answering, and with what (SUCCEEDED, FAILED) |
//! | `failed_item`, `failed_error`, `failed_cause` | the item that failed the fan-out |
//!
//! `SK=FANOUT#<step>#<attempt>#<shard:06>`: one shard of [`SHARD`] items of
//! one attempt, `remaining` and `done` (NS, the item indices counted). Items
//! are counted on shards rather than on the fan-out itself so that every
//! write stays small (about 1 KB, one write unit) however many items there
//! are, and each count is one atomic write that also remembers what it
//! counted (no transaction, which would conflict on the shared item).

use std::collections::BTreeSet;

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use garden_workflows::wire::TaskMessage;

use crate::error::StoreError;
use crate::store::attr::{Item, conditional, get_n, get_s, n};
use crate::store::{expires_at, job_pk, now_rfc3339};

/// Items per shard.
pub const SHARD: u64 = 100;

/// How a claimed fan-out was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "SUCCEEDED",
            Outcome::Failed => "FAILED",
        }
    }
}

/// The fan-out item as stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FanState {
    pub total: u64,
    pub remaining: i64,
    pub token: Option<String>,
    pub token_attempt: Option<u32>,
    pub opened: bool,
    pub outcome: Option<Outcome>,
    pub failed_item: Option<u64>,
    pub failed_error: Option<String>,
    pub failed_cause: Option<String>,
}

impl FanState {
    fn from_item(item: &Item) -> Self {
        FanState {
            total: get_n(item, "total").unwrap_or(0),
            remaining: get_n(item, "remaining").unwrap_or(0),
            token: get_s(item, "token"),
            token_attempt: get_n(item, "token_attempt"),
            opened: matches!(item.get("opened"), Some(AttributeValue::Bool(true))),
            outcome: match get_s(item, "outcome").as_deref() {
                Some("SUCCEEDED") => Some(Outcome::Succeeded),
                Some("FAILED") => Some(Outcome::Failed),
                _ => None,
            },
            failed_item: get_n(item, "failed_item"),
            failed_error: get_s(item, "failed_error"),
            failed_cause: get_s(item, "failed_cause"),
        }
    }
}

/// One shard as stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShardState {
    pub remaining: i64,
    pub done: BTreeSet<u64>,
}

pub fn fan_sk(step: &str) -> String {
    format!("FANOUT#{step}")
}

pub fn shard_sk(step: &str, attempt: u32, shard: u64) -> String {
    format!("FANOUT#{step}#{attempt}#{shard:06}")
}

/// Items in a shard: [`SHARD`], fewer in the last one.
fn shard_size(total: u64, shard: u64) -> u64 {
    total.saturating_sub(shard * SHARD).min(SHARD)
}

/// Records the fan-out Task's token. `None` when a newer attempt already
/// took the fan-out over (this Task is dead).
pub async fn register(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    message: &TaskMessage,
    total: u64,
    concurrency: u64,
) -> Result<Option<FanState>, StoreError> {
    let set = "SET #token = :token, token_attempt = :attempt, concurrency = :concurrency, \
               created_at = if_not_exists(created_at, :now), updated_at = :now, expires_at = :expires";
    let update = |expression: String, condition: &'static str| {
        write(ddb, table, &message.job_id, fan_sk(&message.step))
            .update_expression(expression)
            .condition_expression(condition)
            .expression_attribute_names("#token", "token")
            .expression_attribute_names("#total", "total")
            .expression_attribute_values(":token", AttributeValue::S(message.token.clone()))
            .expression_attribute_values(":attempt", n(message.attempt))
            .expression_attribute_values(":concurrency", n(concurrency))
            .expression_attribute_values(":total", n(total))
            .expression_attribute_values(":now", now())
            .expression_attribute_values(":expires", expires())
    };
    // The first delivery, or the same attempt again: keep the counts.
    let same = format!("{set}, #total = if_not_exists(#total, :total), remaining = if_not_exists(remaining, :total)");
    let same_attempt = "attribute_not_exists(token_attempt) OR token_attempt = :attempt";
    if let Some(item) = conditional(update(same, same_attempt).send().await)? {
        return Ok(Some(FanState::from_item(&item)));
    }
    // A newer attempt (a Retry of the fan-out state) starts over.
    let newer = format!(
        "{set}, #total = :total, remaining = :total \
         REMOVE opened, opened_at, outcome, done_shards, failed_item, failed_error, failed_cause"
    );
    let item = conditional(update(newer, "token_attempt < :attempt").send().await)?;
    if item.is_some() {
        tracing::info!(attempt = message.attempt, "a newer attempt re-armed the fan-out");
    }
    Ok(item.map(|item| FanState::from_item(&item)))
}

/// Counts item `index` on its shard (once, however often it is reported);
/// returns how many items of the shard are left.
pub async fn count(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    message: &TaskMessage,
    total: u64,
    index: u64,
) -> Result<i64, StoreError> {
    let counted = add_to_shard(ddb, table, message, index, "done")
        .update_expression(
            "SET remaining = if_not_exists(remaining, :size) - :one, expires_at = :expires ADD done :set",
        )
        .expression_attribute_values(":size", n(shard_size(total, index / SHARD)))
        .expression_attribute_values(":one", n(1))
        .send()
        .await;
    match conditional(counted)? {
        Some(item) => Ok(get_n(&item, "remaining").unwrap_or(0)),
        None => {
            tracing::info!("item counted before");
            Ok(read_shard(ddb, table, message, index)
                .await?
                .map_or(0, |shard| shard.remaining))
        }
    }
}

/// Claims, for one copy of item `index`, the right to send its successor:
/// `true` for the first claim of this attempt, `false` after. Copies of an
/// item that ran at the same time (SQS delivers at least once) would each
/// send one and double the rest of the chain.
pub async fn claim_handing_on(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    message: &TaskMessage,
    index: u64,
) -> Result<bool, StoreError> {
    let claimed = add_to_shard(ddb, table, message, index, "handed_on")
        .update_expression("SET expires_at = :expires ADD handed_on :set")
        .send()
        .await;
    Ok(conditional(claimed)?.is_some())
}

/// A write to item `index`'s shard that adds `index` (`:set`) to the number
/// set `set`, only if it is not there yet; the caller gives the expression.
fn add_to_shard(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    message: &TaskMessage,
    index: u64,
    set: &str,
) -> UpdateItemFluentBuilder {
    let sk = shard_sk(&message.step, message.attempt, index / SHARD);
    write(ddb, table, &message.job_id, sk)
        .condition_expression(format!("NOT contains({set}, :index)"))
        .expression_attribute_values(":expires", expires())
        .expression_attribute_values(":index", n(index))
        .expression_attribute_values(":set", AttributeValue::Ns(vec![index.to_string()]))
}

/// Counts a full shard into the fan-out (once). `None` when the fan-out
/// belongs to another attempt.
pub async fn close_shard(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    message: &TaskMessage,
    total: u64,
    shard: u64,
) -> Result<Option<FanState>, StoreError> {
    let closed = write(ddb, table, &message.job_id, fan_sk(&message.step))
        .update_expression("SET remaining = remaining - :size, updated_at = :now ADD done_shards :shards")
        .condition_expression("token_attempt = :attempt AND NOT contains(done_shards, :shard)")
        .expression_attribute_values(":size", n(shard_size(total, shard)))
        .expression_attribute_values(":attempt", n(message.attempt))
        .expression_attribute_values(":shard", n(shard))
        .expression_attribute_values(":now", now())
        .expression_attribute_values(":shards", AttributeValue::Ns(vec![shard.to_string()]))
        .send()
        .await;
    if let Some(item) = conditional(closed)? {
        return Ok(Some(FanState::from_item(&item)));
    }
    let state = read(ddb, table, &message.job_id, &message.step).await?;
    Ok(state.filter(|state| state.token_attempt == Some(message.attempt)))
}

/// Claims the fan-out for success once every item is counted: `Some` for one
/// caller per attempt.
pub async fn claim_success(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    message: &TaskMessage,
) -> Result<Option<FanState>, StoreError> {
    let claimed = claim(ddb, table, message, Outcome::Succeeded)
        .condition_expression("token_attempt = :attempt AND remaining = :zero AND attribute_not_exists(opened)")
        .expression_attribute_values(":zero", n(0))
        .send()
        .await;
    Ok(conditional(claimed)?.map(|item| FanState::from_item(&item)))
}

/// Claims the fan-out for the failure of item `index`: `Some` for the first
/// failure of the attempt, if the fan-out was not answered yet.
pub async fn claim_failure(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    message: &TaskMessage,
    index: u64,
    error: &str,
    cause: &str,
) -> Result<Option<FanState>, StoreError> {
    let claimed = claim(ddb, table, message, Outcome::Failed)
        .update_expression(
            "SET opened = :true, opened_at = :now, outcome = :outcome, updated_at = :now, \
             failed_item = :index, failed_error = :error, failed_cause = :cause",
        )
        .condition_expression("token_attempt = :attempt AND attribute_not_exists(opened)")
        .expression_attribute_values(":index", n(index))
        .expression_attribute_values(":error", AttributeValue::S(error.to_owned()))
        .expression_attribute_values(":cause", AttributeValue::S(cause.to_owned()))
        .send()
        .await;
    Ok(conditional(claimed)?.map(|item| FanState::from_item(&item)))
}

fn claim(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    message: &TaskMessage,
    outcome: Outcome,
) -> UpdateItemFluentBuilder {
    write(ddb, table, &message.job_id, fan_sk(&message.step))
        .update_expression("SET opened = :true, opened_at = :now, outcome = :outcome, updated_at = :now")
        .expression_attribute_values(":true", AttributeValue::Bool(true))
        .expression_attribute_values(":now", now())
        .expression_attribute_values(":outcome", AttributeValue::S(outcome.as_str().to_owned()))
        .expression_attribute_values(":attempt", n(message.attempt))
}

/// Reads the fan-out (strongly consistent).
pub async fn read(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    job_id: &str,
    step: &str,
) -> Result<Option<FanState>, StoreError> {
    Ok(get(ddb, table, job_id, fan_sk(step))
        .await?
        .map(|item| FanState::from_item(&item)))
}

/// Reads the shard of item `index` in the message's attempt.
pub async fn read_shard(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    message: &TaskMessage,
    index: u64,
) -> Result<Option<ShardState>, StoreError> {
    let sk = shard_sk(&message.step, message.attempt, index / SHARD);
    Ok(get(ddb, table, &message.job_id, sk).await?.map(|item| ShardState {
        remaining: get_n(&item, "remaining").unwrap_or(0),
        done: match item.get("done") {
            Some(AttributeValue::Ns(values)) => values.iter().filter_map(|v| v.parse().ok()).collect(),
            _ => BTreeSet::new(),
        },
    }))
}

async fn get(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    job_id: &str,
    sk: String,
) -> Result<Option<Item>, StoreError> {
    let out = ddb
        .get_item()
        .table_name(table)
        .key("PK", AttributeValue::S(job_pk(job_id)))
        .key("SK", AttributeValue::S(sk))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| StoreError::aws("GetItem", e))?;
    Ok(out.item)
}

fn now() -> AttributeValue {
    AttributeValue::S(now_rfc3339())
}

fn expires() -> AttributeValue {
    n(expires_at())
}

/// An update of one fan-out item, returning it as written. Each write adds
/// the values its expressions use (DynamoDB refuses unused ones).
fn write(ddb: &aws_sdk_dynamodb::Client, table: &str, job_id: &str, sk: String) -> UpdateItemFluentBuilder {
    ddb.update_item()
        .table_name(table)
        .key("PK", AttributeValue::S(job_pk(job_id)))
        .key("SK", AttributeValue::S(sk))
        .return_values(ReturnValue::AllNew)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_every_item_once() {
        assert_eq!(shard_size(250, 0), 100);
        assert_eq!(shard_size(250, 2), 50);
        assert_eq!(shard_size(250, 3), 0);
        assert_eq!(shard_size(100, 0), 100);
        assert_eq!(fan_sk("each"), "FANOUT#each");
        assert_eq!(shard_sk("each", 1, 3), "FANOUT#each#1#000003");
    }
}
