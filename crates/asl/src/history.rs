//! Execution history: AWS event types, ids, `previousEventId` links, timestamps from the
//! injected clock and the `<x>EventDetails` objects. Observers see each event as it is
//! recorded, so a running execution's history can be served while it runs.

use crate::map_run::MapRunReport;
use crate::values::iso_millis;
use serde_json::{Map, Value};
use std::sync::{Arc, Mutex};

/// One history event, as `GetExecutionHistory` returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEvent {
    pub id: u64,
    pub previous_event_id: u64,
    pub timestamp_millis: i64,
    /// e.g. `PassStateEntered`, `TaskScheduled`, `ExecutionSucceeded`.
    pub event_type: String,
    /// The `<x>EventDetails` object.
    pub details: Option<Details>,
}

/// The details of an event: a key such as `stateEnteredEventDetails` and its fields.
#[derive(Debug, Clone, PartialEq)]
pub enum Details {
    /// Any JSON object.
    Json { key: &'static str, value: Value },
    /// Named fields in order; an `input`/`output` field is followed by its
    /// `inputDetails`/`outputDetails` (`{"truncated": false}`) when rendered. Cheaper to
    /// record than a JSON object, which matters for large Map runs.
    Fields {
        key: &'static str,
        fields: Vec<(&'static str, Value)>,
    },
}

impl Details {
    /// The details key (`stateEnteredEventDetails`, ...).
    pub fn key(&self) -> &'static str {
        match self {
            Details::Json { key, .. } | Details::Fields { key, .. } => key,
        }
    }

    /// The details object as AWS renders it.
    pub fn to_value(&self) -> Value {
        match self {
            Details::Json { value, .. } => value.clone(),
            Details::Fields { fields, .. } => {
                let mut m = Map::new();
                for (k, v) in fields {
                    m.insert((*k).to_string(), v.clone());
                    if *k == "input" || *k == "output" {
                        let mut t = Map::new();
                        t.insert("truncated".into(), Value::Bool(false));
                        m.insert(format!("{k}Details"), Value::Object(t));
                    }
                }
                Value::Object(m)
            }
        }
    }
}

impl From<(&'static str, Value)> for Details {
    fn from((key, value): (&'static str, Value)) -> Self {
        Details::Json { key, value }
    }
}

impl HistoryEvent {
    /// The AWS JSON shape of the event.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert(
            "timestamp".into(),
            Value::String(iso_millis(self.timestamp_millis)),
        );
        m.insert("type".into(), Value::String(self.event_type.clone()));
        m.insert("id".into(), Value::from(self.id));
        m.insert(
            "previousEventId".into(),
            Value::from(self.previous_event_id),
        );
        if let Some(d) = &self.details {
            m.insert(d.key().to_string(), d.to_value());
        }
        Value::Object(m)
    }
}

/// Receives every event when it is recorded (from any task of the execution).
pub trait HistoryObserver: Send + Sync {
    fn on_event(&self, event: &HistoryEvent);

    /// A Distributed Map run of the execution started, moved on or ended.
    fn on_map_run(&self, _run: &MapRunReport) {}
}

/// The event list of one execution, shared by its concurrent branches.
#[derive(Clone, Default)]
pub struct History {
    inner: Arc<Mutex<Vec<HistoryEvent>>>,
    observer: Option<Arc<dyn HistoryObserver>>,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History")
            .field("events", &self.snapshot().len())
            .finish()
    }
}

/// Where a thread of execution (the main flow, a branch, an iteration) stands: the id its next
/// event links back to.
#[derive(Debug, Clone, Copy, Default)]
pub struct Thread {
    pub source: u64,
}

impl History {
    pub fn new(observer: Option<Arc<dyn HistoryObserver>>) -> Self {
        History {
            inner: Arc::default(),
            observer,
        }
    }

    /// Records an event linked to `thread.source`; when `advance`, later events of the thread
    /// link to this one.
    pub fn add(
        &self,
        thread: &mut Thread,
        now: i64,
        event_type: &str,
        details: Option<impl Into<Details>>,
        advance: bool,
    ) -> u64 {
        let ev = {
            let mut v = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            let id = v.len() as u64 + 1;
            let ev = HistoryEvent {
                id,
                previous_event_id: thread.source,
                timestamp_millis: now,
                event_type: event_type.to_string(),
                details: details.map(Into::into),
            };
            v.push(ev.clone());
            ev
        };
        if advance {
            thread.source = ev.id;
        }
        if let Some(o) = &self.observer {
            o.on_event(&ev);
        }
        ev.id
    }

    /// Tells the observer how a Distributed Map run stands.
    pub fn map_run(&self, run: &MapRunReport) {
        if let Some(o) = &self.observer {
            o.on_map_run(run);
        }
    }

    /// Starts from `events` already recorded (a redriven execution): new events follow them
    /// (the observer is not told of these again).
    pub fn restore(&self, events: Vec<HistoryEvent>) {
        *self.inner.lock().unwrap_or_else(|p| p.into_inner()) = events;
    }

    /// Takes the events out (at the end of an execution, to avoid a copy).
    pub fn take(&self) -> Vec<HistoryEvent> {
        std::mem::take(&mut *self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// A copy of the events so far.
    pub fn snapshot(&self) -> Vec<HistoryEvent> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The id of the latest event.
    pub fn last_id(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).len() as u64
    }
}
