//! Command-line options of `leasehold-demo`, checked before anything runs: a bad value is a
//! plain message and exit status 2, never a stack trace.

use std::path::PathBuf;

pub const USAGE: &str = "usage: leasehold-demo [options]   (normally run by scripts/demo.sh)
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
                          (default statemachines)";

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

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
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
        match flag.as_str() {
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
    Ok(Parsed::Run(o))
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
    fn a_budget_that_fits_next_to_the_reserve_is_accepted() {
        let o = run(&["--max-connections", "30", "--budget", "25"]).unwrap();
        assert_eq!(o.budget, Some(25));
        assert!(run(&["--max-connections", "30", "--budget", "26"]).is_err());
    }
}
