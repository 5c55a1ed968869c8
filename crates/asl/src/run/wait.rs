//! The Wait state.

use super::pipeline::{Sources, plain_text};
use super::{Flow, StateCtx, StateFailure, Step};
use crate::definition::{QueryLanguage, State, ValueSource};
use crate::values::{parse_iso, to_json};
use serde_json::{Map, Value};
use std::time::Duration;

impl Flow<'_> {
    pub(super) async fn wait(
        &mut self,
        state: &State,
        ctx: &StateCtx<'_>,
        raw: Value,
        (seconds, timestamp): (&Option<ValueSource>, &Option<ValueSource>),
        assigned: &mut Option<Map<String, Value>>,
    ) -> Result<Step, StateFailure> {
        let (input, states) = self.state_input(state, ctx, &raw)?;
        let now = self.now();
        let src = Sources {
            ctx,
            input: &input,
            states: &states,
        };
        let until = if let Some(s) = seconds {
            // A wait past the end of time waits for ever (until the execution's own timeout).
            now.saturating_add(self.wait_seconds(s, src)?.saturating_mul(1000))
        } else if let Some(t) = timestamp {
            self.wait_timestamp(state, t, src)?
        } else {
            now
        };
        let out = if state.query_language == QueryLanguage::JsonPath {
            let values = self.eval_assign(state.assign.as_ref(), ctx, &input, &states)?;
            let out = self.output_path(state, ctx, input)?;
            self.commit_assign(values, assigned);
            out
        } else {
            self.end_jsonata(ctx, state.ending(), &states, raw, assigned)?
        };
        if until > now {
            self.execution
                .services
                .clock
                .sleep(Duration::from_millis(until.saturating_sub(now) as u64))
                .await;
        }
        Ok(Self::next_step(state, out))
    }

    /// `Seconds`/`SecondsPath`: a non-negative whole number of seconds.
    fn wait_seconds(&self, seconds: &ValueSource, src: Sources<'_>) -> Result<i64, StateFailure> {
        let Sources { ctx, input, .. } = src;
        let ValueSource::Ref(t, src) = seconds else {
            let v = self.value_of(seconds, src, "Seconds")?;
            let shown = match &v {
                Value::Number(n) => match n.as_i64() {
                    Some(x) if x >= 0 => return Ok(x),
                    _ => n.to_string(),
                },
                other => to_json(other),
            };
            return Err(ctx.query_error(
                "Seconds",
                &format!("The Seconds field must be a non-negative integer: {shown}"),
            ));
        };
        let v = self.template(t, ctx, input, "SecondsPath").map_err(|_| {
            ctx.runtime(&format!(
                "The SecondsPath parameter does not reference an input value: {src}"
            ))
        })?;
        match &v {
            Value::Number(n) => match n.as_i64() {
                Some(x) if x < 0 => Err(ctx.runtime(&format!(
                    "The SecondsPath parameter references a negative value: {src} == {n}"
                ))),
                Some(x) => Ok(x),
                None => Err(ctx.runtime(&format!(
                    "The SecondsPath parameter cannot be parsed as a long value: {src} == {n}"
                ))),
            },
            other => Err(ctx.runtime(&format!(
                "The SecondsPath parameter cannot be parsed as a long value: {src} == {}",
                to_json(other)
            ))),
        }
    }

    /// `Timestamp`/`TimestampPath`: an ISO-8601 instant, in epoch milliseconds.
    fn wait_timestamp(
        &self,
        state: &State,
        timestamp: &ValueSource,
        src: Sources<'_>,
    ) -> Result<i64, StateFailure> {
        let Sources { ctx, input, .. } = src;
        if let ValueSource::Ref(t, src) = timestamp {
            let v = self.template(t, ctx, input, "TimestampPath").map_err(|_| {
                ctx.runtime(&format!(
                    "The TimestampPath parameter does not reference an input value: {src}"
                ))
            })?;
            let s = plain_text(&v);
            return parse_iso(&s).ok_or_else(|| ctx.runtime(&format!("The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time format string: {src} == {s}")));
        }
        let v = self.value_of(timestamp, src, "Timestamp")?;
        let s = plain_text(&v);
        match parse_iso(&s) {
            Some(ms) => Ok(ms),
            None if state.query_language == QueryLanguage::JsonPath => Err(ctx.runtime(&format!("The Timestamp parameter is not a valid ISO-8601 extended offset date-time format string: {s}"))),
            None => Err(ctx.query_error("Timestamp", &format!("The Timestamp field cannot be parsed as an ISO-8601 extended offset date-time format string: {s}"))),
        }
    }
}
