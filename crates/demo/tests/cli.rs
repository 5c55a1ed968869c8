//! The `leasehold-demo` binary's command line: bad values and a missing environment end with a
//! plain message and the documented exit status, never a panic. The demo itself runs end to end
//! in `scripts/checks/30-demo.sh` (it needs the local stack).

use std::process::{Command, Output};

fn demo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_leasehold-demo"))
        .args(args)
        // Nothing of the local services: the binary must say what is missing.
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .expect("the demo binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_values_exit_2_with_the_option_named() {
    for (args, message) in [
        (
            &["--executions", "5000"][..],
            "--executions: must be between 1 and 1000, got 5000",
        ),
        (
            &["--concurrency", "x"][..],
            "--concurrency: not a whole number",
        ),
        (
            &["--kill-probability", "2"][..],
            "--kill-probability: must be between 0 and 0.5",
        ),
        (&["--budget", "19"][..], "more than max_connections"),
        (&["--hold-ms"][..], "--hold-ms needs a value"),
        (&["--verbose"][..], "unknown option"),
        (
            &["--scenario", "hotspot", "--concurrency", "10"][..],
            "--concurrency: not with --scenario hotspot",
        ),
        (&["--hot-reserved", "1"][..], "only with --scenario hotspot"),
    ] {
        let out = demo(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(message), "{args:?}: {err}");
        assert!(err.contains("usage: leasehold-demo"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn help_prints_the_options() {
    let out = demo(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for option in [
        "--executions",
        "--concurrency",
        "--hold-ms",
        "--kill-probability",
        "--report",
        "--scenario",
        "--steady-reserved",
        "--hot-max",
    ] {
        assert!(text.contains(option), "{text}");
    }
}

#[test]
fn without_the_stack_it_says_how_to_run_it() {
    let out = demo(&["--executions", "10"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("is not set: run the demo through scripts/demo.sh"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
