//! Service integrations and execution-level behaviour of state machines created through the API
//! (not from the template), run against the template's local functions.

mod common;

use common::{Setup, start};
use serde_json::{Value, json};
use std::time::Duration;

const ROLE: &str = "arn:aws:iam::123456789012:role/local";

async fn create(t: &common::TestStack, name: &str, definition: &Value) -> String {
    t.sfn
        .create_state_machine()
        .name(format!("{}-{name}", t.name))
        .definition(definition.to_string())
        .role_arn(ROLE)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateStateMachine {name}: {e:?}"))
        .state_machine_arn
}

async fn run(
    t: &common::TestStack,
    machine: &str,
    input: Value,
) -> (
    aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput,
    Vec<Value>,
) {
    let arn = t
        .sfn
        .start_execution()
        .state_machine_arn(machine)
        .input(input.to_string())
        .send()
        .await
        .unwrap()
        .execution_arn;
    let d = t.finished(&arn, Duration::from_secs(60)).await;
    (d, t.history(&arn).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_function_arns_child_executions_dynamodb_and_timeouts() {
    let t = start(Setup::default()).await;
    let acquire_arn = format!(
        "arn:aws:lambda:us-east-1:123456789012:function:{}-AcquireFunction",
        t.name
    );
    let cache = format!("{}-CacheTable", t.name);

    // A bare function ARN: the output is the function's response; history uses LambdaFunction* events.
    let bare = create(
        &t,
        "bare",
        &json!({"StartAt": "Grant", "States": {"Grant": {
        "Type": "Task", "Resource": acquire_arn, "End": true}}}),
    )
    .await;
    let (d, history) = run(
        &t,
        &bare,
        json!({"pool": "main", "leaseId": "bare-1", "ttlSeconds": 30}),
    )
    .await;
    assert_eq!(d.status.as_str(), "SUCCEEDED");
    let out: Value = serde_json::from_str(d.output().unwrap()).unwrap();
    assert_eq!(out["leaseId"], "bare-1");
    let kinds: Vec<&str> = history
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"LambdaFunctionScheduled") && kinds.contains(&"LambdaFunctionSucceeded"),
        "{kinds:?}"
    );
    // ... and a function error is the task's error, named by the handler.
    let (d, _) = run(&t, &bare, json!({"pool": "main"})).await;
    assert_eq!(
        (d.status.as_str(), d.error()),
        ("FAILED", Some("InvalidInput"))
    );

    // DynamoDB: put, conditional put (fails by name), update, get, delete.
    let item = json!({"pk": {"S": "k1"}, "v": {"N": "1"}});
    let ddb = create(&t, "ddb", &json!({"StartAt": "Put", "States": {
        "Put": {"Type": "Task", "Resource": "arn:aws:states:::dynamodb:putItem",
                "Parameters": {"TableName": cache, "Item": item}, "ResultPath": null, "Next": "Again"},
        "Again": {"Type": "Task", "Resource": "arn:aws:states:::dynamodb:putItem",
                "Parameters": {"TableName": cache, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"},
                "Catch": [{"ErrorEquals": ["DynamoDB.ConditionalCheckFailedException"], "ResultPath": "$.refused", "Next": "Bump"}],
                "End": true},
        "Bump": {"Type": "Task", "Resource": "arn:aws:states:::dynamodb:updateItem",
                "Parameters": {"TableName": cache, "Key": {"pk": {"S": "k1"}}, "UpdateExpression": "SET v = v + :one",
                               "ExpressionAttributeValues": {":one": {"N": "1"}}}, "ResultPath": null, "Next": "Read"},
        "Read": {"Type": "Task", "Resource": "arn:aws:states:::dynamodb:getItem",
                "Parameters": {"TableName": cache, "Key": {"pk": {"S": "k1"}}}, "ResultPath": "$.read", "Next": "Remove"},
        "Remove": {"Type": "Task", "Resource": "arn:aws:states:::dynamodb:deleteItem",
                "Parameters": {"TableName": cache, "Key": {"pk": {"S": "k1"}}}, "ResultPath": null, "End": true}}})).await;
    let (d, _) = run(&t, &ddb, json!({})).await;
    assert_eq!(d.status.as_str(), "SUCCEEDED", "{:?}", d.cause());
    let out: Value = serde_json::from_str(d.output().unwrap()).unwrap();
    assert_eq!(
        out["refused"]["Error"],
        "DynamoDB.ConditionalCheckFailedException"
    );
    assert_eq!(out["read"]["Item"]["v"], json!({"N": "2"}));

    // Child executions: fire-and-forget, .sync (strings) and .sync:2 (JSON).
    let child = create(
        &t,
        "child",
        &json!({"StartAt": "Echo", "States": {"Echo": {"Type": "Pass", "End": true}}}),
    )
    .await;
    let parent = create(&t, "parent", &json!({"StartAt": "Fire", "States": {
        "Fire": {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution",
                 "Parameters": {"StateMachineArn": child, "Input": {"n": 1}}, "ResultPath": "$.fired", "Next": "Sync"},
        "Sync": {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync",
                 "Parameters": {"StateMachineArn": child, "Input": {"n": 2}}, "ResultPath": "$.sync", "Next": "Sync2"},
        "Sync2": {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync:2",
                 "Parameters": {"StateMachineArn": child, "Input": {"n": 3}}, "ResultPath": "$.sync2", "End": true}}})).await;
    let (d, history) = run(&t, &parent, json!({})).await;
    assert_eq!(d.status.as_str(), "SUCCEEDED", "{:?}", d.cause());
    // A .sync task shows TaskSubmitted (with the child's ARN) between TaskStarted and its end.
    let kinds: Vec<&str> = history
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "TaskSubmitted").count(),
        2,
        "{kinds:?}"
    );
    let submitted = history
        .iter()
        .find(|e| e["type"] == "TaskSubmitted")
        .unwrap();
    let at = submitted["id"].as_u64().unwrap();
    assert_eq!(history[at as usize - 2]["type"], "TaskStarted");
    assert_eq!(
        history[at as usize]["previousEventId"],
        json!(at),
        "the task's end links to TaskSubmitted"
    );
    let child_arn: Value = serde_json::from_str(
        submitted["taskSubmittedEventDetails"]["output"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert!(
        child_arn["ExecutionArn"]
            .as_str()
            .unwrap()
            .contains(":execution:")
    );
    let out: Value = serde_json::from_str(d.output().unwrap()).unwrap();
    assert!(
        out["fired"]["ExecutionArn"]
            .as_str()
            .unwrap()
            .contains(":execution:")
    );
    assert_eq!(out["sync"]["Output"], json!(r#"{"n":2}"#));
    assert_eq!(out["sync2"]["Output"], json!({"n": 3}));
    assert_eq!(out["sync2"]["Status"], "SUCCEEDED");

    // An execution-level TimeoutSeconds ends the execution TIMED_OUT.
    let slow = create(
        &t,
        "slow",
        &json!({"TimeoutSeconds": 1, "StartAt": "Wait",
        "States": {"Wait": {"Type": "Wait", "Seconds": 30, "End": true}}}),
    )
    .await;
    let (d, history) = run(&t, &slow, json!({})).await;
    assert_eq!(d.status.as_str(), "TIMED_OUT");
    assert_eq!(history.last().unwrap()["type"], "ExecutionTimedOut");

    // An unsupported resource fails the task with a cause naming it.
    let odd = create(&t, "odd", &json!({"StartAt": "S3", "States": {"S3": {"Type": "Task",
        "Resource": "arn:aws:states:::s3:getObject", "Parameters": {"Bucket": "b", "Key": "k"}, "End": true}}})).await;
    let (d, _) = run(&t, &odd, json!({})).await;
    assert_eq!(d.status.as_str(), "FAILED");
    assert!(
        d.cause().unwrap().contains("arn:aws:states:::s3:getObject"),
        "{:?}",
        d.cause()
    );

    // The lease taken by the bare-ARN run is still there: nothing else touched the pool.
    assert_eq!(t.pool().await.1, 1);
    t.shutdown().await;
}
