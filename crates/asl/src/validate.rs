//! Validate phase: the graph checks that need the whole definition (transition targets,
//! reachability, a terminal state), on top of what loading reports. The diagnostics are
//! AWS-shaped (see [`crate::diagnostics`]).

pub use crate::diagnostics::{Diagnostic, Severity};

use crate::definition::{Kind, Loader, QueryLanguage, State, StateMachine};
use serde_json::Value;
use std::collections::HashSet;

/// Validates definition text; returns every diagnostic (empty means OK).
pub fn validate(text: &str) -> Vec<Diagnostic> {
    load_with_diagnostics(text).1
}

/// Parses and validates; the machine is returned when there is no ERROR diagnostic.
pub fn load_with_diagnostics(text: &str) -> (Option<StateMachine>, Vec<Diagnostic>) {
    if text.trim().is_empty() {
        let d = Diagnostic::error(
            "MISSING_DESCRIPTION",
            None,
            "The definition is empty".into(),
        );
        return (None, vec![d]);
    }
    let v: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let d = Diagnostic::error(
                "INVALID_JSON_DESCRIPTION",
                None,
                format!("The definition is not valid JSON: {e}"),
            );
            return (None, vec![d]);
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
    diags.push(Diagnostic::error(code, Some(loc), msg));
}

/// Every state `s` can go to, with the location of the field that names it (`sl` is the
/// state's own location).
fn transitions<'m>(s: &'m State, sl: &str) -> Vec<(String, &'m str)> {
    let mut targets: Vec<(String, &str)> = Vec::new();
    if let Some(n) = &s.next {
        targets.push((format!("{sl}/Next"), n));
    }
    for (i, c) in s.catch.iter().enumerate() {
        targets.push((format!("{sl}/Catch/{i}/Next"), &c.next));
    }
    if let Kind::Choice { choices, default } = &s.kind {
        for (i, c) in choices.iter().enumerate() {
            targets.push((format!("{sl}/Choices/{i}/Next"), &c.next));
        }
        if let Some(d) = default {
            targets.push((format!("{sl}/Default"), d));
        }
    }
    targets
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
        match &s.kind {
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
        for (l, t) in transitions(s, &sl) {
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
        if seen.insert(s.name.as_str()) {
            stack.extend(transitions(s, "").into_iter().map(|(_, t)| t));
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
