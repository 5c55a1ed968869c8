//! The report as people read it: the figures of the three runs side by side, the checks as
//! sentences, and the terminal's text (the page, `crate::html`, uses the same figures).

use super::{NEAR_PHYSICAL_LIMIT, RatioToIdeal, Report, RunReport};
use crate::stats::Spread;

/// Where a rendering goes: the terminal writes plain ASCII where the page writes typography.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Medium {
    Terminal,
    Page,
}

impl Medium {
    pub(crate) fn pick(self, terminal: &'static str, page: &'static str) -> &'static str {
        match self {
            Medium::Terminal => terminal,
            Medium::Page => page,
        }
    }

    /// What stands for a missing figure.
    pub(crate) fn dash(self) -> &'static str {
        self.pick("-", "–")
    }
}

/// The runs in the order they ran and are shown: (column heading, run).
pub fn columns(report: &Report) -> [(&'static str, &RunReport); 3] {
    let r = &report.runs;
    [
        ("queued", &r.queued),
        ("polling", &r.governed),
        ("ungoverned", &r.ungoverned),
    ]
}

/// One row of the side-by-side table: a label and one cell per run (queued, polling,
/// ungoverned).
pub type Row = (&'static str, [String; 3]);

/// Builds the cells of one row, a cell per run.
struct Cells<'a> {
    runs: [&'a RunReport; 3],
    medium: Medium,
}

impl Cells<'_> {
    fn all(&self, f: impl Fn(&RunReport) -> String) -> [String; 3] {
        self.runs.map(f)
    }

    /// A figure of the lease pool: a dash for the run that takes no leases.
    fn leased(&self, f: impl Fn(&RunReport) -> String) -> [String; 3] {
        self.runs.map(|r| {
            if r.acquire_mode.is_some() {
                f(r)
            } else {
                self.medium.dash().to_owned()
            }
        })
    }

    fn int(&self, v: Option<i64>) -> String {
        v.map_or_else(|| self.medium.dash().to_owned(), |v| v.to_string())
    }

    fn num(&self, v: Option<f64>) -> String {
        v.map_or_else(|| self.medium.dash().to_owned(), |v| format!("{v}"))
    }

    /// `p50 / p95 / p99`, with a dash for a missing spread.
    fn spread(&self, s: Option<&Spread>) -> String {
        s.map_or_else(
            || self.medium.dash().to_owned(),
            |s| {
                format!(
                    "{} / {} / {}",
                    self.int(s.p50_ms),
                    self.int(s.p95_ms),
                    self.int(s.p99_ms)
                )
            },
        )
    }
}

/// The figures of the three runs side by side: what happened, then how long it took.
pub fn figures(report: &Report, medium: Medium) -> Vec<Row> {
    let c = Cells {
        runs: columns(report).map(|(_, run)| run),
        medium,
    };
    let mut rows = outcome_rows(&c);
    rows.extend(time_rows(&c));
    rows
}

/// Outcomes, connections, leases and waiters.
fn outcome_rows(c: &Cells) -> Vec<Row> {
    let m = c.medium;
    vec![
        ("executions", c.all(|r| r.executions.to_string())),
        ("served", c.all(|r| r.served.to_string())),
        (
            "fallback (from cache / shed)",
            c.all(|r| format!("{} ({} / {})", r.fallback, r.from_cache, r.shed)),
        ),
        ("failed", c.all(|r| r.failed.to_string())),
        (
            "DatabaseBusy errors (MySQL 1040)",
            c.all(|r| r.database_busy_errors.to_string()),
        ),
        (
            m.pick(
                "connections refused (server count)",
                "connections refused (server: Aborted_connects)",
            ),
            c.all(|r| r.refused_connections.to_string()),
        ),
        (
            m.pick(
                "peak DB connections (sampled)",
                "peak connections (sampled)",
            ),
            c.all(|r| format!("{} ({})", r.peak_connections, r.peak_sampled_connections)),
        ),
        (
            "connections above the budget",
            c.all(|r| r.peak_connections_above_budget.to_string()),
        ),
        (
            m.pick(
                "Max_used_connections (with sampler)",
                "Max_used_connections (incl. sampler)",
            ),
            c.all(|r| r.max_used_connections.to_string()),
        ),
        (
            "peak leases in use",
            c.leased(|r| r.peak_leases_in_use.to_string()),
        ),
        (
            "peak requests waiting",
            c.leased(|r| r.peak_waiting.to_string()),
        ),
        (
            m.pick("leases held at end", "leases held at the end"),
            c.all(|r| r.leases_held_at_end.to_string()),
        ),
        (
            m.pick("waiters left at end", "waiters left at the end"),
            c.leased(|r| r.waiters_at_end.max(r.waiter_records_at_end).to_string()),
        ),
    ]
}

/// Latencies, waits, holds and rates, against the physical limit and the FIFO ideal.
fn time_rows(c: &Cells) -> Vec<Row> {
    let m = c.medium;
    let limit = |r: &RunReport| {
        let per_second = c.num(r.physical_limit_per_second);
        match m {
            Medium::Terminal => format!("{per_second} ({} conn.)", r.connection_limit),
            Medium::Page => format!("{per_second} ({})", r.connection_limit),
        }
    };
    let ratio = |f: fn(&RatioToIdeal) -> Option<f64>| {
        move |r: &RunReport| c.num(r.ratio_to_fifo_ideal.as_ref().and_then(f))
    };
    vec![
        (
            m.pick(
                "latency p50 / p95 / p99 ms",
                "end-to-end p50 / p95 / p99 ms",
            ),
            c.all(|r| c.spread(Some(&r.latency))),
        ),
        (
            m.pick(
                "wait p50 / p95 / p99 / max ms",
                "lease wait p50 / p95 / p99 / max ms",
            ),
            c.all(|r| match &r.lease_wait {
                Some(w) => format!("{} / {}", c.spread(Some(&w.spread)), c.int(w.spread.max_ms)),
                None => m.dash().to_owned(),
            }),
        ),
        (
            "acquire wait p50 / p95 / p99 ms",
            c.all(|r| c.spread(r.acquire_wait.as_ref())),
        ),
        (
            "ConnectionsExhausted retries",
            c.leased(|r| r.connections_exhausted_retries.to_string()),
        ),
        (
            m.pick(
                "queue rounds without a slot",
                "queue rounds that ended without a slot",
            ),
            c.leased(|r| r.queue_timeouts.to_string()),
        ),
        ("mean connection hold ms", c.all(|r| c.num(r.mean_hold_ms))),
        (
            "mean lease held ms",
            c.leased(|r| c.num(r.mean_lease_held_ms)),
        ),
        (
            m.pick(
                "queue overhead p50 / p99 ms",
                "queue overhead p50 / p99 ms (wait − waitedMs)",
            ),
            c.leased(|r| match &r.queue_overhead {
                Some(s) => format!("{} / {}", c.int(s.p50_ms), c.int(s.p99_ms)),
                None => m.dash().to_owned(),
            }),
        ),
        (
            "served per second",
            c.all(|r| r.served_per_second.to_string()),
        ),
        (
            m.pick(
                "physical limit per second",
                "physical limit per second (connections)",
            ),
            c.all(limit),
        ),
        (
            "ratio to the physical limit",
            c.all(|r| c.num(r.ratio_to_physical_limit)),
        ),
        (
            m.pick("served/s vs FIFO ideal", "served per second ÷ FIFO ideal"),
            c.all(ratio(|r| r.served_per_second)),
        ),
        (
            m.pick("p99 latency vs FIFO ideal", "p99 latency ÷ FIFO ideal"),
            c.all(ratio(|r| r.p99_latency)),
        ),
        ("container kills", c.all(|r| r.container_kills.to_string())),
        (
            "duration s",
            c.all(|r| format!("{:.1}", r.duration_ms as f64 / 1000.0)),
        ),
    ]
}

/// What a check stands for, which decides how a failure is shown and whether it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    /// A promise: a failure fails the demo.
    Promise,
    /// A goal of the queue: fails the demo only when no fault was injected.
    Goal,
    /// What the ungoverned load showed; never fails the demo.
    Shown,
}

/// One check as a sentence, in the order of the JSON's `checks`.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckLine {
    pub ok: bool,
    pub kind: CheckKind,
    pub text: String,
}

impl CheckLine {
    /// Whether this line's failure fails the demo: only a promise's (goals are timing, shown
    /// and never counted; see [`crate::report::Report::passed`]).
    pub fn counts(&self) -> bool {
        self.kind == CheckKind::Promise
    }
}

/// The checks as sentences, in the order of the JSON's `checks`.
pub fn check_lines(report: &Report, medium: Medium) -> Vec<CheckLine> {
    let c = &report.checks;
    let (q, g, u) = (
        &report.runs.queued,
        &report.runs.governed,
        &report.runs.ungoverned,
    );
    let le = medium.pick("<=", "≤");
    let ms = |v: Option<i64>| v.map_or_else(|| medium.dash().to_owned(), |v| format!("{v} ms"));
    let line = |ok, kind, text: String| CheckLine { ok, kind, text };
    use CheckKind::{Goal, Promise, Shown};
    vec![
        line(
            c.governed_no_database_busy,
            Promise,
            format!(
                "polling: no DatabaseBusy error ({})",
                g.database_busy_errors
            ),
        ),
        line(
            c.governed_peak_within_budget_plus_reserve,
            Promise,
            format!(
                "polling: peak connections {} {le} budget {} + admin reserve {}",
                g.peak_connections, report.budget, report.admin_reserve
            ),
        ),
        line(
            c.governed_no_connections_above_budget,
            Promise,
            format!(
                "polling: connections never above the budget {} (peak {} above)",
                report.budget, g.peak_connections_above_budget
            ),
        ),
        line(
            c.governed_leases_never_above_budget,
            Promise,
            format!(
                "polling: leases in use never above the budget (peak {})",
                g.peak_leases_in_use
            ),
        ),
        line(
            c.governed_no_leases_held_at_end,
            Promise,
            format!(
                "polling: no lease held at the end ({} in use, {} records)",
                g.leases_held_at_end, g.lease_records_at_end
            ),
        ),
        line(
            c.ungoverned_shows_database_busy,
            Shown,
            format!(
                "ungoverned: {} DatabaseBusy errors (MySQL 1040); {} executions failed",
                u.database_busy_errors, u.failed
            ),
        ),
        line(
            c.queued_no_database_busy,
            Promise,
            format!("queued: no DatabaseBusy error ({})", q.database_busy_errors),
        ),
        line(
            c.queued_no_connections_above_budget,
            Promise,
            format!(
                "queued: connections never above the budget {} (peak {}, {} above)",
                report.budget, q.peak_connections, q.peak_connections_above_budget
            ),
        ),
        line(
            c.queued_leases_returned,
            Promise,
            format!(
                "queued: no lease and no waiter left at the end ({} leases in use, {} records; {} waiting, {} records)",
                q.leases_held_at_end,
                q.lease_records_at_end,
                q.waiters_at_end,
                q.waiter_records_at_end
            ),
        ),
        line(
            c.queued_served_near_physical_limit,
            Goal,
            format!(
                "queued: {} served per second {} {} {} physical limit {}",
                q.served_per_second,
                medium.pick(">=", "≥"),
                NEAR_PHYSICAL_LIMIT,
                medium.pick("x", "×"),
                q.physical_limit_per_second
                    .map_or_else(|| medium.dash().to_owned(), |l| l.to_string())
            ),
        ),
        line(
            c.queued_p99_at_most_a_third_of_polling,
            Goal,
            format!(
                "queued: end-to-end p99 {} {le} a third of polling's {}",
                ms(q.p99_ms),
                ms(g.p99_ms)
            ),
        ),
    ]
}

/// The side-by-side table printed at the end of a demo.
pub fn text(report: &Report) -> String {
    let rows = figures(report, Medium::Terminal);
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let l = &report.load;
    let mut out = format!(
        "leasehold demo: {} executions per run, concurrency {}, each query holds its connection {} ms\n\
         pool budget {} of max_connections {} (admin reserve {}), kill probability {}, seed {}\n\n",
        l.executions,
        l.concurrency,
        l.hold_ms,
        report.budget,
        report.max_connections,
        report.admin_reserve,
        l.kill_probability,
        l.seed
    );
    if let Some(after) = l.abort_harness_after_seconds {
        out.push_str(&format!(
            "each run's harness stopped after {after} s and the same load started again\n\n"
        ));
    }
    let [a, b, c] = columns(report).map(|(name, _)| name);
    out.push_str(&format!("{:width$}  {a:>24}  {b:>24}  {c:>24}\n", ""));
    for (label, [a, b, c]) in &rows {
        out.push_str(&format!("{label:width$}  {a:>24}  {b:>24}  {c:>24}\n"));
    }
    let f = &report.fifo_ideal;
    out.push_str(&format!(
        "\nFIFO ideal ({} clients, {} slots, {} ms each): {} served per second, wait p50 / p99 {} / {} ms, done in {:.1} s\n\n",
        f.concurrency,
        f.budget,
        f.service_ms,
        f.served_per_second,
        f.wait_p50_ms,
        f.wait_p99_ms,
        f.makespan_ms / 1000.0
    ));
    let faults = report.faults_injected();
    let mut shows_busy = true;
    for check in check_lines(report, Medium::Terminal) {
        let mark = match (check.kind, check.ok) {
            (CheckKind::Shown, ok) => {
                shows_busy = ok;
                if ok { "seen" } else { "none" }
            }
            (_, true) => "ok  ",
            (_, false) if check.counts() => "FAIL",
            (_, false) => "miss",
        };
        out.push_str(&format!("{mark} {}\n", check.text));
    }
    if !shows_busy {
        out.push_str(&format!(
            "     (the load never needed more than max_connections: raise --concurrency above {} or --hold-ms)\n",
            report.max_connections
        ));
    }
    if !report.checks.queued_goals_met() {
        out.push_str(if faults {
            "     (the queued run's goals are timing, shown and never counted; faults were injected, which costs time)\n"
        } else {
            "     (the queued run's goals are timing, shown and never counted: they are meant for the default load)\n"
        });
    }
    out
}
