//! What a Distributed Map run reports while it goes (the figures of DescribeMapRun): its
//! status, its limits and how many items and child executions are pending, running,
//! succeeded, failed or aborted. The Map state (`run::map_run`) tells the history's observer
//! after every change; a run that ends unfinished (its execution stopped or timed out, or a
//! state around it failed) reports itself aborted.

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
