//! The DynamoDB side of the workers: one table, `PK` + `SK`, GSI `by-workflow`.
//!
//! | item | PK | SK |
//! |---|---|---|
//! | workflow registry | `WORKFLOW#<name>` | `WORKFLOW` |
//! | job | `JOB#<id>` | `JOB` |
//! | step | `JOB#<id>` | `STEP#<step>` or `STEP#<step>#<index:06>` for a `for_each` item |
//! | output chunk | `JOB#<id>` | `CHUNK#<step sk suffix>#<n:04>` |
//!
//! Outputs past ~350 KB are split into chunk items so that no item reaches the
//! 400 KB limit. Every item carries `expires_at` (30 days) for the table's TTL.
//! The functions here are also what the CLI uses to read jobs and steps.

pub(crate) mod attr;
mod jobs;
mod registry;
mod steps;

pub use jobs::{
    JobItem, JobStatus, get_job, list_jobs_by_workflow, put_job_if_absent, set_execution_arn, set_job_output,
};
pub use registry::{Registry, WorkflowEntry, get_workflow, list_workflows};
pub use steps::{
    StepItem, StepStatus, StepUsage, approval_token, claim_approval, fail_step, finish_step, get_step, list_steps,
    mark_step_running, record_approval, step_output, wait_for_approval,
};

/// Outputs longer than this (bytes of JSON) are stored in chunk items.
pub const CHUNK_BYTES: usize = 350 * 1024;

/// Days an item lives before the table's TTL removes it.
pub const TTL_DAYS: i64 = 30;

pub fn job_pk(job_id: &str) -> String {
    format!("JOB#{job_id}")
}

pub const JOB_SK: &str = "JOB";

/// The sort key suffix of a step (or of one `for_each` item of it).
pub fn step_suffix(step: &str, item: Option<u64>) -> String {
    match item {
        Some(index) => format!("{step}#{index:06}"),
        None => step.to_owned(),
    }
}

pub fn step_sk(step: &str, item: Option<u64>) -> String {
    format!("STEP#{}", step_suffix(step, item))
}

pub fn chunk_sk(suffix: &str, n: usize) -> String {
    format!("CHUNK#{suffix}#{n:04}")
}

pub fn workflow_pk(name: &str) -> String {
    format!("WORKFLOW#{name}")
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A time written by the state machine (`$$.State.EnteredTime`, whose form
/// differs between emulators) in the form the workers write, so that times
/// sort and read alike; text that is not RFC 3339 is kept as it is.
pub fn canonical_time(text: String) -> String {
    match chrono::DateTime::parse_from_rfc3339(&text) {
        Ok(time) => time
            .with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        Err(_) => text,
    }
}

pub(crate) fn expires_at() -> i64 {
    chrono::Utc::now().timestamp() + TTL_DAYS * 86_400
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_table_layout() {
        assert_eq!(job_pk("k-1"), "JOB#k-1");
        assert_eq!(step_sk("outline", None), "STEP#outline");
        assert_eq!(step_sk("gather", Some(3)), "STEP#gather#000003");
        assert_eq!(chunk_sk(&step_suffix("gather", Some(3)), 1), "CHUNK#gather#000003#0001");
        assert_eq!(workflow_pk("research-brief"), "WORKFLOW#research-brief");
    }

    #[test]
    fn times_read_in_one_form() {
        assert_eq!(
            canonical_time("2026-12-04T12:20:55.365872+00:00".into()),
            "2026-12-04T12:20:55.365Z"
        );
        assert_eq!(
            canonical_time("2026-12-04T13:20:55.365+01:00".into()),
            "2026-12-04T12:20:55.365Z"
        );
        assert_eq!(canonical_time("soon".into()), "soon");
    }
}
