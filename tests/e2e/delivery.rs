//! Delivery guarantees at the jobs queue: duplicates make one job, malformed
//! messages are recorded as rejected and leave the queue, nothing is lost.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::*;

/// 200 jobs, each message sent twice: exactly 200 jobs and 200 executions,
/// every one finished, none lost.
#[test]
fn a_burst_of_duplicated_messages_makes_each_job_once() {
    let mut deployment = Deployment::with_files("bu", &[&repo().join("definitions/finance-analysis.yaml")]);
    deployment.start_worker();
    let mut bodies = Vec::new();
    for i in 0..200 {
        let body = json!({
            "workflow": "finance-analysis",
            "job_id": format!("burst-{i:03}"),
            "input": {"project": format!("project {i}"), "cash_flows": [-100, 40 + i % 7, 50, 60], "discount_rate": 0.07},
        })
        .to_string();
        bodies.push(body.clone());
        bodies.push(body);
    }
    fastrand::shuffle(&mut bodies);
    deployment.send_raw(&bodies);

    let started = Instant::now();
    let jobs = loop {
        let jobs = deployment.jobs(&["--workflow", "finance-analysis"]);
        if jobs.len() >= 200 && jobs.iter().all(|j| j["status"] != "RUNNING") {
            break jobs;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "{} jobs recorded, {} still running after 10 minutes\n{}",
            jobs.len(),
            jobs.iter().filter(|j| j["status"] == "RUNNING").count(),
            tail(&deployment.worker_log(), 30)
        );
        std::thread::sleep(Duration::from_secs(2));
    };
    let ids: HashSet<&str> = jobs.iter().map(|j| j["job_id"].as_str().unwrap()).collect();
    assert_eq!(jobs.len(), 200, "one job per job id");
    assert_eq!(ids.len(), 200);
    assert!(jobs.iter().all(|j| j["status"] == "SUCCEEDED"), "every job succeeded");

    let executions = block_on(async {
        let config = sdk_config().await;
        let sfn = aws_sdk_sfn::Client::new(&config);
        let arn = format!(
            "arn:aws:states:us-east-1:000000000000:stateMachine:{}-finance-analysis",
            deployment.prefix
        );
        let mut pages = sfn
            .list_executions()
            .state_machine_arn(arn)
            .into_paginator()
            .items()
            .send();
        let mut all = Vec::new();
        while let Some(execution) = pages.next().await {
            all.push(execution.expect("list executions"));
        }
        all
    });
    assert_eq!(executions.len(), 200, "one execution per job");
    let names: HashSet<&str> = executions.iter().map(|e| e.name()).collect();
    assert_eq!(names, ids, "executions are named after their jobs");

    let jobs_queue = format!("{}-jobs", deployment.prefix);
    assert_eq!(deployment.queue_depth(&jobs_queue), 0, "the jobs queue drained");
    assert_eq!(
        deployment.queue_depth(&format!("{jobs_queue}-dlq")),
        0,
        "nothing dead-lettered"
    );
}

/// Messages that can never succeed are recorded with the reason and leave
/// the queue at once: not retried, not dead-lettered, not dropped.
#[test]
fn malformed_messages_are_recorded_as_rejected() {
    let mut deployment = Deployment::with_files("rj", &[&repo().join("definitions/finance-analysis.yaml")]);
    deployment.start_worker();
    let bodies = vec![
        "this is not JSON".to_owned(),
        json!({"workflow": "no-such-workflow", "input": {}}).to_string(),
        json!({"workflow": "finance-analysis", "input": {"project": "x", "cash_flows": [1]}}).to_string(),
        json!({"workflow": "finance-analysis", "input": {}, "priority": "high"}).to_string(),
    ];
    let ids = deployment.send_raw(&bodies);

    let started = Instant::now();
    let rejected = loop {
        let rejected = deployment.jobs(&["--status", "REJECTED"]);
        if rejected.len() >= bodies.len() {
            break rejected;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "only {} rejected: {rejected:#?}",
            rejected.len()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(rejected.len(), bodies.len(), "{rejected:#?}");
    let reason_of = |message_id: &str| -> String {
        let job = rejected
            .iter()
            .find(|j| j["job_id"].as_str().unwrap().contains(message_id))
            .unwrap_or_else(|| panic!("no rejected job for message {message_id}: {rejected:#?}"));
        job["reason"].as_str().unwrap().to_lowercase()
    };
    assert!(reason_of(&ids[0]).contains("json"), "{}", reason_of(&ids[0]));
    assert!(
        reason_of(&ids[1]).contains("no-such-workflow"),
        "{}",
        reason_of(&ids[1])
    );
    let schema = reason_of(&ids[2]);
    assert!(
        schema.contains("discount_rate") || schema.contains("cash_flows"),
        "{schema}"
    );
    assert!(reason_of(&ids[3]).contains("priority"), "{}", reason_of(&ids[3]));

    // The queue drains: nothing waits for a retry, nothing went to the DLQ.
    let jobs_queue = format!("{}-jobs", deployment.prefix);
    let started = Instant::now();
    while deployment.queue_depth(&jobs_queue) > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "rejected messages stayed on the queue"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(deployment.queue_depth(&format!("{jobs_queue}-dlq")), 0);
    let executions = deployment.jobs(&["--status", "RUNNING"]);
    assert!(
        executions.is_empty(),
        "no rejected message started a job: {executions:#?}"
    );
}
