//! What an entry of the host stage-2 means: the host stage-2 as the
//! reverse map (rmap) of all physical memory.
//!
//! The host stage-2 is an identity map, so the entry that translates IPA
//! `x` is also the record of who owns physical page `x`:
//!
//! | entry | meaning |
//! |---|---|
//! | all zero | owned by the host, not mapped yet (mapped lazily on fault) |
//! | invalid, bits \[63:32\] = id ≠ 0, bits \[31:0\] = 0 | owned by `id`; the host cannot reach it |
//! | valid, SW\[1:0\] (bits \[56:55\]) = 00 | owned by the host, mapped ([`PageState::Owned`]) |
//! | valid, SW = 01 | owned by the host and lent out ([`PageState::SharedOwned`]) |
//! | valid, SW = 10 | owned by someone else, lent to the host ([`PageState::SharedBorrowed`]) |
//! | valid, SW = 11, or invalid with bits \[31:2\] set | never written: reported as [`Error::Corrupt`] |
//!
//! SW bit 2 (bit 57) of a lent page records that the host had not mapped
//! it before lending it ([`Target::Lent`]): when the last borrower lets
//! go, the page goes back to the all-zero entry rather than a mapping, so
//! the tables split for the share fold away again.
//!
//! # Invariants
//!
//! - The host stage-2 only ever holds identity translations, and only for
//!   pages the host owns or borrows.
//! - A fault never maps a page whose entry names another owner: it returns
//!   [`FaultOutcome::NotYours`] and changes nothing.
//! - A fault maps the largest block that lies in one RAM region or in one
//!   MMIO gap and whose entries all agree. RAM is normal memory, MMIO is
//!   device memory and never executable. [`HostStage2::map_owned_ram`]
//!   maps the host's RAM the same way in one go, at the end of boot.
//! - Every failed call leaves the table unchanged (see `pgtable`).
//!
//! This crate knows nothing of hypercalls or of the other parties'
//! tables: `share` checks that the host's view agrees with theirs.
#![no_std]
#![forbid(unsafe_code)]

pub mod memmap;

use core::ops::Range;

pub use memmap::{MemoryKind, MemoryMap, MemoryMapError, Span};
use pgtable::{
    Descriptor, InPlace, InvalidPayload, Leaf, LeafRun, PAGE_SIZE, PageChange, PageCursor,
    PageTable, PhysAddr, Prepared, S2Attrs, Stage2Config, TableAllocator, Tlb,
};

/// The ID of a page's owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OwnerId(pub u32);

impl OwnerId {
    /// The host kernel. Zero, so that a zeroed table gives it everything.
    pub const HOST: Self = Self(0);
    /// The hypervisor.
    pub const HYP: Self = Self(1);
    /// The first ID given to a protected guest.
    pub const FIRST_GUEST: Self = Self(2);

    /// Whether this ID names a guest.
    #[must_use]
    pub const fn is_guest(self) -> bool {
        self.0 >= Self::FIRST_GUEST.0
    }

    fn payload(self) -> InvalidPayload {
        InvalidPayload::new(u64::from(self.0) << 32)
    }
}

impl core::fmt::Display for OwnerId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::HOST => f.write_str("host"),
            Self::HYP => f.write_str("hyp"),
            Self(id) => write!(f, "guest{id}"),
        }
    }
}

/// One party's view of a page (pKVM's `enum pkvm_page_state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PageState {
    /// The party owns the page and nobody else can reach it.
    Owned,
    /// The party owns the page and has lent it to someone.
    SharedOwned,
    /// Someone else owns the page and has lent it to this party.
    SharedBorrowed,
    /// The party cannot reach the page.
    NoPage,
}

impl PageState {
    /// The 2-bit software field a valid entry carries for this state.
    #[must_use]
    pub const fn sw_bits(self) -> Option<u8> {
        match self {
            Self::Owned => Some(0b00),
            Self::SharedOwned => Some(0b01),
            Self::SharedBorrowed => Some(0b10),
            Self::NoPage => None,
        }
    }

    /// The state a valid entry's software field encodes.
    #[must_use]
    pub const fn from_sw_bits(sw: u8) -> Option<Self> {
        match sw & 0b11 {
            0b00 => Some(Self::Owned),
            0b01 => Some(Self::SharedOwned),
            0b10 => Some(Self::SharedBorrowed),
            _ => None,
        }
    }
}

/// What the host stage-2 says about one page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageInfo {
    /// Who owns the page; `None` for a page the host borrows, whose owner
    /// is recorded by that owner (as [`PageState::SharedOwned`]).
    pub owner: Option<OwnerId>,
    /// The host's view of the page.
    pub host_state: PageState,
    /// Whether the host stage-2 translates it right now.
    pub mapped: bool,
}

impl PageInfo {
    const UNMAPPED_HOST: Self =
        Self { owner: Some(OwnerId::HOST), host_state: PageState::Owned, mapped: false };
}

/// Why a call was refused. Every error is returned before anything
/// changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not enough table pages for the change.
    #[error("out of table pages")]
    NoMemory,
    /// An address or range is misaligned, empty or outside the IPA space.
    #[error("bad range {0:#x}..{1:#x}")]
    BadRange(u64, u64),
    /// The range is not entirely RAM.
    #[error("range {0:#x}..{1:#x} is not RAM")]
    NotRam(u64, u64),
    /// [`PageState::NoPage`] cannot be written as a host state.
    #[error("no host entry encodes NoPage")]
    NoPageState,
    /// The host owner is written with `set_state`, not `set_owner`.
    #[error("the host's own pages are annotated with set_state or unmap")]
    HostOwnerAnnotation,
    /// An entry holds a pattern the tracker never writes.
    #[error("corrupt host stage-2 entry {desc:#x} at {pa:#x}")]
    Corrupt { pa: u64, desc: u64 },
}

impl From<pgtable::Error> for Error {
    fn from(e: pgtable::Error) -> Self {
        match e {
            pgtable::Error::NoMemory => Self::NoMemory,
            pgtable::Error::Misaligned(a) => Self::BadRange(a, a),
            pgtable::Error::OutOfRange(s, e) => Self::BadRange(s, e),
            pgtable::Error::UnsupportedIpaSize(b) => Self::BadRange(0, 1 << b.min(63)),
        }
    }
}

/// The outcome of a host stage-2 fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultOutcome {
    /// The range now translates, identity-mapped.
    Mapped { range: Range<u64>, kind: MemoryKind },
    /// The page already translates (another CPU mapped it first, or the
    /// fault raced with a break-before-make): retry the access.
    AlreadyMapped,
    /// The page belongs to `owner`. Nothing was mapped; the caller
    /// injects an abort into the host.
    NotYours { owner: OwnerId },
}

/// The memory types the host's mappings use. They depend on whether the
/// CPU runs with HCR_EL2.FWB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostMemoryTypes {
    /// Attributes of RAM mappings (SW bits are replaced by the state).
    pub ram: S2Attrs,
    /// Attributes of MMIO mappings.
    pub mmio: S2Attrs,
}

impl HostMemoryTypes {
    /// For a CPU without FEAT_S2FWB (or with HCR_EL2.FWB clear).
    pub const CLASSIC: Self = Self { ram: S2Attrs::RAM_RWX, mmio: S2Attrs::DEVICE_RW };
    /// For a CPU running with HCR_EL2.FWB set.
    pub const FWB: Self = Self { ram: S2Attrs::RAM_RWX_FWB, mmio: S2Attrs::DEVICE_RW };
}

/// The host stage-2, read and written as an rmap.
#[derive(Debug)]
pub struct HostStage2 {
    table: PageTable,
    memory: MemoryMap,
    types: HostMemoryTypes,
}

impl HostStage2 {
    /// Takes over a zeroed root (see [`PageTable::new`]): at first the host
    /// owns everything and nothing is mapped.
    pub fn new(
        config: Stage2Config,
        root: PhysAddr,
        memory: MemoryMap,
        types: HostMemoryTypes,
    ) -> Result<Self, Error> {
        Ok(Self { table: PageTable::new(config, root)?, memory, types })
    }

    /// The underlying table.
    #[must_use]
    pub fn table(&self) -> &PageTable {
        &self.table
    }

    /// The memory map.
    #[must_use]
    pub fn memory(&self) -> &MemoryMap {
        &self.memory
    }

    /// One past the highest address the host stage-2 covers.
    #[must_use]
    pub fn ipa_limit(&self) -> u64 {
        self.table.config().ipa_limit()
    }

    fn decode(&self, desc: Descriptor, pa: u64) -> Result<PageInfo, Error> {
        let corrupt = Error::Corrupt { pa, desc: desc.bits() };
        if desc.is_valid() {
            let state = PageState::from_sw_bits(desc.attrs().sw()).ok_or(corrupt)?;
            let owner = (state != PageState::SharedBorrowed).then_some(OwnerId::HOST);
            return Ok(PageInfo { owner, host_state: state, mapped: true });
        }
        let bits = desc.bits();
        if bits & 0xffff_ffff != 0 {
            return Err(corrupt);
        }
        match OwnerId((bits >> 32) as u32) {
            OwnerId::HOST => Ok(PageInfo::UNMAPPED_HOST),
            owner => {
                Ok(PageInfo { owner: Some(owner), host_state: PageState::NoPage, mapped: false })
            }
        }
    }

    /// What the host stage-2 says about the page holding `pa`.
    pub fn page_info<A: TableAllocator + ?Sized>(
        &self,
        alloc: &A,
        pa: u64,
    ) -> Result<PageInfo, Error> {
        let entry = self.table.lookup(alloc, pa)?;
        self.decode(entry.desc, pa)
    }

    /// What the host stage-2 says about the page holding `pa`, with the
    /// table that holds its entry, for a change of that page alone
    /// ([`prepare_page`](Self::prepare_page)).
    #[inline(always)]
    pub fn page<A: TableAllocator + ?Sized>(&self, alloc: &A, pa: u64) -> Result<HostPage, Error> {
        let cursor = self.table.page(alloc, pa)?;
        let info = self.decode(cursor.entry.desc, pa)?;
        Ok(HostPage { info, maps_as_ram: self.maps_as_ram(&cursor), cursor })
    }

    /// Who owns the page holding `pa` (`None`: borrowed by the host, see
    /// [`PageInfo::owner`]).
    pub fn owner_of<A: TableAllocator + ?Sized>(
        &self,
        alloc: &A,
        pa: u64,
    ) -> Result<Option<OwnerId>, Error> {
        Ok(self.page_info(alloc, pa)?.owner)
    }

    /// The host's view of the page holding `pa`.
    pub fn state_of<A: TableAllocator + ?Sized>(
        &self,
        alloc: &A,
        pa: u64,
    ) -> Result<PageState, Error> {
        Ok(self.page_info(alloc, pa)?.host_state)
    }

    /// The ownership of `range` as maximal runs of one (owner, state).
    pub fn runs<'a, A: TableAllocator + ?Sized>(
        &'a self,
        alloc: &'a A,
        range: Range<u64>,
    ) -> Runs<'a, A> {
        Runs { host: self, leaves: self.table.leaves(alloc, range), pending: None }
    }

    /// Handles a host stage-2 fault at `pa`: identity-maps the largest
    /// block around it that lies inside one RAM region or one MMIO gap
    /// and whose entries all agree.
    pub fn host_fault<A, T>(
        &mut self,
        alloc: &mut A,
        tlb: &mut T,
        pa: u64,
    ) -> Result<FaultOutcome, Error>
    where
        A: TableAllocator + ?Sized,
        T: Tlb + ?Sized,
    {
        let entry = self.table.lookup(alloc, pa)?;
        let info = self.decode(entry.desc, pa)?;
        if info.mapped {
            return Ok(FaultOutcome::AlreadyMapped);
        }
        if let Some(owner) = info.owner.filter(|&o| o != OwnerId::HOST) {
            return Ok(FaultOutcome::NotYours { owner });
        }
        let span = self.memory.span_of(pa, self.ipa_limit());
        // The entry found covers a block whose pages all agree (it is one
        // zero descriptor), so any block inside it does too; the page itself
        // always lies inside its span.
        let page = pa & !(PAGE_SIZE - 1);
        let range = (entry.level.max(1)..=2)
            .map(|level| {
                let size = pgtable::level_size(level);
                let start = pa & !(size - 1);
                start..start + size
            })
            .find(|block| span.range.start <= block.start && block.end <= span.range.end)
            .unwrap_or(page..page + PAGE_SIZE);
        let attrs = match span.kind {
            MemoryKind::Ram => self.types.ram,
            MemoryKind::Mmio => self.types.mmio,
        };
        // A fault only maps what the host already owns, so the table it
        // lands in may become uniform; it is left for the next transition
        // of the range to fold, off the host's fault path.
        let leaf = Leaf::Mapped { oa: PhysAddr(range.start), attrs };
        let mapped = self.table.update_unfolded(alloc, tlb, range.clone(), leaf);
        if mapped == Err(pgtable::Error::NoMemory) {
            // Out of table pages: give back what the host can fault in
            // again, as stock pKVM does, and try once more.
            self.recycle_mmio(alloc, tlb);
            self.table.update_unfolded(alloc, tlb, range.clone(), leaf)?;
        } else {
            mapped?;
        }
        Ok(FaultOutcome::Mapped { range, kind: span.kind })
    }

    /// Maps every page of RAM the host owns and has not mapped yet, with
    /// the largest blocks that fit, as its faults would; pages with
    /// another owner stay as they are. For the end of boot-time set-up:
    /// the host then takes stage-2 faults only on MMIO and on pages that
    /// come back to it unmapped. Returns the pages mapped.
    ///
    /// Each run is one update that reserves its table pages first, so an
    /// error (out of table pages) leaves the runs before it mapped and the
    /// rest to be mapped lazily, as before this call.
    pub fn map_owned_ram<A, T>(&mut self, alloc: &mut A, tlb: &mut T) -> Result<u64, Error>
    where
        A: TableAllocator + ?Sized,
        T: Tlb + ?Sized,
    {
        let mut mapped = 0;
        for region in self.memory.regions() {
            let mut cursor = region.start;
            while let Some(run) = self.next_unmapped_host_run(alloc, cursor, region.end) {
                cursor = run.end;
                let leaf = Leaf::Mapped { oa: PhysAddr(run.start), attrs: self.types.ram };
                self.table.update(alloc, tlb, run.clone(), leaf)?;
                mapped += (run.end - run.start) / PAGE_SIZE;
            }
        }
        Ok(mapped)
    }

    /// The first maximal run of all-zero entries (the host's, unmapped)
    /// in `from..end`, leaf by leaf.
    fn next_unmapped_host_run<A: TableAllocator + ?Sized>(
        &self,
        alloc: &A,
        from: u64,
        end: u64,
    ) -> Option<Range<u64>> {
        let mut leaves = self.table.leaves(alloc, from..end);
        let first = leaves.find(|leaf| leaf.entry.desc == Descriptor::ZERO)?;
        let mut run = first.ipa;
        for leaf in leaves {
            if leaf.entry.desc != Descriptor::ZERO {
                break;
            }
            run.end = leaf.ipa.end;
        }
        Some(run)
    }

    /// Unmaps every MMIO mapping of the host (stock pKVM's
    /// `host_stage2_unmap_dev_all`): they are rebuilt on the next fault,
    /// and the tables they free go back to the pool. Each leaf is unmapped
    /// whole, so this never needs a table page itself. Returns the pages
    /// of MMIO unmapped.
    pub fn recycle_mmio<A, T>(&mut self, alloc: &mut A, tlb: &mut T) -> u64
    where
        A: TableAllocator + ?Sized,
        T: Tlb + ?Sized,
    {
        let limit = self.ipa_limit();
        let mut unmapped = 0;
        let mut cursor = 0;
        while cursor < limit {
            let span = self.memory.span_of(cursor, limit);
            if span.kind == MemoryKind::Mmio {
                let mut at = span.range.start;
                while at < span.range.end {
                    let Ok(leaf) = self.table.lookup(alloc, at) else { break };
                    let end = leaf.end().min(span.range.end);
                    if leaf.desc.is_valid() {
                        // A valid MMIO leaf lies inside its gap (faults never
                        // map across a RAM boundary): unmapping it whole takes
                        // no table page.
                        let whole = leaf.base..leaf.end();
                        if self.table.unmap(alloc, tlb, whole).is_ok() {
                            unmapped += (leaf.end() - leaf.base) / PAGE_SIZE;
                        }
                    }
                    at = end;
                }
            }
            cursor = span.range.end;
        }
        unmapped
    }

    #[inline(always)]
    fn check_range(&self, range: &Range<u64>) -> Result<(), Error> {
        if range.start >= range.end
            || !range.start.is_multiple_of(PAGE_SIZE)
            || !range.end.is_multiple_of(PAGE_SIZE)
            || range.end > self.ipa_limit()
        {
            return Err(Error::BadRange(range.start, range.end));
        }
        Ok(())
    }

    /// Gives `range` to `owner` (not the host): the host loses access.
    /// A whole aligned block becomes one block-level invalid entry.
    pub fn set_owner<A, T>(
        &mut self,
        alloc: &mut A,
        tlb: &mut T,
        range: Range<u64>,
        owner: OwnerId,
    ) -> Result<(), Error>
    where
        A: TableAllocator + ?Sized,
        T: Tlb + ?Sized,
    {
        if owner == OwnerId::HOST {
            return Err(Error::HostOwnerAnnotation);
        }
        self.apply(alloc, tlb, range, Target::Owner(owner))
    }

    /// Maps the RAM `range` to the host with `state`.
    pub fn set_state<A, T>(
        &mut self,
        alloc: &mut A,
        tlb: &mut T,
        range: Range<u64>,
        state: PageState,
    ) -> Result<(), Error>
    where
        A: TableAllocator + ?Sized,
        T: Tlb + ?Sized,
    {
        self.apply(alloc, tlb, range, Target::State(state))
    }

    /// Returns `range` to the host, unmapped: it is mapped again on the
    /// next fault.
    pub fn unmap<A, T>(
        &mut self,
        alloc: &mut A,
        tlb: &mut T,
        range: Range<u64>,
    ) -> Result<(), Error>
    where
        A: TableAllocator + ?Sized,
        T: Tlb + ?Sized,
    {
        self.apply(alloc, tlb, range, Target::Owner(OwnerId::HOST))
    }

    /// Validates a change of `range` to `target` and counts the table
    /// pages it needs, without changing anything (see
    /// [`PageTable::prepare`]).
    pub fn prepare<A: TableAllocator + ?Sized>(
        &self,
        alloc: &mut A,
        range: Range<u64>,
        target: Target,
    ) -> Result<Prepared, Error> {
        let leaf = self.leaf_for(&range, target)?;
        Ok(self.table.prepare(alloc, range, leaf)?)
    }

    /// [`prepare`](Self::prepare) for the one page `page` describes,
    /// without finding it again.
    #[inline(always)]
    pub fn prepare_page<A: TableAllocator + ?Sized>(
        &self,
        alloc: &mut A,
        page: &HostPage,
        target: Target,
    ) -> Result<PageChange, Error> {
        let ipa = page.cursor.ipa();
        let range = ipa..ipa + PAGE_SIZE;
        let leaf = if page.maps_as_ram {
            self.leaf_for_checked_ram(&range, target)?
        } else {
            self.leaf_for(&range, target)?
        };
        Ok(self.table.prepare_page(alloc, &page.cursor, leaf)?)
    }

    /// Whether `page` is RAM: the host maps it as RAM already, or it lies
    /// in a RAM region. The first needs no search of the memory map.
    #[inline(always)]
    #[must_use]
    pub fn is_ram_page(&self, page: &HostPage) -> bool {
        page.maps_as_ram || self.memory.is_ram(page.cursor.ipa())
    }

    /// Whether the host already maps the page at `cursor`, at its own address, as RAM.
    /// Giving such a page another state or lending it changes only the
    /// software bits of that mapping: it creates no translation, so the
    /// RAM check, which keeps MMIO from being mapped as normal memory,
    /// has nothing to check (a mapping with any other attributes still
    /// goes through it).
    #[inline(always)]
    fn maps_as_ram(&self, cursor: &PageCursor) -> bool {
        let (entry, ipa) = (&cursor.entry, cursor.ipa());
        entry.desc.is_valid()
            && entry.desc.attrs().with_sw(0) == self.types.ram.with_sw(0)
            && entry.output_address(ipa) == Some(PhysAddr(ipa))
    }

    /// Makes a write [`prepare_page`](Self::prepare_page) returned as
    /// [`PageChange::InPlace`] (see [`PageTable::commit_in_place`]).
    #[inline(always)]
    pub fn commit_in_place<A, T>(&mut self, alloc: &A, tlb: &mut T, write: InPlace)
    where
        A: TableAllocator + ?Sized,
        T: Tlb + ?Sized,
    {
        self.table.commit_in_place(alloc, tlb, write);
    }

    /// The leaf that gives `range` the meaning `target`. Inlined: a
    /// one-page change knows its target and its range's alignment where
    /// it calls, and most of the checks fold away there.
    #[inline(always)]
    fn leaf_for(&self, range: &Range<u64>, target: Target) -> Result<Leaf, Error> {
        self.leaf_with_ram_check(range, target, |range| self.memory.is_ram_range(range))
    }

    /// [`leaf_for`](Self::leaf_for) for a range known to be RAM.
    #[inline(always)]
    fn leaf_for_checked_ram(&self, range: &Range<u64>, target: Target) -> Result<Leaf, Error> {
        self.leaf_with_ram_check(range, target, |_| true)
    }

    #[inline(always)]
    fn leaf_with_ram_check(
        &self,
        range: &Range<u64>,
        target: Target,
        is_ram: impl FnOnce(&Range<u64>) -> bool,
    ) -> Result<Leaf, Error> {
        self.check_range(range)?;
        Ok(match target {
            Target::Owner(owner) => Leaf::Invalid(owner.payload()),
            Target::State(_) | Target::Lent { .. } => {
                let sw = match target {
                    Target::Lent { unmapped_before } => {
                        PageState::SharedOwned.sw_bits().unwrap_or(0)
                            | if unmapped_before { SW_UNMAPPED_BEFORE } else { 0 }
                    }
                    Target::State(state) => state.sw_bits().ok_or(Error::NoPageState)?,
                    Target::Owner(_) => unreachable!(),
                };
                if !is_ram(range) {
                    return Err(Error::NotRam(range.start, range.end));
                }
                Leaf::Mapped { oa: PhysAddr(range.start), attrs: self.types.ram.with_sw(sw) }
            }
        })
    }

    /// The first run of `from..end` (leaf by leaf, merged) over which
    /// lending keeps one record of how the host had the pages: `Lent {
    /// unmapped_before }`, true for unmapped pages and for lent pages that
    /// were unmapped before their first share.
    pub fn next_lend_run<A: TableAllocator + ?Sized>(
        &self,
        alloc: &A,
        from: u64,
        end: u64,
    ) -> Option<(Range<u64>, Target)> {
        self.next_run_by(alloc, from, end, lend_target)
    }

    /// The first run of `from..end` over which lent pages go back to the
    /// host in one way: unmapped if they were unmapped before the share,
    /// mapped otherwise.
    pub fn next_return_run<A: TableAllocator + ?Sized>(
        &self,
        alloc: &A,
        from: u64,
        end: u64,
    ) -> Option<(Range<u64>, Target)> {
        self.next_run_by(alloc, from, end, return_target)
    }

    fn next_run_by<A: TableAllocator + ?Sized>(
        &self,
        alloc: &A,
        from: u64,
        end: u64,
        class: impl Fn(Descriptor) -> Target,
    ) -> Option<(Range<u64>, Target)> {
        if from >= end {
            return None;
        }
        let first = self.table.lookup(alloc, from).ok()?;
        let target = class(first.desc);
        let mut run_end = first.end().min(end);
        while run_end < end {
            let Ok(next) = self.table.lookup(alloc, run_end) else { break };
            if class(next.desc) != target {
                break;
            }
            run_end = next.end().min(end);
        }
        Some((from..run_end, target))
    }

    /// Writes a prepared change; returns the table pages it took from the
    /// caller's reservation. Cannot fail.
    pub fn commit<A, T>(&mut self, alloc: &mut A, tlb: &mut T, prepared: Prepared) -> usize
    where
        A: TableAllocator + ?Sized,
        T: Tlb + ?Sized,
    {
        self.table.commit(alloc, tlb, prepared)
    }

    /// Commits a change that an earlier [`prepare`](Self::prepare) of the
    /// same range and target counted, without counting it again (see
    /// [`PageTable::commit_counted`]); returns the table pages taken.
    pub fn commit_counted<A, T>(
        &mut self,
        alloc: &mut A,
        tlb: &mut T,
        range: Range<u64>,
        target: Target,
    ) -> Result<usize, Error>
    where
        A: TableAllocator + ?Sized,
        T: Tlb + ?Sized,
    {
        let leaf = self.leaf_for(&range, target)?;
        Ok(self.table.commit_counted(alloc, tlb, range, leaf)?)
    }

    /// Gives `range` the meaning `target` (prepare, reserve, commit).
    pub fn apply<A, T>(
        &mut self,
        alloc: &mut A,
        tlb: &mut T,
        range: Range<u64>,
        target: Target,
    ) -> Result<(), Error>
    where
        A: TableAllocator + ?Sized,
        T: Tlb + ?Sized,
    {
        let leaf = self.leaf_for(&range, target)?;
        Ok(self.table.update(alloc, tlb, range, leaf)?)
    }
}

/// What a range is about to become, for [`HostStage2::prepare`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Owned by someone, unmapped from the host. [`OwnerId::HOST`] gives
    /// the all-zero entry: the host's, mapped again on its next fault.
    Owner(OwnerId),
    /// Mapped to the host in this state.
    State(PageState),
    /// The host's and lent out (SharedOwned), remembering whether the
    /// host had it mapped before.
    Lent { unmapped_before: bool },
}

/// What lending a page keeps of how the host had it: see
/// [`HostStage2::next_lend_run`].
fn lend_target(desc: Descriptor) -> Target {
    let unmapped_before = !desc.is_valid() || desc.attrs().sw() & SW_UNMAPPED_BEFORE != 0;
    Target::Lent { unmapped_before }
}

/// How a lent page goes back to the host: see
/// [`HostStage2::next_return_run`].
fn return_target(desc: Descriptor) -> Target {
    if desc.is_valid() && desc.attrs().sw() & SW_UNMAPPED_BEFORE != 0 {
        Target::Owner(OwnerId::HOST)
    } else {
        Target::State(PageState::Owned)
    }
}

/// One page of the host stage-2, found by [`HostStage2::page`].
///
/// Returned by inlined functions, as [`pgtable::PageCursor`] is (why:
/// there).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostPage {
    /// What its entry says.
    pub info: PageInfo,
    /// [`HostStage2::maps_as_ram`], worked out once for the RAM check and
    /// the change.
    maps_as_ram: bool,
    cursor: PageCursor,
}

impl HostPage {
    /// The target that lends this page out, as
    /// [`HostStage2::next_lend_run`] would give it.
    #[must_use]
    pub fn lend_target(&self) -> Target {
        lend_target(self.cursor.entry.desc)
    }

    /// The target that gives this lent page back to the host alone, as
    /// [`HostStage2::next_return_run`] would give it.
    #[must_use]
    pub fn return_target(&self) -> Target {
        return_target(self.cursor.entry.desc)
    }
}

/// SW bit 2: a lent page the host had not mapped before (see the crate
/// docs).
const SW_UNMAPPED_BEFORE: u8 = 0b100;

/// A maximal run of pages with the same owner and host state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    pub range: Range<u64>,
    pub owner: Option<OwnerId>,
    pub host_state: PageState,
}

/// Iterator over ownership runs; see [`HostStage2::runs`]. A corrupt entry
/// ends the iteration with an `Err`.
#[derive(Debug)]
pub struct Runs<'a, A: ?Sized> {
    host: &'a HostStage2,
    leaves: pgtable::table::Leaves<'a, A>,
    pending: Option<Run>,
}

impl<A: TableAllocator + ?Sized> Iterator for Runs<'_, A> {
    type Item = Result<Run, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let Some(LeafRun { ipa, entry }) = self.leaves.next() else {
                return self.pending.take().map(Ok);
            };
            let info = match self.host.decode(entry.desc, ipa.start) {
                Ok(info) => info,
                Err(e) => return Some(Err(e)),
            };
            match &mut self.pending {
                Some(run) if run.owner == info.owner && run.host_state == info.host_state => {
                    run.range.end = ipa.end;
                }
                pending => {
                    let next = Run { range: ipa, owner: info.owner, host_state: info.host_state };
                    if let Some(done) = pending.replace(next) {
                        return Some(Ok(done));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
