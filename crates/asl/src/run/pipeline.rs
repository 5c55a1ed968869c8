//! What every state shares: the `$$` context object, JSONPath and JSONata evaluation of a
//! state's fields, InputPath/ResultPath/OutputPath, and `Assign` with the end of a state.

use super::{Flow, StateCtx, StateFailure};
use crate::definition::{
    Assign, JsonataTemplate, PathOrNull, QueryLanguage, State, Template, ValueSource,
};
use crate::intrinsics::{self, Arg, ArgEnv};
use crate::jsonata::{self, JValue};
use crate::jsonpath::JsonPath;
use crate::values::{iso_millis, to_json};
use serde_json::{Map, Value, json};

/// The intrinsics' view of the running state: path and variable arguments resolve against
/// the state's input and context, randomness comes from the execution.
struct IntrinsicScope<'a, 'e> {
    flow: &'a Flow<'e>,
    ctx: &'a StateCtx<'a>,
    input: &'a Value,
    field: &'a str,
}

impl ArgEnv for IntrinsicScope<'_, '_> {
    fn resolve(&self, arg: &Arg) -> Result<Value, String> {
        match arg {
            Arg::Path(p) => self.flow.select_path(p, self.ctx, self.input, self.field),
            Arg::Var(n, p) => self.flow.select_var(n, p.as_ref(), self.field),
            _ => Err("unexpected argument".into()),
        }
    }
    fn random_unit(&self) -> f64 {
        self.flow.execution.services.random.next_f64()
    }
    fn random_u64(&self) -> u64 {
        self.flow.execution.services.random.next_u64()
    }
}

impl Flow<'_> {
    /// `$$`: the context object of the running state.
    pub(super) fn context(&self, ctx: &StateCtx<'_>) -> Value {
        let c = &self.execution.config;
        let mut state = Map::new();
        state.insert("Name".into(), Value::String(ctx.state.name.clone()));
        state.insert(
            "EnteredTime".into(),
            Value::String(iso_millis(ctx.entered_time)),
        );
        if let Some(r) = ctx.retry_count {
            state.insert("RetryCount".into(), Value::from(r));
        }
        let mut m = Map::new();
        m.insert(
            "Execution".into(),
            json!({
                "Id": c.execution_arn,
                "Input": self.execution.input,
                "StartTime": iso_millis(self.execution.start),
                "Name": c.execution_name,
                "RoleArn": c.role_arn,
                "RedriveCount": c.redrive.as_ref().map_or(0, |r| r.count),
            }),
        );
        m.insert(
            "StateMachine".into(),
            json!({"Id": c.state_machine_arn, "Name": c.state_machine_name}),
        );
        m.insert("State".into(), Value::Object(state));
        if let Some((i, v)) = &ctx.map_item {
            m.insert("Map".into(), json!({"Item": {"Index": i, "Value": v}}));
        }
        if let Some(t) = &ctx.task_token {
            m.insert("Task".into(), json!({"Token": t}));
        }
        Value::Object(m)
    }

    /// A path over the input (or over `$$` for `$$.` paths); `Err` is AWS's cause text.
    pub(super) fn select_path(
        &self,
        p: &JsonPath,
        ctx: &StateCtx<'_>,
        input: &Value,
        field: &str,
    ) -> Result<Value, String> {
        let (doc, context);
        let target = if p.is_context() {
            context = self.context(ctx);
            &context
        } else {
            doc = input;
            doc
        };
        p.select(target).ok_or_else(|| {
            format!(
                "The JSONPath '{}' specified for the field '{}' could not be found in the input '{}'",
                p.as_str(),
                field,
                to_json(target)
            )
        })
    }

    /// `$name`, with an optional path into the variable; `Err` is AWS's cause text.
    pub(super) fn select_var(
        &self,
        name: &str,
        p: Option<&JsonPath>,
        field: &str,
    ) -> Result<Value, String> {
        let Some(v) = self.vars.get(name) else {
            return Err(format!(
                "The variable '${name}' specified for the field '{field}' is not defined"
            ));
        };
        match p {
            None => Ok(v),
            Some(p) => p.select(&v).ok_or_else(|| {
                format!(
                    "The JSONPath '${name}{}' specified for the field '{field}' could not be found in the input '{}'",
                    &p.as_str()[1..],
                    to_json(&v)
                )
            }),
        }
    }

    /// Evaluates a JSONPath-mode payload template (`Parameters`, `ResultSelector`, ...);
    /// `field` names it in messages.
    pub(super) fn template(
        &self,
        t: &Template,
        ctx: &StateCtx<'_>,
        input: &Value,
        field: &str,
    ) -> Result<Value, StateFailure> {
        Ok(match t {
            Template::Lit(v) => v.clone(),
            Template::Path(p) => self
                .select_path(p, ctx, input, field)
                .map_err(|m| ctx.runtime(&m))?,
            Template::Var(n, p) => self
                .select_var(n, p.as_ref(), field)
                .map_err(|m| ctx.runtime(&m))?,
            Template::Call(c, _) => {
                let env = IntrinsicScope {
                    flow: self,
                    ctx,
                    input,
                    field,
                };
                intrinsics::eval(c, &env).map_err(|m| ctx.runtime(&m))?
            }
            Template::Object(fields) => {
                let mut m = Map::with_capacity(fields.len());
                for (k, name, t) in fields {
                    m.insert(k.clone(), self.template(t, ctx, input, name)?);
                }
                Value::Object(m)
            }
            Template::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|t| self.template(t, ctx, input, field))
                    .collect::<Result<_, _>>()?,
            ),
        })
    }

    /// `$states`: the input, the context object and `extra` members (`result`,
    /// `errorOutput`).
    pub(super) fn states_var(
        &self,
        ctx: &StateCtx<'_>,
        input: &Value,
        extra: &[(&str, &Value)],
    ) -> Value {
        let mut m = Map::new();
        m.insert("input".into(), input.clone());
        m.insert("context".into(), self.context(ctx));
        for (k, v) in extra {
            m.insert((*k).into(), (*v).clone());
        }
        Value::Object(m)
    }

    /// Evaluates a JSONata template; `loc` names the field for messages (`Output/result`).
    pub(super) fn eval_jsonata(
        &self,
        t: &JsonataTemplate,
        ctx: &StateCtx<'_>,
        states: &Value,
        loc: &str,
    ) -> Result<Value, StateFailure> {
        match self.eval_jsonata_raw(t, ctx, states, loc)? {
            JValue::Value(v) => Ok(v),
            JValue::Undefined => Ok(Value::Null),
            JValue::Seq(s) => Ok(Value::Array(s)),
            JValue::Func(_) => Err(ctx.query_error(loc, &format!("The JSONata expression specified for the field '{loc}' returned an unsupported result type."))),
        }
    }

    /// Like [`Self::eval_jsonata`], but functions and sequences come back as JSONata returned
    /// them (Map's `Items` tells them apart).
    pub(super) fn eval_jsonata_raw(
        &self,
        t: &JsonataTemplate,
        ctx: &StateCtx<'_>,
        states: &Value,
        loc: &str,
    ) -> Result<JValue, StateFailure> {
        Ok(match t {
            JsonataTemplate::Lit(v) => JValue::Value(v.clone()),
            JsonataTemplate::Expr(e, src) => {
                let vars = |n: &str| self.vars.get(n);
                let env = jsonata::Env {
                    vars: &vars,
                    states: states.clone(),
                    now_millis: self.now(),
                    random: &*self.execution.services.random,
                };
                let input = states.get("input").cloned().unwrap_or(Value::Null);
                match e.eval(&input, &env) {
                    Ok(JValue::Undefined) => {
                        return Err(ctx.query_error(loc, &format!("The JSONata expression '{src}' specified for the field '{loc}' returned nothing (undefined).")));
                    }
                    Ok(v) => v,
                    Err(err) => {
                        return Err(ctx.query_error(loc, &format!("The JSONata expression '{src}' specified for the field '{loc}' threw an error during evaluation. {err}")));
                    }
                }
            }
            JsonataTemplate::Object(fields) => {
                let mut m = Map::with_capacity(fields.len());
                for (k, t) in fields {
                    let v = self.eval_jsonata(t, ctx, states, &format!("{loc}/{k}"))?;
                    m.insert(k.clone(), v);
                }
                JValue::Value(Value::Object(m))
            }
            JsonataTemplate::Array(items) => {
                let mut out = Vec::new();
                for (i, t) in items.iter().enumerate() {
                    out.push(self.eval_jsonata(t, ctx, states, &format!("{loc}/{i}"))?);
                }
                JValue::Value(Value::Array(out))
            }
        })
    }

    /// A state's effective input and `$states`: JSONPath mode applies `InputPath` and has no
    /// `$states`; JSONata mode keeps the raw input.
    pub(super) fn state_input(
        &self,
        state: &State,
        ctx: &StateCtx<'_>,
        raw: &Value,
    ) -> Result<(Value, Value), StateFailure> {
        if state.query_language == QueryLanguage::JsonPath {
            Ok((self.input_path(state, ctx, raw)?, Value::Null))
        } else {
            Ok((raw.clone(), self.states_var(ctx, raw, &[])))
        }
    }

    /// `Parameters` over the input (JSONPath) or `Arguments` over `$states` (JSONata); the
    /// input itself without either.
    pub(super) fn parameters(
        &self,
        state: &State,
        ctx: &StateCtx<'_>,
        input: Value,
        states: &Value,
    ) -> Result<Value, StateFailure> {
        match (&state.parameters, &state.arguments) {
            (Some(p), _) if state.query_language == QueryLanguage::JsonPath => {
                self.template(p, ctx, &input, "Parameters")
            }
            (_, Some(a)) if state.query_language == QueryLanguage::Jsonata => {
                self.eval_jsonata(a, ctx, states, "Arguments")
            }
            _ => Ok(input),
        }
    }

    /// Evaluates an optional `Assign`. The values become visible only through
    /// [`Self::commit_assign`] once the state's output is computed: AWS evaluates both against
    /// the variables as the state found them.
    pub(super) fn eval_assign(
        &self,
        assign: Option<&Assign>,
        ctx: &StateCtx<'_>,
        path_input: &Value,
        states: &Value,
    ) -> Result<Option<Map<String, Value>>, StateFailure> {
        let Some(assign) = assign else {
            return Ok(None);
        };
        let v = match assign {
            Assign::Path(t) => self.template(t, ctx, path_input, "Assign")?,
            Assign::Jsonata(t) => self.eval_jsonata(t, ctx, states, "Assign")?,
        };
        Ok(Some(v.as_object().cloned().unwrap_or_default()))
    }

    /// Stores evaluated `Assign` values and adds them to what the exit event shows.
    pub(super) fn commit_assign(
        &mut self,
        values: Option<Map<String, Value>>,
        assigned: &mut Option<Map<String, Value>>,
    ) {
        let Some(values) = values.filter(|v| !v.is_empty()) else {
            return;
        };
        let mut shown = assigned.take().unwrap_or_default();
        for (k, v) in values {
            shown.insert(k.clone(), Value::String(to_json(&v)));
            self.vars.own.insert(k, v);
        }
        *assigned = Some(shown);
    }

    /// The end of every JSONata-mode state: `Assign`, then `Output` (`default` without one),
    /// both over the same `$states`.
    pub(super) fn end_jsonata(
        &mut self,
        ctx: &StateCtx<'_>,
        (assign, output): (Option<&Assign>, Option<&JsonataTemplate>),
        states: &Value,
        default: Value,
        assigned: &mut Option<Map<String, Value>>,
    ) -> Result<Value, StateFailure> {
        // A JSONata state's Assign is itself JSONata: it reads `$states`, never a path input.
        let values = self.eval_assign(assign, ctx, &Value::Null, states)?;
        let out = match output {
            Some(o) => self.eval_jsonata(o, ctx, states, "Output")?,
            None => default,
        };
        self.commit_assign(values, assigned);
        Ok(out)
    }

    /// `InputPath`: a path, a variable, or `null` for `{}`.
    pub(super) fn input_path(
        &self,
        state: &State,
        ctx: &StateCtx<'_>,
        input: &Value,
    ) -> Result<Value, StateFailure> {
        match &state.input_path {
            None => Ok(input.clone()),
            Some(PathOrNull::Null) => Ok(json!({})),
            Some(PathOrNull::Path(p)) => self.invalid_path(p, ctx, input),
            Some(PathOrNull::Var(n, p, _)) => self
                .select_var(n, p.as_ref(), "InputPath")
                .map_err(|m| ctx.runtime(&m)),
        }
    }

    /// A path that must match (`InputPath`, `OutputPath`, `ItemsPath`): `Invalid path`
    /// otherwise.
    pub(super) fn invalid_path(
        &self,
        p: &JsonPath,
        ctx: &StateCtx<'_>,
        input: &Value,
    ) -> Result<Value, StateFailure> {
        let target = if p.is_context() {
            self.context(ctx)
        } else {
            input.clone()
        };
        p.select(&target).ok_or_else(|| {
            ctx.runtime(&format!(
                "Invalid path '{}' : No results for path: {}",
                p.as_str(),
                p.canonical()
            ))
        })
    }

    /// `OutputPath`: a path, a variable, or `null` for `{}`.
    pub(super) fn output_path(
        &self,
        state: &State,
        ctx: &StateCtx<'_>,
        v: Value,
    ) -> Result<Value, StateFailure> {
        match &state.output_path {
            None => Ok(v),
            Some(PathOrNull::Null) => Ok(json!({})),
            Some(PathOrNull::Path(p)) => self.invalid_path(p, ctx, &v),
            Some(PathOrNull::Var(n, p, _)) => self
                .select_var(n, p.as_ref(), "OutputPath")
                .map_err(|m| ctx.runtime(&m)),
        }
    }

    /// `ResultPath`: where the result goes in the raw input (`null` keeps the input).
    pub(super) fn result_path(
        &self,
        rp: &Option<PathOrNull>,
        ctx: &StateCtx<'_>,
        raw_input: Value,
        result: Value,
    ) -> Result<Value, StateFailure> {
        match rp {
            None => Ok(result),
            Some(PathOrNull::Null) => Ok(raw_input),
            Some(PathOrNull::Var(..)) => Err(ctx.runtime("ResultPath cannot reference a variable")),
            Some(PathOrNull::Path(p)) => p
                .write(raw_input, result)
                .map_err(|m| ctx.runtime(&format!("Invalid path '{}': {m}", p.as_str()))),
        }
    }

    /// A field given literally, by path (over `src.input`) or by JSONata (over `$states`).
    pub(super) fn value_of(
        &self,
        n: &ValueSource,
        src: Sources<'_>,
        field: &str,
    ) -> Result<Value, StateFailure> {
        let Sources { ctx, input, states } = src;
        match n {
            ValueSource::Lit(v) => Ok(v.clone()),
            ValueSource::Ref(t, _) => self.template(t, ctx, input, field),
            ValueSource::Expr(t) => self.eval_jsonata(t, ctx, states, field),
        }
    }
}

/// What a state's fields are evaluated against: JSONPath fields read `input` (the state's
/// effective input), JSONata fields read `$states`.
#[derive(Clone, Copy)]
pub(super) struct Sources<'a> {
    pub(super) ctx: &'a StateCtx<'a>,
    pub(super) input: &'a Value,
    pub(super) states: &'a Value,
}

/// A value as text: strings as they are, anything else as JSON.
pub(super) fn plain_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => to_json(other),
    }
}
