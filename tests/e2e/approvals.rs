//! Approval steps answered through `garden approve`: approved leads on to the
//! next step, rejected fails the job at the approval with `Garden.Rejected`.

use std::time::Duration;

use serde_json::json;

use crate::common::*;

#[test]
fn an_approved_step_leads_on_and_a_rejected_one_fails_the_job() {
    let mut deployment = Deployment::with_files("ap", &[&test_definition("approval-check")]);
    deployment.start_worker();
    let approved = deployment.submit("approval-check", &json!({"topic": "harbour tides"}));
    let rejected = deployment.submit("approval-check", &json!({"topic": "river floods"}));

    deployment.answer(&approved, "review", true);
    deployment.answer(&rejected, "review", false);

    let status = deployment.wait_done(&approved, Duration::from_secs(60));
    assert_eq!(status["job"]["status"], "SUCCEEDED", "{status:#}");
    let publish = step_of(&status, "publish").expect("publish ran after the approval");
    assert_eq!(publish["status"], "SUCCEEDED");
    assert_eq!(status["job"]["output"]["published"], publish["output"]);
    assert_eq!(step_of(&status, "review").unwrap()["output"]["approved"], true);

    let status = deployment.wait_done(&rejected, Duration::from_secs(60));
    assert_eq!(status["job"]["status"], "FAILED", "{status:#}");
    assert_eq!(status["job"]["error"], "Garden.Rejected");
    assert_eq!(status["job"]["failed_step"], "review");
    assert!(
        step_of(&status, "publish").is_none(),
        "nothing after a rejected approval runs"
    );

    // Answering twice is refused with a clear message.
    let again = deployment.garden(&["approve", &approved, "review"]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("not waiting"), "{}", stderr(&again));
}
