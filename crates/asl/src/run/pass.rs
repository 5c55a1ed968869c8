//! The Pass state.

use super::{Flow, StateCtx, StateFailure, Step};
use crate::definition::{QueryLanguage, State};
use serde_json::{Map, Value};

impl Flow<'_> {
    pub(super) fn pass(
        &mut self,
        state: &State,
        ctx: &StateCtx<'_>,
        raw: Value,
        result: Option<&Value>,
        assigned: &mut Option<Map<String, Value>>,
    ) -> Result<Step, StateFailure> {
        if state.query_language == QueryLanguage::Jsonata {
            let states = self.states_var(ctx, &raw, &[]);
            let out = self.end_jsonata(ctx, state.ending(), &states, raw, assigned)?;
            return Ok(Self::next_step(state, out));
        }
        let input = self.input_path(state, ctx, &raw)?;
        let mut res = self.parameters(state, ctx, input, &Value::Null)?;
        if let Some(r) = result {
            res = r.clone();
        }
        let values = self.eval_assign(state.assign.as_ref(), ctx, &res, &Value::Null)?;
        let v = self.result_path(&state.result_path, ctx, raw, res)?;
        let out = self.output_path(state, ctx, v)?;
        self.commit_assign(values, assigned);
        Ok(Self::next_step(state, out))
    }
}
