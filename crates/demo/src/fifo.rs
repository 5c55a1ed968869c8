//! What a perfect first-come-first-served queue over the budget would give for the demo's load:
//! the yardstick the queued and polling runs are compared with.
//!
//! A deterministic event simulation, no randomness and no overhead: `clients` clients (the
//! harness's concurrency) each loop request → wait in one FIFO queue for a free slot → hold it
//! for `service_ms` → release, until `requests` requests have been made (the harness's
//! iterations). `slots` slots (the budget) serve the queue. A released slot goes to the oldest
//! waiter at the same instant, and a client asks again the instant its request ends.

use super::stats::{percentile, round1, round2};
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// The outcome of one simulation.
#[derive(Debug, Clone, PartialEq)]
pub struct Simulated {
    /// From the first request to the end of the last one.
    pub makespan_ms: f64,
    /// Each request's wait for a slot, in the order the requests were served.
    pub waits_ms: Vec<f64>,
}

/// Simulates the load; see the module docs. `clients` or `slots` of 0 count as 1.
pub fn simulate(requests: u32, clients: u32, slots: u32, service_ms: f64) -> Simulated {
    let (clients, slots) = (clients.max(1), slots.max(1));
    let service_ms = service_ms.max(0.0);
    // Slot free times as whole microseconds: exact ordering, no float ties to break.
    let service_us = (service_ms * 1000.0).round() as u64;
    let mut free: BinaryHeap<Reverse<u64>> = (0..slots).map(|_| Reverse(0)).collect();
    // Request times in FIFO order. The queue stays sorted: every request enters it at the end
    // of an earlier one, and ends come in the order requests are served.
    let mut queue: VecDeque<u64> = (0..requests.min(clients)).map(|_| 0).collect();
    let mut issued = queue.len() as u32;
    let mut waits_ms = Vec::with_capacity(requests as usize);
    let mut makespan_us = 0;
    while let Some(asked) = queue.pop_front() {
        let Some(Reverse(slot_free)) = free.pop() else {
            break;
        };
        let start = asked.max(slot_free);
        let end = start + service_us;
        waits_ms.push((start - asked) as f64 / 1000.0);
        makespan_us = makespan_us.max(end);
        free.push(Reverse(end));
        if issued < requests {
            // The same client asks again at once.
            queue.push_back(end);
            issued += 1;
        }
    }
    Simulated {
        makespan_ms: makespan_us as f64 / 1000.0,
        waits_ms,
    }
}

/// Where the service time of the ideal came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ServiceSource {
    /// The queued run's `meanHoldMs`.
    QueuedMeanHold,
    /// The polling (governed) run's `meanHoldMs`, when the queued run served nothing.
    PollingMeanHold,
    /// The load's `holdMs`, when neither run served anything.
    HoldMs,
}

/// The report's `fifoIdeal`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FifoIdeal {
    pub executions: u32,
    pub concurrency: u32,
    pub budget: i64,
    /// How long each request holds its slot.
    pub service_ms: f64,
    pub service_ms_source: ServiceSource,
    pub makespan_ms: f64,
    pub served_per_second: f64,
    pub wait_p50_ms: f64,
    pub wait_p99_ms: f64,
    pub wait_max_ms: f64,
    /// Wait + service: what a caller would see end to end if nothing else took time.
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
}

impl FifoIdeal {
    pub fn new(
        executions: u32,
        concurrency: u32,
        budget: i64,
        service_ms: f64,
        service_ms_source: ServiceSource,
    ) -> Self {
        let slots = u32::try_from(budget.max(1)).unwrap_or(u32::MAX);
        let sim = simulate(executions, concurrency, slots, service_ms);
        // Percentiles of whole microseconds, with the report's nearest-rank rule.
        let micros: Vec<i64> = sim
            .waits_ms
            .iter()
            .map(|w| (w * 1000.0).round() as i64)
            .collect();
        let wait = |p: f64| percentile(&micros, p).map_or(0.0, |us| round1(us as f64 / 1000.0));
        let served_per_second = if sim.makespan_ms > 0.0 {
            round2(sim.waits_ms.len() as f64 / (sim.makespan_ms / 1000.0))
        } else {
            0.0
        };
        let (p50, p99) = (wait(50.0), wait(99.0));
        FifoIdeal {
            executions,
            concurrency,
            budget,
            service_ms: round1(service_ms),
            service_ms_source,
            makespan_ms: round1(sim.makespan_ms),
            served_per_second,
            wait_p50_ms: p50,
            wait_p99_ms: p99,
            wait_max_ms: wait(100.0),
            latency_p50_ms: round1(p50 + service_ms),
            latency_p99_ms: round1(p99 + service_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enough_slots_for_every_client_means_no_wait() {
        // GIVEN as many slots as clients (or more)
        for slots in [4, 5, 40] {
            // WHEN 10 requests of 100 ms are made by 4 clients
            let sim = simulate(10, 4, slots, 100.0);
            // THEN nobody waits, and the clients work in ceil(10 / 4) = 3 rounds
            assert_eq!(sim.waits_ms, vec![0.0; 10], "{slots} slots");
            assert_eq!(sim.makespan_ms, 300.0, "{slots} slots");
        }
    }

    #[test]
    fn a_small_case_by_hand() {
        // GIVEN 3 clients, 2 slots, 100 ms per request, 4 requests
        // t=0: clients 0 and 1 take the slots, client 2 waits.
        // t=100: both slots free; client 2 (waiting since 0) takes one after 100 ms, client 0
        // (asking again at 100) takes the other at once. Client 1 would ask again, but the
        // 4 requests are made.
        let sim = simulate(4, 3, 2, 100.0);
        assert_eq!(sim.waits_ms, vec![0.0, 0.0, 100.0, 0.0]);
        assert_eq!(sim.makespan_ms, 200.0);
        let ideal = FifoIdeal::new(4, 3, 2, 100.0, ServiceSource::HoldMs);
        assert_eq!(ideal.served_per_second, 20.0);
        assert_eq!((ideal.wait_p50_ms, ideal.wait_p99_ms), (0.0, 100.0));
        assert_eq!((ideal.latency_p50_ms, ideal.latency_p99_ms), (100.0, 200.0));
    }

    #[test]
    fn the_queue_is_first_come_first_served() {
        // GIVEN 3 clients and one slot: they take turns in the order they asked
        let sim = simulate(6, 3, 1, 10.0);
        // The first three ask at 0 and are served at 0, 10, 20; each asks again when done
        // (10, 20, 30) and is served after the ones before it (30, 40, 50).
        assert_eq!(sim.waits_ms, vec![0.0, 10.0, 20.0, 20.0, 20.0, 20.0]);
        assert_eq!(sim.makespan_ms, 60.0);
    }

    #[test]
    fn a_full_pool_runs_at_its_physical_limit() {
        // GIVEN the demo's default load: 300 requests, 40 clients, 11 slots, 1 s each
        let ideal = FifoIdeal::new(300, 40, 11, 1000.0, ServiceSource::QueuedMeanHold);
        // THEN the slots never idle: ceil(300 / 11) = 28 rounds of 1 s ...
        assert_eq!(ideal.makespan_ms, 28_000.0);
        assert_eq!(ideal.served_per_second, round2(300.0 / 28.0));
        // ... and in the steady state 29 requests queue for 11 slots: 2 or 3 rounds of wait
        assert_eq!(ideal.wait_p50_ms, 3000.0);
        assert_eq!(ideal.wait_max_ms, 3000.0);
        assert!(ideal.served_per_second <= 11.0);
    }

    #[test]
    fn fewer_requests_than_clients_and_degenerate_inputs() {
        assert_eq!(simulate(2, 10, 1, 50.0).waits_ms, vec![0.0, 50.0]);
        assert!(simulate(0, 4, 2, 10.0).waits_ms.is_empty());
        let ideal = FifoIdeal::new(0, 4, 2, 10.0, ServiceSource::HoldMs);
        assert_eq!((ideal.served_per_second, ideal.wait_p99_ms), (0.0, 0.0));
        // Zero slots or clients are taken as one: the simulation always ends.
        assert_eq!(simulate(3, 0, 0, 10.0).makespan_ms, 30.0);
    }
}
