//! The hotspot report as people read it: the four runs side by side with a block of rows per
//! application, the checks as sentences, and the terminal's text (the page uses the same).

use super::report::{AppRun, CONTENTION_BUDGET_USE, HotspotReport, Run, STEADY_P99_FACTOR};
use crate::args::{HOT, STEADY};
use crate::report::{CheckKind, CheckLine, Medium};
use crate::stats::Spread;

/// One row: a label and one cell per run (steadyAlone, ungoverned, sharedPool, shares).
pub type Row = (String, [String; 4]);

/// The column headings, in the order the runs ran.
pub const COLUMNS: [&str; 4] = ["steadyAlone", "ungoverned", "sharedPool", "shares"];

struct Cells<'a> {
    runs: [&'a Run; 4],
    medium: Medium,
}

impl Cells<'_> {
    fn dash(&self) -> String {
        self.medium.dash().to_owned()
    }

    fn all(&self, f: impl Fn(&Run) -> String) -> [String; 4] {
        self.runs.map(f)
    }

    /// A figure of the lease pool: a dash for the run that takes no leases.
    fn leased(&self, f: impl Fn(&Run) -> String) -> [String; 4] {
        self.runs.map(|r| {
            if r.acquire_mode.is_some() {
                f(r)
            } else {
                self.dash()
            }
        })
    }

    /// A figure of one application: a dash where it did not run.
    fn app(&self, name: &str, f: impl Fn(&AppRun) -> String) -> [String; 4] {
        self.runs
            .map(|r| r.app(name).map_or_else(|| self.dash(), &f))
    }

    fn int(&self, v: Option<i64>) -> String {
        v.map_or_else(|| self.dash(), |v| v.to_string())
    }

    fn spread(&self, s: Option<&Spread>) -> String {
        s.map_or_else(
            || self.dash(),
            |s| {
                format!(
                    "{} / {} / {} / {}",
                    self.int(s.p50_ms),
                    self.int(s.p95_ms),
                    self.int(s.p99_ms),
                    self.int(s.max_ms)
                )
            },
        )
    }
}

/// The figures of the four runs side by side: per application, then the pool's.
pub fn figures(report: &HotspotReport, medium: Medium) -> Vec<Row> {
    let r = &report.hotspot.runs;
    let c = Cells {
        runs: r.all().map(|(_, run)| run),
        medium,
    };
    let mut rows: Vec<Row> = vec![(
        "pool".into(),
        c.all(|run| {
            match (run.acquire_mode, run.divided) {
                (None, _) => "no leases",
                (Some(_), true) => "divided",
                (Some(_), false) => "one budget",
            }
            .to_owned()
        }),
    )];
    for app in [STEADY, HOT] {
        rows.extend([
            (
                format!("{app}: executions"),
                c.app(app, |a| a.executions.to_string()),
            ),
            (
                format!("{app}: served / fallback / failed"),
                c.app(app, |a| {
                    format!("{} / {} / {}", a.served, a.fallback, a.failed)
                }),
            ),
            (
                format!("{app}: DatabaseBusy errors"),
                c.app(app, |a| a.database_busy_errors.to_string()),
            ),
            (
                format!(
                    "{app}: {} p50 / p95 / p99 / max ms",
                    medium.pick("wait", "lease wait")
                ),
                c.app(app, |a| c.spread(a.lease_wait.as_ref())),
            ),
            (
                format!("{app}: peak in use (max)"),
                c.app(app, |a| match (a.peak_in_use, a.max) {
                    (Some(peak), Some(max)) => format!("{peak} ({max})"),
                    (Some(peak), None) => peak.to_string(),
                    _ => c.dash(),
                }),
            ),
            (
                format!("{app}: peak waiting"),
                c.app(app, |a| c.int(a.peak_waiting)),
            ),
            (
                format!("{app}: served per second"),
                c.app(app, |a| a.served_per_second.to_string()),
            ),
        ]);
    }
    rows.extend([
        (
            format!("peak leases in use (budget {})", report.budget),
            c.leased(|run| format!("{} ({})", run.peak_leases_in_use, run.peak_lease_records)),
        ),
        (
            medium
                .pick("peak DB connections", "peak database connections")
                .to_owned(),
            c.all(|run| run.peak_connections.to_string()),
        ),
        (
            "DatabaseBusy errors".into(),
            c.all(|run| run.database_busy_errors.to_string()),
        ),
        (
            medium
                .pick(
                    "budget use, both above reservation",
                    "budget use while both want more than their reservation",
                )
                .to_owned(),
            c.all(|run| match &run.contention {
                Some(w) => match w.budget_use {
                    Some(u) => format!("{u:.2} ({} samples)", w.samples),
                    None => format!("{} (0 samples)", c.dash()),
                },
                None => c.dash(),
            }),
        ),
        (
            medium
                .pick(
                    "leases / waiters left at end",
                    "leases / waiters left at the end",
                )
                .to_owned(),
            c.leased(|run| {
                format!(
                    "{} / {}",
                    run.leases_held_at_end.max(run.lease_records_at_end),
                    run.waiters_at_end.max(run.waiter_records_at_end)
                )
            }),
        ),
        (
            "duration s".into(),
            c.all(|run| format!("{:.1}", run.duration_ms as f64 / 1000.0)),
        ),
    ]);
    rows
}

/// The checks as sentences, in the order of the JSON's `hotspot.checks`.
pub fn check_lines(report: &HotspotReport, medium: Medium) -> Vec<CheckLine> {
    let h = &report.hotspot;
    let c = &h.checks;
    let r = &h.runs;
    let le = medium.pick("<=", "≤");
    let times = medium.pick("x", "×");
    let ms = |v: Option<i64>| v.map_or_else(|| medium.dash().to_owned(), |v| format!("{v} ms"));
    let governed = [
        ("steadyAlone", &r.steady_alone),
        ("sharedPool", &r.shared_pool),
        ("shares", &r.shares),
    ];
    let each = |f: &dyn Fn(&Run) -> String| {
        governed
            .iter()
            .map(|(name, run)| format!("{name} {}", f(run)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let line = |ok, kind, text: String| CheckLine { ok, kind, text };
    use CheckKind::{Goal, Promise, Shown};
    let alone = r.steady_alone.p99_wait(STEADY);
    let above_max = |run: &Run| {
        [STEADY, HOT]
            .iter()
            .filter_map(|app| {
                let a = run.app(app)?;
                Some(format!(
                    "{app} {} of {}",
                    a.peak_in_use?,
                    a.max
                        .map_or_else(|| medium.dash().to_owned(), |m| m.to_string())
                ))
            })
            .collect::<Vec<_>>()
            .join(" and ")
    };
    let use_text = r.shares.contention.as_ref().map_or_else(
        || medium.dash().to_owned(),
        |w| {
            format!(
                "{} over {} of {} samples",
                w.budget_use
                    .map_or_else(|| medium.dash().to_owned(), |u| format!("{u:.2}")),
                w.samples,
                w.of_samples
            )
        },
    );
    vec![
        line(
            c.governed_no_database_busy,
            Promise,
            format!(
                "no DatabaseBusy error with leases ({})",
                each(&|run| run.database_busy_errors.to_string())
            ),
        ),
        line(
            c.budget_never_exceeded,
            Promise,
            format!(
                "leases and connections never above the budget {} (peak leases {})",
                report.budget,
                each(&|run| format!(
                    "{}, connections {}",
                    run.peak_leases_in_use.max(run.peak_lease_records),
                    run.peak_connections
                ))
            ),
        ),
        line(
            c.no_application_above_max,
            Promise,
            format!(
                "no application above its max (steadyAlone: {}; shares: {})",
                above_max(&r.steady_alone),
                above_max(&r.shares)
            ),
        ),
        line(
            c.no_leases_or_waiters_left,
            Promise,
            format!(
                "no lease and no waiter left at the end ({})",
                each(&|run| format!(
                    "{} / {}",
                    run.leases_held_at_end.max(run.lease_records_at_end),
                    run.waiters_at_end.max(run.waiter_records_at_end)
                ))
            ),
        ),
        line(
            c.ungoverned_shows_database_busy,
            Shown,
            format!(
                "ungoverned: {} DatabaseBusy errors (MySQL 1040); {} executions failed",
                r.ungoverned.database_busy_errors, r.ungoverned.failed
            ),
        ),
        line(
            c.shared_pool_shows_hot_spot,
            Shown,
            format!(
                "sharedPool: steady p99 wait {} against {} alone: the hot spot",
                ms(r.shared_pool.p99_wait(STEADY)),
                ms(alone)
            ),
        ),
        line(
            c.shares_steady_p99_within_one_and_a_half_of_alone,
            Goal,
            format!(
                "shares: steady p99 wait {} {le} {STEADY_P99_FACTOR} {times} alone {}",
                ms(r.shares.p99_wait(STEADY)),
                ms(alone)
            ),
        ),
        line(
            c.shares_budget_use_at_least_90_percent,
            Goal,
            format!(
                "shares: budget use while both want more than their reservation {use_text} {} {CONTENTION_BUDGET_USE}",
                medium.pick(">=", "≥")
            ),
        ),
    ]
}

/// When the hot application starts in the runs of both, as the report's header says it.
pub fn hot_start(ms: u64) -> String {
    match ms {
        0 => "in the runs of both, the two start together".to_owned(),
        ms => format!("in the runs of both, the hot one starts {ms} ms after the steady one"),
    }
}

/// The side-by-side table printed at the end of a hotspot demo.
pub fn text(report: &HotspotReport) -> String {
    let h = &report.hotspot;
    let rows = figures(report, Medium::Terminal);
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let mut out = format!(
        "leasehold demo, hotspot: two applications on one pool, each query holds its connection {} ms, all queued\n\
         pool budget {} of max_connections {} (admin reserve {}), seed {}\n",
        h.load.hold_ms, report.budget, report.max_connections, report.admin_reserve, h.load.seed
    );
    for a in &h.load.applications {
        out.push_str(&format!(
            "  {}: {} executions, {} at once; reserved {}, max {}, weight {}\n",
            a.name, a.executions, a.concurrency, a.reserved, a.max, a.weight
        ));
    }
    out.push_str(&format!("  {}\n", hot_start(h.load.hot_start_ms)));
    out.push('\n');
    out.push_str(&format!("{:width$}", ""));
    for name in COLUMNS {
        out.push_str(&format!("  {name:>24}"));
    }
    out.push('\n');
    for (label, cells) in &rows {
        out.push_str(&format!("{label:width$}"));
        for cell in cells {
            out.push_str(&format!("  {cell:>24}"));
        }
        out.push('\n');
    }
    out.push('\n');
    let mut any_goal_missed = false;
    for check in check_lines(report, Medium::Terminal) {
        let mark = match (check.kind, check.ok) {
            (CheckKind::Shown, true) => "seen",
            (CheckKind::Shown, false) => "none",
            (_, true) => "ok  ",
            (_, false) if check.counts() => "FAIL",
            (_, false) => {
                any_goal_missed = true;
                "miss"
            }
        };
        out.push_str(&format!("{mark} {}\n", check.text));
    }
    if any_goal_missed {
        out.push_str(
            "     (the goals are timing, shown and never counted: they are meant for the default load)\n",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::report::sample;

    #[test]
    fn a_missed_goal_is_shown_as_miss_never_fail() {
        let report = sample::report_with_steady_p99(166);
        let shown = super::text(&report);
        assert!(
            shown.contains("miss shares: steady p99 wait 166 ms <= 1.5 x alone 110 ms"),
            "{shown}"
        );
        assert!(!shown.contains("FAIL"), "{shown}");
    }

    #[test]
    fn the_header_says_when_the_hot_application_started() {
        // The sample's load starts the hot application 1500 ms after the steady one.
        let shown = super::text(&sample::report());
        assert!(
            shown.contains("the hot one starts 1500 ms after the steady one"),
            "{shown}"
        );
        assert!(super::hot_start(0).contains("the two start together"));
    }
}
