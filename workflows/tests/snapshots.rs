//! The emitted state machines, pinned. Review a changed snapshot with
//! `cargo insta review` (or `INSTA_UPDATE=always cargo test` and read the diff).

mod common;

#[test]
fn example_state_machines() {
    for name in common::EXAMPLES {
        let compiled = common::compiled_example(name);
        insta::assert_json_snapshot!(format!("{name}.asl"), compiled.asl);
    }
}

#[test]
fn example_policies_and_resources() {
    for name in common::EXAMPLES {
        let compiled = common::compiled_example(name);
        insta::assert_json_snapshot!(format!("{name}.policy"), compiled.policy);
        insta::assert_json_snapshot!(format!("{name}.resources"), compiled.resources);
    }
}

#[test]
fn shape_state_machines() {
    for (name, text) in common::SHAPES {
        let compiled = common::compiled(text);
        insta::assert_json_snapshot!(format!("{name}.asl"), compiled.asl);
    }
}

#[test]
fn shape_explanations() {
    for (name, text) in common::SHAPES {
        let compiled = common::compiled(text);
        insta::assert_snapshot!(format!("{name}.explain"), compiled.explain.to_string());
    }
}

#[test]
fn compiling_twice_gives_the_same_bytes_and_hash() {
    for name in common::EXAMPLES {
        let (a, b) = (common::compiled_example(name), common::compiled_example(name));
        assert_eq!(a.asl_json(), b.asl_json());
        assert_eq!(a.hash, b.hash);
        assert_eq!(a.hash.len(), 64);
    }
    let other = common::compiled_example("finance-analysis");
    assert_ne!(other.hash, common::compiled_example("support-triage").hash);
}
