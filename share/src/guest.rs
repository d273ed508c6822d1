//! A protected guest's stage-2, laid out like an Arm CCA realm: the lower
//! half of the IPA space is protected (backed by donated pages), the upper
//! half (top IPA bit set) is unprotected (pages the host shares, or MMIO
//! the host emulates).
//!
//! Guest entries:
//!
//! | entry | meaning |
//! |---|---|
//! | valid, SW\[1:0\] = state | mapped; Owned / SharedOwned (protected half) or SharedBorrowed (unprotected half); a mapped protected page has RIPAS RAM |
//! | invalid, payload `RIPAS_RAM` | protected, unassigned, RIPAS RAM |
//! | zero | unassigned, RIPAS EMPTY (protected) or unmapped (unprotected) |

use core::ops::Range;

use ownership::PageState;
use pgtable::{
    InvalidPayload, Leaf, PAGE_SIZE, PageTable, PhysAddr, Prepared, S2Attrs, TableAllocator,
};

use crate::Errno;

/// The payload of an unassigned protected entry whose RIPAS is RAM.
pub(crate) const RIPAS_RAM: InvalidPayload = InvalidPayload::new(1 << 2);

/// Where a guest is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifecycle {
    /// Created, never run: RIPAS may still be initialised.
    New,
    /// Has run.
    Running,
}

/// The Realm IPA state of a protected IPA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ripas {
    Empty,
    Ram,
}

/// What a guest access to an IPA does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestAccess {
    /// The access translates.
    Ok,
    /// A protected IPA with no page: the guest takes a fault.
    Fault,
    /// An unprotected IPA with no page: an MMIO exit to the host, with the
    /// IPA's top bit stripped as KVM masks its stolen bits.
    Mmio { ipa: u64 },
}

/// Which half of the IPA space a range lies in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Half {
    Protected,
    Unprotected,
}

/// One guest page as its stage-2 describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct GuestPage {
    pub state: PageState,
    pub pa: Option<u64>,
    pub ripas: Ripas,
}

/// A guest stage-2 table and its geometry.
#[derive(Debug)]
pub(crate) struct GuestStage2 {
    pub table: PageTable,
    pub ram: S2Attrs,
}

impl GuestStage2 {
    pub fn ipa_limit(&self) -> u64 {
        self.table.config().ipa_limit()
    }

    /// The top IPA bit: set for the unprotected alias.
    pub fn unprotected_bit(&self) -> u64 {
        self.ipa_limit() >> 1
    }

    /// The byte range of `nr` pages at `gfn`, and which half it lies in;
    /// EINVAL for overflow, `nr == 0`, or a range straddling the halves
    /// or leaving the IPA space.
    pub fn ipa_range(&self, gfn: u64, nr: u64) -> Result<(Range<u64>, Half), Errno> {
        let range = page_range(gfn, nr)?;
        let top = self.unprotected_bit();
        if range.end <= top {
            Ok((range, Half::Protected))
        } else if range.start >= top && range.end <= self.ipa_limit() {
            Ok((range, Half::Unprotected))
        } else {
            Err(Errno::EINVAL)
        }
    }

    pub fn page<A: TableAllocator + ?Sized>(&self, alloc: &A, ipa: u64) -> GuestPage {
        let Ok(entry) = self.table.lookup(alloc, ipa) else {
            return GuestPage { state: PageState::NoPage, pa: None, ripas: Ripas::Empty };
        };
        if let Some(pa) = entry.output_address(ipa & !(PAGE_SIZE - 1)) {
            let state = ownership::PageState::from_sw_bits(entry.desc.attrs().sw())
                .unwrap_or(PageState::NoPage);
            return GuestPage { state, pa: Some(pa.0), ripas: Ripas::Ram };
        }
        let ripas = if entry.desc.payload() == RIPAS_RAM { Ripas::Ram } else { Ripas::Empty };
        GuestPage { state: PageState::NoPage, pa: None, ripas }
    }

    pub fn mapping(&self, pa: u64, state: PageState) -> Leaf {
        let sw = state.sw_bits().unwrap_or(0);
        Leaf::Mapped { oa: PhysAddr(pa), attrs: self.ram.with_sw(sw) }
    }

    pub fn prepare<A: TableAllocator + ?Sized>(
        &self,
        alloc: &mut A,
        range: Range<u64>,
        leaf: Leaf,
    ) -> Result<Prepared, Errno> {
        Ok(self.table.prepare(alloc, range, leaf)?)
    }
}

/// The byte range of `nr` pages from page frame `pfn`: EINVAL for
/// `nr == 0` or any overflow.
pub(crate) fn page_range(pfn: u64, nr: u64) -> Result<Range<u64>, Errno> {
    if nr == 0 {
        return Err(Errno::EINVAL);
    }
    let end_pfn = pfn.checked_add(nr).ok_or(Errno::EINVAL)?;
    let end = end_pfn.checked_mul(PAGE_SIZE).ok_or(Errno::EINVAL)?;
    Ok(pfn * PAGE_SIZE..end)
}
