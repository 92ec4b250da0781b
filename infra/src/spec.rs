//! What a deployment is made of, as data. The deployer turns this into AWS
//! calls; tests and `garden deploy --plan` read it as it is.

use garden_workflows::target::{self, dead_letter_queue_name};
use garden_workflows::wire::TaskKind;

/// The resources every deployment shares, whatever workflows it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct CoreSpec {
    pub prefix: String,
    pub table: String,
    /// The jobs queue first, then one task queue per step kind.
    pub queues: Vec<QueueSpec>,
    /// How schedules reach the jobs queue.
    pub schedules: ScheduleRoute,
}

/// A queue and its dead-letter queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSpec {
    pub name: String,
    /// The step kind it carries; `None` for the jobs queue.
    pub kind: Option<TaskKind>,
    pub visibility_timeout_secs: u32,
    pub retention_secs: u32,
    /// Receives before a message moves to the dead-letter queue.
    pub max_receive_count: u32,
    pub dead_letter: String,
    /// Concurrency cap of the function that drains the queue (Lambda event
    /// source mapping `MaximumConcurrency`, or the local worker's pool).
    pub max_concurrency: u32,
}

/// How a workflow's schedules deliver job messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleRoute {
    /// EventBridge Scheduler schedules (timezones, one-off `at()`); what AWS
    /// deployments use.
    Scheduler,
    /// Scheduler schedules, plus an EventBridge rule per schedule that delivers
    /// in UTC. LocalStack keeps Scheduler schedules but never fires them, while
    /// it does fire rules; the rule is what delivers there.
    SchedulerAndRules,
}

impl CoreSpec {
    /// The default shape: visibility timeouts short enough that a crashed
    /// worker's task comes back within a minute (live workers extend it while
    /// they work), five receives before a message is dead-lettered.
    pub fn new(prefix: &str, schedules: ScheduleRoute) -> Self {
        let jobs = target::jobs_queue_name(prefix);
        let mut queues = vec![QueueSpec {
            dead_letter: dead_letter_queue_name(&jobs),
            name: jobs,
            kind: None,
            visibility_timeout_secs: 60,
            retention_secs: 4 * 24 * 3600,
            max_receive_count: 5,
            max_concurrency: 10,
        }];
        for kind in TaskKind::ALL {
            let name = target::task_queue_name(prefix, kind);
            queues.push(QueueSpec {
                dead_letter: dead_letter_queue_name(&name),
                name,
                kind: Some(kind),
                visibility_timeout_secs: 30,
                retention_secs: 4 * 24 * 3600,
                max_receive_count: 5,
                max_concurrency: default_concurrency(kind),
            });
        }
        CoreSpec {
            prefix: prefix.to_owned(),
            table: target::table_name(prefix),
            queues,
            schedules,
        }
    }

    /// Overrides the task queues' visibility timeout (seconds).
    pub fn with_task_visibility(mut self, secs: u32) -> Self {
        for queue in self.queues.iter_mut().filter(|q| q.kind.is_some()) {
            queue.visibility_timeout_secs = secs;
        }
        self
    }

    pub fn jobs_queue(&self) -> &QueueSpec {
        &self.queues[0]
    }
}

/// Per-kind concurrency: Bedrock quotas are the tightest limit, so model steps
/// get the fewest; tool calls are cheap and plentiful.
pub fn default_concurrency(kind: TaskKind) -> u32 {
    match kind {
        TaskKind::Model => 4,
        TaskKind::Tool => 8,
        TaskKind::Agent => 4,
        TaskKind::Approval => 2,
        TaskKind::Control => 4,
    }
}

/// The name of the role a workflow's state machine runs as.
pub fn state_machine_role_name(prefix: &str, workflow: &str) -> String {
    format!("{prefix}-{workflow}-states")
}

/// The name of the role EventBridge Scheduler sends job messages as.
pub fn scheduler_role_name(prefix: &str) -> String {
    format!("{prefix}-scheduler")
}

/// The schedule (and, locally, rule) name of one workflow schedule.
pub fn schedule_name(prefix: &str, workflow: &str, schedule: &str) -> String {
    format!("{prefix}-{workflow}-{schedule}")
}

pub fn dead_letter_alarm_name(queue: &str) -> String {
    format!("{queue}-dlq-not-empty")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_queue_has_its_own_dead_letter_queue() {
        let spec = CoreSpec::new("garden", ScheduleRoute::Scheduler);
        assert_eq!(spec.queues.len(), 1 + TaskKind::ALL.len());
        assert_eq!(spec.jobs_queue().name, "garden-jobs");
        for queue in &spec.queues {
            assert_eq!(queue.dead_letter, format!("{}-dlq", queue.name));
            assert!(queue.max_receive_count > 1);
        }
        let model = spec.queues.iter().find(|q| q.kind == Some(TaskKind::Model)).unwrap();
        assert_eq!(model.name, "garden-model");
    }
}
