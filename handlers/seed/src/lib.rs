//! The seed function: the CloudFormation custom resource that prepares a pool.
//!
//! It signs in to the database as the administrator (the RDS master user's secret, which no
//! other function can read). On Create and Update it creates the sample `Employees` table
//! (unless `SeedData` is false), resolves the pool's budget (`Budget`, or `BudgetPercent` of
//! the database's `max_connections` minus `Reserve`), sets up the application account the
//! query function signs in as (`DB_APP_AUTH`; only the allow-listed queries' grants, at most
//! the budget's connections: [`leasehold_db::account`]) and writes the pool record, keeping
//! live leases. With `Applications` (a list of `{Name, Reserved?, Max?, Weight?}`; `Max` 0 or
//! absent means the budget, `Weight` defaults to 1) the budget is divided between those
//! applications; an empty or absent list leaves one budget for everybody. An Update that
//! shrinks or removes a share keeps live leases, like a budget cut. On Delete it removes the pool record and its leases; the account stays, since
//! a pool renamed in an update is created under its new name before the old one is deleted. Every request is answered by a PUT to the
//! pre-signed `ResponseURL`, SUCCESS or FAILED with a reason, before the function's own
//! deadline, so a stack never waits an hour for a custom resource.
//!
//! `PhysicalResourceId` is `LeasePool-<pool>`: stable across updates of the budget, new when
//! the pool name changes (CloudFormation then deletes the old pool).
//!
//! Errors of the function itself (`errorType`): `InvalidInput` (a request without a
//! `ResponseURL` to answer) and `ResponseNotDelivered`.
//!
//! # Layout
//! - `lib.rs`: the request, [`PoolSpec`], [`handle`] (process, answer, deliver), and
//!   [`SeedError`] with its `Diagnostic`.
//! - `main.rs`: the runtime loop, with the broker, the database and the HTTP client built once
//!   per container.

use lambda_runtime::{Diagnostic, LambdaEvent};
use leasehold_broker::{AppName, AppShare, BrokerError, BudgetPolicy};
use leasehold_db::{AppAccount, DbError};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::{error, info, warn};

pub use leasehold_broker::Broker;
pub use leasehold_db::Database;

/// Prefix of every physical resource id this function hands out.
pub const PHYSICAL_ID_PREFIX: &str = "LeasePool-";
/// CloudFormation rejects responses whose reason is longer than 4 KiB.
const MAX_REASON_BYTES: usize = 3_800;
/// Time kept back before the function's deadline to deliver a FAILED response.
const RESPONSE_MARGIN: Duration = Duration::from_secs(5);
/// Work budget when the invocation carries no deadline (direct calls in tests and tools).
const DEFAULT_WORK_BUDGET: Duration = Duration::from_secs(60);
const PUT_ATTEMPTS: u32 = 3;

pub struct SeedDeps {
    pub broker: Broker,
    /// Signed in as the administrator.
    pub db: Database,
    /// The application account to set up, when `DB_APP_AUTH` is set.
    pub account: Option<AppAccount>,
    pub http: reqwest::Client,
}

/// The standard custom resource request (fields this function reads).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CustomResourceRequest {
    pub request_type: String,
    #[serde(rename = "ResponseURL")]
    pub response_url: String,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
    #[serde(default)]
    pub physical_resource_id: Option<String>,
    #[serde(default)]
    pub resource_properties: Map<String, Value>,
}

/// What a pool should look like, from `ResourceProperties` (CloudFormation sends every value
/// as a string; numbers and booleans are accepted too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSpec {
    pub pool: String,
    pub budget: BudgetPolicy,
    pub seed_data: bool,
    /// The applications the budget is divided between (none: one budget for everybody).
    pub applications: Vec<AppShare>,
}

/// `ServiceToken` and `ServiceTimeout` belong to CloudFormation (it passes them along) and
/// `Revision` may be changed to force an Update that re-seeds; the seed ignores all three.
const IGNORED_PROPERTIES: [&str; 3] = ["ServiceToken", "ServiceTimeout", "Revision"];

const KNOWN_PROPERTIES: [&str; 6] = [
    "Pool",
    "Budget",
    "BudgetPercent",
    "Reserve",
    "SeedData",
    "Applications",
];
const APPLICATION_PROPERTIES: [&str; 4] = ["Name", "Reserved", "Max", "Weight"];

impl PoolSpec {
    pub fn from_properties(props: &Map<String, Value>) -> Result<Self, BrokerError> {
        if let Some(unknown) = props.keys().find(|k| {
            !KNOWN_PROPERTIES.contains(&k.as_str()) && !IGNORED_PROPERTIES.contains(&k.as_str())
        }) {
            return Err(invalid(format!(
                "unknown property {unknown:?} (known: {})",
                KNOWN_PROPERTIES.join(", ")
            )));
        }
        let pool = match props.get("Pool") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(invalid("property Pool (a string) is required")),
        };
        leasehold_broker::PoolName::parse(&pool)?;
        let budget = match (
            number(props, "Budget")?,
            number(props, "BudgetPercent")?,
            number(props, "Reserve")?,
        ) {
            (Some(budget), None, None) => BudgetPolicy::Explicit(budget),
            (None, Some(percent), reserve) => BudgetPolicy::Percent {
                percent,
                reserve: reserve.unwrap_or(0),
            },
            (Some(_), Some(_), _) => {
                return Err(invalid("give either Budget or BudgetPercent, not both"));
            }
            (Some(_), None, Some(_)) => {
                return Err(invalid("Reserve applies only with BudgetPercent"));
            }
            (None, None, _) => return Err(invalid("give Budget or BudgetPercent")),
        };
        budget.validate()?;
        let seed_data = match props.get("SeedData") {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
            Some(other) => {
                return Err(invalid(format!(
                    "SeedData must be true or false, not {other}"
                )));
            }
        };
        let applications = match props.get("Applications") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| application(i, item))
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(invalid(
                    "Applications must be a list of {Name, Reserved, Max, Weight}",
                ));
            }
        };
        if let BudgetPolicy::Explicit(budget) = budget {
            // (a derived budget is checked once it is known)
            leasehold_broker::shares::validate(budget, &applications)?;
        }
        Ok(PoolSpec {
            pool,
            budget,
            seed_data,
            applications,
        })
    }

    pub fn physical_id(&self) -> String {
        format!("{PHYSICAL_ID_PREFIX}{}", self.pool)
    }
}

/// One entry of `Applications`.
fn application(index: usize, item: &Value) -> Result<AppShare, BrokerError> {
    let Value::Object(fields) = item else {
        return Err(invalid(format!(
            "Applications[{index}] must be an object with Name, Reserved, Max and Weight"
        )));
    };
    if let Some(unknown) = fields
        .keys()
        .find(|k| !APPLICATION_PROPERTIES.contains(&k.as_str()))
    {
        return Err(invalid(format!(
            "Applications[{index}]: unknown property {unknown:?} (known: {})",
            APPLICATION_PROPERTIES.join(", ")
        )));
    }
    let name = match fields.get("Name") {
        Some(Value::String(name)) => {
            AppName::parse(name).map_err(|e| invalid(format!("Applications[{index}]: {e}")))?
        }
        _ => return Err(invalid(format!("Applications[{index}]: Name is required"))),
    };
    let field = |key: &str| {
        number(fields, key).map_err(|e| invalid(format!("Applications[{index}] ({name}): {e}")))
    };
    Ok(AppShare {
        reserved: field("Reserved")?.unwrap_or(0),
        max: field("Max")?.filter(|max| *max > 0),
        weight: field("Weight")?.unwrap_or(1),
        name,
    })
}

fn invalid(message: impl Into<String>) -> BrokerError {
    BrokerError::InvalidInput(message.into())
}

fn number(props: &Map<String, Value>, key: &str) -> Result<Option<u32>, BrokerError> {
    let parsed = match props.get(key) {
        None => return Ok(None),
        Some(Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Some(Value::String(s)) => s.trim().parse::<u32>().ok(),
        Some(_) => None,
    };
    parsed
        .map(Some)
        .ok_or_else(|| invalid(format!("{key} must be a non-negative whole number")))
}

/// Why a request failed, as CloudFormation will show it.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("{name}: {source}", name = .0.name(), source = .0)]
    Broker(#[from] BrokerError),
    #[error("{name}: {source}", name = .0.name(), source = .0)]
    Db(#[from] DbError),
    #[error("Timeout: no result within {0} seconds; nothing further will happen")]
    Timeout(u64),
    #[error("InvalidInput: unsupported RequestType {0:?}")]
    RequestType(String),
}

/// Errors of the function itself (CloudFormation only ever sees the PUT response).
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("malformed custom resource request: {0}")]
    InvalidInput(#[source] serde_json::Error),
    /// The response URL answered with an error status (the last one, after retries).
    #[error("the response could not be delivered to ResponseURL: HTTP {0}")]
    ResponseRefused(reqwest::StatusCode),
    /// The PUT did not get an answer (the last failure, after retries).
    #[error("the response could not be delivered to ResponseURL: {0}")]
    ResponseNotDelivered(#[source] reqwest::Error),
}

impl From<SeedError> for Diagnostic {
    fn from(error: SeedError) -> Self {
        let error_type = match error {
            SeedError::InvalidInput(_) => "InvalidInput",
            SeedError::ResponseRefused(_) | SeedError::ResponseNotDelivered(_) => {
                "ResponseNotDelivered"
            }
        };
        Diagnostic {
            error_type: error_type.to_owned(),
            error_message: error.to_string(),
        }
    }
}

pub async fn handle(deps: &SeedDeps, event: LambdaEvent<Value>) -> Result<Value, SeedError> {
    let budget = work_budget(event.context.deadline);
    let request: CustomResourceRequest = match serde_json::from_value(event.payload.clone()) {
        Ok(request) => request,
        Err(e) => return answer_malformed(deps, &event.payload, e).await,
    };
    info!(
        request_type = %request.request_type,
        logical_id = %request.logical_resource_id,
        "custom resource request"
    );
    let outcome = match tokio::time::timeout(budget, process(deps, &request)).await {
        Ok(outcome) => outcome,
        Err(_) => Err((
            fallback_physical_id(&request),
            Failure::Timeout(budget.as_secs()),
        )),
    };
    let response = match outcome {
        Ok((physical_id, data)) => {
            response(&request, "SUCCESS", &success_reason(), &physical_id, data)
        }
        Err((physical_id, failure)) => {
            error!(error = %failure, "custom resource request failed");
            response(
                &request,
                "FAILED",
                &failure.to_string(),
                &physical_id,
                Value::Null,
            )
        }
    };
    deliver(&deps.http, &request.response_url, &response).await?;
    Ok(response)
}

type Outcome = Result<(String, Value), (String, Failure)>;

async fn process(deps: &SeedDeps, request: &CustomResourceRequest) -> Outcome {
    match request.request_type.as_str() {
        "Create" | "Update" => {
            let spec = PoolSpec::from_properties(&request.resource_properties)
                .map_err(|e| (fallback_physical_id(request), Failure::from(e)))?;
            let physical_id = spec.physical_id();
            match apply(deps, &spec).await {
                Ok((budget, user)) => {
                    let mut data = json!({"Pool": spec.pool, "Budget": budget});
                    if let Some(user) = user {
                        data["DatabaseUser"] = json!(user);
                    }
                    Ok((physical_id, data))
                }
                Err(failure) => Err((physical_id, failure)),
            }
        }
        "Delete" => {
            let physical_id = fallback_physical_id(request);
            // The physical id names the pool this resource created; anything else (a Create
            // that failed before it had a pool) has nothing to remove.
            let Some(pool) = physical_id
                .strip_prefix(PHYSICAL_ID_PREFIX)
                .map(str::to_owned)
            else {
                return Ok((physical_id, Value::Null));
            };
            if leasehold_broker::PoolName::parse(&pool).is_err() {
                return Ok((physical_id, Value::Null));
            }
            match deps.broker.delete_pool(&pool).await {
                Ok(existed) => {
                    info!(pool = %pool, existed, "pool deleted");
                    Ok((physical_id, json!({"Pool": pool})))
                }
                Err(e) => Err((physical_id, e.into())),
            }
        }
        other => Err((
            fallback_physical_id(request),
            Failure::RequestType(other.to_owned()),
        )),
    }
}

/// Seeds the database when asked, resolves the budget, sets up the application account with
/// the budget as its connection limit, and writes the pool; the budget and the account's name.
async fn apply(deps: &SeedDeps, spec: &PoolSpec) -> Result<(u32, Option<String>), Failure> {
    let max_connections = if spec.seed_data || spec.budget.needs_max_connections() {
        Some(deps.db.prepare(spec.seed_data).await?)
    } else {
        None
    };
    let budget = spec.budget.resolve(max_connections)?;
    // Shares that do not fit the budget fail before anything is changed.
    leasehold_broker::shares::validate(budget, &spec.applications)?;
    // The account first: a pool is only written once its callers can sign in within it.
    let user = match &deps.account {
        Some(account) => {
            let user = deps.db.set_up_account(account, budget).await?;
            info!(user = %user, max_user_connections = budget, "application account ready");
            Some(user)
        }
        None => None,
    };
    let record = deps
        .broker
        .put_shared_pool(&spec.pool, budget, &spec.applications)
        .await?;
    info!(pool = %spec.pool, budget, in_use = record.in_use, max_connections, applications = spec.applications.len(), "pool ready");
    Ok((budget, user))
}

/// The id to report when the request itself does not yield one.
fn fallback_physical_id(request: &CustomResourceRequest) -> String {
    request
        .physical_resource_id
        .clone()
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| format!("{}-{}", request.logical_resource_id, request.request_id))
}

fn success_reason() -> String {
    match std::env::var("AWS_LAMBDA_LOG_STREAM_NAME") {
        Ok(stream) => format!("See CloudWatch log stream {stream}"),
        Err(_) => "OK".to_owned(),
    }
}

fn response(
    request: &CustomResourceRequest,
    status: &str,
    reason: &str,
    physical_id: &str,
    data: Value,
) -> Value {
    let mut body = json!({
        "Status": status,
        "Reason": truncate(reason, MAX_REASON_BYTES),
        "PhysicalResourceId": physical_id,
        "StackId": request.stack_id,
        "RequestId": request.request_id,
        "LogicalResourceId": request.logical_resource_id,
        "NoEcho": false,
    });
    if !data.is_null() {
        body["Data"] = data;
    }
    body
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// A request that does not parse is still answered when it carries a ResponseURL, so the
/// stack fails fast instead of waiting for the custom resource timeout.
async fn answer_malformed(
    deps: &SeedDeps,
    raw: &Value,
    problem: serde_json::Error,
) -> Result<Value, SeedError> {
    let field = |key: &str| {
        raw.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let url = field("ResponseURL");
    if url.is_empty() {
        return Err(SeedError::InvalidInput(problem));
    }
    let request = CustomResourceRequest {
        request_type: field("RequestType"),
        response_url: url,
        stack_id: field("StackId"),
        request_id: field("RequestId"),
        logical_resource_id: field("LogicalResourceId"),
        physical_resource_id: raw
            .get("PhysicalResourceId")
            .and_then(Value::as_str)
            .map(str::to_owned),
        resource_properties: Map::new(),
    };
    let reason = format!("InvalidInput: malformed custom resource request: {problem}");
    let body = response(
        &request,
        "FAILED",
        &reason,
        &fallback_physical_id(&request),
        Value::Null,
    );
    deliver(&deps.http, &request.response_url, &body).await?;
    Ok(body)
}

/// PUTs the response to the pre-signed URL, retrying transient failures.
async fn deliver(http: &reqwest::Client, url: &str, body: &Value) -> Result<(), SeedError> {
    let text = body.to_string();
    let mut attempt = 0;
    loop {
        // The pre-signed URL was signed without a content type, so none may be sent.
        let result = http
            .put(url)
            .header("content-type", "")
            .body(text.clone())
            .send()
            .await;
        let failure = match result {
            Ok(r) if r.status().is_success() => {
                info!(status = %body["Status"], "response delivered");
                return Ok(());
            }
            Ok(r) if r.status().is_client_error() => {
                return Err(SeedError::ResponseRefused(r.status()));
            }
            Ok(r) => SeedError::ResponseRefused(r.status()),
            Err(e) => SeedError::ResponseNotDelivered(e),
        };
        warn!(attempt, error = %failure, "response delivery failed");
        attempt += 1;
        if attempt == PUT_ATTEMPTS {
            return Err(failure);
        }
        tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
    }
}

/// Time left for the work, keeping a margin to deliver a FAILED answer before the deadline.
fn work_budget(deadline_ms: u64) -> Duration {
    if deadline_ms == 0 {
        return DEFAULT_WORK_BUDGET;
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Duration::from_millis(deadline_ms.saturating_sub(now_ms))
        .saturating_sub(RESPONSE_MARGIN)
        .max(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn properties_arrive_as_strings_and_resolve_to_a_spec() {
        let spec = PoolSpec::from_properties(&props(json!({
            "ServiceToken": "arn:aws:lambda:us-east-1:1:function:seed", "ServiceTimeout": "300",
            "Revision": "2", "Pool": "orders", "BudgetPercent": "80", "Reserve": "5", "SeedData": "false"
        })))
        .unwrap();
        assert_eq!(
            spec,
            PoolSpec {
                pool: "orders".into(),
                budget: BudgetPolicy::Percent {
                    percent: 80,
                    reserve: 5
                },
                seed_data: false,
                applications: Vec::new(),
            }
        );
        assert_eq!(spec.physical_id(), "LeasePool-orders");
    }

    #[test]
    fn applications_arrive_as_strings_and_max_zero_means_the_budget() {
        let spec = PoolSpec::from_properties(&props(json!({
            "Pool": "orders", "Budget": "10",
            "Applications": [
                {"Name": "web", "Reserved": "6", "Max": "0", "Weight": "2"},
                {"Name": "batch", "Reserved": 1, "Max": 4}
            ]
        })))
        .unwrap();
        let web = &spec.applications[0];
        assert_eq!(
            (web.name.as_str(), web.reserved, web.max, web.weight),
            ("web", 6, None, 2)
        );
        let batch = &spec.applications[1];
        assert_eq!((batch.reserved, batch.max, batch.weight), (1, Some(4), 1));
    }

    #[test]
    fn bad_properties_are_named() {
        let cases = [
            json!({}),
            json!({"Pool": "p"}),
            json!({"Pool": "p", "Budget": "0"}),
            json!({"Pool": "p", "Budget": "ten"}),
            json!({"Pool": "p", "Budget": "5", "BudgetPercent": "50"}),
            json!({"Pool": "p", "Budget": "5", "Reserve": "1"}),
            json!({"Pool": "p", "BudgetPercent": "150"}),
            json!({"Pool": "bad pool", "Budget": "5"}),
            json!({"Pool": "p", "Budget": "5", "SeedData": "maybe"}),
            json!({"Pool": "p", "Budget": "5", "Budgte": "5"}),
            // Applications: not a list, no name, negative or fractional shares, reservations
            // above the budget, max below reserved, an unknown key, a zero weight.
            json!({"Pool": "p", "Budget": "5", "Applications": "web"}),
            json!({"Pool": "p", "Budget": "5", "Applications": [{"Reserved": "1"}]}),
            json!({"Pool": "p", "Budget": "5", "Applications": [{"Name": "a", "Reserved": "-1"}]}),
            json!({"Pool": "p", "Budget": "5", "Applications": [{"Name": "a", "Reserved": "1.5"}]}),
            json!({"Pool": "p", "Budget": "5", "Applications": [{"Name": "a", "Reserved": "6"}]}),
            json!({"Pool": "p", "Budget": "5", "Applications": [{"Name": "a", "Reserved": "3", "Max": "2"}]}),
            json!({"Pool": "p", "Budget": "5", "Applications": [{"Name": "a", "Share": "1"}]}),
            json!({"Pool": "p", "Budget": "5", "Applications": [{"Name": "a", "Weight": "0"}]}),
            json!({"Pool": "p", "Budget": "5", "Applications": [{"Name": "a b"}]}),
        ];
        for case in cases {
            let err = PoolSpec::from_properties(&props(case.clone())).unwrap_err();
            assert_eq!(err.name(), "InvalidInput", "{case}");
        }
    }

    #[test]
    fn reasons_are_cut_below_four_kibibytes_on_a_character_boundary() {
        let long = "é".repeat(5000);
        let cut = truncate(&long, MAX_REASON_BYTES);
        assert!(cut.len() < 4096 && cut.ends_with("..."));
    }

    #[test]
    fn work_budget_keeps_a_margin_before_the_deadline() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let budget = work_budget(now + 30_000);
        assert!(budget <= Duration::from_secs(25) && budget >= Duration::from_secs(24));
        assert_eq!(work_budget(0), DEFAULT_WORK_BUDGET);
        assert_eq!(work_budget(now), Duration::from_secs(1));
    }
}
