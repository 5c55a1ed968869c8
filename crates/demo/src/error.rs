//! The demo's errors: what failed, with the underlying cause kept as the source.

use std::path::PathBuf;

type Cause = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(
        "{0} is not set: run the demo through scripts/demo.sh, which loads .local/env and the \
         stack's endpoints"
    )]
    MissingEnv(&'static str),
    #[error("{0}")]
    Setup(String),
    /// A call to the local stack or to moto failed.
    #[error("{context}")]
    Service {
        context: String,
        #[source]
        source: Cause,
    },
    #[error("database: {context}")]
    Database {
        context: String,
        #[source]
        source: mysql_async::Error,
    },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the {run} harness execution ended {status} ({detail})")]
    Harness {
        run: String,
        status: String,
        detail: String,
    },
}

impl DemoError {
    pub fn service(context: impl Into<String>, source: impl Into<Cause>) -> Self {
        DemoError::Service {
            context: context.into(),
            source: source.into(),
        }
    }

    pub fn database(context: impl Into<String>, source: mysql_async::Error) -> Self {
        DemoError::Database {
            context: context.into(),
            source,
        }
    }
}

/// The error and its causes on one line: `a: b: c`.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.ends_with(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}
