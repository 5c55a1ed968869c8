//! Database-connection leases for AWS Lambda fleets, kept in DynamoDB.
//!
//! A **pool** is the connection budget of one database; a **lease** is the right of one holder
//! (a workflow execution) to one connection until it releases it or the lease expires. The
//! [`Broker`] grants, releases, reclaims and audits leases through the narrow [`LeaseStore`]
//! port, and reports gauges through the [`MetricsSink`] port. Nothing here knows about Lambda.
//!
//! # Layout
//! - [`model`]: pool names, lease ids, task tokens, leases, waiters and pool records, with
//!   their validation.
//! - [`error`]: [`BrokerError`], whose [`BrokerError::name`] is the stable error name a
//!   workflow matches (`ConnectionsExhausted`, `PoolNotFound`, ...).
//! - [`store`]: the [`LeaseStore`] port and the outcome types of its operations.
//! - [`memory`]: an in-memory store for fast unit tests of the domain.
//! - [`dynamo`]: the DynamoDB adapter (one table: pool record plus one item per lease and per
//!   waiter), with how the queue's races are closed.
//! - [`broker`]: the grant / release / reclaim / audit logic over the port.
//! - [`queue`]: the wait queue: queued acquires, slot hand-over to the oldest waiter.
//! - [`shares`]: applications dividing one pool (reservations, ceilings, weights): their
//!   validation and who gets a freed slot.
//! - [`callback`]: the [`Callbacks`] port that completes waiting Step Functions tasks
//!   (`SendTaskSuccess`), with the Step Functions adapter and a recording one for tests.
//! - [`budget`]: budgets set explicitly or derived from the database's `max_connections`.
//! - [`metrics`]: the [`MetricsSink`] port with Embedded Metric Format and PutMetricData sinks.
//! - [`clock`]: wall clock and a manual clock for tests.
//! - [`config`]: the environment a handler reads once per container.
//! - [`fault`]: a store decorator that loses grant answers, for local fault tests only.
//!
//! # Example
//! ```
//! use leasehold_broker::{Broker, MemoryStore, ManualClock, NullSink, AcquireRequest};
//! use std::sync::Arc;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let store = Arc::new(MemoryStore::default());
//! let clock = Arc::new(ManualClock::new(1_000));
//! let broker = Broker::new(store, Arc::new(NullSink), clock.clone());
//! broker.put_pool("orders", 1).await.unwrap();
//!
//! let grant = broker.acquire(&AcquireRequest::new("orders", "exec-1", 60)).await.unwrap();
//! assert_eq!((grant.remaining, grant.budget), (0, 1));
//! let refused = broker.acquire(&AcquireRequest::new("orders", "exec-2", 60)).await;
//! assert_eq!(refused.unwrap_err().name(), "ConnectionsExhausted");
//!
//! // The first holder never releases; once its lease expires the slot comes back.
//! clock.advance(61);
//! assert!(broker.acquire(&AcquireRequest::new("orders", "exec-2", 60)).await.is_ok());
//! # });
//! ```
#![forbid(unsafe_code)]

pub mod broker;
pub mod budget;
pub mod callback;
pub mod clock;
pub mod config;
pub mod dynamo;
pub mod error;
pub mod fault;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod queue;
pub mod shares;
mod slot;
pub mod store;

pub use broker::{AcquireRequest, AuditReport, Broker, Drained, Grant, Reclaimed, Released};
pub use budget::BudgetPolicy;
pub use callback::{CallbackError, Callbacks, RecordingCallbacks, StepFunctionsCallbacks};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{BrokerConfig, MetricsMode};
pub use dynamo::DynamoStore;
pub use error::{BrokerError, StoreError};
pub use memory::MemoryStore;
pub use metrics::{CloudWatchSink, EmfSink, Metric, MetricsSink, NullSink};
pub use model::{
    AppName, AppShare, AppState, Apps, Lease, LeaseId, PoolName, PoolRecord, TaskToken, Waiter,
};
pub use queue::{Queued, QueuedRequest};
pub use store::{
    Beside, Counts, EnqueueAttempt, Freeing, GrantAttempt, HandOver, LeaseStore, ReclaimAttempt,
    ReleaseAttempt, SlotSource,
};
