//! The Map state, inline and Distributed: item selection, batching, concurrency limits and
//! tolerated failures.

use super::map_run::{MapRunLimits, MapRunTracker};
use super::pipeline::{Sources, plain_text};
use super::{Branch, Flow, StateCtx, StateFailure};
use crate::clock::BoxFuture;
use crate::definition::{
    ItemBatcher, JsonataTemplate, MapSpec, PathOrNull, QueryLanguage, State, ValueSource,
};
use crate::history::{History, Thread};
use crate::intrinsics;
use crate::jsonata::JValue;
use crate::map_run::MapRunStatus;
use crate::values::{to_json, type_name};
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::{Map, Value, json};

/// `ToleratedFailureCount` and `ToleratedFailurePercentage`.
#[derive(Clone, Copy)]
struct Tolerance {
    count: Option<usize>,
    percentage: Option<f64>,
}

impl Tolerance {
    fn is_set(&self) -> bool {
        self.count.is_some() || self.percentage.is_some()
    }

    fn tolerates(&self, failures: usize, items: usize) -> bool {
        self.count.is_some_and(|c| failures <= c)
            || self
                .percentage
                .is_some_and(|p| items > 0 && (failures as f64) * 100.0 / (items as f64) <= p)
    }
}

/// How the iterations went: each item's result, and the failures.
struct Iterations {
    results: Vec<Option<Value>>,
    failures: usize,
    first_failure: Option<StateFailure>,
}

impl Flow<'_> {
    pub(super) async fn map(
        &mut self,
        state: &State,
        ctx: &StateCtx<'_>,
        raw: &Value,
        spec: &MapSpec,
    ) -> Result<Value, StateFailure> {
        let (input, states) = self.state_input(state, ctx, raw)?;
        let src = Sources {
            ctx,
            input: &input,
            states: &states,
        };
        let items = self.map_items(state, spec, src)?;
        let max_concurrency = self.max_concurrency(spec, src)?;
        self.event(
            "MapStateStarted",
            Some((
                "mapStateStartedEventDetails",
                json!({"length": items.len()}),
            )),
            true,
        );
        let tolerance = self.tolerance(spec, src)?;
        // Item selection happens per item, with `$$.Map.Item` bound.
        let mut inputs = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let item_ctx = StateCtx {
                map_item: Some((i, item)),
                task_token: None,
                ..*ctx
            };
            let v = if let Some(t) = &spec.item_selector {
                self.template(t, &item_ctx, &input, "ItemSelector")?
            } else if let Some(t) = &spec.item_selector_jsonata {
                let item_states = self.states_var(&item_ctx, raw, &[]);
                self.eval_jsonata(t, &item_ctx, &item_states, "ItemSelector")?
            } else {
                item_ctx.map_item.map(|(_, item)| item).unwrap_or_default()
            };
            inputs.push(v);
        }
        if let Some(b) = &spec.item_batcher {
            inputs = self.batch(b, ctx, &input, inputs)?;
        }
        let mut run = if spec.distributed {
            let arn = self.map_run_started(spec);
            let sizes = inputs.iter().map(|v| batch_size(v, spec)).collect();
            let limits = MapRunLimits {
                max_concurrency: max_concurrency as u64,
                tolerated_failure_count: tolerance.count.map(|c| c as u64),
                tolerated_failure_percentage: tolerance.percentage,
            };
            let clock = self.execution.services.clock.clone();
            let history = self.history.clone();
            Some(MapRunTracker::start(history, clock, arn, limits, sizes))
        } else {
            None
        };
        let base = self.thread;
        let n = inputs.len();
        let limit = if max_concurrency == 0 {
            n.max(1)
        } else {
            max_concurrency
        };
        let done = self
            .iterate(&state.name, spec, inputs, limit, tolerance, run.as_mut())
            .await;
        if done.failures > 0 && !tolerance.tolerates(done.failures, n) {
            if let Some(run) = &mut run {
                run.end(MapRunStatus::Failed);
                self.event("MapRunFailed", None, true);
            }
            let f = if tolerance.is_set() {
                StateFailure::plain(
                    "States.ExceedToleratedFailureThreshold",
                    Some("The specified tolerated failure threshold was exceeded".into()),
                )
            } else {
                done.first_failure
                    .unwrap_or_else(|| StateFailure::plain("States.Runtime", None))
            };
            return Err(StateFailure {
                eval_location: None,
                runtime: false,
                state_failed: Some("MapStateFailed"),
                ..f
            });
        }
        if let Some(run) = &mut run {
            run.end(MapRunStatus::Succeeded);
            self.event("MapRunSucceeded", None, true);
            let run_started = base.source;
            self.event("MapStateSucceeded", None, false);
            if !self.execution.config.legacy_map_run_links {
                self.thread.source = run_started;
            }
        } else {
            if n > 0 {
                self.thread.source = self.history.last_id();
            }
            self.event("MapStateSucceeded", None, false);
        }
        Ok(Value::Array(
            done.results
                .into_iter()
                .map(|r| r.unwrap_or(Value::Null))
                .collect(),
        ))
    }

    /// The array to iterate: `ItemsPath` (JSONPath) or `Items` (JSONata), the input without.
    fn map_items(
        &mut self,
        state: &State,
        spec: &MapSpec,
        src: Sources<'_>,
    ) -> Result<Vec<Value>, StateFailure> {
        let Sources { ctx, input, states } = src;
        let jsonpath_mode = state.query_language == QueryLanguage::JsonPath;
        let items = if jsonpath_mode {
            match &spec.items_path {
                Some(PathOrNull::Path(p)) => self.invalid_path(p, ctx, input)?,
                Some(PathOrNull::Var(n, p, _)) => self
                    .select_var(n, p.as_ref(), "ItemsPath")
                    .map_err(|m| ctx.runtime(&m))?,
                Some(PathOrNull::Null) => json!({}),
                None => input.clone(),
            }
        } else {
            match &spec.items {
                Some(t) => self.jsonata_items(t, ctx, states)?,
                None => input.clone(),
            }
        };
        match items {
            Value::Array(a) => Ok(a),
            other => {
                let msg = format!(
                    "Map state input must be an array but was: {}",
                    to_json(&other)
                );
                Err(if jsonpath_mode {
                    ctx.runtime(&msg)
                } else {
                    self.map_eval_fail(ctx, &msg)
                })
            }
        }
    }

    /// `Items` in JSONata mode: an array or a sequence.
    fn jsonata_items(
        &mut self,
        t: &JsonataTemplate,
        ctx: &StateCtx<'_>,
        states: &Value,
    ) -> Result<Value, StateFailure> {
        let src = match t {
            JsonataTemplate::Expr(_, s) => s.clone(),
            _ => String::new(),
        };
        Ok(match self.eval_jsonata_raw(t, ctx, states, "Items")? {
            JValue::Func(_) => return Err(self.map_eval_fail(ctx, &format!("The JSONata expression '{src}' specified for the field 'Items' returned an unsupported result type."))),
            JValue::Value(Value::Array(a)) => Value::Array(a),
            JValue::Seq(s) => Value::Array(s),
            JValue::Value(v) => {
                return Err(self.map_eval_fail(ctx, &format!("The JSONata expression '{src}' specified for the field 'Items' returned an unexpected result type. Expected 'array', but was '{}' for value: {}", type_name(&v), to_json(&v))));
            }
            JValue::Undefined => Value::Null,
        })
    }

    /// `MaxConcurrency(Path)`; 0 means no limit.
    fn max_concurrency(&self, spec: &MapSpec, src: Sources<'_>) -> Result<usize, StateFailure> {
        let ctx = src.ctx;
        let Some(n) = &spec.max_concurrency else {
            return Ok(0);
        };
        let v = numeric_string(self.value_of(n, src, "MaxConcurrencyPath")?);
        match (&v, n) {
            (Value::Number(x), _) if x.as_u64().is_some() => Ok(x.as_u64().unwrap_or(0) as usize),
            (_, ValueSource::Ref(_, src)) => Err(ctx.runtime(&format!("The MaxConcurrencyPath field refers to value \"{}\" which is not a valid integer: {src}", plain_text(&v)))),
            _ => Err(ctx.runtime(&format!("The MaxConcurrency field must be a non-negative integer: {}", to_json(&v)))),
        }
    }

    /// `ToleratedFailureCount(Path)` and `ToleratedFailurePercentage(Path)`.
    fn tolerance(&self, spec: &MapSpec, src: Sources<'_>) -> Result<Tolerance, StateFailure> {
        let ctx = src.ctx;
        let value = |n: &ValueSource, field: &str| self.value_of(n, src, field).map(numeric_string);
        let count = match &spec.tolerated_count {
            None => None,
            Some(n) => {
                let v = value(n, "ToleratedFailureCountPath")?;
                match (&v, n) {
                    (Value::Number(x), _) if x.as_i64().is_some_and(|c| c < 0) => return Err(ctx.runtime("ToleratedFailureCount cannot be negative.")),
                    (Value::Number(x), _) if x.as_i64().is_some() => x.as_i64().map(|c| c as usize),
                    (_, ValueSource::Ref(_, src)) => return Err(ctx.runtime(&format!("The ToleratedFailureCountPath field refers to value \"{}\" which is not a valid integer: {src}", plain_text(&v)))),
                    _ => return Err(ctx.runtime("ToleratedFailureCount must be a non-negative integer.")),
                }
            }
        };
        let percentage = match &spec.tolerated_percentage {
            None => None,
            Some(n) => {
                let v = value(n, "ToleratedFailurePercentagePath")?;
                match (&v, n) {
                    (Value::Number(x), _) => {
                        let p = x.as_f64().unwrap_or(-1.0);
                        if !(0.0..=100.0).contains(&p) {
                            return Err(ctx.runtime("ToleratedFailurePercentage must be between 0 and 100."));
                        }
                        Some(p)
                    }
                    (_, ValueSource::Ref(_, src)) => return Err(ctx.runtime(&format!("The ToleratedFailurePercentagePath field refers to value \"{}\" which is not a valid float: {src}", plain_text(&v)))),
                    _ => return Err(ctx.runtime("ToleratedFailurePercentage must be between 0 and 100.")),
                }
            }
        };
        Ok(Tolerance { count, percentage })
    }

    /// `MapRunStarted` with the run's ARN (the label, or a random name, and a random id).
    fn map_run_started(&mut self, spec: &MapSpec) -> String {
        let random = &self.execution.services.random;
        let label = spec
            .label
            .clone()
            .unwrap_or_else(|| intrinsics::uuid_v4(random.next_u64(), random.next_u64()));
        let arn = format!(
            "{}/{label}:{}",
            self.execution
                .config
                .state_machine_arn
                .replace(":stateMachine:", ":mapRun:"),
            intrinsics::uuid_v4(random.next_u64(), random.next_u64())
        );
        self.event(
            "MapRunStarted",
            Some(("mapRunStartedEventDetails", json!({"mapRunArn": arn}))),
            true,
        );
        arn
    }

    /// Runs the iterations, up to `limit` at a time, until they are done or the failures are
    /// more than tolerated.
    async fn iterate(
        &mut self,
        name: &str,
        spec: &MapSpec,
        inputs: Vec<Value>,
        limit: usize,
        tolerance: Tolerance,
        mut run: Option<&mut MapRunTracker>,
    ) -> Iterations {
        let n = inputs.len();
        let mut done = Iterations {
            results: vec![None; n],
            failures: 0,
            first_failure: None,
        };
        let vars = self.vars.child();
        let execution = self.execution;
        let distributed = spec.distributed;
        let mut pending = inputs.into_iter().enumerate();
        let mut futs: FuturesUnordered<Branch<'_>> = FuturesUnordered::new();
        // The iteration thread continues from where the previous one ended when running one
        // at a time, as AWS links them.
        let mut cursor = self.thread;
        let parent_history = self.history.clone();
        let launch = |i: usize, v: Value, start: Thread| {
            // A Distributed Map's iterations are child executions with their own history.
            let history = if distributed {
                History::new(None)
            } else {
                parent_history.clone()
            };
            let mut f = Flow {
                execution,
                history,
                thread: start,
                vars: vars.clone(),
            };
            let name = name.to_string();
            Box::pin(async move {
                let fields = || {
                    vec![
                        ("index", Value::from(i)),
                        ("name", Value::String(name.clone())),
                    ]
                };
                if !distributed {
                    f.event_fields(
                        "MapIterationStarted",
                        "mapIterationStartedEventDetails",
                        fields(),
                        true,
                    );
                }
                let r = f.run_machine(&spec.processor, v).await;
                if !distributed {
                    let (ty, key) = if r.is_ok() {
                        ("MapIterationSucceeded", "mapIterationSucceededEventDetails")
                    } else {
                        ("MapIterationFailed", "mapIterationFailedEventDetails")
                    };
                    f.event_fields(ty, key, fields(), false);
                }
                (i, r, f.thread)
            }) as BoxFuture<'_, _>
        };
        let started = |run: &mut Option<&mut MapRunTracker>, i: usize| {
            if let Some(run) = run.as_deref_mut() {
                run.started(i);
            }
        };
        for _ in 0..limit {
            if let Some((i, v)) = pending.next() {
                started(&mut run, i);
                futs.push(launch(i, v, cursor));
            }
        }
        while let Some((i, r, th)) = futs.next().await {
            cursor.source = cursor.source.max(th.source);
            self.thread.source = self.thread.source.max(th.source);
            if let Some(run) = run.as_deref_mut() {
                run.finished(i, r.is_ok());
            }
            match r {
                Ok(v) => done.results[i] = Some(v),
                Err(f) => {
                    done.failures += 1;
                    if done.first_failure.is_none() {
                        done.first_failure = Some(f);
                    }
                    if !tolerance.tolerates(done.failures, n) {
                        break;
                    }
                }
            }
            if let Some((i, v)) = pending.next() {
                started(&mut run, i);
                futs.push(launch(i, v, cursor));
            }
        }
        done
    }

    /// `ItemBatcher`: groups the selected items into `{"Items": [...], ...BatchInput}`.
    fn batch(
        &self,
        b: &ItemBatcher,
        ctx: &StateCtx<'_>,
        input: &Value,
        items: Vec<Value>,
    ) -> Result<Vec<Value>, StateFailure> {
        let base = match &b.batch_input {
            Some(t) => match self.template(t, ctx, input, "BatchInput")? {
                Value::Object(m) => m,
                other => {
                    return Err(ctx.runtime(&format!(
                        "The BatchInput field must be an object but was: {}",
                        to_json(&other)
                    )));
                }
            },
            None => Map::new(),
        };
        let size = b.max_items_per_batch.unwrap_or(items.len() as u64).max(1) as usize;
        Ok(items
            .chunks(size)
            .map(|c| {
                let mut m = base.clone();
                m.insert("Items".into(), Value::Array(c.to_vec()));
                Value::Object(m)
            })
            .collect())
    }

    /// A JSONata failure of the Map's `Items`: `EvaluationFailed` and `MapStateFailed` are
    /// recorded at once, and the failure returned has no evaluation location left, so
    /// `run_state` does not record it twice.
    fn map_eval_fail(&mut self, ctx: &StateCtx<'_>, msg: &str) -> StateFailure {
        let loc = if msg.starts_with("Map state input") {
            ""
        } else {
            "Items"
        };
        let f = ctx.query_error(loc, msg);
        self.note_failure(&f, ctx);
        self.event("MapStateFailed", None, true);
        StateFailure {
            eval_location: None,
            ..f
        }
    }
}

/// How many items one child execution of a Distributed Map gets: its batch's, or one.
fn batch_size(input: &Value, spec: &MapSpec) -> u64 {
    match (&spec.item_batcher, input.get("Items")) {
        (Some(_), Some(Value::Array(items))) => items.len() as u64,
        _ => 1,
    }
}

/// Path-given counts may be numeric strings (`"1"`).
fn numeric_string(v: Value) -> Value {
    match &v {
        Value::String(s) => s
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| s.trim().parse::<f64>().map(|f| json!(f)))
            .unwrap_or(v),
        _ => v,
    }
}
