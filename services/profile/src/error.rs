//! The service's errors: the runtime's error model, plus refusals whose ErrorInfo carries
//! metadata a caller acts on (which profile holds an identifier, which profiles conflict,
//! which merge must be undone first).

use std::collections::HashMap;

use sea_orm::{DbErr, SqlErr};
use throughline_runtime::error::ERROR_DOMAIN;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

pub use throughline_runtime::Error as Base;

/// ErrorInfo reasons of this service.
pub mod reason {
    /// The identifiers of one call belong to profiles the rules forbid merging.
    pub const IDENTITY_CONFLICT: &str = "IDENTITY_CONFLICT";
    /// The profile is merged or erased and cannot change.
    pub const PROFILE_NOT_ACTIVE: &str = "PROFILE_NOT_ACTIVE";
    /// UnmergeProfiles on a merge already undone.
    pub const ALREADY_UNMERGED: &str = "ALREADY_UNMERGED";
    /// UnmergeProfiles while a later merge involving the target is in effect.
    pub const LATER_MERGE: &str = "LATER_MERGE";
    /// RemoveIdentifier of a profile's last identifier.
    pub const LAST_IDENTIFIER: &str = "LAST_IDENTIFIER";
    /// Another profile holds the identifier.
    pub const IDENTIFIER_TAKEN: &str = "IDENTIFIER_TAKEN";
    /// A limit of the tenant (segments, identifiers) is reached.
    pub const LIMIT_REACHED: &str = "LIMIT_REACHED";
    /// An update or delete carried an etag that is no longer current.
    pub const ETAG_MISMATCH: &str = "ETAG_MISMATCH";
    /// A concurrent writer got there first: the call is retried, and answered ABORTED if the
    /// race persists.
    pub const CONTENTION: &str = "CONTENTION";
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Base(#[from] Base),
    /// A refusal with ErrorInfo metadata.
    #[error("{message}")]
    Detailed {
        code: Code,
        reason: &'static str,
        message: String,
        metadata: Vec<(&'static str, String)>,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Base::invalid(field, description).into()
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Base::NotFound(what.into()).into()
    }

    pub fn detailed(
        code: Code,
        reason: &'static str,
        message: impl Into<String>,
        metadata: Vec<(&'static str, String)>,
    ) -> Self {
        Self::Detailed {
            code,
            reason,
            message: message.into(),
            metadata,
        }
    }

    pub fn precondition(reason: &'static str, message: impl Into<String>) -> Self {
        Base::FailedPrecondition {
            reason,
            message: message.into(),
        }
        .into()
    }

    pub fn aborted(message: impl Into<String>) -> Self {
        Base::Aborted(message.into()).into()
    }

    /// A race with a concurrent writer that a fresh attempt resolves.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Detailed { reason, .. } if *reason == reason::CONTENTION)
    }

    pub fn contention() -> Self {
        Self::detailed(
            Code::Aborted,
            reason::CONTENTION,
            "a concurrent change got there first; retry",
            Vec::new(),
        )
    }
}

/// Database errors: a unique violation or a lock/serialization failure is a race with a
/// concurrent writer (retried); the rest go through the runtime's mapping.
pub fn db(error: DbErr) -> Error {
    if let Some(SqlErr::UniqueConstraintViolation(_)) = error.sql_err() {
        return Error::contention();
    }
    let text = error.to_string();
    // SQLite: a deferred transaction that read an older snapshot cannot start writing
    // ("database is locked"); PostgreSQL: serialization failure or deadlock.
    if text.contains("database is locked")
        || text.contains("40001")
        || text.contains("40P01")
        || text.contains("deadlock detected")
    {
        return Error::contention();
    }
    Base::from(error).into()
}

impl From<DbErr> for Error {
    fn from(error: DbErr) -> Self {
        db(error)
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::Base(base) => base.into(),
            Error::Detailed {
                code,
                reason,
                message,
                metadata,
            } => {
                let metadata: HashMap<String, String> = metadata
                    .into_iter()
                    .map(|(key, value)| (key.to_owned(), value))
                    .collect();
                let mut details = ErrorDetails::new();
                details.set_error_info(reason, ERROR_DOMAIN, metadata);
                Status::with_error_details(code, message, details)
            }
        }
    }
}

/// Collects field violations so one answer names every offending field.
#[derive(Debug, Default)]
pub struct Violations(Vec<throughline_runtime::error::FieldViolation>);

impl Violations {
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(throughline_runtime::error::FieldViolation::new(
            field,
            description,
        ));
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_result(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Base::InvalidArgument(self.0).into())
        }
    }
}
