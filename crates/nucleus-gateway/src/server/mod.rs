//! The gateway's HTTP server. Like nginx's workers, each of `workers` threads runs its own event
//! loop and accepts from the same listening socket; a connection, its requests and the replica
//! connections they use all stay on the thread that accepted it, so proxying a request costs no
//! cross-thread wake-up.
//!
//! Each connection speaks HTTP/1.1 (with upgrades) or HTTP/2 (h2c, prior knowledge), and is held to
//! the [`Limits`](crate::Limits): a header-read timeout, an idle timeout, and a cap on connections
//! open at once (a connection past it gets a 503 and is closed). A connection starts on the fast
//! path (`fast`), which proxies plain HTTP/1.1 invoke requests itself; the first request it does
//! not take hands the connection to hyper, which sends invoke URLs to the invoke proxy and
//! everything else to the REST router.

mod fast;
mod prefixed;

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use bytes::Bytes;
use futures::FutureExt;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::invoke::{self, GatewayBody};
use crate::{AppState, router};

/// Serves the gateway on `listener` until `shutdown` resolves; in-flight requests finish first.
pub async fn serve(state: AppState, listener: TcpListener, shutdown: impl Future<Output = ()> + Send + 'static) -> io::Result<()> {
    let listener = listener.into_std()?;
    let workers = state.config.workers.max(1);
    let connections = Arc::new(Semaphore::new(state.config.limits.max_connections));
    let (stop, stopped) = watch::channel(false);
    let mut finished = Vec::with_capacity(workers);
    for index in 0..workers {
        let listener = listener.try_clone()?;
        let worker = Worker { index, state: state.clone(), connections: connections.clone(), stop: stopped.clone() };
        let (done, finished_rx) = oneshot::channel();
        std::thread::Builder::new().name(format!("nucleus-gateway-{index}")).spawn(move || {
            let _ = done.send(worker.run(listener));
        })?;
        finished.push(finished_rx);
    }
    drop(stopped);
    shutdown.await;
    let _ = stop.send(true);
    let mut result = Ok(());
    for worker in finished {
        match worker.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => result = Err(err),
            Err(_) => result = Err(io::Error::other("a gateway worker thread panicked")),
        }
    }
    result
}

struct Worker {
    index: usize,
    state: AppState,
    connections: Arc<Semaphore>,
    stop: watch::Receiver<bool>,
}

impl Worker {
    fn run(self, listener: std::net::TcpListener) -> io::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(async move {
            crate::invoke::upstream::set_worker(self.index);
            let listener = TcpListener::from_std(listener)?;
            self.accept(listener).await;
            Ok(())
        })
    }

    async fn accept(self, listener: TcpListener) {
        // No hyper header-read timer: `connection` watches each connection's idle time itself, which
        // costs a timer per connection instead of a timer reset per request.
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder.http2().timer(TokioTimer::new()).keep_alive_interval(Duration::from_secs(30));
        let shared = Arc::new(Shared { builder, router: router(self.state.clone()), state: self.state.clone() });
        let mut tasks = JoinSet::new();
        let mut stop = self.stop.clone();
        loop {
            tokio::select! {
                _ = stop.wait_for(|stop| *stop) => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        match self.connections.clone().try_acquire_owned() {
                            Ok(permit) => {
                                tasks.spawn(fast::serve(shared.clone(), stream, peer, permit, self.stop.clone()));
                            }
                            Err(_) => {
                                tasks.spawn(refuse(stream));
                            }
                        }
                    }
                    Err(err) => {
                        // Out of file descriptors and the like: wait a moment rather than spin.
                        tracing::warn!(error = %err, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        // In-flight requests finish; a stream that would outlast the grace period is cut.
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(open = tasks.len(), grace = ?SHUTDOWN_GRACE, "closing connections still open at shutdown");
            tasks.abort_all();
        }
    }
}

/// How long a stopping gateway waits for in-flight requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What every connection of a worker uses.
struct Shared {
    builder: auto::Builder<TokioExecutor>,
    router: axum::Router,
    state: AppState,
}

/// The answer to a connection over the limit, written before closing it.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: 112\r\n\r\n{\"detail\":\"The gateway is at its limit of open connections (--max-connections); retry shortly, or use another.\"}";

async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(BUSY).await?;
        stream.shutdown().await
    })
    .await;
}

/// Serves a connection with hyper (HTTP/1.1 or HTTP/2), from the bytes the fast path read on.
async fn hyper_connection(
    shared: Arc<Shared>,
    io: prefixed::Prefixed,
    peer: SocketAddr,
    _permit: OwnedSemaphorePermit,
    mut stop: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let service = {
        let shared = shared.clone();
        let activity = activity.clone();
        hyper::service::service_fn(move |request: Request<Incoming>| {
            let busy = activity.busy(request.version());
            dispatch(shared.clone(), peer, request)
                .map(move |response| Ok::<_, Infallible>(response.map(|body| Tracked { body, _busy: busy })))
        })
    };
    let connection = shared.builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);
    let limits = &shared.state.config.limits;
    // HTTP/1.1 connections waiting for a request are also waiting for its head: the header-read
    // timeout applies from when they fall idle (as hyper's own timer would count it).
    let allowed = || if activity.is_http2() { limits.idle_timeout } else { limits.idle_timeout.min(limits.header_read_timeout) };
    let mut closing = Closing::No;
    let check = tokio::time::sleep(allowed());
    tokio::pin!(check);
    loop {
        tokio::select! {
            biased;
            result = connection.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(%peer, error = %err, "connection ended");
                }
                return;
            }
            _ = stop.wait_for(|stop| *stop), if closing == Closing::No => {
                closing = Closing::Stopping;
                connection.as_mut().graceful_shutdown();
            }
            _ = &mut check, if closing != Closing::Stopping => match (closing, activity.idle_since()) {
                // A connection that did not close when asked was in the middle of a request
                // head (a slowloris): it is dropped.
                (Closing::Idle, _) => {
                    tracing::debug!(%peer, "dropping a connection that sent no complete request in time");
                    return;
                }
                (Closing::No, Some(since)) if since.elapsed() >= allowed() => {
                    tracing::debug!(%peer, allowed = ?allowed(), "closing a connection with no request in progress");
                    closing = Closing::Idle;
                    connection.as_mut().graceful_shutdown();
                    check.as_mut().reset(Instant::now() + IDLE_CLOSE_GRACE);
                }
                (_, Some(since)) => check.as_mut().reset(since + allowed()),
                (_, None) => check.as_mut().reset(Instant::now() + allowed()),
            }
        }
    }
}

/// Why a connection is closing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closing {
    No,
    /// The gateway stops: requests in progress finish (within the worker's grace period).
    Stopping,
    /// It waited too long for a request: closed at once if idle, dropped after a moment if a
    /// request head is still trickling in.
    Idle,
}

/// How long a connection asked to close for idleness may take to do so.
const IDLE_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Invoke URLs go to the proxy, everything else to the REST router.
async fn dispatch(shared: Arc<Shared>, peer: SocketAddr, request: Request<Incoming>) -> Response<GatewayBody> {
    if invoke::is_invoke(request.uri().path()) {
        return invoke::handle(&shared.state, peer, request).await;
    }
    let mut request = request.map(axum::body::Body::new);
    request.extensions_mut().insert(ConnectInfo(peer));
    match shared.router.clone().oneshot(request).await {
        Ok(response) => response.map(GatewayBody::Left),
        Err(never) => match never {},
    }
}

/// Whether a connection has a request in progress, and since when it has none.
struct Activity {
    busy: AtomicU32,
    http2: AtomicBool,
    /// Milliseconds after `since` at which it last became idle.
    idle_ms: AtomicU64,
    since: Instant,
}

impl Activity {
    fn new() -> Activity {
        Activity { busy: AtomicU32::new(0), http2: AtomicBool::new(false), idle_ms: AtomicU64::new(0), since: Instant::now() }
    }

    fn busy(self: &Arc<Self>, version: http::Version) -> Busy {
        if version == http::Version::HTTP_2 && !self.http2.load(Ordering::Relaxed) {
            self.http2.store(true, Ordering::Relaxed);
        }
        self.busy.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }

    fn is_http2(&self) -> bool {
        self.http2.load(Ordering::Relaxed)
    }

    /// `None` while a request is in progress.
    fn idle_since(&self) -> Option<Instant> {
        (self.busy.load(Ordering::Relaxed) == 0).then(|| self.since + Duration::from_millis(self.idle_ms.load(Ordering::Relaxed)))
    }
}

/// A request in progress on its connection, until its answer has been sent.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let activity = &self.0;
        let idle_ms = Instant::now().saturating_duration_since(activity.since).as_millis() as u64;
        activity.idle_ms.store(idle_ms, Ordering::Relaxed);
        activity.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An answer's body, keeping its connection busy until it has been sent (or dropped).
struct Tracked {
    body: GatewayBody,
    _busy: Busy,
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_idle_only_while_no_answer_is_under_way() {
        let activity = Arc::new(Activity::new());
        let opened = Instant::now();
        assert_eq!(activity.idle_since(), Some(opened), "idle from the start");
        let first = activity.busy(http::Version::HTTP_11);
        let second = activity.busy(http::Version::HTTP_11);
        tokio::time::advance(Duration::from_secs(90)).await;
        assert_eq!(activity.idle_since(), None, "a long answer is not idleness");
        drop(first);
        assert_eq!(activity.idle_since(), None, "one still under way");
        tokio::time::advance(Duration::from_secs(1)).await;
        drop(second);
        assert_eq!(activity.idle_since(), Some(opened + Duration::from_secs(91)));
    }

    #[test]
    fn the_busy_answer_says_its_length() {
        let text = std::str::from_utf8(BUSY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
        assert!(serde_json::from_str::<serde_json::Value>(body).is_ok());
    }
}
