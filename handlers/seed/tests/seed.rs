//! The seed custom resource against MariaDB, moto, and a local stand-in for ResponseURL. The
//! seed signs in as the administrator, as it does with the RDS master secret when deployed.

use lambda_runtime::{Context, LambdaEvent};
use leasehold_broker::{AcquireRequest, BrokerConfig};
use leasehold_db::{Database, DbConfig};
use leasehold_testkit::mysql::admin_config;
use leasehold_testkit::{ResponseCatcher, mysql, sdk_config, unique};
use mysql_async::prelude::Queryable;
use seed_handler::{CustomResourceRequest, PoolSpec, SeedDeps, handle};
use serde_json::{Value, json};
use std::time::{SystemTime, UNIX_EPOCH};

async fn deps_with(db: DbConfig) -> SeedDeps {
    let sdk = sdk_config().await;
    SeedDeps {
        broker: BrokerConfig::from_env().unwrap().broker(&sdk),
        db: Database::new(db, &sdk),
        account: None,
        http: reqwest::Client::new(),
    }
}

async fn deps() -> SeedDeps {
    deps_with(admin_config(&[])).await
}

/// A sample request from events/, pointed at the catcher and at a pool of this test.
fn request(sample: &str, url: &str, pool: &str, props: Value) -> Value {
    let mut event: Value = serde_json::from_str(sample).unwrap();
    event["ResponseURL"] = json!(url);
    let mut properties = json!({"ServiceToken": event["ServiceToken"], "Pool": pool});
    for (k, v) in props.as_object().unwrap() {
        properties[k] = v.clone();
    }
    event["ResourceProperties"] = properties;
    if event.get("PhysicalResourceId").is_some() {
        event["PhysicalResourceId"] = json!(format!("LeasePool-{pool}"));
    }
    event
}

const CREATE: &str = include_str!("../../../events/seed-create.json");
const UPDATE: &str = include_str!("../../../events/seed-update.json");
const DELETE: &str = include_str!("../../../events/seed-delete.json");

async fn invoke(deps: &SeedDeps, catcher: &ResponseCatcher, event: Value) -> Value {
    let before = catcher.caught().len();
    handle(deps, LambdaEvent::new(event, Context::default()))
        .await
        .expect("the response was delivered");
    let caught = catcher.caught();
    assert_eq!(caught.len(), before + 1, "exactly one response per request");
    let last = caught.last().unwrap();
    assert_eq!(last.method, "PUT");
    assert!(
        last.content_type.as_deref().unwrap_or("").is_empty(),
        "no content type, as the pre-signed URL requires"
    );
    serde_json::from_str(&last.body).unwrap()
}

async fn employees(admin: &mut mysql_async::Conn) -> u64 {
    admin
        .query_first("SELECT COUNT(*) FROM Employees")
        .await
        .unwrap()
        .unwrap()
}

#[test]
fn the_sample_events_parse_into_requests_and_pool_specs() {
    for (text, kind) in [(CREATE, "Create"), (UPDATE, "Update"), (DELETE, "Delete")] {
        let request: CustomResourceRequest = serde_json::from_str(text).unwrap();
        assert_eq!(request.request_type, kind);
        let spec = PoolSpec::from_properties(&request.resource_properties).unwrap();
        assert_eq!(spec.pool, "main");
    }
}

#[tokio::test]
async fn create_twice_update_and_delete_a_pool() {
    let deps = deps().await;
    let catcher = ResponseCatcher::start(200).await;
    let pool = unique("seed");
    let mut admin = mysql::admin().await;

    // Create: schema, rows and pool, answered SUCCESS with the pool's data
    let create = request(CREATE, catcher.url(), &pool, json!({"Budget": "7"}));
    let answer = invoke(&deps, &catcher, create.clone()).await;
    assert_eq!(answer["Status"], "SUCCESS", "{answer}");
    assert_eq!(answer["PhysicalResourceId"], format!("LeasePool-{pool}"));
    assert_eq!(answer["Data"], json!({"Pool": pool, "Budget": 7}));
    for key in ["StackId", "RequestId", "LogicalResourceId"] {
        assert_eq!(answer[key], create[key]);
    }
    assert_eq!(deps.broker.pool(&pool).await.unwrap().budget, 7);
    assert_eq!(employees(&mut admin).await, 3);

    // Create again: nothing changes, still SUCCESS with the same id
    let again = invoke(&deps, &catcher, create).await;
    assert_eq!(
        (
            again["Status"].as_str(),
            again["PhysicalResourceId"].clone()
        ),
        (Some("SUCCESS"), answer["PhysicalResourceId"].clone())
    );
    assert_eq!(employees(&mut admin).await, 3);

    // Update to a budget derived from max_connections while a lease is live
    deps.broker
        .acquire(&AcquireRequest::new(&pool, "live", 600))
        .await
        .unwrap();
    let max: u64 = admin
        .query_first("SELECT @@max_connections")
        .await
        .unwrap()
        .unwrap();
    let update = request(
        UPDATE,
        catcher.url(),
        &pool,
        json!({"BudgetPercent": "50", "Reserve": "2"}),
    );
    let updated = invoke(&deps, &catcher, update).await;
    let expected = (max * 50 / 100 - 2) as u32;
    assert_eq!(updated["Status"], "SUCCESS", "{updated}");
    assert_eq!(updated["Data"]["Budget"], expected);
    assert_eq!(updated["PhysicalResourceId"], answer["PhysicalResourceId"]);
    let record = deps.broker.pool(&pool).await.unwrap();
    assert_eq!(
        (record.budget, record.in_use),
        (expected, 1),
        "the live lease survived"
    );

    // Delete: the pool and its leases are gone; deleting again still succeeds
    let delete = request(
        DELETE,
        catcher.url(),
        &pool,
        json!({"BudgetPercent": "50", "Reserve": "2"}),
    );
    assert_eq!(
        invoke(&deps, &catcher, delete.clone()).await["Status"],
        "SUCCESS"
    );
    assert_eq!(
        deps.broker.pool(&pool).await.unwrap_err().name(),
        "PoolNotFound"
    );
    assert_eq!(invoke(&deps, &catcher, delete).await["Status"], "SUCCESS");
}

#[tokio::test]
async fn applications_are_created_updated_with_live_leases_kept_and_deleted() {
    let deps = deps().await;
    let catcher = ResponseCatcher::start(200).await;
    let pool = unique("seed-apps");
    let apps = json!([
        {"Name": "web", "Reserved": "4", "Max": "0", "Weight": "2"},
        {"Name": "batch", "Reserved": "1", "Max": "3"}
    ]);

    // Create, twice: the same two applications
    let create = request(
        CREATE,
        catcher.url(),
        &pool,
        json!({"Budget": "6", "SeedData": "false", "Applications": apps}),
    );
    for _ in 0..2 {
        let answer = invoke(&deps, &catcher, create.clone()).await;
        assert_eq!(answer["Status"], "SUCCESS", "{answer}");
    }
    let record = deps.broker.pool(&pool).await.unwrap();
    let shares: Vec<(String, u32, u32, u32)> = record
        .apps
        .iter()
        .map(|(n, a)| (n.to_string(), a.reserved, a.max, a.weight))
        .collect();
    assert_eq!(shares, [("batch".into(), 1, 3, 1), ("web".into(), 4, 6, 2)]);
    // an acquire must name one of them
    let unnamed = deps
        .broker
        .acquire(&AcquireRequest::new(&pool, "x", 60))
        .await;
    assert_eq!(unnamed.unwrap_err().name(), "InvalidInput");
    for i in 0..3 {
        let request = AcquireRequest::new(&pool, format!("b{i}"), 600).for_app("batch");
        deps.broker.acquire(&request).await.unwrap();
    }

    // Update: batch shrinks to a max of 1 while it holds 3 leases; they stay
    let update = request(
        UPDATE,
        catcher.url(),
        &pool,
        json!({"Budget": "6", "SeedData": "false", "Applications": [
            {"Name": "web", "Reserved": "4"}, {"Name": "batch", "Max": "1"}
        ]}),
    );
    assert_eq!(invoke(&deps, &catcher, update).await["Status"], "SUCCESS");
    let audit = deps.broker.audit(&pool, false).await.unwrap();
    assert!(audit.consistent, "{audit:?}");
    let batch = audit.applications.values().next().unwrap();
    assert_eq!((batch.max, batch.in_use, batch.lease_records), (1, 3, 3));
    let more = AcquireRequest::new(&pool, "b9", 600).for_app("batch");
    assert_eq!(
        deps.broker.acquire(&more).await.unwrap_err().name(),
        "ConnectionsExhausted"
    );

    // An update whose reservations do not fit answers FAILED and changes nothing
    let before = deps.broker.pool(&pool).await.unwrap();
    let too_much = request(
        UPDATE,
        catcher.url(),
        &pool,
        json!({"Budget": "6", "SeedData": "false", "Applications": [
            {"Name": "web", "Reserved": "5"}, {"Name": "batch", "Reserved": "2"}
        ]}),
    );
    let failed = invoke(&deps, &catcher, too_much).await;
    assert_eq!(failed["Status"], "FAILED");
    assert!(
        failed["Reason"].as_str().unwrap().contains("InvalidInput"),
        "{failed}"
    );
    assert_eq!(deps.broker.pool(&pool).await.unwrap(), before);

    // Delete removes the pool with its leases
    let delete = request(DELETE, catcher.url(), &pool, json!({"Budget": "6"}));
    assert_eq!(invoke(&deps, &catcher, delete).await["Status"], "SUCCESS");
    assert_eq!(
        deps.broker.pool(&pool).await.unwrap_err().name(),
        "PoolNotFound"
    );
}

#[tokio::test]
async fn a_create_with_the_database_down_answers_failed_with_the_reason() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let deps = deps_with(DbConfig {
        port,
        ..admin_config(&[])
    })
    .await;
    let catcher = ResponseCatcher::start(200).await;
    let pool = unique("seed-down");
    let answer = invoke(
        &deps,
        &catcher,
        request(CREATE, catcher.url(), &pool, json!({"Budget": "3"})),
    )
    .await;
    assert_eq!(answer["Status"], "FAILED");
    let reason = answer["Reason"].as_str().unwrap();
    assert!(reason.starts_with("DatabaseUnavailable"), "{reason}");
    assert!(
        answer["PhysicalResourceId"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
    assert_eq!(
        deps.broker.pool(&pool).await.unwrap_err().name(),
        "PoolNotFound",
        "nothing written"
    );

    // The rollback's Delete of the failed resource succeeds.
    let mut delete = request(DELETE, catcher.url(), &pool, json!({"Budget": "3"}));
    delete["PhysicalResourceId"] = answer["PhysicalResourceId"].clone();
    assert_eq!(invoke(&deps, &catcher, delete).await["Status"], "SUCCESS");
}

#[tokio::test]
async fn invalid_properties_and_malformed_requests_answer_failed() {
    let deps = deps().await;
    let catcher = ResponseCatcher::start(200).await;
    let pool = unique("seed-bad");
    let bad = request(CREATE, catcher.url(), &pool, json!({"Budget": "0"}));
    let answer = invoke(&deps, &catcher, bad).await;
    assert_eq!(answer["Status"], "FAILED");
    assert!(
        answer["Reason"]
            .as_str()
            .unwrap()
            .starts_with("InvalidInput")
    );
    assert_eq!(
        deps.broker.pool(&pool).await.unwrap_err().name(),
        "PoolNotFound"
    );

    let mut unknown_type = request(CREATE, catcher.url(), &pool, json!({"Budget": "1"}));
    unknown_type["RequestType"] = json!("Upsert");
    assert_eq!(
        invoke(&deps, &catcher, unknown_type).await["Status"],
        "FAILED"
    );

    // Missing required fields, but a ResponseURL: still answered, so the stack fails fast.
    let malformed =
        json!({"RequestType": "Create", "ResponseURL": catcher.url(), "RequestId": "r1"});
    let answer = invoke(&deps, &catcher, malformed).await;
    assert_eq!(
        (answer["Status"].as_str(), answer["RequestId"].as_str()),
        (Some("FAILED"), Some("r1"))
    );

    // Without a ResponseURL there is nobody to answer: a typed error instead.
    let err = handle(
        &deps,
        LambdaEvent::new(json!({"RequestType": "Create"}), Context::default()),
    )
    .await
    .unwrap_err();
    assert_eq!(
        lambda_runtime::Diagnostic::from(err).error_type,
        "InvalidInput"
    );
}

#[tokio::test]
async fn a_database_that_never_answers_gets_failed_before_the_deadline() {
    // GIVEN a "database" that accepts connections and then says nothing
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let keep = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let deps = deps_with(DbConfig {
        port,
        ..admin_config(&[])
    })
    .await;
    let catcher = ResponseCatcher::start(200).await;
    // AND an invocation with six seconds left (five are kept back for the answer)
    let mut context = Context::default();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    context.deadline = now_ms + 6_000;
    let event = request(
        CREATE,
        catcher.url(),
        &unique("seed-slow"),
        json!({"Budget": "2"}),
    );
    handle(&deps, LambdaEvent::new(event, context))
        .await
        .unwrap();
    // THEN FAILED was delivered, naming the timeout, before the deadline
    let answer: Value = serde_json::from_str(&catcher.caught()[0].body).unwrap();
    assert_eq!(answer["Status"], "FAILED");
    assert!(
        answer["Reason"].as_str().unwrap().starts_with("Timeout"),
        "{answer}"
    );
    let done_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(done_ms < now_ms + 6_000, "answered before the deadline");
    keep.abort();
}
