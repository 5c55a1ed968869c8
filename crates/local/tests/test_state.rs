//! TestState through the real `aws` CLI: the connection workflow's Acquire state with mocked
//! answers (retriable while its retrier has attempts left, caught into the fallback after
//! them, failed on an error nothing handles, succeeded with its ResultSelector applied and
//! DEBUG's inspection data), a single Choice state, a Pass state over variables, and bad
//! requests with AWS's error names.

mod common;

use common::{Setup, aws, connection_workflow, ok, start};
use serde_json::{Value, json};

const ROLE: &str = "arn:aws:iam::123456789012:role/local";

fn test_state(url: &str, args: &[&str]) -> Value {
    let mut all = vec!["stepfunctions", "test-state", "--role-arn", ROLE];
    all.extend_from_slice(args);
    ok(url, &all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_state_answers_for_the_acquire_states_retriers_and_more() {
    let t = start(Setup::empty("test-state")).await;
    let url = t.url.clone();
    let machine = connection_workflow();
    // Acquire's input, as Prepare leaves it.
    let input = json!({"request": {"pool": "main", "query": "getEmployee", "params": {"id": 2},
                       "holdMs": 0, "mode": "polling", "app": null},
                       "cache": {"key": "main#getEmployee"}})
    .to_string();
    let exhausted =
        json!({"errorOutput": {"error": "ConnectionsExhausted", "cause": "all 4 leased"}})
            .to_string();
    let acquire = |extra: &[&str]| {
        let mut args = vec![
            "--definition",
            &machine,
            "--state-name",
            "Acquire",
            "--input",
            &input,
        ];
        args.extend_from_slice(extra);
        test_state(&url, &args)
    };

    // A full pool on the first attempt: its retrier (6 attempts) would try again, after
    // 1 s (DEBUG's errorDetails); after three retries, 8 s (its MaxDelaySeconds).
    let first = acquire(&["--mock", &exhausted, "--inspection-level", "DEBUG"]);
    assert_eq!(
        first["inspectionData"]["errorDetails"],
        json!({"retryIndex": 0, "retryBackoffIntervalSeconds": 1})
    );
    let third = json!({"retrierRetryCount": 3}).to_string();
    let later = acquire(&[
        "--mock",
        &exhausted,
        "--inspection-level",
        "DEBUG",
        "--state-configuration",
        &third,
    ]);
    assert_eq!(later["status"], "RETRIABLE");
    assert_eq!(
        later["inspectionData"]["errorDetails"]["retryBackoffIntervalSeconds"],
        8
    );
    assert_eq!(
        (first["status"].as_str(), first["error"].as_str()),
        (Some("RETRIABLE"), Some("ConnectionsExhausted")),
        "{first}"
    );
    assert!(first.get("nextState").is_none());

    // After its six retries, the catcher takes it to the cache lookup.
    let config = json!({"retrierRetryCount": 6}).to_string();
    let last = acquire(&[
        "--mock",
        &exhausted,
        "--state-configuration",
        &config,
        "--inspection-level",
        "DEBUG",
    ]);
    assert_eq!(
        last["inspectionData"]["errorDetails"],
        json!({"catchIndex": 0})
    );
    assert_eq!(
        (last["status"].as_str(), last["nextState"].as_str()),
        (Some("CAUGHT_ERROR"), Some("LookupCache")),
        "{last}"
    );
    let output: Value = serde_json::from_str(last["output"].as_str().unwrap()).unwrap();
    assert_eq!(output["acquireError"]["Error"], "ConnectionsExhausted");
    assert_eq!(output["request"]["pool"], "main");

    // An error nothing handles fails the state.
    let boom = json!({"errorOutput": {"error": "Boom", "cause": "?"}}).to_string();
    let failed = acquire(&["--mock", &boom]);
    assert_eq!(
        (
            failed["status"].as_str(),
            failed["error"].as_str(),
            failed["cause"].as_str()
        ),
        (Some("FAILED"), Some("Boom"), Some("?"))
    );

    // A grant: the ResultSelector keeps the lease's fields under $.lease; DEBUG shows the
    // effective parameters and the raw result.
    let granted = json!({"result": json!({"StatusCode": 200, "Payload": {"leaseId": "l-1",
        "expiresAt": 1900000000, "remaining": 3, "budget": 4, "extra": true}}).to_string()})
    .to_string();
    let ok_answer = acquire(&["--mock", &granted, "--inspection-level", "DEBUG"]);
    assert_eq!(
        (
            ok_answer["status"].as_str(),
            ok_answer["nextState"].as_str()
        ),
        (Some("SUCCEEDED"), Some("Query")),
        "{ok_answer}"
    );
    let output: Value = serde_json::from_str(ok_answer["output"].as_str().unwrap()).unwrap();
    assert_eq!(
        output["lease"],
        json!({"leaseId": "l-1", "expiresAt": 1900000000, "remaining": 3, "budget": 4})
    );
    let data = &ok_answer["inspectionData"];
    let parameters: Value =
        serde_json::from_str(data["afterParameters"].as_str().unwrap()).unwrap();
    assert_eq!(parameters["Payload"]["pool"], "main");
    assert!(data["result"].as_str().unwrap().contains("\"extra\":true"));
    let parsed = |key: &str| serde_json::from_str::<Value>(data[key].as_str().unwrap()).unwrap();
    // No InputPath: the whole input; at ResultPath $.lease, what the ResultSelector kept.
    assert_eq!(
        parsed("afterInputPath"),
        serde_json::from_str::<Value>(&input).unwrap()
    );
    assert_eq!(parsed("afterResultSelector"), output["lease"]);
    assert_eq!(parsed("afterResultPath"), output);
    assert_eq!(
        serde_json::from_str::<Value>(data["input"].as_str().unwrap()).unwrap(),
        serde_json::from_str::<Value>(&input).unwrap()
    );

    // One state on its own: a Choice picks the next state.
    let choice = json!({"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericGreaterThan": 5, "Next": "Big"}], "Default": "Small"}).to_string();
    let picked = test_state(&url, &["--definition", &choice, "--input", r#"{"n": 9}"#]);
    assert_eq!(
        (picked["status"].as_str(), picked["nextState"].as_str()),
        (Some("SUCCEEDED"), Some("Big"))
    );
    // A state that goes back to itself names itself as the next state.
    let again = json!({"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericLessThan": 3, "Next": "Loop"}], "Default": "Done"}).to_string();
    let looped = test_state(
        &url,
        &[
            "--definition",
            &again,
            "--state-name",
            "Loop",
            "--input",
            r#"{"n": 1}"#,
        ],
    );
    assert_eq!(looped["nextState"], "Loop", "{looped}");
    // A JSONata Pass state over variables given with the request.
    let pass = json!({"Type": "Pass", "QueryLanguage": "JSONata", "Output": "{% $limit * 2 %}", "End": true}).to_string();
    let doubled = test_state(
        &url,
        &["--definition", &pass, "--variables", r#"{"limit": 21}"#],
    );
    assert_eq!(
        (doubled["status"].as_str(), doubled["output"].as_str()),
        (Some("SUCCEEDED"), Some("42"))
    );

    // Bad requests: AWS's error names, and what is wrong.
    for (args, name, words) in [
        (
            vec!["--definition", "{not json"],
            "InvalidDefinition",
            "Invalid State Machine Definition",
        ),
        (
            vec!["--definition", machine.as_str()],
            "ValidationException",
            "stateName",
        ),
        (
            vec!["--definition", machine.as_str(), "--state-name", "Nope"],
            "InvalidDefinition",
            "Nope",
        ),
        (
            vec!["--definition", &choice, "--mock", &exhausted],
            "ValidationException",
            "State type 'Choice' is not supported when a mock is specified",
        ),
    ] {
        let mut all = vec!["stepfunctions", "test-state", "--role-arn", ROLE];
        all.extend_from_slice(&args);
        let (success, _, stderr) = aws(&url, &all);
        assert!(
            !success && stderr.contains(name) && stderr.contains(words),
            "{args:?}: {stderr}"
        );
    }
    t.shutdown().await;
}
