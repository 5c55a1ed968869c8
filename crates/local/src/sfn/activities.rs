//! Activities: named queues of tasks for workers outside Step Functions. A Task state whose
//! resource is an activity ARN schedules a task (its effective input and a task token); a
//! worker takes it with GetActivityTask (a long poll of up to 60 s) and answers with
//! SendTaskSuccess, SendTaskFailure and SendTaskHeartbeat, as for callback tasks. A task whose
//! state ended meanwhile (timed out, execution stopped) is never handed out.

use super::{ApiError, Callbacks, valid_name};
use leasehold_asl::invoker::Submitted;
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::Notify;

/// How long GetActivityTask waits for a task before it answers with none (AWS: 60 s).
pub const POLL_SECONDS: u64 = 60;

/// A task waiting for a worker.
pub struct Pending {
    pub token: String,
    /// The state's effective input, as JSON text.
    pub input: String,
    /// Records `ActivityStarted` when a worker takes it.
    pub started: Submitted,
}

pub struct Activity {
    pub arn: String,
    pub name: String,
    pub created_ms: i64,
    queue: Mutex<VecDeque<Pending>>,
    ready: Notify,
}

impl Activity {
    fn json(&self) -> Value {
        json!({
            "activityArn": self.arn,
            "name": self.name,
            "creationDate": super::seconds(self.created_ms),
        })
    }
}

#[derive(Default)]
pub struct Activities {
    by_arn: RwLock<BTreeMap<String, Arc<Activity>>>,
}

fn invalid_arn(arn: &str) -> ApiError {
    ApiError::new(
        "InvalidArn",
        format!("Invalid Arn: 'Resource type not valid in this context: {arn}'"),
    )
}

impl Activities {
    /// CreateActivity: the activity `name` (the same one again when it exists).
    pub fn create(&self, arn: String, name: &str, now_ms: i64) -> Result<Value, ApiError> {
        if !valid_name(name) {
            return Err(ApiError::new(
                "InvalidName",
                format!("Invalid Name: '{name}'"),
            ));
        }
        let mut by_arn = self.by_arn.write().unwrap_or_else(|e| e.into_inner());
        let activity = by_arn.entry(arn.clone()).or_insert_with(|| {
            Arc::new(Activity {
                arn,
                name: name.to_owned(),
                created_ms: now_ms,
                queue: Mutex::default(),
                ready: Notify::new(),
            })
        });
        Ok(json!({
            "activityArn": activity.arn,
            "creationDate": super::seconds(activity.created_ms),
        }))
    }

    /// The activity with this ARN: `InvalidArn` for an ARN of another kind,
    /// `ActivityDoesNotExist` when there is none.
    pub fn get(&self, arn: &str) -> Result<Arc<Activity>, ApiError> {
        if !arn.starts_with("arn:aws:states:") || !arn.contains(":activity:") {
            return Err(invalid_arn(arn));
        }
        self.by_arn
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(arn)
            .cloned()
            .ok_or_else(|| {
                ApiError::new(
                    "ActivityDoesNotExist",
                    format!("Activity Does Not Exist: '{arn}'"),
                )
            })
    }

    pub fn describe(&self, arn: &str) -> Result<Value, ApiError> {
        Ok(self.get(arn)?.json())
    }

    /// ListActivities: every activity, by ARN; `max` per page after `from` (an ARN).
    pub fn list(&self, max: usize, from: Option<&str>) -> (Vec<Value>, Option<String>) {
        let by_arn = self.by_arn.read().unwrap_or_else(|e| e.into_inner());
        let mut page: Vec<&Arc<Activity>> = by_arn
            .range::<str, _>((
                from.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Included),
                std::ops::Bound::Unbounded,
            ))
            .map(|(_, a)| a)
            .take(max + 1)
            .collect();
        let next = (page.len() > max)
            .then(|| page.pop().map(|a| a.arn.clone()))
            .flatten();
        (page.iter().map(|a| a.json()).collect(), next)
    }

    /// DeleteActivity: gone for new tasks and pollers (tasks already scheduled stay with
    /// their states, which time out as on AWS).
    pub fn delete(&self, arn: &str) -> Result<(), ApiError> {
        if !arn.starts_with("arn:aws:states:") || !arn.contains(":activity:") {
            return Err(invalid_arn(arn));
        }
        self.by_arn
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(arn);
        Ok(())
    }

    /// Queues a task for the activity's workers.
    pub fn schedule(&self, arn: &str, task: Pending) -> Result<(), ApiError> {
        let activity = self.get(arn)?;
        activity
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(task);
        activity.ready.notify_one();
        Ok(())
    }

    /// GetActivityTask: the oldest task still waiting, within `wait`; `{}` with none.
    pub async fn poll(
        &self,
        arn: &str,
        worker: Option<&str>,
        callbacks: &Callbacks,
        wait: Duration,
    ) -> Result<Value, ApiError> {
        let activity = self.get(arn)?;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let ready = activity.ready.notified();
            let next = {
                let mut queue = activity.queue.lock().unwrap_or_else(|e| e.into_inner());
                // Tasks whose state ended before a worker came are dropped.
                while queue.front().is_some_and(|t| !callbacks.is_open(&t.token)) {
                    queue.pop_front();
                }
                queue.pop_front()
            };
            if let Some(task) = next {
                let mut started = json!({});
                if let Some(worker) = worker {
                    started["workerName"] = json!(worker);
                }
                task.started.submit(started);
                return Ok(json!({"taskToken": task.token, "input": task.input}));
            }
            if tokio::time::timeout_at(deadline, ready).await.is_err() {
                return Ok(json!({}));
            }
        }
    }
}
