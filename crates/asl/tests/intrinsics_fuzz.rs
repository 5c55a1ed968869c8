//! Every intrinsic, fed generated arguments (extremes of every JSON type included), answers
//! with a value or a typed error, never a panic; and so does the call parser on generated text.
//! Seeded, so a failure names a case that can be replayed.

use leasehold_asl::clock::{Random, SeededRandom};
use leasehold_asl::intrinsics::{self, Arg, ArgEnv, Call, FUNCTIONS};
use serde_json::{Value, json};
use std::panic::{AssertUnwindSafe, catch_unwind};

const CASES: u64 = 12_000;

/// Seeded cases from the interpreter's own generator, so that a failing case replays.
struct Gen(SeededRandom);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn number(&mut self) -> Value {
        let extremes = [
            json!(i64::MAX),
            json!(i64::MIN),
            json!(u64::MAX),
            json!(i32::MAX),
            json!(i32::MIN),
            json!(0),
            json!(-1),
            json!(1),
            json!(1000),
            json!(1001),
            json!(-1000),
            json!(1e308),
            json!(-1e308),
            json!(0.5),
            json!(-2.5),
            json!(f64::MIN_POSITIVE),
        ];
        match self.below(3) {
            0 => self.pick(&extremes).clone(),
            1 => json!(self.next() as i64),
            _ => json!((self.next() % 2001) as i64 - 1000),
        }
    }

    fn string(&mut self) -> Value {
        let pieces = [
            "",
            "a",
            ",",
            "{}",
            "[1",
            "\"",
            "\\",
            "{",
            "}",
            "\u{0}",
            "é",
            "𝄞",
            "SHA-256",
            "MD5",
            "SHA-1",
            "SHA-384",
            "SHA-512",
            "aGVsbG8=",
            "===",
            "null",
            "1e999",
            "{\"a\":1}",
            "[1,2]",
            " ",
        ];
        let mut s = String::new();
        for _ in 0..self.below(4) {
            let piece: &&str = self.pick(&pieces);
            s.push_str(piece);
        }
        if self.below(20) == 0 {
            s.push_str(&"x".repeat(self.below(5000)));
        }
        Value::String(s)
    }

    fn value(&mut self, depth: u32) -> Value {
        let kinds = if depth == 0 { 4 } else { 6 };
        match self.below(kinds) {
            0 => self.number(),
            1 => self.string(),
            2 => match self.below(3) {
                0 => Value::Null,
                1 => Value::Bool(true),
                _ => Value::Bool(false),
            },
            3 => self.number(),
            4 => Value::Array((0..self.below(6)).map(|_| self.value(depth - 1)).collect()),
            _ => {
                let mut map = serde_json::Map::new();
                for _ in 0..self.below(4) {
                    let key = self.string().as_str().unwrap_or_default().to_owned();
                    map.insert(key, self.value(depth - 1));
                }
                Value::Object(map)
            }
        }
    }

    fn call(&mut self, depth: u32) -> Call {
        let name = self.pick(&FUNCTIONS).to_string();
        let args = (0..self.below(5))
            .map(|_| {
                if depth > 0 && self.below(8) == 0 {
                    Arg::Call(self.call(depth - 1))
                } else {
                    Arg::Lit(self.value(2))
                }
            })
            .collect();
        Call { name, args }
    }

    fn source(&mut self) -> String {
        let pieces = [
            "States.",
            "Format",
            "ArrayRange",
            "MathRandom",
            "Array",
            "(",
            ")",
            ",",
            " ",
            "'",
            "\\'",
            "\\\\",
            "{}",
            "$",
            "$.a",
            "$$.Execution.Id",
            "$var",
            "[0]",
            "1",
            "-1",
            "9223372036854775807",
            "99999999999999999999",
            "1.5e308",
            "null",
            "true",
            "\u{0}",
            "é",
        ];
        let mut s = String::new();
        for _ in 0..self.below(12) {
            let piece: &&str = self.pick(&pieces);
            s.push_str(piece);
        }
        s
    }
}

/// Arguments are all literals here, so resolving is never asked for; randomness is fixed.
struct FixedEnv;

impl ArgEnv for FixedEnv {
    fn resolve(&self, _arg: &Arg) -> Result<Value, String> {
        Err("no input in this test".into())
    }
    fn random_unit(&self) -> f64 {
        0.999_999_999
    }
    fn random_u64(&self) -> u64 {
        u64::MAX
    }
}

#[test]
fn generated_calls_to_every_intrinsic_never_panic() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut cases = Gen(SeededRandom::new(0x1ea5e));
    let mut panics = Vec::new();
    let mut answered = [0u32; 2];
    for case in 0..CASES {
        let call = cases.call(2);
        match catch_unwind(AssertUnwindSafe(|| intrinsics::eval(&call, &FixedEnv))) {
            Ok(Ok(_)) => answered[0] += 1,
            Ok(Err(_)) => answered[1] += 1,
            Err(_) if panics.len() < 5 => panics.push(format!("case {case}: {call:?}")),
            Err(_) => panics.push(String::new()),
        }
    }
    std::panic::set_hook(previous);
    assert!(
        panics.is_empty(),
        "{} of {CASES} calls panicked, e.g.\n{}",
        panics.len(),
        panics.join("\n")
    );
    // The generator reaches both outcomes, so the cases are not all rejected at the door.
    assert!(answered[0] > 500 && answered[1] > 500, "{answered:?}");
}

#[test]
fn the_extremes_that_once_overflowed_are_typed_errors_or_values() {
    let lit = |v: Value| Arg::Lit(v);
    let call = |name: &str, args: Vec<Value>| Call {
        name: name.into(),
        args: args.into_iter().map(lit).collect(),
    };
    let max = json!(i64::MAX);
    let min = json!(i64::MIN);
    for c in [
        call(
            "States.ArrayRange",
            vec![max.clone(), max.clone(), json!(1)],
        ),
        call(
            "States.ArrayRange",
            vec![min.clone(), min.clone(), json!(-1)],
        ),
        call(
            "States.ArrayRange",
            vec![json!(0), max.clone(), max.clone()],
        ),
        call("States.MathRandom", vec![min.clone(), max.clone()]),
        call("States.MathRandom", vec![json!(-1e308), json!(1e308)]),
    ] {
        let outcome = catch_unwind(AssertUnwindSafe(|| intrinsics::eval(&c, &FixedEnv)));
        assert!(outcome.is_ok(), "{c:?} panicked");
    }
    // A range at the very top of the integers ends there instead of wrapping around.
    let top = intrinsics::eval(
        &call("States.ArrayRange", vec![max.clone(), max, json!(1)]),
        &FixedEnv,
    )
    .unwrap();
    assert_eq!(top, json!([i64::MAX]));
}

#[test]
fn generated_call_text_never_panics_the_parser() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut cases = Gen(SeededRandom::new(0xca11));
    let mut panics = Vec::new();
    for _ in 0..CASES {
        let text = cases.source();
        if catch_unwind(AssertUnwindSafe(|| intrinsics::parse(&text))).is_err() {
            panics.push(text);
        }
    }
    std::panic::set_hook(previous);
    assert!(
        panics.is_empty(),
        "the parser panicked on {:?}",
        &panics[..panics.len().min(5)]
    );
}
