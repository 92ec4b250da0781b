//! A scheduled workflow fires on the local stack and its job completes.
//! LocalStack keeps EventBridge Scheduler schedules but never fires them, so
//! `garden deploy --schedule-rules` adds an EventBridge rule for each UTC
//! schedule; that rule is what delivers here.

use std::time::{Duration, Instant};

use crate::common::*;

#[test]
fn a_scheduled_job_fires_and_completes() {
    let mut deployment = Deployment::with_files("sc", &[&test_definition("every-minute")]);
    deployment.start_worker();
    let started = Instant::now();
    let job = loop {
        let jobs = deployment.jobs(&["--workflow", "every-minute"]);
        if let Some(job) = jobs.into_iter().find(|j| j["status"] != "RUNNING") {
            break job;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "no scheduled job finished within 3 minutes\n{}",
            tail(&deployment.worker_log(), 20)
        );
        std::thread::sleep(Duration::from_secs(2));
    };
    assert_eq!(job["status"], "SUCCEEDED", "{job:#}");
    let expected: f64 = [-100.0, 30.0, 40.0, 50.0]
        .iter()
        .enumerate()
        .map(|(t, cf): (usize, &f64)| cf / 1.05f64.powi(t as i32))
        .sum();
    assert!((job["output"].as_f64().unwrap() - expected).abs() < 1e-9, "{job:#}");
    assert!(
        job["job_id"].as_str().unwrap().starts_with("k-"),
        "the schedule's idempotency key names the job"
    );
}
