use std::io;

/// Everything that can stop a benchmark run before it produces a result.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("invalid load configuration: {0}")]
    Config(String),
    #[error("could not connect to {endpoint}: {source}")]
    Connect {
        endpoint: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("invalid endpoint: {0}")]
    Endpoint(#[from] tonic::transport::Error),
    #[error("histogram: {0}")]
    Histogram(String),
    #[error("a caller task failed: {0}")]
    Caller(#[from] tokio::task::JoinError),
    #[error("scenario setup failed: {0}")]
    Setup(String),
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("writing JSON: {0}")]
    Json(#[from] serde_json::Error),
}
