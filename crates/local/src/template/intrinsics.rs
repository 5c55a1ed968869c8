//! Intrinsic functions (`Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::If`, ... in short `!Tag` or long
//! form) and conditions, resolved to local values; `DefinitionSubstitutions`.

use super::{NO_VALUE, Resolver, TemplateError, get, str_of, unsupported};
use serde_json::{Map, Value, json};
use serde_yaml::Value as Yaml;
use std::collections::{BTreeMap, BTreeSet};

impl Resolver<'_> {
    pub(super) fn reference(&self, name: &str, construct: &str) -> Result<Value, TemplateError> {
        let pseudo = match name {
            "AWS::Region" => Some(self.context.region.clone()),
            "AWS::AccountId" => Some(self.context.account.clone()),
            "AWS::StackName" => Some(self.context.stack_name.clone()),
            "AWS::Partition" => Some("aws".into()),
            "AWS::URLSuffix" => Some("amazonaws.com".into()),
            "AWS::StackId" => Some(self.arn(
                "cloudformation",
                &format!("stack/{}/local", self.context.stack_name),
            )),
            "AWS::NoValue" => Some(NO_VALUE.into()),
            _ => None,
        };
        if let Some(v) = pseudo {
            return Ok(Value::String(v));
        }
        if let Some(v) = self.parameters.get(name) {
            return Ok(Value::String(v.clone()));
        }
        let construct = format!("{construct}: Ref {name}");
        match self.resource_type(name) {
            Some("AWS::Serverless::Function" | "AWS::Lambda::Function") => {
                Ok(json!(self.function_name(name)?))
            }
            Some("AWS::Serverless::StateMachine" | "AWS::StepFunctions::StateMachine") => {
                Ok(json!(self.arn(
                    "states",
                    &format!("stateMachine:{}", self.state_machine_name(name)?)
                )))
            }
            Some("AWS::DynamoDB::Table" | "AWS::Serverless::SimpleTable") => {
                Ok(json!(self.table_name(name)?))
            }
            Some("AWS::Logs::LogGroup") => Ok(json!(self.named(name, "LogGroupName")?)),
            Some(other) => Err(unsupported(
                construct,
                format!("resources of type {other} are not emulated by the local stack"),
            )),
            None => Err(unsupported(construct, "no such parameter or resource")),
        }
    }

    pub(super) fn get_att(
        &self,
        id: &str,
        attribute: &str,
        construct: &str,
    ) -> Result<Value, TemplateError> {
        let construct = format!("{construct}: Fn::GetAtt {id}.{attribute}");
        let value = match (self.resource_type(id), attribute) {
            (Some("AWS::Serverless::Function" | "AWS::Lambda::Function"), "Arn") => {
                self.arn("lambda", &format!("function:{}", self.function_name(id)?))
            }
            (Some("AWS::Serverless::StateMachine" | "AWS::StepFunctions::StateMachine"), "Arn") => {
                self.arn(
                    "states",
                    &format!("stateMachine:{}", self.state_machine_name(id)?),
                )
            }
            (
                Some("AWS::Serverless::StateMachine" | "AWS::StepFunctions::StateMachine"),
                "Name",
            ) => self.state_machine_name(id)?,
            (Some("AWS::DynamoDB::Table"), "Arn") => {
                self.arn("dynamodb", &format!("table/{}", self.table_name(id)?))
            }
            (Some("AWS::Logs::LogGroup"), "Arn") => self.arn(
                "logs",
                &format!("log-group:{}:*", self.named(id, "LogGroupName")?),
            ),
            (Some("AWS::RDS::DBInstance"), "Endpoint.Address") => {
                self.database(&construct)?.host.clone()
            }
            (Some("AWS::RDS::DBInstance"), "Endpoint.Port") => {
                self.database(&construct)?.port.clone()
            }
            (Some("AWS::RDS::DBInstance"), "MasterUserSecret.SecretArn") => {
                self.database(&construct)?.secret_arn.clone()
            }
            (Some(kind), _) => {
                return Err(unsupported(
                    construct,
                    format!("attribute {attribute} of {kind} is not emulated by the local stack"),
                ));
            }
            (None, _) => return Err(unsupported(construct, "no such resource")),
        };
        Ok(Value::String(value))
    }

    pub(super) fn condition(&self, name: &str, construct: &str) -> Result<bool, TemplateError> {
        let cond = get(self.doc, "Conditions")
            .and_then(|c| get(c, name))
            .ok_or_else(|| unsupported(construct, format!("no condition named {name}")))?;
        self.truth(cond, &format!("{construct}: Condition {name}"))
    }

    pub(super) fn truth(&self, value: &Yaml, construct: &str) -> Result<bool, TemplateError> {
        let (function, args) = intrinsic(value).ok_or_else(|| {
            unsupported(
                construct,
                "a condition must be Fn::Equals, Fn::Not, Fn::And, Fn::Or or Condition",
            )
        })?;
        let list = |n: Option<usize>| -> Result<Vec<&Yaml>, TemplateError> {
            match args.as_sequence() {
                Some(items) if n.is_none_or(|n| items.len() == n) => Ok(items.iter().collect()),
                _ => Err(unsupported(
                    construct,
                    format!("{function} has the wrong arguments"),
                )),
            }
        };
        match function {
            "Fn::Equals" => {
                let items = list(Some(2))?;
                // CloudFormation compares values as strings: `!Equals [!Ref Size, 0]` holds for "0".
                let scalar = |v: Value| match v {
                    Value::Number(n) => Value::String(n.to_string()),
                    Value::Bool(b) => Value::String(b.to_string()),
                    other => other,
                };
                Ok(scalar(self.eval(items[0], construct)?)
                    == scalar(self.eval(items[1], construct)?))
            }
            "Fn::Not" => Ok(!self.truth(list(Some(1))?[0], construct)?),
            "Fn::And" => {
                for item in list(None)? {
                    if !self.truth(item, construct)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            "Fn::Or" => {
                for item in list(None)? {
                    if self.truth(item, construct)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            "Condition" => {
                let name = args
                    .as_str()
                    .ok_or_else(|| unsupported(construct, "Condition needs a name"))?;
                self.condition(name, construct)
            }
            other => Err(unsupported(
                construct,
                format!("{other} is not a condition function"),
            )),
        }
    }

    /// Resolves a template value to JSON; `construct` names where it comes from, for errors.
    pub(super) fn eval(&self, value: &Yaml, construct: &str) -> Result<Value, TemplateError> {
        if let Some((function, args)) = intrinsic(value) {
            return self.eval_intrinsic(function, args, construct);
        }
        Ok(match value {
            Yaml::Null => Value::Null,
            Yaml::Bool(b) => json!(b),
            Yaml::Number(n) => serde_json::to_value(n).unwrap_or(Value::Null),
            Yaml::String(s) => json!(s),
            Yaml::Sequence(items) => {
                let mut out = Vec::new();
                for item in items {
                    let v = self.eval(item, construct)?;
                    if v != json!(NO_VALUE) {
                        out.push(v);
                    }
                }
                Value::Array(out)
            }
            Yaml::Mapping(map) => {
                let mut out = Map::new();
                for (k, v) in map {
                    let key = str_of(k).unwrap_or_default();
                    let v = self.eval(v, &format!("{construct}.{key}"))?;
                    if v != json!(NO_VALUE) {
                        out.insert(key, v);
                    }
                }
                Value::Object(out)
            }
            Yaml::Tagged(_) => unreachable!("tags are intrinsics"),
        })
    }

    pub(super) fn eval_string(
        &self,
        value: &Yaml,
        construct: &str,
    ) -> Result<String, TemplateError> {
        match self.eval(value, construct)? {
            Value::String(s) => Ok(s),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            other => Err(unsupported(
                construct,
                format!("expected a string, found {other}"),
            )),
        }
    }

    pub(super) fn eval_intrinsic(
        &self,
        function: &str,
        args: &Yaml,
        construct: &str,
    ) -> Result<Value, TemplateError> {
        let seq = || {
            args.as_sequence()
                .ok_or_else(|| unsupported(construct, format!("{function} needs a list")))
        };
        match function {
            "Ref" => {
                let name = args
                    .as_str()
                    .ok_or_else(|| unsupported(construct, "Ref needs a name"))?;
                self.reference(name, construct)
            }
            "Fn::GetAtt" => {
                let (id, attribute) = match args {
                    Yaml::String(s) => s
                        .split_once('.')
                        .map(|(a, b)| (a.to_owned(), b.to_owned()))
                        .ok_or_else(|| {
                            unsupported(construct, format!("GetAtt {s} has no attribute"))
                        })?,
                    Yaml::Sequence(items) if items.len() == 2 => (
                        str_of(&items[0]).unwrap_or_default(),
                        self.eval_string(&items[1], construct)?,
                    ),
                    _ => return Err(unsupported(construct, "GetAtt needs resource.attribute")),
                };
                self.get_att(&id, &attribute, construct)
            }
            "Fn::Sub" => {
                let (text, vars) = match args {
                    Yaml::String(s) => (s.clone(), None),
                    Yaml::Sequence(items) if items.len() == 2 => (
                        items[0]
                            .as_str()
                            .ok_or_else(|| unsupported(construct, "Sub needs a string"))?
                            .to_owned(),
                        Some(&items[1]),
                    ),
                    _ => return Err(unsupported(construct, "Sub needs a string")),
                };
                Ok(Value::String(self.substitute(&text, vars, construct)?))
            }
            "Fn::If" => {
                let items = seq()?;
                if items.len() != 3 {
                    return Err(unsupported(construct, "If needs [condition, then, else]"));
                }
                let name = items[0]
                    .as_str()
                    .ok_or_else(|| unsupported(construct, "If needs a condition name"))?;
                if self.condition(name, construct)? {
                    self.eval(&items[1], construct)
                } else {
                    self.eval(&items[2], construct)
                }
            }
            "Fn::Join" => {
                let items = seq()?;
                if items.len() != 2 {
                    return Err(unsupported(construct, "Join needs [delimiter, list]"));
                }
                let delimiter = self.eval_string(&items[0], construct)?;
                let parts = match self.eval(&items[1], construct)? {
                    Value::Array(parts) => parts,
                    _ => return Err(unsupported(construct, "Join needs a list")),
                };
                let parts: Vec<String> = parts
                    .into_iter()
                    .map(|p| match p {
                        Value::String(s) => s,
                        other => other.to_string(),
                    })
                    .collect();
                Ok(Value::String(parts.join(&delimiter)))
            }
            "Fn::Select" => {
                let items = seq()?;
                if items.len() != 2 {
                    return Err(unsupported(construct, "Select needs [index, list]"));
                }
                let index: usize = self
                    .eval_string(&items[0], construct)?
                    .parse()
                    .map_err(|_| unsupported(construct, "Select needs an index"))?;
                match self.eval(&items[1], construct)? {
                    Value::Array(list) => list
                        .get(index)
                        .cloned()
                        .ok_or_else(|| unsupported(construct, "Select index out of range")),
                    _ => Err(unsupported(construct, "Select needs a list")),
                }
            }
            "Fn::Equals" | "Fn::Not" | "Fn::And" | "Fn::Or" | "Condition" => {
                let mut wrapper = serde_yaml::Mapping::new();
                wrapper.insert(Yaml::String(function.into()), args.clone());
                Ok(json!(self.truth(&Yaml::Mapping(wrapper), construct)?))
            }
            other => Err(unsupported(
                construct,
                format!("the intrinsic function {other} is not supported by the local stack"),
            )),
        }
    }

    pub(super) fn substitute(
        &self,
        text: &str,
        vars: Option<&Yaml>,
        construct: &str,
    ) -> Result<String, TemplateError> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            if let Some(literal) = after.strip_prefix('!') {
                // `${!Literal}` stays as `${Literal}`.
                out.push_str("${");
                rest = literal;
                continue;
            }
            let end = after
                .find('}')
                .ok_or_else(|| unsupported(construct, "unclosed ${ in Sub"))?;
            let name = &after[..end];
            let value = match vars.and_then(|v| get(v, name)) {
                Some(v) => self.eval_string(v, construct)?,
                None => match name.split_once('.') {
                    Some((id, attribute)) if !name.starts_with("AWS::") => {
                        match self.get_att(id, attribute, construct)? {
                            Value::String(s) => s,
                            other => other.to_string(),
                        }
                    }
                    _ => match self.reference(name, construct)? {
                        Value::String(s) => s,
                        other => other.to_string(),
                    },
                },
            };
            out.push_str(&value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// `(function, argument)` of an intrinsic, in short (`!Ref x`) or long (`{Ref: x}`) form.
pub(super) fn intrinsic(value: &Yaml) -> Option<(&str, &Yaml)> {
    match value {
        Yaml::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let full = match name {
                "Ref" => "Ref",
                "Condition" => "Condition",
                "GetAtt" => "Fn::GetAtt",
                "Sub" => "Fn::Sub",
                "If" => "Fn::If",
                "Join" => "Fn::Join",
                "Select" => "Fn::Select",
                "Equals" => "Fn::Equals",
                "Not" => "Fn::Not",
                "And" => "Fn::And",
                "Or" => "Fn::Or",
                "Split" => "Fn::Split",
                "FindInMap" => "Fn::FindInMap",
                "ImportValue" => "Fn::ImportValue",
                "Base64" => "Fn::Base64",
                "GetAZs" => "Fn::GetAZs",
                "Cidr" => "Fn::Cidr",
                _ => "Fn::Unknown",
            };
            Some((full, &tagged.value))
        }
        Yaml::Mapping(map) if map.len() == 1 => {
            let (k, v) = map.iter().next()?;
            let k = k.as_str()?;
            (k == "Ref" || k == "Condition" || k.starts_with("Fn::")).then_some((k, v))
        }
        _ => None,
    }
}

/// CloudFormation hands custom resources every scalar as a string.
pub(super) fn stringify(value: Value) -> Value {
    match value {
        Value::Number(n) => Value::String(n.to_string()),
        Value::Bool(b) => Value::String(b.to_string()),
        Value::Array(items) => Value::Array(items.into_iter().map(stringify).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, stringify(v))).collect())
        }
        other => other,
    }
}

/// The `${Name}`s of a definition, as [`substitute_definition`] replaces them.
pub fn placeholders(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        names.insert(after[..end].to_owned());
        rest = &after[end + 1..];
    }
    names
}

/// A template value as JSON, with short-form intrinsics (`!Ref X`, `!GetAtt X.Arn`, `!Sub ...`)
/// in their long form (`{"Ref": "X"}`, `{"Fn::GetAtt": ["X", "Arn"]}`, `{"Fn::Sub": ...}`),
/// nothing resolved: what the template says, for tools that read it as CloudFormation does.
pub fn long_form(value: &Yaml) -> Value {
    match value {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => json!(b),
        Yaml::Number(n) => serde_json::to_value(n).unwrap_or(Value::Null),
        Yaml::String(s) => json!(s),
        Yaml::Sequence(items) => Value::Array(items.iter().map(long_form).collect()),
        Yaml::Mapping(map) => Value::Object(
            map.iter()
                .filter_map(|(k, v)| Some((str_of(k)?, long_form(v))))
                .collect(),
        ),
        Yaml::Tagged(tagged) => {
            let name = match intrinsic(value) {
                Some((known, _)) if known != "Fn::Unknown" => known.to_owned(),
                _ => format!("Fn::{}", tagged.tag.to_string().trim_start_matches('!')),
            };
            let argument = match (name.as_str(), &tagged.value) {
                ("Fn::GetAtt", Yaml::String(dotted)) => match dotted.split_once('.') {
                    Some((id, attribute)) => json!([id, attribute]),
                    None => json!([dotted]),
                },
                _ => long_form(&tagged.value),
            };
            json!({ name: argument })
        }
    }
}

/// Replaces `${Name}` in a definition the way SAM's `DefinitionSubstitutions` does; the name
/// of a missing substitution is the error.
pub fn substitute_definition(
    text: &str,
    values: &BTreeMap<String, String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                let name = &after[..end];
                let value = values.get(name).ok_or_else(|| name.to_owned())?;
                out.push_str(value);
                rest = &after[end + 1..];
            }
            None => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}
