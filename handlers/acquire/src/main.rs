use lambda_runtime::{Error, run, service_fn, tracing};
use leasehold_broker::BrokerConfig;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let broker = BrokerConfig::broker_from_env().await?;
    run(service_fn(|event| acquire_handler::handle(&broker, event))).await
}
