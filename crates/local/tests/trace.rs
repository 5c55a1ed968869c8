//! The trace page's routes on a real local stack: called with `oneshot` (no socket) on the
//! stack's view of its Step Functions, plus one request over the stack's real socket. The
//! routes alone are tested in `crates/trace`, the page in a browser by
//! scripts/checks/40-trace-page.sh.

mod common;

use axum::http::StatusCode;
use common::{Setup, start};
use leasehold_testkit::router::get;
use leasehold_trace::{DEFAULT_NAMESPACE, TraceState, app};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The polling path (Acquire with retries); the queued path's waiting state is traced in
/// `a_task_that_waits_for_its_callback_is_shown_waiting`.
const LIST: &str =
    r#"{"pool": "main", "query": "listEmployees", "params": {}, "holdMs": 0, "mode": "polling"}"#;

fn trace_app(t: &common::TestStack) -> axum::Router {
    app(Arc::new(TraceState {
        view: t.stack().sfn.clone(),
        cloudwatch: None,
        namespace: DEFAULT_NAMESPACE.to_owned(),
    }))
}

fn q(v: &str) -> String {
    v.replace(':', "%3A")
}

fn statuses(execution: &Value) -> BTreeMap<String, String> {
    execution["graph"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "state" || n["kind"] == "map")
        .map(|n| {
            (
                n["id"].as_str().unwrap().to_owned(),
                n["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn edge<'a>(execution: &'a Value, from: &str, to: &str, kind: &str) -> &'a Value {
    execution["graph"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["from"] == from && e["to"] == to && e["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} edge {from} -> {to}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_is_traced_with_its_path_history_and_list() {
    // GIVEN a stack that ran a served connection workflow and one with invalid input
    let t = start(Setup::default()).await;
    let served = t.start_execution("ConnectionStateMachine", LIST).await;
    let invalid = t
        .start_execution("ConnectionStateMachine", r#"{"query": "listEmployees"}"#)
        .await;
    assert_eq!(
        t.finished(&served, Duration::from_secs(60))
            .await
            .status
            .as_str(),
        "SUCCEEDED"
    );
    t.finished(&invalid, Duration::from_secs(60)).await;
    let app = trace_app(&t);

    // WHEN the page asks for the served execution
    let (status, x) = get(&app, &format!("/trace/api/execution?arn={}", q(&served))).await;
    assert_eq!(status, StatusCode::OK, "{x}");

    // THEN every state of the definition is drawn, coloured by the path taken
    let definition: Value =
        serde_json::from_str(include_str!("../../../statemachines/connection.asl.json")).unwrap();
    let s = statuses(&x);
    let names: Vec<&String> = s.keys().collect();
    let mut expected: Vec<&String> = definition["States"].as_object().unwrap().keys().collect();
    expected.sort();
    assert_eq!(names, expected);
    for state in [
        "ValidateInput",
        "ChooseAcquireMode",
        "Acquire",
        "Query",
        "Release",
        "WriteCache",
        "Served",
    ] {
        assert_eq!(s[state], "succeeded", "{state}");
    }
    for state in [
        "LookupCache",
        "Shed",
        "InvalidInput",
        "QueryFailed",
        "AcquireQueued",
    ] {
        assert_eq!(s[state], "not-reached", "{state}");
    }
    assert_eq!(edge(&x, "Acquire", "Query", "next")["status"], "succeeded");
    assert_eq!(edge(&x, "Acquire", "LookupCache", "catch")["taken"], 0);
    assert_eq!(edge(&x, "Served", "__end__", "end")["taken"], 1);
    assert_eq!(x["execution"]["status"], "SUCCEEDED");
    assert_eq!(x["execution"]["output"]["status"], "SERVED");
    assert_eq!(x["execution"]["input"]["pool"], "main");

    // AND the history has every event with its state, and pages on with `after`
    let (_, h) = get(&app, &format!("/trace/api/history?arn={}", q(&served))).await;
    let events = h["events"].as_array().unwrap();
    assert_eq!(events.len(), t.history(&served).await.len());
    assert_eq!(x["eventCount"], json!(events.len()));
    assert_eq!(events[0]["type"], "ExecutionStarted");
    let acquire: Vec<&str> = events
        .iter()
        .filter(|e| e["state"] == "Acquire")
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        acquire,
        [
            "TaskStateEntered",
            "TaskScheduled",
            "TaskStarted",
            "TaskSucceeded",
            "TaskStateExited"
        ]
    );
    assert!(events.iter().all(|e| e["elapsedMs"].as_i64().unwrap() >= 0));
    let (_, tail) = get(
        &app,
        &format!("/trace/api/history?arn={}&after=30", q(&served)),
    )
    .await;
    let ids: Vec<u64> = tail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, (31..=events.len() as u64).collect::<Vec<_>>());

    // AND the invalid input failed in InvalidInput
    let (_, f) = get(&app, &format!("/trace/api/execution?arn={}", q(&invalid))).await;
    let s = statuses(&f);
    assert_eq!(
        (s["ValidateInput"].as_str(), s["InvalidInput"].as_str()),
        ("succeeded", "failed")
    );
    assert_eq!(
        edge(&f, "InvalidInput", "__end__", "end")["status"],
        "failed"
    );
    assert_eq!(f["execution"]["error"], "InvalidInput");

    // AND the list is newest first and filters by status
    let machine = t.arn("ConnectionStateMachine");
    let (_, all) = get(
        &app,
        &format!("/trace/api/executions?machine={}", q(&machine)),
    )
    .await;
    let listed: Vec<&str> = all["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["arn"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [invalid.as_str(), served.as_str()]);
    let (_, failed) = get(
        &app,
        &format!(
            "/trace/api/executions?machine={}&status=FAILED",
            q(&machine)
        ),
    )
    .await;
    assert_eq!(failed["total"], 1);
    assert_eq!(failed["executions"][0]["arn"], json!(invalid));
    assert!(failed["executions"][0]["durationMs"].as_i64().is_some());
    let (_, machines) = get(&app, "/trace/api/machines").await;
    let connection = machines["machines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["arn"] == json!(machine))
        .expect("the connection machine");
    assert_eq!(connection["executions"], 2);

    // AND mistakes get a plain message with a fitting status
    let (status, e) = get(
        &app,
        &format!("/trace/api/executions?machine={}&status=DONE", q(&machine)),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(e["message"].as_str().unwrap().contains("unknown status"));
    let missing = served.replace(':', "%3A") + "x";
    let (status, e) = get(&app, &format!("/trace/api/execution?arn={missing}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("Execution Does Not Exist")
    );
    let (status, _) = get(&app, "/trace/api/execution").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, e) = get(&app, "/trace/api/metrics").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(e["message"].as_str().unwrap().contains("no CloudWatch"));

    // AND over the stack's real socket, the page and its API are served
    let page = reqwest::get(format!("{}/trace", t.url)).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    assert!(page.text().await.unwrap().contains("/trace/api/execution"));
    let over_socket: Value =
        reqwest::get(format!("{}/trace/api/execution?arn={}", t.url, q(&served)))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(statuses(&over_socket), statuses(&x));
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_iterations_link_to_the_child_executions_they_started() {
    // GIVEN a load harness of three iterations
    let t = start(Setup::default()).await;
    let input = r#"{"iterations": 3, "concurrency": 2, "pool": "main", "query": "listEmployees", "params": {}, "holdMs": 0}"#;
    let harness = t.start_execution("LoadHarnessStateMachine", input).await;
    let d = t.finished(&harness, Duration::from_secs(90)).await;
    assert_eq!(d.status.as_str(), "SUCCEEDED", "{:?}", d.cause());
    let app = trace_app(&t);

    // WHEN the page asks for it
    let (_, x) = get(&app, &format!("/trace/api/execution?arn={}", q(&harness))).await;

    // THEN the Map and its item processor are on the path, the Catch branch is not
    let s = statuses(&x);
    assert_eq!(s["RunIterations"], "succeeded");
    assert_eq!(s["RunConnectionWorkflow"], "succeeded");
    assert_eq!(s["CountAsFailed"], "not-reached");
    let inner = x["graph"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "RunConnectionWorkflow")
        .unwrap();
    assert_eq!(inner["parent"], "RunIterations");
    assert_eq!(inner["visits"], 3);

    // AND each iteration names the connection execution it started, which names it back
    let iterations = x["iterations"].as_array().unwrap();
    let labels: Vec<&str> = iterations
        .iter()
        .map(|i| i["label"].as_str().unwrap())
        .collect();
    let mut sorted = labels.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["RunIterations[0]", "RunIterations[1]", "RunIterations[2]"]
    );
    let connection = t.arn("ConnectionStateMachine");
    let (_, children) = get(
        &app,
        &format!("/trace/api/executions?machine={}", q(&connection)),
    )
    .await;
    for iteration in iterations {
        assert_eq!(iteration["status"], "succeeded");
        assert_eq!(iteration["childStatus"], "SUCCEEDED");
        let child = iteration["child"].as_str().expect("a child execution");
        let listed = children["executions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["arn"] == child)
            .expect("the child is an execution of the connection machine");
        assert_eq!(listed["startedBy"], json!(harness));
        let (_, c) = get(&app, &format!("/trace/api/execution?arn={}", q(child))).await;
        assert_eq!(c["execution"]["startedBy"], json!(harness));
        assert_eq!(statuses(&c)["Served"], "succeeded");
    }
    assert_eq!(x["children"].as_array().unwrap().len(), 3);
    // Every event of an iteration's task carries the iteration.
    let (_, h) = get(&app, &format!("/trace/api/history?arn={}", q(&harness))).await;
    for e in h["events"].as_array().unwrap() {
        if e["state"] == "RunConnectionWorkflow" {
            assert!(
                e["iteration"]
                    .as_str()
                    .unwrap()
                    .starts_with("RunIterations[")
            );
        }
    }
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_waits_for_its_callback_is_shown_waiting() {
    // GIVEN a callback task whose function has answered
    let t = start(Setup {
        template: Some(common::callback_template()),
        ..Setup::default()
    })
    .await;
    let arn = t
        .sfn
        .start_execution()
        .state_machine_arn(t.arn("Callback"))
        .input(common::callback_input(&t, "Notify", 30, 30))
        .send()
        .await
        .expect("StartExecution")
        .execution_arn;
    let history = t
        .history_with(&arn, "TaskSubmitted", Duration::from_secs(10))
        .await;
    let app = trace_app(&t);

    // WHEN the page asks for the execution
    let (status, x) = get(&app, &format!("/trace/api/execution?arn={}", q(&arn))).await;
    assert_eq!(status, StatusCode::OK, "{x}");

    // THEN it runs, its state waits for the callback, and the history says why
    assert_eq!(x["execution"]["status"], "RUNNING");
    assert_eq!(x["execution"]["waitingForCallback"], json!(["Wait"]));
    let s = statuses(&x);
    assert_eq!(
        (s["Wait"].as_str(), s["Refused"].as_str()),
        ("waiting", "not-reached")
    );
    let (_, h) = get(&app, &format!("/trace/api/history?arn={}", q(&arn))).await;
    let submitted = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "TaskSubmitted")
        .expect("TaskSubmitted");
    assert_eq!(submitted["state"], "Wait");

    // WHEN the callback comes THEN the state succeeds and nothing waits any more
    t.sfn
        .send_task_success()
        .task_token(common::task_token(&history))
        .output(r#"{"leaseId": "l-1"}"#)
        .send()
        .await
        .expect("SendTaskSuccess");
    assert_eq!(
        t.finished(&arn, Duration::from_secs(10))
            .await
            .status
            .as_str(),
        "SUCCEEDED"
    );
    let (_, x) = get(&app, &format!("/trace/api/execution?arn={}", q(&arn))).await;
    assert_eq!(statuses(&x)["Wait"], "succeeded");
    assert_eq!(x["execution"]["waitingForCallback"], json!([]));
    t.shutdown().await;
}
