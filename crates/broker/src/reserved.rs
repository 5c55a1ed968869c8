//! The first step of an acquire that names an application: a request within its application's
//! reservation is granted by one transaction, with no read of the pool to decide on first.
//!
//! Such a request may take any free slot whoever else waits (no other application's waiter is
//! owed a slot kept for this one, and its own application has nobody waiting), so the store's
//! conditions alone decide (see [`crate::store::LeaseStore::grant_reserved`]). The pool is
//! read at the same time, for the grant's `remaining` and gauges: the two calls wait for the
//! store together instead of one after the other. Any other request is refused by that
//! transaction with the pool record as it found it, on which the ordinary grant then decides,
//! as it did on a read before.

use crate::broker::{Broker, Grant, grant};
use crate::error::BrokerError;
use crate::model::{AppName, Lease, LeaseId, PoolName, PoolRecord};
use crate::shares::unknown_app;
use crate::store::{GrantAttempt, ReservedAttempt};
use std::future::Future;
use tracing::info;

/// What the first step of an acquire came to.
pub(crate) enum First {
    /// Granted within the application's reservation.
    Granted(Grant),
    /// Ask as usual: the application the request counts against (`None` when it names none,
    /// or the pool is not divided, which then ignores the name) and the pool record as the
    /// first step found it, for the first grant attempt to decide on.
    Ask(Option<AppName>, Option<PoolRecord>),
}

impl Broker {
    /// The first step of an acquire of `id` in `pool` for `app`, once `check` has passed (a
    /// queued acquire's task token; it runs while the pool is read, and nothing is written
    /// before it passed). A name the pool does not have is `InvalidInput`, with nothing
    /// written.
    pub(crate) async fn first_step(
        &self,
        (pool, id, ttl): (&PoolName, &LeaseId, i64),
        app: Option<&str>,
        check: impl Future<Output = Result<(), BrokerError>>,
    ) -> Result<First, BrokerError> {
        let Some(raw) = app else {
            check.await?;
            return Ok(First::Ask(None, None));
        };
        let app = AppName::parse(raw)?;
        let now = self.clock.now();
        let lease = Lease {
            pool: pool.clone(),
            id: id.clone(),
            granted_at: now,
            expires_at: now + ttl,
            draining: false,
            handed_to: None,
            app: Some(app.clone()),
        };
        let (attempt, snapshot) = tokio::join!(
            async {
                check.await?;
                Ok::<_, BrokerError>(self.store.grant_reserved(&lease).await?)
            },
            self.store.pool_and_lease(pool, id)
        );
        let snapshot = snapshot.ok().and_then(|(record, found)| Some((record?, found)));
        match attempt? {
            ReservedAttempt::Granted => {
                // Read before the grant (the id's lease not there yet, or an earlier one it
                // held): count the new lease; read after it: the record counts it already.
                let record = match snapshot {
                    Some((record, Some(found))) if found == lease => record,
                    Some((record, _)) => record.with_grant(Some(&app)),
                    None => self.pool_or_missing(pool).await?,
                };
                info!(pool = %pool, lease = %id, remaining = record.remaining(), app = %app, "lease granted within its reservation");
                self.gauge(pool, &record).await;
                Ok(First::Granted(grant(lease, &record, false)))
            }
            ReservedAttempt::Refused(GrantAttempt::PoolFull(record)) => {
                named_in(pool, app, record)
            }
            ReservedAttempt::Refused(GrantAttempt::PoolMissing) => {
                Err(BrokerError::PoolNotFound(pool.to_string()))
            }
            // The id holds a lease: the ordinary grant answers with it.
            ReservedAttempt::Refused(_) => {
                let record = match snapshot {
                    Some((record, _)) => record,
                    None => self.pool_or_missing(pool).await?,
                };
                named_in(pool, app, record)
            }
        }
    }
}

/// `app` checked against the pool record: ignored on a pool that is not divided, the record
/// handed on when the pool names it, `InvalidInput` otherwise.
fn named_in(pool: &PoolName, app: AppName, record: PoolRecord) -> Result<First, BrokerError> {
    if !record.shared() {
        return Ok(First::Ask(None, None));
    }
    match record.apps.get(&app) {
        Some(state) if !state.retired => Ok(First::Ask(Some(app), Some(record))),
        _ => Err(unknown_app(pool, &app, &record)),
    }
}

#[cfg(test)]
mod tests {
    use crate::broker::{AcquireRequest, Broker};
    use crate::callback::RecordingCallbacks;
    use crate::clock::ManualClock;
    use crate::memory::MemoryStore;
    use crate::metrics::NullSink;
    use crate::model::{AppName, AppShare};
    use crate::queue::QueuedRequest;
    use std::sync::Arc;

    struct Fixture {
        broker: Broker,
        calls: Arc<RecordingCallbacks>,
    }

    fn share(name: &str, reserved: u32, max: u32) -> AppShare {
        AppShare {
            name: AppName::parse(name).unwrap(),
            reserved,
            max: Some(max),
            weight: 1,
        }
    }

    /// A pool "db" of 4: "steady" reserves 2 (max 4), "hot" reserves nothing (max 4).
    async fn fixture() -> Fixture {
        let calls = Arc::new(RecordingCallbacks::default());
        let store = Arc::new(MemoryStore::default());
        let broker = Broker::new(
            store.clone(),
            Arc::new(NullSink),
            Arc::new(ManualClock::new(10_000)),
        )
        .with_callbacks(calls.clone());
        let apps = [share("steady", 2, 4), share("hot", 0, 4)];
        broker.put_shared_pool("db", 4, &apps).await.unwrap();
        Fixture { broker, calls }
    }

    fn queued(id: &str, app: &str) -> QueuedRequest {
        QueuedRequest {
            pool: "db".into(),
            lease_id: id.into(),
            ttl_seconds: 60,
            task_token: format!("token-{id}"),
            wait_seconds: 30,
            app: Some(app.into()),
        }
    }

    #[tokio::test]
    async fn a_queued_request_within_its_reservation_is_completed_with_the_pool_after_it() {
        let f = fixture().await;
        f.broker
            .acquire(&AcquireRequest::new("db", "h1", 60).for_app("hot"))
            .await
            .unwrap();
        let done = f.broker.acquire_queued(&queued("s1", "steady")).await.unwrap();
        assert!(!done.waiting);
        let (token, output) = f.calls.completed().remove(0);
        assert_eq!(token, "token-s1");
        assert_eq!(output["leaseId"], "s1");
        assert_eq!(output["app"], "steady");
        // 4 − hot's 1 − this one
        assert_eq!(output["remaining"], 2);
    }

    #[tokio::test]
    async fn a_foreign_token_or_an_unknown_application_changes_nothing() {
        let f = fixture().await;
        f.calls.mark_gone("token-s1");
        let err = f
            .broker
            .acquire_queued(&queued("s1", "steady"))
            .await
            .unwrap_err();
        assert_eq!(err.name(), "InvalidInput");
        for app in ["nobody", "not a name"] {
            let err = f
                .broker
                .acquire(&AcquireRequest::new("db", "x1", 60).for_app(app))
                .await
                .unwrap_err();
            assert_eq!(err.name(), "InvalidInput", "{app}");
        }
        let err = f
            .broker
            .acquire(&AcquireRequest::new("nowhere", "x1", 60).for_app("steady"))
            .await
            .unwrap_err();
        assert_eq!(err.name(), "PoolNotFound");
        let record = f.broker.pool("db").await.unwrap();
        assert_eq!((record.in_use, record.waiting), (0, 0));
        assert!(f.calls.completed().is_empty());
    }

    #[tokio::test]
    async fn a_name_on_a_pool_that_is_not_divided_is_ignored() {
        let f = fixture().await;
        f.broker.put_pool("plain", 1).await.unwrap();
        let grant = f
            .broker
            .acquire(&AcquireRequest::new("plain", "p1", 60).for_app("steady"))
            .await
            .unwrap();
        assert_eq!((grant.app, grant.remaining), (None, 0));
    }
}
