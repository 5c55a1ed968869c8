//! Task, Parallel and Map: the state's body with Retry and Catch around it.

use super::{Flow, StateCtx, StateFailure, Step};
use crate::definition::{Catcher, Kind, QueryLanguage, Retrier, State};
use serde_json::{Map, Value, json};
use std::time::Duration;

impl Flow<'_> {
    /// The state's body with Retry and Catch around it; retries count in `$$.State.RetryCount`.
    pub(super) async fn execution_state(
        &mut self,
        state: &State,
        ctx: &mut StateCtx<'_>,
        raw: Value,
        assigned: &mut Option<Map<String, Value>>,
    ) -> Result<Step, StateFailure> {
        let mut counters = vec![0u64; state.retry.len()];
        loop {
            let err = match self.body(state, ctx, &raw).await {
                Ok(result) => {
                    let out = self.process_result(state, ctx, raw, result, assigned)?;
                    return Ok(Self::next_step(state, out));
                }
                Err(e) => e,
            };
            if err.runtime && err.error == "States.Runtime" {
                return Err(err);
            }
            if let Some(delay) = self.retry_delay(&state.retry, &mut counters, &err.error) {
                ctx.retry_count = Some(ctx.retry_count.unwrap_or(0) + 1);
                self.execution.services.clock.sleep(delay).await;
                continue;
            }
            if let Some(ev) = err.state_failed {
                self.event(ev, None, true);
            }
            let err = StateFailure {
                state_failed: None,
                ..err
            };
            let Some(c) = state
                .catch
                .iter()
                .find(|c| matches_error(&c.error_equals, &err.error))
            else {
                return Err(err);
            };
            let out = self.catch(state, c, ctx, raw, err, assigned)?;
            return Ok(Step::Next(c.next.clone(), out));
        }
    }

    /// One attempt of the state's own work.
    async fn body(
        &mut self,
        state: &State,
        ctx: &StateCtx<'_>,
        raw: &Value,
    ) -> Result<Value, StateFailure> {
        match &state.kind {
            Kind::Task {
                resource,
                timeout,
                heartbeat,
            } => {
                self.task_state(state, ctx, raw, resource, (timeout, heartbeat))
                    .await
            }
            Kind::Parallel { branches } => self.parallel(state, ctx, raw, branches).await,
            Kind::Map(spec) => self.map(state, ctx, raw, spec).await,
            _ => Err(StateFailure::plain(
                "States.Runtime",
                Some("not an execution state".into()),
            )),
        }
    }

    /// ResultSelector, ResultPath, OutputPath and Assign (JSONPath), or Output and Assign
    /// over `$states.result` (JSONata).
    fn process_result(
        &mut self,
        state: &State,
        ctx: &StateCtx<'_>,
        raw: Value,
        result: Value,
        assigned: &mut Option<Map<String, Value>>,
    ) -> Result<Value, StateFailure> {
        if state.query_language == QueryLanguage::Jsonata {
            let states = self.states_var(ctx, &raw, &[("result", &result)]);
            return self.end_jsonata(ctx, state.ending(), &states, result, assigned);
        }
        let values = self.eval_assign(state.assign.as_ref(), ctx, &result, &Value::Null)?;
        let selected = match &state.result_selector {
            Some(t) => self.template(t, ctx, &result, "ResultSelector")?,
            None => result,
        };
        let v = self.result_path(&state.result_path, ctx, raw, selected)?;
        let out = self.output_path(state, ctx, v)?;
        self.commit_assign(values, assigned);
        Ok(out)
    }

    /// The wait before the next attempt, when the first retrier matching `error` has attempts
    /// left (counting the attempt).
    fn retry_delay(
        &self,
        retriers: &[Retrier],
        counters: &mut [u64],
        error: &str,
    ) -> Option<Duration> {
        let i = retriers
            .iter()
            .position(|r| matches_error(&r.error_equals, error))?;
        let r = &retriers[i];
        if counters[i] >= r.max_attempts {
            return None;
        }
        let mut delay = r.interval_seconds * r.backoff_rate.powi(counters[i] as i32);
        if let Some(m) = r.max_delay_seconds {
            delay = delay.min(m);
        }
        if r.jitter_full {
            delay *= self.execution.services.random.next_f64();
        }
        counters[i] += 1;
        Some(Duration::from_millis((delay * 1000.0) as u64))
    }

    /// A catcher's output: the error object placed by ResultPath (JSONPath), or `Output`
    /// over `$states.errorOutput` (JSONata); Assign in both.
    fn catch(
        &mut self,
        state: &State,
        c: &Catcher,
        ctx: &StateCtx<'_>,
        raw: Value,
        err: StateFailure,
        assigned: &mut Option<Map<String, Value>>,
    ) -> Result<Value, StateFailure> {
        let error_output = json!({"Error": err.error, "Cause": err.cause.unwrap_or_default()});
        if state.query_language == QueryLanguage::Jsonata {
            let states = self.states_var(ctx, &raw, &[("errorOutput", &error_output)]);
            return self.end_jsonata(ctx, c.ending(), &states, error_output, assigned);
        }
        let values = self.eval_assign(c.assign.as_ref(), ctx, &error_output, &Value::Null)?;
        let out = self.result_path(&c.result_path, ctx, raw, error_output)?;
        self.commit_assign(values, assigned);
        Ok(out)
    }
}

/// `States.ALL` matches everything but `States.Runtime` and `States.DataLimitExceeded`;
/// `States.TaskFailed` also excludes `States.Timeout`.
pub fn matches_error(names: &[String], error: &str) -> bool {
    names.iter().any(|n| match n.as_str() {
        "States.ALL" => !matches!(error, "States.Runtime" | "States.DataLimitExceeded"),
        "States.TaskFailed" => !matches!(
            error,
            "States.Runtime"
                | "States.DataLimitExceeded"
                | "States.Timeout"
                | "States.HeartbeatTimeout"
        ),
        other => other == error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_matching() {
        let all = vec!["States.ALL".to_string()];
        assert!(matches_error(&all, "Custom"));
        assert!(!matches_error(&all, "States.Runtime"));
        let tf = vec!["States.TaskFailed".to_string()];
        assert!(matches_error(&tf, "Lambda.Unknown"));
        assert!(!matches_error(&tf, "States.Timeout"));
    }
}
