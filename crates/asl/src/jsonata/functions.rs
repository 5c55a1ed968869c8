//! The function library: jsonata-js's common functions and AWS's additions, grouped by
//! family and dispatched through [`LIBRARY`].

use super::{Caller, Func, JValue, JsonataError, collapse, jerr, num, string_of, to_seq, truthy};
use serde_json::{Map, Value};

/// Runs the functions of one family; `Call::name` says which.
type Family = fn(&dyn Caller, &Call<'_>) -> Result<JValue, JsonataError>;

/// Every built-in function by name, with the family that runs it.
const LIBRARY: &[(&[&str], Family)] = &[
    (
        &["string", "number", "boolean", "not", "exists", "type"],
        conversions,
    ),
    (
        &[
            "length",
            "uppercase",
            "lowercase",
            "trim",
            "substring",
            "substringBefore",
            "substringAfter",
            "pad",
        ],
        strings,
    ),
    (&["contains", "split", "join", "replace", "match"], patterns),
    (
        &[
            "count", "sum", "max", "min", "average", "abs", "floor", "ceil", "sqrt", "round",
            "power",
        ],
        numeric,
    ),
    (
        &["keys", "lookup", "merge", "append", "reverse", "distinct"],
        collections,
    ),
    (&["sort", "map", "filter", "reduce", "each"], higher_order),
    (
        &["millis", "now", "toMillis", "fromMillis", "error", "assert"],
        time_and_errors,
    ),
    (
        &[
            "uuid",
            "random",
            "partition",
            "range",
            "hash",
            "base64encode",
            "base64decode",
            "parse",
        ],
        aws,
    ),
];

/// Whether `$name` is a built-in function.
pub(super) fn is_builtin(name: &str) -> bool {
    LIBRARY.iter().any(|(names, _)| names.contains(&name))
}

/// Calls the built-in function `name`; `input` is the context for `$string()`.
pub(super) fn call_builtin(
    ev: &dyn Caller,
    name: &str,
    args: Vec<JValue>,
    input: &JValue,
) -> Result<JValue, JsonataError> {
    let Some((_, family)) = LIBRARY.iter().find(|(names, _)| names.contains(&name)) else {
        return Err(not_a_function());
    };
    family(ev, &Call { name, args, input })
}

/// One call of a built-in, with the argument accessors the functions share: a missing
/// argument is undefined, and a wrongly typed one reads as absent.
struct Call<'c> {
    name: &'c str,
    args: Vec<JValue>,
    input: &'c JValue,
}

impl Call<'_> {
    fn arg(&self, i: usize) -> JValue {
        self.args.get(i).cloned().unwrap_or(JValue::Undefined)
    }

    fn val(&self, i: usize) -> Option<Value> {
        match self.arg(i) {
            JValue::Value(v) => Some(v),
            _ => None,
        }
    }

    fn str(&self, i: usize) -> Option<String> {
        self.val(i).and_then(|v| v.as_str().map(str::to_string))
    }

    fn num(&self, i: usize) -> Option<f64> {
        self.val(i).and_then(|v| v.as_f64())
    }

    /// The argument as a sequence (an array's items, a single value, or nothing).
    fn seq(&self, i: usize) -> Vec<Value> {
        to_seq(self.arg(i))
    }

    /// jsonata-js returns undefined from most functions whose first argument is undefined.
    fn undefined_first(&self) -> bool {
        matches!(self.arg(0), JValue::Undefined) && !self.args.is_empty()
    }

    /// `T0410` for argument `k` (counted from 1).
    fn mismatch(&self, k: usize) -> JsonataError {
        jerr(
            "T0410",
            format!(
                "Argument {k} of function \"{}\" does not match function signature",
                self.name
            ),
        )
    }
}

fn ok(v: Value) -> Result<JValue, JsonataError> {
    Ok(JValue::Value(v))
}

fn not_a_function() -> JsonataError {
    jerr("T1006", "Attempted to invoke a non-function")
}

/// `$string`, `$number`, `$boolean`, `$not`, `$exists` and `$type`.
fn conversions(_: &dyn Caller, c: &Call<'_>) -> Result<JValue, JsonataError> {
    match c.name {
        "string" => {
            let v = if c.args.is_empty() {
                c.input.clone()
            } else {
                c.arg(0)
            };
            if matches!(v, JValue::Undefined) {
                return Ok(JValue::Undefined);
            }
            ok(Value::String(string_of(&v)?))
        }
        "number" => {
            if c.undefined_first() {
                return Ok(JValue::Undefined);
            }
            match c.val(0) {
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
            if c.undefined_first() {
                Ok(JValue::Undefined)
            } else {
                ok(Value::Bool(truthy(&c.arg(0))))
            }
        }
        "not" => {
            if c.undefined_first() {
                Ok(JValue::Undefined)
            } else {
                ok(Value::Bool(!truthy(&c.arg(0))))
            }
        }
        "exists" => ok(Value::Bool(!matches!(c.arg(0), JValue::Undefined))),
        "type" => Ok(match c.arg(0) {
            JValue::Undefined => JValue::Undefined,
            JValue::Func(_) => JValue::Value(Value::String("function".into())),
            JValue::Value(v) => JValue::Value(Value::String(crate::values::type_name(&v).into())),
            JValue::Seq(_) => JValue::Value(Value::String("array".into())),
        }),
        _ => Err(not_a_function()),
    }
}

/// `$length`, case, `$trim`, `$substring*` and `$pad`.
fn strings(_: &dyn Caller, c: &Call<'_>) -> Result<JValue, JsonataError> {
    match c.name {
        "length" => c
            .str(0)
            .map(|x| ok(Value::from(x.chars().count())))
            .unwrap_or(Ok(JValue::Undefined)),
        "uppercase" => c
            .str(0)
            .map(|x| ok(Value::String(x.to_uppercase())))
            .unwrap_or(Ok(JValue::Undefined)),
        "lowercase" => c
            .str(0)
            .map(|x| ok(Value::String(x.to_lowercase())))
            .unwrap_or(Ok(JValue::Undefined)),
        "trim" => c
            .str(0)
            .map(|x| {
                ok(Value::String(
                    x.split_whitespace().collect::<Vec<_>>().join(" "),
                ))
            })
            .unwrap_or(Ok(JValue::Undefined)),
        "substring" => {
            let Some(x) = c.str(0) else {
                return Ok(JValue::Undefined);
            };
            let cs: Vec<char> = x.chars().collect();
            let len = cs.len() as i64;
            let mut start = c.num(1).unwrap_or(0.0) as i64;
            if start < 0 {
                start = (len + start).max(0);
            }
            let start = start.min(len);
            let end = match c.num(2) {
                Some(l) => start.saturating_add(l.max(0.0) as i64).min(len),
                None => len,
            };
            ok(Value::String(
                cs[start as usize..end as usize].iter().collect(),
            ))
        }
        "substringBefore" | "substringAfter" => {
            let (Some(x), Some(needle)) = (c.str(0), c.str(1)) else {
                return Ok(JValue::Undefined);
            };
            ok(Value::String(match x.find(&needle) {
                Some(i) if c.name == "substringBefore" => x[..i].to_string(),
                Some(i) => x[i + needle.len()..].to_string(),
                None => x,
            }))
        }
        "pad" => {
            let Some(x) = c.str(0) else {
                return Ok(JValue::Undefined);
            };
            let width = c.num(1).unwrap_or(0.0) as i64;
            let fill: Vec<char> = c.str(2).unwrap_or_else(|| " ".into()).chars().collect();
            let len = x.chars().count() as u64;
            if width.unsigned_abs() <= len || fill.is_empty() {
                return ok(Value::String(x));
            }
            // No state may produce more than 256 KiB: a longer padding is refused up front
            // instead of being built.
            if width.unsigned_abs() > crate::values::MAX_PAYLOAD_BYTES as u64 {
                return Err(jerr(
                    "D3000",
                    format!(
                        "The padded width {width} exceeds the payload limit of {} characters",
                        crate::values::MAX_PAYLOAD_BYTES
                    ),
                ));
            }
            let padding: String = (0..(width.unsigned_abs() - len) as usize)
                .map(|i| fill[i % fill.len()])
                .collect();
            ok(Value::String(if width > 0 {
                format!("{x}{padding}")
            } else {
                format!("{padding}{x}")
            }))
        }
        _ => Err(not_a_function()),
    }
}

/// String functions that take a string or regex pattern, and `$join`.
fn patterns(_: &dyn Caller, c: &Call<'_>) -> Result<JValue, JsonataError> {
    match c.name {
        "contains" => {
            let Some(x) = c.str(0) else {
                return Ok(JValue::Undefined);
            };
            match c.arg(1) {
                JValue::Value(Value::String(p)) => ok(Value::Bool(x.contains(&p))),
                JValue::Func(Func::Regex(re)) => ok(Value::Bool(re.is_match(&x))),
                _ => Err(c.mismatch(2)),
            }
        }
        "split" => {
            let Some(x) = c.str(0) else {
                return Ok(JValue::Undefined);
            };
            let parts: Vec<Value> = match c.arg(1) {
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
                _ => return Err(c.mismatch(2)),
            };
            let limit = c.num(2).map(|l| l as usize).unwrap_or(usize::MAX);
            ok(Value::Array(parts.into_iter().take(limit).collect()))
        }
        "join" => {
            let sep = c.str(1).unwrap_or_default();
            let parts: Result<Vec<String>, _> = c
                .seq(0)
                .iter()
                .map(|v| v.as_str().map(str::to_string).ok_or_else(|| c.mismatch(1)))
                .collect();
            ok(Value::String(parts?.join(&sep)))
        }
        "replace" => {
            let Some(x) = c.str(0) else {
                return Ok(JValue::Undefined);
            };
            let rep = c.str(2).ok_or_else(|| c.mismatch(3))?;
            match c.arg(1) {
                JValue::Value(Value::String(p)) if !p.is_empty() => {
                    ok(Value::String(x.replace(&p, &rep)))
                }
                JValue::Func(Func::Regex(re)) => ok(Value::String(
                    re.replace_all(&x, rep.replace("$", "$$").as_str())
                        .into_owned(),
                )),
                _ => Err(c.mismatch(2)),
            }
        }
        "match" => {
            let Some(x) = c.str(0) else {
                return Ok(JValue::Undefined);
            };
            let JValue::Func(Func::Regex(re)) = c.arg(1) else {
                return Err(c.mismatch(2));
            };
            let ms: Vec<Value> = re
                .find_iter(&x)
                .map(|m| serde_json::json!({"match": m.as_str(), "index": m.start(), "groups": []}))
                .collect();
            Ok(JValue::Seq(ms))
        }
        _ => Err(not_a_function()),
    }
}

/// Aggregates and arithmetic functions.
fn numeric(_: &dyn Caller, c: &Call<'_>) -> Result<JValue, JsonataError> {
    match c.name {
        "count" => ok(Value::from(c.seq(0).len())),
        "sum" => ok(num(c.seq(0).iter().filter_map(Value::as_f64).sum())),
        "max" | "min" => {
            let xs: Vec<f64> = c.seq(0).iter().filter_map(Value::as_f64).collect();
            if xs.is_empty() {
                return Ok(JValue::Undefined);
            }
            let r = if c.name == "max" {
                xs.iter().cloned().fold(f64::MIN, f64::max)
            } else {
                xs.iter().cloned().fold(f64::MAX, f64::min)
            };
            ok(num(r))
        }
        "average" => {
            let xs: Vec<f64> = c.seq(0).iter().filter_map(Value::as_f64).collect();
            if xs.is_empty() {
                return Ok(JValue::Undefined);
            }
            ok(num(xs.iter().sum::<f64>() / xs.len() as f64))
        }
        "abs" | "floor" | "ceil" | "sqrt" => {
            let Some(x) = c.num(0) else {
                return Ok(JValue::Undefined);
            };
            ok(num(match c.name {
                "abs" => x.abs(),
                "floor" => x.floor(),
                "ceil" => x.ceil(),
                _ => x.sqrt(),
            }))
        }
        "round" => {
            let Some(x) = c.num(0) else {
                return Ok(JValue::Undefined);
            };
            let p = 10f64.powi(c.num(1).unwrap_or(0.0) as i32);
            let v = x * p;
            // A precision beyond what a double holds leaves the number as it is (or rounds it
            // to zero), instead of dividing infinities.
            if p == 0.0 {
                return ok(num(0.0));
            }
            if !v.is_finite() || !p.is_finite() {
                return ok(num(x));
            }
            // Round half to even, as jsonata does.
            let r = if (v - v.trunc()).abs() == 0.5 {
                2.0 * (v / 2.0).round()
            } else {
                v.round()
            };
            ok(num(r / p))
        }
        "power" => match (c.num(0), c.num(1)) {
            (Some(a), Some(b)) => ok(num(a.powf(b))),
            _ => Ok(JValue::Undefined),
        },
        _ => Err(not_a_function()),
    }
}

/// Array and object functions.
fn collections(_: &dyn Caller, c: &Call<'_>) -> Result<JValue, JsonataError> {
    match c.name {
        "keys" => {
            let mut ks: Vec<Value> = Vec::new();
            for v in c.seq(0) {
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
            let k = c.str(1).unwrap_or_default();
            let out: Vec<Value> = c.seq(0).iter().filter_map(|o| o.get(&k).cloned()).collect();
            Ok(collapse(JValue::Seq(out)))
        }
        "merge" => {
            let mut m = Map::new();
            for v in c.seq(0) {
                if let Value::Object(o) = v {
                    m.extend(o);
                }
            }
            ok(Value::Object(m))
        }
        "append" => {
            if matches!(c.arg(1), JValue::Undefined) {
                return Ok(c.arg(0));
            }
            if c.undefined_first() {
                return Ok(c.arg(1));
            }
            let mut a = c.seq(0);
            a.extend(c.seq(1));
            ok(Value::Array(a))
        }
        "reverse" => {
            let mut a = c.seq(0);
            a.reverse();
            ok(Value::Array(a))
        }
        "distinct" => {
            let mut out: Vec<Value> = Vec::new();
            for v in c.seq(0) {
                if !out.iter().any(|o| crate::intrinsics::json_eq(o, &v)) {
                    out.push(v);
                }
            }
            ok(Value::Array(out))
        }
        _ => Err(not_a_function()),
    }
}

/// Functions that call a function argument.
fn higher_order(ev: &dyn Caller, c: &Call<'_>) -> Result<JValue, JsonataError> {
    match c.name {
        "sort" => {
            let mut a = c.seq(0);
            if let JValue::Func(f) = c.arg(1) {
                // Insertion sort with the user's "greater than" function.
                let mut out: Vec<Value> = Vec::new();
                for v in a {
                    let mut pos = out.len();
                    for (i, o) in out.iter().enumerate() {
                        if truthy(&ev.apply(
                            &f,
                            vec![JValue::Value(o.clone()), JValue::Value(v.clone())],
                            c.input,
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
        "map" | "filter" => {
            let JValue::Func(f) = c.arg(1) else {
                return Err(c.mismatch(2));
            };
            let items = c.seq(0);
            let mut out = Vec::new();
            for (i, v) in items.iter().enumerate() {
                let r = ev.apply(
                    &f,
                    vec![
                        JValue::Value(v.clone()),
                        JValue::Value(Value::from(i)),
                        JValue::Value(Value::Array(items.clone())),
                    ],
                    c.input,
                )?;
                if c.name == "map" {
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
            let JValue::Func(f) = c.arg(1) else {
                return Err(c.mismatch(2));
            };
            let mut items = c.seq(0).into_iter();
            let mut acc = match c.arg(2) {
                JValue::Undefined => items.next().map(JValue::Value).unwrap_or(JValue::Undefined),
                a => a,
            };
            for v in items {
                acc = collapse(ev.apply(&f, vec![acc, JValue::Value(v)], c.input)?);
            }
            Ok(acc)
        }
        "each" => {
            let JValue::Func(f) = c.arg(1) else {
                return Err(c.mismatch(2));
            };
            let mut out = Vec::new();
            if let Some(Value::Object(o)) = c.val(0) {
                for (k, v) in o {
                    if let JValue::Value(x) = collapse(ev.apply(
                        &f,
                        vec![JValue::Value(v), JValue::Value(Value::String(k))],
                        c.input,
                    )?) {
                        out.push(x);
                    }
                }
            }
            Ok(JValue::Seq(out))
        }
        _ => Err(not_a_function()),
    }
}

/// Time (the injected clock), `$error` and `$assert`.
fn time_and_errors(ev: &dyn Caller, c: &Call<'_>) -> Result<JValue, JsonataError> {
    match c.name {
        "millis" => ok(Value::from(ev.env().now_millis)),
        "now" => ok(Value::String(crate::values::iso_millis(
            ev.env().now_millis,
        ))),
        "toMillis" => c
            .str(0)
            .map(|x| {
                crate::values::parse_iso(&x)
                    .map(|m| JValue::Value(Value::from(m)))
                    .ok_or_else(|| jerr("D3110", format!("The timestamp '{x}' cannot be parsed")))
            })
            .unwrap_or(Ok(JValue::Undefined)),
        "fromMillis" => c
            .num(0)
            .map(|m| ok(Value::String(crate::values::iso_millis(m as i64))))
            .unwrap_or(Ok(JValue::Undefined)),
        "error" => Err(jerr(
            "D3137",
            c.str(0)
                .unwrap_or_else(|| "$error() function evaluated".into()),
        )),
        "assert" => {
            if truthy(&c.arg(0)) {
                Ok(JValue::Undefined)
            } else {
                Err(jerr(
                    "D3141",
                    c.str(1)
                        .unwrap_or_else(|| "$assert() statement failed".into()),
                ))
            }
        }
        _ => Err(not_a_function()),
    }
}

/// AWS's additions: `$uuid`, `$random`, `$partition`, `$range`, `$hash`, base64 and `$parse`.
fn aws(ev: &dyn Caller, c: &Call<'_>) -> Result<JValue, JsonataError> {
    match c.name {
        "uuid" => ok(Value::String(crate::intrinsics::uuid_v4(
            ev.env().random.next_u64(),
            ev.env().random.next_u64(),
        ))),
        "random" => {
            if let Some(seed) = c.num(0) {
                use crate::clock::Random as _;
                let r = crate::clock::SeededRandom::new(seed as i64 as u64).next_f64();
                return ok(num(r));
            }
            ok(num(ev.env().random.next_f64()))
        }
        "partition" => {
            let a = c.seq(0);
            let size = c
                .num(1)
                .filter(|k| *k >= 1.0 && k.fract() == 0.0)
                .ok_or_else(|| c.mismatch(2))? as usize;
            ok(Value::Array(
                a.chunks(size).map(|c| Value::Array(c.to_vec())).collect(),
            ))
        }
        "range" => {
            let (Some(a), Some(b), Some(st)) = (c.num(0), c.num(1), c.num(2)) else {
                return Err(c.mismatch(1));
            };
            if st == 0.0 {
                return Err(c.mismatch(3));
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
            let (Some(d), Some(alg)) = (c.str(0), c.str(1)) else {
                return Err(c.mismatch(1));
            };
            crate::intrinsics::hash(&alg, d.as_bytes())
                .map(JValue::Value)
                .ok_or_else(|| c.mismatch(2))
        }
        "base64encode" => c
            .str(0)
            .map(|x| {
                use base64::Engine as _;
                ok(Value::String(
                    base64::engine::general_purpose::STANDARD.encode(x.as_bytes()),
                ))
            })
            .unwrap_or(Ok(JValue::Undefined)),
        "base64decode" => {
            let Some(x) = c.str(0) else {
                return Ok(JValue::Undefined);
            };
            use base64::Engine as _;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(x.as_bytes())
                .map_err(|e| jerr("D3137", format!("Invalid base64 c.input: {e}")))?;
            ok(Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        }
        "parse" => {
            let Some(x) = c.str(0) else {
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
        _ => Err(not_a_function()),
    }
}
