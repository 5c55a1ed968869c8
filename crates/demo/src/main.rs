//! `leasehold-demo`: runs the load harness queued, polling and ungoverned on a running local
//! stack (or, with `--scenario hotspot`, two applications on one pool) and writes the report.
//! `scripts/demo.sh` starts everything it needs and then runs this.

#![forbid(unsafe_code)]

use leasehold_demo as demo;
use leasehold_demo::args::{Parsed, Scenario, USAGE, parse};
use leasehold_demo::error::chain;

#[tokio::main]
async fn main() {
    let options = match parse(std::env::args().skip(1)) {
        Ok(Parsed::Run(options)) => options,
        Ok(Parsed::Help) => {
            println!("{USAGE}");
            return;
        }
        Err(message) => {
            eprintln!("leasehold-demo: {message}\n{USAGE}");
            std::process::exit(2);
        }
    };
    // (the text, whether the promises held)
    let outcome = match options.scenario {
        Scenario::Queue => demo::demo(&options)
            .await
            .map(|report| (demo::report::text(&report), report.passed())),
        Scenario::Hotspot => demo::hotspot::hotspot(&options)
            .await
            .map(|report| (demo::hotspot::text::text(&report), report.passed())),
    };
    match outcome {
        Ok((text, passed)) => {
            println!("{text}");
            println!(
                "report: {} and {}",
                options.report.display(),
                options.html_path().display()
            );
            if !passed {
                eprintln!("leasehold-demo: a check that counts failed (see the checks above)");
                std::process::exit(1);
            }
        }
        Err(error) => {
            eprintln!("leasehold-demo: {}", chain(&error));
            std::process::exit(1);
        }
    }
}
