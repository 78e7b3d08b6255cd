//! `--metrics-listen`: a plain HTTP endpoint that answers `GET /metrics` with every Prometheus
//! series of this process (for roles that serve no HTTP of their own: meta, scheduler, agent).
//! One request per connection, like a Prometheus scrape; it binds where the operator says (an
//! internal address) and serves nothing but the series.

use std::net::SocketAddr;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The most of a request head read.
const MAX_HEAD: usize = 8 * 1024;

/// Binds `addr` and serves scrapes in the background; returns the bound address.
pub async fn start(addr: SocketAddr) -> anyhow::Result<SocketAddr> {
    let listener =
        TcpListener::bind(addr).await.with_context(|| format!("binding --metrics-listen {addr}: pick a free address for the metrics"))?;
    let bound = listener.local_addr()?;
    tracing::info!(address = %bound, "Prometheus metrics at http://{bound}/metrics");
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(async move {
                        if let Err(err) = answer(stream).await {
                            tracing::debug!(error = %err, "metrics scrape failed");
                        }
                    });
                }
                Err(err) => {
                    tracing::warn!(error = %err, "cannot accept a metrics scrape");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(bound)
}

async fn answer(mut stream: TcpStream) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
        let read = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut buffer)).await??;
        if read == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buffer[..read]);
    }
    let line = String::from_utf8_lossy(head.split(|b| *b == b'\n').next().unwrap_or_default()).into_owned();
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let path = target.split('?').next().unwrap_or_default();
    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics") => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", nucleus_telemetry::encode()),
        (_, "/metrics") => ("405 Method Not Allowed", "text/plain", "use GET\n".to_owned()),
        _ => ("404 Not Found", "text/plain", "this address serves only GET /metrics\n".to_owned()),
    };
    let response =
        format!("HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
