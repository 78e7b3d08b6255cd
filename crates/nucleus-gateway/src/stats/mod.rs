//! Request statistics: counted by the invoke proxy ([`recorder`]), kept per minute in meta, and
//! summed by the stats endpoints ([`endpoints`]).

pub mod endpoints;
pub mod recorder;

pub use recorder::Recorder;
