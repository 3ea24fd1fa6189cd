//! The harness every Throughline test shares: test databases (SQLite and PostgreSQL), suites of
//! services started in-process on ephemeral ports, tokens and typed clients.
#![allow(clippy::unwrap_used)] // A harness that cannot set up must stop the test loudly.

mod clients;
mod database;
mod http_sink;
mod nats;
mod postgres;
mod raw;
mod smtp_sink;
mod suite;

pub use clients::{Authenticated, BearerToken, Clients};
pub use database::{TestDatabase, query_integer};
pub use http_sink::{HttpMode, HttpSink, RecordedRequest};
pub use nats::{TestNats, nats_url};
pub use raw::{Credentials, raw_call, raw_call_with, reached_the_service};
pub use smtp_sink::{ReceivedMail, SmtpMode, SmtpSink};
pub use suite::{TEST_SECRET, TestSuite, bearer, token};

/// Runs a test body once against SQLite and once against PostgreSQL, as two tests.
///
/// ```ignore
/// throughline_harness::on_both_databases!(migrations_apply, |db| async move { ... });
/// ```
#[macro_export]
macro_rules! on_both_databases {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = $crate::TestDatabase::sqlite();
                ($body)(db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let db = $crate::TestDatabase::postgres().await;
                ($body)(db).await;
            }
        }
    };
}

/// The fields an INVALID_ARGUMENT names, asserting that it is one.
pub fn violations(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}
