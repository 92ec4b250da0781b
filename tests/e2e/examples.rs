//! Every example workflow in `definitions/` runs to success from its sample
//! SQS message, and what it produced is checked against what the definition
//! and its inputs say it must be.

use std::time::Duration;

use serde_json::Value;

use crate::common::*;

#[test]
fn every_example_runs_to_success_from_its_sample_message() {
    let mut deployment = Deployment::new("ex");
    deployment.start_worker();
    let examples = ["finance-analysis", "research-brief", "support-triage"];
    let bodies: Vec<String> = examples
        .iter()
        .map(|name| std::fs::read_to_string(repo().join(format!("definitions/examples/{name}.job.json"))).unwrap())
        .collect();
    let ids = deployment.send_raw(&bodies);
    let jobs: Vec<String> = bodies.iter().zip(&ids).map(|(b, id)| job_id_of(b, id)).collect();

    // The research brief asks a person when the draft's confidence is low.
    let brief = deployment.wait_step(&jobs[1], "draft", "SUCCEEDED", Duration::from_secs(90));
    let confidence = brief["output"]["confidence"]
        .as_f64()
        .expect("the draft has a confidence");
    if confidence < 0.7 {
        deployment.answer(&jobs[1], "review", true);
    }

    // The triage escalates to a person when the ticket is urgent.
    let classify = deployment.wait_step(&jobs[2], "classify", "SUCCEEDED", Duration::from_secs(90));
    if classify["output"]["priority"] == "high" || classify["output"]["needs_human"] == true {
        deployment.answer(&jobs[2], "escalate", true);
    }

    let finance = deployment.wait_done(&jobs[0], Duration::from_secs(90));
    let research = deployment.wait_done(&jobs[1], Duration::from_secs(90));
    let support = deployment.wait_done(&jobs[2], Duration::from_secs(90));
    let input: Value = serde_json::from_str(&bodies[0]).unwrap();
    check_finance(&finance, &input["input"]);
    check_research(&research, confidence);
    check_support(&support);
}

fn assert_succeeded(status: &Value) {
    assert_eq!(status["job"]["status"], "SUCCEEDED", "{status:#}");
    for step in status["steps"].as_array().unwrap() {
        assert!(
            ["SUCCEEDED", "SKIPPED"].contains(&step["status"].as_str().unwrap()),
            "step not finished: {step:#}"
        );
    }
}

fn check_finance(status: &Value, input: &Value) {
    assert_succeeded(status);
    let flows: Vec<f64> = input["cash_flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let rate = input["discount_rate"].as_f64().unwrap();
    let npv: f64 = flows
        .iter()
        .enumerate()
        .map(|(t, cf)| cf / (1.0 + rate).powi(t as i32))
        .sum();
    let output = &status["job"]["output"];
    assert!(
        (output["npv"].as_f64().unwrap() - npv).abs() < 1e-6,
        "npv {output:#} != {npv}"
    );
    let irr = output["irr"].as_f64().unwrap();
    let at_irr: f64 = flows
        .iter()
        .enumerate()
        .map(|(t, cf)| cf / (1.0 + irr).powi(t as i32))
        .sum();
    assert!(at_irr.abs() < 1e-3, "the NPV at the IRR {irr} is {at_irr}, not zero");
    let summary = step_of(status, "summary").unwrap();
    assert!(
        summary["input_tokens"].as_u64().unwrap() > 0,
        "model tokens recorded: {summary:#}"
    );
    // `haiku` is priced in definitions/resources.yaml at $0.80 in and $4.00 out per million.
    let tokens = |key: &str| summary[key].as_u64().unwrap() as f64;
    let expected = (tokens("input_tokens") * 0.80 + tokens("output_tokens") * 4.00) / 1e6;
    let cost = summary["cost_usd"].as_f64().expect("the call's cost is recorded");
    assert!((cost - expected).abs() < 1e-8, "cost {cost} != {expected}: {summary:#}");
    assert_eq!(output["summary"], summary["output"]);
}

fn check_research(status: &Value, confidence: f64) {
    assert_succeeded(status);
    let sections = step_of(status, "outline").unwrap()["output"]["sections"]
        .as_array()
        .unwrap()
        .len();
    let items = items_of(status, "gather");
    assert_eq!(items.len(), sections, "one search per planned section");
    for item in items {
        assert!(!item["output"]["results"].as_array().unwrap().is_empty(), "{item:#}");
    }
    let draft = step_of(status, "draft").unwrap();
    assert_eq!(status["job"]["output"]["brief"], draft["output"]["draft"]);
    let review = step_of(status, "review");
    if confidence < 0.7 {
        assert_eq!(review.unwrap()["status"], "SUCCEEDED", "the approval was answered");
    } else {
        assert!(review.is_none_or(|r| r["status"] == "SKIPPED"), "{review:?}");
    }
}

fn check_support(status: &Value) {
    assert_succeeded(status);
    let classify = &step_of(status, "classify").unwrap()["output"];
    let category = classify["category"].as_str().unwrap();
    assert!(["billing", "bug", "account", "question"].contains(&category));
    let ticket = &step_of(status, "file").unwrap()["output"];
    assert_eq!(status["job"]["output"]["ticket_id"], ticket["ticket_id"]);
    assert_eq!(status["job"]["output"]["category"], category);
    // Exactly one of the two branches ran, the one the classification chose.
    let escalated = classify["priority"] == "high" || classify["needs_human"] == true;
    let ran = |step: &str| step_of(status, step).is_some_and(|s| s["status"] == "SUCCEEDED");
    assert_eq!(ran("auto_reply"), !escalated, "{status:#}");
}
