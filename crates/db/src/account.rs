//! The application account: the database user the query function signs in as, set up by the
//! seed (signed in as the administrator) so that it can run the allow-listed queries and
//! nothing else.
//!
//! On every Create and Update the seed makes the account match, idempotently:
//! 1. `CREATE USER IF NOT EXISTS`, then `ALTER USER` with its identification (RDS's IAM plugin,
//!    or the password of its secret), `REQUIRE SSL` when the seed itself uses TLS, and
//!    `MAX_USER_CONNECTIONS` equal to the pool's budget: even a fault in the lease broker
//!    cannot open more connections than the budget (the server answers MySQL 1226, which the
//!    query function reports as `DatabaseBusy`);
//! 2. `GRANT` of [`TABLE_GRANTS`] on the database's tables;
//! 3. `REVOKE` of every other privilege the account holds, found in `information_schema`
//!    (global, schema, table and column privileges, and grant options). Granting first and
//!    revoking after leaves no moment in which a running query loses what it needs.

use crate::config::{AppAccountConfig, valid_user_name};
use crate::database::{Database, SecretSource, ServerKind};
use crate::error::DbError;
use crate::queries::TABLE_GRANTS;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use std::fmt;

/// The application account as the seed sets it up, with where its password comes from.
pub struct AppAccount {
    config: AppAccountConfig,
    secrets: Option<SecretSource>,
}

/// Who the account is and how it proves it.
#[derive(Clone, PartialEq, Eq)]
enum Identity {
    Iam { user: String },
    Password { user: String, password: String },
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Iam { user } => write!(f, "Iam({user})"),
            Identity::Password { user, .. } => write!(f, "Password({user}, <redacted>)"),
        }
    }
}

impl Identity {
    fn user(&self) -> &str {
        match self {
            Identity::Iam { user } | Identity::Password { user, .. } => user,
        }
    }
}

impl AppAccount {
    pub fn new(config: AppAccountConfig, sdk: &aws_config::SdkConfig) -> Self {
        let secrets = match &config {
            AppAccountConfig::Secret { secret_arn } => Some(SecretSource::new(
                aws_sdk_secretsmanager::Client::new(sdk),
                secret_arn,
            )),
            AppAccountConfig::Iam { .. } => None,
        };
        AppAccount { config, secrets }
    }

    pub fn config(&self) -> &AppAccountConfig {
        &self.config
    }

    async fn identity(&self) -> Result<Identity, DbError> {
        match (&self.config, &self.secrets) {
            (AppAccountConfig::Iam { user }, _) => Ok(Identity::Iam { user: user.clone() }),
            (AppAccountConfig::Secret { .. }, Some(secrets)) => {
                let creds = secrets.fetch().await?;
                if !valid_user_name(&creds.username) {
                    return Err(DbError::SecretMalformed(
                        "the application account's username must be 1 to 32 letters, digits or underscores",
                    ));
                }
                if creds.password.is_empty() || creds.password.contains('\0') {
                    return Err(DbError::SecretMalformed(
                        "the application account's password must be non-empty text without NUL characters",
                    ));
                }
                Ok(Identity::Password {
                    user: creds.username,
                    password: creds.password,
                })
            }
            (AppAccountConfig::Secret { .. }, None) => Err(DbError::AccountUnsupported(
                "no secret client for the application account".into(),
            )),
        }
    }
}

impl Database {
    /// Creates or updates the application account (see the module documentation) with at most
    /// `max_connections` connections; returns its user name.
    pub async fn set_up_account(
        &self,
        account: &AppAccount,
        max_connections: u32,
    ) -> Result<String, DbError> {
        if max_connections == 0 {
            // MAX_USER_CONNECTIONS 0 would mean "no limit".
            return Err(DbError::AccountUnsupported(
                "a budget of 0 connections cannot be an account's connection limit".into(),
            ));
        }
        let identity = account.identity().await?;
        let mut conn = self.connect().await?;
        let waited = self.config().statement_timeout + crate::database::IO_GRACE;
        let result = async {
            let kind = self.server_kind(&mut conn, waited).await?;
            let work = set_up_on(
                &mut conn,
                kind,
                &self.config().name,
                &identity,
                self.config().tls.is_some(),
                max_connections,
            );
            match tokio::time::timeout(waited, work).await {
                Ok(result) => result,
                Err(_) => Err(DbError::NoAnswer { waited }),
            }
        }
        .await;
        crate::database::close(conn, result)
            .await
            .map(|()| identity.user().to_owned())
    }
}

/// `'user'@'%'`: any host, as RDS users are (the network is narrowed by security groups).
fn grantee(user: &str) -> String {
    format!("'{user}'@'%'")
}

/// A schema or table name in backquotes.
fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A string literal; backslashes are escaped unless the session reads them literally.
fn literal(text: &str, backslash_escapes: bool) -> String {
    let mut out = text.replace('\'', "''");
    if backslash_escapes {
        out = out.replace('\\', "\\\\");
    }
    format!("'{out}'")
}

/// A privilege name from `information_schema`, before it is written into a REVOKE.
fn privilege_name(name: &str) -> Result<&str, DbError> {
    if !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b == b' ' || b == b'_')
    {
        Ok(name)
    } else {
        Err(DbError::AccountUnsupported(format!(
            "the server lists a privilege named {name:?}, which this seed does not revoke"
        )))
    }
}

/// MySQL `ER_NONEXISTING_GRANT`.
const ER_NONEXISTING_GRANT: u16 = 1141;

fn step_error(step: impl Into<String>, error: mysql_async::Error) -> DbError {
    match error {
        mysql_async::Error::Server(source) => DbError::AccountSetup {
            step: step.into(),
            source,
        },
        other => DbError::from_query(other),
    }
}

/// Runs a statement that carries the password: a failure keeps the server's code but not its
/// message, which could quote the statement.
async fn run_secret(conn: &mut Conn, step: &str, sql: String) -> Result<(), DbError> {
    conn.query_drop(sql).await.map_err(|error| match error {
        mysql_async::Error::Server(mut source) => {
            source.message = "(message withheld: the statement carries the password)".into();
            DbError::AccountSetup {
                step: step.to_owned(),
                source,
            }
        }
        other => DbError::from_query(other),
    })
}

async fn run(conn: &mut Conn, sql: String) -> Result<(), DbError> {
    conn.query_drop(&sql)
        .await
        .map_err(|error| step_error(sql, error))
}

async fn set_up_on(
    conn: &mut Conn,
    kind: ServerKind,
    database: &str,
    identity: &Identity,
    require_tls: bool,
    max_connections: u32,
) -> Result<(), DbError> {
    let user = identity.user();
    let who = grantee(user);
    let identified = match identity {
        Identity::Iam { .. } if kind == ServerKind::MySql => {
            "IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'".to_owned()
        }
        Identity::Iam { .. } => {
            return Err(DbError::AccountUnsupported(
                "IAM database authentication is set up on RDS for MySQL only; this server is MariaDB (use DB_APP_AUTH=secret)".into(),
            ));
        }
        Identity::Password { password, .. } => {
            let mode: Option<String> = conn
                .query_first("SELECT @@SESSION.sql_mode")
                .await
                .map_err(DbError::from_query)?;
            let backslash_escapes = !mode.unwrap_or_default().contains("NO_BACKSLASH_ESCAPES");
            format!("IDENTIFIED BY {}", literal(password, backslash_escapes))
        }
    };
    run_secret(
        conn,
        "CREATE USER",
        format!("CREATE USER IF NOT EXISTS {who} {identified}"),
    )
    .await?;
    let require = if require_tls { " REQUIRE SSL" } else { "" };
    run_secret(
        conn,
        "ALTER USER",
        format!(
            "ALTER USER {who} {identified}{require} WITH MAX_USER_CONNECTIONS {max_connections}"
        ),
    )
    .await?;
    for (privilege, table) in TABLE_GRANTS {
        run(
            conn,
            format!(
                "GRANT {privilege} ON {}.{} TO {who}",
                ident(database),
                ident(table)
            ),
        )
        .await?;
    }
    for revoke in extra_privileges(conn, database, &who).await? {
        match conn.query_drop(format!("{revoke} FROM {who}")).await {
            // 1141 "no such grant": an earlier REVOKE of the same level took it along.
            Err(mysql_async::Error::Server(e)) if e.code == ER_NONEXISTING_GRANT => {}
            other => other.map_err(|error| step_error(format!("{revoke} FROM {who}"), error))?,
        }
    }
    Ok(())
}

/// (schema, table, column, privilege, grantable) rows of one `information_schema` view.
type PrivilegeRow = (String, String, String, String, String);

async fn privilege_rows(
    conn: &mut Conn,
    who: &str,
    sql: &'static str,
) -> Result<Vec<PrivilegeRow>, DbError> {
    conn.exec(sql, (who,))
        .await
        .map_err(|error| step_error(sql, error))
}

/// The REVOKE clauses (without `FROM`) for every privilege the account holds beyond
/// [`TABLE_GRANTS`].
async fn extra_privileges(
    conn: &mut Conn,
    database: &str,
    who: &str,
) -> Result<Vec<String>, DbError> {
    // Grant options first (revoking a level's last privilege can take its grant option along),
    // each clause once.
    let mut options: Vec<String> = Vec::new();
    let mut revokes: Vec<String> = Vec::new();
    let mut option = |on: &str| {
        let clause = format!("REVOKE GRANT OPTION ON {on}");
        if !options.contains(&clause) {
            options.push(clause);
        }
    };
    let global = privilege_rows(
        conn,
        who,
        "SELECT '', '', '', PRIVILEGE_TYPE, IS_GRANTABLE \
         FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = ?",
    )
    .await?;
    for (_, _, _, privilege, grantable) in global {
        if privilege != "USAGE" {
            revokes.push(format!("REVOKE {} ON *.*", privilege_name(&privilege)?));
        }
        if grantable == "YES" {
            option("*.*");
        }
    }
    let schema = privilege_rows(
        conn,
        who,
        "SELECT TABLE_SCHEMA, '', '', PRIVILEGE_TYPE, IS_GRANTABLE \
         FROM information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE = ?",
    )
    .await?;
    for (db, _, _, privilege, grantable) in schema {
        let on = format!("{}.*", ident(&db));
        revokes.push(format!("REVOKE {} ON {on}", privilege_name(&privilege)?));
        if grantable == "YES" {
            option(&on);
        }
    }
    let tables = privilege_rows(
        conn,
        who,
        "SELECT TABLE_SCHEMA, TABLE_NAME, '', PRIVILEGE_TYPE, IS_GRANTABLE \
         FROM information_schema.TABLE_PRIVILEGES WHERE GRANTEE = ?",
    )
    .await?;
    for (db, table, _, privilege, grantable) in tables {
        let on = format!("{}.{}", ident(&db), ident(&table));
        let wanted = db == database
            && TABLE_GRANTS
                .iter()
                .any(|(p, t)| *p == privilege && *t == table);
        if !wanted {
            revokes.push(format!("REVOKE {} ON {on}", privilege_name(&privilege)?));
        }
        if grantable == "YES" {
            option(&on);
        }
    }
    let columns = privilege_rows(
        conn,
        who,
        "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, PRIVILEGE_TYPE, IS_GRANTABLE \
         FROM information_schema.COLUMN_PRIVILEGES WHERE GRANTEE = ?",
    )
    .await?;
    for (db, table, column, privilege, grantable) in columns {
        let on = format!("{}.{}", ident(&db), ident(&table));
        revokes.push(format!(
            "REVOKE {} ({}) ON {on}",
            privilege_name(&privilege)?,
            ident(&column)
        ));
        if grantable == "YES" {
            option(&on);
        }
    }
    options.extend(revokes);
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_literals_are_quoted() {
        assert_eq!(grantee("leasehold_app"), "'leasehold_app'@'%'");
        assert_eq!(ident("we`ird"), "`we``ird`");
        assert_eq!(literal(r"it's a \ test", true), r"'it''s a \\ test'");
        assert_eq!(literal(r"it's a \ test", false), r"'it''s a \ test'");
        assert!(privilege_name("CREATE TEMPORARY TABLES").is_ok());
        assert!(privilege_name("XA_RECOVER_ADMIN").is_ok());
        assert!(privilege_name("SELECT; DROP").is_err());
    }

    #[test]
    fn the_password_never_prints() {
        let identity = Identity::Password {
            user: "app".into(),
            password: "hunter2".into(),
        };
        let shown = format!("{identity:?}");
        assert!(
            shown.contains("app") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
