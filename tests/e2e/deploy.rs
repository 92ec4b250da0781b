//! `garden deploy` of the example workflows from nothing: what it makes
//! matches what the definitions say, a second deploy changes nothing, and
//! `garden destroy` removes it all.

use serde_json::Value;

use crate::common::*;

#[test]
fn deploying_the_examples_twice_changes_nothing_the_second_time() {
    let deployment = Deployment::new("dp");
    let config = block_on(sdk_config());

    for name in ["finance-analysis", "research-brief", "support-triage"] {
        let file = repo().join(format!("definitions/{name}.yaml"));
        let compiled = compile(&deployment, &file);
        let arn = format!(
            "arn:aws:states:us-east-1:000000000000:stateMachine:{}-{name}",
            deployment.prefix
        );
        let sfn = aws_sdk_sfn::Client::new(&config);
        let machine = block_on(sfn.describe_state_machine().state_machine_arn(&arn).send()).expect("deployed");
        let mut deployed: Value = serde_json::from_str(machine.definition()).unwrap();
        normalise_queue_urls(&mut deployed);
        assert_eq!(deployed, compiled, "the deployed {name} is the compiled one");

        let scheduler = aws_sdk_scheduler::Client::new(&config);
        let workflow = garden_workflows::load_file(&file).expect("the example loads");
        let target = garden_workflows::target::Target::local();
        let schedules = garden_workflows::compile(&workflow, &target)
            .expect("the example compiles")
            .schedules;
        assert!(!schedules.is_empty(), "every example has a schedule");
        for schedule in &schedules {
            let schedule_name = format!("{}-{name}-{}", deployment.prefix, schedule.name);
            let found = block_on(scheduler.get_schedule().name(&schedule_name).send()).expect("schedule deployed");
            assert_eq!(found.schedule_expression(), Some(schedule.expression.as_str()));
            assert_eq!(
                found.schedule_expression_timezone().unwrap_or("UTC"),
                schedule.timezone.as_deref().unwrap_or("UTC")
            );
            let input: Value = serde_json::from_str(found.target().unwrap().input().unwrap()).unwrap();
            assert_eq!(input["workflow"], name);
            assert_eq!(input["input"], schedule.input);
        }
    }
    let table = block_on(
        aws_sdk_dynamodb::Client::new(&config)
            .describe_table()
            .table_name(&deployment.prefix)
            .send(),
    )
    .unwrap()
    .table
    .unwrap();
    let keys: Vec<&str> = table.key_schema().iter().map(|k| k.attribute_name()).collect();
    assert_eq!(keys, ["PK", "SK"]);
    for kind in ["jobs", "model", "tool", "agent", "approval", "control"] {
        let queue = format!("{}-{kind}", deployment.prefix);
        let redrive = redrive_policy(&deployment, &queue);
        assert!(
            redrive["deadLetterTargetArn"]
                .as_str()
                .unwrap()
                .ends_with(&format!("{queue}-dlq"))
        );
    }

    let again = deployment.garden(&["deploy", "--schedule-rules", "--task-visibility", "8"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stderr(&again).contains(" 0 changed"),
        "a second deploy changed things:\n{}",
        stderr(&again)
    );

    let destroyed = deployment.garden(&["destroy"]);
    assert!(destroyed.status.success(), "{}", stderr(&destroyed));
    let sqs = deployment.sqs();
    let gone = block_on(
        sqs.get_queue_url()
            .queue_name(format!("{}-jobs", deployment.prefix))
            .send(),
    );
    assert!(gone.is_err(), "the jobs queue is gone after destroy");
}

fn compile(deployment: &Deployment, file: &std::path::Path) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let out = deployment.garden(&[
        "compile",
        file.to_str().unwrap(),
        "-o",
        dir.path().to_str().unwrap(),
        "--prefix",
        &deployment.prefix,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let name = file.file_stem().unwrap().to_str().unwrap();
    let text = std::fs::read_to_string(dir.path().join(format!("{name}.asl.json"))).unwrap();
    let mut asl: Value = serde_json::from_str(&text).unwrap();
    // Offline compiles use AWS-style queue URLs; LocalStack's are path style.
    normalise_queue_urls(&mut asl);
    asl
}

fn normalise_queue_urls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                if key == "QueueUrl" {
                    let name = inner
                        .as_str()
                        .unwrap_or_default()
                        .rsplit('/')
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    *inner = Value::String(name);
                } else {
                    normalise_queue_urls(inner);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalise_queue_urls),
        _ => {}
    }
}

fn redrive_policy(deployment: &Deployment, queue: &str) -> Value {
    use aws_sdk_sqs::types::QueueAttributeName;
    let url = deployment.queue_url(queue);
    let attributes = block_on(
        deployment
            .sqs()
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::RedrivePolicy)
            .send(),
    )
    .unwrap()
    .attributes
    .unwrap();
    serde_json::from_str(&attributes[&QueueAttributeName::RedrivePolicy]).unwrap()
}
