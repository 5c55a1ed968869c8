//! The stack as the trace page sees it: [`leasehold_trace::StackView`] over the stack's Step
//! Functions, and the page's state (the view, the local CloudWatch, the functions' namespace).

use crate::lambda::LambdaService;
use crate::sfn::{ApiError, Execution, Machine, StepFunctions};
use leasehold_asl::history::HistoryEvent;
use leasehold_trace::{
    DEFAULT_NAMESPACE, ExecutionView, MachineView, StackView, TraceError, TraceState,
};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The trace page's state for a stack: the namespace is the one the template gives its
/// functions, and the metrics are read back from where the forwarder sends them (the local
/// CloudWatch, when the environment names an endpoint).
pub fn trace_state(
    sfn: &Arc<StepFunctions>,
    lambda: &LambdaService,
    env: &BTreeMap<String, String>,
    sdk: &aws_config::SdkConfig,
) -> Arc<TraceState> {
    let namespace = lambda
        .specs()
        .iter()
        .find_map(|f| f.environment.get("METRICS_NAMESPACE").cloned())
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
    let cloudwatch = (env.contains_key("AWS_ENDPOINT_URL")
        || env.contains_key("AWS_ENDPOINT_URL_CLOUDWATCH"))
    .then(|| aws_sdk_cloudwatch::Client::new(sdk));
    Arc::new(TraceState {
        view: sfn.clone(),
        cloudwatch,
        namespace,
    })
}

fn lookup_error(e: ApiError) -> TraceError {
    if e.kind.ends_with("DoesNotExist") {
        TraceError::NotFound(Box::new(e))
    } else {
        TraceError::InvalidArn(Box::new(e))
    }
}

fn machine_view(m: &Machine) -> MachineView {
    MachineView {
        arn: m.arn.clone(),
        name: m.name.clone(),
        kind: m.kind.clone(),
        definition: m.parsed.clone(),
    }
}

fn execution_view(e: &Execution) -> ExecutionView {
    let d = e.describe();
    ExecutionView {
        machine_arn: d.machine_arn,
        machine_name: e.machine_name.clone(),
        arn: d.arn,
        name: d.name,
        input: d.input,
        status: d.status,
        start_ms: d.start_ms,
        stop_ms: d.stop_ms,
        output: d.output,
        error: d.error,
        cause: d.cause,
    }
}

impl StackView for StepFunctions {
    fn machines(&self) -> Vec<MachineView> {
        StepFunctions::machines(self)
            .iter()
            .map(|m| machine_view(m))
            .collect()
    }

    fn machine(&self, arn: &str) -> Result<MachineView, TraceError> {
        StepFunctions::machine(self, arn)
            .map(|m| machine_view(&m))
            .map_err(lookup_error)
    }

    fn executions_of(&self, machine_arn: &str) -> Vec<ExecutionView> {
        StepFunctions::executions_of(self, machine_arn)
            .iter()
            .map(|e| execution_view(e))
            .collect()
    }

    fn execution(&self, arn: &str) -> Result<ExecutionView, TraceError> {
        StepFunctions::execution(self, arn)
            .map(|e| execution_view(&e))
            .map_err(lookup_error)
    }

    fn history(&self, arn: &str) -> Result<Vec<HistoryEvent>, TraceError> {
        StepFunctions::execution(self, arn)
            .map(|e| e.history())
            .map_err(lookup_error)
    }
}
