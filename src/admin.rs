//! The admin HTTP servers: `/healthz` and `/conditions` on `--address:--port`, `/metrics`
//! on `--prometheus-address:--prometheus-port`. Minimal HTTP/1.1 on hyper; every answer
//! is computed from shared state on request, so idle servers cost nothing.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Connections served at once by one server; more are closed as soon as they are
/// accepted. The DaemonSet listens on the pod IP, so anything on the network can connect,
/// and each connection holds a task for up to 60 s: without a bound, idle connections
/// would cost memory without limit. Probes and scrapes need a handful.
pub const MAX_CONNECTIONS: usize = 32;

/// Answers requests for one server.
pub trait Handler: Send + Sync + 'static {
    /// Returns (status, content type, body) for a GET of `path`, or None for 404.
    fn get(&self, path: &str) -> Option<(StatusCode, &'static str, String)>;
}

/// Errors starting a server.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The address did not parse.
    #[error("invalid listen address {addr:?}: {source}")]
    Address {
        /// What was given.
        addr: String,
        /// Why it is invalid.
        source: std::net::AddrParseError,
    },
    /// Binding failed (port in use, permission).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

/// Parses `host` + `port` the way Go's net.JoinHostPort does (IPv6 without brackets ok).
pub fn listen_addr(host: &str, port: u16) -> Result<SocketAddr, AdminError> {
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    let text = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let text = text.replace("localhost:", "127.0.0.1:");
    text.parse()
        .map_err(|source| AdminError::Address { addr: text, source })
}

/// Binds and serves in a background task. Returns the bound address (useful with port 0
/// in tests).
pub async fn serve(addr: SocketAddr, handler: Arc<dyn Handler>) -> Result<SocketAddr, AdminError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| AdminError::Bind { addr, source })?;
    let local = listener.local_addr().unwrap_or(addr);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    // EMFILE and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "admin server accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                tracing::debug!(
                    "admin server: {MAX_CONNECTIONS} connections open, closing a new one"
                );
                drop(stream);
                continue;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let _slot = slot; // released when the connection ends
                let svc = service_fn(move |req: Request<Incoming>| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(respond(&*handler, &req)) }
                });
                let conn = http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(std::time::Duration::from_secs(10))
                    .serve_connection(TokioIo::new(stream), svc);
                let _ = tokio::time::timeout(std::time::Duration::from_secs(60), conn).await;
            });
        }
    });
    Ok(local)
}

fn respond(handler: &dyn Handler, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "method not allowed\n".into(),
        );
    }
    match handler.get(req.uri().path()) {
        Some((status, ctype, body)) => plain(status, ctype, body),
        None => plain(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}

fn plain(status: StatusCode, ctype: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(ctype) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    struct Ok200;

    impl Handler for Ok200 {
        fn get(&self, _path: &str) -> Option<(StatusCode, &'static str, String)> {
            Some((StatusCode::OK, "text/plain", "ok\n".into()))
        }
    }

    /// Sends GET /healthz on a new connection; returns what came back (empty if the
    /// server closed the connection without answering).
    async fn get_healthz(addr: SocketAddr) -> String {
        let Ok(mut c) = TcpStream::connect(addr).await else {
            return String::new();
        };
        let req = "GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
        if c.write_all(req.as_bytes()).await.is_err() {
            return String::new();
        }
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn idle_connections_beyond_the_bound_are_closed_and_slots_come_back() {
        let addr = serve("127.0.0.1:0".parse().unwrap(), Arc::new(Ok200))
            .await
            .unwrap();
        assert!(get_healthz(addr).await.starts_with("HTTP/1.1 200"));
        // Fill every slot with an idle connection (they send nothing).
        let mut idle = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        // One more is closed without an answer (accepted in order, after the idle ones).
        let refused = get_healthz(addr).await;
        assert!(!refused.starts_with("HTTP/1.1"), "{refused:?}");
        // Closing idle connections frees their slots: /healthz answers again.
        idle.truncate(MAX_CONNECTIONS - 2);
        let end = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            if get_healthz(addr).await.starts_with("HTTP/1.1 200") {
                break;
            }
            assert!(tokio::time::Instant::now() < end, "no slot came back");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[test]
    fn addresses() {
        assert_eq!(
            listen_addr("127.0.0.1", 20256).unwrap().to_string(),
            "127.0.0.1:20256"
        );
        assert_eq!(listen_addr("::1", 1).unwrap().to_string(), "[::1]:1");
        assert_eq!(listen_addr("", 5).unwrap().to_string(), "0.0.0.0:5");
        assert!(listen_addr("nope", 5).is_err());
    }
}
