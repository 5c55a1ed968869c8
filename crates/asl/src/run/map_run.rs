//! The report of a Distributed Map run kept up to date while it runs (see
//! [`crate::map_run`]).

use crate::clock::Clock;
use crate::history::History;
use crate::map_run::{MapRunCounts, MapRunReport, MapRunStatus};
use std::sync::Arc;

/// Keeps a run's report up to date and tells the execution's observer of each change.
pub(super) struct MapRunTracker {
    history: History,
    clock: Arc<dyn Clock>,
    /// Items per child execution (1 each without an `ItemBatcher`).
    sizes: Vec<u64>,
    report: MapRunReport,
}

/// The limits a run was started with.
pub(super) struct MapRunLimits {
    pub max_concurrency: u64,
    pub tolerated_failure_count: Option<u64>,
    pub tolerated_failure_percentage: Option<f64>,
}

impl MapRunTracker {
    /// A run of `sizes.len()` child executions, all pending; reported at once.
    pub(super) fn start(
        history: History,
        clock: Arc<dyn Clock>,
        arn: String,
        limits: MapRunLimits,
        sizes: Vec<u64>,
    ) -> Self {
        let items: u64 = sizes.iter().sum();
        let executions = sizes.len() as u64;
        let report = MapRunReport {
            arn,
            status: MapRunStatus::Running,
            max_concurrency: limits.max_concurrency,
            tolerated_failure_count: limits.tolerated_failure_count.unwrap_or(0),
            tolerated_failure_percentage: limits.tolerated_failure_percentage.unwrap_or(0.0),
            items: MapRunCounts {
                pending: items,
                total: items,
                ..MapRunCounts::default()
            },
            executions: MapRunCounts {
                pending: executions,
                total: executions,
                ..MapRunCounts::default()
            },
            start_millis: clock.now_millis(),
            stop_millis: None,
        };
        let tracker = MapRunTracker {
            history,
            clock,
            sizes,
            report,
        };
        tracker.tell();
        tracker
    }

    fn tell(&self) {
        self.history.map_run(&self.report);
    }

    /// Child execution `i` started.
    pub(super) fn started(&mut self, i: usize) {
        let n = self.size(i);
        for (c, n) in [
            (&mut self.report.items, n),
            (&mut self.report.executions, 1),
        ] {
            c.pending = c.pending.saturating_sub(n);
            c.running += n;
        }
        self.tell();
    }

    /// Child execution `i` ended, well or not.
    pub(super) fn finished(&mut self, i: usize, succeeded: bool) {
        let n = self.size(i);
        for (c, n) in [
            (&mut self.report.items, n),
            (&mut self.report.executions, 1),
        ] {
            c.running = c.running.saturating_sub(n);
            if succeeded {
                c.succeeded += n;
            } else {
                c.failed += n;
            }
        }
        self.tell();
    }

    /// The run ended with `status`: the children still running were stopped.
    pub(super) fn end(&mut self, status: MapRunStatus) {
        if self.report.status != MapRunStatus::Running {
            return;
        }
        for c in [&mut self.report.items, &mut self.report.executions] {
            c.aborted += c.running;
            c.running = 0;
        }
        self.report.status = status;
        self.report.stop_millis = Some(self.clock.now_millis());
        self.tell();
    }

    fn size(&self, i: usize) -> u64 {
        self.sizes.get(i).copied().unwrap_or(1)
    }
}

impl Drop for MapRunTracker {
    /// A run dropped before it ended was cut short (its execution stopped or timed out, or a
    /// state around it failed).
    fn drop(&mut self) {
        self.end(MapRunStatus::Aborted);
    }
}
