//! Every route of the local stack's endpoint, fed generated requests: each Step Functions
//! operation of the dispatch table (and unknown ones) with JSON bodies of wrong types, huge and
//! negative numbers, bad ARNs and tokens, deep nesting, long strings and missing fields, and
//! definitions and inputs with numbers at the ends of their ranges; the Lambda API routes with
//! odd names, headers and payloads. Each request is answered through the router without a
//! socket (`oneshot`), and:
//! - the answer is HTTP with a body: a success, or an AWS-shaped error (`__type` and `message`
//!   for Step Functions, `X-Amzn-ErrorType` for Lambda), never a server error without body;
//! - nothing panics, neither a handler nor an execution's run (a panic hook counts them all);
//! - an erroring call changes nothing: the state machines and the executions are the same.
//!
//! Seeded: a failure prints the case number, the seed and the request, to be replayed.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use leasehold_asl::clock::{Random, SeededRandom};
use leasehold_local::lambda::{LambdaConfig, LambdaService};
use leasehold_local::metrics::MetricsForwarder;
use leasehold_local::server::{AppState, CfnResponses, app};
use leasehold_local::sfn::StepFunctions;
use leasehold_trace::{DEFAULT_NAMESPACE, TraceState};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tower::ServiceExt;

const CASES: u64 = 12_000;
const SEED: u64 = 0x1ea5_e401;
const REGION: &str = "us-east-1";
const ACCOUNT: &str = "123456789012";

/// The Step Functions operations of the dispatch table, and some it does not have.
const OPERATIONS: [&str; 21] = [
    "CreateStateMachine",
    "DescribeStateMachine",
    "DescribeStateMachineForExecution",
    "UpdateStateMachine",
    "DeleteStateMachine",
    "ListStateMachines",
    "ValidateStateMachineDefinition",
    "StartExecution",
    "StartSyncExecution",
    "DescribeExecution",
    "StopExecution",
    "GetExecutionHistory",
    "ListExecutions",
    "SendTaskSuccess",
    "SendTaskFailure",
    "SendTaskHeartbeat",
    "DescribeMapRun",
    "ListMapRuns",
    "TagResource",
    "",
    "describeexecution",
];

static PANICS: AtomicUsize = AtomicUsize::new(0);

struct Gen(SeededRandom);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }

    fn number(&mut self) -> Value {
        let extremes = [
            json!(i64::MAX),
            json!(i64::MIN),
            json!(u64::MAX),
            json!(i32::MAX),
            json!(-1),
            json!(0),
            json!(1),
            json!(2),
            json!(1000),
            json!(1001),
            json!(100),
            json!(101),
            json!(1e308),
            json!(-1e308),
            json!(0.5),
            json!(-0.0),
            json!(99_999_999),
        ];
        match self.below(3) {
            0 | 1 => self.pick(&extremes),
            _ => json!(self.next() as i64),
        }
    }

    fn text(&mut self) -> String {
        let pieces = [
            "",
            "a",
            "m",
            "page-",
            "page-1",
            "page-18446744073709551615",
            "page-18446744073709551616",
            "page--1",
            "page-+1",
            "arn:aws:states:",
            "arn:aws:states:us-east-1:123456789012:stateMachine:",
            "arn:aws:states:us-east-1:123456789012:execution:",
            "arn:aws:states:us-east-1:123456789012:express:",
            "arn:aws:lambda:us-east-1:123456789012:function:f",
            ":",
            "/",
            " ",
            "\u{0}",
            "é",
            "\u{1F600}",
            "{",
            "}",
            "${x}",
            "%",
            "\\",
            "\"",
            "STANDARD",
            "EXPRESS",
            "RUNNING",
        ];
        let mut s = String::new();
        for _ in 0..self.below(4) {
            s.push_str(self.pick(&pieces));
        }
        if self.chance(3) {
            s.push_str(&"x".repeat(self.below(3000)));
        }
        s
    }

    /// Some JSON nested `depth` deep, arrays or objects.
    fn nested(&mut self, depth: usize) -> Value {
        let mut v = self.scalar();
        for _ in 0..depth {
            v = if self.chance(50) {
                json!([v])
            } else {
                json!({ "k": v })
            };
        }
        v
    }

    fn scalar(&mut self) -> Value {
        match self.below(5) {
            0 => Value::Null,
            1 => json!(self.chance(50)),
            2 => self.number(),
            _ => json!(self.text()),
        }
    }

    /// Any JSON value, of any type.
    fn any(&mut self) -> Value {
        match self.below(8) {
            0..=3 => self.scalar(),
            4 => json!([self.scalar(), self.scalar()]),
            5 => json!({ "a": self.scalar() }),
            6 => {
                let depth = self.pick(&[3, 20, 100, 126, 127, 200]);
                self.nested(depth)
            }
            _ => json!(self.text()),
        }
    }

    /// A field's value: usually a plausible one, sometimes anything at all.
    fn field(&mut self, plausible: impl FnOnce(&mut Self) -> Value) -> Option<Value> {
        match self.below(10) {
            0 => None,
            1 | 2 => Some(self.any()),
            _ => Some(plausible(self)),
        }
    }
}

/// Definitions: most load, with numbers from the definition or the input at their extremes;
/// `quick` ones end at once (they are the only ones an EXPRESS machine gets, whose
/// StartSyncExecution waits for the end).
fn definition(g: &mut Gen, quick: bool) -> String {
    let n = g.number();
    let quick_ones = [
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}),
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "InputPath": "$.a[1:9:9223372036854775807]", "End": true}}}),
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {"r.$": "States.ArrayRange(0, $.n, $.n)", "g.$": "States.ArrayGetItem($.a, $.n)", "p.$": "States.ArrayPartition($.a, $.n)"}, "End": true}}}),
        json!({"QueryLanguage": "JSONata", "StartAt": "P", "States": {"P": {"Type": "Pass", "Output": "{% [$substring('abc', $states.input.n, $states.input.n), $pad('x', $states.input.n > 100000 ? 5 : $states.input.n), $round(1.5, $states.input.n)] %}", "End": true}}}),
        json!({"QueryLanguage": "JSONata", "StartAt": "P", "States": {"P": {"Type": "Pass", "Output": "{% [$states.input.n..$states.input.n + 3] %}", "End": true}}}),
        json!({"StartAt": "C", "States": {"C": {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericGreaterThan": n, "Next": "F"}], "Default": "S"}, "F": {"Type": "Fail", "Error": "E"}, "S": {"Type": "Succeed"}}}),
        json!({"StartAt": "M", "States": {"M": {"Type": "Map", "ItemsPath": "$.a", "MaxConcurrency": 2, "ToleratedFailurePercentage": 100,
            "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}, "End": true}}}),
        json!({"StartAt": "M", "States": {"M": {"Type": "Map", "ItemsPath": "$.a", "MaxConcurrencyPath": "$.n", "ToleratedFailurePercentagePath": "$.n", "ToleratedFailureCountPath": "$.n",
            "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}, "End": true}}}),
        json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f", "TimeoutSecondsPath": "$.n", "HeartbeatSecondsPath": "$.n", "End": true}}}),
        json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "Branches": [{"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}}], "End": true}}}),
    ];
    let slow_ones = [
        json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": n, "End": true}}}),
        json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "SecondsPath": "$.n", "End": true}}}),
        json!({"TimeoutSeconds": n, "StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 3600, "End": true}}}),
        json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f", "TimeoutSeconds": n, "End": true,
            "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": n, "BackoffRate": n, "MaxAttempts": n, "MaxDelaySeconds": n}]}}}),
    ];
    match g.below(10) {
        0 => g.text(),
        1 => g.any().to_string(),
        2 if !quick => g.pick(&slow_ones).to_string(),
        _ => g.pick(&quick_ones).to_string(),
    }
}

/// What the stack holds, by name: machines as created or updated, and every execution.
#[derive(Debug, PartialEq)]
struct Snapshot {
    machines: Vec<(String, String, String, String, Option<i64>)>,
    executions: BTreeSet<String>,
    /// Task tokens a task still waits on.
    open_tokens: Vec<String>,
}

fn snapshot(sfn: &StepFunctions, known: &Mutex<BTreeSet<String>>) -> Snapshot {
    let machines: Vec<_> = sfn
        .machines()
        .iter()
        .map(|m| {
            (
                m.arn.clone(),
                m.definition.clone(),
                m.role_arn.clone(),
                m.kind.clone(),
                *m.updated_ms.lock().unwrap(),
            )
        })
        .collect();
    let mut known = known.lock().unwrap();
    known.extend(machines.iter().map(|m| m.0.clone()));
    let executions = known
        .iter()
        .flat_map(|arn| sfn.executions_of(arn))
        .map(|e| e.arn.clone())
        .collect();
    Snapshot {
        machines,
        executions,
        open_tokens: sfn.callbacks.open(),
    }
}

/// ARNs to use in requests: those of the stack, and bad ones.
fn arn(
    g: &mut Gen,
    sfn: &StepFunctions,
    known: &Mutex<BTreeSet<String>>,
    of_machine: bool,
) -> Value {
    let mut machines: Vec<String> = sfn.machines().iter().map(|m| m.arn.clone()).collect();
    if machines.is_empty() || g.chance(10) {
        machines.extend(known.lock().unwrap().iter().cloned());
    }
    let executions: Vec<String> = machines
        .iter()
        .flat_map(|m| sfn.executions_of(m))
        .map(|e| e.arn.clone())
        .collect();
    let bad = [
        "".to_owned(),
        "arn".to_owned(),
        "arn:aws:states:us-east-1:123456789012:stateMachine:none".to_owned(),
        "arn:aws:states:us-east-1:123456789012:execution:none:none".to_owned(),
        "arn:aws:states:us-east-1:123456789012:express:m:e:1".to_owned(),
        "arn:aws:states:us-east-1:123456789012:activity:a".to_owned(),
        "arn:aws:lambda:us-east-1:123456789012:function:f".to_owned(),
        format!(
            "arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{}",
            "n".repeat(5000)
        ),
    ];
    match g.below(10) {
        0..=6 if of_machine && !machines.is_empty() => json!(g.pick(&machines)),
        0..=6 if !of_machine && !executions.is_empty() => json!(g.pick(&executions)),
        7 if !machines.is_empty() => json!(g.pick(&machines)),
        8 => g.any(),
        _ => json!(g.pick(&bad)),
    }
}

/// A task token: one the service issued (open or closed), or one it never did.
fn task_token(g: &mut Gen, issued: &[String]) -> Value {
    match g.below(10) {
        0..=5 => json!(g.pick(issued)),
        6 => json!(leasehold_asl::intrinsics::uuid_v4(g.next(), g.next())),
        7 => json!(g.pick(issued).to_uppercase()),
        8 => json!("t".repeat(g.pick(&[2048, 2049, 5000]))),
        _ => json!(g.text()),
    }
}

/// A body for a Step Functions operation.
fn sfn_body(
    g: &mut Gen,
    sfn: &StepFunctions,
    known: &Mutex<BTreeSet<String>>,
    operation: &str,
    tokens: &[String],
) -> Value {
    let names = ["m1", "m2", "x", "express-1", "e", "has space", "a:b", ""];
    let mut body = serde_json::Map::new();
    let mut put = |g: &mut Gen, key: &str, plausible: &dyn Fn(&mut Gen) -> Value| {
        if let Some(v) = g.field(|g| plausible(g)) {
            body.insert(key.to_owned(), v);
        }
    };
    let kind_express = g.chance(30);
    let starts = operation.starts_with("Start");
    put(g, "name", &|g| {
        if starts && g.chance(60) {
            json!(format!("run-{}", g.next()))
        } else if g.chance(80) {
            json!(g.pick(&names))
        } else {
            json!(g.text())
        }
    });
    // An update may give any machine, EXPRESS ones included, its definition.
    let quick = kind_express || operation == "UpdateStateMachine";
    put(g, "definition", &|g| json!(definition(g, quick)));
    put(g, "roleArn", &|_| json!("arn:aws:iam::123456789012:role/r"));
    put(g, "type", &|g| {
        json!(if kind_express {
            "EXPRESS"
        } else if g.chance(90) {
            "STANDARD"
        } else {
            "BATCH"
        })
    });
    put(g, "stateMachineArn", &|g| arn(g, sfn, known, true));
    put(g, "executionArn", &|g| arn(g, sfn, known, false));
    put(g, "mapRunArn", &|g| {
        if g.chance(50) {
            json!(format!(
                "arn:aws:states:{REGION}:{ACCOUNT}:mapRun:{}/{}:{}",
                g.pick(&names),
                g.pick(&names),
                g.next()
            ))
        } else {
            arn(g, sfn, known, false)
        }
    });
    put(g, "input", &|g| {
        let input = match g.below(6) {
            0 => g.text(),
            1 => "s".repeat(256 * 1024 + g.below(3) - 1),
            2 => g.nested(130).to_string(),
            _ => json!({"n": g.number(), "a": [0, 1, 2, 3], "s": g.number()}).to_string(),
        };
        json!(input)
    });
    put(g, "maxResults", &|g| g.number());
    put(g, "nextToken", &|g| json!(g.text()));
    put(g, "statusFilter", &|g| {
        json!(g.pick(&["RUNNING", "SUCCEEDED", "FAILED", "running", "DONE"]))
    });
    put(g, "reverseOrder", &|g| json!(g.chance(50)));
    put(g, "includeExecutionData", &|g| json!(g.chance(50)));
    put(g, "error", &|g| json!(g.text()));
    put(g, "cause", &|g| json!(g.text()));
    put(g, "taskToken", &|g| task_token(g, tokens));
    put(g, "output", &|g| match g.below(6) {
        0 => json!(g.text()),
        // Quoted, so 262143 to 262145 bytes: around Step Functions' limit.
        1 => json!(format!("\"{}\"", "o".repeat(256 * 1024 - 3 + g.below(3)))),
        _ => json!(g.any().to_string()),
    });
    Value::Object(body)
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

async fn call(app: &axum::Router, request: Request<Body>, case: u64, shown: &str) -> Answer {
    let started = Instant::now();
    let answer = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::spawn(app.clone().oneshot(request)),
    )
    .await;
    let response = match answer {
        Err(_) => panic!("case {case} (seed {SEED:#x}): {shown}: no answer within 30 s"),
        Ok(Err(e)) => panic!("case {case} (seed {SEED:#x}): {shown}: the handler panicked: {e}"),
        Ok(Ok(Err(e))) => panic!("case {case} (seed {SEED:#x}): {shown}: no answer: {e}"),
        Ok(Ok(Ok(response))) => response,
    };
    // Nothing here waits for long: the definitions an EXPRESS machine gets end at once, and
    // a stopped execution ends when stopped.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "case {case} (seed {SEED:#x}): {shown}: answered after {:?}",
        started.elapsed()
    );
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024 * 1024)
        .await
        .unwrap_or_else(|e| panic!("case {case} (seed {SEED:#x}): {shown}: body: {e}"))
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

fn short(text: &str) -> String {
    if text.len() <= 600 {
        return text.to_owned();
    }
    let mut end = 600;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &text[..end], text.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_requests_get_aws_answers_and_change_nothing_on_error() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));

    let logs = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("api-fuzz-logs");
    let lambda = LambdaService::new(
        &[],
        LambdaConfig {
            binaries: logs.clone(),
            base_env: Default::default(),
            default_concurrency: 2,
            idle_timeout: Duration::from_secs(1),
            logs_dir: logs,
            log_limits: Default::default(),
            kill: HashMap::new(),
            lose_answers: HashMap::new(),
            seed: SEED,
        },
        MetricsForwarder::disabled(),
    )
    .expect("a Lambda service without functions");
    let sfn = StepFunctions::new(REGION, ACCOUNT, SEED);
    let app = app(AppState {
        sfn: sfn.clone(),
        lambda,
        cfn: Arc::new(CfnResponses::default()),
        stats: Arc::new(|| json!({})),
        trace: Arc::new(TraceState {
            view: sfn.clone(),
            cloudwatch: None,
            namespace: DEFAULT_NAMESPACE.to_owned(),
        }),
    });

    let known = Mutex::new(BTreeSet::new());
    let mut g = Gen(SeededRandom::new(SEED));
    // Task tokens as callback tasks register them: most wait (their waiters are kept), some
    // are closed at once, as a task that timed out leaves its token.
    let mut waiting = Vec::new();
    let mut tokens = Vec::new();
    for i in 0..400 {
        let token = leasehold_asl::intrinsics::uuid_v4(g.next(), g.next());
        let waiter = sfn
            .callbacks
            .register(&token, Default::default())
            .expect("a new token");
        if i % 4 != 0 {
            waiting.push(waiter);
        }
        tokens.push(token);
    }
    let (mut errors, mut successes, mut executions) = (0u64, 0u64, 0u64);
    let mut by_type: HashMap<String, u64> = HashMap::new();
    let mut answered: HashMap<(&str, u16), u64> = HashMap::new();
    let started = Instant::now();
    let cases = std::env::var("API_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CASES);
    for case in 0..cases {
        let before = snapshot(&sfn, &known);
        let route = g.below(100);
        if route < 80 {
            // Step Functions
            // Creating machines and starting executions gets the larger share, so that the
            // other operations find state to act on.
            let operation = match g.below(10) {
                0 | 1 => "CreateStateMachine",
                2 | 3 => "StartExecution",
                4 => "StartSyncExecution",
                _ => g.pick(&OPERATIONS),
            };
            let target = match g.below(20) {
                0 => operation.to_owned(),
                1 => format!("AWSStepFunctions{operation}"),
                _ => format!("AWSStepFunctions.{operation}"),
            };
            let body = match g.below(20) {
                0 => b"{".to_vec(),
                1 => Vec::new(),
                2 => g.any().to_string().into_bytes(),
                3 => vec![0xff, 0xfe, b'{', b'}'],
                4 => format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
                // Larger than any request Step Functions takes.
                5 if g.chance(10) => {
                    format!("{{\"definition\": \"{}\"}}", "d".repeat(3 << 20)).into_bytes()
                }
                _ => sfn_body(&mut g, &sfn, &known, operation, &tokens)
                    .to_string()
                    .into_bytes(),
            };
            let shown = format!("POST / {target} {}", short(&String::from_utf8_lossy(&body)));
            let request = Request::post("/")
                .header("x-amz-target", &target)
                .header("content-type", "application/x-amz-json-1.0")
                .body(Body::from(body))
                .expect("a request");
            let a = call(&app, request, case, &shown).await;
            if a.status == StatusCode::OK && operation.starts_with("Start") {
                executions += 1;
            }
            if operation.starts_with("SendTask") {
                *answered.entry((operation, a.status.as_u16())).or_default() += 1;
            }
            let text = String::from_utf8_lossy(&a.body);
            let v: Value = serde_json::from_slice(&a.body).unwrap_or_else(|_| {
                panic!(
                    "case {case} (seed {SEED:#x}): {shown}: {} not JSON: {text}",
                    a.status
                )
            });
            match a.status {
                StatusCode::OK => {
                    assert!(v.is_object(), "case {case}: {shown}: {v}");
                    successes += 1;
                }
                StatusCode::BAD_REQUEST => {
                    let kind = v["__type"].as_str().unwrap_or_else(|| {
                        panic!("case {case} (seed {SEED:#x}): {shown}: no __type: {text}")
                    });
                    assert!(
                        v["message"].is_string(),
                        "case {case} (seed {SEED:#x}): {shown}: no message: {text}"
                    );
                    *by_type.entry(kind.to_owned()).or_default() += 1;
                    errors += 1;
                    let after = snapshot(&sfn, &known);
                    assert_eq!(
                        before, after,
                        "case {case} (seed {SEED:#x}): {shown}: the error {text} changed the state"
                    );
                }
                other => panic!("case {case} (seed {SEED:#x}): {shown}: {other} {text}"),
            }
        } else if route < 95 {
            // Lambda
            let name = g.pick(&[
                "f",
                "arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Af",
                "f%3A%24LATEST",
                "%2F",
                "a%20b",
                "%FF%FE",
                "..",
                "x",
                "$LATEST",
            ]);
            let name = if g.chance(5) {
                "n".repeat(3000)
            } else {
                name.to_owned()
            };
            let (method, uri) = match g.below(4) {
                0 => ("GET", "/2015-03-31/functions".to_owned()),
                1 => ("GET", format!("/2015-03-31/functions/{name}")),
                _ => ("POST", format!("/2015-03-31/functions/{name}/invocations")),
            };
            let invocation = g.pick(&["", "RequestResponse", "Event", "DryRun", "event", "x"]);
            let log = g.pick(&["", "Tail", "None"]);
            let payload = match g.below(5) {
                0 => Vec::new(),
                // Over Lambda's 6 MB, or over 2 MB (which Lambda takes).
                4 if g.chance(10) => {
                    format!("\"{}\"", "p".repeat(g.pick(&[3 << 20, 7 << 20]))).into_bytes()
                }
                1 => b"{".to_vec(),
                2 => g.nested(200).to_string().into_bytes(),
                _ => g.any().to_string().into_bytes(),
            };
            let shown = format!(
                "{method} {} ({invocation}) {}",
                short(&uri),
                short(&String::from_utf8_lossy(&payload))
            );
            let request = Request::builder()
                .method(method)
                .uri(&uri)
                .header("x-amz-invocation-type", invocation)
                .header("x-amz-log-type", log)
                .body(Body::from(payload))
                .expect("a request");
            let a = call(&app, request, case, &shown).await;
            let text = String::from_utf8_lossy(&a.body);
            if a.status.is_success() {
                successes += 1;
            } else {
                errors += 1;
                let kind = a
                    .headers
                    .get("x-amzn-errortype")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_else(|| {
                        panic!("case {case} (seed {SEED:#x}): {shown}: {} without X-Amzn-ErrorType: {text}", a.status)
                    });
                let v: Value = serde_json::from_slice(&a.body).unwrap_or_else(|_| {
                    panic!("case {case} (seed {SEED:#x}): {shown}: not JSON: {text}")
                });
                assert!(
                    v["message"].is_string() && a.status.is_client_error(),
                    "case {case} (seed {SEED:#x}): {shown}: {} {text}",
                    a.status
                );
                *by_type.entry(kind.to_owned()).or_default() += 1;
                assert_eq!(
                    before,
                    snapshot(&sfn, &known),
                    "case {case} (seed {SEED:#x}): {shown}: changed the state"
                );
            }
        } else {
            // The rest of the endpoint: custom resource responses, stats, health, the page's API.
            let token = g.pick(&["t", "%00", "..", "x%2Fy"]);
            let (method, uri) = match g.below(5) {
                0 => ("PUT", format!("/cloudformation/{token}")),
                1 => ("GET", "/stats".to_owned()),
                2 => ("GET", "/health".to_owned()),
                3 => (
                    "GET",
                    format!(
                        "/trace/api/executions?machine=arn%3Aaws%3Astates%3Aus-east-1%3A123456789012%3AstateMachine%3Am1&limit={}",
                        g.number()
                    ),
                ),
                _ => (
                    "GET",
                    format!(
                        "/trace/api/metrics?startMs={}&endMs={}",
                        g.number(),
                        g.number()
                    ),
                ),
            };
            let shown = format!("{method} {uri}");
            let request = Request::builder()
                .method(method)
                .uri(&uri)
                .body(Body::from(g.any().to_string()))
                .expect("a request");
            let a = call(&app, request, case, &shown).await;
            assert!(
                !a.status.is_server_error() || a.status == StatusCode::SERVICE_UNAVAILABLE,
                "case {case} (seed {SEED:#x}): {shown}: {} {}",
                a.status,
                String::from_utf8_lossy(&a.body)
            );
            if a.status.is_success() {
                successes += 1;
            } else {
                errors += 1;
                assert_eq!(
                    before,
                    snapshot(&sfn, &known),
                    "case {case} (seed {SEED:#x}): {shown}: changed the state"
                );
            }
        }
    }
    let elapsed = started.elapsed();

    // Every execution the cases started ends (or runs on) without a panic in its run.
    let last = snapshot(&sfn, &known);
    for arn in &last.executions {
        let d = sfn.execution(arn).expect("a known execution").describe();
        assert!(
            !d.cause.as_deref().unwrap_or_default().contains("panicked"),
            "{arn}: {:?} {:?}",
            d.error,
            d.cause
        );
    }
    let panics = PANICS.load(Ordering::SeqCst);
    let mut types: Vec<_> = by_type.into_iter().collect();
    types.sort();
    eprintln!(
        "{cases} cases in {elapsed:?}: {successes} successes, {errors} errors {types:?}; {executions} executions started; at the end {} machines, {} executions",
        last.machines.len(),
        last.executions.len()
    );
    assert_eq!(panics, 0, "panics while the cases ran (see the log above)");
    if cases == CASES {
        assert!(
            successes > 1000 && errors > 1000,
            "the cases reach both sides"
        );
        assert!(executions > 150, "the cases start executions: {executions}");
        // The callback actions complete and refuse tokens alike, with each of their errors.
        for operation in ["SendTaskSuccess", "SendTaskFailure", "SendTaskHeartbeat"] {
            for status in [200, 400] {
                assert!(
                    answered.get(&(operation, status)).is_some_and(|n| *n > 5),
                    "{operation} answered {status} too rarely: {answered:?}"
                );
            }
        }
        for kind in [
            "InvalidToken",
            "TaskDoesNotExist",
            "TaskTimedOut",
            "InvalidOutput",
        ] {
            assert!(types.iter().any(|(k, _)| k == kind), "no {kind}: {types:?}");
        }
    }
    drop(waiting);
}
