//! The function library: jsonata-js's common functions and AWS's additions.

use super::eval::Evaluator;
use super::{Func, JValue, JsonataError, collapse, jerr, num, string_of, to_seq, truthy};
use serde_json::{Map, Value};

impl Evaluator<'_, '_> {
    pub(super) fn builtin(
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

pub(super) const BUILTINS: &[&str] = &[
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
