//! Time and randomness are injected: the interpreter has no clock of its own. The local
//! stack supplies a real-time clock on its runtime; tests use [`VirtualClock`], whose sleeps
//! complete in virtual time as soon as every task is waiting, so Wait and Retry are instant
//! and deterministic.

use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

/// A boxed, sendable future (what the pluggable interfaces return).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Current time and sleeping.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> i64;
    /// Completes after `d` has passed on this clock.
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()>;
}

/// A source of random numbers (jitter, `States.MathRandom`, `States.UUID`, `$random`).
pub trait Random: Send + Sync {
    fn next_u64(&self) -> u64;
    /// Uniform in [0, 1).
    fn next_f64(&self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A deterministic generator (SplitMix64) for tests and reproducible runs.
#[derive(Debug)]
pub struct SeededRandom(AtomicU64);

impl SeededRandom {
    pub fn new(seed: u64) -> Self {
        SeededRandom(AtomicU64::new(seed))
    }
}

impl Random for SeededRandom {
    fn next_u64(&self) -> u64 {
        let x = self
            .0
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[derive(Debug)]
struct Timer {
    deadline: i64,
    seq: u64,
    waker: Waker,
}

impl PartialEq for Timer {
    fn eq(&self, o: &Self) -> bool {
        (self.deadline, self.seq) == (o.deadline, o.seq)
    }
}
impl Eq for Timer {}
impl PartialOrd for Timer {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Timer {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        // Reversed: BinaryHeap is a max-heap and we want the earliest deadline first.
        (o.deadline, o.seq).cmp(&(self.deadline, self.seq))
    }
}

#[derive(Debug, Default)]
struct VState {
    now: i64,
    seq: u64,
    timers: BinaryHeap<Timer>,
}

/// A clock whose time only moves when everything is asleep. Drive futures with
/// [`VirtualClock::block_on`].
#[derive(Debug, Clone)]
pub struct VirtualClock {
    state: Arc<Mutex<VState>>,
}

impl VirtualClock {
    /// Starts at `start_millis` since the epoch.
    pub fn new(start_millis: i64) -> Self {
        VirtualClock {
            state: Arc::new(Mutex::new(VState {
                now: start_millis,
                ..VState::default()
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves time forward to the earliest pending timer and wakes it. Returns false when no
    /// timer is pending.
    pub fn advance(&self) -> bool {
        let mut st = self.lock();
        let Some(first) = st.timers.pop() else {
            return false;
        };
        st.now = st.now.max(first.deadline);
        let now = st.now;
        let mut wake = vec![first.waker];
        while st.timers.peek().is_some_and(|t| t.deadline <= now) {
            if let Some(t) = st.timers.pop() {
                wake.push(t.waker);
            }
        }
        drop(st);
        wake.into_iter().for_each(Waker::wake);
        true
    }

    /// Runs a future to completion on this thread, advancing virtual time whenever it is
    /// blocked only on this clock. Returns `None` if it blocks on something else forever
    /// (e.g. a task that never answers).
    pub fn block_on<F: Future>(&self, fut: F) -> Option<F::Output> {
        struct Flag(AtomicBool);
        impl Wake for Flag {
            fn wake(self: Arc<Self>) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let flag = Arc::new(Flag(AtomicBool::new(true)));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let mut fut = std::pin::pin!(fut);
        loop {
            flag.0.store(false, Ordering::SeqCst);
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return Some(v);
            }
            if flag.0.load(Ordering::SeqCst) {
                continue;
            }
            if !self.advance() {
                return None;
            }
        }
    }
}

struct VirtualSleep {
    clock: VirtualClock,
    deadline: i64,
}

impl Future for VirtualSleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.clock.lock();
        if st.now >= self.deadline {
            return Poll::Ready(());
        }
        st.seq += 1;
        let seq = st.seq;
        st.timers.push(Timer {
            deadline: self.deadline,
            seq,
            waker: cx.waker().clone(),
        });
        Poll::Pending
    }
}

impl Clock for VirtualClock {
    fn now_millis(&self) -> i64 {
        self.lock().now
    }
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        // A sleep past the end of the clock's range ends there, never wraps into the past.
        let millis = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let deadline = self.now_millis().saturating_add(millis);
        Box::pin(VirtualSleep {
            clock: self.clone(),
            deadline,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleeps_advance_virtual_time_in_order() {
        let clock = VirtualClock::new(1_000);
        let c = clock.clone();
        let out = clock.block_on(async move {
            c.sleep(Duration::from_secs(5)).await;
            let a = c.now_millis();
            c.sleep(Duration::from_millis(250)).await;
            (a, c.now_millis())
        });
        assert_eq!(out, Some((6_000, 6_250)));
    }

    #[test]
    fn seeded_random_is_reproducible_and_in_range() {
        let a = SeededRandom::new(7);
        let b = SeededRandom::new(7);
        for _ in 0..100 {
            let x = a.next_f64();
            assert_eq!(x, b.next_f64());
            assert!((0.0..1.0).contains(&x));
        }
    }
}
