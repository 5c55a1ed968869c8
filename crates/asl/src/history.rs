//! Execution history: AWS event types, ids, `previousEventId` links, timestamps from the
//! injected clock and the `<x>EventDetails` objects. Observers see each event as it is
//! recorded, so a running execution's history can be served while it runs.

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
    /// The details key (e.g. `stateEnteredEventDetails`) and its object.
    pub details: Option<(String, Value)>,
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
        if let Some((k, v)) = &self.details {
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m)
    }
}

/// Receives every event when it is recorded (from any task of the execution).
pub trait HistoryObserver: Send + Sync {
    fn on_event(&self, event: &HistoryEvent);
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
        details: Option<(&str, Value)>,
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
                details: details.map(|(k, d)| (k.to_string(), d)),
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

    /// A copy of the events so far.
    pub fn snapshot(&self) -> Vec<HistoryEvent> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The id of the latest event.
    pub fn last_id(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).len() as u64
    }
}
