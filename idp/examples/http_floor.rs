//! The floor under a document request: a server that answers every request with one fixed body and fixed
//! headers, and nothing else: the issuer's JWKS and the headers it sent with it. `bench/run.sh`
//! loads it beside the issuer, on the same core and with the same load, so that the issuer's CPU per JWKS
//! request can be split into what any server built on the same stack pays (the kernel's loopback TCP, hyper,
//! tokio, axum) and what is the issuer's own.
//!
//!   http_floor hyper|axum ADDRESS BODY_FILE HEADERS_FILE
//!
//! HEADERS_FILE is an HTTP/1 head as `curl -D` writes it; its status line, `date` and `content-length`
//! (which hyper writes) and `x-request-id` (one per request) are left out.
//!
//! `hyper`: hyper's HTTP/1 connection builder with a service function, without `axum::serve` (which drives
//! hyper-util's version-detecting builder with upgrades and graceful shutdown), so the difference between
//! the two modes is axum's: its `serve`, its router and its body types. `axum`: `axum::serve` and a router
//! with one route (`/jwks`) and no middleware. Both on a multi-threaded tokio runtime with TCP_NODELAY and
//! mimalloc, as the issuer. The issuer's answer has one header more, its request id.

use std::convert::Infallible;
use std::process::ExitCode;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Response, header};
use axum::serve::ListenerExt;
use bytes::Bytes;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, address, body_file, headers_file] = args.as_slice() else {
        eprintln!("usage: http_floor hyper|axum ADDRESS BODY_FILE HEADERS_FILE");
        return ExitCode::from(2);
    };
    let body = match std::fs::read(body_file) {
        Ok(body) => Bytes::from(body),
        Err(e) => {
            eprintln!("error: cannot read {body_file}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let headers = match std::fs::read_to_string(headers_file).map_err(|e| e.to_string()).and_then(|h| headers(&h)) {
        Ok(headers) => headers,
        Err(e) => {
            eprintln!("error: {headers_file}: {e}");
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
            "hyper" => serve_hyper(listener, headers, body).await,
            "axum" => serve_axum(listener, headers, body).await,
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

/// The headers of an HTTP/1 head (`curl -D`), but those hyper writes itself and the request id.
fn headers(head: &str) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    for line in head.lines().skip(1).map(str::trim_end).filter(|line| !line.is_empty()) {
        let (name, value) = line.split_once(':').ok_or_else(|| format!("not a header line: {line:?}"))?;
        let name = HeaderName::try_from(name.trim()).map_err(|e| format!("{name:?}: {e}"))?;
        if [header::DATE, header::CONTENT_LENGTH, idp::http::edge::X_REQUEST_ID].contains(&name) {
            continue;
        }
        let value = HeaderValue::from_str(value.trim()).map_err(|e| format!("{line:?}: {e}"))?;
        headers.append(name, value);
    }
    Ok(headers)
}

fn response(headers: &HeaderMap, body: &Bytes) -> Response<Body> {
    let mut response = Response::new(Body::from(body.clone()));
    *response.headers_mut() = headers.clone();
    response
}

async fn serve_hyper(listener: tokio::net::TcpListener, headers: HeaderMap, body: Bytes) -> std::io::Result<()> {
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

async fn serve_axum(listener: tokio::net::TcpListener, headers: HeaderMap, body: Bytes) -> std::io::Result<()> {
    let app =
        axum::Router::new().route("/jwks", axum::routing::get(move || std::future::ready(response(&headers, &body))));
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    axum::serve(listener, app).await
}
