//! The environment of the local services, as `scripts/dev-env.sh up` writes it to `.local/env`
//! and `scripts/test.sh` exports it.

/// A variable of the local services' environment; panics with instructions when it is missing.
pub fn require_env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| {
        panic!(
            "{key} is not set: integration tests run against the local services. Run the whole \
             suite with scripts/test.sh, or start them with scripts/dev-env.sh up and export \
             them with: set -a; . .local/env; set +a"
        )
    })
}

/// The SDK configuration a handler would load (endpoint, region and dummy credentials all come
/// from the environment), after checking that the local services' variables are present.
pub async fn sdk_config() -> aws_config::SdkConfig {
    for key in [
        "AWS_ENDPOINT_URL",
        "AWS_REGION",
        "AWS_ACCESS_KEY_ID",
        "LEASE_TABLE",
    ] {
        require_env(key);
    }
    aws_config::load_from_env().await
}
