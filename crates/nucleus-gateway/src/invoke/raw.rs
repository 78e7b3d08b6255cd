//! The invoke proxy for a plain HTTP/1.1 request read by the fast path (`server::fast`): from the
//! caller's bytes to the replica's and back, without building the request or the answer into
//! objects. The request head is rewritten as it is copied (hop-by-hop headers and the token left
//! behind, `X-Forwarded-*` added); bodies are relayed byte for byte, their framing (length or
//! chunks) only tracked to know where they end; the answer's head is copied with its hop-by-hop
//! headers left out. The same rules as the general path decide which replica, what is retried and
//! what the caller hears (`attempts`).

use std::borrow::Cow;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;

use bytes::Buf;
use tokio::time::{Instant, Sleep};

use super::Admission;
use super::attempts::Attempts;
use super::backends::Backend;
use super::forwarding::{self, Caller};
use crate::http1::head::{self, Kind, RequestHead, ResponseHead};
use crate::http1::{Conn, Framing, Piece};
use crate::{ApiError, AppState};

/// What the caller's connection can do after the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// Carry the next request.
    KeepOpen,
    /// Be closed (the caller asked, the answer ran to the end of the connection, something broke).
    Close,
}

/// Answers the request whose head is `request` (read into `head_bytes`); its body, `framing`, is
/// read from `down` as it is sent on. `timer` is the connection's one timer (reset here for the
/// wait for the replica's answer, rather than a new one per request).
#[allow(clippy::too_many_arguments)] // one request's pieces, each its own
pub async fn forward(
    state: &AppState,
    admission: Admission,
    peer: SocketAddr,
    down: &mut Conn,
    head_bytes: &[u8],
    request: &RequestHead,
    framing: Framing,
    mut timer: Pin<&mut Sleep>,
) -> After {
    let Admission { route, target, admitted: in_flight } = admission;
    let started = Instant::now();
    route.load.budget.deposit();
    let call = route.stats.as_ref().map(|s| s.begin(started));
    let id = target.workload_id.as_str();
    // The request target is the invoke URL's path and query; the replica gets what follows the id.
    let request_target = std::str::from_utf8(&head_bytes[request.target.clone()]).unwrap_or("/");
    let app_target: Cow<'_, str> = match (target.app_from, request_target.split_once('?')) {
        (Some(from), _) => Cow::Borrowed(&request_target[from..]),
        (None, Some((_, query))) => Cow::Owned(format!("/?{query}")),
        (None, None) => Cow::Borrowed("/"),
    };
    let method = &head_bytes[request.method.clone()];
    let head_request = method == b"HEAD";
    let has_body = !framing.is_done();
    let replayable = !has_body && matches!(method, b"GET" | b"HEAD" | b"OPTIONS" | b"PUT" | b"DELETE" | b"TRACE");
    let caller = Caller { ip: peer.ip(), proto: state.config.scheme(), prefix: &route.prefix };
    let timeout = route.timeout.unwrap_or(state.config.limits.upstream_timeout);
    let caller_closes = request.head.connection.close;

    let mut attempts = Attempts::new(&route, id);
    let mut body_left = has_body;
    let failure = loop {
        let now = if attempts.is_first() { started } else { Instant::now() };
        let backend = match attempts.next(now) {
            Ok(backend) => backend,
            Err(err) => break err,
        };
        let _outstanding = backend.start();
        let write_head = |out: &mut Vec<u8>| forwarding::write_request_raw(out, head_bytes, request, &app_target, &caller, &backend.host);
        let mut up = match send_head(&backend, write_head).await {
            Ok(up) => up,
            Err(reason) => {
                attempts.failed(backend, &reason);
                continue;
            }
        };
        if has_body {
            body_left = false;
            // Boxed: most requests have no body, and this would size every request's future.
            match Box::pin(relay(down, &mut up, framing, None)).await {
                Ok(_) => {}
                Err(Broke::Reader(err)) => {
                    tracing::debug!(workload_id = id, error = %err, "the caller's body ended early; dropping the request");
                    return finish(call, 499, After::Close);
                }
                Err(Broke::Writer(err)) => {
                    let reason = describe(&err);
                    let lost = attempts.lost(&backend, &reason);
                    attempts.failed(backend, &reason);
                    break lost;
                }
            }
        }
        timer.as_mut().reset(now + timeout);
        let answer = tokio::select! {
            biased;
            answer = read_answer(&mut up) => answer,
            () = timer.as_mut() => break attempts.timed_out(&backend, timeout),
        };
        let answer = match answer {
            Err(err) => {
                let reason = describe(&err);
                if replayable {
                    attempts.failed(backend, &reason);
                    continue;
                }
                let lost = attempts.lost(&backend, &reason);
                attempts.failed(backend, &reason);
                break lost;
            }
            Ok(answer) => answer,
        };
        backend.succeeded();
        let status = answer.status;
        if let Some(call) = call {
            call.finish(status);
        }
        let after = pass_answer(down, up, &backend, &answer, head_request, caller_closes).await;
        drop(in_flight);
        return after;
    };
    // The workload is done with this request: its slot is free before the caller hears the answer,
    // so a caller that retries at once is not refused for its own request.
    drop(in_flight);
    let status = failure.status().as_u16();
    // A request body that was not read would be taken for the next request: close instead.
    let after = if body_left || caller_closes { After::Close } else { After::KeepOpen };
    write_error(down, &failure, after).await;
    finish(call, status, after)
}

fn finish(call: Option<crate::stats::recorder::Call>, status: u16, after: After) -> After {
    if let Some(call) = call {
        call.finish(status);
    }
    after
}

/// Sends the request head on a pooled connection to the replica (the next one if it turns out
/// stale: the replica closed it while idle, which is not its failure), or on a new one (boxed:
/// opening one is the rarer path, and its future would size every request's). An error means
/// nothing reached the replica.
async fn send_head(backend: &Backend, write_head: impl Fn(&mut Vec<u8>)) -> Result<Box<Conn>, String> {
    while let Some(mut pooled) = backend.pool.take_idle() {
        write_head(&mut pooled.write);
        if pooled.send().await.is_ok() {
            return Ok(pooled);
        }
    }
    let stream = Box::pin(super::upstream::open(backend)).await.map_err(|err| describe(&err))?;
    let mut fresh = Box::new(Conn::new(stream));
    write_head(&mut fresh.write);
    fresh.send().await.map_err(|err| describe(&err))?;
    Ok(fresh)
}

/// Reads the replica's answer head (skipping 100 Continue and other informational answers).
async fn read_answer(up: &mut Conn) -> io::Result<ResponseHead> {
    loop {
        match head::response(&up.read)? {
            Some(parsed) if parsed.status < 200 => up.read.advance(parsed.head.len),
            Some(parsed) => return Ok(parsed),
            None if up.read.len() > 64 * 1024 => {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "the answer's head is larger than 64 KiB"));
            }
            None => {
                if up.fill().await? == 0 {
                    let what = if up.read.is_empty() {
                        "the connection closed before an answer"
                    } else {
                        "the connection closed in the middle of the answer's head"
                    };
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, what));
                }
            }
        }
    }
}

/// Copies the answer to the caller: its head (hop-by-hop headers left out), then its body as it
/// comes. The replica's connection goes back to the pool if the answer leaves it reusable.
async fn pass_answer(
    down: &mut Conn,
    mut up: Box<Conn>,
    backend: &Backend,
    answer: &ResponseHead,
    head_request: bool,
    caller_closes: bool,
) -> After {
    let framing = match answer.framing(&up.read, head_request) {
        Ok(framing) => framing,
        Err(_) => return After::Close,
    };
    // An answer that runs to the end of the connection ends the caller's connection too.
    let close = caller_closes || framing == Framing::UntilClose;
    write_answer_head(&mut down.write, &up.read, answer, close);
    up.read.advance(answer.head.len);
    if let Err(broke) = relay(&mut up, down, framing, Some(())).await {
        tracing::debug!(replica = backend.name, error = ?broke, "answer cut short");
        return After::Close;
    }
    if answer.head.keeps_alive() && framing != Framing::UntilClose && up.read.is_empty() {
        backend.pool.put(up);
    }
    if close { After::Close } else { After::KeepOpen }
}

fn write_answer_head(out: &mut Vec<u8>, buf: &[u8], answer: &ResponseHead, close: bool) {
    let reason = http::StatusCode::from_u16(answer.status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
    out.extend_from_slice(b"HTTP/1.1 ");
    forwarding::push_decimal(out, u64::from(answer.status));
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    let named = answer.head.connection.names_others.then(|| connection_names(buf, &answer.head));
    for field in &answer.head.fields {
        let name = &buf[field.name.clone()];
        let framing_header = matches!(field.kind, Kind::TransferEncoding);
        if (field.kind.is_hop_by_hop() && !framing_header) || named.as_ref().is_some_and(|n| n.iter().any(|x| x.eq_ignore_ascii_case(name)))
        {
            continue;
        }
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(&buf[field.value.clone()]);
        out.extend_from_slice(b"\r\n");
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// The custom headers an answer's `Connection` header names (rare: collected only when present).
fn connection_names(buf: &[u8], head: &head::Head) -> Vec<Vec<u8>> {
    head.values(buf, Kind::Connection).flat_map(|v| v.split(|b| *b == b',')).map(|t| t.trim_ascii().to_vec()).collect()
}

/// Which side of a relay broke.
#[derive(Debug)]
enum Broke {
    Reader(io::Error),
    Writer(io::Error),
}

/// Copies a body framed by `framing` from `from` to `to`, byte for byte, until it ends. What is
/// already in `to.write` (a head) goes out with the first bytes, in one write; `flush_head` says
/// there is one even when the body is empty.
async fn relay(from: &mut Conn, to: &mut Conn, mut framing: Framing, flush_head: Option<()>) -> Result<(), Broke> {
    let mut pending_head = flush_head.is_some();
    loop {
        let mut ready = 0;
        let mut ended = false;
        loop {
            match framing.next(&from.read[ready..]).map_err(Broke::Reader)? {
                Piece::Data(n) | Piece::Frame(n) => ready += n,
                Piece::End => {
                    ended = true;
                    break;
                }
                Piece::NeedMore => break,
            }
        }
        if pending_head || !to.write.is_empty() {
            to.write.extend_from_slice(&from.read[..ready]);
            to.send().await.map_err(Broke::Writer)?;
            pending_head = false;
        } else if ready > 0 {
            tokio::io::AsyncWriteExt::write_all(&mut to.stream, &from.read[..ready]).await.map_err(Broke::Writer)?;
        }
        from.read.advance(ready);
        if ended {
            return Ok(());
        }
        if from.fill().await.map_err(Broke::Reader)? == 0 {
            return framing.closed().map_err(Broke::Reader);
        }
    }
}

/// The error's answer, as the REST API answers errors (JSON `detail`; 503 with `Retry-After`).
async fn write_error(down: &mut Conn, err: &ApiError, after: After) {
    use std::io::Write as _;
    let status = err.status();
    let body = err.json_body();
    let _ = write!(
        down.write,
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    );
    if status == http::StatusCode::SERVICE_UNAVAILABLE {
        let _ = write!(down.write, "retry-after: {}\r\n", crate::error::RETRY_AFTER_SECONDS);
    }
    if after == After::Close {
        down.write.extend_from_slice(b"connection: close\r\n");
    }
    down.write.extend_from_slice(b"\r\n");
    down.write.extend_from_slice(&body);
    let _ = down.send().await;
}

fn describe(err: &io::Error) -> String {
    super::upstream::describe_io(err)
}
