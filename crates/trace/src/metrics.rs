//! The pool's metrics over time, read back from the CloudWatch the functions publish to
//! (`RemainingConnections` and `NoConnectionsLeftError`, dimension `DBName` = pool).

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Statistic};
use serde::Serialize;

/// Periods CloudWatch accepts (high resolution up to 30 s, then whole minutes).
const PERIODS: [i32; 9] = [1, 5, 10, 30, 60, 300, 900, 3600, 86400];
/// At most this many points per series: plenty for a chart a few hundred pixels wide.
const MAX_POINTS: i64 = 360;

/// A time window and the period that gives at most [`MAX_POINTS`] points over it.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub start_ms: i64,
    pub end_ms: i64,
    pub period_seconds: i32,
}

impl Window {
    /// The last `minutes` before `now_ms`, plus a minute ahead so that data points stamped by a
    /// function a moment later (or by a clock slightly ahead) are in.
    /// Times come from the query string, so every step saturates at the ends of `i64`.
    pub fn last(now_ms: i64, minutes: u64) -> Window {
        let span = i64::try_from(minutes)
            .unwrap_or(i64::MAX)
            .saturating_mul(60_000);
        Window::new(now_ms.saturating_sub(span), now_ms.saturating_add(60_000))
    }

    /// From `start_ms` to `end_ms` (an execution's run) with half a minute either side, at
    /// most a day.
    pub fn around(start_ms: i64, end_ms: i64) -> Window {
        let end_ms = end_ms.max(start_ms);
        let start_ms = start_ms.max(end_ms.saturating_sub(86_400_000));
        Window::new(
            start_ms.saturating_sub(30_000),
            end_ms.saturating_add(30_000),
        )
    }

    fn new(start_ms: i64, end_ms: i64) -> Window {
        let seconds = end_ms.saturating_sub(start_ms) / 1000;
        let period_seconds = PERIODS
            .into_iter()
            .find(|p| seconds / i64::from(*p) <= MAX_POINTS)
            .unwrap_or(86400);
        Window {
            start_ms,
            end_ms,
            period_seconds,
        }
    }
}

/// One metric of a pool: `[time ms, minimum, average, maximum, sum]` per period, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    pub metric: &'static str,
    pub unit: &'static str,
    pub points: Vec<[f64; 5]>,
}

pub struct Reader<'a> {
    client: &'a aws_sdk_cloudwatch::Client,
    namespace: &'a str,
}

impl<'a> Reader<'a> {
    pub fn new(client: &'a aws_sdk_cloudwatch::Client, namespace: &'a str) -> Self {
        Reader { client, namespace }
    }

    /// `RemainingConnections` (a gauge) and `NoConnectionsLeftError` (1 per refusal) of a pool.
    pub async fn pool_series(
        &self,
        pool: &str,
        window: &Window,
    ) -> Result<Vec<Series>, aws_sdk_cloudwatch::Error> {
        let mut out = Vec::with_capacity(2);
        for metric in ["RemainingConnections", "NoConnectionsLeftError"] {
            out.push(Series {
                metric,
                unit: "Count",
                points: self.statistics(metric, pool, window).await?,
            });
        }
        Ok(out)
    }

    async fn statistics(
        &self,
        metric: &str,
        pool: &str,
        window: &Window,
    ) -> Result<Vec<[f64; 5]>, aws_sdk_cloudwatch::Error> {
        let answer = self
            .client
            .get_metric_statistics()
            .namespace(self.namespace)
            .metric_name(metric)
            .dimensions(Dimension::builder().name("DBName").value(pool).build())
            .start_time(DateTime::from_millis(window.start_ms))
            .end_time(DateTime::from_millis(window.end_ms))
            .period(window.period_seconds)
            .statistics(Statistic::Minimum)
            .statistics(Statistic::Average)
            .statistics(Statistic::Maximum)
            .statistics(Statistic::Sum)
            .send()
            .await?;
        let mut points: Vec<[f64; 5]> = answer
            .datapoints()
            .iter()
            .filter_map(|p| {
                let t = p.timestamp()?.to_millis().ok()? as f64;
                Some([
                    t,
                    p.minimum()?,
                    p.average()?,
                    p.maximum()?,
                    p.sum().unwrap_or(0.0),
                ])
            })
            .collect();
        points.sort_by(|a, b| a[0].total_cmp(&b[0]));
        Ok(points)
    }

    /// The pools that have published `RemainingConnections`, sorted.
    pub async fn pools(&self) -> Result<Vec<String>, aws_sdk_cloudwatch::Error> {
        let mut pools: Vec<String> = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let answer = self
                .client
                .list_metrics()
                .namespace(self.namespace)
                .metric_name("RemainingConnections")
                .set_next_token(next.take())
                .send()
                .await?;
            for metric in answer.metrics() {
                for d in metric.dimensions() {
                    if d.name() == Some("DBName")
                        && let Some(v) = d.value()
                        && !pools.iter().any(|p| p == v)
                    {
                        pools.push(v.to_owned());
                    }
                }
            }
            match answer.next_token() {
                Some(token) if !token.is_empty() && pools.len() < 1000 => {
                    next = Some(token.to_owned())
                }
                _ => break,
            }
        }
        pools.sort();
        Ok(pools)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_pick_the_smallest_period_within_the_point_budget() {
        let w = Window::last(10_000_000, 1);
        assert_eq!((w.start_ms, w.end_ms), (9_940_000, 10_060_000));
        assert_eq!(w.period_seconds, 1); // 120 s
        assert_eq!(Window::last(0, 15).period_seconds, 5); // 960 s
        assert_eq!(Window::last(0, 60).period_seconds, 30); // 3660 s
        assert_eq!(Window::last(0, 24 * 60).period_seconds, 300);
        // A short execution gets one-second periods and a margin either side.
        let w = Window::around(100_000, 101_500);
        assert_eq!(
            (w.start_ms, w.end_ms, w.period_seconds),
            (70_000, 131_500, 1)
        );
        assert_eq!(
            Window::around(0, 10 * 86_400_000).start_ms,
            9 * 86_400_000 - 30_000
        );
    }

    /// Bounds from the query string at the ends of the number line give a window, not a
    /// panic: the margins and the day's cap saturate, and the period stays one CloudWatch takes.
    #[test]
    fn extreme_bounds_give_a_window() {
        let extremes = [
            i64::MIN,
            i64::MIN + 1,
            -86_400_000,
            -1,
            0,
            1,
            i64::MAX - 1,
            i64::MAX,
        ];
        for start in extremes {
            for end in extremes {
                let w = Window::around(start, end);
                assert!(w.start_ms <= w.end_ms, "{start}..{end}: {w:?}");
                assert!(
                    w.end_ms - w.start_ms <= 86_400_000 + 60_000,
                    "{start}..{end}: {w:?}"
                );
                assert!(PERIODS.contains(&w.period_seconds));
            }
            let w = Window::last(start, 24 * 60);
            assert!(w.start_ms <= w.end_ms, "{start}: {w:?}");
            let w = Window::last(start, u64::MAX);
            assert!(w.start_ms <= w.end_ms, "{start}: {w:?}");
        }
    }
}
