//! The hotspot scenario (`--scenario hotspot`): two applications on one pool, a steady one and
//! a hot one that bursts to several times the budget, run four times one after another on the
//! same stack, all queued:
//!
//! 1. `steadyAlone`: the steady application alone, on the pool divided between both (its wait
//!    when nobody else is there: the yardstick);
//! 2. `ungoverned`: both through the ungoverned workflow (no leases: the original problem);
//! 3. `sharedPool`: both on one budget for everybody (the pool without applications, today's
//!    model: the hot spot);
//! 4. `shares`: both on the pool divided between them (reservations, ceilings, borrowing).
//!
//! The demo divides the pool itself, through `leasehold-broker` on the stack's lease table, and
//! leaves it undivided at the end whatever happened. In the runs of both applications the
//! steady harness starts first and the hot one `--hot-start-ms` later (by default two rounds of
//! the steady one's queries), so that the burst meets an application at work, as a hot spot
//! does; `--hot-start-ms 0` starts both together. Each child names its application in `app`. A
//! warm-up, not measured, runs each application's concurrency once (both together) before the
//! first run.
//!
//! # Layout
//! - [`report`]: the JSON's `hotspot` object, summed up from the runs, and its checks.
//! - [`text`]: the figures and checks as people read them, and the terminal's text.
//! - [`page`]: the HTML page with its charts per application.

pub mod page;
pub mod report;
pub mod text;

use crate::args::{AppLoad, HOT, Options, STEADY};
use crate::error::DemoError;
use crate::run::{AppSampling, Mode, Plan, RunData, run_together};
use crate::sources::{POOL, now_ms};
use crate::{QUERY, Stage, run_uncapped, write};
use leasehold_broker::{AppName, AppShare};
use report::{HotspotReport, Shares};
use serde_json::json;
use std::time::Duration;

/// The four runs' measurements, per application in the order steady, hot.
pub struct Measured {
    pub steady_alone: Vec<RunData>,
    pub ungoverned: Vec<RunData>,
    pub shared_pool: Vec<RunData>,
    pub shares: Vec<RunData>,
}

fn share(name: &str, load: &AppLoad, max: u32) -> Result<AppShare, DemoError> {
    Ok(AppShare {
        name: AppName::parse(name)
            .map_err(|e| DemoError::service(format!("application name {name}"), e))?,
        reserved: load.reserved,
        max: Some(max),
        weight: 1,
    })
}

/// Runs the four runs and writes the report (JSON and HTML). Progress goes to standard error.
pub async fn hotspot(options: &Options) -> Result<HotspotReport, DemoError> {
    let stage = Stage::new(options).await?;
    let budget = u32::try_from(stage.budget).map_err(|_| {
        DemoError::Setup(format!("the pool's budget {} is not usable", stage.budget))
    })?;
    let load = &options.hotspot;
    load.check(budget).map_err(|why| {
        DemoError::Setup(format!(
            "{why} (the pool's budget comes from the stack; change the option or --budget)"
        ))
    })?;
    let (steady_max, hot_max) = load.max_of(budget);
    let shares = Shares {
        steady: share(STEADY, &load.steady, steady_max)?,
        hot: share(HOT, &load.hot, hot_max)?,
    };
    let (child_arn, harness_arn) = stage.ungoverned_machines(options).await?;

    let measured = runs(&stage, options, &shares, budget, &child_arn, &harness_arn).await;
    // Whatever happened, the pool is left as the template made it: one budget for everybody.
    let restored = stage.sources.put_applications(budget, &[]).await;
    let measured = measured?;
    restored?;

    let report = report::build(
        options,
        &shares,
        stage.budget,
        stage.max_connections,
        &measured,
        leasehold_asl::values::iso_millis(now_ms()),
    );
    let json = serde_json::to_string_pretty(&report)
        .map_err(|e| DemoError::Setup(format!("the report does not serialize: {e}")))?;
    write(&options.report, &(json + "\n"))?;
    write(&options.html_path(), &page::render(&report))?;
    Ok(report)
}

/// One application's harness in one run: its children name the application in `app`.
fn plan(
    run: &str,
    app: &str,
    load: &AppLoad,
    hold_ms: u64,
    machines: (&str, &str),
    mode: Option<Mode>,
) -> Plan {
    let mut input = json!({
        "iterations": load.executions,
        "concurrency": load.concurrency,
        "pool": POOL,
        "query": QUERY,
        "params": {},
        "holdMs": hold_ms,
        "app": app,
    });
    if let Some(mode) = mode {
        input["mode"] = json!(mode.as_str());
    }
    Plan {
        name: format!("{run}-{app}"),
        mode,
        harness_machine: machines.0.to_owned(),
        child_machine: machines.1.to_owned(),
        input,
        abort_after: None,
        start_after: None,
    }
}

async fn runs(
    stage: &Stage,
    options: &Options,
    shares: &Shares,
    budget: u32,
    ungoverned_child: &str,
    ungoverned_harness: &str,
) -> Result<Measured, DemoError> {
    let (sources, admin) = (&stage.sources, &stage.admin);
    let load = &options.hotspot;
    let hold = options.hold_ms;
    let governed = (
        stage.env.harness_machine.as_str(),
        stage.env.connection_machine.as_str(),
    );
    let ungoverned = (ungoverned_harness, ungoverned_child);
    let queued = Some(Mode::Queued);
    let hot_start = Some(Duration::from_millis(load.hot_start_ms(hold)));
    let both = |run: &str, machines, mode| {
        vec![
            plan(run, STEADY, &load.steady, hold, machines, mode),
            Plan {
                start_after: hot_start,
                ..plan(run, HOT, &load.hot, hold, machines, mode)
            },
        ]
    };
    let total = load.steady.executions + load.hot.executions;
    let sampling = || {
        Some(AppSampling {
            apps: vec![STEADY.to_owned(), HOT.to_owned()],
        })
    };
    let divided = [shares.steady.clone(), shares.hot.clone()];

    sources.put_applications(budget, &divided).await?;
    // Every function's containers started once as many at a time as the runs need, so that no
    // run, the yardstick least of all, pays for cold starts the others do not.
    let warm = |app: &AppLoad| AppLoad {
        executions: app.concurrency,
        ..app.clone()
    };
    let (steady_warm, hot_warm) = (warm(&load.steady), warm(&load.hot));
    run_together(
        sources,
        admin,
        "warmUp",
        vec![
            plan("warmUp", STEADY, &steady_warm, hold, governed, queued),
            plan("warmUp", HOT, &hot_warm, hold, governed, queued),
        ],
        steady_warm.executions + hot_warm.executions,
        None,
    )
    .await?;
    let steady_alone = run_together(
        sources,
        admin,
        "steadyAlone",
        vec![plan(
            "steadyAlone",
            STEADY,
            &load.steady,
            hold,
            governed,
            queued,
        )],
        load.steady.executions,
        sampling(),
    )
    .await?;
    // Without leases the account's cap would stand in for them: lifted, as in the queue
    // scenario's ungoverned run.
    let ungoverned = run_uncapped(
        sources,
        admin,
        run_together(
            sources,
            admin,
            "ungoverned",
            both("ungoverned", ungoverned, None),
            total,
            None,
        ),
    )
    .await?;
    sources.put_applications(budget, &[]).await?;
    let shared_pool = run_together(
        sources,
        admin,
        "sharedPool",
        both("sharedPool", governed, queued),
        total,
        sampling(),
    )
    .await?;
    sources.put_applications(budget, &divided).await?;
    let shares_run = run_together(
        sources,
        admin,
        "shares",
        both("shares", governed, queued),
        total,
        sampling(),
    )
    .await?;
    Ok(Measured {
        steady_alone,
        ungoverned,
        shared_pool,
        shares: shares_run,
    })
}
