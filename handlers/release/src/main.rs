use lambda_runtime::{Error, run, service_fn, tracing};
use leasehold_broker::BrokerConfig;
use release_handler::handle;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = BrokerConfig::from_env()?;
    let sdk = aws_config::load_from_env().await;
    let broker = config.broker(&sdk);
    run(service_fn(|event| handle(&broker, event))).await
}
