//! An Amazon States Language interpreter that behaves like AWS Step Functions, down to the
//! execution history.
//!
//! It is a pure library: no sockets, no AWS SDK and no clock of its own. Time, randomness and
//! Task invocations are injected, so tests run workflows with waits and retries instantly
//! and deterministically while the local stack runs them in real time.
//!
//! # Pipeline
//!
//! Load (parse the JSON into typed states) → validate (AWS-style diagnostics) → run (an
//! executor-agnostic future that records the history).
//!
//! ```
//! use leasehold_asl::{load, execute, ExecutionConfig, Services, AbortHandle, Status};
//! use leasehold_asl::clock::{VirtualClock, SeededRandom};
//! use leasehold_asl::invoker::NoTasks;
//! use std::sync::Arc;
//!
//! let machine = load(r#"{
//!   "StartAt": "Greet",
//!   "States": {
//!     "Greet": {"Type": "Pass", "Parameters": {"msg.$": "States.Format('hi {}', $.name)"}, "Next": "Wait"},
//!     "Wait": {"Type": "Wait", "Seconds": 60, "End": true}
//!   }
//! }"#).expect("valid definition");
//!
//! let clock = VirtualClock::new(0);
//! let services = Services {
//!     clock: Arc::new(clock.clone()),
//!     random: Arc::new(SeededRandom::new(1)),
//!     invoker: Arc::new(NoTasks),
//!     observer: None,
//! };
//! let cfg = ExecutionConfig::new("us-east-1", "123456789012", "Hello", "run-1", r#"{"name": "Ada"}"#);
//! let outcome = clock
//!     .block_on(execute(Arc::new(machine), cfg, services, AbortHandle::new()))
//!     .expect("never blocks on anything but the clock");
//!
//! assert_eq!(outcome.status, Status::Succeeded);
//! assert_eq!(outcome.output.unwrap()["msg"], "hi Ada");
//! // The 60 s wait took no real time, and the history has AWS's event types.
//! let types: Vec<_> = outcome.history.iter().map(|e| e.event_type.as_str()).collect();
//! assert_eq!(types, ["ExecutionStarted", "PassStateEntered", "PassStateExited",
//!                    "WaitStateEntered", "WaitStateExited", "ExecutionSucceeded"]);
//! assert_eq!(outcome.history[5].timestamp_millis, 60_000);
//! ```
//!
//! # Layout
//!
//! - [`definition`]: load phase, typed states from JSON: the types in `definition`, the
//!   reading in `definition::load` (machines and states), with field readers, Retry/Catch
//!   and Choice rules in their own private modules.
//! - [`diagnostics`]: AWS-shaped findings (severity, code, message, location), reported by
//!   both loading and validation.
//! - [`mod@validate`]: graph checks (transition targets, reachability, a terminal state).
//! - [`run`]: the interpreter. `run` itself holds the execution loop and history events;
//!   `run::pipeline` the input/output/assign processing every state shares (including the
//!   single end of a JSONata state: `Assign`, then `Output`); one module per state type
//!   (`pass`, `terminal` for Succeed and Fail, `choice`, `wait`, `task`, `parallel`, `map`);
//!   `run::retry` the Retry/Catch loop around Task, Parallel and Map.
//! - [`jsonpath`]: JSONPath selection and reference paths.
//! - [`intrinsics`]: the 18 `States.*` intrinsic functions.
//! - [`jsonata`]: the JSONata evaluator with AWS's additional functions: lexer, parser,
//!   evaluator and function library in their own modules.
//! - [`values`]: JSON helpers (Java-style strings, ISO-8601, size quota).
//! - [`history`]: events and the observer trait for streaming them.
//! - [`clock`]: the `Clock` and `Random` ports, a virtual clock and a seeded generator.
//! - [`invoker`]: the Task invoker port.
//! - [`error`]: load errors and failures.
//!
//! # Running it for real
//!
//! [`execute`] returns a `Send` future that needs no particular executor. The local stack
//! drives it on its runtime with a real-time [`clock::Clock`] and an invoker that calls
//! Lambda and the service integrations; Parallel branches and Map iterations are concurrent
//! futures inside it, up to `MaxConcurrency`. Events reach a [`HistoryObserver`] as they are
//! recorded (for GetExecutionHistory of a running execution). [`AbortHandle::abort`] ends an
//! execution with `ExecutionAborted` (in-flight task futures are dropped); the definition's
//! `TimeoutSeconds` ends it with `ExecutionTimedOut`. Task history comes in two styles
//! ([`invoker::TaskStyle`]): `Task*` events for service integrations, `LambdaFunction*` for
//! bare function ARNs.
//!
//! # Conformance
//!
//! `scripts/conformance.sh [DIR]` runs the example `conformance` over the executions recorded
//! on AWS (`../shared/conformance`, outside the repository): it applies the data's
//! normalization to the produced history, compares outcome and history, prints a table per
//! category and `conformance: N passed, M failed`, and writes a JSON result file.
//! `scripts/checks/20-conformance.sh` fails when the pass count drops below
//! `crates/asl/conformance-baseline.txt`. One recorded behaviour changed on AWS's side: since
//! November 2024 `MapStateExited` of a Distributed Map links to `MapRunStarted`, before to
//! `MapRunSucceeded`; [`ExecutionConfig::legacy_map_run_links`] selects the old form and the
//! runner sets it from each recording's date.
//!
//! # Benchmark
//!
//! `cargo run --release -p leasehold-asl --example bench_map` runs a 10,000-item inline Map
//! of Choice/Pass iterations and reports the time per state transition and the peak memory;
//! `scripts/bench-asl.sh` runs the same workflow in moto's executing interpreter and in
//! aws-local-stepfunctions and prints the ratios.
//!
//! # Not covered
//!
//! `ItemReader`/`ResultWriter` (they read and write S3) are rejected by validation; Activity
//! resources are invoked like any Task but recorded with `Task*` events rather than
//! `Activity*`; the 256 KiB payload limit applies to state outputs and task results, and one
//! execution's history stops at `max_history_events` (25,000 by default, as on AWS).
//!
//! # JSONata support
//!
//! Candidates evaluated: `jsonata-rs` 0.3 (Stedi) describes itself as incomplete and alpha,
//! pulls `clap`, `chrono`, `rand` and `uuid` into the library, reads the wall clock and the
//! thread RNG for `$now`/`$millis`/`$random`, and its error texts differ from jsonata-js,
//! which AWS quotes in causes; the `jsonata` crate on crates.io is an empty 0.0.0
//! placeholder. Neither fits a deterministic, injected-time interpreter, so the crate has its
//! own evaluator ([`jsonata`]) covering the language core and the function library that
//! workflows use, with jsonata-js error codes: paths with predicates and array/object
//! constructors, arithmetic, comparison, string and boolean operators, `? :`, `??`, `?:`,
//! blocks and `:=` bindings, lambdas and closures, `~>`, ranges, regex literals, and the
//! string, numeric, aggregate, array, object, higher-order and date functions in common use,
//! plus AWS's `$partition`, `$range`, `$hash`, `$random`, `$uuid` and `$parse`. Not there
//! yet: the `#`/`@` bindings, `%` parent steps, `|...|` transforms, `^(...)` ordering, `**`
//! descendants, `$formatNumber`/`$formatBase`/`$formatInteger`/`$parseInteger`, `$spread`,
//! `$sift`, `$zip`, `$shuffle`, `$single`, `$eval`, the URL encoders, and capture groups in
//! `$match`; they fail with a JSONata error rather than a wrong answer.
#![forbid(unsafe_code)]

pub mod clock;
pub mod definition;
pub mod diagnostics;
pub mod error;
pub mod history;
pub mod intrinsics;
pub mod invoker;
pub mod jsonata;
pub mod jsonpath;
pub mod map_run;
pub mod run;
pub mod validate;
pub mod values;

pub use definition::StateMachine;
pub use error::{Failure, LoadError};
pub use history::{HistoryEvent, HistoryObserver};
pub use run::{AbortHandle, ExecutionConfig, Outcome, Redrive, Services, Status, execute};
pub use validate::{Diagnostic, Severity, validate};

/// Loads and validates a definition; fails with every ERROR diagnostic.
pub fn load(text: &str) -> Result<StateMachine, LoadError> {
    match validate::load_with_diagnostics(text) {
        (Some(m), _) => Ok(m),
        (None, d) => Err(LoadError(
            d.into_iter()
                .filter(|d| d.severity == Severity::Error)
                .collect(),
        )),
    }
}
