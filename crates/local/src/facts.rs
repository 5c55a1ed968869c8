//! `leasehold-local template-facts`: what the template reader knows, as JSON, for the
//! consistency checks (`scripts/checks/template_check.py`) so that they need not re-read
//! CloudFormation YAML, `DefinitionSubstitutions` or EventBridge patterns themselves:
//! - `template`: the template as written, short-form intrinsics in their long form;
//! - `stateMachines`: per logical id, the `${...}` names its definition uses and the
//!   substitutions it is given (resolved);
//! - `tables`: per logical id, the key schema;
//! - `rules`: the event rules and their targets;
//! - `eventMatches`: per sample event file, the rules whose pattern it matches.
//!
//! Values are resolved as for a stack named `leasehold` (the name in `samconfig.toml`) in
//! `us-east-1` under the local account, the identity the sample events use.

use crate::error::StackError;
use crate::events::matches;
use crate::stack::LOCAL_ACCOUNT;
use crate::template::{self, LocalContext, LocalDatabase, StackModel, TemplateError, Trigger};
use serde_json::{Map, Value, json};
use std::path::Path;

/// The facts of a template; `events`, when given, is a folder of sample events (`*.json`).
pub fn template_facts(template_path: &Path, events: Option<&Path>) -> Result<Value, StackError> {
    let text = std::fs::read_to_string(template_path).map_err(|source| TemplateError::Read {
        path: template_path.display().to_string(),
        source,
    })?;
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).map_err(TemplateError::from)?;
    let root = template_path.parent().unwrap_or(Path::new(""));
    let model = template::parse(&text, root, &context())?;
    let mut facts = json!({
        "template": template::long_form(&doc),
        "stateMachines": state_machines(&model),
        "tables": tables(&model),
        "rules": model.rules.iter().map(|r| json!({"name": r.name, "target": r.target})).collect::<Vec<_>>(),
    });
    if let Some(dir) = events {
        facts["eventMatches"] = event_matches(&model, dir)?;
    }
    Ok(facts)
}

fn context() -> LocalContext {
    LocalContext {
        stack_name: "leasehold".to_owned(),
        region: "us-east-1".to_owned(),
        account: LOCAL_ACCOUNT.to_owned(),
        parameters: Default::default(),
        database: Some(LocalDatabase {
            host: "127.0.0.1".to_owned(),
            port: "3306".to_owned(),
            secret_arn: format!(
                "arn:aws:secretsmanager:us-east-1:{LOCAL_ACCOUNT}:secret:leasehold-db"
            ),
        }),
    }
}

fn state_machines(model: &StackModel) -> Value {
    let machines: Map<String, Value> = model
        .state_machines
        .iter()
        .map(|m| {
            let facts = json!({
                "name": m.name,
                "placeholders": m.placeholders,
                "substitutions": m.substitutions,
            });
            (m.logical_id.clone(), facts)
        })
        .collect();
    Value::Object(machines)
}

fn tables(model: &StackModel) -> Value {
    let tables: Map<String, Value> = model
        .tables
        .iter()
        .map(|t| {
            let keys: Vec<Value> = t
                .keys
                .iter()
                .map(|(name, key_type, kind)| {
                    json!({"AttributeName": name, "KeyType": key_type, "AttributeType": kind})
                })
                .collect();
            (t.logical_id.clone(), json!({"name": t.name, "keys": keys}))
        })
        .collect();
    Value::Object(tables)
}

/// Per `*.json` file of `dir` that parses, the names of the rules whose pattern matches it.
fn event_matches(model: &StackModel, dir: &Path) -> Result<Value, StackError> {
    let unreadable = |source| StackError::Folder {
        path: dir.to_path_buf(),
        source,
    };
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(unreadable)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut out = Map::new();
    for path in files {
        let Ok(event) = std::fs::read_to_string(&path)
            .map_err(drop)
            .and_then(|text| serde_json::from_str::<Value>(&text).map_err(drop))
        else {
            continue;
        };
        let matched: Vec<&str> = model
            .rules
            .iter()
            .filter(|rule| matches!(&rule.trigger, Trigger::Pattern(p) if matches(p, &event)))
            .map(|rule| rule.name.as_str())
            .collect();
        out.insert(path.display().to_string(), json!(matched));
    }
    Ok(Value::Object(out))
}
