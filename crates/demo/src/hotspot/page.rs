//! The hotspot report as one self-contained HTML page: the checks, the four runs side by side,
//! and per run the charts of connections in use and requests waiting per application, the
//! lease wait per application over time and the database's refusals. Drawn with the queue
//! report's chart helpers (`crate::html`); nothing is loaded from the network.

use super::report::{HotspotReport, Run};
use super::text::{COLUMNS, check_lines, figures};
use crate::args::{HOT, STEADY};
use crate::html::{Chart, Line, Rule, SCRIPT, STYLE, escape, legend, svg};
use crate::report::{CheckKind, Medium};
use std::fmt::Write;

/// Each application's colour, the same in every chart.
pub fn colour(app: &str) -> &'static str {
    match app {
        STEADY => "#1d4ed8",
        HOT => "#dc2626",
        _ => "#6b7280",
    }
}

fn seconds(points: &[(i64, i64)]) -> Vec<(f64, f64)> {
    points
        .iter()
        .map(|&(t, v)| (t as f64 / 1000.0, v as f64))
        .collect()
}

fn highest(lines: &[Line]) -> f64 {
    lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .fold(0.0, f64::max)
}

/// The four time charts of one run, on a time axis shared with the other runs.
pub fn run_charts(report: &HotspotReport, run: &Run, x_max: f64) -> Vec<Chart> {
    let governed = run.acquire_mode.is_some();
    let apps: Vec<&str> = [STEADY, HOT]
        .into_iter()
        .filter(|a| run.applications.contains_key(*a))
        .collect();
    let series_of = |app: &str| run.series.applications.get(app);

    // Connections in use: each application's leases, and the database's connections.
    let mut in_use: Vec<Line> = Vec::new();
    if governed {
        for app in &apps {
            in_use.push(Line {
                label: format!("{app}: leases in use (lease records)"),
                color: colour(app),
                points: series_of(app).map_or_else(Vec::new, |s| seconds(&s.in_use)),
                step: true,
            });
        }
    }
    in_use.push(Line {
        label: "database connections (Threads_connected, sampler excluded)".into(),
        color: "#6b7280",
        points: seconds(&run.series.connections),
        step: true,
    });
    let mut rules = vec![Rule {
        label: format!("budget {}", report.budget),
        value: report.budget as f64,
        color: "#15803d",
    }];
    if !governed {
        rules.push(Rule {
            label: format!("max_connections {}", report.max_connections),
            value: report.max_connections as f64,
            color: "#b91c1c",
        });
    }
    for app in &apps {
        if let Some(max) = run.app(app).and_then(|a| a.max)
            && i64::from(max) < report.budget
        {
            rules.push(Rule {
                label: format!("{app} max {max}"),
                value: f64::from(max),
                color: colour(app),
            });
        }
    }
    let connections_max = if governed {
        report.budget as f64
    } else {
        report.max_connections as f64
    };

    let waiting: Vec<Line> = if governed {
        apps.iter()
            .map(|app| Line {
                label: format!("{app}: requests waiting (waiter records)"),
                color: colour(app),
                points: series_of(app).map_or_else(Vec::new, |s| seconds(&s.waiting)),
                step: true,
            })
            .collect()
    } else {
        vec![]
    };
    let waits: Vec<Line> = if governed {
        apps.iter()
            .map(|app| Line {
                label: format!("{app}: longest lease wait, ms (waits ended in the second)"),
                color: colour(app),
                points: series_of(app).map_or_else(Vec::new, |s| seconds(&s.lease_wait)),
                step: false,
            })
            .collect()
    } else {
        vec![]
    };
    let busy: Vec<(f64, f64)> = run
        .series
        .database_busy_errors
        .iter()
        .map(|&(t, n)| (t as f64 / 1000.0, n as f64))
        .collect();
    let no_leases = "no leases are taken in this run".to_owned();
    vec![
        Chart {
            title: "Connections in use per application".into(),
            x_max,
            y_max: connections_max.max(highest(&in_use)) + 1.0,
            lines: in_use,
            bars: None,
            rules,
            empty: "no samples".into(),
        },
        Chart {
            title: "Requests waiting per application".into(),
            x_max,
            y_max: highest(&waiting).max(1.0) * 1.1,
            lines: waiting,
            bars: None,
            rules: vec![],
            empty: if governed {
                "no samples".into()
            } else {
                no_leases.clone()
            },
        },
        Chart {
            title: "Lease wait per application (ms)".into(),
            x_max,
            y_max: highest(&waits).max(1.0) * 1.1,
            lines: waits,
            bars: None,
            rules: vec![],
            empty: if governed {
                "no child left AcquireQueued".into()
            } else {
                no_leases
            },
        },
        Chart {
            title: "DatabaseBusy errors (MySQL 1040) per second".into(),
            x_max,
            y_max: busy.iter().map(|p| p.1).fold(1.0, f64::max) * 1.1,
            lines: vec![],
            bars: Some(Line {
                label: "DatabaseBusy".into(),
                color: "#7c2d12",
                points: busy,
                step: false,
            }),
            rules: vec![],
            empty: "no query was refused by the database".into(),
        },
    ]
}

fn table(report: &HotspotReport) -> String {
    let mut s = String::from("<table class=\"figures\"><thead><tr><th></th>");
    for name in COLUMNS {
        let _ = write!(s, "<th>{name}</th>");
    }
    s.push_str("</tr></thead><tbody>");
    for (label, cells) in figures(report, Medium::Page) {
        let _ = write!(s, "<tr><th>{}</th>", escape(&label));
        for cell in cells {
            let _ = write!(s, "<td>{}</td>", escape(&cell));
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");
    s
}

fn checks(report: &HotspotReport) -> String {
    let mut s = String::from("<ul class=\"checks\">");
    for line in check_lines(report, Medium::Page) {
        let note = match (line.ok, line.kind) {
            (false, CheckKind::Goal) => " (a goal: timing, shown and never counted)",
            (_, CheckKind::Shown) => " (shown: what the load did without leases or shares)",
            _ => "",
        };
        let _ = write!(
            s,
            "<li class=\"{}\">{} {}{note}</li>",
            if line.ok { "ok" } else { "bad" },
            if line.ok { "✔" } else { "✘" },
            escape(&line.text)
        );
    }
    s.push_str("</ul>");
    s
}

const WHAT: [(&str, &str); 4] = [
    (
        "steadyAlone",
        "the steady application alone on the divided pool: its wait when nobody else is there",
    ),
    (
        "ungoverned",
        "both applications through the same query function without leases",
    ),
    (
        "sharedPool",
        "both on one budget for everybody (no applications): today's model",
    ),
    (
        "shares",
        "both on the pool divided between them: reservations, ceilings, borrowing",
    ),
];

/// The whole page.
pub fn render(report: &HotspotReport) -> String {
    let h = &report.hotspot;
    let runs = h.runs.all();
    let longest = runs.iter().map(|(_, r)| r.duration_ms).max().unwrap_or(0);
    let x_max = (longest as f64 / 1000.0).ceil() + 2.0;
    let mut s = String::new();
    let apps: Vec<String> = h
        .load
        .applications
        .iter()
        .map(|a| {
            format!(
                "<b>{}</b>: {} executions, {} at once, reserved {}, max {}, weight {}",
                escape(&a.name),
                a.executions,
                a.concurrency,
                a.reserved,
                a.max,
                a.weight
            )
        })
        .collect();
    let _ = write!(
        s,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>leasehold demo report: hotspot</title><style>{STYLE}\n\
         .runs.four{{grid-template-columns:repeat(2,minmax(0,1fr))}}</style></head><body>\
         <h1>leasehold demo: two applications on one pool</h1>\
         <p class=\"sub\">{} · each query holds its connection {} ms, every governed child queued · \
         pool budget <b>{}</b> of max_connections <b>{}</b> (admin reserve {}) · seed {}<br>{}<br>{}</p>",
        escape(&report.generated_at),
        h.load.hold_ms,
        report.budget,
        report.max_connections,
        report.admin_reserve,
        h.load.seed,
        apps.join(" · "),
        escape(&super::text::hot_start(h.load.hot_start_ms))
    );
    s.push_str(&checks(report));
    s.push_str("<h2>The four runs, side by side</h2>");
    s.push_str(&table(report));
    s.push_str("<h2>Over time</h2><div class=\"runs four\">");
    for ((name, run), (_, what)) in runs.iter().zip(WHAT) {
        let _ = write!(s, "<section><h3>{name}: {}</h3>", escape(what));
        for chart in run_charts(report, run, x_max) {
            let _ = write!(s, "<h3>{}</h3>", escape(&chart.title));
            s.push_str(&svg(&chart));
            s.push_str(&legend(&chart));
        }
        s.push_str("</section>");
    }
    s.push_str("</div>");
    s.push_str(
        "<h2>How to read this</h2><ul class=\"notes\">\
         <li><b>Leases in use</b> per application are the pool's lease records, read every 300 ms with \
         its waiter records and counted by their <code>app</code>; on the pool with one budget for \
         everybody the records carry none, and count for the application their execution named. \
         <b>Database connections</b> are MariaDB's <code>Threads_connected</code> (sampled every 150 ms, \
         the sampler's own connection left out).</li>\
         <li><b>Lease wait</b> is each child's time in <code>AcquireQueued</code>, from its first attempt \
         to leaving it, as in the queue scenario; the chart shows, per second, the longest of the waits \
         that ended in it (a child's start plus its wait), on each run's own scale.</li>\
         <li><b>Budget use while both want more than their reservation</b>: over the samples in which \
         each application's lease and waiter records together exceed its reservation, the mean of all \
         lease records ÷ the budget. It says whether the capacity one application leaves idle is \
         borrowed by the other.</li>\
         <li>The <b>sharedPool</b> run's contention is measured against the same reservations as the \
         <b>shares</b> run, so that the two compare; no share is in force there.</li>\
         <li>The JSON beside this page has every figure and series, under <code>hotspot</code>; \
         docs/report.md describes its fields.</li></ul>",
    );
    let _ = writeln!(s, "<script>{SCRIPT}</script></body></html>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hotspot::report::sample;

    #[test]
    fn the_page_shows_four_runs_with_charts_per_application() {
        // GIVEN the sample's four runs
        let report = sample::report();
        // WHEN the page is rendered
        let page = render(&report);
        // THEN the table has a column per run, in the order they ran, and rows per application
        assert!(
            page.contains(
                "<th></th><th>steadyAlone</th><th>ungoverned</th><th>sharedPool</th><th>shares</th>"
            ),
            "{page}"
        );
        assert!(page.contains("<tr><th>hot: executions</th><td>–</td><td>10</td>"));
        // AND four charts per run, the hot application's ceiling drawn where it applies
        assert_eq!(page.matches("<svg class=\"chart\"").count(), 16);
        assert_eq!(
            page.matches("<h3>Connections in use per application")
                .count(),
            4
        );
        assert_eq!(
            page.matches("hot max 6").count(),
            2,
            "shares: rule and legend"
        );
        // AND each application in its own colour
        assert!(page.contains(&format!("stroke=\"{}\"", colour("steady"))));
        assert!(page.contains(&format!("stroke=\"{}\"", colour("hot"))));
        // AND one check line per check of the JSON
        let checks = serde_json::to_value(&report.hotspot.checks).unwrap();
        assert_eq!(
            page.matches("<li class=\"ok\">").count() + page.matches("<li class=\"bad\">").count(),
            checks.as_object().unwrap().len()
        );
        // AND the ungoverned run says it has no leases instead of drawing an empty queue
        assert!(page.contains(">no leases are taken in this run<"));
    }
}
