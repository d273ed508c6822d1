//! Translation geometry: IPA size, start level, concatenated root tables,
//! and the VTCR_EL2 / VTTBR_EL2 values that describe them.

use crate::{Error, PAGE_SHIFT, PhysAddr, level_shift};

/// Smallest IPA size supported (VTCR_EL2.T0SZ = 32).
pub const MIN_IPA_BITS: u8 = 32;
/// Largest IPA size supported without FEAT_LPA/LPA2.
pub const MAX_IPA_BITS: u8 = 48;
/// The architecture allows at most 16 concatenated tables at the start
/// level (DDI 0487, D8.2.x "Concatenated translation tables").
pub const MAX_ROOT_PAGES: usize = 16;

/// The geometry of one stage-2 translation regime with a 4 KiB granule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stage2Config {
    ipa_bits: u8,
    start_level: u8,
}

impl Stage2Config {
    /// Derives the geometry for an `ipa_bits`-wide input address space.
    ///
    /// Like KVM's `kvm_stage2_levels()`, use as few levels as possible by
    /// concatenating up to 16 tables at the start level: the number of
    /// levels is `ARM64_HW_PGTABLE_LEVELS(ipa_bits - 4)`.
    pub const fn new(ipa_bits: u8) -> Result<Self, Error> {
        if ipa_bits < MIN_IPA_BITS || ipa_bits > MAX_IPA_BITS {
            return Err(Error::UnsupportedIpaSize(ipa_bits));
        }
        // Bits resolved by the walk: (ipa_bits - 12); each level resolves
        // 9, and concatenation absorbs up to 4 more at the start level.
        let levels = (ipa_bits as u32 - 4 - 4) / (PAGE_SHIFT - 3);
        Ok(Self { ipa_bits, start_level: (4 - levels) as u8 })
    }

    /// The input address size in bits.
    #[must_use]
    pub const fn ipa_bits(&self) -> u8 {
        self.ipa_bits
    }

    /// One past the highest input address.
    #[must_use]
    pub const fn ipa_limit(&self) -> u64 {
        1 << self.ipa_bits
    }

    /// The level the walk starts at (0, 1 or 2).
    #[must_use]
    pub const fn start_level(&self) -> u8 {
        self.start_level
    }

    /// How many 4 KiB tables are concatenated at the start level (1-16).
    #[must_use]
    pub const fn root_pages(&self) -> usize {
        let bits_at_root = self.ipa_bits as u32 - level_shift(self.start_level);
        let entries = 1usize << bits_at_root;
        if entries <= 512 { 1 } else { entries / 512 }
    }

    /// How many descriptors the (possibly concatenated) root holds.
    #[must_use]
    pub const fn root_entries(&self) -> usize {
        1 << (self.ipa_bits as u32 - level_shift(self.start_level))
    }

    /// The VTCR_EL2 value for this geometry.
    ///
    /// `pa_range` is ID_AA64MMFR0_EL1.PARange (the PS field); the walks are
    /// inner-shareable write-back cacheable, as in KVM's `VTCR_EL2_FLAGS`.
    #[must_use]
    pub const fn vtcr(&self, pa_range: u8) -> u64 {
        const RES1: u64 = 1 << 31;
        const IRGN0_WBWA: u64 = 0b01 << 8;
        const ORGN0_WBWA: u64 = 0b01 << 10;
        const SH0_INNER: u64 = 0b11 << 12;
        const TG0_4K: u64 = 0b00 << 14;
        let t0sz = (64 - self.ipa_bits) as u64;
        // For the 4 KiB granule with SL2 == 0: SL0 0b00 starts at level 2,
        // 0b01 at level 1, 0b10 at level 0.
        let sl0 = (2 - self.start_level) as u64;
        let ps = (pa_range & 0b111) as u64;
        RES1 | (ps << 16) | TG0_4K | SH0_INNER | ORGN0_WBWA | IRGN0_WBWA | (sl0 << 6) | t0sz
    }

    /// The VTTBR_EL2 value for a root at `root` and the given VMID.
    ///
    /// `root` must be aligned to the size of the concatenated root.
    pub const fn vttbr(&self, root: PhysAddr, vmid: u16) -> Result<u64, Error> {
        let align = (self.root_pages() as u64) << PAGE_SHIFT;
        if root.0 & (align - 1) != 0 || root.0 & !crate::descriptor::OA_MASK != 0 {
            return Err(Error::Misaligned(root.0));
        }
        Ok(((vmid as u64) << 48) | root.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Levels and root sizes as KVM computes them for a 4 KiB granule.
    #[test]
    fn geometry_matches_kvm() {
        // (ipa_bits, start_level, root_pages)
        let expect = [
            (32, 2, 4),
            (33, 2, 8),
            (34, 2, 16),
            (35, 1, 1),
            (36, 1, 1),
            (39, 1, 1),
            (40, 1, 2),
            (41, 1, 4),
            (42, 1, 8),
            (43, 1, 16),
            (44, 0, 1),
            (47, 0, 1),
            (48, 0, 1),
        ];
        for (bits, level, pages) in expect {
            let c = Stage2Config::new(bits).unwrap();
            assert_eq!(c.start_level(), level, "start level for {bits} bits");
            assert_eq!(c.root_pages(), pages, "root pages for {bits} bits");
        }
    }

    #[test]
    fn every_size_covers_exactly_the_ipa_space() {
        for bits in MIN_IPA_BITS..=MAX_IPA_BITS {
            let c = Stage2Config::new(bits).unwrap();
            assert!(c.root_pages() <= MAX_ROOT_PAGES);
            let covered = (c.root_entries() as u128) << level_shift(c.start_level());
            assert_eq!(covered, 1u128 << bits, "{bits} bits");
            // Concatenation is only used when one table is not enough.
            assert!(c.root_pages() == 1 || c.root_entries() > 512);
        }
    }

    #[test]
    fn unsupported_sizes_refused() {
        assert_eq!(Stage2Config::new(31), Err(Error::UnsupportedIpaSize(31)));
        assert_eq!(Stage2Config::new(49), Err(Error::UnsupportedIpaSize(49)));
    }

    #[test]
    fn vtcr_fields() {
        let c = Stage2Config::new(40).unwrap();
        let v = c.vtcr(2);
        assert_eq!(v & 0x3f, 24, "T0SZ");
        assert_eq!((v >> 6) & 3, 1, "SL0 for level 1");
        assert_eq!((v >> 16) & 7, 2, "PS");
        assert_eq!((v >> 14) & 3, 0, "TG0 4K");
        assert_eq!(v >> 31 & 1, 1, "RES1");
        let c48 = Stage2Config::new(48).unwrap();
        assert_eq!((c48.vtcr(5) >> 6) & 3, 2, "SL0 for level 0");
        let c32 = Stage2Config::new(32).unwrap();
        assert_eq!((c32.vtcr(0) >> 6) & 3, 0, "SL0 for level 2");
    }

    #[test]
    fn vttbr_checks_root_alignment() {
        let c = Stage2Config::new(40).unwrap(); // two concatenated pages
        assert_eq!(c.vttbr(PhysAddr(0x4000_2000), 3), Ok((3 << 48) | 0x4000_2000));
        assert_eq!(c.vttbr(PhysAddr(0x4000_1000), 3), Err(Error::Misaligned(0x4000_1000)));
    }
}
