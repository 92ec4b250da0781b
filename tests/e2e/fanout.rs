//! A wide fan-out of 5,000 items end to end (`tests/definitions/wide-fanout.yaml`):
//! one Control task, one task message per item through the tool queue, no more
//! than `max_concurrency` (8) items at once, every item run once, the step's
//! output the items' outputs in order.
//!
//! Each item calls the stand-in tool `pause` for 5 ms in a lane of its own job;
//! the tool reports how many calls of the lane were running when it started
//! (`in_flight`), which bounds the items in flight from the tool's side. The
//! worker may run 16 tool messages at once, so the fan-out's window is what
//! holds it to 8.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::*;

/// `GARDEN_E2E_FANOUT_ITEMS` runs fewer (or more), to look at the timing.
fn items() -> usize {
    std::env::var("GARDEN_E2E_FANOUT_ITEMS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5_000)
}
const WINDOW: u64 = 8;
const TOOL_CONCURRENCY: u64 = 16;

#[test]
fn a_wide_fan_out_runs_5000_items_once_each_in_order_within_its_window() {
    let _alone = alone();
    let count = items();
    let mut deployment = Deployment::with_files("fan", &[&test_definition("wide-fanout")]);
    deployment.worker_env = vec![("GARDEN_CONCURRENCY_TOOL".into(), TOOL_CONCURRENCY.to_string())];
    deployment.start_worker();

    let started = Instant::now();
    let job = deployment.submit("wide-fanout", &json!({"count": count}));
    // `garden jobs` is one small query; `garden status` would read every item.
    loop {
        let jobs = deployment.jobs(&["--workflow", "wide-fanout"]);
        if jobs
            .iter()
            .any(|j| j["job_id"] == job.as_str() && j["status"] != "RUNNING")
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "the fan-out of {count} items is not done after 15 minutes\n{}",
            tail(&deployment.worker_log(), 40)
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    let elapsed = started.elapsed();
    let status = deployment.status(&job).expect("the job has a status");
    assert_eq!(
        status["job"]["status"],
        "SUCCEEDED",
        "{:#}\n{}",
        status["job"],
        tail(&deployment.worker_log(), 40)
    );

    let output = status["job"]["output"]
        .as_array()
        .expect("the output is the items' outputs");
    assert_eq!(output.len(), count);
    for (index, item) in output.iter().enumerate() {
        assert_eq!(item["tag"], json!(index), "item {index} out of order: {item}");
        assert_eq!(item["paused_ms"], 5);
    }
    let in_flight = output.iter().filter_map(|o| o["in_flight"].as_u64()).max().unwrap_or(0);
    assert!(
        in_flight <= WINDOW,
        "{in_flight} items ran at once, more than max_concurrency {WINDOW}"
    );
    assert!(in_flight <= TOOL_CONCURRENCY);

    let items = items_of(&status, "each");
    assert_eq!(items.len(), count, "one step record per item");
    assert!(items.iter().all(|s| s["status"] == "SUCCEEDED"));
    let times: Vec<(&str, &str)> = items
        .iter()
        .filter_map(|s| Some((s["started_at"].as_str()?, s["finished_at"].as_str()?)))
        .collect();
    let first = times.iter().map(|t| t.0).min().unwrap_or_default();
    let last = times.iter().map(|t| t.1).max().unwrap_or_default();
    let fan_secs = seconds_between(first, last);
    // Items running at once by their step records (marked running to output
    // stored): item i + 8 is sent only after item i stored its output.
    let running = most_at_once(&times);
    assert!(
        running <= WINDOW as usize,
        "{running} items were running at once by their step records, more than {WINDOW}"
    );

    for kind in ["jobs", "model", "tool", "agent", "approval", "control"] {
        let queue = format!("{}-{kind}", deployment.prefix);
        assert_eq!(deployment.queue_depth(&queue), 0, "{queue} is not empty");
        assert_eq!(
            deployment.queue_depth(&format!("{queue}-dlq")),
            0,
            "{queue}-dlq is not empty"
        );
    }

    eprintln!(
        "wide fan-out: {count} items in {:.1} s from submit to done ({:.1} items/s); items ran for {fan_secs:.1} s \
         ({:.1} items/s); at most {running} items running at once by their step records and {in_flight} in the tool \
         (window {WINDOW}, worker tool concurrency {TOOL_CONCURRENCY})",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64(),
        count as f64 / fan_secs.max(0.001),
    );

    // No items: the fan-out answers at once, and the job's output, which
    // reads the step's output, is an empty list rather than a missing one.
    let empty = deployment.submit("wide-fanout", &json!({"count": 0}));
    let status = deployment.wait_done(&empty, Duration::from_secs(120));
    assert_eq!(status["job"]["status"], "SUCCEEDED", "{:#}", status["job"]);
    assert_eq!(status["job"]["output"], json!([]));
}

/// SIGKILL the worker in the middle of a wide fan-out and start another:
/// the items in flight come back after the visibility timeout, and the job
/// completes with every item once, in order, with no message left behind.
#[test]
fn a_wide_fan_out_survives_a_killed_worker() {
    let _alone = alone();
    const COUNT: usize = 400;
    let mut deployment = Deployment::with_files("fk", &[&test_definition("wide-fanout")]);
    deployment.worker_env = vec![("GARDEN_CONCURRENCY_TOOL".into(), TOOL_CONCURRENCY.to_string())];
    deployment.start_worker();
    let job = deployment.submit("wide-fanout", &json!({"count": COUNT}));

    let succeeded = |status: &serde_json::Value| {
        let items = items_of(status, "each");
        items.iter().filter(|s| s["status"] == "SUCCEEDED").count()
    };
    let started = Instant::now();
    let at_kill = loop {
        let done = deployment.status(&job).map_or(0, |status| succeeded(&status));
        if done >= 40 {
            break done;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no 40 items done after 2 minutes\n{}",
            tail(&deployment.worker_log(), 40)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    deployment.kill_worker();
    assert!(at_kill < COUNT, "the kill came after all the work; nothing was tested");
    deployment.start_worker();

    let status = deployment.wait_done(&job, Duration::from_secs(300));
    assert_eq!(status["job"]["status"], "SUCCEEDED", "{:#}", status["job"]);
    let output = status["job"]["output"]
        .as_array()
        .expect("the output is the items' outputs");
    assert_eq!(output.len(), COUNT);
    for (index, item) in output.iter().enumerate() {
        assert_eq!(item["tag"], json!(index), "item {index} out of order: {item}");
    }
    assert_eq!(succeeded(&status), COUNT, "one succeeded record per item");
    assert_eq!(items_of(&status, "each").len(), COUNT);

    // Messages taken by the killed worker come back once their visibility
    // timeout passes, find their work done, and go.
    let drained = Instant::now();
    for kind in ["jobs", "tool", "control"] {
        let queue = format!("{}-{kind}", deployment.prefix);
        while deployment.queue_depth(&queue) > 0 {
            assert!(
                drained.elapsed() < Duration::from_secs(90),
                "{queue} still holds messages 90 s after the job ended"
            );
            std::thread::sleep(Duration::from_secs(1));
        }
        assert_eq!(
            deployment.queue_depth(&format!("{queue}-dlq")),
            0,
            "{queue}-dlq is not empty"
        );
    }
    eprintln!("wide fan-out with a killed worker: {at_kill} of {COUNT} items done at the kill");
}

fn seconds_between(from: &str, to: &str) -> f64 {
    let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).map(|t| t.timestamp_millis());
    match (parse(from), parse(to)) {
        (Ok(from), Ok(to)) => (to - from) as f64 / 1000.0,
        _ => 0.0,
    }
}

/// The most intervals that overlap, an end counted before a start at the
/// same millisecond.
fn most_at_once(times: &[(&str, &str)]) -> usize {
    let millis = |t: &str| chrono::DateTime::parse_from_rfc3339(t).map_or(0, |t| t.timestamp_millis());
    let mut events: Vec<(i64, i32)> = times
        .iter()
        .flat_map(|(start, end)| [(millis(start), 1), (millis(end), -1)])
        .collect();
    events.sort();
    let (mut now, mut most) = (0_i32, 0_i32);
    for (_, change) in events {
        now += change;
        most = most.max(now);
    }
    most as usize
}
