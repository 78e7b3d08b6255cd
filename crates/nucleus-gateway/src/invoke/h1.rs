//! The proxy's own HTTP/1.1 client: writes a request head and streams its body to a replica, reads
//! the answer's head and streams its body back, on a keep-alive connection that the request owns
//! while it uses it. Owning the connection means no task, channel or wake-up between a request and
//! its replica, and an exact answer to "did any byte of the request reach the replica?", which
//! decides whether a failed request may be sent elsewhere.
//!
//! Framing follows RFC 9112 §6: answers to HEAD, 1xx (skipped, but for 101), 204 and 304 have no
//! body; `Transfer-Encoding: chunked` is decoded; else `Content-Length`; else the body runs to the
//! end of the connection (which then is not reused). WebSocket upgrades and HTTP/2 use hyper's
//! client instead (see `upstream`).

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{ready, Context, Poll, Waker};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::forwarding::{is_hop_by_hop, ConnectionSays};
use super::upstream::Outbound;

/// Headers an answer may have at most.
const MAX_HEADERS: usize = 128;
/// A head larger than this is refused (a replica answering garbage should not fill memory).
const MAX_HEAD: usize = 64 * 1024;
const READ_CHUNK: usize = 16 * 1024;

/// A keep-alive connection to a replica and the bytes read from it but not yet used.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    read: BytesMut,
    write: Vec<u8>,
}

/// Why an exchange failed.
#[derive(Debug)]
pub enum Failed {
    /// No byte of the request reached the replica: the body comes back for another try.
    NotSent(Outbound, io::Error),
    /// The request went out, in whole or in part, and no (valid) answer came.
    Lost(io::Error),
}

impl Connection {
    pub fn new(stream: TcpStream) -> Box<Connection> {
        Box::new(Connection { stream, read: BytesMut::new(), write: Vec::with_capacity(1024) })
    }

    /// Whether an idle connection can carry another request: the replica has not closed it, and
    /// sent nothing since its last answer. Reads the readiness tokio already has, so it costs no
    /// system call when the connection is fine.
    pub fn is_usable(&mut self) -> bool {
        if !self.read.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(Waker::noop());
        match self.stream.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            // Something arrived while it was idle: the end of the connection, or bytes no request
            // asked for. Either way it is done.
            Poll::Ready(_) => false,
        }
    }

    /// The buffer a request head is written into (cleared).
    pub fn head_buffer(&mut self) -> &mut Vec<u8> {
        self.write.clear();
        &mut self.write
    }

    /// Sends the head in [`Connection::head_buffer`] and then `body`, and reads the answer's head.
    /// `framing` says how the body is sent; `head_request`: the answer has no body whatever its
    /// headers say.
    ///
    /// The connection travels boxed (it is moved at every step of a request).
    pub async fn exchange(mut self: Box<Self>, body: Outbound, framing: Framing, head_request: bool) -> Result<Response<Reader>, Failed> {
        if let Err(err) = self.stream.write_all(&self.write).await {
            // A head fits the socket's buffer: a failed write put nothing on the wire.
            return Err(Failed::NotSent(body, err));
        }
        // Boxed: most requests have no body, and this would size every request's future.
        if framing != Framing::None
            && let Err(err) = Box::pin(self.send_body(body, framing)).await
        {
            return Err(Failed::Lost(err));
        }
        self.read_answer(head_request).await.map_err(Failed::Lost)
    }

    async fn send_body(&mut self, body: Outbound, framing: Framing) -> io::Result<()> {
        let mut body = body;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(io::Error::other)?;
            let Ok(data) = frame.into_data() else { continue }; // trailers are not sent on HTTP/1.1
            if data.is_empty() {
                continue;
            }
            match framing {
                Framing::Chunked => {
                    self.write.clear();
                    self.write.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                    self.write.extend_from_slice(&data);
                    self.write.extend_from_slice(b"\r\n");
                    self.stream.write_all(&self.write).await?;
                }
                _ => self.stream.write_all(&data).await?,
            }
        }
        if framing == Framing::Chunked {
            self.stream.write_all(b"0\r\n\r\n").await?;
        }
        Ok(())
    }

    async fn read_answer(mut self: Box<Self>, head_request: bool) -> io::Result<Response<Reader>> {
        loop {
            if let Some((response, framing, keep_alive)) = self.parse_head(head_request)? {
                let reusable = keep_alive && !matches!(framing, BodyState::UntilClose);
                let reader = Reader { conn: Some(self), state: framing, reusable, finished: false };
                let mut response = response.map(|()| reader);
                if response.body().is_done() {
                    response.body_mut().finished = true;
                }
                return Ok(response);
            }
            if self.read.len() > MAX_HEAD {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "the answer's head is larger than 64 KiB"));
            }
            if self.fill().await? == 0 {
                let what = if self.read.is_empty() { "the connection closed before an answer" } else { "the connection closed in the middle of the answer's head" };
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, what));
            }
        }
    }

    /// Reads more from the replica; 0 at the end of the connection.
    async fn fill(&mut self) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_fill(cx)).await
    }

    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.read.capacity() - self.read.len() < 1024 {
            self.read.reserve(READ_CHUNK);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, &mut self.read)
    }

    /// Parses one answer head from what was read; `None` until it is complete. 1xx answers other
    /// than 101 are dropped (a `100 Continue`, an `103 Early Hints`) and the next head is parsed.
    /// Hop-by-hop headers are left out as the map is built; the flag says whether the replica keeps
    /// the connection open.
    fn parse_head(&mut self, head_request: bool) -> io::Result<Option<(Response<()>, BodyState, bool)>> {
        loop {
            let mut slots = [const { MaybeUninit::uninit() }; MAX_HEADERS];
            let mut parsed = httparse::Response::new(&mut []);
            let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut parsed, &self.read, &mut slots) {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(err) => return Err(io::Error::new(io::ErrorKind::InvalidData, format!("the answer is not HTTP/1.1 ({err})"))),
            };
            let code = parsed.code.unwrap_or(0);
            let status = StatusCode::from_u16(code).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("invalid status {code}")))?;
            if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
                self.read.advance(len);
                continue;
            }
            let version = if parsed.version == Some(0) { Version::HTTP_10 } else { Version::HTTP_11 };
            // Names and values stay slices of the bytes read: no copy.
            let base = self.read.as_ptr() as usize;
            let spans: Vec<(usize, usize, usize, usize)> = parsed
                .headers
                .iter()
                .map(|h| (h.name.as_ptr() as usize - base, h.name.len(), h.value.as_ptr() as usize - base, h.value.len()))
                .collect();
            let head = self.read.split_to(len).freeze();
            let mut map = HeaderMap::with_capacity(spans.len());
            let mut says = ConnectionSays::default();
            let mut named = Vec::new();
            for (name_at, name_len, at, len) in spans {
                let name = HeaderName::from_bytes(&head[name_at..name_at + name_len])
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "invalid header name"))?;
                let value = HeaderValue::from_maybe_shared(head.slice(at..at + len))
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("invalid value of header {name}")))?;
                if name == header::CONNECTION {
                    says.read(&value, &mut named);
                }
                if is_hop_by_hop(&name) && name != header::TRANSFER_ENCODING {
                    continue;
                }
                map.append(name, value);
            }
            for name in named {
                map.remove(name);
            }
            let framing = body_state(&map, status, head_request)?;
            // Transfer-Encoding framed this hop only: the caller's hop frames the body anew.
            map.remove(header::TRANSFER_ENCODING);
            let mut response = Response::new(());
            *response.status_mut() = status;
            *response.version_mut() = version;
            *response.headers_mut() = map;
            return Ok(Some((response, framing, says.keeps_alive(version))));
        }
    }
}

/// How a request body is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// `Content-Length` says how long it is: sent as it comes.
    Length,
    /// Unknown length: chunked.
    Chunked,
}

/// How the answer's body is delimited, and how much of it is left.
#[derive(Debug, Clone, Copy)]
enum BodyState {
    Empty,
    Length(u64),
    /// Chunked: the bytes left in the current chunk, or where in the framing the decoder is.
    Chunk(Chunk),
    UntilClose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Expecting a size line.
    Size,
    /// This many data bytes to go, then CRLF.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
}

fn body_state(headers: &HeaderMap, status: StatusCode, head_request: bool) -> io::Result<BodyState> {
    if head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED || status.is_informational() {
        return Ok(BodyState::Empty);
    }
    let chunked = headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .last()
        .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
    if chunked {
        return Ok(BodyState::Chunk(Chunk::Size));
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        // Some other final coding: the body runs to the end of the connection.
        return Ok(BodyState::UntilClose);
    }
    let mut lengths = headers.get_all(header::CONTENT_LENGTH).iter();
    match (lengths.next(), lengths.next()) {
        (None, _) => Ok(BodyState::UntilClose),
        (Some(one), None) => one
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(BodyState::Length)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "invalid Content-Length")),
        (Some(_), Some(_)) => Err(io::Error::new(io::ErrorKind::InvalidData, "more than one Content-Length")),
    }
}

/// The answer's body, read from the connection as the caller reads it.
#[derive(Debug)]
pub struct Reader {
    conn: Option<Box<Connection>>,
    state: BodyState,
    reusable: bool,
    finished: bool,
}

impl Reader {
    fn is_done(&self) -> bool {
        matches!(self.state, BodyState::Empty | BodyState::Length(0))
    }

    /// The connection, once the body was read to its end and the replica keeps it open.
    pub fn reusable_connection(&mut self) -> Option<Box<Connection>> {
        if self.finished && self.reusable { self.conn.take().filter(|c| c.read.is_empty()) } else { None }
    }

    /// The next data of the body from what was read; `None` when more must be read first.
    fn next_data(&mut self) -> io::Result<Option<Option<Bytes>>> {
        let Some(conn) = self.conn.as_mut() else { return Ok(Some(None)) };
        let read = &mut conn.read;
        loop {
            match &mut self.state {
                BodyState::Empty | BodyState::Length(0) => return Ok(Some(None)),
                BodyState::Length(left) => {
                    if read.is_empty() {
                        return Ok(None);
                    }
                    let take = (*left).min(read.len() as u64) as usize;
                    *left -= take as u64;
                    return Ok(Some(Some(read.split_to(take).freeze())));
                }
                BodyState::UntilClose => {
                    if read.is_empty() {
                        return Ok(None);
                    }
                    return Ok(Some(Some(read.split().freeze())));
                }
                BodyState::Chunk(chunk) => match *chunk {
                    Chunk::Size => {
                        let Some(end) = find_crlf(read) else { return too_long(read).map(|()| None) };
                        let line = std::str::from_utf8(&read[..end]).map_err(|_| bad_chunk())?;
                        let size = line.split(';').next().map(str::trim).and_then(|s| u64::from_str_radix(s, 16).ok()).ok_or_else(bad_chunk)?;
                        read.advance(end + 2);
                        *chunk = if size == 0 { Chunk::Trailers } else { Chunk::Data(size) };
                    }
                    Chunk::Data(left) => {
                        if read.is_empty() {
                            return Ok(None);
                        }
                        let take = left.min(read.len() as u64) as usize;
                        *chunk = if take as u64 == left { Chunk::DataEnd } else { Chunk::Data(left - take as u64) };
                        return Ok(Some(Some(read.split_to(take).freeze())));
                    }
                    Chunk::DataEnd => {
                        if read.len() < 2 {
                            return Ok(None);
                        }
                        if &read[..2] != b"\r\n" {
                            return Err(bad_chunk());
                        }
                        read.advance(2);
                        *chunk = Chunk::Size;
                    }
                    Chunk::Trailers => {
                        let Some(end) = find_crlf(read) else { return too_long(read).map(|()| None) };
                        read.advance(end + 2);
                        if end == 0 {
                            self.state = BodyState::Length(0);
                        }
                    }
                },
            }
        }
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

fn too_long(buf: &[u8]) -> io::Result<()> {
    if buf.len() > MAX_HEAD { Err(bad_chunk()) } else { Ok(()) }
}

fn bad_chunk() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "the answer's chunked body is malformed")
}

impl Body for Reader {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        let this = &mut *self;
        loop {
            match this.next_data() {
                Err(err) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(err)));
                }
                Ok(Some(Some(data))) => {
                    if this.is_done() {
                        this.finished = true;
                    }
                    if data.is_empty() {
                        continue;
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Ok(Some(None)) => {
                    this.finished = true;
                    return Poll::Ready(None);
                }
                Ok(None) => {}
            }
            let Some(conn) = this.conn.as_mut() else { return Poll::Ready(None) };
            let read = ready!(conn.poll_fill(cx));
            match read {
                Ok(0) if matches!(this.state, BodyState::UntilClose) => {
                    this.state = BodyState::Length(0);
                    this.finished = true;
                    this.conn = None;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the replica closed the connection before the end of its answer"))));
                }
                Ok(_) => {}
                Err(err) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(err)));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.finished || self.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            BodyState::Empty => SizeHint::with_exact(0),
            BodyState::Length(left) => SizeHint::with_exact(left),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::time::Instant;

    use super::*;

    /// A replica that reads one request head and answers with `pieces`, each written separately
    /// (so the client sees them in separate reads); then keeps the connection open unless `close`.
    async fn replica(pieces: Vec<&'static [u8]>, close: bool) -> (Box<Connection>, tokio::task::JoinHandle<Vec<u8>>) {
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
        let stream = TcpStream::connect(address).await.unwrap();
        let mut connection = Connection::new(stream);
        connection.head_buffer().extend_from_slice(b"GET /x HTTP/1.1\r\nhost: r\r\n\r\n");
        (connection, server)
    }

    /// The body's frames, and the connection if it can be reused.
    async fn read_all(mut body: Reader) -> (Vec<u8>, usize, Option<Box<Connection>>) {
        let mut data = Vec::new();
        let mut frames = 0;
        while let Some(frame) = body.frame().await {
            data.extend_from_slice(&frame.unwrap().into_data().unwrap());
            frames += 1;
        }
        (data, frames, body.reusable_connection())
    }

    #[tokio::test]
    async fn a_length_delimited_answer_in_pieces_comes_whole_and_frees_the_connection() {
        let (connection, _server) = replica(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\nconnection: keep-alive\r\nx-app: 1\r\n\r\nhello", b" wor", b"ld"], false).await;
        let answer = connection.exchange(Outbound::Empty, Framing::None, false).await.unwrap();
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
    async fn a_chunked_answer_is_decoded_across_reads_with_extensions_and_trailers() {
        let pieces: Vec<&'static [u8]> = vec![
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;ext=1\r\nhel",
            b"lo\r\n6\r\n wor",
            b"ld\r",
            b"\n0\r\nx-trailer: t\r\n",
            b"\r\n",
        ];
        let (connection, _server) = replica(pieces, false).await;
        let answer = connection.exchange(Outbound::Empty, Framing::None, false).await.unwrap();
        assert!(!answer.headers().contains_key("transfer-encoding"), "the caller's hop frames it anew");
        let (data, _, reusable) = read_all(answer.into_body()).await;
        assert_eq!(data, b"hello world");
        assert!(reusable.is_some(), "a complete chunked answer leaves the connection reusable");
    }

    #[tokio::test]
    async fn an_answer_without_length_runs_to_the_close_and_the_connection_is_not_kept() {
        let (connection, _server) = replica(vec![b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nall of ", b"it"], true).await;
        let answer = connection.exchange(Outbound::Empty, Framing::None, false).await.unwrap();
        let (data, _, reusable) = read_all(answer.into_body()).await;
        assert_eq!(data, b"all of it");
        assert!(reusable.is_none());
    }

    #[tokio::test]
    async fn head_answers_have_no_body_and_informational_answers_are_skipped() {
        let (connection, _server) = replica(vec![b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 1234\r\n\r\n"], false).await;
        let answer = connection.exchange(Outbound::Empty, Framing::None, true).await.unwrap();
        assert_eq!(answer.status(), 200, "the 100 was skipped");
        assert_eq!(answer.headers()["content-length"], "1234", "HEAD keeps the length it would have");
        assert!(answer.body().is_end_stream());
        let (data, _, reusable) = read_all(answer.into_body()).await;
        assert!(data.is_empty());
        assert!(reusable.is_some());
    }

    #[tokio::test]
    async fn connection_close_and_http_1_0_are_not_reused() {
        let (connection, _server) = replica(vec![b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n"], true).await;
        let answer = connection.exchange(Outbound::Empty, Framing::None, false).await.unwrap();
        assert!(read_all(answer.into_body()).await.2.is_none());
        let (connection, _server) = replica(vec![b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok"], true).await;
        let answer = connection.exchange(Outbound::Empty, Framing::None, false).await.unwrap();
        assert_eq!(answer.version(), Version::HTTP_10);
        let (data, _, reusable) = read_all(answer.into_body()).await;
        assert_eq!((data.as_slice(), reusable.is_none()), (&b"ok"[..], true));
    }

    #[tokio::test]
    async fn a_connection_closed_before_an_answer_or_a_garbled_one_is_lost() {
        let (connection, server) = replica(vec![], true).await;
        match connection.exchange(Outbound::Empty, Framing::None, false).await {
            Err(Failed::Lost(err)) => assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof),
            other => panic!("expected a lost request, got {other:?}"),
        }
        assert!(String::from_utf8(server.await.unwrap()).unwrap().starts_with("GET /x HTTP/1.1\r\n"), "the request went out");
        let (connection, _server) = replica(vec![b"SSH-2.0-OpenSSH_9.2\r\n\r\n"], true).await;
        match connection.exchange(Outbound::Empty, Framing::None, false).await {
            Err(Failed::Lost(err)) => assert_eq!(err.kind(), io::ErrorKind::InvalidData),
            other => panic!("expected a lost request, got {other:?}"),
        }
        let (connection, _server) = replica(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nx"], true).await;
        assert!(matches!(connection.exchange(Outbound::Empty, Framing::None, false).await, Err(Failed::Lost(_))));
    }

    #[tokio::test]
    async fn an_answer_cut_short_is_an_error_not_a_shorter_body() {
        let (connection, _server) = replica(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this"], true).await;
        let mut body = connection.exchange(Outbound::Empty, Framing::None, false).await.unwrap().into_body();
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
        let mut connection = Connection::new(TcpStream::connect(address).await.unwrap());
        let (accepted, _) = listener.accept().await.unwrap();
        assert!(connection.is_usable());
        drop(accepted);
        // The close is seen once the event loop has had a turn.
        let deadline = Instant::now() + Duration::from_secs(5);
        while connection.is_usable() {
            assert!(Instant::now() < deadline, "a closed connection still looks usable");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
