//! Reading and writing DynamoDB attribute values.

use std::collections::{BTreeSet, HashMap};

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::AttributeValue;

use crate::error::StoreError;

pub(crate) type Item = HashMap<String, AttributeValue>;

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(crate) fn get_s(item: &Item, key: &str) -> Option<String> {
    match item.get(key) {
        Some(AttributeValue::S(value)) => Some(value.clone()),
        _ => None,
    }
}

pub(crate) fn get_n<T: std::str::FromStr>(item: &Item, key: &str) -> Option<T> {
    match item.get(key) {
        Some(AttributeValue::N(value)) => value.parse().ok(),
        _ => None,
    }
}

/// A string set; absent (DynamoDB has no empty sets) reads as empty.
pub(crate) fn get_ss(item: &Item, key: &str) -> BTreeSet<String> {
    match item.get(key) {
        Some(AttributeValue::Ss(values)) => values.iter().cloned().collect(),
        _ => BTreeSet::new(),
    }
}

/// The outcome of a conditional `UpdateItem` that returns the item:
/// `Some(new item)` when the write happened, `None` when its condition failed.
pub(crate) fn conditional<R: std::fmt::Debug>(
    result: Result<UpdateItemOutput, SdkError<UpdateItemError, R>>,
) -> Result<Option<Item>, StoreError> {
    match result {
        Ok(out) => Ok(Some(out.attributes.unwrap_or_default())),
        Err(err)
            if matches!(
                err.as_service_error(),
                Some(UpdateItemError::ConditionalCheckFailedException(_))
            ) =>
        {
            Ok(None)
        }
        Err(err) => Err(StoreError::aws("UpdateItem", err)),
    }
}

/// A JSON document stored as a string attribute.
pub(crate) fn get_json(item: &Item, key: &str) -> Option<serde_json::Value> {
    get_s(item, key).and_then(|text| serde_json::from_str(&text).ok())
}

/// Splits text into pieces of at most `max` bytes, on character boundaries.
pub(crate) fn split_chunks(text: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = rest.len().min(max);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        out.push(&rest[..end]);
        rest = &rest[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_never_split_a_character() {
        let text = "é".repeat(10);
        let chunks = split_chunks(&text, 3);
        assert!(chunks.iter().all(|c| c.len() <= 3));
        assert_eq!(chunks.concat(), text);
        assert_eq!(chunks.len(), 10);
    }
}
