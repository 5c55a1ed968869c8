use lambda_runtime::{Error, run, service_fn, tracing};
use leasehold_db::{Database, DbConfig};
use query_handler::handle;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = DbConfig::from_env()?;
    let sdk = aws_config::load_from_env().await;
    let db = Database::new(config, &sdk);
    run(service_fn(|event| handle(&db, event))).await
}
