//! Every validation diagnostic, and a mutation sweep showing that no definition or input
//! makes the crate panic.

mod common;
use leasehold_asl::clock::{SeededRandom, VirtualClock};
use leasehold_asl::invoker::NoTasks;
use leasehold_asl::{AbortHandle, ExecutionConfig, Services, Severity, execute, validate};
use serde_json::{Value, json};
use std::sync::Arc;

/// (definition, expected code, expected location)
fn cases() -> Vec<(String, &'static str, &'static str)> {
    let ok = json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}});
    let with = |f: &dyn Fn(&mut Value)| {
        let mut d = ok.clone();
        f(&mut d);
        d.to_string()
    };
    vec![
        ("".into(), "MISSING_DESCRIPTION", ""),
        ("{\"StartAt\": ".into(), "INVALID_JSON_DESCRIPTION", ""),
        (
            with(&|d| d["States"]["A"]["Next"] = json!("Nowhere")),
            "SCHEMA_VALIDATION_FAILED",
            "/States/A",
        ),
        (
            with(&|d| {
                d["States"]["A"] = json!({"Type": "Pass", "Next": "B"});
            }),
            "MISSING_TRANSITION_TARGET",
            "/States/A/Next",
        ),
        (
            with(&|d| d["StartAt"] = json!("B")),
            "MISSING_TRANSITION_TARGET",
            "/StartAt",
        ),
        (
            with(&|d| {
                d["States"]["A"] = json!({"Type": "Pass", "Next": "A"});
            }),
            "MISSING_END_STATE",
            "/",
        ),
        (
            with(&|d| d["States"]["A"]["Bogus"] = json!(1)),
            "SCHEMA_VALIDATION_FAILED",
            "/States/A/Bogus",
        ),
        (
            with(&|d| d["States"]["A"]["Type"] = json!("Nope")),
            "SCHEMA_VALIDATION_FAILED",
            "/States/A/Type",
        ),
        (
            with(&|d| d["States"]["B"] = json!({"Type": "Succeed"})),
            "SCHEMA_VALIDATION_FAILED",
            "/States/B",
        ),
        (
            with(&|d| d["States"]["A"]["InputPath"] = json!("not a path")),
            "SCHEMA_VALIDATION_FAILED",
            "/States/A/InputPath",
        ),
        (
            with(&|d| d["States"]["A"]["Parameters"] = json!({"x.$": "$.a["})),
            "SCHEMA_VALIDATION_FAILED",
            "/States/A/Parameters/x.$",
        ),
        (
            with(&|d| d["States"]["A"]["Parameters"] = json!({"x.$": "States.Nope(1)"})),
            "SCHEMA_VALIDATION_FAILED",
            "/States/A/Parameters/x.$",
        ),
        (
            with(&|d| {
                d["States"]["A"] = json!({"Type": "Task", "Resource": "lambda", "End": true});
            }),
            "INVALID_RESOURCE",
            "/States/A/Resource",
        ),
        (
            with(&|d| {
                d["States"]["A"] = json!({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": true,
            "Retry": [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}]});
            }),
            "SCHEMA_VALIDATION_FAILED",
            "/States/A/Retry/0/ErrorEquals",
        ),
        (
            with(&|d| {
                d["States"]["A"] = json!({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": true,
            "Catch": [{"ErrorEquals": ["States.ALL", "X"], "Next": "A"}]});
            }),
            "SCHEMA_VALIDATION_FAILED",
            "/States/A/Catch/0/ErrorEquals",
        ),
        (
            with(&|d| {
                d["States"]["A"] = json!({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": true,
            "TimeoutSeconds": 5, "HeartbeatSeconds": 5});
            }),
            "SCHEMA_VALIDATION_FAILED",
            "/States/A/HeartbeatSeconds",
        ),
        (
            with(&|d| {
                d["States"]["A"] = json!({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": true,
            "Catch": [{"ErrorEquals": ["X"], "Next": "Gone"}]});
            }),
            "MISSING_TRANSITION_TARGET",
            "/States/A/Catch/0/Next",
        ),
        (
            with(&|d| {
                d["States"]["A"] = json!({"Type": "Choice", "Choices": [{"Variable": "$.x", "NumericEquals": "1", "Next": "A"}]});
            }),
            "SCHEMA_VALIDATION_FAILED",
            "/States/A/Choices/0/NumericEquals",
        ),
        (
            with(&|d| {
                d["States"]["A"] = json!({"Type": "Choice", "Choices": [{"Variable": "$.x", "BooleanEquals": true, "Next": "Z"}], "Default": "Y"});
            }),
            "MISSING_TRANSITION_TARGET",
            "/States/A/Choices/0/Next",
        ),
        (
            with(&|d| {
                d["States"]["A"] = json!({"Type": "Wait", "Seconds": 1, "Timestamp": "2024-01-01T00:00:00Z", "End": true});
            }),
            "SCHEMA_VALIDATION_FAILED",
            "/States/A",
        ),
        (
            with(&|d| {
                d["States"]["A"] = json!({"Type": "Parallel", "Branches": [{"StartAt": "X", "States": {"X": {"Type": "Pass", "Next": "Y"}}}], "End": true});
            }),
            "MISSING_TRANSITION_TARGET",
            "/States/A/Branches/0/States/X/Next",
        ),
        (
            with(&|d| {
                d["States"]["A"] = json!({"Type": "Map", "End": true});
            }),
            "SCHEMA_VALIDATION_FAILED",
            "/States/A",
        ),
        (
            with(&|d| {
                d["States"]["A"]["QueryLanguage"] = json!("XPath");
            }),
            "SCHEMA_VALIDATION_FAILED",
            "/States/A/QueryLanguage",
        ),
        (
            with(&|d| {
                d["QueryLanguage"] = json!("JSONata");
                d["States"]["A"]["Output"] = json!("{% 1 + %}");
            }),
            "SCHEMA_VALIDATION_FAILED",
            "/States/A/Output",
        ),
        (
            with(&|d| {
                d["States"]["A"]["Parameters"] = json!({"x": "$.looks.like.a.path"});
            }),
            "NO_DOLLAR",
            "/States/A/Parameters/x",
        ),
    ]
}

#[test]
fn each_diagnostic_has_aws_code_and_location() {
    for (def, code, loc) in cases() {
        let diags = validate(&def);
        let hit = diags.iter().find(|d| d.code == code);
        let Some(d) = hit else {
            panic!("{def}: expected {code}, got {diags:?}");
        };
        assert_eq!(d.location.as_deref().unwrap_or(""), loc, "{def}: {d}");
        let expect_error = code != "NO_DOLLAR";
        assert_eq!(d.severity == Severity::Error, expect_error, "{def}");
        assert_eq!(leasehold_asl::load(&def).is_err(), expect_error, "{def}");
    }
}

#[test]
fn overlong_state_names_are_invalid() {
    let name = "N".repeat(81);
    let def = format!(r#"{{"StartAt": "{name}", "States": {{"{name}": {{"Type": "Succeed"}}}}}}"#);
    let diags = validate(&def);
    let d = diags
        .iter()
        .find(|d| d.code == "INVALID_STATE_NAME")
        .expect("INVALID_STATE_NAME");
    assert_eq!(
        d.location.as_deref(),
        Some(format!("/States/{name}").as_str())
    );
    assert!(leasehold_asl::load(&def).is_err());
}

#[test]
fn a_valid_definition_has_no_diagnostics() {
    let def = json!({"StartAt": "A", "States": {
        "A": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Retry": [{"ErrorEquals": ["X"]}, {"ErrorEquals": ["States.ALL"]}],
              "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "F"}], "Next": "C"},
        "C": {"Type": "Choice", "Choices": [{"Variable": "$.x", "StringEquals": "y", "Next": "S"}], "Default": "F"},
        "S": {"Type": "Succeed"}, "F": {"Type": "Fail"}}});
    assert_eq!(validate(&def.to_string()), vec![]);
}

/// A small deterministic generator for mutations.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[(self.next() % xs.len() as u64) as usize]
    }
}

fn mutate(v: &mut Value, rng: &mut Rng) {
    let junk = [
        json!(null),
        json!(1),
        json!(-1.5),
        json!("$.x"),
        json!("$$.Map.Item.Value"),
        json!("{% $x %}"),
        json!("States.Format('{}', $.a)"),
        json!([]),
        json!({}),
        json!("A"),
        json!(true),
        json!("States.ALL"),
        json!({"Type": "Pass", "End": true}),
        json!("$[?(@.a > 1)]"),
        json!("2016-13-05T21:29:29Z"),
    ];
    match v {
        Value::Object(m) if !m.is_empty() => {
            let keys: Vec<String> = m.keys().cloned().collect();
            let k = rng.pick(&keys).clone();
            match rng.next() % 7 {
                0 => {
                    m.remove(&k);
                }
                1 => {
                    m.insert(k, rng.pick(&junk).clone());
                }
                2 => {
                    let fields = [
                        "Next",
                        "End",
                        "Type",
                        "ItemsPath",
                        "Retry",
                        "Catch",
                        "Parameters",
                        "ResultPath",
                        "Seconds",
                        "Choices",
                        "Branches",
                        "QueryLanguage",
                        "Output",
                    ];
                    m.insert(rng.pick(&fields).to_string(), rng.pick(&junk).clone());
                }
                _ => {
                    if let Some(x) = m.get_mut(&k) {
                        mutate(x, rng);
                    }
                }
            }
        }
        Value::Array(a) if !a.is_empty() => {
            let i = (rng.next() % a.len() as u64) as usize;
            mutate(&mut a[i], rng);
        }
        other => *other = rng.pick(&junk).clone(),
    }
}

#[test]
fn mutated_definitions_never_panic() {
    let seeds = [
        json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Parameters": {"x.$": "$.a"}, "Next": "C"},
            "C": {"Type": "Choice", "Choices": [{"Variable": "$.x", "NumericGreaterThan": 1, "Next": "M"}], "Default": "W"},
            "W": {"Type": "Wait", "Seconds": 1, "Next": "M"},
            "M": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 2, "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Pass", "End": true}}}, "Next": "P"},
            "P": {"Type": "Parallel", "Branches": [{"StartAt": "B", "States": {"B": {"Type": "Fail", "Error": "E"}}}], "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.err", "Next": "S"}], "End": true},
            "S": {"Type": "Succeed"}}}),
        json!({"QueryLanguage": "JSONata", "StartAt": "A", "States": {"A": {"Type": "Pass", "Assign": {"v": "{% $states.input.a %}"}, "Output": {"o": "{% $v %}"}, "Next": "T"},
            "T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Arguments": {"p": "{% $v %}"}, "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 1}], "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "F"}], "End": true},
            "F": {"Type": "Fail", "Error": "{% 'x' %}"}}}),
    ];
    let inputs = [
        json!({"a": 2, "items": [1, 2, 3]}),
        json!({"a": "x"}),
        json!(null),
        json!([1]),
    ];
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut ran = 0;
    for round in 0..1500 {
        let mut def = seeds[round % seeds.len()].clone();
        for _ in 0..(1 + rng.next() % 2) {
            mutate(&mut def, &mut rng);
        }
        let text = def.to_string();
        let _ = validate(&text);
        if let Ok(m) = leasehold_asl::load(&text) {
            ran += 1;
            let clock = VirtualClock::new(0);
            let mut cfg =
                ExecutionConfig::new("us-east-1", "1", "M", "e", &rng.pick(&inputs).to_string());
            cfg.max_history_events = 2_000;
            let services = Services {
                clock: Arc::new(clock.clone()),
                random: Arc::new(SeededRandom::new(round as u64)),
                invoker: Arc::new(NoTasks),
                observer: None,
            };
            let out = clock.block_on(execute(Arc::new(m), cfg, services, AbortHandle::new()));
            let out = out.expect("never blocks");
            assert!(!out.history.is_empty());
        }
        // Truncated text must be rejected cleanly too.
        let cut = text.len() * (rng.next() % 100) as usize / 100;
        if text.is_char_boundary(cut) {
            let _ = validate(&text[..cut]);
        }
    }
    assert!(
        ran > 30,
        "enough mutants stayed valid to be executed: {ran}"
    );
}
