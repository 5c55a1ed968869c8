//! The Step Functions JSON 1.0 API: one function per operation, chosen by [`dispatch`].

use super::{ApiError, Described, Machine, STATUSES, StepFunctions, seconds};
use leasehold_asl::history::HistoryEvent;
use leasehold_asl::validate::{Severity, load_with_diagnostics};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Runs one API operation (`target` without the `AWSStepFunctions.` prefix).
pub async fn dispatch(
    sfn: &Arc<StepFunctions>,
    target: &str,
    body: &Value,
) -> Result<Value, ApiError> {
    match target {
        "CreateStateMachine" => create_state_machine(sfn, body),
        "DescribeStateMachine" => {
            let machine = sfn.machine(field(body, "stateMachineArn")?)?;
            Ok(machine_json(&machine))
        }
        "DescribeStateMachineForExecution" => describe_state_machine_for_execution(sfn, body),
        "UpdateStateMachine" => update_state_machine(sfn, body),
        "DeleteStateMachine" => {
            sfn.delete_machine(field(body, "stateMachineArn")?)?;
            Ok(json!({}))
        }
        "ListStateMachines" => list_state_machines(sfn, body),
        "ValidateStateMachineDefinition" => validate_state_machine_definition(body),
        "StartExecution" => start_execution(sfn, body),
        "StartSyncExecution" => start_sync_execution(sfn, body).await,
        "DescribeExecution" => describe_execution(sfn, body),
        "StopExecution" => stop_execution(sfn, body).await,
        "GetExecutionHistory" => get_execution_history(sfn, body),
        "ListExecutions" => list_executions(sfn, body),
        "SendTaskSuccess" => {
            let (token, output) = (field(body, "taskToken")?, field(body, "output")?);
            sfn.callbacks.succeed(token, output).map(|()| json!({}))
        }
        "SendTaskFailure" => {
            let token = field(body, "taskToken")?;
            let (error, cause) = (optional(body, "error")?, optional(body, "cause")?);
            sfn.callbacks.fail(token, error, cause).map(|()| json!({}))
        }
        "SendTaskHeartbeat" => {
            let token = field(body, "taskToken")?;
            sfn.callbacks
                .heartbeat(token, sfn.now_millis())
                .map(|()| json!({}))
        }
        "TestState" => sfn.test_state(body).await,
        "RedriveExecution" => {
            let date = sfn.redrive(field(body, "executionArn")?)?;
            Ok(json!({"redriveDate": seconds(date)}))
        }
        "CreateActivity" => {
            let name = field(body, "name")?;
            let arn = sfn.activity_arn(name);
            sfn.activities.create(arn, name, sfn.now_millis())
        }
        "DescribeActivity" => sfn.activities.describe(field(body, "activityArn")?),
        "DeleteActivity" => {
            sfn.activities.delete(field(body, "activityArn")?)?;
            Ok(json!({}))
        }
        "ListActivities" => list_activities(sfn, body),
        "DescribeMapRun" => {
            let (execution, run) = sfn.map_run(field(body, "mapRunArn")?)?;
            Ok(super::map_runs::describe(&execution, &run))
        }
        "ListMapRuns" => {
            let execution = sfn.execution(field(body, "executionArn")?)?;
            let page = page(body, 100)?;
            let all: Vec<Value> = execution
                .map_runs()
                .iter()
                .map(|run| super::map_runs::listed(&execution, run))
                .collect();
            one_page("mapRuns", &all, page)
        }
        "GetActivityTask" => get_activity_task(sfn, body).await,
        other => Err(ApiError::new(
            "UnknownOperationException",
            format!("The operation {other} is not supported by the local stack"),
        )),
    }
}

fn list_activities(sfn: &StepFunctions, body: &Value) -> Result<Value, ApiError> {
    let max = match body.get("maxResults").and_then(Value::as_u64) {
        None | Some(0) => 100,
        Some(n) if n <= 1000 => n as usize,
        Some(n) => {
            return Err(ApiError::new(
                "ValidationException",
                format!(
                    "1 validation error detected: Value '{n}' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to 1000"
                ),
            ));
        }
    };
    let (activities, next) = sfn.activities.list(max, optional(body, "nextToken")?);
    let mut answer = json!({"activities": activities});
    if let Some(next) = next {
        answer["nextToken"] = json!(next);
    }
    Ok(answer)
}

/// GetActivityTask: a long poll of up to 60 s (scaled with the stack's time scale).
async fn get_activity_task(sfn: &Arc<StepFunctions>, body: &Value) -> Result<Value, ApiError> {
    let arn = field(body, "activityArn")?;
    let worker = optional(body, "workerName")?;
    if worker.is_some_and(|w| w.chars().count() > 80) {
        return Err(ApiError::new(
            "ValidationException",
            "1 validation error detected: Value at 'workerName' failed to satisfy constraint: Member must have length less than or equal to 80",
        ));
    }
    let wait = Duration::from_secs(super::activities::POLL_SECONDS).mul_f64(sfn.time_scale());
    sfn.activities.poll(arn, worker, &sfn.callbacks, wait).await
}

fn not_supported_for_type() -> ApiError {
    ApiError::new(
        "StateMachineTypeNotSupported",
        "This operation is not supported by this type of state machine",
    )
}

fn create_state_machine(sfn: &StepFunctions, body: &Value) -> Result<Value, ApiError> {
    let kind = optional(body, "type")?.unwrap_or("STANDARD");
    let machine = sfn.create_machine(
        field(body, "name")?,
        field(body, "definition")?,
        field(body, "roleArn")?,
        kind,
    )?;
    Ok(json!({"stateMachineArn": machine.arn, "creationDate": seconds(machine.created_ms)}))
}

fn describe_state_machine_for_execution(
    sfn: &StepFunctions,
    body: &Value,
) -> Result<Value, ApiError> {
    let execution = sfn.execution(field(body, "executionArn")?)?;
    let machine = sfn.machine(&execution.machine_arn)?;
    let mut v = machine_json(&machine);
    if let Value::Object(m) = &mut v {
        m.remove("status");
        m.remove("creationDate");
        m.insert("updateDate".into(), seconds(execution.start_ms));
    }
    Ok(v)
}

fn update_state_machine(sfn: &StepFunctions, body: &Value) -> Result<Value, ApiError> {
    let updated = sfn.update_machine(
        field(body, "stateMachineArn")?,
        optional(body, "definition")?,
        optional(body, "roleArn")?,
    )?;
    Ok(json!({"updateDate": seconds(updated)}))
}

fn list_state_machines(sfn: &StepFunctions, body: &Value) -> Result<Value, ApiError> {
    let page = page(body, 100)?;
    let all: Vec<Value> = sfn
        .machines()
        .iter()
        .map(|m| json!({"stateMachineArn": m.arn, "name": m.name, "type": m.kind, "creationDate": seconds(m.created_ms)}))
        .collect();
    one_page("stateMachines", &all, page)
}

fn validate_state_machine_definition(body: &Value) -> Result<Value, ApiError> {
    let definition = field(body, "definition")?;
    let (_, diagnostics) = load_with_diagnostics(definition);
    let errors = diagnostics.iter().any(|d| d.severity == Severity::Error);
    let list: Vec<Value> = diagnostics
        .iter()
        .map(|d| {
            let mut v = json!({
                "severity": if d.severity == Severity::Error { "ERROR" } else { "WARNING" },
                "code": d.code,
                "message": d.message,
            });
            if let Some(location) = &d.location {
                v["location"] = json!(location);
            }
            v
        })
        .collect();
    Ok(
        json!({"result": if errors { "FAIL" } else { "OK" }, "diagnostics": list, "truncated": false}),
    )
}

fn start_execution(sfn: &Arc<StepFunctions>, body: &Value) -> Result<Value, ApiError> {
    let execution = sfn.start(
        field(body, "stateMachineArn")?,
        optional(body, "name")?,
        optional(body, "input")?,
    )?;
    Ok(json!({"executionArn": execution.arn, "startDate": seconds(execution.start_ms)}))
}

async fn start_sync_execution(sfn: &Arc<StepFunctions>, body: &Value) -> Result<Value, ApiError> {
    let machine = sfn.machine(field(body, "stateMachineArn")?)?;
    if machine.kind != "EXPRESS" {
        return Err(not_supported_for_type());
    }
    let execution = sfn.start(
        &machine.arn,
        optional(body, "name")?,
        optional(body, "input")?,
    )?;
    let d = execution.finished().await;
    let mut v = describe_json(&d);
    let billed = ((d.stop_ms.unwrap_or(d.start_ms) - d.start_ms).max(1) + 99) / 100 * 100;
    v["billingDetails"] =
        json!({"billedMemoryUsedInMB": 64, "billedDurationInMilliseconds": billed});
    Ok(v)
}

fn describe_execution(sfn: &StepFunctions, body: &Value) -> Result<Value, ApiError> {
    let execution = sfn.execution(field(body, "executionArn")?)?;
    if execution.express {
        return Err(ApiError::new(
            "ExecutionDoesNotExist",
            format!("Execution Does Not Exist: '{}'", execution.arn),
        ));
    }
    let mut v = describe_json(&execution.describe());
    for (key, value) in execution.redrive_fields() {
        v[key] = value;
    }
    Ok(v)
}

async fn stop_execution(sfn: &StepFunctions, body: &Value) -> Result<Value, ApiError> {
    let execution = sfn.execution(field(body, "executionArn")?)?;
    execution.stop(
        optional(body, "error")?.map(str::to_owned),
        optional(body, "cause")?.map(str::to_owned),
    );
    let d = tokio::time::timeout(Duration::from_secs(10), execution.finished())
        .await
        .unwrap_or_else(|_| execution.describe());
    Ok(json!({"stopDate": seconds(d.stop_ms.unwrap_or_else(|| sfn.now_millis()))}))
}

fn get_execution_history(sfn: &StepFunctions, body: &Value) -> Result<Value, ApiError> {
    let execution = sfn.execution(field(body, "executionArn")?)?;
    let page = page(body, 100)?;
    let reverse = flag(body, "reverseOrder")?;
    let include_data = flag(body, "includeExecutionData")?;
    let mut events: Vec<Value> = execution.history().iter().map(event_json).collect();
    if reverse == Some(true) {
        events.reverse();
    }
    if include_data == Some(false) {
        for e in &mut events {
            strip_data(e);
        }
    }
    one_page("events", &events, page)
}

fn list_executions(sfn: &StepFunctions, body: &Value) -> Result<Value, ApiError> {
    let machine = sfn.machine(field(body, "stateMachineArn")?)?;
    if machine.kind == "EXPRESS" {
        return Err(not_supported_for_type());
    }
    let filter = optional(body, "statusFilter")?;
    if let Some(f) = filter
        && !STATUSES.contains(&f)
    {
        return Err(ApiError::new(
            "ValidationException",
            format!(
                "1 validation error detected: Value '{f}' at 'statusFilter' failed to satisfy constraint: Member must satisfy enum value set: [SUCCEEDED, TIMED_OUT, PENDING_REDRIVE, ABORTED, FAILED, RUNNING]"
            ),
        ));
    }
    let page = page(body, 100)?;
    let all: Vec<Value> = sfn
        .executions_of(&machine.arn)
        .iter()
        .map(|e| e.describe())
        .filter(|d| filter.is_none_or(|f| d.status == f))
        .map(|d| {
            let mut v = json!({
                "executionArn": d.arn,
                "stateMachineArn": d.machine_arn,
                "name": d.name,
                "status": d.status,
                "startDate": seconds(d.start_ms),
            });
            if let Some(stop) = d.stop_ms {
                v["stopDate"] = seconds(stop);
            }
            v
        })
        .collect();
    one_page("executions", &all, page)
}

/// One page of a list under `key`, with a `nextToken` while more follow. A token past the
/// end of the list is not one this stack issued: `InvalidToken`, as AWS answers.
fn one_page(key: &str, all: &[Value], page: Page) -> Result<Value, ApiError> {
    let Page { start, max, token } = page;
    if start > all.len() {
        return Err(invalid_token(token.unwrap_or_default()));
    }
    let (items, next) = paged(all, start, max);
    let mut out = json!({ key: items });
    if let Some(next) = next {
        out["nextToken"] = json!(next);
    }
    Ok(out)
}

/// A required string member.
fn field<'a>(body: &'a Value, name: &str) -> Result<&'a str, ApiError> {
    optional(body, name)?.ok_or_else(|| {
        ApiError::new(
            "ValidationException",
            format!("1 validation error detected: Value null at '{name}' failed to satisfy constraint: Member must not be null"),
        )
    })
}

/// AWS's JSON protocol refuses a member of the wrong type before the operation runs.
fn wrong_type(name: &str, expected: &str, value: &Value) -> ApiError {
    let found = match value {
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
        Value::Null => "null",
    };
    ApiError::new(
        "SerializationException",
        format!("The member '{name}' must be {expected}, not {found}"),
    )
}

/// An optional string member (`null` is absent).
fn optional<'a>(body: &'a Value, name: &str) -> Result<Option<&'a str>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(wrong_type(name, "a string", other)),
    }
}

/// An optional boolean member.
fn flag(body: &Value, name: &str) -> Result<Option<bool>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(wrong_type(name, "a boolean", other)),
    }
}

/// Where a page starts, how long it may be, and the token it was asked with.
struct Page<'a> {
    start: usize,
    max: usize,
    token: Option<&'a str>,
}

fn invalid_token(token: &str) -> ApiError {
    ApiError::new("InvalidToken", format!("Invalid Token: '{token}'"))
}

fn page(body: &Value, default: usize) -> Result<Page<'_>, ApiError> {
    let max = match body.get("maxResults") {
        None | Some(Value::Null) => default,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(0) => default,
            Some(n) if n <= 1000 => n as usize,
            Some(_) => {
                return Err(ApiError::new(
                    "ValidationException",
                    "1 validation error detected: Value at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to 1000",
                ));
            }
            None if n.as_i64().is_some_and(|n| n < 0) => {
                return Err(ApiError::new(
                    "ValidationException",
                    "1 validation error detected: Value at 'maxResults' failed to satisfy constraint: Member must have value greater than or equal to 0",
                ));
            }
            None => return Err(wrong_type("maxResults", "an integer", &json!(n))),
        },
        Some(other) => return Err(wrong_type("maxResults", "an integer", other)),
    };
    let token = optional(body, "nextToken")?;
    let start = match token {
        None => 0,
        Some(token) => token
            .strip_prefix("page-")
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| invalid_token(token))?,
    };
    Ok(Page { start, max, token })
}

/// The items from `start`, at most `max` of them, and the token of the next page if any.
fn paged<T: Clone>(items: &[T], start: usize, max: usize) -> (Vec<T>, Option<String>) {
    let end = start.saturating_add(max).min(items.len());
    let slice = items.get(start..end).map(<[T]>::to_vec).unwrap_or_default();
    let next = (end < items.len()).then(|| format!("page-{end}"));
    (slice, next)
}

fn describe_json(d: &Described) -> Value {
    let mut m = Map::new();
    m.insert("executionArn".into(), json!(d.arn));
    m.insert("stateMachineArn".into(), json!(d.machine_arn));
    m.insert("name".into(), json!(d.name));
    m.insert("status".into(), json!(d.status));
    m.insert("startDate".into(), seconds(d.start_ms));
    if let Some(stop) = d.stop_ms {
        m.insert("stopDate".into(), seconds(stop));
    }
    m.insert("input".into(), json!(d.input));
    m.insert("inputDetails".into(), json!({"included": true}));
    if let Some(output) = &d.output {
        m.insert("output".into(), json!(output));
        m.insert("outputDetails".into(), json!({"included": true}));
    }
    if let Some(error) = &d.error {
        m.insert("error".into(), json!(error));
    }
    if let Some(cause) = &d.cause {
        m.insert("cause".into(), json!(cause));
    }
    Value::Object(m)
}

fn event_json(event: &HistoryEvent) -> Value {
    let mut v = event.to_json();
    v["timestamp"] = seconds(event.timestamp_millis);
    v
}

fn machine_json(m: &Machine) -> Value {
    let mut v = json!({
        "stateMachineArn": m.arn,
        "name": m.name,
        "status": "ACTIVE",
        "definition": m.definition,
        "roleArn": m.role_arn,
        "type": m.kind,
        "creationDate": seconds(m.created_ms),
        "loggingConfiguration": {"level": "OFF", "includeExecutionData": false},
        "tracingConfiguration": {"enabled": false},
    });
    if let Some(updated) = *m.updated_ms.lock().unwrap_or_else(|e| e.into_inner()) {
        v["updateDate"] = seconds(updated);
    }
    v
}

/// `includeExecutionData: false`: inputs, outputs and parameters are left out.
fn strip_data(event: &mut Value) {
    if let Value::Object(m) = event {
        for (key, details) in m.iter_mut() {
            if key.ends_with("EventDetails")
                && let Value::Object(d) = details
            {
                for field in ["input", "output", "parameters"] {
                    d.remove(field);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_carry_a_token_until_the_end() {
        let items: Vec<u32> = (0..5).collect();
        let (first, next) = paged(&items, 0, 2);
        assert_eq!((first, next.as_deref()), (vec![0, 1], Some("page-2")));
        let (last, next) = paged(&items, 4, 2);
        assert_eq!((last, next), (vec![4], None));
        assert!(page(&json!({"nextToken": "bogus"}), 100).is_err());
    }

    /// A task token of the shape the interpreter issues.
    const TOKEN: &str = "5c0e2b7a-93d1-4f6e-8a2b-0c1d2e3f4a5b";

    /// The callback actions answer `{}`, and a missing token is a validation error.
    #[tokio::test]
    async fn callback_actions_answer_empty_objects() {
        let sfn = StepFunctions::new("us-east-1", "123456789012", 1);
        let _waiting = sfn.callbacks.register(TOKEN, Default::default());
        let heartbeat = json!({"taskToken": TOKEN});
        assert_eq!(
            dispatch(&sfn, "SendTaskHeartbeat", &heartbeat).await,
            Ok(json!({}))
        );
        let success = json!({"taskToken": TOKEN, "output": "[1]"});
        assert_eq!(
            dispatch(&sfn, "SendTaskSuccess", &success).await,
            Ok(json!({}))
        );
        for target in ["SendTaskSuccess", "SendTaskFailure", "SendTaskHeartbeat"] {
            let e = dispatch(&sfn, target, &json!({"output": "{}"}))
                .await
                .unwrap_err();
            assert_eq!(e.kind, "ValidationException", "{target}: {e}");
        }
        let e = dispatch(&sfn, "SendTaskSuccess", &json!({"taskToken": TOKEN}))
            .await
            .unwrap_err();
        assert_eq!(e.kind, "ValidationException");
    }

    const PASS: &str = r#"{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}"#;
    const ROLE: &str = "arn:aws:iam::123456789012:role/r";

    /// A service with one machine of one Pass state and one execution of it.
    fn one_pass_execution() -> (
        Arc<StepFunctions>,
        Arc<Machine>,
        Arc<super::super::Execution>,
    ) {
        let sfn = StepFunctions::new("us-east-1", "123456789012", 1);
        let machine = sfn.create_machine("m", PASS, ROLE, "STANDARD").unwrap();
        let execution = sfn.start(&machine.arn, Some("e"), None).unwrap();
        (sfn, machine, execution)
    }

    /// A token past every page (such as the largest number) is refused as AWS refuses a token
    /// it did not issue, and changes nothing.
    #[tokio::test]
    async fn a_token_past_the_end_is_an_invalid_token() {
        let (sfn, machine, _) = one_pass_execution();
        for token in [
            format!("page-{}", usize::MAX),
            format!("page-{}", usize::MAX - 50),
            "page-2".to_owned(),
            "page--1".to_owned(),
        ] {
            for (target, extra) in [
                ("ListStateMachines", json!({})),
                ("ListExecutions", json!({"stateMachineArn": machine.arn})),
            ] {
                let mut body = extra.clone();
                body["nextToken"] = json!(token);
                body["maxResults"] = json!(100);
                let e = dispatch(&sfn, target, &body).await.unwrap_err();
                assert_eq!(e.kind, "InvalidToken", "{target} {token}: {e}");
            }
        }
        assert_eq!(sfn.machines().len(), 1);
    }

    /// `maxResults` of the wrong sign or type is a validation error, not a silent default.
    #[tokio::test]
    async fn max_results_must_be_a_count() {
        let sfn = StepFunctions::new("us-east-1", "123456789012", 1);
        for (bad, kind) in [
            (json!(-1), "ValidationException"),
            (json!(1001), "ValidationException"),
            (json!(u64::MAX), "ValidationException"),
            (json!(1.5), "SerializationException"),
            (json!("10"), "SerializationException"),
        ] {
            let e = dispatch(&sfn, "ListStateMachines", &json!({"maxResults": bad}))
                .await
                .unwrap_err();
            assert_eq!(e.kind, kind, "{bad}: {e}");
        }
    }

    /// An execution that ended while nobody waited for it still counts as ended: stopping it
    /// or waiting for it answers at once (not after StopExecution's ten seconds).
    #[tokio::test]
    async fn an_execution_that_ended_unwatched_is_finished() {
        let (sfn, _, execution) = one_pass_execution();
        while execution.status() == "RUNNING" {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let body = json!({"executionArn": execution.arn});
        let stopped = tokio::time::timeout(
            Duration::from_secs(2),
            dispatch(&sfn, "StopExecution", &body),
        )
        .await;
        assert!(
            stopped.is_ok(),
            "StopExecution waited for an ended execution"
        );
        let d = tokio::time::timeout(Duration::from_secs(2), execution.finished()).await;
        assert_eq!(d.map(|d| d.status), Ok("SUCCEEDED"));
    }

    /// A member of the wrong JSON type is a SerializationException, as AWS's JSON protocol
    /// answers, and changes nothing: a number for a name does not start an execution under a
    /// generated name, a string for a flag is not ignored.
    #[tokio::test]
    async fn members_of_the_wrong_type_are_serialization_errors() {
        let (sfn, machine, execution) = one_pass_execution();
        let _waiting = sfn.callbacks.register(TOKEN, Default::default());
        let m = json!(machine.arn);
        let e = json!(execution.arn);
        for (target, body) in [
            ("DescribeStateMachine", json!({"stateMachineArn": 5})),
            (
                "CreateStateMachine",
                json!({"name": ["n"], "definition": PASS, "roleArn": ROLE}),
            ),
            (
                "CreateStateMachine",
                json!({"name": "n", "definition": PASS, "roleArn": ROLE, "type": 1}),
            ),
            (
                "UpdateStateMachine",
                json!({"stateMachineArn": m, "definition": {"StartAt": "P"}}),
            ),
            (
                "UpdateStateMachine",
                json!({"stateMachineArn": m, "roleArn": false}),
            ),
            ("StartExecution", json!({"stateMachineArn": m, "name": 5})),
            (
                "StartExecution",
                json!({"stateMachineArn": m, "input": {"a": 1}}),
            ),
            ("StopExecution", json!({"executionArn": e, "error": 1})),
            (
                "GetExecutionHistory",
                json!({"executionArn": e, "reverseOrder": "yes"}),
            ),
            (
                "GetExecutionHistory",
                json!({"executionArn": e, "includeExecutionData": 0}),
            ),
            (
                "ListExecutions",
                json!({"stateMachineArn": m, "statusFilter": 1}),
            ),
            (
                "ListExecutions",
                json!({"stateMachineArn": m, "nextToken": 2}),
            ),
            ("ListStateMachines", json!({"maxResults": "10"})),
            ("SendTaskSuccess", json!({"taskToken": 1, "output": "{}"})),
            (
                "SendTaskSuccess",
                json!({"taskToken": TOKEN, "output": {"leaseId": "l"}}),
            ),
            ("SendTaskFailure", json!({"taskToken": TOKEN, "error": 5})),
            (
                "SendTaskFailure",
                json!({"taskToken": TOKEN, "cause": ["c"]}),
            ),
            ("SendTaskHeartbeat", json!({"taskToken": [TOKEN]})),
        ] {
            let err = dispatch(&sfn, target, &body).await.unwrap_err();
            assert_eq!(err.kind, "SerializationException", "{target} {body}: {err}");
        }
        assert_eq!(sfn.machines().len(), 1);
        assert_eq!(sfn.executions_of(&machine.arn).len(), 1);
        assert_eq!(sfn.callbacks.open(), [TOKEN]);
        assert!(machine.updated_ms.lock().unwrap().is_none());
        assert!(
            sfn.machine(&machine.arn)
                .unwrap()
                .updated_ms
                .lock()
                .unwrap()
                .is_none()
        );
    }
}
