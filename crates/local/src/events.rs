//! EventBridge, as far as the template uses it: rules with an event pattern receive the events
//! the local services emit (Step Functions execution status changes), and scheduled rules fire
//! at their rate; targets are local functions (invoked asynchronously) or state machines.
//!
//! The bus depends on Step Functions, never the reverse: it subscribes to the executions'
//! status changes ([`StatusListener`]) and keeps a `Weak` handle to start state machine targets.

use crate::error::StackError;
use crate::lambda::LambdaService;
use crate::rng::Rng;
use crate::sfn::{Execution, StatusListener, StepFunctions};
use crate::template::{RuleSpec, Trigger};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tracing::{info, warn};

pub struct EventBus {
    rules: Vec<RuleSpec>,
    lambda: Arc<LambdaService>,
    sfn: Weak<StepFunctions>,
    region: String,
    account: String,
    rng: Rng,
    delivered: AtomicU64,
}

/// Whether an event matches an EventBridge pattern: every key of the pattern must match; a
/// list matches when the event's value (or any element of an event list) equals one of its
/// entries or satisfies one of its operator objects (`prefix`, `anything-but`, `exists`).
pub fn matches(pattern: &Value, event: &Value) -> bool {
    match pattern {
        Value::Object(fields) => fields.iter().all(|(key, expected)| {
            let actual = event.get(key);
            match expected {
                Value::Object(_) => actual.is_some_and(|a| matches(expected, a)),
                Value::Array(options) => options.iter().any(|option| match option {
                    Value::Object(op) => operator(op, actual),
                    literal => match actual {
                        Some(Value::Array(items)) => items.contains(literal),
                        Some(value) => value == literal,
                        None => false,
                    },
                }),
                _ => false,
            }
        }),
        _ => false,
    }
}

fn operator(op: &serde_json::Map<String, Value>, actual: Option<&Value>) -> bool {
    op.iter().all(|(name, arg)| match name.as_str() {
        "prefix" => actual
            .and_then(Value::as_str)
            .zip(arg.as_str())
            .is_some_and(|(a, p)| a.starts_with(p)),
        "exists" => arg.as_bool() == Some(actual.is_some()),
        "anything-but" => match (actual, arg) {
            (None, _) => false,
            (Some(a), Value::Array(list)) => !list.contains(a),
            (Some(a), other) => a != other,
        },
        _ => false,
    })
}

/// Rejects patterns using operators this bus does not evaluate (at start-up, naming the rule).
pub fn check_pattern(rule: &str, pattern: &Value) -> Result<(), StackError> {
    fn walk(rule: &str, v: &Value) -> Result<(), StackError> {
        match v {
            Value::Object(fields) => fields.values().try_for_each(|f| walk(rule, f)),
            Value::Array(options) => options.iter().try_for_each(|o| match o {
                Value::Object(op) => op.keys().try_for_each(|k| {
                    if ["prefix", "exists", "anything-but"].contains(&k.as_str()) {
                        Ok(())
                    } else {
                        Err(StackError::PatternOperator {
                            rule: rule.to_owned(),
                            operator: k.clone(),
                        })
                    }
                }),
                _ => Ok(()),
            }),
            _ => Err(StackError::PatternShape {
                rule: rule.to_owned(),
            }),
        }
    }
    walk(rule, pattern)
}

impl EventBus {
    /// Checks the rules, and subscribes the bus to `sfn`'s execution status changes.
    pub fn new(
        rules: Vec<RuleSpec>,
        lambda: Arc<LambdaService>,
        sfn: &Arc<StepFunctions>,
        seed: u64,
    ) -> Result<Arc<Self>, StackError> {
        for rule in &rules {
            if let Trigger::Pattern(p) = &rule.trigger {
                check_pattern(&rule.name, p)?;
            }
            let local =
                lambda.resolve(&rule.target).is_some() || rule.target.contains(":stateMachine:");
            if !local {
                return Err(StackError::RuleTarget {
                    rule: rule.name.clone(),
                    target: rule.target.clone(),
                });
            }
        }
        let bus = Arc::new(EventBus {
            rules,
            lambda,
            sfn: Arc::downgrade(sfn),
            region: sfn.region.clone(),
            account: sfn.account.clone(),
            rng: Rng::new(seed ^ 0xe7e7),
            delivered: AtomicU64::new(0),
        });
        sfn.subscribe(bus.clone());
        Ok(bus)
    }

    /// Events delivered to targets so far.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    fn envelope(
        &self,
        source: &str,
        detail_type: &str,
        resources: Vec<String>,
        detail: Value,
    ) -> Value {
        let r = self.rng.next_u64();
        json!({
            "version": "0",
            "id": format!("{:08x}-{:04x}-{:04x}-{:04x}-{:012x}", (r >> 32) as u32, (r >> 16) as u16, r as u16, (r >> 48) as u16, r & 0xffff_ffff_ffff),
            "detail-type": detail_type,
            "source": source,
            "account": self.account,
            "time": leasehold_asl::values::iso_millis(crate::lambda::epoch_ms() as i64).split('.').next().unwrap_or_default().to_owned() + "Z",
            "region": self.region,
            "resources": resources,
            "detail": detail,
        })
    }

    /// Emits an event; every matching rule delivers it to its target.
    pub fn publish(&self, source: &str, detail_type: &str, resources: Vec<String>, detail: Value) {
        let event = self.envelope(source, detail_type, resources, detail);
        for rule in &self.rules {
            if let Trigger::Pattern(pattern) = &rule.trigger
                && matches(pattern, &event)
            {
                let payload = rule.input.clone().unwrap_or_else(|| event.to_string());
                self.deliver(rule, payload);
            }
        }
    }

    fn deliver(&self, rule: &RuleSpec, payload: String) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
        if rule.target.contains(":stateMachine:") {
            if let Some(sfn) = self.sfn.upgrade()
                && let Err(e) = sfn.start(&rule.target, None, Some(&payload))
            {
                warn!(rule = %rule.name, error = %e, "rule target not started");
            }
        } else if let Err(e) = self.lambda.invoke_async(&rule.target, payload.into_bytes()) {
            warn!(rule = %rule.name, error = %e, "rule target not invoked");
        }
        info!(rule = %rule.name, target = %rule.target, "event delivered");
    }

    /// Starts the scheduled rules; they fire until the bus is dropped.
    pub fn start_schedules(self: &Arc<Self>) {
        for (index, rule) in self.rules.iter().enumerate() {
            let Trigger::Every(period) = rule.trigger else {
                continue;
            };
            let bus = Arc::downgrade(self);
            tokio::spawn(async move {
                let mut ticker = tokio::time::interval(Duration::from_secs(period));
                ticker.tick().await; // the first tick is immediate; a schedule fires after one period
                loop {
                    ticker.tick().await;
                    let Some(bus) = bus.upgrade() else { return };
                    let rule = &bus.rules[index];
                    let payload = match &rule.input {
                        Some(input) => input.clone(),
                        None => bus
                            .envelope("aws.events", "Scheduled Event", vec![], json!({}))
                            .to_string(),
                    };
                    bus.deliver(rule, payload);
                }
            });
        }
    }
}

/// "Step Functions Execution Status Change", as the rules of the template see it.
impl StatusListener for EventBus {
    fn status_changed(&self, execution: &Execution) {
        let d = execution.describe();
        let included = json!({"included": true});
        let detail = json!({
            "executionArn": d.arn,
            "stateMachineArn": d.machine_arn,
            "name": d.name,
            "status": d.status,
            "startDate": d.start_ms,
            "stopDate": d.stop_ms,
            "input": d.input,
            "output": d.output,
            "inputDetails": included,
            "outputDetails": if d.output.is_some() { included.clone() } else { Value::Null },
            "error": d.error,
            "cause": d.cause,
        });
        self.publish(
            "aws.states",
            "Step Functions Execution Status Change",
            vec![d.arn.clone()],
            detail,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_event(status: &str, machine: &str) -> Value {
        json!({
            "source": "aws.states",
            "detail-type": "Step Functions Execution Status Change",
            "detail": {"status": status, "stateMachineArn": machine, "executionArn": "x"}
        })
    }

    #[test]
    fn the_cleanup_pattern_matches_only_failed_ends_of_its_machine() {
        let pattern = json!({
            "source": ["aws.states"],
            "detail-type": ["Step Functions Execution Status Change"],
            "detail": {"status": ["FAILED", "TIMED_OUT", "ABORTED"], "stateMachineArn": ["arn:m"]}
        });
        assert!(matches(&pattern, &status_event("ABORTED", "arn:m")));
        assert!(matches(&pattern, &status_event("FAILED", "arn:m")));
        assert!(!matches(&pattern, &status_event("SUCCEEDED", "arn:m")));
        assert!(!matches(&pattern, &status_event("FAILED", "arn:other")));
        assert!(!matches(&pattern, &json!({"source": "aws.states"})));
    }

    #[test]
    fn operators_and_unsupported_ones() {
        let event = status_event("FAILED", "arn:aws:states:x");
        assert!(matches(
            &json!({"detail": {"stateMachineArn": [{"prefix": "arn:aws:states"}]}}),
            &event
        ));
        assert!(matches(
            &json!({"detail": {"status": [{"anything-but": ["SUCCEEDED"]}]}}),
            &event
        ));
        assert!(matches(
            &json!({"detail": {"error": [{"exists": false}]}}),
            &event
        ));
        assert!(check_pattern("r", &json!({"detail": {"n": [{"numeric": [">", 1]}]}})).is_err());
        assert!(check_pattern("r", &json!({"source": ["aws.states"]})).is_ok());
    }
}
