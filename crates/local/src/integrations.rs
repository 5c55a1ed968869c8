//! The Task resources the workflows call, with the outputs and error names Step Functions
//! gives them on AWS:
//! - `arn:aws:states:::lambda:invoke` (output with `Payload`, `StatusCode`, ...) and bare
//!   function ARNs (output = the function's response);
//! - `arn:aws:states:::lambda:invoke.waitForTaskToken`: the same invocation, then the task waits
//!   for SendTaskSuccess/SendTaskFailure with its token (see [`crate::sfn::callbacks`]);
//! - `arn:aws:states:::states:startExecution`, `.sync` and `.sync:2`;
//! - `arn:aws:states:::dynamodb:getItem|putItem|updateItem|deleteItem`, whose parameters are
//!   passed verbatim to DynamoDB's API (signed with SigV4) at the configured endpoint;
//! - `arn:aws:states:::sqs:sendMessage` (`QueueUrl`, `MessageBody`, which Step Functions turns
//!   into a JSON string when it is not one, ...), sent to SQS's API at the same endpoint.
//!
//! [`Integrations`] depends on Step Functions, never the reverse: the service is built with
//! its invoker ([`StepFunctions::with_tasks`]) and hands it a `Weak` handle for child
//! executions. The invoker is a cheap clone of handles, so each task's future owns one.

use crate::lambda::{InvokeError, LambdaService, Outcome};
use crate::sfn::{Described, StepFunctions, Tasks};
use leasehold_asl::clock::BoxFuture;
use leasehold_asl::invoker::{TaskError, TaskInvoker, TaskRequest, TaskStyle};
use serde_json::{Value, json};
use std::sync::{Arc, Weak};
use std::time::SystemTime;

const LAMBDA_INVOKE: &str = "arn:aws:states:::lambda:invoke";
const LAMBDA_INVOKE_CALLBACK: &str = "arn:aws:states:::lambda:invoke.waitForTaskToken";
const START_EXECUTION: &str = "arn:aws:states:::states:startExecution";
const DYNAMODB: &str = "arn:aws:states:::dynamodb:";
const SQS_SEND_MESSAGE: &str = "arn:aws:states:::sqs:sendMessage";

/// Where and as whom the AWS API calls of service integrations (DynamoDB, SQS) go.
#[derive(Debug, Clone)]
pub struct AwsTarget {
    /// DynamoDB's endpoint.
    pub endpoint: String,
    /// SQS's endpoint (DynamoDB's unless it has its own).
    pub sqs_endpoint: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
}

#[derive(Clone)]
pub struct Integrations {
    lambda: Arc<LambdaService>,
    sfn: Weak<StepFunctions>,
    aws: Option<Arc<AwsTarget>>,
    http: reqwest::Client,
}

fn failed(error: impl Into<String>, cause: impl Into<String>) -> TaskError {
    TaskError {
        error: error.into(),
        cause: Some(cause.into()),
    }
}

/// The DynamoDB operations Step Functions optimizes, by resource suffix.
fn dynamodb_operation(resource: &str) -> Option<&'static str> {
    match resource.strip_prefix(DYNAMODB)? {
        "getItem" => Some("GetItem"),
        "putItem" => Some("PutItem"),
        "updateItem" => Some("UpdateItem"),
        "deleteItem" => Some("DeleteItem"),
        _ => None,
    }
}

impl Integrations {
    pub fn new(
        lambda: Arc<LambdaService>,
        sfn: Weak<StepFunctions>,
        aws: Option<AwsTarget>,
    ) -> Self {
        Integrations {
            lambda,
            sfn,
            aws: aws.map(Arc::new),
            http: reqwest::Client::new(),
        }
    }

    /// The Task wiring of a Step Functions service: this invoker, and [`Self::supports`].
    pub fn tasks(self) -> Tasks {
        let lambda = self.lambda.clone();
        Tasks {
            invoker: Arc::new(self),
            supports: Box::new(move |resource| Self::supports(&lambda, resource)),
        }
    }

    /// Whether a Task resource can run here.
    pub fn supports(lambda: &LambdaService, resource: &str) -> bool {
        resource == LAMBDA_INVOKE
            || resource == LAMBDA_INVOKE_CALLBACK
            || (resource.starts_with("arn:aws:lambda:") && lambda.resolve(resource).is_some())
            || resource
                .strip_prefix(START_EXECUTION)
                .is_some_and(|mode| ["", ".sync", ".sync:2"].contains(&mode))
            || dynamodb_operation(resource).is_some()
            || resource == SQS_SEND_MESSAGE
            || TaskStyle::for_resource(resource) == TaskStyle::Activity
    }

    async fn run(self, request: TaskRequest) -> Result<Value, TaskError> {
        let resource = request.resource.as_str();
        if resource == LAMBDA_INVOKE || resource == LAMBDA_INVOKE_CALLBACK {
            let function = request.parameters["FunctionName"].as_str().ok_or_else(|| {
                failed(
                    "States.Runtime",
                    "lambda:invoke needs Parameters.FunctionName",
                )
            })?;
            let payload = match request.parameters.get("Payload") {
                None => b"{}".to_vec(),
                Some(Value::String(s)) => s.clone().into_bytes(),
                Some(other) => other.to_string().into_bytes(),
            };
            if resource == LAMBDA_INVOKE_CALLBACK {
                return self.invoke_and_wait(function, payload, &request).await;
            }
            let (request_id, body) = self.invoke_lambda(function, payload).await?;
            return Ok(invoke_output(&request_id, body));
        }
        if resource.starts_with("arn:aws:lambda:") {
            let (_, body) = self
                .invoke_lambda(resource, request.parameters.to_string().into_bytes())
                .await?;
            return Ok(body);
        }
        if TaskStyle::for_resource(resource) == TaskStyle::Activity {
            return self.activity_task(&request).await;
        }
        if let Some(mode) = resource.strip_prefix(START_EXECUTION) {
            return self.start_execution(mode, &request).await;
        }
        if let Some(operation) = dynamodb_operation(resource) {
            let call = ("dynamodb", format!("DynamoDB_20120810.{operation}"));
            return self.aws_call(call, request.parameters.to_string()).await;
        }
        if resource == SQS_SEND_MESSAGE {
            let mut parameters = request.parameters.clone();
            if let Some(body) = parameters.get_mut("MessageBody")
                && !body.is_string()
            {
                *body = Value::String(body.to_string());
            }
            let call = ("sqs", "AmazonSQS.SendMessage".to_owned());
            return self.aws_call(call, parameters.to_string()).await;
        }
        Err(failed(
            "States.TaskFailed",
            format!("The resource {resource} is not supported by the leasehold local stack"),
        ))
    }

    /// Opens the task's token (a callback or an activity task): the service, the token, and
    /// what waits for its answer.
    fn open_token<'r>(
        &self,
        request: &'r TaskRequest,
    ) -> Result<(Arc<StepFunctions>, &'r str, crate::sfn::callbacks::Waiter), TaskError> {
        let token = request.task_token.as_deref().ok_or_else(|| {
            failed(
                "States.Runtime",
                format!("the task of {} was given no task token", request.resource),
            )
        })?;
        let sfn = self
            .sfn
            .upgrade()
            .ok_or_else(|| failed("States.TaskFailed", "the local stack is shutting down"))?;
        let waiter = sfn
            .callbacks
            .register(token, request.heartbeat.clone())
            .ok_or_else(|| failed("States.Runtime", "the task token was issued twice"))?;
        Ok((sfn, token, waiter))
    }

    /// An activity's task: queued for its workers with a task token, which their
    /// SendTaskSuccess or SendTaskFailure completes (`HeartbeatSeconds` and `TimeoutSeconds`
    /// run from the moment it is scheduled, as on AWS).
    async fn activity_task(&self, request: &TaskRequest) -> Result<Value, TaskError> {
        let (sfn, token, mut waiter) = self.open_token(request)?;
        let pending = crate::sfn::activities::Pending {
            token: token.to_owned(),
            input: request.parameters.to_string(),
            started: request.submitted.clone(),
        };
        sfn.activities
            .schedule(&request.resource, pending)
            .map_err(|e| failed("States.Runtime", e.message))?;
        drop(sfn);
        waiter.outcome().await
    }

    /// `lambda:invoke.waitForTaskToken`: the token is open before the function starts, so that
    /// a callback that comes while it runs is kept; the invocation's failure fails the task
    /// unless a callback completed it first; its success is only recorded (`TaskSubmitted`)
    /// and the task waits for the callback.
    async fn invoke_and_wait(
        &self,
        function: &str,
        payload: Vec<u8>,
        request: &TaskRequest,
    ) -> Result<Value, TaskError> {
        let (sfn, _, mut waiter) = self.open_token(request)?;
        drop(sfn);
        let invoked = self.invoke_lambda(function, payload);
        tokio::pin!(invoked);
        tokio::select! {
            biased;
            outcome = waiter.outcome() => return outcome,
            result = &mut invoked => match result {
                Ok((request_id, body)) => request.submitted.submit(invoke_output(&request_id, body)),
                Err(e) => return waiter.close().unwrap_or(Err(e)),
            },
        }
        waiter.outcome().await
    }

    /// Invokes a function; a function error becomes the task's error with Lambda's payload as
    /// the cause, and Lambda's own refusals become `Lambda.<Exception>`.
    async fn invoke_lambda(
        &self,
        function: &str,
        payload: Vec<u8>,
    ) -> Result<(String, Value), TaskError> {
        match self.lambda.invoke(function, payload).await {
            Ok(invoked) => match invoked.outcome {
                Outcome::Success(bytes) => {
                    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                        Value::String(String::from_utf8_lossy(&bytes).into_owned())
                    });
                    Ok((invoked.request_id, body))
                }
                Outcome::FunctionError {
                    error_type,
                    payload,
                    ..
                } => Err(failed(
                    error_type,
                    String::from_utf8_lossy(&payload).into_owned(),
                )),
            },
            Err(e) => {
                let status = match e {
                    InvokeError::NotFound(_) => 404,
                    InvokeError::Throttled { .. } => 429,
                    InvokeError::Service(_) => 500,
                };
                Err(failed(
                    format!("Lambda.{}", e.exception()),
                    format!(
                        "{e} (Service: AWSLambda; Status Code: {status}; Error Code: {})",
                        e.exception()
                    ),
                ))
            }
        }
    }

    async fn start_execution(&self, mode: &str, request: &TaskRequest) -> Result<Value, TaskError> {
        let sfn = self
            .sfn
            .upgrade()
            .ok_or_else(|| failed("States.TaskFailed", "the local stack is shutting down"))?;
        let p = &request.parameters;
        let machine = p["StateMachineArn"].as_str().ok_or_else(|| {
            failed(
                "States.Runtime",
                "startExecution needs Parameters.StateMachineArn",
            )
        })?;
        let input = match p.get("Input") {
            None => "{}".to_owned(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        };
        let child = sfn
            .start(machine, p["Name"].as_str(), Some(&input))
            .map_err(|e| failed(format!("StepFunctions.{}", e.kind), e.message))?;
        let started = json!({"ExecutionArn": child.arn, "StartDate": child.start_ms});
        if mode.is_empty() {
            return Ok(started);
        }
        request.submitted.submit(started);
        // A parent that is aborted or times out stops the child it waits for, as AWS does.
        struct StopOnDrop(Option<Arc<crate::sfn::Execution>>);
        impl Drop for StopOnDrop {
            fn drop(&mut self) {
                if let Some(child) = self.0.take()
                    && child.status() == "RUNNING"
                {
                    child.stop(None, Some("The parent execution was stopped".into()));
                }
            }
        }
        let mut guard = StopOnDrop(Some(child.clone()));
        let d = child.finished().await;
        guard.0 = None;
        let v2 = mode == ".sync:2";
        let result = sync_output(&d, v2);
        if d.status == "SUCCEEDED" {
            Ok(result)
        } else {
            Err(failed("States.TaskFailed", result.to_string()))
        }
    }

    /// One call of an AWS JSON API (`service` signs it, `target` names the operation) at the
    /// configured endpoint; its errors are `<Service>.<error type>` as Step Functions names
    /// them (`DynamoDB.ConditionalCheckFailedException`, `SQS.QueueDoesNotExist`, ...).
    async fn aws_call(
        &self,
        (service, target_header): (&str, String),
        body: String,
    ) -> Result<Value, TaskError> {
        // (error prefix, the service as causes name it)
        let (prefix, named) = if service == "sqs" {
            ("SQS", "Sqs")
        } else {
            ("DynamoDB", "DynamoDb")
        };
        let target = self.aws.as_ref().ok_or_else(|| {
            failed(
                "States.TaskFailed",
                format!("no {prefix} endpoint is configured for the local stack"),
            )
        })?;
        let mut request = http::Request::builder()
            .method("POST")
            .uri(if service == "sqs" {
                &target.sqs_endpoint
            } else {
                &target.endpoint
            })
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amz-target", target_header)
            .body(body)
            .map_err(|e| failed("States.TaskFailed", e.to_string()))?;
        sign(&mut request, target, service).map_err(|e| failed("States.TaskFailed", e))?;
        let request = reqwest::Request::try_from(request)
            .map_err(|e| failed("States.TaskFailed", e.to_string()))?;
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|e| failed(format!("{prefix}.Amazon{prefix}Exception"), e.to_string()))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(value);
        }
        let default_kind = format!("Amazon{prefix}Exception");
        let kind = value["__type"]
            .as_str()
            .and_then(|t| t.rsplit('#').next())
            .unwrap_or(&default_kind);
        let message = value["message"]
            .as_str()
            .or_else(|| value["Message"].as_str())
            .unwrap_or("");
        Err(failed(
            format!("{prefix}.{kind}"),
            format!(
                "{message} (Service: {named}, Status Code: {})",
                status.as_u16()
            ),
        ))
    }
}

/// The output of `lambda:invoke`: the function's response as `Payload`, with Lambda's metadata.
fn invoke_output(request_id: &str, body: Value) -> Value {
    json!({
        "ExecutedVersion": "$LATEST",
        "Payload": body,
        "SdkHttpMetadata": {
            "AllHttpHeaders": {"X-Amz-Executed-Version": ["$LATEST"], "x-amzn-RequestId": [request_id], "Content-Type": ["application/json"]},
            "HttpHeaders": {"X-Amz-Executed-Version": "$LATEST", "x-amzn-RequestId": request_id, "Content-Type": "application/json"},
            "HttpStatusCode": 200
        },
        "SdkResponseMetadata": {"RequestId": request_id},
        "StatusCode": 200
    })
}

/// The output of `startExecution.sync` (strings) and `.sync:2` (JSON input and output).
fn sync_output(d: &Described, v2: bool) -> Value {
    let json_or_text = |text: &str| -> Value {
        if v2 {
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
        } else {
            Value::String(text.to_owned())
        }
    };
    let mut v = json!({
        "ExecutionArn": d.arn,
        "Input": json_or_text(&d.input),
        "InputDetails": {"Included": true},
        "Name": d.name,
        "RedriveCount": 0,
        "RedriveStatus": "NOT_REDRIVABLE",
        "StartDate": d.start_ms,
        "StateMachineArn": d.machine_arn,
        "Status": d.status,
        "StopDate": d.stop_ms,
    });
    if let Some(output) = &d.output {
        v["Output"] = json_or_text(output);
        v["OutputDetails"] = json!({"Included": true});
    }
    if let Some(error) = &d.error {
        v["Error"] = json!(error);
    }
    if let Some(cause) = &d.cause {
        v["Cause"] = json!(cause);
    }
    v
}

fn sign(
    request: &mut http::Request<String>,
    target: &AwsTarget,
    service: &str,
) -> Result<(), String> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;
    let identity = aws_credential_types::Credentials::new(
        &target.access_key,
        &target.secret_key,
        None,
        None,
        "leasehold-local",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&target.region)
        .name(service)
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .filter_map(|(k, v)| {
            v.to_str()
                .ok()
                .map(|v| (k.as_str().to_owned(), v.to_owned()))
        })
        .collect();
    let uri = request.uri().to_string();
    let signable = SignableRequest::new(
        request.method().as_str(),
        &uri,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(request.body().as_bytes()),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    instructions.apply_to_request_http1x(request);
    Ok(())
}

impl TaskInvoker for Integrations {
    fn invoke(&self, request: TaskRequest) -> BoxFuture<'static, Result<Value, TaskError>> {
        Box::pin(self.clone().run(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync2_parses_input_and_output_and_sync_keeps_strings() {
        let d = Described {
            arn: "arn:e".into(),
            name: "n".into(),
            machine_arn: "arn:m".into(),
            status: "SUCCEEDED",
            start_ms: 1,
            stop_ms: Some(2),
            input: r#"{"a":1}"#.into(),
            output: Some(r#"{"status":"SERVED"}"#.into()),
            error: None,
            cause: None,
        };
        assert_eq!(sync_output(&d, true)["Output"]["status"], "SERVED");
        assert_eq!(sync_output(&d, false)["Output"], r#"{"status":"SERVED"}"#);
        assert_eq!(sync_output(&d, true)["Input"], json!({"a": 1}));
    }

    #[test]
    fn only_the_optimized_dynamodb_operations_are_known() {
        assert_eq!(
            dynamodb_operation("arn:aws:states:::dynamodb:getItem"),
            Some("GetItem")
        );
        assert_eq!(dynamodb_operation("arn:aws:states:::dynamodb:query"), None);
    }
}
