//! Where the database is and how long a statement may run; read once per container.

use crate::error::DbError;
use std::time::Duration;

/// The statement budget when `DB_STATEMENT_TIMEOUT_MS` is not set: 35 s. It is longer than the
/// longest `holdMs` (30 s) so that every allowed request can finish, and shorter than the query
/// function's 45 s timeout by the 5 s connect timeout and some seconds to close the connection
/// and answer, so that the server stops a statement before the function (and its lease) ends.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(35);

/// The longest statement budget accepted: Lambda's own longest function timeout, 15 minutes.
pub const MAX_STATEMENT_TIMEOUT: Duration = Duration::from_secs(900);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbConfig {
    pub host: String,
    pub port: u16,
    pub name: String,
    /// ARN (or name) of the Secrets Manager secret with `{"username","password"}`.
    pub secret_arn: String,
    /// `DB_STATEMENT_TIMEOUT_MS`: how long the statements of one operation may run on the
    /// server, together; the server interrupts a statement at what is left of it, and the
    /// client stops waiting for an answer a little later (see [`crate::database::IO_GRACE`]).
    pub statement_timeout: Duration,
}

impl DbConfig {
    pub fn from_env() -> Result<Self, DbError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, DbError> {
        let required = |key: &'static str| {
            lookup(key)
                .filter(|v| !v.trim().is_empty())
                .ok_or(DbError::MissingSetting(key))
        };
        let port = match lookup("DB_PORT").filter(|v| !v.trim().is_empty()) {
            None => 3306,
            Some(raw) => raw.trim().parse().map_err(|source| DbError::BadPort {
                raw: raw.clone(),
                source,
            })?,
        };
        let statement_timeout =
            match lookup("DB_STATEMENT_TIMEOUT_MS").filter(|v| !v.trim().is_empty()) {
                None => DEFAULT_STATEMENT_TIMEOUT,
                Some(raw) => raw
                    .trim()
                    .parse()
                    .ok()
                    .map(Duration::from_millis)
                    .filter(|t| !t.is_zero() && *t <= MAX_STATEMENT_TIMEOUT)
                    .ok_or_else(|| DbError::BadSetting {
                        key: "DB_STATEMENT_TIMEOUT_MS",
                        raw: raw.clone(),
                        expected: "a number of milliseconds from 1 to 900000",
                    })?,
            };
        Ok(DbConfig {
            host: required("DB_HOST")?,
            port,
            name: required("DB_NAME")?,
            secret_arn: required("DB_SECRET_ARN")?,
            statement_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_defaults_to_3306_and_missing_settings_are_named() {
        let env = [("DB_HOST", "h"), ("DB_NAME", "d"), ("DB_SECRET_ARN", "s")];
        let lookup = |k: &str| {
            env.iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.to_string())
        };
        assert_eq!(DbConfig::from_lookup(lookup).unwrap().port, 3306);
        let err = DbConfig::from_lookup(|_| None).unwrap_err();
        assert!(err.to_string().contains("DB_HOST"), "{err}");
        let bad_port = DbConfig::from_lookup(|k| (k == "DB_PORT").then(|| "x".to_string()));
        assert!(bad_port.unwrap_err().to_string().contains("DB_PORT"));
    }

    #[test]
    fn the_statement_timeout_has_a_default_below_the_function_timeout_and_is_checked() {
        let with = |value: Option<&str>| {
            DbConfig::from_lookup(|k| match k {
                "DB_STATEMENT_TIMEOUT_MS" => value.map(str::to_string),
                "DB_PORT" => None,
                _ => Some("x".to_string()),
            })
        };
        let default = with(None).unwrap().statement_timeout;
        assert_eq!(default, DEFAULT_STATEMENT_TIMEOUT);
        assert!(default > Duration::from_millis(crate::MAX_HOLD_MS));
        assert!(default < Duration::from_secs(45));
        assert_eq!(
            with(Some(" 1500 ")).unwrap().statement_timeout,
            Duration::from_millis(1500)
        );
        for bad in ["0", "-1", "1.5", "soon", "900001"] {
            let err = with(Some(bad)).unwrap_err();
            assert_eq!(err.name(), "ConfigurationError", "{bad}");
            assert!(err.to_string().contains("DB_STATEMENT_TIMEOUT_MS"), "{err}");
        }
    }
}
