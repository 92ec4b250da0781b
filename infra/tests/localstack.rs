//! Deploys to a real LocalStack started by the project's own script: core
//! resources, a workflow with schedules, a second deploy that changes nothing,
//! an update in place, schedule delivery, and destroy.

use std::process::Command;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use garden_infra::deploy::{CoreOutputs, ScheduleDeployment, WorkflowDeployment};
use garden_infra::{Change, CoreSpec, Deployer, ScheduleRoute};
use serde_json::{Value, json};

const ENDPOINT: &str = "http://127.0.0.1:4566";

fn start_localstack() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../localstack/start.sh");
    let status = Command::new("bash")
        .arg(script)
        .status()
        .expect("localstack/start.sh runs");
    assert!(
        status.success(),
        "localstack/start.sh failed; see localstack/.run/localstack.log"
    );
}

async fn config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(ENDPOINT)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .load()
        .await
}

fn unique_prefix(tag: &str) -> String {
    format!("t{tag}{:06x}", fastrand::u32(..0xff_ffff))
}

fn workflow(name: &str, asl: Value, schedules: Vec<ScheduleDeployment>) -> WorkflowDeployment {
    WorkflowDeployment {
        name: name.into(),
        hash: format!("{:x}", asl.to_string().len()),
        asl: asl.to_string(),
        policy: json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "arn:aws:sqs:us-east-1:000000000000:x"}
        ]}),
        input_schema: json!({"type": "object"}),
        schedules,
    }
}

fn pass_machine(result: &str) -> Value {
    json!({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "Result": result, "End": true}}})
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_twice_update_then_destroy() {
    start_localstack();
    let config = config().await;
    let deployer = Deployer::new(&config);
    let spec = CoreSpec::new(&unique_prefix("d"), ScheduleRoute::SchedulerAndRules);

    let (core, report) = deployer.deploy_core(&spec).await.expect("core deploys");
    assert_eq!(report.count(&Change::Created), report.entries.len(), "{report}");
    check_queues(&config, &core).await;
    check_table(&config, &core).await;

    let schedules = vec![
        ScheduleDeployment {
            name: "nightly".into(),
            expression: "cron(0 2 * * ? *)".into(),
            timezone: Some("Europe/London".into()),
            input: json!({"topic": "markets"}),
        },
        ScheduleDeployment {
            name: "hourly".into(),
            expression: "rate(1 hour)".into(),
            timezone: None,
            input: json!({"topic": "tides"}),
        },
    ];
    let first = workflow("brief", pass_machine("one"), schedules.clone());
    let report = deployer.deploy_workflow(&core, &first).await.expect("workflow deploys");
    assert!(report.count(&Change::Created) >= 5, "{report}");
    // The London schedule has no UTC rule; the hourly one does.
    assert!(
        report
            .entries
            .iter()
            .any(|(kind, _, c)| kind == "rule" && matches!(c, Change::Skipped(_)))
    );
    check_schedule(&config, &core, &schedules[0]).await;

    let (_, again) = deployer.deploy_core(&spec).await.unwrap();
    assert!(again.is_unchanged(), "second core deploy changed things:\n{again}");
    let again = deployer.deploy_workflow(&core, &first).await.unwrap();
    assert!(again.is_unchanged(), "second workflow deploy changed things:\n{again}");

    let changed = workflow("brief", pass_machine("two"), schedules[..1].to_vec());
    let report = deployer.deploy_workflow(&core, &changed).await.unwrap();
    let state_machine = report
        .entries
        .iter()
        .find(|(kind, _, _)| kind == "state machine")
        .unwrap();
    assert_eq!(state_machine.2, Change::Updated, "{report}");
    let deleted: Vec<_> = report
        .entries
        .iter()
        .filter(|(_, _, c)| *c == Change::Deleted)
        .collect();
    assert_eq!(deleted.len(), 2, "the dropped schedule and its rule go: {report}");

    let report = deployer.destroy(&spec).await.expect("destroy works");
    assert!(report.count(&Change::Deleted) >= spec.queues.len() * 2 + 3, "{report}");
    let sqs = aws_sdk_sqs::Client::new(&config);
    assert!(
        sqs.get_queue_url()
            .queue_name(&spec.jobs_queue().name)
            .send()
            .await
            .is_err()
    );
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    assert!(dynamodb.describe_table().table_name(&spec.table).send().await.is_err());
}

async fn check_queues(config: &aws_config::SdkConfig, core: &CoreOutputs) {
    let sqs = aws_sdk_sqs::Client::new(config);
    for queue in &core.spec.queues {
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(&core.queue_urls[&queue.name])
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap();
        let redrive: Value = serde_json::from_str(&attributes[&QueueAttributeName::RedrivePolicy]).unwrap();
        assert!(
            redrive["deadLetterTargetArn"]
                .as_str()
                .unwrap()
                .ends_with(&queue.dead_letter)
        );
        assert_eq!(
            redrive["maxReceiveCount"].to_string().trim_matches('"'),
            queue.max_receive_count.to_string()
        );
        assert_eq!(
            attributes[&QueueAttributeName::VisibilityTimeout],
            queue.visibility_timeout_secs.to_string()
        );
    }
}

async fn check_table(config: &aws_config::SdkConfig, core: &CoreOutputs) {
    let dynamodb = aws_sdk_dynamodb::Client::new(config);
    let table = dynamodb
        .describe_table()
        .table_name(&core.spec.table)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let keys: Vec<_> = table
        .key_schema()
        .iter()
        .map(|k| k.attribute_name().to_owned())
        .collect();
    assert_eq!(keys, ["PK", "SK"]);
    let index = &table.global_secondary_indexes()[0];
    assert_eq!(index.index_name(), Some("by-workflow"));
    let ttl = dynamodb
        .describe_time_to_live()
        .table_name(&core.spec.table)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ttl.time_to_live_description.unwrap().attribute_name(),
        Some("expires_at")
    );
}

async fn check_schedule(config: &aws_config::SdkConfig, core: &CoreOutputs, schedule: &ScheduleDeployment) {
    let scheduler = aws_sdk_scheduler::Client::new(config);
    let name = garden_infra::spec::schedule_name(&core.spec.prefix, "brief", &schedule.name);
    let deployed = scheduler.get_schedule().name(&name).send().await.unwrap();
    assert_eq!(deployed.schedule_expression(), Some(schedule.expression.as_str()));
    assert_eq!(deployed.schedule_expression_timezone(), schedule.timezone.as_deref());
    let target = deployed.target().unwrap();
    assert_eq!(target.arn(), core.jobs_queue_arn);
    let input: Value = serde_json::from_str(target.input().unwrap()).unwrap();
    assert_eq!(input["workflow"], "brief");
    assert_eq!(input["input"], schedule.input);
}

/// LocalStack fires EventBridge rules, not Scheduler schedules: the rule that
/// deploy adds for a UTC schedule must put a job message on the jobs queue.
#[tokio::test(flavor = "multi_thread")]
async fn a_schedule_delivers_a_job_message() {
    start_localstack();
    let config = config().await;
    let deployer = Deployer::new(&config);
    let spec = CoreSpec::new(&unique_prefix("s"), ScheduleRoute::SchedulerAndRules);
    let (core, _) = deployer.deploy_core(&spec).await.unwrap();
    let schedule = ScheduleDeployment {
        name: "often".into(),
        expression: "rate(1 minute)".into(),
        timezone: None,
        input: json!({"topic": "scheduled"}),
    };
    let wf = workflow("sched", pass_machine("x"), vec![schedule]);
    deployer.deploy_workflow(&core, &wf).await.unwrap();

    let sqs = aws_sdk_sqs::Client::new(&config);
    let started = Instant::now();
    let mut delivered = None;
    while delivered.is_none() && started.elapsed() < Duration::from_secs(150) {
        let out = sqs
            .receive_message()
            .queue_url(core.jobs_queue_url())
            .wait_time_seconds(10)
            .send()
            .await
            .unwrap();
        delivered = out.messages.unwrap_or_default().into_iter().next();
    }
    deployer.destroy(&spec).await.unwrap();
    let message = delivered.expect("the schedule delivered a job message within 150 s");
    let body: garden_workflows::wire::JobMessage = serde_json::from_str(message.body().unwrap()).unwrap();
    assert_eq!(body.workflow, "sched");
    assert_eq!(body.input, json!({"topic": "scheduled"}));
    let key = body.idempotency_key.unwrap();
    assert!(
        key.starts_with("schedule:often:") && !key.contains('<'),
        "time filled in: {key}"
    );
}
