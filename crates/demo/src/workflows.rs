//! The ungoverned side of the comparison, derived from the project's own definitions so that it
//! can never drift from them: the connection workflow's `Query` state (same function, same
//! parameters, same `DatabaseBusy` and Lambda retries) without Acquire and Release, and the load
//! harness unchanged except for the child it starts.

use super::error::DemoError;
use serde_json::{Value, json};

/// The ungoverned child workflow: `Prepare` → `Query` → `Served`. A query that still fails
/// after its retries fails the execution with the query's error (`DatabaseBusy`, ...), which
/// the harness counts as failed. `${QueryFunctionArn}` is replaced by `query_function_arn`.
pub fn ungoverned_child(
    connection_asl: &str,
    query_function_arn: &str,
) -> Result<String, DemoError> {
    let connection: Value = serde_json::from_str(connection_asl)
        .map_err(|e| DemoError::Setup(format!("connection.asl.json is not JSON: {e}")))?;
    let mut query = connection
        .pointer("/States/Query")
        .cloned()
        .ok_or_else(|| DemoError::Setup("connection.asl.json has no Query state".into()))?;
    if query.get("ResultPath").and_then(Value::as_str) != Some("$.result") {
        return Err(DemoError::Setup(
            "connection.asl.json: the Query state no longer writes its rows to $.result; \
             update crates/demo/src/workflows.rs"
                .into(),
        ));
    }
    let Value::Object(state) = &mut query else {
        return Err(DemoError::Setup("the Query state is not an object".into()));
    };
    // Without a lease there is nothing to give back: no Catch, the error ends the execution.
    state.remove("Catch");
    state.insert("Next".into(), json!("Served"));
    state.insert(
        "Comment".into(),
        json!("The connection workflow's Query state, unchanged but for its Catch: no lease is taken or given back."),
    );
    let definition = json!({
        "Comment": "leasehold demo, ungoverned: the same query function as the connection workflow, called without Acquire and Release (the original problem). Derived from statemachines/connection.asl.json by the demo; not deployed.",
        "StartAt": "Prepare",
        "TimeoutSeconds": connection.get("TimeoutSeconds").cloned().unwrap_or(json!(900)),
        "States": {
            "Prepare": {
                "Type": "Pass",
                "Comment": "The load harness always passes params and holdMs.",
                "Parameters": { "request.$": "$" },
                "Next": "Query"
            },
            "Query": query,
            "Served": {
                "Type": "Pass",
                "Parameters": {
                    "status": "SERVED",
                    "source": "database",
                    "pool.$": "$.request.pool",
                    "query.$": "$.request.query",
                    "rows.$": "$.result.rows",
                    "rowCount.$": "$.result.rowCount"
                },
                "End": true
            }
        }
    });
    substitute(
        &serde_json::to_string_pretty(&definition).unwrap_or_default(),
        &[("QueryFunctionArn", query_function_arn)],
    )
}

/// The `mode` default of a derived harness. The ungoverned child takes no lease, so it ignores
/// the mode; the placeholder only needs a valid value.
pub const DERIVED_HARNESS_MODE: &str = "queued";

/// The load harness starting `child_arn` instead of the connection workflow.
pub fn harness_for(harness_asl: &str, child_arn: &str) -> Result<String, DemoError> {
    substitute(
        harness_asl,
        &[
            ("ConnectionStateMachineArn", child_arn),
            ("AcquireMode", DERIVED_HARNESS_MODE),
        ],
    )
}

/// Fills `${Name}` placeholders; any left over is an error naming it.
pub fn substitute(text: &str, values: &[(&str, &str)]) -> Result<String, DemoError> {
    let mut out = text.to_owned();
    for (name, value) in values {
        out = out.replace(&format!("${{{name}}}"), value);
    }
    if let Some(start) = out.find("${") {
        let rest = &out[start..];
        let end = rest.find('}').map_or(rest.len(), |i| i + 1);
        return Err(DemoError::Setup(format!(
            "the definition still has the placeholder {} after substitution",
            &rest[..end]
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONNECTION: &str = include_str!("../../../statemachines/connection.asl.json");
    const HARNESS: &str = include_str!("../../../statemachines/load-harness.asl.json");

    #[test]
    fn the_ungoverned_child_is_the_connection_query_without_leases() {
        let text = ungoverned_child(CONNECTION, "arn:aws:lambda:r:1:function:q").unwrap();
        let child: Value = serde_json::from_str(&text).unwrap();
        let connection: Value = serde_json::from_str(CONNECTION).unwrap();
        let states = child["States"].as_object().unwrap();
        // No lease is taken or given back: only these three states, no other function.
        let names: Vec<&str> = states.keys().map(String::as_str).collect();
        assert_eq!(names, ["Prepare", "Query", "Served"]);
        assert!(!text.contains("AcquireFunctionArn") && !text.contains("ReleaseFunctionArn"));
        // The same call and the same retries as the governed Query.
        let query = &child["States"]["Query"];
        assert_eq!(query["Retry"], connection["States"]["Query"]["Retry"]);
        assert_eq!(
            query["Parameters"]["FunctionName"],
            "arn:aws:lambda:r:1:function:q"
        );
        assert_eq!(
            query["Parameters"]["Payload"],
            connection["States"]["Query"]["Parameters"]["Payload"]
        );
        assert!(query.get("Catch").is_none());
        assert_eq!(query["Next"], "Served");
        assert_eq!(child["States"]["Served"]["Parameters"]["status"], "SERVED");
    }

    #[test]
    fn the_harness_starts_the_given_child_and_nothing_else_changes() {
        let text = harness_for(HARNESS, "arn:aws:states:r:1:stateMachine:u").unwrap();
        assert!(text.contains("\"arn:aws:states:r:1:stateMachine:u\""));
        assert_eq!(
            text.replace(
                "arn:aws:states:r:1:stateMachine:u",
                "${ConnectionStateMachineArn}"
            )
            .replace(
                &format!("\"mode\": \"{DERIVED_HARNESS_MODE}\""),
                "\"mode\": \"${AcquireMode}\""
            )
            .replace(
                &format!("default {DERIVED_HARNESS_MODE}:"),
                "default ${AcquireMode}:"
            ),
            HARNESS
        );
    }

    #[test]
    fn a_leftover_placeholder_is_named() {
        let err = substitute("{\"a\": \"${Other}\"}", &[("X", "y")]).unwrap_err();
        assert!(err.to_string().contains("${Other}"), "{err}");
    }
}
