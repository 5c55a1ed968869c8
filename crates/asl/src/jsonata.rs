//! A JSONata evaluator for `{% %}` expressions: paths, predicates, operators, conditionals,
//! blocks and bindings, lambdas, regexes and the common function library, plus AWS's
//! additions (`$partition`, `$range`, `$hash`, `$random`, `$uuid`, `$parse`). Time and
//! randomness come from the execution's injected sources. Error texts follow jsonata-js
//! (`T1006: Attempted to invoke a non-function`), since AWS quotes them in causes.

use crate::values::to_json;
use serde_json::{Map, Number, Value};
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

#[derive(Debug, Clone)]
enum Node {
    Lit(Value),
    Regex(Arc<regex_lite::Regex>),
    Name(String),
    Var(String),
    Path(Vec<Node>),
    Predicate(Box<Node>, Box<Node>),
    Unary(Box<Node>),
    Bin(String, Box<Node>, Box<Node>),
    Cond(Box<Node>, Box<Node>, Option<Box<Node>>),
    Block(Vec<Node>),
    Bind(String, Box<Node>),
    Call(Box<Node>, Vec<Node>),
    Lambda(Arc<Lambda>),
    Array(Vec<Node>),
    Object(Vec<(Node, Node)>),
    Range(Box<Node>, Box<Node>),
    Wildcard,
}

#[derive(Debug)]
struct Lambda {
    params: Vec<String>,
    body: Node,
}

// Regexes compare by source only; the AST never needs structural equality otherwise.
impl PartialEq for Node {
    fn eq(&self, _: &Self) -> bool {
        false
    }
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
        let toks = lex(src)?;
        let mut p = Parser {
            toks,
            i: 0,
            depth: 0,
        };
        let node = p.expr(0)?;
        if p.i < p.toks.len() {
            return Err(jerr(
                "S0201",
                format!("Syntax error: {}", p.toks[p.i].text()),
            ));
        }
        Ok(Expr { node })
    }

    /// Evaluates with `input` as `$` (AWS binds `$states` and leaves the context empty).
    pub fn eval(&self, input: &Value, env: &Env<'_>) -> Result<JValue, JsonataError> {
        let root = Rc::new(Frame::default());
        let ev = Evaluator {
            env,
            depth: std::cell::Cell::new(0),
        };
        let r = ev.eval(&self.node, &JValue::Value(input.clone()), &root)?;
        Ok(match r {
            JValue::Seq(mut v) if v.len() == 1 => JValue::Value(v.remove(0)),
            JValue::Seq(v) if v.is_empty() => JValue::Undefined,
            JValue::Seq(v) => JValue::Value(Value::Array(v)),
            other => other,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Str(String),
    Name(String),
    Var(String),
    Op(String),
    Regex(String, String),
}

impl Tok {
    fn text(&self) -> String {
        match self {
            Tok::Num(n) => n.to_string(),
            Tok::Str(s) => format!("\"{s}\""),
            Tok::Name(s) => s.clone(),
            Tok::Var(s) => format!("${s}"),
            Tok::Op(s) => s.clone(),
            Tok::Regex(s, _) => format!("/{s}/"),
        }
    }
}

fn lex(src: &str) -> Result<Vec<Tok>, JsonataError> {
    let cs: Vec<char> = src.chars().collect();
    let mut out: Vec<Tok> = Vec::new();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '/' && cs.get(i + 1) == Some(&'*') {
            i += 2;
            while i + 1 < cs.len() && !(cs[i] == '*' && cs[i + 1] == '/') {
                i += 1;
            }
            i += 2;
            continue;
        }
        // A '/' starts a regex where an operand is expected.
        let operand_expected = match out.last() {
            None => true,
            Some(Tok::Op(o)) => !matches!(o.as_str(), ")" | "]" | "}"),
            _ => false,
        };
        if c == '/' && operand_expected {
            let mut j = i + 1;
            let mut pat = String::new();
            while j < cs.len() && cs[j] != '/' {
                if cs[j] == '\\' && j + 1 < cs.len() {
                    pat.push(cs[j]);
                    j += 1;
                }
                pat.push(cs[j]);
                j += 1;
            }
            if j >= cs.len() {
                return Err(jerr("S0302", "No terminating / in regular expression"));
            }
            j += 1;
            let mut flags = String::new();
            while j < cs.len() && cs[j].is_ascii_alphabetic() {
                flags.push(cs[j]);
                j += 1;
            }
            out.push(Tok::Regex(pat, flags));
            i = j;
            continue;
        }
        if c == '"' || c == '\'' {
            let mut j = i + 1;
            let mut s = String::new();
            while j < cs.len() && cs[j] != c {
                if cs[j] == '\\' && j + 1 < cs.len() {
                    j += 1;
                    match cs[j] {
                        'n' => s.push('\n'),
                        't' => s.push('\t'),
                        'r' => s.push('\r'),
                        'b' => s.push('\u{8}'),
                        'f' => s.push('\u{c}'),
                        'u' => {
                            let hex: String = cs.get(j + 1..j + 5).unwrap_or(&[]).iter().collect();
                            let code = u32::from_str_radix(&hex, 16)
                                .map_err(|_| jerr("S0104", "Invalid unicode escape"))?;
                            s.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                            j += 4;
                        }
                        o => s.push(o),
                    }
                } else {
                    s.push(cs[j]);
                }
                j += 1;
            }
            if j >= cs.len() {
                return Err(jerr(
                    "S0101",
                    "String literal must be terminated by a matching quote",
                ));
            }
            out.push(Tok::Str(s));
            i = j + 1;
            continue;
        }
        if c.is_ascii_digit() {
            let mut j = i;
            while j < cs.len() && (cs[j].is_ascii_digit() || cs[j] == '.') {
                if cs[j] == '.' && cs.get(j + 1) == Some(&'.') {
                    break;
                }
                j += 1;
            }
            if j < cs.len() && (cs[j] == 'e' || cs[j] == 'E') {
                j += 1;
                if j < cs.len() && (cs[j] == '+' || cs[j] == '-') {
                    j += 1;
                }
                while j < cs.len() && cs[j].is_ascii_digit() {
                    j += 1;
                }
            }
            let t: String = cs[i..j].iter().collect();
            out.push(Tok::Num(t.parse().map_err(|_| {
                jerr("S0102", format!("Number out of range: {t}"))
            })?));
            i = j;
            continue;
        }
        if c == '`' {
            let mut j = i + 1;
            while j < cs.len() && cs[j] != '`' {
                j += 1;
            }
            out.push(Tok::Name(cs[i + 1..j.min(cs.len())].iter().collect()));
            i = j + 1;
            continue;
        }
        if c == '$' {
            let mut j = i + 1;
            while j < cs.len() && (cs[j].is_alphanumeric() || cs[j] == '_' || cs[j] == '$') {
                j += 1;
            }
            out.push(Tok::Var(cs[i + 1..j].iter().collect()));
            i = j;
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let mut j = i;
            while j < cs.len() && (cs[j].is_alphanumeric() || cs[j] == '_') {
                j += 1;
            }
            out.push(Tok::Name(cs[i..j].iter().collect()));
            i = j;
            continue;
        }
        let two: String = cs[i..(i + 2).min(cs.len())].iter().collect();
        if [":=", "!=", "<=", ">=", "..", "**", "?:", "??", "~>"].contains(&two.as_str()) {
            out.push(Tok::Op(two));
            i += 2;
            continue;
        }
        if "()[]{}.,;:?+-*/%&=<>!|^~@#".contains(c) {
            out.push(Tok::Op(c.to_string()));
            i += 1;
            continue;
        }
        return Err(jerr("S0204", format!("Unknown operator: {c}")));
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    i: usize,
    depth: usize,
}

/// Nesting limits that keep hostile expressions from exhausting the stack.
const MAX_PARSE_DEPTH: usize = 60;
const MAX_EVAL_DEPTH: usize = 100;

fn bp(op: &str) -> u8 {
    match op {
        ":=" => 10,
        "?" => 20,
        "?:" | "??" => 25,
        "~>" => 40,
        "or" => 25,
        "and" => 30,
        "=" | "!=" | "<" | "<=" | ">" | ">=" | "in" => 40,
        "&" => 50,
        "+" | "-" => 50,
        "*" | "/" | "%" => 60,
        "." => 75,
        "[" | "(" => 80,
        _ => 0,
    }
}

impl Parser {
    fn peek_op(&self) -> Option<String> {
        match self.toks.get(self.i) {
            Some(Tok::Op(o)) => Some(o.clone()),
            Some(Tok::Name(n)) if n == "and" || n == "or" || n == "in" => Some(n.clone()),
            _ => None,
        }
    }
    fn expect(&mut self, op: &str) -> Result<(), JsonataError> {
        match self.toks.get(self.i) {
            Some(Tok::Op(o)) if o == op => {
                self.i += 1;
                Ok(())
            }
            other => Err(jerr(
                "S0202",
                format!(
                    "Expected \"{op}\", got \"{}\"",
                    other.map(Tok::text).unwrap_or_else(|| "(end)".into())
                ),
            )),
        }
    }

    fn expr(&mut self, rbp: u8) -> Result<Node, JsonataError> {
        self.depth += 1;
        let r = self.expr_inner(rbp);
        self.depth -= 1;
        r
    }

    fn expr_inner(&mut self, rbp: u8) -> Result<Node, JsonataError> {
        if self.depth > MAX_PARSE_DEPTH {
            return Err(jerr("S0208", "The expression is nested too deeply"));
        }
        let mut left = self.prefix()?;
        while let Some(op) = self.peek_op() {
            let b = bp(&op);
            if b <= rbp {
                break;
            }
            self.i += 1;
            left = match op.as_str() {
                "." => {
                    let right = self.expr(75)?;
                    let mut steps = match left {
                        Node::Path(v) => v,
                        other => vec![other],
                    };
                    steps.push(right);
                    Node::Path(steps)
                }
                "[" => {
                    if let Some(Tok::Op(o)) = self.toks.get(self.i)
                        && o == "]"
                    {
                        self.i += 1;
                        left = Node::Path(vec![left]);
                        continue;
                    }
                    let pred = self.expr(0)?;
                    self.expect("]")?;
                    Node::Predicate(Box::new(left), Box::new(pred))
                }
                "(" => {
                    let mut args = Vec::new();
                    if self.peek_op().as_deref() != Some(")") {
                        loop {
                            args.push(self.expr(0)?);
                            if self.peek_op().as_deref() == Some(",") {
                                self.i += 1;
                            } else {
                                break;
                            }
                        }
                    }
                    self.expect(")")?;
                    Node::Call(Box::new(left), args)
                }
                "?" => {
                    let then = self.expr(0)?;
                    let els = if self.peek_op().as_deref() == Some(":") {
                        self.i += 1;
                        Some(Box::new(self.expr(0)?))
                    } else {
                        None
                    };
                    Node::Cond(Box::new(left), Box::new(then), els)
                }
                ":=" => {
                    let Node::Var(name) = left else {
                        return Err(jerr(
                            "S0212",
                            "The left side of := must be a variable name (start with $)",
                        ));
                    };
                    let right = self.expr(9)?;
                    Node::Bind(name, Box::new(right))
                }
                _ => {
                    let right = self.expr(b)?;
                    Node::Bin(op, Box::new(left), Box::new(right))
                }
            };
        }
        Ok(left)
    }

    fn prefix(&mut self) -> Result<Node, JsonataError> {
        let t = self
            .toks
            .get(self.i)
            .cloned()
            .ok_or_else(|| jerr("S0207", "Unexpected end of expression"))?;
        self.i += 1;
        Ok(match t {
            Tok::Num(n) => Node::Lit(num(n)),
            Tok::Str(s) => Node::Lit(Value::String(s)),
            Tok::Regex(p, flags) => {
                let mut pat = String::new();
                if flags.contains('i') {
                    pat.push_str("(?i)");
                }
                if flags.contains('m') {
                    pat.push_str("(?m)");
                }
                pat.push_str(&p);
                let re = regex_lite::Regex::new(&pat)
                    .map_err(|e| jerr("S0301", format!("Invalid regular expression: {e}")))?;
                Node::Regex(Arc::new(re))
            }
            Tok::Var(v) => Node::Var(v),
            Tok::Name(n) => match n.as_str() {
                "true" => Node::Lit(Value::Bool(true)),
                "false" => Node::Lit(Value::Bool(false)),
                "null" => Node::Lit(Value::Null),
                "function" => {
                    self.expect("(")?;
                    let mut params = Vec::new();
                    while let Some(Tok::Var(p)) = self.toks.get(self.i).cloned() {
                        params.push(p);
                        self.i += 1;
                        if self.peek_op().as_deref() == Some(",") {
                            self.i += 1;
                        }
                    }
                    self.expect(")")?;
                    self.expect("{")?;
                    let body = self.expr(0)?;
                    self.expect("}")?;
                    Node::Lambda(Arc::new(Lambda { params, body }))
                }
                _ => Node::Name(n),
            },
            Tok::Op(o) => match o.as_str() {
                "-" => Node::Unary(Box::new(self.expr(70)?)),
                "*" => Node::Wildcard,
                "(" => {
                    let mut items = Vec::new();
                    while self.peek_op().as_deref() != Some(")") {
                        items.push(self.expr(0)?);
                        if self.peek_op().as_deref() == Some(";") {
                            self.i += 1;
                        } else {
                            break;
                        }
                    }
                    self.expect(")")?;
                    Node::Block(items)
                }
                "[" => {
                    let mut items = Vec::new();
                    if self.peek_op().as_deref() != Some("]") {
                        loop {
                            let a = self.expr(0)?;
                            if self.peek_op().as_deref() == Some("..") {
                                self.i += 1;
                                let b = self.expr(0)?;
                                items.push(Node::Range(Box::new(a), Box::new(b)));
                            } else {
                                items.push(a);
                            }
                            if self.peek_op().as_deref() == Some(",") {
                                self.i += 1;
                            } else {
                                break;
                            }
                        }
                    }
                    self.expect("]")?;
                    Node::Array(items)
                }
                "{" => {
                    let mut pairs = Vec::new();
                    if self.peek_op().as_deref() != Some("}") {
                        loop {
                            let k = self.expr(0)?;
                            self.expect(":")?;
                            let v = self.expr(0)?;
                            pairs.push((k, v));
                            if self.peek_op().as_deref() == Some(",") {
                                self.i += 1;
                            } else {
                                break;
                            }
                        }
                    }
                    self.expect("}")?;
                    Node::Object(pairs)
                }
                other => {
                    return Err(jerr(
                        "S0211",
                        format!("The symbol {other} cannot be used as a unary operator"),
                    ));
                }
            },
        })
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

struct Evaluator<'a, 'b> {
    env: &'a Env<'b>,
    depth: std::cell::Cell<usize>,
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

impl Evaluator<'_, '_> {
    fn eval(&self, n: &Node, input: &JValue, scope: &Scope) -> Result<JValue, JsonataError> {
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
            Node::Wildcard => {
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
            Node::Name(name) => {
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
            Node::Var(name) => {
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
                if BUILTINS.contains(&name.as_str()) {
                    return Ok(JValue::Func(Func::Builtin(name.clone())));
                }
                Ok(JValue::Undefined)
            }
            Node::Path(steps) => {
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
                            JValue::Value(Value::Array(a)) if !matches!(s, Node::Array(_)) => {
                                out.extend(a)
                            }
                            JValue::Value(v) => out.push(v),
                            _ => {}
                        }
                    }
                    cur = JValue::Seq(out);
                }
                Ok(cur)
            }
            Node::Predicate(base, pred) => {
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
            Node::Array(items) => {
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
                            if b - a > 10_000_000 {
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
            Node::Object(pairs) => {
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
            Node::Range(..) => Err(jerr("S0201", "Range outside of an array constructor")),
            Node::Call(f, args) => {
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
            Node::Bin(op, l, r) if op == "~>" => {
                // `x ~> $f(a)` is `$f(x, a)`; `x ~> $f` is `$f(x)`.
                let lhs = collapse(self.eval(l, input, scope)?);
                let (fnode, args): (&Node, &[Node]) = match &**r {
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
            Node::Bin(op, l, r) => self.binary(op, l, r, input, scope),
        }
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
            Func::Builtin(name) => self.builtin(name, args, input),
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

    fn builtin(
        &self,
        name: &str,
        args: Vec<JValue>,
        input: &JValue,
    ) -> Result<JValue, JsonataError> {
        let arg = |i: usize| args.get(i).cloned().unwrap_or(JValue::Undefined);
        let val = |i: usize| match arg(i) {
            JValue::Value(v) => Some(v),
            _ => None,
        };
        let s =
            |i: usize| -> Option<String> { val(i).and_then(|v| v.as_str().map(str::to_string)) };
        let n = |i: usize| -> Option<f64> { val(i).and_then(|v| v.as_f64()) };
        let arr = |i: usize| -> Vec<Value> { to_seq(arg(i)) };
        let ok = |v: Value| Ok(JValue::Value(v));
        let undefined_first = matches!(arg(0), JValue::Undefined) && !args.is_empty();
        let arg_err = |k: usize| {
            jerr(
                "T0410",
                format!("Argument {k} of function \"{name}\" does not match function signature"),
            )
        };
        match name {
            "string" => {
                let v = if args.is_empty() {
                    input.clone()
                } else {
                    arg(0)
                };
                if matches!(v, JValue::Undefined) {
                    return Ok(JValue::Undefined);
                }
                ok(Value::String(string_of(&v)?))
            }
            "number" => {
                if undefined_first {
                    return Ok(JValue::Undefined);
                }
                match val(0) {
                    Some(Value::Number(x)) => ok(Value::Number(x)),
                    Some(Value::String(t)) => t
                        .trim()
                        .parse::<f64>()
                        .map(|f| JValue::Value(num(f)))
                        .map_err(|_| {
                            jerr(
                                "D3030",
                                format!("Unable to cast value to a number: \"{t}\""),
                            )
                        }),
                    Some(Value::Bool(b)) => ok(Value::from(b as i64)),
                    _ => Err(jerr("D3030", "Unable to cast value to a number")),
                }
            }
            "boolean" => {
                if undefined_first {
                    Ok(JValue::Undefined)
                } else {
                    ok(Value::Bool(truthy(&arg(0))))
                }
            }
            "not" => {
                if undefined_first {
                    Ok(JValue::Undefined)
                } else {
                    ok(Value::Bool(!truthy(&arg(0))))
                }
            }
            "exists" => ok(Value::Bool(!matches!(arg(0), JValue::Undefined))),
            "count" => ok(Value::from(arr(0).len())),
            "sum" => ok(num(arr(0).iter().filter_map(Value::as_f64).sum())),
            "max" | "min" => {
                let xs: Vec<f64> = arr(0).iter().filter_map(Value::as_f64).collect();
                if xs.is_empty() {
                    return Ok(JValue::Undefined);
                }
                let r = if name == "max" {
                    xs.iter().cloned().fold(f64::MIN, f64::max)
                } else {
                    xs.iter().cloned().fold(f64::MAX, f64::min)
                };
                ok(num(r))
            }
            "average" => {
                let xs: Vec<f64> = arr(0).iter().filter_map(Value::as_f64).collect();
                if xs.is_empty() {
                    return Ok(JValue::Undefined);
                }
                ok(num(xs.iter().sum::<f64>() / xs.len() as f64))
            }
            "length" => s(0)
                .map(|x| ok(Value::from(x.chars().count())))
                .unwrap_or(Ok(JValue::Undefined)),
            "uppercase" => s(0)
                .map(|x| ok(Value::String(x.to_uppercase())))
                .unwrap_or(Ok(JValue::Undefined)),
            "lowercase" => s(0)
                .map(|x| ok(Value::String(x.to_lowercase())))
                .unwrap_or(Ok(JValue::Undefined)),
            "trim" => s(0)
                .map(|x| {
                    ok(Value::String(
                        x.split_whitespace().collect::<Vec<_>>().join(" "),
                    ))
                })
                .unwrap_or(Ok(JValue::Undefined)),
            "substring" => {
                let Some(x) = s(0) else {
                    return Ok(JValue::Undefined);
                };
                let cs: Vec<char> = x.chars().collect();
                let len = cs.len() as i64;
                let mut start = n(1).unwrap_or(0.0) as i64;
                if start < 0 {
                    start = (len + start).max(0);
                }
                let start = start.min(len);
                let end = match n(2) {
                    Some(l) => (start + l.max(0.0) as i64).min(len),
                    None => len,
                };
                ok(Value::String(
                    cs[start as usize..end as usize].iter().collect(),
                ))
            }
            "substringBefore" | "substringAfter" => {
                let (Some(x), Some(c)) = (s(0), s(1)) else {
                    return Ok(JValue::Undefined);
                };
                ok(Value::String(match x.find(&c) {
                    Some(i) if name == "substringBefore" => x[..i].to_string(),
                    Some(i) => x[i + c.len()..].to_string(),
                    None => x,
                }))
            }
            "contains" => {
                let Some(x) = s(0) else {
                    return Ok(JValue::Undefined);
                };
                match arg(1) {
                    JValue::Value(Value::String(p)) => ok(Value::Bool(x.contains(&p))),
                    JValue::Func(Func::Regex(re)) => ok(Value::Bool(re.is_match(&x))),
                    _ => Err(arg_err(2)),
                }
            }
            "split" => {
                let Some(x) = s(0) else {
                    return Ok(JValue::Undefined);
                };
                let parts: Vec<Value> = match arg(1) {
                    JValue::Value(Value::String(p)) if p.is_empty() => {
                        x.chars().map(|c| Value::String(c.to_string())).collect()
                    }
                    JValue::Value(Value::String(p)) => x
                        .split(p.as_str())
                        .map(|t| Value::String(t.to_string()))
                        .collect(),
                    JValue::Func(Func::Regex(re)) => {
                        re.split(&x).map(|t| Value::String(t.to_string())).collect()
                    }
                    _ => return Err(arg_err(2)),
                };
                let limit = n(2).map(|l| l as usize).unwrap_or(usize::MAX);
                ok(Value::Array(parts.into_iter().take(limit).collect()))
            }
            "join" => {
                let sep = s(1).unwrap_or_default();
                let parts: Result<Vec<String>, _> = arr(0)
                    .iter()
                    .map(|v| v.as_str().map(str::to_string).ok_or_else(|| arg_err(1)))
                    .collect();
                ok(Value::String(parts?.join(&sep)))
            }
            "replace" => {
                let Some(x) = s(0) else {
                    return Ok(JValue::Undefined);
                };
                let rep = s(2).ok_or_else(|| arg_err(3))?;
                match arg(1) {
                    JValue::Value(Value::String(p)) if !p.is_empty() => {
                        ok(Value::String(x.replace(&p, &rep)))
                    }
                    JValue::Func(Func::Regex(re)) => ok(Value::String(
                        re.replace_all(&x, rep.replace("$", "$$").as_str())
                            .into_owned(),
                    )),
                    _ => Err(arg_err(2)),
                }
            }
            "match" => {
                let Some(x) = s(0) else {
                    return Ok(JValue::Undefined);
                };
                let JValue::Func(Func::Regex(re)) = arg(1) else {
                    return Err(arg_err(2));
                };
                let ms: Vec<Value> = re.find_iter(&x).map(|m| serde_json::json!({"match": m.as_str(), "index": m.start(), "groups": []})).collect();
                Ok(JValue::Seq(ms))
            }
            "keys" => {
                let mut ks: Vec<Value> = Vec::new();
                for v in arr(0) {
                    if let Value::Object(o) = v {
                        for k in o.keys() {
                            let k = Value::String(k.clone());
                            if !ks.contains(&k) {
                                ks.push(k);
                            }
                        }
                    }
                }
                Ok(JValue::Seq(ks))
            }
            "lookup" => {
                let k = s(1).unwrap_or_default();
                let out: Vec<Value> = arr(0).iter().filter_map(|o| o.get(&k).cloned()).collect();
                Ok(collapse(JValue::Seq(out)))
            }
            "merge" => {
                let mut m = Map::new();
                for v in arr(0) {
                    if let Value::Object(o) = v {
                        m.extend(o);
                    }
                }
                ok(Value::Object(m))
            }
            "append" => {
                if matches!(arg(1), JValue::Undefined) {
                    return Ok(arg(0));
                }
                if undefined_first {
                    return Ok(arg(1));
                }
                let mut a = arr(0);
                a.extend(arr(1));
                ok(Value::Array(a))
            }
            "reverse" => {
                let mut a = arr(0);
                a.reverse();
                ok(Value::Array(a))
            }
            "distinct" => {
                let mut out: Vec<Value> = Vec::new();
                for v in arr(0) {
                    if !out.iter().any(|o| crate::intrinsics::json_eq(o, &v)) {
                        out.push(v);
                    }
                }
                ok(Value::Array(out))
            }
            "sort" => {
                let mut a = arr(0);
                if let JValue::Func(f) = arg(1) {
                    // Insertion sort with the user's "greater than" function.
                    let mut out: Vec<Value> = Vec::new();
                    for v in a {
                        let mut pos = out.len();
                        for (i, o) in out.iter().enumerate() {
                            if truthy(&self.apply(
                                &f,
                                vec![JValue::Value(o.clone()), JValue::Value(v.clone())],
                                input,
                            )?) {
                                pos = i;
                                break;
                            }
                        }
                        out.insert(pos, v);
                    }
                    return ok(Value::Array(out));
                }
                a.sort_by(|x, y| match (x, y) {
                    (Value::Number(p), Value::Number(q)) => p
                        .as_f64()
                        .partial_cmp(&q.as_f64())
                        .unwrap_or(std::cmp::Ordering::Equal),
                    (Value::String(p), Value::String(q)) => p.cmp(q),
                    _ => std::cmp::Ordering::Equal,
                });
                ok(Value::Array(a))
            }
            "abs" | "floor" | "ceil" | "sqrt" => {
                let Some(x) = n(0) else {
                    return Ok(JValue::Undefined);
                };
                ok(num(match name {
                    "abs" => x.abs(),
                    "floor" => x.floor(),
                    "ceil" => x.ceil(),
                    _ => x.sqrt(),
                }))
            }
            "round" => {
                let Some(x) = n(0) else {
                    return Ok(JValue::Undefined);
                };
                let p = 10f64.powi(n(1).unwrap_or(0.0) as i32);
                let v = x * p;
                // Round half to even, as jsonata does.
                let r = if (v - v.trunc()).abs() == 0.5 {
                    2.0 * (v / 2.0).round()
                } else {
                    v.round()
                };
                ok(num(r / p))
            }
            "power" => match (n(0), n(1)) {
                (Some(a), Some(b)) => ok(num(a.powf(b))),
                _ => Ok(JValue::Undefined),
            },
            "map" | "filter" => {
                let JValue::Func(f) = arg(1) else {
                    return Err(arg_err(2));
                };
                let items = arr(0);
                let mut out = Vec::new();
                for (i, v) in items.iter().enumerate() {
                    let r = self.apply(
                        &f,
                        vec![
                            JValue::Value(v.clone()),
                            JValue::Value(Value::from(i)),
                            JValue::Value(Value::Array(items.clone())),
                        ],
                        input,
                    )?;
                    if name == "map" {
                        if let JValue::Value(x) = collapse(r) {
                            out.push(x);
                        }
                    } else if truthy(&r) {
                        out.push(v.clone());
                    }
                }
                Ok(JValue::Seq(out))
            }
            "reduce" => {
                let JValue::Func(f) = arg(1) else {
                    return Err(arg_err(2));
                };
                let mut items = arr(0).into_iter();
                let mut acc = match arg(2) {
                    JValue::Undefined => {
                        items.next().map(JValue::Value).unwrap_or(JValue::Undefined)
                    }
                    a => a,
                };
                for v in items {
                    acc = collapse(self.apply(&f, vec![acc, JValue::Value(v)], input)?);
                }
                Ok(acc)
            }
            "each" => {
                let JValue::Func(f) = arg(1) else {
                    return Err(arg_err(2));
                };
                let mut out = Vec::new();
                if let Some(Value::Object(o)) = val(0) {
                    for (k, v) in o {
                        if let JValue::Value(x) = collapse(self.apply(
                            &f,
                            vec![JValue::Value(v), JValue::Value(Value::String(k))],
                            input,
                        )?) {
                            out.push(x);
                        }
                    }
                }
                Ok(JValue::Seq(out))
            }
            "type" => Ok(match arg(0) {
                JValue::Undefined => JValue::Undefined,
                JValue::Func(_) => JValue::Value(Value::String("function".into())),
                JValue::Value(v) => {
                    JValue::Value(Value::String(crate::values::type_name(&v).into()))
                }
                JValue::Seq(_) => JValue::Value(Value::String("array".into())),
            }),
            "millis" => ok(Value::from(self.env.now_millis)),
            "now" => ok(Value::String(crate::values::iso_millis(
                self.env.now_millis,
            ))),
            "toMillis" => s(0)
                .map(|x| {
                    crate::values::parse_iso(&x)
                        .map(|m| JValue::Value(Value::from(m)))
                        .ok_or_else(|| {
                            jerr("D3110", format!("The timestamp '{x}' cannot be parsed"))
                        })
                })
                .unwrap_or(Ok(JValue::Undefined)),
            "fromMillis" => n(0)
                .map(|m| ok(Value::String(crate::values::iso_millis(m as i64))))
                .unwrap_or(Ok(JValue::Undefined)),
            "error" => Err(jerr(
                "D3137",
                s(0).unwrap_or_else(|| "$error() function evaluated".into()),
            )),
            "assert" => {
                if truthy(&arg(0)) {
                    Ok(JValue::Undefined)
                } else {
                    Err(jerr(
                        "D3141",
                        s(1).unwrap_or_else(|| "$assert() statement failed".into()),
                    ))
                }
            }
            // AWS additions.
            "uuid" => ok(Value::String(crate::intrinsics::uuid_v4(
                self.env.random.next_u64(),
                self.env.random.next_u64(),
            ))),
            "random" => {
                if let Some(seed) = n(0) {
                    use crate::clock::Random as _;
                    let r = crate::clock::SeededRandom::new(seed as i64 as u64).next_f64();
                    return ok(num(r));
                }
                ok(num(self.env.random.next_f64()))
            }
            "partition" => {
                let a = arr(0);
                let size = n(1)
                    .filter(|k| *k >= 1.0 && k.fract() == 0.0)
                    .ok_or_else(|| arg_err(2))? as usize;
                ok(Value::Array(
                    a.chunks(size).map(|c| Value::Array(c.to_vec())).collect(),
                ))
            }
            "range" => {
                let (Some(a), Some(b), Some(st)) = (n(0), n(1), n(2)) else {
                    return Err(arg_err(1));
                };
                if st == 0.0 {
                    return Err(arg_err(3));
                }
                let mut out = Vec::new();
                let mut i = a;
                while (st > 0.0 && i <= b) || (st < 0.0 && i >= b) {
                    out.push(num(i));
                    if out.len() > 1000 {
                        return Err(jerr("D3000", "The range exceeds 1000 items"));
                    }
                    i += st;
                }
                Ok(JValue::Seq(out))
            }
            "hash" => {
                let (Some(d), Some(alg)) = (s(0), s(1)) else {
                    return Err(arg_err(1));
                };
                crate::intrinsics::hash(&alg, d.as_bytes())
                    .map(JValue::Value)
                    .ok_or_else(|| arg_err(2))
            }
            "base64encode" => s(0)
                .map(|x| {
                    use base64::Engine as _;
                    ok(Value::String(
                        base64::engine::general_purpose::STANDARD.encode(x.as_bytes()),
                    ))
                })
                .unwrap_or(Ok(JValue::Undefined)),
            "base64decode" => {
                let Some(x) = s(0) else {
                    return Ok(JValue::Undefined);
                };
                use base64::Engine as _;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(x.as_bytes())
                    .map_err(|e| jerr("D3137", format!("Invalid base64 input: {e}")))?;
                ok(Value::String(String::from_utf8_lossy(&bytes).into_owned()))
            }
            "pad" => {
                let Some(x) = s(0) else {
                    return Ok(JValue::Undefined);
                };
                let width = n(1).unwrap_or(0.0) as i64;
                let fill: Vec<char> = s(2).unwrap_or_else(|| " ".into()).chars().collect();
                let len = x.chars().count() as i64;
                if width.abs() <= len || fill.is_empty() {
                    return ok(Value::String(x));
                }
                let padding: String = (0..(width.abs() - len) as usize)
                    .map(|i| fill[i % fill.len()])
                    .collect();
                ok(Value::String(if width > 0 {
                    format!("{x}{padding}")
                } else {
                    format!("{padding}{x}")
                }))
            }
            "parse" => {
                let Some(x) = s(0) else {
                    return Ok(JValue::Undefined);
                };
                serde_json::from_str::<Value>(&x)
                    .map(|v| {
                        // JSON.parse("-0") is the number 0 once serialized.
                        JValue::Value(if v.as_f64() == Some(0.0) {
                            Value::from(0)
                        } else {
                            v
                        })
                    })
                    .map_err(|e| jerr("D3000", format!("Unable to parse JSON: {e}")))
            }
            _ => Err(jerr("T1006", "Attempted to invoke a non-function")),
        }
    }
}

const BUILTINS: &[&str] = &[
    "base64encode",
    "base64decode",
    "pad",
    "string",
    "number",
    "boolean",
    "not",
    "exists",
    "count",
    "sum",
    "max",
    "min",
    "average",
    "length",
    "uppercase",
    "lowercase",
    "trim",
    "substring",
    "substringBefore",
    "substringAfter",
    "contains",
    "split",
    "join",
    "replace",
    "match",
    "keys",
    "lookup",
    "merge",
    "append",
    "reverse",
    "distinct",
    "sort",
    "abs",
    "floor",
    "ceil",
    "sqrt",
    "round",
    "power",
    "map",
    "filter",
    "reduce",
    "each",
    "type",
    "millis",
    "now",
    "toMillis",
    "fromMillis",
    "error",
    "assert",
    "uuid",
    "random",
    "partition",
    "range",
    "hash",
    "parse",
];

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
