//! The k closest candidates of a query, kept sorted in a fixed array on the stack.

use mobility_core::VehicleId;

use super::Entry;

/// The k best (closest) candidates of a query, sorted, in a fixed array on the stack.
/// `N` is the capacity: small for the usual "nearest 10" so the buffer is cheap to set up.
pub(super) struct Best<const N: usize> {
    items: [(f64, Entry); N],
    len: usize,
    limit: usize,
}

impl<const N: usize> Best<N> {
    #[inline]
    pub(super) fn new(limit: usize) -> Self {
        Self {
            items: [(0.0, Entry::EMPTY); N],
            len: 0,
            limit: limit.clamp(1, N),
        }
    }

    /// The distance² a candidate must beat (or tie) to get in: infinite until full.
    #[inline]
    pub(super) fn worst(&self) -> f64 {
        if self.len == self.limit {
            self.items[self.len - 1].0
        } else {
            f64::INFINITY
        }
    }

    /// Inserts in order of distance; ids break exact ties (rare), so results are deterministic.
    #[inline]
    pub(super) fn offer(&mut self, d2: f64, e: Entry, ids: &[VehicleId]) {
        let mut at = self.len;
        while at > 0 {
            let (bd, be) = self.items[at - 1];
            if bd < d2 || (bd == d2 && ids[be.slot as usize] < ids[e.slot as usize]) {
                break;
            }
            at -= 1;
        }
        if at >= self.limit {
            return;
        }
        let end = self.len.min(self.limit - 1);
        self.items.copy_within(at..end, at + 1);
        self.items[at] = (d2, e);
        self.len = (self.len + 1).min(self.limit);
    }

    #[inline]
    pub(super) fn items(&self) -> &[(f64, Entry)] {
        &self.items[..self.len]
    }
}
