//! A linearizability checker for histories of the metadata store's key-value API.
//!
//! # What it checks
//!
//! A deterministic simulation of the Raft-replicated metadata store (with partitions and crashes)
//! records, for every client request, when it was called, when it returned and what it returned.
//! This crate decides whether such a [history](Operation) is *linearizable*: whether every
//! operation can be given a single instant between its call and its return at which it took
//! effect, so that the operations, in the order of those instants, are a legal run of a plain
//! sequential key-value map (the [model]).
//!
//! Each key is an independent register holding `Option<u64>`; the operations are
//! [`Read`](Input::Read), [`Put`](Input::Put), [`Create`](Input::Create) (only if absent),
//! [`Cas`](Input::Cas) and [`Delete`](Input::Delete). Because linearizability is *local*
//! (P-compositional), a history is linearizable exactly when its sub-history of every key is, so
//! [`check_history`] splits the history by key and runs [`check_key`] on each part.
//!
//! An operation whose outcome is [unknown](Outcome::Unknown) (timed out, connection lost) may
//! have taken effect at any instant after its call, or never; its output is unconstrained.
//!
//! # How
//!
//! The search is the one of Wing & Gong, with the memoization of Lowe, as implemented by
//! Porcupine: the call and return events are put in one list sorted by time (calls before returns
//! at equal times); a depth-first search repeatedly picks an operation whose call comes before
//! the first pending return, applies it to the model state and removes it from the list, and
//! backtracks when the first pending return is reached with nothing left to try. A cache of
//! (set of linearized operations, model state) pairs prunes configurations already explored.
//! A [`Budget`] bounds the search so a pathological history yields [`Verdict::Timeout`]
//! instead of hanging. On failure, the [`Verdict`] explains the longest linearizable prefix
//! found and why none of the candidates for the next position fit.
//!
//! # Example
//!
//! ```
//! use nucleus_sim::{Budget, History, Input, Output, Verdict};
//!
//! let mut history = History::new();
//! let put = history.invoke(1, "jobs/a", Input::Put(7), 0);
//! history.complete(put, Output::Ok, 10)?;
//! let lost = history.invoke(2, "jobs/a", Input::Delete, 12);
//! history.unknown(lost)?; // timed out: it may or may not have happened
//! let read = history.invoke(3, "jobs/a", Input::Read, 20);
//! history.complete(read, Output::Read(None), 30)?;
//! // Linearizable: the lost delete took effect between 12 and 30.
//! assert_eq!(history.check(Budget::Steps(1_000_000))?, Verdict::Linearizable);
//!
//! let stale = history.invoke(3, "jobs/a", Input::Read, 40);
//! history.complete(stale, Output::Read(Some(7)), 50)?;
//! // Not linearizable: nothing wrote 7 again after the delete.
//! let verdict = history.check(Budget::Steps(1_000_000))?;
//! assert!(matches!(verdict, Verdict::NotLinearizable { ref key, .. } if key == "jobs/a"));
//! # Ok::<(), nucleus_sim::HistoryError>(())
//! ```
//!
//! The [`History`] recorder is the intended way for a simulation to build a history; histories
//! can also be built directly as slices of [`Operation`].

mod bitset;
pub mod budget;
mod check;
mod explain;
pub mod harness;
pub mod history;
mod list;
pub mod model;
pub mod scheduling;
mod search;

pub use budget::Budget;
pub use check::{Verdict, check_history, check_key};
pub use history::{History, HistoryError, OpId, Operation, Outcome};
pub use model::{Input, Output, State, Value};
