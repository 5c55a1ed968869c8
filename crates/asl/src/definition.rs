//! Load phase: turns the JSON text of a definition into typed states, collecting
//! diagnostics (never panicking) for anything AWS would reject.

use crate::intrinsics::{self, Call};
use crate::jsonata;
use crate::jsonpath::JsonPath;
use crate::validate::{Diagnostic, Severity};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Which query language a state evaluates with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryLanguage {
    JsonPath,
    Jsonata,
}

/// A whole state machine (or a Parallel branch / Map processor: they share the shape).
#[derive(Debug, Clone)]
pub struct StateMachine {
    pub comment: Option<String>,
    pub start_at: String,
    /// States in definition order.
    pub states: Vec<State>,
    pub index: HashMap<String, usize>,
    pub timeout_seconds: Option<u64>,
    pub query_language: QueryLanguage,
}

impl StateMachine {
    /// Looks a state up by name.
    pub fn get(&self, name: &str) -> Option<&State> {
        self.index.get(name).map(|&i| &self.states[i])
    }
}

/// A payload template in JSONPath mode (`Parameters`, `ItemSelector`, `ResultSelector`,
/// `Assign`): literals, `.$` references and intrinsic calls.
#[derive(Debug, Clone)]
pub enum Template {
    Lit(Value),
    Path(JsonPath),
    Var(String, Option<JsonPath>),
    Call(Box<Call>, String),
    /// (output key, field name as written for messages — `x.$` —, value).
    Object(Vec<(String, String, Template)>),
    Array(Vec<Template>),
}

/// A payload template in JSONata mode: any string `{% expr %}` is an expression.
#[derive(Debug, Clone)]
pub enum JTemplate {
    Lit(Value),
    Expr(Box<jsonata::Expr>, String),
    Object(Vec<(String, JTemplate)>),
    Array(Vec<JTemplate>),
}

/// `InputPath`/`OutputPath`: a path, or `null` (meaning `{}`).
#[derive(Debug, Clone)]
pub enum PathOrNull {
    Null,
    Path(JsonPath),
    /// `$name.rest`: a variable (not allowed in `ResultPath`).
    Var(String, Option<JsonPath>, String),
}

#[derive(Debug, Clone)]
pub struct Retrier {
    pub error_equals: Vec<String>,
    pub interval_seconds: f64,
    pub max_attempts: u64,
    pub backoff_rate: f64,
    pub max_delay_seconds: Option<f64>,
    pub jitter_full: bool,
}

#[derive(Debug, Clone)]
pub struct Catcher {
    pub error_equals: Vec<String>,
    pub next: String,
    pub result_path: Option<PathOrNull>,
    pub assign: Option<Assign>,
    pub output: Option<JTemplate>,
}

/// `Assign` in either language.
#[derive(Debug, Clone)]
pub enum Assign {
    Path(Template),
    Jsonata(JTemplate),
}

/// A number given literally, by a reference path, or by a JSONata expression.
#[derive(Debug, Clone)]
pub enum Num {
    Lit(Value),
    /// A reference path (or variable) and its source text.
    Ref(Template, String),
    Expr(JTemplate),
}

#[derive(Debug, Clone)]
pub enum ChoiceRule {
    And(Vec<ChoiceRule>),
    Or(Vec<ChoiceRule>),
    Not(Box<ChoiceRule>),
    Cmp {
        variable: Template,
        variable_src: String,
        op: String,
        operand: CmpOperand,
    },
    Condition(JTemplate),
}

#[derive(Debug, Clone)]
pub enum CmpOperand {
    Lit(Value),
    Path(Template),
}

#[derive(Debug, Clone)]
pub struct Choice {
    pub rule: ChoiceRule,
    pub next: String,
    pub assign: Option<Assign>,
    pub output: Option<JTemplate>,
}

#[derive(Debug, Clone)]
pub enum Kind {
    Pass {
        result: Option<Value>,
    },
    Task {
        resource: String,
        timeout: Option<Num>,
        heartbeat: Option<Num>,
    },
    Choice {
        choices: Vec<Choice>,
        default: Option<String>,
    },
    Wait {
        seconds: Option<Num>,
        timestamp: Option<Num>,
    },
    Succeed,
    Fail {
        error: Option<Num>,
        cause: Option<Num>,
    },
    Parallel {
        branches: Vec<StateMachine>,
    },
    Map(Box<MapSpec>),
}

#[derive(Debug, Clone)]
pub struct MapSpec {
    pub items_path: Option<PathOrNull>,
    pub items: Option<JTemplate>,
    pub item_selector: Option<Template>,
    pub item_selector_j: Option<JTemplate>,
    pub processor: StateMachine,
    pub distributed: bool,
    pub max_concurrency: Option<Num>,
    pub tolerated_count: Option<Num>,
    pub tolerated_percentage: Option<Num>,
    pub label: Option<String>,
    pub item_batcher: Option<ItemBatcher>,
}

/// `ItemBatcher`: items per batch and the extra `BatchInput` object.
#[derive(Debug, Clone)]
pub struct ItemBatcher {
    pub max_items_per_batch: Option<u64>,
    pub batch_input: Option<Template>,
}

/// One state with its common fields.
#[derive(Debug, Clone)]
pub struct State {
    pub name: String,
    pub type_name: String,
    /// `<Type>StateEntered` / `<Type>StateExited`, computed once.
    pub entered_event: String,
    pub exited_event: String,
    pub kind: Kind,
    pub ql: QueryLanguage,
    pub next: Option<String>,
    pub end: bool,
    pub input_path: Option<PathOrNull>,
    pub output_path: Option<PathOrNull>,
    pub parameters: Option<Template>,
    pub result_selector: Option<Template>,
    pub result_path: Option<PathOrNull>,
    pub assign: Option<Assign>,
    pub arguments: Option<JTemplate>,
    pub output: Option<JTemplate>,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
}

impl State {
    /// The history event prefix (`Pass`, `Task`, `Map`, ...).
    pub fn event_prefix(&self) -> &str {
        &self.type_name
    }

    /// What a JSONata-mode state evaluates at its end: `Assign`, then `Output`.
    pub fn ending(&self) -> (Option<&Assign>, Option<&JTemplate>) {
        (self.assign.as_ref(), self.output.as_ref())
    }
}

impl Choice {
    /// What a matched JSONata choice rule evaluates: `Assign`, then `Output`.
    pub fn ending(&self) -> (Option<&Assign>, Option<&JTemplate>) {
        (self.assign.as_ref(), self.output.as_ref())
    }
}

impl Catcher {
    /// What a JSONata catcher evaluates when it takes an error: `Assign`, then `Output`.
    pub fn ending(&self) -> (Option<&Assign>, Option<&JTemplate>) {
        (self.assign.as_ref(), self.output.as_ref())
    }
}

pub(crate) struct Loader {
    pub diags: Vec<Diagnostic>,
}

impl Loader {
    fn err(&mut self, loc: &str, msg: String) {
        self.diags.push(Diagnostic {
            severity: Severity::Error,
            code: "SCHEMA_VALIDATION_FAILED".into(),
            message: msg,
            location: Some(loc.to_string()),
        });
    }
    fn warn(&mut self, code: &str, loc: &str, msg: String) {
        self.diags.push(Diagnostic {
            severity: Severity::Warning,
            code: code.into(),
            message: msg,
            location: Some(loc.to_string()),
        });
    }

    pub(crate) fn machine(
        &mut self,
        v: &Value,
        loc: &str,
        parent_ql: QueryLanguage,
        top: bool,
    ) -> Option<StateMachine> {
        let Some(obj) = v.as_object() else {
            self.err(loc, "Expected an object".into());
            return None;
        };
        let mut allowed = vec!["Comment", "StartAt", "States", "QueryLanguage"];
        if top {
            allowed.extend(["TimeoutSeconds", "Version"]);
        } else {
            allowed.push("ProcessorConfig");
        }
        for k in obj.keys() {
            if !allowed.contains(&k.as_str()) {
                self.err(
                    &format!("{loc}/{k}"),
                    format!("These fields are not allowed: {k}"),
                );
            }
        }
        let ql = match obj.get("QueryLanguage") {
            None => parent_ql,
            Some(Value::String(s)) if s == "JSONPath" => QueryLanguage::JsonPath,
            Some(Value::String(s)) if s == "JSONata" => QueryLanguage::Jsonata,
            Some(_) => {
                self.err(
                    &format!("{loc}/QueryLanguage"),
                    "QueryLanguage must be JSONPath or JSONata".into(),
                );
                parent_ql
            }
        };
        let start_at = match obj.get("StartAt") {
            Some(Value::String(s)) => s.clone(),
            _ => {
                self.err(
                    loc,
                    "The field 'StartAt' is required and must be a string".into(),
                );
                String::new()
            }
        };
        let timeout_seconds = match obj.get("TimeoutSeconds") {
            None => None,
            Some(v) => match v.as_u64() {
                Some(n) => Some(n),
                None => {
                    self.err(
                        &format!("{loc}/TimeoutSeconds"),
                        "TimeoutSeconds must be a positive integer".into(),
                    );
                    None
                }
            },
        };
        let mut states = Vec::new();
        let mut index = HashMap::new();
        match obj.get("States") {
            Some(Value::Object(m)) => {
                if m.is_empty() {
                    self.err(&format!("{loc}/States"), "States must not be empty".into());
                }
                for (name, sv) in m {
                    let sloc = format!("{loc}/States/{name}");
                    if name.is_empty() || name.chars().count() > 80 {
                        self.diags.push(Diagnostic {
                            severity: Severity::Error,
                            code: "INVALID_STATE_NAME".into(),
                            message: format!("State name '{name}' must be 1 to 80 characters long"),
                            location: Some(sloc.clone()),
                        });
                    }
                    if let Some(st) = self.state(name, sv, &sloc, ql) {
                        index.insert(name.clone(), states.len());
                        states.push(st);
                    }
                }
            }
            _ => self.err(
                loc,
                "The field 'States' is required and must be an object".into(),
            ),
        }
        Some(StateMachine {
            comment: obj
                .get("Comment")
                .and_then(Value::as_str)
                .map(str::to_string),
            start_at,
            states,
            index,
            timeout_seconds,
            query_language: ql,
        })
    }

    fn state(
        &mut self,
        name: &str,
        v: &Value,
        loc: &str,
        parent_ql: QueryLanguage,
    ) -> Option<State> {
        let Some(o) = v.as_object() else {
            self.err(loc, "A state must be an object".into());
            return None;
        };
        let ty = match o.get("Type").and_then(Value::as_str) {
            Some(t) => t.to_string(),
            None => {
                self.err(
                    loc,
                    "The field 'Type' is required and must be a string".into(),
                );
                return None;
            }
        };
        let ql = match o.get("QueryLanguage") {
            None => parent_ql,
            Some(Value::String(s)) if s == "JSONPath" => {
                if parent_ql == QueryLanguage::Jsonata {
                    self.err(
                        &format!("{loc}/QueryLanguage"),
                        "A state cannot use JSONPath when the state machine uses JSONata".into(),
                    );
                }
                QueryLanguage::JsonPath
            }
            Some(Value::String(s)) if s == "JSONata" => QueryLanguage::Jsonata,
            Some(_) => {
                self.err(
                    &format!("{loc}/QueryLanguage"),
                    "QueryLanguage must be JSONPath or JSONata".into(),
                );
                parent_ql
            }
        };
        let jp = ql == QueryLanguage::JsonPath;
        let common: &[&str] = &["Type", "Comment", "QueryLanguage"];
        let flow: &[&str] = &["Next", "End"];
        let io_jp: &[&str] = &["InputPath", "OutputPath"];
        let mut allowed: Vec<&str> = common.to_vec();
        let exec_jp = ["ResultPath", "ResultSelector", "Parameters"];
        match ty.as_str() {
            "Pass" => {
                allowed.extend(flow);
                allowed.push("Assign");
                if jp {
                    allowed.extend(io_jp);
                    allowed.extend(["Result", "ResultPath", "Parameters"]);
                } else {
                    allowed.push("Output");
                }
            }
            "Task" => {
                allowed.extend(flow);
                allowed.extend(["Resource", "Retry", "Catch", "Assign", "Credentials"]);
                allowed.extend(["TimeoutSeconds", "HeartbeatSeconds"]);
                if jp {
                    allowed.extend(io_jp);
                    allowed.extend(exec_jp);
                    allowed.extend(["TimeoutSecondsPath", "HeartbeatSecondsPath"]);
                } else {
                    allowed.extend(["Arguments", "Output"]);
                }
            }
            "Choice" => {
                allowed.extend(["Choices", "Default", "Assign"]);
                if jp {
                    allowed.extend(io_jp);
                } else {
                    allowed.push("Output");
                }
            }
            "Wait" => {
                allowed.extend(flow);
                allowed.extend(["Seconds", "Timestamp", "Assign"]);
                if jp {
                    allowed.extend(io_jp);
                    allowed.extend(["SecondsPath", "TimestampPath"]);
                } else {
                    allowed.push("Output");
                }
            }
            "Succeed" => {
                if jp {
                    allowed.extend(io_jp);
                } else {
                    allowed.push("Output");
                }
            }
            "Fail" => {
                allowed.extend(["Error", "Cause"]);
                if jp {
                    allowed.extend(["ErrorPath", "CausePath"]);
                }
            }
            "Parallel" => {
                allowed.extend(flow);
                allowed.extend(["Branches", "Retry", "Catch", "Assign"]);
                if jp {
                    allowed.extend(io_jp);
                    allowed.extend(exec_jp);
                } else {
                    allowed.extend(["Arguments", "Output"]);
                }
            }
            "Map" => {
                allowed.extend(flow);
                allowed.extend([
                    "ItemProcessor",
                    "Iterator",
                    "ItemSelector",
                    "MaxConcurrency",
                    "ToleratedFailureCount",
                    "ToleratedFailurePercentage",
                    "Label",
                    "ItemReader",
                    "ResultWriter",
                    "ItemBatcher",
                    "Retry",
                    "Catch",
                    "Assign",
                ]);
                if jp {
                    allowed.extend(io_jp);
                    allowed.extend(exec_jp);
                    allowed.extend([
                        "ItemsPath",
                        "MaxConcurrencyPath",
                        "ToleratedFailureCountPath",
                        "ToleratedFailurePercentagePath",
                    ]);
                } else {
                    allowed.extend(["Items", "Output", "Arguments"]);
                }
            }
            other => {
                self.err(
                    &format!("{loc}/Type"),
                    format!("Unknown state type: {other}"),
                );
                return None;
            }
        }
        for k in o.keys() {
            if !allowed.contains(&k.as_str()) {
                self.err(
                    &format!("{loc}/{k}"),
                    format!("These fields are not allowed in a {ty} state: {k}"),
                );
            }
        }
        let next = match o.get("Next") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.err(&format!("{loc}/Next"), "Next must be a string".into());
                None
            }
        };
        let end = matches!(o.get("End"), Some(Value::Bool(true)));
        if flow.iter().any(|f| allowed.contains(f)) && ty != "Choice" {
            if next.is_some() && end {
                self.err(loc, "A state cannot have both 'Next' and 'End'".into());
            }
            if next.is_none() && !end {
                self.err(loc, "A state must have either 'Next' or 'End: true'".into());
            }
        }
        let input_path = self.path_or_null(o, "InputPath", loc);
        let output_path = self.path_or_null(o, "OutputPath", loc);
        let result_path = self.path_or_null(o, "ResultPath", loc);
        let parameters = if jp {
            o.get("Parameters")
                .map(|v| self.template(v, &format!("{loc}/Parameters")))
        } else {
            None
        };
        let result_selector = if jp {
            o.get("ResultSelector")
                .map(|v| self.template(v, &format!("{loc}/ResultSelector")))
        } else {
            None
        };
        let assign = o
            .get("Assign")
            .map(|v| self.assign(v, &format!("{loc}/Assign"), jp));
        let arguments = o
            .get("Arguments")
            .filter(|_| !jp)
            .map(|v| self.jtemplate(v, &format!("{loc}/Arguments")));
        let output = o
            .get("Output")
            .filter(|_| !jp)
            .map(|v| self.jtemplate(v, &format!("{loc}/Output")));
        let retry = self.retriers(o.get("Retry"), &format!("{loc}/Retry"));
        let catch = self.catchers(o.get("Catch"), &format!("{loc}/Catch"), jp);
        let kind = match ty.as_str() {
            "Pass" => Kind::Pass {
                result: o.get("Result").cloned(),
            },
            "Task" => {
                let resource = match o.get("Resource") {
                    Some(Value::String(s)) if s.starts_with("arn:") => s.clone(),
                    Some(Value::String(s)) => {
                        self.diags.push(Diagnostic {
                            severity: Severity::Error,
                            code: "INVALID_RESOURCE".into(),
                            message: format!("Resource '{s}' is not a valid ARN"),
                            location: Some(format!("{loc}/Resource")),
                        });
                        s.clone()
                    }
                    _ => {
                        self.err(loc, "The field 'Resource' is required".into());
                        String::new()
                    }
                };
                let timeout = self.num(o, "TimeoutSeconds", "TimeoutSecondsPath", loc, jp);
                let heartbeat = self.num(o, "HeartbeatSeconds", "HeartbeatSecondsPath", loc, jp);
                for (key, n) in [
                    ("TimeoutSeconds", &timeout),
                    ("HeartbeatSeconds", &heartbeat),
                ] {
                    if let Some(Num::Lit(v)) = n
                        && v.as_u64().is_none_or(|x| x == 0)
                    {
                        self.err(
                            &format!("{loc}/{key}"),
                            format!("{key} must be a positive integer"),
                        );
                    }
                }
                if let (Some(Num::Lit(t)), Some(Num::Lit(h))) = (&timeout, &heartbeat)
                    && let (Some(t), Some(h)) = (t.as_u64(), h.as_u64())
                    && h >= t
                {
                    self.err(
                        &format!("{loc}/HeartbeatSeconds"),
                        "HeartbeatSeconds must be smaller than TimeoutSeconds".into(),
                    );
                }
                Kind::Task {
                    resource,
                    timeout,
                    heartbeat,
                }
            }
            "Choice" => {
                let mut choices = Vec::new();
                match o.get("Choices") {
                    Some(Value::Array(a)) if !a.is_empty() => {
                        for (i, c) in a.iter().enumerate() {
                            let cl = format!("{loc}/Choices/{i}");
                            if let Some(ch) = self.choice(c, &cl, jp) {
                                choices.push(ch);
                            }
                        }
                    }
                    _ => self.err(loc, "Choices must be a non-empty array".into()),
                }
                Kind::Choice {
                    choices,
                    default: o.get("Default").and_then(Value::as_str).map(str::to_string),
                }
            }
            "Wait" => {
                let seconds = self.num(o, "Seconds", "SecondsPath", loc, jp);
                let timestamp = self.num(o, "Timestamp", "TimestampPath", loc, jp);
                let n = ["Seconds", "SecondsPath", "Timestamp", "TimestampPath"]
                    .iter()
                    .filter(|k| o.contains_key(**k))
                    .count();
                if n != 1 {
                    self.err(
                        loc,
                        "A Wait state needs exactly one of Seconds, SecondsPath, Timestamp, TimestampPath"
                            .into(),
                    );
                }
                Kind::Wait { seconds, timestamp }
            }
            "Succeed" => Kind::Succeed,
            "Fail" => Kind::Fail {
                error: self.num(o, "Error", "ErrorPath", loc, jp),
                cause: self.num(o, "Cause", "CausePath", loc, jp),
            },
            "Parallel" => {
                let mut branches = Vec::new();
                match o.get("Branches") {
                    Some(Value::Array(a)) if !a.is_empty() => {
                        for (i, b) in a.iter().enumerate() {
                            if let Some(m) =
                                self.machine(b, &format!("{loc}/Branches/{i}"), ql, false)
                            {
                                branches.push(m);
                            }
                        }
                    }
                    _ => self.err(loc, "Branches must be a non-empty array".into()),
                }
                Kind::Parallel { branches }
            }
            "Map" => {
                let (pv, pkey) = match (o.get("ItemProcessor"), o.get("Iterator")) {
                    (Some(p), _) => (Some(p), "ItemProcessor"),
                    (None, Some(p)) => (Some(p), "Iterator"),
                    _ => (None, ""),
                };
                let ploc = format!("{loc}/{pkey}");
                let processor = match pv {
                    Some(p) => self.machine(p, &ploc, ql, false),
                    None => {
                        self.err(loc, "A Map state needs an ItemProcessor".into());
                        None
                    }
                };
                let distributed = pv
                    .and_then(|p| p.get("ProcessorConfig"))
                    .and_then(|c| c.get("Mode"))
                    .and_then(Value::as_str)
                    == Some("DISTRIBUTED");
                if o.contains_key("ItemReader") || o.contains_key("ResultWriter") {
                    self.err(
                        loc,
                        "ItemReader and ResultWriter need external storage and are not supported here"
                            .into(),
                    );
                }
                let item_selector_src =
                    o.get("ItemSelector")
                        .or(if jp { o.get("Parameters") } else { None });
                let processor = processor.unwrap_or_else(|| StateMachine {
                    comment: None,
                    start_at: String::new(),
                    states: vec![],
                    index: HashMap::new(),
                    timeout_seconds: None,
                    query_language: ql,
                });
                Kind::Map(Box::new(MapSpec {
                    items_path: if jp {
                        self.path_or_null(o, "ItemsPath", loc)
                    } else {
                        None
                    },
                    items: if jp {
                        None
                    } else {
                        o.get("Items")
                            .map(|v| self.jtemplate(v, &format!("{loc}/Items")))
                    },
                    item_selector: if jp {
                        item_selector_src.map(|v| self.template(v, &format!("{loc}/ItemSelector")))
                    } else {
                        None
                    },
                    item_selector_j: if jp {
                        None
                    } else {
                        item_selector_src.map(|v| self.jtemplate(v, &format!("{loc}/ItemSelector")))
                    },
                    processor,
                    distributed,
                    max_concurrency: self.num(o, "MaxConcurrency", "MaxConcurrencyPath", loc, jp),
                    tolerated_count: self.num(
                        o,
                        "ToleratedFailureCount",
                        "ToleratedFailureCountPath",
                        loc,
                        jp,
                    ),
                    tolerated_percentage: self.num(
                        o,
                        "ToleratedFailurePercentage",
                        "ToleratedFailurePercentagePath",
                        loc,
                        jp,
                    ),
                    label: o.get("Label").and_then(Value::as_str).map(str::to_string),
                    item_batcher: o.get("ItemBatcher").map(|b| ItemBatcher {
                        max_items_per_batch: b.get("MaxItemsPerBatch").and_then(Value::as_u64),
                        batch_input: b
                            .get("BatchInput")
                            .map(|v| self.template(v, &format!("{loc}/ItemBatcher/BatchInput"))),
                    }),
                }))
            }
            _ => return None,
        };
        let parameters = if matches!(kind, Kind::Map(_)) {
            None
        } else {
            parameters
        };
        Some(State {
            name: name.to_string(),
            entered_event: format!("{ty}StateEntered"),
            exited_event: format!("{ty}StateExited"),
            type_name: ty,
            kind,
            ql,
            next,
            end,
            input_path,
            output_path,
            parameters,
            result_selector,
            result_path,
            assign,
            arguments,
            output,
            retry,
            catch,
        })
    }

    fn path(&mut self, v: &Value, loc: &str) -> Option<JsonPath> {
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

    fn path_or_null(&mut self, o: &Map<String, Value>, key: &str, loc: &str) -> Option<PathOrNull> {
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
    fn num(
        &mut self,
        o: &Map<String, Value>,
        key: &str,
        key_path: &str,
        loc: &str,
        jp: bool,
    ) -> Option<Num> {
        if let Some(v) = o.get(key) {
            if !jp {
                return Some(Num::Expr(self.jtemplate(v, &format!("{loc}/{key}"))));
            }
            return Some(Num::Lit(v.clone()));
        }
        let v = o.get(key_path)?;
        let l = format!("{loc}/{key_path}");
        if let Some(src) = v.as_str().filter(|s| intrinsics::looks_like_call(s)) {
            return match intrinsics::parse(src) {
                Ok(c) => Some(Num::Ref(
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
            Some(Ok(intrinsics::Arg::Path(p))) => Some(Num::Ref(
                Template::Path(p),
                v.as_str().unwrap_or_default().to_string(),
            )),
            Some(Ok(intrinsics::Arg::Var(n, p))) => Some(Num::Ref(
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
            Value::Array(a) => Template::Array(
                a.iter()
                    .enumerate()
                    .map(|(i, x)| self.template(x, &format!("{loc}/{i}")))
                    .collect(),
            ),
            other => Template::Lit(other.clone()),
        }
    }

    pub(crate) fn jtemplate(&mut self, v: &Value, loc: &str) -> JTemplate {
        match v {
            Value::String(s) => {
                let t = s.trim();
                if s.starts_with("{%") && s.ends_with("%}") && t.len() >= 4 {
                    let inner = &t[2..t.len() - 2];
                    match jsonata::Expr::parse(inner) {
                        Ok(e) => JTemplate::Expr(Box::new(e), inner.trim().to_string()),
                        Err(e) => {
                            self.err(loc, format!("The JSONata expression is invalid: {e}"));
                            JTemplate::Lit(Value::Null)
                        }
                    }
                } else {
                    JTemplate::Lit(v.clone())
                }
            }
            Value::Object(m) => JTemplate::Object(
                m.iter()
                    .map(|(k, x)| (k.clone(), self.jtemplate(x, &format!("{loc}/{k}"))))
                    .collect(),
            ),
            Value::Array(a) => JTemplate::Array(
                a.iter()
                    .enumerate()
                    .map(|(i, x)| self.jtemplate(x, &format!("{loc}/{i}")))
                    .collect(),
            ),
            other => JTemplate::Lit(other.clone()),
        }
    }

    fn assign(&mut self, v: &Value, loc: &str, jp: bool) -> Assign {
        if !v.is_object() {
            self.err(loc, "Assign must be an object".into());
        }
        if jp {
            Assign::Path(self.template(v, loc))
        } else {
            Assign::Jsonata(self.jtemplate(v, loc))
        }
    }

    fn error_equals(&mut self, o: &Map<String, Value>, loc: &str) -> Vec<String> {
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

    fn retriers(&mut self, v: Option<&Value>, loc: &str) -> Vec<Retrier> {
        let Some(v) = v else { return vec![] };
        let Some(a) = v.as_array() else {
            self.err(loc, "Retry must be an array".into());
            return vec![];
        };
        let mut out = Vec::new();
        for (i, r) in a.iter().enumerate() {
            let rl = format!("{loc}/{i}");
            let Some(o) = r.as_object() else {
                self.err(&rl, "A retrier must be an object".into());
                continue;
            };
            for k in o.keys() {
                if ![
                    "ErrorEquals",
                    "IntervalSeconds",
                    "MaxAttempts",
                    "BackoffRate",
                    "MaxDelaySeconds",
                    "JitterStrategy",
                    "Comment",
                ]
                .contains(&k.as_str())
                {
                    self.err(
                        &format!("{rl}/{k}"),
                        format!("These fields are not allowed: {k}"),
                    );
                }
            }
            let error_equals = self.error_equals(o, &rl);
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
            out.push(Retrier {
                error_equals,
                interval_seconds: interval,
                max_attempts,
                backoff_rate: backoff,
                max_delay_seconds: f("MaxDelaySeconds"),
                jitter_full,
            });
        }
        self.check_all_last(out.iter().map(|r| &r.error_equals), loc);
        out
    }

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

    fn catchers(&mut self, v: Option<&Value>, loc: &str, jp: bool) -> Vec<Catcher> {
        let Some(v) = v else { return vec![] };
        let Some(a) = v.as_array() else {
            self.err(loc, "Catch must be an array".into());
            return vec![];
        };
        let mut out = Vec::new();
        for (i, c) in a.iter().enumerate() {
            let cl = format!("{loc}/{i}");
            let Some(o) = c.as_object() else {
                self.err(&cl, "A catcher must be an object".into());
                continue;
            };
            let mut allowed = vec!["ErrorEquals", "Next", "Comment", "Assign"];
            if jp {
                allowed.push("ResultPath");
            } else {
                allowed.push("Output");
            }
            for k in o.keys() {
                if !allowed.contains(&k.as_str()) {
                    self.err(
                        &format!("{cl}/{k}"),
                        format!("These fields are not allowed: {k}"),
                    );
                }
            }
            let error_equals = self.error_equals(o, &cl);
            let next = match o.get("Next").and_then(Value::as_str) {
                Some(n) => n.to_string(),
                None => {
                    self.err(&cl, "A catcher needs a 'Next' state".into());
                    String::new()
                }
            };
            out.push(Catcher {
                error_equals,
                next,
                result_path: self.path_or_null(o, "ResultPath", &cl),
                assign: o
                    .get("Assign")
                    .map(|v| self.assign(v, &format!("{cl}/Assign"), jp)),
                output: o
                    .get("Output")
                    .filter(|_| !jp)
                    .map(|v| self.jtemplate(v, &format!("{cl}/Output"))),
            });
        }
        self.check_all_last(out.iter().map(|c| &c.error_equals), loc);
        out
    }

    fn choice(&mut self, v: &Value, loc: &str, jp: bool) -> Option<Choice> {
        let Some(o) = v.as_object() else {
            self.err(loc, "A choice rule must be an object".into());
            return None;
        };
        let next = match o.get("Next").and_then(Value::as_str) {
            Some(n) => n.to_string(),
            None => {
                self.err(loc, "A top-level choice rule needs a 'Next' state".into());
                String::new()
            }
        };
        let rule = if jp {
            self.rule(o, loc, true)?
        } else {
            match o.get("Condition") {
                Some(c) => ChoiceRule::Condition(self.jtemplate(c, &format!("{loc}/Condition"))),
                None => {
                    self.err(loc, "A JSONata choice rule needs a 'Condition'".into());
                    return None;
                }
            }
        };
        Some(Choice {
            rule,
            next,
            assign: o
                .get("Assign")
                .map(|v| self.assign(v, &format!("{loc}/Assign"), jp)),
            output: o
                .get("Output")
                .filter(|_| !jp)
                .map(|v| self.jtemplate(v, &format!("{loc}/Output"))),
        })
    }

    fn rule(&mut self, o: &Map<String, Value>, loc: &str, top: bool) -> Option<ChoiceRule> {
        let sub = |this: &mut Self, v: &Value, l: &str| -> Option<ChoiceRule> {
            match v.as_object() {
                Some(m) => this.rule(m, l, false),
                None => {
                    this.err(l, "A choice rule must be an object".into());
                    None
                }
            }
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
