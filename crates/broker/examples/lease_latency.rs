//! Benchmark (not a test): the latency of acquire + release next to the raw DynamoDB calls
//! they are made of, measured in one run against the same endpoint, plus the throughput of
//! many holders sharing one pool.
//!
//! Run with the local services up (or against AWS with a real table):
//!   scripts/bench-broker.sh [ITERATIONS]
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use leasehold_broker::{AcquireRequest, Broker, DynamoStore, NullSink, SystemClock};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}
fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// The sort key of a pool's record.
const POOL_SK: &str = "#POOL";

/// The change of a pool's `inUse` counter inside a transaction, as the adapter writes it
/// (`:z` is zero, for conditions that need it).
fn counter(table: &str, pool: &str, delta: i64, condition: &str) -> TransactWriteItem {
    let mut update = Update::builder()
        .table_name(table)
        .key("pk", s(pool))
        .key("sk", s(POOL_SK))
        .update_expression("SET inUse = inUse + :d")
        .condition_expression(condition)
        .expression_attribute_values(":d", n(delta));
    if condition.contains(":z") {
        update = update.expression_attribute_values(":z", n(0));
    }
    TransactWriteItem::builder()
        .update(update.build().unwrap())
        .build()
}

struct Samples(Vec<Duration>);

impl Samples {
    fn pct(&self, p: f64) -> f64 {
        let mut v: Vec<f64> = self.0.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        v[((v.len() as f64 - 1.0) * p).round() as usize]
    }
    fn mean(&self) -> f64 {
        self.0.iter().map(|d| d.as_secs_f64() * 1000.0).sum::<f64>() / self.0.len() as f64
    }
    fn row(&self, name: &str) {
        println!(
            "{name:<44} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
            self.mean(),
            self.pct(0.5),
            self.pct(0.95),
            self.pct(0.99)
        );
    }
}

#[tokio::main]
async fn main() {
    let iterations: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("ITERATIONS must be a number"))
        .unwrap_or(200);
    let table = std::env::var("LEASE_TABLE").expect("LEASE_TABLE (load .local/env)");
    let sdk = aws_config::load_from_env().await;
    let client = Client::new(&sdk);
    let broker = Broker::new(
        Arc::new(DynamoStore::new(client.clone(), &table)),
        Arc::new(NullSink),
        Arc::new(SystemClock),
    );
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let pool = format!("bench-{stamp}");
    let raw_pool = format!("bench-raw-{stamp}");
    broker.put_pool(&pool, 1000).await.unwrap();
    broker.put_pool(&raw_pool, 1000).await.unwrap();

    // Warm up connections on both paths.
    for i in 0..10 {
        let id = format!("warm-{i}");
        broker
            .acquire(&AcquireRequest::new(&pool, &id, 60))
            .await
            .unwrap();
        broker.release(&pool, &id).await.unwrap();
    }

    let (mut acquire, mut release, mut cycle) = (Vec::new(), Vec::new(), Vec::new());
    let (mut raw_grant, mut raw_get, mut raw_release) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..iterations {
        let id = format!("lease-{i}");
        let t0 = Instant::now();
        broker
            .acquire(&AcquireRequest::new(&pool, &id, 60))
            .await
            .unwrap();
        let t1 = Instant::now();
        broker.release(&pool, &id).await.unwrap();
        let t2 = Instant::now();
        acquire.push(t1 - t0);
        release.push(t2 - t1);
        cycle.push(t2 - t0);

        // The same requests the adapter sends, issued directly.
        let lease_sk = format!("LEASE#{id}");
        let t0 = Instant::now();
        let lease = Put::builder()
            .table_name(&table)
            .item("pk", s(&raw_pool))
            .item("sk", s(&lease_sk))
            .item("leaseId", s(&id))
            .item("grantedAt", n(0))
            .item("expiresAt", n(i64::MAX / 2))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .unwrap();
        client
            .transact_write_items()
            .transact_items(counter(
                &table,
                &raw_pool,
                1,
                "attribute_exists(pk) AND inUse < budget",
            ))
            .transact_items(TransactWriteItem::builder().put(lease).build())
            .send()
            .await
            .unwrap();
        let t1 = Instant::now();
        client
            .get_item()
            .table_name(&table)
            .key("pk", s(&raw_pool))
            .key("sk", s(POOL_SK))
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        let t2 = Instant::now();
        let lease = Delete::builder()
            .table_name(&table)
            .key("pk", s(&raw_pool))
            .key("sk", s(&lease_sk))
            .condition_expression("attribute_exists(pk)")
            .build()
            .unwrap();
        client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().delete(lease).build())
            .transact_items(counter(&table, &raw_pool, -1, "inUse > :z"))
            .send()
            .await
            .unwrap();
        let t3 = Instant::now();
        raw_grant.push(t1 - t0);
        raw_get.push(t2 - t1);
        raw_release.push(t3 - t2);
    }

    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "AWS".into());
    println!("lease latency, {iterations} sequential cycles against {endpoint} (milliseconds)");
    println!(
        "{:<44} {:>8} {:>8} {:>8} {:>8}",
        "", "mean", "p50", "p95", "p99"
    );
    let (acquire, release, cycle) = (Samples(acquire), Samples(release), Samples(cycle));
    let (raw_grant, raw_get, raw_release) =
        (Samples(raw_grant), Samples(raw_get), Samples(raw_release));
    acquire.row("broker acquire");
    release.row("broker release");
    cycle.row("broker acquire + release");
    raw_grant.row("raw TransactWriteItems (grant)");
    raw_get.row("raw GetItem (consistent)");
    raw_release.row("raw TransactWriteItems (release)");
    let raw_cycle = raw_grant.mean() + raw_get.mean() * 2.0 + raw_release.mean();
    println!(
        "ratio: acquire+release / its raw calls (2 transactions + 2 reads) = {:.2}",
        cycle.mean() / raw_cycle
    );

    // Throughput: 32 holders sharing a pool of 8, each holding for 20 ms.
    let shared = format!("bench-shared-{stamp}");
    broker.put_pool(&shared, 8).await.unwrap();
    let broker = Arc::new(broker);
    let deadline = Instant::now() + Duration::from_secs(5);
    let started = Instant::now();
    let workers: Vec<_> = (0..32)
        .map(|w| {
            let (broker, shared) = (broker.clone(), shared.clone());
            tokio::spawn(async move {
                let (mut served, mut refused, mut round) = (0u32, 0u32, 0u32);
                while Instant::now() < deadline {
                    round += 1;
                    let id = format!("w{w}-{round}");
                    match broker.acquire(&AcquireRequest::new(&shared, &id, 60)).await {
                        Ok(_) => {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            broker.release(&shared, &id).await.unwrap();
                            served += 1;
                        }
                        Err(_) => {
                            refused += 1;
                            tokio::time::sleep(Duration::from_millis(25)).await;
                        }
                    }
                }
                (served, refused)
            })
        })
        .collect();
    let (mut served, mut refused) = (0, 0);
    for w in workers {
        let (s, r) = w.await.unwrap();
        served += s;
        refused += r;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "throughput: 32 holders, budget 8, 20 ms hold: {:.0} leases/s served, {:.0} refusals/s, {:.0}% of the 400/s the budget allows",
        served as f64 / secs,
        refused as f64 / secs,
        served as f64 / secs / 400.0 * 100.0
    );
    let audit = broker.audit(&shared, false).await.unwrap();
    println!(
        "after the run: in use {}, lease records {}",
        audit.in_use, audit.lease_records
    );
    for p in [&pool, &raw_pool, &shared] {
        broker.delete_pool(p).await.unwrap();
    }
}
