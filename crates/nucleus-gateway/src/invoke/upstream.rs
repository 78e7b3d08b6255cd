//! Connections to replicas. HTTP/1.1 goes through the proxy's own client (`h1`) on keep-alive
//! connections pooled per replica and per gateway worker thread: a connection is driven by the
//! thread that uses it, so a request never waits on another thread's wake-up. gRPC goes over one
//! HTTP/2 connection (h2c, prior knowledge) per replica and worker, and a WebSocket handshake over a
//! connection of its own that becomes the tunnel; both with hyper's client.
//!
//! A request that never left the gateway (no connection could be made, or nothing of it was
//! written) comes back to the caller to try another replica; a stale pooled connection is
//! replaced on the spot without counting against the replica.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::future::Either;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use super::backends::Backend;
use super::h1::{self, Sending};
use crate::http1::Conn;

/// How long a connection to a replica may take to open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
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

/// The idle connections to one replica.
#[derive(Debug, Default)]
pub struct Pool {
    slots: [Mutex<Slot>; SLOTS],
}

#[derive(Debug, Default)]
struct Slot {
    /// Boxed: a connection travels with its request, moved at every step.
    #[allow(clippy::vec_box)]
    idle: Vec<Box<Conn>>,
    h2: Option<http2::SendRequest<Outbound>>,
}

impl Pool {
    /// The most recently used idle connection of this worker that can still be used. A replica
    /// that closes idle connections is seen doing so (`is_usable`); one that keeps them open may.
    pub fn take_idle(&self) -> Option<Box<Conn>> {
        let mut slot = self.slots[slot()].lock().unwrap_or_else(|p| p.into_inner());
        while let Some(mut idle) = slot.idle.pop() {
            if idle.is_usable() {
                return Some(idle);
            }
        }
        None
    }

    /// Gives back a connection whose last answer was read to the end.
    pub fn put(&self, connection: Box<Conn>) {
        let mut slot = self.slots[slot()].lock().unwrap_or_else(|p| p.into_inner());
        if slot.idle.len() < MAX_IDLE {
            slot.idle.push(connection);
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

/// Why a request to a replica failed.
#[derive(Debug)]
pub enum Failure {
    /// Nothing of the request reached the replica; here is its body back.
    NotSent(Outbound, String),
    /// The request went out (maybe only in part) and the connection ended before any answer.
    Lost(String),
}

/// The request line and headers, written anew for each connection tried.
pub type WriteHead<'a> = &'a (dyn Fn(&mut Vec<u8>) + Sync);

/// Sends a request over HTTP/1.1 with the proxy's own client. The common case, a pooled
/// connection ready to go, is a small future; the rarer one, opening a connection (after a pooled
/// one turned out stale, or when none is idle), is boxed, so that every request's future stays
/// small.
pub fn send_http1<'a>(
    backend: &'a Backend,
    write_head: WriteHead<'a>,
    body: Outbound,
    sending: Sending,
    head_request: bool,
) -> impl Future<Output = Result<Response<h1::Reader>, Failure>> + Send + 'a {
    match backend.pool.take_idle() {
        Some(connection) => Either::Left(async move {
            match exchange(connection, write_head, body, sending, head_request).await {
                Err(Failure::NotSent(body, _)) => Box::pin(send_http1_fresh(backend, write_head, body, sending, head_request)).await,
                done => done,
            }
        }),
        None => Either::Right(Box::pin(send_http1_fresh(backend, write_head, body, sending, head_request))),
    }
}

async fn exchange(
    mut connection: Box<Conn>,
    write_head: WriteHead<'_>,
    body: Outbound,
    sending: Sending,
    head_request: bool,
) -> Result<Response<h1::Reader>, Failure> {
    connection.write.clear();
    write_head(&mut connection.write);
    h1::exchange(connection, body, sending, head_request).await.map_err(|failed| match failed {
        h1::Failed::NotSent(body, err) => Failure::NotSent(body, describe_io(&err)),
        h1::Failed::Lost(err) => Failure::Lost(describe_io(&err)),
    })
}

/// Pooled connections first (they may have gone stale since the first was taken), then a new one.
async fn send_http1_fresh(
    backend: &Backend,
    write_head: WriteHead<'_>,
    mut body: Outbound,
    sending: Sending,
    head_request: bool,
) -> Result<Response<h1::Reader>, Failure> {
    while let Some(connection) = backend.pool.take_idle() {
        match exchange(connection, write_head, body, sending, head_request).await {
            Err(Failure::NotSent(unsent, _)) => body = unsent,
            done => return done,
        }
    }
    match open(backend).await {
        Ok(stream) => exchange(Box::new(Conn::new(stream)), write_head, body, sending, head_request).await,
        Err(err) => Err(Failure::NotSent(body, describe_io(&err))),
    }
}

/// A WebSocket (or other) upgrade, on a connection of its own that hyper hands over after `101`.
pub async fn send_upgrade(backend: &Backend, request: Request<Outbound>) -> Result<Response<Incoming>, Failure> {
    let mut sender = match connect_http1_upgradable(backend).await {
        Ok(sender) => sender,
        Err(err) => return Err(Failure::NotSent(request.into_body(), describe_io(&err))),
    };
    sender.try_send_request(request).await.map_err(hyper_failure)
}

/// gRPC: HTTP/2 on the worker's connection to the replica (opened on first use).
pub async fn send_http2(backend: &Backend, request: Request<Outbound>) -> Result<Response<Incoming>, Failure> {
    let mut sender = match backend.pool.h2() {
        Some(sender) => sender,
        None => match connect_http2(backend).await {
            Ok(sender) => {
                backend.pool.set_h2(sender.clone());
                sender
            }
            Err(err) => return Err(Failure::NotSent(request.into_body(), describe_io(&err))),
        },
    };
    if let Err(err) = sender.ready().await {
        return Err(Failure::NotSent(request.into_body(), describe_hyper(&err)));
    }
    sender.try_send_request(request).await.map_err(hyper_failure)
}

fn hyper_failure(mut err: hyper::client::conn::TrySendError<Request<Outbound>>) -> Failure {
    let unsent = err.take_message();
    let reason = describe_hyper(err.error());
    match unsent {
        Some(request) => Failure::NotSent(request.into_body(), reason),
        None => Failure::Lost(reason),
    }
}

pub(crate) async fn open(backend: &Backend) -> io::Result<TcpStream> {
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

async fn connect_http1_upgradable(backend: &Backend) -> io::Result<http1::SendRequest<Outbound>> {
    let stream = open(backend).await?;
    let (sender, connection) = http1::Builder::new().handshake(TokioIo::new(stream)).await.map_err(io::Error::other)?;
    let name = backend.name.clone();
    tokio::spawn(async move {
        if let Err(err) = connection.with_upgrades().await {
            tracing::debug!(replica = name, error = %err, "replica connection ended");
        }
    });
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

pub(crate) fn describe_io(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::ConnectionRefused => "the connection was refused".to_owned(),
        io::ErrorKind::ConnectionReset => "the connection was reset".to_owned(),
        io::ErrorKind::BrokenPipe => "the connection was closed while the request was sent".to_owned(),
        io::ErrorKind::TimedOut => format!("it did not accept a connection within {CONNECT_TIMEOUT:?}"),
        io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData => err.to_string(),
        _ => format!("the connection failed ({err})"),
    }
}

fn describe_hyper(err: &hyper::Error) -> String {
    let io_kind = std::error::Error::source(err).and_then(|s| s.downcast_ref::<io::Error>()).map(io::Error::kind);
    match io_kind {
        Some(kind @ (io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe)) => describe_io(&kind.into()),
        _ if err.is_incomplete_message() || err.is_canceled() || err.is_closed() => "the connection closed before an answer".to_owned(),
        _ => format!("the connection failed ({err})"),
    }
}
