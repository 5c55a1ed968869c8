//! The Succeed and Fail states.

use super::pipeline::{Sources, plain_text};
use super::{Flow, StateCtx, StateFailure, Step};
use crate::definition::{QueryLanguage, State, ValueSource};
use serde_json::Value;

impl Flow<'_> {
    pub(super) fn succeed(
        &mut self,
        state: &State,
        ctx: &StateCtx<'_>,
        raw: Value,
    ) -> Result<Step, StateFailure> {
        if state.query_language == QueryLanguage::JsonPath {
            let v = self.input_path(state, ctx, &raw)?;
            return self.output_path(state, ctx, v).map(Step::End);
        }
        let states = self.states_var(ctx, &raw, &[]);
        // Succeed allows no Assign, so its exit event never lists assigned variables.
        self.end_jsonata(ctx, state.ending(), &states, raw, &mut None)
            .map(Step::End)
    }

    /// The failure a Fail state ends with; a field that cannot be evaluated fails instead.
    pub(super) fn fail_state(
        &mut self,
        ctx: &StateCtx<'_>,
        raw: &Value,
        error: &Option<ValueSource>,
        cause: &Option<ValueSource>,
    ) -> StateFailure {
        let states = self.states_var(ctx, raw, &[]);
        let text = |this: &Self, n: &Option<ValueSource>, field: &str| {
            n.as_ref()
                .map(|n| {
                    this.value_of(
                        n,
                        Sources {
                            ctx,
                            input: raw,
                            states: &states,
                        },
                        field,
                    )
                    .map(|v| plain_text(&v))
                })
                .transpose()
        };
        let error = match text(self, error, "ErrorPath") {
            Ok(e) => e,
            Err(f) => return f,
        };
        let cause = match text(self, cause, "CausePath") {
            Ok(c) => c,
            Err(f) => return f,
        };
        StateFailure::plain(&error.unwrap_or_default(), cause)
    }
}
