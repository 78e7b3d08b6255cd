//! The sequential specification of one key: a register that is either absent or holds a value.

use std::fmt;

/// A value stored under a key. Simulations should write unique values, which makes histories
/// much cheaper to check and violations easier to read.
pub type Value = u64;

/// The state of one key: `None` when the key is absent.
pub type State = Option<Value>;

/// An operation on one key, as issued by a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Input {
    /// Read the current value; outputs [`Output::Read`].
    Read,
    /// Unconditionally write a value; outputs [`Output::Ok`].
    Put(Value),
    /// Write a value only if the key is absent; outputs [`Output::Ok`] if it was,
    /// [`Output::Conflict`] (and changes nothing) otherwise.
    Create(Value),
    /// Compare-and-swap: write `new` if the current state is `expected`; outputs [`Output::Ok`]
    /// if applied, [`Output::Conflict`] (and changes nothing) otherwise.
    Cas {
        /// The state the key must be in for the swap to apply (`None`: absent).
        expected: Option<Value>,
        /// The value written when the swap applies.
        new: Value,
    },
    /// Remove the key (absent keys stay absent); outputs [`Output::Ok`].
    Delete,
}

/// The observed result of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Output {
    /// The result of a [`Input::Read`]: the value read, `None` when the key was absent.
    Read(Option<Value>),
    /// The write was applied.
    Ok,
    /// A conditional write ([`Input::Create`], [`Input::Cas`]) found its condition false and
    /// changed nothing.
    Conflict,
}

impl Input {
    /// Runs this operation on `state` sequentially: the state after it and its output.
    pub fn apply(self, state: State) -> (State, Output) {
        match self {
            Input::Read => (state, Output::Read(state)),
            Input::Put(v) => (Some(v), Output::Ok),
            Input::Create(v) => match state {
                None => (Some(v), Output::Ok),
                Some(_) => (state, Output::Conflict),
            },
            Input::Cas { expected, new } if state == expected => (Some(new), Output::Ok),
            Input::Cas { .. } => (state, Output::Conflict),
            Input::Delete => (None, Output::Ok),
        }
    }

    /// Whether this operation can produce an output of the kind of `output` at all (reads
    /// produce [`Output::Read`], writes [`Output::Ok`] or [`Output::Conflict`]).
    pub fn can_output(self, output: Output) -> bool {
        matches!(self, Input::Read) == matches!(output, Output::Read(_))
    }

    /// Whether this operation never changes the state, whatever its outcome.
    pub fn is_read_only(self) -> bool {
        matches!(self, Input::Read)
    }
}

/// The model step: the state after linearizing `input` on `state`, if its observed `output`
/// (`None`: unknown, anything goes) is what the sequential specification produces.
pub(crate) fn step(state: State, input: Input, output: Option<Output>) -> Option<State> {
    let (next, produced) = input.apply(state);
    match output {
        Some(observed) if observed != produced => None,
        _ => Some(next),
    }
}

/// Writes an optional value as `v` or `absent`.
pub(crate) struct ShowState(pub State);

impl fmt::Display for ShowState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => write!(f, "{v}"),
            None => f.write_str("absent"),
        }
    }
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Input::Read => f.write_str("Read"),
            Input::Put(v) => write!(f, "Put({v})"),
            Input::Create(v) => write!(f, "Create({v})"),
            Input::Cas { expected, new } => {
                write!(f, "Cas({} -> {new})", ShowState(expected))
            }
            Input::Delete => f.write_str("Delete"),
        }
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Output::Read(v) => write!(f, "{}", ShowState(v)),
            Output::Ok => f.write_str("Ok"),
            Output::Conflict => f.write_str("Conflict"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditional_writes_follow_their_condition() {
        assert_eq!(Input::Create(1).apply(None), (Some(1), Output::Ok));
        assert_eq!(Input::Create(1).apply(Some(2)), (Some(2), Output::Conflict));
        let cas = Input::Cas { expected: Some(2), new: 3 };
        assert_eq!(cas.apply(Some(2)), (Some(3), Output::Ok));
        assert_eq!(cas.apply(None), (None, Output::Conflict));
        assert_eq!(Input::Delete.apply(Some(2)), (None, Output::Ok));
    }

    #[test]
    fn step_checks_known_outputs_and_accepts_unknown_ones() {
        assert_eq!(step(Some(1), Input::Read, Some(Output::Read(Some(1)))), Some(Some(1)));
        assert_eq!(step(Some(1), Input::Read, Some(Output::Read(None))), None);
        assert_eq!(step(Some(1), Input::Create(2), Some(Output::Ok)), None);
        assert_eq!(step(Some(1), Input::Put(2), None), Some(Some(2)));
    }
}
