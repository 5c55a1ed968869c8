//! TLS to the local MariaDB, which (like the deployed database's parameter group) takes TLS
//! connections only: with the right authority the session is encrypted; without TLS the
//! server refuses; with an authority that did not sign the server's certificate the connect
//! fails with an error that names the bundle.

use leasehold_db::{Database, DbConfig, TlsConfig};
use leasehold_testkit::mysql::{admin_config, foreign_authority};
use leasehold_testkit::{require_env, sdk_config, unique};
use mysql_async::prelude::Queryable;

async fn status(db: &Database, name: &str) -> String {
    let mut conn = db.connect().await.expect("connect");
    let row: Option<(String, String)> = conn
        .exec_first("SHOW SESSION STATUS WHERE Variable_name = ?", (name,))
        .await
        .unwrap();
    conn.disconnect().await.unwrap();
    row.map(|(_, value)| value).unwrap_or_default()
}

#[tokio::test]
async fn with_the_local_authority_the_session_is_encrypted() {
    // GIVEN the settings of .local/env, which name the local authority
    let config = admin_config(&[]);
    assert!(
        config.tls.is_some(),
        "DB_TLS_CA_FILE is set by scripts/dev-env.sh"
    );
    let db = Database::new(config, &sdk_config().await);

    // WHEN a connection is opened THEN the server reports a cipher and a TLS version for it
    let cipher = status(&db, "Ssl_cipher").await;
    assert!(
        !cipher.is_empty(),
        "no cipher: the session is not encrypted"
    );
    let version = status(&db, "Ssl_version").await;
    assert!(version.starts_with("TLSv1."), "{version}");
}

#[tokio::test]
async fn the_server_refuses_a_connection_without_tls() {
    // GIVEN the same credentials and server, without DB_TLS_CA_FILE
    let config = DbConfig {
        tls: None,
        ..admin_config(&[])
    };
    let db = Database::new(config, &sdk_config().await);

    // WHEN it connects THEN the server turns it away
    // (MySQL 8 answers 3159, which names DB_TLS_CA_FILE; MariaDB answers as for a wrong
    // password)
    let err = db
        .connect()
        .await
        .expect_err("a plain connection is refused");
    assert_eq!(err.name(), "DatabaseUnavailable", "{err}");
    let message = err.to_string();
    assert!(
        message.contains("DB_TLS_CA_FILE") || message.contains("1045"),
        "{message}"
    );

    // AND the same credentials over TLS are accepted
    let with_tls = Database::new(admin_config(&[]), &sdk_config().await);
    assert!(!status(&with_tls, "Ssl_cipher").await.is_empty());
}

#[tokio::test]
async fn an_authority_that_did_not_sign_the_certificate_is_a_clear_error() {
    // GIVEN a bundle holding some other authority
    let dir = std::env::temp_dir().join(unique("foreign-ca"));
    let foreign = foreign_authority(&dir);
    let config = DbConfig {
        tls: Some(TlsConfig::read(&foreign).unwrap()),
        ..admin_config(&[])
    };
    let db = Database::new(config, &sdk_config().await);

    // WHEN it connects
    let err = db
        .connect()
        .await
        .expect_err("the certificate is not trusted");

    // THEN the error says TLS failed because of the bundle, and which one
    assert_eq!(err.name(), "DatabaseUnavailable");
    let message = err.to_string();
    assert!(message.contains("TLS with"), "{message}");
    assert!(message.contains("DB_TLS_CA_FILE"), "{message}");
    assert!(
        message.contains(&foreign.display().to_string()),
        "{message}"
    );
    assert!(
        message.contains("UnknownIssuer") || message.contains("certificate"),
        "{message}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn the_certificate_names_both_local_host_names() {
    // GIVEN the server's certificate, made for 127.0.0.1 (the DB_HOST of .local/env) and
    // localhost
    assert_eq!(require_env("DB_HOST"), "127.0.0.1");

    // WHEN the client connects by the other name THEN the name check passes too
    let by_name = Database::new(
        admin_config(&[("DB_HOST", "localhost")]),
        &sdk_config().await,
    );
    assert!(!status(&by_name, "Ssl_cipher").await.is_empty());
}
