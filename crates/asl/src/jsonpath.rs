//! JSONPath as Step Functions evaluates it (the Jayway dialect): definite paths select one
//! value or fail, indefinite paths (wildcards, slices, filters, deep scans) select a list that
//! may be empty. Reference paths (`ResultPath`) can also write into a document.

use serde_json::{Map, Value};
use std::fmt;

/// A parsed JSONPath. `$` addresses the state input, `$$` the context object.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    src: String,
    context: bool,
    segs: Vec<Seg>,
}

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index(i64),
    Wildcard,
    Slice(Option<i64>, Option<i64>, Option<i64>),
    Union(Vec<Sel>),
    Filter(Filter),
    /// `..x`: every descendant (including the node) then the inner selector.
    Descend(Box<Seg>),
    Length,
}

#[derive(Debug, Clone, PartialEq)]
enum Sel {
    Key(String),
    Index(i64),
}

#[derive(Debug, Clone, PartialEq)]
enum Filter {
    Or(Box<Filter>, Box<Filter>),
    And(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Cmp(Operand, CmpOp, Operand),
    Exists(Operand),
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Current(Vec<Seg>),
    Root(Vec<Seg>),
    Lit(Value),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A path that could not be parsed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid JSONPath '{path}': {reason}")]
pub struct PathSyntaxError {
    pub path: String,
    pub reason: String,
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.src)
    }
}

impl JsonPath {
    /// Parses `$...` or `$$...`.
    pub fn parse(src: &str) -> Result<JsonPath, PathSyntaxError> {
        let err = |reason: &str| PathSyntaxError {
            path: src.to_string(),
            reason: reason.to_string(),
        };
        let mut p = Parser {
            s: src.as_bytes(),
            i: 0,
            src,
            depth: 0,
        };
        let trimmed = src.trim();
        if !trimmed.starts_with('$') {
            return Err(err("must start with '$'"));
        }
        p.skip_ws();
        p.i += 1;
        let context = p.peek() == Some(b'$');
        if context {
            p.i += 1;
        }
        let segs = p.segments(false).map_err(|r| err(&r))?;
        p.skip_ws();
        if p.i != p.s.len() {
            return Err(err(&format!("unexpected character at position {}", p.i)));
        }
        Ok(JsonPath {
            src: src.to_string(),
            context,
            segs,
        })
    }

    /// The text it was parsed from.
    pub fn as_str(&self) -> &str {
        &self.src
    }

    /// Whether the path starts with `$$` (the context object).
    pub fn is_context(&self) -> bool {
        self.context
    }

    /// True when the path selects at most one value (no wildcard, slice, filter or scan).
    pub fn is_definite(&self) -> bool {
        self.segs.iter().all(|s| {
            matches!(s, Seg::Key(_) | Seg::Index(_) | Seg::Length)
                || matches!(s, Seg::Union(v) if v.len() == 1)
        })
    }

    /// True when the path is a reference path: only keys and indexes.
    pub fn is_reference(&self) -> bool {
        self.segs
            .iter()
            .all(|s| matches!(s, Seg::Key(_) | Seg::Index(_)))
            || self
                .segs
                .iter()
                .all(|s| matches!(s, Seg::Key(_) | Seg::Index(_) | Seg::Union(_)))
                && self
                    .segs
                    .iter()
                    .all(|s| !matches!(s, Seg::Union(v) if v.len() != 1))
    }

    /// Jayway's rendering of the path, used in AWS messages: `$['a']['b'][0]`.
    pub fn canonical(&self) -> String {
        let mut out = String::from(if self.context { "$$" } else { "$" });
        for s in &self.segs {
            render_seg(s, &mut out);
        }
        out
    }

    /// Evaluates against `root`. A definite path gives `Some(value)` or `None` when missing; an
    /// indefinite path always gives `Some(array)`.
    pub fn select(&self, root: &Value) -> Option<Value> {
        if self.is_definite() {
            select_definite(&self.segs, root, root)
        } else {
            let mut out = Vec::new();
            collect(&self.segs, root, root, &mut out);
            Some(Value::Array(out))
        }
    }

    /// Writes `value` at this (reference) path inside `doc`, creating objects on the way.
    /// Returns `Err` with a reason when the path cannot be written (e.g. through a scalar).
    pub fn write(&self, doc: Value, value: Value) -> Result<Value, String> {
        if self.segs.is_empty() {
            return Ok(value);
        }
        let mut doc = doc;
        write_at(&mut doc, &self.segs, value)?;
        Ok(doc)
    }
}

fn render_seg(s: &Seg, out: &mut String) {
    match s {
        Seg::Key(k) => {
            out.push_str("['");
            out.push_str(k);
            out.push_str("']");
        }
        Seg::Index(i) => out.push_str(&format!("[{i}]")),
        Seg::Wildcard => out.push_str("[*]"),
        Seg::Slice(a, b, _) => {
            out.push('[');
            if let Some(a) = a {
                out.push_str(&a.to_string());
            }
            out.push(':');
            if let Some(b) = b {
                out.push_str(&b.to_string());
            }
            out.push(']');
        }
        Seg::Union(v) => {
            out.push('[');
            for (n, sel) in v.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                match sel {
                    Sel::Key(k) => out.push_str(&format!("'{k}'")),
                    Sel::Index(i) => out.push_str(&i.to_string()),
                }
            }
            out.push(']');
        }
        Seg::Filter(_) => out.push_str("[?]"),
        Seg::Descend(inner) => {
            out.push_str("..");
            render_seg(inner, out);
        }
        Seg::Length => out.push_str(".length()"),
    }
}

fn write_at(doc: &mut Value, segs: &[Seg], value: Value) -> Result<(), String> {
    let (first, rest) = match segs.split_first() {
        Some(x) => x,
        None => {
            *doc = value;
            return Ok(());
        }
    };
    let key = match first {
        Seg::Key(k) => Sel::Key(k.clone()),
        Seg::Index(i) => Sel::Index(*i),
        Seg::Union(v) if v.len() == 1 => v[0].clone(),
        _ => return Err("not a reference path".into()),
    };
    match key {
        Sel::Key(k) => {
            if !doc.is_object() {
                // AWS replaces a non-object on the way with a fresh object.
                *doc = Value::Object(Map::new());
            }
            let obj = doc.as_object_mut().ok_or("not an object")?;
            let slot = obj.entry(k).or_insert(Value::Null);
            if rest.is_empty() {
                *slot = value;
                Ok(())
            } else {
                write_at(slot, rest, value)
            }
        }
        Sel::Index(i) => {
            let arr = doc.as_array_mut().ok_or("not an array")?;
            let len = arr.len() as i64;
            let idx = if i < 0 { len + i } else { i };
            if idx < 0 || idx >= len {
                return Err("index out of bounds".into());
            }
            write_at(&mut arr[idx as usize], rest, value)
        }
    }
}

fn select_definite(segs: &[Seg], node: &Value, root: &Value) -> Option<Value> {
    let mut cur = node;
    for (n, s) in segs.iter().enumerate() {
        match s {
            Seg::Key(k) => cur = member(cur, k)?,
            Seg::Index(i) => cur = element(cur, *i)?,
            Seg::Union(v) if v.len() == 1 => cur = v[0].pick(cur)?,
            Seg::Length => {
                return match cur {
                    Value::Array(a) if n + 1 == segs.len() => Some(Value::from(a.len())),
                    Value::Object(o) if n + 1 == segs.len() => Some(Value::from(o.len())),
                    Value::String(s) if n + 1 == segs.len() => Some(Value::from(s.chars().count())),
                    _ => None,
                };
            }
            _ => {
                let mut out = Vec::new();
                collect(&segs[n..], cur, root, &mut out);
                return Some(Value::Array(out));
            }
        }
    }
    Some(cur.clone())
}

/// `node.k`, when `node` is an object that has it.
fn member<'v>(node: &'v Value, k: &str) -> Option<&'v Value> {
    node.as_object()?.get(k)
}

/// `node[i]` (negative from the end), when `node` is an array that long.
fn element(node: &Value, i: i64) -> Option<&Value> {
    index(node.as_array()?, i)
}

impl Sel {
    /// The member or element this selector names in `node`.
    fn pick<'v>(&self, node: &'v Value) -> Option<&'v Value> {
        match self {
            Sel::Key(k) => member(node, k),
            Sel::Index(i) => element(node, *i),
        }
    }
}

fn index(a: &[Value], i: i64) -> Option<&Value> {
    let idx = if i < 0 { a.len() as i64 + i } else { i };
    if idx < 0 { None } else { a.get(idx as usize) }
}

fn collect(segs: &[Seg], node: &Value, root: &Value, out: &mut Vec<Value>) {
    let (first, rest) = match segs.split_first() {
        Some(x) => x,
        None => {
            out.push(node.clone());
            return;
        }
    };
    let mut step = |v: &Value| collect(rest, v, root, out);
    apply_seg(first, node, root, &mut step);
}

fn apply_seg(seg: &Seg, node: &Value, root: &Value, f: &mut dyn FnMut(&Value)) {
    match seg {
        Seg::Key(k) => member(node, k).into_iter().for_each(f),
        Seg::Index(i) => element(node, *i).into_iter().for_each(f),
        Seg::Wildcard => match node {
            Value::Array(a) => a.iter().for_each(f),
            Value::Object(o) => o.values().for_each(f),
            _ => {}
        },
        Seg::Slice(a, b, step) => {
            if let Value::Array(arr) = node {
                let len = arr.len() as i64;
                let norm = |x: i64| if x < 0 { (len + x).max(0) } else { x.min(len) };
                let start = a.map(norm).unwrap_or(0);
                let end = b.map(norm).unwrap_or(len);
                let step = step.unwrap_or(1).max(1);
                let mut i = start;
                while i < end {
                    f(&arr[i as usize]);
                    match i.checked_add(step) {
                        Some(next) => i = next,
                        None => break,
                    }
                }
            }
        }
        Seg::Union(sels) => sels.iter().filter_map(|s| s.pick(node)).for_each(f),
        Seg::Filter(flt) => {
            let items: Vec<&Value> = match node {
                Value::Array(a) => a.iter().collect(),
                Value::Object(o) => o.values().collect(),
                _ => vec![],
            };
            for it in items {
                if filter_matches(flt, it, root) {
                    f(it)
                }
            }
        }
        Seg::Descend(inner) => {
            fn walk(v: &Value, inner: &Seg, root: &Value, f: &mut dyn FnMut(&Value)) {
                apply_seg(inner, v, root, f);
                match v {
                    Value::Array(a) => a.iter().for_each(|x| walk(x, inner, root, f)),
                    Value::Object(o) => o.values().for_each(|x| walk(x, inner, root, f)),
                    _ => {}
                }
            }
            walk(node, inner, root, f)
        }
        Seg::Length => match node {
            Value::Array(a) => f(&Value::from(a.len())),
            Value::Object(o) => f(&Value::from(o.len())),
            Value::String(s) => f(&Value::from(s.chars().count())),
            _ => {}
        },
    }
}

fn operand_value(op: &Operand, cur: &Value, root: &Value) -> Option<Value> {
    match op {
        Operand::Lit(v) => Some(v.clone()),
        Operand::Current(segs) => select_definite(segs, cur, root),
        Operand::Root(segs) => select_definite(segs, root, root),
    }
}

fn filter_matches(f: &Filter, cur: &Value, root: &Value) -> bool {
    match f {
        Filter::Or(a, b) => filter_matches(a, cur, root) || filter_matches(b, cur, root),
        Filter::And(a, b) => filter_matches(a, cur, root) && filter_matches(b, cur, root),
        Filter::Not(a) => !filter_matches(a, cur, root),
        Filter::Exists(op) => operand_value(op, cur, root).is_some(),
        Filter::Cmp(l, op, r) => {
            let (Some(l), Some(r)) = (operand_value(l, cur, root), operand_value(r, cur, root))
            else {
                return false;
            };
            compare(&l, *op, &r)
        }
    }
}

fn compare(l: &Value, op: CmpOp, r: &Value) -> bool {
    use std::cmp::Ordering;
    let ord = match (l, r) {
        (Value::Number(a), Value::Number(b)) => a
            .as_f64()
            .unwrap_or(0.0)
            .partial_cmp(&b.as_f64().unwrap_or(0.0)),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        _ => {
            if l == r {
                Some(Ordering::Equal)
            } else {
                None
            }
        }
    };
    match op {
        CmpOp::Eq => ord == Some(Ordering::Equal),
        CmpOp::Ne => ord != Some(Ordering::Equal),
        CmpOp::Lt => ord == Some(Ordering::Less),
        CmpOp::Le => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
        CmpOp::Gt => ord == Some(Ordering::Greater),
        CmpOp::Ge => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    src: &'a str,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// Parses segments until the end, or (inside a filter) until an operator or `)`.
    fn segments(&mut self, in_filter: bool) -> Result<Vec<Seg>, String> {
        let mut segs = Vec::new();
        loop {
            match self.peek() {
                Some(b'.') => {
                    self.i += 1;
                    if self.eat(b'.') {
                        let inner = if self.peek() == Some(b'[') {
                            self.bracket()?
                        } else if self.eat(b'*') {
                            Seg::Wildcard
                        } else {
                            Seg::Key(self.name()?)
                        };
                        segs.push(Seg::Descend(Box::new(inner)));
                    } else if self.eat(b'*') {
                        segs.push(Seg::Wildcard);
                    } else if self.peek() == Some(b'[') {
                        segs.push(self.bracket()?);
                    } else {
                        let name = self.name()?;
                        if name == "length" && self.s[self.i..].starts_with(b"()") {
                            self.i += 2;
                            segs.push(Seg::Length);
                        } else {
                            segs.push(Seg::Key(name));
                        }
                    }
                }
                Some(b'[') => segs.push(self.bracket()?),
                _ => {
                    let _ = in_filter;
                    return Ok(segs);
                }
            }
        }
    }

    fn name(&mut self) -> Result<String, String> {
        let start = self.i;
        while let Some(c) = self.peek() {
            if matches!(
                c,
                b'.' | b'[' | b']' | b' ' | b'=' | b'!' | b'<' | b'>' | b'&' | b'|' | b')' | b'('
            ) {
                break;
            }
            self.i += 1;
        }
        if start == self.i {
            return Err(format!("expected a field name at position {start}"));
        }
        Ok(self.src[start..self.i].to_string())
    }

    fn quoted(&mut self) -> Result<String, String> {
        let q = self.peek().ok_or("unexpected end")?;
        self.i += 1;
        let mut out = String::new();
        let start = self.i;
        loop {
            match self.peek() {
                None => return Err(format!("unterminated string at position {start}")),
                Some(b'\\') if matches!(self.s.get(self.i + 1), Some(&c) if c == q || c == b'\\') =>
                {
                    self.i += 1;
                    out.push(self.s[self.i] as char);
                    self.i += 1;
                }
                Some(c) if c == q => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(_) => {
                    let rest = &self.src[self.i..];
                    let ch = rest.chars().next().ok_or("bad char")?;
                    out.push(ch);
                    self.i += ch.len_utf8();
                }
            }
        }
    }

    fn int(&mut self) -> Result<Option<i64>, String> {
        self.skip_ws();
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        if start == self.i {
            return Ok(None);
        }
        self.src[start..self.i]
            .parse::<i64>()
            .map(Some)
            .map_err(|_| format!("bad number at position {start}"))
    }

    fn bracket(&mut self) -> Result<Seg, String> {
        self.i += 1; // '['
        self.skip_ws();
        let seg = match self.peek() {
            Some(b'*') => {
                self.i += 1;
                Seg::Wildcard
            }
            Some(b'?') => {
                self.i += 1;
                self.skip_ws();
                if !self.eat(b'(') {
                    return Err("expected '(' after '?'".into());
                }
                let f = self.filter_or()?;
                self.skip_ws();
                if !self.eat(b')') {
                    return Err("expected ')' to close the filter".into());
                }
                Seg::Filter(f)
            }
            Some(b'\'' | b'"') => {
                let mut sels = vec![Sel::Key(self.quoted()?)];
                self.skip_ws();
                while self.eat(b',') {
                    self.skip_ws();
                    sels.push(Sel::Key(self.quoted()?));
                    self.skip_ws();
                }
                if sels.len() == 1 {
                    match sels.pop() {
                        Some(Sel::Key(k)) => Seg::Key(k),
                        _ => return Err("internal".into()),
                    }
                } else {
                    Seg::Union(sels)
                }
            }
            _ => {
                let a = self.int()?;
                self.skip_ws();
                if self.eat(b':') {
                    let b = self.int()?;
                    self.skip_ws();
                    let c = if self.eat(b':') { self.int()? } else { None };
                    Seg::Slice(a, b, c)
                } else if self.peek() == Some(b',') {
                    let mut sels = vec![Sel::Index(a.ok_or("expected an index")?)];
                    while self.eat(b',') {
                        sels.push(Sel::Index(self.int()?.ok_or("expected an index")?));
                        self.skip_ws();
                    }
                    Seg::Union(sels)
                } else {
                    Seg::Index(a.ok_or_else(|| format!("bad subscript at position {}", self.i))?)
                }
            }
        };
        self.skip_ws();
        if !self.eat(b']') {
            return Err(format!("expected ']' at position {}", self.i));
        }
        Ok(seg)
    }

    fn filter_or(&mut self) -> Result<Filter, String> {
        self.filter_chain(b"||", Self::filter_and, Filter::Or)
    }

    fn filter_and(&mut self) -> Result<Filter, String> {
        self.filter_chain(b"&&", Self::filter_atom, Filter::And)
    }

    /// Operands from `operand` joined left to right by the operator `op`.
    fn filter_chain(
        &mut self,
        op: &[u8],
        operand: fn(&mut Self) -> Result<Filter, String>,
        join: fn(Box<Filter>, Box<Filter>) -> Filter,
    ) -> Result<Filter, String> {
        let mut l = operand(self)?;
        loop {
            self.skip_ws();
            if self.s[self.i..].starts_with(op) {
                self.i += op.len();
                let r = operand(self)?;
                l = join(Box::new(l), Box::new(r));
            } else {
                return Ok(l);
            }
        }
    }

    fn filter_atom(&mut self) -> Result<Filter, String> {
        self.depth += 1;
        if self.depth > 100 {
            return Err("the filter is nested too deeply".into());
        }
        let r = self.filter_atom_inner();
        self.depth -= 1;
        r
    }

    fn filter_atom_inner(&mut self) -> Result<Filter, String> {
        self.skip_ws();
        if self.eat(b'!') {
            return Ok(Filter::Not(Box::new(self.filter_atom()?)));
        }
        if self.eat(b'(') {
            let f = self.filter_or()?;
            self.skip_ws();
            if !self.eat(b')') {
                return Err("expected ')'".into());
            }
            return Ok(f);
        }
        let l = self.operand()?;
        self.skip_ws();
        let rest = &self.s[self.i..];
        let op = if rest.starts_with(b"==") {
            Some((CmpOp::Eq, 2))
        } else if rest.starts_with(b"!=") {
            Some((CmpOp::Ne, 2))
        } else if rest.starts_with(b"<=") {
            Some((CmpOp::Le, 2))
        } else if rest.starts_with(b">=") {
            Some((CmpOp::Ge, 2))
        } else if rest.starts_with(b"<") {
            Some((CmpOp::Lt, 1))
        } else if rest.starts_with(b">") {
            Some((CmpOp::Gt, 1))
        } else {
            None
        };
        match op {
            Some((op, n)) => {
                self.i += n;
                let r = self.operand()?;
                Ok(Filter::Cmp(l, op, r))
            }
            None => Ok(Filter::Exists(l)),
        }
    }

    fn operand(&mut self) -> Result<Operand, String> {
        self.skip_ws();
        match self.peek() {
            Some(b'@') => {
                self.i += 1;
                Ok(Operand::Current(self.segments(true)?))
            }
            Some(b'$') => {
                self.i += 1;
                Ok(Operand::Root(self.segments(true)?))
            }
            Some(b'\'' | b'"') => Ok(Operand::Lit(Value::String(self.quoted()?))),
            _ => {
                let start = self.i;
                while let Some(c) = self.peek() {
                    if matches!(c, b' ' | b')' | b'&' | b'|' | b'=' | b'!' | b'<' | b'>') {
                        break;
                    }
                    self.i += 1;
                }
                let tok = &self.src[start..self.i];
                serde_json::from_str::<Value>(tok)
                    .map(Operand::Lit)
                    .map_err(|_| format!("bad literal '{tok}' in filter"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sel(p: &str, v: Value) -> Option<Value> {
        JsonPath::parse(p).unwrap().select(&v)
    }

    #[test]
    fn definite_and_indefinite() {
        let doc = json!({"a": {"b": [1, 2, 3]}, "c d": 1});
        assert_eq!(sel("$.a.b[1]", doc.clone()), Some(json!(2)));
        assert_eq!(sel("$.a.b[-1]", doc.clone()), Some(json!(3)));
        assert_eq!(sel("$['c d']", doc.clone()), Some(json!(1)));
        assert_eq!(sel("$.a.x", doc.clone()), None);
        assert_eq!(sel("$.a.b[*]", doc.clone()), Some(json!([1, 2, 3])));
        assert_eq!(sel("$.a.b[1:]", doc.clone()), Some(json!([2, 3])));
        assert_eq!(sel("$.nope[*]", doc.clone()), Some(json!([])));
        assert_eq!(sel("$..b", doc.clone()), Some(json!([[1, 2, 3]])));
        assert_eq!(sel("$.a.b.length()", doc), Some(json!(3)));
    }

    #[test]
    fn filters() {
        let doc = json!({"u": [{"s": 0, "n": "a"}, {"s": 1, "n": "b"}]});
        assert_eq!(
            sel("$.u[?(@.s == 0)]", doc.clone()),
            Some(json!([{"s": 0, "n": "a"}]))
        );
        assert_eq!(sel("$.u[?(@.s > 0)].n", doc.clone()), Some(json!(["b"])));
        assert_eq!(
            sel("$.u[?(@.n == 'a' || @.s == 1)].s", doc),
            Some(json!([0, 1]))
        );
    }

    #[test]
    fn write_creates_objects() {
        let p = JsonPath::parse("$.a.b").unwrap();
        assert_eq!(
            p.write(json!({"x": 1}), json!(2)).unwrap(),
            json!({"x": 1, "a": {"b": 2}})
        );
        assert_eq!(p.canonical(), "$['a']['b']");
    }

    #[test]
    fn bad_paths_are_errors() {
        assert!(JsonPath::parse("a.b").is_err());
        assert!(JsonPath::parse("$.a[").is_err());
        assert!(JsonPath::parse("$.a[?(@.x == )]").is_err());
        let deep = format!("$[?({}@.a{})]", "(".repeat(10_000), ")".repeat(10_000));
        assert!(JsonPath::parse(&deep).is_err());
    }
}
