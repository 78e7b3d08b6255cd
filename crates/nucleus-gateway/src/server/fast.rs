//! The fast path: every connection starts here. Plain HTTP/1.1 invoke requests that the gateway
//! can decide at once (a known token, a workload with a ready replica in the route cache, a body
//! framed by length or chunks) are proxied from bytes to bytes (`invoke::raw`). At the first
//! request it does not take (the REST API, HTTP/2, an upgrade, `Expect`, anything that needs meta
//! or an error answer), the connection is handed to hyper, bytes already read included, for the
//! rest of its life.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio::time::Instant;

use super::Shared;
use super::prefixed::Prefixed;
use crate::AppState;
use crate::http1::head::{self, Kind, RequestHead};
use crate::http1::{Conn, Framing};
use crate::invoke::raw::{self, After};
use crate::invoke::{self, Admission};

/// A request head larger than this is left to hyper (which refuses it).
const MAX_HEAD: usize = 64 * 1024;

pub async fn serve(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    permit: OwnedSemaphorePermit,
    mut stop: watch::Receiver<bool>,
) {
    let mut down = Conn::new(stream);
    let limits = &shared.state.config.limits;
    // Waiting for a request is waiting for its head: both timeouts count from then.
    let wait = limits.idle_timeout.min(limits.header_read_timeout);
    let mut idle_since = Instant::now();
    // The connection's one timer: for its wait for a request, then for the replica's answer.
    let timer = tokio::time::sleep_until(idle_since + wait);
    tokio::pin!(timer);
    loop {
        timer.as_mut().reset(idle_since + wait);
        let request = loop {
            match head::request(&down.read) {
                Ok(Some(request)) => break request,
                Ok(None) if down.read.len() <= MAX_HEAD => {}
                // Not HTTP/1.1 (HTTP/2's preface), or not valid: hyper answers it.
                _ => return hand_over(shared, down, peer, permit, stop).await,
            }
            let read = tokio::select! {
                biased;
                read = down.fill() => read,
                () = timer.as_mut() => {
                    tracing::debug!(%peer, ?wait, "closing a connection that sent no complete request in time");
                    return;
                }
                _ = stop.wait_for(|stop| *stop) => return,
            };
            match read {
                Ok(n) if n > 0 => {}
                _ => return,
            }
        };
        let Some((admission, framing)) = plan(&shared.state, &down.read, &request) else {
            return hand_over(shared, down, peer, permit, stop).await;
        };
        let head = down.read.split_to(request.head.len);
        let after = raw::forward(&shared.state, admission, peer, &mut down, &head, &request, framing, timer.as_mut()).await;
        if after == After::Close || *stop.borrow() {
            return;
        }
        idle_since = Instant::now();
    }
}

/// Whether the fast path takes this request, and how its body is framed.
fn plan(state: &AppState, buf: &[u8], request: &RequestHead) -> Option<(Admission, Framing)> {
    // Traced invokes take hyper's path, which makes their spans and passes `traceparent` on.
    if nucleus_telemetry::trace::enabled() {
        return None;
    }
    let head = &request.head;
    if head.http10 || head.connection.upgrade || head.connection.names_others || head.has(Kind::Upgrade) || head.has(Kind::Expect) {
        return None;
    }
    let target = std::str::from_utf8(&buf[request.target.clone()]).ok()?;
    if !target.starts_with(invoke::PREFIX) || &buf[request.method.clone()] == b"CONNECT" {
        return None;
    }
    let framing = match head.framing(buf) {
        Ok(Some(Framing::UntilClose)) | Err(_) => return None,
        Ok(Some(framing)) => framing,
        Ok(None) => Framing::Done,
    };
    let authorization = head.values(buf, Kind::Authorization).next().and_then(|v| std::str::from_utf8(v).ok());
    let path = target.split('?').next().unwrap_or(target);
    invoke::admit_plain(state, path, authorization).map(|admission| (admission, framing))
}

async fn hand_over(shared: Arc<Shared>, down: Conn, peer: SocketAddr, permit: OwnedSemaphorePermit, stop: watch::Receiver<bool>) {
    let Conn { stream, read, .. } = down;
    super::hyper_connection(shared, Prefixed::new(read.freeze(), stream), peer, permit, stop).await;
}
