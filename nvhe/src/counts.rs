//! Per-page guest share counts at EL2: a fixed-size open-addressing table
//! in `.bss` (the hyp has no heap, and 6.12's `struct hyp_page` has no
//! room for them). Used under the host lock only.
//!
//! Keys are `pfn + 1` (0 marks an empty slot); deletion shifts later
//! entries back, so lookups never need tombstones.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// A table of `N` slots, filled to at most three quarters.
#[derive(Debug)]
pub struct ShareCounts<const N: usize> {
    keys: [AtomicU64; N],
    counts: [AtomicU32; N],
    len: AtomicU64,
}

impl<const N: usize> ShareCounts<N> {
    /// Most pages with a non-zero count at once.
    pub const CAPACITY: usize = N / 4 * 3;

    /// An empty table (all zero: `.bss`).
    #[must_use]
    pub const fn new() -> Self {
        Self {
            keys: [const { AtomicU64::new(0) }; N],
            counts: [const { AtomicU32::new(0) }; N],
            len: AtomicU64::new(0),
        }
    }

    fn home(key: u64) -> usize {
        // Fibonacci hashing spreads consecutive page frames.
        (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize % N
    }

    fn find(&self, key: u64) -> Result<usize, usize> {
        let mut i = Self::home(key);
        loop {
            match self.keys[i].load(Ordering::Relaxed) {
                0 => return Err(i),
                k if k == key => return Ok(i),
                _ => i = (i + 1) % N,
            }
        }
    }

    /// The count of page frame `pfn`.
    pub fn get(&self, pfn: u64) -> u32 {
        self.find(pfn + 1).map_or(0, |i| self.counts[i].load(Ordering::Relaxed))
    }

    /// Pages that may still start being counted.
    pub fn room(&self) -> u64 {
        Self::CAPACITY as u64 - self.len.load(Ordering::Relaxed)
    }

    /// Sets the count of `pfn`.
    ///
    /// # Panics
    ///
    /// If a new page would exceed [`Self::CAPACITY`]: callers check
    /// [`room`](Self::room) before they commit.
    pub fn set(&self, pfn: u64, count: u32) {
        let key = pfn + 1;
        match (self.find(key), count) {
            (Ok(i), 0) => self.remove_at(i),
            (Ok(i), n) => self.counts[i].store(n, Ordering::Relaxed),
            (Err(_), 0) => {}
            (Err(i), n) => {
                assert!(self.room() > 0, "s2rmap: guest share table full");
                self.keys[i].store(key, Ordering::Relaxed);
                self.counts[i].store(n, Ordering::Relaxed);
                self.len.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn remove_at(&self, mut hole: usize) {
        self.len.fetch_sub(1, Ordering::Relaxed);
        let mut i = hole;
        loop {
            i = (i + 1) % N;
            let key = self.keys[i].load(Ordering::Relaxed);
            if key == 0 {
                break;
            }
            // Move the entry back if its home is not between the hole and it.
            let home = Self::home(key);
            let stays = if hole <= i { hole < home && home <= i } else { hole < home || home <= i };
            if !stays {
                self.keys[hole].store(key, Ordering::Relaxed);
                self.counts[hole].store(self.counts[i].load(Ordering::Relaxed), Ordering::Relaxed);
                hole = i;
            }
        }
        self.keys[hole].store(0, Ordering::Relaxed);
        self.counts[hole].store(0, Ordering::Relaxed);
    }
}

impl<const N: usize> Default for ShareCounts<N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn matches_a_map_under_random_churn() {
        let table: ShareCounts<64> = ShareCounts::new();
        let mut model = BTreeMap::new();
        let mut x = 12345u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let pfn = 0x40000 + x % 80;
            let count = ((x >> 20) % 4) as u32;
            if count != 0 && !model.contains_key(&pfn) && table.room() == 0 {
                continue;
            }
            table.set(pfn, count);
            if count == 0 {
                model.remove(&pfn);
            } else {
                model.insert(pfn, count);
            }
            assert_eq!(table.room(), (ShareCounts::<64>::CAPACITY - model.len()) as u64);
            for p in 0x40000..0x40000 + 80 {
                assert_eq!(table.get(p), model.get(&p).copied().unwrap_or(0), "pfn {p:#x}");
            }
        }
    }
}
