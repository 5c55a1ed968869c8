//! `leasehold-local`: runs the stack of a SAM template on 127.0.0.1 until interrupted.
//! `scripts/local-stack.sh up` is the usual way to start it.
//!
//! `leasehold-local template-facts` prints what the template reader knows as JSON instead
//! (see [`leasehold_local::facts`]); `scripts/checks/template_check.py` reads it.

use leasehold_local::{Retention, Stack, StackOptions, read_env_file};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

const USAGE: &str = "usage: leasehold-local [options]
       leasehold-local template-facts [--template PATH] [--events DIR]
  --template PATH         SAM template (default template.yaml)
  --env-file PATH         local services' environment (default .local/env)
  --port N                port on 127.0.0.1 (default 0: any free port)
  --stack-name NAME       stack name (default leasehold)
  --parameter KEY=VALUE   template parameter override (repeatable)
  --binaries DIR          handler binaries (default target/debug)
  --state-dir DIR         logs and files of the stack (default .local/stack)
  --kill FUNCTION=P       kill a container mid-invocation with probability P (repeatable)
  --lose-answers FUNCTION=P
                          a synchronous caller gets Lambda.ServiceException at once with
                          probability P while the invocation runs on (repeatable)
  --function-env FUNCTION:KEY=VALUE
                          an extra environment variable for a function, e.g. a fault knob
                          (repeatable)
  --seed N                seed of fault injection and ids (default 1)
  --concurrency N         containers per function without ReservedConcurrentExecutions (default 64)
  --idle-seconds N        stop containers idle this long (default 60)
  --keep-executions N     finished executions kept per state machine, with their histories;
                          older ones are forgotten (default 1000, at least 1)
  --log-max-bytes N       size at which a container's log file is rotated (default 10485760,
                          at least 1024)
  --log-backups N         rotated log files kept per container (default 3)
  --mock-config PATH      mocked service integrations in Step Functions Local's format, used
                          by executions started with STATE_MACHINE_ARN#TEST_CASE (default:
                          the file SFN_MOCK_CONFIG names, if set)
  --time-scale F          Wait states, Retry intervals and timeouts take F times as long,
                          0 < F <= 1; history timestamps stay as AWS would space them (default 1)
  --write-env PATH        write the stack's endpoints and ARNs as KEY=VALUE lines
template-facts prints the template's facts as JSON (with --events, the rules each sample
event in DIR matches) and exits.";

/// `template-facts [--template PATH] [--events DIR]`.
fn template_facts(mut args: impl Iterator<Item = String>) -> Result<(), String> {
    let mut template = PathBuf::from("template.yaml");
    let mut events = None;
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--template" => template = value.into(),
            "--events" => events = Some(PathBuf::from(value)),
            other => return Err(format!("template-facts: unknown option {other}\n{USAGE}")),
        }
    }
    let facts = leasehold_local::facts::template_facts(&template, events.as_deref())
        .map_err(|e| e.to_string())?;
    println!("{facts:#}");
    Ok(())
}

struct Args {
    options: StackOptions,
    env_file: PathBuf,
    port: u16,
    write_env: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut template = PathBuf::from("template.yaml");
    let mut env_file = PathBuf::from(".local/env");
    let mut port = 0u16;
    let mut stack_name = "leasehold".to_owned();
    let mut parameters = HashMap::new();
    let mut binaries = PathBuf::from("target/debug");
    let mut state_dir = PathBuf::from(".local/stack");
    let mut kill = HashMap::new();
    let mut lose_answers = HashMap::new();
    let mut function_env: HashMap<String, std::collections::BTreeMap<String, String>> =
        HashMap::new();
    let mut seed = 1u64;
    let mut concurrency = leasehold_local::lambda::DEFAULT_CONCURRENCY;
    let mut idle = leasehold_local::lambda::DEFAULT_IDLE_SECONDS;
    let mut write_env = None;
    let mut retention = Retention::default();
    let mut mock_config = std::env::var_os("SFN_MOCK_CONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let mut time_scale = 1.0f64;
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let number = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: not a whole number: {v}"))
        };
        let pair = |v: &str| {
            v.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| format!("{flag}: expected KEY=VALUE, got {v}"))
        };
        match flag.as_str() {
            "--template" => template = value.into(),
            "--env-file" => env_file = value.into(),
            "--port" => {
                port = u16::try_from(number(&value)?)
                    .map_err(|_| format!("--port: out of range: {value}"))?
            }
            "--stack-name" => stack_name = value,
            "--parameter" => {
                let (k, v) = pair(&value)?;
                parameters.insert(k, v);
            }
            "--binaries" => binaries = value.into(),
            "--state-dir" => state_dir = value.into(),
            "--kill" | "--lose-answers" => {
                let (k, v) = pair(&value)?;
                let p: f64 = v
                    .parse()
                    .map_err(|_| format!("{flag}: not a probability: {v}"))?;
                if !(0.0..=1.0).contains(&p) {
                    return Err(format!(
                        "{flag}: the probability must be between 0 and 1, got {v}"
                    ));
                }
                if flag == "--kill" {
                    kill.insert(k, p);
                } else {
                    lose_answers.insert(k, p);
                }
            }
            "--function-env" => {
                let (function, assignment) = value.split_once(':').ok_or_else(|| {
                    format!("--function-env: expected FUNCTION:KEY=VALUE, got {value}")
                })?;
                let (k, v) = pair(assignment)?;
                function_env
                    .entry(function.to_owned())
                    .or_default()
                    .insert(k, v);
            }
            "--seed" => seed = number(&value)?,
            "--concurrency" => concurrency = number(&value)?.max(1) as usize,
            "--idle-seconds" => idle = number(&value)?,
            "--write-env" => write_env = Some(value.into()),
            "--mock-config" => mock_config = Some(value.into()),
            "--time-scale" => {
                time_scale = value
                    .parse::<f64>()
                    .ok()
                    .filter(|f| *f > 0.0 && *f <= 1.0)
                    .ok_or_else(|| {
                        format!("--time-scale: a number above 0 and at most 1, got {value}")
                    })?
            }
            "--keep-executions" => {
                retention.finished_executions = usize::try_from(number(&value)?)
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| format!("--keep-executions: must be at least 1, got {value}"))?
            }
            "--log-max-bytes" => {
                retention.logs.max_bytes = Some(number(&value)?)
                    .filter(|n| *n >= leasehold_local::logfile::MIN_LOG_MAX_BYTES)
                    .ok_or_else(|| format!("--log-max-bytes: must be at least 1024, got {value}"))?
            }
            "--log-backups" => {
                retention.logs.backups = usize::try_from(number(&value)?)
                    .map_err(|_| format!("--log-backups: out of range: {value}"))?
            }
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    let env = read_env_file(&env_file)
        .map_err(|e| format!("{e} (start the local services: scripts/dev-env.sh up)"))?;
    Ok(Args {
        options: StackOptions {
            template,
            env,
            stack_name,
            parameters,
            binaries,
            state_dir,
            kill,
            lose_answers,
            function_env,
            seed,
            concurrency,
            idle_timeout: Duration::from_secs(idle),
            retention,
            mock_config,
            time_scale,
        },
        env_file,
        port,
        write_env,
    })
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("leasehold_local=info")),
        )
        .with_writer(std::io::stderr)
        .init();
    if std::env::args().nth(1).as_deref() == Some("template-facts") {
        if let Err(e) = template_facts(std::env::args().skip(2)) {
            eprintln!("leasehold-local: {e}");
            std::process::exit(1);
        }
        return;
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("leasehold-local: {e}");
            std::process::exit(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "leasehold-local: cannot listen on 127.0.0.1:{}: {e}",
                args.port
            );
            std::process::exit(1);
        }
    };
    let stack = match Stack::start(args.options, listener).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("leasehold-local: {e}");
            std::process::exit(1);
        }
    };
    let mut lines: Vec<String> = vec![format!("LOCAL_STACK_PID={}", std::process::id())];
    lines.extend(
        stack
            .env_lines()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}")),
    );
    if let Some(path) = &args.write_env {
        let text = format!(
            "# Written by leasehold-local (environment from {}); load with: set -a; . {}; set +a\n{}\n",
            args.env_file.display(),
            path.display(),
            lines.join("\n")
        );
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("leasehold-local: cannot write {}: {e}", path.display());
        }
    }
    for line in &lines {
        println!("{line}");
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
    }
    eprintln!("leasehold-local: stopping");
    stack.shutdown().await;
}
