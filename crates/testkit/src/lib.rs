//! Support for leasehold's integration tests, which run against the real local services that
//! `scripts/dev-env.sh up` starts (MariaDB, and moto over HTTP).
//!
//! # Layout
//! - [`env`]: loading `.local/env` into the test process when the shell did not.
//! - [`names`]: unique pool and lease names, so tests can share one table.
//! - [`mysql`]: an administrator connection for observing and bending the database.
//! - [`catcher`]: an HTTP server on 127.0.0.1 that stands in for a CloudFormation `ResponseURL`.
//! - [`handler`]: calling a handler as the Lambda runtime does; the lease handlers' broker.
//! - [`router`]: calling an axum router without a socket.
//! - [`queue`]: waiter records queued without the broker's token check.
#![forbid(unsafe_code)]

pub mod catcher;
pub mod env;
pub mod handler;
pub mod mysql;
pub mod names;
pub mod queue;
pub mod router;

pub use catcher::ResponseCatcher;
pub use env::{require_env, sdk_config};
pub use handler::{broker, invoke};
pub use names::unique;
