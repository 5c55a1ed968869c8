//! The connection workflow's retry and fallback paths, as a unit test with mocked service
//! integrations: statemachines/connection.asl.json runs on the local endpoint with the test
//! cases of statemachines/connection.mock-config.json (Step Functions Local's format), so no
//! function, database or table is called. The time scale runs its backoff (up to 31 s on a
//! full pool) in a fraction of a second. docs/local-stack.md ("Testing workflows") walks
//! through it.

mod common;

use common::{Setup, connection_workflow, create_machine, run_case, start, types, workspace};
use serde_json::Value;

fn output(d: &Value) -> Value {
    serde_json::from_str(d["output"].as_str().expect("an output")).unwrap()
}

/// Errors of the Acquire state's failed attempts, in order.
fn acquire_failures(history: &[Value]) -> Vec<String> {
    history
        .iter()
        .filter(|e| e["type"] == "TaskFailed")
        .map(|e| {
            e["taskFailedEventDetails"]["error"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_workflows_retry_and_fallback_paths_with_mocks() {
    let t = start(Setup {
        mock_config: Some(workspace().join("statemachines/connection.mock-config.json")),
        time_scale: Some(0.01),
        ..Setup::empty("workflow-mocks")
    })
    .await;
    let definition = connection_workflow();
    assert!(!definition.contains("${"), "a substitution is left");
    let machine = create_machine(&t, "ConnectionWorkflow", &definition);
    let input =
        std::fs::read_to_string(workspace().join("events/connection-get-employee.json")).unwrap();

    // Served: lease, query, release, cache write.
    let (d, history) = run_case(&t, &machine, "Served", &input);
    assert_eq!(d["status"], "SUCCEEDED", "{d}");
    let served = output(&d);
    assert_eq!(
        (served["status"].as_str(), served["source"].as_str()),
        (Some("SERVED"), Some("database"))
    );
    assert_eq!(served["rows"][0]["name"], "Ada");
    assert!(acquire_failures(&history).is_empty());

    // A full pool twice, then a slot: retried with backoff, then served.
    let (d, history) = run_case(&t, &machine, "ExhaustedTwiceThenServed", &input);
    assert_eq!(output(&d)["status"], "SERVED", "{d}");
    assert_eq!(acquire_failures(&history), ["ConnectionsExhausted"; 2]);

    // Full for all seven attempts (1+2+4+8+8+8 s of backoff at most): the fresh cached
    // answer is served instead.
    let (d, history) = run_case(&t, &machine, "ExhaustedServedFromCache", &input);
    let fallback = output(&d);
    assert_eq!(
        (
            fallback["status"].as_str(),
            fallback["source"].as_str(),
            fallback["reason"].as_str()
        ),
        (
            Some("FALLBACK"),
            Some("cache"),
            Some("ConnectionsExhausted")
        ),
        "{d}"
    );
    assert_eq!(fallback["rows"][0]["id"], 2);
    assert_eq!(acquire_failures(&history), ["ConnectionsExhausted"; 7]);
    assert!(!types(&history).contains(&"ExecutionFailed"));

    // Full, and nothing cached: shed with a retry hint of 20-39 s.
    let (d, _) = run_case(&t, &machine, "ExhaustedShed", &input);
    let shed = output(&d);
    assert_eq!(
        (shed["status"].as_str(), shed["source"].as_str()),
        (Some("FALLBACK"), Some("none"))
    );
    let hint = shed["retryAfterSeconds"].as_u64().unwrap();
    assert!((20..40).contains(&hint), "{hint}");

    // The database stays busy through the query's retries: the lease goes back, and the
    // execution fails with the query's own error.
    let (d, history) = run_case(&t, &machine, "DatabaseBusyGivesTheLeaseBack", &input);
    assert_eq!(
        (d["status"].as_str(), d["error"].as_str()),
        (Some("FAILED"), Some("DatabaseBusy")),
        "{d}"
    );
    let entered: Vec<&str> = history
        .iter()
        .filter_map(|e| e["stateEnteredEventDetails"]["name"].as_str())
        .collect();
    assert!(entered.contains(&"ReleaseAfterFailedQuery"), "{entered:?}");
    assert_eq!(acquire_failures(&history), ["DatabaseBusy"; 3]);
    t.shutdown().await;
}
