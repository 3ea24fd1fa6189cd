//! The HTTP port for Prometheus scrapes.

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::telemetry::PrometheusRegistry;

/// Serves `GET /metrics` until `shutdown` completes.
pub async fn serve_metrics(
    listener: TcpListener,
    registry: PrometheusRegistry,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let registry = registry.clone();
            async move {
                (
                    [(
                        http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    registry.render(),
                )
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
