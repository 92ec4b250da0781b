//! What the workers' tests through the local stack share.

use std::time::Duration;

use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType,
};

/// The SDK configuration for a local endpoint on `port` (LocalStack is 4566).
pub async fn sdk_config(port: u16) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .load()
        .await
}

/// Creates a table shaped like the deployed one (`PK`, `SK`, the
/// `by-workflow` index) and waits until it is active.
pub async fn create_table(ddb: &aws_sdk_dynamodb::Client, table: &str) {
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .expect("a key schema element")
    };
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("an attribute definition")
    };
    let by_workflow = GlobalSecondaryIndex::builder()
        .index_name("by-workflow")
        .key_schema(key("GSI1PK", KeyType::Hash))
        .key_schema(key("GSI1SK", KeyType::Range))
        .projection(Projection::builder().projection_type(ProjectionType::All).build())
        .build()
        .expect("an index");
    ddb.create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("PK", KeyType::Hash))
        .key_schema(key("SK", KeyType::Range))
        .attribute_definitions(attr("PK"))
        .attribute_definitions(attr("SK"))
        .attribute_definitions(attr("GSI1PK"))
        .attribute_definitions(attr("GSI1SK"))
        .global_secondary_indexes(by_workflow)
        .send()
        .await
        .expect("the table is created");
    ddb.wait_until_table_exists()
        .table_name(table)
        .wait(Duration::from_secs(30))
        .await
        .expect("the table becomes active");
}
