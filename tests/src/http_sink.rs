//! A real HTTP server on `127.0.0.1:0` (axum) that records every request, for tests of the
//! `http` provider and for the delivery tests and benchmarks that send through it.
//!
//! It answers `200` with `{"id": "sink-<n>"}` (the field's name can be changed), `503` while
//! down, or a fixed status. The record is a `Vec` under a `std::sync::Mutex` held only to push
//! or copy, so thousands of requests a second pass through it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as Extract;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// How the sink answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpMode {
    /// `200` with `{"<id field>": "sink-<n>"}`.
    #[default]
    Up,
    /// `503`, as in an outage.
    Down,
    /// This status with an empty JSON object (`{}`).
    Status(u16),
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// From 1, in order of arrival.
    pub number: usize,
    pub method: String,
    /// The path and query.
    pub path: String,
    /// Names in lower case, in order.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// What the sink answered.
    pub status: u16,
}

impl RecordedRequest {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

struct Shared {
    state: Mutex<State>,
    arrived: Notify,
}

struct State {
    mode: HttpMode,
    id_field: String,
    requests: Vec<RecordedRequest>,
}

/// The server; it stops when dropped.
pub struct HttpSink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for HttpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSink")
            .field("addr", &self.addr)
            .finish()
    }
}

impl HttpSink {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                mode: HttpMode::Up,
                id_field: "id".to_owned(),
                requests: Vec::new(),
            }),
            arrived: Notify::new(),
        });
        let app = Router::new().fallback(record).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, shared, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_mode(&self, mode: HttpMode) {
        self.shared.state.lock().unwrap().mode = mode;
    }

    /// The name of the id's field in the answer: `id` by default.
    pub fn set_id_field(&self, field: &str) {
        self.shared.state.lock().unwrap().id_field = field.to_owned();
    }

    /// Every request so far, in order of arrival.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.state.lock().unwrap().requests.clone()
    }

    pub fn count(&self) -> usize {
        self.shared.state.lock().unwrap().requests.len()
    }

    /// Requests whose header `name` is `value`, e.g. the idempotency key.
    pub fn count_with_header(&self, name: &str, value: &str) -> usize {
        self.shared
            .state
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|request| request.header(name) == Some(value))
            .count()
    }

    /// Waits until at least `n` requests arrived; `Err` with the count after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Result<(), usize> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.shared.arrived.notified();
            if self.count() >= n {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return Err(self.count());
            }
        }
    }
}

impl Drop for HttpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(
    Extract(shared): Extract<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let headers = headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let path = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_owned(), |path| path.as_str().to_owned());
    let (status, answer) = {
        let mut state = shared.state.lock().unwrap();
        let number = state.requests.len() + 1;
        let (status, answer) = match state.mode {
            HttpMode::Up => (
                200,
                serde_json::json!({ state.id_field.as_str(): format!("sink-{number}") }),
            ),
            HttpMode::Down => (503, serde_json::json!({})),
            HttpMode::Status(status) => (status, serde_json::json!({})),
        };
        state.requests.push(RecordedRequest {
            number,
            method: method.as_str().to_owned(),
            path,
            headers,
            body,
            status,
        });
        (status, answer)
    };
    shared.arrived.notify_waiters();
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(CONTENT_TYPE, "application/json")],
        answer.to_string(),
    )
        .into_response()
}
