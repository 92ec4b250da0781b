//! The dispatcher and worker Lambda functions and their SQS event source
//! mappings: what runs the handlers in AWS.
//!
//! The functions are built the way Rust Lambda users build them:
//! `cargo lambda build --release --arm64 --output-format zip` gives
//! `target/lambda/garden-dispatcher/bootstrap.zip` and
//! `target/lambda/garden-worker/bootstrap.zip`, deployed on `provided.al2023`
//! for arm64. One worker function per task queue gives each step kind its own
//! concurrency cap (the mapping's `MaximumConcurrency`) and timeout.
//!
//! LocalStack community cannot run Lambda code without Docker, so local
//! deployments leave the functions out and `garden worker` runs the same
//! handlers in a polling loop.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Architecture, Environment, FunctionCode, FunctionResponseType, Runtime, ScalingConfig};
use base64::Engine;
use garden_workflows::wire::TaskKind;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::deploy::{Change, CoreOutputs, Deployer, Report, is_code};
use crate::error::{InfraError, Result};

/// The longest function timeout: Lambda stops every invocation at 15 minutes.
pub const LONGEST_TIMEOUT_SECS: i32 = 900;

/// One function: which binary, which queue feeds it, how it is sized.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionSpec {
    pub name: String,
    /// `garden-dispatcher` or `garden-worker`.
    pub binary: &'static str,
    pub queue: String,
    pub kind: Option<TaskKind>,
    pub memory_mb: i32,
    pub timeout_secs: i32,
    pub batch_size: i32,
    /// The event source mapping's `MaximumConcurrency` (2 at the least).
    pub max_concurrency: i32,
}

/// The zip files `cargo lambda build --output-format zip` writes.
#[derive(Debug, Clone)]
pub struct Artifacts {
    pub dispatcher: PathBuf,
    pub worker: PathBuf,
}

impl Artifacts {
    /// The usual place: `target/lambda/<binary>/bootstrap.zip`.
    pub fn in_target(target_dir: &Path) -> Self {
        Artifacts {
            dispatcher: target_dir.join("lambda/garden-dispatcher/bootstrap.zip"),
            worker: target_dir.join("lambda/garden-worker/bootstrap.zip"),
        }
    }

    fn for_binary(&self, binary: &str) -> &Path {
        if binary == "garden-dispatcher" {
            &self.dispatcher
        } else {
            &self.worker
        }
    }
}

/// The functions of a deployment: the dispatcher on the jobs queue and a
/// worker on each task queue.
pub fn function_specs(core: &CoreOutputs) -> Vec<FunctionSpec> {
    let prefix = &core.spec.prefix;
    core.spec
        .queues
        .iter()
        .map(|queue| match queue.kind {
            None => FunctionSpec {
                name: format!("{prefix}-dispatcher"),
                binary: "garden-dispatcher",
                queue: queue.name.clone(),
                kind: None,
                memory_mb: 256,
                timeout_secs: 30,
                batch_size: 10,
                max_concurrency: queue.max_concurrency.max(2) as i32,
            },
            Some(kind) => FunctionSpec {
                name: format!("{prefix}-worker-{kind}"),
                binary: "garden-worker",
                queue: queue.name.clone(),
                kind: Some(kind),
                memory_mb: 512,
                // Agent sessions may run long; Lambda stops at 15 minutes.
                timeout_secs: if kind == TaskKind::Agent || kind == TaskKind::Model {
                    LONGEST_TIMEOUT_SECS
                } else {
                    300
                },
                batch_size: 1,
                max_concurrency: queue.max_concurrency.max(2) as i32,
            },
        })
        .collect()
}

/// The least-privilege policy of one function's role.
pub fn function_policy(core: &CoreOutputs, function: &FunctionSpec) -> Value {
    let target = core.target();
    let queue_arn = format!(
        "arn:{}:sqs:{}:{}:{}",
        target.partition, core.region, core.account, function.queue
    );
    let log_group = format!(
        "arn:{}:logs:{}:{}:log-group:/aws/lambda/{}",
        target.partition, core.region, core.account, function.name
    );
    let mut statements = vec![
        json!({"Effect": "Allow", "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"], "Resource": queue_arn}),
        json!({"Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"], "Resource": [target.table_arn(), format!("{}/index/*", target.table_arn())]}),
        json!({"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"], "Resource": [log_group.clone(), format!("{log_group}:*")]}),
    ];
    match function.kind {
        None => statements.push(json!({
            "Effect": "Allow",
            "Action": "states:StartExecution",
            "Resource": format!("arn:{}:states:{}:{}:stateMachine:{}-*", target.partition, core.region, core.account, core.spec.prefix)
        })),
        Some(kind) => {
            // Task token calls take no resource-level permission in IAM.
            statements.push(json!({"Effect": "Allow", "Action": ["states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat"], "Resource": "*"}));
            match kind {
                TaskKind::Model => statements.push(json!({"Effect": "Allow", "Action": ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"], "Resource": format!("arn:{}:bedrock:{}::foundation-model/*", target.partition, core.region)})),
                TaskKind::Agent => statements.push(json!({"Effect": "Allow", "Action": "bedrock-agentcore:InvokeAgentRuntime", "Resource": format!("arn:{}:bedrock-agentcore:{}:{}:runtime/*", target.partition, core.region, core.account)})),
                TaskKind::Tool => statements.push(json!({"Effect": "Allow", "Action": "bedrock-agentcore:InvokeGateway", "Resource": format!("arn:{}:bedrock-agentcore:{}:{}:gateway/*", target.partition, core.region, core.account)})),
                TaskKind::Approval | TaskKind::Control => {}
            }
        }
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// Lambda and IAM clients; apart from [`Deployer`] so that tests can give it
/// mocked clients.
pub struct FunctionDeployer {
    pub lambda: aws_sdk_lambda::Client,
    pub deployer: Deployer,
}

impl FunctionDeployer {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        FunctionDeployer {
            lambda: aws_sdk_lambda::Client::new(config),
            deployer: Deployer::new(config),
        }
    }

    /// Deploys every function and its event source mapping.
    pub async fn deploy(&self, core: &CoreOutputs, artifacts: &Artifacts) -> Result<Report> {
        let mut report = Report::default();
        for function in function_specs(core) {
            let zip_path = artifacts.for_binary(function.binary);
            let zip = std::fs::read(zip_path).map_err(|e| {
                InfraError::State(format!(
                    "cannot read {} ({e}): build it with `cargo lambda build --release --arm64 --output-format zip`",
                    zip_path.display()
                ))
            })?;
            let role = self
                .deployer
                .ensure_role(
                    &format!("{}-lambda", function.name),
                    "lambda.amazonaws.com",
                    &function_policy(core, &function),
                    &mut report,
                )
                .await?;
            self.ensure_function(core, &function, &role, zip, &mut report).await?;
            self.ensure_mapping(core, &function, &mut report).await?;
        }
        Ok(report)
    }

    async fn ensure_function(
        &self,
        core: &CoreOutputs,
        function: &FunctionSpec,
        role: &str,
        zip: Vec<u8>,
        report: &mut Report,
    ) -> Result<()> {
        let name = &function.name;
        let sha = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&zip));
        let mut variables = HashMap::from([
            ("GARDEN_PREFIX".to_owned(), core.spec.prefix.clone()),
            ("GARDEN_TABLE".to_owned(), core.spec.table.clone()),
            ("AWS_LAMBDA_LOG_FORMAT".to_owned(), "JSON".to_owned()),
        ]);
        // The worker fails a task on its last delivery before the DLQ.
        if let Some(queue) = core.spec.queues.iter().find(|queue| queue.name == function.queue) {
            variables.insert("GARDEN_MAX_RECEIVES".to_owned(), queue.max_receive_count.to_string());
        }
        let environment = Environment::builder().set_variables(Some(variables)).build();
        let current = match self.lambda.get_function().function_name(name).send().await {
            Ok(out) => out.configuration,
            Err(err) if is_code(&err, &["ResourceNotFoundException"]) => None,
            Err(err) => return Err(InfraError::aws("read function", name, err)),
        };
        let Some(current) = current else {
            // A new role takes a few seconds before Lambda may assume it.
            let mut tries = 0;
            loop {
                let created = self
                    .lambda
                    .create_function()
                    .function_name(name)
                    .runtime(Runtime::Providedal2023)
                    .architectures(Architecture::Arm64)
                    .handler("bootstrap")
                    .role(role)
                    .code(FunctionCode::builder().zip_file(Blob::new(zip.clone())).build())
                    .memory_size(function.memory_mb)
                    .timeout(function.timeout_secs)
                    .environment(environment.clone())
                    .send()
                    .await;
                match created {
                    Ok(_) => break,
                    Err(err) if tries < 10 && is_code(&err, &["InvalidParameterValueException"]) => {
                        tries += 1;
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                    Err(err) => return Err(InfraError::aws("create function", name, err)),
                }
            }
            report.record("function", name, Change::Created);
            return Ok(());
        };
        let mut change = Change::Unchanged;
        if current.code_sha256() != Some(sha.as_str()) {
            self.lambda
                .update_function_code()
                .function_name(name)
                .zip_file(Blob::new(zip))
                .architectures(Architecture::Arm64)
                .send()
                .await
                .map_err(|e| InfraError::aws("update function code", name, e))?;
            change = Change::Updated;
        }
        let same_config = current.memory_size() == Some(function.memory_mb)
            && current.timeout() == Some(function.timeout_secs)
            && current.role() == Some(role)
            && current.environment().and_then(|e| e.variables()) == environment.variables();
        if !same_config {
            self.wait_until_updated(name).await?;
            self.lambda
                .update_function_configuration()
                .function_name(name)
                .memory_size(function.memory_mb)
                .timeout(function.timeout_secs)
                .role(role)
                .environment(environment)
                .send()
                .await
                .map_err(|e| InfraError::aws("update function configuration", name, e))?;
            change = Change::Updated;
        }
        report.record("function", name, change);
        Ok(())
    }

    /// A code update must finish before the configuration may change.
    async fn wait_until_updated(&self, name: &str) -> Result<()> {
        for _ in 0..60 {
            let config = self
                .lambda
                .get_function_configuration()
                .function_name(name)
                .send()
                .await
                .map_err(|e| InfraError::aws("read function", name, e))?;
            if config.last_update_status() != Some(&aws_sdk_lambda::types::LastUpdateStatus::InProgress) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Err(InfraError::State(format!(
            "function `{name}` is still updating after a minute"
        )))
    }

    async fn ensure_mapping(&self, core: &CoreOutputs, function: &FunctionSpec, report: &mut Report) -> Result<()> {
        let target = core.target();
        let queue_arn = format!(
            "arn:{}:sqs:{}:{}:{}",
            target.partition, core.region, core.account, function.queue
        );
        let resource = format!("{} <- {}", function.name, function.queue);
        let scaling = ScalingConfig::builder()
            .maximum_concurrency(function.max_concurrency)
            .build();
        let existing = self
            .lambda
            .list_event_source_mappings()
            .function_name(&function.name)
            .event_source_arn(&queue_arn)
            .send()
            .await
            .map_err(|e| InfraError::aws("read event source mapping", &resource, e))?
            .event_source_mappings
            .unwrap_or_default()
            .into_iter()
            .next();
        let Some(existing) = existing else {
            self.lambda
                .create_event_source_mapping()
                .function_name(&function.name)
                .event_source_arn(&queue_arn)
                .batch_size(function.batch_size)
                .function_response_types(FunctionResponseType::ReportBatchItemFailures)
                .scaling_config(scaling)
                .send()
                .await
                .map_err(|e| InfraError::aws("create event source mapping", &resource, e))?;
            report.record("event source", resource, Change::Created);
            return Ok(());
        };
        let same = existing.batch_size() == Some(function.batch_size)
            && existing.scaling_config().and_then(|s| s.maximum_concurrency()) == Some(function.max_concurrency)
            && existing
                .function_response_types()
                .contains(&FunctionResponseType::ReportBatchItemFailures);
        if same {
            report.record("event source", resource, Change::Unchanged);
            return Ok(());
        }
        self.lambda
            .update_event_source_mapping()
            .uuid(existing.uuid().unwrap_or_default())
            .batch_size(function.batch_size)
            .function_response_types(FunctionResponseType::ReportBatchItemFailures)
            .scaling_config(scaling)
            .send()
            .await
            .map_err(|e| InfraError::aws("update event source mapping", &resource, e))?;
        report.record("event source", resource, Change::Updated);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use aws_sdk_iam::operation::get_role::GetRoleOutput;
    use aws_sdk_iam::operation::get_role_policy::GetRolePolicyError;
    use aws_sdk_lambda::operation::get_function::GetFunctionError;
    use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};

    use super::*;
    use crate::spec::{CoreSpec, ScheduleRoute};

    fn core() -> CoreOutputs {
        CoreOutputs {
            spec: CoreSpec::new("garden", ScheduleRoute::Scheduler),
            account: "123456789012".into(),
            region: "us-east-1".into(),
            queue_urls: BTreeMap::new(),
            jobs_queue_arn: "arn:aws:sqs:us-east-1:123456789012:garden-jobs".into(),
        }
    }

    #[test]
    fn each_queue_gets_a_function_and_each_policy_names_exact_resources() {
        let core = core();
        let functions = function_specs(&core);
        assert_eq!(functions.len(), core.spec.queues.len());
        let dispatcher = &functions[0];
        assert_eq!(
            (dispatcher.binary, dispatcher.queue.as_str()),
            ("garden-dispatcher", "garden-jobs")
        );
        let model = functions.iter().find(|f| f.kind == Some(TaskKind::Model)).unwrap();
        assert_eq!(model.max_concurrency, 4, "Bedrock quotas: model steps get the fewest");
        for function in &functions {
            let policy = function_policy(&core, function);
            for statement in policy["Statement"].as_array().unwrap() {
                let actions = statement["Action"].to_string();
                let data_action = ["sqs:", "dynamodb:", "states:StartExecution", "bedrock"]
                    .iter()
                    .any(|a| actions.contains(a));
                if data_action && !actions.contains("SendTask") {
                    assert_ne!(
                        statement["Resource"], "*",
                        "{} has a wildcard on {actions}",
                        function.name
                    );
                }
            }
        }
    }

    #[tokio::test]
    async fn a_new_function_is_created_on_arm64_with_a_partial_batch_mapping() {
        let dir = std::env::temp_dir().join(format!("garden-fn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let artifacts = Artifacts {
            dispatcher: dir.join("d.zip"),
            worker: dir.join("w.zip"),
        };
        std::fs::write(&artifacts.dispatcher, b"dispatcher zip").unwrap();
        std::fs::write(&artifacts.worker, b"worker zip").unwrap();

        let created: Arc<Mutex<Vec<String>>> = Arc::default();
        let mappings: Arc<Mutex<Vec<(i32, i32)>>> = Arc::default();
        let missing = mock!(aws_sdk_lambda::Client::get_function).then_error(|| {
            let meta = aws_sdk_lambda::error::ErrorMetadata::builder()
                .code("ResourceNotFoundException")
                .build();
            GetFunctionError::ResourceNotFoundException(
                aws_sdk_lambda::types::error::ResourceNotFoundException::builder()
                    .meta(meta)
                    .build(),
            )
        });
        let seen = created.clone();
        let create = mock!(aws_sdk_lambda::Client::create_function)
            .match_requests(move |r| {
                let arm = r.architectures() == [Architecture::Arm64];
                let runtime = r.runtime() == Some(&Runtime::Providedal2023);
                seen.lock()
                    .unwrap()
                    .push(r.function_name().unwrap_or_default().to_owned());
                arm && runtime && r.handler() == Some("bootstrap")
            })
            .then_output(|| aws_sdk_lambda::operation::create_function::CreateFunctionOutput::builder().build());
        let no_mappings = mock!(aws_sdk_lambda::Client::list_event_source_mappings).then_output(|| {
            aws_sdk_lambda::operation::list_event_source_mappings::ListEventSourceMappingsOutput::builder().build()
        });
        let seen = mappings.clone();
        let create_mapping = mock!(aws_sdk_lambda::Client::create_event_source_mapping)
            .match_requests(move |r| {
                let partial = r.function_response_types() == [FunctionResponseType::ReportBatchItemFailures];
                let cap = r.scaling_config().and_then(|s| s.maximum_concurrency()).unwrap_or(0);
                seen.lock().unwrap().push((r.batch_size().unwrap_or(0), cap));
                partial
            })
            .then_output(|| {
                aws_sdk_lambda::operation::create_event_source_mapping::CreateEventSourceMappingOutput::builder()
                    .build()
            });
        let lambda_rules: [&Rule; 4] = [&missing, &create, &no_mappings, &create_mapping];

        let role = mock!(aws_sdk_iam::Client::get_role).then_output(|| {
            let role = aws_sdk_iam::types::Role::builder()
                .path("/")
                .role_name("r")
                .role_id("id")
                .arn("arn:aws:iam::123456789012:role/r")
                .create_date(aws_sdk_iam::primitives::DateTime::from_secs(0))
                .build()
                .unwrap();
            GetRoleOutput::builder().role(role).build()
        });
        let no_policy = mock!(aws_sdk_iam::Client::get_role_policy).then_error(|| {
            let meta = aws_sdk_iam::error::ErrorMetadata::builder()
                .code("NoSuchEntity")
                .build();
            GetRolePolicyError::NoSuchEntityException(
                aws_sdk_iam::types::error::NoSuchEntityException::builder()
                    .meta(meta)
                    .build(),
            )
        });
        let put_policy = mock!(aws_sdk_iam::Client::put_role_policy)
            .then_output(|| aws_sdk_iam::operation::put_role_policy::PutRolePolicyOutput::builder().build());

        let config = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .build();
        let mut deployer = Deployer::new(&config);
        deployer.iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&role, &no_policy, &put_policy]);
        let functions = FunctionDeployer {
            lambda: mock_client!(aws_sdk_lambda, RuleMode::MatchAny, lambda_rules),
            deployer,
        };
        let report = functions.deploy(&core(), &artifacts).await.expect("deploys");
        std::fs::remove_dir_all(&dir).ok();

        let names = created.lock().unwrap().clone();
        assert_eq!(names.len(), 6, "{names:?}");
        assert!(names.contains(&"garden-dispatcher".to_owned()));
        assert!(names.contains(&"garden-worker-model".to_owned()));
        assert_eq!(
            report.count(&Change::Created),
            6 + 6 + 6,
            "functions, mappings and role policies:\n{report}"
        );
        let mappings = mappings.lock().unwrap().clone();
        assert!(
            mappings.iter().all(|(batch, cap)| *batch >= 1 && *cap >= 2),
            "{mappings:?}"
        );
    }
}
