//! The committed JSON Schema of definitions is the one the types generate, and
//! the types that generate it read every example definition.

mod common;

use garden_workflows::schema::{WorkflowDefinition, definition_schema};

#[test]
fn the_committed_schema_is_up_to_date() {
    let path = common::definitions_dir().join("schema.json");
    let fresh = definition_schema();
    if std::env::var_os("GARDEN_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &fresh).expect("the schema is written");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "definitions/schema.json is stale: run `cargo run -- schema -o definitions/schema.json` \
         (or GARDEN_UPDATE_SCHEMA=1 cargo test -p garden-workflows --test schema)"
    );
}

#[test]
fn the_schema_types_read_every_example() {
    for name in common::EXAMPLES {
        let text = std::fs::read_to_string(common::definitions_dir().join(format!("{name}.yaml"))).expect("readable");
        let json = garden_workflows::yaml::parse(&text)
            .expect("yaml")
            .expect("a document")
            .to_json();
        let read: Result<WorkflowDefinition, _> = serde_json::from_value(json);
        assert!(read.is_ok(), "{name}: {:?}", read.err());
    }
}

#[test]
fn the_schema_refuses_unknown_step_keys() {
    let json = serde_json::json!({"name": "x", "steps": {"a": {"approval": {}, "timout": "5m"}}});
    assert!(serde_json::from_value::<WorkflowDefinition>(json).is_err());
}
