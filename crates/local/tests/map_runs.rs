//! DescribeMapRun and ListMapRuns through the real `aws` CLI: a Distributed Map run's status,
//! limits and item and child-execution counts, while it runs and after it succeeded, failed
//! or was stopped; batches count as one child execution each; an execution's runs list in
//! order (over pages); unknown and malformed ARNs get AWS's error names.

mod common;

use common::{Setup, TestStack, aws, create_machine, ended, ok, on_execution, start, start_cli};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A Distributed Map over `$.items`, each item failing when it is `"bad"` and otherwise
/// waiting `$.nap` seconds (0 unless given); `extra` is merged into the Map state.
fn distributed(extra: Value) -> Value {
    let map = json!({
        "Type": "Map",
        "ItemsPath": "$.items",
        "ItemSelector": {"item.$": "$$.Map.Item.Value", "nap.$": "$.nap"},
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Check",
            "States": {
                "Check": {
                    "Type": "Choice",
                    "Choices": [{"Variable": "$.item", "StringEquals": "bad", "Next": "Broken"}],
                    "Default": "Nap"
                },
                "Broken": {"Type": "Fail", "Error": "Broken", "Cause": "a bad item"},
                "Nap": {"Type": "Wait", "SecondsPath": "$.nap", "End": true}
            }
        },
        "End": true
    });
    merge(map, extra)
}

fn machine(t: &TestStack, name: &str, map: Value) -> String {
    let definition = json!({"StartAt": "Each", "States": {"Each": map}});
    create_machine(t, name, &definition.to_string())
}

fn run(t: &TestStack, machine: &str, input: Value) -> String {
    start_cli(t, machine, &["--input", &input.to_string()])
}

fn list(t: &TestStack, execution: &str, page_size: &str) -> Vec<Value> {
    ok(
        &t.url,
        &[
            "stepfunctions",
            "list-map-runs",
            "--execution-arn",
            execution,
            "--page-size",
            page_size,
        ],
    )["mapRuns"]
        .as_array()
        .unwrap()
        .clone()
}

fn describe(t: &TestStack, map_run: &str) -> Value {
    ok(
        &t.url,
        &[
            "stepfunctions",
            "describe-map-run",
            "--map-run-arn",
            map_run,
        ],
    )
}

/// The map run ARNs the history records, in order.
fn started_runs(history: &[Value]) -> Vec<String> {
    history
        .iter()
        .filter(|e| e["type"] == "MapRunStarted")
        .map(|e| {
            e["mapRunStartedEventDetails"]["mapRunArn"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// (pending, running, succeeded, failed, aborted, total) of a counts object.
fn counts(c: &Value) -> [u64; 6] {
    [
        "pending",
        "running",
        "succeeded",
        "failed",
        "aborted",
        "total",
    ]
    .map(|k| c[k].as_u64().unwrap_or_else(|| panic!("{k} in {c}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_runs_are_described_and_listed_as_they_go() {
    let t = start(Setup::empty("map-runs")).await;

    // Tolerated failure: 4 of 5 items succeed, the run and the execution too.
    let tolerant = machine(
        &t,
        "Tolerant",
        distributed(json!({"Label": "Orders", "MaxConcurrency": 2, "ToleratedFailureCount": 1})),
    );
    let execution = run(
        &t,
        &tolerant,
        json!({"items": ["a", "b", "bad", "c", "d"], "nap": 0}),
    );
    let (d, history) = ended(&t, &execution);
    assert_eq!(d["status"], "SUCCEEDED", "{d}");
    let arns = started_runs(&history);
    assert_eq!(arns.len(), 1);
    assert!(arns[0].contains(":mapRun:Tolerant/Orders:"), "{}", arns[0]);
    let listed = list(&t, &execution, "100");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["mapRunArn"], arns[0].as_str());
    assert_eq!(listed[0]["executionArn"], execution.as_str());
    assert_eq!(listed[0]["stateMachineArn"], tolerant.as_str());
    assert!(listed[0]["stopDate"].as_f64() >= listed[0]["startDate"].as_f64());
    let r = describe(&t, &arns[0]);
    assert_eq!(r["status"], "SUCCEEDED", "{r}");
    assert_eq!(r["executionArn"], execution.as_str());
    assert_eq!(
        (
            r["maxConcurrency"].as_u64(),
            r["toleratedFailureCount"].as_u64()
        ),
        (Some(2), Some(1))
    );
    assert_eq!(r["toleratedFailurePercentage"].as_f64(), Some(0.0));
    assert_eq!(counts(&r["itemCounts"]), [0, 0, 4, 1, 0, 5]);
    assert_eq!(counts(&r["executionCounts"]), [0, 0, 4, 1, 0, 5]);
    assert!(r["stopDate"].is_number(), "{r}");

    // Batches: five items in child executions of two; a failure beyond the tolerance fails
    // the run.
    let strict = machine(
        &t,
        "Batched",
        distributed(json!({
            "ItemBatcher": {"MaxItemsPerBatch": 2},
            "ItemSelector": {"item.$": "$$.Map.Item.Value"},
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "Check",
                "States": {
                    "Check": {
                        "Type": "Choice",
                        "Choices": [{"Variable": "$.Items[0].item", "StringEquals": "bad", "Next": "Broken"}],
                        "Default": "Fine"
                    },
                    "Broken": {"Type": "Fail", "Error": "Broken"},
                    "Fine": {"Type": "Succeed"}
                }
            },
            "MaxConcurrency": 1
        })),
    );
    let execution = run(&t, &strict, json!({"items": ["a", "b", "c", "d", "bad"]}));
    let (d, history) = ended(&t, &execution);
    assert_eq!(
        (d["status"].as_str(), d["error"].as_str()),
        (Some("FAILED"), Some("Broken")),
        "{d}"
    );
    let arns = started_runs(&history);
    let r = describe(&t, &arns[0]);
    assert_eq!(r["status"], "FAILED", "{r}");
    assert_eq!(counts(&r["executionCounts"]), [0, 0, 2, 1, 0, 3]);
    assert_eq!(counts(&r["itemCounts"]), [0, 0, 4, 1, 0, 5]);

    // While it runs: two children at a time napping, the others pending; stopped, the
    // running ones count as aborted.
    let slow = machine(&t, "Slow", distributed(json!({"MaxConcurrency": 2})));
    let execution = run(
        &t,
        &slow,
        json!({"items": ["a", "b", "c", "d", "e"], "nap": 3000}),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let arn = loop {
        if let Some(run) = list(&t, &execution, "100").first() {
            let arn = run["mapRunArn"].as_str().unwrap().to_owned();
            if counts(&describe(&t, &arn)["itemCounts"])[1] == 2 {
                break arn;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no map run with two children running"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let r = describe(&t, &arn);
    assert_eq!(r["status"], "RUNNING", "{r}");
    assert!(r.get("stopDate").is_none(), "{r}");
    assert_eq!(counts(&r["itemCounts"]), [3, 2, 0, 0, 0, 5]);
    on_execution(&t, "stop-execution", &execution);
    let (d, _) = ended(&t, &execution);
    assert_eq!(d["status"], "ABORTED");
    let r = describe(&t, &arn);
    assert_eq!(r["status"], "ABORTED", "{r}");
    assert_eq!(counts(&r["executionCounts"]), [3, 0, 0, 0, 2, 5]);
    assert!(r["stopDate"].is_number(), "{r}");

    // Two runs in one execution list oldest first, also a page at a time.
    let twice = json!({
        "StartAt": "First",
        "States": {
            "First": merge(distributed(json!({"Label": "First", "ResultPath": null})), json!({"End": null, "Next": "Second"})),
            "Second": distributed(json!({"Label": "Second"}))
        }
    });
    let twice = create_machine(&t, "Twice", &strip_nulls(twice).to_string());
    let execution = run(&t, &twice, json!({"items": ["a"], "nap": 0}));
    let (d, history) = ended(&t, &execution);
    assert_eq!(d["status"], "SUCCEEDED", "{d}");
    let arns = started_runs(&history);
    let listed: Vec<Value> = list(&t, &execution, "1")
        .iter()
        .map(|r| r["mapRunArn"].clone())
        .collect();
    assert_eq!(listed, arns.iter().map(|a| json!(a)).collect::<Vec<_>>());
    assert_eq!(listed.len(), 2);

    // Bad input: an unknown run, an ARN of another kind, an unknown execution.
    let unknown = format!("{}0", arns[0]);
    let (success, _, stderr) = aws(
        &t.url,
        &[
            "stepfunctions",
            "describe-map-run",
            "--map-run-arn",
            &unknown,
        ],
    );
    assert!(!success && stderr.contains("ResourceNotFound"), "{stderr}");
    let (success, _, stderr) = aws(
        &t.url,
        &[
            "stepfunctions",
            "describe-map-run",
            "--map-run-arn",
            &execution,
        ],
    );
    assert!(!success && stderr.contains("InvalidArn"), "{stderr}");
    let gone = format!("{execution}x");
    let (success, _, stderr) = aws(
        &t.url,
        &["stepfunctions", "list-map-runs", "--execution-arn", &gone],
    );
    assert!(
        !success && stderr.contains("ExecutionDoesNotExist"),
        "{stderr}"
    );
    t.shutdown().await;
}

/// `extra` merged into the object `v`.
fn merge(mut v: Value, extra: Value) -> Value {
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

/// Drops `null` members of objects (to remove a key with [`merge`]), keeping `ResultPath: null`.
fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(k, x)| !x.is_null() || k == "ResultPath")
                .map(|(k, x)| (k, strip_nulls(x)))
                .collect(),
        ),
        other => other,
    }
}
