//! Where an HTTP/1.1 message body ends (RFC 9112 §6-7): a length, chunks, or the end of the
//! connection. The same tracker serves two uses: *relaying* a body byte for byte (chunk framing
//! included) while knowing where it stops, and *decoding* it into its data.

use std::io;

/// A chunk-size or trailer line longer than this is refused (garbage, not HTTP).
const MAX_LINE: usize = 4096;

/// How a body is delimited, and how far through it a reader is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (or nothing left of it).
    Done,
    /// This many bytes left.
    Length(u64),
    /// Chunked, at this point of the chunk framing.
    Chunked(Chunk),
    /// Runs to the end of the connection.
    UntilClose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// This many data bytes of the current chunk to go.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
}

/// What the next bytes of a body are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    /// `len` bytes of the body's data.
    Data(usize),
    /// `len` bytes of chunk framing (size line, CRLF, trailers).
    Frame(usize),
    /// More bytes must be read before anything can be said.
    NeedMore,
    /// The body is complete.
    End,
}

impl Framing {
    pub fn chunked() -> Framing {
        Framing::Chunked(Chunk::Size)
    }

    pub fn is_done(&self) -> bool {
        *self == Framing::Done
    }

    /// The bytes of the body still to come, when known.
    pub fn remaining(&self) -> Option<u64> {
        match self {
            Framing::Done => Some(0),
            Framing::Length(left) => Some(*left),
            _ => None,
        }
    }

    /// Looks at the start of `buf` (what was read and not used yet) and says what it is, moving
    /// past it. At the end of the connection, an `UntilClose` body is done ([`Framing::closed`]).
    pub fn next(&mut self, buf: &[u8]) -> io::Result<Piece> {
        match self {
            Framing::Done => Ok(Piece::End),
            Framing::Length(left) => {
                if buf.is_empty() {
                    return Ok(Piece::NeedMore);
                }
                let take = (*left).min(buf.len() as u64) as usize;
                *left -= take as u64;
                if *left == 0 {
                    *self = Framing::Done;
                }
                Ok(Piece::Data(take))
            }
            Framing::UntilClose => Ok(if buf.is_empty() { Piece::NeedMore } else { Piece::Data(buf.len()) }),
            Framing::Chunked(chunk) => match *chunk {
                Chunk::Size => {
                    let Some(end) = line_end(buf)? else { return Ok(Piece::NeedMore) };
                    let line = std::str::from_utf8(&buf[..end]).map_err(|_| malformed())?;
                    let size = line.split(';').next().map(str::trim).and_then(|s| u64::from_str_radix(s, 16).ok()).ok_or_else(malformed)?;
                    *chunk = if size == 0 { Chunk::Trailers } else { Chunk::Data(size) };
                    Ok(Piece::Frame(end + 2))
                }
                Chunk::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Piece::NeedMore);
                    }
                    let take = left.min(buf.len() as u64) as usize;
                    *chunk = if take as u64 == left { Chunk::DataEnd } else { Chunk::Data(left - take as u64) };
                    Ok(Piece::Data(take))
                }
                Chunk::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Piece::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(malformed());
                    }
                    *chunk = Chunk::Size;
                    Ok(Piece::Frame(2))
                }
                Chunk::Trailers => {
                    let Some(end) = line_end(buf)? else { return Ok(Piece::NeedMore) };
                    if end == 0 {
                        *self = Framing::Done;
                    }
                    Ok(Piece::Frame(end + 2))
                }
            },
        }
    }

    /// The connection ended: fine for a body that runs to its end, an error for any other.
    pub fn closed(&mut self) -> io::Result<()> {
        match self {
            Framing::UntilClose | Framing::Done => {
                *self = Framing::Done;
                Ok(())
            }
            _ => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the connection closed before the end of the body")),
        }
    }
}

/// The position of the first CRLF, if the line is complete.
fn line_end(buf: &[u8]) -> io::Result<Option<usize>> {
    match buf.windows(2).position(|w| w == b"\r\n") {
        Some(end) => Ok(Some(end)),
        None if buf.len() > MAX_LINE => Err(malformed()),
        None => Ok(None),
    }
}

fn malformed() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "malformed chunked body")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes and returns (data, framing bytes, ended).
    fn run(mut framing: Framing, input: &[u8], step: usize) -> io::Result<(Vec<u8>, usize, bool)> {
        let (mut data, mut frame, mut available, mut at) = (Vec::new(), 0, 0, 0);
        loop {
            match framing.next(&input[at..available])? {
                Piece::Data(n) => {
                    data.extend_from_slice(&input[at..at + n]);
                    at += n;
                }
                Piece::Frame(n) => {
                    frame += n;
                    at += n;
                }
                Piece::End => return Ok((data, frame, true)),
                Piece::NeedMore if available == input.len() => return Ok((data, frame, false)),
                Piece::NeedMore => available = (available + step).min(input.len()),
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_read_sizes() {
        let body = b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n";
        for step in [1, 2, 3, 7, 64] {
            let (data, frame, ended) = run(Framing::chunked(), body, step).unwrap();
            assert_eq!((data.as_slice(), ended), (&b"hello world"[..], true), "step {step}");
            assert_eq!(data.len() + frame, body.len(), "every byte is data or framing");
        }
        let (_, _, ended) = run(Framing::chunked(), b"5\r\nhel", 4).unwrap();
        assert!(!ended, "a cut body is not complete");
        assert!(run(Framing::chunked(), b"zz\r\n", 4).is_err());
        assert!(run(Framing::chunked(), b"1\r\nxyz", 4).is_err(), "data must end with CRLF");
    }

    #[test]
    fn lengths_stop_at_their_length_and_the_rest_is_the_next_message() {
        let (data, _, ended) = run(Framing::Length(5), b"helloGET / HTTP/1.1", 3).unwrap();
        assert_eq!((data.as_slice(), ended), (&b"hello"[..], true));
        let mut until_close = Framing::UntilClose;
        assert_eq!(until_close.next(b"abc").unwrap(), Piece::Data(3));
        until_close.closed().unwrap();
        assert!(Framing::Length(1).closed().is_err(), "a length cut short is an error");
        assert_eq!(Framing::Done.next(b"x").unwrap(), Piece::End);
    }
}
