//! Percentiles and other small sums over measured values.

use serde::Serialize;

/// The nearest-rank percentile (`p` in 0..=100) of unsorted values; `None` when empty.
pub fn percentile(values: &[i64], p: f64) -> Option<i64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

pub fn mean(values: &[i64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<i64>() as f64 / values.len() as f64)
}

/// p50 / p95 / p99 / max of a set of durations in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Spread {
    pub count: usize,
    pub p50_ms: Option<i64>,
    pub p95_ms: Option<i64>,
    pub p99_ms: Option<i64>,
    pub max_ms: Option<i64>,
    pub mean_ms: Option<f64>,
}

impl Spread {
    pub fn of(values: &[i64]) -> Self {
        Spread {
            count: values.len(),
            p50_ms: percentile(values, 50.0),
            p95_ms: percentile(values, 95.0),
            p99_ms: percentile(values, 99.0),
            max_ms: values.iter().copied().max(),
            mean_ms: mean(values).map(round1),
        }
    }
}

/// One decimal place, for figures people read.
pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Two decimal places.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<i64> = (1..=100).rev().collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 95.0), Some(95));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[10, 20, 30, 40], 50.0), Some(20));
    }

    #[test]
    fn spread_of_durations() {
        let s = Spread::of(&[300, 100, 200]);
        assert_eq!((s.count, s.p50_ms, s.max_ms), (3, Some(200), Some(300)));
        assert_eq!(s.mean_ms, Some(200.0));
        assert_eq!(Spread::of(&[]).p99_ms, None);
    }
}
