//! Where every figure of the report comes from: the local stack (Step Functions API, `/stats`),
//! moto (the lease table, CloudWatch metrics, the admin secret) and MariaDB itself.

use super::error::DemoError;
use super::history::Event;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
use aws_sdk_sfn::primitives::DateTime;
use leasehold_broker::{
    AppShare, Broker, DynamoStore, Lease, LeaseStore, NullSink, PoolName, PoolRecord, SystemClock,
    Waiter,
};
use leasehold_local::lambda::FunctionStats;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, SslOpts};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// The pool the template's seed creates (`PoolName`'s default).
pub const POOL: &str = "main";
/// The CloudWatch namespace of the pool's metrics (`MetricsNamespace`'s default).
pub const NAMESPACE: &str = "RDSLambda";

/// The environment `scripts/demo.sh` exports: `.local/env` and the stack's endpoints.
#[derive(Debug, Clone)]
pub struct Env {
    pub stack_url: String,
    pub lease_table: String,
    pub connection_machine: String,
    pub harness_machine: String,
    pub query_function: String,
    pub release_function: String,
    pub db_host: String,
    pub db_port: u16,
    pub db_name: String,
    pub admin_secret: String,
    /// `DB_TLS_CA_FILE`: the local database's authority (it takes TLS connections only).
    pub tls_ca_file: Option<String>,
    /// The stack's account for the query function (`DATABASE_ACCOUNT_LEASEHOLD_APP` of its
    /// stack.env), capped at the pool's budget by the seed.
    pub app_account: Option<String>,
}

impl Env {
    pub fn from_env() -> Result<Self, DemoError> {
        fn var(key: &'static str) -> Result<String, DemoError> {
            std::env::var(key)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .ok_or(DemoError::MissingEnv(key))
        }
        // The SDK reads these itself; checking them here gives a clear message instead of a
        // call to a real AWS endpoint.
        for key in ["AWS_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SFN"] {
            var(key)?;
        }
        let port = var("DB_PORT")?;
        Ok(Env {
            stack_url: var("LOCAL_STACK_URL")?.trim_end_matches('/').to_owned(),
            lease_table: var("LEASE_TABLE_NAME")?,
            connection_machine: var("CONNECTION_STATE_MACHINE_ARN")?,
            harness_machine: var("HARNESS_STATE_MACHINE_ARN")?,
            query_function: var("QUERY_FUNCTION_NAME")?,
            release_function: var("RELEASE_FUNCTION_NAME")?,
            db_host: var("DB_HOST")?,
            db_port: port
                .parse()
                .map_err(|_| DemoError::Setup(format!("DB_PORT is not a port: {port:?}")))?,
            db_name: var("DB_NAME")?,
            admin_secret: var("DB_ADMIN_SECRET_ARN")?,
            tls_ca_file: var("DB_TLS_CA_FILE").ok(),
            app_account: var("DATABASE_ACCOUNT_LEASEHOLD_APP").ok(),
        })
    }

    /// `arn:aws:states:<region>:<account>:...` → (region, account).
    pub fn region_and_account(&self) -> (String, String) {
        let parts: Vec<&str> = self.connection_machine.split(':').collect();
        (
            parts.get(3).copied().unwrap_or("us-east-1").to_owned(),
            parts.get(4).copied().unwrap_or("123456789012").to_owned(),
        )
    }
}

/// What the demo reads of the local stack's `/stats`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StackStats {
    /// Counters per function (by function name), as the stack keeps them.
    pub functions: BTreeMap<String, FunctionStats>,
    /// Metric lines forwarded to CloudWatch so far.
    pub metrics_published: Option<u64>,
}

/// The clients, built once.
pub struct Sources {
    pub env: Env,
    pub sfn: aws_sdk_sfn::Client,
    /// The lease table, read through the broker's own adapter.
    pub leases: DynamoStore,
    /// The broker over the same table, to divide the pool between applications and back
    /// (the hotspot scenario); it emits no metrics and completes no task.
    pub broker: Broker,
    pub pool: PoolName,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub http: reqwest::Client,
}

pub fn millis(t: &DateTime) -> i64 {
    t.to_millis().unwrap_or_default()
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Every item of a paginated Step Functions request, 1,000 a page.
macro_rules! all_items {
    ($request:expr) => {
        $request
            .into_paginator()
            .page_size(1000)
            .items()
            .send()
            .try_collect()
            .await
    };
}

/// One child execution as `ListExecutions` shows it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub arn: String,
    pub status: String,
    pub start_ms: i64,
}

impl Sources {
    pub async fn new(env: Env) -> Result<Self, DemoError> {
        let sdk = aws_config::load_from_env().await;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| DemoError::service("HTTP client", e))?;
        let pool = PoolName::parse(POOL)
            .map_err(|e| DemoError::service(format!("pool name {POOL}"), e))?;
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        let broker = Broker::new(
            std::sync::Arc::new(DynamoStore::new(dynamodb.clone(), env.lease_table.clone())),
            std::sync::Arc::new(NullSink),
            std::sync::Arc::new(SystemClock),
        );
        Ok(Sources {
            leases: DynamoStore::new(dynamodb, env.lease_table.clone()),
            broker,
            pool,
            env,
            sfn: aws_sdk_sfn::Client::new(&sdk),
            cloudwatch: aws_sdk_cloudwatch::Client::new(&sdk),
            secrets: aws_sdk_secretsmanager::Client::new(&sdk),
            http,
        })
    }

    // ------------------------------------------------------------------ MariaDB

    /// An administrator connection over TCP; the password comes from the local Secrets
    /// Manager and goes nowhere else.
    pub async fn admin_connection(&self) -> Result<Conn, DemoError> {
        let secret = self
            .secrets
            .get_secret_value()
            .secret_id(&self.env.admin_secret)
            .send()
            .await
            .map_err(|e| DemoError::service("reading the database admin secret", e))?;
        let creds: Value = secret
            .secret_string()
            .and_then(|s| serde_json::from_str(s).ok())
            .ok_or_else(|| DemoError::Setup("the admin secret is not JSON".into()))?;
        let mut opts = OptsBuilder::default()
            .ip_or_hostname(self.env.db_host.clone())
            .tcp_port(self.env.db_port)
            .user(creds["username"].as_str())
            .pass(creds["password"].as_str())
            .db_name(Some(self.env.db_name.clone()))
            .prefer_socket(false);
        if let Some(ca) = &self.env.tls_ca_file {
            opts = opts.ssl_opts(
                SslOpts::default()
                    .with_root_certs(vec![std::path::PathBuf::from(ca).into()])
                    .with_disable_built_in_roots(true),
            );
        }
        Conn::new(opts)
            .await
            .map_err(|e| DemoError::database("connecting as the administrator", e))
    }

    /// Sets the connection limit of the query function's account (`MAX_USER_CONNECTIONS`, 0
    /// for none); returns the limit it had, or `None` when the stack names no account.
    pub async fn set_account_limit(
        &self,
        conn: &mut Conn,
        limit: u64,
    ) -> Result<Option<u64>, DemoError> {
        let Some(account) = &self.env.app_account else {
            return Ok(None);
        };
        let before: Option<u64> = conn
            .exec_first(
                "SELECT max_user_connections FROM mysql.user WHERE User = ? AND Host = '%'",
                (account,),
            )
            .await
            .map_err(|e| DemoError::database("reading the account's connection limit", e))?;
        // The name is the stack's own (letters, digits, underscores), as it wrote it.
        conn.query_drop(format!(
            "ALTER USER '{account}'@'%' WITH MAX_USER_CONNECTIONS {limit}"
        ))
        .await
        .map_err(|e| DemoError::database("setting the account's connection limit", e))?;
        Ok(before)
    }

    // ------------------------------------------------------------------ the lease table

    /// The pool record: (budget, inUse, waiting).
    pub async fn pool_record(&self) -> Result<(i64, i64, i64), DemoError> {
        let record = self
            .leases
            .pool(&self.pool)
            .await
            .map_err(|e| DemoError::service("reading the pool record", e))?
            .ok_or_else(|| {
                DemoError::Setup(format!(
                    "pool {POOL} does not exist in {} (did the seed custom resource run?)",
                    self.env.lease_table
                ))
            })?;
        Ok((
            i64::from(record.budget),
            i64::from(record.in_use),
            i64::from(record.waiting),
        ))
    }

    /// The whole pool record, with its applications' counters.
    pub async fn pool_state(&self) -> Result<PoolRecord, DemoError> {
        self.broker
            .pool(POOL)
            .await
            .map_err(|e| DemoError::service("reading the pool record", e))
    }

    /// Sets the pool's applications (none: one budget for everybody), keeping its budget.
    pub async fn put_applications(
        &self,
        budget: u32,
        shares: &[AppShare],
    ) -> Result<PoolRecord, DemoError> {
        self.broker
            .put_shared_pool(POOL, budget, shares)
            .await
            .map_err(|e| DemoError::service("dividing the pool between applications", e))
    }

    /// Every lease and waiter record of the pool.
    pub async fn lease_and_waiter_records(&self) -> Result<(Vec<Lease>, Vec<Waiter>), DemoError> {
        let leases = self
            .leases
            .leases(&self.pool)
            .await
            .map_err(|e| DemoError::service("reading lease records", e))?;
        let waiters = self
            .leases
            .waiters(&self.pool)
            .await
            .map_err(|e| DemoError::service("reading waiter records", e))?;
        Ok((leases, waiters))
    }

    /// The `app` of an execution's input (`None` when it names none).
    pub async fn app_of_execution(&self, arn: &str) -> Result<Option<String>, DemoError> {
        let described = self
            .sfn
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await
            .map_err(|e| DemoError::service("describing an execution", e))?;
        Ok(described
            .input()
            .and_then(|i| serde_json::from_str::<Value>(i).ok())
            .and_then(|i| i.get("app").and_then(Value::as_str).map(str::to_owned)))
    }

    /// Waiter records of the pool (queued requests), live or past their deadline.
    pub async fn waiter_records(&self) -> Result<i64, DemoError> {
        let waiters = self
            .leases
            .waiters(&self.pool)
            .await
            .map_err(|e| DemoError::service("counting waiter records", e))?;
        Ok(waiters.len() as i64)
    }

    /// Lease records of the pool, live or expired.
    pub async fn lease_records(&self) -> Result<i64, DemoError> {
        let leases = self
            .leases
            .leases(&self.pool)
            .await
            .map_err(|e| DemoError::service("counting lease records", e))?;
        Ok(leases.len() as i64)
    }

    // ------------------------------------------------------------------ the local stack

    /// Invokes the release function's reclaim mode through the stack's Lambda API, as the
    /// reclaim schedule does: expired (and drained) leases of the pool come back.
    pub async fn reclaim(&self) -> Result<(), DemoError> {
        let url = format!(
            "{}/2015-03-31/functions/{}/invocations",
            self.env.stack_url, self.env.release_function
        );
        let response = self
            .http
            .post(&url)
            .json(&serde_json::json!({"pool": self.pool.as_str(), "reclaimExpired": true}))
            .send()
            .await
            .map_err(|e| DemoError::service(format!("POST {url}"), e))?;
        if response.headers().contains_key("x-amz-function-error")
            || !response.status().is_success()
        {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            return Err(DemoError::Setup(format!(
                "reclaim failed ({status}): {body}"
            )));
        }
        Ok(())
    }

    /// `GET /stats`: per function invocations, cold starts, kills, ...
    pub async fn stack_stats(&self) -> Result<StackStats, DemoError> {
        let url = format!("{}/stats", self.env.stack_url);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| DemoError::service(format!("GET {url}"), e))?;
        response
            .json()
            .await
            .map_err(|e| DemoError::service(format!("GET {url}: not JSON"), e))
    }

    /// Creates a state machine, or updates the one of that name to this definition.
    pub async fn put_machine(&self, name: &str, definition: &str) -> Result<String, DemoError> {
        let (region, account) = self.env.region_and_account();
        let arn = format!("arn:aws:states:{region}:{account}:stateMachine:{name}");
        let exists = self
            .sfn
            .describe_state_machine()
            .state_machine_arn(&arn)
            .send()
            .await
            .is_ok();
        if exists {
            self.sfn
                .update_state_machine()
                .state_machine_arn(&arn)
                .definition(definition)
                .send()
                .await
                .map_err(|e| DemoError::service(format!("updating state machine {name}"), e))?;
            return Ok(arn);
        }
        let out = self
            .sfn
            .create_state_machine()
            .name(name)
            .definition(definition)
            .role_arn(format!("arn:aws:iam::{account}:role/{name}-role"))
            .send()
            .await
            .map_err(|e| DemoError::service(format!("creating state machine {name}"), e))?;
        Ok(out.state_machine_arn().to_owned())
    }

    /// Every execution of a state machine (all pages).
    pub async fn list_executions(&self, machine: &str) -> Result<Vec<Listed>, DemoError> {
        let request = self.sfn.list_executions().state_machine_arn(machine);
        let executions =
            all_items!(request).map_err(|e| DemoError::service("listing executions", e))?;
        Ok(executions
            .iter()
            .map(|e| Listed {
                arn: e.execution_arn().to_owned(),
                status: e.status().as_str().to_owned(),
                start_ms: millis(e.start_date()),
            })
            .collect())
    }

    /// An execution's whole history, oldest event first.
    pub async fn history(&self, execution: &str) -> Result<Vec<Event>, DemoError> {
        let request = self.sfn.get_execution_history().execution_arn(execution);
        let events = all_items!(request)
            .map_err(|e| DemoError::service(format!("history of {execution}"), e))?;
        Ok(events.iter().map(event_of).collect())
    }

    // ------------------------------------------------------------------ CloudWatch (moto)

    /// `RemainingConnections` (minimum), `NoConnectionsLeftError` (sum), `WaitingRequests`
    /// (maximum) and `WaitTime` (average and maximum) of the pool, per second, between two
    /// instants: what the sample's dashboard showed, and the queue's own gauges. With `app`,
    /// the same metrics of that application (dimensions `DBName` and `Application`).
    pub async fn pool_metrics(
        &self,
        start_ms: i64,
        end_ms: i64,
        app: Option<&str>,
    ) -> Result<BTreeMap<String, Vec<(i64, f64)>>, DemoError> {
        let query = |id: &str, name: &str, stat: &str| {
            let mut metric = Metric::builder()
                .namespace(NAMESPACE)
                .metric_name(name)
                .dimensions(Dimension::builder().name("DBName").value(POOL).build());
            if let Some(app) = app {
                metric =
                    metric.dimensions(Dimension::builder().name("Application").value(app).build());
            }
            MetricDataQuery::builder()
                .id(id)
                .metric_stat(
                    MetricStat::builder()
                        .metric(metric.build())
                        .period(1)
                        .stat(stat)
                        .build(),
                )
                .build()
        };
        let mut series: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
        let mut token: Option<String> = None;
        // CloudWatch aligns periods to whole seconds.
        let (start, end) = (start_ms / 1000 * 1000, (end_ms / 1000 + 1) * 1000);
        loop {
            let out = self
                .cloudwatch
                .get_metric_data()
                .metric_data_queries(query("remaining", "RemainingConnections", "Minimum"))
                .metric_data_queries(query("refused", "NoConnectionsLeftError", "Sum"))
                .metric_data_queries(query("waiting", "WaitingRequests", "Maximum"))
                .metric_data_queries(query("waitAverage", "WaitTime", "Average"))
                .metric_data_queries(query("waitMaximum", "WaitTime", "Maximum"))
                .start_time(aws_sdk_cloudwatch::primitives::DateTime::from_millis(start))
                .end_time(aws_sdk_cloudwatch::primitives::DateTime::from_millis(end))
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| DemoError::service("reading the pool metrics from CloudWatch", e))?;
            for result in out.metric_data_results() {
                let name = match result.id() {
                    Some("remaining") => "remainingConnections",
                    Some("refused") => "noConnectionsLeftError",
                    Some("waiting") => "waitingRequests",
                    Some("waitAverage") => "waitTime",
                    Some("waitMaximum") => "waitTimeMaximum",
                    _ => continue,
                };
                let points = series.entry(name.to_owned()).or_default();
                for (t, v) in result.timestamps().iter().zip(result.values()) {
                    points.push((t.to_millis().unwrap_or_default(), *v));
                }
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => break,
            }
        }
        for points in series.values_mut() {
            points.sort_by_key(|p| p.0);
            points.dedup_by_key(|p| p.0);
        }
        Ok(series)
    }
}

/// Reads the status counters of the server that a run compares before and after.
pub async fn global_status(
    conn: &mut Conn,
    names: &[&str],
) -> Result<BTreeMap<String, i64>, DemoError> {
    let rows: Vec<(String, String)> = conn
        .query("SHOW GLOBAL STATUS")
        .await
        .map_err(|e| DemoError::database("SHOW GLOBAL STATUS", e))?;
    Ok(rows
        .into_iter()
        .filter(|(name, _)| names.iter().any(|n| n.eq_ignore_ascii_case(name)))
        .filter_map(|(name, value)| value.parse().ok().map(|v| (name, v)))
        .collect())
}

/// `SHOW GLOBAL STATUS LIKE 'Threads_connected'`, the sampler's one query.
pub async fn threads_connected(conn: &mut Conn) -> Result<i64, DemoError> {
    let row: Option<(String, String)> = conn
        .query_first("SHOW GLOBAL STATUS LIKE 'Threads_connected'")
        .await
        .map_err(|e| DemoError::database("Threads_connected", e))?;
    row.and_then(|(_, v)| v.parse().ok())
        .ok_or_else(|| DemoError::Setup("Threads_connected is not a number".into()))
}

pub async fn max_connections(conn: &mut Conn) -> Result<i64, DemoError> {
    let value: Option<i64> = conn
        .query_first("SELECT @@GLOBAL.max_connections")
        .await
        .map_err(|e| DemoError::database("reading max_connections", e))?;
    value.ok_or_else(|| DemoError::Setup("max_connections is unknown".into()))
}

/// Resets the server's counters, `Max_used_connections` to the connections open now.
pub async fn flush_status(conn: &mut Conn) -> Result<(), DemoError> {
    conn.query_drop("FLUSH STATUS")
        .await
        .map_err(|e| DemoError::database("FLUSH STATUS", e))
}

fn event_of(e: &aws_sdk_sfn::types::HistoryEvent) -> Event {
    let kind = e.r#type().as_str().to_owned();
    let error = e
        .task_failed_event_details()
        .and_then(|d| d.error())
        .or_else(|| e.task_timed_out_event_details().and_then(|d| d.error()))
        .or_else(|| e.execution_failed_event_details().and_then(|d| d.error()))
        .or_else(|| {
            e.execution_timed_out_event_details()
                .and_then(|d| d.error())
        })
        .or_else(|| e.execution_aborted_event_details().and_then(|d| d.error()))
        .map(str::to_owned);
    let data = e
        .execution_started_event_details()
        .and_then(|d| d.input())
        .or_else(|| {
            e.execution_succeeded_event_details()
                .and_then(|d| d.output())
        })
        .map(str::to_owned);
    Event {
        kind,
        timestamp_ms: millis(e.timestamp()),
        state: e.state_entered_event_details().map(|d| d.name().to_owned()),
        error,
        data,
    }
}
