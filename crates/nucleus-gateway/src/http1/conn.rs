//! A TCP connection with the bytes read from it and not used yet, and a buffer to write from.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const READ_CHUNK: usize = 16 * 1024;

#[derive(Debug)]
pub struct Conn {
    pub stream: TcpStream,
    pub read: BytesMut,
    pub write: Vec<u8>,
}

impl Conn {
    pub fn new(stream: TcpStream) -> Conn {
        Conn { stream, read: BytesMut::new(), write: Vec::with_capacity(1024) }
    }

    /// Whether an idle connection can carry another request: the peer has not closed it, nor
    /// sent anything since its last message. Reads the readiness tokio already has, so it costs
    /// no system call when the connection is fine.
    pub fn is_usable(&mut self) -> bool {
        if !self.read.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(Waker::noop());
        // Readable while idle: the end of the connection, or bytes nobody asked for.
        self.stream.poll_read_ready(&mut cx).is_pending()
    }

    /// Reads more; 0 at the end of the connection.
    pub async fn fill(&mut self) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_fill(cx)).await
    }

    pub fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.read.capacity() - self.read.len() < 1024 {
            self.read.reserve(READ_CHUNK);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, &mut self.read)
    }

    /// Sends what is in the write buffer, and empties it.
    pub async fn send(&mut self) -> io::Result<()> {
        let result = self.stream.write_all(&self.write).await;
        self.write.clear();
        result
    }
}
