//! Failures a worker must live through: being killed mid-step, and a model
//! that throttles a share of its calls.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

/// SIGKILL the worker while jobs are in flight, start a new one: every job
/// completes, and no model call is repeated for a step that had finished.
#[test]
fn a_killed_worker_loses_no_job_and_repeats_no_finished_step() {
    let standin = OwnStandin::start(&[]);
    let mut deployment = Deployment::with_files("kl", &[&test_definition("throttled")]);
    deployment
        .worker_env
        .push(("AWS_ENDPOINT_URL_BEDROCK_RUNTIME".into(), standin.url.clone()));
    let jobs: Vec<String> = (0..30).map(|i| format!("kill-{i:02}")).collect();
    let bodies: Vec<String> = jobs
        .iter()
        .map(|job| {
            json!({"workflow": "throttled", "job_id": job, "input": {"subject": format!("subject {job}")}}).to_string()
        })
        .collect();
    deployment.send_raw(&bodies);
    deployment.start_worker();

    // Kill as soon as the first step has finished: the rest are queued or in flight.
    deployment.wait_step(&jobs[0], "first", "SUCCEEDED", Duration::from_secs(120));
    deployment.kill_worker();
    let finished_at_kill = finished_steps(&deployment, &jobs);
    let model_steps = jobs.len() * 2;
    assert!(!finished_at_kill.is_empty());
    assert!(
        finished_at_kill.len() < model_steps,
        "the kill came after all the work; nothing was tested"
    );
    let answered_at_kill = answered_calls(&standin.stats());

    deployment.start_worker();
    for job in &jobs {
        let status = deployment.wait_done(job, Duration::from_secs(240));
        assert_eq!(status["job"]["status"], "SUCCEEDED", "{status:#}");
    }

    // A step finished before the kill kept its record: it was not run again.
    let after = finished_steps(&deployment, &jobs);
    for (key, finished_at) in &finished_at_kill {
        assert_eq!(
            after.get(key),
            Some(finished_at),
            "step {key:?} was run again after the restart"
        );
    }
    // Each model request was answered once, except those in flight at the kill.
    let answered = answered_calls(&standin.stats());
    let total: u64 = answered.values().sum();
    let in_flight = model_steps - finished_at_kill.len();
    assert!(
        total <= model_steps as u64 + in_flight as u64,
        "{total} model answers for {model_steps} steps ({in_flight} in flight at the kill)"
    );
    for (hash, count) in &answered_at_kill {
        assert!(answered[hash] >= *count);
    }
    let repeated = answered.values().filter(|&&n| n > 1).count();
    assert!(
        repeated <= in_flight,
        "{repeated} requests answered twice, only {in_flight} steps were in flight"
    );
}

/// `(job, step)` of every finished model step, with its finish time.
fn finished_steps(deployment: &Deployment, jobs: &[String]) -> HashMap<(String, String), String> {
    let mut finished = HashMap::new();
    for job in jobs {
        let Some(status) = deployment.status(job) else { continue };
        for step in ["first", "second"] {
            if let Some(found) = step_of(&status, step)
                && found["status"] == "SUCCEEDED"
            {
                let at = found["finished_at"].as_str().unwrap_or_default().to_owned();
                finished.insert((job.clone(), step.to_owned()), at);
            }
        }
    }
    finished
}

/// Answered (not throttled) calls per request hash, from the stand-in.
fn answered_calls(stats: &Value) -> HashMap<String, u64> {
    stats["converse"]["per_request"]
        .as_object()
        .map(|requests| {
            requests
                .iter()
                .map(|(hash, counts)| (hash.clone(), counts["answered"].as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

/// A model that throttles 30% of calls: every job completes, and the retries
/// show in the step records.
#[test]
fn jobs_complete_while_the_model_throttles_a_third_of_calls() {
    let standin = OwnStandin::start(&["--throttle-rate", "0.3", "--seed", "11"]);
    let mut deployment = Deployment::with_files("th", &[&test_definition("throttled")]);
    deployment
        .worker_env
        .push(("AWS_ENDPOINT_URL_BEDROCK_RUNTIME".into(), standin.url.clone()));
    deployment.start_worker();
    let jobs: Vec<String> = (0..20)
        .map(|i| deployment.submit("throttled", &json!({"subject": format!("topic {i}")})))
        .collect();
    let mut attempts = 0;
    for job in &jobs {
        let status = deployment.wait_done(job, Duration::from_secs(240));
        assert_eq!(status["job"]["status"], "SUCCEEDED", "{status:#}");
        for step in ["first", "second"] {
            attempts += step_of(&status, step).unwrap()["attempts"].as_u64().unwrap();
        }
    }
    let stats = standin.stats();
    let throttled = stats["converse"]["throttled"]
        .as_u64()
        .expect("the stand-in counts throttled calls");
    assert!(throttled > 0, "the stand-in throttled nothing: {stats:#}");
    let steps = jobs.len() as u64 * 2;
    assert_eq!(
        attempts,
        steps + throttled,
        "every throttled call shows as an extra attempt"
    );
}
