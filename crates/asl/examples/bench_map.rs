//! Benchmark (not a test): a large inline Map of Choice/Pass iterations.
//!
//! `bench_map [--items N] [--repeat R] [--concurrency C] [--write DIR]`
//!
//! Builds the workflow, runs it R times on the virtual clock and prints the time per run, the
//! cost per state transition, the history size and the process's peak resident memory. With
//! `--write DIR` it also writes `definition.json` and `input.json` for other engines, so
//! `scripts/bench-asl.sh` can run the same workflow elsewhere.

use leasehold_asl::clock::{SeededRandom, VirtualClock};
use leasehold_asl::invoker::NoTasks;
use leasehold_asl::{AbortHandle, ExecutionConfig, Services, Status, execute};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;

fn definition(concurrency: u64) -> Value {
    json!({
        "Comment": "Benchmark: Choice and Pass per item of a large inline Map",
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "MaxConcurrency": concurrency,
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    "StartAt": "Parity",
                    "States": {
                        "Parity": {
                            "Type": "Choice",
                            "Choices": [{"Variable": "$.even", "BooleanEquals": true, "Next": "Even"}],
                            "Default": "Odd"
                        },
                        "Even": {"Type": "Pass", "Parameters": {"n.$": "$.n", "kind": "even"}, "End": true},
                        "Odd": {"Type": "Pass", "Parameters": {"n.$": "$.n", "kind": "odd"}, "End": true}
                    }
                },
                "ResultPath": "$.results",
                "OutputPath": "$.results[-1:]",
                "End": true
            }
        }
    })
}

fn input(items: u64) -> Value {
    let items: Vec<Value> = (0..items)
        .map(|n| json!({"n": n, "even": n % 2 == 0}))
        .collect();
    json!({"items": items})
}

/// Peak resident set size of this process in KiB (Linux).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let mut items = 10_000u64;
    let mut repeat = 5u32;
    let mut concurrency = 40u64;
    let mut write: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next();
        match (a.as_str(), v) {
            ("--items", Some(v)) => items = v.parse().unwrap_or(items),
            ("--repeat", Some(v)) => repeat = v.parse().unwrap_or(repeat).max(1),
            ("--concurrency", Some(v)) => concurrency = v.parse().unwrap_or(concurrency),
            ("--write", Some(v)) => write = Some(v),
            _ => {
                eprintln!(
                    "usage: bench_map [--items N] [--repeat R] [--concurrency C] [--write DIR]"
                );
                std::process::exit(2);
            }
        }
    }
    let def = definition(concurrency);
    let input_text = input(items).to_string();
    if let Some(dir) = &write {
        let ok = std::fs::create_dir_all(dir).is_ok()
            && std::fs::write(format!("{dir}/definition.json"), def.to_string()).is_ok()
            && std::fs::write(format!("{dir}/input.json"), &input_text).is_ok();
        if !ok {
            eprintln!("bench_map: cannot write the workflow to {dir}");
            std::process::exit(1);
        }
    }
    let machine =
        Arc::new(leasehold_asl::load(&def.to_string()).expect("benchmark definition is valid"));
    // One Map state plus a Choice and a Pass per item.
    let transitions = 1 + 2 * items;
    let mut times = Vec::new();
    let mut events = 0;
    for run in 0..repeat {
        let clock = VirtualClock::new(0);
        let services = Services {
            clock: Arc::new(clock.clone()),
            random: Arc::new(SeededRandom::new(u64::from(run))),
            invoker: Arc::new(NoTasks),
            observer: None,
        };
        let mut cfg = ExecutionConfig::new(
            "us-east-1",
            "123456789012",
            "Bench",
            &format!("run-{run}"),
            &input_text,
        );
        // AWS caps one execution's history at 25,000 events; the benchmark measures the
        // interpreter beyond that on purpose.
        cfg.max_history_events = u64::MAX;
        let started = Instant::now();
        let out = clock
            .block_on(execute(machine.clone(), cfg, services, AbortHandle::new()))
            .expect("no external waits");
        let took = started.elapsed();
        assert_eq!(
            out.status,
            Status::Succeeded,
            "{:?} {:?}",
            out.error,
            out.cause
        );
        events = out.history.len();
        times.push(took.as_secs_f64());
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let median = times[times.len() / 2];
    let best = times[0];
    println!(
        "engine=leasehold-asl items={items} concurrency={concurrency} transitions={transitions} events={events} runs={repeat}"
    );
    println!(
        "run_ms_median={:.1} run_ms_best={:.1}",
        median * 1e3,
        best * 1e3
    );
    println!("per_transition_us={:.2}", median * 1e6 / transitions as f64);
    match peak_rss_kib() {
        Some(k) => println!("peak_rss_mib={:.1}", k as f64 / 1024.0),
        None => println!("peak_rss_mib=unknown"),
    }
}
