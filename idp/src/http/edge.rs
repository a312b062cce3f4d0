//! The outermost layer, which every request and every answer passes: the request id and the headers that
//! every answer carries.
//!
//! A request keeps the caller's `x-request-id` when it is a plain token ([`is_plain_id`]), or is given one
//! here, before the trace span (which names it) is opened; the answer carries the same id back, and
//! `X-Content-Type-Options: nosniff`, unless a handler set either itself; and, for an https issuer
//! ([`Config::sends_hsts`](crate::config::Config::sends_hsts)), `Strict-Transport-Security` (ASVS 5
//! V3.4.1): a browser that met it once never speaks plain http to this host again, for a year. One layer of
//! ours does what
//! tower-http's `SetRequestId`, `PropagateRequestId` and `SetResponseHeader` did in three: those also stored
//! the id as an extension of the request and of the answer, which nothing here reads; the answer's extension
//! map alone was about 5% of the instructions of a JWKS request (docs/performance-changes.md, "One layer at
//! the edge").

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use axum::http::{HeaderName, HeaderValue, Request, Response, header};
use tower::{Layer, Service};

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request id of `request`: the caller's own or the one [`EdgeLayer`] gave it; `-` before that layer.
pub fn request_id<B>(request: &Request<B>) -> &str {
    request.headers().get(X_REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-")
}

/// The longest request id taken from a caller.
const MAX_CALLER_ID: usize = 128;

/// Whether a caller's request id is kept: 1 to 128 letters, digits and `-_.:+/=@`, which covers UUIDs,
/// ULIDs and the ids of proxies and tracing systems. Anything else (spaces, quotes, control bytes) is
/// replaced by an id of ours, as the id is written into every log line of the request and must not forge
/// fields there.
fn is_plain_id(id: &HeaderValue) -> bool {
    let id = id.as_bytes();
    (1..=MAX_CALLER_ID).contains(&id.len()) && id.iter().all(|&b| b.is_ascii_alphanumeric() || b"-_.:+/=@".contains(&b))
}

/// Request ids: a random prefix per process and a counter, unique across nodes without a system call per
/// request (a UUID v4 per request costs a `getrandom`).
#[derive(Clone)]
struct RequestIds {
    prefix: Arc<str>,
    next: Arc<AtomicU64>,
}

impl RequestIds {
    fn new() -> Self {
        RequestIds { prefix: crate::domain::random::token::<6>().into(), next: Arc::default() }
    }

    /// `<prefix>-<n in hex>`, written into one buffer that the header value then owns (no copy).
    fn next(&self) -> HeaderValue {
        use std::fmt::Write;
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut id = String::with_capacity(self.prefix.len() + 17);
        id.push_str(&self.prefix);
        // Writing to a String cannot fail.
        let _ = write!(id, "-{n:x}");
        // The prefix is URL-safe base64 and the counter hex: always a valid header value.
        HeaderValue::from_maybe_shared(bytes::Bytes::from(id)).unwrap_or(HeaderValue::from_static("-"))
    }
}

/// `Strict-Transport-Security` for an https issuer: a year, this host only (`includeSubDomains` would bind
/// hosts of the operator's that this server knows nothing of).
const HSTS: HeaderValue = HeaderValue::from_static("max-age=31536000");

/// See the module's documentation.
#[derive(Clone)]
pub struct EdgeLayer {
    ids: RequestIds,
    hsts: bool,
}

impl EdgeLayer {
    /// Request ids with a new random prefix: one per process. `hsts`: answers carry
    /// `Strict-Transport-Security`.
    pub fn new(hsts: bool) -> Self {
        EdgeLayer { ids: RequestIds::new(), hsts }
    }
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge { inner, ids: self.ids.clone(), hsts: self.hsts }
    }
}

/// The service [`EdgeLayer`] wraps around the application.
#[derive(Clone)]
pub struct Edge<S> {
    inner: S,
    ids: RequestIds,
    hsts: bool,
}

impl<S, B, R> Service<Request<B>> for Edge<S>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = EdgeFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let id = match request.headers().get(X_REQUEST_ID) {
            Some(id) if is_plain_id(id) => id.clone(),
            _ => {
                let id = self.ids.next();
                request.headers_mut().insert(X_REQUEST_ID, id.clone());
                id
            }
        };
        EdgeFuture { inner: self.inner.call(request), id: Some(id), hsts: self.hsts }
    }
}

pin_project_lite::pin_project! {
    /// The inner service's answer, with the request id and `nosniff` added.
    pub struct EdgeFuture<F> {
        #[pin]
        inner: F,
        id: Option<HeaderValue>,
        hsts: bool,
    }
}

impl<F, R, E> Future for EdgeFuture<F>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = Result<Response<R>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        let headers = response.headers_mut();
        if let Some(id) = this.id.take() {
            headers.entry(X_REQUEST_ID).or_insert(id);
        }
        headers.entry(header::X_CONTENT_TYPE_OPTIONS).or_insert(HeaderValue::from_static("nosniff"));
        if *this.hsts {
            headers.entry(header::STRICT_TRANSPORT_SECURITY).or_insert(HSTS);
        }
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    fn answering(
        response: fn() -> Response<Body>,
    ) -> Edge<impl Service<Request<Body>, Response = Response<Body>, Error = std::convert::Infallible> + Clone> {
        answering_over(false, response)
    }

    /// [`answering`], with `Strict-Transport-Security` or without.
    fn answering_over(
        hsts: bool,
        response: fn() -> Response<Body>,
    ) -> Edge<impl Service<Request<Body>, Response = Response<Body>, Error = std::convert::Infallible> + Clone> {
        EdgeLayer::new(hsts).layer(tower::service_fn(move |request: Request<Body>| async move {
            let mut answer = response();
            // Echo what the inner service saw, to check that the id was set before it ran.
            if let Some(id) = request.headers().get(X_REQUEST_ID) {
                answer.headers_mut().insert("seen-request-id", id.clone());
            }
            Ok(answer)
        }))
    }

    fn empty() -> Response<Body> {
        Response::new(Body::empty())
    }

    fn with_request_id(id: &'static str) -> Request<Body> {
        let mut request = Request::new(Body::empty());
        request.headers_mut().insert(X_REQUEST_ID, HeaderValue::from_static(id));
        request
    }

    #[tokio::test]
    async fn a_made_request_id_reaches_the_handler_and_comes_back() {
        let response = answering(empty).oneshot(Request::new(Body::empty())).await.unwrap();
        assert!(!response.headers()[X_REQUEST_ID].is_empty());
        assert_eq!(response.headers()[X_REQUEST_ID], response.headers()["seen-request-id"]);
    }

    #[tokio::test]
    async fn the_callers_request_id_reaches_the_handler_and_comes_back() {
        let id = "0f0e4b5c-7d1e-4a36-9d0b-2c1b7a9e8f11";
        let response = answering(empty).oneshot(with_request_id(id)).await.unwrap();
        assert_eq!(response.headers()["seen-request-id"], id);
        assert_eq!(response.headers()[X_REQUEST_ID], id);
    }

    #[tokio::test]
    async fn a_callers_request_id_with_a_space_is_replaced_by_one_of_ours() {
        let response = answering(empty).oneshot(with_request_id("x method=DELETE")).await.unwrap();
        let id = response.headers()[X_REQUEST_ID].to_str().unwrap();
        assert_ne!(id, "x method=DELETE");
        assert!(!id.contains(' '));
        assert_eq!(response.headers()["seen-request-id"], id, "the handler and the logs see ours");
    }

    #[test]
    fn caller_ids_are_kept_up_to_128_plain_characters() {
        assert!(is_plain_id(&HeaderValue::from_static("Root=1-5759e988-bd862e3fe1be46a994272793")));
        assert!(is_plain_id(&HeaderValue::from_str(&"a".repeat(128)).unwrap()));
        assert!(!is_plain_id(&HeaderValue::from_str(&"a".repeat(129)).unwrap()));
        assert!(!is_plain_id(&HeaderValue::from_static("")));
        assert!(!is_plain_id(&HeaderValue::from_static("a\"b")));
    }

    #[tokio::test]
    async fn every_answer_carries_nosniff() {
        let response = answering(empty).oneshot(Request::new(Body::empty())).await.unwrap();
        assert_eq!(response.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }

    #[tokio::test]
    async fn answers_carry_strict_transport_security_when_asked() {
        let response = answering_over(true, empty).oneshot(Request::new(Body::empty())).await.unwrap();
        assert_eq!(response.headers()[header::STRICT_TRANSPORT_SECURITY], "max-age=31536000");
    }

    #[tokio::test]
    async fn answers_carry_no_strict_transport_security_otherwise() {
        let response = answering(empty).oneshot(Request::new(Body::empty())).await.unwrap();
        assert!(response.headers().get(header::STRICT_TRANSPORT_SECURITY).is_none());
    }

    #[test]
    fn request_ids_are_the_prefix_and_a_hex_counter() {
        let ids = RequestIds::new();
        let made: Vec<HeaderValue> = (0..17).map(|_| ids.next()).collect();
        assert_eq!(made[0], format!("{}-0", ids.prefix));
        assert_eq!(made[16], format!("{}-10", ids.prefix));
        assert_eq!(ids.prefix.len(), 8, "6 random bytes in base64url");
    }

    #[tokio::test]
    async fn a_request_id_the_handler_set_is_kept() {
        let response = answering(|| {
            let mut response = empty();
            response.headers_mut().insert(X_REQUEST_ID, HeaderValue::from_static("handler-id"));
            response
        })
        .oneshot(Request::new(Body::empty()))
        .await
        .unwrap();
        assert_eq!(response.headers()[X_REQUEST_ID], "handler-id");
    }

    #[tokio::test]
    async fn a_content_type_options_the_handler_set_is_kept() {
        let response = answering(|| {
            let mut response = empty();
            response.headers_mut().insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("other"));
            response
        })
        .oneshot(Request::new(Body::empty()))
        .await
        .unwrap();
        assert_eq!(response.headers()[header::X_CONTENT_TYPE_OPTIONS], "other");
    }
}
