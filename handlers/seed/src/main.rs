// The custom resource future nests deeply (HTTP client, SDK, MySQL driver).
#![recursion_limit = "256"]

use lambda_runtime::{Error, run, service_fn, tracing};
use leasehold_broker::BrokerConfig;
use leasehold_db::{AppAccount, AppAccountConfig, Database, DbConfig};
use seed_handler::{SeedDeps, handle};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let broker_config = BrokerConfig::from_env()?;
    let db_config = DbConfig::from_env()?;
    let account_config = AppAccountConfig::from_env()?;
    let sdk = aws_config::load_from_env().await;
    let deps = SeedDeps {
        broker: broker_config.broker(&sdk),
        db: Database::new(db_config, &sdk),
        account: account_config.map(|config| AppAccount::new(config, &sdk)),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?,
    };
    run(service_fn(|event| handle(&deps, event))).await
}
