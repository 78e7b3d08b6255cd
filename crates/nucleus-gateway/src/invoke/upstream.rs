//! Connections to replicas. HTTP/1.1 keep-alive connections are pooled per replica and per
//! gateway worker thread (a connection is driven by the thread that uses it, so a request never
//! waits on another thread's wake-up); gRPC goes over one HTTP/2 connection (h2c, prior knowledge)
//! per replica and worker; a WebSocket handshake gets a connection of its own that becomes the
//! tunnel.
//!
//! A request that never left the gateway (no connection could be made, or hyper handed it back
//! unsent) is returned to the caller to try another replica; a stale pooled connection is
//! replaced on the spot without counting against the replica.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::backends::Backend;

/// How long a connection to a replica may take to open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Idle pooled connections older than this are closed rather than reused.
const IDLE_FOR: Duration = Duration::from_secs(30);
/// Idle connections kept per replica and worker.
const MAX_IDLE: usize = 256;
/// Pools are split into this many slots, one per worker thread (threads beyond share).
const SLOTS: usize = 16;

thread_local! {
    static SLOT: Cell<usize> = const { Cell::new(0) };
}

/// Marks the calling thread as gateway worker `index`: its connections go in their own slot.
pub fn set_worker(index: usize) {
    SLOT.with(|slot| slot.set(index % SLOTS));
}

fn slot() -> usize {
    SLOT.with(Cell::get)
}

/// The body of a request to a replica: the caller's, streamed, or none (a retry of a request
/// without a body).
#[derive(Debug)]
pub enum Outbound {
    Caller(Incoming),
    Empty,
}

impl Body for Outbound {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            Outbound::Caller(body) => Pin::new(body).poll_frame(cx),
            Outbound::Empty => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Outbound::Caller(body) => body.is_end_stream(),
            Outbound::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Outbound::Caller(body) => body.size_hint(),
            Outbound::Empty => SizeHint::with_exact(0),
        }
    }
}

/// How a request travels to the replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    /// An HTTP/1.1 upgrade (WebSocket): a fresh connection that becomes the tunnel.
    Upgrade,
    /// HTTP/2 with prior knowledge (gRPC).
    Http2,
}

/// The idle connections to one replica.
#[derive(Debug, Default)]
pub struct Pool {
    slots: [Mutex<Slot>; SLOTS],
}

#[derive(Debug, Default)]
struct Slot {
    idle: Vec<Idle>,
    h2: Option<http2::SendRequest<Outbound>>,
}

#[derive(Debug)]
struct Idle {
    sender: http1::SendRequest<Outbound>,
    since: Instant,
}

impl Pool {
    fn take_idle(&self) -> Option<http1::SendRequest<Outbound>> {
        let mut slot = self.slots[slot()].lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        while let Some(idle) = slot.idle.pop() {
            if !idle.sender.is_closed() && now.saturating_duration_since(idle.since) < IDLE_FOR {
                return Some(idle.sender);
            }
        }
        None
    }

    /// Gives back a connection whose last answer was read to the end.
    pub fn put(&self, reuse: Reuse) {
        if reuse.sender.is_closed() {
            return;
        }
        let mut slot = self.slots[reuse.slot].lock().unwrap_or_else(|p| p.into_inner());
        if slot.idle.len() < MAX_IDLE {
            slot.idle.push(Idle { sender: reuse.sender, since: Instant::now() });
        }
    }

    fn h2(&self) -> Option<http2::SendRequest<Outbound>> {
        let slot = self.slots[slot()].lock().unwrap_or_else(|p| p.into_inner());
        slot.h2.as_ref().filter(|s| !s.is_closed()).cloned()
    }

    fn set_h2(&self, sender: http2::SendRequest<Outbound>) {
        self.slots[slot()].lock().unwrap_or_else(|p| p.into_inner()).h2 = Some(sender);
    }
}

/// An HTTP/1.1 connection to put back in its pool once the answer's body has been read.
#[derive(Debug)]
pub struct Reuse {
    sender: http1::SendRequest<Outbound>,
    slot: usize,
}

/// Why a request to a replica failed.
#[derive(Debug)]
pub enum Failure {
    /// Nothing of the request reached the replica; here it is back.
    NotSent(Box<Request<Outbound>>, String),
    /// The request went out (maybe only in part) and the connection ended before any answer.
    Lost(String),
}

/// Sends `request` to `backend`; on success, the answer and the connection to pool after it.
pub async fn send(backend: &Backend, request: Request<Outbound>, protocol: Protocol) -> Result<(Response<Incoming>, Option<Reuse>), Failure> {
    match protocol {
        Protocol::Http1 => send_http1(backend, request).await,
        Protocol::Upgrade => {
            let sender = match connect_http1(backend, true).await {
                Ok(sender) => sender,
                Err(err) => return Err(Failure::NotSent(Box::new(request), describe_io(&err))),
            };
            dispatch_http1(sender, request).await.map(|(response, _)| (response, None))
        }
        Protocol::Http2 => send_http2(backend, request).await.map(|response| (response, None)),
    }
}

async fn send_http1(backend: &Backend, mut request: Request<Outbound>) -> Result<(Response<Incoming>, Option<Reuse>), Failure> {
    // Pooled connections first; one that turns out closed is dropped, and its request comes back.
    while let Some(mut sender) = backend.pool.take_idle() {
        // Usually ready at once; one still finishing its last answer is waited for, briefly.
        if !sender.is_ready() && !matches!(tokio::time::timeout(CONNECT_TIMEOUT, sender.ready()).await, Ok(Ok(()))) {
            continue;
        }
        match dispatch_http1(sender, request).await {
            Err(Failure::NotSent(unsent, _)) => request = *unsent,
            done => return done,
        }
    }
    let sender = match connect_http1(backend, false).await {
        Ok(sender) => sender,
        Err(err) => return Err(Failure::NotSent(Box::new(request), describe_io(&err))),
    };
    dispatch_http1(sender, request).await
}

async fn dispatch_http1(
    mut sender: http1::SendRequest<Outbound>,
    request: Request<Outbound>,
) -> Result<(Response<Incoming>, Option<Reuse>), Failure> {
    match sender.try_send_request(request).await {
        Ok(response) => {
            let reusable = keeps_alive(&response);
            Ok((response, reusable.then_some(Reuse { sender, slot: slot() })))
        }
        Err(mut err) => {
            let unsent = err.take_message();
            let reason = describe_hyper(err.error());
            match unsent {
                Some(request) => Err(Failure::NotSent(Box::new(request), reason)),
                None => Err(Failure::Lost(reason)),
            }
        }
    }
}

/// Whether the replica keeps the connection open after this answer.
fn keeps_alive(response: &Response<Incoming>) -> bool {
    let connection = response.headers().get(http::header::CONNECTION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let has = |token: &str| connection.split(',').any(|t| t.trim().eq_ignore_ascii_case(token));
    match response.version() {
        http::Version::HTTP_10 => has("keep-alive"),
        _ => !has("close"),
    }
}

async fn send_http2(backend: &Backend, request: Request<Outbound>) -> Result<Response<Incoming>, Failure> {
    let mut sender = match backend.pool.h2() {
        Some(sender) => sender,
        None => match connect_http2(backend).await {
            Ok(sender) => {
                backend.pool.set_h2(sender.clone());
                sender
            }
            Err(err) => return Err(Failure::NotSent(Box::new(request), describe_io(&err))),
        },
    };
    if let Err(err) = sender.ready().await {
        return Err(Failure::NotSent(Box::new(request), describe_hyper(&err)));
    }
    sender.try_send_request(request).await.map_err(|mut err| {
        let unsent = err.take_message();
        let reason = describe_hyper(err.error());
        match unsent {
            Some(request) => Failure::NotSent(Box::new(request), reason),
            None => Failure::Lost(reason),
        }
    })
}

async fn open(backend: &Backend) -> io::Result<TcpStream> {
    let connect = async {
        match backend.address.parse::<SocketAddr>() {
            Ok(addr) => TcpStream::connect(addr).await,
            Err(_) => TcpStream::connect(backend.address.as_str()).await,
        }
    };
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("no connection within {CONNECT_TIMEOUT:?}")))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

async fn connect_http1(backend: &Backend, upgrades: bool) -> io::Result<http1::SendRequest<Outbound>> {
    let stream = open(backend).await?;
    let (sender, connection) = http1::Builder::new().handshake(TokioIo::new(stream)).await.map_err(io::Error::other)?;
    let name = backend.name.clone();
    if upgrades {
        tokio::spawn(async move {
            if let Err(err) = connection.with_upgrades().await {
                tracing::debug!(replica = name, error = %err, "replica connection ended");
            }
        });
    } else {
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(replica = name, error = %err, "replica connection ended");
            }
        });
    }
    Ok(sender)
}

async fn connect_http2(backend: &Backend) -> io::Result<http2::SendRequest<Outbound>> {
    let stream = open(backend).await?;
    let (sender, connection) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(20))
        .handshake(TokioIo::new(stream))
        .await
        .map_err(io::Error::other)?;
    let name = backend.name.clone();
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(replica = name, error = %err, "replica HTTP/2 connection ended");
        }
    });
    Ok(sender)
}

fn describe_io(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::ConnectionRefused => "the connection was refused".to_owned(),
        io::ErrorKind::TimedOut => format!("it did not accept a connection within {CONNECT_TIMEOUT:?}"),
        _ => format!("the connection failed ({err})"),
    }
}

fn describe_hyper(err: &hyper::Error) -> String {
    let io_kind = std::error::Error::source(err).and_then(|s| s.downcast_ref::<io::Error>()).map(io::Error::kind);
    match io_kind {
        Some(io::ErrorKind::ConnectionReset) => "the connection was reset".to_owned(),
        Some(io::ErrorKind::BrokenPipe) => "the connection was closed while the request was sent".to_owned(),
        _ if err.is_incomplete_message() || err.is_canceled() || err.is_closed() => {
            "the connection closed before an answer".to_owned()
        }
        _ => format!("the connection failed ({err})"),
    }
}
