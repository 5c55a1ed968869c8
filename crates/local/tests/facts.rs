//! `leasehold-local template-facts` on the repository's template: what template_check.py reads.

use serde_json::Value;
use std::process::Command;

#[test]
fn template_facts_name_substitutions_key_schemas_and_matching_samples() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let output = Command::new(env!("CARGO_BIN_EXE_leasehold-local"))
        .current_dir(root)
        .args(["template-facts", "--template", "template.yaml"])
        .args(["--events", "events"])
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let facts: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let connection = &facts["stateMachines"]["ConnectionStateMachine"];
    assert!(
        connection["placeholders"]
            .as_array()
            .is_some_and(|p| p.iter().any(|n| n == "AcquireFunctionArn"))
    );
    assert_eq!(facts["tables"]["LeaseTable"]["keys"][1]["KeyType"], "RANGE");
    assert_eq!(
        facts["template"]["Resources"]["ConnectionStateMachine"]["Type"],
        "AWS::Serverless::StateMachine"
    );
    assert_eq!(
        facts["eventMatches"]["events/cleanup-execution-failed.json"][0],
        "ReleaseFunction.Cleanup"
    );
    assert_eq!(
        facts["eventMatches"]["events/acquire.json"],
        serde_json::json!([])
    );
}
