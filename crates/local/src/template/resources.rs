//! The resources the local stack runs: functions, state machines, tables, custom resources
//! and event rules, read from their properties.

use super::intrinsics::{placeholders, stringify, substitute_definition};
use super::*;
use serde_json::json;

impl<'a> Resolver<'a> {
    /// Global function properties merged under each function's own.
    pub(super) fn function_property(&self, id: &str, key: &str) -> Option<&'a Yaml> {
        self.properties(id).and_then(|p| get(p, key)).or_else(|| {
            get(self.doc, "Globals")
                .and_then(|g| get(g, "Function"))
                .and_then(|f| get(f, key))
        })
    }

    pub(super) fn number(&self, id: &str, key: &str, default: u64) -> Result<u64, TemplateError> {
        match self.function_property(id, key) {
            None => Ok(default),
            Some(v) => self
                .eval_string(v, &format!("{id}.{key}"))?
                .parse()
                .map_err(|_| unsupported(format!("{id}.{key}"), "is not a whole number")),
        }
    }

    pub(super) fn function(&self, id: &str) -> Result<FunctionSpec, TemplateError> {
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

    pub(super) fn state_machine(&self, id: &str) -> Result<StateMachineSpec, TemplateError> {
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
        let mut substitutions = BTreeMap::new();
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
        let placeholders = placeholders(&definition);
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
            placeholders,
            substitutions,
        })
    }

    pub(super) fn table(&self, id: &str) -> Result<TableSpec, TemplateError> {
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

    pub(super) fn custom_resource(
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

    pub(super) fn rate(&self, expression: &str, construct: &str) -> Result<u64, TemplateError> {
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
        // EventBridge takes a positive whole number; a period past what a timer can count
        // (u32::MAX seconds, over a century) is no schedule either.
        n.checked_mul(unit)
            .filter(|seconds| n > 0 && *seconds <= u64::from(u32::MAX))
            .ok_or_else(|| {
                unsupported(
                    construct,
                    format!("rate {expression:?}: the value must be a positive whole number of at most {} seconds", u32::MAX),
                )
            })
    }

    pub(super) fn function_rules(
        &self,
        id: &str,
        function_arn: &str,
    ) -> Result<Vec<RuleSpec>, TemplateError> {
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

    pub(super) fn events_rule(&self, id: &str) -> Result<Vec<RuleSpec>, TemplateError> {
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

    pub(super) fn model(&self) -> Result<StackModel, TemplateError> {
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

/// The package name in `<dir>/Cargo.toml`.
pub(super) fn crate_name(dir: &Path) -> Option<String> {
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
