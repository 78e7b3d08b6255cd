//! The gateway's own HTTP/1.1 codec: heads parsed into spans of the bytes read (`head`), bodies
//! delimited by length, chunks or the end of the connection (`framing`), and a connection with its
//! read and write buffers (`conn`). The invoke proxy uses it on both sides: as the client of
//! replicas, and as the server of plain HTTP/1.1 invoke requests (`server::fast`), so that a
//! request crosses the gateway from bytes to bytes without being built into objects. hyper serves
//! everything else.

pub mod conn;
pub mod framing;
pub mod head;

pub use conn::Conn;
pub use framing::{Framing, Piece};
