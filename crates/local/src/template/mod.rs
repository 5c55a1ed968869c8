//! Reading `template.yaml`: the functions, state machines, tables, custom resources and event
//! rules the local stack runs, with CloudFormation's intrinsic functions resolved to local
//! values. Anything the stack cannot stand in for fails with an error naming the construct, but
//! only when something the stack runs depends on it (the VPC, alarms or the dashboard are never
//! read).
//!
//! # Layout
//! - this file: the model ([`StackModel`] and its specs), loading, and the resolver's state;
//! - `intrinsics`: intrinsic functions, conditions and substitutions;
//! - `resources`: each resource type the stack runs, read from its properties.

mod intrinsics;
mod resources;

pub use intrinsics::{long_form, placeholders, substitute_definition};
use serde_json::{Map, Value};
use serde_yaml::Value as Yaml;
use std::collections::{BTreeMap, BTreeSet, HashMap};
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
    /// The `${...}` names the definition uses (every one is in `substitutions`).
    pub placeholders: BTreeSet<String>,
    /// `DefinitionSubstitutions`, resolved.
    pub substitutions: BTreeMap<String, String>,
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
    fn long_form_spells_short_tags_out_and_placeholders_are_listed() {
        let doc: Yaml =
            serde_yaml::from_str("a: !GetAtt Fn.Arn\nb: !Ref T\nc: [!Sub 'x-${T}', 3]").unwrap();
        assert_eq!(
            long_form(&doc),
            json!({"a": {"Fn::GetAtt": ["Fn", "Arn"]}, "b": {"Ref": "T"}, "c": [{"Fn::Sub": "x-${T}"}, 3]})
        );
        let names: Vec<String> = placeholders("${A} and ${B.Arn} then ${A}")
            .into_iter()
            .collect();
        assert_eq!(names, ["A", "B.Arn"]);
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

    /// Malformed intrinsics are template errors, never panics: `Fn::Select` with fewer than
    /// two arguments or an index past the list, `Fn::Equals` with one.
    #[test]
    fn short_intrinsic_arguments_are_template_errors() {
        let doc: Yaml = serde_yaml::from_str("Resources: {}").unwrap();
        let ctx = LocalContext {
            parameters: HashMap::new(),
            ..context()
        };
        let resolver = Resolver::new(&doc, PathBuf::new(), &ctx).unwrap();
        for text in [
            "!Select []",
            "!Select [0]",
            "!Select [5, [a, b]]",
            "!Select [-1, [a]]",
            "!Select ['18446744073709551616', [a]]",
            "{Fn::Select: [1]}",
            "!Select 3",
            "!Join []",
            "!Sub []",
            "!If [c]",
        ] {
            let value: Yaml = serde_yaml::from_str(text).unwrap();
            let err = resolver.eval(&value, "t").unwrap_err().to_string();
            assert!(err.starts_with("t: "), "{text}: {err}");
        }
        let value: Yaml = serde_yaml::from_str("!Select [1, [a, b]]").unwrap();
        assert_eq!(resolver.eval(&value, "t").unwrap(), json!("b"));
    }

    /// A schedule's rate must be a positive number of minutes, hours or days that fits.
    #[test]
    fn schedule_rates_are_checked() {
        for rate in [
            "rate(0 minutes)",
            "rate(18446744073709551615 minutes)",
            "rate(307445734561825861 minutes)",
        ] {
            let bad = TEMPLATE.replace("rate(2 minutes)", rate);
            let err = parse(&bad, Path::new("."), &context())
                .unwrap_err()
                .to_string();
            assert!(err.contains("event Tick of function Fn"), "{rate}: {err}");
        }
    }
}
