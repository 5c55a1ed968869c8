//! Shared helpers: a `give(input, definition, expected)` runner on a virtual clock and a
//! scripted Task invoker.
#![allow(dead_code)]

use leasehold_asl::clock::{BoxFuture, Clock, SeededRandom, VirtualClock};
use leasehold_asl::invoker::{TaskError, TaskInvoker, TaskRequest, TaskStyle};
use leasehold_asl::{
    AbortHandle, ExecutionConfig, HistoryEvent, Outcome, Services, Status, execute,
};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a case expects.
pub enum Expect<'a> {
    Output(Value),
    Error(&'a str, Option<&'a str>),
}

/// One scripted answer of a Task: after `secs` seconds, this result.
#[derive(Clone, Debug)]
pub struct Reply {
    pub secs: u64,
    pub result: Result<Value, (String, Option<String>)>,
    /// Send a heartbeat every this many seconds while working.
    pub beat_every: Option<u64>,
}

pub fn ok(v: Value) -> Reply {
    Reply {
        secs: 0,
        result: Ok(v),
        beat_every: None,
    }
}

pub fn ok_after(secs: u64, v: Value) -> Reply {
    Reply {
        secs,
        result: Ok(v),
        beat_every: None,
    }
}

pub fn fail(error: &str, cause: &str) -> Reply {
    Reply {
        secs: 0,
        result: Err((error.into(), Some(cause.into()))),
        beat_every: None,
    }
}

/// A call the invoker received.
#[derive(Clone, Debug)]
pub struct Call {
    pub at_millis: i64,
    pub resource: String,
    pub parameters: Value,
    pub context: Value,
    pub timeout_seconds: Option<u64>,
    pub heartbeat_seconds: Option<u64>,
}

/// Answers Task states from per-resource queues (an empty queue answers `{}` at once).
pub struct Script {
    clock: VirtualClock,
    replies: Mutex<HashMap<String, VecDeque<Reply>>>,
    pub calls: Mutex<Vec<Call>>,
}

impl Script {
    pub fn new(clock: &VirtualClock) -> Arc<Script> {
        Arc::new(Script {
            clock: clock.clone(),
            replies: Mutex::default(),
            calls: Mutex::default(),
        })
    }
    pub fn on(self: &Arc<Self>, resource: &str, replies: Vec<Reply>) -> Arc<Self> {
        self.replies
            .lock()
            .unwrap()
            .entry(resource.to_string())
            .or_default()
            .extend(replies);
        self.clone()
    }
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

impl TaskInvoker for Script {
    fn invoke(&self, req: TaskRequest) -> BoxFuture<'static, Result<Value, TaskError>> {
        let now = self.clock.now_millis();
        self.calls.lock().unwrap().push(Call {
            at_millis: now,
            resource: req.resource.clone(),
            parameters: req.parameters.clone(),
            context: req.context.clone(),
            timeout_seconds: req.timeout_seconds,
            heartbeat_seconds: req.heartbeat_seconds,
        });
        let reply = self
            .replies
            .lock()
            .unwrap()
            .get_mut(&req.resource)
            .and_then(VecDeque::pop_front)
            .unwrap_or_else(|| ok(serde_json::json!({})));
        let clock = self.clock.clone();
        let hb = req.heartbeat.clone();
        Box::pin(async move {
            match reply.beat_every {
                Some(every) => {
                    let mut left = reply.secs;
                    while left > 0 {
                        let step = every.min(left);
                        clock.sleep(Duration::from_secs(step)).await;
                        left -= step;
                        hb.beat(clock.now_millis());
                    }
                }
                None => clock.sleep(Duration::from_secs(reply.secs)).await,
            }
            reply
                .result
                .map_err(|(error, cause)| TaskError { error, cause })
        })
    }

    fn style(&self, resource: &str) -> TaskStyle {
        TaskStyle::for_resource(resource)
    }
}

pub const T0: i64 = 1_700_000_000_000;

/// Runs `definition` with `input` on a virtual clock with the given invoker.
pub fn run_with(
    definition: &Value,
    input: &Value,
    clock: &VirtualClock,
    invoker: Arc<dyn TaskInvoker>,
    seed: u64,
) -> Outcome {
    let machine = leasehold_asl::load(&definition.to_string()).expect("definition loads");
    let cfg = ExecutionConfig::new(
        "us-east-1",
        "123456789012",
        "Test",
        "exec-1",
        &input.to_string(),
    );
    let services = Services {
        clock: Arc::new(clock.clone()),
        random: Arc::new(SeededRandom::new(seed)),
        invoker,
        observer: None,
    };
    clock
        .block_on(execute(
            Arc::new(machine),
            cfg,
            services,
            AbortHandle::new(),
        ))
        .expect("execution does not block forever")
}

pub fn run(definition: &Value, input: &Value) -> Outcome {
    let clock = VirtualClock::new(T0);
    let script = Script::new(&clock);
    run_with(definition, input, &clock, script, 1)
}

/// The table-test entry point.
pub fn give(input: Value, definition: Value, expected: Expect<'_>) {
    let out = run(&definition, &input);
    match expected {
        Expect::Output(v) => {
            assert_eq!(
                out.status,
                Status::Succeeded,
                "{definition}: {:?} {:?}",
                out.error,
                out.cause
            );
            assert_eq!(out.output, Some(v), "{definition}");
        }
        Expect::Error(e, c) => {
            assert_eq!(out.status, Status::Failed, "{definition}: {:?}", out.output);
            assert_eq!(
                out.error.as_deref(),
                Some(e),
                "{definition}: cause {:?}",
                out.cause
            );
            if let Some(c) = c {
                assert_eq!(out.cause.as_deref(), Some(c), "{definition}");
            }
        }
    }
}

pub fn types(h: &[HistoryEvent]) -> Vec<&str> {
    h.iter().map(|e| e.event_type.as_str()).collect()
}
