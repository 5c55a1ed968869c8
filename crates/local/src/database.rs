//! The local MariaDB standing in for the template's RDS database, as the functions see it
//! through their environment.
//!
//! - `DB_TLS_CA_FILE`: the deployed functions trust the RDS CA bundle shipped beside their
//!   binary; locally they trust the authority that signed MariaDB's certificate
//!   (`DB_TLS_CA_FILE` of `.local/env`).
//! - IAM database authentication (`DB_AUTH=iam` with `DB_USER`, and the seed's
//!   `DB_APP_AUTH=iam` with `DB_APP_USER`) has no local counterpart: MariaDB cannot check an
//!   IAM token. The stack gives the user a password instead, kept in a secret of the local
//!   Secrets Manager that only this stack's functions are told about, and switches those
//!   variables to `..._AUTH=secret` with `..._SECRET_ARN`. The seed then creates the account
//!   with that password, as it would create it for IAM in AWS.
//!
//! Every AWS stack has a database of its own; local stacks share one MariaDB. So each local
//! stack gets accounts of its own, `local_<hash of the stack name>_<user>`, and one stack's
//! connection limit (its pool's budget) never applies to another's queries.
//! `scripts/dev-env.sh` drops these accounts when it starts MariaDB.

use crate::error::StackError;
use crate::template::FunctionSpec;
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use std::collections::BTreeMap;
use std::io::Read;
use tracing::{info, warn};

/// The environment-variable prefixes of a database sign-in: the function's own (`DB_`) and
/// the application account the seed sets up (`DB_APP_`).
const PREFIXES: [&str; 2] = ["DB_", "DB_APP_"];

/// One stand-in account: the user the template names and the local account behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalAccount {
    /// As the template names it (`DB_USER`, `DB_APP_USER`).
    pub user: String,
    /// The account in the local MariaDB.
    pub account: String,
    /// The secret `{"username","password"}` with its password.
    pub secret_arn: String,
}

/// MySQL account names are at most 32 characters.
const MAX_ACCOUNT: usize = 32;

/// `local_<8 hex digits of the stack name's FNV-1a hash>_<user>`, cut to 32 characters.
pub fn account_name(stack_name: &str, user: &str) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in stack_name.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    let mut name = format!("local_{hash:08x}_{user}");
    name.truncate(MAX_ACCOUNT);
    name
}

/// A password of 32 hex digits from the operating system's random source.
fn new_password() -> Result<String, StackError> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(StackError::Random)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Points the functions' database settings at the local database (see the module
/// documentation); returns the stand-in accounts it made.
pub async fn localize(
    functions: &mut [FunctionSpec],
    local_env: &BTreeMap<String, String>,
    stack_name: &str,
    sdk: &aws_config::SdkConfig,
) -> Result<Vec<LocalAccount>, StackError> {
    let local_ca = local_env.get("DB_TLS_CA_FILE");
    let mut accounts: Vec<LocalAccount> = Vec::new();
    for function in functions.iter_mut() {
        if function.environment.contains_key("DB_TLS_CA_FILE") {
            match local_ca {
                Some(ca) => {
                    function
                        .environment
                        .insert("DB_TLS_CA_FILE".into(), ca.clone());
                }
                None => {
                    warn!(function = %function.logical_id, "no DB_TLS_CA_FILE in the local environment: the function connects without TLS");
                    function.environment.remove("DB_TLS_CA_FILE");
                }
            }
        }
        for prefix in PREFIXES {
            let auth = format!("{prefix}AUTH");
            if function.environment.get(&auth).map(String::as_str) != Some("iam") {
                continue;
            }
            let user_key = format!("{prefix}USER");
            let user = function
                .environment
                .get(&user_key)
                .cloned()
                .ok_or_else(|| StackError::DatabaseUser {
                    function: function.logical_id.clone(),
                    variable: user_key.clone(),
                })?;
            let secret_arn = match accounts.iter().find(|a| a.user == user) {
                Some(account) => account.secret_arn.clone(),
                None => {
                    let account = stand_in(stack_name, &user, sdk).await?;
                    let arn = account.secret_arn.clone();
                    accounts.push(account);
                    arn
                }
            };
            function.environment.insert(auth, "secret".into());
            function
                .environment
                .insert(format!("{prefix}SECRET_ARN"), secret_arn);
        }
    }
    Ok(accounts)
}

/// Makes (or renews) the secret of a stand-in account with a new password.
async fn stand_in(
    stack_name: &str,
    user: &str,
    sdk: &aws_config::SdkConfig,
) -> Result<LocalAccount, StackError> {
    let account = account_name(stack_name, user);
    let name = format!("{stack_name}/local-database-account/{user}");
    let value = serde_json::json!({"username": account, "password": new_password()?}).to_string();
    let client = aws_sdk_secretsmanager::Client::new(sdk);
    let failed =
        |e: Box<dyn std::error::Error + Send + Sync>, detail: String| StackError::DatabaseSecret {
            user: user.to_owned(),
            detail,
            source: e,
        };
    let created = client
        .create_secret()
        .name(&name)
        .secret_string(&value)
        .send()
        .await;
    let secret_arn = match created {
        Ok(out) => out.arn().unwrap_or_default().to_owned(),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_exists_exception()) =>
        {
            client
                .put_secret_value()
                .secret_id(&name)
                .secret_string(&value)
                .send()
                .await
                .map_err(|e| {
                    let detail = DisplayErrorContext(&e).to_string();
                    failed(Box::new(e), detail)
                })?
                .arn()
                .unwrap_or_default()
                .to_owned()
        }
        Err(e) => {
            let detail = DisplayErrorContext(&e).to_string();
            return Err(failed(Box::new(e), detail));
        }
    };
    info!(user, account = %account, "IAM database authentication stands in as a password account");
    Ok(LocalAccount {
        user: user.to_owned(),
        account,
        secret_arn,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_are_per_stack_and_fit_mysql() {
        let a = account_name("leasehold", "leasehold_app");
        assert!(
            a.starts_with("local_") && a.ends_with("_leasehold_app"),
            "{a}"
        );
        assert_eq!(a, account_name("leasehold", "leasehold_app"));
        assert_ne!(a, account_name("t-1-2-3", "leasehold_app"));
        let long = account_name("leasehold", "a_user_name_of_thirty_two_chars_");
        assert_eq!(long.len(), MAX_ACCOUNT);
        assert_ne!(new_password().unwrap(), new_password().unwrap());
        assert_eq!(new_password().unwrap().len(), 32);
    }
}
