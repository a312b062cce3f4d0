//! The HTTP edge: thin axum handlers grouped by family, each family exporting `router()`, merged here.

use std::convert::Infallible;
use std::future::Future;

use axum::Router;
use axum::ServiceExt as _;
use axum::body::Body;
use axum::http::Request;
use axum::response::Response;
use axum::serve::ListenerExt;
use tower::{Service, ServiceBuilder};
use tower_http::LatencyUnit;
use tower_http::trace::{DefaultOnRequest, DefaultOnResponse, TraceLayer};
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};
use tracing::Level;

use crate::state::AppState;

pub mod api;
pub mod edge;
pub mod extract;
pub mod health;
pub mod oauth;
pub mod openapi;
pub mod pages;
pub mod session;

/// The whole application, ready to serve: the routes, wrapped in the layers that every request passes (the
/// request id and the headers of every answer, then the trace span).
///
/// Those layers wrap the router from outside rather than through `Router::layer`, which would wrap each route
/// on its own: each request would then clone the route's stack of boxed services, one allocation per layer.
pub fn app(
    state: AppState,
) -> impl Service<Request<Body>, Response = Response, Error = Infallible, Future: Send> + Clone + Send + Sync + 'static
{
    let hsts = state.config.sends_hsts();
    let sessions = SessionManagerLayer::new(state.sessions.clone())
        .with_name(session::cookie_name(&state.config))
        .with_secure(state.config.is_https())
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(time::Duration::seconds(
            i64::try_from(state.config.session_idle_ttl.as_secs()).unwrap_or(i64::MAX),
        )));

    let routes = Router::new()
        .merge(health::router())
        .merge(oauth::router())
        .merge(
            pages::with_page_headers(pages::router().merge(oauth::browser_router()).merge(api::router()))
                .layer(axum::middleware::from_fn_with_state(state.clone(), session::keep_last_seen))
                .layer(sessions),
        )
        .merge(pages::assets())
        .merge(openapi::router())
        .with_state(state);
    ServiceBuilder::new()
        .layer(edge::EdgeLayer::new(hsts))
        // axum serves answers with its own body type, which the trace layer's body wraps.
        .map_response(|response: axum::http::Response<_>| response.map(Body::new))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<_>| {
                    // The fields are only evaluated when the span is enabled. The path only: query strings can
                    // carry codes and tokens, which are never logged.
                    tracing::info_span!("request", request_id = %edge::request_id(request), method = %request.method(), path = %request.uri().path())
                })
                .on_request(DefaultOnRequest::new().level(Level::DEBUG))
                .on_response(DefaultOnResponse::new().level(Level::DEBUG).latency_unit(LatencyUnit::Micros)),
        )
        .service(routes)
}

/// Serves `state` on `listener` until `shutdown` completes, then finishes the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let background = state.spawn_background();
    // A response is sent as soon as it is written, not held back by Nagle's algorithm (nginx's `tcp_nodelay`
    // and Node's default too): every response here is one write.
    let listener = listener.tap_io(|stream| {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let result =
        axum::serve(listener, app(state.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>())
            .with_graceful_shutdown(shutdown)
            .await;
    for task in background {
        task.abort();
    }
    state.db.close().await;
    result
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing requests in flight");
}
