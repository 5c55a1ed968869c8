//! The Choice state: rules, comparison operators and `StringMatches` globs.

use super::pipeline::Sources;
use super::{Flow, StateCtx, StateFailure, Step};
use crate::definition::{Choice, ChoiceRule, CmpOperand, QueryLanguage, State};
use crate::values::{parse_iso, to_json};
use serde_json::{Map, Value};

impl Flow<'_> {
    pub(super) fn choice(
        &mut self,
        state: &State,
        ctx: &StateCtx<'_>,
        raw: Value,
        choices: &[Choice],
        default: Option<&str>,
        assigned: &mut Option<Map<String, Value>>,
    ) -> Result<Step, StateFailure> {
        let (input, states) = self.state_input(state, ctx, &raw)?;
        let mut matched = None;
        let src = Sources {
            ctx,
            input: &input,
            states: &states,
        };
        for c in choices {
            if self.rule(&c.rule, src)? {
                matched = Some(c);
                break;
            }
        }
        let (next, ending) = match (matched, default) {
            (Some(c), _) => (c.next.as_str(), c.ending()),
            (None, Some(d)) => (d, state.ending()),
            (None, None) => {
                return Err(StateFailure::plain(
                    "States.NoChoiceMatched",
                    Some(format!("No Matches! at state '{}'", state.name)),
                ));
            }
        };
        let out = if state.query_language == QueryLanguage::JsonPath {
            let values = self.eval_assign(ending.0, ctx, &input, &states)?;
            let out = self.output_path(state, ctx, input)?;
            self.commit_assign(values, assigned);
            out
        } else {
            self.end_jsonata(ctx, ending, &states, raw, assigned)?
        };
        Ok(Step::Next(next.to_string(), out))
    }

    fn rule(&self, r: &ChoiceRule, src: Sources<'_>) -> Result<bool, StateFailure> {
        let Sources { ctx, input, states } = src;
        Ok(match r {
            ChoiceRule::And(rs) => {
                for x in rs {
                    if !self.rule(x, src)? {
                        return Ok(false);
                    }
                }
                true
            }
            ChoiceRule::Or(rs) => {
                for x in rs {
                    if self.rule(x, src)? {
                        return Ok(true);
                    }
                }
                false
            }
            ChoiceRule::Not(x) => !self.rule(x, src)?,
            ChoiceRule::Condition(t) => match self.eval_jsonata(t, ctx, states, "Condition")? {
                Value::Bool(b) => b,
                other => {
                    return Err(ctx.query_error(
                        "Condition",
                        &format!(
                            "The Condition field evaluated to a non-boolean value: {}",
                            to_json(&other)
                        ),
                    ));
                }
            },
            ChoiceRule::Cmp {
                variable,
                variable_src,
                op,
                operand,
            } => {
                let var = self.template(variable, ctx, input, "Variable").ok();
                if op == "IsPresent" {
                    return Ok(var.is_some() == (operand_bool(operand)));
                }
                let Some(v) = var else {
                    return Err(ctx.runtime(&format!("Invalid path '{variable_src}': The choice state's condition path references an invalid value.")));
                };
                let rhs = match operand {
                    CmpOperand::Lit(x) => x.clone(),
                    CmpOperand::Path(t) => match self.template(t, ctx, input, op) {
                        Ok(x) => x,
                        Err(_) => return Ok(false),
                    },
                };
                compare(op, &v, &rhs)
            }
        })
    }
}
fn operand_bool(o: &CmpOperand) -> bool {
    matches!(o, CmpOperand::Lit(Value::Bool(true)))
}
fn compare(op: &str, v: &Value, rhs: &Value) -> bool {
    use std::cmp::Ordering::*;
    let base = op.trim_end_matches("Path");
    match base {
        "IsNull" => v.is_null() == (rhs == &Value::Bool(true)),
        "IsNumeric" => v.is_number() == (rhs == &Value::Bool(true)),
        "IsString" => v.is_string() == (rhs == &Value::Bool(true)),
        "IsBoolean" => v.is_boolean() == (rhs == &Value::Bool(true)),
        "IsTimestamp" => v.as_str().and_then(parse_iso).is_some() == (rhs == &Value::Bool(true)),
        "BooleanEquals" => v.is_boolean() && v == rhs,
        "StringMatches" => match (v.as_str(), rhs.as_str()) {
            (Some(s), Some(p)) => glob_match(p, s),
            _ => false,
        },
        _ => {
            let ord = if base.starts_with("Numeric") {
                match (v.as_f64(), rhs.as_f64()) {
                    (Some(a), Some(b)) if v.is_number() && rhs.is_number() => a.partial_cmp(&b),
                    _ => None,
                }
            } else if base.starts_with("String") {
                match (v.as_str(), rhs.as_str()) {
                    (Some(a), Some(b)) => Some(a.cmp(b)),
                    _ => None,
                }
            } else if base.starts_with("Timestamp") {
                match (
                    v.as_str().and_then(parse_iso),
                    rhs.as_str().and_then(parse_iso),
                ) {
                    (Some(a), Some(b)) => Some(a.cmp(&b)),
                    _ => None,
                }
            } else {
                None
            };
            let Some(ord) = ord else { return false };
            match base
                .trim_start_matches("Numeric")
                .trim_start_matches("String")
                .trim_start_matches("Timestamp")
            {
                "Equals" => ord == Equal,
                "LessThan" => ord == Less,
                "LessThanEquals" => ord != Greater,
                "GreaterThan" => ord == Greater,
                "GreaterThanEquals" => ord != Less,
                _ => false,
            }
        }
    }
}

/// `StringMatches`: `*` matches any run of characters; `\*` and `\\` escape.
fn glob_match(pattern: &str, s: &str) -> bool {
    let mut toks: Vec<Option<char>> = Vec::new();
    let mut it = pattern.chars();
    while let Some(c) = it.next() {
        match c {
            '\\' => toks.push(it.next()),
            '*' => toks.push(None),
            c => toks.push(Some(c)),
        }
    }
    let s: Vec<char> = s.chars().collect();
    let (mut p, mut i, mut star, mut mark) = (0usize, 0usize, None, 0usize);
    while i < s.len() {
        if p < toks.len() && toks[p].is_some_and(|c| c == s[i]) {
            p += 1;
            i += 1;
        } else if p < toks.len() && toks[p].is_none() {
            star = Some(p);
            mark = i;
            p += 1;
        } else if let Some(sp) = star {
            p = sp + 1;
            mark += 1;
            i = mark;
        } else {
            return false;
        }
    }
    while p < toks.len() && toks[p].is_none() {
        p += 1;
    }
    p == toks.len()
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn glob() {
        assert!(glob_match("*.log", "a.log"));
        assert!(glob_match("a*b*c", "aXXbYc"));
        assert!(!glob_match("a*b", "ac"));
        assert!(glob_match("a\\*", "a*"));
    }
}
