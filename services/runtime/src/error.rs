//! The one error model of every service, mapped to `tonic::Status` in one place.
//!
//! Validation failures carry field violations (google.rpc.BadRequest), every error carries an
//! ErrorInfo with a stable reason, and internal errors are logged with their chain and answered
//! with a generic message so no detail (or personal data) leaks to the caller.

use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The ErrorInfo domain of every Throughline error.
pub const ERROR_DOMAIN: &str = "throughline";

/// One invalid field of a request: `field` is a path such as `profile.email` or `items[3].id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid argument: {}", describe(.0))]
    InvalidArgument(Vec<FieldViolation>),
    #[error("{0} not found")]
    NotFound(String),
    /// Not found for a reason a client can act on (e.g. `SOURCE_NOT_SERVED`).
    #[error("not found: {message}")]
    NotFoundBecause {
        reason: &'static str,
        message: String,
    },
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The request is valid but the system is not in a state to act on it; `reason` is the
    /// ErrorInfo reason a client can act on (e.g. `CURSOR_EXPIRED`).
    #[error("failed precondition: {message}")]
    FailedPrecondition {
        reason: &'static str,
        message: String,
    },
    /// A concurrent request holds the same resource or idempotency key: retry later.
    #[error("aborted: {0}")]
    Aborted(String),
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("resource exhausted: {message}")]
    ResourceExhausted {
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("deadline exceeded")]
    DeadlineExceeded,
    #[error("internal error: {0:#}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

fn describe(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// One invalid field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldViolation::new(field, description)])
    }

    /// INVALID_ARGUMENT with every violation found, or `Ok` when there is none.
    pub fn unless_valid(violations: Vec<FieldViolation>) -> Result<(), Self> {
        if violations.is_empty() {
            Ok(())
        } else {
            Err(Self::InvalidArgument(violations))
        }
    }

    pub fn internal(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Internal(error.into())
    }

    pub fn code(&self) -> Code {
        match self {
            Self::InvalidArgument(_) => Code::InvalidArgument,
            Self::NotFound(_) | Self::NotFoundBecause { .. } => Code::NotFound,
            Self::AlreadyExists(_) => Code::AlreadyExists,
            Self::FailedPrecondition { .. } => Code::FailedPrecondition,
            Self::Aborted(_) => Code::Aborted,
            Self::Unauthenticated(_) => Code::Unauthenticated,
            Self::PermissionDenied(_) => Code::PermissionDenied,
            Self::ResourceExhausted { .. } => Code::ResourceExhausted,
            Self::Unavailable(_) => Code::Unavailable,
            Self::DeadlineExceeded => Code::DeadlineExceeded,
            Self::Internal(_) => Code::Internal,
        }
    }

    /// The stable, machine-readable ErrorInfo reason.
    fn reason(&self) -> &'static str {
        match self {
            Self::InvalidArgument(_) => "INVALID_ARGUMENT",
            Self::NotFound(_) => "NOT_FOUND",
            Self::NotFoundBecause { reason, .. } => reason,
            Self::AlreadyExists(_) => "ALREADY_EXISTS",
            Self::FailedPrecondition { reason, .. } => reason,
            Self::Aborted(_) => "CONCURRENT_REQUEST",
            Self::Unauthenticated(_) => "UNAUTHENTICATED",
            Self::PermissionDenied(_) => "PERMISSION_DENIED",
            Self::ResourceExhausted { .. } => "RESOURCE_EXHAUSTED",
            Self::Unavailable(_) => "UNAVAILABLE",
            Self::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Self::Internal(_) => "INTERNAL",
        }
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let mut details = ErrorDetails::new();
        details.set_error_info(
            error.reason(),
            ERROR_DOMAIN,
            std::collections::HashMap::new(),
        );
        let message = match &error {
            Error::Internal(source) => {
                // The chain goes to the log, never to the caller.
                tracing::error!(error = %source, chain = ?source, "internal error");
                "internal error".to_owned()
            }
            Error::InvalidArgument(violations) => {
                for violation in violations {
                    details.add_bad_request_violation(&violation.field, &violation.description);
                }
                error.to_string()
            }
            Error::ResourceExhausted {
                retry_after: Some(delay),
                ..
            } => {
                details.set_retry_info(Some(*delay));
                error.to_string()
            }
            Error::Unavailable(_) => {
                details.set_retry_info(Some(Duration::from_secs(1)));
                error.to_string()
            }
            _ => error.to_string(),
        };
        Status::with_error_details(error.code(), message, details)
    }
}

impl From<sea_orm::DbErr> for Error {
    fn from(error: sea_orm::DbErr) -> Self {
        use sea_orm::{DbErr, SqlErr};
        if let Some(SqlErr::UniqueConstraintViolation(_)) = error.sql_err() {
            return Self::AlreadyExists("resource".to_owned());
        }
        match error {
            DbErr::RecordNotFound(_) => Self::NotFound("resource".to_owned()),
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => {
                Self::Unavailable("database unavailable".to_owned())
            }
            other => Self::internal(other),
        }
    }
}

/// Maps an error to a Status: the conversion every handler ends with.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_carries_field_violations() {
        let status: Status = Error::InvalidArgument(vec![
            FieldViolation::new("profile.email", "not an email address"),
            FieldViolation::new("page_size", "must be between 0 and 1000"),
        ])
        .into();
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let bad_request = details.bad_request().expect("bad request details");
        let fields: Vec<_> = bad_request
            .field_violations
            .iter()
            .map(|v| v.field.as_str())
            .collect();
        assert_eq!(fields, ["profile.email", "page_size"]);
        assert_eq!(
            details.error_info().map(|i| i.reason.as_str()),
            Some("INVALID_ARGUMENT")
        );
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let status: Status = Error::internal("secret table xyz is corrupt").into();
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "internal error");
    }

    #[test]
    fn resource_exhausted_says_when_to_retry() {
        let status: Status = Error::ResourceExhausted {
            message: "tenant rate limit".into(),
            retry_after: Some(Duration::from_millis(1500)),
        }
        .into();
        let retry = status.get_error_details().retry_info().cloned();
        assert_eq!(
            retry.and_then(|r| r.retry_delay),
            Some(Duration::from_millis(1500))
        );
    }
}
