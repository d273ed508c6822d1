//! VMSAv8-64 stage-2 descriptors for the 4 KiB granule.
//!
//! The bit positions below are re-derived from the Arm ARM (DDI 0487,
//! D8.3 "Translation table descriptor formats"), not copied from another
//! implementation:
//!
//! ```text
//!  63   59 58  55 54 53 52 51 50    48 47                12 11 10 9  8 7  6 5     2 1 0
//! +-------+------+--+--+--+--+--------+--------------------+-----+--+----+----+-------+-+-+
//! | PBHA  |  SW  |XN|  |C |DBM|  res  |   output address   | nG* |AF| SH |S2AP|MemAttr|T|V|
//! +-------+------+--+--+--+--+--------+--------------------+-----+--+----+----+-------+-+-+
//! ```
//!
//! `V` (bit 0) is the valid bit. `T` (bit 1) is 1 for table and page
//! descriptors and 0 for block descriptors. A descriptor with `V == 0` is
//! ignored by the hardware walker, so bits \[63:2\] are free for software:
//! that is where the owner of an unmapped range lives.

use bitflags::bitflags;

use crate::{PhysAddr, level_shift};

/// Bits \[47:12\]: the output address of a page, block or table descriptor
/// (48-bit OA, 4 KiB granule, no LPA/LPA2).
pub const OA_MASK: u64 = ((1 << 48) - 1) & !((1 << 12) - 1);

const VALID: u64 = 1 << 0;
const TYPE_TABLE_OR_PAGE: u64 = 1 << 1;

bitflags! {
    /// Stage-2 leaf attributes: the lower attributes \[10:2\] and the upper
    /// attributes \[58:51\]. Never overlaps [`OA_MASK`] or bits \[1:0\].
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct S2Attrs: u64 {
        /// MemAttr\[3:0\] = 0b1111: Normal, Outer and Inner Write-Back
        /// cacheable (FEAT_S2FWB off).
        const MEMATTR_NORMAL_WB = 0b1111 << 2;
        /// MemAttr\[3:0\] = 0b0001: Device-nGnRE (the same encoding with
        /// FEAT_S2FWB on).
        const MEMATTR_DEVICE_NGNRE = 0b0001 << 2;
        /// MemAttr\[3:0\] = 0b0110 with FEAT_S2FWB on: Normal Write-Back,
        /// stage 1 may only weaken it (KVM's `MT_S2_FWB_NORMAL`).
        const MEMATTR_FWB_NORMAL_WB = 0b0110 << 2;
        /// S2AP[0]: stage-2 read access.
        const S2AP_R = 1 << 6;
        /// S2AP[1]: stage-2 write access.
        const S2AP_W = 1 << 7;
        /// SH\[1:0\] = 0b11: Inner Shareable.
        const SH_INNER = 0b11 << 8;
        /// Access flag. Set on every leaf we create: we do not use
        /// hardware or software AF management.
        const AF = 1 << 10;
        /// Dirty Bit Modifier (FEAT_HAFDBS). Never set by us.
        const DBM = 1 << 51;
        /// Contiguous hint. Never set by us.
        const CONTIGUOUS = 1 << 52;
        /// XN[0] (FEAT_XNX).
        const XN0 = 1 << 53;
        /// XN[1]: execute-never at EL1 and EL0 when FEAT_XNX is absent.
        const XN = 1 << 54;
        /// Software bits \[58:55\], ignored by the walker.
        const SW0 = 1 << 55;
        const SW1 = 1 << 56;
        const SW2 = 1 << 57;
        const SW3 = 1 << 58;
    }
}

impl S2Attrs {
    /// Every attribute bit a leaf may carry.
    pub const MASK: u64 = (0x1ff << 2) | (0xff << 51);
    /// The MemAttr\[3:0\] field.
    pub const MEMATTR_FIELD: u64 = 0b1111 << 2;
    /// The SW\[3:0\] field.
    pub const SW_FIELD: u64 = 0b1111 << 55;

    /// Normal write-back RAM, read/write/execute, inner shareable.
    pub const RAM_RWX: Self = Self::MEMATTR_NORMAL_WB
        .union(Self::S2AP_R)
        .union(Self::S2AP_W)
        .union(Self::SH_INNER)
        .union(Self::AF);

    /// Normal write-back RAM as [`Self::RAM_RWX`], for a CPU running with
    /// HCR_EL2.FWB set.
    pub const RAM_RWX_FWB: Self = Self::MEMATTR_FWB_NORMAL_WB
        .union(Self::S2AP_R)
        .union(Self::S2AP_W)
        .union(Self::SH_INNER)
        .union(Self::AF);

    /// Device-nGnRE MMIO, read/write, never executable.
    pub const DEVICE_RW: Self = Self::MEMATTR_DEVICE_NGNRE
        .union(Self::S2AP_R)
        .union(Self::S2AP_W)
        .union(Self::AF)
        .union(Self::XN);

    /// The same attributes with the software field replaced by `sw`
    /// (only bits \[3:0\] of `sw` are used).
    #[must_use]
    pub const fn with_sw(self, sw: u8) -> Self {
        Self::from_bits_retain((self.bits() & !Self::SW_FIELD) | (((sw as u64) & 0xf) << 55))
    }

    /// The software field, bits \[58:55\], as a 4-bit value.
    #[must_use]
    pub const fn sw(self) -> u8 {
        ((self.bits() & Self::SW_FIELD) >> 55) as u8
    }
}

static_assertions::const_assert_eq!(S2Attrs::MASK & OA_MASK, 0);
static_assertions::const_assert_eq!(S2Attrs::MASK & 0b11, 0);
static_assertions::const_assert_eq!(S2Attrs::all().bits() & !S2Attrs::MASK, 0);

/// The software payload of an invalid descriptor: bits \[63:2\], with
/// bits \[1:0\] zero. Payload zero is the all-zero entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InvalidPayload(u64);

impl InvalidPayload {
    /// The payload of an all-zero entry.
    pub const ZERO: Self = Self(0);

    /// Builds a payload from bits \[63:2\] of `raw`; bits \[1:0\] are dropped,
    /// so no payload can ever make the descriptor valid.
    #[must_use]
    pub const fn new(raw: u64) -> Self {
        Self(raw & !0b11)
    }

    /// The payload bits, positioned as in the descriptor (bits \[1:0\] zero).
    #[must_use]
    pub const fn bits(self) -> u64 {
        self.0
    }
}

/// A raw stage-2 descriptor. Whether bits \[1:0\] = 0b11 mean "table" or
/// "page" depends on the level, so decoding takes the level.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct Descriptor(u64);

static_assertions::assert_eq_size!(Descriptor, u64);

/// A decoded descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DescriptorKind {
    /// `V == 0`: the walker faults; bits \[63:2\] belong to software.
    Invalid(InvalidPayload),
    /// A pointer to the next-level table (levels 0-2).
    Table { next: PhysAddr },
    /// A block mapping (levels 1-2).
    Block { oa: PhysAddr, attrs: S2Attrs },
    /// A page mapping (level 3).
    Page { oa: PhysAddr, attrs: S2Attrs },
    /// A bit pattern the architecture reserves at this level
    /// (`0b01` at level 0 or level 3). We never write one.
    Reserved,
}

impl Descriptor {
    /// The all-zero descriptor.
    pub const ZERO: Self = Self(0);

    /// Reinterprets raw table contents.
    #[must_use]
    pub const fn from_bits(bits: u64) -> Self {
        Self(bits)
    }

    /// The raw bits.
    #[must_use]
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// An invalid descriptor carrying `payload`.
    #[must_use]
    pub const fn invalid(payload: InvalidPayload) -> Self {
        Self(payload.bits())
    }

    /// A table descriptor pointing at the 4 KiB-aligned `next`.
    #[must_use]
    pub const fn table(next: PhysAddr) -> Self {
        Self((next.0 & OA_MASK) | TYPE_TABLE_OR_PAGE | VALID)
    }

    /// A leaf mapping `oa` at `level`: a block at levels 1-2, a page at
    /// level 3. Returns `None` at level 0 (no blocks with a 4 KiB granule
    /// and 48-bit OA) or when `oa` is not aligned to the leaf size.
    #[must_use]
    pub const fn leaf(level: u8, oa: PhysAddr, attrs: S2Attrs) -> Option<Self> {
        if level == 0 || level > 3 || oa.0 & ((1 << level_shift(level)) - 1) != 0 {
            return None;
        }
        let kind = if level == 3 { TYPE_TABLE_OR_PAGE } else { 0 };
        Some(Self((oa.0 & OA_MASK) | (attrs.bits() & S2Attrs::MASK) | kind | VALID))
    }

    /// Whether the walker will use this descriptor.
    #[must_use]
    pub const fn is_valid(self) -> bool {
        self.0 & VALID != 0
    }

    /// Whether this is a table descriptor at `level`.
    #[must_use]
    pub const fn is_table(self, level: u8) -> bool {
        level < 3 && self.0 & 0b11 == 0b11
    }

    /// Whether this descriptor ends the walk at `level` (an invalid entry,
    /// a block or a page).
    #[must_use]
    pub const fn is_leaf(self, level: u8) -> bool {
        !self.is_table(level)
    }

    /// The output address field.
    #[must_use]
    pub const fn oa(self) -> PhysAddr {
        PhysAddr(self.0 & OA_MASK)
    }

    /// The attribute bits of a valid leaf.
    #[must_use]
    pub const fn attrs(self) -> S2Attrs {
        S2Attrs::from_bits_retain(self.0 & S2Attrs::MASK)
    }

    /// The payload of an invalid descriptor.
    #[must_use]
    pub const fn payload(self) -> InvalidPayload {
        InvalidPayload::new(self.0)
    }

    /// Decodes the descriptor as found at `level`.
    #[must_use]
    pub const fn decode(self, level: u8) -> DescriptorKind {
        match self.0 & 0b11 {
            0b00 | 0b10 => DescriptorKind::Invalid(InvalidPayload::new(self.0)),
            0b11 if level < 3 => DescriptorKind::Table { next: self.oa() },
            0b11 => DescriptorKind::Page { oa: self.oa(), attrs: self.attrs() },
            _ if level == 1 || level == 2 => {
                DescriptorKind::Block { oa: self.oa(), attrs: self.attrs() }
            }
            _ => DescriptorKind::Reserved,
        }
    }

    /// Whether going from `self` to `new` at the same entry needs
    /// break-before-make: a live translation changes its output address,
    /// its size (block/table/page) or its memory type. Changes confined to
    /// the software bits, or the creation of a translation where there was
    /// none, do not.
    #[must_use]
    pub const fn needs_bbm(self, new: Self, level: u8) -> bool {
        if !self.is_valid() || !new.is_valid() {
            return false;
        }
        if self.is_table(level) || new.is_table(level) {
            return self.0 != new.0;
        }
        (self.0 ^ new.0) & !S2Attrs::SW_FIELD != 0
    }
}

impl core::fmt::Debug for Descriptor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Descriptor({:#018x})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_attrs() -> impl Strategy<Value = S2Attrs> {
        any::<u64>().prop_map(S2Attrs::from_bits_retain)
    }

    proptest! {
        #[test]
        fn invalid_payload_never_valid(raw in any::<u64>(), level in 0u8..4) {
            let d = Descriptor::invalid(InvalidPayload::new(raw));
            prop_assert!(!d.is_valid());
            prop_assert_eq!(d.decode(level), DescriptorKind::Invalid(InvalidPayload::new(raw)));
            prop_assert_eq!(d.payload().bits(), raw & !0b11);
        }

        #[test]
        fn owner_ids_in_high_word_stay_invalid(owner in any::<u32>()) {
            let d = Descriptor::invalid(InvalidPayload::new(u64::from(owner) << 32));
            prop_assert!(!d.is_valid());
            prop_assert_eq!(d.payload().bits() >> 32, u64::from(owner));
        }

        #[test]
        fn leaf_round_trip(level in 1u8..4, oa in any::<u64>(), attrs in any_attrs()) {
            let oa = PhysAddr(oa & OA_MASK & !((1 << level_shift(level)) - 1));
            let d = Descriptor::leaf(level, oa, attrs).unwrap();
            prop_assert!(d.is_valid());
            prop_assert!(d.is_leaf(level));
            let expect_attrs = S2Attrs::from_bits_retain(attrs.bits() & S2Attrs::MASK);
            let kind = d.decode(level);
            if level == 3 {
                prop_assert_eq!(kind, DescriptorKind::Page { oa, attrs: expect_attrs });
            } else {
                prop_assert_eq!(kind, DescriptorKind::Block { oa, attrs: expect_attrs });
            }
        }

        #[test]
        fn attrs_never_leak_into_oa(level in 1u8..4, oa in any::<u64>(), attrs in any::<u64>()) {
            let oa = PhysAddr(oa & OA_MASK & !((1 << level_shift(level)) - 1));
            let d = Descriptor::leaf(level, oa, S2Attrs::from_bits_retain(attrs)).unwrap();
            prop_assert_eq!(d.oa(), oa);
            let sw = Descriptor::leaf(level, oa, S2Attrs::RAM_RWX.with_sw((attrs & 0xf) as u8)).unwrap();
            prop_assert_eq!(sw.oa(), oa);
            prop_assert_eq!(sw.attrs().sw(), (attrs & 0xf) as u8);
        }

        #[test]
        fn table_round_trip(level in 0u8..3, next in any::<u64>()) {
            let next = PhysAddr(next & OA_MASK);
            let d = Descriptor::table(next);
            prop_assert!(d.is_table(level));
            prop_assert_eq!(d.decode(level), DescriptorKind::Table { next });
        }

        #[test]
        fn misaligned_leaf_refused(level in 1u8..4, oa in any::<u64>()) {
            let oa = oa & OA_MASK;
            let aligned = oa & ((1 << level_shift(level)) - 1) == 0;
            prop_assert_eq!(Descriptor::leaf(level, PhysAddr(oa), S2Attrs::RAM_RWX).is_some(), aligned);
        }
    }

    #[test]
    fn no_level0_blocks() {
        assert_eq!(Descriptor::leaf(0, PhysAddr(0), S2Attrs::RAM_RWX), None);
        assert_eq!(Descriptor::from_bits(0b01).decode(0), DescriptorKind::Reserved);
        assert_eq!(Descriptor::from_bits(0b01).decode(3), DescriptorKind::Reserved);
    }

    #[test]
    fn sw_only_change_needs_no_bbm() {
        let a = Descriptor::leaf(3, PhysAddr(0x1000), S2Attrs::RAM_RWX).unwrap();
        let b = Descriptor::leaf(3, PhysAddr(0x1000), S2Attrs::RAM_RWX.with_sw(1)).unwrap();
        let c = Descriptor::leaf(3, PhysAddr(0x2000), S2Attrs::RAM_RWX).unwrap();
        assert!(!a.needs_bbm(b, 3));
        assert!(a.needs_bbm(c, 3));
        assert!(!Descriptor::ZERO.needs_bbm(a, 3));
        assert!(!a.needs_bbm(Descriptor::ZERO, 3));
    }

    #[test]
    fn architectural_encodings() {
        // Cross-checked against the Arm ARM field definitions.
        assert_eq!(S2Attrs::MEMATTR_NORMAL_WB.bits(), 0x3c);
        assert_eq!(S2Attrs::MEMATTR_DEVICE_NGNRE.bits(), 0x4);
        assert_eq!(S2Attrs::AF.bits(), 0x400);
        assert_eq!(S2Attrs::XN.bits(), 1 << 54);
        assert_eq!(S2Attrs::SW_FIELD, 0x0780_0000_0000_0000);
        assert_eq!(OA_MASK, 0x0000_ffff_ffff_f000);
    }
}
