//! The 18 intrinsic functions of the JSONPath query language (`States.Format(...)` and
//! friends): a small parser for the call syntax, and their evaluation.

use crate::jsonpath::JsonPath;
use crate::values::{java_string, math_round};
use base64::Engine as _;
use serde_json::{Map, Value};

/// A parsed intrinsic call.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub name: String,
    pub args: Vec<Arg>,
}

/// One argument of an intrinsic call.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Lit(Value),
    Path(JsonPath),
    /// `$name.rest` reads a variable.
    Var(String, Option<JsonPath>),
    Call(Call),
}

/// The known function names.
pub const FUNCTIONS: [&str; 18] = [
    "States.Format",
    "States.StringToJson",
    "States.JsonToString",
    "States.Array",
    "States.ArrayPartition",
    "States.ArrayContains",
    "States.ArrayRange",
    "States.ArrayGetItem",
    "States.ArrayLength",
    "States.ArrayUnique",
    "States.Base64Encode",
    "States.Base64Decode",
    "States.Hash",
    "States.JsonMerge",
    "States.MathRandom",
    "States.MathAdd",
    "States.StringSplit",
    "States.UUID",
];

/// True when a `.$` field value is an intrinsic call rather than a path.
pub fn looks_like_call(s: &str) -> bool {
    s.trim_start().starts_with("States.")
}

/// Parses `States.X(args...)`.
pub fn parse(src: &str) -> Result<Call, String> {
    let mut p = CallParser {
        s: src,
        b: src.as_bytes(),
        i: 0,
        depth: 0,
    };
    p.ws();
    let c = p.call()?;
    p.ws();
    if p.i != p.b.len() {
        return Err(format!(
            "unexpected text after the function call at position {}",
            p.i
        ));
    }
    Ok(c)
}

struct CallParser<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    depth: usize,
}

impl CallParser<'_> {
    fn ws(&mut self) {
        while matches!(self.b.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }
    fn call(&mut self) -> Result<Call, String> {
        self.depth += 1;
        if self.depth > 50 {
            return Err("intrinsic function calls are nested too deeply".into());
        }
        let start = self.i;
        while matches!(self.b.get(self.i), Some(c) if c.is_ascii_alphanumeric() || *c == b'.') {
            self.i += 1;
        }
        let name = self.s[start..self.i].to_string();
        if !FUNCTIONS.contains(&name.as_str()) {
            return Err(format!("unknown intrinsic function '{name}'"));
        }
        self.ws();
        if self.b.get(self.i) != Some(&b'(') {
            return Err(format!("expected '(' after {name}"));
        }
        self.i += 1;
        let mut args = Vec::new();
        self.ws();
        if self.b.get(self.i) == Some(&b')') {
            self.i += 1;
            return Ok(Call { name, args });
        }
        loop {
            self.ws();
            args.push(self.arg()?);
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b')') => {
                    self.i += 1;
                    return Ok(Call { name, args });
                }
                _ => return Err(format!("expected ',' or ')' at position {}", self.i)),
            }
        }
    }
    fn arg(&mut self) -> Result<Arg, String> {
        match self.b.get(self.i) {
            Some(b'\'') => {
                self.i += 1;
                let mut out = String::new();
                loop {
                    match self.b.get(self.i) {
                        None => return Err("unterminated string literal".into()),
                        Some(b'\\') => {
                            self.i += 1;
                            let ch = self.s[self.i..].chars().next().ok_or("bad escape")?;
                            match ch {
                                'n' => out.push('\n'),
                                't' => out.push('\t'),
                                'r' => out.push('\r'),
                                other => out.push(other),
                            }
                            self.i += ch.len_utf8();
                        }
                        Some(b'\'') => {
                            self.i += 1;
                            return Ok(Arg::Lit(Value::String(out)));
                        }
                        Some(_) => {
                            let ch = self.s[self.i..].chars().next().ok_or("bad char")?;
                            out.push(ch);
                            self.i += ch.len_utf8();
                        }
                    }
                }
            }
            Some(b'$') => {
                let start = self.i;
                let mut depth = 0i32;
                let mut quote: Option<u8> = None;
                while let Some(&c) = self.b.get(self.i) {
                    if let Some(q) = quote {
                        if c == q {
                            quote = None;
                        }
                    } else {
                        match c {
                            b'\'' | b'"' => quote = Some(c),
                            b'[' | b'(' => depth += 1,
                            b']' => depth -= 1,
                            b')' if depth == 0 => break,
                            b')' => depth -= 1,
                            b',' if depth == 0 => break,
                            _ => {}
                        }
                    }
                    self.i += 1;
                }
                let text = self.s[start..self.i].trim_end();
                parse_reference(text)
            }
            Some(b'S') => Ok(Arg::Call(self.call()?)),
            _ => {
                let start = self.i;
                while matches!(self.b.get(self.i), Some(c) if !matches!(c, b',' | b')' | b' ')) {
                    self.i += 1;
                }
                let tok = &self.s[start..self.i];
                match serde_json::from_str::<Value>(tok) {
                    Ok(v @ (Value::Number(_) | Value::Bool(_) | Value::Null)) => Ok(Arg::Lit(v)),
                    _ => Err(format!("invalid argument '{tok}'")),
                }
            }
        }
    }
}

/// Parses `$.x`, `$$.x` or `$var.x` as an argument.
pub fn parse_reference(text: &str) -> Result<Arg, String> {
    let b = text.as_bytes();
    if b.len() > 1 && b[0] == b'$' && (b[1].is_ascii_alphabetic() || b[1] == b'_') {
        let end = text[1..]
            .find(['.', '['])
            .map(|n| n + 1)
            .unwrap_or(text.len());
        let name = text[1..end].to_string();
        let rest = if end < text.len() {
            Some(JsonPath::parse(&format!("${}", &text[end..])).map_err(|e| e.to_string())?)
        } else {
            None
        };
        return Ok(Arg::Var(name, rest));
    }
    Ok(Arg::Path(JsonPath::parse(text).map_err(|e| e.to_string())?))
}

/// What an intrinsic needs from the running state.
pub trait ArgEnv {
    /// Resolves a path or variable argument; `Err` carries the AWS cause text.
    fn resolve(&self, arg: &Arg) -> Result<Value, String>;
    /// A uniform random number in [0, 1).
    fn random_unit(&self) -> f64;
    /// A random 64-bit number for seeds and UUIDs.
    fn random_u64(&self) -> u64;
}

/// Evaluates a call. `Err` is the cause of a `States.Runtime` failure.
pub fn eval(call: &Call, env: &dyn ArgEnv) -> Result<Value, String> {
    let mut values = Vec::with_capacity(call.args.len());
    for a in &call.args {
        values.push(match a {
            Arg::Lit(v) => v.clone(),
            Arg::Call(c) => eval(c, env)?,
            other => env.resolve(other)?,
        });
    }
    let args = Args {
        name: call.name.as_str(),
        values,
    };
    match args.name {
        n if n.starts_with("States.Array") => arrays(args),
        "States.Base64Encode" | "States.Base64Decode" | "States.Hash" => encodings(args),
        "States.JsonMerge" | "States.MathRandom" | "States.MathAdd" | "States.UUID" => {
            math_and_json(args, env)
        }
        _ => strings(args),
    }
}

/// The evaluated arguments of one call, with the checks and messages the functions share.
struct Args<'a> {
    name: &'a str,
    values: Vec<Value>,
}

impl Args<'_> {
    /// Between `lo` and `hi` arguments.
    fn arity(&self, lo: usize, hi: usize) -> Result<(), String> {
        if self.values.len() < lo || self.values.len() > hi {
            Err(format!(
                "Function {} takes {} argument(s) but {} were given",
                self.name,
                if lo == hi {
                    lo.to_string()
                } else {
                    format!("{lo} to {hi}")
                },
                self.values.len()
            ))
        } else {
            Ok(())
        }
    }

    /// Argument `i`, which must be a string.
    fn str(&self, i: usize) -> Result<&str, String> {
        self.values[i]
            .as_str()
            .ok_or_else(|| self.bad("expected a string"))
    }

    /// Argument `i`, which must be an array.
    fn array(&self, i: usize) -> Result<&Vec<Value>, String> {
        self.values[i]
            .as_array()
            .ok_or_else(|| self.bad("expected an array"))
    }

    fn bad(&self, what: &str) -> String {
        format!("Invalid arguments in {}: {what}", self.name)
    }

    fn unknown(&self) -> String {
        format!("unknown intrinsic function '{}'", self.name)
    }
}

/// `States.Format`, the JSON/string conversions and `States.StringSplit`.
fn strings(call: Args<'_>) -> Result<Value, String> {
    match call.name {
        "States.Format" => {
            if call.values.is_empty() {
                return Err(call.bad("a format string is required"));
            }
            let fmt = call.values[0]
                .as_str()
                .ok_or_else(|| call.bad("format must be a string"))?;
            let mut out = String::new();
            let mut n = 1;
            let mut chars = fmt.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '{' && chars.peek() == Some(&'}') {
                    chars.next();
                    let v = call
                        .values
                        .get(n)
                        .ok_or_else(|| call.bad("not enough arguments for the format string"))?;
                    n += 1;
                    out.push_str(&java_string(v));
                } else {
                    out.push(c);
                }
            }
            Ok(Value::String(out))
        }
        "States.StringToJson" => {
            call.arity(1, 1)?;
            let s = call.str(0)?;
            if s.trim().is_empty() {
                return Ok(Value::Null);
            }
            serde_json::from_str(s).map_err(|e| call.bad(&format!("not valid JSON: {e}")))
        }
        "States.JsonToString" => {
            call.arity(1, 1)?;
            Ok(Value::String(
                serde_json::to_string(&call.values[0]).map_err(|e| e.to_string())?,
            ))
        }
        "States.StringSplit" => {
            call.arity(2, 2)?;
            let (Some(s), Some(d)) = (call.values[0].as_str(), call.values[1].as_str()) else {
                return Err(call.bad("arguments must be strings"));
            };
            let parts: Vec<Value> = s
                .split(|c: char| d.contains(c))
                .filter(|p| !p.is_empty())
                .map(|p| Value::String(p.to_string()))
                .collect();
            Ok(Value::Array(parts))
        }
        _ => Err(call.unknown()),
    }
}

/// The `States.Array*` functions.
fn arrays(call: Args<'_>) -> Result<Value, String> {
    match call.name {
        "States.Array" => Ok(Value::Array(call.values)),
        "States.ArrayPartition" => {
            call.arity(2, 2)?;
            let a = call.array(0)?;
            let n = int_arg(&call.values[1])
                .ok_or_else(|| call.bad("chunk size must be an integer"))?;
            if n <= 0 {
                return Err(call.bad("chunk size must be greater than 0"));
            }
            Ok(Value::Array(
                a.chunks(n as usize)
                    .map(|c| Value::Array(c.to_vec()))
                    .collect(),
            ))
        }
        "States.ArrayContains" => {
            call.arity(2, 2)?;
            let a = call.array(0)?;
            Ok(Value::Bool(a.iter().any(|x| json_eq(x, &call.values[1]))))
        }
        "States.ArrayRange" => {
            call.arity(3, 3)?;
            let (Some(a), Some(b), Some(s)) = (
                int_arg(&call.values[0]),
                int_arg(&call.values[1]),
                int_arg(&call.values[2]),
            ) else {
                return Err(call.bad("arguments must be integers"));
            };
            if s == 0 {
                return Err(call.bad("step must not be 0"));
            }
            let mut out = Vec::new();
            let mut i = a;
            while (s > 0 && i <= b) || (s < 0 && i >= b) {
                out.push(Value::from(i));
                if out.len() > 1000 {
                    return Err(call.bad("the range exceeds 1000 items"));
                }
                // Past the largest (or smallest) integer the range has certainly ended.
                match i.checked_add(s) {
                    Some(next) => i = next,
                    None => break,
                }
            }
            Ok(Value::Array(out))
        }
        "States.ArrayGetItem" => {
            call.arity(2, 2)?;
            let a = call.array(0)?;
            let i = int_arg(&call.values[1]).ok_or_else(|| call.bad("index must be an integer"))?;
            if i < 0 || i as usize >= a.len() {
                return Err(call.bad("index out of bounds"));
            }
            Ok(a[i as usize].clone())
        }
        "States.ArrayLength" => {
            call.arity(1, 1)?;
            let a = call.array(0)?;
            Ok(Value::from(a.len()))
        }
        "States.ArrayUnique" => {
            call.arity(1, 1)?;
            let a = call.array(0)?;
            let mut out: Vec<Value> = Vec::new();
            for x in a {
                if !out.iter().any(|y| json_eq(x, y)) {
                    out.push(x.clone());
                }
            }
            Ok(Value::Array(out))
        }
        _ => Err(call.unknown()),
    }
}

/// Base64 and hashing.
fn encodings(call: Args<'_>) -> Result<Value, String> {
    match call.name {
        "States.Base64Encode" => {
            call.arity(1, 1)?;
            let s = call.str(0)?;
            Ok(Value::String(
                base64::engine::general_purpose::STANDARD.encode(s.as_bytes()),
            ))
        }
        "States.Base64Decode" => {
            call.arity(1, 1)?;
            let s = call.str(0)?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s.as_bytes())
                .map_err(|e| call.bad(&format!("not valid base64: {e}")))?;
            Ok(Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        }
        "States.Hash" => {
            call.arity(2, 2)?;
            let data = call.values[0]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| serde_json::to_string(&call.values[0]).unwrap_or_default());
            let alg = call.values[1]
                .as_str()
                .ok_or_else(|| call.bad("algorithm must be a string"))?;
            hash(alg, data.as_bytes()).ok_or_else(|| {
                call.bad(&format!(
                    "unsupported algorithm '{alg}' (MD5, SHA-1, SHA-256, SHA-384, SHA-512)"
                ))
            })
        }
        _ => Err(call.unknown()),
    }
}

/// `States.JsonMerge`, the math functions and `States.UUID` (the randomness comes from `env`).
fn math_and_json(call: Args<'_>, env: &dyn ArgEnv) -> Result<Value, String> {
    match call.name {
        "States.JsonMerge" => {
            call.arity(3, 3)?;
            let (Some(a), Some(b)) = (call.values[0].as_object(), call.values[1].as_object())
            else {
                return Err(call.bad("the first two arguments must be objects"));
            };
            if call.values[2] != Value::Bool(false) {
                return Err(call.bad("only shallow merges (false) are supported"));
            }
            let mut out: Map<String, Value> = a.clone();
            for (k, v) in b {
                out.insert(k.clone(), v.clone());
            }
            Ok(Value::Object(out))
        }
        "States.MathRandom" => {
            call.arity(2, 3)?;
            let (Some(lo), Some(hi)) = (
                call.values[0].as_f64().map(|f| f as i64),
                call.values[1].as_f64().map(|f| f as i64),
            ) else {
                return Err(call.bad("bounds must be numbers"));
            };
            if hi <= lo {
                return Err(call.bad("the end must be greater than the start"));
            }
            let r = if let Some(seed) = call.values.get(2) {
                let seed = int_arg(seed).ok_or_else(|| call.bad("seed must be an integer"))?;
                let mut x = seed as u64 ^ 0x9E37_79B9_7F4A_7C15;
                x = splitmix(&mut x);
                (x >> 11) as f64 / (1u64 << 53) as f64
            } else {
                env.random_unit()
            };
            // In 128 bits: the span of two 64-bit bounds does not fit in 64.
            let span = (i128::from(hi) - i128::from(lo)) as f64;
            let drawn = i128::from(lo) + (r * span) as i128;
            Ok(Value::from(
                drawn.clamp(i128::from(lo), i128::from(hi) - 1) as i64
            ))
        }
        "States.MathAdd" => {
            call.arity(2, 2)?;
            let (Some(a), Some(b)) = (call.values[0].as_f64(), call.values[1].as_f64()) else {
                return Err(call.bad("arguments must be numbers"));
            };
            // AWS computes with Java ints: operands and sum stay within 32 bits.
            let (a, b) = (math_round(a), math_round(b));
            let in_range = |x: i64| i32::try_from(x).is_ok();
            if !in_range(a) || !in_range(b) || !in_range(a + b) {
                return Err(call.bad("values must be integers between -2147483648 and 2147483647"));
            }
            Ok(Value::from(a + b))
        }
        "States.UUID" => {
            call.arity(0, 0)?;
            Ok(Value::String(uuid_v4(env.random_u64(), env.random_u64())))
        }
        _ => Err(call.unknown()),
    }
}

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn int_arg(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        _ => None,
    }
}

/// Equality that treats 1 and 1.0 alike.
pub fn json_eq(a: &Value, b: &Value) -> bool {
    json_eq_with(a, b, &|a, b| a == b)
}

/// Structural equality where numbers compare by value (1 and 1.0 alike) and `leaf` decides
/// every other pair that is not two arrays or two objects.
pub fn json_eq_with(a: &Value, b: &Value, leaf: &dyn Fn(&Value, &Value) -> bool) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq_with(p, q, leaf))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq_with(v, w, leaf)))
        }
        _ => leaf(a, b),
    }
}

/// Hex digest with one of AWS's algorithm names.
pub fn hash(alg: &str, data: &[u8]) -> Option<Value> {
    use sha2::Digest;
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let out = match alg {
        "MD5" => hex(&md5::Md5::digest(data)),
        "SHA-1" => hex(&sha1::Sha1::digest(data)),
        "SHA-256" => hex(&sha2::Sha256::digest(data)),
        "SHA-384" => hex(&sha2::Sha384::digest(data)),
        "SHA-512" => hex(&sha2::Sha512::digest(data)),
        _ => return None,
    };
    Some(Value::String(out))
}

/// Formats a version-4 UUID from 128 random bits.
pub fn uuid_v4(a: u64, b: u64) -> String {
    let a = (a & 0xFFFF_FFFF_FFFF_0FFF) | 0x0000_0000_0000_4000;
    let b = (b & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xFFFF,
        a & 0xFFFF,
        b >> 48,
        b & 0xFFFF_FFFF_FFFF
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Env(Value);
    impl ArgEnv for Env {
        fn resolve(&self, arg: &Arg) -> Result<Value, String> {
            match arg {
                Arg::Path(p) => p.select(&self.0).ok_or_else(|| "missing".to_string()),
                _ => Err("no vars".into()),
            }
        }
        fn random_unit(&self) -> f64 {
            0.5
        }
        fn random_u64(&self) -> u64 {
            42
        }
    }

    fn run(src: &str, input: Value) -> Result<Value, String> {
        eval(&parse(src)?, &Env(input))
    }

    #[test]
    fn table() {
        let cases: Vec<(&str, Value, Value)> = vec![
            (
                "States.Format('a {} b {}', $.x, $.y)",
                json!({"x": 1, "y": {"k": [1]}}),
                json!("a 1 b {k=[1]}"),
            ),
            (
                "States.Array(1, 'two', null)",
                json!({}),
                json!([1, "two", null]),
            ),
            (
                "States.ArrayPartition($.a, 2)",
                json!({"a": [1, 2, 3]}),
                json!([[1, 2], [3]]),
            ),
            (
                "States.ArrayRange(1, 9, 2)",
                json!({}),
                json!([1, 3, 5, 7, 9]),
            ),
            (
                "States.ArrayUnique($.a)",
                json!({"a": [1, 1, "x", "x"]}),
                json!([1, "x"]),
            ),
            ("States.MathAdd(1.5, -2.5)", json!({}), json!(0)),
            (
                "States.StringSplit('a,b;;c', ',;')",
                json!({}),
                json!(["a", "b", "c"]),
            ),
            (
                "States.Base64Encode('Data to encode')",
                json!({}),
                json!("RGF0YSB0byBlbmNvZGU="),
            ),
            (
                "States.Hash('input data', 'MD5')",
                json!({}),
                json!("812f45842bc6d66ee14572ce20db8e86"),
            ),
            (
                "States.JsonToString($.a)",
                json!({"a": {"b": [1]}}),
                json!("{\"b\":[1]}"),
            ),
            (
                "States.ArrayGetItem(States.StringSplit('a-b', '-'), 1)",
                json!({}),
                json!("b"),
            ),
            (
                "States.Format('it\\'s {}', 'x')",
                json!({}),
                json!("it's x"),
            ),
        ];
        for (src, input, want) in cases {
            assert_eq!(run(src, input).unwrap(), want, "{src}");
        }
    }

    #[test]
    fn errors() {
        assert!(parse("States.Nope(1)").is_err());
        assert!(parse("States.Format('x'").is_err());
        let deep = format!("{}1{}", "States.Array(".repeat(5000), ")".repeat(5000));
        assert!(parse(&deep).is_err());
        assert!(run("States.ArrayGetItem($.a, 5)", json!({"a": [1]})).is_err());
        assert!(run("States.Hash('x', 'CRC')", json!({})).is_err());
        assert!(run("States.MathAdd(2147483647, 1)", json!({})).is_err());
        assert_eq!(
            run("States.MathAdd(2147483646, 1)", json!({})).unwrap(),
            json!(2147483647)
        );
    }

    #[test]
    fn uuid_shape() {
        let u = uuid_v4(1, 2);
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }
}
