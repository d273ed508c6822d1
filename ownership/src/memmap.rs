//! The physical memory map: which ranges are RAM. Everything else is MMIO.

use arrayvec::ArrayVec;
use core::ops::Range;

use pgtable::PAGE_SIZE;

/// How many RAM regions the map holds. Linux allows the hyp 128
/// (`HYP_MEMBLOCK_REGIONS`), but the map travels by value through the
/// EL2 init path, whose stack is one page: 32 regions are 512 bytes. A
/// machine with more gets [`MemoryMapError::Full`] at init, not a
/// truncated map.
pub const MAX_REGIONS: usize = 32;

/// Why a region could not be added. The map is unchanged after any error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MemoryMapError {
    /// The map already holds [`MAX_REGIONS`] regions.
    #[error("memory map full ({MAX_REGIONS} regions)")]
    Full,
    /// Base or size is not 4 KiB-aligned.
    #[error("region {base:#x}+{size:#x} is not page-aligned")]
    Misaligned { base: u64, size: u64 },
    /// The region is empty or wraps around the address space.
    #[error("region {base:#x}+{size:#x} is empty or wraps")]
    Empty { base: u64, size: u64 },
    /// The region overlaps one already in the map.
    #[error("region {base:#x}+{size:#x} overlaps {other_start:#x}..{other_end:#x}")]
    Overlap { base: u64, size: u64, other_start: u64, other_end: u64 },
}

/// What kind of memory an address is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryKind {
    Ram,
    Mmio,
}

/// A maximal stretch of one kind of memory: a RAM region, or the MMIO gap
/// between two of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    pub range: Range<u64>,
    pub kind: MemoryKind,
}

/// Sorted, non-overlapping RAM regions.
#[derive(Clone, Debug, Default)]
pub struct MemoryMap {
    regions: ArrayVec<Range<u64>, MAX_REGIONS>,
}

impl MemoryMap {
    /// An empty map: everything is MMIO.
    #[must_use]
    pub const fn new() -> Self {
        Self { regions: ArrayVec::new_const() }
    }

    /// Adds the RAM region `[base, base + size)`.
    pub fn add(&mut self, base: u64, size: u64) -> Result<(), MemoryMapError> {
        if !base.is_multiple_of(PAGE_SIZE) || !size.is_multiple_of(PAGE_SIZE) {
            return Err(MemoryMapError::Misaligned { base, size });
        }
        let end = match base.checked_add(size) {
            Some(end) if size > 0 => end,
            _ => return Err(MemoryMapError::Empty { base, size }),
        };
        let at = self.regions.partition_point(|r| r.end <= base);
        if let Some(other) = self.regions.get(at).filter(|r| r.start < end) {
            return Err(MemoryMapError::Overlap {
                base,
                size,
                other_start: other.start,
                other_end: other.end,
            });
        }
        if self.regions.is_full() {
            return Err(MemoryMapError::Full);
        }
        self.regions.insert(at, base..end);
        Ok(())
    }

    /// The RAM regions, in address order.
    pub fn regions(&self) -> impl Iterator<Item = Range<u64>> + '_ {
        self.regions.iter().cloned()
    }

    /// The RAM region holding `pa`, if any.
    #[must_use]
    pub fn region_of(&self, pa: u64) -> Option<Range<u64>> {
        let at = self.regions.partition_point(|r| r.end <= pa);
        self.regions.get(at).filter(|r| r.start <= pa).cloned()
    }

    /// Whether `pa` is RAM.
    #[must_use]
    pub fn is_ram(&self, pa: u64) -> bool {
        self.region_of(pa).is_some()
    }

    /// Whether all of `range` lies inside one RAM region (false for an
    /// empty range).
    #[must_use]
    pub fn is_ram_range(&self, range: &Range<u64>) -> bool {
        range.start < range.end && self.region_of(range.start).is_some_and(|r| range.end <= r.end)
    }

    /// The span of one kind that holds `pa`, clipped to `[0, limit)`.
    #[must_use]
    pub fn span_of(&self, pa: u64, limit: u64) -> Span {
        let at = self.regions.partition_point(|r| r.end <= pa);
        match self.regions.get(at) {
            Some(r) if r.start <= pa => {
                Span { range: r.start..r.end.min(limit), kind: MemoryKind::Ram }
            }
            next => {
                let start = at.checked_sub(1).map_or(0, |prev| self.regions[prev].end);
                let end = next.map_or(limit, |r| r.start.min(limit));
                Span { range: start..end, kind: MemoryKind::Mmio }
            }
        }
    }

    /// Total bytes of RAM.
    #[must_use]
    pub fn ram_bytes(&self) -> u64 {
        self.regions.iter().map(|r| r.end - r.start).sum()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    #[test]
    fn spans_and_gaps() {
        let mut m = MemoryMap::new();
        m.add(0x4000_0000, 0x4000_0000).unwrap();
        m.add(0x1000, 0x2000).unwrap();
        assert_eq!(m.span_of(0, 1 << 40), Span { range: 0..0x1000, kind: MemoryKind::Mmio });
        assert_eq!(
            m.span_of(0x2fff, 1 << 40),
            Span { range: 0x1000..0x3000, kind: MemoryKind::Ram }
        );
        assert_eq!(m.span_of(0x3000, 1 << 40).range, 0x3000..0x4000_0000);
        assert_eq!(m.span_of(0x8000_0000, 1 << 40).range, 0x8000_0000..1 << 40);
        assert!(m.is_ram_range(&(0x4000_0000..0x8000_0000)));
        assert!(!m.is_ram_range(&(0x2000..0x4000)));
        assert!(!m.is_ram_range(&(0x2000..0x2000)));
        assert_eq!(m.ram_bytes(), 0x4000_2000);
    }

    #[test]
    fn bad_regions_refused_and_map_unchanged() {
        let mut m = MemoryMap::new();
        m.add(0x10_0000, 0x10_0000).unwrap();
        assert_eq!(m.add(0x1, 0x1000), Err(MemoryMapError::Misaligned { base: 1, size: 0x1000 }));
        assert_eq!(m.add(0x1000, 0), Err(MemoryMapError::Empty { base: 0x1000, size: 0 }));
        assert_eq!(
            m.add(0xffff_ffff_ffff_f000, 0x2000),
            Err(MemoryMapError::Empty { base: 0xffff_ffff_ffff_f000, size: 0x2000 })
        );
        assert!(matches!(m.add(0x1f_f000, 0x2000), Err(MemoryMapError::Overlap { .. })));
        assert!(matches!(m.add(0xf_f000, 0x2000), Err(MemoryMapError::Overlap { .. })));
        assert_eq!(m.regions().collect::<Vec<_>>(), std::vec![0x10_0000..0x20_0000]);
    }

    #[test]
    fn full_map_is_a_clear_error() {
        let mut m = MemoryMap::new();
        for i in 0..MAX_REGIONS as u64 {
            m.add(i * 0x2000, 0x1000).unwrap();
        }
        assert_eq!(m.add(0x1000_0000, 0x1000), Err(MemoryMapError::Full));
        assert_eq!(m.regions().count(), MAX_REGIONS);
    }
}
