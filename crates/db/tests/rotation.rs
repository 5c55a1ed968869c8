//! A rotated database password (RDS rotates managed master passwords every 7 days) must not
//! break a warm container: against the local MariaDB and moto's Secrets Manager, a database
//! user's password is changed in both while a `Database` that already connected stays alive.

use leasehold_db::{Database, DbConfig, NamedQuery};
use leasehold_testkit::mysql::admin;
use leasehold_testkit::{require_env, sdk_config, unique};
use mysql_async::prelude::Queryable;
use serde_json::json;

/// A user of its own (so no other test sees its password change) and its secret.
struct RotatingUser {
    name: String,
    secret_arn: String,
}

async fn rotating_user(password: &str) -> RotatingUser {
    let name = unique("rot").replace('-', "_");
    let name = name[..name.len().min(32)].to_owned();
    let db = require_env("DB_NAME");
    let mut conn = admin().await;
    conn.query_drop(format!(
        "CREATE USER '{name}'@'%' IDENTIFIED BY '{password}'"
    ))
    .await
    .unwrap();
    conn.query_drop(format!("GRANT SELECT ON `{db}`.* TO '{name}'@'%'"))
        .await
        .unwrap();
    let sdk = sdk_config().await;
    let secret = aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name(unique("rotation-secret"))
        .secret_string(json!({"username": name, "password": password}).to_string())
        .send()
        .await
        .unwrap();
    RotatingUser {
        name,
        secret_arn: secret.arn().unwrap().to_owned(),
    }
}

async fn rotate(user: &RotatingUser, password: &str) {
    let mut conn = admin().await;
    conn.query_drop(format!(
        "ALTER USER '{}'@'%' IDENTIFIED BY '{password}'",
        user.name
    ))
    .await
    .unwrap();
    let sdk = sdk_config().await;
    aws_sdk_secretsmanager::Client::new(&sdk)
        .put_secret_value()
        .secret_id(&user.secret_arn)
        .secret_string(json!({"username": user.name, "password": password}).to_string())
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn queries_keep_succeeding_after_the_password_is_rotated() {
    // GIVEN a warm database handle that has read its credentials and connected
    let user = rotating_user("first-Password-1").await;
    let sdk = sdk_config().await;
    let config = DbConfig::from_lookup(|key| match key {
        "DB_SECRET_ARN" => Some(user.secret_arn.clone()),
        other => std::env::var(other).ok(),
    })
    .unwrap();
    // (the sample table exists whichever test runs first: the seed's own preparation, as the
    // administrator)
    let admin_config = DbConfig::from_lookup(|key| match key {
        "DB_SECRET_ARN" => std::env::var("DB_ADMIN_SECRET_ARN").ok(),
        other => std::env::var(other).ok(),
    })
    .unwrap();
    Database::new(admin_config, &sdk)
        .prepare(true)
        .await
        .unwrap();
    let database = Database::new(config, &sdk);
    let list = || NamedQuery::parse("listEmployees", None).unwrap();
    assert_eq!(database.run(list(), 0).await.unwrap().len(), 3);

    // WHEN the password is rotated in the database and in the secret
    rotate(&user, "second-Password-2").await;

    // THEN the next query is refused once with the cached password, reads the secret again,
    // and succeeds; and so does the one after it
    assert_eq!(database.run(list(), 0).await.unwrap().len(), 3);
    assert_eq!(database.run(list(), 0).await.unwrap().len(), 3);

    // AND a password that is wrong in the secret too is still an error, not a loop
    let mut conn = admin().await;
    conn.query_drop(format!(
        "ALTER USER '{}'@'%' IDENTIFIED BY 'third-Password-3'",
        user.name
    ))
    .await
    .unwrap();
    let err = database.run(list(), 0).await.unwrap_err();
    assert_eq!(err.name(), "DatabaseUnavailable", "{err}");
    conn.query_drop(format!("DROP USER '{}'@'%'", user.name))
        .await
        .unwrap();
}
