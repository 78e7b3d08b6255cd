//! The proxy's HTTP/1.1 client for requests that came in through hyper (HTTP/2 callers, and the
//! HTTP/1.1 requests the fast path leaves to hyper): writes a request head and streams its body to
//! a replica, reads the answer's head into an `http::Response` and streams its body back, on a
//! pooled keep-alive connection that the request owns while it uses it. Owning the connection
//! means no task, channel or wake-up between a request and its replica, and an exact answer to
//! "did any byte of the request reach the replica?", which decides whether it may be sent
//! elsewhere.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use http::header::HeaderName;
use http::{HeaderMap, HeaderValue, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;

use super::upstream::Outbound;
use crate::http1::head::{self, Kind};
use crate::http1::{Conn, Framing, Piece};

/// How a request body is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sending {
    /// No body.
    Nothing,
    /// `Content-Length` says how long it is: sent as it comes.
    AsIs,
    /// Unknown length: chunked.
    Chunked,
}

/// Why an exchange failed.
#[derive(Debug)]
pub enum Failed {
    /// No byte of the request reached the replica: the body comes back for another try.
    NotSent(Outbound, io::Error),
    /// The request went out, in whole or in part, and no (valid) answer came.
    Lost(io::Error),
}

/// Sends the head in `conn.write` and then `body`, and reads the answer's head. `head_request`:
/// the answer has no body whatever its headers say. The connection travels boxed (it is moved at
/// every step of a request).
pub async fn exchange(mut conn: Box<Conn>, body: Outbound, sending: Sending, head_request: bool) -> Result<Response<Reader>, Failed> {
    if let Err(err) = conn.send().await {
        // A head fits the socket's buffer: a failed write put nothing on the wire.
        return Err(Failed::NotSent(body, err));
    }
    // Boxed: most requests have no body, and this would size every request's future.
    if sending != Sending::Nothing
        && let Err(err) = Box::pin(send_body(&mut conn, body, sending)).await
    {
        return Err(Failed::Lost(err));
    }
    read_answer(conn, head_request).await.map_err(Failed::Lost)
}

async fn send_body(conn: &mut Conn, mut body: Outbound, sending: Sending) -> io::Result<()> {
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(io::Error::other)?;
        let Ok(data) = frame.into_data() else { continue }; // trailers are not sent on HTTP/1.1
        if data.is_empty() {
            continue;
        }
        if sending == Sending::Chunked {
            conn.write.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
            conn.write.extend_from_slice(&data);
            conn.write.extend_from_slice(b"\r\n");
            conn.send().await?;
        } else {
            conn.stream.write_all(&data).await?;
        }
    }
    if sending == Sending::Chunked {
        conn.stream.write_all(b"0\r\n\r\n").await?;
    }
    Ok(())
}

async fn read_answer(mut conn: Box<Conn>, head_request: bool) -> io::Result<Response<Reader>> {
    loop {
        match head::response(&conn.read)? {
            // A 100 Continue or 103 Early Hints: the real answer follows.
            Some(parsed) if parsed.status < 200 && parsed.status != 101 => conn.read.advance(parsed.head.len),
            Some(parsed) => {
                let framing = parsed.framing(&conn.read, head_request)?;
                let reusable = parsed.head.keeps_alive() && framing != Framing::UntilClose;
                let response = build(&mut conn, &parsed)?;
                let finished = framing.is_done();
                return Ok(response.map(|()| Reader { conn: Some(conn), framing, reusable, finished }));
            }
            None => {
                if conn.read.len() > 64 * 1024 {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "the answer's head is larger than 64 KiB"));
                }
                if conn.fill().await? == 0 {
                    let what = if conn.read.is_empty() {
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

/// The answer's head as an `http::Response`, its header values slices of the bytes read; hop-by-hop
/// headers, and those `Connection` names, stay behind.
fn build(conn: &mut Conn, parsed: &head::ResponseHead) -> io::Result<Response<()>> {
    let head = conn.read.split_to(parsed.head.len).freeze();
    let mut headers = HeaderMap::with_capacity(parsed.head.fields.len());
    for field in parsed.head.fields.iter().filter(|f| !f.kind.is_hop_by_hop()) {
        let name = HeaderName::from_bytes(&head[field.name.clone()]).map_err(|_| invalid("invalid header name"))?;
        let value = HeaderValue::from_maybe_shared(head.slice(field.value.clone())).map_err(|_| invalid("invalid header value"))?;
        headers.append(name, value);
    }
    if parsed.head.connection.names_others {
        for value in parsed.head.values(&head, Kind::Connection) {
            for token in value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                if let Ok(name) = HeaderName::from_bytes(token) {
                    headers.remove(name);
                }
            }
        }
    }
    let mut response = Response::new(());
    *response.status_mut() = StatusCode::from_u16(parsed.status).map_err(|_| invalid("invalid status"))?;
    *response.version_mut() = if parsed.head.http10 { Version::HTTP_10 } else { Version::HTTP_11 };
    *response.headers_mut() = headers;
    Ok(response)
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// The answer's body, read from the connection as the caller reads it.
#[derive(Debug)]
pub struct Reader {
    conn: Option<Box<Conn>>,
    framing: Framing,
    reusable: bool,
    finished: bool,
}

impl Reader {
    /// The connection, once the body was read to its end and the replica keeps it open.
    pub fn reusable_connection(&mut self) -> Option<Box<Conn>> {
        if self.finished && self.reusable { self.conn.take().filter(|c| c.read.is_empty()) } else { None }
    }

    fn fail(&mut self, err: io::Error) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        self.conn = None;
        Poll::Ready(Some(Err(err)))
    }
}

impl Body for Reader {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        let this = &mut *self;
        loop {
            let Some(conn) = this.conn.as_mut() else { return Poll::Ready(None) };
            match this.framing.next(&conn.read) {
                Err(err) => return this.fail(err),
                Ok(Piece::End) => {
                    this.finished = true;
                    return Poll::Ready(None);
                }
                Ok(Piece::Frame(n)) => conn.read.advance(n),
                Ok(Piece::Data(n)) => {
                    let data = conn.read.split_to(n).freeze();
                    this.finished = this.framing.is_done();
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Ok(Piece::NeedMore) => match ready!(conn.poll_fill(cx)) {
                    Ok(0) => match this.framing.closed() {
                        Ok(()) => {
                            this.finished = true;
                            this.conn = None;
                            return Poll::Ready(None);
                        }
                        Err(err) => return this.fail(err),
                    },
                    Ok(_) => {}
                    Err(err) => return this.fail(err),
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.finished
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing.remaining() {
            Some(left) => SizeHint::with_exact(left),
            None => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::time::Instant;

    use super::*;

    /// A replica that reads one request head and answers with `pieces`, each written separately
    /// (so the client sees them in separate reads); then keeps the connection open unless `close`.
    async fn replica(pieces: Vec<&'static [u8]>, close: bool) -> (Box<Conn>, tokio::task::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut buf).await.unwrap();
                request.extend_from_slice(&buf[..n]);
            }
            for piece in pieces {
                stream.write_all(piece).await.unwrap();
                stream.flush().await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if !close {
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            request
        });
        let mut conn = Box::new(Conn::new(TcpStream::connect(address).await.unwrap()));
        conn.write.extend_from_slice(b"GET /x HTTP/1.1\r\nhost: r\r\n\r\n");
        (conn, server)
    }

    /// The body's data, how many frames it came in, and the connection if it can be reused.
    async fn read_all(mut body: Reader) -> (Vec<u8>, usize, Option<Box<Conn>>) {
        let mut data = Vec::new();
        let mut frames = 0;
        while let Some(frame) = body.frame().await {
            data.extend_from_slice(&frame.unwrap().into_data().unwrap());
            frames += 1;
        }
        (data, frames, body.reusable_connection())
    }

    async fn get(pieces: Vec<&'static [u8]>, close: bool, head_request: bool) -> Result<Response<Reader>, Failed> {
        let (conn, _server) = replica(pieces, close).await;
        exchange(conn, Outbound::Empty, Sending::Nothing, head_request).await
    }

    #[tokio::test]
    async fn a_length_delimited_answer_in_pieces_comes_whole_and_frees_the_connection() {
        let answer = get(
            vec![b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\nconnection: keep-alive\r\nx-app: 1\r\n\r\nhello", b" wor", b"ld"],
            false,
            false,
        )
        .await
        .unwrap();
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.headers()["x-app"], "1");
        assert!(!answer.headers().contains_key("connection"), "hop-by-hop headers stay behind");
        assert_eq!(answer.body().size_hint().exact(), Some(11));
        let (data, frames, reusable) = read_all(answer.into_body()).await;
        assert_eq!(data, b"hello world");
        assert!(frames >= 2, "streamed as it came, not gathered");
        assert!(reusable.is_some_and(|mut c| c.is_usable()), "read to the end: back to the pool");
    }

    #[tokio::test]
    async fn a_chunked_answer_is_decoded_across_reads() {
        let pieces: Vec<&'static [u8]> = vec![
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;ext=1\r\nhel",
            b"lo\r\n6\r\n wor",
            b"ld\r",
            b"\n0\r\nx-trailer: t\r\n",
            b"\r\n",
        ];
        let answer = get(pieces, false, false).await.unwrap();
        assert!(!answer.headers().contains_key("transfer-encoding"), "the caller's hop frames it anew");
        let (data, _, reusable) = read_all(answer.into_body()).await;
        assert_eq!(data, b"hello world");
        assert!(reusable.is_some(), "a complete chunked answer leaves the connection reusable");
    }

    #[tokio::test]
    async fn an_answer_without_length_runs_to_the_close_and_the_connection_is_not_kept() {
        let answer = get(vec![b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nall of ", b"it"], true, false).await.unwrap();
        let (data, _, reusable) = read_all(answer.into_body()).await;
        assert_eq!(data, b"all of it");
        assert!(reusable.is_none());
    }

    #[tokio::test]
    async fn head_answers_have_no_body_and_informational_answers_are_skipped() {
        let answer = get(vec![b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 1234\r\n\r\n"], false, true).await.unwrap();
        assert_eq!(answer.status(), 200, "the 100 was skipped");
        assert_eq!(answer.headers()["content-length"], "1234", "HEAD keeps the length it would have");
        assert!(answer.body().is_end_stream());
        let (data, _, reusable) = read_all(answer.into_body()).await;
        assert!(data.is_empty());
        assert!(reusable.is_some());
    }

    #[tokio::test]
    async fn connection_close_and_http_1_0_are_not_reused_and_named_headers_go() {
        let answer = get(vec![b"HTTP/1.1 204 No Content\r\nconnection: close, x-hop\r\nx-hop: 1\r\n\r\n"], true, false).await.unwrap();
        assert!(!answer.headers().contains_key("x-hop"), "a header Connection names is hop-by-hop");
        assert!(read_all(answer.into_body()).await.2.is_none());
        let answer = get(vec![b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok"], true, false).await.unwrap();
        assert_eq!(answer.version(), Version::HTTP_10);
        let (data, _, reusable) = read_all(answer.into_body()).await;
        assert_eq!((data.as_slice(), reusable.is_none()), (&b"ok"[..], true));
    }

    #[tokio::test]
    async fn a_connection_closed_before_an_answer_or_a_garbled_one_is_lost() {
        let (conn, server) = replica(vec![], true).await;
        match exchange(conn, Outbound::Empty, Sending::Nothing, false).await {
            Err(Failed::Lost(err)) => assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof),
            other => panic!("expected a lost request, got {other:?}"),
        }
        assert!(String::from_utf8(server.await.unwrap()).unwrap().starts_with("GET /x HTTP/1.1\r\n"), "the request went out");
        match get(vec![b"SSH-2.0-OpenSSH_9.2\r\n\r\n"], true, false).await {
            Err(Failed::Lost(err)) => assert_eq!(err.kind(), io::ErrorKind::InvalidData),
            other => panic!("expected a lost request, got {other:?}"),
        }
        let doubled = get(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nx"], true, false).await;
        assert!(matches!(doubled, Err(Failed::Lost(_))));
    }

    #[tokio::test]
    async fn an_answer_cut_short_is_an_error_not_a_shorter_body() {
        let mut body = get(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this"], true, false).await.unwrap().into_body();
        let mut saw_error = false;
        while let Some(frame) = body.frame().await {
            if frame.is_err() {
                saw_error = true;
                break;
            }
        }
        assert!(saw_error);
        assert!(body.reusable_connection().is_none());
    }

    #[tokio::test]
    async fn a_connection_the_replica_closed_while_idle_is_not_used() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let mut conn = Conn::new(TcpStream::connect(address).await.unwrap());
        let (accepted, _) = listener.accept().await.unwrap();
        assert!(conn.is_usable());
        drop(accepted);
        // The close is seen once the event loop has had a turn.
        let deadline = Instant::now() + Duration::from_secs(5);
        while conn.is_usable() {
            assert!(Instant::now() < deadline, "a closed connection still looks usable");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
