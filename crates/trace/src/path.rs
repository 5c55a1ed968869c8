//! The path an execution took, read from its history: which states ran and how each visit
//! ended, which transitions were followed, which Map iteration every event belongs to, and the
//! child executions that `states:startExecution` tasks started.
//!
//! Concurrent branches and iterations interleave in a history, so events are attributed by
//! their `previousEventId` links, as the console does, never by their order: each event
//! continues the state visit of the event it links to, a `*StateEntered` opens a new visit, and
//! container events (`MapState*`, `MapIteration*`, `ParallelState*`, `*StateExited`) climb back
//! to the Map or Parallel visit they belong to.

use leasehold_asl::history::HistoryEvent;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// How a state visit, a state or an iteration ended (the colours of the page).
pub const SUCCEEDED: &str = "succeeded";
pub const FAILED: &str = "failed";
/// An error was taken by a `Catch`: the state ended with an error, the execution went on.
pub const CAUGHT: &str = "caught";
pub const RUNNING: &str = "running";
pub const ABORTED: &str = "aborted";
pub const NOT_REACHED: &str = "not-reached";

/// What happened to one state over all its visits (a state in a Map runs once per iteration).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateRun {
    /// The most telling status of its visits: running, failed, aborted, caught, succeeded.
    pub status: &'static str,
    pub visits: u64,
    /// Visits per status.
    pub counts: BTreeMap<&'static str, u64>,
    /// The most attempts (Task invocations) one visit needed; above 1 means it was retried.
    pub max_attempts: u64,
    pub first_entered_ms: i64,
    pub last_exited_ms: Option<i64>,
    /// The last error a visit ended with (caught or not).
    pub last_error: Option<String>,
}

/// One iteration of an inline Map.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Iteration {
    /// `RunIterations[3]`; nested maps: `Outer[1] / Inner[0]`.
    pub label: String,
    pub map: String,
    pub index: u64,
    pub status: &'static str,
    pub start_ms: i64,
    pub stop_ms: Option<i64>,
    /// The execution a `states:startExecution` task of this iteration started.
    pub child: Option<String>,
    /// The output of the iteration's last state so far (JSON text, cut at
    /// [`OUTPUT_PREVIEW`] characters).
    pub output: Option<String>,
}

/// How much of an iteration's output [`Iteration::output`] keeps.
pub const OUTPUT_PREVIEW: usize = 240;

fn preview(text: &str) -> String {
    if text.chars().count() <= OUTPUT_PREVIEW {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(OUTPUT_PREVIEW - 1).collect();
        cut.push('…');
        cut
    }
}

/// Where an event belongs.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventPlace {
    pub state: Option<String>,
    pub iteration: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Path {
    pub states: BTreeMap<String, StateRun>,
    /// Followed transitions: (from, to, how) → times; how is `next`, `catch` (the source's
    /// error was caught) or `fail` (the execution failed there). `from` is
    /// [`super::graph::START`] for the first state, `to` [`super::graph::END`] for the last.
    pub transitions: BTreeMap<(String, String, &'static str), u64>,
    /// One entry per event, in history order.
    pub places: Vec<EventPlace>,
    pub iterations: Vec<Iteration>,
    /// Every child execution started by a task, with the state that started it.
    pub children: Vec<(String, String)>,
}

struct Visit {
    name: String,
    /// `Map` or `Parallel` for containers.
    container: Option<&'static str>,
    parent: Option<usize>,
    iteration: Option<usize>,
    open: bool,
    attempts: u64,
    /// The error of the last attempt, if it failed.
    error: Option<String>,
    status: &'static str,
    entered_ms: i64,
    exited_ms: Option<i64>,
}

fn details(event: &HistoryEvent) -> Value {
    event
        .details
        .as_ref()
        .map(|d| d.to_value())
        .unwrap_or(Value::Null)
}

/// The execution ARN in a `states:startExecution` task's output or failure cause.
fn child_arn(details: &Value) -> Option<String> {
    if !details["resource"]
        .as_str()
        .is_some_and(|r| r.starts_with("startExecution"))
    {
        return None;
    }
    ["output", "cause"].iter().find_map(|field| {
        let text = details[*field].as_str()?;
        let v: Value = serde_json::from_str(text).ok()?;
        v["ExecutionArn"].as_str().map(str::to_owned)
    })
}

fn error_of(event_type: &str, details: &Value) -> String {
    details["error"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| event_type.to_owned())
}

/// Reads the path from a history; `execution_status` is `RUNNING`, `SUCCEEDED`, `FAILED`,
/// `TIMED_OUT` or `ABORTED`.
pub fn analyse(events: &[HistoryEvent], execution_status: &str) -> Path {
    use super::graph::{END, START};
    let mut visits: Vec<Visit> = Vec::new();
    let mut iterations: Vec<Iteration> = Vec::new();
    let mut iteration_parent: Vec<Option<usize>> = Vec::new();
    let mut transitions: BTreeMap<(String, String, &'static str), u64> = BTreeMap::new();
    let mut children: Vec<(String, String)> = Vec::new();
    // Per event id: the visit it belongs to, and the iteration a MapIterationStarted opened.
    let mut visit_of: HashMap<u64, Option<usize>> = HashMap::new();
    let mut iteration_of: HashMap<u64, usize> = HashMap::new();
    let mut places: Vec<EventPlace> = Vec::with_capacity(events.len());

    // The nearest visit from `v` upwards that satisfies `pred`, else `v` itself.
    let climb = |visits: &[Visit], v: Option<usize>, pred: &dyn Fn(&Visit) -> bool| {
        let mut cur = v;
        while let Some(i) = cur {
            if pred(&visits[i]) {
                return Some(i);
            }
            cur = visits[i].parent;
        }
        v
    };

    for event in events {
        let ty = event.event_type.as_str();
        let d = details(event);
        let prev = visit_of.get(&event.previous_event_id).copied().flatten();
        let mut own_iteration = None;
        let visit = if let Some(kind) = ty.strip_suffix("StateEntered") {
            let name = d["name"].as_str().unwrap_or_default().to_owned();
            let (parent, iteration, from) = match prev {
                None => (None, None, Some((START.to_owned(), "next"))),
                Some(p) if visits[p].open && visits[p].container.is_some() => {
                    // The first state of a branch or an iteration.
                    let iteration = iteration_of
                        .get(&event.previous_event_id)
                        .copied()
                        .or(visits[p].iteration);
                    (Some(p), iteration, None)
                }
                Some(p) => {
                    let how = if visits[p].error.is_some() {
                        "catch"
                    } else {
                        "next"
                    };
                    (
                        visits[p].parent,
                        visits[p].iteration,
                        Some((visits[p].name.clone(), how)),
                    )
                }
            };
            if let Some((from, how)) = from {
                *transitions.entry((from, name.clone(), how)).or_default() += 1;
            }
            visits.push(Visit {
                name,
                container: match kind {
                    "Map" => Some("Map"),
                    "Parallel" => Some("Parallel"),
                    _ => None,
                },
                parent,
                iteration,
                open: true,
                attempts: 0,
                error: None,
                status: RUNNING,
                entered_ms: event.timestamp_millis,
                exited_ms: None,
            });
            Some(visits.len() - 1)
        } else if ty.ends_with("StateExited") {
            let name = d["name"].as_str().unwrap_or_default();
            let v = climb(&visits, prev, &|v: &Visit| v.open && v.name == name);
            if let Some(i) = v {
                let visit = &mut visits[i];
                visit.open = false;
                visit.exited_ms = Some(event.timestamp_millis);
                visit.status = if visit.error.is_some() {
                    CAUGHT
                } else {
                    SUCCEEDED
                };
                if let (Some(it), Some(output)) = (visit.iteration, d["output"].as_str()) {
                    iterations[it].output = Some(preview(output));
                }
            }
            v
        } else if ty.starts_with("MapIteration") {
            let map = d["name"].as_str().unwrap_or_default().to_owned();
            let index = d["index"].as_u64().unwrap_or(0);
            let map_visit = climb(&visits, prev, &|v: &Visit| {
                v.open && v.container == Some("Map") && v.name == map
            });
            if ty == "MapIterationStarted" {
                let parent = map_visit.and_then(|m| visits[m].iteration);
                let label = match parent {
                    Some(p) => format!("{} / {map}[{index}]", iterations[p].label),
                    None => format!("{map}[{index}]"),
                };
                iterations.push(Iteration {
                    label,
                    map,
                    index,
                    status: RUNNING,
                    start_ms: event.timestamp_millis,
                    stop_ms: None,
                    child: None,
                    output: None,
                });
                iteration_parent.push(parent);
                iteration_of.insert(event.id, iterations.len() - 1);
                own_iteration = Some(iterations.len() - 1);
            } else {
                // The iteration whose last event this links to, or the open one of that index.
                let found = prev
                    .and_then(|p| visits[p].iteration)
                    .filter(|&i| iterations[i].map == map && iterations[i].index == index)
                    .or_else(|| {
                        iterations.iter().rposition(|it| {
                            it.map == map && it.index == index && it.stop_ms.is_none()
                        })
                    });
                if let Some(i) = found {
                    iterations[i].stop_ms = Some(event.timestamp_millis);
                    iterations[i].status = match ty {
                        "MapIterationSucceeded" => SUCCEEDED,
                        "MapIterationAborted" => ABORTED,
                        _ => FAILED,
                    };
                    own_iteration = Some(i);
                }
            }
            map_visit
        } else if ty.starts_with("MapState")
            || ty.starts_with("MapRun")
            || ty.starts_with("ParallelState")
        {
            let kind = if ty.starts_with("Parallel") {
                "Parallel"
            } else {
                "Map"
            };
            let v = climb(&visits, prev, &|v: &Visit| {
                v.open && v.container == Some(kind)
            });
            if let Some(i) = v {
                if ty.ends_with("StateStarted") {
                    visits[i].attempts += 1;
                    visits[i].error = None;
                } else if ty.ends_with("Failed") || ty.ends_with("Aborted") {
                    visits[i].error = Some(error_of(ty, &d));
                }
            }
            v
        } else if ty.starts_with("Execution") {
            if ty != "ExecutionStarted" {
                let top = climb(&visits, prev, &|v: &Visit| v.parent.is_none());
                if let Some(t) = top {
                    let how = if ty == "ExecutionSucceeded" {
                        "next"
                    } else {
                        "fail"
                    };
                    *transitions
                        .entry((visits[t].name.clone(), END.to_owned(), how))
                        .or_default() += 1;
                }
            }
            None
        } else {
            // Task, Lambda and activity events, EvaluationFailed: part of the current visit.
            if let Some(i) = prev {
                let visit = &mut visits[i];
                if ty.ends_with("Scheduled") {
                    visit.attempts += 1;
                } else if ty.ends_with("Succeeded") {
                    visit.error = None;
                } else if ty.ends_with("Failed") || ty.ends_with("TimedOut") {
                    visit.error = Some(error_of(ty, &d));
                }
                if let Some(arn) = child_arn(&d) {
                    if !children.iter().any(|(a, _)| *a == arn) {
                        children.push((arn.clone(), visit.name.clone()));
                    }
                    if let Some(it) = visit.iteration
                        && iterations[it].child.is_none()
                    {
                        iterations[it].child = Some(arn);
                    }
                }
            }
            prev
        };
        visit_of.insert(event.id, visit);
        let iteration = own_iteration.or_else(|| visit.and_then(|v| visits[v].iteration));
        places.push(EventPlace {
            state: visit.map(|v| visits[v].name.clone()),
            iteration: iteration.map(|i| iterations[i].label.clone()),
        });
    }

    // What is still open ran into the end of the execution.
    let running = execution_status == "RUNNING";
    let aborted = execution_status == "ABORTED";
    for it in &mut iterations {
        if it.stop_ms.is_none() && !running {
            it.status = if aborted { ABORTED } else { FAILED };
        }
    }
    for v in &mut visits {
        if v.open {
            v.status = if running {
                RUNNING
            } else if aborted || v.iteration.is_some_and(|i| iterations[i].status == ABORTED) {
                ABORTED
            } else {
                FAILED
            };
        }
    }

    let mut states: BTreeMap<String, StateRun> = BTreeMap::new();
    for v in &visits {
        let run = states.entry(v.name.clone()).or_insert_with(|| StateRun {
            status: NOT_REACHED,
            first_entered_ms: v.entered_ms,
            ..StateRun::default()
        });
        run.visits += 1;
        *run.counts.entry(v.status).or_default() += 1;
        run.max_attempts = run.max_attempts.max(v.attempts);
        run.first_entered_ms = run.first_entered_ms.min(v.entered_ms);
        if v.exited_ms.is_some() {
            run.last_exited_ms = run.last_exited_ms.max(v.exited_ms);
        }
        if v.error.is_some() {
            run.last_error = v.error.clone();
        }
    }
    for run in states.values_mut() {
        run.status = [RUNNING, FAILED, ABORTED, CAUGHT, SUCCEEDED]
            .into_iter()
            .find(|s| run.counts.contains_key(s))
            .unwrap_or(NOT_REACHED);
    }
    Path {
        states,
        transitions,
        places,
        iterations,
        children,
    }
}

#[cfg(test)]
mod tests {
    use super::super::graph::{END, START};
    use super::*;
    use leasehold_asl::clock::{BoxFuture, SeededRandom, VirtualClock};
    use leasehold_asl::invoker::{TaskError, TaskInvoker, TaskRequest};
    use leasehold_asl::{AbortHandle, ExecutionConfig, Services, execute};
    use serde_json::json;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Fails the first `fail_first` calls of each function named in the table with its error;
    /// a `states:startExecution` task answers like the local stack, with a child ARN.
    struct Script {
        errors: Vec<(&'static str, &'static str, u64)>,
        calls: std::sync::Mutex<HashMap<String, u64>>,
        children: AtomicU64,
    }

    impl Script {
        fn new(errors: Vec<(&'static str, &'static str, u64)>) -> Arc<Self> {
            Arc::new(Script {
                errors,
                calls: Default::default(),
                children: AtomicU64::new(0),
            })
        }
    }

    impl TaskInvoker for Script {
        fn invoke(&self, request: TaskRequest) -> BoxFuture<'static, Result<Value, TaskError>> {
            let function = request.parameters["FunctionName"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let n = {
                let mut calls = self.calls.lock().unwrap();
                let n = calls.entry(function.clone()).or_default();
                *n += 1;
                *n
            };
            let result = if request.resource.contains("startExecution") {
                let k = self.children.fetch_add(1, Ordering::SeqCst);
                let arn = format!("arn:aws:states:us-east-1:123456789012:execution:child:c{k}");
                if request.parameters["Input"]["fail"] == json!(true) {
                    Err(TaskError {
                        error: "States.TaskFailed".into(),
                        cause: Some(json!({"ExecutionArn": arn, "Status": "FAILED"}).to_string()),
                    })
                } else {
                    Ok(json!({"ExecutionArn": arn, "Output": {"ok": true}}))
                }
            } else {
                match self.errors.iter().find(|(f, _, _)| *f == function) {
                    Some((_, error, times)) if n <= *times => Err(TaskError {
                        error: (*error).into(),
                        cause: Some("scripted".into()),
                    }),
                    _ => Ok(json!({"Payload": {"ok": true}})),
                }
            };
            Box::pin(async move { result })
        }
    }

    fn run(definition: &str, input: Value, script: Arc<Script>) -> (Path, &'static str) {
        let machine = leasehold_asl::load(definition).expect("valid definition");
        let clock = VirtualClock::new(1_000);
        let services = Services {
            clock: Arc::new(clock.clone()),
            random: Arc::new(SeededRandom::new(3)),
            invoker: script,
            observer: None,
        };
        let cfg = ExecutionConfig::new("us-east-1", "123456789012", "m", "e", &input.to_string());
        let outcome = clock
            .block_on(execute(
                Arc::new(machine),
                cfg,
                services,
                AbortHandle::new(),
            ))
            .expect("runs on the virtual clock");
        let status = outcome.status.as_str();
        (analyse(&outcome.history, status), status)
    }

    const TASKS: &str = r#"{"StartAt":"Acquire","States":{
      "Acquire":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke","Parameters":{"FunctionName":"acquire"},
        "Retry":[{"ErrorEquals":["Busy"],"MaxAttempts":3,"IntervalSeconds":1}],
        "Catch":[{"ErrorEquals":["Full"],"ResultPath":"$.error","Next":"Fallback"}],"Next":"Query"},
      "Query":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke","Parameters":{"FunctionName":"query"},"Next":"Done"},
      "Done":{"Type":"Succeed"},
      "Fallback":{"Type":"Pass","Next":"Shed"},
      "Shed":{"Type":"Fail","Error":"Shed"}}}"#;

    fn status<'a>(path: &'a Path, state: &str) -> &'a str {
        path.states.get(state).map_or(NOT_REACHED, |s| s.status)
    }

    #[test]
    fn a_retried_task_succeeds_and_the_other_branch_is_not_reached() {
        // GIVEN an acquire that is busy twice WHEN the workflow runs
        let (path, outcome) = run(TASKS, json!({}), Script::new(vec![("acquire", "Busy", 2)]));
        // THEN the path is Start -> Acquire -> Query -> Done -> End, Acquire took 3 attempts
        assert_eq!(outcome, "SUCCEEDED");
        assert_eq!(status(&path, "Acquire"), SUCCEEDED);
        assert_eq!(path.states["Acquire"].max_attempts, 3);
        assert_eq!(status(&path, "Query"), SUCCEEDED);
        assert_eq!(status(&path, "Fallback"), NOT_REACHED);
        let followed: Vec<(&str, &str, &str)> = path
            .transitions
            .keys()
            .map(|(a, b, k)| (a.as_str(), b.as_str(), *k))
            .collect();
        assert_eq!(
            followed,
            [
                ("Acquire", "Query", "next"),
                ("Done", END, "next"),
                ("Query", "Done", "next"),
                (START, "Acquire", "next"),
            ]
        );
        assert!(path.places.iter().all(|p| p.iteration.is_none()));
        assert_eq!(path.places[0].state, None); // ExecutionStarted
        assert_eq!(path.places[1].state.as_deref(), Some("Acquire"));
    }

    #[test]
    fn a_caught_error_colours_the_catch_path_and_the_fail_state() {
        // GIVEN an acquire that finds the pool full
        let (path, outcome) = run(TASKS, json!({}), Script::new(vec![("acquire", "Full", 9)]));
        // THEN Acquire is caught, Fallback ran, Shed failed the execution
        assert_eq!(outcome, "FAILED");
        assert_eq!(status(&path, "Acquire"), CAUGHT);
        assert_eq!(path.states["Acquire"].last_error.as_deref(), Some("Full"));
        assert_eq!(status(&path, "Fallback"), SUCCEEDED);
        assert_eq!(status(&path, "Shed"), FAILED);
        assert_eq!(status(&path, "Query"), NOT_REACHED);
        assert!(
            path.transitions
                .contains_key(&("Acquire".into(), "Fallback".into(), "catch"))
        );
        assert!(
            path.transitions
                .contains_key(&("Shed".into(), END.into(), "fail"))
        );
    }

    #[test]
    fn map_iterations_and_their_child_executions_are_told_apart() {
        // GIVEN a harness-like Map whose second item's child execution fails (caught)
        let definition = r#"{"StartAt":"Run","States":{
          "Run":{"Type":"Map","ItemsPath":"$.items","MaxConcurrency":2,"ItemProcessor":{"StartAt":"Child","States":{
            "Child":{"Type":"Task","Resource":"arn:aws:states:::states:startExecution.sync:2",
              "Parameters":{"StateMachineArn":"arn:aws:states:us-east-1:123456789012:stateMachine:child","Input.$":"$"},
              "Catch":[{"ErrorEquals":["States.ALL"],"Next":"CountAsFailed"}],"End":true},
            "CountAsFailed":{"Type":"Pass","End":true}}},"Next":"Tally"},
          "Tally":{"Type":"Pass","End":true}}}"#;
        let items = json!({"items": [{"n": 0}, {"n": 1, "fail": true}, {"n": 2}]});
        let (path, outcome) = run(definition, items, Script::new(vec![]));
        // THEN there are three iterations, each with its own child, the failing one caught
        assert_eq!(outcome, "SUCCEEDED");
        let labels: Vec<&str> = path.iterations.iter().map(|i| i.label.as_str()).collect();
        assert_eq!(labels, ["Run[0]", "Run[1]", "Run[2]"]);
        assert!(path.iterations.iter().all(|i| i.status == SUCCEEDED));
        let children: Vec<&str> = path
            .iterations
            .iter()
            .map(|i| i.child.as_deref().unwrap_or(""))
            .collect();
        assert!(children.iter().all(|c| c.contains(":execution:child:")));
        // The iteration's result is the output of its last state: the caught one went on.
        let outputs: Vec<&str> = path
            .iterations
            .iter()
            .map(|i| i.output.as_deref().unwrap_or(""))
            .collect();
        assert!(outputs[0].contains("\"ExecutionArn\""), "{outputs:?}");
        assert!(
            outputs[1].contains("\"Error\":\"States.TaskFailed\""),
            "{outputs:?}"
        );
        assert_eq!(path.children.len(), 3);
        let run = &path.states["Child"];
        assert_eq!((run.visits, run.status), (3, CAUGHT));
        assert_eq!(run.counts.get(SUCCEEDED), Some(&2));
        assert_eq!(status(&path, "CountAsFailed"), SUCCEEDED);
        assert_eq!(status(&path, "Run"), SUCCEEDED);
        assert_eq!(status(&path, "Tally"), SUCCEEDED);
        // The Map's own exit and the state after it belong to no iteration.
        assert!(
            path.transitions
                .contains_key(&("Run".into(), "Tally".into(), "next"))
        );
        assert!(
            !path
                .transitions
                .keys()
                .any(|(a, b, _)| a == "Child" && b == "Child")
        );
        // Every event of an iteration's child state is labelled with that iteration.
        for (place, event_state) in path.places.iter().map(|p| (p, p.state.as_deref())) {
            if event_state == Some("Child") {
                assert!(place.iteration.is_some(), "{place:?}");
            }
            if event_state == Some("Tally") {
                assert!(place.iteration.is_none(), "{place:?}");
            }
        }
    }

    #[test]
    fn parallel_branches_are_visited_inside_their_container() {
        let definition = r#"{"StartAt":"P","States":{
          "P":{"Type":"Parallel","Branches":[
            {"StartAt":"A","States":{"A":{"Type":"Pass","End":true}}},
            {"StartAt":"B","States":{"B":{"Type":"Pass","Next":"C"},"C":{"Type":"Pass","End":true}}}],
           "Next":"After"},
          "After":{"Type":"Succeed"}}}"#;
        let (path, _) = run(definition, json!({}), Script::new(vec![]));
        for s in ["P", "A", "B", "C", "After"] {
            assert_eq!(status(&path, s), SUCCEEDED, "{s}");
        }
        assert!(
            path.transitions
                .contains_key(&("B".into(), "C".into(), "next"))
        );
        assert!(
            path.transitions
                .contains_key(&("P".into(), "After".into(), "next"))
        );
        // A branch's first state is entered from its container, not from a sibling.
        assert!(
            !path
                .transitions
                .keys()
                .any(|(_, b, _)| b == "A" || b == "B")
        );
    }

    #[test]
    fn an_unfinished_history_shows_the_running_state() {
        let (full, _) = run(TASKS, json!({}), Script::new(vec![]));
        // Rebuild the history up to Query's TaskStarted from a fresh run.
        let machine = leasehold_asl::load(TASKS).unwrap();
        let clock = VirtualClock::new(0);
        let services = Services {
            clock: Arc::new(clock.clone()),
            random: Arc::new(SeededRandom::new(3)),
            invoker: Script::new(vec![]),
            observer: None,
        };
        let cfg = ExecutionConfig::new("us-east-1", "123456789012", "m", "e", "{}");
        let outcome = clock
            .block_on(execute(
                Arc::new(machine),
                cfg,
                services,
                AbortHandle::new(),
            ))
            .unwrap();
        let cut = outcome
            .history
            .iter()
            .rposition(|e| e.event_type == "TaskStarted")
            .unwrap();
        let path = analyse(&outcome.history[..=cut], "RUNNING");
        assert_eq!(status(&path, "Acquire"), SUCCEEDED);
        assert_eq!(status(&path, "Query"), RUNNING);
        assert_eq!(status(&path, "Done"), NOT_REACHED);
        assert_eq!(status(&full, "Done"), SUCCEEDED);
    }
}
