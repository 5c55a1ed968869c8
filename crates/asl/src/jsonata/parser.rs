//! Pratt parser from tokens to the syntax tree.

use super::lexer::{Tok, lex};
use super::{JsonataError, jerr, num};
use serde_json::Value;
use std::sync::Arc;

/// Parses a whole expression; tokens left over are a syntax error.
pub(super) fn parse(src: &str) -> Result<Node, JsonataError> {
    let mut p = Parser {
        toks: lex(src)?,
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
    Ok(node)
}

#[derive(Debug, Clone)]
pub(super) enum Node {
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
pub(super) struct Lambda {
    pub(super) params: Vec<String>,
    pub(super) body: Node,
}

// Regexes compare by source only; the AST never needs structural equality otherwise.
impl PartialEq for Node {
    fn eq(&self, _: &Self) -> bool {
        false
    }
}

struct Parser {
    toks: Vec<Tok>,
    i: usize,
    depth: usize,
}

/// Nesting limit that keeps hostile expressions from exhausting the stack.
const MAX_PARSE_DEPTH: usize = 60;

/// How tightly an infix operator binds (0: not an infix operator).
fn binding_power(op: &str) -> u8 {
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
    /// Consumes `op` when it comes next.
    fn eat(&mut self, op: &str) -> bool {
        let next = self.peek_op().as_deref() == Some(op);
        if next {
            self.i += 1;
        }
        next
    }

    /// Items up to `close`, separated by commas: call arguments, array and object
    /// constructors.
    fn comma_list<T>(
        &mut self,
        close: &str,
        mut item: impl FnMut(&mut Self) -> Result<T, JsonataError>,
    ) -> Result<Vec<T>, JsonataError> {
        let mut items = Vec::new();
        if self.peek_op().as_deref() != Some(close) {
            loop {
                items.push(item(self)?);
                if !self.eat(",") {
                    break;
                }
            }
        }
        self.expect(close)?;
        Ok(items)
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
            let b = binding_power(&op);
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
                    let args = self.comma_list(")", |p| p.expr(0))?;
                    Node::Call(Box::new(left), args)
                }
                "?" => {
                    let then = self.expr(0)?;
                    let els = if self.eat(":") {
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
            Tok::ValueSource(n) => Node::Lit(num(n)),
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
                        self.eat(",");
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
                    // Unlike commas, a trailing `;` is allowed.
                    while self.peek_op().as_deref() != Some(")") {
                        items.push(self.expr(0)?);
                        if !self.eat(";") {
                            break;
                        }
                    }
                    self.expect(")")?;
                    Node::Block(items)
                }
                "[" => {
                    let items = self.comma_list("]", |p| {
                        let a = p.expr(0)?;
                        Ok(if p.eat("..") {
                            Node::Range(Box::new(a), Box::new(p.expr(0)?))
                        } else {
                            a
                        })
                    })?;
                    Node::Array(items)
                }
                "{" => {
                    let pairs = self.comma_list("}", |p| {
                        let k = p.expr(0)?;
                        p.expect(":")?;
                        Ok((k, p.expr(0)?))
                    })?;
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
