//! The page and its JSON endpoints (see the table in the crate's documentation).

use crate::error::TraceError;
use crate::json::json_response;
use crate::view::{ExecutionView, StackView};
use crate::{graph, metrics, path};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// The page, embedded at build time.
pub const PAGE: &str = include_str!("../assets/trace.html");
/// What the page may load: nothing but itself and its own API.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; img-src data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The metrics namespace when no function of the template sets `METRICS_NAMESPACE`.
pub const DEFAULT_NAMESPACE: &str = "RDSLambda";

/// The execution statuses a list can be filtered by.
const STATUSES: [&str; 5] = ["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"];

/// What the trace routes read: the stack's view and where its pool metrics are.
pub struct TraceState {
    pub view: Arc<dyn StackView>,
    /// The CloudWatch the functions' metrics go to; `None` when the stack has none.
    pub cloudwatch: Option<aws_sdk_cloudwatch::Client>,
    /// The metrics namespace of the stack's functions (`METRICS_NAMESPACE`).
    pub namespace: String,
}

/// The trace page's routes, for merging into a stack's router.
pub fn app(state: Arc<TraceState>) -> Router {
    let routes: [(&str, MethodRouter<Arc<TraceState>>); 7] = [
        ("/trace", get(page)),
        ("/trace/", get(page)),
        ("/trace/api/machines", get(machines)),
        ("/trace/api/executions", get(executions)),
        ("/trace/api/execution", get(execution)),
        ("/trace/api/history", get(history)),
        ("/trace/api/metrics", get(metrics_handler)),
    ];
    routes
        .into_iter()
        .fold(Router::new(), |router, (path, method)| {
            router.route(path, method)
        })
        .with_state(state)
}

async fn page() -> Response {
    let mut response = PAGE.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    response
}

/// The execution that started this one through `states:startExecution` (Step Functions puts
/// its id in the child's input, as the harness does explicitly).
fn started_by(input: &str) -> Option<String> {
    if !input.contains("AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID") {
        return None;
    }
    let v: Value = serde_json::from_str(input).ok()?;
    v["AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID"]
        .as_str()
        .map(str::to_owned)
}

fn summary(d: &ExecutionView, machine_name: &str) -> Value {
    json!({
        "arn": d.arn,
        "name": d.name,
        "machineArn": d.machine_arn,
        "machineName": machine_name,
        "status": d.status,
        "startMs": d.start_ms,
        "stopMs": d.stop_ms,
        "durationMs": d.stop_ms.map(|s| s - d.start_ms),
        "startedBy": started_by(&d.input),
    })
}

async fn machines(State(state): State<Arc<TraceState>>) -> Response {
    let list: Vec<Value> = state
        .view
        .machines()
        .iter()
        .map(|m| {
            let executions = state.view.executions_of(&m.arn);
            let running = executions.iter().filter(|e| e.status == "RUNNING").count();
            json!({
                "arn": m.arn,
                "name": m.name,
                "type": m.kind,
                "states": m.definition.states.len(),
                "executions": executions.len(),
                "running": running,
                "lastStartMs": executions.first().map(|e| e.start_ms),
            })
        })
        .collect();
    json_response(StatusCode::OK, json!({ "machines": list }))
}

#[derive(Deserialize)]
struct ExecutionsQuery {
    machine: String,
    status: Option<String>,
    limit: Option<usize>,
}

async fn executions(
    State(state): State<Arc<TraceState>>,
    Query(q): Query<ExecutionsQuery>,
) -> Result<Response, TraceError> {
    let machine = state.view.machine(&q.machine)?;
    let filter = match q.status.as_deref() {
        None | Some("") | Some("ALL") => None,
        Some(s) if STATUSES.contains(&s) => Some(s),
        Some(s) => {
            return Err(TraceError::BadRequest(format!(
                "unknown status {s:?}; one of {}",
                STATUSES.join(", ")
            )));
        }
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let matching: Vec<ExecutionView> = state
        .view
        .executions_of(&machine.arn)
        .into_iter()
        .filter(|d| filter.is_none_or(|f| d.status == f))
        .collect();
    let list: Vec<Value> = matching
        .iter()
        .take(limit)
        .map(|d| summary(d, &machine.name))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        json!({ "machine": machine.name, "total": matching.len(), "executions": list }),
    ))
}

#[derive(Deserialize)]
struct ArnQuery {
    arn: String,
}

/// Executions whose input names `parent` as the execution that started them, oldest first.
fn children_of(view: &dyn StackView, parent: &str) -> Vec<ExecutionView> {
    let mut children: Vec<ExecutionView> = view
        .machines()
        .iter()
        .flat_map(|m| view.executions_of(&m.arn))
        .filter(|e| e.input.contains(parent) && started_by(&e.input).as_deref() == Some(parent))
        .collect();
    children.sort_by_key(|e| e.start_ms);
    children
}

fn edge_status(how: &str) -> &'static str {
    match how {
        "catch" => path::CAUGHT,
        "fail" => path::FAILED,
        _ => path::SUCCEEDED,
    }
}

/// The graph as JSON with the path drawn on it: a status per node, and per edge how often it
/// was followed and how.
fn coloured(graph: graph::Graph, p: &path::Path, execution_status: &str) -> Value {
    use graph::START;
    let nodes: Vec<Value> = graph
        .nodes
        .iter()
        .map(|n| {
            let mut v = serde_json::to_value(n).unwrap_or_default();
            let run = p.states.get(&n.id);
            let status = match n.kind {
                "start" => {
                    if p.transitions.keys().any(|(from, _, _)| from == START) {
                        path::SUCCEEDED
                    } else {
                        path::RUNNING
                    }
                }
                "end" => match execution_status {
                    "SUCCEEDED" => path::SUCCEEDED,
                    "RUNNING" => path::NOT_REACHED,
                    "ABORTED" => path::ABORTED,
                    _ => path::FAILED,
                },
                "branch" => "",
                _ => run.map_or(path::NOT_REACHED, |r| r.status),
            };
            v["status"] = json!(status);
            if let Some(r) = run {
                v["visits"] = json!(r.visits);
                v["counts"] = json!(r.counts);
                v["maxAttempts"] = json!(r.max_attempts);
                v["lastError"] = json!(r.last_error);
                v["firstEnteredMs"] = json!(r.first_entered_ms);
                v["lastExitedMs"] = json!(r.last_exited_ms);
            }
            v
        })
        .collect();
    let edges: Vec<Value> = graph
        .edges
        .iter()
        .map(|e| {
            let mut v = serde_json::to_value(e).unwrap_or_default();
            let (taken, status) = if e.kind == "retry" {
                let retried = p
                    .states
                    .get(&e.from)
                    .map_or(0, |r| r.max_attempts.saturating_sub(1));
                (retried, path::CAUGHT)
            } else {
                let mut taken = 0;
                let mut status = "";
                for ((from, to, how), n) in &p.transitions {
                    if *from != e.from || *to != e.to {
                        continue;
                    }
                    // A caught error follows the Catch arrow, a plain transition any other
                    // (Next, a Choice rule, Default, Start, End) between the same states.
                    let matches = match *how {
                        "catch" => e.kind == "catch",
                        "fail" => e.kind == "end",
                        _ => e.kind != "catch",
                    };
                    if matches {
                        taken += n;
                        status = edge_status(how);
                    }
                }
                (taken, status)
            };
            v["taken"] = json!(taken);
            v["status"] = json!(if taken > 0 { status } else { path::NOT_REACHED });
            v
        })
        .collect();
    json!({
        "width": graph.width,
        "height": graph.height,
        "nodes": nodes,
        "edges": edges,
    })
}

async fn execution(
    State(state): State<Arc<TraceState>>,
    Query(q): Query<ArnQuery>,
) -> Result<Response, TraceError> {
    let d = state.view.execution(&q.arn)?;
    let machine = state.view.machine(&d.machine_arn)?;
    let events = state.view.history(&q.arn)?;
    let p = path::analyse(&events, d.status);
    let graph = coloured(graph::layout(&machine.definition), &p, d.status);

    // Children: those the history names (finished tasks), then those still running, found by
    // the parent id in their input.
    let mut children: Vec<Value> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    let describe_child = |arn: &str| state.view.execution(arn).ok();
    for (arn, task_state) in &p.children {
        if let Some(c) = describe_child(arn) {
            let mut v = summary(&c, c.machine_arn.rsplit(':').next().unwrap_or_default());
            v["state"] = json!(task_state);
            children.push(v);
            seen.push(arn.clone());
        }
    }
    for c in children_of(state.view.as_ref(), &d.arn) {
        if !seen.contains(&c.arn) {
            let mut v = summary(&c, &c.machine_name);
            v["state"] = Value::Null;
            children.push(v);
        }
    }
    let iterations: Vec<Value> = p
        .iterations
        .iter()
        .map(|it| {
            let mut v = serde_json::to_value(it).unwrap_or_default();
            v["childStatus"] = json!(
                it.child
                    .as_deref()
                    .and_then(describe_child)
                    .map(|c| c.status)
            );
            v
        })
        .collect();
    let parse = |text: &Option<String>| {
        text.as_deref()
            .map(|t| serde_json::from_str::<Value>(t).unwrap_or_else(|_| json!(t)))
    };
    let mut execution_json = summary(&d, &machine.name);
    execution_json["input"] = parse(&Some(d.input.clone())).unwrap_or(Value::Null);
    execution_json["output"] = parse(&d.output).unwrap_or(Value::Null);
    execution_json["error"] = json!(d.error);
    execution_json["cause"] = json!(d.cause);
    execution_json["machineType"] = json!(machine.kind);
    // The states that wait for SendTaskSuccess/Failure (their node's status is `waiting`).
    let waiting: Vec<&String> = p
        .states
        .iter()
        .filter(|(_, run)| run.status == path::WAITING)
        .map(|(name, _)| name)
        .collect();
    execution_json["waitingForCallback"] = json!(waiting);
    Ok(json_response(
        StatusCode::OK,
        json!({
            "execution": execution_json,
            "graph": graph,
            "iterations": iterations,
            "children": children,
            "eventCount": events.len(),
        }),
    ))
}

#[derive(Deserialize)]
struct HistoryQuery {
    arn: String,
    after: Option<u64>,
}

async fn history(
    State(state): State<Arc<TraceState>>,
    Query(q): Query<HistoryQuery>,
) -> Result<Response, TraceError> {
    let d = state.view.execution(&q.arn)?;
    let events = state.view.history(&q.arn)?;
    let p = path::analyse(&events, d.status);
    let after = q.after.unwrap_or(0);
    let list: Vec<Value> = events
        .iter()
        .zip(&p.places)
        .filter(|(e, _)| e.id > after)
        .map(|(e, place)| {
            let (key, details) = match &e.details {
                Some(details) => (details.key(), details.to_value()),
                None => ("", Value::Null),
            };
            json!({
                "id": e.id,
                "previousEventId": e.previous_event_id,
                "type": e.event_type,
                "timestampMs": e.timestamp_millis,
                "elapsedMs": e.timestamp_millis - d.start_ms,
                "state": place.state,
                "iteration": place.iteration,
                "detailsKey": key,
                "details": details,
            })
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        json!({ "status": d.status, "total": events.len(), "events": list }),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetricsQuery {
    pool: Option<String>,
    /// The last minutes (default 15), unless a start is given.
    minutes: Option<u64>,
    /// Around a time span, such as an execution's (end: now when missing).
    start_ms: Option<i64>,
    end_ms: Option<i64>,
}

async fn metrics_handler(
    State(state): State<Arc<TraceState>>,
    Query(q): Query<MetricsQuery>,
) -> Result<Response, TraceError> {
    let client = state.cloudwatch.as_ref().ok_or(TraceError::NoMetrics)?;
    let pool = q.pool.unwrap_or_else(|| "main".to_owned());
    if pool.is_empty() || pool.len() > 128 {
        return Err(TraceError::BadRequest(
            "pool must be 1 to 128 characters".into(),
        ));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let window = match q.start_ms {
        Some(start) => metrics::Window::around(start, q.end_ms.unwrap_or(now)),
        None => metrics::Window::last(now, q.minutes.unwrap_or(15).clamp(1, 24 * 60)),
    };
    let reader = metrics::Reader::new(client, &state.namespace);
    let series = reader.pool_series(&pool, &window).await?;
    let pools = reader.pools().await?;
    Ok(json_response(
        StatusCode::OK,
        json!({
            "namespace": state.namespace,
            "pool": pool,
            "pools": pools,
            "startMs": window.start_ms,
            "endMs": window.end_ms,
            "periodSeconds": window.period_seconds,
            "series": series,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parent_is_read_from_the_input() {
        let parent = "arn:aws:states:us-east-1:123456789012:execution:h:1";
        let input = json!({"pool": "main", "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID": parent});
        assert_eq!(started_by(&input.to_string()).as_deref(), Some(parent));
        assert_eq!(started_by(r#"{"pool":"main"}"#), None);
        assert_eq!(
            started_by("AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID"),
            None
        );
    }

    #[test]
    fn the_page_is_self_contained() {
        // No external script, style, image or font: everything is inline.
        for needle in ["src=\"http", "href=\"http", "url(http", "@import", "//cdn"] {
            assert!(!PAGE.contains(needle), "{needle}");
        }
        assert!(PAGE.contains("/trace/api/execution"));
    }
}
