//! MySQL access for leasehold's database handlers.
//!
//! A handler signs in with a Secrets Manager secret in the shape RDS uses for managed master
//! passwords (`{"username","password"}`, read once per container and again after rotation),
//! or with an RDS IAM authentication token signed with its own credentials; over TLS when
//! given the certificate authorities to trust (`DB_TLS_CA_FILE`). Every operation opens one
//! connection, does its work and closes the connection on every path: a Lambda container can
//! be frozen or destroyed at any time, so an idle pooled connection would only eat the
//! database's `max_connections`.
//!
//! # Layout
//! - [`config`]: `DB_HOST`, `DB_PORT`, `DB_NAME`, `DB_AUTH`, `DB_SECRET_ARN`, `DB_USER`,
//!   `DB_TLS_CA_FILE`, `DB_STATEMENT_TIMEOUT_MS`; the seed's `DB_APP_*`.
//! - [`error`]: [`DbError`] with the names a workflow matches (`DatabaseBusy`, ...).
//! - [`queries`]: the allow-list of named queries and their parameter checks.
//! - [`database`]: connecting, running a named query under the statement limit, seeding the
//!   sample schema.
//! - [`iam`]: RDS IAM database authentication tokens.
//! - [`account`]: the application account the seed sets up: the allow-list's grants only,
//!   capped at the pool's budget.
#![forbid(unsafe_code)]

pub mod account;
pub mod config;
pub mod database;
pub mod error;
pub mod iam;
pub mod queries;

pub use account::AppAccount;
pub use config::{AppAccountConfig, DbAuth, DbConfig, TlsConfig};
pub use database::{Credentials, Database, SecretSource, ServerKind};
pub use error::DbError;
pub use queries::{MAX_HOLD_MS, NamedQuery, TABLE_GRANTS};
