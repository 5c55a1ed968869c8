//! Starting a local stack for a test: the repository's template.yaml (or a test template), the
//! real handler binaries, and the local services of scripts/dev-env.sh.

#![allow(dead_code)]

use leasehold_local::{Retention, Stack, StackOptions};
use leasehold_testkit::{sdk_config, unique};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// Where cargo put the handler binaries (`scripts/test.sh` builds them before the tests).
pub fn binaries() -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace().join("target"));
    let dir = target.join("debug");
    for name in ["acquire", "query", "release", "seed"] {
        assert!(
            dir.join(name).is_file(),
            "the handler binary {name} is missing from {}: run cargo build --bins first (scripts/test.sh does)",
            dir.display()
        );
    }
    dir
}

/// Writes a test template under target/ (one file per test process) and returns its path;
/// `CodeUri: handlers/...` is made absolute, since it is relative to the template's folder.
pub fn test_template(name: &str, text: &str) -> PathBuf {
    let dir = workspace().join("target/local-stack-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}-{}.yaml", std::process::id()));
    let fixed = text.replace(
        "CodeUri: handlers/",
        &format!("CodeUri: {}/handlers/", workspace().display()),
    );
    std::fs::write(&path, fixed).unwrap();
    path
}

/// A template for callback tasks: the state machine `Callback` ([`callback_machine`]), and
/// functions for it. `Notify` and `Stalls` run the release handler, which given a status change
/// event of an execution whose input names no pool answers at once ("nothing to release") and
/// otherwise calls DynamoDB (the `Stalls` tests point it at a server that never answers, so it
/// runs into its 3 s timeout); `Acquire` refuses any event with a task token in it
/// (`InvalidInput`). None of them calls back: the tests do, as a later handler would.
pub fn callback_template() -> PathBuf {
    let text = r#"
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Timeout: 2
    Environment:
      Variables:
        LEASE_TABLE: callback-leases
Resources:
  Callback:
    Type: AWS::Serverless::StateMachine
    Properties:
      Definition: DEFINITION
  Notify:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: handlers/release
  Stalls:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: handlers/release
      Timeout: 3
  Acquire:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: handlers/acquire
"#;
    // JSON is YAML: the definition goes in as it is.
    test_template(
        "callbacks",
        &text.replace("DEFINITION", &callback_machine()),
    )
}

/// A machine whose `Wait` state invokes `$.function` with its task token and waits for the
/// callback, within `$.timeout` and `$.heartbeat` seconds. The callback's `Refused` error and a
/// timeout are caught (into `$.refused`, `$.timedOut`); its output is the execution's output.
pub fn callback_machine() -> String {
    json!({"StartAt": "Wait", "States": {
        "Wait": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "Parameters": {"FunctionName.$": "$.function", "Payload": {
                "detail-type": "Step Functions Execution Status Change",
                "detail": {"executionArn.$": "$$.Execution.Id", "status": "FAILED",
                           "input.$": "$.notifyInput", "taskToken.$": "$$.Task.Token"}}},
            "TimeoutSecondsPath": "$.timeout", "HeartbeatSecondsPath": "$.heartbeat",
            "Catch": [{"ErrorEquals": ["Refused"], "ResultPath": "$.refused", "Next": "Refused"},
                      {"ErrorEquals": ["States.Timeout"], "ResultPath": "$.timedOut", "Next": "TimedOut"}],
            "End": true},
        "Refused": {"Type": "Pass", "End": true},
        "TimedOut": {"Type": "Pass", "End": true}}})
    .to_string()
}

/// The input of [`callback_machine`]: the function of the callback template to call, the
/// task's limits, and the pool the function is told about (`Stalls` needs one to stall).
pub fn callback_input(t: &TestStack, function: &str, timeout: u64, heartbeat: u64) -> String {
    let pool = if function == "Stalls" {
        r#"{"pool": "main"}"#
    } else {
        "{}"
    };
    json!({"function": format!("{}-{function}", t.name), "timeout": timeout,
           "heartbeat": heartbeat, "notifyInput": pool})
    .to_string()
}

/// A server that accepts connections and never answers (a stalled dependency); its port.
pub fn silent_server() -> u16 {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming().take(16).flatten() {
            held.push(stream);
        }
    });
    port
}

/// The task token a callback task was given, read from its `TaskScheduled` parameters.
pub fn task_token(history: &[Value]) -> String {
    fn find(v: &Value) -> Option<&str> {
        match v {
            Value::Object(m) => m
                .get("taskToken")
                .and_then(Value::as_str)
                .or_else(|| m.values().find_map(find)),
            Value::Array(items) => items.iter().find_map(find),
            _ => None,
        }
    }
    let scheduled = history
        .iter()
        .rfind(|e| e["type"] == "TaskScheduled")
        .expect("a TaskScheduled event");
    let parameters: Value = serde_json::from_str(
        scheduled["taskScheduledEventDetails"]["parameters"]
            .as_str()
            .expect("parameters"),
    )
    .expect("parameters are JSON");
    find(&parameters).expect("a taskToken").to_owned()
}

/// Runs `aws <args> --endpoint-url <url>`; returns (success, stdout JSON or text, stderr).
pub fn aws(url: &str, args: &[&str]) -> (bool, Value, String) {
    let output = Command::new("aws")
        .args(args)
        .args(["--endpoint-url", url, "--output", "json"])
        .env("AWS_DISABLE_HOST_PREFIX_INJECTION", "true")
        .env("AWS_PAGER", "")
        .current_dir(workspace())
        .output()
        .expect("the aws CLI is installed (scripts/test.sh installs it)");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let value = serde_json::from_str(&stdout).unwrap_or(Value::String(stdout));
    (
        output.status.success(),
        value,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `aws <args>`, which must succeed; its JSON answer.
pub fn ok(url: &str, args: &[&str]) -> Value {
    let (success, value, stderr) = aws(url, args);
    assert!(success, "aws {args:?} failed: {stderr}");
    value
}

/// The local services' environment, as the stack reads it from .local/env.
pub fn local_env() -> BTreeMap<String, String> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("AWS_") || k.starts_with("DB_"))
        .collect()
}

pub struct TestStack {
    pub stack: Option<Stack>,
    pub url: String,
    pub name: String,
    pub state_dir: PathBuf,
    pub sfn: aws_sdk_sfn::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
}

#[derive(Default)]
pub struct Setup {
    pub template: Option<PathBuf>,
    pub parameters: Vec<(&'static str, String)>,
    pub kill: Vec<(&'static str, f64)>,
    pub lose_answers: Vec<(&'static str, f64)>,
    /// Extra environment per function (logical id), e.g. fault knobs.
    pub function_env: Vec<(&'static str, &'static str, String)>,
    pub concurrency: Option<usize>,
    pub idle_seconds: Option<u64>,
    /// What the stack keeps (default: the stack's own defaults).
    pub retention: Option<Retention>,
    /// A mock configuration file (Step Functions Local's format).
    pub mock_config: Option<PathBuf>,
    /// The factor on Wait states, Retry intervals and timeouts (default 1).
    pub time_scale: Option<f64>,
}

impl Setup {
    /// A stack of a template with no resources (`EMPTY_TEMPLATE`, written as `name`): the test
    /// creates the machines it needs.
    pub fn empty(name: &str) -> Self {
        Setup {
            template: Some(test_template(name, EMPTY_TEMPLATE)),
            ..Setup::default()
        }
    }
}

pub async fn start(setup: Setup) -> TestStack {
    let name = unique("t");
    let state_dir = workspace().join("target/local-stack-tests").join(&name);
    let options = StackOptions {
        template: setup
            .template
            .unwrap_or_else(|| workspace().join("template.yaml")),
        env: local_env(),
        stack_name: name.clone(),
        parameters: setup
            .parameters
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect::<HashMap<_, _>>(),
        binaries: binaries(),
        state_dir: state_dir.clone(),
        kill: setup
            .kill
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        lose_answers: setup
            .lose_answers
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        function_env: setup.function_env.into_iter().fold(
            HashMap::new(),
            |mut all: HashMap<String, BTreeMap<String, String>>, (function, key, value)| {
                all.entry(function.to_owned())
                    .or_default()
                    .insert(key.to_owned(), value);
                all
            },
        ),
        seed: 7,
        concurrency: setup.concurrency.unwrap_or(16),
        idle_timeout: Duration::from_secs(setup.idle_seconds.unwrap_or(60)),
        retention: setup.retention.unwrap_or_default(),
        mock_config: setup.mock_config,
        time_scale: setup.time_scale.unwrap_or(1.0),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stack = Stack::start(options, listener)
        .await
        .unwrap_or_else(|e| panic!("the local stack did not start: {e}"));
    let url = stack.url.clone();
    let sdk = sdk_config().await;
    let sfn = aws_sdk_sfn::Client::from_conf(
        aws_sdk_sfn::config::Builder::from(&sdk)
            .endpoint_url(&url)
            .build(),
    );
    let lambda = aws_sdk_lambda::Client::from_conf(
        aws_sdk_lambda::config::Builder::from(&sdk)
            .endpoint_url(&url)
            .build(),
    );
    TestStack {
        stack: Some(stack),
        url,
        name,
        state_dir,
        sfn,
        lambda,
        dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
    }
}

impl TestStack {
    pub fn stack(&self) -> &Stack {
        self.stack.as_ref().expect("running")
    }

    /// The database account the query function signs in as: this stack's stand-in for the
    /// template's IAM-authenticated `leasehold_app`.
    pub fn app_account(&self) -> String {
        self.stack()
            .database_accounts
            .iter()
            .find(|a| a.user == "leasehold_app")
            .expect("the template's query function signs in with IAM as leasehold_app")
            .account
            .clone()
    }

    pub fn arn(&self, logical_id: &str) -> String {
        self.stack()
            .state_machine_arn(logical_id)
            .expect("state machine of the template")
            .to_owned()
    }

    pub fn lease_table(&self) -> String {
        format!("{}-LeaseTable", self.name)
    }

    pub async fn start_execution(&self, logical_id: &str, input: &str) -> String {
        self.sfn
            .start_execution()
            .state_machine_arn(self.arn(logical_id))
            .input(input)
            .send()
            .await
            .expect("StartExecution")
            .execution_arn
    }

    /// Polls DescribeExecution until the execution has ended (bounded).
    pub async fn finished(
        &self,
        arn: &str,
        within: Duration,
    ) -> aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let d = self
                .sfn
                .describe_execution()
                .execution_arn(arn)
                .send()
                .await
                .expect("DescribeExecution");
            if d.status.as_str() != "RUNNING" {
                return d;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{arn} still running after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Event types and details of an execution's history, oldest first.
    pub async fn history(&self, arn: &str) -> Vec<serde_json::Value> {
        // The SDK's types are not JSON; the raw API answer is what the console reads.
        let body = serde_json::json!({"executionArn": arn, "maxResults": 1000});
        let response = reqwest::Client::new()
            .post(&self.url)
            .header("x-amz-target", "AWSStepFunctions.GetExecutionHistory")
            .header("content-type", "application/x-amz-json-1.0")
            .body(body.to_string())
            .send()
            .await
            .expect("GetExecutionHistory");
        let value: serde_json::Value = response.json().await.expect("JSON");
        value["events"].as_array().cloned().unwrap_or_default()
    }

    /// The execution's history once it has an event of type `event_type` (bounded).
    pub async fn history_with(&self, arn: &str, event_type: &str, within: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let history = self.history(arn).await;
            if history.iter().any(|e| e["type"] == event_type) {
                return history;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{arn} has no {event_type} after {within:?}: {history:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Every item of pool `main` in the lease table: its record, leases and waiters.
    async fn pool_items(&self) -> Vec<HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        self.dynamodb
            .query()
            .table_name(self.lease_table())
            .key_condition_expression("pk = :p")
            .expression_attribute_values(
                ":p",
                aws_sdk_dynamodb::types::AttributeValue::S("main".into()),
            )
            .consistent_read(true)
            .send()
            .await
            .expect("Query lease table")
            .items
            .unwrap_or_default()
    }

    /// The pool record (budget, in use) and the number of lease records of pool `main`.
    pub async fn pool(&self) -> (u64, u64, usize) {
        use aws_sdk_dynamodb::types::AttributeValue;
        let items = self.pool_items().await;
        let number = |item: &HashMap<String, AttributeValue>, key: &str| -> u64 {
            item.get(key)
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        let sk = |item: &HashMap<String, AttributeValue>| {
            item.get("sk")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default()
        };
        let pool = items
            .iter()
            .find(|i| sk(i) == "#POOL")
            .expect("pool record of main");
        let leases = items.iter().filter(|i| sk(i).starts_with("LEASE#")).count();
        (number(pool, "budget"), number(pool, "inUse"), leases)
    }

    /// The waiting counter and the number of waiter records of pool `main`.
    pub async fn waiters(&self) -> (u64, usize) {
        let items = self.pool_items().await;
        let mut counter = 0;
        let mut records = 0;
        for item in &items {
            match item
                .get("sk")
                .and_then(|v| v.as_s().ok())
                .map(String::as_str)
            {
                Some("#POOL") => {
                    counter = item
                        .get("waiting")
                        .and_then(|v| v.as_n().ok())
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                }
                Some(sk) if sk.starts_with("WAIT#") => records += 1,
                _ => {}
            }
        }
        (counter, records)
    }

    /// Waits until pool `main` has `records` waiter records (bounded).
    pub async fn waiting(&self, records: usize, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let (_, now) = self.waiters().await;
            if now == records {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{now} waiters, not {records}, after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Invokes a function of the stack with `payload`; its answer as JSON (errors included).
    pub async fn invoke(&self, logical_id: &str, payload: &str) -> Value {
        let out = self
            .lambda
            .invoke()
            .function_name(format!("{}-{logical_id}", self.name))
            .payload(aws_sdk_lambda::primitives::Blob::new(payload))
            .send()
            .await
            .expect("Invoke");
        serde_json::from_slice(out.payload.expect("payload").as_ref()).expect("JSON answer")
    }

    /// Waits until pool `main` holds no lease (bounded); returns what is left.
    pub async fn drained(&self, within: Duration) -> (u64, usize) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let (_, in_use, leases) = self.pool().await;
            if (in_use == 0 && leases == 0) || tokio::time::Instant::now() >= deadline {
                return (in_use, leases);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Asks the release function to reclaim pool `main`'s expired leases, as its schedule does.
    pub async fn reclaim(&self) -> serde_json::Value {
        let out = self
            .lambda
            .invoke()
            .function_name(format!("{}-ReleaseFunction", self.name))
            .payload(aws_sdk_lambda::primitives::Blob::new(
                r#"{"pool": "main", "reclaimExpired": true}"#,
            ))
            .send()
            .await
            .expect("Invoke ReleaseFunction");
        assert!(out.function_error.is_none(), "reclaim failed: {out:?}");
        serde_json::from_slice(out.payload.expect("payload").as_ref()).expect("reclaim JSON")
    }

    /// Waits until the draining leases of pool `main` have expired, then reclaims them (bounded);
    /// returns what is left.
    pub async fn reclaimed(&self, within: Duration) -> (u64, usize) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            self.reclaim().await;
            let (_, in_use, leases) = self.pool().await;
            if (in_use == 0 && leases == 0) || tokio::time::Instant::now() >= deadline {
                return (in_use, leases);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    pub async fn stats(&self) -> serde_json::Value {
        reqwest::get(format!("{}/stats", self.url))
            .await
            .expect("stats")
            .json()
            .await
            .expect("stats JSON")
    }

    /// The text of every log file of a function.
    pub fn logs(&self, logical_id: &str) -> String {
        let dir = self
            .state_dir
            .join("logs")
            .join(format!("{}-{logical_id}", self.name));
        let mut text = String::new();
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
        text
    }

    pub async fn shutdown(mut self) {
        if let Some(stack) = self.stack.take() {
            stack.shutdown().await;
        }
    }
}

pub const ROLE: &str = "arn:aws:iam::123456789012:role/local";

/// A stack with no resources of its own: the tests create their state machines.
pub const EMPTY_TEMPLATE: &str = "AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
Resources: {}
";

/// Creates a state machine with the aws CLI; its ARN.
pub fn create_machine(t: &TestStack, name: &str, definition: &str) -> String {
    ok(
        &t.url,
        &[
            "stepfunctions",
            "create-state-machine",
            "--name",
            name,
            "--definition",
            definition,
            "--role-arn",
            ROLE,
        ],
    )["stateMachineArn"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Starts an execution of `machine` with the CLI (`more` adds options such as `--input`);
/// its ARN.
pub fn start_cli(t: &TestStack, machine: &str, more: &[&str]) -> String {
    let mut args = vec![
        "stepfunctions",
        "start-execution",
        "--state-machine-arn",
        machine,
    ];
    args.extend_from_slice(more);
    ok(&t.url, &args)["executionArn"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `aws stepfunctions <verb> --execution-arn <execution>` (stop, redrive, describe, ...): its
/// answer, asserting it succeeded.
pub fn on_execution(t: &TestStack, verb: &str, execution: &str) -> Value {
    ok(
        &t.url,
        &["stepfunctions", verb, "--execution-arn", execution],
    )
}

/// Starts `machine#case` (a test case of the stack's mock configuration) with the CLI and waits for the end: (describe-execution, history).
pub fn run_case(t: &TestStack, machine: &str, case: &str, input: &str) -> (Value, Vec<Value>) {
    let name = format!("with{case}");
    let target = format!("{machine}#{case}");
    let execution = start_cli(t, &target, &["--name", &name, "--input", input]);
    // The execution ARN carries no test case.
    assert!(!execution.contains('#'), "{execution}");
    ended(t, &execution)
}

/// Waits (bounded) for an execution to end, asking with the aws CLI: (describe-execution,
/// its history).
pub fn ended(t: &TestStack, execution: &str) -> (Value, Vec<Value>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let d = on_execution(t, "describe-execution", execution);
        if d["status"] != "RUNNING" {
            let history = on_execution(t, "get-execution-history", execution)["events"]
                .as_array()
                .unwrap()
                .clone();
            return (d, history);
        }
        assert!(Instant::now() < deadline, "{execution} still running");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn types(history: &[Value]) -> Vec<&str> {
    history
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect()
}

/// The workflow as deployed, its template substitutions filled with names nothing answers to
/// (every Task state of a test case is mocked).
pub fn connection_workflow() -> String {
    let text = std::fs::read_to_string(workspace().join("statemachines/connection.asl.json"))
        .expect("statemachines/connection.asl.json");
    let function = |name: &str| format!("arn:aws:lambda:us-east-1:123456789012:function:{name}");
    [
        ("AcquireFunctionArn", function("Acquire")),
        ("QueryFunctionArn", function("Query")),
        ("ReleaseFunctionArn", function("Release")),
        ("CacheTableName", "QueryCache".to_owned()),
        ("AcquireMode", "polling".to_owned()),
        ("QueueWaitSeconds", "20".to_owned()),
        ("QueueCheckSeconds", "5".to_owned()),
        ("CacheTtlSeconds", "300".to_owned()),
        ("QueryTimeoutSeconds", "35".to_owned()),
    ]
    .iter()
    .fold(text, |text, (key, value)| {
        text.replace(&format!("${{{key}}}"), value)
    })
}
