//! Choice rules: JSONPath comparisons with And/Or/Not, or a JSONata Condition.

use super::load::Loader;
use super::{Choice, ChoiceRule, CmpOperand, Template};
use crate::intrinsics;
use serde_json::{Map, Value};

impl Loader {
    pub(super) fn choice(&mut self, v: &Value, loc: &str, jsonpath: bool) -> Option<Choice> {
        let o = self.object(v, loc, "A choice rule must be an object")?;
        let next = match o.get("Next").and_then(Value::as_str) {
            Some(n) => n.to_string(),
            None => {
                self.err(loc, "A top-level choice rule needs a 'Next' state".into());
                String::new()
            }
        };
        let rule = if jsonpath {
            self.rule(o, loc, true)?
        } else {
            match o.get("Condition") {
                Some(c) => {
                    ChoiceRule::Condition(self.jsonata_template(c, &format!("{loc}/Condition")))
                }
                None => {
                    self.err(loc, "A JSONata choice rule needs a 'Condition'".into());
                    return None;
                }
            }
        };
        let (assign, output) = self.ending(o, loc, jsonpath);
        Some(Choice {
            rule,
            next,
            assign,
            output,
        })
    }

    pub(super) fn rule(
        &mut self,
        o: &Map<String, Value>,
        loc: &str,
        top: bool,
    ) -> Option<ChoiceRule> {
        let sub = |this: &mut Self, v: &Value, l: &str| -> Option<ChoiceRule> {
            let m = this.object(v, l, "A choice rule must be an object")?;
            this.rule(m, l, false)
        };
        for k in o.keys() {
            let ok = matches!(k.as_str(), "Variable" | "And" | "Or" | "Not" | "Comment")
                || (top && matches!(k.as_str(), "Next" | "Assign"))
                || OPERATORS.contains(&k.as_str());
            if !ok {
                self.err(
                    &format!("{loc}/{k}"),
                    format!("These fields are not allowed: {k}"),
                );
            }
        }
        if let Some(v) = o.get("And").or(o.get("Or")) {
            let key = if o.contains_key("And") { "And" } else { "Or" };
            let Some(a) = v.as_array().filter(|a| !a.is_empty()) else {
                self.err(
                    &format!("{loc}/{key}"),
                    format!("{key} must be a non-empty array"),
                );
                return None;
            };
            let mut rules = Vec::new();
            for (i, x) in a.iter().enumerate() {
                rules.push(sub(self, x, &format!("{loc}/{key}/{i}"))?);
            }
            return Some(if key == "And" {
                ChoiceRule::And(rules)
            } else {
                ChoiceRule::Or(rules)
            });
        }
        if let Some(v) = o.get("Not") {
            return Some(ChoiceRule::Not(Box::new(sub(
                self,
                v,
                &format!("{loc}/Not"),
            )?)));
        }
        let var_src = match o.get("Variable").and_then(Value::as_str) {
            Some(s) => s.to_string(),
            None => {
                self.err(loc, "A comparison needs a 'Variable' field".into());
                return None;
            }
        };
        let variable = match intrinsics::parse_reference(&var_src) {
            Ok(intrinsics::Arg::Path(p)) => Template::Path(p),
            Ok(intrinsics::Arg::Var(n, p)) => Template::Var(n, p),
            _ => {
                self.err(
                    &format!("{loc}/Variable"),
                    "Variable must be a valid JSONPath".into(),
                );
                return None;
            }
        };
        let ops: Vec<&String> = o
            .keys()
            .filter(|k| OPERATORS.contains(&k.as_str()))
            .collect();
        if ops.len() != 1 {
            self.err(
                loc,
                "A comparison needs exactly one comparison operator".into(),
            );
            return None;
        }
        let op = ops[0].clone();
        let val = &o[&op];
        let operand = if op.ends_with("Path") {
            match val.as_str().map(intrinsics::parse_reference) {
                Some(Ok(intrinsics::Arg::Path(p))) => CmpOperand::Path(Template::Path(p)),
                Some(Ok(intrinsics::Arg::Var(n, p))) => CmpOperand::Path(Template::Var(n, p)),
                _ => {
                    self.err(
                        &format!("{loc}/{op}"),
                        format!("{op} must be a valid JSONPath"),
                    );
                    return None;
                }
            }
        } else {
            let ok = match op.as_str() {
                o if o.starts_with("String") || o.starts_with("Timestamp") => val.is_string(),
                o if o.starts_with("Numeric") => val.is_number(),
                "BooleanEquals" | "IsNull" | "IsPresent" | "IsNumeric" | "IsString"
                | "IsBoolean" | "IsTimestamp" => val.is_boolean(),
                _ => true,
            };
            if !ok {
                self.err(
                    &format!("{loc}/{op}"),
                    format!("The value of {op} has the wrong type"),
                );
            }
            CmpOperand::Lit(val.clone())
        };
        Some(ChoiceRule::Cmp {
            variable,
            variable_src: var_src,
            op,
            operand,
        })
    }
}

/// Every Choice comparison operator.
pub const OPERATORS: &[&str] = &[
    "BooleanEquals",
    "BooleanEqualsPath",
    "IsBoolean",
    "IsNull",
    "IsNumeric",
    "IsPresent",
    "IsString",
    "IsTimestamp",
    "NumericEquals",
    "NumericEqualsPath",
    "NumericGreaterThan",
    "NumericGreaterThanPath",
    "NumericGreaterThanEquals",
    "NumericGreaterThanEqualsPath",
    "NumericLessThan",
    "NumericLessThanPath",
    "NumericLessThanEquals",
    "NumericLessThanEqualsPath",
    "StringEquals",
    "StringEqualsPath",
    "StringGreaterThan",
    "StringGreaterThanPath",
    "StringGreaterThanEquals",
    "StringGreaterThanEqualsPath",
    "StringLessThan",
    "StringLessThanPath",
    "StringLessThanEquals",
    "StringLessThanEqualsPath",
    "StringMatches",
    "TimestampEquals",
    "TimestampEqualsPath",
    "TimestampGreaterThan",
    "TimestampGreaterThanPath",
    "TimestampGreaterThanEquals",
    "TimestampGreaterThanEqualsPath",
    "TimestampLessThan",
    "TimestampLessThanPath",
    "TimestampLessThanEquals",
    "TimestampLessThanEqualsPath",
];
