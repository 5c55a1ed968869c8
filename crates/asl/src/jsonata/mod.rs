//! A JSONata evaluator for `{% %}` expressions: paths, predicates, operators, conditionals,
//! blocks and bindings, lambdas, regexes and the common function library, plus AWS's
//! additions (`$partition`, `$range`, `$hash`, `$random`, `$uuid`, `$parse`). Time and
//! randomness come from the execution's injected sources. Error texts follow jsonata-js
//! (`T1006: Attempted to invoke a non-function`), since AWS quotes them in causes.

//!
//! Layout: `lexer` turns the source into tokens, `parser` builds the syntax tree with
//! operator precedence, `eval` walks it, and `functions` is the `$function` library.

mod eval;
mod functions;
mod lexer;
mod parser;

use crate::values::to_json;
use eval::Evaluator;
use parser::{Lambda, Node};
use serde_json::{Number, Value};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

/// A JSONata error with its jsonata-js code.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct JsonataError {
    pub code: String,
    pub message: String,
}

fn jerr(code: &str, message: impl Into<String>) -> JsonataError {
    JsonataError {
        code: code.into(),
        message: message.into(),
    }
}

/// A parsed expression.
#[derive(Debug, Clone)]
pub struct Expr {
    node: Node,
}

/// A result: nothing (undefined), a JSON value, or a function.
#[derive(Debug, Clone)]
pub enum JValue {
    Undefined,
    Value(Value),
    Seq(Vec<Value>),
    Func(Func),
}

#[derive(Debug, Clone)]
pub enum Func {
    Lambda(Rc<LambdaClosure>),
    Builtin(String),
    Regex(Arc<regex_lite::Regex>),
}

#[derive(Debug)]
pub struct LambdaClosure {
    lambda: Arc<Lambda>,
    scope: Scope,
}

type Scope = Rc<Frame>;

#[derive(Debug, Default)]
pub struct Frame {
    vars: std::cell::RefCell<HashMap<String, JValue>>,
    parent: Option<Scope>,
}

impl Frame {
    fn lookup(&self, name: &str) -> Option<JValue> {
        if let Some(v) = self.vars.borrow().get(name) {
            return Some(v.clone());
        }
        self.parent.as_ref().and_then(|p| p.lookup(name))
    }
}

/// What the function library needs from the evaluator: calling function arguments (`$map`,
/// `$sort`, ...) and the environment (the clock and randomness).
trait Caller {
    fn apply(&self, f: &Func, args: Vec<JValue>, input: &JValue) -> Result<JValue, JsonataError>;
    fn env(&self) -> &Env<'_>;
}

/// What an expression can see besides its input.
pub struct Env<'a> {
    /// Variables of the workflow, looked up by name (without `$`).
    pub vars: &'a dyn Fn(&str) -> Option<Value>,
    /// `$states`.
    pub states: Value,
    pub now_millis: i64,
    pub random: &'a dyn crate::clock::Random,
}

impl Expr {
    /// Parses an expression.
    pub fn parse(src: &str) -> Result<Expr, JsonataError> {
        Ok(Expr {
            node: parser::parse(src)?,
        })
    }

    /// Evaluates with `input` as `$` (AWS binds `$states` and leaves the context empty).
    pub fn eval(&self, input: &Value, env: &Env<'_>) -> Result<JValue, JsonataError> {
        let root = Rc::new(Frame::default());
        let r = Evaluator::new(env).eval(&self.node, &JValue::Value(input.clone()), &root)?;
        Ok(collapse(r))
    }
}

fn num(n: f64) -> Value {
    if n == 0.0 {
        return Value::from(0);
    }
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        Value::from(n as i64)
    } else {
        Number::from_f64(n)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}
fn to_seq(v: JValue) -> Vec<Value> {
    match v {
        JValue::Undefined | JValue::Func(_) => vec![],
        JValue::Value(Value::Array(a)) => a,
        JValue::Value(v) => vec![v],
        JValue::Seq(s) => s,
    }
}

fn collapse(v: JValue) -> JValue {
    match v {
        JValue::Seq(mut s) if s.len() == 1 => JValue::Value(s.remove(0)),
        JValue::Seq(s) if s.is_empty() => JValue::Undefined,
        JValue::Seq(s) => JValue::Value(Value::Array(s)),
        o => o,
    }
}

fn truthy(v: &JValue) -> bool {
    match v {
        JValue::Undefined => false,
        JValue::Func(_) => true,
        JValue::Seq(s) => s.iter().any(|x| truthy(&JValue::Value(x.clone()))),
        JValue::Value(v) => match v {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Number(n) => n.as_f64() != Some(0.0),
            Value::String(s) => !s.is_empty(),
            Value::Array(a) => a.iter().any(|x| truthy(&JValue::Value(x.clone()))),
            Value::Object(o) => !o.is_empty(),
        },
    }
}
fn as_f64(v: &JValue) -> Option<f64> {
    match v {
        JValue::Value(Value::Number(n)) => n.as_f64(),
        _ => None,
    }
}

fn as_int(v: &JValue) -> Option<i64> {
    as_f64(v).filter(|f| f.fract() == 0.0).map(|f| f as i64)
}

fn string_of(v: &JValue) -> Result<String, JsonataError> {
    Ok(match v {
        JValue::Undefined => String::new(),
        JValue::Func(_) => String::new(),
        JValue::Value(Value::String(s)) => s.clone(),
        JValue::Value(Value::Number(n)) => {
            let f = n.as_f64().unwrap_or(0.0);
            if f.fract() == 0.0 && f.abs() < 1e21 {
                format!("{}", f as i64)
            } else {
                format!("{f}")
            }
        }
        JValue::Value(v) => to_json(v),
        JValue::Seq(s) => to_json(&Value::Array(s.clone())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(src: &str, input: Value) -> Result<JValue, JsonataError> {
        let r = crate::clock::SeededRandom::new(1);
        let vars = |n: &str| if n == "answer" { Some(json!(42)) } else { None };
        let env = Env {
            vars: &vars,
            states: json!({"input": input.clone()}),
            now_millis: 0,
            random: &r,
        };
        Expr::parse(src)?.eval(&input, &env)
    }

    fn val(src: &str, input: Value) -> Value {
        match ev(src, input).unwrap() {
            JValue::Value(v) => v,
            other => panic!("{src}: {other:?}"),
        }
    }

    #[test]
    fn table() {
        let input = json!({"a": {"b": [1, 2, 3]}, "n": "x", "items": [{"k": 1}, {"k": 2}]});
        let cases: Vec<(&str, Value)> = vec![
            ("a.b[1]", json!(2)),
            ("$sum(a.b) + 1", json!(7)),
            ("items.k", json!([1, 2])),
            ("items[k > 1].k", json!(2)),
            ("$states.input.n & '!'", json!("x!")),
            ("$answer", json!(42)),
            ("n = 'x' ? 'yes' : 'no'", json!("yes")),
            ("($x := 2; $x * 3)", json!(6)),
            ("$map([1,2], function($v){ $v * 10 })", json!([10, 20])),
            ("[1..3]", json!([1, 2, 3])),
            ("{'k': 1 + 1}", json!({"k": 2})),
            ("$contains('hello$world', /^hello\\$/)", json!(true)),
            ("$partition([1,2,3], 2)", json!([[1, 2], [3]])),
            ("$range(0, 10, 5)", json!([0, 5, 10])),
            ("$parse('{\"a\": 1}')", json!({"a": 1})),
            ("$number('2')", json!(2)),
            ("$not(true)", json!(false)),
            ("a.b.$string()", json!(["1", "2", "3"])),
            ("1 + 2 * 3", json!(7)),
            ("2 * -3 + 10 % 4", json!(-4)),
            ("'a' & 1 & true", json!("a1true")),
            ("$count(items)", json!(2)),
            ("items[k > 1].k", json!(2)),
            ("items[0].k", json!(1)),
            ("[1, 2, 3][1]", json!(2)),
            ("items.{ 'v': k * 2 }", json!([{"v": 2}, {"v": 4}])),
            ("{'total': $sum(items.k)}", json!({"total": 3})),
            ("$join(['a', 'b'], ',')", json!("a,b")),
            ("$exists(nope)", json!(false)),
            ("n != null", json!(true)),
            ("$filter([1, 2, 3], function($v){ $v > 1 })", json!([2, 3])),
            ("$reduce([1, 2, 3], function($a, $b){ $a + $b })", json!(6)),
            ("$lookup({'a': 1}, 'a')", json!(1)),
            ("$keys({'a': 1, 'b': 2})", json!(["a", "b"])),
            ("$append([1], [2])", json!([1, 2])),
            ("$sort([3, 1, 2])", json!([1, 2, 3])),
            ("$uppercase(n) & $lowercase('B')", json!("Xb")),
            ("$substring('hello', 1, 3)", json!("ell")),
            ("$split('a-b-c', '-')", json!(["a", "b", "c"])),
            ("$replace('a-b', '-', '+')", json!("a+b")),
            (
                "$round(2.5) & ',' & $round(3.5) & ',' & $round(1.234, 2)",
                json!("2,4,1.23"),
            ),
            (
                "$type([]) & $type({}) & $type('')",
                json!("arrayobjectstring"),
            ),
            ("'x' in ['x', 'y']", json!(true)),
            ("$boolean(0) or $boolean('a')", json!(true)),
            ("$average([1, 2, 3])", json!(2)),
            ("$max([1, 5, 2]) - $min([4, 3])", json!(2)),
            ("$fromMillis(0)", json!("1970-01-01T00:00:00.000Z")),
            ("$toMillis('1970-01-01T00:00:01Z')", json!(1000)),
            ("$now()", json!("1970-01-01T00:00:00.000Z")),
            ("$distinct([1, 1, 2])", json!([1, 2])),
            ("$reverse([1, 2])", json!([2, 1])),
            ("$merge([{'a': 1}, {'b': 2}])", json!({"a": 1, "b": 2})),
            (
                "$hash('input data', 'MD5')",
                json!("812f45842bc6d66ee14572ce20db8e86"),
            ),
            ("a.b[-1]", json!(3)),
            ("($f := function($x){ $x + 1 }; $f(1))", json!(2)),
            ("'abc' ~> $uppercase()", json!("ABC")),
            ("'a-b' ~> $split('-') ~> $join('+')", json!("a+b")),
            ("$base64decode($base64encode('hi'))", json!("hi")),
            ("$pad('7', -3, '0')", json!("007")),
        ];
        for (src, want) in cases {
            assert_eq!(val(src, input.clone()), want, "{src}");
        }
    }

    #[test]
    fn undefined_and_errors() {
        assert!(matches!(ev("$nope", json!({})).unwrap(), JValue::Undefined));
        assert!(matches!(
            ev("missing.field", json!({})).unwrap(),
            JValue::Undefined
        ));
        let e = ev("$randomSeeded(1)", json!({})).unwrap_err();
        assert_eq!(e.to_string(), "T1006: Attempted to invoke a non-function");
        assert!(Expr::parse("(1 + ").is_err());
        assert!(Expr::parse(&format!("{}1{}", "(".repeat(5000), ")".repeat(5000))).is_err());
        let e = ev("($f := function($x){ $f($x) }; $f(1))", json!({})).unwrap_err();
        assert_eq!(e.code, "U1001");
        assert!(matches!(
            ev("function($x){$x}", json!({})).unwrap(),
            JValue::Func(_)
        ));
    }
}
