//! Reading `template.yaml`: the functions, state machines, tables, custom resources and event
//! rules the local stack runs, with CloudFormation's intrinsic functions resolved to local
//! values. Anything the stack cannot stand in for fails with an error naming the construct, but
//! only when something the stack runs depends on it (the VPC, alarms or the dashboard are never
//! read).

use serde_json::{Map, Value, json};
use serde_yaml::Value as Yaml;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TemplateError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("template is not valid YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("{construct}: {message}")]
    Unsupported { construct: String, message: String },
}

fn unsupported(construct: impl Into<String>, message: impl Into<String>) -> TemplateError {
    TemplateError::Unsupported {
        construct: construct.into(),
        message: message.into(),
    }
}

/// Where the stack runs and what stands in for the resources that are not emulated here.
#[derive(Debug, Clone)]
pub struct LocalContext {
    pub stack_name: String,
    pub region: String,
    pub account: String,
    /// Parameter values given on the command line (override the template's defaults).
    pub parameters: HashMap<String, String>,
    /// `Endpoint.Address`, `Endpoint.Port` and `MasterUserSecret.SecretArn` of any
    /// `AWS::RDS::DBInstance`: the local MariaDB and its secret.
    pub database: Option<LocalDatabase>,
}

#[derive(Debug, Clone)]
pub struct LocalDatabase {
    pub host: String,
    pub port: String,
    pub secret_arn: String,
}

/// A Lambda function of the template.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionSpec {
    pub logical_id: String,
    pub name: String,
    pub arn: String,
    /// The folder of the function's crate (`CodeUri`).
    pub code_uri: String,
    /// The binary cargo builds for it.
    pub binary: String,
    pub environment: BTreeMap<String, String>,
    pub timeout_seconds: u64,
    pub memory_mb: u64,
    pub reserved_concurrency: Option<u64>,
    pub json_logs: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StateMachineSpec {
    pub logical_id: String,
    pub name: String,
    pub arn: String,
    /// `STANDARD` or `EXPRESS`.
    pub kind: String,
    /// The definition after `DefinitionSubstitutions`.
    pub definition: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TableSpec {
    pub logical_id: String,
    pub name: String,
    /// (attribute, KeyType, AttributeType)
    pub keys: Vec<(String, String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CustomResourceSpec {
    pub logical_id: String,
    pub resource_type: String,
    /// The function (ARN) that serves it.
    pub service_token: String,
    /// Properties as CloudFormation sends them: every scalar as a string.
    pub properties: Map<String, Value>,
}

/// What triggers a rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    Pattern(Value),
    /// A period in seconds (`rate(...)`).
    Every(u64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct RuleSpec {
    /// `<resource>` or `<function>.<event>` for rules declared as SAM function events.
    pub name: String,
    pub trigger: Trigger,
    /// The ARN of a local function or state machine.
    pub target: String,
    /// A constant input replacing the event, when the rule gives one.
    pub input: Option<String>,
}

/// Everything the local stack runs from the template.
#[derive(Debug, Clone, Default)]
pub struct StackModel {
    pub functions: Vec<FunctionSpec>,
    pub state_machines: Vec<StateMachineSpec>,
    pub tables: Vec<TableSpec>,
    pub custom_resources: Vec<CustomResourceSpec>,
    pub rules: Vec<RuleSpec>,
}

/// Reads a template file and resolves what the local stack runs. `root` is the folder that
/// `CodeUri` and `DefinitionUri` are relative to.
pub fn load(path: &Path, context: &LocalContext) -> Result<StackModel, TemplateError> {
    let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let root = path.parent().map(Path::to_path_buf).unwrap_or_default();
    parse(&text, &root, context)
}

pub fn parse(text: &str, root: &Path, context: &LocalContext) -> Result<StackModel, TemplateError> {
    let doc: Yaml = serde_yaml::from_str(text)?;
    let resolver = Resolver::new(&doc, root.to_path_buf(), context)?;
    resolver.model()
}

struct Resolver<'a> {
    doc: &'a Yaml,
    root: PathBuf,
    context: &'a LocalContext,
    resources: BTreeMap<String, &'a Yaml>,
    parameters: HashMap<String, String>,
}

fn get<'a>(value: &'a Yaml, key: &str) -> Option<&'a Yaml> {
    value.as_mapping().and_then(|m| m.get(key))
}

fn str_of(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The sentinel `AWS::NoValue` resolves to; removed from maps and lists.
const NO_VALUE: &str = "\u{0}AWS::NoValue";

impl<'a> Resolver<'a> {
    fn new(doc: &'a Yaml, root: PathBuf, context: &'a LocalContext) -> Result<Self, TemplateError> {
        let mut resources = BTreeMap::new();
        if let Some(map) = get(doc, "Resources").and_then(Yaml::as_mapping) {
            for (k, v) in map {
                if let Some(id) = k.as_str() {
                    resources.insert(id.to_owned(), v);
                }
            }
        }
        let mut parameters = HashMap::new();
        if let Some(map) = get(doc, "Parameters").and_then(Yaml::as_mapping) {
            for (k, v) in map {
                let Some(name) = k.as_str() else { continue };
                let value = context
                    .parameters
                    .get(name)
                    .cloned()
                    .or_else(|| get(v, "Default").and_then(str_of));
                if let Some(value) = value {
                    parameters.insert(name.to_owned(), value);
                }
            }
        }
        for name in context.parameters.keys() {
            if !parameters.contains_key(name) {
                return Err(unsupported(
                    format!("parameter {name}"),
                    "is not declared in the template",
                ));
            }
        }
        Ok(Resolver {
            doc,
            root,
            context,
            resources,
            parameters,
        })
    }

    fn resource_type(&self, id: &str) -> Option<&'a str> {
        self.resources
            .get(id)
            .and_then(|r| get(r, "Type"))
            .and_then(Yaml::as_str)
    }

    fn properties(&self, id: &str) -> Option<&'a Yaml> {
        self.resources.get(id).and_then(|r| get(r, "Properties"))
    }

    fn arn(&self, service: &str, rest: &str) -> String {
        format!(
            "arn:aws:{service}:{}:{}:{rest}",
            self.context.region, self.context.account
        )
    }

    /// The local name of a named resource: its name property, else `<stack>-<LogicalId>`.
    fn named(&self, id: &str, property: &str) -> Result<String, TemplateError> {
        match self.properties(id).and_then(|p| get(p, property)) {
            Some(v) => self.eval_string(v, &format!("{id}.{property}")),
            None => Ok(format!("{}-{id}", self.context.stack_name)),
        }
    }

    fn function_name(&self, id: &str) -> Result<String, TemplateError> {
        self.named(id, "FunctionName")
    }

    fn state_machine_name(&self, id: &str) -> Result<String, TemplateError> {
        self.named(id, "Name")
    }

    fn table_name(&self, id: &str) -> Result<String, TemplateError> {
        self.named(id, "TableName")
    }

    fn database(&self, construct: &str) -> Result<&LocalDatabase, TemplateError> {
        self.context.database.as_ref().ok_or_else(|| {
            unsupported(
                construct,
                "needs the local database (start scripts/dev-env.sh up)",
            )
        })
    }

    fn reference(&self, name: &str, construct: &str) -> Result<Value, TemplateError> {
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

    fn get_att(&self, id: &str, attribute: &str, construct: &str) -> Result<Value, TemplateError> {
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

    fn condition(&self, name: &str, construct: &str) -> Result<bool, TemplateError> {
        let cond = get(self.doc, "Conditions")
            .and_then(|c| get(c, name))
            .ok_or_else(|| unsupported(construct, format!("no condition named {name}")))?;
        self.truth(cond, &format!("{construct}: Condition {name}"))
    }

    fn truth(&self, value: &Yaml, construct: &str) -> Result<bool, TemplateError> {
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
    fn eval(&self, value: &Yaml, construct: &str) -> Result<Value, TemplateError> {
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

    fn eval_string(&self, value: &Yaml, construct: &str) -> Result<String, TemplateError> {
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

    fn eval_intrinsic(
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

    fn substitute(
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

    /// Global function properties merged under each function's own.
    fn function_property(&self, id: &str, key: &str) -> Option<&'a Yaml> {
        self.properties(id).and_then(|p| get(p, key)).or_else(|| {
            get(self.doc, "Globals")
                .and_then(|g| get(g, "Function"))
                .and_then(|f| get(f, key))
        })
    }

    fn number(&self, id: &str, key: &str, default: u64) -> Result<u64, TemplateError> {
        match self.function_property(id, key) {
            None => Ok(default),
            Some(v) => self
                .eval_string(v, &format!("{id}.{key}"))?
                .parse()
                .map_err(|_| unsupported(format!("{id}.{key}"), "is not a whole number")),
        }
    }

    fn function(&self, id: &str) -> Result<FunctionSpec, TemplateError> {
        let construct = format!("function {id}");
        let code_uri = match self.properties(id).and_then(|p| get(p, "CodeUri")) {
            Some(v) => self.eval_string(v, &format!("{id}.CodeUri"))?,
            None => {
                return Err(unsupported(
                    construct,
                    "has no CodeUri (inline code is not supported)",
                ));
            }
        };
        let binary = match self
            .resources
            .get(id)
            .and_then(|r| get(r, "Metadata"))
            .and_then(|m| get(m, "BuildProperties"))
            .and_then(|b| get(b, "Binary"))
            .and_then(str_of)
        {
            Some(binary) => binary,
            None => crate_name(&self.root.join(&code_uri)).ok_or_else(|| {
                unsupported(
                    &construct,
                    format!("no Cargo.toml with a package name in {code_uri}"),
                )
            })?,
        };
        let mut environment = BTreeMap::new();
        let globals = get(self.doc, "Globals")
            .and_then(|g| get(g, "Function"))
            .and_then(|f| get(f, "Environment"))
            .and_then(|e| get(e, "Variables"));
        let own = self
            .properties(id)
            .and_then(|p| get(p, "Environment"))
            .and_then(|e| get(e, "Variables"));
        for vars in [globals, own].into_iter().flatten() {
            if let Some(map) = vars.as_mapping() {
                for (k, v) in map {
                    let key = str_of(k).unwrap_or_default();
                    let value = self.eval(v, &format!("{id}.Environment.{key}"))?;
                    match value {
                        Value::String(s) if s == NO_VALUE => {
                            environment.remove(&key);
                        }
                        Value::String(s) => {
                            environment.insert(key, s);
                        }
                        other => {
                            environment.insert(key, other.to_string());
                        }
                    }
                }
            }
        }
        let json_logs = self
            .function_property(id, "LoggingConfig")
            .and_then(|l| get(l, "LogFormat"))
            .and_then(Yaml::as_str)
            == Some("JSON");
        let reserved = match self.function_property(id, "ReservedConcurrentExecutions") {
            Some(_) => Some(self.number(id, "ReservedConcurrentExecutions", 0)?),
            None => None,
        };
        let name = self.function_name(id)?;
        Ok(FunctionSpec {
            logical_id: id.to_owned(),
            arn: self.arn("lambda", &format!("function:{name}")),
            name,
            code_uri,
            binary,
            environment,
            timeout_seconds: self.number(id, "Timeout", 3)?,
            memory_mb: self.number(id, "MemorySize", 128)?,
            reserved_concurrency: reserved,
            json_logs,
        })
    }

    fn state_machine(&self, id: &str) -> Result<StateMachineSpec, TemplateError> {
        let construct = format!("state machine {id}");
        let props = self.properties(id);
        let definition = match (
            props.and_then(|p| get(p, "DefinitionUri")),
            props.and_then(|p| get(p, "Definition")),
        ) {
            (Some(uri), _) => {
                let uri = self.eval_string(uri, &format!("{id}.DefinitionUri"))?;
                let path = self.root.join(&uri);
                std::fs::read_to_string(&path).map_err(|e| {
                    unsupported(&construct, format!("cannot read DefinitionUri {uri}: {e}"))
                })?
            }
            (None, Some(inline)) => self.eval(inline, &format!("{id}.Definition"))?.to_string(),
            (None, None) => {
                return Err(unsupported(
                    construct,
                    "has neither DefinitionUri nor Definition",
                ));
            }
        };
        let mut substitutions = HashMap::new();
        if let Some(map) = props
            .and_then(|p| get(p, "DefinitionSubstitutions"))
            .and_then(Yaml::as_mapping)
        {
            for (k, v) in map {
                let key = str_of(k).unwrap_or_default();
                let value = self.eval_string(v, &format!("{id}.DefinitionSubstitutions.{key}"))?;
                substitutions.insert(key, value);
            }
        }
        let definition = substitute_definition(&definition, &substitutions)
            .map_err(|missing| unsupported(&construct, format!("the definition uses ${{{missing}}}, which DefinitionSubstitutions does not give")))?;
        let kind = match props.and_then(|p| get(p, "Type")) {
            Some(v) => self.eval_string(v, &format!("{id}.Type"))?,
            None => "STANDARD".into(),
        };
        let name = self.state_machine_name(id)?;
        Ok(StateMachineSpec {
            logical_id: id.to_owned(),
            arn: self.arn("states", &format!("stateMachine:{name}")),
            name,
            kind,
            definition,
        })
    }

    fn table(&self, id: &str) -> Result<TableSpec, TemplateError> {
        let construct = format!("table {id}");
        let props = self
            .properties(id)
            .ok_or_else(|| unsupported(&construct, "has no Properties"))?;
        let attributes = self.eval(
            get(props, "AttributeDefinitions").unwrap_or(&Yaml::Null),
            &format!("{id}.AttributeDefinitions"),
        )?;
        let schema = self.eval(
            get(props, "KeySchema").unwrap_or(&Yaml::Null),
            &format!("{id}.KeySchema"),
        )?;
        let mut keys = Vec::new();
        for key in schema.as_array().into_iter().flatten() {
            let name = key["AttributeName"].as_str().unwrap_or_default().to_owned();
            let kind = key["KeyType"].as_str().unwrap_or_default().to_owned();
            let ty = attributes
                .as_array()
                .into_iter()
                .flatten()
                .find(|a| a["AttributeName"] == json!(name))
                .and_then(|a| a["AttributeType"].as_str())
                .ok_or_else(|| {
                    unsupported(&construct, format!("no AttributeDefinition for key {name}"))
                })?
                .to_owned();
            keys.push((name, kind, ty));
        }
        if keys.is_empty() {
            return Err(unsupported(construct, "has no KeySchema"));
        }
        Ok(TableSpec {
            logical_id: id.to_owned(),
            name: self.table_name(id)?,
            keys,
        })
    }

    fn custom_resource(
        &self,
        id: &str,
        resource_type: &str,
    ) -> Result<CustomResourceSpec, TemplateError> {
        let construct = format!("custom resource {id}");
        let props = self.eval(
            self.properties(id).unwrap_or(&Yaml::Null),
            &format!("{id}.Properties"),
        )?;
        let mut properties = Map::new();
        for (k, v) in props.as_object().cloned().unwrap_or_default() {
            properties.insert(k, stringify(v));
        }
        let service_token = properties
            .get("ServiceToken")
            .and_then(Value::as_str)
            .ok_or_else(|| unsupported(&construct, "has no ServiceToken"))?
            .to_owned();
        Ok(CustomResourceSpec {
            logical_id: id.to_owned(),
            resource_type: resource_type.to_owned(),
            service_token,
            properties,
        })
    }

    fn rate(&self, expression: &str, construct: &str) -> Result<u64, TemplateError> {
        let inner = expression
            .strip_prefix("rate(")
            .and_then(|e| e.strip_suffix(')'))
            .ok_or_else(|| {
                unsupported(
                    construct,
                    format!(
                        "schedule {expression:?}: only rate(...) expressions are supported locally"
                    ),
                )
            })?;
        let (n, unit) = inner
            .trim()
            .split_once(' ')
            .ok_or_else(|| unsupported(construct, format!("malformed rate {expression:?}")))?;
        let n: u64 = n
            .parse()
            .map_err(|_| unsupported(construct, format!("malformed rate {expression:?}")))?;
        let unit = match unit.trim() {
            "minute" | "minutes" => 60,
            "hour" | "hours" => 3600,
            "day" | "days" => 86_400,
            other => {
                return Err(unsupported(
                    construct,
                    format!("unknown rate unit {other:?}"),
                ));
            }
        };
        Ok(n * unit)
    }

    fn function_rules(&self, id: &str, function_arn: &str) -> Result<Vec<RuleSpec>, TemplateError> {
        let mut rules = Vec::new();
        let Some(events) = self
            .properties(id)
            .and_then(|p| get(p, "Events"))
            .and_then(Yaml::as_mapping)
        else {
            return Ok(rules);
        };
        for (name, event) in events {
            let name = str_of(name).unwrap_or_default();
            let construct = format!("event {name} of function {id}");
            let kind = get(event, "Type")
                .and_then(Yaml::as_str)
                .unwrap_or_default();
            let props = get(event, "Properties").unwrap_or(&Yaml::Null);
            let input = match get(props, "Input") {
                Some(v) => Some(self.eval_string(v, &construct)?),
                None => None,
            };
            let trigger = match kind {
                "EventBridgeRule" | "CloudWatchEvent" => {
                    let pattern = get(props, "Pattern")
                        .ok_or_else(|| unsupported(&construct, "has no Pattern"))?;
                    Trigger::Pattern(self.eval(pattern, &construct)?)
                }
                "Schedule" | "ScheduleV2" => {
                    if get(props, "Enabled").and_then(Yaml::as_bool) == Some(false) {
                        continue;
                    }
                    let expression = get(props, "Schedule")
                        .or_else(|| get(props, "ScheduleExpression"))
                        .ok_or_else(|| unsupported(&construct, "has no Schedule"))?;
                    let expression = self.eval_string(expression, &construct)?;
                    Trigger::Every(self.rate(&expression, &construct)?)
                }
                other => {
                    return Err(unsupported(
                        construct,
                        format!("function events of type {other} are not supported locally"),
                    ));
                }
            };
            rules.push(RuleSpec {
                name: format!("{id}.{name}"),
                trigger,
                target: function_arn.to_owned(),
                input,
            });
        }
        Ok(rules)
    }

    fn events_rule(&self, id: &str) -> Result<Vec<RuleSpec>, TemplateError> {
        let construct = format!("rule {id}");
        let props = self.properties(id).unwrap_or(&Yaml::Null);
        if let Some(state) = get(props, "State")
            && self.eval_string(state, &construct)? == "DISABLED"
        {
            return Ok(Vec::new());
        }
        let trigger = match (get(props, "EventPattern"), get(props, "ScheduleExpression")) {
            (Some(p), _) => Trigger::Pattern(self.eval(p, &construct)?),
            (None, Some(s)) => {
                Trigger::Every(self.rate(&self.eval_string(s, &construct)?, &construct)?)
            }
            _ => {
                return Err(unsupported(
                    construct,
                    "has neither EventPattern nor ScheduleExpression",
                ));
            }
        };
        let targets = self.eval(get(props, "Targets").unwrap_or(&Yaml::Null), &construct)?;
        let mut rules = Vec::new();
        for target in targets.as_array().into_iter().flatten() {
            let arn = target["Arn"]
                .as_str()
                .ok_or_else(|| unsupported(&construct, "target without Arn"))?;
            rules.push(RuleSpec {
                name: id.to_owned(),
                trigger: trigger.clone(),
                target: arn.to_owned(),
                input: target["Input"].as_str().map(str::to_owned),
            });
        }
        Ok(rules)
    }

    fn model(&self) -> Result<StackModel, TemplateError> {
        let mut model = StackModel::default();
        for (id, resource) in &self.resources {
            if let Some(condition) = get(resource, "Condition").and_then(Yaml::as_str)
                && !self.condition(condition, &format!("resource {id}"))?
            {
                continue;
            }
            match self.resource_type(id).unwrap_or_default() {
                "AWS::Serverless::Function" => {
                    let function = self.function(id)?;
                    model.rules.extend(self.function_rules(id, &function.arn)?);
                    model.functions.push(function);
                }
                "AWS::Serverless::StateMachine" => {
                    model.state_machines.push(self.state_machine(id)?)
                }
                "AWS::DynamoDB::Table" => model.tables.push(self.table(id)?),
                "AWS::Events::Rule" => model.rules.extend(self.events_rule(id)?),
                kind if kind.starts_with("Custom::")
                    || kind == "AWS::CloudFormation::CustomResource" =>
                {
                    model.custom_resources.push(self.custom_resource(id, kind)?)
                }
                "AWS::Lambda::Function" | "AWS::StepFunctions::StateMachine" => {
                    return Err(unsupported(
                        format!("resource {id}"),
                        "declare functions and state machines with the AWS::Serverless types",
                    ));
                }
                // Networking, IAM, logs, alarms and the dashboard have no local behaviour.
                _ => {}
            }
        }
        // CloudFormation creates custom resources after what they depend on; keep template
        // order otherwise (BTreeMap order is alphabetical, which is as good as any here).
        Ok(model)
    }
}

/// `(function, argument)` of an intrinsic, in short (`!Ref x`) or long (`{Ref: x}`) form.
fn intrinsic(value: &Yaml) -> Option<(&str, &Yaml)> {
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
fn stringify(value: Value) -> Value {
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

/// Replaces `${Name}` in a definition the way SAM's `DefinitionSubstitutions` does; the name
/// of a missing substitution is the error.
pub fn substitute_definition(
    text: &str,
    values: &HashMap<String, String>,
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

/// The package name in `<dir>/Cargo.toml`.
fn crate_name(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("Cargo.toml")).ok()?;
    let mut in_package = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package && let Some(rest) = line.strip_prefix("name") {
            let value = rest
                .trim_start()
                .strip_prefix('=')?
                .trim()
                .trim_matches('"');
            return Some(value.to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> LocalContext {
        LocalContext {
            stack_name: "demo".into(),
            region: "us-east-1".into(),
            account: "123456789012".into(),
            parameters: HashMap::from([("Size".into(), "5".into())]),
            database: Some(LocalDatabase {
                host: "127.0.0.1".into(),
                port: "3307".into(),
                secret_arn: "arn:secret".into(),
            }),
        }
    }

    const TEMPLATE: &str = r#"
Parameters:
  Size: {Type: Number, Default: 1}
  Mode: {Type: String, Default: emf}
Conditions:
  Big: !Not [!Equals [!Ref Size, 1]]
  Small: !Equals [!Ref Mode, emf]
Globals:
  Function:
    Timeout: 10
    Environment:
      Variables:
        TABLE: !Ref Leases
        MODE: !Ref Mode
Resources:
  Leases:
    Type: AWS::DynamoDB::Table
    Properties:
      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
  Db:
    Type: AWS::RDS::DBInstance
  Fn:
    Type: AWS::Serverless::Function
    Metadata: {BuildProperties: {Binary: acquire}}
    Properties:
      CodeUri: handlers/acquire
      Timeout: 20
      Environment:
        Variables:
          HOST: !GetAtt Db.Endpoint.Address
          SIZE: !If [Big, !Sub "big-${Size}", small]
          GONE: !If [Big, !Ref AWS::NoValue, here]
      Events:
        Tick: {Type: Schedule, Properties: {Schedule: rate(2 minutes), Input: !Sub '{"s": "${AWS::StackName}"}'}}
  Machine:
    Type: AWS::Serverless::StateMachine
    Properties:
      Name: !Sub ${AWS::StackName}-machine
      Definition: {StartAt: A, States: {A: {Type: Task, Resource: "${FnArn}", End: true}}}
      DefinitionSubstitutions:
        FnArn: !GetAtt Fn.Arn
  Pool:
    Type: Custom::Pool
    Properties:
      ServiceToken: !GetAtt Fn.Arn
      Budget: !Ref Size
      Flag: true
  Vpc:
    Type: AWS::EC2::VPC
"#;

    #[test]
    fn resolves_what_the_stack_runs() {
        let model = parse(TEMPLATE, Path::new("."), &context()).unwrap();
        let f = &model.functions[0];
        assert_eq!(f.name, "demo-Fn");
        assert_eq!(
            f.arn,
            "arn:aws:lambda:us-east-1:123456789012:function:demo-Fn"
        );
        assert_eq!((f.binary.as_str(), f.timeout_seconds), ("acquire", 20));
        let env: Vec<(&str, &str)> = f
            .environment
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            env,
            [
                ("HOST", "127.0.0.1"),
                ("MODE", "emf"),
                ("SIZE", "big-5"),
                ("TABLE", "demo-Leases")
            ]
        );
        let machine = &model.state_machines[0];
        assert_eq!(machine.name, "demo-machine");
        assert!(machine.definition.contains(&f.arn));
        assert_eq!(
            model.tables[0].keys,
            [("pk".to_owned(), "HASH".to_owned(), "S".to_owned())]
        );
        let pool = &model.custom_resources[0];
        assert_eq!(pool.properties["Budget"], json!("5"));
        assert_eq!(
            pool.properties["Flag"],
            json!("true"),
            "scalars arrive as strings"
        );
        assert_eq!(model.rules[0].trigger, Trigger::Every(120));
        // Parameters are strings; `!Equals [!Ref Size, 1]` compares "5" with "1".
        let ctx = LocalContext {
            parameters: HashMap::from([("Size".into(), "1".into())]),
            ..context()
        };
        let model = parse(TEMPLATE, Path::new("."), &ctx).unwrap();
        assert_eq!(model.functions[0].environment["SIZE"], "small");
        assert_eq!(model.rules[0].input.as_deref(), Some(r#"{"s": "demo"}"#));
    }

    #[test]
    fn unsupported_constructs_are_named() {
        let bad = TEMPLATE.replace(
            "HOST: !GetAtt Db.Endpoint.Address",
            "HOST: !GetAtt Vpc.CidrBlock",
        );
        let err = parse(&bad, Path::new("."), &context())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Fn::GetAtt Vpc.CidrBlock") && err.contains("AWS::EC2::VPC"),
            "{err}"
        );
        let bad = TEMPLATE.replace("rate(2 minutes)", "cron(0 12 * * ? *)");
        let err = parse(&bad, Path::new("."), &context())
            .unwrap_err()
            .to_string();
        assert!(err.contains("event Tick of function Fn"), "{err}");
        let bad = TEMPLATE.replace("FnArn: !GetAtt Fn.Arn", "Other: x");
        let err = parse(&bad, Path::new("."), &context())
            .unwrap_err()
            .to_string();
        assert!(err.contains("${FnArn}"), "{err}");
        let mut ctx = context();
        ctx.parameters.insert("Nope".into(), "1".into());
        assert!(
            parse(TEMPLATE, Path::new("."), &ctx)
                .unwrap_err()
                .to_string()
                .contains("Nope")
        );
    }

    #[test]
    fn sub_keeps_escaped_literals_and_uses_its_own_variables() {
        let r =
            serde_yaml::from_str::<Yaml>("!Sub ['${!Keep} ${X} ${AWS::Region}', {X: 1}]").unwrap();
        let doc: Yaml = serde_yaml::from_str("Resources: {}").unwrap();
        let ctx = LocalContext {
            parameters: HashMap::new(),
            ..context()
        };
        let resolver = Resolver::new(&doc, PathBuf::new(), &ctx).unwrap();
        assert_eq!(
            resolver.eval(&r, "t").unwrap(),
            json!("${Keep} 1 us-east-1")
        );
    }
}
