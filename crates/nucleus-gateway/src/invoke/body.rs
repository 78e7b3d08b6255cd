//! The body of an answer on its way from a replica to the caller, frame by frame (nothing is
//! buffered: SSE and chunked answers flow as they come). While it flows the request counts as
//! outstanding on its replica and in flight for its workload; once it has been read to the end,
//! the connection goes back to its pool.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::backends::{Backend, Outstanding};
use super::upstream::Reuse;
use crate::route_table::Admitted;

/// What ends with the answer.
#[derive(Debug)]
pub struct Hold {
    pub outstanding: Outstanding,
    /// Counts the request in its workload's in-flight total while held.
    pub _in_flight: Admitted,
    pub reuse: Option<Reuse>,
}

impl Hold {
    fn backend(&self) -> &Arc<Backend> {
        self.outstanding.backend()
    }
}

#[derive(Debug)]
pub struct Proxied {
    inner: Incoming,
    hold: Option<Hold>,
}

impl Proxied {
    pub fn new(inner: Incoming, hold: Hold) -> Proxied {
        let mut body = Proxied { inner, hold: Some(hold) };
        if body.inner.is_end_stream() {
            body.finish(true);
        }
        body
    }

    /// `clean`: the answer was read to its end, so the connection can carry another.
    fn finish(&mut self, clean: bool) {
        if let Some(mut hold) = self.hold.take()
            && clean
            && let Some(reuse) = hold.reuse.take()
        {
            hold.backend().pool.put(reuse);
        }
    }
}

impl Body for Proxied {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        match &frame {
            Some(Ok(_)) if self.inner.is_end_stream() => self.finish(true),
            Some(Ok(_)) => {}
            None => self.finish(true),
            Some(Err(_)) => self.finish(false),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
