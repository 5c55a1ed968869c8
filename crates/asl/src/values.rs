//! Helpers for JSON values as AWS renders them: Java-style `toString`, rounding, compact
//! serialization, ISO-8601 timestamps and the payload size quota.

use serde_json::Value;

/// The largest payload a state may produce (256 KiB, UTF-8 bytes of its JSON text).
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

/// Compact JSON text (`{"a":1}`), the form AWS uses in history details.
pub fn to_json(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_string())
}

/// How a value prints inside `States.Format`: Java's `toString` of the parsed JSON.
pub fn java_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => {
            let parts: Vec<String> = a.iter().map(java_string).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Object(o) => {
            let parts: Vec<String> = o
                .iter()
                .map(|(k, v)| format!("{k}={}", java_string(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
    }
}

/// Java's `Math.round`: half up towards positive infinity.
pub fn math_round(x: f64) -> i64 {
    (x + 0.5).floor() as i64
}

/// The JSON type name AWS uses in messages.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Days since 1970-01-01 for a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Formats epoch milliseconds as `2024-01-02T03:04:05.678Z`.
pub fn iso_millis(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

/// Parses an ISO-8601 extended date-time with an offset (`Z` or `±hh:mm`), as Wait's
/// `Timestamp` requires. Returns epoch milliseconds.
pub fn parse_iso(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = s.get(from..from + len)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    let (y, mo, d, h, mi) = (num(0, 4)?, num(5, 2)?, num(8, 2)?, num(11, 2)?, num(14, 2)?);
    if b[16] != b':' {
        return None;
    }
    let sec = num(17, 2)?;
    let mut i = 19;
    let mut frac_ms = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
        let digits = &s[start..i.min(start + 3)];
        frac_ms = digits.parse::<i64>().ok()? * 10i64.pow(3 - digits.len() as u32);
    }
    let offset_min = match b.get(i)? {
        b'Z' if i + 1 == b.len() => 0,
        c @ (b'+' | b'-') => {
            if b.len() != i + 6 || b[i + 3] != b':' {
                return None;
            }
            let oh = num(i + 1, 2)?;
            let om = num(i + 4, 2)?;
            let v = oh * 60 + om;
            if *c == b'-' { -v } else { v }
        }
        _ => return None,
    };
    let month_len = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if !(1..=12).contains(&mo) || h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let max_d = if mo == 2 && leap {
        29
    } else {
        month_len[(mo - 1) as usize]
    };
    if d < 1 || d > max_d {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    Some((days * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60) * 1000 + frac_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn iso_round_trip() {
        let ms = parse_iso("2016-03-14T01:59:00Z").unwrap();
        assert_eq!(iso_millis(ms), "2016-03-14T01:59:00.000Z");
        assert_eq!(
            parse_iso("2016-03-14T02:59:00+01:00"),
            parse_iso("2016-03-14T01:59:00Z")
        );
        assert_eq!(
            parse_iso("2016-03-14T01:59:00.123456789Z").map(|m| m % 1000),
            Some(123)
        );
        for bad in [
            "2016-13-05T21:29:29Z",
            "05-12-2016T21:29:29Z",
            "2016-12-05T25:29:29Z",
            "2016-12-05 21:29:29Z",
            "2016-12-05T21:29:29",
        ] {
            assert_eq!(parse_iso(bad), None, "{bad}");
        }
    }

    #[test]
    fn java_strings() {
        assert_eq!(
            java_string(&json!({"a": 1, "b": [1, "x"]})),
            "{a=1, b=[1, x]}"
        );
        assert_eq!(math_round(-2.5), -2);
        assert_eq!(math_round(2.5), 3);
    }
}
