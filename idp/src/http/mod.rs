//! The HTTP edge: thin axum handlers grouped by family, each family exporting `router()`, merged here.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Request, header};
use axum::serve::ListenerExt;
use tower::ServiceBuilder;
use tower_http::LatencyUnit;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultOnRequest, DefaultOnResponse, TraceLayer};
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};
use tracing::Level;

use crate::state::AppState;

pub mod api;
pub mod extract;
pub mod health;
pub mod oauth;
pub mod openapi;
pub mod pages;
pub mod session;

/// The whole application, ready to serve or to drive with `oneshot` in tests.
pub fn app(state: AppState) -> Router {
    let sessions = SessionManagerLayer::new(state.sessions.clone())
        .with_name(session::cookie_name(&state.config))
        .with_secure(state.config.is_https())
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(time::Duration::seconds(
            i64::try_from(state.config.session_idle_ttl.as_secs()).unwrap_or(i64::MAX),
        )));

    Router::new()
        .merge(health::router())
        .merge(oauth::router())
        .merge(
            pages::with_page_headers(pages::router().merge(oauth::browser_router()).merge(api::router()))
                .layer(axum::middleware::from_fn_with_state(state.clone(), session::keep_last_seen))
                .layer(sessions),
        )
        .merge(pages::assets())
        .merge(openapi::router())
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(RequestIds::default()))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(|request: &Request<_>| {
                            // The fields are only evaluated when the span is enabled. The path only: query
                            // strings can carry codes and tokens, which are never logged.
                            tracing::info_span!("request", request_id = %request_id(request), method = %request.method(), path = %request.uri().path())
                        })
                        .on_request(DefaultOnRequest::new().level(Level::DEBUG))
                        .on_response(DefaultOnResponse::new().level(Level::DEBUG).latency_unit(LatencyUnit::Micros)),
                )
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                )),
        )
        .with_state(state)
}

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request id `SetRequestIdLayer` put on the request (or the caller's own).
fn request_id<B>(request: &Request<B>) -> &str {
    request.headers().get(X_REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-")
}

/// Request ids: a random prefix per process and a counter, unique across nodes without a system call per
/// request (a UUID v4 per request costs a `getrandom`). A caller's own `x-request-id` is kept.
#[derive(Clone)]
struct RequestIds {
    prefix: Arc<str>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl Default for RequestIds {
    fn default() -> Self {
        RequestIds { prefix: crate::domain::random::token::<6>().into(), next: Arc::default() }
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        use std::fmt::Write;
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // `<prefix>-<n in hex>`, written into one buffer that the header value then owns (no copy).
        let mut id = String::with_capacity(self.prefix.len() + 17);
        id.push_str(&self.prefix);
        write!(id, "-{n:x}").ok()?;
        HeaderValue::from_maybe_shared(bytes::Bytes::from(id)).ok().map(RequestId::new)
    }
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

/// `Cache-Control` for public documents that change only when keys change.
pub(crate) fn public_cache(max_age: Duration) -> HeaderValue {
    HeaderValue::from_str(&format!("public, max-age={}", max_age.as_secs()))
        .unwrap_or_else(|_| HeaderValue::from_static("no-cache"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_the_prefix_and_a_hex_counter() {
        let mut ids = RequestIds::default();
        let request = Request::new(());
        let made: Vec<String> = (0..17)
            .map(|_| ids.make_request_id(&request).unwrap().header_value().to_str().unwrap().to_owned())
            .collect();
        assert_eq!(made[0], format!("{}-0", ids.prefix));
        assert_eq!(made[16], format!("{}-10", ids.prefix));
        assert_eq!(ids.prefix.len(), 8, "6 random bytes in base64url");
    }
}
