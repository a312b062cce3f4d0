//! The floor under a document request: a server that answers every request with one fixed body and the
//! headers our issuer sends with its JWKS in its default configuration, and nothing else. `bench/run.sh`
//! loads it beside the issuer, on the same core and with the same load, so that the issuer's CPU per JWKS
//! request can be split into what any server built on the same stack pays (the kernel's loopback TCP, hyper,
//! tokio, axum) and what is the issuer's own.
//!
//!   http_floor hyper|axum ADDRESS BODY_FILE
//!
//! `hyper`: hyper's HTTP/1 connection builder with a service function, without `axum::serve` (which drives
//! hyper-util's version-detecting builder with upgrades and graceful shutdown), so the difference between
//! the two modes is axum's: its `serve`, its router and its body types. `axum`: `axum::serve` and a router
//! with one route (`/jwks`) and no middleware. Both on a multi-threaded tokio runtime with TCP_NODELAY and
//! mimalloc, as the issuer. The issuer's answer has one header more, its request id.

use std::convert::Infallible;
use std::process::ExitCode;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Response, header};
use axum::serve::ListenerExt;
use bytes::Bytes;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, address, body_file] = args.as_slice() else {
        eprintln!("usage: http_floor hyper|axum ADDRESS BODY_FILE");
        return ExitCode::from(2);
    };
    let body = match std::fs::read(body_file) {
        Ok(body) => Bytes::from(body),
        Err(e) => {
            eprintln!("error: cannot read {body_file}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(address).await?;
        match mode.as_str() {
            "hyper" => serve_hyper(listener, body).await,
            "axum" => serve_axum(listener, body).await,
            other => Err(std::io::Error::other(format!("mode {other}: hyper or axum"))),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The issuer's JWKS headers, but a request id: content type, cache, CORS and `nosniff`.
fn headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=600"));
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers
}

fn response(headers: &HeaderMap, body: &Bytes) -> Response<Body> {
    let mut response = Response::new(Body::from(body.clone()));
    *response.headers_mut() = headers.clone();
    response
}

async fn serve_hyper(listener: tokio::net::TcpListener, body: Bytes) -> std::io::Result<()> {
    let headers = headers();
    loop {
        let (stream, _) = listener.accept().await?;
        // As the issuer: a connection without TCP_NODELAY is served all the same.
        let _ = stream.set_nodelay(true);
        let (headers, body) = (headers.clone(), body.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |_request| {
                std::future::ready(Ok::<_, Infallible>(response(&headers, &body)))
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            // A connection's error (the load generator closing it) ends that connection only.
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
        });
    }
}

async fn serve_axum(listener: tokio::net::TcpListener, body: Bytes) -> std::io::Result<()> {
    let headers = headers();
    let app =
        axum::Router::new().route("/jwks", axum::routing::get(move || std::future::ready(response(&headers, &body))));
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    axum::serve(listener, app).await
}
