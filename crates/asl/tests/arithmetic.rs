//! Numbers at the ends of their ranges, from a definition or from the input, never make the
//! interpreter panic or misjudge time: waits, task timeouts and heartbeats, the execution's
//! timeout, retry delays, JSONata's numeric arguments and JSONPath slices.

mod common;

use common::*;
use leasehold_asl::Status;
use leasehold_asl::clock::VirtualClock;
use serde_json::{Value, json};

const HUGE: [u64; 4] = [u64::MAX, i64::MAX as u64, 1 << 62, 9_223_372_036_854_776];

fn end_millis(out: &leasehold_asl::Outcome) -> i64 {
    out.history.last().expect("a history").timestamp_millis
}

#[test]
fn huge_waits_wait_long_and_never_overflow() {
    for n in HUGE.into_iter().filter(|n| *n <= i64::MAX as u64) {
        let path = json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "SecondsPath": "$.s", "End": true}}});
        let out = run(&path, &json!({ "s": n }));
        assert_eq!(
            out.status,
            Status::Succeeded,
            "SecondsPath {n}: {:?}",
            out.cause
        );
        assert!(end_millis(&out) > T0 + 1_000_000_000, "SecondsPath {n}");
        let literal =
            json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": n, "End": true}}});
        let out = run(&literal, &json!({}));
        assert_eq!(
            out.status,
            Status::Succeeded,
            "Seconds {n}: {:?}",
            out.cause
        );
        assert!(end_millis(&out) > T0 + 1_000_000_000, "Seconds {n}");
    }
    // A wait longer than the execution may run times the execution out.
    let def = json!({"TimeoutSeconds": 60, "StartAt": "W", "States": {"W": {"Type": "Wait", "SecondsPath": "$.s", "End": true}}});
    let out = run(&def, &json!({ "s": i64::MAX }));
    assert_eq!(out.status, Status::TimedOut);
    assert_eq!(end_millis(&out), T0 + 60_000);
}

#[test]
fn huge_task_timeouts_and_heartbeats_are_long_not_past() {
    for n in HUGE {
        for field in ["TimeoutSecondsPath", "HeartbeatSecondsPath"] {
            let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f", field: "$.n", "End": true}}});
            let clock = VirtualClock::new(T0);
            let script = Script::new(&clock).on(
                "arn:aws:lambda:us-east-1:123456789012:function:f",
                vec![ok_after(5, json!({"done": true}))],
            );
            let out = run_with(&def, &json!({ "n": n }), &clock, script, 1);
            assert_eq!(
                (out.status, out.output),
                (Status::Succeeded, Some(json!({"done": true}))),
                "{field} {n}: {:?} {:?}",
                out.error,
                out.cause
            );
        }
        let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f", "TimeoutSeconds": n, "End": true}}});
        let clock = VirtualClock::new(T0);
        let script = Script::new(&clock).on(
            "arn:aws:lambda:us-east-1:123456789012:function:f",
            vec![ok_after(5, json!(1))],
        );
        let out = run_with(&def, &json!({}), &clock, script, 1);
        assert_eq!(
            out.status,
            Status::Succeeded,
            "TimeoutSeconds {n}: {:?}",
            out.cause
        );
    }
}

#[test]
fn a_huge_execution_timeout_is_no_timeout() {
    for n in HUGE {
        let def = json!({"TimeoutSeconds": n, "StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 10, "End": true}}});
        let out = run(&def, &json!({}));
        assert_eq!(
            out.status,
            Status::Succeeded,
            "TimeoutSeconds {n}: {:?}",
            out.error
        );
        assert_eq!(end_millis(&out), T0 + 10_000);
    }
}

#[test]
fn huge_retry_delays_wait_instead_of_retrying_at_once() {
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f", "End": true,
        "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 99_999_999, "BackoffRate": 1e300, "MaxAttempts": 3}]}}});
    let clock = VirtualClock::new(T0);
    let script = Script::new(&clock).on(
        "arn:aws:lambda:us-east-1:123456789012:function:f",
        vec![
            fail("Boom", "1"),
            fail("Boom", "2"),
            fail("Boom", "3"),
            fail("Boom", "4"),
        ],
    );
    let out = run_with(&def, &json!({}), &clock, script.clone(), 1);
    assert_eq!(out.status, Status::Failed);
    assert_eq!(out.error.as_deref(), Some("Boom"));
    let calls = script.calls();
    assert_eq!(calls.len(), 4);
    assert_eq!(calls[1].at_millis, T0 + 99_999_999_000);
    assert!(calls[2].at_millis > calls[1].at_millis, "{calls:?}");
}

fn jsonata(expression: &str) -> leasehold_asl::Outcome {
    let def = json!({"QueryLanguage": "JSONata", "StartAt": "P", "States": {"P": {"Type": "Pass", "Output": format!("{{% {expression} %}}"), "End": true}}});
    run(&def, &json!({}))
}

#[test]
fn jsonata_numbers_at_the_extremes() {
    for (expression, want) in [
        ("$substring('abc', 1, 1e300)", Some(json!("bc"))),
        ("$substring('abc', -1e300, 1e300)", Some(json!("abc"))),
        ("$substring('abc', 1e300, 2)", Some(json!(""))),
        ("$pad('x', 3)", Some(json!("x  "))),
        ("$pad('x', -3, '#')", Some(json!("##x"))),
        ("$pad('x', -1e300)", None),
        ("$pad('x', 1e300)", None),
        ("[-1e300..1e300]", None),
        ("[1e300..-1e300]", Some(json!([]))),
        (
            "[9007199254740990..9007199254740992]",
            Some(json!([
                9007199254740990_i64,
                9007199254740991_i64,
                9007199254740992_i64
            ])),
        ),
        ("$round(1.5, 1e300)", Some(json!(1.5))),
        ("$fromMillis(1e300) ? true : false", Some(json!(true))),
    ] {
        let out = jsonata(expression);
        match want {
            Some(v) => assert_eq!(
                (out.status, out.output),
                (Status::Succeeded, Some(v)),
                "{expression}: {:?}",
                out.cause
            ),
            None => assert_eq!(
                (out.status, out.error.as_deref()),
                (Status::Failed, Some("States.QueryEvaluationError")),
                "{expression}: {:?}",
                out.output
            ),
        }
    }
}

#[test]
fn jsonpath_slices_with_huge_steps() {
    let input = json!({"a": [0, 1, 2, 3, 4]});
    for (path, want) in [
        ("$.a[1:4:9223372036854775807]", json!([1])),
        (
            "$.a[-9223372036854775808:9223372036854775807:2]",
            json!([0, 2, 4]),
        ),
        ("$.a[9223372036854775807:]", json!([])),
    ] {
        let def = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "InputPath": path, "End": true}}});
        let out = run(&def, &input);
        let got: Option<Value> = out.output.clone();
        assert_eq!(
            (out.status, got),
            (Status::Succeeded, Some(want)),
            "{path}: {:?}",
            out.cause
        );
    }
}
