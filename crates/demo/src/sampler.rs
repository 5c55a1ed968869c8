//! Samples, while a run goes on, the database's open connections (`Threads_connected`, without
//! the sampler's own) and the pool's leases in use and queued requests (the pool record's
//! `inUse` and `waiting`, read together).

use super::sources::{Sources, now_ms, threads_connected};
use mysql_async::Conn;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

/// How often the database is asked (the brief: every 100 to 200 ms).
pub const DB_EVERY: Duration = Duration::from_millis(150);
/// How often the pool record is read; moto serializes requests, so less often.
pub const LEASES_EVERY: Duration = Duration::from_millis(250);

/// The sampler's own connections to the database, left out of every figure.
pub const OWN_CONNECTIONS: i64 = 1;

/// Time series as (epoch ms, value).
#[derive(Debug, Default, Clone)]
pub struct Series {
    pub connections: Vec<(i64, i64)>,
    pub leases_in_use: Vec<(i64, i64)>,
    /// Requests waiting in the pool's queue (queued mode).
    pub waiting: Vec<(i64, i64)>,
    /// Samples that could not be taken (a busy moto, a lost connection).
    pub missed: u64,
}

/// The latest values, for the progress line.
#[derive(Debug, Default)]
pub struct Latest {
    pub connections: AtomicI64,
    pub leases_in_use: AtomicI64,
    pub waiting: AtomicI64,
}

pub struct Sampler {
    stop: watch::Sender<bool>,
    db: JoinHandle<Sampled<i64>>,
    pool: JoinHandle<Sampled<(i64, i64)>>,
    pub latest: Arc<Latest>,
}

/// Points of one sampled value and how many samples could not be taken.
type Sampled<T> = (Vec<(i64, T)>, u64);

/// Takes `read` every `every` until `stopped` changes; each value is also stored in `latest`.
fn sample<T, F, Fut>(
    every: Duration,
    mut stopped: watch::Receiver<bool>,
    latest: Arc<Latest>,
    store: fn(&Latest, T),
    mut read: F,
) -> JoinHandle<Sampled<T>>
where
    T: Copy + Send + 'static,
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Option<T>> + Send,
{
    tokio::spawn(async move {
        let (mut points, mut missed) = (Vec::new(), 0);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stopped.changed() => break,
            }
            match read().await {
                Some(n) => {
                    store(&latest, n);
                    points.push((now_ms(), n));
                }
                None => missed += 1,
            }
        }
        (points, missed)
    })
}

impl Sampler {
    pub fn start(sources: Arc<Sources>, admin: Arc<Mutex<Conn>>) -> Self {
        let (stop, stopped) = watch::channel(false);
        let latest = Arc::new(Latest::default());
        let db = sample(
            DB_EVERY,
            stopped.clone(),
            latest.clone(),
            |l, n| l.connections.store(n, Ordering::Relaxed),
            move || {
                let admin = admin.clone();
                async move {
                    let mut conn = admin.lock().await;
                    let n = threads_connected(&mut conn).await.ok()?;
                    Some((n - OWN_CONNECTIONS).max(0))
                }
            },
        );
        let pool = sample(
            LEASES_EVERY,
            stopped,
            latest.clone(),
            |l, (in_use, waiting)| {
                l.leases_in_use.store(in_use, Ordering::Relaxed);
                l.waiting.store(waiting, Ordering::Relaxed);
            },
            move || {
                let sources = sources.clone();
                async move {
                    let (_, in_use, waiting) = sources.pool_record().await.ok()?;
                    Some((in_use, waiting))
                }
            },
        );
        Sampler {
            stop,
            db,
            pool,
            latest,
        }
    }

    pub async fn finish(self) -> Series {
        let _ = self.stop.send(true);
        let (connections, a) = self.db.await.unwrap_or_default();
        let (pool, b) = self.pool.await.unwrap_or_default();
        Series {
            connections,
            leases_in_use: pool.iter().map(|&(t, (in_use, _))| (t, in_use)).collect(),
            waiting: pool.iter().map(|&(t, (_, waiting))| (t, waiting)).collect(),
            missed: a + b,
        }
    }
}
