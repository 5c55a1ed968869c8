//! State semantics in the `give(input, definition, expected)` style.

mod common;
use common::*;
use serde_json::json;

#[test]
fn pass_and_paths() {
    give(
        json!({"a": 1}),
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": {"x": 2}, "ResultPath": "$.r", "End": true}}}),
        Expect::Output(json!({"a": 1, "r": {"x": 2}})),
    );
    give(
        json!({"a": {"b": 1}}),
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "InputPath": "$.a", "End": true}}}),
        Expect::Output(json!({"b": 1})),
    );
    give(
        json!({"a": 1}),
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "ResultPath": null, "Result": 5, "End": true}}}),
        Expect::Output(json!({"a": 1})),
    );
    give(
        json!({"a": 1}),
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "OutputPath": null, "End": true}}}),
        Expect::Output(json!({})),
    );
    give(
        json!({"a": [1, 2, 3]}),
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {"n.$": "States.ArrayLength($.a)", "first.$": "$.a[0]", "k": "lit"}, "End": true}}}),
        Expect::Output(json!({"n": 3, "first": 1, "k": "lit"})),
    );
    give(
        json!({}),
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "InputPath": "$.missing", "End": true}}}),
        Expect::Error(
            "States.Runtime",
            Some(
                "An error occurred while executing the state 'P' (entered at the event id #2). Invalid path '$.missing' : No results for path: $['missing']",
            ),
        ),
    );
}

#[test]
fn choice_operators() {
    let def = |rule: serde_json::Value| {
        json!({"StartAt": "C", "States": {
        "C": {"Type": "Choice", "Choices": [rule], "Default": "No"},
        "Yes": {"Type": "Pass", "Result": "yes", "End": true},
        "No": {"Type": "Pass", "Result": "no", "End": true}}})
    };
    let cases = [
        (
            json!({"v": 5}),
            json!({"Variable": "$.v", "NumericGreaterThan": 3, "Next": "Yes"}),
            "yes",
        ),
        (
            json!({"v": 5, "w": 7}),
            json!({"Variable": "$.v", "NumericLessThanPath": "$.w", "Next": "Yes"}),
            "yes",
        ),
        (
            json!({"v": "abc.log"}),
            json!({"Variable": "$.v", "StringMatches": "*.log", "Next": "Yes"}),
            "yes",
        ),
        (
            json!({"v": "2024-01-01T00:00:00Z"}),
            json!({"Variable": "$.v", "TimestampLessThan": "2025-01-01T00:00:00Z", "Next": "Yes"}),
            "yes",
        ),
        (
            json!({}),
            json!({"Variable": "$.v", "IsPresent": false, "Next": "Yes"}),
            "yes",
        ),
        (
            json!({"v": null}),
            json!({"Variable": "$.v", "IsNull": true, "Next": "Yes"}),
            "yes",
        ),
        (
            json!({"v": 1}),
            json!({"Not": {"Variable": "$.v", "IsString": true}, "Next": "Yes"}),
            "yes",
        ),
        (
            json!({"v": 1}),
            json!({"And": [{"Variable": "$.v", "IsNumeric": true}, {"Variable": "$.v", "NumericEquals": 2}], "Next": "Yes"}),
            "no",
        ),
        (
            json!({"v": true}),
            json!({"Or": [{"Variable": "$.v", "BooleanEquals": false}, {"Variable": "$.v", "IsBoolean": true}], "Next": "Yes"}),
            "yes",
        ),
        (
            json!({"v": "2024-01-01T00:00:00Z"}),
            json!({"Variable": "$.v", "IsTimestamp": true, "Next": "Yes"}),
            "yes",
        ),
    ];
    for (input, rule, want) in cases {
        give(input, def(rule), Expect::Output(json!(want)));
    }
    // No rule and no default.
    give(
        json!({"v": 1}),
        json!({"StartAt": "C", "States": {"C": {"Type": "Choice", "Choices": [{"Variable": "$.v", "NumericEquals": 2, "Next": "E"}]}, "E": {"Type": "Succeed"}}}),
        Expect::Error("States.NoChoiceMatched", None),
    );
}

#[test]
fn wait_uses_the_clock() {
    let def = json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "SecondsPath": "$.s", "End": true}}});
    let out = run(&def, &json!({"s": 3600}));
    let end = out.history.last().unwrap().timestamp_millis;
    assert_eq!(end - T0, 3_600_000);
    let def = json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Timestamp": "2023-11-14T23:13:20Z", "End": true}}});
    let out = run(&def, &json!({}));
    assert_eq!(
        out.history.last().unwrap().timestamp_millis,
        1_700_003_600_000
    );
}

#[test]
fn fail_state_and_variables() {
    give(
        json!({"e": "Bad", "c": "why"}),
        json!({"StartAt": "F", "States": {"F": {"Type": "Fail", "ErrorPath": "$.e", "CausePath": "$.c"}}}),
        Expect::Error("Bad", Some("why")),
    );
    give(
        json!({"x": 4}),
        json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Assign": {"saved.$": "$.x"}, "Next": "B"},
        "B": {"Type": "Pass", "Parameters": {"got.$": "$saved"}, "End": true}}}),
        Expect::Output(json!({"got": 4})),
    );
}

#[test]
fn jsonata_states() {
    give(
        json!({"n": 2}),
        json!({"QueryLanguage": "JSONata", "StartAt": "A", "States": {
        "A": {"Type": "Pass", "Assign": {"k": "{% $states.input.n * 10 %}"}, "Output": {"v": "{% $states.input.n + 1 %}"}, "Next": "B"},
        "B": {"Type": "Choice", "Choices": [{"Condition": "{% $k = 20 %}", "Next": "C", "Output": "{% $k & '!' %}"}], "Default": "D"},
        "C": {"Type": "Succeed"}, "D": {"Type": "Fail", "Error": "Wrong"}}}),
        Expect::Output(json!("20!")),
    );
    give(
        json!({}),
        json!({"QueryLanguage": "JSONata", "StartAt": "A", "States": {"A": {"Type": "Pass", "Output": "{% $nope %}", "End": true}}}),
        Expect::Error(
            "States.QueryEvaluationError",
            Some(
                "An error occurred while executing the state 'A' (entered at the event id #2). The JSONata expression '$nope' specified for the field 'Output' returned nothing (undefined).",
            ),
        ),
    );
    give(
        json!([1, 2, 3]),
        json!({"QueryLanguage": "JSONata", "StartAt": "M", "States": {"M": {"Type": "Map",
        "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "Output": "{% $states.input * 2 %}", "End": true}}},
        "Output": "{% $sum($states.result) %}", "End": true}}}),
        Expect::Output(json!(12)),
    );
}

#[test]
fn map_item_selector_and_context() {
    give(
        json!({"xs": ["a", "b"]}),
        json!({"StartAt": "M", "States": {"M": {"Type": "Map", "ItemsPath": "$.xs",
        "ItemSelector": {"i.$": "$$.Map.Item.Index", "v.$": "$$.Map.Item.Value"},
        "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}, "End": true}}}),
        Expect::Output(json!([{"i": 0, "v": "a"}, {"i": 1, "v": "b"}])),
    );
    // Tolerated failures.
    give(
        json!([1, 2, 3, 4]),
        json!({"StartAt": "M", "States": {"M": {"Type": "Map", "ToleratedFailureCount": 1,
        "ItemProcessor": {"StartAt": "C", "States": {
            "C": {"Type": "Choice", "Choices": [{"Variable": "$", "NumericEquals": 3, "Next": "F"}], "Default": "P"},
            "F": {"Type": "Fail", "Error": "Three"}, "P": {"Type": "Pass", "End": true}}}, "End": true}}}),
        Expect::Output(json!([1, 2, null, 4])),
    );
}

#[test]
fn history_ids_link_like_aws() {
    let def = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Next": "F"}, "F": {"Type": "Fail", "Error": "E"}}});
    let out = run(&def, &json!({}));
    let links: Vec<(u64, u64)> = out
        .history
        .iter()
        .map(|e| (e.id, e.previous_event_id))
        .collect();
    assert_eq!(links, [(1, 0), (2, 0), (3, 2), (4, 3), (5, 4)]);
    assert_eq!(
        types(&out.history),
        [
            "ExecutionStarted",
            "PassStateEntered",
            "PassStateExited",
            "FailStateEntered",
            "ExecutionFailed"
        ]
    );
    let failed = out.history[4].to_json();
    assert_eq!(failed["executionFailedEventDetails"], json!({"error": "E"}));
}

#[test]
fn map_item_batcher_groups_items() {
    give(
        json!({"xs": [1, 2, 3, 4, 5], "job": "j1"}),
        json!({"StartAt": "M", "States": {"M": {"Type": "Map", "ItemsPath": "$.xs",
        "ItemBatcher": {"MaxItemsPerBatch": 2, "BatchInput": {"job.$": "$.job"}},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}, "End": true}}}),
        Expect::Output(
            json!([{"job": "j1", "Items": [1, 2]}, {"job": "j1", "Items": [3, 4]}, {"job": "j1", "Items": [5]}]),
        ),
    );
}
