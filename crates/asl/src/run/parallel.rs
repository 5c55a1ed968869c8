//! The Parallel state: branches as concurrent futures with their own variable scope.

use super::{Branch, Flow, StateCtx, StateFailure};
use crate::clock::BoxFuture;
use crate::definition::{State, StateMachine};
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::Value;

impl Flow<'_> {
    pub(super) async fn parallel(
        &mut self,
        state: &State,
        ctx: &StateCtx<'_>,
        raw: &Value,
        branches: &[StateMachine],
    ) -> Result<Value, StateFailure> {
        let (input, states) = self.state_input(state, ctx, raw)?;
        let input = self.parameters(state, ctx, input, &states)?;
        self.event("ParallelStateStarted", None, true);
        let vars = self.vars.child();
        let start = self.thread;
        let execution = self.execution;
        let mut futs: FuturesUnordered<Branch<'_>> = FuturesUnordered::new();
        for (i, b) in branches.iter().enumerate() {
            let history = self.history.clone();
            let input = input.clone();
            let vars = vars.clone();
            futs.push(Box::pin(async move {
                let mut f = Flow {
                    execution,
                    history,
                    thread: start,
                    vars,
                };
                let r = f.run_machine(b, input).await;
                (i, r, f.thread)
            }) as BoxFuture<'_, _>);
        }
        let mut results = vec![Value::Null; branches.len()];
        let mut failure = None;
        while let Some((i, r, th)) = futs.next().await {
            self.thread.source = self.thread.source.max(th.source);
            match r {
                Ok(v) => results[i] = v,
                Err(f) => {
                    failure = Some(f);
                    break;
                }
            }
        }
        drop(futs);
        if let Some(f) = failure {
            return Err(StateFailure {
                eval_location: None,
                runtime: false,
                state_failed: Some("ParallelStateFailed"),
                ..f
            });
        }
        self.event("ParallelStateSucceeded", None, false);
        Ok(Value::Array(results))
    }
}
