//! TestState's mocks and state configuration through the real `aws` CLI: a mocked result held
//! to its service's response shape (`fieldValidationMode` STRICT, PRESENT, NONE); Map and
//! Parallel states answered by their mock (with a Map's inspection data, and
//! `mapIterationFailureCount` against its tolerance into its catcher), `errorCausedByState`;
//! an exhausted retrier in `errorDetails`; TRACE; and the refusals, with AWS's messages.

mod common;

use common::{ROLE, Setup, aws, ok, start};
use serde_json::{Value, json};

fn test_state(url: &str, args: &[&str]) -> Value {
    let mut all = vec!["stepfunctions", "test-state"];
    all.extend_from_slice(args);
    ok(url, &all)
}

/// Asserts that a TestState call is refused with all of `words` in its error.
fn refused(url: &str, args: &[&str], words: &[&str]) {
    let mut all = vec!["stepfunctions", "test-state"];
    all.extend_from_slice(args);
    let (success, _, stderr) = aws(url, &all);
    assert!(!success, "{args:?} was accepted");
    for word in words {
        assert!(stderr.contains(word), "{word:?} not in {stderr}");
    }
}

/// The JSON text `output` of an answer, parsed.
fn output(answer: &Value) -> Value {
    serde_json::from_str(answer["output"].as_str().expect("output")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mocks_are_held_to_their_shape_and_answer_for_map_and_parallel_states() {
    let t = start(Setup::empty("test-state-mocks")).await;
    let url = t.url.as_str();

    // Field validation: startExecution's answer needs ExecutionArn and StartDate (STRICT);
    // PRESENT checks only the members given; NONE nothing.
    let start_child = json!({"Type": "Task", "Resource": "arn:aws:states:::states:startExecution",
        "Parameters": {"StateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:Child"},
        "End": true})
    .to_string();
    let mock = |result: Value, mode: &str| {
        json!({"result": result.to_string(), "fieldValidationMode": mode}).to_string()
    };
    refused(
        url,
        &[
            "--definition",
            &start_child,
            "--mock",
            &mock(json!({}), "STRICT"),
        ],
        &[
            "ValidationException",
            "Mock result schema validation error: Required field 'ExecutionArn' is missing",
        ],
    );
    let lenient = test_state(
        url,
        &[
            "--definition",
            &start_child,
            "--mock",
            &mock(json!({}), "PRESENT"),
        ],
    );
    assert_eq!(lenient["status"], "SUCCEEDED", "{lenient}");
    let wrong = json!({"ExecutionArn": "arn", "StartDate": true});
    refused(
        url,
        &[
            "--definition",
            &start_child,
            "--mock",
            &mock(wrong.clone(), "PRESENT"),
        ],
        &["Field 'StartDate' must be a string"],
    );
    let anything = test_state(
        url,
        &[
            "--definition",
            &start_child,
            "--mock",
            &mock(wrong.clone(), "NONE"),
        ],
    );
    assert_eq!(output(&anything), wrong);
    let invoke = json!({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": "F"}, "End": true})
    .to_string();
    // The default is STRICT; no roleArn is needed with a mock.
    refused(
        url,
        &[
            "--definition",
            &invoke,
            "--mock",
            &json!({"result": "{\"StatusCode\": \"200\"}"}).to_string(),
        ],
        &["Field 'StatusCode' must be a number"],
    );
    refused(
        url,
        &["--definition", &invoke],
        &["RoleArn must be specified when testing a Task state"],
    );

    // A Map answered by its mock: the result after ResultPath, the Map's own inspection data.
    let map = json!({"Type": "Map", "InputPath": "$.order", "ItemsPath": "$.lines", "MaxConcurrency": 2,
        "ToleratedFailureCount": 1, "ResultPath": "$.priced",
        "ItemProcessor": {"StartAt": "Price", "States": {"Price": {"Type": "Pass", "End": true}}},
        "Catch": [{"ErrorEquals": ["States.ExceedToleratedFailureThreshold"], "Next": "TooManyFailed"}],
        "Next": "Ship"})
    .to_string();
    let input = json!({"order": {"lines": ["a", "b", "c"]}}).to_string();
    let priced = json!({"result": "[1, 2, 3]"}).to_string();
    let answer = test_state(
        url,
        &[
            "--definition",
            &map,
            "--input",
            &input,
            "--mock",
            &priced,
            "--inspection-level",
            "DEBUG",
        ],
    );
    assert_eq!(answer["status"], "SUCCEEDED", "{answer}");
    assert_eq!(answer["nextState"], "Ship");
    // ResultPath places the result in the raw input, not in what InputPath selected.
    assert_eq!(
        output(&answer),
        json!({"order": {"lines": ["a", "b", "c"]}, "priced": [1, 2, 3]})
    );
    let data = &answer["inspectionData"];
    assert_eq!(
        serde_json::from_str::<Value>(data["afterItemsPath"].as_str().unwrap()).unwrap(),
        json!(["a", "b", "c"])
    );
    assert_eq!(
        (
            data["maxConcurrency"].as_u64(),
            data["toleratedFailureCount"].as_u64()
        ),
        (Some(2), Some(1))
    );
    assert!(
        data.get("afterParameters").is_none() && data.get("result").is_none(),
        "{data}"
    );
    // Two failed iterations exceed the tolerance of one: the catcher takes it.
    let two_failed = json!({"mapIterationFailureCount": 2}).to_string();
    let caught = test_state(
        url,
        &[
            "--definition",
            &map,
            "--input",
            &input,
            "--mock",
            &priced,
            "--state-configuration",
            &two_failed,
            "--inspection-level",
            "TRACE",
        ],
    );
    assert_eq!(
        (caught["status"].as_str(), caught["nextState"].as_str()),
        (Some("CAUGHT_ERROR"), Some("TooManyFailed")),
        "{caught}"
    );
    assert_eq!(caught["error"], "States.ExceedToleratedFailureThreshold");
    assert_eq!(
        caught["inspectionData"]["errorDetails"],
        json!({"catchIndex": 0})
    );
    let one_failed = json!({"mapIterationFailureCount": 1}).to_string();
    let within = test_state(
        url,
        &[
            "--definition",
            &map,
            "--input",
            &input,
            "--mock",
            &priced,
            "--state-configuration",
            &one_failed,
        ],
    );
    assert_eq!(within["status"], "SUCCEEDED", "{within}");
    refused(
        url,
        &[
            "--definition",
            &map,
            "--input",
            &input,
            "--mock",
            &priced,
            "--state-configuration",
            &json!({"mapIterationFailureCount": 4}).to_string(),
        ],
        &["Map iteration failure count must be less than or equal to the number of Map iterations"],
    );
    refused(
        url,
        &["--definition", &map, "--input", &input],
        &[
            "InvalidDefinition",
            "does not support Map or Parallel states",
        ],
    );
    refused(
        url,
        &[
            "--definition",
            &map,
            "--mock",
            &json!({"result": "{}"}).to_string(),
        ],
        &["Mocked result must be an array."],
    );

    // Limits given by paths into the input; no failure is never beyond a tolerance.
    let by_path =
        json!({"Type": "Map", "ItemsPath": "$.lines", "MaxConcurrencyPath": "$.limits.parallel",
        "ToleratedFailurePercentagePath": "$.limits.percent",
        "ItemProcessor": {"StartAt": "Price", "States": {"Price": {"Type": "Pass", "End": true}}},
        "End": true})
        .to_string();
    let limited = json!({"lines": [], "limits": {"parallel": 3, "percent": 10}}).to_string();
    let answer = test_state(
        url,
        &[
            "--definition",
            &by_path,
            "--input",
            &limited,
            "--mock",
            &json!({"result": "[]"}).to_string(),
            "--inspection-level",
            "DEBUG",
        ],
    );
    assert_eq!(answer["status"], "SUCCEEDED", "{answer}");
    assert_eq!(answer["inspectionData"]["maxConcurrency"], 3);
    assert_eq!(
        answer["inspectionData"]["toleratedFailurePercentage"].as_f64(),
        Some(10.0)
    );
    // Its iterations never run, but they are still checked: a processor without StartAt.
    let broken = json!({"Type": "Map", "ItemProcessor": {"States": {}}, "End": true}).to_string();
    refused(
        url,
        &["--definition", &broken, "--mock", &priced],
        &["InvalidDefinition"],
    );
    // A Parallel without branches, a Task without a resource: refused, and the stack serves on.
    let bare = json!({"Type": "Parallel", "End": true}).to_string();
    refused(
        url,
        &[
            "--definition",
            &bare,
            "--mock",
            &json!({"result": "[]"}).to_string(),
        ],
        &["InvalidDefinition"],
    );
    let nowhere = json!({"Type": "Task", "End": true}).to_string();
    refused(
        url,
        &["--definition", &nowhere, "--mock", &priced],
        &["InvalidDefinition"],
    );

    // A mocked error of a state inside: errorCausedByState names it, and must.
    let boom = json!({"errorOutput": {"error": "Boom", "cause": "inside"}}).to_string();
    let inside = json!({"errorCausedByState": "Price"}).to_string();
    let failed = test_state(
        url,
        &[
            "--definition",
            &map,
            "--input",
            &input,
            "--mock",
            &boom,
            "--state-configuration",
            &inside,
        ],
    );
    assert_eq!(
        (
            failed["status"].as_str(),
            failed["error"].as_str(),
            failed["cause"].as_str()
        ),
        (Some("FAILED"), Some("Boom"), Some("inside")),
        "{failed}"
    );
    refused(
        url,
        &[
            "--definition",
            &map,
            "--input",
            &input,
            "--mock",
            &boom,
            "--state-configuration",
            &json!({"errorCausedByState": "Nope"}).to_string(),
        ],
        &["errorCausedByState 'Nope'"],
    );

    // A Parallel answered by its mock: one item per branch.
    let parallel = json!({"Type": "Parallel", "ResultSelector": {"first.$": "$[0]"}, "End": true, "Branches": [
        {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}},
        {"StartAt": "B", "States": {"B": {"Type": "Pass", "End": true}}}]})
    .to_string();
    let answer = test_state(
        url,
        &[
            "--definition",
            &parallel,
            "--mock",
            &json!({"result": "[{\"a\": 1}, {\"b\": 2}]"}).to_string(),
        ],
    );
    assert_eq!(output(&answer), json!({"first": {"a": 1}}), "{answer}");
    refused(
        url,
        &[
            "--definition",
            &parallel,
            "--mock",
            &json!({"result": "[1]"}).to_string(),
        ],
        &["Mocked result must contain the same number of items as number of Parallel branches."],
    );

    // A retrier with no attempt left: FAILED, and errorDetails says which one matched.
    let retried = json!({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": true,
        "Parameters": {"FunctionName": "F"},
        "Retry": [{"ErrorEquals": ["Boom"], "MaxAttempts": 2}]})
    .to_string();
    let spent = test_state(
        url,
        &[
            "--definition",
            &retried,
            "--mock",
            &boom,
            "--state-configuration",
            &json!({"retrierRetryCount": 2}).to_string(),
            "--inspection-level",
            "DEBUG",
        ],
    );
    assert_eq!(spent["status"], "FAILED", "{spent}");
    assert_eq!(
        spent["inspectionData"]["errorDetails"],
        json!({"retryIndex": 0})
    );

    // Refusals: a mock for a Pass state, both answers at once, a mode AWS does not have.
    let pass = json!({"Type": "Pass", "End": true}).to_string();
    refused(
        url,
        &["--definition", &pass, "--mock", &priced],
        &["State type 'Pass' is not supported when a mock is specified"],
    );
    let both = json!({"result": "{}", "errorOutput": {"error": "E"}}).to_string();
    refused(
        url,
        &["--definition", &invoke, "--mock", &both],
        &["only one of the following fields: [result, errorOutput]"],
    );
    refused(
        url,
        &[
            "--definition",
            &invoke,
            "--role-arn",
            ROLE,
            "--mock",
            &json!({"result": "{}", "fieldValidationMode": "LAX"}).to_string(),
        ],
        &["ValidationException", "mock.fieldValidationMode"],
    );
    t.shutdown().await;
}
