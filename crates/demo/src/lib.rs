//! The demo behind `scripts/demo.sh`: the same load twice on the local stack, once through the
//! connection workflow (governed: every query under a lease) and once through the same query
//! function without leases (ungoverned: the original problem), with live progress; then a
//! report from the real sources, as JSON and as a self-contained HTML page.
//!
//! The script starts the services and the stack and exports their endpoints; this crate only
//! runs and measures. Every figure is read back from where it lives: MariaDB's own counters and
//! a sampler of `Threads_connected`, the children's execution histories, the lease table, the
//! stack's `/stats` and the CloudWatch metrics the handlers emitted. The lease table is read
//! through `leasehold-broker`'s store and `/stats` into the stack's own `FunctionStats`, so the
//! demo keeps no second copy of either layout. The `leasehold-demo` binary (`src/main.rs`)
//! parses the options and runs [`demo`].
//!
//! # Layout
//! - [`args`]: options and their checks.
//! - [`sources`]: clients of the stack, moto and MariaDB, and the reads the report needs.
//! - [`workflows`]: the ungoverned child and harness, derived from `statemachines/`.
//! - [`sampler`]: database connections and leases in use over time.
//! - [`run`]: one run with live progress, then its histories and counters.
//! - [`history`]: what one execution's history says.
//! - [`stats`]: percentiles and means.
//! - [`report`]: the JSON report, the figures and checks as the terminal and the page show them,
//!   and the terminal's text.
//! - [`html`]: the HTML page with its charts.
//! - [`error`]: the demo's errors.
#![forbid(unsafe_code)]

pub mod args;
pub mod error;
pub mod fifo;
pub mod history;
pub mod html;
pub mod report;
pub mod run;
pub mod sampler;
pub mod sources;
pub mod stats;
pub mod workflows;

use args::Options;
use error::DemoError;
use report::{Load, Report, Runs};
use serde_json::json;
use sources::{Env, POOL, Sources};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// The named query every execution runs (`crates/db/src/queries.rs`).
pub const QUERY: &str = "listEmployees";

fn read(path: &Path) -> Result<String, DemoError> {
    std::fs::read_to_string(path).map_err(|source| DemoError::Read {
        path: path.to_owned(),
        source,
    })
}

fn write(path: &Path, text: &str) -> Result<(), DemoError> {
    let io = |source| DemoError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    std::fs::write(path, text).map_err(io)
}

/// Waits (at most `limit`) until the pool has no lease in use; returns what is in use then.
async fn wait_for_free_pool(sources: &Sources, limit: Duration) -> Result<i64, DemoError> {
    let start = std::time::Instant::now();
    loop {
        let (_, in_use) = sources.pool_record().await?;
        if in_use == 0 || start.elapsed() >= limit {
            return Ok(in_use);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Runs both runs and writes the report (JSON and HTML). Progress goes to standard error.
pub async fn demo(options: &Options) -> Result<Report, DemoError> {
    let env = Env::from_env()?;
    let sources = Arc::new(Sources::new(env.clone()).await?);
    let mut conn = sources.admin_connection().await?;
    let max_connections = sources::max_connections(&mut conn).await?;
    let admin = Arc::new(Mutex::new(conn));
    if max_connections != i64::from(options.max_connections) {
        eprintln!(
            "demo: note: MariaDB's max_connections is {max_connections}, not {} as asked; the report uses {max_connections}",
            options.max_connections
        );
    }
    let (budget, _) = sources.pool_record().await?;
    if let Some(asked) = options.budget
        && i64::from(asked) != budget
    {
        eprintln!("demo: note: the pool's budget is {budget}, not {asked} as asked");
    }
    let busy = wait_for_free_pool(&sources, Duration::from_secs(30)).await?;
    if busy > 0 {
        return Err(DemoError::Setup(format!(
            "{busy} leases of pool {POOL} are still in use before the first run (another load on this stack?)"
        )));
    }

    // The ungoverned pair, derived from the project's own definitions.
    let connection_asl = read(&options.statemachines.join("connection.asl.json"))?;
    let harness_asl = read(&options.statemachines.join("load-harness.asl.json"))?;
    let (region, account) = env.region_and_account();
    let query_arn = format!(
        "arn:aws:lambda:{region}:{account}:function:{}",
        env.query_function
    );
    let connection_name = env
        .connection_machine
        .rsplit(':')
        .next()
        .unwrap_or("leasehold-connection");
    let prefix = connection_name
        .strip_suffix("connection")
        .unwrap_or("leasehold-");
    let child = workflows::ungoverned_child(&connection_asl, &query_arn)?;
    let child_arn = sources
        .put_machine(&format!("{prefix}ungoverned"), &child)
        .await?;
    let harness = workflows::harness_for(&harness_asl, &child_arn)?;
    let harness_arn = sources
        .put_machine(&format!("{prefix}ungoverned-harness"), &harness)
        .await?;
    let dir = options
        .report
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    write(&dir.join("ungoverned.asl.json"), &child)?;
    write(&dir.join("ungoverned-harness.asl.json"), &harness)?;

    let input = json!({
        "iterations": options.executions,
        "concurrency": options.concurrency,
        "pool": POOL,
        "query": QUERY,
        "params": {},
        "holdMs": options.hold_ms,
    });
    let abort_after = options.abort_harness_after.map(Duration::from_secs);
    let governed = run::run(
        &sources,
        &admin,
        run::Plan {
            name: "governed",
            governed: true,
            harness_machine: env.harness_machine.clone(),
            child_machine: env.connection_machine.clone(),
            input: input.clone(),
            abort_after,
        },
        options.executions,
    )
    .await?;
    let ungoverned = run::run(
        &sources,
        &admin,
        run::Plan {
            name: "ungoverned",
            governed: false,
            harness_machine: harness_arn,
            child_machine: child_arn,
            input,
            abort_after,
        },
        options.executions,
    )
    .await?;

    let reserve = i64::from(options.reserve);
    let governed = report::run_report(&governed, budget, budget);
    let ungoverned = report::run_report(&ungoverned, max_connections, budget);
    let checks = report::checks(budget, reserve, &governed, &ungoverned);
    let report = Report {
        schema_version: report::SCHEMA_VERSION,
        generated_at: leasehold_asl::values::iso_millis(sources::now_ms()),
        budget,
        max_connections,
        admin_reserve: reserve,
        load: Load {
            executions: options.executions,
            concurrency: options.concurrency,
            hold_ms: options.hold_ms,
            pool: POOL.to_owned(),
            query: QUERY.to_owned(),
            kill_probability: options.kill_probability,
            seed: options.seed,
            abort_harness_after_seconds: options.abort_harness_after,
        },
        runs: Runs {
            governed,
            ungoverned,
        },
        checks,
    };
    let json = serde_json::to_string_pretty(&report)
        .map_err(|e| DemoError::Setup(format!("the report does not serialize: {e}")))?;
    write(&options.report, &(json + "\n"))?;
    write(&options.html_path(), &html::render(&report))?;
    Ok(report)
}
