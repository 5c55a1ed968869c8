//! Retry and Catch.

use super::load::Loader;
use super::{Catcher, Retrier};
use serde_json::{Map, Value};

impl Loader {
    pub(super) fn error_equals(&mut self, o: &Map<String, Value>, loc: &str) -> Vec<String> {
        match o.get("ErrorEquals") {
            Some(Value::Array(a)) if !a.is_empty() && a.iter().all(Value::is_string) => {
                let names: Vec<String> = a
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect();
                if names.iter().any(|n| n == "States.ALL") && names.len() > 1 {
                    self.err(
                        &format!("{loc}/ErrorEquals"),
                        "States.ALL must appear alone in ErrorEquals".into(),
                    );
                }
                names
            }
            _ => {
                self.err(
                    loc,
                    "ErrorEquals must be a non-empty array of strings".into(),
                );
                vec![]
            }
        }
    }

    pub(super) fn retriers(&mut self, v: Option<&Value>, loc: &str) -> Vec<Retrier> {
        let retriers = self.handlers(v, loc, ("Retry", "A retrier"), Self::retrier);
        self.check_all_last(retriers.iter().map(|r| &r.error_equals), loc);
        retriers
    }

    pub(super) fn catchers(
        &mut self,
        v: Option<&Value>,
        loc: &str,
        jsonpath: bool,
    ) -> Vec<Catcher> {
        let catchers = self.handlers(v, loc, ("Catch", "A catcher"), |this, o, cl| {
            this.catcher(o, cl, jsonpath)
        });
        self.check_all_last(catchers.iter().map(|c| &c.error_equals), loc);
        catchers
    }

    /// Reads each object of a `Retry`/`Catch` array with `read`; `names` are the field's name
    /// and how to call one item in messages.
    fn handlers<T>(
        &mut self,
        v: Option<&Value>,
        loc: &str,
        (field, item): (&str, &str),
        mut read: impl FnMut(&mut Self, &Map<String, Value>, &str) -> T,
    ) -> Vec<T> {
        let Some(v) = v else { return vec![] };
        let Some(a) = v.as_array() else {
            self.err(loc, format!("{field} must be an array"));
            return vec![];
        };
        let mut out = Vec::new();
        for (i, x) in a.iter().enumerate() {
            let xl = format!("{loc}/{i}");
            match x.as_object() {
                Some(o) => out.push(read(self, o, &xl)),
                None => self.err(&xl, format!("{item} must be an object")),
            }
        }
        out
    }

    fn retrier(&mut self, o: &Map<String, Value>, rl: &str) -> Retrier {
        self.only_fields(
            o,
            &[
                "ErrorEquals",
                "IntervalSeconds",
                "MaxAttempts",
                "BackoffRate",
                "MaxDelaySeconds",
                "JitterStrategy",
                "Comment",
            ],
            rl,
            "",
        );
        let error_equals = self.error_equals(o, rl);
        let f = |k: &str| o.get(k).and_then(Value::as_f64);
        let interval = f("IntervalSeconds").unwrap_or(1.0);
        if o.contains_key("IntervalSeconds") && !(interval >= 1.0 && interval.fract() == 0.0) {
            self.err(
                &format!("{rl}/IntervalSeconds"),
                "IntervalSeconds must be a positive integer".into(),
            );
        }
        let max_attempts = match o.get("MaxAttempts") {
            None => 3,
            Some(v) => match v.as_u64() {
                Some(n) if n <= 99_999_999 => n,
                _ => {
                    self.err(
                        &format!("{rl}/MaxAttempts"),
                        "MaxAttempts must be a non-negative integer".into(),
                    );
                    0
                }
            },
        };
        let backoff = f("BackoffRate").unwrap_or(2.0);
        if backoff < 1.0 {
            self.err(
                &format!("{rl}/BackoffRate"),
                "BackoffRate must be at least 1.0".into(),
            );
        }
        let jitter_full = match o.get("JitterStrategy") {
            None => false,
            Some(Value::String(s)) if s == "FULL" => true,
            Some(Value::String(s)) if s == "NONE" => false,
            Some(_) => {
                self.err(
                    &format!("{rl}/JitterStrategy"),
                    "JitterStrategy must be FULL or NONE".into(),
                );
                false
            }
        };
        Retrier {
            error_equals,
            interval_seconds: interval,
            max_attempts,
            backoff_rate: backoff,
            max_delay_seconds: f("MaxDelaySeconds"),
            jitter_full,
        }
    }

    fn catcher(&mut self, o: &Map<String, Value>, cl: &str, jsonpath: bool) -> Catcher {
        let mut allowed = vec!["ErrorEquals", "Next", "Comment", "Assign"];
        if jsonpath {
            allowed.push("ResultPath");
        } else {
            allowed.push("Output");
        }
        self.only_fields(o, &allowed, cl, "");
        let error_equals = self.error_equals(o, cl);
        let next = match o.get("Next").and_then(Value::as_str) {
            Some(n) => n.to_string(),
            None => {
                self.err(cl, "A catcher needs a 'Next' state".into());
                String::new()
            }
        };
        let result_path = self.path_or_null(o, "ResultPath", cl);
        let (assign, output) = self.ending(o, cl, jsonpath);
        Catcher {
            error_equals,
            next,
            result_path,
            assign,
            output,
        }
    }

    /// `States.ALL` may only appear in the last retrier or catcher.
    fn check_all_last<'a>(&mut self, lists: impl Iterator<Item = &'a Vec<String>>, loc: &str) {
        let lists: Vec<&Vec<String>> = lists.collect();
        for (i, l) in lists.iter().enumerate() {
            if l.iter().any(|n| n == "States.ALL") && i + 1 != lists.len() {
                self.err(
                    &format!("{loc}/{i}/ErrorEquals"),
                    "States.ALL must be the last error name in the last retrier or catcher".into(),
                );
            }
        }
    }
}
