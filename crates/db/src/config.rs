//! Where the database is, how to sign in, whether to use TLS and how long a statement may run;
//! read once per container.
//!
//! | variable | meaning |
//! |---|---|
//! | `DB_HOST`, `DB_PORT` (3306), `DB_NAME` | the database |
//! | `DB_AUTH` | `secret` (default): user and password from `DB_SECRET_ARN`; `iam`: user `DB_USER` with an IAM authentication token (RDS) |
//! | `DB_SECRET_ARN` | Secrets Manager secret `{"username","password"}` (with `DB_AUTH=secret`) |
//! | `DB_USER` | the database user (with `DB_AUTH=iam`) |
//! | `DB_TLS_CA_FILE` | PEM file of the certificate authorities to trust; when set, every connection is TLS and the server's certificate must chain to one of them and name `DB_HOST` |
//! | `DB_STATEMENT_TIMEOUT_MS` | statement budget of one operation, 1–900000 (default 35000) |
//!
//! The seed function also reads the application account it sets up: [`AppAccountConfig`].

use crate::error::DbError;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The statement budget when `DB_STATEMENT_TIMEOUT_MS` is not set: 35 s. It is longer than the
/// longest `holdMs` (30 s) so that every allowed request can finish, and shorter than the query
/// function's 45 s timeout by the 5 s connect timeout and some seconds to close the connection
/// and answer, so that the server stops a statement before the function (and its lease) ends.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(35);

/// The longest statement budget accepted: Lambda's own longest function timeout, 15 minutes.
pub const MAX_STATEMENT_TIMEOUT: Duration = Duration::from_secs(900);

/// How the handler signs in to the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbAuth {
    /// `DB_AUTH=secret`: user and password from a Secrets Manager secret
    /// (`{"username","password"}`, the shape of an RDS-managed master password).
    Secret { secret_arn: String },
    /// `DB_AUTH=iam`: RDS IAM database authentication. The password is a short-lived token
    /// signed with the function's own AWS credentials (`rds-db:connect` on this user); RDS
    /// accepts it only over TLS, so `DB_TLS_CA_FILE` is required.
    Iam { user: String },
}

/// The certificate authorities a TLS connection trusts (`DB_TLS_CA_FILE`), read at start so
/// that a missing or empty bundle is a configuration error, not a failed query.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsConfig {
    pub ca_file: PathBuf,
    pub ca_pem: Arc<[u8]>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("ca_file", &self.ca_file)
            .field("ca_pem_bytes", &self.ca_pem.len())
            .finish()
    }
}

impl TlsConfig {
    /// Reads the bundle; it must hold at least one PEM certificate.
    pub fn read(path: impl Into<PathBuf>) -> Result<Self, DbError> {
        let ca_file = path.into();
        let ca_pem = std::fs::read(&ca_file).map_err(|source| DbError::TlsCaUnreadable {
            path: ca_file.clone(),
            source,
        })?;
        let text = String::from_utf8_lossy(&ca_pem);
        if !text.contains("-----BEGIN CERTIFICATE-----") {
            return Err(DbError::BadSetting {
                key: "DB_TLS_CA_FILE",
                raw: ca_file.display().to_string(),
                expected: "a PEM file with at least one CERTIFICATE block",
            });
        }
        Ok(TlsConfig {
            ca_file,
            ca_pem: ca_pem.into(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbConfig {
    pub host: String,
    pub port: u16,
    pub name: String,
    pub auth: DbAuth,
    /// `DB_TLS_CA_FILE`: TLS with these authorities, or a plain connection when `None`.
    pub tls: Option<TlsConfig>,
    /// `DB_STATEMENT_TIMEOUT_MS`: how long the statements of one operation may run on the
    /// server, together; the server interrupts a statement at what is left of it, and the
    /// client stops waiting for an answer a little later (see [`crate::database::IO_GRACE`]).
    pub statement_timeout: Duration,
}

/// A value that is present and not blank.
fn setting(lookup: &impl Fn(&str) -> Option<String>, key: &str) -> Option<String> {
    lookup(key)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// MySQL account names are at most 32 characters; this crate also keeps them to letters,
/// digits and underscores so that they never need quoting beyond `'name'`.
pub fn valid_user_name(name: &str) -> bool {
    (1..=32).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

const USER_NAME_RULE: &str = "1 to 32 letters, digits or underscores";

impl DbConfig {
    pub fn from_env() -> Result<Self, DbError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, DbError> {
        let required =
            |key: &'static str| setting(&lookup, key).ok_or(DbError::MissingSetting(key));
        let port = match setting(&lookup, "DB_PORT") {
            None => 3306,
            Some(raw) => raw
                .parse()
                .map_err(|source| DbError::BadPort { raw, source })?,
        };
        let statement_timeout = match setting(&lookup, "DB_STATEMENT_TIMEOUT_MS") {
            None => DEFAULT_STATEMENT_TIMEOUT,
            Some(raw) => raw
                .parse()
                .ok()
                .map(Duration::from_millis)
                .filter(|t| !t.is_zero() && *t <= MAX_STATEMENT_TIMEOUT)
                .ok_or(DbError::BadSetting {
                    key: "DB_STATEMENT_TIMEOUT_MS",
                    raw,
                    expected: "a number of milliseconds from 1 to 900000",
                })?,
        };
        let tls = setting(&lookup, "DB_TLS_CA_FILE")
            .map(TlsConfig::read)
            .transpose()?;
        let auth = match setting(&lookup, "DB_AUTH").as_deref() {
            None | Some("secret") => DbAuth::Secret {
                secret_arn: required("DB_SECRET_ARN")?,
            },
            Some("iam") => {
                let user = required("DB_USER")?;
                if !valid_user_name(&user) {
                    return Err(DbError::BadSetting {
                        key: "DB_USER",
                        raw: user,
                        expected: USER_NAME_RULE,
                    });
                }
                if tls.is_none() {
                    return Err(DbError::IamNeedsTls);
                }
                DbAuth::Iam { user }
            }
            Some(other) => {
                return Err(DbError::BadSetting {
                    key: "DB_AUTH",
                    raw: other.to_owned(),
                    expected: "secret or iam",
                });
            }
        };
        Ok(DbConfig {
            host: required("DB_HOST")?,
            port,
            name: required("DB_NAME")?,
            auth,
            tls,
            statement_timeout,
        })
    }

    /// The secret the handler signs in with, when it signs in with a password.
    pub fn secret_arn(&self) -> Option<&str> {
        match &self.auth {
            DbAuth::Secret { secret_arn } => Some(secret_arn),
            DbAuth::Iam { .. } => None,
        }
    }
}

/// How the application account (the one the query function signs in as) is to be set up by
/// the seed, from `DB_APP_AUTH`:
///
/// | `DB_APP_AUTH` | the account |
/// |---|---|
/// | `iam` | user `DB_APP_USER`, identified by RDS's IAM plugin (`AWSAuthenticationPlugin`); MySQL only |
/// | `secret` | user and password from the secret `DB_APP_SECRET_ARN` |
/// | not set | no application account is managed |
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppAccountConfig {
    Iam { user: String },
    Secret { secret_arn: String },
}

impl AppAccountConfig {
    pub fn from_env() -> Result<Option<Self>, DbError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, DbError> {
        let required =
            |key: &'static str| setting(&lookup, key).ok_or(DbError::MissingSetting(key));
        match setting(&lookup, "DB_APP_AUTH").as_deref() {
            None => {
                for key in ["DB_APP_USER", "DB_APP_SECRET_ARN"] {
                    if setting(&lookup, key).is_some() {
                        return Err(DbError::BadSetting {
                            key: "DB_APP_AUTH",
                            raw: String::new(),
                            expected: "iam or secret when DB_APP_USER or DB_APP_SECRET_ARN is set",
                        });
                    }
                }
                Ok(None)
            }
            Some("iam") => {
                let user = required("DB_APP_USER")?;
                if !valid_user_name(&user) {
                    return Err(DbError::BadSetting {
                        key: "DB_APP_USER",
                        raw: user,
                        expected: USER_NAME_RULE,
                    });
                }
                Ok(Some(AppAccountConfig::Iam { user }))
            }
            Some("secret") => Ok(Some(AppAccountConfig::Secret {
                secret_arn: required("DB_APP_SECRET_ARN")?,
            })),
            Some(other) => Err(DbError::BadSetting {
                key: "DB_APP_AUTH",
                raw: other.to_owned(),
                expected: "iam or secret",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(env: &[(&str, &str)]) -> Result<DbConfig, DbError> {
        DbConfig::from_lookup(|k| {
            env.iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.to_string())
        })
    }

    const BASE: [(&str, &str); 3] = [("DB_HOST", "h"), ("DB_NAME", "d"), ("DB_SECRET_ARN", "s")];

    #[test]
    fn port_defaults_to_3306_and_missing_settings_are_named() {
        let ok = config(&BASE).unwrap();
        assert_eq!(ok.port, 3306);
        assert_eq!(
            ok.auth,
            DbAuth::Secret {
                secret_arn: "s".into()
            }
        );
        assert_eq!(ok.tls, None);
        let err = config(&[]).unwrap_err();
        assert!(err.to_string().contains("DB_SECRET_ARN"), "{err}");
        let err = config(&[("DB_SECRET_ARN", "s")]).unwrap_err();
        assert!(err.to_string().contains("DB_HOST"), "{err}");
        let bad_port = config(&[("DB_PORT", "x")]);
        assert!(bad_port.unwrap_err().to_string().contains("DB_PORT"));
    }

    #[test]
    fn the_statement_timeout_has_a_default_below_the_function_timeout_and_is_checked() {
        let with = |value: Option<&str>| {
            DbConfig::from_lookup(|k| match k {
                "DB_STATEMENT_TIMEOUT_MS" => value.map(str::to_string),
                "DB_PORT" | "DB_AUTH" | "DB_TLS_CA_FILE" => None,
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

    #[test]
    fn iam_sign_in_needs_a_user_name_and_tls() {
        let dir = std::env::temp_dir().join(format!("leasehold-db-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(
            &ca,
            "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let ca = ca.display().to_string();
        let iam = config(&[
            ("DB_HOST", "h"),
            ("DB_NAME", "d"),
            ("DB_AUTH", "iam"),
            ("DB_USER", "leasehold_app"),
            ("DB_TLS_CA_FILE", &ca),
        ])
        .unwrap();
        assert_eq!(
            iam.auth,
            DbAuth::Iam {
                user: "leasehold_app".into()
            }
        );
        assert_eq!(iam.secret_arn(), None);
        assert!(iam.tls.is_some());

        let cases: [(&[(&str, &str)], &str); 5] = [
            (&[("DB_AUTH", "iam"), ("DB_TLS_CA_FILE", &ca)], "DB_USER"),
            (&[("DB_AUTH", "iam"), ("DB_USER", "app")], "DB_TLS_CA_FILE"),
            (
                &[
                    ("DB_AUTH", "iam"),
                    ("DB_USER", "app'; DROP"),
                    ("DB_TLS_CA_FILE", &ca),
                ],
                "DB_USER",
            ),
            (
                &[("DB_AUTH", "password"), ("DB_SECRET_ARN", "s")],
                "DB_AUTH",
            ),
            (
                &[
                    ("DB_SECRET_ARN", "s"),
                    ("DB_TLS_CA_FILE", "/no/such/bundle.pem"),
                ],
                "DB_TLS_CA_FILE",
            ),
        ];
        for (extra, named) in cases {
            let mut env = vec![("DB_HOST", "h"), ("DB_NAME", "d")];
            env.extend_from_slice(extra);
            let err = config(&env).unwrap_err();
            assert_eq!(err.name(), "ConfigurationError", "{extra:?}");
            assert!(err.to_string().contains(named), "{extra:?}: {err}");
        }
        // A file without a certificate is refused at start, not at the first query.
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate").unwrap();
        let empty = empty.display().to_string();
        let err = config(&[BASE[0], BASE[1], BASE[2], ("DB_TLS_CA_FILE", &empty)]).unwrap_err();
        assert!(err.to_string().contains("CERTIFICATE"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_application_account_is_iam_or_a_secret_or_none() {
        let app = |env: &[(&str, &str)]| {
            AppAccountConfig::from_lookup(|k| {
                env.iter()
                    .find(|(key, _)| *key == k)
                    .map(|(_, v)| v.to_string())
            })
        };
        assert_eq!(app(&[]).unwrap(), None);
        assert_eq!(
            app(&[("DB_APP_AUTH", "iam"), ("DB_APP_USER", "leasehold_app")]).unwrap(),
            Some(AppAccountConfig::Iam {
                user: "leasehold_app".into()
            })
        );
        assert_eq!(
            app(&[("DB_APP_AUTH", "secret"), ("DB_APP_SECRET_ARN", "arn")]).unwrap(),
            Some(AppAccountConfig::Secret {
                secret_arn: "arn".into()
            })
        );
        for bad in [
            &[("DB_APP_AUTH", "iam")][..],
            &[("DB_APP_AUTH", "iam"), ("DB_APP_USER", "has space")],
            &[
                ("DB_APP_AUTH", "iam"),
                ("DB_APP_USER", "a_name_that_is_longer_than_32_chars"),
            ],
            &[("DB_APP_AUTH", "secret")],
            &[("DB_APP_AUTH", "both")],
            &[("DB_APP_USER", "leasehold_app")],
        ] {
            let err = app(bad).unwrap_err();
            assert_eq!(err.name(), "ConfigurationError", "{bad:?}");
            assert!(err.to_string().contains("DB_APP_"), "{bad:?}: {err}");
        }
    }
}
