//! The stack's HTTP endpoint on 127.0.0.1: the Step Functions JSON 1.0 API (`POST /` with
//! `X-Amz-Target`), the Lambda API (`/2015-03-31/functions/...`), the URL custom resources PUT
//! their CloudFormation responses to, `/stats`, and the trace page (`/trace`, see
//! [`leasehold_trace`]).

use crate::lambda::{InvokeError, LambdaService, Outcome};
use crate::sfn::{self, StepFunctions};
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// Responses of custom resources, by the token in their ResponseURL.
#[derive(Default)]
pub struct CfnResponses {
    waiting: Mutex<HashMap<String, oneshot::Sender<Value>>>,
}

impl CfnResponses {
    pub fn expect(&self, token: &str) -> oneshot::Receiver<Value> {
        let (tx, rx) = oneshot::channel();
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token.to_owned(), tx);
        rx
    }
}

#[derive(Clone)]
pub struct AppState {
    pub sfn: Arc<StepFunctions>,
    pub lambda: Arc<LambdaService>,
    pub cfn: Arc<CfnResponses>,
    pub stats: Arc<dyn Fn() -> Value + Send + Sync>,
    /// What the trace page reads (see [`crate::trace_view`]).
    pub trace: Arc<leasehold_trace::TraceState>,
}

/// The largest synchronous invocation payload Lambda takes (6 MB).
const INVOKE_PAYLOAD_LIMIT: usize = 6 * 1024 * 1024;

/// Guards a router served at `address` (a loopback address) against callers that are not
/// local tools: a request whose `Host` names anything but this address (or `localhost` with its
/// port) is refused, which defeats DNS rebinding, and so is a `POST` that a web page could send
/// cross-site without a preflight (a form's or plain text's content type, and no `X-Amz-*`
/// header). The AWS CLI and SDKs always send `X-Amz-*` headers, and their content types are
/// JSON or binary. A request without `Host` (never sent by a browser) is let through.
pub fn local_only(router: Router, address: std::net::SocketAddr) -> Router {
    let hosts: Arc<Vec<String>> = Arc::new(vec![
        address.to_string(),
        format!("localhost:{}", address.port()),
    ]);
    router.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let hosts = hosts.clone();
            async move {
                if let Some(refusal) = refusal(&request, &hosts) {
                    return json_response(
                        StatusCode::FORBIDDEN,
                        "application/json",
                        json!({"__type": "AccessDeniedException", "message": refusal}),
                    );
                }
                next.run(request).await
            }
        },
    ))
}

/// Why a request is refused by [`local_only`], if it is.
fn refusal(request: &axum::extract::Request, hosts: &[String]) -> Option<String> {
    let headers = request.headers();
    if let Some(host) = headers.get(axum::http::header::HOST) {
        let host = host.to_str().unwrap_or("");
        if !hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
            return Some(format!(
                "the local stack answers only requests addressed to {}",
                hosts[0]
            ));
        }
    }
    if request.method() == axum::http::Method::POST {
        let aws_client = headers
            .keys()
            .any(|name| name.as_str().starts_with("x-amz-"));
        let content_type = headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let form_like = matches!(
            content_type.as_str(),
            "" | "application/x-www-form-urlencoded" | "multipart/form-data" | "text/plain"
        );
        if form_like && !aws_client {
            return Some(
                "a POST needs an AWS client's headers (X-Amz-*) or a JSON content type".into(),
            );
        }
    }
    None
}

pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/", post(step_functions))
        .route("/2015-03-31/functions", get(list_functions))
        .route("/2015-03-31/functions/", get(list_functions))
        .route("/2015-03-31/functions/{name}", get(get_function))
        .route(
            "/2015-03-31/functions/{name}/invocations",
            post(invoke).layer(DefaultBodyLimit::max(INVOKE_PAYLOAD_LIMIT)),
        )
        .route("/cloudformation/{token}", put(cfn_response))
        .route("/stats", get(stats))
        .route("/health", get(|| async { "ok" }))
        .with_state(state.clone())
        .merge(leasehold_trace::app(state.trace))
}

pub(crate) fn json_response(
    status: StatusCode,
    content_type: &'static str,
    body: Value,
) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static(content_type));
    response
}

async fn step_functions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    const JSON10: &str = "application/x-amz-json-1.0";
    let body = match body {
        Ok(body) => body,
        Err(e) => {
            let error = json!({"__type": "ValidationException", "message": format!("The request cannot be read: {}", e.body_text())});
            return json_response(StatusCode::BAD_REQUEST, JSON10, error);
        }
    };
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(operation) = target.strip_prefix("AWSStepFunctions.") else {
        let error = json!({"__type": "UnknownOperationException", "message": format!("unknown target {target:?}")});
        return json_response(StatusCode::BAD_REQUEST, JSON10, error);
    };
    let body: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                let error = json!({"__type": "SerializationException", "message": e.to_string()});
                return json_response(StatusCode::BAD_REQUEST, JSON10, error);
            }
        }
    };
    match sfn::dispatch(&state.sfn, operation, &body).await {
        Ok(v) => json_response(StatusCode::OK, JSON10, v),
        Err(e) => json_response(
            StatusCode::BAD_REQUEST,
            JSON10,
            json!({"__type": e.kind, "message": e.message}),
        ),
    }
}

fn lambda_error(e: &InvokeError) -> Response {
    let status = match e {
        InvokeError::NotFound(_) => StatusCode::NOT_FOUND,
        InvokeError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
        InvokeError::Service(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut body = json!({"Type": if status.is_server_error() { "Service" } else { "User" }, "message": e.to_string()});
    if let InvokeError::Throttled { .. } = e {
        body["Reason"] = json!("ReservedFunctionConcurrentInvocationLimitExceeded");
    }
    let mut response = json_response(status, "application/json", body);
    response
        .headers_mut()
        .insert("x-amzn-errortype", HeaderValue::from_static(e.exception()));
    response
}

fn function_json(spec: &crate::template::FunctionSpec) -> Value {
    json!({
        "FunctionName": spec.name,
        "FunctionArn": spec.arn,
        "Runtime": "provided.al2023",
        "Handler": "bootstrap",
        "MemorySize": spec.memory_mb,
        "Timeout": spec.timeout_seconds,
        "Version": "$LATEST",
        "PackageType": "Zip",
        "State": "Active",
        "Environment": {"Variables": spec.environment},
    })
}

async fn list_functions(State(state): State<AppState>) -> Response {
    let functions: Vec<Value> = state
        .lambda
        .specs()
        .into_iter()
        .map(function_json)
        .collect();
    json_response(
        StatusCode::OK,
        "application/json",
        json!({"Functions": functions}),
    )
}

/// A Lambda API error of Lambda's own (`X-Amzn-ErrorType` and a JSON message).
fn lambda_exception(status: StatusCode, exception: &'static str, message: String) -> Response {
    let mut response = json_response(
        status,
        "application/json",
        json!({"Type": "User", "message": message}),
    );
    response
        .headers_mut()
        .insert("x-amzn-errortype", HeaderValue::from_static(exception));
    response
}

/// Lambda's ValidationException for a function name that is no name at all (not UTF-8 once
/// decoded).
fn bad_function_name(e: &PathRejection) -> Response {
    lambda_exception(
        StatusCode::BAD_REQUEST,
        "ValidationException",
        format!(
            "1 validation error detected: Value at 'functionName' failed to satisfy constraint: {}",
            e.body_text()
        ),
    )
}

async fn get_function(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Response {
    let name = match name {
        Ok(Path(name)) => name,
        Err(e) => return bad_function_name(&e),
    };
    match state.lambda.resolve(&name) {
        Some(spec) => json_response(
            StatusCode::OK,
            "application/json",
            json!({"Configuration": function_json(spec), "Code": {"RepositoryType": "S3"}}),
        ),
        None => lambda_error(&InvokeError::NotFound(name)),
    }
}

async fn invoke(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let name = match name {
        Ok(Path(name)) => name,
        Err(e) => return bad_function_name(&e),
    };
    let body = match body {
        Ok(body) => body,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return lambda_exception(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestTooLargeException",
                format!(
                    "Request must be smaller than {INVOKE_PAYLOAD_LIMIT} bytes for the InvokeFunction operation"
                ),
            );
        }
        Err(e) => {
            return lambda_exception(
                StatusCode::BAD_REQUEST,
                "InvalidRequestContentException",
                e.body_text(),
            );
        }
    };
    let header = |key: &str| {
        headers
            .get(key)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let payload = if body.is_empty() {
        b"{}".to_vec()
    } else {
        body.to_vec()
    };
    if !payload.is_empty() && serde_json::from_slice::<Value>(&payload).is_err() {
        return lambda_exception(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            "Could not parse request body into json".to_owned(),
        );
    }
    match header("x-amz-invocation-type") {
        "Event" => {
            return match state.lambda.invoke_async(&name, payload) {
                Ok(()) => StatusCode::ACCEPTED.into_response(),
                Err(e) => lambda_error(&e),
            };
        }
        "DryRun" => {
            return match state.lambda.resolve(&name) {
                Some(_) => StatusCode::NO_CONTENT.into_response(),
                None => lambda_error(&InvokeError::NotFound(name)),
            };
        }
        _ => {}
    }
    match state.lambda.invoke(&name, payload).await {
        Ok(invoked) => {
            let (body, error) = match invoked.outcome {
                Outcome::Success(bytes) => (bytes, false),
                Outcome::FunctionError { payload, .. } => (payload, true),
            };
            let mut response = (StatusCode::OK, body).into_response();
            let h = response.headers_mut();
            h.insert("content-type", HeaderValue::from_static("application/json"));
            h.insert(
                "x-amz-executed-version",
                HeaderValue::from_static("$LATEST"),
            );
            if let Ok(v) = HeaderValue::from_str(&invoked.request_id) {
                h.insert("x-amzn-requestid", v);
            }
            if error {
                h.insert(
                    "x-amz-function-error",
                    HeaderValue::from_static("Unhandled"),
                );
            }
            if header("x-amz-log-type") == "Tail"
                && let Ok(v) = HeaderValue::from_str(&base64(invoked.log_tail.as_bytes()))
            {
                h.insert("x-amz-log-result", v);
            }
            response
        }
        Err(e) => lambda_error(&e),
    }
}

async fn cfn_response(
    State(state): State<AppState>,
    Path(token): Path<String>,
    body: Bytes,
) -> StatusCode {
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let waiter = state
        .cfn
        .waiting
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&token);
    match waiter {
        Some(tx) => {
            let _ = tx.send(value);
            StatusCode::OK
        }
        // S3 answers a PUT to an expired pre-signed URL with 403.
        None => StatusCode::FORBIDDEN,
    }
}

async fn stats(State(state): State<AppState>) -> Response {
    json_response(StatusCode::OK, "application/json", (state.stats)())
}

/// Standard base64 with padding (for `X-Amz-Log-Result`).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_matches_the_standard_alphabet_and_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"START RequestId"), "U1RBUlQgUmVxdWVzdElk");
    }
}
