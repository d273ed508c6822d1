//! Ownership transitions between the host, the hypervisor and protected
//! guests.
//!
//! Every transition is one function on [`Tracker`] and follows the same
//! shape, after Linux's `mem_protect.c` and Hafnium's `mm.c`:
//!
//! 1. validate the arguments (overflow-safe ranges, `nr > 0`, the right
//!    half of the guest's IPA space);
//! 2. lock in the fixed order **host → guest** (the host lock holds the
//!    hyp's side too: every call that reaches the hyp reaches it through
//!    the host);
//! 3. check the state of every page for every party involved;
//! 4. count and reserve every table page the change needs, in every table
//!    it touches;
//! 5. commit, which cannot fail.
//!
//! Any error comes out of steps 1-4 and leaves every party unchanged.
//!
//! # States and invariants
//!
//! | host stage-2 entry | hyp | guest | meaning |
//! |---|---|---|---|
//! | zero or valid Owned | NoPage | — | the host's page |
//! | valid SharedOwned | SharedBorrowed (and/or) | SharedBorrowed in ≥1 guest (unprotected half), counted | the host lends it |
//! | invalid, owner = hyp | Owned | — | donated to the hyp |
//! | invalid, owner = g | — | Owned in g (protected half) | donated to guest g |
//! | valid SharedBorrowed | — | SharedOwned in g (protected half) | g lends it to the host |
//!
//! A page may also be lent to the secure world through FF-A (host
//! SharedOwned, recorded in [`PageMeta::ffa_shared`]); it stays
//! SharedOwned while any of hyp, guests or FF-A borrows it.
//!
//! These hold after every call (and are what [`Tracker::check_invariants`]
//! verifies):
//!
//! 1. every page of RAM has exactly one owner;
//! 2. the host stage-2 is an identity map;
//! 3. a valid host entry means the host owns or borrows the page, and the
//!    owner's side agrees;
//! 4. an invalid host entry with owner ≠ host means that owner has it and
//!    the host cannot reach it;
//! 5. a shared page cannot be donated; a pinned page cannot be unshared;
//! 6. a call that fails changes nothing;
//! 7. no check depends on a debug build.
//!
//! MMIO is never donated or shared: every transition requires RAM.
//!
//! [`spec`] states every transition page by page, independently of the
//! tables; with the `ghost` feature (debug EL2 kernels, the host tests)
//! every call is held to it after it commits (see the `ghost` module).
#![cfg_attr(not(any(test, feature = "host")), no_std)]
#![forbid(unsafe_code)]

mod check;
mod errno;
#[cfg(feature = "ghost")]
pub mod ghost;
mod guest;
#[cfg(any(test, feature = "host"))]
pub mod host_model;
mod slot;
pub mod spec;
mod tracker;

pub use check::Violation;
pub use errno::Errno;
pub use guest::{GuestAccess, Lifecycle, Ripas};
#[cfg(feature = "ghost")]
pub use tracker::GhostStats;
pub use tracker::{Access, Counters, Guest, HostAccess, MAX_GUESTS, Totals, Tracker};

use core::ops::Range;

use ownership::PageState;
use pgtable::{PAGE_SIZE, TableAllocator, Tlb};
/// The bound of [`Platform::Relax`].
pub use spin::RelaxStrategy;

/// The hypervisor's side of a transition: its own stage-1 and what it
/// holds. At EL2 Linux's C code implements it; on the host, an in-memory
/// model does.
pub trait HypSide {
    /// The hyp's view of the page at `pa` (Owned, SharedBorrowed or
    /// NoPage).
    fn state(&self, pa: u64) -> PageState;

    /// Gives the hyp access to `range` in `state` (Owned or
    /// SharedBorrowed). All or nothing: on error nothing changed.
    fn map(&mut self, range: Range<u64>, state: PageState) -> Result<(), Errno>;

    /// Takes `range` away from the hyp. All or nothing: an error (ENOMEM
    /// when the hyp's own bookkeeping is full, EPERM when the hyp holds
    /// part of the range in a way it cannot give back alone, such as a
    /// block mapped at setup) changes nothing.
    fn unmap(&mut self, range: Range<u64>) -> Result<(), Errno>;

    /// How many pages the hyp holds in `state`, for the invariant check;
    /// `None` where the implementation cannot count them cheaply (then the
    /// check relies on the per-page comparison alone).
    fn count(&self, state: PageState) -> Option<u64>;

    /// Whether the hyp uses the Owned page at `pa` itself (its own image,
    /// a guest's table pool): such pages never return to the host on the
    /// host's request.
    fn in_use(&self, pa: u64) -> bool;

    /// Whether the hyp holds every page of `range` in `state`. An
    /// implementation that can answer for a whole range in one walk of its
    /// tables should: the tracker asks this of every range it moves.
    fn range_is(&self, range: &Range<u64>, state: PageState) -> bool {
        (range.start..range.end).step_by(PAGE_SIZE as usize).all(|pa| self.state(pa) == state)
    }

    /// For the one page at `pa`: [`map`](Self::map) it in `state` if the
    /// hyp holds nothing there, and EPERM, changing nothing, if it does.
    /// The hyp's own check of a one-page transition, made by the lookup
    /// that maps where the implementation can.
    fn map_page_if_free(&mut self, pa: u64, state: PageState) -> Result<(), Errno> {
        let page = pa..pa + PAGE_SIZE;
        if !self.range_is(&page, PageState::NoPage) {
            return Err(Errno::EPERM);
        }
        self.map(page, state)
    }

    /// For the one page at `pa`: [`unmap`](Self::unmap) it if the hyp
    /// holds it in `state`, and EPERM, changing nothing, if it does not.
    fn unmap_page_if(&mut self, pa: u64, state: PageState) -> Result<(), Errno> {
        let page = pa..pa + PAGE_SIZE;
        if !self.range_is(&page, state) {
            return Err(Errno::EPERM);
        }
        self.unmap(page)
    }

    /// Whether [`in_use`](Self::in_use) is `in_use` for every Owned page
    /// of `range`; one lookup where the implementation can.
    fn range_in_use(&self, range: &Range<u64>, in_use: bool) -> bool {
        (range.start..range.end).step_by(PAGE_SIZE as usize).all(|pa| self.in_use(pa) == in_use)
    }

    /// Marks Owned pages as used by the hyp itself, or idle again. All or
    /// nothing, like [`unmap`](Self::unmap).
    fn set_in_use(&mut self, range: Range<u64>, in_use: bool) -> Result<(), Errno>;
}

/// Per-page bookkeeping that lives outside the page tables (at EL2, in the
/// hyp's vmemmap), protected by the host lock.
pub trait PageMeta {
    /// How many times the hyp has pinned the page, which must be RAM (at
    /// EL2 they live in the hyp vmemmap, which only covers RAM; the
    /// tracker checks a page is RAM before it reads or sets its pins).
    fn pins(&self, pa: u64) -> u32;
    fn set_pins(&mut self, pa: u64, pins: u32);
    /// How many guest mappings borrow the page from the host.
    fn guest_shares(&self, pa: u64) -> u32;
    fn set_guest_shares(&mut self, pa: u64, shares: u32);
    /// How many more pages may start being lent to guests (bookkeeping is
    /// bounded at EL2); `host_share_guest` is refused with ENOMEM beyond
    /// it, before anything changes.
    fn guest_share_room(&self) -> u64;
    /// Whether the host has lent the page to the secure world through
    /// FF-A.
    fn ffa_shared(&self, pa: u64) -> bool;
    fn set_ffa_shared(&mut self, pa: u64, shared: bool);
    /// How many more pages may be lent through FF-A (bookkeeping is
    /// bounded at EL2); beyond it `host_share_ffa` is ENOMEM, before any
    /// change.
    fn ffa_room(&self) -> u64;
    /// Zeroes the contents of `range` before it changes hands.
    fn zero(&mut self, range: Range<u64>);
}

/// The types one deployment of the tracker is built from.
pub trait Platform {
    /// Table pages of the host stage-2.
    type HostAlloc: TableAllocator;
    /// TLB maintenance for the host stage-2.
    type HostTlb: Tlb;
    /// The hypervisor's side.
    type Hyp: HypSide;
    /// Per-page counters.
    type Meta: PageMeta;
    /// Table pages of one guest (memory the host donated for it).
    type GuestAlloc: TableAllocator;
    /// TLB maintenance for one guest's stage-2.
    type GuestTlb: Tlb;
    /// What a CPU does while it waits for a party's lock.
    type Relax: spin::RelaxStrategy;

    /// Called before each lock is taken. Nothing in production; a model
    /// checker's scheduler switches threads here, so that every order in
    /// which CPUs can take the locks gets tried.
    #[inline(always)]
    fn preemption_point() {}
}
