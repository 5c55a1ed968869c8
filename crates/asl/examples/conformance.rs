//! Conformance runner: executes every recorded AWS case under `DIR/cases`, normalizes the
//! produced history the way the data's README describes, compares outcome and history, and
//! prints a per-category table and `conformance: N passed, M failed`.
//!
//! Usage: `conformance DIR [RESULT_JSON]`

use leasehold_asl::clock::{SeededRandom, VirtualClock};
use leasehold_asl::invoker::NoTasks;
use leasehold_asl::{AbortHandle, ExecutionConfig, Services, execute};
use regex_lite::Regex;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const REGION: &str = "us-east-1";
const ACCOUNT: &str = "111111111111";
const MACHINE: &str = "LhConfMachineQz";
const EXECUTION: &str = "LhConfExecutionQz";
const ROLE: &str = "arn:aws:iam::111111111111:role/LhConfRoleQz";

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: conformance DIR [RESULT_JSON]");
        std::process::exit(2);
    };
    let result_path = args.next();
    let dir = PathBuf::from(dir);
    let cases_dir = dir.join("cases");
    if !cases_dir.is_dir() {
        eprintln!("conformance: no cases folder at {}", cases_dir.display());
        std::process::exit(2);
    }
    let mut files = Vec::new();
    collect(&cases_dir, &mut files);
    files.sort();
    let mut per_cat: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut results = Vec::new();
    let (mut passed, mut failed) = (0usize, 0usize);
    for f in &files {
        let cat = f
            .parent()
            .and_then(|p| p.file_name())
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        let text = std::fs::read_to_string(f).unwrap_or_default();
        let case: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let ql = case["query_language"].as_str().unwrap_or("?").to_string();
        let verdict = run_case(&case);
        let entry = per_cat.entry(format!("{cat} ({ql})")).or_default();
        let name = f.strip_prefix(&dir).unwrap_or(f).display().to_string();
        match verdict {
            Ok(()) => {
                passed += 1;
                entry.0 += 1;
                results.push(
                    json!({"case": name, "category": cat, "query_language": ql, "result": "pass"}),
                );
            }
            Err(diff) => {
                failed += 1;
                entry.1 += 1;
                results.push(json!({"case": name, "category": cat, "query_language": ql, "result": "fail", "first_difference": diff}));
            }
        }
    }
    println!("{:<34} {:>6} {:>6}", "category", "passed", "failed");
    for (k, (p, f)) in &per_cat {
        println!("{k:<34} {p:>6} {f:>6}");
    }
    if let Some(rp) = result_path {
        let doc = json!({"passed": passed, "failed": failed, "cases": results});
        if let Err(e) = std::fs::write(&rp, serde_json::to_string_pretty(&doc).unwrap_or_default())
        {
            eprintln!("conformance: cannot write {rp}: {e}");
        }
    }
    println!("conformance: {passed} passed, {failed} failed");
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                collect(&p, out);
            } else if p.extension().is_some_and(|x| x == "json") {
                out.push(p);
            }
        }
    }
}

fn run_case(case: &Value) -> Result<(), String> {
    let (machine, diags) = leasehold_asl::validate::load_value(&case["definition"]);
    let Some(machine) = machine else {
        return Err(format!(
            "definition rejected: {}",
            diags
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        ));
    };
    let norm = &case["normalization"];
    let exec_name = match norm["execution_name_placeholder"].as_str() {
        Some(_) => EXECUTION.to_string(),
        None => EXECUTION.to_string(),
    };
    let input_text = case["input_text"].as_str().unwrap_or("{}").to_string();
    let mut cfg = ExecutionConfig::new(REGION, ACCOUNT, MACHINE, &exec_name, &input_text);
    cfg.role_arn = ROLE.to_string();
    // Recorded before AWS's November 2024 change of Distributed Map history links?
    let date = case["source"]["recorded_date"].as_str().unwrap_or("");
    let (dd, mm, yyyy) = (date.get(0..2), date.get(3..5), date.get(6..10));
    if let (Some(d), Some(m), Some(y)) = (dd, mm, yyyy) {
        let key = format!("{y}{m}{d}");
        cfg.legacy_map_run_links = key.as_str() < "20241101";
    }
    let clock = VirtualClock::new(1_700_000_000_000);
    let services = Services {
        clock: Arc::new(clock.clone()),
        random: Arc::new(SeededRandom::new(7)),
        invoker: Arc::new(NoTasks),
        observer: None,
    };
    let outcome = clock
        .block_on(execute(
            Arc::new(machine),
            cfg,
            services,
            AbortHandle::new(),
        ))
        .ok_or("execution blocked forever")?;
    let events: Vec<Value> = outcome.history.iter().map(|e| e.to_json()).collect();
    let got = normalize(Value::Array(events), case);
    let want = &case["history"];
    let expected = &case["expected"];
    // Outcome.
    if outcome.status.as_str() != expected["status"].as_str().unwrap_or("") {
        return Err(format!(
            "status: got {} ({:?}: {:?}), want {}",
            outcome.status.as_str(),
            outcome.error,
            outcome.cause,
            expected["status"]
        ));
    }
    let norm_text = |s: &Option<String>| -> Value {
        match s {
            None => Value::Null,
            Some(s) => normalize(json!({"cause": s}), case)["cause"].clone(),
        }
    };
    if norm_text(&outcome.error) != expected["error"] {
        return Err(format!(
            "error: got {:?}, want {}",
            outcome.error, expected["error"]
        ));
    }
    let got_cause = cause_normalize(norm_text(&outcome.cause));
    if got_cause != expected["cause"] {
        return Err(format!(
            "cause: got {got_cause}, want {}",
            expected["cause"]
        ));
    }
    if let Some(out) = &outcome.output {
        let out = normalize(out.clone(), case);
        if !loose_eq(&out, &expected["output"]) {
            return Err(format!("output: got {out}, want {}", expected["output"]));
        }
    }
    compare_histories(&got, want)
}

/// The README's normalization, applied to our events (or a single value).
fn normalize(v: Value, case: &Value) -> Value {
    let norm = &case["normalization"];
    let specific: Vec<Value> = norm["test_specific"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut v = parse_json_strings(v);
    if specific
        .iter()
        .any(|r| r["kind"] == "parallel_branch_events_normalized")
        && let Value::Array(events) = &mut v
    {
        parallel_normalize(events);
    }
    timestamp_keys(&mut v);
    let mut uuids: Vec<String> = Vec::new();
    uuid_ids(&mut v, &mut uuids);
    // Causes quoting JSON.
    let mut quoted: Vec<String> = Vec::new();
    find_quoted(&v, &mut quoted);
    let mut text = serde_json::to_string(&v).unwrap_or_default();
    for (i, q) in quoted.iter().enumerate() {
        let esc = serde_json::to_string(q).unwrap_or_default();
        let esc = &esc[1..esc.len() - 1];
        text = text.replace(esc, &format!("<json-input:{}>", i + 1));
    }
    let date = Regex::new(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}(:?\d{2})?)")
        .expect("regex");
    // Only real date-times (a valid month, hour, ...) are rewritten.
    text = date
        .replace_all(&text, |c: &regex_lite::Captures<'_>| {
            if is_iso(&c[0]) {
                "date".to_string()
            } else {
                c[0].to_string()
            }
        })
        .into_owned();
    text = text.replace(ROLE, "snf_role_arn");
    text = text
        .replace(ACCOUNT, "111111111111")
        .replace(REGION, "<region>");
    text = text.replace("arn:aws:", "arn:<partition>:");
    let maprun = Regex::new(r"mapRun:<ArnPart_0idx>/([^:\\]+):([0-9a-f-]{36})").expect("regex");
    text = text.replace(MACHINE, "<ArnPart_0idx>");
    if let Some(p) = norm["execution_name_placeholder"].as_str() {
        text = text.replace(EXECUTION, p);
    }
    text = maprun
        .replace_all(&text, |c: &regex_lite::Captures<'_>| {
            let label = &c[1];
            let is_uuid = label.len() == 36 && label.chars().filter(|x| *x == '-').count() == 4;
            format!(
                "mapRun:<ArnPart_0idx>/{}:<MapRunArnPart1_0idx>",
                if is_uuid {
                    "<MapRunArnPart0_0idx>"
                } else {
                    label
                }
            )
        })
        .into_owned();
    for r in &specific {
        if r["kind"] == "regex"
            && let (Some(val), Some(rep)) = (r["value"].as_str(), r["replacement"].as_str())
            && !val.starts_with('<')
        {
            text = text.replace(val, rep);
        }
    }
    let mut v: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("normalization broke the document ({e}): {text}");
            Value::Null
        }
    };
    for r in &specific {
        if r["kind"] == "jsonpath"
            && let (Some(p), Some(rep)) = (r["jsonpath"].as_str(), r["replacement"].as_str())
        {
            let key = p.rsplit('.').next().unwrap_or("").to_string();
            set_key(&mut v, &key, rep);
        }
    }
    v
}

fn cause_normalize(v: Value) -> Value {
    v
}

fn set_key(v: &mut Value, key: &str, rep: &str) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if k == key {
                    *x = Value::String(rep.to_string());
                } else {
                    set_key(x, key, rep);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| set_key(x, key, rep)),
        _ => {}
    }
}

fn parse_json_strings(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, x)| {
                    let x = match x {
                        Value::String(s) if s.starts_with('{') => {
                            match serde_json::from_str::<Value>(&s) {
                                Ok(p) => p,
                                Err(_) => Value::String(s),
                            }
                        }
                        other => parse_json_strings(other),
                    };
                    (k, x)
                })
                .collect::<Map<String, Value>>(),
        ),
        Value::Array(a) => Value::Array(
            a.into_iter()
                .map(|x| match x {
                    Value::String(s) => Value::String(s),
                    other => parse_json_strings(other),
                })
                .collect(),
        ),
        other => other,
    }
}

fn is_iso(s: &str) -> bool {
    leasehold_asl::values::parse_iso(s).is_some()
}

fn timestamp_keys(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                let kl = k.to_lowercase();
                if k == "timestamp" {
                    *x = Value::String("timestamp".into());
                } else if kl.contains("timestamp") || k == "creationTime" || k == "ingestionTime" {
                    if !x.as_str().is_some_and(is_iso) {
                        *x = Value::String("timestamp".into());
                    }
                } else {
                    timestamp_keys(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(timestamp_keys),
        _ => {}
    }
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                *c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

fn uuid_ids(v: &mut Value, seen: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if k.to_lowercase().ends_with("id")
                    && let Some(s) = x.as_str().filter(|s| is_uuid(s))
                {
                    let s = s.to_string();
                    let n = match seen.iter().position(|y| *y == s) {
                        Some(i) => i + 1,
                        None => {
                            seen.push(s);
                            seen.len()
                        }
                    };
                    *x = Value::String(format!("<uuid:{n}>"));
                    continue;
                }
                uuid_ids(x, seen);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| uuid_ids(x, seen)),
        _ => {}
    }
}

fn find_quoted(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "cause"
                    && let Some(s) = x.as_str()
                {
                    quoted_json(s, out);
                }
                find_quoted(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| find_quoted(x, out)),
        _ => {}
    }
}

fn quoted_json(s: &str, out: &mut Vec<String>) {
    // `.*'({.*})'`: the last `'{...}'` with greedy inner match.
    let Some(end) = s.rfind("}'") else { return };
    let Some(start) = s[..end].find("'{") else {
        return;
    };
    let text = &s[start + 1..end + 1];
    if serde_json::from_str::<Value>(text).is_ok() && !out.iter().any(|x| x == text) {
        out.push(text.to_string());
    }
}

fn parallel_normalize(events: &mut Vec<Value>) {
    let mut in_window = false;
    let mut window: Vec<Value> = Vec::new();
    let mut start = 0usize;
    let mut i = 0usize;
    while i < events.len() {
        let t = events[i]["type"].as_str().unwrap_or("").to_string();
        if matches!(
            t.as_str(),
            "ParallelStateSucceeded"
                | "ParallelStateAborted"
                | "ParallelStateExited"
                | "ParallelStateFailed"
        ) {
            let mut w = window.clone();
            w.sort_by_key(|e| serde_json::to_string(e).unwrap_or_default());
            let removed = i - start;
            events.splice(start..i, w.clone());
            i = i + w.len() - removed;
            in_window = false;
        } else if t == "ParallelStateStarted" {
            in_window = true;
            window.clear();
            start = i + 1;
        } else if in_window {
            events[i]["id"] = json!([0]);
            events[i]["previousEventId"] = json!(0);
            window.push(events[i].clone());
        }
        i += 1;
    }
}

/// Equality where JSON text compares by its parsed value.
fn loose_eq(a: &Value, b: &Value) -> bool {
    leasehold_asl::intrinsics::json_eq_with(a, b, &loose_leaf)
}

fn loose_leaf(a: &Value, b: &Value) -> bool {
    if a == b {
        return true;
    }
    match (a, b) {
        (Value::String(s), other) | (other, Value::String(s)) if !other.is_string() => {
            serde_json::from_str::<Value>(s).is_ok_and(|p| loose_eq(&p, other))
        }
        (Value::String(x), Value::String(y)) => {
            match (
                serde_json::from_str::<Value>(x),
                serde_json::from_str::<Value>(y),
            ) {
                (Ok(p), Ok(q)) => p == q,
                _ => false,
            }
        }
        _ => false,
    }
}

fn strip_ids(e: &Value) -> Value {
    let mut e = e.clone();
    if let Value::Object(m) = &mut e {
        m.remove("id");
        m.remove("previousEventId");
        m.remove("timestamp");
    }
    e
}

/// Compares event lists; events inside Parallel windows compare as a multiset without ids.
fn compare_histories(got: &Value, want: &Value) -> Result<(), String> {
    let (Some(g), Some(w)) = (got.as_array(), want.as_array()) else {
        return Err("history is not a list".into());
    };
    if g.len() != w.len() {
        let gt: Vec<&str> = g.iter().map(|e| e["type"].as_str().unwrap_or("")).collect();
        let wt: Vec<&str> = w.iter().map(|e| e["type"].as_str().unwrap_or("")).collect();
        return Err(format!(
            "history length: got {} {gt:?}, want {} {wt:?}",
            g.len(),
            w.len()
        ));
    }
    let mut i = 0;
    while i < g.len() {
        let t = w[i]["type"].as_str().unwrap_or("");
        if t == "ParallelStateStarted" && w[i]["type"] == g[i]["type"] {
            // Find the window end on the expected side (matching nesting).
            let mut depth = 0;
            let mut j = i + 1;
            while j < w.len() {
                let tj = w[j]["type"].as_str().unwrap_or("");
                if tj == "ParallelStateStarted" {
                    depth += 1;
                } else if matches!(
                    tj,
                    "ParallelStateSucceeded"
                        | "ParallelStateFailed"
                        | "ParallelStateExited"
                        | "ParallelStateAborted"
                ) {
                    if depth == 0 {
                        break;
                    }
                    if tj != "ParallelStateSucceeded" {
                        depth -= 1;
                    }
                }
                j += 1;
            }
            if !loose_eq(&g[i], &w[i]) {
                return Err(format!("event {}: got {}, want {}", i + 1, g[i], w[i]));
            }
            let mut pool: Vec<Value> = g[i + 1..j.min(g.len())].iter().map(strip_ids).collect();
            for (k, wk) in w.iter().enumerate().take(j).skip(i + 1) {
                let we = strip_ids(wk);
                match pool.iter().position(|x| loose_eq(x, &we)) {
                    Some(p) => {
                        pool.remove(p);
                    }
                    None => {
                        return Err(format!(
                            "parallel window event {}: want {} not produced",
                            k + 1,
                            wk
                        ));
                    }
                }
            }
            i = j;
            continue;
        }
        if !loose_eq(&g[i], &w[i]) {
            return Err(format!("event {}: got {}, want {}", i + 1, g[i], w[i]));
        }
        i += 1;
    }
    Ok(())
}
