//! Replica logs: lines read as records ([`parse`]), kept per proton with a time and size bound
//! ([`LogStore`], process driver), and answered newest first as a `Logs` request filters them
//! ([`filter`]).

pub mod filter;
pub mod parse;
mod store;

pub use parse::{Stream, parse_line};
pub use store::{DEFAULT_RETENTION, LogStore};
