use lambda_runtime::{Error, run, service_fn, tracing};
use leasehold_broker::BrokerConfig;
use release_handler::Settings;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let settings = Settings::from_env()?;
    let broker = BrokerConfig::broker_from_env().await?;
    run(service_fn(|event| {
        release_handler::handle(&broker, &settings, event)
    }))
    .await
}
