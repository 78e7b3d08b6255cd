//! A fixed-size set of operation indices, used as part of the memoization key.

/// A set of indices below a fixed bound.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Bitset(Box<[u64]>);

impl Bitset {
    /// An empty set able to hold indices below `len`.
    pub(crate) fn new(len: usize) -> Self {
        Bitset(vec![0; len.div_ceil(64)].into_boxed_slice())
    }

    /// Adds `i`.
    pub(crate) fn insert(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }

    /// Removes `i`.
    pub(crate) fn remove(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_and_remove_round_trip() {
        let mut a = Bitset::new(130);
        let empty = a.clone();
        a.insert(129);
        a.insert(3);
        assert_ne!(a, empty);
        a.remove(129);
        a.remove(3);
        assert_eq!(a, empty);
    }
}
