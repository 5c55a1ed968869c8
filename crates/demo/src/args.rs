//! Command-line options of `leasehold-demo`, checked before anything runs: a bad value is a
//! plain message and exit status 2, never a stack trace.

use std::path::PathBuf;

pub const USAGE: &str = "usage: leasehold-demo [options]   (normally run by scripts/demo.sh)
  --scenario S            queue (default): the same load queued, polling and ungoverned;
                          hotspot: a steady and a hot application on one pool, alone,
                          ungoverned, with one shared pool and with shares
  --executions N          connection workflows per run, 1..1000 (default 300)
  --concurrency C         how many run at once, 1..40 (default 40)
  --hold-ms H             how long each query holds its connection, 0..30000 ms (default 1000)
  --max-connections M     MariaDB's max_connections, 10..10000 (default 20; recorded, checked
                          against the server)
  --reserve R             connections kept out of the budget for administrators (default 5)
  --budget B              the pool budget the stack was started with (default: derived by the
                          template from max_connections, 80 % minus the reserve)
  --kill-probability P    container kill probability the stack was started with, 0..0.5
  --seed S                seed the stack was started with (recorded in the report)
  --abort-harness-after S stop each run's harness after S seconds, 1..600, and start the same
                          load again at once (a stopped harness stops its children, whose
                          queries run on); the report then holds both harnesses' children
  --report PATH           the JSON report (default .local/demo/report.json); the HTML page is
                          written beside it (same name, .html)
  --statemachines DIR     where connection.asl.json and load-harness.asl.json are
                          (default statemachines)
 hotspot scenario only (--hold-ms, --max-connections, --reserve, --budget, --seed, --report
 and --statemachines apply to it too):
  --steady-executions N   the steady application's executions per run, 1..1000 (default 150)
  --steady-concurrency C  how many of them run at once, 1..40 (default 6)
  --steady-reserved R     its reservation (default 4)
  --steady-max M          its ceiling, R..budget (default: the budget)
  --hot-executions N      the hot application's executions per run, 1..1000 (default 240)
  --hot-concurrency C     how many of them run at once, 1..40 (default 40)
  --hot-reserved R        its reservation (default 2)
  --hot-max M             its ceiling, R..budget (default: the budget minus the steady
                          application's concurrency)
  --hot-start-ms T        how long after the steady application the hot one starts in the
                          runs of both, 0..60000 ms (default: twice --hold-ms, so that the
                          burst meets the steady one at work; 0 starts both together)";

/// Largest number of iterations of the load harness (`States.ArrayRange` makes at most 1000).
pub const MAX_EXECUTIONS: u32 = 1000;
/// An inline Map runs at most 40 iterations at once.
pub const MAX_CONCURRENCY: u32 = 40;
/// The query handler caps `holdMs` at 30 s.
pub const MAX_HOLD_MS: u64 = 30_000;
/// Above this, kills make almost every execution fail and the run proves nothing.
pub const MAX_KILL_PROBABILITY: f64 = 0.5;
/// The latest a harness may be stopped, in seconds.
pub const MAX_ABORT_AFTER_SECONDS: u64 = 600;
/// The latest the hot application may start after the steady one, in milliseconds.
pub const MAX_HOT_START_MS: u64 = 60_000;

/// Which comparison the demo runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// The same load queued, polling and ungoverned (the report's `runs`).
    Queue,
    /// Two applications on one pool: the steady one alone, both ungoverned, both with one
    /// shared pool, both with shares (the report's `hotspot`).
    Hotspot,
}

impl Scenario {
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Queue => "queue",
            Scenario::Hotspot => "hotspot",
        }
    }
}

/// One application's load and share in the hotspot scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct AppLoad {
    pub executions: u32,
    pub concurrency: u32,
    pub reserved: u32,
    /// Its ceiling; `None`: the scenario's default ([`Hotspot::max_of`]).
    pub max: Option<u32>,
}

/// The hotspot scenario's two applications.
#[derive(Debug, Clone, PartialEq)]
pub struct Hotspot {
    pub steady: AppLoad,
    pub hot: AppLoad,
    /// How long after the steady application the hot one starts; `None`: the scenario's
    /// default ([`Hotspot::hot_start_ms`]).
    pub hot_start: Option<u64>,
}

impl Default for Hotspot {
    fn default() -> Self {
        Hotspot {
            steady: AppLoad {
                executions: 150,
                concurrency: 6,
                reserved: 4,
                max: None,
            },
            hot: AppLoad {
                executions: 240,
                concurrency: 40,
                reserved: 2,
                max: None,
            },
            hot_start: None,
        }
    }
}

/// The steady application's name (its `app` in every request and the metrics' `Application`).
pub const STEADY: &str = "steady";
/// The hot application's name.
pub const HOT: &str = "hot";

impl Hotspot {
    /// The ceilings on a pool of `budget`: as given, or by default the whole budget for the
    /// steady application, and for the hot one the budget minus what the steady one runs at
    /// once (never below its reservation): it borrows all the rest, and the steady one finds
    /// a slot free whenever it asks.
    pub fn max_of(&self, budget: u32) -> (u32, u32) {
        let steady = self.steady.max.unwrap_or(budget);
        let hot = self.hot.max.unwrap_or_else(|| {
            budget
                .saturating_sub(self.steady.concurrency)
                .max(self.hot.reserved)
                .max(1)
        });
        (steady, hot)
    }

    /// How long after the steady application the hot one starts, in ms: as given, or by
    /// default two of the steady one's rounds (`hold_ms` each), so that the burst lands on an
    /// application already at work, as a hot spot does, rather than on its very first requests.
    pub fn hot_start_ms(&self, hold_ms: u64) -> u64 {
        self.hot_start
            .unwrap_or_else(|| hold_ms.saturating_mul(2).min(MAX_HOT_START_MS))
    }

    /// Checks the shares against a pool's budget; the message names the option to change.
    pub fn check(&self, budget: u32) -> Result<(), String> {
        let (steady, hot) = (&self.steady, &self.hot);
        if steady.reserved + hot.reserved > budget {
            return Err(format!(
                "--steady-reserved {} and --hot-reserved {} add up to more than the budget {budget}",
                steady.reserved, hot.reserved
            ));
        }
        for (flag, app) in [("--steady-max", steady), ("--hot-max", hot)] {
            if let Some(max) = app.max
                && max > budget
            {
                return Err(format!("{flag}: {max} is above the budget {budget}"));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub scenario: Scenario,
    pub hotspot: Hotspot,
    pub executions: u32,
    pub concurrency: u32,
    pub hold_ms: u64,
    pub max_connections: u32,
    pub reserve: u32,
    pub budget: Option<u32>,
    pub kill_probability: f64,
    pub seed: u64,
    /// Seconds after which each run's harness is stopped and started again.
    pub abort_harness_after: Option<u64>,
    pub report: PathBuf,
    pub statemachines: PathBuf,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            scenario: Scenario::Queue,
            hotspot: Hotspot::default(),
            executions: 300,
            concurrency: 40,
            hold_ms: 1000,
            max_connections: 20,
            reserve: 5,
            budget: None,
            kill_probability: 0.0,
            seed: 1,
            abort_harness_after: None,
            report: PathBuf::from(".local/demo/report.json"),
            statemachines: PathBuf::from("statemachines"),
        }
    }
}

impl Options {
    /// The HTML page's path: beside the JSON report, with the extension `.html`.
    pub fn html_path(&self) -> PathBuf {
        html_beside(&self.report)
    }
}

/// `report.json` → `report.html`; a name without `.json` gets `.html` appended.
pub fn html_beside(report: &std::path::Path) -> PathBuf {
    match report.extension() {
        Some(ext) if ext.eq_ignore_ascii_case("json") => report.with_extension("html"),
        _ => {
            let mut name = report.as_os_str().to_owned();
            name.push(".html");
            PathBuf::from(name)
        }
    }
}

/// What the command line asked for.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    Run(Options),
    Help,
}

fn whole<T: std::str::FromStr>(flag: &str, value: &str, low: u64, high: u64) -> Result<T, String> {
    let n: u64 = value
        .parse()
        .map_err(|_| format!("{flag}: not a whole number: {value:?}"))?;
    if n < low || n > high {
        return Err(format!(
            "{flag}: must be between {low} and {high}, got {value}"
        ));
    }
    value
        .parse()
        .map_err(|_| format!("{flag}: out of range: {value}"))
}

/// Parses and checks the options (without the program name).
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Parsed, String> {
    let mut o = Options::default();
    let mut given: Vec<String> = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(Parsed::Help);
        }
        // Both `--flag value` and `--flag=value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let known = [
            "--scenario",
            "--steady-executions",
            "--steady-concurrency",
            "--steady-reserved",
            "--steady-max",
            "--hot-executions",
            "--hot-concurrency",
            "--hot-reserved",
            "--hot-max",
            "--hot-start-ms",
            "--executions",
            "--concurrency",
            "--hold-ms",
            "--max-connections",
            "--reserve",
            "--budget",
            "--kill-probability",
            "--seed",
            "--abort-harness-after",
            "--report",
            "--statemachines",
        ];
        if !known.contains(&flag.as_str()) {
            return Err(format!("unknown option {arg:?}"));
        }
        let value = match inline {
            Some(v) => v,
            None => args.next().ok_or_else(|| format!("{flag} needs a value"))?,
        };
        given.push(flag.clone());
        let h = &mut o.hotspot;
        match flag.as_str() {
            "--scenario" => {
                o.scenario = match value.as_str() {
                    "queue" => Scenario::Queue,
                    "hotspot" => Scenario::Hotspot,
                    _ => {
                        return Err(format!("--scenario: queue or hotspot, got {value:?}"));
                    }
                }
            }
            "--steady-executions" => {
                h.steady.executions = whole(&flag, &value, 1, MAX_EXECUTIONS.into())?
            }
            "--steady-concurrency" => {
                h.steady.concurrency = whole(&flag, &value, 1, MAX_CONCURRENCY.into())?
            }
            "--steady-reserved" => h.steady.reserved = whole(&flag, &value, 0, 10_000)?,
            "--steady-max" => h.steady.max = Some(whole(&flag, &value, 1, 10_000)?),
            "--hot-executions" => {
                h.hot.executions = whole(&flag, &value, 1, MAX_EXECUTIONS.into())?
            }
            "--hot-concurrency" => {
                h.hot.concurrency = whole(&flag, &value, 1, MAX_CONCURRENCY.into())?
            }
            "--hot-reserved" => h.hot.reserved = whole(&flag, &value, 0, 10_000)?,
            "--hot-max" => h.hot.max = Some(whole(&flag, &value, 1, 10_000)?),
            "--hot-start-ms" => h.hot_start = Some(whole(&flag, &value, 0, MAX_HOT_START_MS)?),
            "--executions" => o.executions = whole(&flag, &value, 1, MAX_EXECUTIONS.into())?,
            "--concurrency" => o.concurrency = whole(&flag, &value, 1, MAX_CONCURRENCY.into())?,
            "--hold-ms" => o.hold_ms = whole(&flag, &value, 0, MAX_HOLD_MS)?,
            "--max-connections" => o.max_connections = whole(&flag, &value, 10, 10_000)?,
            "--reserve" => o.reserve = whole(&flag, &value, 0, 10_000)?,
            "--budget" => o.budget = Some(whole(&flag, &value, 1, 10_000)?),
            "--kill-probability" => {
                let p: f64 = value
                    .parse()
                    .ok()
                    .filter(|p: &f64| p.is_finite())
                    .ok_or_else(|| format!("{flag}: not a number: {value:?}"))?;
                if !(0.0..=MAX_KILL_PROBABILITY).contains(&p) {
                    return Err(format!(
                        "{flag}: must be between 0 and {MAX_KILL_PROBABILITY}, got {value}"
                    ));
                }
                o.kill_probability = p;
            }
            "--seed" => o.seed = whole(&flag, &value, 0, u64::MAX)?,
            "--abort-harness-after" => {
                o.abort_harness_after = Some(whole(&flag, &value, 1, MAX_ABORT_AFTER_SECONDS)?)
            }
            "--report" => {
                if value.trim().is_empty() {
                    return Err(format!("{flag}: needs a file path"));
                }
                o.report = PathBuf::from(value);
            }
            "--statemachines" => o.statemachines = PathBuf::from(value),
            _ => unreachable!("checked against the known flags"),
        }
    }
    if let Some(budget) = o.budget
        && budget + o.reserve > o.max_connections
    {
        return Err(format!(
            "--budget: {budget} plus the reserve of {} is more than max_connections ({}); \
             the budget must leave room for administrators",
            o.reserve, o.max_connections
        ));
    }
    if o.reserve >= o.max_connections {
        return Err(format!(
            "--reserve: {} leaves no connections for the pool (max_connections {})",
            o.reserve, o.max_connections
        ));
    }
    check_scenario(&o, &given)?;
    Ok(Parsed::Run(o))
}

/// Options that belong to one scenario only are refused in the other, so that a value is never
/// silently ignored.
fn check_scenario(o: &Options, given: &[String]) -> Result<(), String> {
    let only_queue = [
        "--executions",
        "--concurrency",
        "--kill-probability",
        "--abort-harness-after",
    ];
    let hotspot_only = |flag: &str| flag.starts_with("--steady-") || flag.starts_with("--hot-");
    for flag in given {
        match o.scenario {
            Scenario::Queue if hotspot_only(flag) => {
                return Err(format!("{flag}: only with --scenario hotspot"));
            }
            Scenario::Hotspot if only_queue.contains(&flag.as_str()) => {
                return Err(format!(
                    "{flag}: not with --scenario hotspot (it has --steady-* and --hot-* options)"
                ));
            }
            _ => {}
        }
    }
    if o.scenario == Scenario::Hotspot {
        for (flag, app) in [
            ("--steady-max", &o.hotspot.steady),
            ("--hot-max", &o.hotspot.hot),
        ] {
            if let Some(max) = app.max
                && max < app.reserved
            {
                return Err(format!(
                    "{flag}: {max} is below the reservation {}",
                    app.reserved
                ));
            }
        }
        if let Some(budget) = o.budget {
            o.hotspot.check(budget)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Options, String> {
        match parse(args.iter().map(|s| s.to_string()))? {
            Parsed::Run(o) => Ok(o),
            Parsed::Help => Err("help".into()),
        }
    }

    #[test]
    fn defaults_are_the_documented_load() {
        let o = run(&[]).unwrap();
        assert_eq!((o.executions, o.concurrency, o.hold_ms), (300, 40, 1000));
        assert_eq!((o.max_connections, o.reserve, o.budget), (20, 5, None));
        assert_eq!(o.html_path(), PathBuf::from(".local/demo/report.html"));
    }

    #[test]
    fn values_in_both_spellings_are_read() {
        let o = run(&[
            "--executions=40",
            "--concurrency",
            "12",
            "--hold-ms",
            "0",
            "--budget=4",
            "--kill-probability",
            "0.1",
            "--abort-harness-after=15",
            "--report",
            "out/r",
        ])
        .unwrap();
        assert_eq!(o.abort_harness_after, Some(15));
        assert_eq!((o.executions, o.concurrency, o.hold_ms), (40, 12, 0));
        assert_eq!(o.budget, Some(4));
        assert_eq!(o.kill_probability, 0.1);
        assert_eq!(o.html_path(), PathBuf::from("out/r.html"));
    }

    #[test]
    fn bad_values_are_named_in_the_message() {
        for (args, needle) in [
            (
                &["--executions", "0"][..],
                "--executions: must be between 1 and 1000",
            ),
            (&["--executions", "1001"][..], "between 1 and 1000"),
            (
                &["--concurrency", "41"][..],
                "--concurrency: must be between 1 and 40",
            ),
            (&["--concurrency", "-3"][..], "not a whole number"),
            (&["--hold-ms", "abc"][..], "--hold-ms: not a whole number"),
            (&["--hold-ms", "30001"][..], "between 0 and 30000"),
            (&["--kill-probability", "0.9"][..], "between 0 and 0.5"),
            (&["--kill-probability", "NaN"][..], "not a number"),
            (&["--budget", "16"][..], "more than max_connections"),
            (&["--budget", "0"][..], "between 1 and"),
            (&["--reserve", "20"][..], "leaves no connections"),
            (&["--seed"][..], "--seed needs a value"),
            (
                &["--abort-harness-after", "0"][..],
                "--abort-harness-after: must be between 1 and 600",
            ),
            (&["--abort-harness-after", "2.5"][..], "not a whole number"),
            (&["--report", " "][..], "needs a file path"),
            (&["--fast"][..], "unknown option"),
        ] {
            let err = run(args).unwrap_err();
            assert!(err.contains(needle), "{args:?}: {err}");
        }
    }

    #[test]
    fn the_hotspot_scenario_has_its_own_options() {
        let o = run(&[]).unwrap();
        assert_eq!(o.scenario, Scenario::Queue);
        let o = run(&[
            "--scenario",
            "hotspot",
            "--steady-executions=20",
            "--steady-concurrency",
            "3",
            "--hot-reserved",
            "1",
            "--hot-max",
            "2",
            "--budget",
            "6",
        ])
        .unwrap();
        assert_eq!(o.scenario, Scenario::Hotspot);
        let h = &o.hotspot;
        assert_eq!((h.steady.executions, h.steady.concurrency), (20, 3));
        assert_eq!((h.hot.reserved, h.hot.max), (1, Some(2)));
        assert_eq!(h.max_of(6), (6, 2));
    }

    #[test]
    fn by_default_the_hot_application_leaves_the_steady_one_its_concurrency() {
        let h = Hotspot::default();
        assert_eq!((h.steady.reserved, h.hot.reserved), (4, 2));
        // Budget 11, steady runs 6 at once: hot may hold 5, steady the whole budget.
        assert_eq!(h.max_of(11), (11, 5));
        // Never below the hot application's own reservation.
        assert_eq!(h.max_of(7), (7, 2));
        assert!(h.check(6).is_ok());
        let err = h.check(5).unwrap_err();
        assert!(err.contains("add up to more than the budget 5"), "{err}");
    }

    #[test]
    fn the_hot_application_starts_two_rounds_after_the_steady_one_unless_told() {
        let o = run(&["--scenario", "hotspot"]).unwrap();
        assert_eq!(o.hotspot.hot_start, None);
        assert_eq!(o.hotspot.hot_start_ms(o.hold_ms), 2000);
        assert_eq!(o.hotspot.hot_start_ms(0), 0);
        assert_eq!(o.hotspot.hot_start_ms(MAX_HOLD_MS), MAX_HOT_START_MS);
        let o = run(&["--scenario", "hotspot", "--hold-ms", "500"]).unwrap();
        assert_eq!(o.hotspot.hot_start_ms(o.hold_ms), 1000);
        for (given, ms) in [("0", 0), ("750", 750), ("60000", 60_000)] {
            let o = run(&[
                "--scenario=hotspot",
                "--hold-ms=500",
                "--hot-start-ms",
                given,
            ])
            .unwrap();
            assert_eq!(o.hotspot.hot_start_ms(o.hold_ms), ms, "{given}");
        }
        for (args, needle) in [
            (
                &["--scenario", "hotspot", "--hot-start-ms", "60001"][..],
                "--hot-start-ms: must be between 0 and 60000",
            ),
            (
                &["--scenario", "hotspot", "--hot-start-ms", "-1"][..],
                "--hot-start-ms: not a whole number",
            ),
            (
                &["--hot-start-ms", "100"][..],
                "--hot-start-ms: only with --scenario hotspot",
            ),
        ] {
            let err = run(args).unwrap_err();
            assert!(err.contains(needle), "{args:?}: {err}");
        }
    }

    #[test]
    fn options_of_the_other_scenario_are_refused() {
        for (args, needle) in [
            (
                &["--steady-max", "3"][..],
                "--steady-max: only with --scenario hotspot",
            ),
            (
                &["--scenario", "hotspot", "--executions", "10"][..],
                "--executions: not with --scenario hotspot",
            ),
            (
                &["--kill-probability", "0.1", "--scenario=hotspot"][..],
                "--kill-probability: not with --scenario hotspot",
            ),
            (&["--scenario", "hot"][..], "--scenario: queue or hotspot"),
            (
                &["--scenario", "hotspot", "--hot-max", "1"][..],
                "--hot-max: 1 is below the reservation 2",
            ),
            (
                &["--scenario", "hotspot", "--budget", "5"][..],
                "add up to more than the budget 5",
            ),
            (
                &[
                    "--scenario",
                    "hotspot",
                    "--budget",
                    "8",
                    "--steady-max",
                    "9",
                ][..],
                "--steady-max: 9 is above the budget 8",
            ),
            (
                &["--scenario", "hotspot", "--hot-concurrency", "41"][..],
                "--hot-concurrency: must be between 1 and 40",
            ),
        ] {
            let err = run(args).unwrap_err();
            assert!(err.contains(needle), "{args:?}: {err}");
        }
    }

    #[test]
    fn a_budget_that_fits_next_to_the_reserve_is_accepted() {
        let o = run(&["--max-connections", "30", "--budget", "25"]).unwrap();
        assert_eq!(o.budget, Some(25));
        assert!(run(&["--max-connections", "30", "--budget", "26"]).is_err());
    }
}
