//! TestState's `mock` and `stateConfiguration`, checked the way AWS checks them:
//!
//! - a mock only for Task, Map and Parallel states, with exactly one of `result` (JSON text)
//!   and `errorOutput`; Map and Parallel states are tested only with a mock (their iterations
//!   and branches never run: the mock is the state's result);
//! - `fieldValidationMode` (`STRICT`, the default: the required members of the service's answer
//!   present and every known member of the right type; `PRESENT`: only the second; `NONE`) for
//!   the service integrations this stack runs, against their response shapes; members a shape
//!   does not know are let through, as AWS does;
//! - a Map's mocked result is an array, a Parallel's one with an item per branch;
//!   `mapIterationFailureCount` (at most the iterations) fails the Map with
//!   `States.ExceedToleratedFailureThreshold` when it exceeds the Map's tolerance;
//!   `errorCausedByState` names a state inside the Map or Parallel.

use super::{ApiError, STATUSES};
use leasehold_asl::invoker::TaskError;
use leasehold_asl::jsonpath::JsonPath;
use serde_json::{Map, Value, json};

/// A member of a state's definition (`Null` when it has none: never a panic on input).
pub(super) fn member<'a>(state: &'a Map<String, Value>, key: &str) -> &'a Value {
    state.get(key).unwrap_or(&Value::Null)
}

fn invalid(why: impl Into<String>) -> ApiError {
    ApiError::new("ValidationException", why.into())
}

/// What the tested task answers: the mock's, or `None` when the service answers.
pub(super) type Answer = Option<Result<Value, TaskError>>;

/// How strictly a mocked result is held to its service's response shape.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Strictness {
    Strict,
    Present,
    None,
}

/// The type of one member of a response shape.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Number,
    /// A string from a fixed set.
    OneOf(&'static [&'static str]),
    /// A map or a document: any object.
    Object,
    /// Anything (a Lambda payload, metadata the SDK adds).
    Any,
    /// A structure of its own.
    Shape(&'static Shape),
}

/// A response shape: its members and which of them are required.
struct Shape {
    members: &'static [(&'static str, Kind)],
    required: &'static [&'static str],
}

const CONSUMED_CAPACITY: Shape = Shape {
    members: &[
        ("TableName", Kind::Text),
        ("CapacityUnits", Kind::Number),
        ("ReadCapacityUnits", Kind::Number),
        ("WriteCapacityUnits", Kind::Number),
        ("Table", Kind::Object),
        ("LocalSecondaryIndexes", Kind::Object),
        ("GlobalSecondaryIndexes", Kind::Object),
    ],
    required: &[],
};

const LAMBDA_INVOKE: Shape = Shape {
    members: &[
        ("StatusCode", Kind::Number),
        ("FunctionError", Kind::Text),
        ("LogResult", Kind::Text),
        ("Payload", Kind::Any),
        ("ExecutedVersion", Kind::Text),
        ("SdkHttpMetadata", Kind::Any),
        ("SdkResponseMetadata", Kind::Any),
    ],
    required: &[],
};

const START_EXECUTION: Shape = Shape {
    members: &[("ExecutionArn", Kind::Text), ("StartDate", Kind::Text)],
    required: &["ExecutionArn", "StartDate"],
};

/// `states:startExecution.sync`: the child's DescribeExecution.
const DESCRIBED_EXECUTION: Shape = Shape {
    members: &[
        ("ExecutionArn", Kind::Text),
        ("StateMachineArn", Kind::Text),
        ("Name", Kind::Text),
        ("Status", Kind::OneOf(&STATUSES)),
        ("StartDate", Kind::Text),
        ("StopDate", Kind::Text),
        ("Input", Kind::Any),
        ("Output", Kind::Any),
        ("Error", Kind::Text),
        ("Cause", Kind::Text),
        ("RedriveCount", Kind::Number),
    ],
    required: &["ExecutionArn", "StateMachineArn", "Status", "StartDate"],
};

const DYNAMODB_GET_ITEM: Shape = Shape {
    members: &[
        ("Item", Kind::Object),
        ("ConsumedCapacity", Kind::Shape(&CONSUMED_CAPACITY)),
    ],
    required: &[],
};

const DYNAMODB_WRITE: Shape = Shape {
    members: &[
        ("Attributes", Kind::Object),
        ("ConsumedCapacity", Kind::Shape(&CONSUMED_CAPACITY)),
        ("ItemCollectionMetrics", Kind::Object),
    ],
    required: &[],
};

const SQS_SEND_MESSAGE: Shape = Shape {
    members: &[
        ("MD5OfMessageBody", Kind::Any),
        ("MD5OfMessageAttributes", Kind::Text),
        ("MD5OfMessageSystemAttributes", Kind::Text),
        ("MessageId", Kind::Text),
        ("SequenceNumber", Kind::Text),
    ],
    required: &[],
};

/// The response shape of a Task resource, for the integrations this stack runs; `None` for a
/// callback (its answer is whatever was sent), a bare function or activity, or anything else.
fn shape_of(resource: &str) -> Option<&'static Shape> {
    let service = resource.strip_prefix("arn:aws:states:::")?;
    Some(match service {
        "lambda:invoke" => &LAMBDA_INVOKE,
        "states:startExecution" => &START_EXECUTION,
        "states:startExecution.sync" | "states:startExecution.sync:2" => &DESCRIBED_EXECUTION,
        "dynamodb:getItem" => &DYNAMODB_GET_ITEM,
        "dynamodb:putItem" | "dynamodb:updateItem" | "dynamodb:deleteItem" => &DYNAMODB_WRITE,
        "sqs:sendMessage" => &SQS_SEND_MESSAGE,
        _ => return None,
    })
}

fn schema_error(detail: String) -> ApiError {
    invalid(format!("Mock result schema validation error: {detail}"))
}

/// Holds `value` to `shape`: the first problem found, as AWS names it.
fn conform(value: &Value, shape: &Shape, strictness: Strictness) -> Result<(), ApiError> {
    let Value::Object(members) = value else {
        return Err(schema_error("The result must be a JSON object".into()));
    };
    if strictness == Strictness::Strict
        && let Some(missing) = shape.required.iter().find(|r| !members.contains_key(**r))
    {
        return Err(schema_error(format!(
            "Required field '{missing}' is missing"
        )));
    }
    for (name, kind) in shape.members {
        if let Some(v) = members.get(*name) {
            conform_member(name, v, *kind, strictness)?;
        }
    }
    Ok(())
}

fn conform_member(
    name: &str,
    value: &Value,
    kind: Kind,
    strictness: Strictness,
) -> Result<(), ApiError> {
    let must_be = |what: &str| Err(schema_error(format!("Field '{name}' must be {what}")));
    match (kind, value) {
        (Kind::Any, _) => Ok(()),
        (Kind::Text, Value::String(_)) | (Kind::Number, Value::Number(_)) => Ok(()),
        (Kind::Object, Value::Object(_)) => Ok(()),
        (Kind::Text, _) => must_be("a string"),
        (Kind::Number, _) => must_be("a number"),
        (Kind::Object, _) => must_be("an object"),
        (Kind::OneOf(allowed), Value::String(s)) if allowed.contains(&s.as_str()) => Ok(()),
        (Kind::OneOf(_), Value::String(_)) => Err(schema_error(format!(
            "Field '{name}' is not an expected value"
        ))),
        (Kind::OneOf(_), _) => must_be("a string"),
        (Kind::Shape(shape), Value::Object(_)) => conform(value, shape, strictness),
        (Kind::Shape(_), _) => must_be("an object"),
    }
}

fn strictness(mock: &Value) -> Result<Strictness, ApiError> {
    match mock.get("fieldValidationMode") {
        None | Some(Value::Null) => Ok(Strictness::Strict),
        Some(Value::String(s)) if s == "STRICT" => Ok(Strictness::Strict),
        Some(Value::String(s)) if s == "PRESENT" => Ok(Strictness::Present),
        Some(Value::String(s)) if s == "NONE" => Ok(Strictness::None),
        Some(other) => Err(invalid(format!(
            "1 validation error detected: Value {other} at 'mock.fieldValidationMode' failed to satisfy constraint: Member must satisfy enum value set: [STRICT, PRESENT, NONE]"
        ))),
    }
}

/// The names of the states directly inside a Map (its processor) or a Parallel (its
/// branches).
fn inner_states(state: &Map<String, Value>) -> Vec<String> {
    let processors: Vec<&Value> = match member(state, "Type").as_str() {
        Some("Map") => state
            .get("ItemProcessor")
            .or_else(|| state.get("Iterator"))
            .into_iter()
            .collect(),
        Some("Parallel") => state
            .get("Branches")
            .and_then(Value::as_array)
            .map(|b| b.iter().collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    processors
        .iter()
        .filter_map(|p| p.get("States").and_then(Value::as_object))
        .flat_map(|s| s.keys().cloned())
        .collect()
}

fn count(configuration: &Value, key: &str) -> Result<Option<u64>, ApiError> {
    match configuration.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            invalid(format!(
                "1 validation error detected: Value {v} at 'stateConfiguration.{key}' failed to satisfy constraint: Member must have value greater than or equal to 0"
            ))
        }),
    }
}

/// A Map's limits as its definition gives them, literally or by a `...Path` into its input
/// (after `InputPath`).
pub(super) struct MapLimits {
    pub max_concurrency: u64,
    pub count: Option<u64>,
    pub percentage: Option<f64>,
}

pub(super) fn map_limits(state: &Map<String, Value>, input: &Value) -> MapLimits {
    let effective = match state.get("InputPath") {
        Some(Value::String(path)) => JsonPath::parse(path)
            .ok()
            .and_then(|p| p.select(input))
            .unwrap_or(Value::Null),
        Some(Value::Null) => json!({}),
        _ => input.clone(),
    };
    let limit = |key: &str| -> Option<Value> {
        match state.get(key) {
            Some(v) if v.is_number() => Some(v.clone()),
            _ => {
                let path = state.get(&format!("{key}Path"))?.as_str()?;
                JsonPath::parse(path).ok()?.select(&effective)
            }
        }
    };
    MapLimits {
        max_concurrency: limit("MaxConcurrency")
            .and_then(|v| v.as_u64())
            .unwrap_or(0),
        count: limit("ToleratedFailureCount").and_then(|v| v.as_u64()),
        percentage: limit("ToleratedFailurePercentage").and_then(|v| v.as_f64()),
    }
}

/// Whether `failures` of `items` iterations exceed the Map's tolerance (none set: AWS's
/// TestState lets any count through).
fn beyond_tolerance(limits: &MapLimits, failures: u64, items: usize) -> bool {
    if failures == 0 || (limits.count.is_none() && limits.percentage.is_none()) {
        return false;
    }
    let within_count = limits.count.is_some_and(|c| failures <= c);
    let within_percentage = limits
        .percentage
        .is_some_and(|p| items > 0 && failures as f64 * 100.0 / items as f64 <= p);
    !(within_count || within_percentage)
}

/// What `mock` makes the tested state answer, after every check of the mock and of
/// `stateConfiguration` (`None`: the service answers).
pub(super) fn answer(
    mock: &Value,
    configuration: &Value,
    state: &Map<String, Value>,
    input: &Value,
) -> Result<Answer, ApiError> {
    let kind = member(state, "Type").as_str().unwrap_or_default();
    let divided = matches!(kind, "Map" | "Parallel");
    let failures = count(configuration, "mapIterationFailureCount")?;
    let caused_by = configuration
        .get("errorCausedByState")
        .and_then(Value::as_str);
    if let Some(name) = caused_by {
        if !divided {
            return Err(invalid(
                "errorCausedByState is only for Map and Parallel states",
            ));
        }
        if !inner_states(state).iter().any(|s| s == name) {
            return Err(invalid(format!(
                "errorCausedByState '{name}' is not a state of the {kind} state"
            )));
        }
    }
    if failures.is_some() && kind != "Map" {
        return Err(invalid("mapIterationFailureCount is only for Map states"));
    }
    if mock.is_null() {
        if failures.is_some() {
            return Err(invalid(
                "TestState does not support MapIterationFailureCount when a mock is not specified.",
            ));
        }
        if divided {
            return Err(ApiError::new(
                "InvalidDefinition",
                "TestState API does not support Map or Parallel states. Supported state types include: [Task, Wait, Pass, Succeed, Fail, Choice]",
            ));
        }
        return Ok(None);
    }
    if !matches!(kind, "Task" | "Map" | "Parallel") {
        return Err(invalid(format!(
            "State type '{kind}' is not supported when a mock is specified"
        )));
    }
    let strictness = strictness(mock)?;
    match (mock.get("result"), mock.get("errorOutput")) {
        (Some(Value::String(text)), None) => {
            let result: Value = serde_json::from_str(text)
                .map_err(|_| invalid("Mocked result must be valid JSON"))?;
            match kind {
                "Map" => {
                    let items = result
                        .as_array()
                        .ok_or_else(|| invalid("Mocked result must be an array."))?
                        .len();
                    let failures = failures.unwrap_or(0);
                    if failures > items as u64 {
                        return Err(invalid(
                            "Map iteration failure count must be less than or equal to the number of Map iterations",
                        ));
                    }
                    if beyond_tolerance(&map_limits(state, input), failures, items) {
                        return Ok(Some(Err(TaskError {
                            error: "States.ExceedToleratedFailureThreshold".into(),
                            cause: Some(
                                "The specified tolerated failure threshold was exceeded".into(),
                            ),
                        })));
                    }
                }
                "Parallel" => {
                    let branches = member(state, "Branches").as_array().map_or(0, Vec::len);
                    let items = result
                        .as_array()
                        .ok_or_else(|| invalid("Mocked result must be an array."))?
                        .len();
                    if items != branches {
                        return Err(invalid(
                            "Mocked result must contain the same number of items as number of Parallel branches.",
                        ));
                    }
                }
                _ => {
                    let resource = member(state, "Resource").as_str().unwrap_or_default();
                    if strictness != Strictness::None
                        && let Some(shape) = shape_of(resource)
                    {
                        conform(&result, shape, strictness)?;
                    }
                }
            }
            Ok(Some(Ok(result)))
        }
        (None, Some(error)) => {
            let name = error["error"].as_str().ok_or_else(|| {
                invalid("mock.errorOutput.error is required when errorOutput is given")
            })?;
            Ok(Some(Err(TaskError {
                error: name.to_owned(),
                cause: error["cause"].as_str().map(str::to_owned),
            })))
        }
        (Some(_), Some(_)) => Err(invalid(
            "A test mock should have only one of the following fields: [result, errorOutput].",
        )),
        (Some(_), None) => Err(invalid("mock.result must be a string of JSON text")),
        (None, None) => Err(invalid(
            "A test mock should have one of the following fields: [result, errorOutput].",
        )),
    }
}

/// The state that runs in place of a mocked Map or Parallel: a Task whose answer is the mock,
/// keeping the fields that shape its input, result and transitions; other states as they are.
pub(super) fn stand_in(state: &Map<String, Value>) -> Map<String, Value> {
    if !matches!(member(state, "Type").as_str(), Some("Map" | "Parallel")) {
        return state.clone();
    }
    const KEPT: [&str; 12] = [
        "Comment",
        "QueryLanguage",
        "InputPath",
        "ResultSelector",
        "ResultPath",
        "OutputPath",
        "Output",
        "Assign",
        "Retry",
        "Catch",
        "Next",
        "End",
    ];
    let mut task: Map<String, Value> = state
        .iter()
        .filter(|(k, _)| KEPT.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    task.insert("Type".into(), json!("Task"));
    task.insert("Resource".into(), json!(MOCKED_RESOURCE));
    task
}

/// The resource of a stand-in: no service answers to it, only the mock.
pub(super) const MOCKED_RESOURCE: &str = "arn:aws:states:::testState:mocked";

#[cfg(test)]
mod tests {
    use super::*;

    /// The answer for an input without limits of its own.
    fn answer(
        mock: &Value,
        configuration: &Value,
        state: &Map<String, Value>,
    ) -> Result<Answer, ApiError> {
        super::answer(mock, configuration, state, &json!({}))
    }

    fn state(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn message(r: Result<Answer, ApiError>) -> String {
        match r {
            Err(e) => e.message.clone(),
            Ok(a) => panic!("accepted: {a:?}"),
        }
    }

    #[test]
    fn strict_needs_the_required_members_and_present_only_their_types() {
        let task = state(
            json!({"Type": "Task", "Resource": "arn:aws:states:::states:startExecution", "End": true}),
        );
        let mock = |result: Value, mode: &str| json!({"result": result.to_string(), "fieldValidationMode": mode});
        let config = json!({});
        assert_eq!(
            message(answer(&mock(json!({}), "STRICT"), &config, &task)),
            "Mock result schema validation error: Required field 'ExecutionArn' is missing"
        );
        assert!(answer(&mock(json!({}), "PRESENT"), &config, &task).is_ok());
        assert_eq!(
            message(answer(
                &mock(json!({"ExecutionArn": "a", "StartDate": true}), "PRESENT"),
                &config,
                &task
            )),
            "Mock result schema validation error: Field 'StartDate' must be a string"
        );
        assert!(
            answer(
                &mock(json!({"ExecutionArn": "a", "StartDate": true}), "NONE"),
                &config,
                &task
            )
            .is_ok()
        );
        // Unknown members pass.
        assert!(
            answer(
                &mock(
                    json!({"ExecutionArn": "a", "StartDate": "d", "x": 1}),
                    "STRICT"
                ),
                &config,
                &task
            )
            .is_ok()
        );
        let lambda = state(
            json!({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": true}),
        );
        assert_eq!(
            message(answer(
                &mock(json!({"StatusCode": "200"}), "STRICT"),
                &config,
                &lambda
            )),
            "Mock result schema validation error: Field 'StatusCode' must be a number"
        );
        let put = state(
            json!({"Type": "Task", "Resource": "arn:aws:states:::dynamodb:putItem", "End": true}),
        );
        assert_eq!(
            message(answer(
                &mock(
                    json!({"ConsumedCapacity": {"CapacityUnits": "1.5"}}),
                    "STRICT"
                ),
                &config,
                &put
            )),
            "Mock result schema validation error: Field 'CapacityUnits' must be a number"
        );
        let sync = state(
            json!({"Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync:2", "End": true}),
        );
        let described = json!({"ExecutionArn": "a", "StateMachineArn": "m", "Status": "DONE", "StartDate": "d"});
        assert_eq!(
            message(answer(&mock(described, "STRICT"), &config, &sync)),
            "Mock result schema validation error: Field 'Status' is not an expected value"
        );
        assert_eq!(
            message(answer(
                &json!({"result": "{}", "fieldValidationMode": "LAX"}),
                &config,
                &task
            )),
            "1 validation error detected: Value \"LAX\" at 'mock.fieldValidationMode' failed to satisfy constraint: Member must satisfy enum value set: [STRICT, PRESENT, NONE]"
        );
    }

    #[test]
    fn map_and_parallel_mocks_are_held_to_their_shape() {
        let map = state(
            json!({"Type": "Map", "ToleratedFailureCount": 1, "ItemProcessor": {"StartAt": "Each", "States": {"Each": {"Type": "Pass", "End": true}}}, "End": true}),
        );
        let result = json!({"result": "[1, 2, 3]"});
        assert!(matches!(
            answer(&result, &json!({"mapIterationFailureCount": 1}), &map),
            Ok(Some(Ok(_)))
        ));
        let Ok(Some(Err(e))) = answer(&result, &json!({"mapIterationFailureCount": 2}), &map)
        else {
            panic!("two failures beyond a tolerance of one")
        };
        assert_eq!(e.error, "States.ExceedToleratedFailureThreshold");
        assert_eq!(
            message(answer(
                &result,
                &json!({"mapIterationFailureCount": 4}),
                &map
            )),
            "Map iteration failure count must be less than or equal to the number of Map iterations"
        );
        assert_eq!(
            message(answer(&json!({"result": "{}"}), &json!({}), &map)),
            "Mocked result must be an array."
        );
        assert_eq!(
            message(answer(&json!(null), &json!({}), &map)),
            "TestState API does not support Map or Parallel states. Supported state types include: [Task, Wait, Pass, Succeed, Fail, Choice]"
        );
        assert!(
            answer(
                &json!({"errorOutput": {"error": "E"}}),
                &json!({"errorCausedByState": "Each"}),
                &map
            )
            .is_ok()
        );
        assert_eq!(
            message(answer(
                &json!({"errorOutput": {"error": "E"}}),
                &json!({"errorCausedByState": "Nope"}),
                &map
            )),
            "errorCausedByState 'Nope' is not a state of the Map state"
        );
        let parallel = state(json!({"Type": "Parallel", "Branches": [
            {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}},
            {"StartAt": "B", "States": {"B": {"Type": "Pass", "End": true}}}
        ], "End": true}));
        assert!(answer(&json!({"result": "[1, 2]"}), &json!({}), &parallel).is_ok());
        assert_eq!(
            message(answer(&json!({"result": "[1]"}), &json!({}), &parallel)),
            "Mocked result must contain the same number of items as number of Parallel branches."
        );
        let pass = state(json!({"Type": "Pass", "End": true}));
        assert_eq!(
            message(answer(&result, &json!({}), &pass)),
            "State type 'Pass' is not supported when a mock is specified"
        );
        assert_eq!(
            message(answer(
                &json!({"result": "[]", "errorOutput": {"error": "E"}}),
                &json!({}),
                &map
            )),
            "A test mock should have only one of the following fields: [result, errorOutput]."
        );
        assert_eq!(
            message(answer(&json!({"result": "nope"}), &json!({}), &map)),
            "Mocked result must be valid JSON"
        );
    }
}
