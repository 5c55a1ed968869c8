//! Evaluation of the syntax tree against an input, a scope of bindings and the [`Env`].

use super::functions::{call_builtin, is_builtin};
use super::parser::Node;
use super::{
    Caller, Env, Frame, Func, JValue, JsonataError, LambdaClosure, Scope, as_f64, as_int, collapse,
    jerr, num, string_of, to_seq, truthy,
};
use serde_json::{Map, Value};
use std::cell::Cell;
use std::rc::Rc;

/// Nesting limit that keeps hostile expressions from exhausting the stack.
const MAX_EVAL_DEPTH: usize = 100;

pub(super) struct Evaluator<'a, 'b> {
    env: &'a Env<'b>,
    depth: Cell<usize>,
}

impl<'a, 'b> Evaluator<'a, 'b> {
    pub(super) fn new(env: &'a Env<'b>) -> Self {
        Evaluator {
            env,
            depth: Cell::new(0),
        }
    }

    pub(super) fn eval(
        &self,
        n: &Node,
        input: &JValue,
        scope: &Scope,
    ) -> Result<JValue, JsonataError> {
        let d = self.depth.get() + 1;
        if d > MAX_EVAL_DEPTH {
            return Err(jerr(
                "U1001",
                "Stack overflow error: Check for non-terminating recursive function.  Consider rewriting as tail-recursive.",
            ));
        }
        self.depth.set(d);
        let r = self.eval_node(n, input, scope);
        self.depth.set(d - 1);
        r
    }

    fn eval_node(&self, n: &Node, input: &JValue, scope: &Scope) -> Result<JValue, JsonataError> {
        match n {
            Node::Lit(v) => Ok(JValue::Value(v.clone())),
            Node::Regex(r) => Ok(JValue::Func(Func::Regex(r.clone()))),
            Node::Wildcard => Self::wildcard(input),
            Node::Name(name) => self.field(n, name, input, scope),
            Node::Var(name) => self.variable(name, input, scope),
            Node::Path(steps) => self.path(steps, input, scope),
            Node::Predicate(base, pred) => self.predicate(base, pred, input, scope),
            Node::Unary(e) => match collapse(self.eval(e, input, scope)?) {
                JValue::Undefined => Ok(JValue::Undefined),
                JValue::Value(Value::Number(n)) => {
                    Ok(JValue::Value(num(-n.as_f64().unwrap_or(0.0))))
                }
                _ => Err(jerr("D1002", "Cannot negate a non-numeric value")),
            },
            Node::Cond(c, t, e) => {
                if truthy(&self.eval(c, input, scope)?) {
                    self.eval(t, input, scope)
                } else if let Some(e) = e {
                    self.eval(e, input, scope)
                } else {
                    Ok(JValue::Undefined)
                }
            }
            Node::Block(items) => {
                let inner = Rc::new(Frame {
                    vars: Default::default(),
                    parent: Some(scope.clone()),
                });
                let mut last = JValue::Undefined;
                for it in items {
                    last = self.eval(it, input, &inner)?;
                }
                Ok(last)
            }
            Node::Bind(name, e) => {
                let v = self.eval(e, input, scope)?;
                scope.vars.borrow_mut().insert(name.clone(), v.clone());
                Ok(v)
            }
            Node::Lambda(l) => Ok(JValue::Func(Func::Lambda(Rc::new(LambdaClosure {
                lambda: l.clone(),
                scope: scope.clone(),
            })))),
            Node::Array(items) => self.array(items, input, scope),
            Node::Object(pairs) => self.object(pairs, input, scope),
            Node::Range(..) => Err(jerr("S0201", "Range outside of an array constructor")),
            Node::Call(f, args) => self.call(f, args, input, scope),
            Node::Bin(op, l, r) if op == "~>" => self.chain(l, r, input, scope),
            Node::Bin(op, l, r) => self.binary(op, l, r, input, scope),
        }
    }

    /// `*`: every value of the input objects, arrays flattened.
    fn wildcard(input: &JValue) -> Result<JValue, JsonataError> {
        let mut out = Vec::new();
        for item in to_seq(input.clone()) {
            if let Value::Object(o) = item {
                for v in o.values() {
                    match v {
                        Value::Array(a) => out.extend(a.iter().cloned()),
                        v => out.push(v.clone()),
                    }
                }
            }
        }
        Ok(JValue::Seq(out))
    }

    /// A field name step: the field of each input object, descending into nested arrays.
    fn field(
        &self,
        n: &Node,
        name: &str,
        input: &JValue,
        scope: &Scope,
    ) -> Result<JValue, JsonataError> {
        let mut out = Vec::new();
        let items = match input {
            JValue::Value(Value::Array(a)) => a.clone(),
            JValue::Seq(s) => s.clone(),
            JValue::Value(v) => vec![v.clone()],
            _ => vec![],
        };
        for it in items {
            match it {
                Value::Object(o) => {
                    if let Some(v) = o.get(name) {
                        match v {
                            Value::Array(a)
                                if matches!(
                                    input,
                                    JValue::Seq(_) | JValue::Value(Value::Array(_))
                                ) =>
                            {
                                out.extend(a.iter().cloned())
                            }
                            v => out.push(v.clone()),
                        }
                    }
                }
                Value::Array(a) => {
                    let r = self.eval(n, &JValue::Value(Value::Array(a)), scope)?;
                    out.extend(to_seq(r));
                }
                _ => {}
            }
        }
        Ok(if out.len() == 1 && !matches!(input, JValue::Seq(_)) {
            JValue::Value(out.remove(0))
        } else {
            JValue::Seq(out)
        })
    }

    /// `$name`: a binding, `$states`, a workflow variable, or a built-in function.
    fn variable(&self, name: &str, input: &JValue, scope: &Scope) -> Result<JValue, JsonataError> {
        if name.is_empty() {
            return Ok(input.clone());
        }
        if let Some(v) = scope.lookup(name) {
            return Ok(v);
        }
        if name == "states" {
            return Ok(JValue::Value(self.env.states.clone()));
        }
        if let Some(v) = (self.env.vars)(name) {
            return Ok(JValue::Value(v));
        }
        if is_builtin(name) {
            return Ok(JValue::Func(Func::Builtin(name.to_string())));
        }
        Ok(JValue::Undefined)
    }

    /// `a.b.c`: each step maps over the sequence the previous produced.
    fn path(&self, steps: &[Node], input: &JValue, scope: &Scope) -> Result<JValue, JsonataError> {
        let mut cur = self.eval(&steps[0], input, scope)?;
        for s in &steps[1..] {
            if let JValue::Value(v) = &cur
                && !v.is_array()
            {
                cur = self.eval(s, &JValue::Value(v.clone()), scope)?;
                continue;
            }
            let mut out = Vec::new();
            for item in to_seq(cur) {
                let r = self.eval(s, &JValue::Value(item), scope)?;
                match r {
                    JValue::Seq(v) => out.extend(v),
                    JValue::Value(Value::Array(a)) if !matches!(s, Node::Array(_)) => out.extend(a),
                    JValue::Value(v) => out.push(v),
                    _ => {}
                }
            }
            cur = JValue::Seq(out);
        }
        Ok(cur)
    }

    /// `base[pred]`: an index (negative from the end) or a filter.
    fn predicate(
        &self,
        base: &Node,
        pred: &Node,
        input: &JValue,
        scope: &Scope,
    ) -> Result<JValue, JsonataError> {
        let b = self.eval(base, input, scope)?;
        let items = to_seq(b);
        let mut out = Vec::new();
        for (i, it) in items.iter().enumerate() {
            let p = self.eval(pred, &JValue::Value(it.clone()), scope)?;
            match &p {
                JValue::Value(Value::Number(n)) => {
                    let mut idx = n.as_f64().unwrap_or(0.0).floor() as i64;
                    if idx < 0 {
                        idx += items.len() as i64;
                    }
                    if idx == i as i64 {
                        out.push(it.clone());
                    }
                }
                other => {
                    if truthy(other) {
                        out.push(it.clone());
                    }
                }
            }
        }
        Ok(JValue::Seq(out))
    }

    /// `[...]`: items, ranges expanded and arrays flattened unless written as constructors.
    fn array(&self, items: &[Node], input: &JValue, scope: &Scope) -> Result<JValue, JsonataError> {
        let mut out = Vec::new();
        for it in items {
            match it {
                Node::Range(a, b) => {
                    let a = collapse(self.eval(a, input, scope)?);
                    let b = collapse(self.eval(b, input, scope)?);
                    let (Some(a), Some(b)) = (as_int(&a), as_int(&b)) else {
                        return Err(jerr(
                            "T2003",
                            "The left side of the range operator (..) must evaluate to an integer",
                        ));
                    };
                    if i128::from(b) - i128::from(a) > 10_000_000 {
                        return Err(jerr(
                            "D2014",
                            "The size of the sequence allocated by the range operator (..) must not exceed 1e7",
                        ));
                    }
                    out.extend((a..=b).map(Value::from));
                }
                _ => match collapse(self.eval(it, input, scope)?) {
                    JValue::Undefined => {}
                    JValue::Value(Value::Array(a)) if !matches!(it, Node::Array(_)) => {
                        out.extend(a)
                    }
                    JValue::Value(v) => out.push(v),
                    _ => {}
                },
            }
        }
        Ok(JValue::Value(Value::Array(out)))
    }

    /// `{key: value}`; pairs whose value is undefined are left out.
    fn object(
        &self,
        pairs: &[(Node, Node)],
        input: &JValue,
        scope: &Scope,
    ) -> Result<JValue, JsonataError> {
        let mut m = Map::new();
        for (k, v) in pairs {
            let key = match collapse(self.eval(k, input, scope)?) {
                JValue::Value(Value::String(s)) => s,
                _ => {
                    return Err(jerr(
                        "T1003",
                        "Key in object structure must evaluate to a string",
                    ));
                }
            };
            if let JValue::Value(v) = collapse(self.eval(v, input, scope)?) {
                m.insert(key, v);
            }
        }
        Ok(JValue::Value(Value::Object(m)))
    }

    /// `$f(args)`.
    fn call(
        &self,
        f: &Node,
        args: &[Node],
        input: &JValue,
        scope: &Scope,
    ) -> Result<JValue, JsonataError> {
        let func = collapse(self.eval(f, input, scope)?);
        let JValue::Func(func) = func else {
            return Err(jerr("T1006", "Attempted to invoke a non-function"));
        };
        let mut vals = Vec::with_capacity(args.len());
        for a in args {
            vals.push(collapse(self.eval(a, input, scope)?));
        }
        self.apply(&func, vals, input)
    }

    /// `x ~> $f(a)` is `$f(x, a)`; `x ~> $f` is `$f(x)`.
    fn chain(
        &self,
        l: &Node,
        r: &Node,
        input: &JValue,
        scope: &Scope,
    ) -> Result<JValue, JsonataError> {
        // `x ~> $f(a)` is `$f(x, a)`; `x ~> $f` is `$f(x)`.
        let lhs = collapse(self.eval(l, input, scope)?);
        let (fnode, args): (&Node, &[Node]) = match r {
            Node::Call(f, args) => (f, args),
            other => (other, &[]),
        };
        let JValue::Func(func) = collapse(self.eval(fnode, input, scope)?) else {
            return Err(jerr(
                "T2006",
                "The right side of the function application operator ~> must be a function",
            ));
        };
        let mut vals = vec![lhs];
        for a in args {
            vals.push(collapse(self.eval(a, input, scope)?));
        }
        self.apply(&func, vals, input)
    }

    fn apply(&self, f: &Func, args: Vec<JValue>, input: &JValue) -> Result<JValue, JsonataError> {
        match f {
            Func::Lambda(c) => {
                let frame = Rc::new(Frame {
                    vars: Default::default(),
                    parent: Some(c.scope.clone()),
                });
                for (i, p) in c.lambda.params.iter().enumerate() {
                    frame
                        .vars
                        .borrow_mut()
                        .insert(p.clone(), args.get(i).cloned().unwrap_or(JValue::Undefined));
                }
                self.eval(&c.lambda.body, input, &frame)
            }
            Func::Regex(re) => {
                let s = match args.first() {
                    Some(JValue::Value(Value::String(s))) => s.clone(),
                    _ => return Ok(JValue::Undefined),
                };
                Ok(match re.find(&s) {
                    Some(m) => JValue::Value(
                        serde_json::json!({"match": m.as_str(), "index": m.start(), "groups": []}),
                    ),
                    None => JValue::Undefined,
                })
            }
            Func::Builtin(name) => call_builtin(self, name, args, input),
        }
    }

    fn binary(
        &self,
        op: &str,
        l: &Node,
        r: &Node,
        input: &JValue,
        scope: &Scope,
    ) -> Result<JValue, JsonataError> {
        if op == "and" {
            return Ok(JValue::Value(Value::Bool(
                truthy(&self.eval(l, input, scope)?) && truthy(&self.eval(r, input, scope)?),
            )));
        }
        if op == "or" {
            return Ok(JValue::Value(Value::Bool(
                truthy(&self.eval(l, input, scope)?) || truthy(&self.eval(r, input, scope)?),
            )));
        }
        let a = collapse(self.eval(l, input, scope)?);
        if op == "??" {
            return if matches!(a, JValue::Undefined) {
                self.eval(r, input, scope)
            } else {
                Ok(a)
            };
        }
        if op == "?:" {
            return if truthy(&a) {
                Ok(a)
            } else {
                self.eval(r, input, scope)
            };
        }
        let b = collapse(self.eval(r, input, scope)?);
        match op {
            "&" => Ok(JValue::Value(Value::String(format!(
                "{}{}",
                string_of(&a)?,
                string_of(&b)?
            )))),
            "+" | "-" | "*" | "/" | "%" => {
                if matches!(a, JValue::Undefined) || matches!(b, JValue::Undefined) {
                    return Ok(JValue::Undefined);
                }
                let (Some(x), Some(y)) = (as_f64(&a), as_f64(&b)) else {
                    return Err(jerr(
                        "T2001",
                        format!(
                            "The {} side of the \"{op}\" operator must evaluate to a number",
                            if as_f64(&a).is_none() {
                                "left"
                            } else {
                                "right"
                            }
                        ),
                    ));
                };
                let v = match op {
                    "+" => x + y,
                    "-" => x - y,
                    "*" => x * y,
                    "/" => x / y,
                    _ => x % y,
                };
                if !v.is_finite() {
                    return Err(jerr("D1001", "Number out of range"));
                }
                Ok(JValue::Value(num(v)))
            }
            "=" | "!=" => {
                if matches!(a, JValue::Undefined) || matches!(b, JValue::Undefined) {
                    return Ok(JValue::Value(Value::Bool(false)));
                }
                let eq = match (&a, &b) {
                    (JValue::Value(x), JValue::Value(y)) => crate::intrinsics::json_eq(x, y),
                    _ => false,
                };
                Ok(JValue::Value(Value::Bool(if op == "=" { eq } else { !eq })))
            }
            "<" | "<=" | ">" | ">=" => {
                if matches!(a, JValue::Undefined) || matches!(b, JValue::Undefined) {
                    return Ok(JValue::Value(Value::Bool(false)));
                }
                let ord = match (&a, &b) {
                    (JValue::Value(Value::Number(x)), JValue::Value(Value::Number(y))) => {
                        x.as_f64().partial_cmp(&y.as_f64())
                    }
                    (JValue::Value(Value::String(x)), JValue::Value(Value::String(y))) => {
                        Some(x.cmp(y))
                    }
                    _ => {
                        return Err(jerr(
                            "T2010",
                            format!(
                                "The expressions either side of operator \"{op}\" must evaluate to numeric or string values"
                            ),
                        ));
                    }
                };
                use std::cmp::Ordering::*;
                let res = match op {
                    "<" => ord == Some(Less),
                    "<=" => matches!(ord, Some(Less | Equal)),
                    ">" => ord == Some(Greater),
                    _ => matches!(ord, Some(Greater | Equal)),
                };
                Ok(JValue::Value(Value::Bool(res)))
            }
            "in" => {
                let JValue::Value(x) = &a else {
                    return Ok(JValue::Value(Value::Bool(false)));
                };
                let hay = to_seq(b);
                Ok(JValue::Value(Value::Bool(
                    hay.iter().any(|h| crate::intrinsics::json_eq(h, x)),
                )))
            }
            _ => Err(jerr("S0201", format!("Unsupported operator {op}"))),
        }
    }
}

impl Caller for Evaluator<'_, '_> {
    fn apply(&self, f: &Func, args: Vec<JValue>, input: &JValue) -> Result<JValue, JsonataError> {
        Evaluator::apply(self, f, args, input)
    }

    fn env(&self) -> &Env<'_> {
        self.env
    }
}
