//! The path an execution took, read from its history: which states ran and how each visit
//! ended, which transitions were followed, which Map iteration every event belongs to, and the
//! child executions that `states:startExecution` tasks started.
//!
//! Concurrent branches and iterations interleave in a history, so events are attributed by
//! their `previousEventId` links, as the console does, never by their order: each event
//! continues the state visit of the event it links to, a `*StateEntered` opens a new visit, and
//! container events (`MapState*`, `MapIteration*`, `ParallelState*`, `*StateExited`) climb back
//! to the Map or Parallel visit they belong to.

use crate::graph::{END, START, truncate};
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
/// A callback task (`.waitForTaskToken`) whose work was submitted and that now waits for
/// SendTaskSuccess or SendTaskFailure with its token.
pub const WAITING: &str = "waiting";
pub const ABORTED: &str = "aborted";
pub const NOT_REACHED: &str = "not-reached";

/// What happened to one state over all its visits (a state in a Map runs once per iteration).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateRun {
    /// The most telling status of its visits: running, waiting, failed, aborted, caught,
    /// succeeded.
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
    /// The current attempt is a callback task that submitted its work and waits for its token.
    waiting: bool,
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

/// The nearest visit from `v` upwards that satisfies `pred`, else `v` itself.
fn climb(visits: &[Visit], v: Option<usize>, pred: impl Fn(&Visit) -> bool) -> Option<usize> {
    let mut cur = v;
    while let Some(i) = cur {
        if pred(&visits[i]) {
            return Some(i);
        }
        cur = visits[i].parent;
    }
    v
}

/// A history being read, event by event.
#[derive(Default)]
struct Reader {
    visits: Vec<Visit>,
    iterations: Vec<Iteration>,
    transitions: BTreeMap<(String, String, &'static str), u64>,
    children: Vec<(String, String)>,
    /// Per event id: the visit it belongs to, and the iteration a MapIterationStarted opened.
    visit_of: HashMap<u64, Option<usize>>,
    iteration_of: HashMap<u64, usize>,
    places: Vec<EventPlace>,
}

/// One event as a [`Reader`] handles it: its type, details, and the visit it links to.
struct Step<'a> {
    event: &'a HistoryEvent,
    ty: &'a str,
    details: Value,
    prev: Option<usize>,
}

impl Reader {
    fn read(&mut self, event: &HistoryEvent) {
        let ty = event.event_type.as_str();
        let step = Step {
            event,
            ty,
            details: details(event),
            prev: self
                .visit_of
                .get(&event.previous_event_id)
                .copied()
                .flatten(),
        };
        let mut own_iteration = None;
        let visit = if let Some(kind) = ty.strip_suffix("StateEntered") {
            Some(self.entered(&step, kind))
        } else if ty.ends_with("StateExited") {
            self.exited(&step)
        } else if ty.starts_with("MapIteration") {
            let (map_visit, iteration) = self.map_iteration(&step);
            own_iteration = iteration;
            map_visit
        } else if ty.starts_with("MapState")
            || ty.starts_with("MapRun")
            || ty.starts_with("ParallelState")
        {
            self.container_event(&step)
        } else if ty.starts_with("Execution") {
            self.execution_event(&step);
            None
        } else {
            // Task, Lambda and activity events, EvaluationFailed: part of the current visit.
            self.task_event(&step);
            step.prev
        };
        self.visit_of.insert(event.id, visit);
        let iteration = own_iteration.or_else(|| visit.and_then(|v| self.visits[v].iteration));
        self.places.push(EventPlace {
            state: visit.map(|v| self.visits[v].name.clone()),
            iteration: iteration.map(|i| self.iterations[i].label.clone()),
        });
    }

    /// A `…StateEntered`: a new visit, and the transition that led to it.
    fn entered(&mut self, step: &Step, kind: &str) -> usize {
        let visits = &self.visits;
        let name = step.details["name"].as_str().unwrap_or_default().to_owned();
        let (parent, iteration, from) = match step.prev {
            None => (None, None, Some((START.to_owned(), "next"))),
            Some(p) if visits[p].open && visits[p].container.is_some() => {
                // The first state of a branch or an iteration.
                let iteration = self
                    .iteration_of
                    .get(&step.event.previous_event_id)
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
            *self
                .transitions
                .entry((from, name.clone(), how))
                .or_default() += 1;
        }
        self.visits.push(Visit {
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
            waiting: false,
            status: RUNNING,
            entered_ms: step.event.timestamp_millis,
            exited_ms: None,
        });
        self.visits.len() - 1
    }

    /// A `…StateExited`: the visit it closes.
    fn exited(&mut self, step: &Step) -> Option<usize> {
        let name = step.details["name"].as_str().unwrap_or_default();
        let v = climb(&self.visits, step.prev, |v| v.open && v.name == name);
        if let Some(i) = v {
            let visit = &mut self.visits[i];
            visit.open = false;
            visit.exited_ms = Some(step.event.timestamp_millis);
            visit.status = if visit.error.is_some() {
                CAUGHT
            } else {
                SUCCEEDED
            };
            if let (Some(it), Some(output)) = (visit.iteration, step.details["output"].as_str()) {
                self.iterations[it].output = Some(truncate(output, OUTPUT_PREVIEW));
            }
        }
        v
    }

    /// A `MapIteration…` event: the Map's visit, and the iteration it starts or ends.
    fn map_iteration(&mut self, step: &Step) -> (Option<usize>, Option<usize>) {
        let map = step.details["name"].as_str().unwrap_or_default().to_owned();
        let index = step.details["index"].as_u64().unwrap_or(0);
        let map_visit = climb(&self.visits, step.prev, |v| {
            v.open && v.container == Some("Map") && v.name == map
        });
        if step.ty == "MapIterationStarted" {
            let parent = map_visit.and_then(|m| self.visits[m].iteration);
            let label = match parent {
                Some(p) => format!("{} / {map}[{index}]", self.iterations[p].label),
                None => format!("{map}[{index}]"),
            };
            self.iterations.push(Iteration {
                label,
                map,
                index,
                status: RUNNING,
                start_ms: step.event.timestamp_millis,
                stop_ms: None,
                child: None,
                output: None,
            });
            let started = self.iterations.len() - 1;
            self.iteration_of.insert(step.event.id, started);
            return (map_visit, Some(started));
        }
        // The iteration whose last event this links to, or the open one of that index.
        let iterations = &mut self.iterations;
        let found = step
            .prev
            .and_then(|p| self.visits[p].iteration)
            .filter(|&i| iterations[i].map == map && iterations[i].index == index)
            .or_else(|| {
                iterations
                    .iter()
                    .rposition(|it| it.map == map && it.index == index && it.stop_ms.is_none())
            });
        if let Some(i) = found {
            iterations[i].stop_ms = Some(step.event.timestamp_millis);
            iterations[i].status = match step.ty {
                "MapIterationSucceeded" => SUCCEEDED,
                "MapIterationAborted" => ABORTED,
                _ => FAILED,
            };
        }
        (map_visit, found)
    }

    /// `MapState…`, `MapRun…` and `ParallelState…` events: attempts and errors of the
    /// container's visit.
    fn container_event(&mut self, step: &Step) -> Option<usize> {
        let ty = step.ty;
        let kind = if ty.starts_with("Parallel") {
            "Parallel"
        } else {
            "Map"
        };
        let v = climb(&self.visits, step.prev, |v| {
            v.open && v.container == Some(kind)
        });
        if let Some(i) = v {
            if ty.ends_with("StateStarted") {
                self.visits[i].attempts += 1;
                self.visits[i].error = None;
            } else if ty.ends_with("Failed") || ty.ends_with("Aborted") {
                self.visits[i].error = Some(error_of(ty, &step.details));
            }
        }
        v
    }

    /// How the execution ended: a transition from its last top-level state to the end.
    fn execution_event(&mut self, step: &Step) {
        if step.ty == "ExecutionStarted" {
            return;
        }
        if let Some(t) = climb(&self.visits, step.prev, |v| v.parent.is_none()) {
            let how = if step.ty == "ExecutionSucceeded" {
                "next"
            } else {
                "fail"
            };
            *self
                .transitions
                .entry((self.visits[t].name.clone(), END.to_owned(), how))
                .or_default() += 1;
        }
    }

    /// Task events: attempts, errors and the child executions a task started.
    fn task_event(&mut self, step: &Step) {
        let Some(i) = step.prev else { return };
        let ty = step.ty;
        let visit = &mut self.visits[i];
        // Step Functions records `TaskSubmitted` once a callback task's work was handed over;
        // the task's next event is its end.
        visit.waiting = ty == "TaskSubmitted"
            && step.details["resource"]
                .as_str()
                .is_some_and(|r| r.ends_with(".waitForTaskToken"));
        if ty.ends_with("Scheduled") {
            visit.attempts += 1;
        } else if ty.ends_with("Succeeded") {
            visit.error = None;
        } else if ty.ends_with("Failed") || ty.ends_with("TimedOut") {
            visit.error = Some(error_of(ty, &step.details));
        }
        if let Some(arn) = child_arn(&step.details) {
            if !self.children.iter().any(|(a, _)| *a == arn) {
                self.children.push((arn.clone(), visit.name.clone()));
            }
            if let Some(it) = visit.iteration
                && self.iterations[it].child.is_none()
            {
                self.iterations[it].child = Some(arn);
            }
        }
    }

    /// What is still open ran into the end of the execution.
    fn close(&mut self, execution_status: &str) {
        let running = execution_status == "RUNNING";
        let aborted = execution_status == "ABORTED";
        for it in &mut self.iterations {
            if it.stop_ms.is_none() && !running {
                it.status = if aborted { ABORTED } else { FAILED };
            }
        }
        let iterations = &self.iterations;
        for v in &mut self.visits {
            if v.open {
                v.status = if running && v.waiting {
                    WAITING
                } else if running {
                    RUNNING
                } else if aborted || v.iteration.is_some_and(|i| iterations[i].status == ABORTED) {
                    ABORTED
                } else {
                    FAILED
                };
            }
        }
    }
}

/// The visits summed up per state.
fn state_runs(visits: &[Visit]) -> BTreeMap<String, StateRun> {
    let mut states: BTreeMap<String, StateRun> = BTreeMap::new();
    for v in visits {
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
        run.status = [RUNNING, WAITING, FAILED, ABORTED, CAUGHT, SUCCEEDED]
            .into_iter()
            .find(|s| run.counts.contains_key(s))
            .unwrap_or(NOT_REACHED);
    }
    states
}

/// Reads the path from a history; `execution_status` is `RUNNING`, `SUCCEEDED`, `FAILED`,
/// `TIMED_OUT` or `ABORTED`.
pub fn analyse(events: &[HistoryEvent], execution_status: &str) -> Path {
    let mut reader = Reader {
        places: Vec::with_capacity(events.len()),
        ..Reader::default()
    };
    for event in events {
        reader.read(event);
    }
    reader.close(execution_status);
    Path {
        states: state_runs(&reader.visits),
        transitions: reader.transitions,
        places: reader.places,
        iterations: reader.iterations,
        children: reader.children,
    }
}

#[cfg(test)]
mod tests {
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
            if request.resource.ends_with(".waitForTaskToken")
                || request.resource.ends_with(".sync")
            {
                // The work is handed over; the callback (or the job's end) is the result below.
                request.submitted.submit(json!({"StatusCode": 200}));
            }
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

    /// The whole run of `definition` on a virtual clock: its outcome and history.
    fn execution(definition: &str, input: &Value, script: Arc<Script>) -> leasehold_asl::Outcome {
        let machine = Arc::new(leasehold_asl::load(definition).expect("valid definition"));
        let clock = VirtualClock::new(1_000);
        let services = Services {
            clock: Arc::new(clock.clone()),
            random: Arc::new(SeededRandom::new(3)),
            invoker: script,
            observer: None,
        };
        let cfg = ExecutionConfig::new("us-east-1", "123456789012", "m", "e", &input.to_string());
        let run = execute(machine, cfg, services, AbortHandle::new());
        clock.block_on(run).expect("runs on the virtual clock")
    }

    fn run(definition: &str, input: Value, script: Arc<Script>) -> (Path, &'static str) {
        let outcome = execution(definition, &input, script);
        let status = outcome.status.as_str();
        (analyse(&outcome.history, status), status)
    }

    /// Whether the path followed `from` → `to` in that way.
    fn followed(path: &Path, from: &str, to: &str, how: &'static str) -> bool {
        path.transitions
            .contains_key(&(from.to_owned(), to.to_owned(), how))
    }

    /// A text field of every iteration, `""` where it has none.
    fn per_iteration(path: &Path, field: fn(&Iteration) -> Option<&str>) -> Vec<&str> {
        path.iterations
            .iter()
            .map(|i| field(i).unwrap_or(""))
            .collect()
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
        assert!(followed(&path, "Acquire", "Fallback", "catch"));
        assert!(followed(&path, "Shed", END, "fail"));
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
        let children = per_iteration(&path, |i| i.child.as_deref());
        assert!(children.iter().all(|c| c.contains(":execution:child:")));
        // The iteration's result is the output of its last state: the caught one went on.
        let outputs = per_iteration(&path, |i| i.output.as_deref());
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
        assert!(followed(&path, "Run", "Tally", "next"));
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
        assert!(followed(&path, "B", "C", "next"));
        assert!(followed(&path, "P", "After", "next"));
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
        let outcome = execution(TASKS, &json!({}), Script::new(vec![]));
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

    #[test]
    fn a_callback_task_waits_once_its_work_is_submitted() {
        // GIVEN a callback task, and its history cut at each of its events
        let definition = r#"{"StartAt":"Acquire","States":{
          "Acquire":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke.waitForTaskToken",
            "Parameters":{"FunctionName":"acquire","Payload":{"taskToken.$":"$$.Task.Token"}},"Next":"Done"},
          "Done":{"Type":"Succeed"}}}"#;
        let outcome = execution(definition, &json!({}), Script::new(vec![]));
        let at = |ty: &str| {
            let cut = outcome
                .history
                .iter()
                .position(|e| e.event_type == ty)
                .unwrap_or_else(|| panic!("no {ty}"));
            analyse(&outcome.history[..=cut], "RUNNING")
        };
        // THEN it runs while its function may still run, waits once the work is submitted,
        // and succeeds with the callback
        assert_eq!(status(&at("TaskStarted"), "Acquire"), RUNNING);
        assert_eq!(status(&at("TaskSubmitted"), "Acquire"), WAITING);
        assert_eq!(status(&at("TaskSucceeded"), "Acquire"), RUNNING);
        let done = analyse(&outcome.history, outcome.status.as_str());
        assert_eq!(status(&done, "Acquire"), SUCCEEDED);
        // AND a `.sync` task that submitted its job runs on: only a token is waited for
        let sync = definition.replace(
            r#"lambda:invoke.waitForTaskToken",
            "Parameters":{"FunctionName":"acquire","Payload":{"taskToken.$":"$$.Task.Token"}}"#,
            r#"states:startExecution.sync","Parameters":{"StateMachineArn":"arn:m"}"#,
        );
        assert_ne!(sync, definition);
        let outcome = execution(&sync, &json!({}), Script::new(vec![]));
        let cut = outcome
            .history
            .iter()
            .position(|e| e.event_type == "TaskSubmitted")
            .expect("a TaskSubmitted event");
        let path = analyse(&outcome.history[..=cut], "RUNNING");
        assert_eq!(status(&path, "Acquire"), RUNNING);
    }
}
