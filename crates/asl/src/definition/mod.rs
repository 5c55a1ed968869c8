//! Load phase: turns the JSON text of a definition into typed states, collecting
//! diagnostics (never panicking) for anything AWS would reject.
//!
//! This module holds the typed definition; `load` reads the JSON (machines and states),
//! with the field readers in `fields`, Retry/Catch in `handlers` and Choice rules in
//! `choice_rules`.

mod choice_rules;
mod fields;
mod handlers;
mod load;

use crate::intrinsics::Call;
use crate::jsonata;
use crate::jsonpath::JsonPath;
use serde_json::Value;
use std::collections::HashMap;

pub use choice_rules::OPERATORS;
pub(crate) use load::Loader;

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

/// The former name of [`JsonataTemplate`], kept for code written against it.
pub type JTemplate = JsonataTemplate;

/// A payload template in JSONata mode: any string `{% expr %}` is an expression.
#[derive(Debug, Clone)]
pub enum JsonataTemplate {
    Lit(Value),
    Expr(Box<jsonata::Expr>, String),
    Object(Vec<(String, JsonataTemplate)>),
    Array(Vec<JsonataTemplate>),
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
    pub output: Option<JsonataTemplate>,
}

/// `Assign` in either language.
#[derive(Debug, Clone)]
pub enum Assign {
    Path(Template),
    Jsonata(JsonataTemplate),
}

/// A field value given literally (`Seconds`, `Error`), by a reference path or intrinsic
/// (`SecondsPath`, `ErrorPath`), or by a JSONata expression.
#[derive(Debug, Clone)]
pub enum ValueSource {
    Lit(Value),
    /// A reference path (or variable) and its source text.
    Ref(Template, String),
    Expr(JsonataTemplate),
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
    Condition(JsonataTemplate),
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
    pub output: Option<JsonataTemplate>,
}

#[derive(Debug, Clone)]
pub enum Kind {
    Pass {
        result: Option<Value>,
    },
    Task {
        resource: String,
        timeout: Option<ValueSource>,
        heartbeat: Option<ValueSource>,
    },
    Choice {
        choices: Vec<Choice>,
        default: Option<String>,
    },
    Wait {
        seconds: Option<ValueSource>,
        timestamp: Option<ValueSource>,
    },
    Succeed,
    Fail {
        error: Option<ValueSource>,
        cause: Option<ValueSource>,
    },
    Parallel {
        branches: Vec<StateMachine>,
    },
    Map(Box<MapSpec>),
}

#[derive(Debug, Clone)]
pub struct MapSpec {
    pub items_path: Option<PathOrNull>,
    pub items: Option<JsonataTemplate>,
    pub item_selector: Option<Template>,
    pub item_selector_jsonata: Option<JsonataTemplate>,
    pub processor: StateMachine,
    pub distributed: bool,
    pub max_concurrency: Option<ValueSource>,
    pub tolerated_count: Option<ValueSource>,
    pub tolerated_percentage: Option<ValueSource>,
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
    pub query_language: QueryLanguage,
    pub next: Option<String>,
    pub end: bool,
    pub input_path: Option<PathOrNull>,
    pub output_path: Option<PathOrNull>,
    pub parameters: Option<Template>,
    pub result_selector: Option<Template>,
    pub result_path: Option<PathOrNull>,
    pub assign: Option<Assign>,
    pub arguments: Option<JsonataTemplate>,
    pub output: Option<JsonataTemplate>,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
}

impl State {
    /// The history event prefix (`Pass`, `Task`, `Map`, ...).
    pub fn event_prefix(&self) -> &str {
        &self.type_name
    }

    /// What a JSONata-mode state evaluates at its end: `Assign`, then `Output`.
    pub fn ending(&self) -> (Option<&Assign>, Option<&JsonataTemplate>) {
        (self.assign.as_ref(), self.output.as_ref())
    }
}

impl Choice {
    /// What a matched JSONata choice rule evaluates: `Assign`, then `Output`.
    pub fn ending(&self) -> (Option<&Assign>, Option<&JsonataTemplate>) {
        (self.assign.as_ref(), self.output.as_ref())
    }
}

impl Catcher {
    /// What a JSONata catcher evaluates when it takes an error: `Assign`, then `Output`.
    pub fn ending(&self) -> (Option<&Assign>, Option<&JsonataTemplate>) {
        (self.assign.as_ref(), self.output.as_ref())
    }
}
