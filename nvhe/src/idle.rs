//! The pages the host donated to the hyp and the hyp does not use: the
//! only hyp pages the host may ask back. A fixed-capacity set of disjoint,
//! merged ranges (EL2 has no heap); every change says up front whether it
//! fits, so a caller can refuse with ENOMEM before anything changes.

use core::ops::Range;

use arrayvec::ArrayVec;

/// Disjoint ranges, sorted, adjacent ones merged.
#[derive(Debug)]
pub struct IdleSet<const N: usize> {
    ranges: ArrayVec<Range<u64>, N>,
}

impl<const N: usize> IdleSet<N> {
    /// An empty set (all zero: `.bss`).
    #[must_use]
    pub const fn new() -> Self {
        Self { ranges: ArrayVec::new_const() }
    }

    /// Whether `pa` is in the set.
    #[must_use]
    pub fn contains(&self, pa: u64) -> bool {
        let at = self.ranges.partition_point(|r| r.end <= pa);
        self.ranges.get(at).is_some_and(|r| r.start <= pa)
    }

    /// Whether every page of `range` is in the set (ranges are merged, so
    /// that is one range holding it all).
    #[must_use]
    pub fn contains_all(&self, range: &Range<u64>) -> bool {
        let at = self.ranges.partition_point(|r| r.end <= range.start);
        self.ranges.get(at).is_some_and(|r| r.start <= range.start && range.end <= r.end)
    }

    /// Whether no page of `range` is in the set.
    #[must_use]
    pub fn contains_none(&self, range: &Range<u64>) -> bool {
        let at = self.ranges.partition_point(|r| r.end <= range.start);
        self.ranges.get(at).is_none_or(|r| range.end <= r.start)
    }

    /// The ranges that touch or overlap `range` (indices `first..last`).
    fn touching(&self, range: &Range<u64>) -> Range<usize> {
        let first = self.ranges.partition_point(|r| r.end < range.start);
        let last = self.ranges.partition_point(|r| r.start <= range.end);
        first..last
    }

    /// Whether [`insert`](Self::insert) of `range` fits.
    #[must_use]
    pub fn can_insert(&self, range: &Range<u64>) -> bool {
        !self.touching(range).is_empty() || !self.ranges.is_full()
    }

    /// Adds `range`, merging it with every range it touches.
    ///
    /// # Panics
    ///
    /// If it does not fit: check [`can_insert`](Self::can_insert) first.
    pub fn insert(&mut self, range: Range<u64>) {
        let touching = self.touching(&range);
        if touching.is_empty() {
            self.ranges.insert(touching.start, range);
            return;
        }
        let start = range.start.min(self.ranges[touching.start].start);
        let end = range.end.max(self.ranges[touching.end - 1].end);
        self.ranges.drain(touching.start + 1..touching.end);
        self.ranges[touching.start] = start..end;
    }

    /// Adds `range` if it fits; false, changing nothing, if not.
    pub fn try_insert(&mut self, range: Range<u64>) -> bool {
        let fits = self.can_insert(&range);
        if fits {
            self.insert(range);
        }
        fits
    }

    /// Removes `range` if it fits; false, changing nothing, if not.
    pub fn try_remove(&mut self, range: &Range<u64>) -> bool {
        let fits = self.can_remove(range);
        if fits {
            self.remove(range);
        }
        fits
    }

    /// Whether [`remove`](Self::remove) of `range` fits (it needs one more
    /// slot when it splits a range in two).
    #[must_use]
    pub fn can_remove(&self, range: &Range<u64>) -> bool {
        let splits = self.ranges.iter().any(|r| r.start < range.start && range.end < r.end);
        !splits || !self.ranges.is_full()
    }

    /// Removes `range`.
    ///
    /// # Panics
    ///
    /// If it does not fit: check [`can_remove`](Self::can_remove) first.
    pub fn remove(&mut self, range: &Range<u64>) {
        // In place: a temporary copy of the set would not fit on the
        // one-page EL2 stack.
        let mut i = self.ranges.partition_point(|r| r.end <= range.start);
        while i < self.ranges.len() && self.ranges[i].start < range.end {
            let r = self.ranges[i].clone();
            let left = r.start..range.start.min(r.end);
            let right = range.end.max(r.start)..r.end;
            match (left.start < left.end, right.start < right.end) {
                (true, true) => {
                    self.ranges[i] = left;
                    self.ranges.insert(i + 1, right);
                    i += 2;
                }
                (true, false) => {
                    self.ranges[i] = left;
                    i += 1;
                }
                (false, true) => {
                    self.ranges[i] = right;
                    i += 1;
                }
                (false, false) => {
                    self.ranges.remove(i);
                }
            }
        }
    }
}

impl<const N: usize> Default for IdleSet<N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    const PAGE: u64 = 4096;

    #[test]
    fn scattered_donations_fill_up_then_refuse_and_gaps_merge() {
        let mut set: IdleSet<4> = IdleSet::new();
        for i in 0..4 {
            let r = (2 * i) * PAGE..(2 * i + 1) * PAGE;
            assert!(set.can_insert(&r));
            set.insert(r);
        }
        // A fifth disjoint range does not fit: the caller refuses it.
        assert!(!set.can_insert(&(100 * PAGE..101 * PAGE)));
        assert!(!set.try_insert(100 * PAGE..101 * PAGE));
        assert!(!set.contains(100 * PAGE), "a range that does not fit is not added");
        // Filling a gap merges three ranges into one and frees slots.
        set.insert(PAGE..2 * PAGE);
        assert_eq!(set.ranges.len(), 3);
        assert!(set.can_insert(&(100 * PAGE..101 * PAGE)));
        // Splitting needs a slot.
        let mut full: IdleSet<1> = IdleSet::new();
        full.insert(0..10 * PAGE);
        assert!(!full.can_remove(&(4 * PAGE..5 * PAGE)));
        assert!(!full.try_remove(&(4 * PAGE..5 * PAGE)));
        assert!(full.contains(4 * PAGE), "a removal that does not fit removes nothing");
        assert!(full.can_remove(&(0..5 * PAGE)));
        assert!(full.try_remove(&(0..5 * PAGE)));
        assert!(!full.contains(4 * PAGE) && full.contains(5 * PAGE));
    }

    #[test]
    fn matches_a_page_set() {
        let mut set: IdleSet<64> = IdleSet::new();
        let mut model = BTreeSet::new();
        let mut x = 99u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let start = x % 200;
            let len = 1 + (x >> 12) % 6;
            let r = start * PAGE..(start + len) * PAGE;
            if (x >> 20).is_multiple_of(2) {
                if set.can_insert(&r) {
                    set.insert(r.clone());
                    model.extend(start..start + len);
                }
            } else if set.can_remove(&r) {
                set.remove(&r);
                for p in start..start + len {
                    model.remove(&p);
                }
            }
            for p in 0..210 {
                assert_eq!(set.contains(p * PAGE), model.contains(&p), "page {p}");
            }
            let (first, len) = ((x >> 32) % 205, 1 + (x >> 40) % 8);
            let probe = first * PAGE..(first + len) * PAGE;
            let held = (first..first + len).filter(|p| model.contains(p)).count() as u64;
            assert_eq!(set.contains_all(&probe), held == len, "all of {probe:x?}");
            assert_eq!(set.contains_none(&probe), held == 0, "none of {probe:x?}");
            assert!(set.ranges.windows(2).all(|w| w[0].end < w[1].start), "sorted, merged");
        }
    }
}
