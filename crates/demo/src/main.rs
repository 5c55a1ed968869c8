//! `leasehold-demo`: runs the load harness queued, polling and ungoverned on a running local
//! stack and writes the report. `scripts/demo.sh` starts everything it needs and then runs this.

#![forbid(unsafe_code)]

use leasehold_demo as demo;
use leasehold_demo::args::{Parsed, USAGE, parse};
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
    match demo::demo(&options).await {
        Ok(report) => {
            println!("{}", demo::report::text(&report));
            println!(
                "report: {} and {}",
                options.report.display(),
                options.html_path().display()
            );
            if !report.passed() {
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
