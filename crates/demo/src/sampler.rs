//! Samples, while a run goes on, the database's open connections (`Threads_connected`, without
//! the sampler's own) and the pool's leases in use and queued requests (the pool record's
//! `inUse` and `waiting`, read together); for a run of several applications also the lease and
//! waiter records per application.

use super::sources::{Sources, now_ms, threads_connected};
use mysql_async::Conn;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

/// How often the database is asked (the brief: every 100 to 200 ms).
pub const DB_EVERY: Duration = Duration::from_millis(150);
/// How often the pool record is read; moto serializes requests, so less often.
pub const LEASES_EVERY: Duration = Duration::from_millis(250);

/// How often the lease and waiter records are read per application: two queries, so less
/// often still.
pub const APPS_EVERY: Duration = Duration::from_millis(300);

/// The sampler's own connections to the database, left out of every figure.
pub const OWN_CONNECTIONS: i64 = 1;

/// Lease and waiter records of one application at one instant.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AppCount {
    pub in_use: i64,
    pub waiting: i64,
}

/// The records per application at one instant; records whose application is not known are
/// under [`UNKNOWN_APP`].
pub type AppCounts = BTreeMap<String, AppCount>;

/// Where records go whose application could not be told.
pub const UNKNOWN_APP: &str = "";

/// Time series as (epoch ms, value).
#[derive(Debug, Default, Clone)]
pub struct Series {
    pub connections: Vec<(i64, i64)>,
    pub leases_in_use: Vec<(i64, i64)>,
    /// Requests waiting in the pool's queue (queued mode).
    pub waiting: Vec<(i64, i64)>,
    /// Lease and waiter records per application (only when asked for).
    pub apps: Vec<(i64, AppCounts)>,
    /// Samples that could not be taken (a busy moto, a lost connection).
    pub missed: u64,
}

/// The latest values, for the progress line.
#[derive(Debug, Default)]
pub struct Latest {
    pub connections: AtomicI64,
    pub leases_in_use: AtomicI64,
    pub waiting: AtomicI64,
    /// Leases in use and waiting per application, as the progress line shows them.
    pub apps: std::sync::Mutex<String>,
}

pub struct Sampler {
    stop: watch::Sender<bool>,
    db: JoinHandle<Sampled<i64>>,
    pool: JoinHandle<Sampled<(i64, i64)>>,
    apps: Option<JoinHandle<Sampled<AppCounts>>>,
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

/// Counts records per application: a record's own `app` when it has one (a pool divided
/// between applications), else the application of the execution that holds it, from `known`
/// (execution ARN → its input's `app`).
pub fn count_by_app<'a>(
    leases: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    waiters: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    known: &HashMap<String, Option<String>>,
) -> AppCounts {
    let mut counts = AppCounts::new();
    let app_of = |id: &str, app: Option<&'a str>| -> String {
        app.map(str::to_owned)
            .or_else(|| known.get(id).cloned().flatten())
            .unwrap_or_else(|| UNKNOWN_APP.to_owned())
    };
    for (id, app) in leases {
        counts.entry(app_of(id, app)).or_default().in_use += 1;
    }
    for (id, app) in waiters {
        counts.entry(app_of(id, app)).or_default().waiting += 1;
    }
    counts
}

/// Reads the records once and counts them per application, looking up (once each) the
/// executions whose records carry no application.
async fn sample_apps(
    sources: &Sources,
    known: &mut HashMap<String, Option<String>>,
) -> Option<AppCounts> {
    let (leases, waiters) = sources.lease_and_waiter_records().await.ok()?;
    let unlabelled = leases
        .iter()
        .filter(|l| l.app.is_none())
        .map(|l| l.id.as_str())
        .chain(
            waiters
                .iter()
                .filter(|w| w.app.is_none())
                .map(|w| w.id.as_str()),
        );
    let missing: Vec<String> = unlabelled
        .filter(|id| !known.contains_key(*id))
        .map(str::to_owned)
        .collect();
    for id in missing {
        // An id that is not an execution (or a failed look-up) counts as unknown, and is
        // asked about again at the next sample.
        if let Ok(app) = sources.app_of_execution(&id).await {
            known.insert(id, app);
        }
    }
    Some(count_by_app(
        leases
            .iter()
            .map(|l| (l.id.as_str(), l.app.as_ref().map(|a| a.as_str()))),
        waiters
            .iter()
            .map(|w| (w.id.as_str(), w.app.as_ref().map(|a| a.as_str()))),
        known,
    ))
}

/// `steady 5+0 hot 6+34`: in use + waiting per application.
fn show_apps(counts: &AppCounts) -> String {
    counts
        .iter()
        .map(|(app, c)| {
            let name = if app.is_empty() { "?" } else { app };
            format!("{name} {}+{}", c.in_use, c.waiting)
        })
        .collect::<Vec<_>>()
        .join("  ")
}

impl Sampler {
    /// Also samples the records per application.
    pub fn start_with_apps(sources: Arc<Sources>, admin: Arc<Mutex<Conn>>) -> Self {
        let mut sampler = Self::start(sources.clone(), admin);
        let mut stopped = sampler.stop.subscribe();
        let latest = sampler.latest.clone();
        sampler.apps = Some(tokio::spawn(async move {
            let (mut points, mut missed) = (Vec::new(), 0);
            let mut known = HashMap::new();
            let mut tick = tokio::time::interval(APPS_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => break,
                }
                match sample_apps(&sources, &mut known).await {
                    Some(counts) => {
                        *latest.apps.lock().unwrap_or_else(|e| e.into_inner()) = show_apps(&counts);
                        points.push((now_ms(), counts));
                    }
                    None => missed += 1,
                }
            }
            (points, missed)
        }));
        sampler
    }

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
            apps: None,
            latest,
        }
    }

    pub async fn finish(self) -> Series {
        let _ = self.stop.send(true);
        let (connections, a) = self.db.await.unwrap_or_default();
        let (pool, b) = self.pool.await.unwrap_or_default();
        let (apps, c) = match self.apps {
            Some(apps) => apps.await.unwrap_or_default(),
            None => (Vec::new(), 0),
        };
        Series {
            connections,
            leases_in_use: pool.iter().map(|&(t, (in_use, _))| (t, in_use)).collect(),
            waiting: pool.iter().map(|&(t, (_, waiting))| (t, waiting)).collect(),
            apps,
            missed: a + b + c,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_count_for_their_own_application_or_their_executions() {
        // GIVEN a divided pool's records (with app) and an undivided pool's (without), whose
        // executions are known to ask for steady or hot, and one nobody knows
        let known = HashMap::from([
            ("arn:b".to_owned(), Some("hot".to_owned())),
            ("arn:c".to_owned(), Some("steady".to_owned())),
            ("arn:d".to_owned(), None),
        ]);
        let leases = [
            ("arn:a", Some("steady")),
            ("arn:b", None),
            ("arn:c", None),
            ("arn:x", None),
        ];
        let waiters = [("arn:e", Some("hot")), ("arn:d", None), ("arn:b2", None)];
        // WHEN they are counted
        let counts = count_by_app(leases, waiters, &known);
        // THEN each goes to its application, the rest to the unknown one
        assert_eq!(
            counts["steady"],
            AppCount {
                in_use: 2,
                waiting: 0
            }
        );
        assert_eq!(
            counts["hot"],
            AppCount {
                in_use: 1,
                waiting: 1
            }
        );
        assert_eq!(
            counts[UNKNOWN_APP],
            AppCount {
                in_use: 1,
                waiting: 2
            }
        );
        assert_eq!(show_apps(&counts), "? 1+2  hot 1+1  steady 2+0");
    }
}
