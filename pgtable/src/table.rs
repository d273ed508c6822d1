//! One stage-2 translation table: lookups, range updates with the largest
//! leaves that fit, splitting, coalescing and break-before-make.

use core::ops::Range;

use crate::descriptor::{Descriptor, InvalidPayload, OA_MASK, S2Attrs};
use crate::mm::{ENTRIES_PER_TABLE, TableAllocator, TablePage};
use crate::{Error, PAGE_SIZE, PhysAddr, Stage2Config, Tlb, level_shift, level_size};

/// What a range update writes for every page of its range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leaf {
    /// Unmapped, with a software payload (zero for "nothing").
    Invalid(InvalidPayload),
    /// Mapped: IPA `start + n` translates to `oa + n`, with `attrs`.
    Mapped { oa: PhysAddr, attrs: S2Attrs },
}

/// The leaf descriptor that translates one address, and where it sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeafEntry {
    /// The descriptor (invalid, block or page).
    pub desc: Descriptor,
    /// Its level (0-3; invalid descriptors may sit at any level).
    pub level: u8,
    /// The first IPA it covers (aligned to its level's size).
    pub base: u64,
}

impl LeafEntry {
    /// One past the last IPA the descriptor covers.
    #[must_use]
    pub fn end(&self) -> u64 {
        self.base + level_size(self.level)
    }

    /// For a valid leaf, the output address `ipa` translates to.
    #[must_use]
    pub fn output_address(&self, ipa: u64) -> Option<PhysAddr> {
        self.desc.is_valid().then(|| PhysAddr(self.desc.oa().0 + (ipa - self.base)))
    }
}

/// The leaf that translates one page, found by [`PageTable::page`],
/// with the table that holds it.
///
/// [`PageTable::page`] and [`PageTable::prepare_page`], which return it and
/// what is built from it, are inlined into their callers: the EL2 target
/// (`aarch64-unknown-none-softfloat`) is strict-align, where LLVM moves a
/// value of more than a few words with a call to `memcpy`, and a one-page
/// transition used to spend about 190 instructions of its 1,600 on such
/// moves. Inlined, the value is built where it is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageCursor {
    /// The leaf that translates the page.
    pub entry: LeafEntry,
    ipa: u64,
    /// [`PageTable::generation`] when the cursor was taken: it is only
    /// followed at the same one.
    generation: u64,
    /// The table page that holds the leaf.
    table: PhysAddr,
}

impl PageCursor {
    /// The page's address.
    #[must_use]
    pub fn ipa(&self) -> u64 {
        self.ipa
    }
}

/// A stage-2 translation table rooted at a (possibly concatenated) root.
///
/// The table does not own an allocator or a TLB: both are passed to the
/// operations that need them, so that the caller's locks cover them.
#[derive(Debug)]
pub struct PageTable {
    config: Stage2Config,
    root: PhysAddr,
    /// Table pages in use below the root.
    tables: usize,
    /// Where the last fold scan that failed found a table not uniform
    /// (table page, entry). The next fold check of that table looks there
    /// first: a page shared again and again in a table that cannot fold
    /// then costs one probe, not a scan of 512 entries. Only ever a place
    /// to look: a mismatch found there is a real one, whatever the page
    /// holds now.
    fold_miss: Option<(PhysAddr, usize)>,
    /// Counts the writes to the table: a [`PageCursor`] taken at one
    /// generation is only followed again at the same one.
    generation: u64,
}

/// The state of one range update.
struct Update<'a, A: ?Sized, T: ?Sized> {
    alloc: &'a mut A,
    tlb: &'a mut T,
    start: u64,
    end: u64,
    leaf: Leaf,
    /// Whether this is the counting pass, which writes nothing.
    counting: bool,
    /// Whether tables that end up uniform are folded into one entry.
    fold: bool,
    /// Table pages the commit would take (counting) or took (commit).
    pages: usize,
    /// Table pages created minus table pages freed, in the commit pass.
    tables_delta: isize,
    /// Some write created or changed a translation and has not been
    /// published to the walker yet.
    needs_publish: bool,
    /// [`PageTable::fold_miss`], for the length of the update.
    fold_miss: Option<(PhysAddr, usize)>,
}

/// Where the descriptors of the table being walked come from.
#[derive(Clone, Copy)]
enum Source {
    /// A table in memory; `live` tells whether the walker can see it yet.
    Table { pa: PhysAddr, live: bool },
    /// (Counting pass only.) A table that does not exist yet: the split
    /// of the given leaf of the level above.
    Split(Descriptor),
}

impl PageTable {
    /// Takes over a root of `config.root_pages()` zeroed, contiguous pages,
    /// aligned to their total size, reachable through the allocator that
    /// is passed to every later call.
    pub fn new(config: Stage2Config, root: PhysAddr) -> Result<Self, Error> {
        config.vttbr(root, 0)?;
        Ok(Self { config, root, tables: 0, fold_miss: None, generation: 0 })
    }

    /// The geometry.
    #[must_use]
    pub fn config(&self) -> &Stage2Config {
        &self.config
    }

    /// The physical address of the root.
    #[must_use]
    pub fn root(&self) -> PhysAddr {
        self.root
    }

    /// Table pages below the root currently in use.
    #[must_use]
    pub fn table_pages(&self) -> usize {
        self.tables
    }

    /// Table pages in use, the root included.
    #[must_use]
    pub fn total_pages(&self) -> usize {
        self.tables + self.config.root_pages()
    }

    fn root_page<A: TableAllocator + ?Sized>(&self, alloc: &A, index: usize) -> (TablePage, usize) {
        let page = PhysAddr(self.root.0 + (index / ENTRIES_PER_TABLE) as u64 * PAGE_SIZE);
        (TablePage::new(alloc, page), index % ENTRIES_PER_TABLE)
    }

    /// The leaf descriptor that translates `ipa`.
    pub fn lookup<A: TableAllocator + ?Sized>(
        &self,
        alloc: &A,
        ipa: u64,
    ) -> Result<LeafEntry, Error> {
        self.descend(alloc, ipa, |_, _| {})
    }

    /// The descent of [`lookup`](Self::lookup), which shows `visit` each
    /// table page it reads an entry of, with that entry's level.
    #[inline(always)]
    fn descend<A: TableAllocator + ?Sized>(
        &self,
        alloc: &A,
        ipa: u64,
        mut visit: impl FnMut(u8, PhysAddr),
    ) -> Result<LeafEntry, Error> {
        if ipa >= self.config.ipa_limit() {
            return Err(Error::OutOfRange(ipa, ipa));
        }
        let mut level = self.config.start_level();
        let (mut page, mut index) = self.root_page(alloc, (ipa >> level_shift(level)) as usize);
        loop {
            let desc = page.get(index);
            visit(level, page.pa());
            if desc.is_leaf(level) {
                let base = ipa & !(level_size(level) - 1);
                return Ok(LeafEntry { desc, level, base });
            }
            level += 1;
            page = TablePage::new(alloc, desc.oa());
            index = ((ipa >> level_shift(level)) as usize) % ENTRIES_PER_TABLE;
        }
    }

    /// The leaf that translates the page at `ipa`, and the table it sits
    /// in. A change of that page alone
    /// ([`prepare_page`](Self::prepare_page)) that is one write of a
    /// page-level entry makes it there without descending again.
    #[inline(always)]
    pub fn page<A: TableAllocator + ?Sized>(
        &self,
        alloc: &A,
        ipa: u64,
    ) -> Result<PageCursor, Error> {
        let ipa = ipa & !(PAGE_SIZE - 1);
        let mut table = self.root;
        let entry = self.descend(alloc, ipa, |_, pa| table = pa)?;
        Ok(PageCursor { entry, ipa, generation: self.generation, table })
    }

    /// For a change of exactly one page that a page-level (level 3) entry
    /// translates: the entries from the root down to it. `None` for
    /// anything else.
    fn page_entry_path<A: TableAllocator + ?Sized>(
        &self,
        alloc: &A,
        range: &Range<u64>,
    ) -> Option<EntryPath> {
        if range.end - range.start != PAGE_SIZE {
            return None;
        }
        let start_level = self.config.start_level();
        let mut path = EntryPath { ipa: range.start, start_level, tables: [PhysAddr(0); 4] };
        let visit = |level: u8, pa| path.tables[usize::from(level - start_level)] = pa;
        let leaf = self.descend(alloc, range.start, visit).ok()?;
        (leaf.level == 3).then_some(path)
    }

    /// The leaves over `range`, in address order, each clipped to the
    /// range.
    pub fn leaves<'a, A: TableAllocator + ?Sized>(
        &'a self,
        alloc: &'a A,
        range: Range<u64>,
    ) -> Leaves<'a, A> {
        let end = range.end.min(self.config.ipa_limit());
        Leaves { table: self, alloc, next: range.start, end }
    }

    /// Maps `range` to the output range starting at `oa`, using the largest
    /// blocks that the alignment of both allows.
    pub fn map<A, T>(
        &mut self,
        alloc: &mut A,
        tlb: &mut T,
        range: Range<u64>,
        oa: PhysAddr,
        attrs: S2Attrs,
    ) -> Result<(), Error>
    where
        A: TableAllocator + ?Sized,
        T: Tlb + ?Sized,
    {
        self.update(alloc, tlb, range, Leaf::Mapped { oa, attrs })
    }

    /// Makes `range` invalid and stores `payload` in its descriptors, using
    /// the largest (block-level) invalid descriptors the range allows.
    pub fn annotate<A, T>(
        &mut self,
        alloc: &mut A,
        tlb: &mut T,
        range: Range<u64>,
        payload: InvalidPayload,
    ) -> Result<(), Error>
    where
        A: TableAllocator + ?Sized,
        T: Tlb + ?Sized,
    {
        self.update(alloc, tlb, range, Leaf::Invalid(payload))
    }

    /// Makes `range` invalid with an all-zero payload.
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
        self.update(alloc, tlb, range, Leaf::Invalid(InvalidPayload::ZERO))
    }

    /// Checks an update without changing anything and returns how many
    /// table pages it would take.
    pub fn pages_needed<A: TableAllocator + ?Sized>(
        &self,
        alloc: &mut A,
        range: Range<u64>,
        leaf: Leaf,
    ) -> Result<usize, Error> {
        Ok(self.prepare(alloc, range, leaf)?.pages)
    }

    /// The first half of an update: validates it and counts the table
    /// pages it will take, without changing anything. The caller reserves
    /// [`Prepared::pages`] (possibly together with other updates) and then
    /// calls [`commit`](Self::commit), which cannot fail.
    pub fn prepare<A: TableAllocator + ?Sized>(
        &self,
        alloc: &mut A,
        range: Range<u64>,
        leaf: Leaf,
    ) -> Result<Prepared, Error> {
        self.validate(&range, leaf)?;
        // One page-level entry changes in place: no table to split. A
        // plain lookup tells; the commit finds the entry itself. Callers
        // that hold a cursor use `prepare_page`.
        if range.end - range.start == PAGE_SIZE
            && self.lookup(&*alloc, range.start).is_ok_and(|leaf| leaf.level == 3)
        {
            return Ok(Prepared { range, leaf, pages: 0 });
        }
        Ok(self.count(alloc, range, leaf))
    }

    /// [`prepare`](Self::prepare) for a change of the one page `cursor`
    /// found, which it does not look for again. A change of a page-level
    /// entry that is one descriptor write and nothing else comes back as
    /// [`PageChange::InPlace`]; any other comes back as
    /// [`PageChange::Prepared`], whose commit finds the page again (a
    /// break-before-make or a fold check costs more than that lookup).
    #[inline(always)]
    pub fn prepare_page<A: TableAllocator + ?Sized>(
        &self,
        alloc: &mut A,
        cursor: &PageCursor,
        leaf: Leaf,
    ) -> Result<PageChange, Error> {
        let range = cursor.ipa()..cursor.ipa() + PAGE_SIZE;
        self.validate(&range, leaf)?;
        if cursor.entry.level != 3 || cursor.generation != self.generation {
            return Ok(PageChange::Prepared(self.count(alloc, range, leaf)));
        }
        Ok(match self.in_place(&*alloc, cursor, leaf) {
            Some(write) => PageChange::InPlace(write),
            None => PageChange::Prepared(Prepared { range, leaf, pages: 0 }),
        })
    }

    /// The one write that changing the page-level entry `cursor` found
    /// (at this generation) to `leaf` comes down to, if that is all the
    /// commit would do: no break-before-make, and no table that could fold
    /// afterwards (the neighbour check and the first probes of the fold
    /// check, made on the table as the write leaves it).
    #[inline(always)]
    fn in_place<A: TableAllocator + ?Sized>(
        &self,
        alloc: &A,
        cursor: &PageCursor,
        leaf: Leaf,
    ) -> Option<InPlace> {
        let page = TablePage::new(alloc, cursor.table);
        let slot = ((cursor.ipa >> level_shift(3)) as usize) % ENTRIES_PER_TABLE;
        let entry = Entry { page, slot, base: cursor.ipa, level: 3, live: true };
        let old = page.get(slot);
        let new = leaf.descriptor(cursor.ipa, entry.base, 3)?;
        if old.needs_bbm(new, 3) {
            return None;
        }
        if neighbour_continues(entry, new) && self.config.start_level() < 3 {
            let after = |i: usize| if i == entry.slot { new } else { entry.page.get(i) };
            let missed = fold_miss_in(self.fold_miss, entry.page.pa());
            if fold_probes(after, 3, entry.slot, missed).is_some() {
                return None;
            }
        }
        let table = entry.page.pa();
        Some(InPlace {
            table,
            slot: entry.slot,
            base: entry.base,
            old,
            new,
            generation: self.generation,
        })
    }

    /// Makes the write that [`prepare_page`](Self::prepare_page) returned
    /// as [`PageChange::InPlace`]. Cannot fail; takes no table pages.
    ///
    /// # Panics
    ///
    /// If the table changed after the write was prepared: the entry it
    /// names may be gone. Every caller prepares and commits under one
    /// lock, so that is a bug in the caller.
    #[inline(always)]
    pub fn commit_in_place<A, T>(&mut self, alloc: &A, tlb: &mut T, write: InPlace)
    where
        A: TableAllocator + ?Sized,
        T: Tlb + ?Sized,
    {
        assert!(write.generation == self.generation, "pgtable: stale in-place write");
        self.generation = self.generation.wrapping_add(1);
        if write.old == write.new {
            return;
        }
        let page = TablePage::new(alloc, write.table);
        let entry = Entry { page, slot: write.slot, base: write.base, level: 3, live: true };
        if replace_entry(tlb, entry, write.old, write.new) {
            tlb.publish();
        }
    }

    /// The counting pass of a validated update.
    fn count<A: TableAllocator + ?Sized>(
        &self,
        alloc: &mut A,
        range: Range<u64>,
        leaf: Leaf,
    ) -> Prepared {
        let mut no_tlb = NoTlb;
        let mut upd = Update::new(alloc, &mut no_tlb, &range, leaf, true);
        upd.walk(
            self.config.start_level(),
            Source::Table { pa: self.root, live: true },
            0,
            self.config.root_entries(),
        );
        Prepared { range, leaf, pages: upd.pages }
    }

    /// The second half of an update: writes a prepared change and returns
    /// the number of table pages it took from the reservation.
    ///
    /// The allocator must hold a reservation of at least `prepared.pages`
    /// pages. Several updates may share one reservation of the sum of
    /// their counts when they all write the same [`Leaf`] over disjoint
    /// ranges of a table that nothing else changes in between: one such
    /// update can only fold tables into that same leaf, which never makes
    /// another need more pages than counted.
    pub fn commit<A, T>(&mut self, alloc: &mut A, tlb: &mut T, prepared: Prepared) -> usize
    where
        A: TableAllocator + ?Sized,
        T: Tlb + ?Sized,
    {
        self.commit_folding(alloc, tlb, prepared, true)
    }

    /// Validates and writes `leaf` over `range` in one pass, for a change
    /// an earlier [`prepare`](Self::prepare) of the same range and leaf
    /// counted and the caller reserved; returns the table pages it took.
    /// Saves the counting walk a second `prepare` would make. A validation
    /// error is returned before anything changes; taking more pages than
    /// are reserved panics in the allocator.
    pub fn commit_counted<A, T>(
        &mut self,
        alloc: &mut A,
        tlb: &mut T,
        range: Range<u64>,
        leaf: Leaf,
    ) -> Result<usize, Error>
    where
        A: TableAllocator + ?Sized,
        T: Tlb + ?Sized,
    {
        self.validate(&range, leaf)?;
        Ok(self.commit_folding(alloc, tlb, Prepared { range, leaf, pages: 0 }, true))
    }

    fn commit_folding<A, T>(
        &mut self,
        alloc: &mut A,
        tlb: &mut T,
        prepared: Prepared,
        fold: bool,
    ) -> usize
    where
        A: TableAllocator + ?Sized,
        T: Tlb + ?Sized,
    {
        let path = self.page_entry_path(&*alloc, &prepared.range);
        self.generation = self.generation.wrapping_add(1);
        let mut upd = Update::new(alloc, tlb, &prepared.range, prepared.leaf, false);
        upd.fold = fold;
        upd.fold_miss = self.fold_miss;
        match path {
            Some(path) => upd.update_page_entry(&path),
            None => upd.walk(
                self.config.start_level(),
                Source::Table { pa: self.root, live: true },
                0,
                self.config.root_entries(),
            ),
        }
        if upd.needs_publish {
            upd.tlb.publish();
        }
        self.tables = self.tables.wrapping_add_signed(upd.tables_delta);
        self.fold_miss = upd.fold_miss;
        upd.pages
    }

    /// Writes `leaf` over `range`: [`prepare`](Self::prepare), reserve,
    /// [`commit`](Self::commit). Any error is returned before a single
    /// descriptor changes.
    pub fn update<A, T>(
        &mut self,
        alloc: &mut A,
        tlb: &mut T,
        range: Range<u64>,
        leaf: Leaf,
    ) -> Result<(), Error>
    where
        A: TableAllocator + ?Sized,
        T: Tlb + ?Sized,
    {
        self.update_folding(alloc, tlb, range, leaf, true)
    }

    /// [`update`](Self::update), leaving in place the tables that end up
    /// uniform: for a change on a hot path (a host fault) that only ever
    /// makes entries agree with ones already there, whose tables the next
    /// [`update`](Self::update) of the range folds.
    pub fn update_unfolded<A, T>(
        &mut self,
        alloc: &mut A,
        tlb: &mut T,
        range: Range<u64>,
        leaf: Leaf,
    ) -> Result<(), Error>
    where
        A: TableAllocator + ?Sized,
        T: Tlb + ?Sized,
    {
        self.update_folding(alloc, tlb, range, leaf, false)
    }

    fn update_folding<A, T>(
        &mut self,
        alloc: &mut A,
        tlb: &mut T,
        range: Range<u64>,
        leaf: Leaf,
        fold: bool,
    ) -> Result<(), Error>
    where
        A: TableAllocator + ?Sized,
        T: Tlb + ?Sized,
    {
        let prepared = self.prepare(alloc, range, leaf)?;
        let reserved = prepared.pages;
        if reserved > 0 {
            alloc.reserve(reserved)?;
        }
        let taken = self.commit_folding(alloc, tlb, prepared, fold);
        // The counting pass and the commit make the same decisions, so
        // this is zero; returning the rest keeps the pool exact regardless.
        if reserved > taken {
            alloc.unreserve(reserved - taken);
        }
        Ok(())
    }

    #[inline(always)]
    fn validate(&self, range: &Range<u64>, leaf: Leaf) -> Result<(), Error> {
        let Range { start, end } = *range;
        if start >= end || end > self.config.ipa_limit() {
            return Err(Error::OutOfRange(start, end));
        }
        if start % PAGE_SIZE != 0 || end % PAGE_SIZE != 0 {
            return Err(Error::Misaligned(if start % PAGE_SIZE != 0 { start } else { end }));
        }
        if let Leaf::Mapped { oa, .. } = leaf {
            if oa.0 % PAGE_SIZE != 0 {
                return Err(Error::Misaligned(oa.0));
            }
            let oa_end = oa.0.checked_add(end - start).ok_or(Error::OutOfRange(oa.0, u64::MAX))?;
            if oa_end > OA_MASK + PAGE_SIZE {
                return Err(Error::OutOfRange(oa.0, oa_end));
            }
        }
        Ok(())
    }

    /// Calls `f` with every table page (root pages first) and its level.
    pub fn for_each_table_page<A: TableAllocator + ?Sized>(
        &self,
        alloc: &A,
        mut f: impl FnMut(PhysAddr, u8),
    ) {
        let level = self.config.start_level();
        for i in 0..self.config.root_pages() {
            f(PhysAddr(self.root.0 + i as u64 * PAGE_SIZE), level);
        }
        for index in 0..self.config.root_entries() {
            let (page, i) = self.root_page(alloc, index);
            let desc = page.get(i);
            if desc.is_table(level) {
                visit_subtree(alloc, desc.oa(), level + 1, &mut f);
            }
        }
    }

    /// Frees every table page below the root and zeroes the root. The
    /// caller must have made the regime unreachable (or invalidated it
    /// wholesale) before the pages are reused.
    pub fn clear<A, T>(&mut self, alloc: &mut A, tlb: &mut T)
    where
        A: TableAllocator + ?Sized,
        T: Tlb + ?Sized,
    {
        self.generation = self.generation.wrapping_add(1);
        let level = self.config.start_level();
        let mut freed = 0;
        for index in 0..self.config.root_entries() {
            let (page, i) = self.root_page(alloc, index);
            let desc = page.get(i);
            if desc.bits() == 0 {
                continue;
            }
            page.set(i, Descriptor::ZERO);
            tlb.observe_write(
                page.entry_pa(i),
                (index as u64) << level_shift(level),
                level,
                desc.bits(),
                0,
            );
            if desc.is_valid() {
                tlb.invalidate((index as u64) << level_shift(level), level_size(level), level);
            }
            if desc.is_table(level) {
                freed += free_subtree(alloc, desc.oa(), level + 1);
            }
        }
        self.tables -= freed;
    }
}

fn visit_subtree<A: TableAllocator + ?Sized>(
    alloc: &A,
    pa: PhysAddr,
    level: u8,
    f: &mut impl FnMut(PhysAddr, u8),
) {
    f(pa, level);
    let page = TablePage::new(alloc, pa);
    for i in 0..ENTRIES_PER_TABLE {
        let desc = page.get(i);
        if desc.is_table(level) {
            visit_subtree(alloc, desc.oa(), level + 1, f);
        }
    }
}

/// Frees the table at `pa` (at `level`) and every table below it; returns
/// how many pages were freed. Recursion depth is bounded by the 4 levels.
fn free_subtree<A: TableAllocator + ?Sized>(alloc: &mut A, pa: PhysAddr, level: u8) -> usize {
    let mut freed = 1;
    if level < 3 {
        let page = TablePage::new(alloc, pa);
        for i in 0..ENTRIES_PER_TABLE {
            let desc = page.get(i);
            if desc.is_table(level) {
                freed += free_subtree(alloc, desc.oa(), level + 1);
            }
        }
    }
    alloc.free(pa);
    freed
}

/// What an entry being replaced points to, when it is a table.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Subtree {
    /// Anything: walk it for tables to free.
    Unknown,
    /// Only leaves (a table that just proved uniform): one page to free.
    LeavesOnly,
}

/// The descriptor that entry `index` of the table splitting `parent` (a
/// leaf at `parent_level`) holds.
fn split_child(parent: Descriptor, parent_level: u8, index: usize) -> Descriptor {
    if !parent.is_valid() {
        return parent;
    }
    let level = parent_level + 1;
    let oa = PhysAddr(parent.oa().0 + index as u64 * level_size(level));
    // A valid parent leaf is a block at level 1 or 2, so the child level
    // is 2 or 3 and its offsets are aligned to the child size.
    Descriptor::leaf(level, oa, parent.attrs()).unwrap_or(Descriptor::ZERO)
}

impl Leaf {
    /// The output address the leaf gives `ipa`, in an update that starts
    /// at `start`. `None` if it would fall below zero.
    fn oa_for(oa: PhysAddr, start: u64, ipa: u64) -> Option<u64> {
        if ipa >= start { Some(oa.0 + (ipa - start)) } else { oa.0.checked_sub(start - ipa) }
    }

    /// The descriptor this leaf gives a whole entry at `level` based at
    /// `base`, or `None` when no single leaf at that level can express it.
    #[inline(always)]
    fn descriptor(&self, start: u64, base: u64, level: u8) -> Option<Descriptor> {
        match *self {
            Leaf::Invalid(payload) => Some(Descriptor::invalid(payload)),
            Leaf::Mapped { oa, attrs } => {
                Descriptor::leaf(level, PhysAddr(Self::oa_for(oa, start, base)?), attrs)
            }
        }
    }
}

/// One descriptor slot being updated.
#[derive(Clone, Copy)]
struct Entry {
    page: TablePage,
    slot: usize,
    /// The first IPA the descriptor covers.
    base: u64,
    level: u8,
    /// Whether the walker can see the table (false while a split table
    /// is being filled in).
    live: bool,
}

/// The table pages from the root down to a page's page-level entry; see
/// [`PageTable::page_entry_path`]. The slots follow from the address, and
/// the entries are read again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct EntryPath {
    ipa: u64,
    start_level: u8,
    /// The table page holding each level's entry, from the start level.
    tables: [PhysAddr; 4],
}

impl EntryPath {
    /// The entry at `level` (the start level up to the leaf's) and what
    /// it holds.
    #[inline(always)]
    fn entry<A: TableAllocator + ?Sized>(&self, alloc: &A, level: u8) -> (Entry, Descriptor) {
        let page = TablePage::new(alloc, self.tables[usize::from(level - self.start_level)]);
        // In a concatenated root, the page was picked by the high bits.
        let slot = ((self.ipa >> level_shift(level)) as usize) % ENTRIES_PER_TABLE;
        let base = self.ipa & !(level_size(level) - 1);
        (Entry { page, slot, base, level, live: true }, page.get(slot))
    }
}

/// A validated update and the table pages it needs; see
/// [`PageTable::prepare`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use = "a prepared update does nothing until it is committed"]
pub struct Prepared {
    range: Range<u64>,
    leaf: Leaf,
    /// Table pages the commit will take at most.
    pub pages: usize,
}

/// A one-page change worked out by [`PageTable::prepare_page`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use = "a prepared change does nothing until it is committed"]
pub enum PageChange {
    /// One descriptor write and nothing else:
    /// [`PageTable::commit_in_place`].
    InPlace(InPlace),
    /// Anything more: [`PageTable::commit`].
    Prepared(Prepared),
}

impl PageChange {
    /// Table pages the commit will take at most.
    #[must_use]
    pub fn pages(&self) -> usize {
        match self {
            PageChange::InPlace(_) => 0,
            PageChange::Prepared(prepared) => prepared.pages,
        }
    }
}

/// The single write of a page-level entry that a one-page change comes
/// down to; see [`PageTable::prepare_page`]. Committed without setting up
/// a walk, and small, like [`Prepared`], so that the strict-align EL2
/// target moves it with a few loads and stores rather than `memcpy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "a prepared change does nothing until it is committed"]
pub struct InPlace {
    /// The page-level table holding the entry.
    table: PhysAddr,
    slot: usize,
    /// The page the entry translates.
    base: u64,
    old: Descriptor,
    new: Descriptor,
    /// [`PageTable::generation`] when it was prepared.
    generation: u64,
}

impl<'a, A: TableAllocator + ?Sized, T: Tlb + ?Sized> Update<'a, A, T> {
    fn new(
        alloc: &'a mut A,
        tlb: &'a mut T,
        range: &Range<u64>,
        leaf: Leaf,
        counting: bool,
    ) -> Self {
        Self {
            alloc,
            tlb,
            start: range.start,
            end: range.end,
            leaf,
            counting,
            fold: true,
            pages: 0,
            tables_delta: 0,
            needs_publish: false,
            fold_miss: None,
        }
    }

    /// Applies a one-page update to the page-level entry at the end of
    /// `path`, then folds the tables above it as the general walk does on
    /// its way back up. A table that does not fold still holds the table
    /// below it, so none above it can fold either: stop there.
    fn update_page_entry(&mut self, path: &EntryPath) {
        let (entry, old) = path.entry(&*self.alloc, 3);
        let now = match self.leaf.descriptor(self.start, entry.base, entry.level) {
            Some(new) if old != new => {
                self.replace(entry, old, new);
                new
            }
            _ => old,
        };
        if self.fold && neighbour_continues(entry, now) {
            for level in (path.start_level..3).rev() {
                let (table_entry, table) = path.entry(&*self.alloc, level);
                if !self.try_coalesce(table_entry, table) {
                    break;
                }
            }
        }
    }

    /// Applies the update to the entries of one table (bounded recursion:
    /// one frame per level, at most four).
    fn walk(&mut self, level: u8, source: Source, table_base: u64, entries: usize) {
        let size = level_size(level);
        let first = ((self.start.max(table_base) - table_base) / size) as usize;
        let last = (((self.end - 1 - table_base) / size) as usize).min(entries - 1);
        for index in first..=last {
            let base = table_base + index as u64 * size;
            let (entry, old) = match source {
                Source::Table { pa, live } => {
                    let page_pa = PhysAddr(pa.0 + (index / ENTRIES_PER_TABLE) as u64 * PAGE_SIZE);
                    let page = TablePage::new(&*self.alloc, page_pa);
                    let slot = index % ENTRIES_PER_TABLE;
                    (Some(Entry { page, slot, base, level, live }), page.get(slot))
                }
                Source::Split(parent) => (None, split_child(parent, level - 1, index)),
            };
            let covers_entry = self.start <= base && base + size <= self.end;
            let whole =
                covers_entry.then(|| self.leaf.descriptor(self.start, base, level)).flatten();
            if let Some(new) = whole {
                if let (Some(entry), false) = (entry, self.counting || old == new) {
                    self.replace(entry, old, new);
                }
                continue;
            }
            // Only part of this entry changes, or no single leaf at this
            // level can express the change: work one level down.
            if old.is_table(level) {
                let live = entry.is_some_and(|e| e.live);
                self.walk(level + 1, Source::Table { pa: old.oa(), live }, base, ENTRIES_PER_TABLE);
                if let (Some(entry), false, true) = (entry, self.counting, self.fold) {
                    self.try_coalesce(entry, old);
                }
            } else if !self.leaf_already_gives(old, base) {
                match entry {
                    Some(entry) if !self.counting => self.split(entry, old),
                    _ => {
                        self.pages += 1;
                        self.walk(level + 1, Source::Split(old), base, ENTRIES_PER_TABLE);
                    }
                }
            }
        }
    }

    /// Whether the leaf `old` (based at `base`) already translates every
    /// address of the update inside it the way the update would.
    fn leaf_already_gives(&self, old: Descriptor, base: u64) -> bool {
        match self.leaf {
            Leaf::Invalid(payload) => old == Descriptor::invalid(payload),
            Leaf::Mapped { oa, attrs } => {
                old.is_valid()
                    && old.attrs() == S2Attrs::from_bits_retain(attrs.bits() & S2Attrs::MASK)
                    && Leaf::oa_for(oa, self.start, base) == Some(old.oa().0)
            }
        }
    }

    fn write(&mut self, e: Entry, old: Descriptor, new: Descriptor) {
        write_entry(self.tlb, e, old, new);
    }

    /// Replaces a whole entry, with break-before-make when a live
    /// translation changes, and frees the tables the old entry pointed to.
    fn replace(&mut self, e: Entry, old: Descriptor, new: Descriptor) {
        self.replace_subtree(e, old, new, Subtree::Unknown);
    }

    /// [`replace`](Self::replace), told what `old` points to.
    fn replace_subtree(&mut self, e: Entry, old: Descriptor, new: Descriptor, subtree: Subtree) {
        self.needs_publish |= replace_entry(self.tlb, e, old, new);
        // Only after the invalidation above can no walker still be using
        // the old subtree.
        if old.is_table(e.level) {
            let freed = match subtree {
                Subtree::LeavesOnly => {
                    self.alloc.free(old.oa());
                    1
                }
                Subtree::Unknown => free_subtree(self.alloc, old.oa(), e.level + 1),
            };
            self.tables_delta -= freed as isize;
        }
    }

    /// Replaces the leaf `old` with a table holding its 512 pieces, applies
    /// the update to that table while no walker can see it, then installs
    /// it with a single break-before-make.
    fn split(&mut self, e: Entry, old: Descriptor) {
        // Fresh pages are zeroed: splitting an all-zero entry writes nothing;
        // any other split writes all 512 entries, so the page need not be.
        let new_pa =
            if old.bits() == 0 { self.alloc.take() } else { self.alloc.take_for_overwrite() };
        self.pages += 1;
        self.tables_delta += 1;
        if old.bits() != 0 {
            let step = if old.is_valid() { level_size(e.level + 1) } else { 0 };
            TablePage::new(&*self.alloc, new_pa).fill(split_child(old, e.level, 0).bits(), step);
        }
        let offline = Source::Table { pa: new_pa, live: false };
        self.walk(e.level + 1, offline, e.base, ENTRIES_PER_TABLE);
        let table = Descriptor::table(new_pa);
        if e.live && old.is_valid() {
            self.write(e, old, Descriptor::ZERO);
            self.tlb.invalidate(e.base, level_size(e.level), e.level);
            self.write(e, Descriptor::ZERO, table);
        } else {
            self.write(e, old, table);
        }
        self.needs_publish |= e.live;
    }

    /// If every entry of the table `old` points to now says the same
    /// thing, replaces the table with one leaf and frees it.
    fn try_coalesce(&mut self, e: Entry, old: Descriptor) -> bool {
        let child_level = e.level + 1;
        let child = TablePage::new(&*self.alloc, old.oa());
        let written = ((self.start.max(e.base) - e.base) / level_size(child_level)) as usize;
        let missed = fold_miss_in(self.fold_miss, old.oa());
        let Some((first, step)) = fold_probes(|i| child.get(i), child_level, written, missed)
        else {
            return false;
        };
        // Built only now: most checks end at the first probe.
        let merged = if first.is_valid() {
            match Descriptor::leaf(e.level, first.oa(), first.attrs()) {
                Some(block) => block,
                None => return false,
            }
        } else {
            first
        };
        if let Some(index) = child.first_mismatch(first.bits(), step) {
            self.fold_miss = Some((old.oa(), index));
            return false;
        }
        // Every entry is the leaf (or invalid entry) `expect` says, so no
        // table hangs below this one.
        self.replace_subtree(e, old, merged, Subtree::LeavesOnly);
        true
    }
}

/// Writes one descriptor, and shows a live write to the TLB's observer.
#[inline(always)]
fn write_entry<T: Tlb + ?Sized>(tlb: &mut T, e: Entry, old: Descriptor, new: Descriptor) {
    e.page.set(e.slot, new);
    if e.live {
        tlb.observe_write(e.page.entry_pa(e.slot), e.base, e.level, old.bits(), new.bits());
    }
}

/// Replaces a whole entry, with break-before-make when a live translation
/// changes; whether the new translation still has to be published.
#[inline(always)]
fn replace_entry<T: Tlb + ?Sized>(tlb: &mut T, e: Entry, old: Descriptor, new: Descriptor) -> bool {
    let size = level_size(e.level);
    if e.live && old.is_valid() {
        if !new.is_valid() {
            write_entry(tlb, e, old, new);
            tlb.invalidate(e.base, size, e.level);
            false
        } else if old.needs_bbm(new, e.level) {
            write_entry(tlb, e, old, Descriptor::ZERO);
            tlb.invalidate(e.base, size, e.level);
            write_entry(tlb, e, Descriptor::ZERO, new);
            true
        } else {
            write_entry(tlb, e, old, new);
            true
        }
    } else {
        write_entry(tlb, e, old, new);
        e.live && new.is_valid()
    }
}

/// Whether the entry next to `e` continues `now` (the same invalid entry,
/// or the next page of the same mapping): a page-level table folds only
/// if every entry continues the one written, and the neighbour rules most
/// changes out with one read.
#[inline(always)]
fn neighbour_continues(e: Entry, now: Descriptor) -> bool {
    let neighbour = e.slot ^ 1;
    let step = if now.is_valid() { PAGE_SIZE } else { 0 };
    let continued = if neighbour > e.slot {
        now.bits().wrapping_add(step)
    } else {
        now.bits().wrapping_sub(step)
    };
    e.page.get(neighbour).bits() == continued
}

/// [`PageTable::fold_miss`]'s entry for the table at `table`, or the last
/// entry if it names another table.
#[inline]
fn fold_miss_in(fold_miss: Option<(PhysAddr, usize)>, table: PhysAddr) -> usize {
    match fold_miss {
        Some((pa, index)) if pa == table => index,
        _ => ENTRIES_PER_TABLE - 1,
    }
}

/// The cheap rejections before a full fold scan of a table at `level`
/// whose entry `i` is `entry(i)`: the entry a change wrote (a change that
/// makes the table uniform must make it agree with the rest; most changes
/// do not), where the last failed scan of this table stopped, and the far
/// end must each be `first + i × step`. The first entry and the step, if
/// they all are.
#[inline]
fn fold_probes(
    entry: impl Fn(usize) -> Descriptor,
    level: u8,
    written: usize,
    missed: usize,
) -> Option<(Descriptor, u64)> {
    let first = entry(0);
    if first.is_table(level) {
        return None;
    }
    let step = if first.is_valid() { level_size(level) } else { 0 };
    for probe in [written.min(ENTRIES_PER_TABLE - 1), missed, ENTRIES_PER_TABLE - 1] {
        if entry(probe).bits() != first.bits() + probe as u64 * step {
            return None;
        }
    }
    Some((first, step))
}

/// A [`Tlb`] for the counting pass, which never writes.
struct NoTlb;

impl Tlb for NoTlb {
    fn invalidate(&mut self, _ipa: u64, _size: u64, _level: u8) {}
    fn publish(&mut self) {}
}

/// Iterator over the leaves of a range; see [`PageTable::leaves`].
#[derive(Debug)]
pub struct Leaves<'a, A: ?Sized> {
    table: &'a PageTable,
    alloc: &'a A,
    next: u64,
    end: u64,
}

/// One leaf, clipped to the range asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafRun {
    /// The part of the IPA space this run covers.
    pub ipa: Range<u64>,
    /// The descriptor, its level and the first IPA it covers.
    pub entry: LeafEntry,
}

impl<A: TableAllocator + ?Sized> Iterator for Leaves<'_, A> {
    type Item = LeafRun;

    fn next(&mut self) -> Option<LeafRun> {
        if self.next >= self.end {
            return None;
        }
        let entry = self.table.lookup(self.alloc, self.next).ok()?;
        let end = entry.end().min(self.end);
        let run = LeafRun { ipa: self.next..end, entry };
        self.next = end;
        Some(run)
    }
}

impl core::fmt::Debug for TablePage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "TablePage({:#x})", self.pa().0)
    }
}

#[cfg(test)]
mod tests;
