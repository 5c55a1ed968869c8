//! MySQL access for leasehold's database handlers.
//!
//! Credentials come from a Secrets Manager secret in the shape RDS uses for managed master
//! passwords (`{"username","password"}`), read once per container. Every operation opens one
//! connection, does its work and closes the connection on every path: a Lambda container can
//! be frozen or destroyed at any time, so an idle pooled connection would only eat the
//! database's `max_connections`.
//!
//! # Layout
//! - [`config`]: `DB_HOST`, `DB_PORT`, `DB_NAME`, `DB_SECRET_ARN`, `DB_STATEMENT_TIMEOUT_MS`.
//! - [`error`]: [`DbError`] with the names a workflow matches (`DatabaseBusy`, ...).
//! - [`queries`]: the allow-list of named queries and their parameter checks.
//! - [`database`]: connecting, running a named query under the statement limit, seeding the
//!   sample schema.
#![forbid(unsafe_code)]

pub mod config;
pub mod database;
pub mod error;
pub mod queries;

pub use config::DbConfig;
pub use database::{Credentials, Database, SecretSource, ServerKind};
pub use error::DbError;
pub use queries::{MAX_HOLD_MS, NamedQuery};
