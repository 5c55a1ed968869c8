//! TestState: runs one state on its own, as AWS's TestState API does, and answers how it went:
//! `status` (`SUCCEEDED`, `FAILED`, `RETRIABLE` when a retrier would try again, `CAUGHT_ERROR`
//! when a catcher takes the error), `output`, `error`, `cause`, `nextState`, and with
//! `inspectionLevel` DEBUG or TRACE `inspectionData`.
//!
//! The state runs on the interpreter inside a small machine of its own: every state it can go
//! to is a Succeed placeholder, so the first state entered after it names `nextState` and its
//! input is the output. Retriers are not run: the error is matched against them with
//! `stateConfiguration.retrierRetryCount` (attempts already made, default 0) and, when one
//! still has attempts left, the answer is `RETRIABLE`. Otherwise the state runs once more with
//! its catchers, on the recorded answer of its task (the service is called once), so the
//! catcher's `ResultPath` or `Output` shapes the output. A `mock` (`result`, or `errorOutput`
//! with `error` and `cause`) answers the task instead of the service.

use super::test_mock::{self, member};
use super::{ApiError, StepFunctions};
use leasehold_asl::clock::BoxFuture;
use leasehold_asl::invoker::{TaskError, TaskInvoker, TaskRequest, TaskStyle};
use leasehold_asl::run::matches_error;
use leasehold_asl::{ExecutionConfig, HistoryEvent, Redrive, Services, execute};
use serde_json::{Map, Value, json};
use std::sync::{Arc, Mutex};

/// Answers a task from a mock, or from the service once and then from what it answered.
struct Once {
    inner: Arc<dyn TaskInvoker>,
    answer: Arc<Mutex<Option<Result<Value, TaskError>>>>,
}

impl TaskInvoker for Once {
    fn invoke(&self, request: TaskRequest) -> BoxFuture<'static, Result<Value, TaskError>> {
        let (inner, answer) = (self.inner.clone(), self.answer.clone());
        Box::pin(async move {
            let known = answer.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if let Some(known) = known {
                return known;
            }
            let got = inner.invoke(request).await;
            *answer.lock().unwrap_or_else(|e| e.into_inner()) = Some(got.clone());
            got
        })
    }
    fn style(&self, resource: &str) -> TaskStyle {
        self.inner.style(resource)
    }
}

fn invalid(kind: &'static str, why: impl Into<String>) -> ApiError {
    ApiError::new(kind, why.into())
}

fn json_member(body: &Value, key: &str) -> Result<Option<Value>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => serde_json::from_str(text).map(Some).map_err(|e| {
            invalid(
                "ValidationException",
                format!("{key} is not valid JSON: {e}"),
            )
        }),
        Some(_) => Err(invalid(
            "SerializationException",
            format!("{key} must be a string"),
        )),
    }
}

/// The state to test: its name, its definition, and the machine-level query language.
type Tested = (String, Map<String, Value>, Option<Value>);

/// The state to test, its name, and the machine-level query language.
fn the_state(body: &Value) -> Result<Tested, ApiError> {
    let text = body["definition"]
        .as_str()
        .ok_or_else(|| invalid("ValidationException", "definition is required"))?;
    let definition: Value = serde_json::from_str(text).map_err(|e| {
        invalid(
            "InvalidDefinition",
            format!("Invalid State Machine Definition: '{e}'"),
        )
    })?;
    let name = body["stateName"].as_str();
    let (name, state, language) = match definition.get("States") {
        Some(states) => {
            let name = name.ok_or_else(|| {
                invalid(
                    "ValidationException",
                    "stateName is required when the definition is a state machine",
                )
            })?;
            let state = states.get(name).ok_or_else(|| {
                invalid(
                    "InvalidDefinition",
                    format!("Invalid State Machine Definition: 'state {name} does not exist'"),
                )
            })?;
            (
                name.to_owned(),
                state.clone(),
                definition.get("QueryLanguage").cloned(),
            )
        }
        None => (name.unwrap_or("TestState").to_owned(), definition, None),
    };
    match state {
        Value::Object(state) if state.get("Type").is_some_and(Value::is_string) => {
            Ok((name, state, language))
        }
        _ => Err(invalid(
            "InvalidDefinition",
            "Invalid State Machine Definition: 'a state must be an object with a Type'",
        )),
    }
}

/// The transitions of `state`: its `Next`, `Default`, and the `Next` of each choice and
/// catcher.
fn transitions(state: &mut Map<String, Value>) -> Vec<&mut Value> {
    let mut found = Vec::new();
    for (key, value) in state.iter_mut() {
        match key.as_str() {
            "Next" | "Default" => found.push(value),
            "Choices" | "Catch" => {
                for entry in value.as_array_mut().into_iter().flatten() {
                    if let Some(next) = entry.get_mut("Next") {
                        found.push(next);
                    }
                }
            }
            _ => {}
        }
    }
    found
}

/// The placeholder for a state that goes back to itself.
const SELF: &str = "TestStateItself";

/// The machine that runs `state` once: a Succeed placeholder for each state it goes to (its
/// own name, when it goes back to itself, becomes [`SELF`]). `with_catch` keeps its catchers.
fn machine(
    name: &str,
    state: &Map<String, Value>,
    language: &Option<Value>,
    with_catch: bool,
) -> String {
    let mut tested = state.clone();
    tested.remove("Retry");
    if !with_catch {
        tested.remove("Catch");
    }
    let mut states = Map::new();
    for next in transitions(&mut tested) {
        if next.as_str() == Some(name) {
            *next = json!(SELF);
        }
        if let Some(target) = next.as_str() {
            states.insert(target.to_owned(), json!({"Type": "Succeed"}));
        }
    }
    states.insert(name.to_owned(), Value::Object(tested));
    let mut machine = json!({"StartAt": name, "States": states});
    if let Some(language) = language {
        machine["QueryLanguage"] = language.clone();
    }
    machine.to_string()
}

struct Run {
    status: &'static str,
    output: Option<Value>,
    error: Option<String>,
    cause: Option<String>,
    next: Option<String>,
    history: Vec<HistoryEvent>,
}

fn entered(event: &HistoryEvent) -> Option<(String, Value)> {
    let d = event.details.as_ref()?.to_value();
    let name = d.get("name")?.as_str()?.to_owned();
    let input = d
        .get("input")?
        .as_str()
        .and_then(|t| serde_json::from_str(t).ok())?;
    event
        .event_type
        .ends_with("StateEntered")
        .then_some((name, input))
}

impl StepFunctions {
    /// Runs the test machine once: how it ended, where it went, and its history.
    async fn run_test_machine(
        &self,
        (name, definition): (&str, &str),
        input: &Value,
        variables: &Map<String, Value>,
        invoker: Arc<dyn TaskInvoker>,
    ) -> Result<Run, ApiError> {
        let parsed = Arc::new(Self::parse(definition)?);
        let mut config = ExecutionConfig::new(
            &self.region,
            &self.account,
            "TestState",
            "test",
            &input.to_string(),
        );
        config.redrive = Some(Redrive {
            history: Vec::new(),
            count: 0,
            state: name.to_owned(),
            input: input.clone(),
            variables: variables.clone(),
        });
        let services = Services {
            clock: self.clock.read().unwrap_or_else(|e| e.into_inner()).clone(),
            random: self.random.clone(),
            invoker,
            observer: None,
        };
        let outcome = execute(parsed, config, services, leasehold_asl::AbortHandle::new()).await;
        // The first state entered after the tested one: where it went, and with what.
        let after = outcome.history.iter().filter_map(entered).nth(1);
        let (next, output) = match after {
            Some((next, input)) => (
                Some(if next == SELF { name.to_owned() } else { next }),
                Some(input),
            ),
            None => (None, outcome.output.clone()),
        };
        Ok(Run {
            status: if outcome.status == leasehold_asl::Status::Succeeded {
                "SUCCEEDED"
            } else {
                "FAILED"
            },
            output,
            error: outcome.error,
            cause: outcome.cause,
            next,
            history: outcome.history,
        })
    }

    /// TestState.
    pub async fn test_state(&self, body: &Value) -> Result<Value, ApiError> {
        let (name, state, language) = the_state(body)?;
        let input = json_member(body, "input")?.unwrap_or_else(|| json!({}));
        let variables = match json_member(body, "variables")? {
            None => Map::new(),
            Some(Value::Object(v)) => v,
            Some(_) => {
                return Err(invalid(
                    "ValidationException",
                    "variables must be a JSON object",
                ));
            }
        };
        let level = body["inspectionLevel"].as_str().unwrap_or("INFO");
        if !["INFO", "DEBUG", "TRACE"].contains(&level) {
            return Err(invalid(
                "ValidationException",
                format!("inspectionLevel must be INFO, DEBUG or TRACE, got {level}"),
            ));
        }
        let configuration = &body["stateConfiguration"];
        let retried = configuration["retrierRetryCount"].as_u64().unwrap_or(0);
        let mocked = test_mock::answer(&body["mock"], configuration, &state, &input)?;
        if mocked.is_none()
            && member(&state, "Type") == "Task"
            && body["roleArn"].as_str().is_none_or(str::is_empty)
        {
            return Err(invalid(
                "ValidationException",
                "RoleArn must be specified when testing a Task state",
            ));
        }
        let answer = Arc::new(Mutex::new(mocked));
        if matches!(member(&state, "Type").as_str(), Some("Map" | "Parallel")) {
            // Its iterations or branches never run, but they must still be a valid definition.
            Self::parse(&machine(&name, &state, &language, true))?;
        }
        let runs = test_mock::stand_in(&state);
        let invoker = || -> Arc<dyn TaskInvoker> {
            Arc::new(Once {
                inner: self.tasks.invoker.clone(),
                answer: answer.clone(),
            })
        };
        let bare = machine(&name, &runs, &language, false);
        let mut run = self
            .run_test_machine((&name, &bare), &input, &variables, invoker())
            .await?;
        let mut status = run.status;
        let mut error_details = None;
        if let Some(error) = run.error.clone().filter(|_| status == "FAILED") {
            let names = |entry: &Value| -> Vec<String> {
                entry["ErrorEquals"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e.as_str().map(str::to_owned))
                    .collect()
            };
            let list = |key: &str| {
                state
                    .get(key)
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            };
            let retrier = list("Retry")
                .into_iter()
                .enumerate()
                .find(|(_, r)| matches_error(&names(r), &error));
            let caught = list("Catch")
                .iter()
                .position(|c| matches_error(&names(c), &error));
            let attempts_left = |r: &Value| retried < r["MaxAttempts"].as_u64().unwrap_or(3);
            if let Some((index, retrier)) = retrier.clone().filter(|(_, r)| attempts_left(r)) {
                status = "RETRIABLE";
                error_details = Some(json!({
                    "retryIndex": index,
                    "retryBackoffIntervalSeconds": backoff(&retrier, retried),
                }));
            } else if let Some(index) = caught {
                error_details = Some(json!({"catchIndex": index}));
                let with_catch = machine(&name, &runs, &language, true);
                let again = self
                    .run_test_machine((&name, &with_catch), &input, &variables, invoker())
                    .await?;
                (run.output, run.next) = (again.output, again.next);
                status = "CAUGHT_ERROR";
            } else if let Some((index, _)) = retrier {
                // A retrier matched but has no attempt left.
                error_details = Some(json!({"retryIndex": index}));
            }
        }
        let mut answer = json!({"status": status});
        if status == "SUCCEEDED" || status == "CAUGHT_ERROR" {
            if let Some(output) = &run.output {
                answer["output"] = json!(output.to_string());
            }
            if let Some(next) = &run.next {
                answer["nextState"] = json!(next);
            }
        }
        if status != "SUCCEEDED" {
            if let Some(error) = &run.error {
                answer["error"] = json!(error);
            }
            if let Some(cause) = &run.cause {
                answer["cause"] = json!(cause);
            }
        }
        if level != "INFO" {
            let mut data = inspection(&run.history, &input, &state, &variables);
            if let Some(output) = run.output.as_ref().filter(|_| status == "SUCCEEDED") {
                derived(&mut data, &state, output);
            }
            if let Some(details) = error_details {
                data["errorDetails"] = details;
            }
            answer["inspectionData"] = data;
        }
        Ok(answer)
    }
}

/// The wait before retry `retried + 1` (whole seconds, without jitter): `IntervalSeconds`
/// (default 1) times `BackoffRate` (default 2) to the `retried`, at most `MaxDelaySeconds`.
fn backoff(retrier: &Value, retried: u64) -> u64 {
    let interval = retrier["IntervalSeconds"].as_f64().unwrap_or(1.0);
    let rate = retrier["BackoffRate"].as_f64().unwrap_or(2.0);
    let mut delay = interval * rate.powi(i32::try_from(retried).unwrap_or(i32::MAX));
    if let Some(max) = retrier["MaxDelaySeconds"].as_f64() {
        delay = delay.min(max);
    }
    delay.round() as u64
}

/// The JSON text of `path` (a JSONPath of the state) applied to `value`; `None` when the
/// path is not a plain one.
fn selected(path: Option<&Value>, value: &Value) -> Option<String> {
    match path {
        None => Some(value.to_string()),
        Some(Value::Null) => Some("{}".to_owned()),
        Some(Value::String(path)) => {
            let path = leasehold_asl::jsonpath::JsonPath::parse(path).ok()?;
            path.select(value).map(|v| v.to_string())
        }
        Some(_) => None,
    }
}

/// What follows from the output of a JSONPath state without an `OutputPath`: it is the value
/// after `ResultPath`, and at `ResultPath` sits the value after `ResultSelector`.
fn derived(data: &mut Value, state: &Map<String, Value>, output: &Value) {
    if state.contains_key("OutputPath") || state.contains_key("Output") {
        return;
    }
    data["afterResultPath"] = json!(output.to_string());
    if !matches!(
        member(state, "Type").as_str(),
        Some("Task" | "Map" | "Parallel")
    ) {
        return;
    }
    let at_result = match state.get("ResultPath") {
        Some(Value::Null) => None,
        path => selected(path, output),
    };
    if let Some(text) = at_result {
        data["afterResultSelector"] = json!(text);
    }
}

/// DEBUG's `inspectionData`, from the run's events: the input, the input after `InputPath`,
/// the effective parameters (`afterArguments` in JSONata) and the task's result, and the
/// variables it started with.
fn inspection(
    history: &[HistoryEvent],
    input: &Value,
    state: &Map<String, Value>,
    variables: &Map<String, Value>,
) -> Value {
    let jsonata = state.get("QueryLanguage").and_then(Value::as_str) == Some("JSONata");
    let parameters = if jsonata {
        "afterArguments"
    } else {
        "afterParameters"
    };
    let mut data = json!({"input": input.to_string()});
    let kind = member(state, "Type").as_str().unwrap_or_default();
    // AWS shows no afterInputPath for a Parallel state.
    let after_input = (!jsonata && kind != "Parallel")
        .then(|| selected(state.get("InputPath"), input))
        .flatten();
    if let Some(text) = &after_input {
        data["afterInputPath"] = json!(text);
    }
    if kind == "Map" {
        map_inspection(&mut data, state, input, after_input.as_deref());
    }
    if matches!(kind, "Map" | "Parallel") {
        // The iterations and branches did not run: the mock was the result.
        return with_variables(data, variables);
    }
    for event in history {
        let Some(details) = event.details.as_ref().map(|d| d.to_value()) else {
            continue;
        };
        match event.event_type.as_str() {
            "TaskScheduled" => data[parameters] = details["parameters"].clone(),
            "LambdaFunctionScheduled" | "ActivityScheduled" => {
                data[parameters] = details["input"].clone()
            }
            "TaskSucceeded" | "LambdaFunctionSucceeded" | "ActivitySucceeded" => {
                data["result"] = details["output"].clone()
            }
            _ => {}
        }
    }
    with_variables(data, variables)
}

fn with_variables(mut data: Value, variables: &Map<String, Value>) -> Value {
    if !variables.is_empty() {
        data["variables"] = json!(Value::Object(variables.clone()).to_string());
    }
    data
}

/// A Map state's own inspection data: the items after `ItemsPath` (JSONPath), its
/// `MaxConcurrency` (0: no limit) and its tolerance, when it has one.
fn map_inspection(
    data: &mut Value,
    state: &Map<String, Value>,
    input: &Value,
    after_input: Option<&str>,
) {
    if let Some(after_input) = after_input
        && let Ok(effective) = serde_json::from_str::<Value>(after_input)
        && let Some(items) = selected(state.get("ItemsPath"), &effective)
    {
        data["afterItemsPath"] = json!(items);
    }
    let limits = test_mock::map_limits(state, input);
    data["maxConcurrency"] = json!(limits.max_concurrency);
    if let Some(count) = limits.count {
        data["toleratedFailureCount"] = json!(count);
    }
    if let Some(percentage) = limits.percentage {
        data["toleratedFailurePercentage"] = json!(percentage);
    }
}
