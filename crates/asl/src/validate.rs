//! Validate phase: diagnostics shaped like AWS `ValidateStateMachineDefinition` (a code, a
//! message and a location such as `/States/Foo/Next`), and the graph checks that need the
//! whole definition (transition targets, reachability, a terminal state).

use crate::definition::{Kind, Loader, QueryLanguage, StateMachine};
use serde_json::Value;
use std::collections::HashSet;

/// ERROR makes a definition unusable; WARNING is advice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One finding, with AWS's code names (`SCHEMA_VALIDATION_FAILED`, `MISSING_TRANSITION_TARGET`,
/// `MISSING_END_STATE`, `INVALID_JSON_DESCRIPTION`, `MISSING_DESCRIPTION`, `INVALID_RESOURCE`,
/// `INVALID_STATE_NAME`, and the warning `NO_DOLLAR`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: String,
    pub message: String,
    pub location: Option<String>,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} at {}: {}",
            if self.severity == Severity::Error {
                "ERROR"
            } else {
                "WARNING"
            },
            self.code,
            self.location.as_deref().unwrap_or("/"),
            self.message
        )
    }
}

/// Validates definition text; returns every diagnostic (empty means OK).
pub fn validate(text: &str) -> Vec<Diagnostic> {
    load_with_diagnostics(text).1
}

/// Parses and validates; the machine is returned when there is no ERROR diagnostic.
pub fn load_with_diagnostics(text: &str) -> (Option<StateMachine>, Vec<Diagnostic>) {
    if text.trim().is_empty() {
        return (
            None,
            vec![Diagnostic {
                severity: Severity::Error,
                code: "MISSING_DESCRIPTION".into(),
                message: "The definition is empty".into(),
                location: None,
            }],
        );
    }
    let v: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return (
                None,
                vec![Diagnostic {
                    severity: Severity::Error,
                    code: "INVALID_JSON_DESCRIPTION".into(),
                    message: format!("The definition is not valid JSON: {e}"),
                    location: None,
                }],
            );
        }
    };
    load_value(&v)
}

/// Like [`load_with_diagnostics`] for an already parsed definition.
pub fn load_value(v: &Value) -> (Option<StateMachine>, Vec<Diagnostic>) {
    let mut loader = Loader { diags: Vec::new() };
    let m = loader.machine(v, "", QueryLanguage::JsonPath, true);
    let mut diags = loader.diags;
    if let Some(m) = &m {
        check_graph(m, "", &mut diags);
    }
    let ok = !diags.iter().any(|d| d.severity == Severity::Error);
    (if ok { m } else { None }, diags)
}

fn push(diags: &mut Vec<Diagnostic>, code: &str, loc: String, msg: String) {
    diags.push(Diagnostic {
        severity: Severity::Error,
        code: code.into(),
        message: msg,
        location: Some(loc),
    });
}

fn check_graph(m: &StateMachine, loc: &str, diags: &mut Vec<Diagnostic>) {
    if m.states.is_empty() {
        return;
    }
    if m.get(&m.start_at).is_none() {
        push(
            diags,
            "MISSING_TRANSITION_TARGET",
            format!("{loc}/StartAt"),
            format!("Missing 'Next' target: {}", m.start_at),
        );
    }
    let mut terminal = false;
    for s in &m.states {
        let sl = format!("{loc}/States/{}", s.name);
        let mut targets: Vec<(String, &str)> = Vec::new();
        if let Some(n) = &s.next {
            targets.push((format!("{sl}/Next"), n));
        }
        for (i, c) in s.catch.iter().enumerate() {
            targets.push((format!("{sl}/Catch/{i}/Next"), &c.next));
        }
        match &s.kind {
            Kind::Choice { choices, default } => {
                for (i, c) in choices.iter().enumerate() {
                    targets.push((format!("{sl}/Choices/{i}/Next"), &c.next));
                }
                if let Some(d) = default {
                    targets.push((format!("{sl}/Default"), d));
                }
            }
            Kind::Succeed | Kind::Fail { .. } => terminal = true,
            Kind::Parallel { branches } => {
                for (i, b) in branches.iter().enumerate() {
                    check_graph(b, &format!("{sl}/Branches/{i}"), diags);
                }
            }
            Kind::Map(spec) => check_graph(&spec.processor, &format!("{sl}/ItemProcessor"), diags),
            _ => {}
        }
        if s.end {
            terminal = true;
        }
        for (l, t) in targets {
            if m.get(t).is_none() {
                push(
                    diags,
                    "MISSING_TRANSITION_TARGET",
                    l,
                    format!("Missing 'Next' target: {t}"),
                );
            }
        }
    }
    if !terminal {
        push(
            diags,
            "MISSING_END_STATE",
            if loc.is_empty() {
                "/".into()
            } else {
                loc.to_string()
            },
            "Workflow has no terminal state".into(),
        );
    }
    // Reachability from StartAt.
    let mut seen: HashSet<&str> = HashSet::new();
    let mut stack = vec![m.start_at.as_str()];
    while let Some(n) = stack.pop() {
        let Some(s) = m.get(n) else { continue };
        if !seen.insert(s.name.as_str()) {
            continue;
        }
        if let Some(x) = &s.next {
            stack.push(x);
        }
        for c in &s.catch {
            stack.push(&c.next);
        }
        if let Kind::Choice { choices, default } = &s.kind {
            for c in choices {
                stack.push(&c.next);
            }
            if let Some(d) = default {
                stack.push(d);
            }
        }
    }
    for s in &m.states {
        if !seen.contains(s.name.as_str()) {
            push(
                diags,
                "SCHEMA_VALIDATION_FAILED",
                format!("{loc}/States/{}", s.name),
                format!("State \"{}\" is not reachable.", s.name),
            );
        }
    }
}
