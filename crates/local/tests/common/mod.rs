//! Starting a local stack for a test: the repository's template.yaml (or a test template), the
//! real handler binaries, and the local services of scripts/dev-env.sh.

#![allow(dead_code)]

use leasehold_local::{Stack, StackOptions};
use leasehold_testkit::{sdk_config, unique};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

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

    /// The pool record (budget, in use) and the number of lease records of pool `main`.
    pub async fn pool(&self) -> (u64, u64, usize) {
        use aws_sdk_dynamodb::types::AttributeValue;
        let items = self
            .dynamodb
            .query()
            .table_name(self.lease_table())
            .key_condition_expression("pk = :p")
            .expression_attribute_values(":p", AttributeValue::S("main".into()))
            .consistent_read(true)
            .send()
            .await
            .expect("Query lease table")
            .items
            .unwrap_or_default();
        let number = |item: &HashMap<String, AttributeValue>, key: &str| -> u64 {
            item.get(key)
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        let pool = items
            .iter()
            .find(|i| i.get("sk").and_then(|v| v.as_s().ok()).map(String::as_str) == Some("#POOL"))
            .expect("pool record of main");
        let leases = items.len() - 1;
        (number(pool, "budget"), number(pool, "inUse"), leases)
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
