//! Diagnostics shaped like AWS `ValidateStateMachineDefinition`: a severity, a code, a
//! message and a location such as `/States/Foo/Next`. Both loading and the graph checks
//! report them.

/// ERROR makes a definition unusable; WARNING is advice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One finding, with AWS's code names (`SCHEMA_VALIDATION_FAILED`, `MISSING_TRANSITION_TARGET`,
/// `MISSING_END_STATE`, `INVALID_JSON_DESCRIPTION`, `MISSING_DESCRIPTION`, `INVALID_RESOURCE`,
/// `INVALID_STATE_NAME`, and the warning `NO_DOLLAR`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: String,
    pub message: String,
    pub location: Option<String>,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} at {}: {}",
            if self.severity == Severity::Error {
                "ERROR"
            } else {
                "WARNING"
            },
            self.code,
            self.location.as_deref().unwrap_or("/"),
            self.message
        )
    }
}

impl Diagnostic {
    /// An ERROR with an AWS code at a location.
    pub fn error(code: &str, location: Option<String>, message: String) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code: code.into(),
            message,
            location,
        }
    }

    /// A WARNING with an AWS code at a location.
    pub fn warning(code: &str, location: Option<String>, message: String) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            code: code.into(),
            message,
            location,
        }
    }
}
