//! ValidateStateMachineDefinition through the real `aws` CLI: the diagnostics AWS gives for the
//! common mistakes (a Next to a state that does not exist, a state nothing reaches, a state
//! with neither Next nor End, a path that is not JSONPath, text that is not JSON), and OK for a
//! sound definition.

mod common;

use common::{Setup, ok, start};
use serde_json::{Value, json};

fn diagnostics(url: &str, definition: &str) -> (String, Vec<(String, String, String)>) {
    let answer = ok(
        url,
        &[
            "stepfunctions",
            "validate-state-machine-definition",
            "--definition",
            definition,
        ],
    );
    let list = answer["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let text = |k: &str| d[k].as_str().unwrap_or_default().to_owned();
            (text("code"), text("location"), text("message"))
        })
        .collect();
    (answer["result"].as_str().unwrap().to_owned(), list)
}

fn machine(states: Value) -> String {
    json!({"StartAt": "First", "States": states}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_common_mistakes_get_awss_diagnostics() {
    let t = start(Setup::empty("validation")).await;
    // (mistake, definition, code, location, words of the message), each the first diagnostic.
    let cases = [
        (
            machine(json!({"First": {"Type": "Pass", "Next": "Nowhere"}})),
            "MISSING_TRANSITION_TARGET",
            "/States/First/Next",
            "Nowhere",
        ),
        (
            machine(json!({"First": {"Type": "Succeed"}, "Orphan": {"Type": "Succeed"}})),
            "SCHEMA_VALIDATION_FAILED",
            "/States/Orphan",
            "not reachable",
        ),
        (
            machine(json!({"First": {"Type": "Pass"}})),
            "SCHEMA_VALIDATION_FAILED",
            "/States/First",
            "either 'Next' or 'End: true'",
        ),
        (
            machine(json!({"First": {"Type": "Pass", "InputPath": "$.a[", "End": true}})),
            "SCHEMA_VALIDATION_FAILED",
            "/States/First/InputPath",
            "valid JSONPath",
        ),
        (
            "{\"StartAt\": ".to_owned(),
            "INVALID_JSON_DESCRIPTION",
            "",
            "not valid JSON",
        ),
    ];
    for (definition, code, location, words) in cases {
        let (result, list) = diagnostics(&t.url, &definition);
        assert_eq!(result, "FAIL", "{definition}: {list:?}");
        let (got_code, got_location, message) = &list[0];
        assert_eq!(
            (got_code.as_str(), got_location.as_str()),
            (code, location),
            "{list:?}"
        );
        assert!(message.contains(words), "{message}");
    }
    // A state without Next or End also leaves the workflow without a terminal state.
    let (_, list) = diagnostics(&t.url, &machine(json!({"First": {"Type": "Pass"}})));
    assert_eq!(list[1].0, "MISSING_END_STATE");
    let (result, list) = diagnostics(
        &t.url,
        &machine(json!({"First": {"Type": "Pass", "End": true}})),
    );
    assert_eq!((result.as_str(), list.len()), ("OK", 0));
    t.shutdown().await;
}
