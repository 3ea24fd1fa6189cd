//! Calls to the other services (profile, interaction), with one deadline and one way of turning
//! their answers into this service's errors.

use std::future::Future;
use std::time::Duration;

use throughline_runtime::Error;
use tonic::{Code, Response, Status};

/// How long a call to another service may take.
const DEADLINE: Duration = Duration::from_secs(2);

/// The answer of `service` to `call`: `None` for NOT_FOUND; UNAVAILABLE for what a retry may
/// cure (the service down, slow, busy); FAILED_PRECONDITION (`PEER_REFUSED`) for a refusal.
pub(crate) async fn call<T>(
    service: &str,
    call: impl Future<Output = Result<Response<T>, Status>>,
) -> Result<Option<T>, Error> {
    match tokio::time::timeout(DEADLINE, call).await {
        Ok(Ok(response)) => Ok(Some(response.into_inner())),
        Ok(Err(status)) => match status.code() {
            Code::NotFound => Ok(None),
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::Internal
            | Code::Unknown
            | Code::Cancelled => Err(Error::Unavailable(format!(
                "the {service} service answered {:?}",
                status.code()
            ))),
            code => Err(Error::FailedPrecondition {
                reason: "PEER_REFUSED",
                message: format!("the {service} service refused the call: {code:?}"),
            }),
        },
        Err(_) => Err(Error::Unavailable(format!(
            "the {service} service did not answer within {DEADLINE:?}"
        ))),
    }
}
