//! s2rmap inside Linux's nVHE hypervisor: the platform the tracker runs on
//! at EL2, and the `extern "C"` entry points the C code calls.
//!
//! What the C side keeps, and provides through the `s2rmap_c_*`
//! callbacks below: the hyp's own stage-1 (mapping and unmapping pages at
//! the hyp, reading their state), TLB maintenance for the host's VMID,
//! the per-page refcounts in the hyp vmemmap (pins), zeroing a page
//! through the hyp fixmap, and the list of RAM regions (`hyp_memory[]`).
//!
//! Every entry point returns `0` or a negative Linux errno, like the C
//! functions it replaces.
//!
//! Protected guests are offered through the s2rmap hypercalls: their
//! stage-2 tables live in a pool the host donates at creation, so the host
//! cannot touch them, and the pool is scrubbed before it goes back.

use core::ops::Range;
use core::sync::atomic::{AtomicU64, Ordering};

use hypercalls::{Caps, GuestFactory};
use ownership::{HostMemoryTypes, HostStage2, MemoryMap, OwnerId, PageState, Target};
use pgtable::{PAGE_SIZE, PhysAddr, Stage2Config, Tlb};
use share::{Errno, HypSide, PageMeta, Platform, Tracker};

use crate::counts::ShareCounts;
use crate::idle::IdleSet;
use crate::pool::{LinearMap, PagePool, PoolBitmap, allocation_point_fails};

/// What a C callback returns on success.
const OK: i32 = 0;

unsafe extern "C" {
    /// `hyp_physvirt_offset` (`nvhe/early_alloc.c`): hyp VA = PA - offset.
    static hyp_physvirt_offset: i64;
    fn s2rmap_c_nr_regions() -> u32;
    fn s2rmap_c_region(index: u32, base: *mut u64, size: *mut u64);
    fn s2rmap_c_tlb_flush_host(ipa: u64, size: u64, level: u32);
    fn s2rmap_c_hyp_map(phys: u64, size: u64, state: u32) -> i32;
    fn s2rmap_c_hyp_unmap(phys: u64, size: u64) -> i32;
    fn s2rmap_c_hyp_state(phys: u64) -> u32;
    fn s2rmap_c_hyp_range_is(phys: u64, size: u64, state: u32) -> bool;
    fn s2rmap_c_hyp_map_page(phys: u64, state: u32) -> i32;
    fn s2rmap_c_hyp_unmap_page(phys: u64, state: u32) -> i32;
    fn s2rmap_c_page_pins(phys: u64) -> u32;
    fn s2rmap_c_page_set_pins(phys: u64, pins: u32);
    fn s2rmap_c_zero_page(phys: u64);
}

/// `enum pkvm_page_state` values as the C callbacks exchange them.
fn state_to_c(state: PageState) -> u32 {
    match state {
        PageState::Owned => 0,
        PageState::SharedOwned => 1,
        PageState::SharedBorrowed => 2,
        PageState::NoPage => 3,
    }
}

fn state_from_c(state: u32) -> PageState {
    match state {
        0 => PageState::Owned,
        1 => PageState::SharedOwned,
        2 => PageState::SharedBorrowed,
        _ => PageState::NoPage,
    }
}

fn errno_to_c(e: Errno) -> i32 {
    -e.code()
}

fn result_to_c(r: Result<(), Errno>) -> i32 {
    r.map_or_else(errno_to_c, |()| OK)
}

/// TLB maintenance for the host stage-2 (VMID 0), through KVM's own
/// `__kvm_tlb_flush_vmid_range`.
#[derive(Debug)]
pub struct HostTlb;

impl Tlb for HostTlb {
    fn invalidate(&mut self, ipa: u64, size: u64, level: u8) {
        // SAFETY: a plain C function that issues TLBI/DSB/ISB for the host
        // VMID; any IPA range is valid input.
        unsafe { s2rmap_c_tlb_flush_host(ipa, size, u32::from(level)) }
    }

    fn publish(&mut self) {
        aarch64_cpu::asm::barrier::dsb(aarch64_cpu::asm::barrier::ISHST);
    }
}

/// Disjoint idle ranges the hyp can track (see [`IdleSet`]).
const IDLE_RANGES: usize = 256;

/// Pages the host donated and the hyp does not use, `.hyp.bss`; changed
/// under the tracker's host lock only, which holds the hyp's side.
static IDLE: spin::Mutex<IdleSet<IDLE_RANGES>> = spin::Mutex::new(IdleSet::new());

/// The hyp's side, over the C hyp stage-1.
#[derive(Debug)]
pub struct HypStage1;

impl HypStage1 {
    /// Maps `range` in `state` with `c_map`, the C call that does it, and
    /// records donated pages as idle.
    fn map_with(
        range: Range<u64>,
        state: PageState,
        c_map: impl FnOnce() -> i32,
    ) -> Result<(), Errno> {
        if CAPS.test_calls && allocation_point_fails(&FAIL_COUNTDOWN) {
            return Err(Errno::ENOMEM);
        }
        if state != PageState::Owned {
            return c_result(c_map());
        }
        // Donated pages start idle: refuse now if that cannot be recorded.
        let mut idle = IDLE.lock();
        if !idle.can_insert(&range) {
            return Err(Errno::ENOMEM);
        }
        c_result(c_map())?;
        idle.insert(range);
        Ok(())
    }

    /// Unmaps `range` with `c_unmap`, the C call that does it, and takes
    /// its pages out of the idle set once it has succeeded.
    fn unmap_with(range: Range<u64>, c_unmap: impl FnOnce() -> i32) -> Result<(), Errno> {
        let mut idle = IDLE.lock();
        if !idle.can_remove(&range) {
            return Err(Errno::ENOMEM);
        }
        c_result(c_unmap())?;
        idle.remove(&range);
        Ok(())
    }
}

/// A C callback's `0` or negative errno.
#[inline(always)]
fn c_result(ret: i32) -> Result<(), Errno> {
    if ret == OK { Ok(()) } else { Err(c_error(ret)) }
}

/// The errno of a C callback that failed: out of line, so that the
/// success path is one compare.
#[cold]
#[inline(never)]
fn c_error(ret: i32) -> Errno {
    ret.checked_neg().and_then(Errno::from_code).unwrap_or(Errno::ENOMEM)
}

impl HypSide for HypStage1 {
    fn state(&self, pa: u64) -> PageState {
        // SAFETY: a read-only walk of the hyp stage-1 under its own lock.
        state_from_c(unsafe { s2rmap_c_hyp_state(pa) })
    }

    fn map(&mut self, range: Range<u64>, state: PageState) -> Result<(), Errno> {
        let (start, size) = (range.start, range.end - range.start);
        Self::map_with(range, state, || {
            // SAFETY: maps RAM pages the checks just proved the host gave
            // the hyp; the C side takes the hyp stage-1 lock and returns an
            // errno.
            unsafe { s2rmap_c_hyp_map(start, size, state_to_c(state)) }
        })
    }

    fn map_page_if_free(&mut self, pa: u64, state: PageState) -> Result<(), Errno> {
        Self::map_with(pa..pa + PAGE_SIZE, state, || {
            // SAFETY: maps a RAM page the host side just proved the host
            // gives the hyp, unless the hyp maps it already (-EPERM); under
            // the hyp stage-1 lock.
            unsafe { s2rmap_c_hyp_map_page(pa, state_to_c(state)) }
        })
    }

    fn unmap(&mut self, range: Range<u64>) -> Result<(), Errno> {
        let (start, size) = (range.start, range.end - range.start);
        Self::unmap_with(range, || {
            // SAFETY: unmaps pages the checks proved the hyp no longer
            // holds, unless a block mapped at setup covers part of them
            // (-EPERM, nothing changed); under the hyp stage-1 lock.
            unsafe { s2rmap_c_hyp_unmap(start, size) }
        })
    }

    fn unmap_page_if(&mut self, pa: u64, state: PageState) -> Result<(), Errno> {
        let c_unmap = || {
            // SAFETY: unmaps a page the host side proved goes back to the
            // host, unless the hyp does not hold it in `state` or holds it
            // in a block mapped at setup (-EPERM, nothing changed); under
            // the hyp stage-1 lock.
            unsafe { s2rmap_c_hyp_unmap_page(pa, state_to_c(state)) }
        };
        // Only Owned pages are ever idle.
        if state != PageState::Owned {
            return c_result(c_unmap());
        }
        Self::unmap_with(pa..pa + PAGE_SIZE, c_unmap)
    }

    fn range_is(&self, range: &Range<u64>, state: PageState) -> bool {
        // SAFETY: a read-only walk of the hyp stage-1 under its own lock;
        // any range is valid input (outside the hyp's VA space it is false).
        unsafe { s2rmap_c_hyp_range_is(range.start, range.end - range.start, state_to_c(state)) }
    }

    fn count(&self, _state: PageState) -> Option<u64> {
        None
    }

    fn in_use(&self, pa: u64) -> bool {
        !IDLE.lock().contains(pa)
    }

    fn range_in_use(&self, range: &Range<u64>, in_use: bool) -> bool {
        let idle = IDLE.lock();
        if in_use { idle.contains_none(range) } else { idle.contains_all(range) }
    }

    fn set_in_use(&mut self, range: Range<u64>, in_use: bool) -> Result<(), Errno> {
        let mut idle = IDLE.lock();
        let fits = if in_use { idle.try_remove(&range) } else { idle.try_insert(range) };
        if fits { Ok(()) } else { Err(Errno::ENOMEM) }
    }
}

/// Pins live in the hyp vmemmap refcount, as in stock pKVM.
#[derive(Debug)]
pub struct VmemmapMeta;

impl PageMeta for VmemmapMeta {
    #[inline]
    fn pins(&self, pa: u64) -> u32 {
        // SAFETY: reads the vmemmap entry of `pa`, which the tracker has
        // checked to be RAM (`PageMeta::pins`): the vmemmap covers RAM.
        unsafe { s2rmap_c_page_pins(pa) }
    }

    fn set_pins(&mut self, pa: u64, pins: u32) {
        // SAFETY: writes the vmemmap entry of `pa`, which the tracker has
        // checked to be RAM, under the host lock that every pin/unpin takes.
        unsafe { s2rmap_c_page_set_pins(pa, pins) }
    }

    #[inline]
    fn guest_shares(&self, pa: u64) -> u32 {
        GUEST_SHARES.get(pa / PAGE_SIZE)
    }

    fn set_guest_shares(&mut self, pa: u64, shares: u32) {
        GUEST_SHARES.set(pa / PAGE_SIZE, shares);
    }

    fn guest_share_room(&self) -> u64 {
        GUEST_SHARES.room()
    }

    #[inline]
    fn ffa_shared(&self, pa: u64) -> bool {
        FFA_SHARED.get(pa / PAGE_SIZE) != 0
    }

    fn set_ffa_shared(&mut self, pa: u64, shared: bool) {
        FFA_SHARED.set(pa / PAGE_SIZE, u32::from(shared));
    }

    fn ffa_room(&self) -> u64 {
        FFA_SHARED.room()
    }

    fn zero(&mut self, range: Range<u64>) {
        for pa in (range.start..range.end).step_by(PAGE_SIZE as usize) {
            // SAFETY: zeroes a RAM page through the per-CPU fixmap.
            unsafe { s2rmap_c_zero_page(pa) }
        }
    }
}

/// Guest stage-2 tables are built and checked here but never installed in
/// `VTTBR_EL2`: Linux 6.12 has no protected-guest memory path, so no vCPU
/// runs on them and no TLB can hold their translations. The day a vCPU
/// does, this becomes a per-VMID flush.
#[derive(Debug)]
pub struct UnusedGuestTlb;

impl Tlb for UnusedGuestTlb {
    fn invalidate(&mut self, _ipa: u64, _size: u64, _level: u8) {}

    fn publish(&mut self) {
        aarch64_cpu::asm::barrier::dsb(aarch64_cpu::asm::barrier::ISHST);
    }
}

/// The EL2 platform.
#[derive(Debug)]
pub struct El2;

impl Platform for El2 {
    type HostAlloc = PagePool;
    type HostTlb = HostTlb;
    type Hyp = HypStage1;
    type Meta = VmemmapMeta;
    type GuestAlloc = PagePool;
    type GuestTlb = UnusedGuestTlb;
    type Relax = spin::Spin;
}

/// Pages one guest's table pool may hold (the host donates it).
const GUEST_POOL_PAGES: usize = 512;

/// The pool bitmaps of the guests, one per tracker slot, `.hyp.bss`.
static GUEST_BITMAPS: [[AtomicU64; GUEST_POOL_PAGES / 64]; share::MAX_GUESTS] =
    [const { [const { AtomicU64::new(0) }; GUEST_POOL_PAGES / 64] }; share::MAX_GUESTS];
/// Which of `GUEST_BITMAPS` are taken.
static GUEST_BITMAPS_USED: AtomicU64 = AtomicU64::new(0);
/// The allocation-failure countdown armed by the `FailAllocation` test
/// call: table-page reservations of every party and hyp stage-1 mappings
/// are its allocation points.
static FAIL_COUNTDOWN: AtomicU64 = AtomicU64::new(0);
/// Host pages lent to the secure world through FF-A.
static FFA_SHARED: ShareCounts<1024> = ShareCounts::new();
/// Guest share counts of host pages.
static GUEST_SHARES: ShareCounts<4096> = ShareCounts::new();

/// Builds guest table pools in memory the host donated (the dispatcher
/// donates and claims it first, so it is the hyp's and mapped at EL2).
struct DonatedPools;

impl GuestFactory<El2> for DonatedPools {
    fn build(
        &mut self,
        ipa_bits: u8,
        pool: Range<u64>,
    ) -> Result<(PhysAddr, PagePool, UnusedGuestTlb), Errno> {
        let config = Stage2Config::new(ipa_bits).map_err(|_| Errno::EINVAL)?;
        let pages =
            usize::try_from((pool.end - pool.start) / PAGE_SIZE).map_err(|_| Errno::EINVAL)?;
        if pages > GUEST_POOL_PAGES {
            return Err(Errno::EINVAL);
        }
        let slot = claim_bitmap().ok_or(Errno::EBUSY)?;
        // SAFETY: the dispatcher just donated `pool` to the hyp and claimed
        // it for the hyp's own use, which maps it read-write at its hyp VA;
        // nothing else uses it until `dismantle`; the bitmap slot is ours.
        let built = unsafe { PagePool::new(pool.start, pages, linear_map(), &GUEST_BITMAPS[slot]) };
        let mut alloc = match built {
            Ok(mut alloc) => {
                if CAPS.test_calls {
                    alloc.inject_failures_from(&FAIL_COUNTDOWN);
                }
                alloc
            }
            Err(_) => {
                release_bitmap(slot);
                return Err(Errno::EINVAL);
            }
        };
        match alloc.take_contiguous(config.root_pages()) {
            Some(root) => Ok((root, alloc, UnusedGuestTlb)),
            None => {
                alloc.scrub();
                release_bitmap(slot);
                Err(Errno::ENOMEM)
            }
        }
    }

    fn fail_allocation(&mut self, nth: u64) -> bool {
        FAIL_COUNTDOWN.store(nth, Ordering::Relaxed);
        CAPS.test_calls
    }

    fn dismantle(&mut self, alloc: PagePool, _root: PhysAddr) -> Range<u64> {
        let range = alloc.range();
        let slot = GUEST_BITMAPS.iter().position(|b| core::ptr::eq(b.as_slice(), alloc.bitmap()));
        // The guest's page tables would tell the host where its memory was.
        alloc.scrub();
        if let Some(slot) = slot {
            release_bitmap(slot);
        }
        range
    }
}

fn claim_bitmap() -> Option<usize> {
    loop {
        let used = GUEST_BITMAPS_USED.load(Ordering::Acquire);
        let slot = (!used).trailing_zeros() as usize;
        if slot >= share::MAX_GUESTS {
            return None;
        }
        let claimed = used | (1 << slot);
        if GUEST_BITMAPS_USED
            .compare_exchange(used, claimed, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return Some(slot);
        }
    }
}

fn release_bitmap(slot: usize) {
    GUEST_BITMAPS_USED.fetch_and(!(1 << slot), Ordering::AcqRel);
}

/// The tracker. Zero bytes: it lives in `.hyp.bss` and is installed in
/// place by [`s2rmap_host_init`].
static TRACKER: Tracker<El2> = Tracker::empty();
/// The host stage-2 pool's page bitmap, `.hyp.bss` too.
static POOL_BITMAP: PoolBitmap = [const { AtomicU64::new(0) }; crate::pool::MAX_POOL_PAGES / 64];
/// The physical address of the host stage-2 root, for `pgd_phys`.
static HOST_ROOT: AtomicU64 = AtomicU64::new(0);

/// The ABI this kernel offers the host.
const CAPS: Caps = Caps { test_calls: cfg!(feature = "test-calls"), guests: true };

fn linear_map() -> LinearMap {
    // SAFETY: `hyp_physvirt_offset` is written by the host before the hyp
    // is initialised and never changes afterwards.
    LinearMap { phys_virt_offset: unsafe { hyp_physvirt_offset } }
}

fn memory_map() -> Result<MemoryMap, Errno> {
    let mut memory = MemoryMap::new();
    // SAFETY: plain reads of `hyp_memory[]`, set up before the hyp runs.
    let regions = unsafe { s2rmap_c_nr_regions() };
    for i in 0..regions {
        let (mut base, mut size) = (0u64, 0u64);
        // SAFETY: `i` is in range; the C side writes both out-parameters.
        unsafe { s2rmap_c_region(i, &mut base, &mut size) };
        memory.add(base, size).map_err(|_| Errno::EINVAL)?;
    }
    Ok(memory)
}

/// Builds the host stage-2 over the `pool_pages` pages of the host stage-2
/// pool at hyp VA `pool_va`, for a `phys_shift`-bit physical address space.
/// Replaces the table set-up of `kvm_host_prepare_stage2()`.
#[unsafe(no_mangle)]
pub extern "C" fn s2rmap_host_init(pool_va: u64, pool_pages: u64, phys_shift: u32) -> i32 {
    result_to_c(host_init(pool_va, pool_pages, phys_shift))
}

fn host_init(pool_va: u64, pool_pages: u64, phys_shift: u32) -> Result<(), Errno> {
    let map = linear_map();
    let config = u8::try_from(phys_shift)
        .ok()
        .and_then(|b| Stage2Config::new(b).ok())
        .ok_or(Errno::EINVAL)?;
    let pages = usize::try_from(pool_pages).map_err(|_| Errno::EINVAL)?;
    // SAFETY: Linux carved this range out of the hyp pool for the host
    // stage-2 alone (`divide_memory_pool()`), and it is mapped read-write
    // in the hyp's linear map; the bitmap is ours alone.
    let mut pool = unsafe { PagePool::new(map.pa(pool_va), pages, map, &POOL_BITMAP) }
        .map_err(|_| Errno::EINVAL)?;
    if CAPS.test_calls {
        pool.inject_failures_from(&FAIL_COUNTDOWN);
    }
    let root = pool.take_contiguous(config.root_pages()).ok_or(Errno::ENOMEM)?;
    // Linux runs the host without FWB on its stage-2 (KVM_PGTABLE_S2_NOFWB).
    let s2 = HostStage2::new(config, root, memory_map()?, HostMemoryTypes::CLASSIC)
        .map_err(Errno::from)?;
    TRACKER.install(s2, pool, HostTlb, HypStage1, VmemmapMeta, pgtable::S2Attrs::RAM_RWX)?;
    HOST_ROOT.store(root.0, Ordering::Relaxed);
    Ok(())
}

/// The physical address of the host stage-2 root (`mmu->pgd_phys`).
#[unsafe(no_mangle)]
pub extern "C" fn s2rmap_host_root() -> u64 {
    HOST_ROOT.load(Ordering::Relaxed)
}

/// Boot-time set-up, from `fix_host_ownership()`: `[phys, phys + size)` is
/// held by the hyp in `hyp_state` (its stage-1 view); record the host's
/// side of it.
#[unsafe(no_mangle)]
pub extern "C" fn s2rmap_setup_hyp_range(phys: u64, size: u64, hyp_state: u32) -> i32 {
    let Some(end) = phys.checked_add(size) else { return errno_to_c(Errno::EINVAL) };
    let target = match state_from_c(hyp_state) {
        PageState::Owned => Target::Owner(OwnerId::HYP),
        // The hyp lent it to the host / borrows it from the host.
        PageState::SharedOwned => Target::State(PageState::SharedBorrowed),
        PageState::SharedBorrowed => Target::State(PageState::SharedOwned),
        PageState::NoPage => return errno_to_c(Errno::EINVAL),
    };
    result_to_c(TRACKER.setup_host(phys..end, target))
}

/// Ends boot-time set-up (after `fix_host_ownership()`).
#[unsafe(no_mangle)]
pub extern "C" fn s2rmap_setup_done() -> i32 {
    result_to_c(TRACKER.seal())
}

/// A host stage-2 fault at `addr`: 0 when the access can be retried
/// (mapped now, or already), -EPERM when the page is not the host's (the
/// caller injects an abort), another errno when nothing could be done.
#[unsafe(no_mangle)]
pub extern "C" fn s2rmap_host_abort(addr: u64) -> i32 {
    match TRACKER.host_fault(addr) {
        Ok(share::HostAccess::Ok) => OK,
        Ok(share::HostAccess::Fault { .. }) => errno_to_c(Errno::EPERM),
        Err(e) => errno_to_c(e),
    }
}

/// `__pkvm_host_share_hyp(pfn)`.
#[unsafe(no_mangle)]
pub extern "C" fn s2rmap_host_share_hyp(pfn: u64) -> i32 {
    result_to_c(TRACKER.host_share_hyp(pfn, 1))
}

/// `__pkvm_host_unshare_hyp(pfn)`.
#[unsafe(no_mangle)]
pub extern "C" fn s2rmap_host_unshare_hyp(pfn: u64) -> i32 {
    result_to_c(TRACKER.host_unshare_hyp(pfn, 1))
}

/// `__pkvm_host_donate_hyp(pfn, nr)`: for the hyp's own use (VM and vCPU
/// structures), so the pages are claimed at once and the host cannot ask
/// for them back.
#[unsafe(no_mangle)]
pub extern "C" fn s2rmap_host_donate_hyp(pfn: u64, nr: u64) -> i32 {
    let donated = TRACKER.host_donate_hyp(pfn, nr).and_then(|()| TRACKER.hyp_claim(pfn, nr));
    result_to_c(donated)
}

/// `__pkvm_host_share_ffa(pfn, nr)`: the FF-A proxy lends host pages to
/// the secure world.
#[unsafe(no_mangle)]
pub extern "C" fn s2rmap_host_share_ffa(pfn: u64, nr: u64) -> i32 {
    result_to_c(TRACKER.host_share_ffa(pfn, nr))
}

/// `__pkvm_host_unshare_ffa(pfn, nr)`: the secure world gave them back.
#[unsafe(no_mangle)]
pub extern "C" fn s2rmap_host_unshare_ffa(pfn: u64, nr: u64) -> i32 {
    result_to_c(TRACKER.host_unshare_ffa(pfn, nr))
}

/// `__pkvm_hyp_donate_host(pfn, nr)`: the hyp is done with pages it used.
#[unsafe(no_mangle)]
pub extern "C" fn s2rmap_hyp_donate_host(pfn: u64, nr: u64) -> i32 {
    result_to_c(TRACKER.hyp_return_used(pfn, nr))
}

fn page_span(from: u64, to: u64) -> Option<(u64, u64)> {
    let start = from & !(PAGE_SIZE - 1);
    let end = to.checked_add(PAGE_SIZE - 1)? & !(PAGE_SIZE - 1);
    (end > start).then_some((start / PAGE_SIZE, (end - start) / PAGE_SIZE))
}

/// `hyp_pin_shared_mem(from, to)`, with physical addresses.
#[unsafe(no_mangle)]
pub extern "C" fn s2rmap_hyp_pin(phys_from: u64, phys_to: u64) -> i32 {
    let Some((pfn, nr)) = page_span(phys_from, phys_to) else { return errno_to_c(Errno::EINVAL) };
    result_to_c(TRACKER.hyp_pin(pfn, nr))
}

/// `hyp_unpin_shared_mem(from, to)`, with physical addresses.
#[unsafe(no_mangle)]
pub extern "C" fn s2rmap_hyp_unpin(phys_from: u64, phys_to: u64) -> i32 {
    let Some((pfn, nr)) = page_span(phys_from, phys_to) else { return errno_to_c(Errno::EINVAL) };
    result_to_c(TRACKER.hyp_unpin(pfn, nr))
}

/// Handles a host hypercall if it is one of s2rmap's: `regs` are the
/// host's `x0..x7` (`&host_ctxt->regs.regs[0]`). Returns false, leaving
/// them alone, for any other call.
///
/// # Safety
///
/// `regs` must point to at least eight writable `u64`s.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn s2rmap_handle_hcall(regs: *mut u64) -> bool {
    // SAFETY: the caller passes the host context's register array, which
    // holds 31 registers; we use the first eight.
    let regs = unsafe { &mut *regs.cast::<[u64; 8]>() };
    hypercalls::dispatch(&TRACKER, &mut DonatedPools, CAPS, regs)
}
