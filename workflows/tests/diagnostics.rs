//! One test per kind of mistake: the message, where it points (line and
//! column), what it underlines and the hint.

mod common;

use garden_workflows::{Diagnostics, Problem, Target, compile, load_str};

fn problems(text: &str) -> Diagnostics {
    match load_str("bad.yaml", text, Some(&common::shared())) {
        Ok(_) => panic!("the definition should not load"),
        Err(diags) => diags,
    }
}

fn find<'d>(diags: &'d Diagnostics, code: &str) -> &'d Problem {
    diags.find(code).unwrap_or_else(|| {
        panic!(
            "no {code} among {:?}",
            diags.problems.iter().map(|p| &p.message).collect::<Vec<_>>()
        )
    })
}

fn assert_at(p: &Problem, line: usize, column: usize, underlined: &str) {
    assert_eq!(p.line_col(), Some((line, column)), "{}", p.message);
    assert_eq!(p.underlined(), Some(underlined), "{}", p.message);
}

#[test]
fn a_cycle_prints_its_path_and_points_at_each_reference() {
    let d = problems(
        "name: loop
steps:
  a:
    needs: [c]
    approval: {}
  b:
    approval: { message: \"{{ steps.a.output }}\" }
  c:
    needs: [b]
    approval: {}
",
    );
    let p = find(&d, "garden::cycle");
    assert!(p.message.contains("a → b → c → a"), "{}", p.message);
    assert_at(p, 4, 13, "c");
    assert_eq!(p.notes.len(), 2, "the other two references are underlined too");
    assert!(p.help.as_deref().unwrap_or_default().contains("remove one"));
}

#[test]
fn a_misspelt_step_reference_suggests_the_right_name() {
    let d = problems(
        "name: typo
steps:
  outline:
    model: { model: haiku, prompt: plan }
  draft:
    model: { model: haiku, prompt: \"write {{ steps.outlin.output.sections }}\" }
",
    );
    let p = find(&d, "garden::unknown-step");
    assert!(p.message.contains("`outlin`"), "{}", p.message);
    assert_at(p, 6, 52, "outlin");
    assert_eq!(p.help.as_deref(), Some("did you mean `outline`?"));
}

#[test]
fn a_misspelt_need_suggests_too() {
    let d =
        problems("name: typo\nsteps:\n  first:\n    approval: {}\n  second:\n    needs: [frist]\n    approval: {}\n");
    let p = find(&d, "garden::unknown-step");
    assert_at(p, 6, 13, "frist");
    assert_eq!(p.help.as_deref(), Some("did you mean `first`?"));
}

#[test]
fn an_unknown_key_is_named_with_a_suggestion() {
    let d = problems("name: keys\nsteps:\n  a:\n    approval: {}\n    timout: 5m\n");
    let p = find(&d, "garden::unknown-key");
    assert_eq!(p.message, "unknown key `timout` in step `a`");
    assert_at(p, 5, 5, "timout");
    assert_eq!(p.help.as_deref(), Some("did you mean `timeout`?"));
}

#[test]
fn a_wrong_type_says_what_was_expected() {
    let d = problems("name: types\nsteps:\n  a:\n    wait: { seconds: soon }\n");
    let p = find(&d, "garden::type");
    assert_eq!(p.message, "expected a whole number, found a string");
    assert_at(p, 4, 22, "soon");
}

#[test]
fn a_negative_count_says_it_cannot_be_negative() {
    let d = problems("name: types\nsteps:\n  a:\n    wait: { seconds: -3 }\n");
    let p = find(&d, "garden::type");
    assert_eq!(p.message, "expected a whole number of 0 or more, found -3");
    assert_at(p, 4, 22, "-3");
}

#[test]
fn a_gateway_with_no_resources_at_all_points_at_the_resources_file() {
    let text = "name: lonely\nsteps:\n  a:\n    tool: { gateway: finance, name: x }\n";
    let Err(d) = load_str("bad.yaml", text, None) else {
        panic!("the definition should not load");
    };
    let p = find(&d, "garden::unknown-gateway");
    assert_at(p, 4, 22, "finance");
    let help = p.help.as_deref().unwrap_or_default();
    assert!(
        help.contains("no gateways are defined") && help.contains("resources.yaml"),
        "{help}"
    );
}

#[test]
fn malformed_yaml_is_an_error_with_a_position() {
    let d = problems("name: broken\nsteps:\n  a: [1, 2\n  b: 3\n");
    let p = find(&d, "garden::yaml");
    assert!(p.message.starts_with("this is not valid YAML"), "{}", p.message);
    let (line, _) = p.line_col().expect("a position");
    assert!((3..=5).contains(&line), "line {line}");
}

#[test]
fn an_empty_file_is_an_error() {
    for text in ["", "\n\n", "# nothing yet\n"] {
        let d = problems(text);
        let p = find(&d, "garden::empty");
        assert_eq!(p.message, "`bad.yaml` is empty");
        assert_eq!(p.line_col(), Some((1, 1)));
    }
}

#[test]
fn a_bad_expression_points_into_the_template() {
    let d = problems(
        "name: expr
steps:
  a:
    approval: {}
  b:
    when: \"{{ steps.a.output.score < }}\"
    approval: {}
",
    );
    let p = find(&d, "garden::expression");
    assert!(p.message.contains("ends where a value was expected"), "{}", p.message);
    let (line, column) = p.line_col().expect("a position");
    assert_eq!(line, 6);
    assert!(column > 30, "points inside the template, at column {column}");
}

#[test]
fn a_when_that_reads_the_input_cannot_be_a_choice() {
    let d = problems("name: w\nsteps:\n  a:\n    when: \"{{ input.urgent }}\"\n    approval: {}\n");
    let p = find(&d, "garden::when");
    assert_at(p, 4, 15, "input.urgent");
    assert!(
        p.help
            .as_deref()
            .unwrap_or_default()
            .contains("compute the value in a step")
    );
}

#[test]
fn for_each_over_a_literal_is_refused() {
    let d = problems("name: fe\nsteps:\n  a:\n    for_each: [1, 2, 3]\n    approval: {}\n");
    let p = find(&d, "garden::for-each");
    assert_eq!(p.message, "`for_each` takes a template, not a literal");
    assert_at(p, 4, 15, "[1, 2, 3]");
}

#[test]
fn for_each_over_plain_text_is_refused() {
    let d = problems("name: fe\nsteps:\n  a:\n    for_each: sections\n    approval: {}\n");
    let p = find(&d, "garden::for-each");
    assert_eq!(p.message, "`for_each` must be exactly one `{{ path }}`");
    assert_at(p, 4, 15, "sections");
}

#[test]
fn max_concurrency_over_the_map_limit_is_refused() {
    let d = problems(
        "name: mc
steps:
  list:
    model: { model: haiku, prompt: list }
  each:
    for_each: \"{{ steps.list.output.items }}\"
    max_concurrency: 500
    tool: { gateway: research, name: web_search, arguments: { query: \"{{ item }}\" } }
",
    );
    let p = find(&d, "garden::max-concurrency");
    assert_eq!(p.message, "`max_concurrency` must be between 1 and 40");
    assert_at(p, 7, 22, "500");
}

#[test]
fn a_map_over_a_wide_fan_out_and_wide_without_items_are_refused() {
    let d = problems(
        "name: wide
steps:
  list:
    model: { model: haiku, prompt: list }
  each:
    for_each: \"{{ steps.list.output.items }}\"
    wide: true
    max_concurrency: 500
    tool: { gateway: research, name: web_search, arguments: { query: \"{{ item }}\" } }
  again:
    for_each: \"{{ steps.each.output }}\"
    model: { model: haiku, prompt: \"{{ item }}\" }
  alone:
    wide: true
    model: { model: haiku, prompt: alone }
",
    );
    assert!(d.find("garden::max-concurrency").is_none(), "500 is allowed when wide");
    let map = d
        .problems
        .iter()
        .find(|p| p.message == "a Map state cannot iterate over a wide fan-out")
        .expect("the Map over a wide step is refused");
    assert_at(map, 11, 19, "steps.each.output");
    assert!(
        map.help
            .as_deref()
            .unwrap_or_default()
            .contains("add `wide: true` here")
    );
    let p = find(&d, "garden::wide");
    assert_eq!(p.message, "`wide` without `for_each`");
    assert_at(p, 14, 11, "true");
}

#[test]
fn every_problem_is_reported_at_once() {
    let d = problems(
        "name: many
defaults: { modle: haiku }
steps:
  a:
    tool: { gateway: reserch, name: web_search }
  b:
    needs: [zz]
    approval: {}
",
    );
    let codes: Vec<&str> = d.problems.iter().map(|p| p.code).collect();
    assert!(codes.contains(&"garden::unknown-key"), "{codes:?}");
    assert!(codes.contains(&"garden::unknown-gateway"), "{codes:?}");
    assert!(codes.contains(&"garden::unknown-step"), "{codes:?}");
}

#[test]
fn user_keys_ending_in_dollar_path_are_refused() {
    let d = problems(
        "name: k\nsteps:\n  a:\n    tool: { gateway: research, name: web_search, arguments: { query.$: x } }\n",
    );
    let p = find(&d, "garden::path-key");
    assert_at(p, 4, 63, "query.$");
}

#[test]
fn a_too_large_workflow_hits_the_history_limit_at_compile() {
    let mut text = String::from("name: huge\nsteps:\n");
    for i in 0..4_200 {
        text.push_str(&format!("  s{i}:\n    approval: {{}}\n"));
    }
    let wf = load_str("huge.yaml", &text, None).expect("loads");
    let d = compile(&wf, &Target::local()).expect_err("too many events");
    let history = d
        .problems
        .iter()
        .find(|p| p.code == "garden::limit" && p.message.contains("history events"))
        .expect("the history limit is reported");
    assert!(history.message.contains("25000"), "{}", history.message);
    assert_at(history, 2, 1, "steps");
    let size = d
        .problems
        .iter()
        .find(|p| p.message.contains("bytes"))
        .expect("the size limit too");
    assert!(size.message.contains("1048576"), "{}", size.message);
}

#[test]
fn unused_resources_of_the_definition_are_warnings() {
    let wf = common::load(
        "name: u
resources:
  gateways:
    spare: { url: \"http://127.0.0.1:1/mcp\" }
steps:
  a:
    approval: {}
",
    );
    assert_eq!(wf.warnings.len(), 1);
    assert_eq!(wf.warnings[0].message, "gateway `spare` is never used");
}

#[test]
fn input_properties_nobody_reads_are_warnings() {
    let wf = common::load(
        "name: i
input:
  type: object
  properties:
    topic: { type: string }
    colour: { type: string }
steps:
  a:
    approval: { message: \"{{ input.topic }}\" }
",
    );
    assert_eq!(wf.warnings.len(), 1);
    let p = &wf.warnings[0];
    assert_eq!(p.message, "input property `colour` is never read");
    assert_eq!(p.line_col(), Some((6, 5)));
}

#[test]
fn an_input_that_is_not_a_schema_object_is_refused() {
    let d = problems("name: i\ninput: [topic]\nsteps:\n  a:\n    approval: {}\n");
    let p = find(&d, "garden::type");
    assert_eq!(p.message, "expected a mapping, found a list");
    assert_at(p, 2, 8, "[topic]");
}

#[test]
fn a_misspelt_output_field_of_a_structured_step_is_a_warning() {
    let wf = common::load(
        "name: o
steps:
  classify:
    model:
      model: haiku
      prompt: classify
      output_schema: { type: object, properties: { priority: { type: string } } }
  answer:
    approval: { message: \"{{ steps.classify.output.priorty }}\" }
",
    );
    assert_eq!(wf.warnings.len(), 1);
    let p = &wf.warnings[0];
    assert_eq!(p.message, "the `output_schema` of `classify` has no property `priorty`");
    assert_eq!(p.help.as_deref(), Some("did you mean `priority`?"));
    assert_eq!(p.line_col(), Some((9, 30)));
}

#[test]
fn a_model_price_must_be_dollars_per_million_tokens() {
    let d = problems(
        "name: priced
resources:
  models:
    cheap:
      id: anthropic.claude-3-5-haiku-20241022-v1:0
      price_per_million_tokens: { input: -1, outptu: 4 }
steps:
  a:
    model: { model: cheap, prompt: hello }
",
    );
    let negative = find(&d, "garden::type");
    assert!(negative.message.contains("-1"), "{}", negative.message);
    assert_at(negative, 6, 42, "-1");
    assert!(
        negative
            .help
            .as_deref()
            .unwrap_or_default()
            .contains("per million tokens")
    );
    let typo = find(&d, "garden::unknown-key");
    assert_at(typo, 6, 46, "outptu");
    assert!(typo.help.as_deref().unwrap_or_default().contains("output"));
    assert!(
        d.problems.iter().any(|p| p.message.contains("has no `output`")),
        "the missing price is named too"
    );

    let d = problems(
        "name: priced
resources:
  models:
    cheap: 42
steps:
  a:
    model: { model: cheap, prompt: hello }
",
    );
    let p = find(&d, "garden::type");
    assert_eq!(p.message, "expected a model id or a mapping, found an integer");
    assert_at(p, 4, 12, "42");
    assert!(
        p.help
            .as_deref()
            .unwrap_or_default()
            .contains("price_per_million_tokens")
    );
    assert!(
        d.find("garden::model").is_none(),
        "the step using `cheap` is not told it does not exist: {:?}",
        d.problems.iter().map(|p| &p.message).collect::<Vec<_>>()
    );
}

#[test]
fn a_priced_model_carries_its_prices_to_the_worker() {
    let compiled = common::compiled(
        "name: priced
resources:
  models:
    cheap:
      id: anthropic.claude-3-5-haiku-20241022-v1:0
      price_per_million_tokens: { input: 0.25, output: 1.25 }
    plain: anthropic.claude-3-5-sonnet-20241022-v2:0
steps:
  a:
    model: { model: cheap, prompt: hello }
  b:
    model: { model: plain, prompt: hello }
",
    );
    let text = compiled.asl.to_string();
    assert!(text.contains(r#""price":{"input":0.25,"output":1.25}"#), "{text}");
    assert_eq!(text.matches(r#""price""#).count(), 1, "the unpriced model has none");
}
