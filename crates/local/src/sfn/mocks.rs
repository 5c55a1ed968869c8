//! Mocked service integrations, read from a mock configuration file in the format of AWS's
//! Step Functions Local (`SFN_MOCK_CONFIG`), so that a file written for it works here as is.
//!
//! The file names, per state machine (by name), test cases; a test case maps Task state names
//! to mocked responses; a mocked response answers each invocation of its state in turn, by
//! zero-based invocation number (a retry is another invocation): `"0"`, or an inclusive range
//! such as `"1-2"`, each with exactly one of `Return` (the task's result) or `Throw` (`Error`
//! and `Cause`, matched by the state's Retry and Catch like a real failure). An execution uses
//! a test case when StartExecution names it after the state machine ARN:
//! `arn:aws:states:...:stateMachine:Name#TestCase`. Its mocked states never call anything;
//! the others run for real. A state invoked more often than its mocked response covers fails
//! the execution (`States.Runtime`, which no Retry or Catch handles).

use crate::error::ApiError;
use leasehold_asl::clock::BoxFuture;
use leasehold_asl::invoker::{TaskError, TaskInvoker, TaskRequest, TaskStyle};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// What one invocation of a mocked state answers.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    Return(Value),
    Throw(TaskError),
}

/// The answers of one mocked response, by invocation number: `(first, last, answer)`,
/// consecutive from 0.
#[derive(Debug, Clone, PartialEq)]
struct MockedResponse(Vec<(u64, u64, Answer)>);

impl MockedResponse {
    fn answer(&self, invocation: u64) -> Option<&Answer> {
        self.0
            .iter()
            .find(|(first, last, _)| (*first..=*last).contains(&invocation))
            .map(|(_, _, answer)| answer)
    }
}

/// A mock configuration file, checked.
#[derive(Debug, Default)]
pub struct MockConfig {
    /// State machine name -> test case -> state name -> mocked response name.
    machines: BTreeMap<String, BTreeMap<String, BTreeMap<String, String>>>,
    responses: BTreeMap<String, Arc<MockedResponse>>,
}

fn object<'a>(value: &'a Value, what: &str) -> Result<&'a Map<String, Value>, String> {
    value
        .as_object()
        .ok_or_else(|| format!("{what} must be a JSON object"))
}

/// `"3"` or `"1-2"`: the first and last invocation it covers.
fn invocations(key: &str) -> Option<(u64, u64)> {
    let number = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    match key.split_once('-') {
        None => number(key).map(|n| (n, n)),
        Some((a, b)) => Some((number(a)?, number(b)?)).filter(|(a, b)| a <= b),
    }
}

fn answer(value: &Value, at: &str) -> Result<Answer, String> {
    let entry = object(value, at)?;
    match (entry.get("Return"), entry.get("Throw"), entry.len()) {
        (Some(result), None, 1) => Ok(Answer::Return(result.clone())),
        (None, Some(throw), 1) => {
            let throw = object(throw, &format!("{at}.Throw"))?;
            let text = |field: &str| match throw.get(field) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(format!("{at}.Throw.{field} must be a string")),
            };
            let error = text("Error")?
                .filter(|e| !e.is_empty())
                .ok_or_else(|| format!("{at}.Throw needs an Error"))?;
            Ok(Answer::Throw(TaskError {
                error,
                cause: text("Cause")?,
            }))
        }
        _ => Err(format!("{at} must hold exactly one of Return or Throw")),
    }
}

fn mocked_response(name: &str, value: &Value) -> Result<MockedResponse, String> {
    let at = format!("MockedResponses.{name}");
    let mut entries = Vec::new();
    for (key, value) in object(value, &at)? {
        let (first, last) = invocations(key).ok_or_else(|| {
            format!("{at}: '{key}' is not an invocation number or range such as \"0\" or \"1-2\"")
        })?;
        entries.push((first, last, answer(value, &format!("{at}.\"{key}\""))?));
    }
    entries.sort_by_key(|(first, ..)| *first);
    let mut next = 0;
    for (first, last, _) in &entries {
        if *first != next {
            return Err(format!(
                "{at}: invocations must be numbered consecutively from 0; {next} is missing or covered twice"
            ));
        }
        next = last + 1;
    }
    if entries.is_empty() {
        return Err(format!("{at} answers no invocation"));
    }
    Ok(MockedResponse(entries))
}

impl MockConfig {
    /// Reads and checks a mock configuration: every test case names mocked responses that
    /// exist, and every mocked response answers invocations 0, 1, ... without gaps.
    pub fn parse(text: &str) -> Result<MockConfig, String> {
        let root: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
        let root = object(&root, "the mock configuration")?;
        if let Some(unknown) = root
            .keys()
            .find(|k| !["StateMachines", "MockedResponses"].contains(&k.as_str()))
        {
            return Err(format!(
                "unknown top-level field '{unknown}' (expected StateMachines and MockedResponses)"
            ));
        }
        let mut config = MockConfig::default();
        let empty = Value::Object(Map::new());
        let responses = root.get("MockedResponses").unwrap_or(&empty);
        for (name, value) in object(responses, "MockedResponses")? {
            config
                .responses
                .insert(name.clone(), Arc::new(mocked_response(name, value)?));
        }
        let machines = root.get("StateMachines").unwrap_or(&empty);
        for (machine, value) in object(machines, "StateMachines")? {
            let at = format!("StateMachines.{machine}");
            let entry = object(value, &at)?;
            let cases = entry
                .get("TestCases")
                .ok_or_else(|| format!("{at} needs TestCases"))?;
            let mut by_case = BTreeMap::new();
            for (case, states) in object(cases, &format!("{at}.TestCases"))? {
                let at = format!("{at}.TestCases.{case}");
                let mut by_state = BTreeMap::new();
                for (state, response) in object(states, &at)? {
                    let response = response
                        .as_str()
                        .ok_or_else(|| format!("{at}.{state} must name a mocked response"))?;
                    if !config.responses.contains_key(response) {
                        return Err(format!(
                            "{at}.{state}: no mocked response named '{response}' in MockedResponses"
                        ));
                    }
                    by_state.insert(state.clone(), response.to_owned());
                }
                by_case.insert(case.clone(), by_state);
            }
            config.machines.insert(machine.clone(), by_case);
        }
        Ok(config)
    }

    /// The test case `case` of the state machine named `machine`, ready for one execution.
    pub fn case(&self, machine: &str, case: &str) -> Result<Arc<MockCase>, ApiError> {
        let states = self
            .machines
            .get(machine)
            .and_then(|cases| cases.get(case))
            .ok_or_else(|| {
                ApiError::new(
                    "ValidationException",
                    format!(
                        "Test case '{case}' is not defined for state machine '{machine}' in the mock configuration"
                    ),
                )
            })?;
        Ok(Arc::new(MockCase {
            name: case.to_owned(),
            states: states
                .iter()
                .map(|(state, response)| (state.clone(), self.responses[response].clone()))
                .collect(),
            invocations: Mutex::default(),
        }))
    }
}

/// One execution's test case: its mocked states, and how often each was invoked so far.
#[derive(Debug)]
pub struct MockCase {
    name: String,
    states: BTreeMap<String, Arc<MockedResponse>>,
    invocations: Mutex<HashMap<String, u64>>,
}

impl MockCase {
    /// The states it mocks.
    pub fn states(&self) -> impl Iterator<Item = &String> {
        self.states.keys()
    }

    /// The answer to this invocation of `state`, when the test case mocks it.
    fn answer(&self, state: &str) -> Option<Result<Value, TaskError>> {
        let response = self.states.get(state)?;
        let invocation = {
            let mut counts = self.invocations.lock().unwrap_or_else(|e| e.into_inner());
            let count = counts.entry(state.to_owned()).or_default();
            *count += 1;
            *count - 1
        };
        Some(match response.answer(invocation) {
            Some(Answer::Return(result)) => Ok(result.clone()),
            Some(Answer::Throw(error)) => Err(error.clone()),
            None => Err(TaskError {
                error: "States.Runtime".into(),
                cause: Some(format!(
                    "The mocked response of state '{state}' in test case '{}' has no answer for invocation {invocation}",
                    self.name
                )),
            }),
        })
    }
}

/// Runs the mocked states of a test case from its mocked responses and every other Task state
/// on the stack's own invoker. A mocked task goes through the interpreter like a real one,
/// so the history records the same events (a callback or `.sync` task is also submitted).
pub struct MockingInvoker {
    pub inner: Arc<dyn TaskInvoker>,
    pub case: Arc<MockCase>,
}

impl TaskInvoker for MockingInvoker {
    fn invoke(&self, request: TaskRequest) -> BoxFuture<'static, Result<Value, TaskError>> {
        let state = request.context["State"]["Name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        match self.case.answer(&state) {
            Some(answer) => {
                let resource = &request.resource;
                if resource.ends_with(".waitForTaskToken") || resource.contains(".sync") {
                    request.submitted.submit(Value::Object(Map::new()));
                }
                Box::pin(async move { answer })
            }
            None => self.inner.invoke(request),
        }
    }

    fn style(&self, resource: &str) -> TaskStyle {
        self.inner.style(resource)
    }
}

/// Every state name of a definition (JSON text), nested ones (Parallel branches, Map
/// processors) included.
pub fn state_names(definition: &str) -> Vec<String> {
    let mut names = Vec::new();
    super::each_object(definition, |m| {
        if let Some(Value::Object(states)) = m.get("States") {
            names.extend(states.keys().cloned());
        }
    });
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{
      "StateMachines": {"Orders": {"TestCases": {
        "Happy": {"Charge": "ChargeOk"},
        "Flaky": {"Charge": "ChargeFlaky"}}}},
      "MockedResponses": {
        "ChargeOk": {"0": {"Return": {"charged": true}}},
        "ChargeFlaky": {
          "0": {"Throw": {"Error": "Lambda.TooManyRequestsException", "Cause": "slow down"}},
          "1-2": {"Throw": {"Error": "Lambda.ServiceException"}},
          "3": {"Return": {"charged": true}}}}
    }"#;

    #[test]
    fn invocations_are_answered_in_turn_and_beyond_the_last_the_execution_fails() {
        let config = MockConfig::parse(EXAMPLE).unwrap();
        let case = config.case("Orders", "Flaky").unwrap();
        let errors: Vec<_> = (0..5)
            .map(|_| match case.answer("Charge").unwrap() {
                Ok(v) => v.to_string(),
                Err(e) => e.error,
            })
            .collect();
        assert_eq!(
            errors,
            [
                "Lambda.TooManyRequestsException",
                "Lambda.ServiceException",
                "Lambda.ServiceException",
                r#"{"charged":true}"#,
                "States.Runtime"
            ]
        );
        // Not mocked: runs for real.
        assert!(case.answer("Ship").is_none());
        // Each execution counts for itself.
        let again = config.case("Orders", "Flaky").unwrap();
        assert_eq!(
            again
                .answer("Charge")
                .unwrap()
                .unwrap_err()
                .cause
                .as_deref(),
            Some("slow down")
        );
    }

    #[test]
    fn an_unknown_test_case_is_a_validation_error_that_names_it() {
        let config = MockConfig::parse(EXAMPLE).unwrap();
        for (machine, case) in [("Orders", "Sad"), ("Other", "Happy")] {
            let e = config.case(machine, case).unwrap_err();
            assert_eq!(e.kind, "ValidationException");
            assert!(
                e.message.contains(case) && e.message.contains(machine),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn malformed_files_are_refused_with_what_is_wrong() {
        let cases = [
            ("{", "not valid JSON"),
            ("[]", "must be a JSON object"),
            (
                r#"{"StateMachine": {}}"#,
                "unknown top-level field 'StateMachine'",
            ),
            (
                r#"{"StateMachines": {"M": {"TestCases": {"T": {"S": "Nope"}}}}}"#,
                "no mocked response named 'Nope'",
            ),
            (
                r#"{"StateMachines": {"M": {}}}"#,
                "StateMachines.M needs TestCases",
            ),
            (
                r#"{"MockedResponses": {"R": {"1": {"Return": 1}}}}"#,
                "numbered consecutively from 0; 0 is missing",
            ),
            (
                r#"{"MockedResponses": {"R": {"0-2": {"Return": 1}, "2": {"Return": 2}}}}"#,
                "3 is missing or covered twice",
            ),
            (
                r#"{"MockedResponses": {"R": {"2-1": {"Return": 1}}}}"#,
                "'2-1' is not an invocation number",
            ),
            (
                r#"{"MockedResponses": {"R": {"0": {"Return": 1, "Throw": {"Error": "E"}}}}}"#,
                "exactly one of Return or Throw",
            ),
            (
                r#"{"MockedResponses": {"R": {"0": {"Throw": {"Cause": "c"}}}}}"#,
                "Throw needs an Error",
            ),
            (r#"{"MockedResponses": {"R": {}}}"#, "answers no invocation"),
        ];
        for (text, why) in cases {
            let e = MockConfig::parse(text).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
        }
    }
}
