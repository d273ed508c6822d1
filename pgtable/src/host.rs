//! Host-side implementations of [`TableAllocator`] and [`Tlb`] for tests:
//! heap-backed table pages with a page limit and allocation-failure
//! injection, and a TLB that records every operation and checks
//! break-before-make.

use std::boxed::Box;
use std::collections::BTreeMap;
use std::format;
use std::string::String;
use std::vec::Vec;

use core::ptr::NonNull;
use core::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use crate::mm::{ENTRIES_PER_TABLE, RawTable};
use crate::{Descriptor, Error, PAGE_SIZE, PageTable, PhysAddr, TableAllocator, Tlb};

/// Where the fake physical addresses of host table pages start. Far above
/// any RAM a test declares, so table pages never alias test memory.
pub const HOST_TABLE_BASE: u64 = 0xf000_0000_0000;

/// Fails the n-th allocation point from now, across every allocator (and
/// any other fallible step) that shares it: tables of several parties and
/// the hyp's stage-1 alike. Each point calls [`FaultInjector::hit`].
#[derive(Debug, Default)]
pub struct FaultInjector {
    countdown: AtomicI64,
    fired: AtomicU64,
}

impl FaultInjector {
    /// A shared, disarmed injector.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Makes the `n`-th allocation point from now fail (1-based).
    pub fn arm(&self, n: u64) {
        self.countdown.store(n as i64, Ordering::SeqCst);
    }

    /// Disarms without firing.
    pub fn disarm(&self) {
        self.countdown.store(0, Ordering::SeqCst);
    }

    /// Called at an allocation point: true if this one must fail.
    pub fn hit(&self) -> bool {
        let before = self.countdown.load(Ordering::SeqCst);
        if before <= 0 {
            return false;
        }
        self.countdown.store(before - 1, Ordering::SeqCst);
        if before == 1 {
            self.fired.fetch_add(1, Ordering::SeqCst);
            return true;
        }
        false
    }

    /// How many failures were injected.
    pub fn fired(&self) -> u64 {
        self.fired.load(Ordering::SeqCst)
    }
}

/// Heap-backed table pages with fake, stable physical addresses.
#[derive(Debug, Default)]
pub struct HostTables {
    injector: Option<Arc<FaultInjector>>,
    base: u64,
    pages: Vec<Option<Box<RawTable>>>,
    free_list: Vec<usize>,
    limit: Option<usize>,
    reserved: usize,
    in_use: usize,
    reserve_calls: u64,
    fail_reserve_call: Option<u64>,
    injected_failures: u64,
}

fn zeroed_page() -> Box<RawTable> {
    Box::new([const { AtomicU64::new(0) }; ENTRIES_PER_TABLE])
}

impl HostTables {
    /// An allocator with no page limit, whose pages sit at
    /// [`HOST_TABLE_BASE`].
    pub fn new() -> Self {
        Self::with_base(HOST_TABLE_BASE, None)
    }

    /// An allocator whose pages sit at physical addresses from `base` (a
    /// pool of real memory being modelled), handing out at most `limit`
    /// pages (roots included).
    pub fn with_base(base: u64, limit: Option<usize>) -> Self {
        assert_eq!(base % PAGE_SIZE, 0, "table pool base must be page-aligned");
        Self { base, limit, ..Self::default() }
    }

    /// An allocator that hands out at most `pages` pages (roots included).
    pub fn with_limit(pages: usize) -> Self {
        Self::with_base(HOST_TABLE_BASE, Some(pages))
    }

    /// Sets or lifts the page limit.
    pub fn set_limit(&mut self, pages: Option<usize>) {
        self.limit = pages;
    }

    /// Makes the `n`-th call to `reserve` from now (1-based) fail with
    /// `NoMemory`, once.
    pub fn fail_nth_reserve(&mut self, n: u64) {
        self.fail_reserve_call = Some(self.reserve_calls + n);
    }

    /// Shares `injector` with this allocator: every `reserve` is an
    /// allocation point.
    pub fn set_injector(&mut self, injector: Option<Arc<FaultInjector>>) {
        self.injector = injector;
    }

    /// Cancels an armed failure that has not fired.
    pub fn disarm(&mut self) {
        self.fail_reserve_call = None;
    }

    /// How many `reserve` calls have been made.
    pub fn reserve_calls(&self) -> u64 {
        self.reserve_calls
    }

    /// How many failures were injected.
    pub fn injected_failures(&self) -> u64 {
        self.injected_failures
    }

    /// Pages reserved and not yet taken: zero between calls, or a
    /// reservation was leaked.
    pub fn reserved(&self) -> usize {
        self.reserved
    }

    /// Pages currently handed out (roots included).
    pub fn in_use(&self) -> usize {
        self.in_use
    }

    fn available(&self) -> usize {
        self.limit.map_or(usize::MAX, |l| l.saturating_sub(self.in_use + self.reserved))
    }

    fn index(&self, pa: PhysAddr) -> usize {
        ((pa.0 - self.base) / PAGE_SIZE) as usize
    }

    fn pa(&self, index: usize) -> PhysAddr {
        PhysAddr(self.base + index as u64 * PAGE_SIZE)
    }

    fn grab(&mut self) -> PhysAddr {
        let index = match self.free_list.pop() {
            Some(i) => {
                self.pages[i] = Some(zeroed_page());
                i
            }
            None => {
                self.pages.push(Some(zeroed_page()));
                self.pages.len() - 1
            }
        };
        self.in_use += 1;
        self.pa(index)
    }

    /// Allocates `pages` zeroed contiguous pages aligned to their total
    /// size, for a (concatenated) root.
    pub fn alloc_root(&mut self, pages: usize) -> Result<PhysAddr, Error> {
        if self.available() < pages {
            return Err(Error::NoMemory);
        }
        while !(self.base / PAGE_SIZE + self.pages.len() as u64).is_multiple_of(pages as u64) {
            self.pages.push(None);
            self.free_list.push(self.pages.len() - 1);
        }
        let first = self.pages.len();
        for _ in 0..pages {
            self.pages.push(Some(zeroed_page()));
        }
        self.in_use += pages;
        Ok(self.pa(first))
    }

    /// The contents of every table page of `table`, in walk order: a
    /// byte-for-byte picture of the table.
    pub fn snapshot(&self, table: &PageTable) -> Vec<(PhysAddr, Vec<u64>)> {
        let mut out = Vec::new();
        table.for_each_table_page(self, |pa, _| {
            let page = self.pages[self.index(pa)].as_ref().expect("walked a freed page");
            out.push((pa, page.iter().map(|e| e.load(Ordering::Relaxed)).collect()));
        });
        out
    }
}

// SAFETY: every page is a live `Box<RawTable>` until `free` drops it;
// `table` hands out pointers only to live pages (it panics otherwise), and
// a box's address never changes.
unsafe impl TableAllocator for HostTables {
    fn reserve(&mut self, pages: usize) -> Result<(), Error> {
        self.reserve_calls += 1;
        if self.injector.as_ref().is_some_and(|i| i.hit()) {
            self.injected_failures += 1;
            return Err(Error::NoMemory);
        }
        if self.fail_reserve_call == Some(self.reserve_calls) {
            self.fail_reserve_call = None;
            self.injected_failures += 1;
            return Err(Error::NoMemory);
        }
        if self.available() < pages {
            return Err(Error::NoMemory);
        }
        self.reserved += pages;
        Ok(())
    }

    fn take(&mut self) -> PhysAddr {
        assert!(self.reserved > 0, "take() without a reservation");
        self.reserved -= 1;
        self.grab()
    }

    fn unreserve(&mut self, pages: usize) {
        self.reserved -= pages;
    }

    fn free(&mut self, page: PhysAddr) {
        let i = self.index(page);
        assert!(self.pages[i].take().is_some(), "double free of {page:?}");
        self.free_list.push(i);
        self.in_use -= 1;
    }

    fn table(&self, page: PhysAddr) -> NonNull<RawTable> {
        let boxed = self.pages[self.index(page)]
            .as_ref()
            .unwrap_or_else(|| panic!("access to freed table page {page:?}"));
        NonNull::from(&**boxed)
    }
}

/// One TLB-relevant event, in program order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlbEvent {
    /// A descriptor write.
    Write { entry: PhysAddr, ipa: u64, level: u8, old: u64, new: u64 },
    /// An invalidation of `[ipa, ipa + size)`.
    Invalidate { ipa: u64, size: u64, level: u8 },
    /// A publish barrier.
    Publish,
}

/// A [`Tlb`] that records every call.
#[derive(Debug, Default)]
pub struct RecordingTlb {
    /// Everything that happened since the last [`take_events`](Self::take_events).
    pub events: Vec<TlbEvent>,
}

impl RecordingTlb {
    /// Drains the log.
    pub fn take_events(&mut self) -> Vec<TlbEvent> {
        core::mem::take(&mut self.events)
    }

    /// Checks break-before-make over the recorded events and drains them:
    /// no live translation is changed in place (beyond its software bits),
    /// no entry that was broken is made again before an invalidation
    /// covering it, and every broken entry is invalidated by the end.
    pub fn check_bbm(&mut self) -> Result<(), String> {
        check_bbm(&self.take_events())
    }

    /// Invalidations recorded since the log was last drained.
    pub fn invalidations(&self) -> usize {
        self.events.iter().filter(|e| matches!(e, TlbEvent::Invalidate { .. })).count()
    }
}

impl Tlb for RecordingTlb {
    fn invalidate(&mut self, ipa: u64, size: u64, level: u8) {
        self.events.push(TlbEvent::Invalidate { ipa, size, level });
    }

    fn publish(&mut self) {
        self.events.push(TlbEvent::Publish);
    }

    fn observe_write(&mut self, entry: PhysAddr, ipa: u64, level: u8, old: u64, new: u64) {
        self.events.push(TlbEvent::Write { entry, ipa, level, old, new });
    }
}

/// See [`RecordingTlb::check_bbm`].
pub fn check_bbm(events: &[TlbEvent]) -> Result<(), String> {
    // Broken entries not yet invalidated: entry -> IPA range it translated.
    let mut pending: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for (n, event) in events.iter().enumerate() {
        match *event {
            TlbEvent::Write { entry, ipa, level, old, new } => {
                let (old_d, new_d) = (Descriptor::from_bits(old), Descriptor::from_bits(new));
                if old_d.needs_bbm(new_d, level) {
                    return Err(format!(
                        "event {n}: live entry {entry:?} (IPA {ipa:#x}, level {level}) changed in place: {old:#x} -> {new:#x}"
                    ));
                }
                if old_d.is_valid() && !new_d.is_valid() {
                    pending.insert(entry.0, (ipa, crate::level_size(level)));
                } else if new_d.is_valid() && pending.contains_key(&entry.0) {
                    return Err(format!(
                        "event {n}: entry {entry:?} (IPA {ipa:#x}) made valid before its break was invalidated"
                    ));
                }
            }
            TlbEvent::Invalidate { ipa, size, .. } => {
                pending.retain(|_, &mut (start, len)| !(start >= ipa && start + len <= ipa + size));
            }
            TlbEvent::Publish => {}
        }
    }
    match pending.first_key_value() {
        Some((entry, (ipa, _))) => {
            Err(format!("entry {entry:#x} (IPA {ipa:#x}) broken but never invalidated"))
        }
        None => Ok(()),
    }
}

/// A [`Tlb`] that checks break-before-make as the writes happen, with
/// bounded memory: for long runs where [`RecordingTlb`] would grow
/// without end.
#[derive(Debug, Default)]
pub struct CheckingTlb {
    pending: BTreeMap<u64, (u64, u64)>,
    /// The first violation seen, if any.
    pub violation: Option<String>,
    /// Descriptor writes observed.
    pub writes: u64,
    /// Invalidations issued.
    pub invalidations: u64,
}

impl CheckingTlb {
    /// Ok if no violation happened and no broken entry awaits its
    /// invalidation (call it between operations).
    pub fn check_quiescent(&self) -> Result<(), String> {
        if let Some(v) = &self.violation {
            return Err(v.clone());
        }
        match self.pending.first_key_value() {
            Some((entry, (ipa, _))) => {
                Err(format!("entry {entry:#x} (IPA {ipa:#x}) broken but never invalidated"))
            }
            None => Ok(()),
        }
    }
}

impl Tlb for CheckingTlb {
    fn invalidate(&mut self, ipa: u64, size: u64, _level: u8) {
        self.invalidations += 1;
        self.pending.retain(|_, &mut (start, len)| !(start >= ipa && start + len <= ipa + size));
    }

    fn publish(&mut self) {}

    fn observe_write(&mut self, entry: PhysAddr, ipa: u64, level: u8, old: u64, new: u64) {
        self.writes += 1;
        let (old_d, new_d) = (Descriptor::from_bits(old), Descriptor::from_bits(new));
        let violation = if old_d.needs_bbm(new_d, level) {
            Some(format!(
                "live entry {entry:?} (IPA {ipa:#x}) changed in place: {old:#x} -> {new:#x}"
            ))
        } else if new_d.is_valid() && self.pending.contains_key(&entry.0) {
            Some(format!(
                "entry {entry:?} (IPA {ipa:#x}) made valid before its break was invalidated"
            ))
        } else {
            None
        };
        if old_d.is_valid() && !new_d.is_valid() {
            self.pending.insert(entry.0, (ipa, crate::level_size(level)));
        }
        if self.violation.is_none() {
            self.violation = violation;
        }
    }
}
