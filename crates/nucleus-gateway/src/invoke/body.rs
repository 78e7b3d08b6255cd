//! The body of an answer on its way from a replica to the caller, frame by frame (nothing is
//! buffered: SSE and chunked answers flow as they come). While it flows the request counts as
//! outstanding on its replica and in flight for its workload; once an HTTP/1.1 answer has been
//! read to the end, its connection goes back to the pool.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::backends::Outstanding;
use super::h1::Reader;
use crate::route_table::Admitted;

/// What ends with the answer.
#[derive(Debug)]
pub struct Hold {
    pub outstanding: Outstanding,
    /// Counts the request in its workload's in-flight total while held.
    pub _in_flight: Admitted,
}

/// Where the answer's bytes come from.
#[derive(Debug)]
pub enum Source {
    /// The proxy's own HTTP/1.1 client.
    Http1(Reader),
    /// hyper's client (HTTP/2).
    Hyper(Incoming),
}

#[derive(Debug)]
pub struct Proxied {
    source: Source,
    hold: Option<Hold>,
}

impl Proxied {
    pub fn new(source: Source, hold: Hold) -> Proxied {
        let mut body = Proxied { source, hold: Some(hold) };
        if body.is_end_stream() {
            body.finish();
        }
        body
    }

    /// The answer was read to its end: the connection can carry another request.
    fn finish(&mut self) {
        if let Some(hold) = self.hold.take()
            && let Source::Http1(reader) = &mut self.source
            && let Some(connection) = reader.reusable_connection()
        {
            hold.outstanding.backend().pool.put(connection);
        }
    }
}

impl Body for Proxied {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let frame = match &mut self.source {
            Source::Http1(reader) => ready!(Pin::new(reader).poll_frame(cx)).map(|f| f.map_err(Into::into)),
            Source::Hyper(incoming) => ready!(Pin::new(incoming).poll_frame(cx)).map(|f| f.map_err(Into::into)),
        };
        match &frame {
            Some(Ok(_)) if self.is_end_stream() => self.finish(),
            Some(Ok(_)) => {}
            None => self.finish(),
            // Failed: the connection goes with the request.
            Some(Err(_)) => drop(self.hold.take()),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        match &self.source {
            Source::Http1(reader) => reader.is_end_stream(),
            Source::Hyper(incoming) => incoming.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.source {
            Source::Http1(reader) => reader.size_hint(),
            Source::Hyper(incoming) => incoming.size_hint(),
        }
    }
}
