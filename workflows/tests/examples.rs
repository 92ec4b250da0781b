//! The example definitions: they load without warnings, each has a schedule,
//! and each sample job message names its workflow and gives what its input
//! schema requires.

mod common;

use garden_workflows::wire::JobMessage;
use serde_json::Value;

#[test]
fn examples_load_cleanly_and_have_schedules() {
    for name in common::EXAMPLES {
        let wf = common::example(name);
        assert_eq!(wf.name, name);
        assert!(wf.warnings.is_empty(), "{name}: {:?}", wf.warnings);
        assert!(!wf.schedules.is_empty(), "{name} has a schedule");
        let compiled = common::compiled_example(name);
        assert!(compiled.schedules[0].expression.ends_with(')'));
    }
}

#[test]
fn sample_jobs_match_their_workflows() {
    for name in common::EXAMPLES {
        let path = common::definitions_dir().join(format!("examples/{name}.job.json"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let job: JobMessage = serde_json::from_str(&text).expect("a job message");
        assert_eq!(job.workflow, name);
        let wf = common::example(name);
        let required = wf
            .input_schema
            .get("required")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for key in required.iter().filter_map(Value::as_str) {
            assert!(job.input.get(key).is_some(), "{name}: the sample job lacks `{key}`");
        }
    }
}

#[test]
fn the_examples_run_side_by_side_where_they_can() {
    let triage = common::compiled_example("support-triage");
    let groups: Vec<Vec<Vec<String>>> = triage.explain.parallel.iter().map(|(_, b)| b.clone()).collect();
    assert_eq!(
        groups[0],
        vec![vec!["classify".to_owned()], vec!["customer".to_owned()]]
    );
    let finance = common::compiled_example("finance-analysis");
    assert_eq!(finance.explain.parallel.len(), 1, "npv and irr run side by side");
    assert!(finance.explain.added_waits.is_empty());
    let brief = common::compiled_example("research-brief");
    assert_eq!(brief.asl["States"]["gather"]["Type"], "Map");
    assert_eq!(brief.asl["States"]["gather"]["MaxConcurrency"], 4);
    assert_eq!(brief.asl["States"]["Check review"]["Type"], "Choice");
}

#[test]
fn a_map_item_list_carries_the_room_the_history_has_for_it() {
    let brief = common::compiled_example("research-brief");
    let room = brief.explain.items_room().expect("research-brief has a Map");
    assert!((100..25_000).contains(&room), "{room}");
    let exports = &brief.asl["States"]["outline"]["Parameters"]["MessageBody"]["exports"];
    assert_eq!(exports[0]["shape"], "indices");
    assert_eq!(exports[0]["max_items"], room);
    // A workflow without a Map state caps nothing.
    let finance = common::compiled_example("finance-analysis");
    assert_eq!(finance.explain.items_room(), None);
}
