//! Field readers: paths, values given literally or by path, payload templates, JSONata
//! templates and Assign.

use super::load::Loader;
use super::{Assign, JsonataTemplate, PathOrNull, Template, ValueSource};
use crate::intrinsics;
use crate::jsonata;
use crate::jsonpath::JsonPath;
use serde_json::{Map, Value};

impl Loader {
    pub(super) fn path(&mut self, v: &Value, loc: &str) -> Option<JsonPath> {
        match v.as_str().map(JsonPath::parse) {
            Some(Ok(p)) => Some(p),
            Some(Err(e)) => {
                self.err(
                    loc,
                    format!("The value for the field must be a valid JSONPath: {e}"),
                );
                None
            }
            None => {
                self.err(loc, "Expected a JSONPath string".into());
                None
            }
        }
    }

    pub(super) fn path_or_null(
        &mut self,
        o: &Map<String, Value>,
        key: &str,
        loc: &str,
    ) -> Option<PathOrNull> {
        match o.get(key)? {
            Value::Null => Some(PathOrNull::Null),
            Value::String(s)
                if key != "ResultPath"
                    && s.len() > 1
                    && s.as_bytes()[1] != b'$'
                    && s.as_bytes()[1] != b'.'
                    && s.as_bytes()[1] != b'['
                    && s.starts_with('$') =>
            {
                match intrinsics::parse_reference(s) {
                    Ok(intrinsics::Arg::Var(n, p)) => Some(PathOrNull::Var(n, p, s.clone())),
                    _ => {
                        self.err(
                            &format!("{loc}/{key}"),
                            format!("The value for the field '{key}' must be a valid JSONPath"),
                        );
                        None
                    }
                }
            }
            v => self.path(v, &format!("{loc}/{key}")).map(PathOrNull::Path),
        }
    }

    /// A value given literally (`key`) or by a path (`key_path`), or by JSONata.
    pub(super) fn value_source(
        &mut self,
        o: &Map<String, Value>,
        key: &str,
        key_path: &str,
        loc: &str,
        jsonpath: bool,
    ) -> Option<ValueSource> {
        if let Some(v) = o.get(key) {
            if !jsonpath {
                return Some(ValueSource::Expr(
                    self.jsonata_template(v, &format!("{loc}/{key}")),
                ));
            }
            return Some(ValueSource::Lit(v.clone()));
        }
        let v = o.get(key_path)?;
        let l = format!("{loc}/{key_path}");
        if let Some(src) = v.as_str().filter(|s| intrinsics::looks_like_call(s)) {
            return match intrinsics::parse(src) {
                Ok(c) => Some(ValueSource::Ref(
                    Template::Call(Box::new(c), src.to_string()),
                    src.to_string(),
                )),
                Err(e) => {
                    self.err(&l, format!("The value for the field '{key_path}' must be a valid intrinsic function call: {e}"));
                    None
                }
            };
        }
        match v.as_str().map(intrinsics::parse_reference) {
            Some(Ok(intrinsics::Arg::Path(p))) => Some(ValueSource::Ref(
                Template::Path(p),
                v.as_str().unwrap_or_default().to_string(),
            )),
            Some(Ok(intrinsics::Arg::Var(n, p))) => Some(ValueSource::Ref(
                Template::Var(n, p),
                v.as_str().unwrap_or_default().to_string(),
            )),
            _ => {
                self.err(
                    &l,
                    format!("The value for the field '{key_path}' must be a valid JSONPath"),
                );
                None
            }
        }
    }

    /// Reads each item of an array with `read`, at `loc/<index>`.
    fn items<T>(
        &mut self,
        a: &[Value],
        loc: &str,
        read: fn(&mut Self, &Value, &str) -> T,
    ) -> Vec<T> {
        a.iter()
            .enumerate()
            .map(|(i, x)| read(self, x, &format!("{loc}/{i}")))
            .collect()
    }

    pub(crate) fn template(&mut self, v: &Value, loc: &str) -> Template {
        match v {
            Value::Object(m) => {
                let mut out = Vec::with_capacity(m.len());
                for (k, val) in m {
                    let kl = format!("{loc}/{k}");
                    if let Some(stripped) = k.strip_suffix(".$") {
                        let t = match val.as_str() {
                            Some(s) if intrinsics::looks_like_call(s) => match intrinsics::parse(s)
                            {
                                Ok(c) => Template::Call(Box::new(c), s.to_string()),
                                Err(e) => {
                                    self.err(&kl, format!("The value for the field '{k}' must be a valid JSONPath or a valid intrinsic function call: {e}"));
                                    Template::Lit(Value::Null)
                                }
                            },
                            Some(s) => match intrinsics::parse_reference(s) {
                                Ok(intrinsics::Arg::Path(p)) => Template::Path(p),
                                Ok(intrinsics::Arg::Var(n, p)) => Template::Var(n, p),
                                _ => {
                                    self.err(&kl, format!("The value for the field '{k}' must be a valid JSONPath or a valid intrinsic function call"));
                                    Template::Lit(Value::Null)
                                }
                            },
                            None => {
                                self.err(&kl, format!("The value for the field '{k}' must be a STRING that contains a JSONPath but was a {}", crate::values::type_name(val).to_uppercase()));
                                Template::Lit(Value::Null)
                            }
                        };
                        out.push((stripped.to_string(), k.clone(), t));
                    } else {
                        if let Some(s) = val.as_str()
                            && (s.starts_with("$.") || s.starts_with("States."))
                        {
                            self.warn("NO_DOLLAR", &kl, format!("The field '{k}' looks like a JSONPath or intrinsic function but its name does not end with '.$'"));
                        }
                        out.push((k.clone(), k.clone(), self.template(val, &kl)));
                    }
                }
                Template::Object(out)
            }
            Value::Array(a) => Template::Array(self.items(a, loc, Self::template)),
            other => Template::Lit(other.clone()),
        }
    }

    pub(crate) fn jsonata_template(&mut self, v: &Value, loc: &str) -> JsonataTemplate {
        match v {
            Value::String(s) => {
                let t = s.trim();
                if s.starts_with("{%") && s.ends_with("%}") && t.len() >= 4 {
                    let inner = &t[2..t.len() - 2];
                    match jsonata::Expr::parse(inner) {
                        Ok(e) => JsonataTemplate::Expr(Box::new(e), inner.trim().to_string()),
                        Err(e) => {
                            self.err(loc, format!("The JSONata expression is invalid: {e}"));
                            JsonataTemplate::Lit(Value::Null)
                        }
                    }
                } else {
                    JsonataTemplate::Lit(v.clone())
                }
            }
            Value::Object(m) => JsonataTemplate::Object(
                m.iter()
                    .map(|(k, x)| (k.clone(), self.jsonata_template(x, &format!("{loc}/{k}"))))
                    .collect(),
            ),
            Value::Array(a) => JsonataTemplate::Array(self.items(a, loc, Self::jsonata_template)),
            other => JsonataTemplate::Lit(other.clone()),
        }
    }

    /// `Assign` and (JSONata only) `Output` of a choice rule or catcher.
    pub(super) fn ending(
        &mut self,
        o: &Map<String, Value>,
        loc: &str,
        jsonpath: bool,
    ) -> (Option<Assign>, Option<JsonataTemplate>) {
        let assign = o
            .get("Assign")
            .map(|v| self.assign(v, &format!("{loc}/Assign"), jsonpath));
        let output = o
            .get("Output")
            .filter(|_| !jsonpath)
            .map(|v| self.jsonata_template(v, &format!("{loc}/Output")));
        (assign, output)
    }

    pub(super) fn assign(&mut self, v: &Value, loc: &str, jsonpath: bool) -> Assign {
        if !v.is_object() {
            self.err(loc, "Assign must be an object".into());
        }
        if jsonpath {
            Assign::Path(self.template(v, loc))
        } else {
            Assign::Jsonata(self.jsonata_template(v, loc))
        }
    }
}
