//! In-memory implementations of the hyp side and the per-page counters,
//! and a [`Platform`] for tests and the s2sim runner: the real transition
//! code over real `pgtable` tables, with heap-backed table pages.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::vec::Vec;

use ownership::{HostMemoryTypes, HostStage2, MemoryMap, OwnerId, PageState};
use pgtable::host::{CheckingTlb, HostTables};
use pgtable::{PAGE_SIZE, Stage2Config};

use crate::{Errno, HypSide, PageMeta, Platform, Tracker};

/// The hyp's stage-1, as a map from page to state. `fail_next_map`
/// injects ENOMEM into the next `map` call.
#[derive(Debug, Default)]
pub struct HypModel {
    pages: BTreeMap<u64, PageState>,
    counts: BTreeMap<PageStateKey, u64>,
    in_use: BTreeSet<u64>,
    /// Shared allocation-failure injection: `map` is an allocation point.
    pub injector: Option<std::sync::Arc<pgtable::host::FaultInjector>>,
    /// Make the next `map` fail with ENOMEM (once).
    pub fail_next_map: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum PageStateKey {
    Owned,
    SharedOwned,
    SharedBorrowed,
}

fn key(state: PageState) -> Option<PageStateKey> {
    match state {
        PageState::Owned => Some(PageStateKey::Owned),
        PageState::SharedOwned => Some(PageStateKey::SharedOwned),
        PageState::SharedBorrowed => Some(PageStateKey::SharedBorrowed),
        PageState::NoPage => None,
    }
}

impl HypModel {
    /// Every page the hyp holds: (page frame, state, in use by the hyp).
    pub fn pages(&self) -> impl Iterator<Item = (u64, PageState, bool)> + '_ {
        self.pages.iter().map(|(&pfn, &s)| (pfn, s, self.in_use.contains(&pfn)))
    }

    fn set(&mut self, pa: u64, state: PageState) {
        let old = self.pages.remove(&(pa / PAGE_SIZE)).unwrap_or(PageState::NoPage);
        if let Some(k) = key(old) {
            *self.counts.entry(k).or_default() -= 1;
        }
        if let Some(k) = key(state) {
            self.pages.insert(pa / PAGE_SIZE, state);
            *self.counts.entry(k).or_default() += 1;
        }
    }
}

impl HypSide for HypModel {
    fn state(&self, pa: u64) -> PageState {
        self.pages.get(&(pa / PAGE_SIZE)).copied().unwrap_or(PageState::NoPage)
    }

    fn map(&mut self, range: Range<u64>, state: PageState) -> Result<(), Errno> {
        if std::mem::take(&mut self.fail_next_map)
            || self.injector.as_ref().is_some_and(|i| i.hit())
        {
            return Err(Errno::ENOMEM);
        }
        for pa in (range.start..range.end).step_by(PAGE_SIZE as usize) {
            self.set(pa, state);
        }
        Ok(())
    }

    fn unmap(&mut self, range: Range<u64>) -> Result<(), Errno> {
        for pa in (range.start..range.end).step_by(PAGE_SIZE as usize) {
            self.set(pa, PageState::NoPage);
            self.in_use.remove(&(pa / PAGE_SIZE));
        }
        Ok(())
    }

    fn count(&self, state: PageState) -> Option<u64> {
        Some(key(state).and_then(|k| self.counts.get(&k).copied()).unwrap_or(0))
    }

    fn in_use(&self, pa: u64) -> bool {
        self.in_use.contains(&(pa / PAGE_SIZE))
    }

    fn set_in_use(&mut self, range: Range<u64>, in_use: bool) -> Result<(), Errno> {
        for pfn in range.start / PAGE_SIZE..range.end / PAGE_SIZE {
            if in_use {
                self.in_use.insert(pfn);
            } else {
                self.in_use.remove(&pfn);
            }
        }
        Ok(())
    }
}

/// Pins, share counts, and a record of which pages were zeroed.
#[derive(Debug, Default)]
pub struct MetaModel {
    counts: BTreeMap<u64, (u32, u32)>,
    /// Page frames zeroed, in order.
    pub zeroed: Vec<u64>,
    /// Page frames that hold data the test wrote (cleared by zeroing).
    pub dirty: BTreeSet<u64>,
    /// Page frames lent through FF-A.
    pub ffa: BTreeSet<u64>,
    /// How many pages may be lent through FF-A at once, and to guests, as
    /// the bounded tables at EL2 allow (`None`: no bound).
    pub ffa_limit: Option<u64>,
    pub guest_share_limit: Option<u64>,
}

impl MetaModel {
    /// Every page with a pin or a guest share: (page frame, pins, shares).
    pub fn counts(&self) -> impl Iterator<Item = (u64, u32, u32)> + '_ {
        self.counts.iter().map(|(&pfn, &(pins, shares))| (pfn, pins, shares))
    }

    fn update(&mut self, pa: u64, f: impl FnOnce(&mut (u32, u32))) {
        let e = self.counts.entry(pa / PAGE_SIZE).or_default();
        f(e);
        if *e == (0, 0) {
            self.counts.remove(&(pa / PAGE_SIZE));
        }
    }
}

impl PageMeta for MetaModel {
    fn pins(&self, pa: u64) -> u32 {
        self.counts.get(&(pa / PAGE_SIZE)).map_or(0, |c| c.0)
    }

    fn set_pins(&mut self, pa: u64, pins: u32) {
        self.update(pa, |c| c.0 = pins);
    }

    fn guest_shares(&self, pa: u64) -> u32 {
        self.counts.get(&(pa / PAGE_SIZE)).map_or(0, |c| c.1)
    }

    fn set_guest_shares(&mut self, pa: u64, shares: u32) {
        self.update(pa, |c| c.1 = shares);
    }

    fn guest_share_room(&self) -> u64 {
        let lent = self.counts.values().filter(|c| c.1 > 0).count() as u64;
        self.guest_share_limit.map_or(u64::MAX, |limit| limit.saturating_sub(lent))
    }

    fn ffa_room(&self) -> u64 {
        self.ffa_limit.map_or(u64::MAX, |limit| limit.saturating_sub(self.ffa.len() as u64))
    }

    fn ffa_shared(&self, pa: u64) -> bool {
        self.ffa.contains(&(pa / PAGE_SIZE))
    }

    fn set_ffa_shared(&mut self, pa: u64, shared: bool) {
        if shared {
            self.ffa.insert(pa / PAGE_SIZE);
        } else {
            self.ffa.remove(&(pa / PAGE_SIZE));
        }
    }

    fn zero(&mut self, range: Range<u64>) {
        for pfn in range.start / PAGE_SIZE..range.end / PAGE_SIZE {
            self.zeroed.push(pfn);
            self.dirty.remove(&pfn);
        }
    }
}

/// The host-side platform: everything in memory.
///
/// `R` is what a thread does while it waits for a lock, and also runs
/// before every lock is taken ([`Platform::preemption_point`]): plain
/// spinning for the tests on real threads, a yield to the model checker's
/// scheduler for the shuttle tests.
pub struct HostPlatform<R = spin::Spin>(core::marker::PhantomData<R>);

impl<R> core::fmt::Debug for HostPlatform<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("HostPlatform")
    }
}

impl<R: spin::RelaxStrategy> Platform for HostPlatform<R> {
    type HostAlloc = HostTables;
    type HostTlb = CheckingTlb;
    type Hyp = HypModel;
    type Meta = MetaModel;
    type GuestAlloc = HostTables;
    type GuestTlb = CheckingTlb;
    type Relax = R;

    fn preemption_point() {
        R::relax();
    }
}

/// A tracker over `memory` with a `pa_bits`-wide host stage-2 whose table
/// pool holds at most `host_pages` pages (`None`: unlimited).
pub fn new_tracker(
    memory: MemoryMap,
    pa_bits: u8,
    host_pages: Option<usize>,
) -> Tracker<HostPlatform> {
    new_tracker_relaxing(memory, pa_bits, host_pages)
}

/// [`new_tracker`] on a platform whose threads wait with `R`.
pub fn new_tracker_relaxing<R: spin::RelaxStrategy>(
    memory: MemoryMap,
    pa_bits: u8,
    host_pages: Option<usize>,
) -> Tracker<HostPlatform<R>> {
    let config = Stage2Config::new(pa_bits).expect("supported PA size");
    let mut alloc = HostTables::new();
    let root = alloc.alloc_root(config.root_pages()).expect("root");
    alloc.set_limit(host_pages.map(|n| n + config.root_pages()));
    let s2 =
        HostStage2::new(config, root, memory, HostMemoryTypes::CLASSIC).expect("root alignment");
    Tracker::new(
        s2,
        alloc,
        CheckingTlb::default(),
        HypModel::default(),
        MetaModel::default(),
        pgtable::S2Attrs::RAM_RWX,
    )
}

/// Creates guest `id` (or the first free one) with `ipa_bits` of IPA
/// space and a table pool of at most `pages` pages besides its root.
pub fn create_guest<R: spin::RelaxStrategy>(
    tracker: &Tracker<HostPlatform<R>>,
    id: Option<OwnerId>,
    ipa_bits: u8,
    pages: Option<usize>,
) -> Result<OwnerId, Errno> {
    let config = Stage2Config::new(ipa_bits).map_err(|_| Errno::EINVAL)?;
    let mut alloc = HostTables::new();
    let root = alloc.alloc_root(config.root_pages()).map_err(|_| Errno::ENOMEM)?;
    alloc.set_limit(pages.map(|n| n + config.root_pages()));
    tracker.create_guest(id, ipa_bits, root, alloc, CheckingTlb::default())
}

/// Everything the tracker holds, byte for byte: every table page of the
/// host and of every guest, the hyp's pages, the counters. Two snapshots
/// are equal exactly when nothing changed.
/// Every table page of one table, with its contents.
pub type TablePages = Vec<(pgtable::PhysAddr, Vec<u64>)>;

/// One live guest in a [`Snapshot`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestSnapshot {
    pub slot: usize,
    pub tables: TablePages,
    pub pool_in_use: usize,
    /// Pages reserved and not taken: a refused call must not leak any.
    pub pool_reserved: usize,
    pub has_run: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub host_tables: TablePages,
    pub host_pool_in_use: usize,
    /// Pages reserved and not taken: a refused call must not leak any.
    pub host_pool_reserved: usize,
    pub hyp: Vec<(u64, PageState, bool)>,
    pub counts: Vec<(u64, u32, u32)>,
    pub ffa: Vec<u64>,
    pub zeroed: usize,
    pub guests: Vec<GuestSnapshot>,
}

impl Tracker<HostPlatform> {
    /// A byte-for-byte picture of every party.
    ///
    /// # Panics
    ///
    /// If the tracker was never installed.
    pub fn snapshot(&self) -> Snapshot {
        self.with_all(|host, alloc, meta, hyp, guests| Snapshot {
            host_tables: alloc.snapshot(host.table()),
            host_pool_in_use: alloc.in_use(),
            host_pool_reserved: alloc.reserved(),
            hyp: hyp.pages().collect(),
            counts: meta.counts().collect(),
            ffa: meta.ffa.iter().copied().collect(),
            zeroed: meta.zeroed.len(),
            guests: guests
                .iter()
                .enumerate()
                .filter_map(|(slot, g)| {
                    let g = g.lock();
                    let g = g.as_ref()?;
                    let (s2, alloc) = g.stage2();
                    Some(GuestSnapshot {
                        slot,
                        tables: alloc.snapshot(&s2.table),
                        pool_in_use: alloc.in_use(),
                        pool_reserved: alloc.reserved(),
                        has_run: g.has_run(),
                    })
                })
                .collect(),
        })
        .expect("tracker installed")
    }
}
