//! The demo behind `scripts/demo.sh`: the same load three times on the local stack, one run
//! after another: through the connection workflow in its queued mode (every query under a
//! lease, requests waiting in the pool's queue), in its polling mode (every query under a
//! lease, refused requests retrying with backoff), and through the same query function without
//! leases (ungoverned: the original problem), with live progress; then a report from the real
//! sources, with a perfect FIFO queue's figures as the yardstick, as JSON and as a
//! self-contained HTML page. With `--scenario hotspot` ([`hotspot`]) it runs two applications
//! on one pool instead: the steady one alone, both ungoverned, both on one shared pool and both
//! on the pool divided between them, measured per application.
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
//! - [`fifo`]: what a perfect FIFO queue over the budget would give for the load.
//! - [`report`]: the JSON report, the figures and checks as the terminal and the page show them,
//!   and the terminal's text.
//! - [`html`]: the HTML page with its charts.
//! - [`hotspot`]: the hotspot scenario, its report, text and page.
//! - [`error`]: the demo's errors.
#![forbid(unsafe_code)]

pub mod args;
pub mod error;
pub mod fifo;
pub mod history;
pub mod hotspot;
pub mod html;
pub mod report;
pub mod run;
pub mod sampler;
pub mod sources;
pub mod stats;
pub mod workflows;

use args::Options;
use error::DemoError;
use fifo::{FifoIdeal, ServiceSource};
use report::{Load, Report, Runs};
use run::Mode;
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

/// Waits (at most `limit`) until the pool has no lease in use and nobody waiting; returns
/// what is in use or waiting then.
async fn wait_for_free_pool(sources: &Sources, limit: Duration) -> Result<i64, DemoError> {
    let start = std::time::Instant::now();
    loop {
        let (_, in_use, waiting) = sources.pool_record().await?;
        if in_use + waiting == 0 || start.elapsed() >= limit {
            return Ok(in_use + waiting);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// What every scenario starts from: the clients, the administrator's connection, the
/// database's limit and the pool's budget, the pool checked to be idle.
pub struct Stage {
    pub env: Env,
    pub sources: Arc<Sources>,
    pub admin: Arc<Mutex<mysql_async::Conn>>,
    pub max_connections: i64,
    pub budget: i64,
}

impl Stage {
    pub async fn new(options: &Options) -> Result<Self, DemoError> {
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
        let (budget, _, _) = sources.pool_record().await?;
        if let Some(asked) = options.budget
            && i64::from(asked) != budget
        {
            eprintln!("demo: note: the pool's budget is {budget}, not {asked} as asked");
        }
        let busy = wait_for_free_pool(&sources, Duration::from_secs(30)).await?;
        if busy > 0 {
            return Err(DemoError::Setup(format!(
                "{busy} leases of pool {POOL} are still in use or waited for before the first run (another load on this stack?)"
            )));
        }
        Ok(Stage {
            env,
            sources,
            admin,
            max_connections,
            budget,
        })
    }

    /// The ungoverned pair, derived from the project's own definitions, created on the stack
    /// and written beside the report: (child ARN, harness ARN).
    pub async fn ungoverned_machines(
        &self,
        options: &Options,
    ) -> Result<(String, String), DemoError> {
        let env = &self.env;
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
        let child_arn = self
            .sources
            .put_machine(&format!("{prefix}ungoverned"), &child)
            .await?;
        let harness = workflows::harness_for(&harness_asl, &child_arn)?;
        let harness_arn = self
            .sources
            .put_machine(&format!("{prefix}ungoverned-harness"), &harness)
            .await?;
        let dir = options
            .report
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        write(&dir.join("ungoverned.asl.json"), &child)?;
        write(&dir.join("ungoverned-harness.asl.json"), &harness)?;
        Ok((child_arn, harness_arn))
    }
}

/// Runs a plan with the query function's database account uncapped. The seed caps the account
/// at the budget, leasehold's second line of defence; an ungoverned run stands for a fleet
/// without leasehold, so the cap is lifted for it and put back after.
pub(crate) async fn run_uncapped<T, F>(
    sources: &Arc<Sources>,
    admin: &Arc<Mutex<mysql_async::Conn>>,
    run: F,
) -> Result<T, DemoError>
where
    F: std::future::Future<Output = Result<T, DemoError>>,
{
    let capped = {
        let mut conn = admin.lock().await;
        sources.set_account_limit(&mut conn, 0).await?
    };
    let result = run.await;
    if let Some(limit) = capped {
        let mut conn = admin.lock().await;
        sources.set_account_limit(&mut conn, limit).await?;
    }
    result
}

/// Runs the three runs and writes the report (JSON and HTML). Progress goes to standard error.
pub async fn demo(options: &Options) -> Result<Report, DemoError> {
    let stage = Stage::new(options).await?;
    let (child_arn, harness_arn) = stage.ungoverned_machines(options).await?;
    let Stage {
        env,
        sources,
        admin,
        max_connections,
        budget,
    } = stage;

    let input = json!({
        "iterations": options.executions,
        "concurrency": options.concurrency,
        "pool": POOL,
        "query": QUERY,
        "params": {},
        "holdMs": options.hold_ms,
    });
    let abort_after = options.abort_harness_after.map(Duration::from_secs);
    let governed_plan = |mode: Mode| {
        let mut input = input.clone();
        input["mode"] = json!(mode.as_str());
        run::Plan {
            name: mode.as_str().to_owned(),
            mode: Some(mode),
            harness_machine: env.harness_machine.clone(),
            child_machine: env.connection_machine.clone(),
            input,
            abort_after,
            start_after: None,
        }
    };
    let queued = run::run(
        &sources,
        &admin,
        governed_plan(Mode::Queued),
        options.executions,
    )
    .await?;
    let polling = run::run(
        &sources,
        &admin,
        governed_plan(Mode::Polling),
        options.executions,
    )
    .await?;
    let ungoverned = run_uncapped(
        &sources,
        &admin,
        run::run(
            &sources,
            &admin,
            run::Plan {
                name: "ungoverned".to_owned(),
                mode: None,
                harness_machine: harness_arn,
                child_machine: child_arn,
                input,
                abort_after,
                start_after: None,
            },
            options.executions,
        ),
    )
    .await?;

    let reserve = i64::from(options.reserve);
    let mut queued = report::run_report(&queued, budget, budget);
    let mut governed = report::run_report(&polling, budget, budget);
    let mut ungoverned = report::run_report(&ungoverned, max_connections, budget);
    let fifo_ideal = fifo_ideal(options, budget, &queued, &governed);
    for run in [&mut queued, &mut governed, &mut ungoverned] {
        run.ratio_to_fifo_ideal = Some(report::ratio_to_ideal(run, &fifo_ideal));
    }
    let checks = report::checks(budget, reserve, &governed, &ungoverned, &queued);
    let report = Report {
        schema_version: report::SCHEMA_VERSION,
        scenario: options.scenario.as_str(),
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
            queued,
        },
        fifo_ideal,
        checks,
    };
    let json = serde_json::to_string_pretty(&report)
        .map_err(|e| DemoError::Setup(format!("the report does not serialize: {e}")))?;
    write(&options.report, &(json + "\n"))?;
    write(&options.html_path(), &html::render(&report))?;
    Ok(report)
}

/// The FIFO ideal of this load. Its service time is what a query really held its connection
/// in the queued run (`meanHoldMs`: the hold plus the invoke's own time), so that the ideal and
/// the physical limit divide the same time; the polling run's, or the asked hold, when the
/// queued run served nothing.
pub fn fifo_ideal(
    options: &Options,
    budget: i64,
    queued: &report::RunReport,
    polling: &report::RunReport,
) -> FifoIdeal {
    let (service_ms, source) = match (queued.mean_hold_ms, polling.mean_hold_ms) {
        (Some(ms), _) => (ms, ServiceSource::QueuedMeanHold),
        (None, Some(ms)) => (ms, ServiceSource::PollingMeanHold),
        (None, None) => (options.hold_ms as f64, ServiceSource::HoldMs),
    };
    FifoIdeal::new(
        options.executions,
        options.concurrency,
        budget,
        service_ms,
        source,
    )
}
