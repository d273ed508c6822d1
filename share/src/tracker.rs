//! The tracker: the parties, their locks, and one function per transition.

use core::ops::Range;

use ownership::{FaultOutcome, HostPage, HostStage2, OwnerId, PageInfo, PageState, Target};
use pgtable::{
    InPlace, InvalidPayload, Leaf, PAGE_SIZE, PageChange, PhysAddr, Prepared, S2Attrs,
    Stage2Config, TableAllocator,
};
use spin::mutex::{Mutex, MutexGuard};

/// A lock of platform `P`, and its guard.
type Lock<T, P> = Mutex<T, <P as Platform>::Relax>;
type Guard<'a, T, P> = MutexGuard<'a, T, <P as Platform>::Relax>;

use crate::guest::{GuestAccess, GuestStage2, Half, Lifecycle, RIPAS_RAM, page_range};
use crate::slot::Slot;
use crate::spec::Call;
use crate::{Errno, HypSide, PageMeta, Platform};

#[cfg(feature = "ghost")]
mod ghosted;
#[cfg(feature = "ghost")]
pub use ghosted::GhostStats;

/// How many guests can exist at once.
pub const MAX_GUESTS: usize = 32;

/// The host's side: its stage-2 (the rmap), the pool its tables come
/// from, and the per-page counters. Reached only through the host lock, so
/// a `&Host` proves the lock is held.
struct Host<P: Platform> {
    s2: HostStage2,
    alloc: P::HostAlloc,
    tlb: P::HostTlb,
    meta: P::Meta,
    /// Attributes of guests' RAM mappings.
    guest_ram: S2Attrs,
    /// Boot-time set-up is over.
    sealed: bool,
}

/// One protected guest.
pub struct Guest<P: Platform> {
    s2: GuestStage2,
    alloc: P::GuestAlloc,
    tlb: P::GuestTlb,
    lifecycle: Lifecycle,
}

impl<P: Platform> Guest<P> {
    /// Gives back the memory the guest's tables lived in, after teardown.
    pub fn into_parts(self) -> (P::GuestAlloc, PhysAddr) {
        (self.alloc, self.s2.table.root())
    }
}

impl<P: Platform> core::fmt::Debug for Guest<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Guest").field("s2", &self.s2).field("lifecycle", &self.lifecycle).finish()
    }
}

/// What a host access to a physical address does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostAccess {
    /// The access translates (after mapping it, if it was not yet).
    Ok,
    /// The page belongs to `owner`: the host takes an abort.
    Fault { owner: OwnerId },
}

/// Result of a guest access; re-exported from the guest module.
pub type Access = GuestAccess;

/// Pages of RAM by owner and state, from the host stage-2: for
/// conservation checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// The host's, not lent.
    pub host: u64,
    /// The host's, lent to the hyp or guests.
    pub host_lent: u64,
    /// The hyp's.
    pub hyp: u64,
    /// Guests' (lent to the host or not).
    pub guests: u64,
    /// Lent to the host by a guest.
    pub borrowed: u64,
}

/// Figures about the host stage-2, for the state-query hypercall.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Host stage-2 table pages in use, the root included.
    pub host_table_pages: u64,
    /// Leaf descriptors of the host stage-2 at each level (valid or not,
    /// zero ones excluded).
    pub host_leaves: [u64; 4],
    /// Host stage-2 faults handled.
    pub host_faults: u64,
}

/// What the host lock protects: the host's side, and the hyp's. Every
/// call that reaches the hyp's side has the host lock already (the hyp
/// only takes pages from the host and gives them back), so a hyp lock of
/// its own, always taken inside the host's, would exclude nothing more.
struct HostAndHyp<P: Platform> {
    host: Host<P>,
    hyp: P::Hyp,
}

/// The ownership tracker: the host (with the hyp) and each guest behind
/// a lock of its own, taken in the order host → guest.
pub struct Tracker<P: Platform> {
    /// Empty until [`Tracker::install`]: a tracker is a plain `static` at
    /// EL2, built in place (the EL2 stack is too small to build it on).
    host: Lock<Slot<HostAndHyp<P>>, P>,
    guests: [Lock<Slot<Guest<P>>, P>; MAX_GUESTS],
    host_faults: core::sync::atomic::AtomicU64,
    /// Taken before the host lock by every transition when ghost checking
    /// is on.
    #[cfg(feature = "ghost")]
    ghost: Lock<ghosted::GhostState, P>,
    /// Ghost checking switched off (see [`Tracker::set_ghost_checking`]);
    /// zero, so on, in a fresh tracker.
    #[cfg(feature = "ghost")]
    ghost_off: core::sync::atomic::AtomicBool,
}

/// The host lock, held on an installed tracker; derefs to the host.
/// Every deref checks that the slot is full: a transition that goes on to
/// use the host many times binds `&mut *held` (or [`split`](Self::split))
/// once.
struct HostGuard<'a, P: Platform>(Guard<'a, Slot<HostAndHyp<P>>, P>);

impl<P: Platform> HostGuard<'_, P> {
    fn parties(&self) -> &HostAndHyp<P> {
        // Only built around a full slot (see `Tracker::lock_host`).
        self.0.as_ref().unwrap_or_else(|| unreachable!())
    }

    /// The host and the hyp, both held by this lock.
    fn split(&mut self) -> (&mut Host<P>, &mut P::Hyp) {
        let parties = self.0.as_mut().unwrap_or_else(|| unreachable!());
        (&mut parties.host, &mut parties.hyp)
    }

    /// The host and the hyp, read-only.
    fn parts(&self) -> (&Host<P>, &P::Hyp) {
        let parties = self.parties();
        (&parties.host, &parties.hyp)
    }

    /// The hyp's side, read-only.
    fn hyp(&self) -> &P::Hyp {
        &self.parties().hyp
    }
}

impl<P: Platform> core::ops::Deref for HostGuard<'_, P> {
    type Target = Host<P>;
    fn deref(&self) -> &Host<P> {
        &self.parties().host
    }
}

impl<P: Platform> core::ops::DerefMut for HostGuard<'_, P> {
    fn deref_mut(&mut self) -> &mut Host<P> {
        self.split().0
    }
}

impl<P: Platform> core::fmt::Debug for Tracker<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Tracker").finish_non_exhaustive()
    }
}

/// The first maximal run of pages in `from..range.end` for which
/// `pred(pa)` holds.
fn next_run(range: &Range<u64>, from: u64, pred: impl Fn(u64) -> bool) -> Option<Range<u64>> {
    let mut pa = from;
    while pa < range.end && !pred(pa) {
        pa += PAGE_SIZE;
    }
    let start = pa;
    while pa < range.end && pred(pa) {
        pa += PAGE_SIZE;
    }
    (start < pa).then_some(start..pa)
}

#[inline]
fn pages(range: &Range<u64>) -> impl Iterator<Item = u64> {
    (range.start..range.end).step_by(PAGE_SIZE as usize)
}

/// A commit step found the state different from what its checks saw. The
/// checks and the commit run under the same locks, so this is a bug in
/// the tracker: stop, as pKVM's `BUG_ON` would, rather than go on with a
/// half-made change.
#[cold]
fn commit_bug(what: &str, e: impl core::fmt::Debug) -> ! {
    panic!("s2rmap: {what} failed during commit: {e:?}")
}

impl<P: Platform> Host<P> {
    /// [`PageMeta::pins`] of `pa`, which the caller has checked to be RAM.
    #[inline(always)]
    fn pins(&self, pa: u64) -> u32 {
        debug_assert!(self.s2.memory().is_ram(pa), "pins of {pa:#x}, not RAM");
        self.meta.pins(pa)
    }

    /// [`PageMeta::set_pins`] of `pa`, which the caller has checked to be
    /// RAM. Checked again in every build: at EL2 a write for a page that
    /// is not RAM could land in a vmemmap entry of a neighbouring RAM
    /// region's page (pins and unpins only, off the hot paths).
    fn set_pins(&mut self, pa: u64, pins: u32) {
        assert!(self.s2.memory().is_ram(pa), "s2rmap: pins of {pa:#x}, not RAM");
        self.meta.set_pins(pa, pins);
    }

    /// The physical range of `nr` pages at `pfn`. EINVAL for `nr == 0`,
    /// overflow, or a range beyond the physical address space; EPERM if
    /// any of it is not RAM (MMIO is never donated or shared).
    fn phys_range(&self, pfn: u64, nr: u64) -> Result<Range<u64>, Errno> {
        let range = self.addressable_range(pfn, nr)?;
        if !self.s2.memory().is_ram_range(&range) {
            return Err(Errno::EPERM);
        }
        Ok(range)
    }

    /// [`phys_range`](Self::phys_range) without the RAM check.
    fn addressable_range(&self, pfn: u64, nr: u64) -> Result<Range<u64>, Errno> {
        let range = page_range(pfn, nr)?;
        if range.end > self.s2.ipa_limit() {
            return Err(Errno::EINVAL);
        }
        Ok(range)
    }

    /// [`phys_range`](Self::phys_range) for a call that plans its change
    /// ([`plan_change`](Self::plan_change), [`plan_lend`](Self::plan_lend),
    /// [`plan_return`](Self::plan_return)) before it reads or changes
    /// anything of the host's side of it: a range of pages is checked to
    /// be RAM here, one page when the plan looks it up, where a page the
    /// host already maps as RAM needs no search of the memory map.
    fn plan_range(&self, pfn: u64, nr: u64) -> Result<Range<u64>, Errno> {
        if nr == 1 { self.addressable_range(pfn, nr) } else { self.phys_range(pfn, nr) }
    }

    /// EPERM unless every page of `range` satisfies `want`. `range` must
    /// be known to be RAM already ([`phys_range`](Self::phys_range), or
    /// the pages of a guest mapping): one page is not checked again here.
    fn check(&self, range: &Range<u64>, want: impl Fn(PageInfo) -> bool) -> Result<(), Errno> {
        // Most calls are for one page: one descent, without the run merging.
        if self.one_page(range, &want, Ram::Checked)?.is_some() {
            return Ok(());
        }
        for run in self.s2.runs(&self.alloc, range.clone()) {
            let run = run.map_err(|_| Errno::EPERM)?;
            let mapped = false;
            let info = PageInfo { owner: run.owner, host_state: run.host_state, mapped };
            if !want(info) {
                return Err(Errno::EPERM);
            }
        }
        Ok(())
    }

    /// For a one-page `range`: that page, found once, if `want` holds for
    /// it and, unless `ram` says it is checked already, it is RAM (EPERM
    /// otherwise). `None` for a longer range.
    #[inline(always)]
    fn one_page(
        &self,
        range: &Range<u64>,
        want: impl Fn(PageInfo) -> bool,
        ram: Ram,
    ) -> Result<Option<HostPage>, Errno> {
        if range.end - range.start != PAGE_SIZE {
            return Ok(None);
        }
        let page = self.s2.page(&self.alloc, range.start).map_err(|_| Errno::EPERM)?;
        if !want(PageInfo { mapped: false, ..page.info }) {
            return Err(Errno::EPERM);
        }
        if ram == Ram::Unchecked && !self.s2.is_ram_page(&page) {
            return Err(Errno::EPERM);
        }
        Ok(Some(page))
    }

    /// Checks that every page of `range` satisfies `want`, and works out
    /// giving the whole range the meaning `target`.
    #[inline(always)]
    fn plan_change(
        &mut self,
        range: &Range<u64>,
        want: impl Fn(PageInfo) -> bool,
        target: Target,
    ) -> Result<Plan, Errno> {
        match self.one_page(range, &want, Ram::Unchecked)? {
            Some(page) => Ok(self.s2.prepare_page(&mut self.alloc, &page, target)?.into()),
            None => {
                self.check(range, want)?;
                Ok(Plan::Prepared(self.prepare(range.clone(), target)?))
            }
        }
    }

    /// Checks that every page of `range` satisfies `want`, and works out
    /// lending it ([`lend_budget`](Self::lend_budget)).
    #[inline(always)]
    fn plan_lend(
        &mut self,
        range: &Range<u64>,
        want: impl Fn(PageInfo) -> bool,
    ) -> Result<Plan, Errno> {
        if let Some(page) = self.one_page(range, &want, Ram::Unchecked)? {
            return Ok(self.s2.prepare_page(&mut self.alloc, &page, page.lend_target())?.into());
        }
        self.check(range, want)?;
        Ok(Plan::Runs { pages: self.lend_budget(range)? })
    }

    /// Checks that the host lent every page of `range`, and works out
    /// giving back those for which `kept` does not hold
    /// ([`return_budget`](Self::return_budget)).
    #[inline(always)]
    fn plan_return(
        &mut self,
        range: &Range<u64>,
        kept: impl Fn(&P::Meta, u64) -> bool,
    ) -> Result<Plan, Errno> {
        if let Some(page) = self.one_page(range, is_lent_by_host, Ram::Unchecked)? {
            if kept(&self.meta, range.start) {
                return Ok(Plan::Runs { pages: 0 });
            }
            return Ok(self.s2.prepare_page(&mut self.alloc, &page, page.return_target())?.into());
        }
        self.check(range, is_lent_by_host)?;
        Ok(Plan::Runs { pages: self.return_budget(range, kept)? })
    }

    /// Commits what a plan worked out; `walk` commits a plan that left it
    /// to walking the range run by run.
    #[inline(always)]
    fn commit_plan(
        &mut self,
        plan: Plan,
        reserved: &mut usize,
        walk: impl FnOnce(&mut Self, &mut usize),
    ) {
        match plan {
            Plan::InPlace(write) => self.s2.commit_in_place(&self.alloc, &mut self.tlb, write),
            Plan::Prepared(prepared) => {
                let taken = self.s2.commit(&mut self.alloc, &mut self.tlb, prepared);
                *reserved = take_from_reservation(*reserved, taken, "host reservation");
            }
            Plan::Runs { .. } => walk(self, reserved),
        }
    }

    /// Changes the hyp's side of `range` and commits `plan`, the host's,
    /// in the order that leaves nothing half done: the hyp's check
    /// (EPERM), then `hyp_checked`, the caller's checks that come after it,
    /// the host's table pages (ENOMEM), the hyp's change (which may fail
    /// and then changes nothing), the host's commit (which cannot fail).
    ///
    /// A one-page change that takes no table pages, and that passes
    /// `hyp_checked`, lets the hyp check and change in one step: with
    /// nothing else left to refuse it, the order of the checks no longer
    /// shows.
    ///
    /// Inlined: each caller passes closures of its own, so each copy has
    /// one caller anyway, and a plan that is one write in place is then
    /// never moved in memory.
    #[inline(always)]
    fn commit_with_hyp(
        &mut self,
        hyp: &mut P::Hyp,
        range: &Range<u64>,
        change: HypChange,
        hyp_checked: impl Fn(&Self) -> Result<(), Errno>,
        plan: Plan,
        walk: impl FnOnce(&mut Self, &mut usize),
    ) -> Result<(), Errno> {
        let one_step = plan.pages() == 0 && range.end - range.start == PAGE_SIZE;
        if one_step && hyp_checked(self).is_ok() {
            change.page_in_one_step(hyp, range.start)?;
            self.commit_plan(plan, &mut 0, walk);
            return Ok(());
        }
        hyp_check(&*hyp, range, change.before())?;
        hyp_checked(self)?;
        let mut reserved = self.reserve(plan.pages())?;
        let changed = match change {
            HypChange::Map(state) => hyp.map(range.clone(), state),
            HypChange::Unmap(_) => hyp.unmap(range.clone()),
        };
        if let Err(e) = changed {
            self.release(reserved);
            return Err(e);
        }
        self.commit_plan(plan, &mut reserved, walk);
        self.release(reserved);
        Ok(())
    }

    fn info(&self, pa: u64) -> Result<PageInfo, Errno> {
        Ok(self.s2.page_info(&self.alloc, pa)?)
    }

    fn prepare(&mut self, range: Range<u64>, target: Target) -> Result<Prepared, Errno> {
        Ok(self.s2.prepare(&mut self.alloc, range, target)?)
    }

    fn reserve(&mut self, pages: usize) -> Result<usize, Errno> {
        reserve_table_pages(&mut self.alloc, pages)
    }

    /// Table pages that giving back any subset of the pages of `range`,
    /// page by page, can take at most: enough to split every leaf that
    /// covers part of it down to single pages (one table for a 2 MiB
    /// leaf; for a 1 GiB leaf, one and one more per 2 MiB it covers).
    fn split_bound(&self, range: &Range<u64>) -> usize {
        let two_mib = pgtable::level_size(2);
        self.s2
            .table()
            .leaves(&self.alloc, range.clone())
            .map(|run| match run.entry.level {
                3 => 0,
                2 => 1,
                // Level 1, or an invalid entry at level 0: one more table
                // above the 2 MiB ones, to be safe.
                level => {
                    let blocks = (run.ipa.end - 1) / two_mib - run.ipa.start / two_mib + 1;
                    usize::from(2 - level.min(1)) + blocks as usize
                }
            })
            .sum()
    }

    /// Whether someone still borrows `pa` from the host: a guest, the hyp
    /// or the secure world through FF-A.
    fn still_lent(&self, hyp: &P::Hyp, pa: u64) -> bool {
        self.meta.guest_shares(pa) != 0
            || hyp.state(pa) == PageState::SharedBorrowed
            || self.meta.ffa_shared(pa)
    }

    /// Commits a change whose pages are already reserved. `reserved`
    /// counts down what is left of the reservation.
    ///
    /// The change was counted by the call's budget, so it is not counted
    /// again (a second walk per commit); the allocator stops a commit that
    /// would take more than the reservation holds.
    fn commit(&mut self, range: Range<u64>, target: Target, reserved: &mut usize) {
        let taken = self
            .s2
            .commit_counted(&mut self.alloc, &mut self.tlb, range, target)
            .unwrap_or_else(|e| commit_bug("host commit", e));
        *reserved = take_from_reservation(*reserved, taken, "host reservation");
    }

    fn release(&mut self, reserved: usize) {
        self.alloc.unreserve(reserved);
    }

    /// Table pages to lend `range` (see [`HostStage2::next_lend_run`]).
    fn lend_budget(&mut self, range: &Range<u64>) -> Result<usize, Errno> {
        let mut budget = 0;
        let mut cursor = range.start;
        while let Some((run, target)) = self.s2.next_lend_run(&self.alloc, cursor, range.end) {
            cursor = run.end;
            budget += self.prepare(run, target)?.pages;
        }
        Ok(budget)
    }

    fn lend_commit(&mut self, range: &Range<u64>, reserved: &mut usize) {
        let mut cursor = range.start;
        while let Some((run, target)) = self.s2.next_lend_run(&self.alloc, cursor, range.end) {
            cursor = run.end;
            self.commit(run, target, reserved);
        }
    }

    /// Table pages to give the lent pages of `range` back to the host
    /// alone (see [`HostStage2::next_return_run`]), skipping the pages for
    /// which `kept(meta, pa)` holds: someone else still borrows them.
    fn return_budget(
        &mut self,
        range: &Range<u64>,
        kept: impl Fn(&P::Meta, u64) -> bool,
    ) -> Result<usize, Errno> {
        let mut budget = 0;
        let mut cursor = range.start;
        while let Some(run) = next_run(range, cursor, |pa| !kept(&self.meta, pa)) {
            cursor = run.end;
            let mut at = run.start;
            while let Some((piece, target)) = self.s2.next_return_run(&self.alloc, at, run.end) {
                at = piece.end;
                budget += self.prepare(piece, target)?.pages;
            }
        }
        Ok(budget)
    }

    /// Gives back what [`return_budget`](Self::return_budget) counted.
    fn return_commit(
        &mut self,
        range: &Range<u64>,
        kept: impl Fn(&P::Meta, u64) -> bool,
        reserved: &mut usize,
    ) {
        let mut cursor = range.start;
        while let Some(run) = next_run(range, cursor, |pa| !kept(&self.meta, pa)) {
            cursor = run.end;
            let mut at = run.start;
            while let Some((piece, target)) = self.s2.next_return_run(&self.alloc, at, run.end) {
                at = piece.end;
                self.commit(piece, target, reserved);
            }
        }
    }
}

/// Whether the host page a one-page plan looks up still has to be checked
/// to be RAM ([`Host::plan_range`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ram {
    Checked,
    Unchecked,
}

/// A host-side change worked out under the locks before anything is
/// written. The one-page steps that build and commit it are inlined, so
/// that it is not moved with `memcpy` (see [`pgtable::PageCursor`]).
enum Plan {
    /// One page, whose change is a single write in place.
    InPlace(InPlace),
    /// One page that takes more than one write in place (a split, a
    /// break-before-make, a table that may fold), or one target over the
    /// whole range: the commit writes what was prepared.
    Prepared(Prepared),
    /// Runs with targets of their own: the commit walks the range again
    /// run by run; `pages` is what that takes at most.
    Runs { pages: usize },
}

impl Plan {
    /// Table pages to reserve for the commit.
    fn pages(&self) -> usize {
        match self {
            Plan::InPlace(_) => 0,
            Plan::Prepared(prepared) => prepared.pages,
            Plan::Runs { pages } => *pages,
        }
    }
}

impl From<PageChange> for Plan {
    #[inline(always)]
    fn from(change: PageChange) -> Self {
        match change {
            PageChange::InPlace(write) => Plan::InPlace(write),
            PageChange::Prepared(prepared) => Plan::Prepared(prepared),
        }
    }
}

/// What a transition does to the hyp's side of its range.
#[derive(Clone, Copy)]
enum HypChange {
    /// The hyp maps the range in this state; it must map none of it yet.
    Map(PageState),
    /// The hyp unmaps the range; it must hold all of it in this state.
    Unmap(PageState),
}

impl HypChange {
    /// Checks and changes the hyp's side of the page at `pa` in one step.
    #[inline(always)]
    fn page_in_one_step<H: HypSide>(self, hyp: &mut H, pa: u64) -> Result<(), Errno> {
        match self {
            HypChange::Map(state) => hyp.map_page_if_free(pa, state),
            HypChange::Unmap(state) => hyp.unmap_page_if(pa, state),
        }
    }

    /// The state the hyp must hold the range in beforehand.
    fn before(self) -> PageState {
        match self {
            HypChange::Map(_) => PageState::NoPage,
            HypChange::Unmap(state) => state,
        }
    }
}

/// Sets aside `pages` table pages of `alloc` for a commit. A call that
/// needs none does not ask: it cannot fail for lack of memory, and it is
/// not an allocation point for fault injection either.
fn reserve_table_pages(alloc: &mut impl TableAllocator, pages: usize) -> Result<usize, Errno> {
    if pages > 0 {
        alloc.reserve(pages).map_err(|_| Errno::ENOMEM)?;
    }
    Ok(pages)
}

/// What is left of a reservation of `reserved` pages after a commit took
/// `taken`. More than reserved is a bug in a budget: the allocator has
/// already refused to hand out the page; `what` names the reservation.
fn take_from_reservation(reserved: usize, taken: usize, what: &str) -> usize {
    reserved.checked_sub(taken).unwrap_or_else(|| commit_bug(what, (taken, reserved)))
}

/// Reserves table pages in the host's and a guest's pools: both or
/// neither.
fn reserve_both<P: Platform>(
    host: &mut Host<P>,
    guest: &mut Guest<P>,
    host_pages: usize,
    guest_pages: usize,
) -> Result<(usize, usize), Errno> {
    let host_res = host.reserve(host_pages)?;
    match guest.reserve(guest_pages) {
        Ok(guest_res) => Ok((host_res, guest_res)),
        Err(e) => {
            host.release(host_res);
            Err(e)
        }
    }
}

fn is_host_owned(info: PageInfo) -> bool {
    info.owner == Some(OwnerId::HOST) && info.host_state == PageState::Owned
}

fn is_lent_by_host(info: PageInfo) -> bool {
    info.owner == Some(OwnerId::HOST) && info.host_state == PageState::SharedOwned
}

fn hyp_check<H: HypSide>(hyp: &H, range: &Range<u64>, want: PageState) -> Result<(), Errno> {
    if hyp.range_is(range, want) { Ok(()) } else { Err(Errno::EPERM) }
}

impl<P: Platform> Guest<P> {
    fn reserve(&mut self, pages: usize) -> Result<usize, Errno> {
        reserve_table_pages(&mut self.alloc, pages)
    }

    fn release(&mut self, reserved: usize) {
        self.alloc.unreserve(reserved);
    }

    /// As [`Host::commit`].
    fn commit(&mut self, range: Range<u64>, leaf: Leaf, reserved: &mut usize) {
        let taken = self
            .s2
            .table
            .commit_counted(&mut self.alloc, &mut self.tlb, range, leaf)
            .unwrap_or_else(|e| commit_bug("guest commit", e));
        *reserved = take_from_reservation(*reserved, taken, "guest reservation");
    }

    /// The mapped run at `ipa` (one leaf, up to `end`): (IPA run, the
    /// physical pages behind it, state). `None` if `ipa` is unmapped.
    fn mapped_run(&self, ipa: u64, end: u64) -> Option<(Range<u64>, Range<u64>, PageState)> {
        let entry = self.s2.table.lookup(&self.alloc, ipa).ok()?;
        let pa = entry.output_address(ipa)?.0;
        let state = PageState::from_sw_bits(entry.desc.attrs().sw())?;
        let run = ipa..entry.end().min(end);
        let pa_run = pa..pa + (run.end - run.start);
        Some((run, pa_run, state))
    }

    /// During a commit: the mapped run at `ipa` (up to `end`) and the
    /// physical pages behind it, which the checks already found mapped.
    fn committed_run(&self, ipa: u64, end: u64) -> (Range<u64>, Range<u64>) {
        let Some((run, pa_run, _)) = self.mapped_run(ipa, end) else {
            commit_bug("guest mapping vanished", ipa);
        };
        (run, pa_run)
    }

    /// Checks that every page of `ipa` is mapped in `state`. `unmapped`
    /// is the error for a page with no mapping.
    fn check_mapped(
        &self,
        ipa: &Range<u64>,
        state: PageState,
        unmapped: Errno,
    ) -> Result<(), Errno> {
        let mut cursor = ipa.start;
        while cursor < ipa.end {
            let (run, _, s) = self.mapped_run(cursor, ipa.end).ok_or(unmapped)?;
            if s != state {
                return Err(Errno::EPERM);
            }
            cursor = run.end;
        }
        Ok(())
    }

    /// The first leaf-sized run of unassigned (invalid) entries in
    /// `from..end`.
    fn next_unassigned(&self, mut from: u64, end: u64) -> Option<Range<u64>> {
        while from < end {
            let entry = self.s2.table.lookup(&self.alloc, from).ok()?;
            let run_end = entry.end().min(end);
            if !entry.desc.is_valid() {
                return Some(from..run_end);
            }
            from = run_end;
        }
        None
    }

    fn check_unmapped(&self, ipa: &Range<u64>) -> Result<(), Errno> {
        for run in self.s2.table.leaves(&self.alloc, ipa.clone()) {
            if run.entry.desc.is_valid() {
                return Err(Errno::EPERM);
            }
        }
        Ok(())
    }
}

impl<P: Platform> Tracker<P> {
    /// A tracker over a host stage-2 that describes all memory as the
    /// host's (a zeroed root), with guests whose RAM mappings use
    /// `guest_ram` attributes.
    pub fn new(
        host_s2: HostStage2,
        host_alloc: P::HostAlloc,
        host_tlb: P::HostTlb,
        hyp: P::Hyp,
        meta: P::Meta,
        guest_ram: S2Attrs,
    ) -> Self {
        let tracker = Self::empty();
        let installed = tracker.install(host_s2, host_alloc, host_tlb, hyp, meta, guest_ram);
        debug_assert!(installed.is_ok());
        tracker
    }

    /// A tracker with no parties yet: every call fails with EPERM until
    /// [`install`](Self::install). All zero, so a `static` of it lives in
    /// `.bss`.
    #[must_use]
    pub const fn empty() -> Self {
        Self {
            host: Mutex::new(Slot::Empty),
            guests: [const { Mutex::new(Slot::Empty) }; MAX_GUESTS],
            host_faults: core::sync::atomic::AtomicU64::new(0),
            #[cfg(feature = "ghost")]
            ghost: Mutex::new(ghosted::GhostState::new()),
            #[cfg(feature = "ghost")]
            ghost_off: core::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Runs `transition`, the call `call` on `nr` pages at `pfn` and/or
    /// guest frames at `gfn`: held to the specification with ghost
    /// checking, just itself without.
    #[inline(always)]
    fn ghosted(
        &self,
        call: Call,
        pfn: Option<u64>,
        gfn: Option<u64>,
        nr: u64,
        transition: impl FnOnce() -> Result<(), Errno>,
    ) -> Result<(), Errno> {
        #[cfg(feature = "ghost")]
        return self.ghost_checked(call, pfn, gfn, nr, transition);
        #[cfg(not(feature = "ghost"))]
        {
            let _ = (call, pfn, gfn, nr);
            transition()
        }
    }

    /// Runs `f`, a call that changes state without being checked, so that
    /// no checked call sees it half done.
    #[inline(always)]
    fn serialized<R>(&self, f: impl FnOnce() -> R) -> R {
        #[cfg(feature = "ghost")]
        return self.ghost_serialized(f);
        #[cfg(not(feature = "ghost"))]
        f()
    }

    /// Installs the host and the hyp side, once. EBUSY the second time.
    pub fn install(
        &self,
        host_s2: HostStage2,
        host_alloc: P::HostAlloc,
        host_tlb: P::HostTlb,
        hyp: P::Hyp,
        meta: P::Meta,
        guest_ram: S2Attrs,
    ) -> Result<(), Errno> {
        let mut host = self.host.lock();
        if !host.is_empty() {
            return Err(Errno::EBUSY);
        }
        let host_side =
            Host { s2: host_s2, alloc: host_alloc, tlb: host_tlb, meta, guest_ram, sealed: false };
        *host = Slot::Full(HostAndHyp { host: host_side, hyp });
        Ok(())
    }

    /// The host lock, which also holds the hyp's side. EPERM before
    /// [`install`](Self::install).
    fn lock_host(&self) -> Result<HostGuard<'_, P>, Errno> {
        P::preemption_point();
        let guard = self.host.lock();
        if guard.is_empty() {
            return Err(Errno::EPERM);
        }
        Ok(HostGuard(guard))
    }

    /// A guest's lock, taken after the host lock (which holds the hyp's
    /// side too). ENOENT for no such guest.
    fn lock_guest(
        &self,
        _host: &Host<P>,
        id: OwnerId,
    ) -> Result<Guard<'_, Slot<Guest<P>>, P>, Errno> {
        let slot = id.0.checked_sub(OwnerId::FIRST_GUEST.0).ok_or(Errno::ENOENT)? as usize;
        P::preemption_point();
        let guard = self.guests.get(slot).ok_or(Errno::ENOENT)?.lock();
        if guard.is_empty() {
            return Err(Errno::ENOENT);
        }
        Ok(guard)
    }

    /// Runs `f` on the existing guest `id`.
    fn with_guest<R>(
        guard: &mut Guard<'_, Slot<Guest<P>>, P>,
        f: impl FnOnce(&mut Guest<P>) -> Result<R, Errno>,
    ) -> Result<R, Errno> {
        guard.as_mut().map_or(Err(Errno::ENOENT), f)
    }

    // ---------------------------------------------------------------
    // Host <-> hyp
    // ---------------------------------------------------------------

    /// The host lends `nr` pages at `pfn` to the hyp.
    pub fn host_share_hyp(&self, pfn: u64, nr: u64) -> Result<(), Errno> {
        self.ghosted(Call::HostShareHyp, Some(pfn), None, nr, || {
            let mut held = self.lock_host()?;
            let (host, hyp) = held.split();
            let range = host.plan_range(pfn, nr)?;
            let plan = host.plan_lend(&range, is_host_owned)?;
            let change = HypChange::Map(PageState::SharedBorrowed);
            host.commit_with_hyp(
                &mut *hyp,
                &range,
                change,
                |_| Ok(()),
                plan,
                |host, reserved| {
                    host.lend_commit(&range, reserved);
                },
            )
        })
    }

    /// The host takes back pages it lent to the hyp. EBUSY while pinned.
    pub fn host_unshare_hyp(&self, pfn: u64, nr: u64) -> Result<(), Errno> {
        self.ghosted(Call::HostUnshareHyp, Some(pfn), None, nr, || {
            let mut held = self.lock_host()?;
            let (host, hyp) = held.split();
            let range = host.plan_range(pfn, nr)?;
            // Pages that guests or FF-A still borrow stay SharedOwned.
            let kept = |meta: &P::Meta, pa| meta.guest_shares(pa) != 0 || meta.ffa_shared(pa);
            let plan = host.plan_return(&range, kept)?;
            let unpinned = |host: &Host<P>| {
                let pinned = pages(&range).any(|pa| host.pins(pa) > 0);
                if pinned { Err(Errno::EBUSY) } else { Ok(()) }
            };
            let change = HypChange::Unmap(PageState::SharedBorrowed);
            host.commit_with_hyp(&mut *hyp, &range, change, unpinned, plan, |host, reserved| {
                host.return_commit(&range, kept, reserved);
            })
        })
    }

    /// The host gives `nr` pages to the hyp.
    pub fn host_donate_hyp(&self, pfn: u64, nr: u64) -> Result<(), Errno> {
        self.ghosted(Call::HostDonateHyp, Some(pfn), None, nr, || {
            let mut held = self.lock_host()?;
            let (host, hyp) = held.split();
            let range = host.plan_range(pfn, nr)?;
            let plan = host.plan_change(&range, is_host_owned, Target::Owner(OwnerId::HYP))?;
            let change = HypChange::Map(PageState::Owned);
            host.commit_with_hyp(&mut *hyp, &range, change, |_| Ok(()), plan, |_, _| {})
        })
    }

    /// The hyp gives `nr` pages back to the host (unmapped: the host maps
    /// them again on its next access). Only pages the host donated and the
    /// hyp does not use: the host's request.
    pub fn hyp_donate_host(&self, pfn: u64, nr: u64) -> Result<(), Errno> {
        self.ghosted(Call::HypDonateHost, Some(pfn), None, nr, || self.hyp_return(pfn, nr, false))
    }

    /// The hyp gives back pages it used itself (a torn-down VM's
    /// structures, a guest's table pool): the hyp's own decision.
    pub fn hyp_return_used(&self, pfn: u64, nr: u64) -> Result<(), Errno> {
        self.ghosted(Call::HypReturnUsed, Some(pfn), None, nr, || self.hyp_return(pfn, nr, true))
    }

    fn hyp_return(&self, pfn: u64, nr: u64, used: bool) -> Result<(), Errno> {
        let mut held = self.lock_host()?;
        let (host, hyp) = held.split();
        let range = host.plan_range(pfn, nr)?;
        if !hyp.range_in_use(&range, used) {
            return Err(Errno::EPERM);
        }
        let is_hyps = |i: PageInfo| i.owner == Some(OwnerId::HYP);
        let plan = host.plan_change(&range, is_hyps, Target::Owner(OwnerId::HOST))?;
        let change = HypChange::Unmap(PageState::Owned);
        host.commit_with_hyp(&mut *hyp, &range, change, |_| Ok(()), plan, |_, _| {})
    }

    /// The host lends pages to the secure world through FF-A (the hyp's
    /// FF-A proxy calls this before forwarding a memory share).
    pub fn host_share_ffa(&self, pfn: u64, nr: u64) -> Result<(), Errno> {
        self.ghosted(Call::HostShareFfa, Some(pfn), None, nr, || {
            let mut held = self.lock_host()?;
            let host = &mut *held;
            let range = host.plan_range(pfn, nr)?;
            let plan = host.plan_lend(&range, is_host_owned)?;
            if nr > host.meta.ffa_room() {
                return Err(Errno::ENOMEM);
            }
            let mut reserved = host.reserve(plan.pages())?;
            host.commit_plan(plan, &mut reserved, |host, reserved| {
                host.lend_commit(&range, reserved);
            });
            host.release(reserved);
            for pa in pages(&range) {
                host.meta.set_ffa_shared(pa, true);
            }
            Ok(())
        })
    }

    /// The secure world gave pages back (FF-A reclaim): they are the
    /// host's alone again unless someone else still borrows them.
    pub fn host_unshare_ffa(&self, pfn: u64, nr: u64) -> Result<(), Errno> {
        self.ghosted(Call::HostUnshareFfa, Some(pfn), None, nr, || {
            let mut held = self.lock_host()?;
            let (host, hyp) = held.split();
            let range = host.plan_range(pfn, nr)?;
            // Pages that guests or the hyp still borrow stay SharedOwned.
            let kept = |meta: &P::Meta, pa| {
                meta.guest_shares(pa) != 0 || hyp.state(pa) == PageState::SharedBorrowed
            };
            let plan = host.plan_return(&range, kept)?;
            if pages(&range).any(|pa| !host.meta.ffa_shared(pa)) {
                return Err(Errno::EPERM);
            }
            let mut reserved = host.reserve(plan.pages())?;
            for pa in pages(&range) {
                host.meta.set_ffa_shared(pa, false);
            }
            host.commit_plan(plan, &mut reserved, |host, reserved| {
                host.return_commit(&range, kept, reserved);
            });
            host.release(reserved);
            Ok(())
        })
    }

    /// The hyp starts using Owned pages itself (a guest's table pool, a
    /// VM's structures): from now on the host cannot ask for them back;
    /// they return through [`hyp_return_used`](Self::hyp_return_used).
    pub fn hyp_claim(&self, pfn: u64, nr: u64) -> Result<(), Errno> {
        self.ghosted(Call::HypClaim, Some(pfn), None, nr, || {
            let mut held = self.lock_host()?;
            let (host, hyp) = held.split();
            let range = host.phys_range(pfn, nr)?;
            hyp_check(&*hyp, &range, PageState::Owned)?;
            // Every page must change: none may be in use already.
            if !hyp.range_in_use(&range, false) {
                return Err(Errno::EPERM);
            }
            hyp.set_in_use(range, true)
        })
    }

    fn check_hyp_shared(
        &self,
        host: &Host<P>,
        hyp: &P::Hyp,
        range: &Range<u64>,
    ) -> Result<(), Errno> {
        host.check(range, is_lent_by_host)?;
        hyp_check(hyp, range, PageState::SharedBorrowed)
    }

    /// The hyp pins pages the host shared with it, so that they cannot be
    /// unshared while the hyp uses them.
    pub fn hyp_pin(&self, pfn: u64, nr: u64) -> Result<(), Errno> {
        self.ghosted(Call::HypPin, Some(pfn), None, nr, || {
            let mut held = self.lock_host()?;
            let (host, hyp) = held.split();
            let range = host.phys_range(pfn, nr)?;
            self.check_hyp_shared(host, hyp, &range)?;
            if pages(&range).any(|pa| host.pins(pa) == u32::MAX) {
                return Err(Errno::EBUSY);
            }
            for pa in pages(&range) {
                let pins = host.pins(pa);
                host.set_pins(pa, pins + 1);
            }
            Ok(())
        })
    }

    /// Drops one pin. EPERM for a page that is not pinned.
    pub fn hyp_unpin(&self, pfn: u64, nr: u64) -> Result<(), Errno> {
        self.ghosted(Call::HypUnpin, Some(pfn), None, nr, || {
            let mut held = self.lock_host()?;
            let (host, hyp) = held.split();
            let range = host.phys_range(pfn, nr)?;
            self.check_hyp_shared(host, hyp, &range)?;
            if pages(&range).any(|pa| host.pins(pa) == 0) {
                return Err(Errno::EPERM);
            }
            for pa in pages(&range) {
                let pins = host.pins(pa);
                host.set_pins(pa, pins - 1);
            }
            Ok(())
        })
    }

    // ---------------------------------------------------------------
    // Guests
    // ---------------------------------------------------------------

    /// Creates guest `id` (or the first free one) with an `ipa_bits`-wide
    /// IPA space, whose tables live in `alloc`, rooted at the zeroed
    /// `root` taken from it.
    pub fn create_guest(
        &self,
        id: Option<OwnerId>,
        ipa_bits: u8,
        root: PhysAddr,
        alloc: P::GuestAlloc,
        tlb: P::GuestTlb,
    ) -> Result<OwnerId, Errno> {
        self.serialized(|| {
            let config = Stage2Config::new(ipa_bits).map_err(|_| Errno::EINVAL)?;
            let table = pgtable::PageTable::new(config, root).map_err(|_| Errno::EINVAL)?;
            let _host = self.lock_host()?;
            let slots: &mut dyn Iterator<Item = usize> = match id {
                Some(id) if id.is_guest() => {
                    &mut core::iter::once((id.0 - OwnerId::FIRST_GUEST.0) as usize)
                }
                Some(_) => return Err(Errno::EINVAL),
                None => &mut (0..MAX_GUESTS),
            };
            for slot in slots {
                let Some(mut guard) = self.guests.get(slot).map(|m| m.lock()) else {
                    return Err(Errno::EINVAL);
                };
                if guard.is_empty() {
                    let s2 = GuestStage2 { table, ram: _host.guest_ram };
                    *guard = Slot::Full(Guest { s2, alloc, tlb, lifecycle: Lifecycle::New });
                    return Ok(OwnerId(OwnerId::FIRST_GUEST.0 + slot as u32));
                }
            }
            Err(Errno::EBUSY)
        })
    }

    /// Marks the guest as having run: its RIPAS can no longer be set up.
    pub fn run_guest(&self, id: OwnerId) -> Result<(), Errno> {
        self.serialized(|| {
            let host = self.lock_host()?;
            let mut guard = self.lock_guest(&host, id)?;
            Self::with_guest(&mut guard, |g| {
                g.lifecycle = Lifecycle::Running;
                Ok(())
            })
        })
    }

    /// The host gives `nr` pages at `pfn` to guest `id`, mapped at `gfn`
    /// in its protected half.
    pub fn host_donate_guest(&self, id: OwnerId, pfn: u64, gfn: u64, nr: u64) -> Result<(), Errno> {
        self.ghosted(Call::HostDonateGuest(id), Some(pfn), Some(gfn), nr, || {
            let mut held = self.lock_host()?;
            let host = &mut *held;
            let range = host.phys_range(pfn, nr)?;
            let mut guard = self.lock_guest(host, id)?;
            Self::with_guest(&mut guard, |guest| {
                let (ipa, half) = guest.s2.ipa_range(gfn, nr)?;
                if half != Half::Protected {
                    return Err(Errno::EINVAL);
                }
                host.check(&range, is_host_owned)?;
                guest.check_unmapped(&ipa)?;
                let host_target = Target::Owner(id);
                let leaf = guest.s2.mapping(range.start, PageState::Owned);
                let host_pages = host.prepare(range.clone(), host_target)?.pages;
                let guest_pages = guest.s2.prepare(&mut guest.alloc, ipa.clone(), leaf)?.pages;
                let (mut host_res, mut guest_res) =
                    reserve_both(host, guest, host_pages, guest_pages)?;
                host.commit(range, host_target, &mut host_res);
                guest.commit(ipa, leaf, &mut guest_res);
                host.release(host_res);
                guest.release(guest_res);
                Ok(())
            })
        })
    }

    /// The host lends `nr` pages at `pfn` to guest `id`, mapped at `gfn` in
    /// its unprotected half. Several guests may borrow one page.
    pub fn host_share_guest(&self, id: OwnerId, pfn: u64, gfn: u64, nr: u64) -> Result<(), Errno> {
        self.ghosted(Call::HostShareGuest(id), Some(pfn), Some(gfn), nr, || {
            let mut held = self.lock_host()?;
            let host = &mut *held;
            let range = host.phys_range(pfn, nr)?;
            let mut guard = self.lock_guest(host, id)?;
            Self::with_guest(&mut guard, |guest| {
                let (ipa, half) = guest.s2.ipa_range(gfn, nr)?;
                if half != Half::Unprotected {
                    return Err(Errno::EINVAL);
                }
                host.check(&range, |i| {
                    i.owner == Some(OwnerId::HOST)
                        && matches!(i.host_state, PageState::Owned | PageState::SharedOwned)
                })?;
                guest.check_unmapped(&ipa)?;
                if pages(&range).any(|pa| host.meta.guest_shares(pa) == u32::MAX) {
                    return Err(Errno::EBUSY);
                }
                let newly_lent =
                    pages(&range).filter(|&pa| host.meta.guest_shares(pa) == 0).count();
                if newly_lent as u64 > host.meta.guest_share_room() {
                    return Err(Errno::ENOMEM);
                }
                let leaf = guest.s2.mapping(range.start, PageState::SharedBorrowed);
                let host_pages = host.lend_budget(&range)?;
                let guest_pages = guest.s2.prepare(&mut guest.alloc, ipa.clone(), leaf)?.pages;
                let (mut host_res, mut guest_res) =
                    reserve_both(host, guest, host_pages, guest_pages)?;
                host.lend_commit(&range, &mut host_res);
                guest.commit(ipa, leaf, &mut guest_res);
                for pa in pages(&range) {
                    let shares = host.meta.guest_shares(pa);
                    host.meta.set_guest_shares(pa, shares + 1);
                }
                host.release(host_res);
                guest.release(guest_res);
                Ok(())
            })
        })
    }

    /// Guest `id` stops borrowing the pages mapped at `gfn`. ENOENT where
    /// there is no mapping. A page returns to Owned when nobody borrows it
    /// any more.
    pub fn host_unshare_guest(&self, id: OwnerId, gfn: u64, nr: u64) -> Result<(), Errno> {
        self.ghosted(Call::HostUnshareGuest(id), None, Some(gfn), nr, || {
            let mut held = self.lock_host()?;
            let (host, hyp) = held.split();
            let mut guard = self.lock_guest(host, id)?;
            Self::with_guest(&mut guard, |guest| {
                let (ipa, half) = guest.s2.ipa_range(gfn, nr)?;
                if half != Half::Unprotected {
                    return Err(Errno::EINVAL);
                }
                guest.check_mapped(&ipa, PageState::SharedBorrowed, Errno::ENOENT)?;
                let mut host_budget = 0;
                let mut cursor = ipa.start;
                while cursor < ipa.end {
                    let Some((run, pa_run, _)) = guest.mapped_run(cursor, ipa.end) else {
                        return Err(Errno::ENOENT);
                    };
                    host.check(&pa_run, is_lent_by_host)?;
                    if pages(&pa_run).any(|p| host.meta.guest_shares(p) == 0) {
                        return Err(Errno::EPERM);
                    }
                    // Given back page by page below, only the pages no
                    // other guest, the hyp or FF-A still borrows: any subset
                    // of the run, which may split leaves the whole run
                    // would not.
                    host_budget += host.split_bound(&pa_run);
                    cursor = run.end;
                }
                let unmap = Leaf::Invalid(InvalidPayload::ZERO);
                let guest_pages = guest.s2.prepare(&mut guest.alloc, ipa.clone(), unmap)?.pages;
                let (mut host_res, mut guest_res) =
                    reserve_both(host, guest, host_budget, guest_pages)?;
                // Walk the mappings again while dropping them, page by page.
                for gpa in pages(&ipa) {
                    let Some((_, pa_run, _)) = guest.mapped_run(gpa, gpa + PAGE_SIZE) else {
                        commit_bug("guest mapping vanished", gpa);
                    };
                    let pa = pa_run.start;
                    let shares = host.meta.guest_shares(pa) - 1;
                    host.meta.set_guest_shares(pa, shares);
                    if !host.still_lent(&*hyp, pa) {
                        host.return_commit(&(pa..pa + PAGE_SIZE), |_, _| false, &mut host_res);
                    }
                }
                guest.commit(ipa, unmap, &mut guest_res);
                host.release(host_res);
                guest.release(guest_res);
                Ok(())
            })
        })
    }

    /// Guest `id` lends its protected pages at `gfn` to the host.
    pub fn guest_share_host(&self, id: OwnerId, gfn: u64, nr: u64) -> Result<(), Errno> {
        self.ghosted(Call::GuestShareHost(id), None, Some(gfn), nr, || {
            self.guest_host_share(id, gfn, nr, true)
        })
    }

    /// Guest `id` takes back pages it lent to the host; the host loses
    /// access.
    pub fn guest_unshare_host(&self, id: OwnerId, gfn: u64, nr: u64) -> Result<(), Errno> {
        self.ghosted(Call::GuestUnshareHost(id), None, Some(gfn), nr, || {
            self.guest_host_share(id, gfn, nr, false)
        })
    }

    fn guest_host_share(&self, id: OwnerId, gfn: u64, nr: u64, share: bool) -> Result<(), Errno> {
        let (guest_from, guest_to, host_to) = if share {
            (PageState::Owned, PageState::SharedOwned, Target::State(PageState::SharedBorrowed))
        } else {
            (PageState::SharedOwned, PageState::Owned, Target::Owner(id))
        };
        let mut held = self.lock_host()?;
        let host = &mut *held;
        let mut guard = self.lock_guest(host, id)?;
        Self::with_guest(&mut guard, |guest| {
            let (ipa, half) = guest.s2.ipa_range(gfn, nr)?;
            if half != Half::Protected {
                return Err(Errno::EINVAL);
            }
            guest.check_mapped(&ipa, guest_from, Errno::EPERM)?;
            let (mut host_budget, mut guest_budget) = (0, 0);
            let mut cursor = ipa.start;
            while cursor < ipa.end {
                let Some((run, pa_run, _)) = guest.mapped_run(cursor, ipa.end) else {
                    return Err(Errno::EPERM);
                };
                if share {
                    host.check(&pa_run, |i| {
                        i.owner == Some(id) && i.host_state == PageState::NoPage
                    })?;
                } else {
                    host.check(&pa_run, |i| {
                        i.owner.is_none() && i.host_state == PageState::SharedBorrowed
                    })?;
                }
                let leaf = guest.s2.mapping(pa_run.start, guest_to);
                host_budget += host.prepare(pa_run, host_to)?.pages;
                guest_budget += guest.s2.prepare(&mut guest.alloc, run.clone(), leaf)?.pages;
                cursor = run.end;
            }
            let (mut host_res, mut guest_res) =
                reserve_both(host, guest, host_budget, guest_budget)?;
            // Commit run by run, the runs counted above: a run that is a
            // whole block stays one (page by page, it would split tables
            // nobody counted).
            let mut cursor = ipa.start;
            while cursor < ipa.end {
                let (run, pa_run) = guest.committed_run(cursor, ipa.end);
                let leaf = guest.s2.mapping(pa_run.start, guest_to);
                cursor = run.end;
                // Take the host's access away before the guest owns the
                // pages alone again; give it only after the guest lent them.
                if share {
                    guest.commit(run, leaf, &mut guest_res);
                    host.commit(pa_run, host_to, &mut host_res);
                } else {
                    host.commit(pa_run, host_to, &mut host_res);
                    guest.commit(run, leaf, &mut guest_res);
                }
            }
            host.release(host_res);
            guest.release(guest_res);
            Ok(())
        })
    }

    /// Guest `id` gives up its protected pages at `gfn`: their RIPAS
    /// becomes EMPTY, and they return to the host zeroed.
    pub fn guest_relinquish(&self, id: OwnerId, gfn: u64, nr: u64) -> Result<(), Errno> {
        self.ghosted(Call::GuestRelinquish(id), None, Some(gfn), nr, || {
            let mut held = self.lock_host()?;
            let host = &mut *held;
            let mut guard = self.lock_guest(host, id)?;
            Self::with_guest(&mut guard, |guest| {
                let (ipa, half) = guest.s2.ipa_range(gfn, nr)?;
                if half != Half::Protected {
                    return Err(Errno::EINVAL);
                }
                guest.check_mapped(&ipa, PageState::Owned, Errno::EPERM)?;
                let target = Target::Owner(OwnerId::HOST);
                let mut host_budget = 0;
                let mut cursor = ipa.start;
                while cursor < ipa.end {
                    let Some((run, pa_run, _)) = guest.mapped_run(cursor, ipa.end) else {
                        return Err(Errno::EPERM);
                    };
                    host.check(&pa_run, |i| i.owner == Some(id))?;
                    host_budget += host.prepare(pa_run, target)?.pages;
                    cursor = run.end;
                }
                let empty = Leaf::Invalid(InvalidPayload::ZERO);
                let guest_pages = guest.s2.prepare(&mut guest.alloc, ipa.clone(), empty)?.pages;
                let (mut host_res, mut guest_res) =
                    reserve_both(host, guest, host_budget, guest_pages)?;
                // Run by run, as counted (see `guest_host_share`); each
                // run's place is read before the guest loses it.
                let mut cursor = ipa.start;
                while cursor < ipa.end {
                    let (run, pa_run) = guest.committed_run(cursor, ipa.end);
                    cursor = run.end;
                    guest.commit(run, empty, &mut guest_res);
                    host.meta.zero(pa_run.clone());
                    host.commit(pa_run, target, &mut host_res);
                }
                host.release(host_res);
                guest.release(guest_res);
                Ok(())
            })
        })
    }

    /// Sets RIPAS RAM over `[ipa, ipa + size)` of guest `id`'s protected
    /// half, before it first runs. `size == 0` is a successful no-op;
    /// EINVAL if the range wraps, is misaligned or leaves the protected
    /// half; EPERM once the guest has run.
    pub fn init_ripas(&self, id: OwnerId, ipa: u64, size: u64) -> Result<(), Errno> {
        self.serialized(|| {
            let host = self.lock_host()?;
            let mut guard = self.lock_guest(&host, id)?;
            Self::with_guest(&mut guard, |guest| {
                let end = ipa.checked_add(size).ok_or(Errno::EINVAL)?;
                if !ipa.is_multiple_of(PAGE_SIZE) || !size.is_multiple_of(PAGE_SIZE) {
                    return Err(Errno::EINVAL);
                }
                if end > guest.s2.unprotected_bit() {
                    return Err(Errno::EINVAL);
                }
                if guest.lifecycle != Lifecycle::New {
                    return Err(Errno::EPERM);
                }
                if size == 0 {
                    return Ok(());
                }
                let leaf = Leaf::Invalid(RIPAS_RAM);
                // Unassigned entries become RIPAS RAM; mapped (donated) pages
                // already are.
                let mut budget = 0;
                let mut cursor = ipa;
                while let Some(run) = guest.next_unassigned(cursor, end) {
                    cursor = run.end;
                    budget += guest.s2.prepare(&mut guest.alloc, run, leaf)?.pages;
                }
                let mut reserved = guest.reserve(budget)?;
                let mut cursor = ipa;
                while let Some(run) = guest.next_unassigned(cursor, end) {
                    cursor = run.end;
                    guest.commit(run, leaf, &mut reserved);
                }
                guest.release(reserved);
                Ok(())
            })
        })
    }

    /// Destroys guest `id`: every page it owned returns to the host zeroed,
    /// every page it borrowed is dropped (the host's share counts fall),
    /// and its table memory is handed back.
    pub fn teardown(&self, id: OwnerId) -> Result<Guest<P>, Errno> {
        self.serialized(|| {
            let mut held = self.lock_host()?;
            let (host, hyp) = held.split();
            let mut guard = self.lock_guest(host, id)?;
            let Some(guest) = guard.as_mut() else { return Err(Errno::ENOENT) };
            let limit = guest.s2.ipa_limit();
            let target = Target::Owner(OwnerId::HOST);
            // Everything the host gets back becomes one thing (host-owned,
            // unmapped), so one summed reservation covers every step.
            let mut budget = 0;
            let mut cursor = 0;
            while cursor < limit {
                let entry =
                    guest.s2.table.lookup(&guest.alloc, cursor).map_err(|_| Errno::EINVAL)?;
                let end = entry.end().min(limit);
                if let Some(pa) = entry.output_address(cursor) {
                    let pa_run = pa.0..pa.0 + (end - cursor);
                    budget += match PageState::from_sw_bits(entry.desc.attrs().sw()) {
                        // Given back page by page, only the pages nobody
                        // else borrows: any subset of the run, whose
                        // leaves may need splitting where the whole run
                        // would need none.
                        Some(PageState::SharedBorrowed) => host.split_bound(&pa_run),
                        _ => host.prepare(pa_run, target)?.pages,
                    };
                }
                cursor = end;
            }
            let mut reserved = host.reserve(budget)?;
            let mut cursor = 0;
            while cursor < limit {
                let Ok(entry) = guest.s2.table.lookup(&guest.alloc, cursor) else {
                    commit_bug("guest walk", cursor);
                };
                let end = entry.end().min(limit);
                if let Some(pa) = entry.output_address(cursor) {
                    let pa_run = pa.0..pa.0 + (end - cursor);
                    match PageState::from_sw_bits(entry.desc.attrs().sw()) {
                        Some(PageState::SharedBorrowed) => {
                            for p in pages(&pa_run) {
                                let shares = host.meta.guest_shares(p).saturating_sub(1);
                                host.meta.set_guest_shares(p, shares);
                                if !host.still_lent(&*hyp, p) {
                                    host.commit(p..p + PAGE_SIZE, target, &mut reserved);
                                }
                            }
                        }
                        _ => {
                            host.meta.zero(pa_run.clone());
                            host.commit(pa_run, target, &mut reserved);
                        }
                    }
                }
                cursor = end;
            }
            host.release(reserved);
            guest.s2.table.clear(&mut guest.alloc, &mut guest.tlb);
            guard.take().ok_or(Errno::ENOENT)
        })
    }

    // ---------------------------------------------------------------
    // Accesses and queries
    // ---------------------------------------------------------------

    /// A host stage-2 fault at `pa`: maps it if the host may have it.
    pub fn host_fault(&self, pa: u64) -> Result<HostAccess, Errno> {
        let mut held = self.lock_host()?;
        let host = &mut *held;
        let outcome = host.s2.host_fault(&mut host.alloc, &mut host.tlb, pa)?;
        self.host_faults.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        Ok(match outcome {
            FaultOutcome::Mapped { .. } | FaultOutcome::AlreadyMapped => HostAccess::Ok,
            FaultOutcome::NotYours { owner } => HostAccess::Fault { owner },
        })
    }

    /// A host access to `pa`: translates, or faults and is handled.
    pub fn host_access(&self, pa: u64) -> Result<HostAccess, Errno> {
        {
            let host = self.lock_host()?;
            if host.info(pa)?.mapped {
                return Ok(HostAccess::Ok);
            }
        }
        self.host_fault(pa)
    }

    /// A guest access to `ipa`.
    pub fn guest_access(&self, id: OwnerId, ipa: u64) -> Result<GuestAccess, Errno> {
        let host = self.lock_host()?;
        let mut guard = self.lock_guest(&host, id)?;
        Self::with_guest(&mut guard, |guest| {
            if ipa >= guest.s2.ipa_limit() {
                return Err(Errno::EINVAL);
            }
            let top = guest.s2.unprotected_bit();
            Ok(match guest.s2.page(&guest.alloc, ipa).pa {
                Some(_) => GuestAccess::Ok,
                None if ipa & top != 0 => GuestAccess::Mmio { ipa: ipa & !top },
                None => GuestAccess::Fault,
            })
        })
    }

    /// What the host stage-2 says about `pa`.
    pub fn host_page(&self, pa: u64) -> Result<PageInfo, Errno> {
        self.lock_host()?.info(pa)
    }

    /// The hyp's view of `pa`.
    pub fn hyp_state(&self, pa: u64) -> PageState {
        let Ok(host) = self.lock_host() else { return PageState::NoPage };
        host.hyp().state(pa)
    }

    /// Pins and guest shares of `pa`; none for a page that is not RAM.
    pub fn page_counts(&self, pa: u64) -> (u32, u32) {
        let Ok(host) = self.lock_host() else { return (0, 0) };
        if !host.s2.memory().is_ram(pa) {
            return (0, 0);
        }
        (host.pins(pa), host.meta.guest_shares(pa))
    }

    /// Guest `id`'s view of its page at `gfn`: state and PA.
    pub fn guest_page(&self, id: OwnerId, gfn: u64) -> Result<(PageState, Option<u64>), Errno> {
        let host = self.lock_host()?;
        let mut guard = self.lock_guest(&host, id)?;
        Self::with_guest(&mut guard, |guest| {
            let ipa = gfn
                .checked_mul(PAGE_SIZE)
                .filter(|&a| a < guest.s2.ipa_limit())
                .ok_or(Errno::EINVAL)?;
            let page = guest.s2.page(&guest.alloc, ipa);
            Ok((page.state, page.pa))
        })
    }

    /// Guest `id`'s RIPAS at `ipa`, and whether it has run.
    pub fn guest_info(&self, id: OwnerId, ipa: u64) -> Result<(crate::Ripas, Lifecycle), Errno> {
        let host = self.lock_host()?;
        let mut guard = self.lock_guest(&host, id)?;
        Self::with_guest(&mut guard, |guest| {
            Ok((guest.s2.page(&guest.alloc, ipa).ripas, guest.lifecycle))
        })
    }

    /// The ownership of `range` as runs, for display.
    pub fn for_each_run(
        &self,
        range: Range<u64>,
        mut f: impl FnMut(&ownership::Run),
    ) -> Result<(), Errno> {
        let host = self.lock_host()?;
        for run in host.s2.runs(&host.alloc, range) {
            f(&run.map_err(|_| Errno::EPERM)?);
        }
        Ok(())
    }

    /// The memory map the tracker was built with (`None` before install).
    pub fn with_memory<R>(&self, f: impl FnOnce(&ownership::MemoryMap) -> R) -> Option<R> {
        self.lock_host().ok().map(|h| f(h.s2.memory()))
    }

    /// Every page of RAM, counted by owner and state.
    pub fn ownership_totals(&self) -> Result<Totals, Errno> {
        let host = self.lock_host()?;
        let mut t = Totals::default();
        for region in host.s2.memory().regions() {
            for run in host.s2.runs(&host.alloc, region) {
                let run = run?;
                let pages = (run.range.end - run.range.start) / PAGE_SIZE;
                let bucket = match (run.owner, run.host_state) {
                    (None, _) => &mut t.borrowed,
                    (Some(OwnerId::HOST), PageState::SharedOwned) => &mut t.host_lent,
                    (Some(OwnerId::HOST), _) => &mut t.host,
                    (Some(OwnerId::HYP), _) => &mut t.hyp,
                    (Some(_), _) => &mut t.guests,
                };
                *bucket += pages;
            }
        }
        Ok(t)
    }

    /// Counters for the state-query hypercall.
    pub fn counters(&self) -> Counters {
        let Ok(host) = self.lock_host() else { return Counters::default() };
        let mut counters = Counters {
            host_table_pages: host.s2.table().total_pages() as u64,
            host_faults: self.host_faults.load(core::sync::atomic::Ordering::Relaxed),
            ..Counters::default()
        };
        for run in host.s2.table().leaves(&host.alloc, 0..host.s2.ipa_limit()) {
            if run.entry.desc.bits() != 0 {
                counters.host_leaves[run.entry.level as usize] += 1;
            }
        }
        counters
    }

    /// Changes the host stage-2 alone, at boot, to describe memory the
    /// hyp already holds (its image, its pools) before the host runs: the
    /// hyp side is not consulted. EPERM after [`Tracker::seal`].
    pub fn setup_host(&self, range: Range<u64>, target: Target) -> Result<(), Errno> {
        let mut held = self.lock_host()?;
        let host = &mut *held;
        if host.sealed {
            return Err(Errno::EPERM);
        }
        host.s2.apply(&mut host.alloc, &mut host.tlb, range, target)?;
        Ok(())
    }

    /// Ends boot-time set-up: maps the RAM the host owns (see
    /// [`HostStage2::map_owned_ram`]), so that the host does not fault its
    /// way through memory page table by page table; [`Tracker::setup_host`]
    /// is refused from now on. Out of table pages, the rest of RAM stays
    /// to be mapped on fault: that is not an error.
    pub fn seal(&self) -> Result<(), Errno> {
        let mut held = self.lock_host()?;
        let host = &mut *held;
        if host.sealed {
            return Err(Errno::EPERM);
        }
        match host.s2.map_owned_ram(&mut host.alloc, &mut host.tlb) {
            Ok(_) | Err(ownership::Error::NoMemory) => {}
            Err(e) => return Err(e.into()),
        }
        host.sealed = true;
        Ok(())
    }

    /// Runs `f` on the host's allocator, TLB and counters and on the hyp
    /// side, with their locks held: for tests and fault injection.
    ///
    /// # Panics
    ///
    /// If the tracker was never installed.
    pub fn with_platform<R>(
        &self,
        f: impl FnOnce(&mut P::HostAlloc, &mut P::HostTlb, &mut P::Meta, &mut P::Hyp) -> R,
    ) -> R {
        let Ok(mut held) = self.lock_host() else { panic!("tracker not installed") };
        let (host, hyp) = held.split();
        f(&mut host.alloc, &mut host.tlb, &mut host.meta, hyp)
    }

    /// Runs `f` on guest `id`'s allocator and TLB: for tests and fault
    /// injection.
    pub fn with_guest_platform<R>(
        &self,
        id: OwnerId,
        f: impl FnOnce(&mut P::GuestAlloc, &mut P::GuestTlb) -> R,
    ) -> Result<R, Errno> {
        let host = self.lock_host()?;
        let mut guard = self.lock_guest(&host, id)?;
        Self::with_guest(&mut guard, |g| Ok(f(&mut g.alloc, &mut g.tlb)))
    }

    /// Calls `f(ipa_run, pa, state)` for every mapped run of guest `id`.
    pub fn for_each_guest_mapping(
        &self,
        id: OwnerId,
        mut f: impl FnMut(Range<u64>, u64, PageState),
    ) -> Result<(), Errno> {
        let host = self.lock_host()?;
        let mut guard = self.lock_guest(&host, id)?;
        Self::with_guest(&mut guard, |g| {
            for run in g.s2.table.leaves(&g.alloc, 0..g.s2.ipa_limit()) {
                if let Some(pa) = run.entry.output_address(run.ipa.start) {
                    let state = PageState::from_sw_bits(run.entry.desc.attrs().sw())
                        .unwrap_or(PageState::NoPage);
                    f(run.ipa, pa.0, state);
                }
            }
            Ok(())
        })
    }

    /// Guest `id`'s IPA size in bits.
    pub fn guest_ipa_bits(&self, id: OwnerId) -> Result<u8, Errno> {
        let host = self.lock_host()?;
        let mut guard = self.lock_guest(&host, id)?;
        Self::with_guest(&mut guard, |g| Ok(g.s2.table.config().ipa_bits()))
    }

    /// Runs `f` with every lock held, in order, for the invariant check.
    pub(crate) fn with_all<R>(
        &self,
        f: impl FnOnce(&HostStage2, &P::HostAlloc, &P::Meta, &P::Hyp, &[Lock<Slot<Guest<P>>, P>]) -> R,
    ) -> Option<R> {
        let held = self.lock_host().ok()?;
        let (host, hyp) = held.parts();
        Some(f(&host.s2, &host.alloc, &host.meta, hyp, &self.guests))
    }
}

impl<P: Platform> Guest<P> {
    pub(crate) fn stage2(&self) -> (&GuestStage2, &P::GuestAlloc) {
        (&self.s2, &self.alloc)
    }

    #[cfg(any(test, feature = "host"))]
    pub(crate) fn has_run(&self) -> bool {
        self.lifecycle == Lifecycle::Running
    }
}

#[cfg(test)]
mod tests {
    use ownership::MemoryMap;

    use crate::host_model::{HostPlatform, create_guest, new_tracker};

    /// A tracker over one RAM region of `size` bytes at `base`, with a
    /// 40-bit physical address space.
    fn tracker_over_ram(base: u64, size: u64) -> crate::Tracker<HostPlatform> {
        let mut memory = MemoryMap::new();
        memory.add(base, size).expect("a RAM region");
        new_tracker(memory, 40, None)
    }

    /// A guest asked for by handle gets that handle, once; the hyp's and
    /// the host's IDs and handles past the last slot are no guest's.
    #[test]
    fn guests_created_by_handle() {
        use crate::Errno;
        use ownership::OwnerId;

        let tracker = tracker_over_ram(0x4000_0000, 0x20_0000);
        assert_eq!(create_guest(&tracker, Some(OwnerId(5)), 40, None), Ok(OwnerId(5)));
        assert_eq!(create_guest(&tracker, Some(OwnerId(5)), 40, None), Err(Errno::EBUSY));
        assert_eq!(create_guest(&tracker, None, 40, None), Ok(OwnerId(2)));
        assert_eq!(create_guest(&tracker, Some(OwnerId::HYP), 40, None), Err(Errno::EINVAL));
        assert_eq!(create_guest(&tracker, Some(OwnerId::HOST), 40, None), Err(Errno::EINVAL));
        let past_the_end = OwnerId(OwnerId::FIRST_GUEST.0 + super::MAX_GUESTS as u32);
        assert_eq!(create_guest(&tracker, Some(past_the_end), 40, None), Err(Errno::EINVAL));
    }

    /// A one-page call finds out that its page is RAM when it looks the
    /// page up (a range, before): an MMIO page, unmapped or mapped by a
    /// host fault, is refused with EPERM by every call that would lend or
    /// give it, and by those that take it back, and nothing changes.
    #[test]
    fn one_mmio_page_is_never_lent_or_given() {
        use crate::{Errno, HostAccess};

        const RAM: u64 = 0x4000_0000;
        let tracker = tracker_over_ram(RAM, 0x20_0000);
        let unmapped = (RAM + 0x20_0000) >> 12;
        let mapped = (RAM - 0x1000) >> 12;
        assert_eq!(tracker.host_fault(mapped << 12), Ok(HostAccess::Ok));
        assert_eq!(tracker.host_fault(RAM), Ok(HostAccess::Ok));
        type Call = fn(&crate::Tracker<HostPlatform>, u64, u64) -> Result<(), Errno>;
        let calls: [(&str, Call); 6] = [
            ("host_share_hyp", |t, pfn, nr| t.host_share_hyp(pfn, nr)),
            ("host_unshare_hyp", |t, pfn, nr| t.host_unshare_hyp(pfn, nr)),
            ("host_donate_hyp", |t, pfn, nr| t.host_donate_hyp(pfn, nr)),
            ("hyp_donate_host", |t, pfn, nr| t.hyp_donate_host(pfn, nr)),
            ("host_share_ffa", |t, pfn, nr| t.host_share_ffa(pfn, nr)),
            ("host_unshare_ffa", |t, pfn, nr| t.host_unshare_ffa(pfn, nr)),
        ];
        for pfn in [unmapped, mapped] {
            let before = (tracker.host_page(pfn << 12), tracker.hyp_state(pfn << 12));
            for (name, call) in calls {
                assert_eq!(call(&tracker, pfn, 1), Err(Errno::EPERM), "{name} of MMIO {pfn:#x}");
                let after = (tracker.host_page(pfn << 12), tracker.hyp_state(pfn << 12));
                assert_eq!(after, before, "{name} of MMIO {pfn:#x} changed it");
            }
            assert_eq!(tracker.page_counts(pfn << 12), (0, 0));
        }
        // The RAM page beside each is lent and given as usual.
        tracker.host_share_hyp(mapped + 1, 1).expect("share the first RAM page");
        tracker.host_unshare_hyp(mapped + 1, 1).expect("unshare it");
        tracker.host_donate_hyp(unmapped - 1, 1).expect("donate the last RAM page");
        tracker.hyp_donate_host(unmapped - 1, 1).expect("reclaim it");
    }

    /// The queries the hypercall layer and EL2 report from, after a few
    /// known transitions.
    #[test]
    fn queries_report_what_happened() {
        use crate::{Errno, Totals};
        use ownership::{OwnerId, PageState, Target};

        const BASE: u64 = 0x4000_0000;
        let tracker = tracker_over_ram(BASE, 0x20_0000);
        let pfn = BASE >> 12;
        assert_eq!(tracker.with_memory(|m| m.is_ram_range(&(BASE..BASE + 0x20_0000))), Some(true));
        assert_eq!(tracker.with_memory(|m| m.is_ram_range(&(BASE..BASE + 0x20_1000))), Some(false));

        // Nothing mapped yet: no leaf counts; one fault maps the 2 MiB
        // region as one level-2 block.
        assert_eq!(tracker.counters().host_leaves, [0; 4]);
        tracker.host_fault(BASE + 0x10_0000).expect("fault");
        assert_eq!(tracker.counters().host_leaves, [0, 0, 1, 0]);

        // Boot-time set-up: the hyp's own pages, then sealed.
        tracker.setup_host(BASE..BASE + 0x2000, Target::Owner(OwnerId::HYP)).expect("set-up");
        tracker.seal().expect("seal");
        let later = tracker.setup_host(BASE + 0x2000..BASE + 0x3000, Target::Owner(OwnerId::HYP));
        assert_eq!(later, Err(Errno::EPERM));
        assert_eq!(tracker.host_page(BASE + 0x2000).map(|i| i.owner), Ok(Some(OwnerId::HOST)));

        tracker.host_share_hyp(pfn + 4, 1).expect("share");
        tracker.hyp_pin(pfn + 4, 1).expect("pin");
        tracker.hyp_pin(pfn + 4, 1).expect("pin again");
        let g = create_guest(&tracker, None, 36, None).expect("a guest");
        assert_eq!(tracker.guest_ipa_bits(g), Ok(36));
        tracker.host_share_guest(g, pfn + 4, 1 << 23, 1).expect("share with the guest");
        tracker.host_donate_guest(g, pfn + 8, 0, 3).expect("donate to the guest");
        assert_eq!(tracker.page_counts((pfn + 4) << 12), (2, 1));
        assert_eq!(tracker.page_counts((pfn + 5) << 12), (0, 0));
        let totals = tracker.ownership_totals().expect("totals");
        assert_eq!(
            totals,
            Totals { host: 512 - 2 - 1 - 3, host_lent: 1, hyp: 2, guests: 3, borrowed: 0 }
        );
        let gfn_limit = 1u64 << (36 - 12);
        assert_eq!(tracker.guest_page(g, gfn_limit - 1).map(|p| p.0), Ok(PageState::NoPage));
        assert_eq!(tracker.guest_page(g, gfn_limit), Err(Errno::EINVAL));

        let before = tracker.counters();
        assert_eq!(tracker.host_fault((pfn + 100) << 12), Ok(crate::HostAccess::Ok));
        let after = tracker.counters();
        assert_eq!(after.host_faults, before.host_faults + 1);
        assert!(after.host_table_pages >= 2, "root and the split for the hyp's pages");
        assert!(after.host_leaves.iter().sum::<u64>() > 0, "{after:?}");
        assert!(after.host_leaves[3] >= 1, "page-level leaves after the split: {after:?}");
    }

    /// Sealing maps the RAM the host owns, leaves the hyp's pages alone,
    /// and happens once.
    #[test]
    fn seal_maps_the_hosts_ram_once() {
        use crate::Errno;
        use ownership::{OwnerId, Target};

        const BASE: u64 = 0x4000_0000;
        let tracker = tracker_over_ram(BASE, 0x40_0000);
        tracker.setup_host(BASE..BASE + 0x3000, Target::Owner(OwnerId::HYP)).expect("set-up");
        let mapped = |pa: u64| tracker.host_page(pa).map(|i| i.mapped);
        assert_eq!(mapped(BASE + 0x3000), Ok(false));
        tracker.seal().expect("seal");
        for pa in [BASE + 0x3000, BASE + 0x1f_f000, BASE + 0x20_0000, BASE + 0x3f_f000] {
            assert_eq!(mapped(pa), Ok(true), "{pa:#x}");
        }
        assert_eq!(
            tracker.host_page(BASE).map(|i| (i.owner, i.mapped)),
            Ok((Some(OwnerId::HYP), false))
        );
        assert_eq!(tracker.counters().host_leaves, [0, 0, 1, 512]);
        assert_eq!(tracker.seal(), Err(Errno::EPERM));
    }

    /// A torn-down guest can be printed (the host keeps it around in
    /// diagnostics) and says what it was; the tracker prints no state.
    #[test]
    fn debug_output() {
        let tracker = tracker_over_ram(0x4000_0000, 0x20_0000);
        assert_eq!(format!("{tracker:?}"), "Tracker { .. }");
        let id = create_guest(&tracker, None, 40, None).expect("a guest");
        let guest = format!("{:?}", tracker.teardown(id).expect("torn down"));
        assert!(guest.starts_with("Guest { s2: "), "{guest}");
        assert!(guest.contains("lifecycle: New"), "{guest}");
    }
}
