//! Where the database is; read once per container.

use crate::error::DbError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbConfig {
    pub host: String,
    pub port: u16,
    pub name: String,
    /// ARN (or name) of the Secrets Manager secret with `{"username","password"}`.
    pub secret_arn: String,
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
        Ok(DbConfig {
            host: required("DB_HOST")?,
            port,
            name: required("DB_NAME")?,
            secret_arn: required("DB_SECRET_ARN")?,
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
}
