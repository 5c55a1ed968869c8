//! Wiring: reads the template, creates its tables in the local DynamoDB, starts the Lambda
//! service, registers the state machines, connects the event rules, serves the API, and runs
//! the custom resources' Create against their function exactly as CloudFormation would (a
//! pre-signed-style `ResponseURL` on this server, SUCCESS or FAILED awaited).

use crate::database::LocalAccount;
use crate::error::StackError;
use crate::events::EventBus;
use crate::integrations::{AwsTarget, Integrations};
use crate::lambda::{LambdaConfig, LambdaService};
use crate::logfile::LogLimits;
use crate::metrics::MetricsForwarder;
use crate::rng::Rng;
use crate::server::{AppState, CfnResponses, app, local_only};
use crate::sfn::{MockConfig, StepFunctions};
use crate::template::{
    self, CustomResourceSpec, FunctionSpec, LocalContext, LocalDatabase, StackModel,
};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// The account id of every local ARN.
pub const LOCAL_ACCOUNT: &str = "123456789012";

#[derive(Debug, Clone)]
pub struct StackOptions {
    pub template: PathBuf,
    /// The local services' environment (`.local/env`): region, endpoints, dummy credentials,
    /// `DB_HOST`, `DB_PORT`, `DB_ADMIN_SECRET_ARN` (the master user's stand-in),
    /// `DB_TLS_CA_FILE`.
    pub env: BTreeMap<String, String>,
    pub stack_name: String,
    pub parameters: HashMap<String, String>,
    pub binaries: PathBuf,
    /// Logs and other files of this stack.
    pub state_dir: PathBuf,
    pub kill: HashMap<String, f64>,
    /// Per function: the probability that a caller loses the answer of an invocation.
    pub lose_answers: HashMap<String, f64>,
    /// Extra environment variables per function (logical id or name), over the template's:
    /// fault-injection knobs such as `LEASEHOLD_FAULT_LOSE_GRANT_RESPONSES`.
    pub function_env: HashMap<String, BTreeMap<String, String>>,
    pub seed: u64,
    pub concurrency: usize,
    pub idle_timeout: Duration,
    /// What the stack keeps as it runs, so that its memory and disk stay bounded.
    pub retention: Retention,
    /// A mock configuration file in Step Functions Local's format (mocked service
    /// integrations for executions started with `<state machine ARN>#<test case>`).
    pub mock_config: Option<PathBuf>,
    /// The factor on Wait states, Retry intervals and timeouts (1: real time).
    pub time_scale: f64,
}

/// What a long-running stack keeps: the last finished executions of each state machine, and
/// each container's log within a size limit with a few rotated files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub finished_executions: usize,
    pub logs: LogLimits,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            finished_executions: crate::sfn::DEFAULT_KEEP_EXECUTIONS,
            logs: LogLimits::default(),
        }
    }
}

pub struct Stack {
    pub sfn: Arc<StepFunctions>,
    pub lambda: Arc<LambdaService>,
    pub events: Arc<EventBus>,
    pub model: StackModel,
    pub url: String,
    pub metrics: MetricsForwarder,
    /// The local accounts standing in for IAM-authenticated database users.
    pub database_accounts: Vec<LocalAccount>,
    cfn: Arc<CfnResponses>,
    created: Vec<(CustomResourceSpec, String)>,
    server: tokio::task::JoinHandle<()>,
    rng: Rng,
    stack_id: String,
}

fn env_or<'a>(env: &'a BTreeMap<String, String>, key: &str, default: &'a str) -> &'a str {
    env.get(key).map(String::as_str).unwrap_or(default)
}

/// The SDK configuration for the local services, from the given environment only.
pub async fn sdk_config(env: &BTreeMap<String, String>) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(
            env_or(env, "AWS_REGION", "us-east-1").to_owned(),
        ))
        .credentials_provider(aws_credential_types::Credentials::new(
            env_or(env, "AWS_ACCESS_KEY_ID", "testing"),
            env_or(env, "AWS_SECRET_ACCESS_KEY", "testing"),
            None,
            None,
            "leasehold-local",
        ));
    if let Some(endpoint) = env.get("AWS_ENDPOINT_URL") {
        loader = loader.endpoint_url(endpoint);
    }
    loader.load().await
}

impl Stack {
    pub async fn start(
        options: StackOptions,
        listener: tokio::net::TcpListener,
    ) -> Result<Stack, StackError> {
        let env = &options.env;
        let region = env_or(env, "AWS_REGION", "us-east-1").to_owned();
        let address = listener.local_addr().map_err(StackError::Listener)?;
        if !address.ip().is_loopback() {
            return Err(StackError::NotLoopback(address));
        }
        let url = format!("http://{address}");
        let context = LocalContext {
            stack_name: options.stack_name.clone(),
            region: region.clone(),
            account: LOCAL_ACCOUNT.to_owned(),
            parameters: options.parameters.clone(),
            database: local_database(env),
        };
        let model = template::load(&options.template, &context)?;

        let sdk = sdk_config(env).await;
        create_tables(&sdk, &model).await?;
        let metrics = if env.contains_key("AWS_ENDPOINT_URL")
            || env.contains_key("AWS_ENDPOINT_URL_CLOUDWATCH")
        {
            MetricsForwarder::new(aws_sdk_cloudwatch::Client::new(&sdk))
        } else {
            MetricsForwarder::disabled()
        };

        let mut functions = model.functions.clone();
        let database_accounts =
            crate::database::localize(&mut functions, env, &options.stack_name, &sdk).await?;
        let functions = with_extra_env(&functions, &options.function_env)?;
        let lambda = LambdaService::new(
            &functions,
            LambdaConfig {
                binaries: options.binaries.clone(),
                base_env: aws_env(env, &url),
                default_concurrency: options.concurrency,
                idle_timeout: options.idle_timeout,
                logs_dir: options.state_dir.join("logs"),
                log_limits: options.retention.logs,
                kill: options.kill.clone(),
                lose_answers: options.lose_answers.clone(),
                seed: options.seed,
            },
            metrics.clone(),
        )?;

        let aws = env
            .get("AWS_ENDPOINT_URL_DYNAMODB")
            .or_else(|| env.get("AWS_ENDPOINT_URL"))
            .map(|endpoint| AwsTarget {
                endpoint: endpoint.clone(),
                sqs_endpoint: env
                    .get("AWS_ENDPOINT_URL_SQS")
                    .or_else(|| env.get("AWS_ENDPOINT_URL"))
                    .unwrap_or(endpoint)
                    .clone(),
                region: region.clone(),
                access_key: env_or(env, "AWS_ACCESS_KEY_ID", "testing").to_owned(),
                secret_key: env_or(env, "AWS_SECRET_ACCESS_KEY", "testing").to_owned(),
            });
        let sfn = StepFunctions::with_tasks(&region, LOCAL_ACCOUNT, options.seed, |sfn| {
            Integrations::new(lambda.clone(), sfn.clone(), aws).tasks()
        });
        sfn.keep_finished(options.retention.finished_executions);
        sfn.scale_time(options.time_scale)
            .map_err(StackError::TimeScale)?;
        if let Some(path) = &options.mock_config {
            let text = std::fs::read_to_string(path).map_err(|e| StackError::MockConfig {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            let config = MockConfig::parse(&text).map_err(|reason| StackError::MockConfig {
                path: path.clone(),
                reason,
            })?;
            sfn.set_mocks(config);
        }
        register_machines(&sfn, &model, &options.stack_name)?;
        let events = EventBus::new(model.rules.clone(), lambda.clone(), &sfn, options.seed)?;
        events.start_schedules();

        let cfn = Arc::new(CfnResponses::default());
        let stats = {
            let (lambda, sfn, events, metrics) =
                (lambda.clone(), sfn.clone(), events.clone(), metrics.clone());
            Arc::new(move || {
                json!({
                    "functions": lambda.stats(),
                    "runningExecutions": sfn.running().len(),
                    "eventsDelivered": events.delivered(),
                    "metricsPublished": metrics.published(),
                })
            })
        };
        let state = AppState {
            sfn: sfn.clone(),
            lambda: lambda.clone(),
            cfn: cfn.clone(),
            stats,
            trace: crate::trace_view::trace_state(&sfn, &lambda, env, &sdk),
        };
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, local_only(app(state), address)).await {
                warn!(error = %e, "server stopped");
            }
        });
        let mut stack = Stack {
            sfn,
            lambda,
            events,
            model,
            url,
            metrics,
            database_accounts,
            cfn,
            created: Vec::new(),
            server,
            rng: Rng::new(options.seed ^ 0xcf),
            stack_id: format!(
                "arn:aws:cloudformation:{region}:{LOCAL_ACCOUNT}:stack/{}/local",
                options.stack_name
            ),
        };
        for resource in stack.model.custom_resources.clone() {
            match stack.custom_resource(&resource, "Create", None).await {
                Ok(physical_id) => stack.created.push((resource, physical_id)),
                Err(e) => {
                    stack.shutdown().await;
                    return Err(e);
                }
            }
        }
        info!(url = %stack.url, "local stack ready");
        Ok(stack)
    }

    /// Sends one custom resource request and waits for its response; returns the physical id.
    async fn custom_resource(
        &self,
        spec: &CustomResourceSpec,
        request_type: &str,
        physical_id: Option<&str>,
    ) -> Result<String, StackError> {
        let function = self
            .lambda
            .resolve(&spec.service_token)
            .ok_or_else(|| StackError::ServiceToken {
                resource: spec.logical_id.clone(),
                token: spec.service_token.clone(),
            })?
            .clone();
        let token = format!("{:016x}{:016x}", self.rng.next_u64(), self.rng.next_u64());
        let request_id = format!("{:016x}", self.rng.next_u64());
        let mut request = json!({
            "RequestType": request_type,
            "ServiceToken": spec.service_token,
            "ResponseURL": format!("{}/cloudformation/{token}", self.url),
            "StackId": self.stack_id,
            "RequestId": request_id,
            "LogicalResourceId": spec.logical_id,
            "ResourceType": spec.resource_type,
            "ResourceProperties": Value::Object(spec.properties.clone()),
        });
        if let Some(id) = physical_id {
            request["PhysicalResourceId"] = json!(id);
        }
        let response = self.cfn.expect(&token);
        // CloudFormation invokes custom resource functions asynchronously.
        self.lambda
            .invoke_async(&function.arn, request.to_string().into_bytes())
            .map_err(|source| StackError::CustomResourceInvoke {
                resource: spec.logical_id.clone(),
                source,
            })?;
        let wait = Duration::from_secs(function.timeout_seconds * 3 + 30);
        let answer = tokio::time::timeout(wait, response)
            .await
            .map_err(|_| StackError::CustomResourceTimeout {
                resource: spec.logical_id.clone(),
                request_type: request_type.to_owned(),
                seconds: wait.as_secs(),
            })?
            .map_err(|_| StackError::CustomResourceChannel {
                resource: spec.logical_id.clone(),
            })?;
        if answer["Status"] == "SUCCESS" {
            let id = answer["PhysicalResourceId"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            info!(resource = %spec.logical_id, request_type, physical_id = %id, data = %answer["Data"], "custom resource succeeded");
            Ok(id)
        } else {
            Err(StackError::CustomResourceFailed {
                resource: spec.logical_id.clone(),
                request_type: request_type.to_owned(),
                reason: answer["Reason"]
                    .as_str()
                    .unwrap_or("no reason given")
                    .to_owned(),
            })
        }
    }

    /// The ARN of a state machine by logical id.
    pub fn state_machine_arn(&self, logical_id: &str) -> Option<&str> {
        self.model
            .state_machines
            .iter()
            .find(|m| m.logical_id == logical_id)
            .map(|m| m.arn.as_str())
    }

    /// `KEY=VALUE` pairs describing the running stack (for `.local/stack.env`).
    pub fn env_lines(&self) -> Vec<(String, String)> {
        let mut lines = vec![
            ("LOCAL_STACK_URL".to_owned(), self.url.clone()),
            ("AWS_ENDPOINT_URL_SFN".to_owned(), self.url.clone()),
            ("AWS_ENDPOINT_URL_LAMBDA".to_owned(), self.url.clone()),
        ];
        for machine in &self.model.state_machines {
            lines.push((
                format!("{}_ARN", screaming(&machine.logical_id)),
                machine.arn.clone(),
            ));
        }
        if let Some(arn) = self.state_machine_arn("LoadHarnessStateMachine") {
            lines.push(("HARNESS_STATE_MACHINE_ARN".to_owned(), arn.to_owned()));
        }
        for function in &self.model.functions {
            lines.push((
                format!("{}_NAME", screaming(&function.logical_id)),
                function.name.clone(),
            ));
        }
        for table in &self.model.tables {
            lines.push((
                format!("{}_NAME", screaming(&table.logical_id)),
                table.name.clone(),
            ));
        }
        for account in &self.database_accounts {
            let key = format!("DATABASE_ACCOUNT_{}", account.user.to_ascii_uppercase());
            lines.push((key.clone(), account.account.clone()));
            lines.push((format!("{key}_SECRET_ARN"), account.secret_arn.clone()));
        }
        lines
    }

    /// Deletes the custom resources (as a stack deletion would), stops every container and the
    /// server. Running executions end with the process.
    pub async fn shutdown(self) {
        for (spec, id) in self.created.iter().rev() {
            let outcome = tokio::time::timeout(
                Duration::from_secs(30),
                self.custom_resource(spec, "Delete", Some(id)),
            )
            .await;
            match outcome {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => warn!(error = %e, "custom resource delete failed"),
                Err(_) => warn!(resource = %spec.logical_id, "custom resource delete timed out"),
            }
        }
        for execution in self.sfn.running() {
            execution.stop(
                Some("States.Runtime".into()),
                Some("The local stack was stopped".into()),
            );
        }
        self.lambda.shutdown().await;
        self.server.abort();
    }
}

/// The local MariaDB standing in for the template's database, when `.local/env` names it; its
/// administrator stands in for the RDS master user (`MasterUserSecret`).
fn local_database(env: &BTreeMap<String, String>) -> Option<LocalDatabase> {
    match (
        env.get("DB_HOST"),
        env.get("DB_PORT"),
        env.get("DB_ADMIN_SECRET_ARN")
            .or_else(|| env.get("DB_SECRET_ARN")),
    ) {
        (Some(host), Some(port), Some(secret)) => Some(LocalDatabase {
            host: host.clone(),
            port: port.clone(),
            secret_arn: secret.clone(),
        }),
        _ => None,
    }
}

/// What the functions' processes inherit from `.local/env`: region, credentials, endpoints.
/// The template's functions with the extra environment of `--function-env` added.
fn with_extra_env(
    functions: &[FunctionSpec],
    extra: &HashMap<String, BTreeMap<String, String>>,
) -> Result<Vec<FunctionSpec>, StackError> {
    if let Some(unknown) = extra.keys().find(|key| {
        !functions
            .iter()
            .any(|f| &f.logical_id == *key || &f.name == *key)
    }) {
        return Err(StackError::EnvTarget(unknown.clone()));
    }
    Ok(functions
        .iter()
        .map(|f| {
            let mut f = f.clone();
            for key in [&f.logical_id.clone(), &f.name.clone()] {
                if let Some(vars) = extra.get(key) {
                    f.environment.extend(vars.clone());
                }
            }
            f
        })
        .collect())
}

/// The AWS settings every function gets: region, credentials and endpoints of the services
/// behind the stack, with the Step Functions and Lambda endpoints pointing at this stack (a
/// function completes waiting tasks through SendTaskSuccess here, as it would in AWS).
fn aws_env(env: &BTreeMap<String, String>, stack_url: &str) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = env
        .iter()
        .filter(|(k, _)| {
            matches!(
                k.as_str(),
                "AWS_REGION" | "AWS_DEFAULT_REGION" | "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY"
            ) || k.starts_with("AWS_ENDPOINT_URL")
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for key in ["AWS_ENDPOINT_URL_SFN", "AWS_ENDPOINT_URL_LAMBDA"] {
        out.insert(key.to_owned(), stack_url.to_owned());
    }
    out
}

/// Creates the template's state machines, after checking that every Task resource runs here.
fn register_machines(
    sfn: &StepFunctions,
    model: &StackModel,
    stack_name: &str,
) -> Result<(), StackError> {
    for machine in &model.state_machines {
        for resource in StepFunctions::task_resources(&machine.definition) {
            if !sfn.supports(&resource) {
                return Err(StackError::UnsupportedTask {
                    machine: machine.logical_id.clone(),
                    resource,
                });
            }
        }
        let role = format!(
            "arn:aws:iam::{LOCAL_ACCOUNT}:role/{}-{}Role",
            stack_name, machine.logical_id
        );
        sfn.create_machine(&machine.name, &machine.definition, &role, &machine.kind)
            .map_err(|source| StackError::StateMachine {
                machine: machine.logical_id.clone(),
                source,
            })?;
    }
    Ok(())
}

/// `ConnectionStateMachine` → `CONNECTION_STATE_MACHINE`.
pub fn screaming(id: &str) -> String {
    let mut out = String::new();
    for (i, c) in id.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

async fn create_tables(sdk: &aws_config::SdkConfig, model: &StackModel) -> Result<(), StackError> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    if model.tables.is_empty() {
        return Ok(());
    }
    let client = aws_sdk_dynamodb::Client::new(sdk);
    for table in &model.tables {
        let schema_error = |source| StackError::TableSchema {
            table: table.logical_id.clone(),
            source,
        };
        let mut request = client
            .create_table()
            .table_name(&table.name)
            .billing_mode(BillingMode::PayPerRequest);
        for (name, kind, ty) in &table.keys {
            request = request
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name(name)
                        .key_type(KeyType::from(kind.as_str()))
                        .build()
                        .map_err(schema_error)?,
                )
                .attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name(name)
                        .attribute_type(ScalarAttributeType::from(ty.as_str()))
                        .build()
                        .map_err(schema_error)?,
                );
        }
        match request.send().await {
            Ok(_) => info!(table = %table.name, "table created"),
            Err(e) => {
                let exists = e
                    .as_service_error()
                    .is_some_and(|s| s.is_resource_in_use_exception());
                if !exists {
                    return Err(StackError::Table {
                        table: table.logical_id.clone(),
                        source: Box::new(e),
                    });
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn logical_ids_become_variable_names() {
        assert_eq!(
            super::screaming("ConnectionStateMachine"),
            "CONNECTION_STATE_MACHINE"
        );
        assert_eq!(super::screaming("LeaseTable"), "LEASE_TABLE");
    }
}
