//! What a Distributed Map run reports while it goes (the figures of DescribeMapRun): its
//! status, its limits and how many items and child executions are pending, running,
//! succeeded, failed or aborted. The run tells the history's observer after every change; a
//! run whose execution is stopped (its future dropped) reports itself aborted.

use crate::clock::Clock;
use crate::history::History;
use std::sync::Arc;

/// How a map run stands (AWS's `status` of DescribeMapRun).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapRunStatus {
    Running,
    Succeeded,
    Failed,
    Aborted,
}

impl MapRunStatus {
    /// AWS's spelling (`RUNNING`, ...).
    pub fn as_str(&self) -> &'static str {
        match self {
            MapRunStatus::Running => "RUNNING",
            MapRunStatus::Succeeded => "SUCCEEDED",
            MapRunStatus::Failed => "FAILED",
            MapRunStatus::Aborted => "ABORTED",
        }
    }
}

/// Counts of items or of child executions by how they stand (`itemCounts`,
/// `executionCounts`). Child executions here never time out on their own, so `timed_out`
/// stays 0 unless a report is built elsewhere.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MapRunCounts {
    pub pending: u64,
    pub running: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub timed_out: u64,
    pub aborted: u64,
    pub total: u64,
}

/// One map run as it stands now.
#[derive(Debug, Clone, PartialEq)]
pub struct MapRunReport {
    /// The ARN recorded in `MapRunStarted`.
    pub arn: String,
    pub status: MapRunStatus,
    /// `MaxConcurrency` as evaluated (0: no limit).
    pub max_concurrency: u64,
    pub tolerated_failure_count: u64,
    pub tolerated_failure_percentage: f64,
    pub items: MapRunCounts,
    pub executions: MapRunCounts,
    pub start_millis: i64,
    /// When the run ended, if it has.
    pub stop_millis: Option<i64>,
}

/// Keeps a run's report up to date and tells the execution's observer of each change.
pub(crate) struct MapRunTracker {
    history: History,
    clock: Arc<dyn Clock>,
    /// Items per child execution (1 each without an `ItemBatcher`).
    sizes: Vec<u64>,
    report: MapRunReport,
}

/// The limits a run was started with.
pub(crate) struct MapRunLimits {
    pub max_concurrency: u64,
    pub tolerated_failure_count: Option<u64>,
    pub tolerated_failure_percentage: Option<f64>,
}

impl MapRunTracker {
    /// A run of `sizes.len()` child executions, all pending; reported at once.
    pub(crate) fn start(
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
    pub(crate) fn started(&mut self, i: usize) {
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
    pub(crate) fn finished(&mut self, i: usize, succeeded: bool) {
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
    pub(crate) fn end(&mut self, status: MapRunStatus) {
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
    /// A run dropped before it ended belongs to an execution that was stopped.
    fn drop(&mut self) {
        self.end(MapRunStatus::Aborted);
    }
}
