//! Reading machines and states, with the fields each state type allows.

use super::{ItemBatcher, Kind, MapSpec, QueryLanguage, State, StateMachine, ValueSource};
use crate::diagnostics::Diagnostic;
use serde_json::{Map, Value};
use std::collections::HashMap;

pub(crate) struct Loader {
    pub diags: Vec<Diagnostic>,
}

impl Loader {
    /// A `SCHEMA_VALIDATION_FAILED` error at `loc`.
    pub(super) fn err(&mut self, loc: &str, msg: String) {
        self.error("SCHEMA_VALIDATION_FAILED", loc, msg);
    }

    pub(super) fn error(&mut self, code: &str, loc: &str, msg: String) {
        self.diags
            .push(Diagnostic::error(code, Some(loc.to_string()), msg));
    }

    pub(super) fn warn(&mut self, code: &str, loc: &str, msg: String) {
        self.diags
            .push(Diagnostic::warning(code, Some(loc.to_string()), msg));
    }

    /// `v` as an object; `msg` is the error otherwise.
    pub(super) fn object<'v>(
        &mut self,
        v: &'v Value,
        loc: &str,
        msg: &str,
    ) -> Option<&'v Map<String, Value>> {
        let o = v.as_object();
        if o.is_none() {
            self.err(loc, msg.into());
        }
        o
    }

    /// An error for each key of `o` not in `allowed`; `what` ends the message (` in a Pass
    /// state`, or nothing).
    pub(super) fn only_fields(
        &mut self,
        o: &Map<String, Value>,
        allowed: &[&str],
        loc: &str,
        what: &str,
    ) {
        for k in o.keys() {
            if !allowed.contains(&k.as_str()) {
                self.err(
                    &format!("{loc}/{k}"),
                    format!("These fields are not allowed{what}: {k}"),
                );
            }
        }
    }

    /// `QueryLanguage`, inherited from the enclosing machine when absent.
    fn query_language(
        &mut self,
        o: &Map<String, Value>,
        loc: &str,
        parent_ql: QueryLanguage,
    ) -> QueryLanguage {
        match o.get("QueryLanguage") {
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
        }
    }

    pub(crate) fn machine(
        &mut self,
        v: &Value,
        loc: &str,
        parent_ql: QueryLanguage,
        top: bool,
    ) -> Option<StateMachine> {
        let obj = self.object(v, loc, "Expected an object")?;
        let mut allowed = vec!["Comment", "StartAt", "States", "QueryLanguage"];
        if top {
            allowed.extend(["TimeoutSeconds", "Version"]);
        } else {
            allowed.push("ProcessorConfig");
        }
        self.only_fields(obj, &allowed, loc, "");
        let ql = self.query_language(obj, loc, parent_ql);
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
                        self.error(
                            "INVALID_STATE_NAME",
                            &sloc,
                            format!("State name '{name}' must be 1 to 80 characters long"),
                        );
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

    pub(super) fn state(
        &mut self,
        name: &str,
        v: &Value,
        loc: &str,
        parent_ql: QueryLanguage,
    ) -> Option<State> {
        let o = self.object(v, loc, "A state must be an object")?;
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
        let ql = self.query_language(o, loc, parent_ql);
        if ql == QueryLanguage::JsonPath && parent_ql == QueryLanguage::Jsonata {
            self.err(
                &format!("{loc}/QueryLanguage"),
                "A state cannot use JSONPath when the state machine uses JSONata".into(),
            );
        }
        let jsonpath = ql == QueryLanguage::JsonPath;
        let Some(allowed) = allowed_fields(&ty, jsonpath) else {
            self.err(&format!("{loc}/Type"), format!("Unknown state type: {ty}"));
            return None;
        };
        self.only_fields(o, &allowed, loc, &format!(" in a {ty} state"));
        let next = match o.get("Next") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.err(&format!("{loc}/Next"), "Next must be a string".into());
                None
            }
        };
        let end = matches!(o.get("End"), Some(Value::Bool(true)));
        if FLOW.iter().any(|f| allowed.contains(f)) && ty != "Choice" {
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
        let parameters = if jsonpath {
            o.get("Parameters")
                .map(|v| self.template(v, &format!("{loc}/Parameters")))
        } else {
            None
        };
        let result_selector = if jsonpath {
            o.get("ResultSelector")
                .map(|v| self.template(v, &format!("{loc}/ResultSelector")))
        } else {
            None
        };
        let assign = o
            .get("Assign")
            .map(|v| self.assign(v, &format!("{loc}/Assign"), jsonpath));
        let arguments = o
            .get("Arguments")
            .filter(|_| !jsonpath)
            .map(|v| self.jsonata_template(v, &format!("{loc}/Arguments")));
        let output = o
            .get("Output")
            .filter(|_| !jsonpath)
            .map(|v| self.jsonata_template(v, &format!("{loc}/Output")));
        let retry = self.retriers(o.get("Retry"), &format!("{loc}/Retry"));
        let catch = self.catchers(o.get("Catch"), &format!("{loc}/Catch"), jsonpath);
        let kind = match ty.as_str() {
            "Pass" => Kind::Pass {
                result: o.get("Result").cloned(),
            },
            "Task" => self.task_kind(o, loc, jsonpath),
            "Choice" => self.choice_kind(o, loc, jsonpath),
            "Wait" => self.wait_kind(o, loc, jsonpath),
            "Succeed" => Kind::Succeed,
            "Fail" => Kind::Fail {
                error: self.value_source(o, "Error", "ErrorPath", loc, jsonpath),
                cause: self.value_source(o, "Cause", "CausePath", loc, jsonpath),
            },
            "Parallel" => self.parallel_kind(o, loc, ql),
            "Map" => self.map_kind(o, loc, ql),
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
            query_language: ql,
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

    /// Task: the resource ARN, and TimeoutSeconds/HeartbeatSeconds.
    fn task_kind(&mut self, o: &Map<String, Value>, loc: &str, jsonpath: bool) -> Kind {
        let resource = match o.get("Resource") {
            Some(Value::String(s)) if s.starts_with("arn:") => s.clone(),
            Some(Value::String(s)) => {
                self.error(
                    "INVALID_RESOURCE",
                    &format!("{loc}/Resource"),
                    format!("Resource '{s}' is not a valid ARN"),
                );
                s.clone()
            }
            _ => {
                self.err(loc, "The field 'Resource' is required".into());
                String::new()
            }
        };
        let timeout = self.value_source(o, "TimeoutSeconds", "TimeoutSecondsPath", loc, jsonpath);
        let heartbeat =
            self.value_source(o, "HeartbeatSeconds", "HeartbeatSecondsPath", loc, jsonpath);
        for (key, n) in [
            ("TimeoutSeconds", &timeout),
            ("HeartbeatSeconds", &heartbeat),
        ] {
            if let Some(ValueSource::Lit(v)) = n
                && v.as_u64().is_none_or(|x| x == 0)
            {
                self.err(
                    &format!("{loc}/{key}"),
                    format!("{key} must be a positive integer"),
                );
            }
        }
        if let (Some(ValueSource::Lit(t)), Some(ValueSource::Lit(h))) = (&timeout, &heartbeat)
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

    fn choice_kind(&mut self, o: &Map<String, Value>, loc: &str, jsonpath: bool) -> Kind {
        let mut choices = Vec::new();
        match o.get("Choices") {
            Some(Value::Array(a)) if !a.is_empty() => {
                for (i, c) in a.iter().enumerate() {
                    let cl = format!("{loc}/Choices/{i}");
                    if let Some(ch) = self.choice(c, &cl, jsonpath) {
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

    /// Wait: exactly one of the four ways to say how long.
    fn wait_kind(&mut self, o: &Map<String, Value>, loc: &str, jsonpath: bool) -> Kind {
        let seconds = self.value_source(o, "Seconds", "SecondsPath", loc, jsonpath);
        let timestamp = self.value_source(o, "Timestamp", "TimestampPath", loc, jsonpath);
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

    fn parallel_kind(&mut self, o: &Map<String, Value>, loc: &str, ql: QueryLanguage) -> Kind {
        let mut branches = Vec::new();
        match o.get("Branches") {
            Some(Value::Array(a)) if !a.is_empty() => {
                for (i, b) in a.iter().enumerate() {
                    if let Some(m) = self.machine(b, &format!("{loc}/Branches/{i}"), ql, false) {
                        branches.push(m);
                    }
                }
            }
            _ => self.err(loc, "Branches must be a non-empty array".into()),
        }
        Kind::Parallel { branches }
    }

    /// Map: the processor (inline or Distributed) and the item, concurrency and failure
    /// tolerance fields.
    fn map_kind(&mut self, o: &Map<String, Value>, loc: &str, ql: QueryLanguage) -> Kind {
        let jsonpath = ql == QueryLanguage::JsonPath;
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
                .or(if jsonpath { o.get("Parameters") } else { None });
        let processor = processor.unwrap_or_else(|| StateMachine {
            comment: None,
            start_at: String::new(),
            states: vec![],
            index: HashMap::new(),
            timeout_seconds: None,
            query_language: ql,
        });
        Kind::Map(Box::new(MapSpec {
            items_path: if jsonpath {
                self.path_or_null(o, "ItemsPath", loc)
            } else {
                None
            },
            items: if jsonpath {
                None
            } else {
                o.get("Items")
                    .map(|v| self.jsonata_template(v, &format!("{loc}/Items")))
            },
            item_selector: if jsonpath {
                item_selector_src.map(|v| self.template(v, &format!("{loc}/ItemSelector")))
            } else {
                None
            },
            item_selector_jsonata: if jsonpath {
                None
            } else {
                item_selector_src.map(|v| self.jsonata_template(v, &format!("{loc}/ItemSelector")))
            },
            processor,
            distributed,
            max_concurrency: self.value_source(
                o,
                "MaxConcurrency",
                "MaxConcurrencyPath",
                loc,
                jsonpath,
            ),
            tolerated_count: self.value_source(
                o,
                "ToleratedFailureCount",
                "ToleratedFailureCountPath",
                loc,
                jsonpath,
            ),
            tolerated_percentage: self.value_source(
                o,
                "ToleratedFailurePercentage",
                "ToleratedFailurePercentagePath",
                loc,
                jsonpath,
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
}

const FLOW: &[&str] = &["Next", "End"];
const IO_JSONPATH: &[&str] = &["InputPath", "OutputPath"];
const RESULT_JSONPATH: &[&str] = &["ResultPath", "ResultSelector", "Parameters"];

/// The fields a state of type `ty` may have in its query language; `None` for an unknown
/// type.
fn allowed_fields(ty: &str, jsonpath: bool) -> Option<Vec<&'static str>> {
    let mut allowed = vec!["Type", "Comment", "QueryLanguage"];
    match ty {
        "Pass" => {
            allowed.extend(FLOW);
            allowed.push("Assign");
            if jsonpath {
                allowed.extend(IO_JSONPATH);
                allowed.extend(["Result", "ResultPath", "Parameters"]);
            } else {
                allowed.push("Output");
            }
        }
        "Task" => {
            allowed.extend(FLOW);
            allowed.extend(["Resource", "Retry", "Catch", "Assign", "Credentials"]);
            allowed.extend(["TimeoutSeconds", "HeartbeatSeconds"]);
            if jsonpath {
                allowed.extend(IO_JSONPATH);
                allowed.extend(RESULT_JSONPATH);
                allowed.extend(["TimeoutSecondsPath", "HeartbeatSecondsPath"]);
            } else {
                allowed.extend(["Arguments", "Output"]);
            }
        }
        "Choice" => {
            allowed.extend(["Choices", "Default", "Assign"]);
            if jsonpath {
                allowed.extend(IO_JSONPATH);
            } else {
                allowed.push("Output");
            }
        }
        "Wait" => {
            allowed.extend(FLOW);
            allowed.extend(["Seconds", "Timestamp", "Assign"]);
            if jsonpath {
                allowed.extend(IO_JSONPATH);
                allowed.extend(["SecondsPath", "TimestampPath"]);
            } else {
                allowed.push("Output");
            }
        }
        "Succeed" => {
            if jsonpath {
                allowed.extend(IO_JSONPATH);
            } else {
                allowed.push("Output");
            }
        }
        "Fail" => {
            allowed.extend(["Error", "Cause"]);
            if jsonpath {
                allowed.extend(["ErrorPath", "CausePath"]);
            }
        }
        "Parallel" => {
            allowed.extend(FLOW);
            allowed.extend(["Branches", "Retry", "Catch", "Assign"]);
            if jsonpath {
                allowed.extend(IO_JSONPATH);
                allowed.extend(RESULT_JSONPATH);
            } else {
                allowed.extend(["Arguments", "Output"]);
            }
        }
        "Map" => {
            allowed.extend(FLOW);
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
            if jsonpath {
                allowed.extend(IO_JSONPATH);
                allowed.extend(RESULT_JSONPATH);
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
        _ => return None,
    }
    Some(allowed)
}
