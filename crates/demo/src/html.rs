//! The report as one self-contained HTML page: the side-by-side table of the three runs, the
//! checks, the FIFO ideal, and charts drawn as inline SVG (a few lines of inline script add a
//! hover read-out). Nothing is loaded from the network.

use super::report::{Bucket, CheckKind, Medium, Report, RunReport, check_lines, columns, figures};
use std::fmt::Write;

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 190.0;
const LEFT: f64 = 46.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 30.0;

/// Text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A step of 1, 2 or 5 × 10^n giving about `ticks` intervals up to `max`.
pub fn nice_step(max: f64, ticks: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let raw = max / ticks;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    step.max(if max >= 1.0 { 1.0 } else { step })
}

pub struct Line {
    pub label: String,
    pub color: &'static str,
    /// (seconds, value)
    pub points: Vec<(f64, f64)>,
    /// Drawn as steps (a sampled level) rather than straight segments.
    pub step: bool,
}

/// A horizontal reference line (a limit).
pub struct Rule {
    pub label: String,
    pub value: f64,
    pub color: &'static str,
}

pub struct Chart {
    pub title: String,
    pub x_max: f64,
    pub y_max: f64,
    pub lines: Vec<Line>,
    /// (seconds, value) drawn as one-second bars.
    pub bars: Option<Line>,
    pub rules: Vec<Rule>,
    /// Said in the chart when it has no data.
    pub empty: String,
}

fn fmt_num(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.1}")
    }
}

/// One chart as an SVG element.
pub fn svg(chart: &Chart) -> String {
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x_max = chart.x_max.max(1.0);
    let y_max = chart.y_max.max(1.0);
    let x = |s: f64| LEFT + (s / x_max).clamp(0.0, 1.0) * plot_w;
    let y = |v: f64| TOP + plot_h - (v / y_max).clamp(0.0, 1.0) * plot_h;
    let mut s = String::new();
    let data: Vec<serde_json::Value> = chart
        .lines
        .iter()
        .chain(chart.bars.iter())
        .map(|l| serde_json::json!({"label": l.label, "points": l.points}))
        .collect();
    let _ = write!(
        s,
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{}\" \
         data-x0=\"{LEFT}\" data-x1=\"{}\" data-xmax=\"{x_max}\" data-series=\"{}\">",
        escape(&chart.title),
        LEFT + plot_w,
        escape(&serde_json::Value::Array(data).to_string())
    );
    // Grid and axes.
    let y_step = nice_step(y_max, 4.0);
    let mut v = 0.0;
    while v <= y_max + 1e-9 {
        let yy = y(v);
        let _ = write!(
            s,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" class=\"grid\"/>\
             <text x=\"{}\" y=\"{:.1}\" class=\"tick\" text-anchor=\"end\">{}</text>",
            LEFT + plot_w,
            LEFT - 5.0,
            yy + 3.5,
            fmt_num(v)
        );
        v += y_step;
    }
    let x_step = nice_step(x_max, 6.0);
    let mut t = 0.0;
    while t <= x_max + 1e-9 {
        let xx = x(t);
        let _ = write!(
            s,
            "<line x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{TOP}\" y2=\"{:.1}\" class=\"grid\"/>\
             <text x=\"{xx:.1}\" y=\"{:.1}\" class=\"tick\" text-anchor=\"middle\">{}</text>",
            TOP + plot_h,
            TOP + plot_h + 13.0,
            fmt_num(t)
        );
        t += x_step;
    }
    let _ = write!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" class=\"tick\" text-anchor=\"middle\">seconds since the run started</text>",
        LEFT + plot_w / 2.0,
        HEIGHT - 3.0
    );
    // Bars first, lines over them.
    if let Some(bars) = &chart.bars {
        let bar_w = (plot_w / x_max).clamp(1.0, 14.0) * 0.8;
        for (t, v) in &bars.points {
            if *v <= 0.0 {
                continue;
            }
            let _ = write!(
                s,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bar_w:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{} s: {}</title></rect>",
                x(*t),
                y(*v),
                (TOP + plot_h - y(*v)).max(0.5),
                bars.color,
                fmt_num(*t),
                fmt_num(*v)
            );
        }
    }
    for rule in &chart.rules {
        let yy = y(rule.value);
        let _ = write!(
            s,
            "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"{}\" class=\"rule\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" class=\"rulelabel\" text-anchor=\"end\" fill=\"{}\">{}</text>",
            LEFT + plot_w,
            rule.color,
            LEFT + plot_w - 2.0,
            yy - 3.0,
            rule.color,
            escape(&rule.label)
        );
    }
    for line in &chart.lines {
        if line.points.is_empty() {
            continue;
        }
        let mut d = String::new();
        let mut previous: Option<f64> = None;
        for (i, (t, v)) in line.points.iter().enumerate() {
            let (xx, yy) = (x(*t), y(*v));
            if i == 0 {
                let _ = write!(d, "M{xx:.1},{yy:.1}");
            } else {
                if line.step
                    && let Some(py) = previous
                {
                    let _ = write!(d, " L{xx:.1},{py:.1}");
                }
                let _ = write!(d, " L{xx:.1},{yy:.1}");
            }
            previous = Some(yy);
        }
        let _ = write!(
            s,
            "<path d=\"{d}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.6\"/>",
            line.color
        );
    }
    let has_data = chart.lines.iter().any(|l| !l.points.is_empty())
        || chart.bars.as_ref().is_some_and(|b| !b.points.is_empty());
    if !has_data {
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"empty\" text-anchor=\"middle\">{}</text>",
            LEFT + plot_w / 2.0,
            TOP + plot_h / 2.0,
            escape(&chart.empty)
        );
    }
    let _ = write!(
        s,
        "<line class=\"cursor\" x1=\"0\" x2=\"0\" y1=\"{TOP}\" y2=\"{:.1}\" visibility=\"hidden\"/>\
         <text class=\"readout\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"start\"></text></svg>",
        TOP + plot_h,
        LEFT + 4.0,
        TOP + 10.0
    );
    s
}

pub(crate) fn legend(chart: &Chart) -> String {
    let mut s = String::from("<div class=\"legend\">");
    for l in chart.lines.iter().chain(chart.bars.iter()) {
        let _ = write!(
            s,
            "<span><i style=\"background:{}\"></i>{}</span>",
            l.color,
            escape(&l.label)
        );
    }
    for r in &chart.rules {
        let _ = write!(
            s,
            "<span><i class=\"dash\" style=\"border-color:{}\"></i>{}</span>",
            r.color,
            escape(&r.label)
        );
    }
    s.push_str("</div>");
    s
}

fn seconds<T: Copy + Into<f64>>(points: &[(i64, T)]) -> Vec<(f64, f64)> {
    points
        .iter()
        .map(|&(t, v)| (t as f64 / 1000.0, v.into()))
        .collect()
}

fn seconds_i(points: &[(i64, i64)]) -> Vec<(f64, f64)> {
    points
        .iter()
        .map(|&(t, v)| (t as f64 / 1000.0, v as f64))
        .collect()
}

/// The five time charts of one run, on axes shared with the other runs.
pub fn run_charts(report: &Report, run: &RunReport, governed: bool, x_max: f64) -> Vec<Chart> {
    let max = report.max_connections as f64;
    let mut rules = vec![Rule {
        label: format!("max_connections {}", report.max_connections),
        value: max,
        color: "#b91c1c",
    }];
    if governed {
        rules.push(Rule {
            label: format!("budget {}", report.budget),
            value: report.budget as f64,
            color: "#15803d",
        });
    }
    let mut lines = vec![Line {
        label: "connections open (Threads_connected, sampler excluded)".into(),
        color: "#1d4ed8",
        points: seconds_i(&run.series.connections),
        step: true,
    }];
    if governed {
        lines.push(Line {
            label: "leases in use (pool record)".into(),
            color: "#f59e0b",
            points: seconds_i(&run.series.leases_in_use),
            step: true,
        });
    }
    let refused_max = run
        .series
        .no_connections_left_error
        .iter()
        .map(|p| p.1)
        .fold(0.0, f64::max);
    vec![
        Chart {
            title: "Database connections over time".into(),
            x_max,
            y_max: max + 1.0,
            lines,
            bars: None,
            rules,
            empty: "no samples".into(),
        },
        Chart {
            title: "RemainingConnections (CloudWatch, minimum per second)".into(),
            x_max,
            y_max: report.budget as f64 + 1.0,
            lines: vec![Line {
                label: "RemainingConnections".into(),
                color: "#15803d",
                points: seconds(&run.series.remaining_connections),
                step: true,
            }],
            bars: None,
            rules: vec![],
            empty: if governed {
                "no datapoints in CloudWatch".into()
            } else {
                "no leases are taken in this run, so no metric".into()
            },
        },
        Chart {
            title: "NoConnectionsLeftError (CloudWatch, sum per second)".into(),
            x_max,
            y_max: refused_max.max(1.0) * 1.1,
            lines: vec![],
            bars: Some(Line {
                label: "NoConnectionsLeftError".into(),
                color: "#dc2626",
                points: seconds(&run.series.no_connections_left_error),
                step: false,
            }),
            rules: vec![],
            empty: if governed {
                "the pool never refused a lease".into()
            } else {
                "no leases are taken in this run, so no metric".into()
            },
        },
        Chart {
            title: "DatabaseBusy errors (MySQL 1040) per second, from the execution histories"
                .into(),
            x_max,
            y_max: run
                .series
                .database_busy_errors
                .iter()
                .map(|p| p.1 as f64)
                .fold(1.0, f64::max)
                * 1.1,
            lines: vec![],
            bars: Some(Line {
                label: "DatabaseBusy".into(),
                color: "#7c2d12",
                points: run
                    .series
                    .database_busy_errors
                    .iter()
                    .map(|&(t, n)| (t as f64 / 1000.0, n as f64))
                    .collect(),
                step: false,
            }),
            rules: vec![],
            empty: "no query was refused by the database".into(),
        },
        Chart {
            title: "Requests waiting for a lease (queue length)".into(),
            x_max,
            y_max: run
                .series
                .waiting
                .iter()
                .map(|p| p.1 as f64)
                .chain(run.series.waiting_requests.iter().map(|p| p.1))
                .fold(1.0, f64::max)
                * 1.1,
            lines: if governed {
                vec![
                    Line {
                        label: "waiting (pool record, sampled)".into(),
                        color: "#7c3aed",
                        points: seconds_i(&run.series.waiting),
                        step: true,
                    },
                    Line {
                        label: "WaitingRequests (CloudWatch, maximum per second)".into(),
                        color: "#0d9488",
                        points: seconds(&run.series.waiting_requests),
                        step: true,
                    },
                ]
            } else {
                vec![]
            },
            bars: None,
            rules: vec![],
            empty: if governed {
                "no samples".into()
            } else {
                "no leases are taken in this run, so no queue".into()
            },
        },
    ]
}

/// The wait histogram of one run: one bar per bucket of [`super::report::WAIT_BUCKETS_MS`],
/// on a count axis shared with the other governed run.
pub fn histogram_svg(title: &str, buckets: &[Bucket], y_max: f64, empty: &str) -> String {
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let y_max = y_max.max(1.0);
    let y = |v: f64| TOP + plot_h - (v / y_max).clamp(0.0, 1.0) * plot_h;
    let slot = plot_w / buckets.len().max(1) as f64;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"chart histogram\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{}\">",
        escape(title)
    );
    let y_step = nice_step(y_max, 4.0);
    let mut v = 0.0;
    while v <= y_max + 1e-9 {
        let yy = y(v);
        let _ = write!(
            s,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" class=\"grid\"/>\
             <text x=\"{}\" y=\"{:.1}\" class=\"tick\" text-anchor=\"end\">{}</text>",
            LEFT + plot_w,
            LEFT - 5.0,
            yy + 3.5,
            fmt_num(v)
        );
        v += y_step;
    }
    let seconds = |ms: i64| fmt_num(ms as f64 / 1000.0);
    for (i, bucket) in buckets.iter().enumerate() {
        let x = LEFT + i as f64 * slot;
        let range = match bucket.to_ms {
            Some(to) => format!("{}–{} s", seconds(bucket.from_ms), seconds(to)),
            None => format!("{} s or more", seconds(bucket.from_ms)),
        };
        if bucket.count > 0 {
            let _ = write!(
                s,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#7c3aed\"><title>{range}: {}</title></rect>",
                x + slot * 0.1,
                y(bucket.count as f64),
                slot * 0.8,
                (TOP + plot_h - y(bucket.count as f64)).max(0.5),
                bucket.count
            );
        }
        // Each bar is labelled with its upper end; the last with "+".
        let label = bucket
            .to_ms
            .map_or_else(|| format!("{}+", seconds(bucket.from_ms)), seconds);
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"tick\" text-anchor=\"middle\">{label}</text>",
            x + slot / 2.0,
            TOP + plot_h + 13.0
        );
    }
    let _ = write!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" class=\"tick\" text-anchor=\"middle\">wait in seconds (each bar up to the second under it)</text>",
        LEFT + plot_w / 2.0,
        HEIGHT - 3.0
    );
    if buckets.iter().all(|b| b.count == 0) {
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"empty\" text-anchor=\"middle\">{}</text>",
            LEFT + plot_w / 2.0,
            TOP + plot_h / 2.0,
            escape(empty)
        );
    }
    s.push_str("</svg>");
    s
}

/// The wait histogram of one run with its caption.
fn wait_chart(report: &Report, run: &RunReport, y_max: f64) -> String {
    let title = "Lease wait: children per wait (time in the acquire state, lease or not)";
    let mut s = format!("<h3>{}</h3>", escape(title));
    match &run.lease_wait {
        Some(wait) => {
            let w = &wait.spread;
            let ms = |v: Option<i64>| v.map_or_else(|| "–".to_owned(), |v| v.to_string());
            s.push_str(&histogram_svg(
                title,
                &wait.histogram,
                y_max,
                "no child left the acquire state",
            ));
            let f = &report.fifo_ideal;
            let _ = write!(
                s,
                "<p class=\"caption\">{}: {} children, {} with a lease · p50 {} · p95 {} · p99 {} · max {} ms<br>\
                 FIFO ideal: p50 {} · p99 {} ms</p>",
                escape(wait.state),
                w.count,
                wait.granted,
                ms(w.p50_ms),
                ms(w.p95_ms),
                ms(w.p99_ms),
                ms(w.max_ms),
                f.wait_p50_ms,
                f.wait_p99_ms
            );
        }
        None => {
            s.push_str(&histogram_svg(
                title,
                &[],
                1.0,
                "no leases are taken in this run, so no wait",
            ));
            s.push_str("<p class=\"caption\"></p>");
        }
    }
    s
}

fn table(report: &Report) -> String {
    let mut s = String::from("<table class=\"figures\"><thead><tr><th></th>");
    for (name, _) in columns(report) {
        let _ = write!(s, "<th>{name}</th>");
    }
    s.push_str("</tr></thead><tbody>");
    for (label, cells) in figures(report, Medium::Page) {
        let _ = write!(s, "<tr><th>{}</th>", escape(label));
        for cell in cells {
            let _ = write!(s, "<td>{}</td>", escape(&cell));
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");
    s
}

fn checks(report: &Report) -> String {
    let mut s = String::from("<ul class=\"checks\">");
    for line in check_lines(report, Medium::Page) {
        let note = if !line.ok && line.kind == CheckKind::Goal && !line.counts() {
            " (a goal: timing, shown and never counted)"
        } else {
            ""
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

/// The FIFO ideal: what the load would get from a perfect queue over the budget.
fn ideal(report: &Report) -> String {
    let f = &report.fifo_ideal;
    let source = match f.service_ms_source {
        super::fifo::ServiceSource::QueuedMeanHold => "the queued run's mean connection hold",
        super::fifo::ServiceSource::PollingMeanHold => "the polling run's mean connection hold",
        super::fifo::ServiceSource::HoldMs => "the load's hold",
    };
    format!(
        "<p class=\"ideal\">{} clients, each asking again as soon as its query ends, share <b>{}</b> \
         slots through one first-come-first-served queue; every query holds its slot {} ms ({source}), \
         nothing else takes time. All {} executions are served in <b>{:.1} s</b>: <b>{}</b> per \
         second, waits p50 <b>{}</b> ms and p99 <b>{}</b> ms (end to end p50 {} ms, p99 {} ms). \
         The table's rows <i>÷ FIFO ideal</i> compare each run with this.</p>",
        f.concurrency,
        f.budget,
        f.service_ms,
        f.executions,
        f.makespan_ms / 1000.0,
        f.served_per_second,
        f.wait_p50_ms,
        f.wait_p99_ms,
        f.latency_p50_ms,
        f.latency_p99_ms
    )
}

pub(crate) const STYLE: &str = "body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1800px;color:#111;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}h3{font-size:14px;margin:14px 0 2px}
.sub{color:#555;margin:0 0 12px}
table.figures{border-collapse:collapse;margin:8px 0}
table.figures th,table.figures td{padding:3px 12px;border-bottom:1px solid #e5e7eb;text-align:right}
table.figures th:first-child{text-align:left;font-weight:normal;color:#333}
table.figures thead th{font-weight:600;color:#111}
ul.checks{list-style:none;padding:0}ul.checks li{margin:2px 0}
li.ok{color:#15803d}li.bad{color:#b91c1c;font-weight:600}
.runs{display:grid;grid-template-columns:repeat(3,minmax(0,1fr));gap:16px}
@media (max-width:1100px){.runs{grid-template-columns:1fr}}
svg.chart{width:100%;height:auto;background:#fafafa;border:1px solid #e5e7eb}
.grid{stroke:#e5e7eb;stroke-width:1}.tick{font-size:10px;fill:#555}
.rule{stroke-width:1.2;stroke-dasharray:5 4}.rulelabel{font-size:10px}
.empty{font-size:12px;fill:#888}.cursor{stroke:#888;stroke-width:1}.readout{font-size:11px;fill:#111}
.legend{font-size:12px;color:#333;margin:2px 0 10px}.legend span{margin-right:14px;white-space:nowrap}
.legend i{display:inline-block;width:14px;height:3px;margin-right:5px;vertical-align:middle}
.legend i.dash{height:0;border-top:2px dashed}
code{background:#f3f4f6;padding:1px 4px;border-radius:3px}
.notes li{margin:4px 0}.ideal{max-width:900px}.caption{font-size:12px;color:#333;margin:2px 0 10px}";

/// The hover read-out: the value of every series nearest to the cursor's time.
pub(crate) const SCRIPT: &str = "document.querySelectorAll('svg.chart').forEach(function(svg){
var series=JSON.parse(svg.getAttribute('data-series')||'[]');if(!series.length)return;
var x0=+svg.dataset.x0,x1=+svg.dataset.x1,xmax=+svg.dataset.xmax;
var cursor=svg.querySelector('.cursor'),text=svg.querySelector('.readout');
svg.addEventListener('mousemove',function(ev){var r=svg.getBoundingClientRect();
var vx=(ev.clientX-r.left)*svg.viewBox.baseVal.width/r.width;if(vx<x0||vx>x1){return;}
var t=(vx-x0)/(x1-x0)*xmax;var parts=[t.toFixed(1)+' s'];
series.forEach(function(s){var best=null;s.points.forEach(function(p){if(best===null||Math.abs(p[0]-t)<Math.abs(best[0]-t))best=p;});
if(best&&Math.abs(best[0]-t)<=1.5)parts.push(s.label.split(' (')[0]+': '+best[1]);});
cursor.setAttribute('x1',vx);cursor.setAttribute('x2',vx);cursor.setAttribute('visibility','visible');text.textContent=parts.join('  ');});
svg.addEventListener('mouseleave',function(){cursor.setAttribute('visibility','hidden');text.textContent='';});});";

/// The whole page.
pub fn render(report: &Report) -> String {
    let runs = columns(report);
    let longest = runs.iter().map(|(_, r)| r.duration_ms).max().unwrap_or(0);
    let x_max = (longest as f64 / 1000.0).ceil() + 2.0;
    // One count axis for the wait histograms, so that their bars compare.
    let wait_max = runs
        .iter()
        .filter_map(|(_, r)| r.lease_wait.as_ref())
        .flat_map(|w| w.histogram.iter().map(|b| b.count))
        .max()
        .unwrap_or(0) as f64
        * 1.1;
    let l = &report.load;
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>leasehold demo report</title><style>{STYLE}</style></head><body>\
         <h1>leasehold demo: queued vs. polling vs. ungoverned</h1>\
         <p class=\"sub\">{} · {} executions per run, concurrency {}, each query holds its connection {} ms · \
         pool budget <b>{}</b> of max_connections <b>{}</b> (admin reserve {}) · kill probability {} · seed {}</p>",
        escape(&report.generated_at),
        l.executions,
        l.concurrency,
        l.hold_ms,
        report.budget,
        report.max_connections,
        report.admin_reserve,
        l.kill_probability,
        l.seed
    );
    s.push_str(&checks(report));
    s.push_str("<h2>The three runs, side by side</h2>");
    s.push_str(&table(report));
    s.push_str("<h2>The FIFO ideal</h2>");
    s.push_str(&ideal(report));
    s.push_str("<h2>Over time</h2><div class=\"runs\">");
    for (name, run) in runs {
        let governed = run.acquire_mode.is_some();
        let _ = write!(
            s,
            "<section><h3>{name}: {}</h3>",
            match run.acquire_mode {
                Some("queued") =>
                    "the connection workflow, waiting in the pool's queue (AcquireQueued → Query → Release)",
                Some(_) =>
                    "the connection workflow, retrying with backoff (Acquire → Query → Release); the JSON's <code>governed</code>",
                None => "the same query function without leases",
            }
        );
        for chart in run_charts(report, run, governed, x_max) {
            let _ = write!(s, "<h3>{}</h3>", escape(&chart.title));
            s.push_str(&svg(&chart));
            s.push_str(&legend(&chart));
        }
        s.push_str(&wait_chart(report, run, wait_max));
        s.push_str("</section>");
    }
    s.push_str("</div>");
    s.push_str(
        "<h2>How to read this</h2><ul class=\"notes\">\
         <li><b>Database connections</b> are MariaDB's <code>Threads_connected</code>, sampled every 150 ms \
         by one administrator connection that is not counted; <b>leases in use</b> is the pool record's \
         <code>inUse</code>, sampled every 250 ms. Governed, connections stay at or under the budget \
         (green dashed line); ungoverned, they run into <code>max_connections</code> (red) and the database \
         answers error 1040, which the query function reports as <code>DatabaseBusy</code>.</li>\
         <li><b>RemainingConnections</b> and <b>NoConnectionsLeftError</b> are the pool's CloudWatch metrics, \
         read back per second: free leases after each grant or release (the minimum of the second), and \
         refused acquires. A refusal is not a failure: the workflow backs off with jitter and retries, then \
         answers from the cache or sheds.</li>\
         <li><b>DatabaseBusy errors</b> are the query attempts that failed with that error in the children's \
         histories; the workflows retry them twice, then the execution fails. <b>Connections refused</b> is \
         the server's own count (<code>Aborted_connects</code>), which also counts connections cut by a \
         killed container.</li>\
         <li><b>Peak connections</b> is the server's <code>Max_used_connections</code> (reset with \
         <code>FLUSH STATUS</code> before each run) minus the sampler's own connection, or the highest sample \
         if that is higher.</li>\
         <li><b>Queued</b> and <b>polling</b> are the same connection workflow with a different <code>mode</code>: \
         queued requests wait in the pool's queue (<b>requests waiting</b>: the pool record's <code>waiting</code>, \
         sampled, and CloudWatch <code>WaitingRequests</code>) and a released slot is handed straight to the \
         oldest; polling requests are refused while the pool is full and retry with backoff.</li>\
         <li><b>End-to-end</b> latency runs from a child execution's start to its end; <b>lease wait</b> from its \
         first attempt in the acquire state (<code>AcquireQueued</code> or <code>Acquire</code>) to leaving it, \
         with a lease or for the fallback, retries and backoff included; <b>acquire wait</b> the same for the \
         children that got a lease.</li>\
         <li>The <b>FIFO ideal</b> is a simulation of the same load through a perfect first-come-first-served \
         queue over the budget, with no overhead at all: a run's <i>served per second ÷ FIFO ideal</i> of 1 \
         is as fast as that queue, its <i>p99 latency ÷ FIFO ideal</i> says how many times longer its slowest \
         callers waited end to end.</li>\
         <li><b>Physical limit</b> = connections the run may use ÷ mean time a query holds its connection: \
         the most queries per second the database could serve within that limit.</li>\
         <li>The JSON beside this page has every figure and series; docs/report.md describes its fields.</li></ul>",
    );
    let _ = writeln!(s, "<script>{SCRIPT}</script></body></html>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_round_numbers() {
        assert_eq!(nice_step(20.0, 4.0), 5.0);
        assert_eq!(nice_step(63.0, 6.0), 20.0);
        assert_eq!(nice_step(7.0, 6.0), 2.0);
        assert_eq!(nice_step(0.0, 4.0), 1.0);
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn a_chart_draws_its_points_rules_and_bars() {
        let chart = Chart {
            title: "t".into(),
            x_max: 10.0,
            y_max: 20.0,
            lines: vec![Line {
                label: "conn".into(),
                color: "#123456",
                points: vec![(0.0, 0.0), (5.0, 10.0), (10.0, 20.0)],
                step: false,
            }],
            bars: Some(Line {
                label: "refused".into(),
                color: "#654321",
                points: vec![(1.0, 3.0), (2.0, 0.0)],
                step: false,
            }),
            rules: vec![Rule {
                label: "budget 8".into(),
                value: 8.0,
                color: "#00aa00",
            }],
            empty: "none".into(),
        };
        let svg = svg(&chart);
        // The line spans the plot: (0,0) bottom left, (10,20) top right.
        let bottom = TOP + HEIGHT - TOP - BOTTOM;
        assert!(svg.contains(&format!("M{LEFT:.1},{bottom:.1}")), "{svg}");
        assert!(
            svg.contains(&format!("L{:.1},{TOP:.1}", WIDTH - RIGHT)),
            "{svg}"
        );
        // One bar: the zero-valued second draws nothing.
        assert_eq!(svg.matches("<rect").count(), 1);
        assert!(svg.contains("budget 8"));
        assert!(!svg.contains(">none<"));
        // The hover script gets the series.
        assert!(svg.contains("&quot;label&quot;:&quot;conn&quot;"));
    }

    #[test]
    fn the_page_shows_three_runs_the_ideal_and_the_wait_histograms() {
        // GIVEN a report of three runs
        let report = crate::report::sample::report();
        // WHEN the page is rendered
        let page = render(&report);
        // THEN the table has a column per run, in the order they ran
        assert!(
            page.contains("<th></th><th>queued</th><th>polling</th><th>ungoverned</th>"),
            "{page}"
        );
        assert!(page.contains("<tr><th>served</th><td>10</td><td>10</td><td>10</td></tr>"));
        // AND six charts per run: five over time, one wait histogram
        assert_eq!(page.matches("<svg class=\"chart\"").count(), 15);
        assert_eq!(page.matches("<svg class=\"chart histogram\"").count(), 3);
        assert_eq!(page.matches("<h3>Requests waiting for a lease").count(), 3);
        // AND the histograms count every child of the governed runs: 10 each, drawn as bars
        // with the bucket in their title
        assert!(page.contains("<title>0.5–1 s: 4</title>"), "{page}");
        assert!(page.contains("no leases are taken in this run, so no wait"));
        // AND the FIFO ideal and the ratios to it are shown
        assert!(page.contains("<h2>The FIFO ideal</h2>"));
        assert!(page.contains("served per second ÷ FIFO ideal"));
        // AND one check line per check of the JSON
        let checks = serde_json::to_value(&report.checks).unwrap();
        assert_eq!(
            page.matches("<li class=\"ok\">").count() + page.matches("<li class=\"bad\">").count(),
            checks.as_object().unwrap().len()
        );
    }

    #[test]
    fn an_empty_chart_says_so() {
        let chart = Chart {
            title: "t".into(),
            x_max: 10.0,
            y_max: 5.0,
            lines: vec![],
            bars: None,
            rules: vec![],
            empty: "no leases in this run".into(),
        };
        assert!(svg(&chart).contains(">no leases in this run<"));
    }
}
